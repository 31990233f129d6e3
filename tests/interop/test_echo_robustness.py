#!/usr/bin/env python3
"""echo-server robustness: while misbehaving clients send an oversized frame,
reset, or hit EOF in the middle of a frame, a well-behaved client keeps
getting exact echoes, each bad client is dropped with a line on stderr, and
the server stays up. Half-close: a client that shuts down its write side
gets every byte back, then EOF. Backpressure: a client that does not read
does not make the server buffer without bound."""
import socket
import struct
import time

from nbio_interop import (EchoServer, TestFailure, check, connect, expect_closed, main, payload,
                          recv_exact, recv_u64_frame, recv_until_eof, send_in_thread, step,
                          u64_frame)


class GoodClient:
    def __init__(self, addr):
        self.s = connect(addr)
        self.n = 0

    def roundtrip(self, what):
        for size in (0, 17, 5000, 70000):
            f = payload(size, self.n)
            self.n += 1
            self.s.sendall(u64_frame(f))
            got = recv_u64_frame(self.s)
            check(got == f, "good client, after %s: a %d-byte echo differs" % (what, size))


def wait_for_stderr(srv, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in srv.stderr():
            return
        time.sleep(0.02)
    raise TestFailure("stderr never mentioned %r; it holds %r" % (text, srv.stderr()))


def framed(nbio, idle):
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "u64", "--max-frame", "1M",
                     "--idle", idle)
    good = GoodClient(srv.addr)
    good.roundtrip("start")

    step("[%s] oversized frame header: dropped with NBIO_ETOOLARGE" % idle)
    bad = connect(srv.addr)
    bad.sendall(u64_frame(b"fine"))
    check(recv_u64_frame(bad) == b"fine", "the bad client is served until it misbehaves")
    bad.sendall(struct.pack("<Q", (1 << 20) + 1) + b"x" * 100)
    expect_closed(bad, "oversized frame")
    bad.close()
    wait_for_stderr(srv, "NBIO_ETOOLARGE")
    good.roundtrip("an oversized frame")

    step("[%s] a header claiming 2^63 bytes" % idle)
    bad = connect(srv.addr)
    bad.sendall(struct.pack("<Q", 1 << 63))
    expect_closed(bad, "huge length header")
    bad.close()
    good.roundtrip("a huge length header")

    step("[%s] reset in the middle of a frame: dropped with NBIO_ECONNRESET" % idle)
    bad = connect(srv.addr)
    bad.sendall(struct.pack("<Q", 1000) + b"y" * 10)
    time.sleep(0.1)
    bad.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    bad.close()  # RST
    wait_for_stderr(srv, "NBIO_ECONNRESET")
    good.roundtrip("a reset")

    step("[%s] EOF in the middle of a frame: dropped with NBIO_ETRUNCATED" % idle)
    bad = connect(srv.addr)
    bad.sendall(u64_frame(b"whole") + struct.pack("<Q", 1000) + b"z" * 10)
    check(recv_u64_frame(bad) == b"whole", "the whole frame before the cut is echoed")
    bad.shutdown(socket.SHUT_WR)
    expect_closed(bad, "EOF mid-frame")
    bad.close()
    wait_for_stderr(srv, "NBIO_ETRUNCATED")
    good.roundtrip("EOF mid-frame")

    step("[%s] EOF inside a length header" % idle)
    bad = connect(srv.addr)
    bad.sendall(b"\x01\x02\x03")
    bad.shutdown(socket.SHUT_WR)
    expect_closed(bad, "EOF inside a header")
    bad.close()
    good.roundtrip("EOF inside a header")

    err = srv.stderr()
    print(err, end="")
    for line in err.splitlines():
        check(line.startswith("nbio echo-server: dropped client #"),
              "stderr lines name the client: %r" % line)
    check("127.0.0.1:" in err, "stderr names the client's address: %r" % err)
    check(len(err.splitlines()) == 5, "one line per bad client: %r" % err)

    step("[%s] half-close: every frame echoed, then EOF" % idle)
    s = connect(srv.addr)
    frames = [payload(n, n) for n in (0, 1, 1000, 500000, 0, 3, 1000000)] * 3
    sender = send_in_thread(s, b"".join(u64_frame(f) for f in frames), shut_wr=True)
    for i, f in enumerate(frames):
        check(recv_u64_frame(s) == f, "half-close: frame %d differs" % i)
    sender.join(20)
    check(sender.error is None, "sending failed: %r" % sender.error)
    s.settimeout(10)
    check(s.recv(1) == b"", "EOF expected after the last echo")
    s.close()

    step("[%s] a client that never reads: the server stops reading it (bounded)" % idle)
    hog = connect(srv.addr)
    hog.setblocking(False)
    sent = 0
    chunk = u64_frame(payload(60000, 1))
    off = 0  # frames must stay whole: resume inside the current chunk
    blocked_since = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            n = hog.send(chunk[off:])
            sent += n
            off = (off + n) % len(chunk)
            blocked_since = None
        except BlockingIOError:
            now = time.monotonic()
            if blocked_since is None:
                blocked_since = now
            elif now - blocked_since > 0.5:
                break  # blocked for a while: the server stopped reading us
            time.sleep(0.02)
    check(sent < 200 * 1000 * 1000, "the server kept reading a client that does not read")
    good.roundtrip("a client that does not read")
    check("dropped" not in srv.stderr().splitlines()[-1] or len(srv.stderr().splitlines()) == 5,
          "the slow reader must not be dropped: %r" % srv.stderr())
    hog.close()

    good.roundtrip("the end")
    good.s.close()
    check(srv.alive(), "the server died")
    check(srv.stop() == 0, "exit status after SIGTERM")


def raw(nbio):
    srv = EchoServer(nbio, "127.0.0.1:0")
    step("raw: half-close with 4 MB in flight: every byte back, then EOF")
    s = connect(srv.addr)
    data = payload(4 * 1000 * 1000, 7)
    sender = send_in_thread(s, data, shut_wr=True)
    got = recv_until_eof(s)
    sender.join(20)
    check(sender.error is None, "sending failed: %r" % sender.error)
    check(got == data, "echoed %d bytes, want %d identical" % (len(got), len(data)))
    s.close()

    step("raw: a client that connects and closes at once")
    for _ in range(20):
        s = connect(srv.addr)
        s.close()
    s = connect(srv.addr)
    s.sendall(b"still here")
    check(recv_exact(s, 10) == b"still here", "echo after quick closes")
    s.shutdown(socket.SHUT_WR)
    check(recv_until_eof(s) == b"", "EOF after the half-close")
    s.close()
    check(srv.stop() == 0, "exit status after SIGTERM")
    check(srv.stderr() == "", "clean closes are not errors: %r" % srv.stderr())


def test(nbio):
    framed(nbio, "spin")
    framed(nbio, "wait")
    raw(nbio)


if __name__ == "__main__":
    main(test, watchdog=150)
