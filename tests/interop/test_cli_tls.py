#!/usr/bin/env python3
"""TLS in the `nbio` program: echo-server --tls-cert/--tls-key/--tls-client-ca,
cat --tls/--cacert/--servername/--cert/--key/--insecure, and the demo's TLS step.

Certificates are made at test time in a temporary directory with the
`openssl` command-line tool (a CA, leaves signed by it, self-signed ones).
Peers are Python's ssl module. Loopback only, free ports, bounded time,
every subprocess killed at the end.

  (a) Python ssl clients against `nbio echo-server --tls-cert --tls-key`:
      raw bytes (incl. 2 MB) and --framing u64, exact bytes, clean close
  (b) mutual TLS (--tls-client-ca): a client with a certificate from that CA
      is served; clients without one, with one from another CA, or speaking
      plain TCP are each dropped with one stderr line while another client
      keeps working
  (c) `nbio cat --tls` against a Python ssl echo server: --cacert (exact
      output incl. 1 MB, framing over TLS), --servername for a DNS-only
      certificate reached via 127.0.0.1, wrong name and self-signed rejected
      with the verify failure on stderr, --insecure, truncation without
      close_notify is an error
  (d) `nbio cat --tls --cert --key` against a Python server requiring a
      client certificate (and refused without one)
  (e) `nbio demo` runs its TLS step
  (f) nbio cat against nbio echo-server over a Unix socket: mutual TLS,
      line framing, --servername
  and option errors: TLS options without --tls, --tls-cert without
  --tls-key (exit 2), unreadable or mismatched certificate/key (exit 1).
"""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbio_interop import (EchoServer, check, main, payload, run_tool, step,  # noqa: E402
                          u64_frame)

TIMEOUT = 30.0


# ---- certificates -------------------------------------------------------

