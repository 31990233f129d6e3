#!/usr/bin/env python3
"""Unix-domain sockets: echo-server --listen PATH with a Python AF_UNIX peer
(u64 frames), `nbio cat PATH` against a Python Unix echo server, and the
socket file removed when the server exits."""
import os
import shutil
import socket
import tempfile

from nbio_interop import (EchoServer, PyEchoServer, check, connect, main, payload, recv_u64_frame,
                          run_tool, send_in_thread, step, u64_frame)


def test(nbio):
    d = tempfile.mkdtemp(prefix="nbio-interop-")
    try:
        path = os.path.join(d, "echo.sock")
        step("echo-server on %s" % path)
        srv = EchoServer(nbio, path, "--framing", "u64")
        check(srv.addr == path, "listening on %r, want %r" % (srv.addr, path))
        s = connect(path)
        check(s.family == socket.AF_UNIX, "a Unix socket")
        frames = [payload(n, n) for n in (0, 1, 100, 65536, 1000000, 0)]
        t = send_in_thread(s, b"".join(u64_frame(f) for f in frames), shut_wr=True)
        for f in frames:
            check(recv_u64_frame(s) == f, "a %d-byte frame differs" % len(f))
        check(s.recv(1) == b"", "EOF after the half-close")
        t.join(10)
        s.close()

        step("nbio cat to the nbio echo-server over the Unix socket")
        r = run_tool(nbio, ["cat", "--framing", "u64", path], b"one\ntwo\n")
        check(r.returncode == 0, "exit %d, stderr %r" % (r.returncode, r.stderr))
        check(r.stdout == b"one\ntwo\n", "output %r" % r.stdout)

        step("a second listener on the same path fails with exit 1")
        r = run_tool(nbio, ["echo-server", "--listen", path])
        check(r.returncode == 1, "exit %d" % r.returncode)
        check(b"NBIO_EADDRINUSE" in r.stderr, "stderr %r" % r.stderr)

        check(srv.stop() == 0, "exit status after SIGTERM")
        check(not os.path.exists(path), "the socket file should be removed at exit")

        step("nbio cat to a Python Unix echo server")
        py_path = os.path.join(d, "py.sock")
        py = PyEchoServer(socket.AF_UNIX, py_path)
        data = payload(300000, 2)
        r = run_tool(nbio, ["cat", py_path], data)
        check(r.returncode == 0, "exit %d, stderr %r" % (r.returncode, r.stderr))
        check(r.stdout == data, "output differs")
        r = run_tool(nbio, ["cat", "--framing", "line", py_path], b"a\nb")
        check(r.returncode == 0 and r.stdout == b"a\nb\n", "line output %r" % r.stdout)
        py.close()

        step("nbio cat to a missing socket: exit 1")
        r = run_tool(nbio, ["cat", os.path.join(d, "missing.sock")], b"")
        check(r.returncode == 1 and b"NBIO_E" in r.stderr, "exit %d, %r" % (r.returncode, r.stderr))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main(test)
