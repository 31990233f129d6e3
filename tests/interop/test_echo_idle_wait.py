#!/usr/bin/env python3
"""echo-server --idle wait: serves clients exactly like spin mode, and sleeps
(almost no CPU time) while nothing happens."""
import os
import threading
import time

from nbio_interop import (EchoServer, check, connect, main, payload, recv_exact,
                          recv_u64_frame, send_in_thread, step, u64_frame)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def test(nbio):
    srv = EchoServer(nbio, "127.0.0.1:0", "--idle", "wait", "--framing", "u64")

    step("frames of varied sizes, several clients at once")
    errors = []

    def client(k):
        try:
            s = connect(srv.addr)
            frames = [payload((k * 7919 + i * 104729) % 200000, i) for i in range(40)]
            frames += [b"", payload(1000000, k)]
            t = send_in_thread(s, b"".join(u64_frame(f) for f in frames))
            for i, f in enumerate(frames):
                check(recv_u64_frame(s) == f, "client %d frame %d differs" % (k, i))
            t.join(20)
            s.close()
        except BaseException as e:
            errors.append(e)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, "a client failed: %r" % errors[:1])

    step("idle with a client connected: the server sleeps")
    idle_client = connect(srv.addr)
    idle_client.sendall(b"\x05\x00")  # half a header: a frame in progress
    time.sleep(0.2)
    before = cpu_seconds(srv.proc.pid)
    time.sleep(1.5)
    used = cpu_seconds(srv.proc.pid) - before
    check(used < 0.5, "--idle wait used %.2f s of CPU in 1.5 s of idleness" % used)
    idle_client.sendall(b"\x00\x00\x00\x00\x00\x00hello")
    check(recv_exact(idle_client, 13) == u64_frame(b"hello"), "wakes up for data")
    idle_client.close()

    check(srv.stop() == 0, "exit status after SIGTERM")
    check(srv.stderr() == "", "stderr %r" % srv.stderr())


if __name__ == "__main__":
    main(test)
