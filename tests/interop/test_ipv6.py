#!/usr/bin/env python3
"""IPv6 loopback: echo-server --listen [::1]:0 prints "listening on [::1]:PORT",
a Python AF_INET6 peer exchanges u64 frames, and `nbio cat [::1]:PORT`
works. Skipped (exit 77) when the machine has no IPv6 loopback."""
import socket
import sys

from nbio_interop import (EchoServer, PyEchoServer, check, connect, main, payload, recv_u64_frame,
                          run_tool, send_in_thread, step, u64_frame)


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def test(nbio):
    step("echo-server on [::1]:0")
    srv = EchoServer(nbio, "[::1]:0", "--framing", "u64")
    check(srv.addr.startswith("[::1]:") and not srv.addr.endswith(":0"),
          "listening on %r" % srv.addr)
    s = connect(srv.addr)
    check(s.family == socket.AF_INET6, "an IPv6 socket")
    frames = [payload(n, n) for n in (0, 5, 70000, 1000000)]
    t = send_in_thread(s, b"".join(u64_frame(f) for f in frames))
    for f in frames:
        check(recv_u64_frame(s) == f, "a %d-byte frame differs" % len(f))
    t.join(10)
    s.close()

    step("nbio cat [::1]:PORT to the nbio echo-server")
    r = run_tool(nbio, ["cat", "--framing", "u64", srv.addr], b"v6\n")
    check(r.returncode == 0 and r.stdout == b"v6\n", "exit %d, out %r, err %r"
          % (r.returncode, r.stdout, r.stderr))
    check(srv.stop() == 0, "exit status after SIGTERM")

    step("nbio cat [::1]:PORT to a Python echo server")
    py = PyEchoServer(socket.AF_INET6, ("::1", 0))
    r = run_tool(nbio, ["cat", py.addr], b"over ipv6")
    check(r.returncode == 0 and r.stdout == b"over ipv6", "exit %d, out %r, err %r"
          % (r.returncode, r.stdout, r.stderr))
    py.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and not have_ipv6():
        print("SKIP: no IPv6 loopback on this machine")
        sys.exit(77)
    main(test)
