#!/usr/bin/env python3
"""echo-server against hostile clients and a hostile environment.

In every case a well-behaved client (a thread doing one framed round trip
every few milliseconds, each echo checked byte for byte) must keep being
served while the attack goes on. Loopback only, ports from the server's
`listening on` line, every case bounded in time (its own alarm).

  1. stderr is a pipe nobody reads (and it is full from the start):
     2000 clients send a partial frame, then close, reset, or wait to be
     dropped by --idle-timeout 200; the server never blocks on its log.
  2. stderr's reader is gone (EPIPE/SIGPIPE on every log line): the server
     does not die.
  3. memory follows data: 20 connections announce 60 MiB u32 frames and go
     silent; the server's RSS grows by less than 20 MiB.
  4. slowloris: 300 clients trickle a frame one byte every 300 ms;
     --idle-timeout 1000 closes them all within ~3 s (not before 1 s); the
     good client's median round trip stays under 100 ms; the 300 drops are
     rate-limited on stderr, each one a line or part of a suppressed count.
  5. silent TLS clients (handshake done, then nothing / half a TLS record /
     half a frame) are dropped by --idle-timeout 500 within ~2 s.
  6. --max-clients 50: the 10 connections over the limit are closed at once,
     one stderr line each; the 50 are served; a freed slot is usable.
  7. SIGTERM with 100 clients with echoes in flight (and 4 sending 6 MB
     through a small window, so the server holds echoes it cannot write yet
     and input it has not read): each gets every echo, then EOF (no reset);
     exit 0 within 3 s. Then clients that keep their socket open after EOF:
     the 5 s grace period bounds the exit.
  8. after an attack mix (600 partial frames, 40 MiB held in partial
     frames, 1 MiB echoes), the server's descriptor count and RSS return near
     where they started (RSS not judged under a sanitizer).
  9. `nbio cat` with a malformed address exits 2 (usage).

Every case runs even when an earlier one failed; a summary lists them all.
A case is skipped (SKIP, not failed) only when a program it needs (openssl)
is missing.
"""
import fcntl
import os
import re
import selectors
import signal
import socket
import ssl
import struct
import sys
import tempfile
import termios
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbio_interop import (EchoServer, Pinger, RawEchoServer, TestFailure, check,  # noqa: E402
                          closed_state, connect, fd_count, main, make_self_signed, payload,
                          proc_status_kib, recv_u32_frame, recv_u64_frame,
                          recv_until_eof, rss_kib, run_tool, send_in_thread, step, u32_frame,
                          u64_frame, wait_all_closed)

MiB = 1024 * 1024

# Everything a case opened, cleaned up after it whatever happened.
_servers = []
_socks = []


class Skip(Exception):
    pass


def start(nbio, *args, stderr=None):
    if stderr is None:
        srv = EchoServer(nbio, "127.0.0.1:0", *args)
    else:
        srv = RawEchoServer(nbio, args, stderr)
    _servers.append(srv)
    return srv


def sock(addr, rcvbuf=None):
    if rcvbuf is None:
        s = connect(addr)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(20.0)
        host, _, port = addr.rpartition(":")
        s.connect((host, int(port)))
    _socks.append(s)
    return s


