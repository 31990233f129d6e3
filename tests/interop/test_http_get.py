#!/usr/bin/env python3
"""`nbio get` against Python HTTP servers on loopback.

 - http.server (HTTP/1.0) serving a temporary directory: small, empty and
   3 MB files come out byte-identical, to standard output and with -o, also
   several URLs in one run; a progress meter on a terminal only.
 - A raw-socket server scripting the edge cases: chunked bodies with
   extensions and trailers, 100 Continue, HEAD, 204, 304, close-delimited
   bodies, each response split at every byte boundary and sent byte by
   byte; conflicting Content-Length, truncated bodies, oversized heads;
   keep-alive reuse (connections counted by the server), --pipeline (the
   server reads every request head before it answers), Connection: close
   in the middle of a pipeline; redirects with and without -L; -X/-d/-d
   @FILE/-d @-/-H; --fail; --compressed with gzip.
 - curl as the oracle: `nbio get -i URL` and `curl -si URL` print the same
   bytes.
 - HTTPS with a certificate made by `openssl req`: --cacert, the refusal
   without it, -k.
 - Usage errors (exit 2) and a refused connection (exit 1, one line).
"""
import gzip
import http.server
import os
import pty
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from nbio_interop import (TestFailure, _procs, check, main, make_self_signed, payload,
                          proc_status_kib, run_tool, step)

SMALL_TEXT = b"hello from http.server\n"
BIG_SIZE = 3 * 1000 * 1000


# ---- servers ----------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


def start_http_server(directory):
    """Python's http.server (HTTP/1.0: one request per connection) in a
    thread; returns (server, 'http://127.0.0.1:PORT')."""
    def handler(*a, **kw):
        return QuietHandler(*a, directory=directory, **kw)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    return srv, "http://127.0.0.1:%d" % srv.server_address[1]


class Request:
    def __init__(self, method, target, version, headers, body):
        self.method, self.target, self.version = method, target, version
        self.headers = headers  # [(name, value)] as received
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def query(self, key):
        if "?" not in self.target:
            return None
        for part in self.target.split("?", 1)[1].split("&"):
            k, _, v = part.partition("=")
            if k == key:
                return v
        return None


class Reply:
    """What the raw server sends: bytes, how (split at a byte offset,
    byte by byte), and whether it closes afterwards."""

    def __init__(self, data, close=False, split=None, bytewise=False, then=None, stream=None):
        self.data, self.close, self.split, self.bytewise = data, close, split, bytewise
        self.then = then  # bytes sent after a pause (e.g. the rest of a truncated body)
        self.stream = stream  # an iterable of blocks sent after data


def recv_request(c, buf):
    """Reads one request from c; returns (Request, rest) or (None, rest) at
    EOF. Request bodies: Content-Length or chunked."""
    while b"\r\n\r\n" not in buf:
        b = c.recv(65536)
        if not b:
            return None, buf
        buf += b
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k, v.strip()))
    req = Request(method, target, version, headers, b"")
    n = req.header("content-length")
    if n is not None:
        n = int(n)
        while len(buf) < n:
            b = c.recv(65536)
            if not b:
                raise IOError("request body cut")
            buf += b
        req.body, buf = buf[:n], buf[n:]
    elif (req.header("transfer-encoding") or "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += c.recv(65536)
            line, _, buf = buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            while len(buf) < size + 2:
                buf += c.recv(65536)
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                break
        req.body = body
    return req, buf


class RawServer:
    """A scripted HTTP server on raw sockets: route(server, request) returns a
    Reply. Counts the connections accepted and logs every request (the
    connection number with it). With `pipeline` set to N, a connection
    first reads N request heads (waiting at most 5 s) and only then
    answers them; pipeline_seen records how many it had read."""

    def __init__(self, route, tls_context=None):
        self.route = route
        self.tls = tls_context
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.base = "%s://127.0.0.1:%d" % ("https" if tls_context else "http", self.port)
        self.connections = 0
        self.log = []  # (connection number, Request)
        self.errors = []
        self.pipeline = 0
        self.pipeline_seen = []
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self):
        with self.lock:
            self.connections = 0
            self.log = []
            self.pipeline_seen = []

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _send(self, c, reply):
        data = reply.data
        if reply.bytewise:
            for i in range(len(data)):
                c.sendall(data[i:i + 1])
                time.sleep(0.001)
        elif reply.split is not None:
            c.sendall(data[:reply.split])
            time.sleep(0.004)
            c.sendall(data[reply.split:])
        else:
            c.sendall(data)
        if reply.then is not None:
            time.sleep(0.05)
            c.sendall(reply.then)
        for block in reply.stream or ():
            c.sendall(block)

    def _serve(self, c, n):
        try:
            c.settimeout(20)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                c = self.tls.wrap_socket(c, server_side=True)
            buf = b""
            while True:
                batch = []
                want = self.pipeline or 1
                if self.pipeline:
                    c.settimeout(5)
                try:
                    while len(batch) < want:
                        req, buf = recv_request(c, buf)
                        if req is None:
                            break
                        batch.append(req)
                except socket.timeout:
                    pass
                c.settimeout(20)
                if self.pipeline and batch:
                    with self.lock:
                        self.pipeline_seen.append(len(batch))
                if not batch:
                    break
                closed = False
                for req in batch:
                    with self.lock:
                        self.log.append((n, req))
                    reply = self.route(self, req)
                    self._send(c, reply)
                    if reply.close:
                        closed = True
                        break
                if closed or len(batch) < want:
                    break
        except (ssl.SSLError, ConnectionError, socket.timeout):
            pass  # clients that give up are part of some tests
        except BaseException as e:
            self.errors.append(e)
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopping = True
        self.sock.close()


