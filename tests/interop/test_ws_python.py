"""WebSocket interop with Python's `websockets` (Debian python3-websockets):

- as a client of `nbio echo-server --framing ws` (with and without
  --ws-compress, the client offering permessage-deflate or not): text and
  binary messages of 0 B, 125 B, 126 B, 65,535 B, 65,536 B and 10 MB echoed
  byte-exact with their type; pings; close codes both ways (the client's
  close answered, the server's 1001 when it shuts down);
- as a server for `nbio ws`: lines out as text or binary messages, messages
  in printed, the same sizes, compression, subprotocol and headers, close
  1000 at the end of input, a server close with another code reported, a
  refused handshake reported as one NBIO_EPROTOCOL line, usage errors;
- raw-socket clients that break the protocol (an unmasked frame, an unknown
  opcode, invalid UTF-8 in a text message, a fragment without a start, an
  oversized control frame) get a close frame with 1002/1007 and the server
  logs one line for each; a request without an upgrade is refused.
"""
import asyncio
import base64
import hashlib
import http
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbio_interop import (EchoServer, TestFailure, check, connect, main, payload,  # noqa: E402
                          recv_exact, run_tool, step, _procs)

try:
    import websockets
    import websockets.exceptions
except ImportError:
    print("FAIL test_ws_python.py: the Python module 'websockets' is missing for %s "
          "(apt-get install python3-websockets; scripts/install-deps does it)" % sys.executable,
          file=sys.stderr)
    sys.exit(1)

MB10 = 10 * 1000 * 1000
SIZES = [0, 125, 126, 65535, 65536, MB10]
MAX_SIZE = 64 << 20
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def utf8_text(n, seed=0):
    """A str whose UTF-8 encoding is exactly n bytes (multi-byte characters
    included), without a newline."""
    unit = "h\u00e9llo w\u00f6rld \u2713 \U0001f600 %d " % seed  # 1-, 2-, 3- and 4-byte chars
    ub = unit.encode()
    reps = n // len(ub)
    s = unit * reps
    rest = n - reps * len(ub)
    s += "x" * rest
    assert len(s.encode()) == n
    return s


def binary_no_newline(n, seed=0):
    """Bytes of length n (all values but '\\n'), so a line holds one message."""
    return payload(n, seed).replace(b"\n", b"\x0b")


def deflate_agreed(ws):
    """True when permessage-deflate was negotiated on a websockets connection."""
    exts = getattr(ws, "extensions", None)
    if exts is None and hasattr(ws, "protocol"):
        exts = getattr(ws.protocol, "extensions", [])
    return any("deflate" in type(e).__name__.lower() or
               getattr(e, "name", "") == "permessage-deflate" for e in (exts or []))


def request_headers(ws):
    h = getattr(ws, "request_headers", None)
    if h is None and getattr(ws, "request", None) is not None:
        h = ws.request.headers
    return h


# ---- an asyncio loop in a thread, for servers and clients -------------------

class Loop:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


LOOP = None


# ---- part 1: websockets client against nbio echo-server --framing ws --------

async def client_echo_all(url, compression, want_deflate):
    async with websockets.connect(url, compression=compression, max_size=MAX_SIZE,
                                  ping_interval=None, open_timeout=10,
                                  close_timeout=10) as ws:
        check(deflate_agreed(ws) == want_deflate,
              "permessage-deflate agreed: %s, expected %s" % (deflate_agreed(ws), want_deflate))
        for n in SIZES:
            t = utf8_text(n, n)
            await ws.send(t)
            got = await asyncio.wait_for(ws.recv(), 30)
            check(isinstance(got, str), "a %d-byte text message came back as %s" % (n, type(got)))
            check(got == t, "a %d-byte text echo differs (got %d bytes)" % (n, len(got.encode())))
            b = payload(n, n + 1) if n != MB10 else os.urandom(n)  # also incompressible bytes
            await ws.send(b)
            got = await asyncio.wait_for(ws.recv(), 30)
            check(isinstance(got, bytes), "a %d-byte binary message came back as %s" % (n, type(got)))
            check(got == b, "a %d-byte binary echo differs" % n)
        # a burst: many messages in flight, echoes in order
        msgs = [payload(i * 37 % 3000, i) if i % 2 else utf8_text(i * 13 % 2000, i)
                for i in range(200)]
        for m in msgs:
            await ws.send(m)
        for i, m in enumerate(msgs):
            got = await asyncio.wait_for(ws.recv(), 30)
            check(got == m, "burst message %d differs" % i)
        # a ping is answered by the server session with a pong
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        # close with our code: the server answers the close
        await ws.close(code=4000, reason="client says bye")
        return ws.close_code, ws.close_reason