def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode()))


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def make_ca(d, name, cn):
    openssl("req", "-x509", *EC, "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
            "-subj", "/CN=" + cn,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_leaf(d, name, cn, san=None, client=False, ca="ca"):
    """A leaf signed by ca (or self-signed when ca is None)."""
    ext = ["basicConstraints=critical,CA:FALSE",
           "keyUsage=critical,digitalSignature",
           "extendedKeyUsage=" + ("clientAuth" if client else "serverAuth"),
           "subjectKeyIdentifier=hash"]
    if san:
        ext.append("subjectAltName=" + san)
    if ca is None:
        args = ["req", "-x509", *EC, "-keyout", name + ".key", "-out", name + ".pem",
                "-days", "2", "-subj", "/CN=" + cn]
        for e in ext:
            args += ["-addext", e]
        openssl(*args, cwd=d)
        return
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("\n".join(ext + ["authorityKeyIdentifier=keyid,issuer"]) + "\n")
    openssl("req", *EC, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
            cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext",
            cwd=d)


def make_pki(d):
    make_ca(d, "ca", "nbio cli test CA")
    make_ca(d, "otherca", "some other CA")
    make_leaf(d, "server", "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1")
    make_leaf(d, "dnsonly", "nbio-test.example", "DNS:nbio-test.example")
    make_leaf(d, "selfsigned", "localhost", "DNS:localhost,IP:127.0.0.1", ca=None)
    make_leaf(d, "client", "nbio cli test client", client=True)
    make_leaf(d, "otherclient", "stranger", client=True, ca="otherca")


# ---- Python TLS peers ---------------------------------------------------

def client_ctx(d, cert=None):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.path.join(d, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(d, cert + ".pem"), os.path.join(d, cert + ".key"))
    return ctx


def tls_connect(ctx, addr, host="127.0.0.1"):
    h, _, port = addr.rpartition(":")
    raw = socket.create_connection((h, int(port)), timeout=TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname=host)


def exchange(c, wire, n_expected):
    """Sends wire and reads n_expected bytes back, on one thread (an SSL
    object must not be used from two threads at once)."""
    c.setblocking(False)
    sent, got = 0, bytearray()
    deadline = time.monotonic() + TIMEOUT
    while len(got) < n_expected:
        check(time.monotonic() < deadline, "echo timed out at %d of %d bytes" % (len(got), n_expected))
        progressed = False
        if sent < len(wire):
            try:
                sent += c.send(wire[sent:sent + 65536])
                progressed = True
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        try:
            chunk = c.recv(65536)
            check(chunk, "the server closed after %d of %d bytes" % (len(got), n_expected))
            got += chunk
            progressed = True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        if not progressed:
            time.sleep(0.001)
    c.setblocking(True)
    c.settimeout(TIMEOUT)
    return bytes(got)


def clean_close(c, what):
    """Our close_notify, then the server's close_notify (unwrap() waits for it)."""
    c.settimeout(TIMEOUT)
    c.unwrap().close()
    step("%s: closed cleanly (close_notify both ways)" % what)


def expect_refused(c, what):
    """After a (TLS 1.3) handshake the client thinks is complete, the server's
    alert (or close) must arrive instead of an echo."""
    c.settimeout(TIMEOUT)
    try:
        c.sendall(b"are you there?")
        data = c.recv(100)
    except (ssl.SSLError, ConnectionError) as e:
        step("%s: refused as expected (%s)" % (what, e))
        return
    check(data == b"", "%s: should be refused, got %r" % (what, data))
    step("%s: refused as expected (closed)" % what)


class PyTlsEchoServer:
    """A Python ssl echo server on a free loopback port, one thread per client.
    On the client's close_notify it finishes and answers with its own
    (unwrap); truncate=True instead ends the TCP connection (FIN) without
    close_notify after the first echo."""

    def __init__(self, d, cert="server", require_client=False, truncate=False):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(d, cert + ".pem"), os.path.join(d, cert + ".key"))
        if require_client:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(os.path.join(d, "ca.pem"))
        self.sni = []
        self.peers = []
        self.errors = []
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.truncate = truncate
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopping:
            try:
                raw, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            raw.settimeout(TIMEOUT)
            c = self.ctx.wrap_socket(raw, server_side=True)
            cert = c.getpeercert()
            if cert:
                self.peers.append(dict(x[0] for x in cert["subject"]).get("commonName"))
            while True:
                data = c.recv(65536)
                if not data:
                    break  # close_notify
                c.sendall(data)
                if self.truncate:
                    # TCP FIN without close_notify; then read until the
                    # client's close_notify and FIN, so that closing does
                    # not turn into a reset
                    c.shutdown(socket.SHUT_WR)
                    try:
                        while c.recv(65536):
                            pass
                    except (ssl.SSLError, OSError):
                        pass
                    c.close()
                    return
            c.unwrap().close()
        except Exception as e:  # noqa: BLE001 - inspected by the tests
            self.errors.append(e)
            raw.close()

    def close(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(5)


def cat(nbio, args, data=b"", timeout=TIMEOUT):
    return run_tool(nbio, ["cat"] + args, data, timeout)


def tls_lines(stderr):
    return [ln for ln in stderr.splitlines() if "dropped client" in ln]


# ---- the tests ----------------------------------------------------------

def test_echo_server(nbio, d):
    P = lambda n: os.path.join(d, n)  # noqa: E731
    step("(a) Python ssl client -> nbio echo-server --tls-cert/--tls-key, raw bytes")
    srv = EchoServer(nbio, "127.0.0.1:0", "--tls-cert", P("server.pem"), "--tls-key", P("server.key"))
    ctx = client_ctx(d)
    c = tls_connect(ctx, srv.addr)
    step("connected: %s %s" % (c.version(), c.cipher()[0]))
    for n in (1, 1000, 2 * 1000 * 1000 + 7):
        data = payload(n, seed=n % 251)
        got = exchange(c, data, n)
        check(got == data, "raw echo of %d bytes differs" % n)
        step("raw echo of %d bytes: exact" % n)
    clean_close(c, "raw client")
    c = tls_connect(ctx, srv.addr, host="localhost")  # DNS name SAN too
    check(exchange(c, b"by name", 7) == b"by name", "echo via the name localhost")
    clean_close(c, "client verifying 'localhost'")
    time.sleep(0.2)
    check(srv.alive(), "echo-server still running")
    check(tls_lines(srv.stderr()) == [], "clean clients are not reported: %r" % srv.stderr())
    check(srv.stop() == 0, "echo-server exits 0 on SIGTERM")

    step("(a) Python ssl client -> nbio echo-server --tls-cert/--tls-key --framing u64 --idle wait")
    srv = EchoServer(nbio, "127.0.0.1:0", "--framing", "u64", "--idle", "wait",
                     "--tls-cert=" + P("server.pem"), "--tls-key=" + P("server.key"))
    c = tls_connect(ctx, srv.addr)
    frames = [b"", b"x", payload(70000, 3), payload(2 * 1024 * 1024, 5), b"last"]
    wire = b"".join(u64_frame(f) for f in frames)
    got = exchange(c, wire, len(wire))
    check(got == wire, "u64 frames over TLS come back exactly")
    step("%d u64 frames over TLS (up to 2 MiB): exact" % len(frames))
    clean_close(c, "framed client")
    time.sleep(0.2)
    check(tls_lines(srv.stderr()) == [], "no client reported: %r" % srv.stderr())
    check(srv.stop() == 0, "echo-server exits 0 on SIGTERM")


def test_mutual_tls(nbio, d):
    P = lambda n: os.path.join(d, n)  # noqa: E731
    step("(b) nbio echo-server --tls-client-ca: mutual TLS")
    srv = EchoServer(nbio, "127.0.0.1:0", "--idle", "wait", "--tls-cert", P("server.pem"),
                     "--tls-key", P("server.key"), "--tls-client-ca", P("ca.pem"))
    good = tls_connect(client_ctx(d, "client"), srv.addr)
    check(exchange(good, b"first", 5) == b"first", "a client with a certificate from the CA is served")
    step("client with a certificate from the CA: served (%s)" % good.version())

    bad = tls_connect(client_ctx(d), srv.addr)
    expect_refused(bad, "client without a certificate")
    bad.close()
    check(exchange(good, b"still here", 10) == b"still here", "the good client keeps working")

    stranger = tls_connect(client_ctx(d, "otherclient"), srv.addr)
    expect_refused(stranger, "client with a certificate from another CA")
    stranger.close()

    plain = socket.create_connection(("127.0.0.1", int(srv.addr.rsplit(":", 1)[1])),
                                     timeout=TIMEOUT)
    plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        plain.recv(100)  # an alert, then the close
    except ConnectionError:
        pass
    plain.close()

    big = payload(300000, 9)
    check(exchange(good, big, len(big)) == big, "the good client keeps working (300 kB)")
    step("the good client kept working through three rejections")
    clean_close(good, "mutual-TLS client")

    deadline = time.monotonic() + 10
    while len(tls_lines(srv.stderr())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = tls_lines(srv.stderr())
    for ln in lines:
        step("server said: " + ln)
    check(len(lines) == 3, "one stderr line per rejected client: %r" % srv.stderr())
    check(all("TLS handshake failed" in ln for ln in lines), "each line says the handshake failed")
    check("NBIO_ECERTVERIFY" in lines[0] or "NBIO_ETLS" in lines[0], "no-certificate line names the error")
    check("certificate" in lines[0], "no-certificate line says why: %r" % lines[0])
    check("NBIO_ECERTVERIFY" in lines[1], "other-CA line is a verify failure: %r" % lines[1])
    check("NBIO_ETLS" in lines[2], "plain-TCP line is a TLS failure: %r" % lines[2])
    check(srv.alive() and srv.stop() == 0, "echo-server survived and exits 0")


def test_cat(nbio, d):
    P = lambda n: os.path.join(d, n)  # noqa: E731
    step("(c) nbio cat --tls against a Python ssl echo server")
    srv = PyTlsEchoServer(d)
    data = payload(1024 * 1024 + 3, 11)
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), srv.addr], data)
    check(r.returncode == 0, "cat --tls --cacert exits 0 (rc %d, stderr %r)" % (r.returncode, r.stderr))
    check(r.stdout == data, "cat --tls prints exactly what it sent (%d of %d bytes)"
          % (len(r.stdout), len(data)))
    check(r.stderr == b"", "nothing on stderr: %r" % r.stderr)
    step("1 MB through cat --tls --cacert: exact, exit 0")

    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), "--framing", "u64", srv.addr], b"one\ntwo\n\nthree")
    check(r.returncode == 0 and r.stdout == b"one\ntwo\n\nthree\n",
          "framing over TLS: %r %r" % (r.stdout, r.stderr))
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), srv.addr], b"")
    check(r.returncode == 0 and r.stdout == b"", "empty input: close_notify at once, exit 0: %r" % r.stderr)
    step("framing u64 over TLS and empty input: exit 0")

    r = cat(nbio, ["--tls", P("ca.pem"), srv.addr], b"x")
    check(r.returncode == 2, "a stray argument is a usage error")

    step("(c) --servername with a DNS-only certificate reached via 127.0.0.1")
    dns = PyTlsEchoServer(d, cert="dnsonly")
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), "--servername", "nbio-test.example", dns.addr],
            b"hello by name\n")
    check(r.returncode == 0 and r.stdout == b"hello by name\n",
          "--servername nbio-test.example works: rc %d %r" % (r.returncode, r.stderr))
    check("nbio-test.example" in dns.sni, "the server saw SNI nbio-test.example: %r" % dns.sni)
    step("--servername: verified and sent as SNI")

    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), "--servername", "wrong.example", dns.addr], b"x")
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 1, "wrong --servername fails with exit 1")
    check("NBIO_ECERTVERIFY" in err and "verify failed" in err and "hostname mismatch" in err,
          "stderr names the verify failure: %r" % err)
    check(r.stdout == b"", "nothing printed on a verify failure")
    step("wrong name: " + err.strip())

    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), dns.addr], b"x")
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 1 and "IP address mismatch" in err,
          "127.0.0.1 against a DNS-only certificate fails: %r" % err)
    step("no --servername, DNS-only certificate: " + err.strip())

    step("(c) self-signed server certificate")
    ss = PyTlsEchoServer(d, cert="selfsigned")
    r = cat(nbio, ["--tls", ss.addr], b"x")
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 1 and "verify failed" in err and "self-signed" in err,
          "self-signed without --cacert fails with the reason: %r" % err)
    step("self-signed, system trust store: " + err.strip())
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), ss.addr], b"x")
    check(r.returncode == 1 and b"verify failed" in r.stderr, "self-signed with the wrong CA fails")
    r = cat(nbio, ["--tls", "--insecure", ss.addr], b"insecure but encrypted\n")
    check(r.returncode == 0 and r.stdout == b"insecure but encrypted\n",
          "--insecure accepts the self-signed certificate: %r" % r.stderr)
    r = cat(nbio, ["--tls", "--insecure", dns.addr], b"any name\n")
    check(r.returncode == 0 and r.stdout == b"any name\n", "--insecure accepts any name")
    step("--insecure: works (and verifies nothing)")

    step("(c) a server that closes without close_notify")
    tr = PyTlsEchoServer(d, truncate=True)
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), tr.addr], b"cut short")
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 1 and "NBIO_ETLSTRUNCATED" in err,
          "truncation is an error: rc %d %r" % (r.returncode, err))
    check(r.stdout == b"cut short", "what arrived before the truncation was printed: %r" % r.stdout)
    step("truncation: " + err.strip())

    step("(c) plain TCP server: the handshake fails")
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen(1)
    paddr = "127.0.0.1:%d" % plain.getsockname()[1]

    def garbage():
        try:
            plain.settimeout(TIMEOUT)
            c, _ = plain.accept()
            c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            time.sleep(0.5)
            c.close()
        except OSError:
            pass
    t = threading.Thread(target=garbage, daemon=True)
    t.start()
    r = cat(nbio, ["--tls", "--insecure", paddr], b"x")
    check(r.returncode == 1 and b"NBIO_ETLS" in r.stderr, "garbage instead of a ServerHello: %r"
          % r.stderr)
    t.join(5)
    plain.close()
    step("garbage from the server: " + r.stderr.decode(errors="replace").strip())

    for s in (srv, dns, ss, tr):
        s.close()
    check(srv.errors == [], "the Python server saw no errors from good clients: %r" % srv.errors)


