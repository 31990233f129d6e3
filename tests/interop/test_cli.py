#!/usr/bin/env python3
"""The nbio program's surface: --help for every subcommand, usage errors
(exit 2), listen failures (exit 1), and `nbio demo` (exit 0)."""
import socket

from nbio_interop import EchoServer, check, main, run_tool, step


def test(nbio):
    step("--help")
    r = run_tool(nbio, ["--help"])
    check(r.returncode == 0, "nbio --help exit %d" % r.returncode)
    for sub in (b"echo-server", b"cat", b"demo"):
        check(sub in r.stdout, "nbio --help lists %r" % sub)
    for sub in ("echo-server", "cat", "demo"):
        for flag in ("--help", "-h"):
            r = run_tool(nbio, [sub, flag])
            check(r.returncode == 0 and (b"Usage: nbio " + sub.encode()) in r.stdout,
                  "nbio %s %s: exit %d, %r" % (sub, flag, r.returncode, r.stdout))
    r = run_tool(nbio, ["--version"])
    check(r.returncode == 0 and r.stdout.startswith(b"nbio "), "--version")

    step("usage errors exit 2 with a message on stderr")
    for args in ([], ["frobnicate"], ["--bogus"],
                 ["echo-server"], ["echo-server", "--listen"],
                 ["echo-server", "--listen", "127.0.0.1:0", "--bogus"],
                 ["echo-server", "--listen", "127.0.0.1:0", "--framing", "u128"],
                 ["echo-server", "--listen", "127.0.0.1:0", "--idle", "sometimes"],
                 ["echo-server", "--listen", "127.0.0.1:0", "--max-frame", "lots"],
                 ["echo-server", "--listen", "127.0.0.1:0", "extra"],
                 ["demo", "--bogus"]):
        r = run_tool(nbio, args)
        check(r.returncode == 2, "nbio %r: exit %d, want 2" % (args, r.returncode))
        check(r.stderr != b"" and r.stdout == b"", "nbio %r: message on stderr only" % (args,))

    step("options as --name=value")
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing=u16", "--max-frame=64K", "--idle=wait")
    check(srv.stop() == 0, "exit status")

    step("a port in use: exit 1 with the reason")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    r = run_tool(nbio, ["echo-server", "--listen", "127.0.0.1:%d" % port])
    check(r.returncode == 1, "exit %d" % r.returncode)
    check(b"NBIO_EADDRINUSE" in r.stderr, "stderr %r" % r.stderr)
    s.close()
    r = run_tool(nbio, ["echo-server", "--listen", "not an address"])
    check(r.returncode == 1 and b"NBIO_EINVAL" in r.stderr, "bad address: %r" % r.stderr)

    step("nbio demo")
    r = run_tool(nbio, ["demo"], timeout=60)
    check(r.returncode == 0, "demo exit %d, stderr %r" % (r.returncode, r.stderr))
    out = r.stdout.decode()
    check("streaming TCP" in out and "framing TCP" in out, "demo output %r" % out)
    check('"hello world!"' in out and "steps worked" in out, "demo output %r" % out)
    check("FAIL" not in out and "MISMATCH" not in out, "demo output %r" % out)


if __name__ == "__main__":
    main(test)