async def client_server_close(url):
    """Connects and waits for the server to close the connection."""
    ws = await websockets.connect(url, ping_interval=None, open_timeout=10, close_timeout=10)
    await ws.send("before shutdown")
    check(await asyncio.wait_for(ws.recv(), 10) == "before shutdown", "echo before shutdown")
    return ws


async def wait_closed(ws):
    try:
        await asyncio.wait_for(ws.recv(), 15)
    except websockets.exceptions.ConnectionClosed:
        pass
    else:
        raise TestFailure("a message arrived instead of the server's close")
    return ws.close_code, ws.close_reason


def test_python_client(nbio):
    for server_compress in (False, True):
        args = ["--framing", "ws", "--idle", "wait"] + (["--ws-compress"] if server_compress else [])
        srv = EchoServer(nbio, "127.0.0.1:0", *args)
        url = "ws://%s/any/path?x=1" % srv.addr
        for client_compress in (None, "deflate"):
            want = server_compress and client_compress == "deflate"
            t0 = time.monotonic()
            code, reason = LOOP.run(client_echo_all(url, client_compress, want), timeout=120)
            step("websockets client (compression=%s) -> echo-server%s: %d sizes text+binary, "
                 "burst of 200, ping, %.1f s; deflate agreed: %s"
                 % (client_compress, " --ws-compress" if server_compress else "", len(SIZES),
                    time.monotonic() - t0, want))
            check(code == 4000, "the server answered our close 4000 with %r %r" % (code, reason))
        check(srv.alive(), "echo-server died: %s" % srv.stderr())
        check(srv.stderr() == "", "echo-server logged for well-behaved clients: %r" % srv.stderr())
        # the server's own close: SIGTERM makes it close every client with 1001
        ws = LOOP.run(client_server_close(url))
        srv.proc.send_signal(15)
        code, reason = LOOP.run(wait_closed(ws), timeout=30)
        check(code == 1001, "the server's close on SIGTERM was %r %r, expected 1001" % (code, reason))
        st = srv.stop()
        check(st == 0, "echo-server exit status %r after SIGTERM" % st)
        step("echo-server%s SIGTERM: the client got close 1001 (%r), server exited 0"
             % (" --ws-compress" if server_compress else "", reason))


# ---- part 2: websockets server, nbio ws client --------------------------------

class PyWsServer:
    """A websockets server in the loop thread. mode: 'echo' (echo every
    message; record them), 'close4001' (close with 4001 after the first
    message), 'reject' (answer the handshake with 403)."""

    def __init__(self, compression="deflate", subprotocols=None, mode="echo"):
        self.received = []
        self.close_codes = []
        self.deflate = []
        self.subprotocols_seen = []
        self.headers_seen = []
        self.mode = mode
        self.errors = []

        async def handler(ws, path=None):
            try:
                self.deflate.append(deflate_agreed(ws))
                self.subprotocols_seen.append(ws.subprotocol)
                self.headers_seen.append(request_headers(ws))
                async for m in ws:
                    self.received.append(m)
                    if self.mode == "close4001":
                        await ws.close(4001, "go away")
                        break
                    await ws.send(m)
            except websockets.exceptions.ConnectionClosed:
                pass
            except BaseException as e:
                self.errors.append(e)
            finally:
                self.close_codes.append(ws.close_code)

        async def process_request(path, headers):
            if self.mode == "reject":
                return (http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"not you\n")
            return None

        async def start():
            return await websockets.serve(handler, "127.0.0.1", 0, compression=compression,
                                          max_size=MAX_SIZE, ping_interval=None,
                                          subprotocols=subprotocols, process_request=process_request)

        self.server = LOOP.run(start())
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = "ws://127.0.0.1:%d/chat?room=1" % self.port

    def wait_closes(self, n, timeout=10.0):
        """The close codes seen, once n connections ended (the handler runs
        its end a moment after the client is gone)."""
        deadline = time.monotonic() + timeout
        while len(self.close_codes) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.close_codes

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        LOOP.run(stop())


def nbio_ws(nbio, args, input_bytes, timeout=60):
    return run_tool(nbio, ["ws"] + args, input_bytes, timeout=timeout)