# ---- the raw server's routes ------------------------------------------------

BIG_HEADERS = "".join("X-Filler-%03d: %s\r\n" % (i, "f" * 1000) for i in range(70))

# Responses replayed split at every byte boundary: (path, reply bytes,
# method, the output of `nbio get` (-I for HEAD), keep-alive).
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value\r\nhello\r\n"
           b"7;quoted=\"a;b\";flag\r\n, world\r\n"
           b"0;last\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n")
CONTINUE = (b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nafter a 100 !")
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nX-Why: nothing\r\n\r\n"
NOT_MODIFIED = b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n"
HEAD_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe body ends when the connection does"
HTTP10 = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nan HTTP/1.0 body, close-delimited"

CANNED = {
    "/chunked": (CHUNKED, "GET", b"hello, world", True),
    "/continue": (CONTINUE, "GET", b"after a 100 !", True),
    "/nocontent": (NO_CONTENT, "GET", b"", True),
    "/notmodified": (NOT_MODIFIED, "GET", b"", True),
    "/head": (HEAD_REPLY, "HEAD", HEAD_REPLY, True),
    "/close": (CLOSE_DELIMITED, "GET", b"the body ends when the connection does", False),
    "/http10": (HTTP10, "GET", b"an HTTP/1.0 body, close-delimited", False),
}

GZIP_DATA = b"compress me, " * 500
STREAM_BLOCK = payload(1 << 20, 9)
STREAM_MIB = 128


def respond(status, body=b"", headers=(), close=False, **kw):
    reason = {200: "OK", 201: "Created", 301: "Moved Permanently", 302: "Found",
              303: "See Other", 307: "Temporary Redirect", 308: "Permanent Redirect",
              404: "Not Found", 500: "Internal Server Error"}[status]
    head = "HTTP/1.1 %d %s\r\n" % (status, reason)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    if close:
        head += "Connection: close\r\n"
    head += "Content-Length: %d\r\n\r\n" % len(body)
    return Reply(head.encode() + body, close=close, **kw)


def route(server, req):
    p = req.path
    if p in CANNED:
        data, _, _, keep = CANNED[p]
        split = req.query("split")
        return Reply(data, close=not keep, split=int(split) if split else None,
                     bytewise=req.query("bytewise") is not None)
    if p == "/echo":  # the method and the body it got, and the headers
        out = ("%s %s\n" % (req.method, req.target)).encode() + req.body
        hdr = [("X-Got-Length", str(len(req.body)))]
        for k, v in req.headers:
            if k.lower().startswith("x-"):
                hdr.append(("X-Saw-" + k[2:], v))
        return respond(200, out, hdr)
    if p.startswith("/redirect/"):  # /redirect/301 -> /echo
        code = int(p.rsplit("/", 1)[1])
        return respond(code, b"moved to /echo\n", [("Location", "/echo?from=%d" % code)])
    if p == "/loop":
        return respond(302, b"", [("Location", "/loop")])
    if p == "/notfound":
        return respond(404, b"there is nothing here\n")
    if p == "/gzip":
        if "gzip" in (req.header("accept-encoding") or ""):
            return respond(200, gzip.compress(GZIP_DATA),
                           [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")])
        return respond(200, GZIP_DATA, [("Content-Type", "text/plain")])
    if p == "/conflict":
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                     close=True)
    if p == "/truncated":
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"t" * 40, close=True)
    if p == "/bigheaders":
        return Reply(("HTTP/1.1 200 OK\r\n" + BIG_HEADERS + "Content-Length: 2\r\n\r\nok")
                     .encode(), close=True)
    if p.startswith("/p/"):  # pipelined: /p/N; /p/N?close answers with Connection: close
        i = p[3:]
        return respond(200, ("response %s\n" % i).encode(), close=req.query("close") is not None)
    if p == "/stream":  # ?mib=N: N MiB of STREAM_BLOCK, generated as it is sent
        n = int(req.query("mib"))
        return Reply(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (n << 20)).encode(),
                     stream=(STREAM_BLOCK for _ in range(n)))
    if p == "/text":
        return respond(200, b"plain text\n", [("Content-Type", "text/plain"), ("X-Custom", "a b")])
    return respond(404, b"no route\n")


