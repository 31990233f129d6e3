#!/usr/bin/env python3
"""2,000 connections to one `nbio echo-server` thread from one test process:
every connection gets its own frame echoed back exactly, in both idle
modes, while all of them stay open; then they all close and the server's
descriptors return to where they started."""
import resource
import selectors
import socket
import struct
import time

from nbio_interop import (EchoServer, check, fd_count, main, payload, split_addr, step,
                          u64_frame)

N = 2000


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def echo_all(addr, n, idle):
    family, sockaddr = split_addr(addr)
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(n):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(sockaddr)
        socks.append(s)
    want = {}
    got = {}
    sent = {}
    for i, s in enumerate(socks):
        want[s] = u64_frame(payload(10 + i % 90, i))
        got[s] = b""
        sent[s] = 0
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    done = 0
    while done < n and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1.0):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE and sent[s] < len(want[s]):
                try:
                    sent[s] += s.send(want[s][sent[s]:])
                except (BlockingIOError, InterruptedError):
                    pass
                if sent[s] == len(want[s]):
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                try:
                    b = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                check(b != b"", "%s: connection %d closed before its echo"
                      % (idle, socks.index(s)))
                got[s] += b
                if len(got[s]) >= len(want[s]):
                    check(got[s] == want[s], "%s: connection %d echoed wrong bytes"
                          % (idle, socks.index(s)))
                    sel.unregister(s)
                    done += 1
    check(done == n, "%s: %d of %d connections got their echo within 60 s" % (idle, done, n))
    return socks


def test(nbio):
    limit = raise_fd_limit(N + 200)
    n = min(N, limit - 100)
    check(n >= 500, "file descriptor limit %d too low for this test" % limit)
    for idle in ("wait", "spin"):
        srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "u64", "--idle", idle)
        fds0 = fd_count(srv.proc.pid)
        step("%d connections, one frame each, --idle %s" % (n, idle))
        socks = echo_all(srv.addr, n, idle)
        check(fd_count(srv.proc.pid) >= fds0 + n, "the server should hold every connection")
        step("a second frame on every connection, all still open")
        for i, s in enumerate(socks):
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(u64_frame(b"again %d" % i))
        for i, s in enumerate(socks):
            hdr = b""
            while len(hdr) < 8:
                hdr += s.recv(8 - len(hdr))
            (length,) = struct.unpack("<Q", hdr)
            body = b""
            while len(body) < length:
                body += s.recv(length - len(body))
            check(body == b"again %d" % i, "second echo on connection %d differs" % i)
        for s in socks:
            s.close()
        deadline = time.monotonic() + 20
        while fd_count(srv.proc.pid) > fds0 and time.monotonic() < deadline:
            time.sleep(0.05)
        check(fd_count(srv.proc.pid) <= fds0,
              "descriptors: %d after every client left, %d before" % (fd_count(srv.proc.pid), fds0))
        check(srv.stop() == 0, "exit status after SIGTERM")
        check(srv.stderr() == "", "no client misbehaved: %r" % srv.stderr()[:300])


if __name__ == "__main__":
    main(test)