def reset_close(s):
    """Closes s with an RST (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def stderr_tail(srv, n=8):
    if not hasattr(srv, "stderr"):
        return "(stderr not captured)"
    lines = srv.stderr().splitlines()
    return "\n".join(lines[-n:]) + ("\n(%d lines in all)" % len(lines))


def stop_ok(srv, what):
    check(srv.alive(), "%s: the server died (status %r)" % (what, srv.proc.poll()))
    rc = srv.stop(signal.SIGTERM, timeout=10.0)
    check(rc == 0, "%s: exit status %r after SIGTERM" % (what, rc))


def partial_clients(addr, n, frame_hdr, connect_times=None):
    """n connections that each send a length header and a bit of the
    payload, never the whole frame."""
    out = []
    for _ in range(n):
        s = sock(addr)
        if connect_times is not None:
            connect_times[s] = time.monotonic()
        s.sendall(frame_hdr + b"p" * 10)
        out.append(s)
    return out


def sanitized(nbio):
    """True when nbio is built with a sanitizer runtime (ASan keeps freed
    memory in quarantine: its RSS says nothing about the server's own)."""
    with open(nbio, "rb") as f:
        data = f.read()
    return any(k in data for k in (b"__asan_init", b"__msan_init", b"__tsan_init"))


def pipe_fill(fd):
    """Bytes waiting in the pipe whose read end is fd."""
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


# ---- 1 --------------------------------------------------------------------

def case_stderr_unread(nbio):
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
        cap = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        # Fill the pipe before the server starts: its very first log line
        # finds it full. The descriptor it gets is blocking, as from a shell.
        os.set_blocking(w, False)
        for chunk in (512, 1):
            try:
                while True:
                    os.write(w, b"#" * chunk)
            except BlockingIOError:
                pass
        os.set_blocking(w, True)
        step("stderr pipe of %d bytes, %d already in it, never read" % (cap, pipe_fill(r)))
        srv = start(nbio, "--framing", "u64", "--idle", "wait", "--idle-timeout", "200",
                    stderr=w)
        os.close(w)
        w = -1
        good = Pinger(sock(srv.addr), "u64", interval=0.01)
        hdr = struct.pack("<Q", 100)
        dropped = 0
        t_attack = time.monotonic()
        for batch in range(8):
            times = {}
            socks = partial_clients(srv.addr, 250, hdr, times)
            waiting = []
            for i, s in enumerate(socks):
                if i % 3 == 0:
                    s.close()            # EOF in the middle of a frame
                elif i % 3 == 1:
                    reset_close(s)       # reset in the middle of a frame
                else:
                    waiting.append(s)    # silent: --idle-timeout drops it
            closed = wait_all_closed(waiting, 3.0)
            check(len(closed) == len(waiting),
                  "batch %d: %d of %d silent clients not dropped within 3 s "
                  "(--idle-timeout 200, stderr pipe full)"
                  % (batch, len(waiting) - len(closed), len(waiting)))
            early = [closed[s][0] - times[s] for s in waiting if closed[s][0] - times[s] < 0.18]
            check(not early, "batch %d: %d clients dropped before 200 ms of silence (%.0f ms)"
                  % (batch, len(early), min(early or [0]) * 1000))
            late = max(closed[s][0] - times[s] for s in waiting)
            dropped += len(waiting)
            for s in waiting:
                s.close()
            check(srv.alive(), "the server died during batch %d" % batch)
        step("2000 partial clients (%d dropped by the idle timeout) in %.1f s, latest drop "
             "%.0f ms after connect; %d bytes waiting in the stderr pipe"
             % (dropped, time.monotonic() - t_attack, late * 1000, pipe_fill(r)))
        good.check("2000 partial clients with stderr full", min_count=50)
        # Still serving, still timing clients out, after all that.
        s = sock(srv.addr)
        s.sendall(u64_frame(b"after"))
        check(recv_u64_frame(s) == b"after", "a new client's echo after the attack")
        s.close()
        late_one = partial_clients(srv.addr, 1, hdr)
        check(len(wait_all_closed(late_one, 2.0)) == 1,
              "a silent client after the attack was not dropped within 2 s")
        good.stop()
        stop_ok(srv, "stderr pipe full")
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)


# ---- 2 --------------------------------------------------------------------

def case_stderr_reader_gone(nbio):
    r, w = os.pipe()
    srv = start(nbio, "--framing", "u32", "--max-frame", "1K", "--idle-timeout", "300",
                stderr=w)
    os.close(w)
    os.close(r)  # nobody will ever read: each log write is EPIPE (SIGPIPE)
    good = Pinger(sock(srv.addr), "u32", interval=0.01, sizes=(1, 100, 1000, 0))
    for rnd in range(3):
        socks = []
        for i in range(30):
            s = sock(srv.addr)
            if i % 3 == 0:
                s.sendall(struct.pack(">I", 2000))            # over --max-frame
            elif i % 3 == 1:
                s.sendall(struct.pack(">I", 100) + b"x" * 5)  # then EOF mid-frame
                s.shutdown(socket.SHUT_WR)
            else:
                s.sendall(b"\x00\x00")                        # silent: idle drop
            socks.append(s)
        closed = wait_all_closed(socks, 3.0)
        check(len(closed) == len(socks), "round %d: %d of 30 bad clients not dropped in 3 s"
              % (rnd, 30 - len(closed)))
        for s in socks:
            s.close()
        check(srv.alive(), "round %d: the server died writing to a closed stderr (status %r)"
              % (rnd, srv.proc.poll()))
        time.sleep(0.6)  # let a rate-limit window pass: summary lines are written too
    step("90 bad clients dropped and logged to a pipe without a reader")
    good.check("logging to a pipe without a reader", min_count=50)
    good.stop()
    stop_ok(srv, "stderr reader gone")


