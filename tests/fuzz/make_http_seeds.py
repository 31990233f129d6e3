#!/usr/bin/env python3
"""Writes the seed corpora corpus/fuzz_http_{request,response,chunked}/
(committed; rerun after changing the input layout described in
fuzz_http_head.h and fuzz_http_chunked.c)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# Byte 0 of a head input picks the limits (0: defaults; see fz_limits()),
# byte 1 seeds the random split (and the request method for responses).
DEFAULTS, SMALL_HEAD, SMALL_LINE, FEW_HEADERS = 0x00, 0x21, 0x52, 0x24


def head(data, limits=DEFAULTS, seed=0):
    return bytes([limits, seed]) + data


REQUESTS = {
    "get": b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    "post-chunked": b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "post-length": b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nConnection: close\r\n\r\na=b&c=d",
    "smuggle-te-cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "http10-keepalive": b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "pipelined": b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    "leading-crlf": b"\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "absolute-form": b"GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "obs-fold": b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "http2-version": b"GET / HTTP/2.0\r\n\r\n",
    "tls-hello": bytes([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
    "empty-values": b"GET / HTTP/1.1\r\nA:\r\nB: \t \r\nC:x\r\n\r\n",
}


def nginx(status, reason, extra, body=b""):
    lines = [b"HTTP/1.1 %d %s" % (status, reason), b"Server: nginx/1.24.0",
             b"Date: Fri, 27 Nov 2026 03:23:30 GMT"] + extra
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


RESPONSES = {
    "nginx-200": nginx(200, b"OK", [b"Content-Type: text/html", b"Content-Length: 5",
                                    b"Last-Modified: Tue, 01 Jan 2030 00:00:00 GMT",
                                    b"Connection: keep-alive", b'ETag: "5e2-1f"',
                                    b"Accept-Ranges: bytes"], b"hello"),
    "chunked": nginx(200, b"OK", [b"Transfer-Encoding: chunked", b"Vary: Accept-Encoding"],
                     b"5\r\nhello\r\n0\r\n\r\n"),
    "redirect": nginx(301, b"Moved Permanently", [b"Location: https://example.com/",
                                                  b"Content-Length: 0"]),
    "not-modified": nginx(304, b"Not Modified", [b"Content-Length: 100"]),
    "continue-then-200": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "set-cookies": nginx(200, b"OK", [b"Set-Cookie: a=1; Path=/", b"Set-Cookie: b=2; HttpOnly",
                                      b"Content-Length: 0"]),
    "http10-close": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "no-reason": b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    "te-and-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "cl-conflict": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    "reason-obs-text": b"HTTP/1.1 404 Nicht gefunden \xc3\xa4\r\n\r\n",
    "bare-cr": b"HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n",
}


def chunked_raw(data, limits=0, seed=0):
    return bytes([limits & 0xFE, seed]) + data


def chunked_encode(payload, seed=0):
    return bytes([1, seed]) + payload


CHUNKED = {
    "simple": chunked_raw(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    "extensions": chunked_raw(b'3;a=b;c\r\nabc\r\n2 ; n = "q\\"x" \t;y\r\nde\r\n0;z\r\n\r\n'),
    "trailers": chunked_raw(b"1\r\nx\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\nNEXT"),
    "empty": chunked_raw(b"0\r\n\r\n"),
    "leading-zeros": chunked_raw(b"0003\r\nabc\r\n000\r\n\r\n"),
    "big-size": chunked_raw(b"1000000000000000\r\nabc"),
    "too-big": chunked_raw(b"10000000000000000\r\n"),
    "bad-crlf": chunked_raw(b"3\r\nabcd\r\n0\r\n\r\n"),
    "bare-lf": chunked_raw(b"3\nabc\n0\n\n"),
    "small-limits": chunked_raw(b"1;aaaaaaaaaaaaaaaaaaaaaa\r\nx\r\n0\r\nA: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n",
                                limits=0x42 | (3 << 2)),
    "encode-text": chunked_encode(b"The quick brown fox jumps over the lazy dog. " * 8, seed=3),
    "encode-binary": chunked_encode(bytes(range(256)), seed=77),
    "encode-empty": chunked_encode(b"", seed=5),
}


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for seed, data in seeds.items():
        with open(os.path.join(d, seed), "wb") as f:
            f.write(data)


def main():
    req = {k: head(v, seed=i) for i, (k, v) in enumerate(REQUESTS.items())}
    req["small-limits"] = head(REQUESTS["get"], SMALL_HEAD | SMALL_LINE | FEW_HEADERS)
    req["few-headers"] = head(REQUESTS["get"], FEW_HEADERS)
    req["short-lines"] = head(REQUESTS["absolute-form"], SMALL_LINE)
    write("fuzz_http_request", req)
    resp = {k: head(v, seed=i) for i, (k, v) in enumerate(RESPONSES.items())}
    resp["head-request"] = head(RESPONSES["nginx-200"], seed=1)     # method HEAD
    resp["connect-request"] = head(RESPONSES["nginx-200"], seed=2)  # method CONNECT
    resp["small-head"] = head(RESPONSES["set-cookies"], SMALL_HEAD)
    resp["few-headers"] = head(RESPONSES["nginx-200"], FEW_HEADERS)
    write("fuzz_http_response", resp)
    write("fuzz_http_chunked", CHUNKED)


if __name__ == "__main__":
    main()
