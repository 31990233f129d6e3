#!/usr/bin/env python3
"""TLS interop with Python's ssl module, both directions, incl. mutual TLS.

libnbio's side is tests/interop/tls_peer (built by tests/interop/tls.cmake),
found in $NBIO_TLS_PEER, the working directory, or beside argv[1]. The
certificates come from `tls_peer gencert` (nbio_tls_make_cert), so Python's
ssl module also checks what our generator makes.

  - our client -> Python server: 2 MB byte echo; u32-framed echo (frames up
    to 100 kB); TLS 1.2; ALPN; mutual TLS with and without a certificate;
    hostname mismatch
  - Python client -> our server: 2 MB byte echo; u32-framed echo; mutual TLS
    accepted and refused
Loopback only, bounded time, every subprocess killed at the end.
"""
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

PROCS = []


def find_peer():
    cands = [os.environ.get("NBIO_TLS_PEER"), os.path.join(os.getcwd(), "tls_peer")]
    if len(sys.argv) > 1:
        d = os.path.dirname(os.path.abspath(sys.argv[1]))
        cands += [os.path.join(d, "tls_peer"), os.path.join(d, "..", "tests", "interop", "tls_peer")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    print("SKIP: tls_peer not built (include tests/interop/tls.cmake)")
    sys.exit(77)


def pattern(n, off=0):
    block = bytes((7 * k * k + 13 * k + 5) % 251 for k in range(65521))
    reps = (off + n) // len(block) + 2
    return (block * reps)[off:off + n]


def check(cond, what, *info):
    if not cond:
        print("FAIL:", what)
        for i in info:
            print("   ", i)
        raise SystemExit(1)
    print("ok:", what)


class PyServer:
    """A Python TLS server on a free loopback port, serving one client with
    a byte echo in a thread; records what happened."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.error = None
        self.echoed = 0
        self.alpn = None
        self.version = None
        self.peer = None
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            raw, _ = self.sock.accept()
            raw.settimeout(30)
            with self.ctx.wrap_socket(raw, server_side=True) as c:
                self.alpn = c.selected_alpn_protocol()
                self.version = c.version()
                cert = c.getpeercert()
                if cert:
                    self.peer = dict(x[0] for x in cert["subject"]).get("commonName")
                while True:
                    data = c.recv(65536)
                    if not data:
                        break  # close_notify
                    c.sendall(data)
                    self.echoed += len(data)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.sock.close()

    def join(self):
        self.thread.join(timeout=60)
        check(not self.thread.is_alive(), "python server finished")


def our_client(peer, port, *args):
    p = subprocess.Popen([peer, "client", "127.0.0.1:%d" % port] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    PROCS.append(p)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


def our_server(peer, *args):
    p = subprocess.Popen([peer, "server"] + list(args), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    PROCS.append(p)
    line = p.stdout.readline()
    assert line.startswith("listening on "), line
    return p, int(line.rsplit(":", 1)[1])


def py_client_ctx(d, cert=True):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.path.join(d, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
    return ctx


def exchange(c, wire, n_expected):
    """Sends wire and reads n_expected bytes back on one thread (an SSL
    object must not be used from two threads at once)."""
    c.setblocking(False)
    sent, got = 0, bytearray()
    deadline = time.time() + 60
    while len(got) < n_expected:
        if time.time() > deadline:
            raise TimeoutError("echo timed out at %d of %d bytes" % (len(got), n_expected))
        progressed = False
        if sent < len(wire):
            try:
                sent += c.send(wire[sent:sent + 65536])
                progressed = True
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        try:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
            progressed = True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        if not progressed:
            select.select([c], [c] if sent < len(wire) else [], [], 0.05)
    c.setblocking(True)
    return bytes(got)


def py_echo_bytes(ctx, port, n):
    """Sends n pattern bytes, reads the echo, then sends close_notify."""
    data = pattern(n)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            got = exchange(c, data, n)
            c.unwrap()
            return got == data, len(got)


def py_echo_frames(ctx, port, sizes):
    frames = [pattern(s, i * 7) for i, s in enumerate(sizes)]
    wire = b"".join(struct.pack(">I", len(f)) + f for f in frames)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            buf = exchange(c, wire, len(wire))
            c.unwrap()
    got, off = [], 0
    while off + 4 <= len(buf):
        (ln,) = struct.unpack(">I", buf[off:off + 4])
        got.append(bytes(buf[off + 4:off + 4 + ln]))
        off += 4 + ln
    return got == frames


def main():
    peer = find_peer()
    with tempfile.TemporaryDirectory(prefix="nbio-tls-python-") as d:
        subprocess.run([peer, "gencert", d], check=True, timeout=30)
        P = lambda n: os.path.join(d, n)

        def server_ctx(require_client=False, tls12=False, alpn=None):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(P("server.pem"), P("server.key"))
            if require_client:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(P("ca.pem"))
            if tls12:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            if alpn:
                ctx.set_alpn_protocols(alpn)
            return ctx

        # -- our client, Python server --
        srv = PyServer(server_ctx())
        rc, out, err = our_client(peer, srv.port, "--cacert", P("ca.pem"), "--mode", "echo",
                                  "--bytes", str(2 << 20))
        srv.join()
        check(rc == 0 and "received %d" % (2 << 20) in out and srv.error is None,
              "our client: 2 MB echoed exactly by a Python server", out, err, srv.error)
        check("connected TLSv1.3" in out, "TLS 1.3 with Python", out)

        srv = PyServer(server_ctx())
        rc, out, err = our_client(peer, srv.port, "--cacert", P("ca.pem"), "--mode", "echo",
                                  "--framing", "u32", "--frames", "300")
        srv.join()
        check(rc == 0 and "ok sent 300 received 300" in out,
              "our client: 300 u32 frames (up to 100 kB) echoed by Python", out, err)

        srv = PyServer(server_ctx(tls12=True, alpn=["h2", "x-nbio"]))
        rc, out, err = our_client(peer, srv.port, "--cacert", P("ca.pem"), "--alpn",
                                  "x-nbio,http/1.1", "--mode", "echo", "--bytes", "1000")
        srv.join()
        check(rc == 0 and "connected TLSv1.2" in out and "alpn=x-nbio" in out and
              srv.alpn == "x-nbio", "TLS 1.2 and ALPN with a Python server", out, err)

        srv = PyServer(server_ctx(require_client=True))
        rc, out, err = our_client(peer, srv.port, "--cacert", P("ca.pem"), "--cert",
                                  P("client.pem"), "--key", P("client.key"), "--mode", "echo",
                                  "--bytes", "5000")
        srv.join()
        check(rc == 0 and srv.peer == "tls_peer client" and srv.error is None,
              "mutual TLS: Python server verified our client certificate", out, err, srv.error)

        srv = PyServer(server_ctx(require_client=True))
        rc, out, err = our_client(peer, srv.port, "--cacert", P("ca.pem"), "--mode", "echo",
                                  "--bytes", "5000")
        srv.join()
        # TLS 1.3: we learn it from the alert on our next read, unless our
        # write hits the closed socket first (then: reset by peer)
        check(rc == 1 and (("error NBIO_ETLS" in out and "certificate required" in out) or
                           "error NBIO_ECONNRESET" in out) and
              isinstance(srv.error, ssl.SSLError),
              "mutual TLS: Python server refuses our client without a certificate", out,
              srv.error)

        srv = PyServer(server_ctx())
        rc, out, err = our_client(peer, srv.port, "--cacert", P("ca.pem"), "--servername",
                                  "wrong.example", "--mode", "echo", "--bytes", "10")
        srv.join()
        check(rc == 1 and "error NBIO_ECERTVERIFY: certificate verify failed: hostname mismatch "
              "(expected wrong.example)" in out, "hostname mismatch reported", out)

        # -- Python client, our server --
        p, port = our_server(peer, "--cert", P("server.pem"), "--key", P("server.key"),
                             "--mode", "echo", "--count", "1")
        ok, n = py_echo_bytes(py_client_ctx(d, cert=False), port, 2 << 20)
        out, err = p.communicate(timeout=30)
        check(ok and p.returncode == 0 and "client 1: ok" in out,
              "Python client: 2 MB echoed exactly by our server", out, err, n)

        p, port = our_server(peer, "--cert", P("server.pem"), "--key", P("server.key"),
                             "--framing", "u32", "--mode", "echo", "--count", "1")
        sizes = [0, 1, 2, 100, 16384, 16385, 100000, 3, 70000] + [i * 37 % 5000 for i in range(200)]
        ok = py_echo_frames(py_client_ctx(d, cert=False), port, sizes)
        out, err = p.communicate(timeout=30)
        check(ok and p.returncode == 0, "Python client: %d u32 frames echoed by our server" %
              len(sizes), out, err)

        p, port = our_server(peer, "--cert", P("server.pem"), "--key", P("server.key"),
                             "--client-ca", P("ca.pem"), "--mode", "echo", "--count", "2")
        ok, n = py_echo_bytes(py_client_ctx(d, cert=True), port, 100000)
        refused = None
        try:
            py_echo_bytes(py_client_ctx(d, cert=False), port, 1000)
        except (ssl.SSLError, OSError) as e:
            refused = e
        out, err = p.communicate(timeout=30)
        check(ok and "client 1: ok" in out and "peer=CN=tls_peer client" in err,
              "mutual TLS: our server verified the Python client's certificate", out, err)
        check(refused is not None and "client 2: error NBIO_ECERTVERIFY" in out and
              "peer did not return a certificate" in out,
              "mutual TLS: our server refuses a Python client without a certificate (%s)" %
              refused, out, err)
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        for proc in PROCS:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    sys.exit(rc)