# ---- 3 --------------------------------------------------------------------

def case_memory_follows_data(nbio):
    srv = start(nbio, "--framing", "u32", "--max-frame", "64M", "--idle", "wait")
    pid = srv.proc.pid
    good = Pinger(sock(srv.addr), "u32", interval=0.01)
    time.sleep(0.3)
    rss0, vm0 = rss_kib(pid), proc_status_kib(pid, "VmSize")
    hogs = []
    for i in range(20):
        s = sock(srv.addr)
        s.sendall(struct.pack(">I", 60 * MiB) + payload(1000, i))
        hogs.append(s)
    time.sleep(1.0)
    rss1, vm1 = rss_kib(pid), proc_status_kib(pid, "VmSize")
    step("20 x 60 MiB announced: VmRSS %d -> %d KiB (+%.1f MiB), VmSize +%.1f MiB"
         % (rss0, rss1, (rss1 - rss0) / 1024, (vm1 - vm0) / 1024))
    for i, s in enumerate(hogs):
        check(closed_state(s) is None, "hog %d (a legal frame in progress) was closed" % i)
    check(rss1 - rss0 < 20 * 1024, "RSS grew by %.1f MiB for 20 frames that only announced "
          "60 MiB each (want < 20 MiB)" % ((rss1 - rss0) / 1024))
    good.check("20 connections announcing 60 MiB", min_count=30)
    # The announced size was honoured: the rest of one frame is echoed whole.
    s = hogs[0]
    body = payload(60 * MiB, 0)
    t = send_in_thread(s, body[1000:])
    s.settimeout(30)
    check(recv_u32_frame(s) == body, "the 60 MiB frame completed later is echoed exactly")
    t.join(10)
    check(t.error is None, "sending the rest of the 60 MiB frame: %r" % t.error)
    for s in hogs:
        s.close()
    good.stop()
    stop_ok(srv, "memory follows data")


# ---- 4 --------------------------------------------------------------------

def case_slowloris(nbio):
    srv = start(nbio, "--framing", "u32", "--idle-timeout", "1000")
    good = Pinger(sock(srv.addr), "u32", interval=0.001, sizes=(1, 100, 3000))
    time.sleep(0.1)
    mark = good.mark()
    stream = struct.pack(">I", 1000) + payload(1000, 4)
    times, sent = {}, {}
    socks = []
    for _ in range(300):
        s = sock(srv.addr)
        times[s] = time.monotonic()
        sent[s] = 0
        socks.append(s)
    t0 = time.monotonic()
    step("300 slow clients connected in %.0f ms" % ((t0 - times[socks[0]]) * 1000))
    closed = {}
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    next_tick = t0
    deadline = t0 + 4.5
    while len(closed) < len(socks) and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_tick:
            for s in socks:
                if s in closed:
                    continue
                try:
                    s.send(stream[sent[s]:sent[s] + 1], socket.MSG_DONTWAIT)
                    sent[s] += 1
                except (BrokenPipeError, ConnectionResetError):
                    closed[s] = (time.monotonic(), "reset")
                    sel.unregister(s)
                except BlockingIOError:
                    pass
            next_tick += 0.3
        for key, _ in sel.select(max(0.0, min(next_tick - time.monotonic(), 0.05))):
            st = closed_state(key.fileobj)
            if st:
                closed[key.fileobj] = (time.monotonic(), st)
                sel.unregister(key.fileobj)
    sel.close()
    # The attack is over: judge the good client's round trips made during it.
    n_during = len(good.latencies) - mark
    check(len(closed) == len(socks), "%d of 300 slowloris clients still open after %.1f s "
          "(--idle-timeout 1000)" % (len(socks) - len(closed), deadline - t0))
    ages = sorted(closed[s][0] - times[s] for s in socks)
    resets = sum(1 for s in socks if closed[s][1] == "reset")
    step("slowloris clients closed %.0f..%.0f ms after connecting (%d by reset), after at "
         "most %d bytes each" % (ages[0] * 1000, ages[-1] * 1000, resets, max(sent.values())))
    check(ages[0] >= 0.9, "a slowloris client was closed after only %.0f ms (idle timeout "
          "1000 ms)" % (ages[0] * 1000))
    check(ages[-1] <= 3.0, "a slowloris client was closed only %.0f ms after connecting "
          "(want within ~3 s)" % (ages[-1] * 1000))
    check(n_during >= 100, "only %d round trips of the good client during the attack"
          % n_during)
    good.check("300 slowloris clients", since=mark, min_count=100, max_median=0.1)
    good.stop()
    for s in socks:
        s.close()
    stop_ok(srv, "slowloris")
    # 300 drops within a few ms: rate-limited, but every one is accounted for
    # (a line, or a count of suppressed lines) once the server has exited.
    err = srv.stderr()
    drops = sum(1 for ln in err.splitlines() if "dropped client" in ln)
    suppressed = sum(int(m) for m in re.findall(r"(\d+) log lines? suppressed", err))
    step("stderr: %d lines, %d of them drops, %d lines counted as suppressed"
         % (len(err.splitlines()), drops, suppressed))
    check(drops <= 25, "300 drops at once should be rate-limited, got %d lines" % drops)
    check(drops + suppressed >= 300, "300 clients dropped, but stderr shows %d drop lines and "
          "%d suppressed: the count of suppressed lines was never written (last lines:\n%s)"
          % (drops, suppressed, stderr_tail(srv, 3)))