# ---- helpers ----------------------------------------------------------------

def get(nbio, args, input_bytes=b"", timeout=30.0):
    return run_tool(nbio, ["get"] + args, input_bytes, timeout)


def ok(r, what):
    check(r.returncode == 0, "%s: exit %d, stderr %r" % (what, r.returncode, r.stderr[-2000:]))


def one_error_line(r, what, name, pattern=None):
    """Exit 1 and exactly one stderr line 'nbio get: NAME: detail' (detail
    matching the regular expression pattern)."""
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 1, "%s: exit %d (want 1), stderr %r, stdout %r"
          % (what, r.returncode, err, r.stdout[:300]))
    lines = err.splitlines()
    check(len(lines) == 1, "%s: want exactly one line on stderr, got %r" % (what, err))
    check(lines[0].startswith("nbio get: %s: " % name),
          "%s: want 'nbio get: %s: ...', got %r" % (what, name, lines[0]))
    if pattern is not None:
        check(re.search(pattern, lines[0]) is not None,
              "%s: %r does not match %r" % (what, lines[0], pattern))
    return lines[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the tests --------------------------------------------------------------

def test_http_server(nbio, tmp):
    root = os.path.join(tmp, "www")
    os.mkdir(root)
    big = payload(BIG_SIZE, 3)
    files = {"small.txt": SMALL_TEXT, "empty": b"", "big.bin": big}
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    srv, base = start_http_server(root)

    for name, data in files.items():
        step("http.server: GET /%s (%d bytes) to standard output" % (name, len(data)))
        r = get(nbio, [base + "/" + name])
        ok(r, name)
        check(r.stdout == data, "%s: got %d bytes, want %d (same bytes: %s)"
              % (name, len(r.stdout), len(data), r.stdout == data))
        check(r.stderr == b"", "%s: stderr should be empty, got %r" % (name, r.stderr))

    step("http.server: -o FILE, 3 MB")
    out = os.path.join(tmp, "big.out")
    r = get(nbio, ["-o", out, base + "/big.bin"])
    ok(r, "-o")
    check(r.stdout == b"", "-o: nothing on standard output, got %d bytes" % len(r.stdout))
    check(r.stderr == b"", "-o: no progress meter when standard error is not a terminal: %r"
          % r.stderr[:200])
    with open(out, "rb") as f:
        check(f.read() == big, "-o: the file differs from big.bin")

    step("http.server: several URLs in one run, bodies one after the other")
    r = get(nbio, [base + "/small.txt", base + "/empty", base + "/big.bin", base + "/small.txt"])
    ok(r, "several URLs")
    check(r.stdout == SMALL_TEXT + big + SMALL_TEXT, "several URLs: output differs (%d bytes)"
          % len(r.stdout))

    step("http.server: a missing file is a 404 with its body (exit 0), or exit 22 with --fail")
    r = get(nbio, [base + "/missing"])
    ok(r, "404 without --fail")
    check(b"404" in r.stdout, "404 page expected on stdout: %r" % r.stdout[:200])
    r = get(nbio, ["--fail", base + "/missing"])
    check(r.returncode == 22 and r.stdout == b"", "--fail 404: exit %d, stdout %r"
          % (r.returncode, r.stdout[:200]))

    step("progress meter: on a terminal only, for a download over 1 MiB")
    master, slave = pty.openpty()
    p = subprocess.Popen([nbio, "get", "-o", os.path.join(tmp, "meter.out"), base + "/big.bin"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    _procs.append(p)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            b = os.read(master, 4096)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not b:
            break
        seen += b
    os.close(master)
    p.wait(timeout=10)
    check(p.returncode == 0, "meter run: exit %d, terminal %r" % (p.returncode, seen))
    check(b"\r" in seen and b"MiB" in seen and b"100%" in seen,
          "the meter should be drawn with \\r, MiB and 100%%: %r" % seen)
    with open(os.path.join(tmp, "meter.out"), "rb") as f:
        check(f.read() == big, "meter run: file differs")
    return srv, base


def test_split_everywhere(nbio, raw):
    for path, (data, method, want, keep) in CANNED.items():
        step("%s (%d bytes) split at every byte boundary, then byte by byte"
             % (path, len(data)))
        raw.reset()
        args = ["-I"] if method == "HEAD" else []
        urls = ["%s%s?split=%d" % (raw.base, path, k) for k in range(1, len(data))]
        urls.append("%s%s?bytewise" % (raw.base, path))
        r = get(nbio, args + urls, timeout=60)
        ok(r, path)
        for _, req in raw.log:
            check(req.method == method, "%s: the server got %s, want %s" % (path, req.method, method))
        check(len(raw.log) == len(urls), "%s: the server saw %d requests, want %d"
              % (path, len(raw.log), len(urls)))
        if r.stdout != want * len(urls):
            # find the first split whose output differs, for the message
            for k in range(1, len(data) + 1):
                single = get(nbio, args + [urls[k - 1]])
                if single.stdout != want or single.returncode != 0:
                    raise AssertionError("%s split at %d: exit %d, output %r, stderr %r, want %r"
                                         % (path, k, single.returncode, single.stdout,
                                            single.stderr, want))
            check(False, "%s: output differs: %r" % (path, r.stdout[:500]))
        want_conns = 1 if keep else len(urls)
        check(raw.connections == want_conns, "%s: %d connections, want %d (keep-alive: %s)"
              % (path, raw.connections, want_conns, keep))


def test_raw_edge_cases(nbio, raw, tmp):
    b = raw.base

    step("chunked with -i: head as received, the decoded body, then the trailers")
    r = get(nbio, ["-i", b + "/chunked"])
    ok(r, "-i chunked")
    check(r.stdout == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nhello, world"
          b"X-Trailer: yes\r\nX-Other: 1\r\n", "-i chunked: %r" % r.stdout)

    step("100 Continue: skipped without -i, printed before the final response with -i")
    r = get(nbio, ["-i", b + "/continue"])
    ok(r, "-i continue")
    check(r.stdout == CONTINUE, "-i continue: %r" % r.stdout)

    step("-I: HEAD, status line and headers only")
    r = get(nbio, ["-I", b + "/head"])
    ok(r, "-I")
    check(r.stdout == HEAD_REPLY, "-I: %r" % r.stdout)

    step("conflicting Content-Length: exit 1, NBIO_EPROTOCOL")
    r = get(nbio, [b + "/conflict"])
    one_error_line(r, "conflicting Content-Length", "NBIO_EPROTOCOL", "(?i)content-length")
    check(r.stdout == b"", "nothing of a rejected response is printed: %r" % r.stdout)

    step("truncated body: exit 1, NBIO_ETRUNCATED, 'got 40 of 100 bytes'")
    r = get(nbio, [b + "/truncated"])
    one_error_line(r, "truncated body", "NBIO_ETRUNCATED", r"got 40 of 100 bytes")
    check(r.stdout == b"t" * 40, "what arrived is streamed out first: %r" % r.stdout)

    step("a 71 KB head: exit 1, NBIO_ETOOLARGE")
    r = get(nbio, [b + "/bigheaders"])
    one_error_line(r, "oversized head", "NBIO_ETOOLARGE")

    step("keep-alive: two URLs, one TCP connection, -v says so")
    raw.reset()
    r = get(nbio, ["-v", b + "/text", b + "/chunked?x=2"])
    ok(r, "keep-alive")
    check(r.stdout == b"plain text\nhello, world", "keep-alive output %r" % r.stdout)
    check(raw.connections == 1, "the server accepted %d connections, want 1" % raw.connections)
    err = r.stderr.decode()
    addr = "127.0.0.1:%d" % raw.port
    want_lines = ["* connected to " + addr, "> GET /text", "< 200 OK",
                  "* reusing connection to " + addr, "> GET /chunked?x=2", "< 200 OK"]
    got_lines = err.splitlines()
    for w in want_lines:
        check(w in got_lines, "-v: %r missing from %r" % (w, err))
    check(got_lines.index("* connected to " + addr) < got_lines.index("* reusing connection to " + addr),
          "-v: order %r" % err)

    step("-X POST -d: method, body and Content-Length checked by the server")
    raw.reset()
    r = get(nbio, ["-d", "name=value&x=1", b + "/echo"])
    ok(r, "-d")
    check(r.stdout == b"POST /echo\nname=value&x=1", "-d output %r" % r.stdout)
    req = raw.log[0][1]
    check(req.method == "POST" and req.body == b"name=value&x=1" and
          req.header("content-length") == "14", "server saw %s %r CL=%r"
          % (req.method, req.body, req.header("content-length")))
    r = get(nbio, ["-X", "PUT", "-d", "abc", b + "/echo"])
    ok(r, "-X PUT")
    check(r.stdout == b"PUT /echo\nabc", "-X PUT output %r" % r.stdout)
    r = get(nbio, ["-X", "DELETE", b + "/echo?id=7"])
    ok(r, "-X DELETE")
    check(r.stdout == b"DELETE /echo?id=7\n", "-X DELETE output %r" % r.stdout)

    step("-d @FILE (binary) and -d @- (standard input)")
    blob = bytes(range(256)) * 300
    path = os.path.join(tmp, "upload.bin")
    with open(path, "wb") as f:
        f.write(blob)
    r = get(nbio, ["-d", "@" + path, b + "/echo"])
    ok(r, "-d @file")
    check(r.stdout == b"POST /echo\n" + blob, "-d @file: %d bytes back" % len(r.stdout))
    r = get(nbio, ["--data", "@-", b + "/echo"], input_bytes=b"from stdin\x00\xff")
    ok(r, "-d @-")
    check(r.stdout == b"POST /echo\nfrom stdin\x00\xff", "-d @-: %r" % r.stdout)
    r = get(nbio, ["-d", "@" + os.path.join(tmp, "no-such-file"), b + "/echo"])
    check(r.returncode != 0 and b"no-such-file" in r.stderr,
          "-d @missing: exit %d, stderr %r" % (r.returncode, r.stderr))

    step("-H: extra headers reach the server")
    r = get(nbio, ["-H", "X-One: 1", "--header", "X-Two:  two words  ", b + "/echo"])
    ok(r, "-H")
    req_headers = dict((k.lower(), v) for k, v in raw.log[-1][1].headers) if raw.log else {}
    check(req_headers.get("x-one") == "1" and req_headers.get("x-two") == "two words",
          "-H: the server saw %r" % raw.log[-1][1].headers)

    step("redirects without -L: the 3xx is the answer")
    r = get(nbio, ["-i", b + "/redirect/302"])
    ok(r, "no -L")
    check(r.stdout.startswith(b"HTTP/1.1 302 Found\r\n") and
          r.stdout.endswith(b"\r\n\r\nmoved to /echo\n"), "no -L: %r" % r.stdout)

    for code in (301, 302, 303, 307, 308):
        step("-L -d with %d: %s" % (code, "POST kept with its body" if code >= 307
                                    else "GET without a body"))
        raw.reset()
        r = get(nbio, ["-L", "-d", "payload-%d" % code, b + "/redirect/%d" % code])
        ok(r, "-L %d" % code)
        check(len(raw.log) == 2, "-L %d: the server saw %d requests" % (code, len(raw.log)))
        follow = raw.log[1][1]
        if code >= 307:
            want = ("POST /echo?from=%d\npayload-%d" % (code, code)).encode()
            check(follow.method == "POST" and follow.body == ("payload-%d" % code).encode(),
                  "-L %d: followed with %s %r" % (code, follow.method, follow.body))
        else:
            want = ("GET /echo?from=%d\n" % code).encode()
            check(follow.method == "GET" and follow.body == b"" and
                  follow.header("content-length") in (None, "0"),
                  "-L %d: followed with %s %r" % (code, follow.method, follow.body))
        check(r.stdout == want, "-L %d: output %r, want %r" % (code, r.stdout, want))
    r = get(nbio, ["-v", "-L", b + "/redirect/301"])
    ok(r, "-v -L")
    check("* redirected to %s/echo?from=301" % b in r.stderr.decode().splitlines(),
          "-v -L: no '* redirected to' line in %r" % r.stderr)

    step("-L stops after 10 redirects")
    r = get(nbio, ["-L", b + "/loop"])
    check(r.returncode == 1 and len(r.stderr.decode().splitlines()) == 1 and
          b"redirect" in r.stderr.lower(), "-L loop: exit %d, stderr %r"
          % (r.returncode, r.stderr))

    step("--fail: 404 prints no body, exit 22; other URLs still fetched")
    r = get(nbio, ["--fail", b + "/notfound"])
    check(r.returncode == 22, "--fail: exit %d, stderr %r" % (r.returncode, r.stderr))
    check(r.stdout == b"", "--fail: no body, got %r" % r.stdout)
    r = get(nbio, ["-f", b + "/notfound", b + "/text"])
    check(r.returncode == 22 and r.stdout == b"plain text\n", "-f then a good URL: exit %d %r"
          % (r.returncode, r.stdout))
    r = get(nbio, [b + "/notfound"])
    ok(r, "404 without --fail")
    check(r.stdout == b"there is nothing here\n", "404 without --fail: %r" % r.stdout)

    step("--compressed: asks for gzip and decodes it; without it no Accept-Encoding")
    raw.reset()
    r = get(nbio, ["--compressed", b + "/gzip"])
    ok(r, "--compressed")
    check("gzip" in (raw.log[0][1].header("accept-encoding") or ""),
          "--compressed: Accept-Encoding %r" % raw.log[0][1].header("accept-encoding"))
    check(r.stdout == GZIP_DATA, "--compressed: %d bytes, want %d decoded"
          % (len(r.stdout), len(GZIP_DATA)))
    raw.reset()
    r = get(nbio, [b + "/gzip"])
    ok(r, "no --compressed")
    check(raw.log[0][1].header("accept-encoding") is None, "Accept-Encoding sent without --compressed")
    check(r.stdout == GZIP_DATA, "plain /gzip differs")


def sanitized(nbio):
    """True when nbio is built with a sanitizer runtime (its memory use is
    then no measure of ours)."""
    with open(nbio, "rb") as f:
        data = f.read()
    return any(k in data for k in (b"__asan_init", b"__msan_init", b"__tsan_init"))


def test_streaming(nbio, raw):
    step("a %d MiB body streams through: every byte checked, memory stays bounded" % STREAM_MIB)
    import hashlib
    want = hashlib.sha256()
    for _ in range(STREAM_MIB):
        want.update(STREAM_BLOCK)
    p = subprocess.Popen([nbio, "get", "%s/stream?mib=%d" % (raw.base, STREAM_MIB)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _procs.append(p)
    got, n, hwm_kib = hashlib.sha256(), 0, 0
    while True:
        b = p.stdout.read(1 << 20)
        if not b:
            break
        got.update(b)
        n += len(b)
        try:  # the peak RSS of nbio's own image (ru_maxrss would count the fork)
            hwm_kib = max(hwm_kib, proc_status_kib(p.pid, "VmHWM"))
        except (OSError, TestFailure):
            pass  # it has exited
    p.wait(timeout=20)
    err = p.stderr.read()
    check(p.returncode == 0, "stream: exit %d, stderr %r" % (p.returncode, err))
    check(n == STREAM_MIB << 20 and got.digest() == want.digest(),
          "stream: %d bytes (want %d), same bytes: %s" % (n, STREAM_MIB << 20,
                                                          got.digest() == want.digest()))
    rss_mib = hwm_kib / 1024.0
    check(hwm_kib > 0, "stream: could not read nbio's VmHWM")
    if sanitized(nbio):
        step("   peak RSS %.1f MiB (not judged: nbio is built with a sanitizer)" % rss_mib)
    else:
        step("   peak RSS %.1f MiB" % rss_mib)
        check(rss_mib < 32, "streaming %d MiB took a peak RSS of %.1f MiB: the body is "
              "not streamed" % (STREAM_MIB, rss_mib))


def test_pipeline(nbio, raw):
    b = raw.base
    step("--pipeline: 4 requests written before the server answers any, one connection")
    raw.reset()
    raw.pipeline = 4
    try:
        r = get(nbio, ["--pipeline", "-v"] + ["%s/p/%d" % (b, i) for i in range(1, 5)])
    finally:
        raw.pipeline = 0
    ok(r, "--pipeline")
    check(raw.pipeline_seen == [4], "the server read %r request heads before answering, want [4]"
          % raw.pipeline_seen)
    check(raw.connections == 1, "--pipeline: %d connections" % raw.connections)
    check(r.stdout == b"".join(b"response %d\n" % i for i in range(1, 5)),
          "--pipeline output %r" % r.stdout)

    step("--pipeline: Connection: close on response 2 of 4 -> exit 1 naming 2 unanswered")
    raw.reset()
    raw.pipeline = 4
    try:
        r = get(nbio, ["--pipeline", b + "/p/1", b + "/p/2?close", b + "/p/3", b + "/p/4"])
    finally:
        raw.pipeline = 0
    line = one_error_line(r, "close in a pipeline", "NBIO_EPEERCLOSED", r"\b2 requests\b")
    check(r.stdout == b"response 1\nresponse 2\n", "the two answers are printed: %r" % r.stdout)
    step("   " + line)


def test_curl_oracle(nbio, raw, http_base):
    step("curl -si and nbio get -i print the same bytes")
    curl = shutil.which("curl")
    check(curl is not None, "curl is needed for this test (scripts/install-deps installs it)")
    urls = [raw.base + p for p in ("/text", "/chunked", "/continue", "/nocontent",
                                   "/notmodified", "/close", "/http10", "/notfound",
                                   "/redirect/301", "/echo?q=1")]
    urls += [http_base + p for p in ("/small.txt", "/empty", "/missing", "/")]
    date = re.compile(rb"\r\nDate: [^\r]*\r\n")
    for url in urls:
        c = subprocess.run([curl, "-si", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        check(c.returncode == 0, "curl %s: exit %d" % (url, c.returncode))
        r = get(nbio, ["-i", url])
        ok(r, "-i " + url)
        want = date.sub(b"\r\nDate: X\r\n", c.stdout)
        got = date.sub(b"\r\nDate: X\r\n", r.stdout)
        check(got == want, "%s:\n nbio get -i: %r\n curl -si:    %r" % (url, got[:600], want[:600]))


def test_https(nbio, tmp):
    made = make_self_signed(tmp)
    check(made is not None, "openssl is needed for this test")
    cert, key = made
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls = RawServer(route, tls_context=ctx)
    try:
        step("HTTPS with --cacert: verified, two URLs over one connection")
        r = get(nbio, ["--cacert", cert, tls.base + "/text", tls.base + "/chunked"])
        ok(r, "--cacert")
        check(r.stdout == b"plain text\nhello, world", "--cacert output %r" % r.stdout)
        check(tls.connections == 1, "HTTPS keep-alive: %d connections" % tls.connections)

        step("HTTPS without --cacert: NBIO_ECERTVERIFY, self-signed")
        r = get(nbio, [tls.base + "/text"])
        one_error_line(r, "no --cacert", "NBIO_ECERTVERIFY", "self-signed")
        check(r.stdout == b"", "nothing printed: %r" % r.stdout)

        step("HTTPS with -k: not verified, works")
        r = get(nbio, ["-k", tls.base + "/echo"])
        ok(r, "-k")
        check(r.stdout == b"GET /echo\n", "-k output %r" % r.stdout)

        step("HTTPS --pipeline with --cacert")
        r = get(nbio, ["--pipeline", "--cacert", cert] + ["%s/p/%d" % (tls.base, i) for i in range(3)])
        ok(r, "https --pipeline")
        check(r.stdout == b"response 0\nresponse 1\nresponse 2\n", "https pipeline %r" % r.stdout)

        step("--cacert with a missing file: exit 1, NBIO_ENOENT")
        r = get(nbio, ["--cacert", os.path.join(tmp, "nope.pem"), tls.base + "/text"])
        one_error_line(r, "missing CA file", "NBIO_ENOENT")
    finally:
        tls.close()


def test_usage(nbio, raw):
    cases = [([], "no URL"), (["ftp://x"], "ftp URL"), (["--bogus", raw.base + "/"], "unknown option"),
             (["-Z", raw.base + "/"], "unknown short option"), (["http://"], "no host"),
             (["http://127.0.0.1:99999/"], "port out of range"), (["-X"], "-X without a value"),
             (["-H", "NoColon", raw.base + "/"], "header without a colon"),
             (["-I", "-d", "x", raw.base + "/"], "-I with -d"),
             ([raw.base + "/", "not a url"], "a second URL that is malformed")]
    for args, what in cases:
        step("usage: %s -> exit 2" % what)
        r = get(nbio, args)
        check(r.returncode == 2, "%s: exit %d (want 2), stderr %r" % (what, r.returncode, r.stderr))
        check(r.stdout == b"" and r.stderr.startswith(b"nbio get: "),
              "%s: stdout %r, stderr %r" % (what, r.stdout, r.stderr))
    raw.reset()
    r = get(nbio, [raw.base + "/text", "ftp://x"])
    check(raw.log == [], "URLs are checked before any request is sent")

    step("--help: exit 0, lists the options")
    r = get(nbio, ["--help"])
    check(r.returncode == 0 and b"--pipeline" in r.stdout and b"--compressed" in r.stdout,
          "--help: exit %d %r" % (r.returncode, r.stdout[:200]))

    step("nbio demo: its HTTP step gets the responder's answer twice, on one connection")
    r = run_tool(nbio, ["demo"], timeout=60)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "demo: exit %d, stderr %r" % (r.returncode, r.stderr))
    http_part = out[out.find("HTTP: a GET"):]
    check(http_part.count("HTTP/1.1 200 OK") == 2 and
          "it reused the pooled connection" in http_part and
          "accepted 1 connection for 2 requests" in http_part and "MISMATCH" not in out,
          "demo's HTTP step: %r" % http_part)

    step("connection refused: exit 1, one line naming NBIO_ECONNREFUSED")
    port = free_port()
    r = get(nbio, ["http://127.0.0.1:%d/" % port])
    line = one_error_line(r, "refused", "NBIO_ECONNREFUSED")
    check(line == "nbio get: NBIO_ECONNREFUSED: connect 127.0.0.1:%d: connection refused" % port,
          "refused: %r" % line)


def test(nbio):
    tmp = tempfile.mkdtemp(prefix="nbio-get-")
    raw = RawServer(route)
    srv = None
    try:
        t0 = time.monotonic()
        srv, http_base = test_http_server(nbio, tmp)
        test_usage(nbio, raw)
        test_raw_edge_cases(nbio, raw, tmp)
        test_pipeline(nbio, raw)
        test_streaming(nbio, raw)
        test_split_everywhere(nbio, raw)
        test_curl_oracle(nbio, raw, http_base)
        test_https(nbio, tmp)
        check(raw.errors == [], "raw server errors: %r" % raw.errors)
        step("all done in %.1f s" % (time.monotonic() - t0))
    finally:
        raw.close()
        if srv is not None:
            srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(test, watchdog=60)
