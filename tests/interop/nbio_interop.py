"""Helpers shared by the interop tests (standard library only).

Every test script takes the path of the `nbio` binary as its first argument.
Everything is bounded in time: a watchdog alarm ends a stuck test, sockets
have timeouts, and every subprocess started here is killed at exit.
"""
import atexit
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SOCK_TIMEOUT = 20.0
_procs = []


class TestFailure(Exception):
    pass


def check(cond, message):
    """Fails the test with message when cond is false."""
    if not cond:
        raise TestFailure(message)


def _kill_all():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_all)


def _on_alarm(signum, frame):
    raise TestFailure("watchdog: the test took too long")


def main(test, watchdog=90):
    """Runs test(nbio_path) with a watchdog; prints PASS/FAIL and exits."""
    if len(sys.argv) < 2:
        print("usage: %s PATH/TO/nbio" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    nbio = os.path.abspath(sys.argv[1])
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(watchdog)
    name = os.path.basename(sys.argv[0])
    try:
        test(nbio)
    except SystemExit:
        raise
    except BaseException as e:  # report every failure the same way
        signal.alarm(0)
        _kill_all()
        import traceback
        traceback.print_exc()
        print("FAIL %s: %s" % (name, e), file=sys.stderr)
        sys.exit(1)
    signal.alarm(0)
    _kill_all()
    print("PASS %s" % name)
    sys.exit(0)


def step(msg):
    print("--", msg, flush=True)


class EchoServer:
    """`nbio echo-server` as a subprocess; stderr goes to a temporary file."""

    def __init__(self, nbio, listen="127.0.0.1:0", *args):
        self.err = tempfile.TemporaryFile()
        cmd = [nbio, "echo-server", "--listen", listen] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err)
        _procs.append(self.proc)
        line = read_line(self.proc.stdout, 20.0)
        check(line.startswith(b"listening on "),
              "echo-server's first line should be 'listening on ADDR', got %r (stderr: %r)"
              % (line, self.stderr()))
        self.addr = line[len(b"listening on "):].strip().decode()

    def stderr(self):
        # pread: the server shares this file offset, so never move it
        fd = self.err.fileno()
        out = b""
        while True:
            b = os.pread(fd, 65536, len(out))
            if not b:
                return out.decode(errors="replace")
            out += b

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends sig and returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure("echo-server did not exit within %.0f s of signal %d"
                              % (timeout, sig))


def read_line(pipe, timeout):
    """Reads one line from a pipe, waiting at most timeout seconds."""
    fd = pipe.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        b = os.read(fd, 1)
        if not b:
            break
        buf += b
    return buf


def split_addr(addr):
    """'127.0.0.1:5' -> (AF_INET, ('127.0.0.1', 5)); '[::1]:5' -> AF_INET6;
    a path -> AF_UNIX."""
    if "/" in addr:
        return socket.AF_UNIX, addr
    host, _, port = addr.rpartition(":")
    if host.startswith("["):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))


def connect(addr):
    family, sa = split_addr(addr)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(SOCK_TIMEOUT)
    s.connect(sa)
    return s


def recv_exact(s, n):
    out = bytearray()
    while len(out) < n:
        b = s.recv(min(n - len(out), 1 << 20))
        if not b:
            raise TestFailure("connection closed after %d of %d bytes" % (len(out), n))
        out += b
    return bytes(out)


def recv_until_eof(s):
    out = bytearray()
    while True:
        b = s.recv(1 << 20)
        if not b:
            return bytes(out)
        out += b


def u64_frame(payload):
    return struct.pack("<Q", len(payload)) + payload


def recv_u64_frame(s):
    (n,) = struct.unpack("<Q", recv_exact(s, 8))
    return recv_exact(s, n)