# ---- 5 --------------------------------------------------------------------

def tls_handshake_raw(addr, ctx):
    """Completes a TLS handshake over a plain socket through memory BIOs, so
    raw bytes can be sent under the TLS layer afterwards."""
    s = sock(addr)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = out.read()
            if data:
                s.sendall(data)
            b = s.recv(65536)
            check(b, "the server closed during the TLS handshake")
            inc.write(b)
    data = out.read()
    if data:
        s.sendall(data)  # the client Finished (TLS 1.3)
    return s, obj, out


def case_silent_tls(nbio):
    with tempfile.TemporaryDirectory() as d:
        made = make_self_signed(d)
        if made is None:
            raise Skip("the openssl program is not installed")
        cert, key = made
        srv = start(nbio, "--framing", "u64", "--idle", "wait", "--idle-timeout", "500",
                    "--tls-cert", cert, "--tls-key", key)
        ctx = ssl.create_default_context(cafile=cert)
        g = ctx.wrap_socket(sock(srv.addr), server_hostname="127.0.0.1")
        _socks.append(g)
        good = Pinger(g, "u64", interval=0.01)
        kinds = ["silent", "half a TLS record", "half a frame inside TLS"]
        clients = []
        for kind in kinds:
            t = time.monotonic()
            s, obj, out = tls_handshake_raw(srv.addr, ctx)
            if kind == "half a TLS record":
                s.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(20))  # 20 of 64 bytes
            elif kind == "half a frame inside TLS":
                obj.write(struct.pack("<Q", 50) + b"abc")
                s.sendall(out.read())
            clients.append((kind, s, t))
        closed = wait_all_closed([s for _, s, _ in clients], 4.0)
        for kind, s, t in clients:
            check(s in closed, "TLS client (%s) not dropped within 4 s (--idle-timeout 500); "
                  "stderr:\n%s" % (kind, stderr_tail(srv)))
            age = closed[s][0] - t
            step("TLS client (%s): closed (%s) %.0f ms after connecting"
                 % (kind, closed[s][1], age * 1000))
            check(age <= 2.0, "TLS client (%s) dropped only after %.0f ms" % (kind, age * 1000))
            check(age >= 0.45, "TLS client (%s) dropped after only %.0f ms (idle timeout 500)"
                  % (kind, age * 1000))
        good.check("silent TLS clients", min_count=10)
        good.stop()
        print(stderr_tail(srv))
        stop_ok(srv, "silent TLS clients")


# ---- 6 --------------------------------------------------------------------

def echo_once(s, msg):
    s.sendall(u64_frame(msg))
    check(recv_u64_frame(s) == msg, "echo of %r" % msg)