def test_cat_client_cert(nbio, d):
    P = lambda n: os.path.join(d, n)  # noqa: E731
    step("(d) nbio cat --tls --cert/--key against a server requiring a client certificate")
    srv = PyTlsEchoServer(d, require_client=True)
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), "--cert", P("client.pem"), "--key",
                   P("client.key"), srv.addr], b"mutual\n")
    check(r.returncode == 0 and r.stdout == b"mutual\n", "mutual TLS works: rc %d %r"
          % (r.returncode, r.stderr))
    check("nbio cli test client" in srv.peers, "the server saw our certificate: %r" % srv.peers)
    step("with --cert/--key: served, the server saw CN=%s" % srv.peers[0])
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), srv.addr], b"no cert\n")
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 1 and r.stdout == b"", "without --cert: refused (rc %d)" % r.returncode)
    check("NBIO_E" in err, "the error is reported: %r" % err)
    step("without --cert: " + err.strip())
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), "--cert", P("otherclient.pem"), "--key",
                   P("otherclient.key"), srv.addr], b"stranger\n")
    check(r.returncode == 1 and r.stdout == b"", "a certificate from another CA is refused")
    step("certificate from another CA: " + r.stderr.decode(errors="replace").strip())
    srv.close()


def test_option_errors(nbio, d):
    P = lambda n: os.path.join(d, n)  # noqa: E731
    step("option errors")
    for args in (["--cacert", P("ca.pem"), "127.0.0.1:9"], ["--insecure", "127.0.0.1:9"],
                 ["--servername", "x", "127.0.0.1:9"],
                 ["--cert", P("client.pem"), "--key", P("client.key"), "127.0.0.1:9"],
                 ["--tls", "--cert", P("client.pem"), "127.0.0.1:9"],
                 ["--tls", "--insecure", "--cacert", P("ca.pem"), "127.0.0.1:9"],
                 ["--tls", "/tmp/some.sock"]):
        r = cat(nbio, args, b"")
        check(r.returncode == 2 and b"--help" in r.stderr, "cat %s: usage error, got %d %r"
              % (" ".join(args), r.returncode, r.stderr))
    r = cat(nbio, ["--tls", "--cacert", P("nonexistent.pem"), "127.0.0.1:9"], b"")
    check(r.returncode == 1 and b"nonexistent.pem" in r.stderr, "cat: missing CA file: %r" % r.stderr)
    step("cat: " + r.stderr.decode(errors="replace").strip())
    r = run_tool(nbio, ["cat", "--help"])
    for word in (b"--tls", b"--cacert", b"--servername", b"--cert", b"--key", b"--insecure", b"UNSAFE"):
        check(word in r.stdout, "cat --help mentions %r" % word)

    lst = ["echo-server", "--listen", "127.0.0.1:0"]
    for args in (["--tls-cert", P("server.pem")], ["--tls-key", P("server.key")],
                 ["--tls-client-ca", P("ca.pem")]):
        r = run_tool(nbio, lst + args, timeout=10)
        check(r.returncode == 2 and r.stdout == b"", "echo-server %s: usage error, got %d %r"
              % (" ".join(args), r.returncode, r.stderr))
    for args, what in (([P("nonexistent.pem"), P("server.key")], b"nonexistent.pem"),
                       ([P("server.pem"), P("client.key")], b""),
                       ([P("server.pem"), P("server.key"), "--tls-client-ca", P("nope.pem")], b"nope.pem")):
        r = run_tool(nbio, lst + ["--tls-cert", args[0], "--tls-key"] + args[1:], timeout=10)
        err = r.stderr.decode(errors="replace").strip()
        check(r.returncode == 1 and b"listening" not in r.stdout and err.startswith("nbio echo-server: NBIO_E")
              and what in r.stderr, "echo-server with a bad file: exit 1 before listening: %d %r"
              % (r.returncode, err))
        step("echo-server: " + err)
    r = run_tool(nbio, ["echo-server", "--help"])
    for word in (b"--tls-cert", b"--tls-key", b"--tls-client-ca"):
        check(word in r.stdout, "echo-server --help mentions %r" % word)


