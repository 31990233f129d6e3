#!/usr/bin/env python3
"""echo-server exits 0 on SIGTERM and SIGINT, in both idle modes, idle or
with clients connected (also one whose echo is pending)."""
import signal
import time

from nbio_interop import (EchoServer, check, connect, main, payload, recv_exact, step,
                          u64_frame)


def test(nbio):
    for idle in ("spin", "wait"):
        for sig in (signal.SIGTERM, signal.SIGINT):
            name = signal.Signals(sig).name
            step("--idle %s, no clients, %s" % (idle, name))
            srv = EchoServer(nbio, "127.0.0.1:0", "--idle", idle)
            time.sleep(0.1)
            t0 = time.monotonic()
            rc = srv.stop(sig)
            check(rc == 0, "exit status %r after %s, stderr %r" % (rc, name, srv.stderr()))
            check(time.monotonic() - t0 < 3, "exit took too long")

            step("--idle %s, clients connected, %s" % (idle, name))
            srv = EchoServer(nbio, "127.0.0.1:0", "--idle", idle, "--framing", "u64")
            a = connect(srv.addr)
            a.sendall(b"abc")  # part of a frame header
            b = connect(srv.addr)
            b.sendall(u64_frame(b"ping"))
            check(recv_exact(b, 12) == u64_frame(b"ping"), "echo before the signal")
            c = connect(srv.addr)  # never reads: its echo goes pending
            c.setblocking(False)
            big = u64_frame(payload(200000, 3))
            off = 0
            for _ in range(200):
                try:
                    off += c.send(big[off % len(big):])
                except BlockingIOError:
                    break
            time.sleep(0.1)
            rc = srv.stop(sig)
            check(rc == 0, "exit status %r after %s, stderr %r" % (rc, name, srv.stderr()))
            for s in (a, b, c):
                s.close()


if __name__ == "__main__":
    main(test)
