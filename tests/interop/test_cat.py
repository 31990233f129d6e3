#!/usr/bin/env python3
"""`nbio cat` against a Python echo server: raw bytes and --framing line,
exact output and exit status 0; a slow stdin does not stall reading; errors
go to stderr with a non-zero exit."""
import os
import socket
import struct
import subprocess
import time

from nbio_interop import (PyEchoServer, check, main, payload, read_line, run_tool, step,
                          _procs)


def test(nbio):
    srv = PyEchoServer()

    step("raw: text")
    r = run_tool(nbio, ["cat", srv.addr], b"hello world!\n")
    check(r.returncode == 0, "exit %d, stderr %r" % (r.returncode, r.stderr))
    check(r.stdout == b"hello world!\n", "output %r" % r.stdout)

    step("raw: 3 MB of binary data")
    data = payload(3 * 1000 * 1000, 5)
    r = run_tool(nbio, ["cat", srv.addr], data, timeout=60)
    check(r.returncode == 0, "exit %d, stderr %r" % (r.returncode, r.stderr))
    check(r.stdout == data, "output differs (%d bytes, want %d)" % (len(r.stdout), len(data)))

    step("raw: empty input")
    r = run_tool(nbio, ["cat", srv.addr], b"")
    check(r.returncode == 0 and r.stdout == b"", "exit %d, output %r" % (r.returncode, r.stdout))

    step("--framing line")
    inp = b"first\nsecond line\n\nlast without newline"
    r = run_tool(nbio, ["cat", "--framing", "line", srv.addr], inp)
    check(r.returncode == 0, "exit %d, stderr %r" % (r.returncode, r.stderr))
    check(r.stdout == b"first\nsecond line\n\nlast without newline\n", "output %r" % r.stdout)

    step("--framing line, many lines")
    lines = [b"line %d " % i + b"x" * (i % 300) for i in range(20000)]
    inp = b"\n".join(lines) + b"\n"
    r = run_tool(nbio, ["cat", "--framing=line", srv.addr], inp, timeout=60)
    check(r.returncode == 0, "exit %d, stderr %r" % (r.returncode, r.stderr))
    check(r.stdout == inp, "output differs")

    step("--framing u64: each line goes out as one u64 frame")
    wire = []
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(20)
    port = lsock.getsockname()[1]
    p = subprocess.Popen([nbio, "cat", "--framing", "u64", "127.0.0.1:%d" % port],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _procs.append(p)
    p.stdin.write(b"abc\n\nxyz\n")
    p.stdin.close()
    p.stdin = None
    c, _ = lsock.accept()
    c.settimeout(20)
    while True:
        b = c.recv(65536)
        if not b:
            break
        wire.append(b)
    got = b"".join(wire)
    want = b"".join(struct.pack("<Q", len(x)) + x for x in (b"abc", b"", b"xyz"))
    check(got == want, "wire bytes %r, want %r" % (got, want))
    c.sendall(struct.pack("<Q", 5) + b"reply")
    c.close()
    lsock.close()
    out, err = p.communicate(timeout=20)
    check(p.returncode == 0, "exit %d, stderr %r" % (p.returncode, err))
    check(out == b"reply\n", "output %r" % out)

    step("a slow stdin does not stall reading")
    greeter = PyEchoServer(greeting=b"welcome\n")
    p = subprocess.Popen([nbio, "cat", greeter.addr], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _procs.append(p)
    line = read_line(p.stdout, 10.0)
    check(line == b"welcome\n", "the greeting should arrive while stdin is idle, got %r" % line)
    p.stdin.write(b"later\n")
    p.stdin.flush()
    line = read_line(p.stdout, 10.0)
    check(line == b"later\n", "echo of a later input line, got %r" % line)
    p.stdin.close()
    p.stdin = None
    out, err = p.communicate(timeout=20)
    check(p.returncode == 0 and out == b"", "exit %d, rest %r, stderr %r" % (p.returncode, out, err))
    greeter.close()
    srv.close()

    step("connection refused: stderr and exit 1")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = run_tool(nbio, ["cat", "127.0.0.1:%d" % port], b"x")
    check(r.returncode == 1, "exit %d" % r.returncode)
    check(b"NBIO_ECONNREFUSED" in r.stderr and b"127.0.0.1:%d" % port in r.stderr,
          "stderr should name the error and the address: %r" % r.stderr)

    step("a peer that sends a truncated frame: exit 1")
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(20)
    p = subprocess.Popen([nbio, "cat", "--framing", "u64", "127.0.0.1:%d" % lsock.getsockname()[1]],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _procs.append(p)
    c, _ = lsock.accept()
    c.sendall(struct.pack("<Q", 10) + b"abc")
    c.close()
    lsock.close()
    out, err = p.communicate(b"", timeout=20)
    check(p.returncode == 1, "exit %d" % p.returncode)
    check(b"NBIO_ETRUNCATED" in err, "stderr %r" % err)

    step("usage errors: exit 2")
    for args in (["cat"], ["cat", "--bogus", "x:1"], ["cat", "--framing", "u7", "x:1"],
                 ["cat", "a:1", "b:2"], ["cat", "--max-frame", "0", "x:1"]):
        r = run_tool(nbio, args, b"")
        check(r.returncode == 2, "%r: exit %d" % (args, r.returncode))
        check(b"nbio cat:" in r.stderr, "%r: stderr %r" % (args, r.stderr))
    r = run_tool(nbio, ["cat", "--help"])
    check(r.returncode == 0 and b"Usage: nbio cat" in r.stdout, "--help")


if __name__ == "__main__":
    main(test)