def case_max_clients(nbio):
    srv = start(nbio, "--framing", "u64", "--idle", "wait", "--max-clients", "50")
    clients = []
    for i in range(50):
        s = sock(srv.addr)
        echo_once(s, b"client %d" % i)  # served: it counts, in this order
        clients.append(s)
    good = Pinger(clients[0], "u64", interval=0.01)
    err0 = srv.stderr()
    extras = []
    times = {}
    for _ in range(10):
        s = sock(srv.addr)
        times[s] = time.monotonic()
        extras.append(s)
    closed = wait_all_closed(extras, 3.0)
    check(len(closed) == 10, "%d of the 10 connections over --max-clients 50 were not closed "
          "within 3 s" % (10 - len(closed)))
    slow = max(closed[s][0] - times[s] for s in extras)
    kinds = sorted(set(c[1] for c in closed.values()))
    step("10 connections over the limit closed (%s), the slowest after %.0f ms"
         % ("/".join(kinds), slow * 1000))
    check(slow < 1.0, "a connection over the limit was closed only after %.0f ms" % (slow * 1000))
    time.sleep(0.3)
    new = srv.stderr()[len(err0):]
    print(new, end="")
    lines = new.splitlines()
    check(len(lines) == 10, "want one stderr line per refused connection (10), got %d: %r"
          % (len(lines), new))
    check(all(ln.startswith("nbio echo-server: ") for ln in lines),
          "stderr lines start with 'nbio echo-server: ': %r" % new)
    for i, s in enumerate(clients[1:], 1):
        echo_once(s, b"still %d" % i)
    good.check("10 connections over the limit", min_count=10)
    good.stop()  # closes clients[0]
    clients.pop(0)
    # A client that leaves frees its slot.
    last = clients.pop()
    last.shutdown(socket.SHUT_WR)
    check(recv_until_eof(last) == b"", "EOF after a half-close")
    last.close()
    time.sleep(0.2)
    s = sock(srv.addr)
    echo_once(s, b"took the free slot")
    clients.append(s)
    # Refused connections did not use up slots: after everyone leaves, 50 new
    # clients are served and the 51st is refused.
    for s in clients:
        s.shutdown(socket.SHUT_WR)
    for s in clients:
        s.settimeout(5)
        check(recv_until_eof(s) == b"", "EOF after a half-close")
        s.close()
    time.sleep(0.2)
    again = []
    for i in range(50):
        s = sock(srv.addr)
        echo_once(s, b"again %d" % i)
        again.append(s)
    s = sock(srv.addr)
    check(len(wait_all_closed([s], 2.0)) == 1, "the 51st client after a refill was not refused")
    for s in again:
        s.close()
    stop_ok(srv, "--max-clients 50")


# ---- 7 --------------------------------------------------------------------