def payload(n, seed=0):
    """Deterministic, non-repeating-looking bytes of length n."""
    block = bytes((i * 131 + seed * 17 + (i >> 8)) & 0xFF for i in range(4096))
    return (block * (n // 4096 + 1))[:n]


def send_in_thread(s, data, shut_wr=False):
    """Sends data from a thread (so the caller can read at the same time);
    returns the thread; .error holds an exception if sending failed."""
    def run():
        try:
            s.sendall(data)
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
        except BaseException as e:
            t.error = e
    t = threading.Thread(target=run, daemon=True)
    t.error = None
    t.start()
    return t


def expect_closed(s, what, timeout=10.0):
    """Asserts the peer closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return
    except ConnectionResetError:
        return
    except socket.timeout:
        raise TestFailure("%s: the server did not close the connection" % what)


def run_tool(nbio, args, input_bytes=b"", timeout=30.0):
    """Runs `nbio ARGS` with input; returns CompletedProcess (bytes)."""
    p = subprocess.Popen([nbio] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    _procs.append(p)
    try:
        out, err = p.communicate(input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise TestFailure("nbio %s did not finish within %.0f s (stderr: %r)"
                          % (" ".join(args), timeout, err))
    return subprocess.CompletedProcess(args, p.returncode, out, err)


class PyEchoServer:
    """A plain-socket echo server in a thread (one thread per client): echoes
    bytes, and on the client's half-close finishes echoing and closes."""

    def __init__(self, family=socket.AF_INET, addr=("127.0.0.1", 0), greeting=b""):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family != socket.AF_UNIX:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.greeting = greeting
        self.stopping = False
        self.errors = []
        if family == socket.AF_UNIX:
            self.addr = addr
        elif family == socket.AF_INET6:
            self.addr = "[%s]:%d" % self.sock.getsockname()[:2]
        else:
            self.addr = "%s:%d" % self.sock.getsockname()[:2]
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(SOCK_TIMEOUT)
            if self.greeting:
                c.sendall(self.greeting)
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        except BaseException as e:
            self.errors.append(e)
        finally:
            c.close()

    def close(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(5)


# ---- helpers for hostile-client tests (test_echo_hostile.py) ----------------

def u32_frame(payload):
    """4-byte big-endian length, then the payload."""
    return struct.pack(">I", len(payload)) + payload


def recv_u32_frame(s):
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    return recv_exact(s, n)


FRAMERS = {"u32": (u32_frame, recv_u32_frame), "u64": (u64_frame, recv_u64_frame)}


def proc_status_kib(pid, field):
    """A 'kB' field of /proc/PID/status (VmRSS, VmSize, VmHWM) in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise TestFailure("no %s in /proc/%d/status" % (field, pid))


def rss_kib(pid):
    return proc_status_kib(pid, "VmRSS")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class RawEchoServer:
    """`nbio echo-server` with a caller-chosen stderr (a pipe nobody reads, a
    pipe whose reader is gone, ...); same interface as EchoServer apart from
    stderr()."""

    def __init__(self, nbio, args, stderr):
        cmd = [nbio, "echo-server", "--listen", "127.0.0.1:0"] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=stderr)
        _procs.append(self.proc)
        line = read_line(self.proc.stdout, 20.0)
        check(line.startswith(b"listening on "),
              "echo-server's first line should be 'listening on ADDR', got %r" % line)
        self.addr = line[len(b"listening on "):].strip().decode()

    alive = EchoServer.alive
    stop = EchoServer.stop


class Pinger:
    """A well-behaved framed client in a thread: one round trip every
    `interval` seconds, each echo checked byte for byte, latencies kept.
    Often enough to never trip an idle timeout longer than a few intervals."""

    def __init__(self, sock, framing="u64", interval=0.01, sizes=(1, 100, 3000, 0, 20000)):
        self.s = sock
        self.frame, self.recv_frame = FRAMERS[framing]
        self.interval = interval
        self.sizes = sizes
        self.latencies = []
        self.error = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        try:
            while not self._stop.is_set():
                f = payload(self.sizes[n % len(self.sizes)], n)
                t0 = time.monotonic()
                self.s.sendall(self.frame(f))
                got = self.recv_frame(self.s)
                self.latencies.append(time.monotonic() - t0)
                if got != f:
                    raise TestFailure("round trip %d: a %d-byte echo differs" % (n, len(f)))
                n += 1
                self._stop.wait(self.interval)
        except BaseException as e:
            self.error = e

    def mark(self):
        """Index to pass to check() to judge only the round trips after now."""
        return len(self.latencies)

    def check(self, what, since=0, min_count=10, max_median=0.1):
        """Fails unless every round trip since `since` succeeded, at least
        min_count were made and their median latency is under max_median."""
        check(self.error is None, "good client, during %s: %r" % (what, self.error))
        check(self.thread.is_alive(), "good client, during %s: stopped" % what)
        lat = sorted(self.latencies[since:])
        check(len(lat) >= min_count, "good client, during %s: only %d round trips (want >= %d)"
              % (what, len(lat), min_count))
        med = lat[len(lat) // 2]
        step("good client during %s: %d round trips, median %.1f ms, max %.1f ms"
             % (what, len(lat), med * 1000, lat[-1] * 1000))
        check(med < max_median, "good client, during %s: median round trip %.1f ms"
              % (what, med * 1000))

    def stop(self, what="the test"):
        """Stops the thread and closes the connection, as a client that is
        done would (a server shutting down gracefully waits for that)."""
        self._stop.set()
        self.thread.join(SOCK_TIMEOUT + 5)
        self.s.close()
        check(self.error is None, "good client, during %s: %r" % (what, self.error))


def make_self_signed(d, name="server"):
    """A self-signed EC certificate for 127.0.0.1/localhost made with the
    `openssl` command in directory d; returns (cert path, key path), or None
    when `openssl` is not installed."""
    import shutil
    if shutil.which("openssl") is None:
        return None
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check(r.returncode == 0, "openssl req failed: %r" % r.stderr)
    return cert, key


def closed_state(s):
    """Non-blocking: 'eof' or 'reset' when the peer closed s, else None
    (data that arrives is read and ignored)."""
    timeout = s.gettimeout()
    s.setblocking(False)  # a socket timeout would make recv wait first
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return "eof"
    except (BlockingIOError, InterruptedError):
        return None
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    finally:
        s.settimeout(timeout)


def wait_all_closed(socks, timeout):
    """Waits until the peer closed every socket in socks (EOF or reset) or
    timeout passes; returns {socket: (monotonic time closed, 'eof'|'reset')}
    for those that were closed."""
    import selectors
    sel = selectors.DefaultSelector()
    closed = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while len(closed) < len(socks):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(min(left, 0.05)):
                st = closed_state(key.fileobj)
                if st:
                    closed[key.fileobj] = (time.monotonic(), st)
                    sel.unregister(key.fileobj)
    finally:
        sel.close()
    return closed