def test_nbio_to_nbio(nbio, d):
    P = lambda n: os.path.join(d, n)  # noqa: E731
    step("nbio cat --tls -> nbio echo-server --tls-*: Unix socket, mutual TLS, line framing")
    sock = P("echo.sock")
    srv = EchoServer(nbio, sock, "--framing", "line", "--idle", "wait", "--tls-cert", P("server.pem"),
                     "--tls-key", P("server.key"), "--tls-client-ca", P("ca.pem"))
    lines = b"".join(b"line %d %s\n" % (i, b"z" * (i * 37 % 5000)) for i in range(300))
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), "--servername", "localhost", "--cert",
                   P("client.pem"), "--key", P("client.key"), "--framing", "line", sock], lines)
    check(r.returncode == 0 and r.stdout == lines, "300 lines through both tools: rc %d, %d of %d "
          "bytes, %r" % (r.returncode, len(r.stdout), len(lines), r.stderr))
    r = cat(nbio, ["--tls", "--cacert", P("ca.pem"), "--servername", "localhost",
                   "--framing", "line", sock], b"no cert\n")
    check(r.returncode == 1 and r.stdout == b"", "without --cert: refused: %r" % r.stderr)
    step("without --cert: " + r.stderr.decode(errors="replace").strip())
    time.sleep(0.2)
    lines = tls_lines(srv.stderr())
    check(len(lines) == 1 and "TLS handshake failed" in lines[0], "one line for the refused client: %r"
          % srv.stderr())
    check(srv.stop() == 0 and not os.path.exists(sock), "echo-server exits 0 and removes its socket")


def test_demo(nbio):
    step("(e) nbio demo")
    r = run_tool(nbio, ["demo"], timeout=60)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "demo exits 0: %r" % r.stderr)
    check("TLS" in out and "TLSv1." in out and "hello over TLS!" in out,
          "demo shows the TLS step, its version and the echo")
    check("steps worked" in out and "-> step failed" not in out, "every step worked")
    for ln in out.splitlines():
        if "handshake done" in ln:
            step("demo: " + ln.strip())


def run(nbio):
    if shutil.which("openssl") is None:
        print("SKIP: the openssl command is not installed")
        sys.exit(77)
    d = tempfile.mkdtemp(prefix="nbio-cli-tls-")
    try:
        make_pki(d)
        test_option_errors(nbio, d)
        test_echo_server(nbio, d)
        test_mutual_tls(nbio, d)
        test_cat(nbio, d)
        test_cat_client_cert(nbio, d)
        test_nbio_to_nbio(nbio, d)
        test_demo(nbio)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main(run, watchdog=170)