def sigterm_run(nbio, n, lingering, max_exit, heavy=0):
    """n clients send frames and do not read; SIGTERM; then they read. Each
    must get every echo, then EOF, never a reset. Clients close on EOF except
    the `lingering` first ones, which keep their socket open. `heavy` more
    clients send 6 MB each through a small receive window: at the signal the
    server holds echoes it cannot write yet and input it has not read."""
    srv = start(nbio, "--framing", "u64")
    clients = []
    expect = {}
    for k in range(n):
        # Half read through a small window: their echoes back up in the server.
        s = sock(srv.addr, rcvbuf=8192 if k % 2 else None)
        echo_once(s, b"hello")  # accepted and served: a client of the server
        frames = [payload((k * 7919 + i * 104729) % 6000, i) for i in range(20)]
        expect[s] = b"".join(u64_frame(f) for f in frames)
        clients.append(s)
    for k in range(heavy):
        s = sock(srv.addr, rcvbuf=8192)
        echo_once(s, b"hello")
        expect[s] = b"".join(u64_frame(payload(60000, k + i)) for i in range(100))
        clients.append(s)
    senders = [send_in_thread(s, expect[s]) for s in clients[n:]]
    for s in clients[:n]:
        s.sendall(expect[s])  # all well under the server's receive buffer
    for t in senders:  # 6 MB fit in the kernel's buffers on loopback
        t.join(10)
        check(not t.is_alive() and t.error is None, "a heavy client could not send its 6 MB "
              "before the signal: %r" % t.error)
    # What the heavy clients' kernels still hold unsent (the server's window
    # is closed: it stopped reading them while their echoes are pending).
    unsent = [struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
              for s in clients[n:]]
    t_sig = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    got = {s: bytearray() for s in clients}
    done, resets = {}, {}
    t_exit = None
    sel = selectors.DefaultSelector()
    for s in clients:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    deadline = t_sig + 10
    while len(done) + len(resets) < len(clients) and time.monotonic() < deadline:
        for key, _ in sel.select(0.05):
            s = key.fileobj
            try:
                b = s.recv(1 << 20)
            except BlockingIOError:
                continue
            except ConnectionResetError as e:
                resets[s] = e
                sel.unregister(s)
                continue
            if b:
                got[s] += b
            else:
                done[s] = time.monotonic()
                sel.unregister(s)
                if clients.index(s) >= lingering:
                    s.close()
        if t_exit is None and srv.proc.poll() is not None:
            t_exit = time.monotonic()
    sel.close()
    while t_exit is None and time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            t_exit = time.monotonic()
        time.sleep(0.01)
    rc = srv.proc.poll()
    short = [i for i, s in enumerate(clients) if s in done and bytes(got[s]) != expect[s]]
    missing = [i for i, s in enumerate(clients) if s not in done and s not in resets]
    step("%d clients (%d keep their socket open after EOF, %d heavy), SIGTERM: %d got EOF, "
         "%d a reset, %d neither; %d with wrong echoes; exit status %r after %s"
         % (n, lingering, heavy, len(done), len(resets), len(missing), len(short), rc,
            "%.0f ms" % ((t_exit - t_sig) * 1000) if t_exit else "(still running)"))
    if heavy:
        step("at the signal the heavy clients still had %s bytes unsent in their kernel "
             "(sent by the program, not yet taken by the server)" % unsent)
    for s in list(resets) + [clients[i] for i in short]:
        step("client %d (connected %d of %d): got %d of %d bytes, then %s"
             % (clients.index(s), clients.index(s) + 1, len(clients), len(got[s]), len(expect[s]),
                "a reset" if s in resets else "EOF"))
    print(stderr_tail(srv))
    check(not resets, "%d clients got a connection reset instead of their echoes and EOF"
          % len(resets))
    check(not missing, "%d clients got no EOF within 10 s of SIGTERM" % len(missing))
    check(not short, "%d clients got EOF before all their echoes (or wrong bytes)" % len(short))
    check(rc == 0, "exit status %r after SIGTERM" % rc)
    check(t_exit - t_sig < max_exit, "the server took %.1f s to exit (want < %.1f s)"
          % (t_exit - t_sig, max_exit))


def case_sigterm_in_flight(nbio):
    # Clients that close once they have everything: the server is done fast.
    sigterm_run(nbio, 100, 0, 3.0, heavy=4)
    # Some keep their socket open: the 5 s grace period bounds the exit.
    sigterm_run(nbio, 10, 3, 6.5)


# ---- 8 --------------------------------------------------------------------