def test_nbio_client(nbio):
    for server_compression in ("deflate", None):
        for client_compress in (False, True):
            srv = PyWsServer(compression=server_compression)
            flags = ["--compress"] if client_compress else []
            want = client_compress and server_compression == "deflate"
            # text lines
            texts = [utf8_text(n, n) for n in SIZES]
            inp = "".join(t + "\n" for t in texts).encode()
            t0 = time.monotonic()
            r = nbio_ws(nbio, flags + [srv.url], inp)
            check(r.returncode == 0, "nbio ws exit %d, stderr %r" % (r.returncode, r.stderr))
            check(r.stderr == b"", "nbio ws wrote to stderr: %r" % r.stderr)
            check(r.stdout == inp, "nbio ws printed %d bytes, expected the %d echoed"
                  % (len(r.stdout), len(inp)))
            check(srv.received == texts, "the server received other text messages (%d of %d)"
                  % (len(srv.received), len(texts)))
            check(srv.deflate == [want], "deflate agreed %r, expected %s" % (srv.deflate, want))
            check(srv.wait_closes(1) == [1000], "the server saw close codes %r" % srv.close_codes)
            # binary lines
            srv.received.clear()
            srv.close_codes.clear()
            bins = [binary_no_newline(n, n) for n in SIZES]
            inp = b"".join(b + b"\n" for b in bins)
            r = nbio_ws(nbio, flags + ["--binary", srv.url], inp)
            check(r.returncode == 0, "nbio ws --binary exit %d, stderr %r" % (r.returncode, r.stderr))
            check(r.stdout == inp, "nbio ws --binary printed other bytes (%d vs %d)"
                  % (len(r.stdout), len(inp)))
            check(srv.received == bins, "the server received other binary messages")
            check(all(isinstance(m, bytes) for m in srv.received), "--binary sent text messages")
            check(srv.wait_closes(1) == [1000], "the server saw close codes %r" % srv.close_codes)
            check(not srv.errors, "server handler errors: %r" % srv.errors)
            step("nbio ws%s -> websockets server (compression=%s): %d sizes text and binary "
                 "byte-exact, close 1000, %.1f s; deflate agreed: %s"
                 % (" --compress" if client_compress else "", server_compression, len(SIZES),
                    time.monotonic() - t0, want))
            srv.close()

    # a last line without its newline is sent too; an empty input just closes
    srv = PyWsServer()
    r = nbio_ws(nbio, [srv.url], b"one\ntwo")
    check(r.returncode == 0 and r.stdout == b"one\ntwo\n", "last line without newline: %r %r"
          % (r.stdout, r.stderr))
    r = nbio_ws(nbio, [srv.url], b"")
    check(r.returncode == 0 and r.stdout == b"", "empty input: %r %r" % (r.stdout, r.stderr))
    check(srv.wait_closes(2)[-1:] == [1000], "empty input: close %r" % srv.close_codes)
    srv.close()
    step("nbio ws: a last line without newline, empty input: fine")

    # subprotocol and headers
    srv = PyWsServer(subprotocols=["chat.v2", "chat"])
    r = nbio_ws(nbio, ["--protocol", "chat", "-H", "X-Test: hello there", "--header=X-Other:2",
                       srv.url], b"hi\n")
    check(r.returncode == 0 and r.stdout == b"hi\n", "subprotocol run: %r %r" % (r.stdout, r.stderr))
    check(srv.subprotocols_seen == ["chat"], "subprotocol agreed: %r" % srv.subprotocols_seen)
    h = srv.headers_seen[0]
    check(h.get("X-Test") == "hello there" and h.get("X-Other") == "2",
          "handshake headers seen by the server: %r" % dict(h))
    srv.close()
    step("nbio ws --protocol chat -H ...: subprotocol 'chat' agreed, headers sent")

    # the server closes with 4001: reported, exit 1
    srv = PyWsServer(mode="close4001")
    p = subprocess.Popen([nbio, "ws", srv.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    _procs.append(p)
    p.stdin.write(b"hello\n")
    p.stdin.flush()
    try:
        out, err = p.communicate(timeout=20)  # stdin stays open until the process ended
    except subprocess.TimeoutExpired:
        p.kill()
        raise TestFailure("nbio ws did not end after the server's close 4001")
    check(p.returncode == 1, "server close 4001: exit %r, stderr %r" % (p.returncode, err))
    check(err == b"nbio ws: closed by peer: 4001 go away\n", "server close 4001: stderr %r" % err)
    srv.close()
    step("server close 4001 'go away': %r, exit 1" % err.decode().strip())

    # a refused handshake: one NBIO_EPROTOCOL line
    srv = PyWsServer(mode="reject")
    r = nbio_ws(nbio, [srv.url], b"hi\n", timeout=20)
    check(r.returncode == 1, "refused handshake: exit %r" % r.returncode)
    lines = r.stderr.decode().splitlines()
    check(len(lines) == 1 and lines[0].startswith("nbio ws: NBIO_EPROTOCOL: ") and "403" in lines[0],
          "refused handshake: stderr %r" % r.stderr)
    srv.close()
    step("refused handshake (403): %r" % lines[0])

    # not a WebSocket server at all: a plain HTTP answer
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def http_answer():
        c, _ = lsock.accept()
        c.settimeout(10)
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = c.recv(4096)
            if not b:
                break
            buf += b
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        c.close()
    t = threading.Thread(target=http_answer, daemon=True)
    t.start()
    r = nbio_ws(nbio, ["ws://127.0.0.1:%d/" % lsock.getsockname()[1]], b"", timeout=20)
    lines = r.stderr.decode().splitlines()
    check(r.returncode == 1 and len(lines) == 1 and lines[0].startswith("nbio ws: NBIO_EPROTOCOL: "),
          "a 200 answer to the upgrade: exit %r, stderr %r" % (r.returncode, r.stderr))
    lsock.close()
    step("a plain HTTP 200 answer: %r" % lines[0])

    # nothing listening: exit 1 with the connect error
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = nbio_ws(nbio, ["ws://127.0.0.1:%d/" % port], b"", timeout=20)
    check(r.returncode == 1 and r.stderr.startswith(b"nbio ws: NBIO_ECONNREFUSED"),
          "connection refused: %r %r" % (r.returncode, r.stderr))

    # usage errors
    for args in ([], ["http://127.0.0.1:1/"], ["--bogus", "ws://127.0.0.1:1/"],
                 ["ws://a/", "ws://b/"], ["--ping-interval", "x", "ws://127.0.0.1:1/"],
                 ["-H", "no colon", "ws://127.0.0.1:1/"],
                 ["-k", "--cacert", "x.pem", "wss://127.0.0.1:1/"]):
        r = nbio_ws(nbio, args, b"", timeout=10)
        check(r.returncode == 2, "nbio ws %r: exit %r (expected 2), stderr %r"
              % (args, r.returncode, r.stderr))
    r = nbio_ws(nbio, ["--help"], b"", timeout=10)
    check(r.returncode == 0 and b"Usage: nbio ws" in r.stdout, "nbio ws --help")
    step("usage errors exit 2, --help exits 0")


# ---- raw WebSocket frames -----------------------------------------------------

def raw_handshake(addr, path="/raw", extra=b""):
    s = connect(addr)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + addr.encode() +
              b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
              b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            raise TestFailure("the server closed during the handshake: %r" % head)
        head += b
    check(head.startswith(b"HTTP/1.1 101"), "handshake answer: %r" % head)
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    got = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
           if l.lower().startswith(b"sec-websocket-accept:")]
    check(got == [accept], "Sec-WebSocket-Accept missing or wrong in %r" % head)
    return s


def frame(opcode, data, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(data)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return hdr + data
    key = os.urandom(4)
    masked = bytes(c ^ key[i & 3] for i, c in enumerate(data))
    return hdr + key + masked


def read_frame(s):
    b0, b1 = recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", recv_exact(s, 2))
    elif n == 127:
        (n,) = struct.unpack("!Q", recv_exact(s, 8))
    check(not (b1 & 0x80), "the server sent a masked frame")
    data = recv_exact(s, n) if n else b""
    return bool(b0 & 0x80), b0 & 0x0F, data


def expect_close(s, codes, what):
    """Reads frames until a close; checks its code, then the end of stream."""
    s.settimeout(10)
    while True:
        try:
            fin, op, data = read_frame(s)
        except (TestFailure, ConnectionResetError) as e:
            raise TestFailure("%s: no close frame from the server (%s)" % (what, e))
        if op == 8:
            break
    check(len(data) >= 2, "%s: close frame without a code" % what)
    (code,) = struct.unpack("!H", data[:2])
    check(code in codes, "%s: close code %d (%r), expected %s" % (what, code, data[2:], codes))
    try:
        rest = s.recv(65536)
        check(rest == b"", "%s: bytes after the close frame: %r" % (what, rest))
    except ConnectionResetError:
        pass
    return code, data[2:].decode(errors="replace")


def wait_log_lines(srv, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = srv.stderr().splitlines()
        if len(lines) >= n:
            time.sleep(0.1)
            return srv.stderr().splitlines()
        time.sleep(0.02)
    return srv.stderr().splitlines()


def test_raw_clients(nbio):
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "ws", "--idle", "wait")
    # a well-behaved raw client: text echoed as text, ping answered by a pong,
    # a fragmented message reassembled, the close answered
    s = raw_handshake(srv.addr)
    s.sendall(frame(1, "h\u00e9".encode()))
    check(read_frame(s) == (True, 1, "h\u00e9".encode()), "raw text echo")
    s.sendall(frame(9, b"ping!"))
    check(read_frame(s) == (True, 10, b"ping!"), "a ping is answered with its payload")
    s.sendall(frame(2, b"frag", fin=False) + frame(9, b"mid") + frame(0, b"ments", fin=False) +
              frame(0, b"!", fin=True))
    got = [read_frame(s), read_frame(s)]
    check((True, 10, b"mid") in got and (True, 2, b"fragments!") in got,
          "fragments with a ping between them: %r" % got)
    s.sendall(frame(8, struct.pack("!H", 1000) + b"done"))
    code, _ = expect_close(s, (1000,), "clean close")
    s.close()
    step("raw client: text echo, ping -> pong, fragments reassembled (ping between), close 1000")
    check(srv.stderr() == "", "echo-server logged for a well-behaved raw client: %r" % srv.stderr())

    cases = [
        ("an unmasked frame", frame(1, b"hello", mask=False), (1002,)),
        ("an unknown opcode 3", frame(3, b"x"), (1002,)),
        ("invalid UTF-8 in a text message", frame(1, b"ok \xff\xfe bad"), (1007,)),
        ("a continuation without a start", frame(0, b"x"), (1002,)),
        ("a 200-byte ping", frame(9, b"p" * 200), (1002,)),
        ("a fragmented ping", frame(9, b"p", fin=False), (1002,)),
        ("RSV1 without an extension", frame(1, b"x", rsv=4), (1002,)),
        ("a close with code 1005", frame(8, struct.pack("!H", 1005)), (1002,)),
        ("invalid UTF-8 split across fragments", frame(1, b"\xe2\x82", fin=False) +
         frame(0, b"x", fin=True), (1007,)),
    ]
    lines_before = len(srv.stderr().splitlines())
    for i, (what, data, codes) in enumerate(cases):
        s = raw_handshake(srv.addr)
        s.sendall(frame(1, b"fine"))
        check(read_frame(s) == (True, 1, b"fine"), "%s: echo before" % what)
        s.sendall(data)
        code, reason = expect_close(s, codes, what)
        s.close()
        lines = wait_log_lines(srv, lines_before + i + 1)
        check(len(lines) == lines_before + i + 1,
              "%s: expected one more log line, got %r" % (what, lines[lines_before + i:]))
        line = lines[-1]
        check(line.startswith("nbio echo-server: dropped client #") and "NBIO_EPROTOCOL" in line,
              "%s: log line %r" % (what, line))
        step("%s: close %d %r; log: %s" % (what, code, reason, line))

    # not a WebSocket request: refused with a 4xx answer, one log line
    s = connect(srv.addr)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    ans = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            ans += b
    except ConnectionResetError:
        pass
    s.close()
    check(ans.startswith(b"HTTP/1.1 4"), "a plain GET: answer %r" % ans[:200])
    lines = wait_log_lines(srv, lines_before + len(cases) + 1)
    check(len(lines) == lines_before + len(cases) + 1 and "handshake" in lines[-1],
          "a plain GET: log %r" % lines[lines_before + len(cases):])
    step("a plain GET: %r; log: %s" % (ans.split(b"\r\n")[0].decode(), lines[-1]))

    # a message over --max-frame: 1009
    srv2 = EchoServer(nbio, "127.0.0.1:0", "--framing", "ws", "--max-frame", "1000")
    s = raw_handshake(srv2.addr)
    s.sendall(frame(2, b"x" * 1000))
    check(read_frame(s) == (True, 2, b"x" * 1000), "a message at --max-frame is echoed")
    s.sendall(frame(2, b"x" * 1001))
    code, _ = expect_close(s, (1009,), "a message over --max-frame")
    s.close()
    lines = wait_log_lines(srv2, 1)
    check(len(lines) == 1 and "NBIO_ETOOLARGE" in lines[0], "over --max-frame: log %r" % lines)
    step("a 1001-byte message with --max-frame 1000: close 1009; log: %s" % lines[0])
    check(srv.alive() and srv2.alive(), "an echo-server died")
    for x in (srv, srv2):
        check(x.stop() == 0, "echo-server exit status after SIGTERM")


# ---- nbio ws against nbio echo-server (ping interval, wss) ----------------------

def test_nbio_both(nbio):
    import tempfile
    from nbio_interop import make_self_signed
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "ws", "--ws-compress")
    inp = b"".join(utf8_text(n, n).encode() + b"\n" for n in SIZES)
    r = nbio_ws(nbio, ["--compress", "ws://%s/" % srv.addr], inp)
    check(r.returncode == 0 and r.stdout == inp, "nbio ws --compress -> echo-server --ws-compress: "
          "exit %r, %d bytes, stderr %r" % (r.returncode, len(r.stdout), r.stderr))
    step("nbio ws --compress -> nbio echo-server --ws-compress: every size byte-exact")
    srv.stop()
    # a raw server that counts pings: --ping-interval
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    pings = []

    def raw_server():
        c, _ = lsock.accept()
        c.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(1)
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-key:")][0]
        acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        while True:
            b0, b1 = recv_exact(c, 2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", recv_exact(c, 2))
            elif n == 127:
                (n,) = struct.unpack("!Q", recv_exact(c, 8))
            key = recv_exact(c, 4) if b1 & 0x80 else b""
            data = recv_exact(c, n) if n else b""
            if key:
                data = bytes(x ^ key[i & 3] for i, x in enumerate(data))
            op = b0 & 0x0F
            if op == 9:
                pings.append(time.monotonic())
                c.sendall(bytes([0x8A, len(data)]) + data)
            elif op == 8:
                c.sendall(bytes([0x88, len(data)]) + data)
                c.close()
                return
    t = threading.Thread(target=raw_server, daemon=True)
    t.start()
    p = subprocess.Popen([nbio, "ws", "--ping-interval", "100",
                          "ws://127.0.0.1:%d/" % lsock.getsockname()[1]],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _procs.append(p)
    time.sleep(1.0)
    out, err = p.communicate(b"", timeout=20)
    t.join(10)
    lsock.close()
    check(p.returncode == 0, "--ping-interval run: exit %r, %r" % (p.returncode, err))
    check(4 <= len(pings) <= 15, "--ping-interval 100 for about 1 s: %d pings" % len(pings))
    step("nbio ws --ping-interval 100, idle for 1 s: %d pings" % len(pings))
    # wss: TLS echo server, nbio ws verifying it with --cacert, -k
    with tempfile.TemporaryDirectory() as d:
        made = make_self_signed(d)
        if made is None:
            step("openssl not installed: wss not tested")
            return
        cert, key = made
        srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "ws", "--tls-cert", cert,
                         "--tls-key", key)
        url = "wss://%s/secure" % srv.addr
        r = nbio_ws(nbio, ["--cacert", cert, url], b"secret\n")
        check(r.returncode == 0 and r.stdout == b"secret\n", "wss --cacert: %r %r"
              % (r.returncode, r.stderr))
        r = nbio_ws(nbio, ["-k", "--binary", url], b"x\x00y\n")
        check(r.returncode == 0 and r.stdout == b"x\x00y\n", "wss -k: %r %r" % (r.returncode, r.stderr))
        r = nbio_ws(nbio, [url], b"secret\n")
        check(r.returncode == 1 and b"NBIO_ECERTVERIFY" in r.stderr, "wss, untrusted: %r %r"
              % (r.returncode, r.stderr))

        async def wss_client():
            import ssl
            ctx = ssl.create_default_context(cafile=cert)
            async with websockets.connect(url, ssl=ctx, max_size=MAX_SIZE, ping_interval=None) as ws:
                b = payload(65536)
                await ws.send(b)
                return await asyncio.wait_for(ws.recv(), 10) == b
        check(LOOP.run(wss_client()), "websockets wss client: echo differs")
        step("wss: nbio ws --cacert / -k, websockets over TLS: echoed; untrusted: NBIO_ECERTVERIFY")
        srv.stop()


def test(nbio):
    global LOOP
    LOOP = Loop()
    step("websockets %s" % websockets.__version__)
    test_raw_clients(nbio)
    test_python_client(nbio)
    test_nbio_client(nbio)
    test_nbio_both(nbio)


if __name__ == "__main__":
    main(test, watchdog=170)
