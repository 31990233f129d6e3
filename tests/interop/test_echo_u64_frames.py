#!/usr/bin/env python3
"""A Python peer (plain socket) exchanges u64-LE frames with
`nbio echo-server --framing u64`: many frames of varied sizes, including
empty ones and ~1 MB ones; every echoed frame must match exactly. Also
several clients at once, and the u32/u16/line framings."""
import random
import socket
import struct
import threading

from nbio_interop import (EchoServer, check, connect, main, payload, recv_exact,
                          recv_u64_frame, send_in_thread, step, u64_frame)


def frame_sizes():
    rnd = random.Random(1234)
    sizes = [0, 1, 2, 7, 8, 9, 0, 255, 256, 4095, 4096, 4097, 65535, 65536, 65537, 0,
             1000000, 3, 1048576, 0, 131072 + 5]
    sizes += [rnd.randrange(0, 20000) for _ in range(300)]
    sizes += [0] * 20 + [rnd.randrange(0, 2000000) for _ in range(3)]
    return sizes


def exchange(addr, sizes, seed):
    s = connect(addr)
    frames = [payload(n, seed + i) for i, n in enumerate(sizes)]
    sender = send_in_thread(s, b"".join(u64_frame(f) for f in frames))
    for i, f in enumerate(frames):
        got = recv_u64_frame(s)
        check(got == f, "frame %d (%d bytes): echoed %d bytes that differ"
              % (i, len(f), len(got)))
    sender.join(30)
    check(sender.error is None, "sending failed: %r" % sender.error)
    s.close()


def test(nbio):
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "u64")
    check(srv.addr.startswith("127.0.0.1:") and not srv.addr.endswith(":0"),
          "the real port should be printed, got %r" % srv.addr)

    step("one client, %d frames of 0 B .. 2 MB" % len(frame_sizes()))
    exchange(srv.addr, frame_sizes(), 0)

    step("frames sent one at a time, byte by byte for the header")
    s = connect(srv.addr)
    for n in (0, 5, 70000):
        f = payload(n, 9)
        data = u64_frame(f)
        for k in range(8):
            s.sendall(data[k:k + 1])
        s.sendall(data[8:])
        check(recv_u64_frame(s) == f, "byte-by-byte frame of %d bytes differs" % n)
    s.close()

    step("8 clients at once")
    errors = []

    def client(k):
        try:
            rnd = random.Random(k)
            exchange(srv.addr, [rnd.randrange(0, 100000) for _ in range(60)] + [0, 1000000], k)
        except BaseException as e:
            errors.append(e)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, "a concurrent client failed: %r" % errors[:1])
    check(srv.alive(), "the server died")
    check(srv.stop() == 0, "echo-server should exit 0 on SIGTERM")
    check(srv.stderr() == "", "no client misbehaved, stderr should be empty: %r" % srv.stderr())

    step("u32 (big-endian) framing")
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "u32")
    s = connect(srv.addr)
    frames = [payload(n, 3) for n in (0, 1, 300, 70000, 1000000)]
    t = send_in_thread(s, b"".join(struct.pack(">I", len(f)) + f for f in frames))
    for f in frames:
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        check(recv_exact(s, n) == f, "u32 frame of %d bytes differs" % len(f))
    t.join(10)
    s.close()
    check(srv.stop() == 0, "exit status after SIGTERM")

    step("u16 (big-endian) framing")
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "u16")
    s = connect(srv.addr)
    frames = [payload(n, 4) for n in (0, 1, 300, 65535, 2)]
    t = send_in_thread(s, b"".join(struct.pack(">H", len(f)) + f for f in frames))
    for f in frames:
        (n,) = struct.unpack(">H", recv_exact(s, 2))
        check(recv_exact(s, n) == f, "u16 frame of %d bytes differs" % len(f))
    t.join(10)
    s.close()
    check(srv.stop() == 0, "exit status after SIGTERM")

    step("line framing")
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "line")
    s = connect(srv.addr)
    lines = [b"", b"hello", b"x" * 100000, b"\x00\x01 binary \xff", b""]
    data = b"".join(line + b"\n" for line in lines)
    t = send_in_thread(s, data)
    check(recv_exact(s, len(data)) == data, "line echo differs")
    t.join(10)
    s.shutdown(socket.SHUT_WR)
    check(s.recv(10) == b"", "EOF expected after the half-close")
    s.close()
    check(srv.stop() == 0, "exit status after SIGTERM")


if __name__ == "__main__":
    main(test)