def case_fd_rss_return(nbio):
    srv = start(nbio, "--framing", "u32", "--idle", "wait", "--idle-timeout", "300")
    pid = srv.proc.pid
    good = Pinger(sock(srv.addr), "u32", interval=0.01)
    time.sleep(0.3)
    fd0, rss0 = fd_count(pid), rss_kib(pid)
    peak_fd = fd0
    hdr = struct.pack(">I", 100)
    # partial frames: EOF, reset, idle drop
    for batch in range(3):
        socks = partial_clients(srv.addr, 200, hdr)
        peak_fd = max(peak_fd, fd_count(pid))
        waiting = []
        for i, s in enumerate(socks):
            if i % 3 == 0:
                s.close()
            elif i % 3 == 1:
                reset_close(s)
            else:
                waiting.append(s)
        check(len(wait_all_closed(waiting, 3.0)) == len(waiting),
              "batch %d: silent clients not dropped within 3 s" % batch)
        for s in waiting:
            s.close()
    # big announcements with 2 MiB of data each (40 MiB held), dropped for idleness
    hogs = []
    for i in range(20):
        s = sock(srv.addr)
        s.sendall(struct.pack(">I", 60 * MiB) + payload(2 * MiB, i))
        hogs.append(s)
    time.sleep(0.1)
    rss_hogs = rss_kib(pid)
    check(len(wait_all_closed(hogs, 3.0)) == 20, "hogs not dropped within 3 s")
    for s in hogs:
        s.close()
    # real traffic: 20 clients echo 1 MiB frames, then leave
    movers = [sock(srv.addr) for _ in range(20)]
    body = payload(1 * MiB, 8)
    for s in movers:
        t = send_in_thread(s, u32_frame(body), shut_wr=True)
        check(recv_u32_frame(s) == body, "1 MiB echo")
        check(recv_until_eof(s) == b"", "EOF after the half-close")
        t.join(5)
        s.close()
    good.check("the attack mix", min_count=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and fd_count(pid) > fd0 + 2:
        time.sleep(0.05)
    fd1 = fd_count(pid)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and rss_kib(pid) > rss0 + 16 * 1024:
        time.sleep(0.1)
    rss1 = rss_kib(pid)
    step("descriptors %d at start, %d at the peak, %d after; VmRSS %d KiB at start, %d with "
         "40 MiB in partial frames, %d after (peak VmHWM %d KiB)"
         % (fd0, peak_fd, fd1, rss0, rss_hogs, rss1, proc_status_kib(pid, "VmHWM")))
    check(fd1 <= fd0 + 2, "the server holds %d descriptors after the attack, %d before"
          % (fd1, fd0))
    if sanitized(nbio):
        step("RSS not judged: nbio is built with a sanitizer (freed memory is quarantined)")
    else:
        check(rss1 - rss0 <= 16 * 1024, "RSS %.1f MiB above its start after the attack"
              % ((rss1 - rss0) / 1024))
    good.stop()
    stop_ok(srv, "descriptor/RSS return")


# ---- 9 --------------------------------------------------------------------

def case_cat_bad_address(nbio):
    for addr in ("127.0.0.1:65536", "127.0.0.1"):
        r = run_tool(nbio, ["cat", addr], b"", timeout=10)
        step("nbio cat %s: exit %d, stderr %r" % (addr, r.returncode, r.stderr.decode()))
        check(r.returncode == 2, "nbio cat %s: exit status %d, want 2 (usage)"
              % (addr, r.returncode))


CASES = [
    ("1 stderr pipe nobody reads", case_stderr_unread, 15),
    ("2 stderr reader gone", case_stderr_reader_gone, 10),
    ("3 memory follows data", case_memory_follows_data, 12),
    ("4 slowloris", case_slowloris, 10),
    ("5 silent TLS client", case_silent_tls, 10),
    ("6 --max-clients 50", case_max_clients, 10),
    ("7 SIGTERM with echoes in flight", case_sigterm_in_flight, 18),
    ("8 descriptors and RSS return", case_fd_rss_return, 12),
    ("9 nbio cat malformed address", case_cat_bad_address, 8),
]


class CaseTimeout(TestFailure):
    pass


def _case_alarm(signum, frame):
    raise CaseTimeout("the case took too long (its own alarm)")


def _cleanup():
    for s in _socks:
        try:
            s.close()
        except OSError:
            pass
    _socks.clear()
    for srv in _servers:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
    _servers.clear()


def test(nbio):
    only = os.environ.get("HOSTILE_CASES")  # e.g. "1,4" to run a subset by hand
    results = []
    old = signal.signal(signal.SIGALRM, _case_alarm)
    for name, fn, budget in CASES:
        if only and name.split()[0] not in only.split(","):
            continue
        step("== case %s" % name)
        t0 = time.monotonic()
        signal.alarm(budget)
        try:
            fn(nbio)
            verdict = "PASS"
        except Skip as e:
            verdict = "SKIP (%s)" % e
        except Exception as e:
            traceback.print_exc()
            for srv in _servers:
                if isinstance(srv, EchoServer):
                    print("server stderr (last lines):\n%s" % stderr_tail(srv, 15))
            verdict = "FAIL: %s" % e
        finally:
            signal.alarm(0)
            _cleanup()
        dt = time.monotonic() - t0
        print("%s case %s (%.1f s)" % (verdict.split(":")[0].split(" ")[0], name, dt),
              flush=True)
        results.append((name, verdict, dt))
    signal.signal(signal.SIGALRM, old)
    print("\nsummary:")
    for name, verdict, dt in results:
        print("  %-36s %5.1f s  %s" % (name, dt, verdict))
    failed = [name for name, verdict, _ in results if verdict.startswith("FAIL")]
    if failed:
        raise TestFailure("%d of %d cases failed: %s" % (len(failed), len(results),
                                                          "; ".join(failed)))


if __name__ == "__main__":
    main(test, watchdog=115)
