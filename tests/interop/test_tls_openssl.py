#!/usr/bin/env python3
"""TLS interop with the openssl command-line peers.

libnbio's side is tests/interop/tls_peer (built by tests/interop/tls.cmake),
found in $NBIO_TLS_PEER, the working directory, or beside argv[1].
Certificates are made with the openssl CLI in a temporary directory.

  - our client <- openssl s_server: handshake, 10 MB each way with exact
    bytes, line-framed echo (s_server -rev), mutual TLS
  - openssl s_client -> our server: 10 MB each way with exact bytes,
    line-framed echo, ALPN, TLS 1.2, mutual TLS accepted and refused
Loopback only, every subprocess bounded in time and killed at the end.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

TEN_MB = 10 * 1024 * 1024
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


def pattern(n):
    block = bytes((7 * k * k + 13 * k + 5) % 251 for k in range(65521))
    return (block * (n // len(block) + 1))[:n]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, timeout=60, **kw)


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    PROCS.append(p)
    return p


def kill_all():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """True once something listens on 127.0.0.1:port (without connecting:
    s_server -naccept 1 would count a probe as its one client)."""
    want = ":%04X" % port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except OSError:
            pass
    return False


def start_s_server(args, **kw):
    for _ in range(5):
        port = free_port()
        p = spawn(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-naccept", "1"] + args, **kw)
        deadline = time.time() + 10
        while time.time() < deadline and p.poll() is None and not listening(port):
            time.sleep(0.02)
        if p.poll() is None and listening(port):
            return p, port
        p.kill()
    raise RuntimeError("s_server did not start")


def start_our_server(peer, args):
    p = spawn([peer, "server"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("listening on "), line
    return p, int(line.rsplit(":", 1)[1])


def finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def feed(pipe, data):
    try:
        pipe.write(data)
        pipe.flush()
    except (BrokenPipeError, ValueError):
        pass


def make_certs(d):
    def req(*a):
        run(["openssl"] + list(a), cwd=d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    req("req", "-x509", *ec, "-subj", "/CN=interop CA", "-days", "2", "-keyout", "ca.key",
        "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, cn, ext in (("server", "localhost",
                           "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                          ("client", "interop client", "extendedKeyUsage=clientAuth\n")):
        req("req", *ec, "-subj", "/CN=" + cn, "-keyout", name + ".key", "-out", name + ".csr")
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        req("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem")


def check(cond, what, *info):
    if not cond:
        print("FAIL:", what)
        for i in info:
            print("   ", i)
        raise SystemExit(1)
    print("ok:", what)


def main():
    if shutil.which("openssl") is None:
        print("SKIP: no openssl command")
        return 77
    peer = find_peer()
    with tempfile.TemporaryDirectory(prefix="nbio-tls-openssl-") as d:
        make_certs(d)
        pat = pattern(TEN_MB)
        with open(os.path.join(d, "pat"), "wb") as f:
            f.write(pat)
        P = lambda n: os.path.join(d, n)
        srv_tls = ["-cert", P("server.pem"), "-key", P("server.key")]

        # 1. s_server sends 10 MB to our client. Its input is written only
        # once the handshake is done: s_server, finding its input and the
        # socket readable in the same select(), blocks in SSL_read with data
        # still to send (it does that with s_client too).
        s, port = start_s_server(srv_tls + ["-quiet"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        c = spawn([peer, "client", "127.0.0.1:%d" % port, "--cacert", P("ca.pem"),
                   "--mode", "sink", "--bytes", str(TEN_MB)],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = c.stdout.readline()
        feeder = threading.Thread(target=feed, args=(s.stdin, pat), daemon=True)
        feeder.start()
        rc, out, err = finish(c)
        out = first + out
        check(rc == 0 and "ok sent 0 received %d" % TEN_MB in out,
              "our client received 10 MB from s_server", out, err)
        check("connected TLSv1.3" in out and "peer=CN=localhost" in out,
              "TLS 1.3 with s_server, peer subject", out)
        s.kill()

        # 2. our client sends 10 MB to s_server, then close_notify
        with open(P("out"), "wb") as out:
            s, port = start_s_server(srv_tls + ["-quiet"], stdin=subprocess.PIPE, stdout=out,
                                     stderr=subprocess.PIPE)
            c = subprocess.run([peer, "client", "127.0.0.1:%d" % port, "--cacert", P("ca.pem"),
                                "--mode", "source", "--bytes", str(TEN_MB)],
                               capture_output=True, text=True, timeout=60)
            try:
                s.wait(timeout=10)  # it ends the connection on our close_notify
            except subprocess.TimeoutExpired:
                s.kill()
        with open(P("out"), "rb") as f:
            got = f.read()
        check(c.returncode == 0 and got == pat, "s_server received exactly our 10 MB",
              c.stdout, c.stderr, "got %d bytes" % len(got))

        # 3. line-framed echo against s_server -rev (each line comes back reversed)
        s, port = start_s_server(srv_tls + ["-rev"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = subprocess.run([peer, "client", "127.0.0.1:%d" % port, "--cacert", P("ca.pem"),
                            "--mode", "lines", "--frames", "2000"],
                           capture_output=True, text=True, timeout=60)
        check(c.returncode == 0 and "ok sent 2000 received 2000" in c.stdout,
              "2000 line frames echoed (reversed) by s_server -rev", c.stdout)
        s.kill()

        # 4. mutual TLS with s_server -Verify: with and without our client certificate
        mtls = srv_tls + ["-rev", "-Verify", "1", "-CAfile", P("ca.pem")]
        s, port = start_s_server(mtls, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        c = subprocess.run([peer, "client", "127.0.0.1:%d" % port, "--cacert", P("ca.pem"),
                            "--cert", P("client.pem"), "--key", P("client.key"),
                            "--mode", "lines", "--frames", "10"],
                           capture_output=True, text=True, timeout=60)
        check(c.returncode == 0 and "received 10" in c.stdout, "mutual TLS with s_server",
              c.stdout)
        s.kill()
        s, port = start_s_server(mtls, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        c = subprocess.run([peer, "client", "127.0.0.1:%d" % port, "--cacert", P("ca.pem"),
                            "--mode", "lines", "--frames", "10"],
                           capture_output=True, text=True, timeout=60)
        # TLS 1.3: the alert comes after our handshake completed; a write may
        # meet the closed socket first (reset by peer)
        check(c.returncode == 1 and (("error NBIO_ETLS" in c.stdout and "alert" in c.stdout) or
                                     "error NBIO_ECONNRESET" in c.stdout),
              "s_server refuses our client without a certificate: " + c.stdout.strip().splitlines()[-1],
              c.stdout)
        s.kill()

        # 5. s_client sends 10 MB to our server
        srv, port = start_our_server(peer, ["--cert", P("server.pem"), "--key", P("server.key"),
                                            "--mode", "sink", "--count", "1"])
        with open(P("pat"), "rb") as src:
            c = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                                "-CAfile", P("ca.pem"), "-verify_return_error", "-servername",
                                "localhost", "-no_ign_eof", "-nocommands"],
                               stdin=src, capture_output=True, timeout=60)
        rc, out, err = finish(srv)
        check(rc == 0 and "client 1: ok received %d bytes" % TEN_MB in out,
              "our server received exactly 10 MB from s_client", out, err)

        # 6. our server sends 10 MB to s_client, then close_notify
        srv, port = start_our_server(peer, ["--cert", P("server.pem"), "--key", P("server.key"),
                                            "--mode", "source", "--bytes", str(TEN_MB),
                                            "--count", "1"])
        c = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-CAfile", P("ca.pem"), "-verify_return_error", "-quiet"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        rc, out, err = finish(srv)
        check(rc == 0 and c.stdout == pat, "s_client received exactly our 10 MB",
              out, err, "got %d bytes" % len(c.stdout))

        # 7. line-framed echo: s_client writes lines, our server echoes frames
        srv, port = start_our_server(peer, ["--cert", P("server.pem"), "--key", P("server.key"),
                                            "--framing", "line", "--mode", "echo", "--count", "1",
                                            "--alpn", "h2,http/1.1"])
        cl = spawn(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
                    P("ca.pem"), "-verify_return_error", "-alpn", "http/1.1", "-nocommands",
                    "-quiet", "-no_ign_eof"],
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = [("line %d " % i + "x" * (i % 200)).encode() for i in range(500)]
        cl.stdin.write(b"".join(l + b"\n" for l in lines))
        cl.stdin.flush()
        back = []
        deadline = time.time() + 30
        while len(back) < len(lines) and time.time() < deadline:
            l = cl.stdout.readline()
            if not l:
                break
            back.append(l.rstrip(b"\n"))
        cl.stdin.close()  # end of input: s_client sends close_notify
        cl.wait(timeout=10)
        rc, out, err = finish(srv)
        check(back == lines and rc == 0 and "client 1: ok" in out,
              "500 line frames echoed by our server to s_client", out, err,
              "got %d lines" % len(back))
        check("alpn=http/1.1" in err and "TLSv1.3" in err, "ALPN http/1.1 selected for s_client",
              err)

        # 8. s_client with TLS 1.2 and a client certificate; then without one
        srv, port = start_our_server(peer, ["--cert", P("server.pem"), "--key", P("server.key"),
                                            "--client-ca", P("ca.pem"), "--mode", "sink",
                                            "--count", "2"])
        c = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_2",
                            "-CAfile", P("ca.pem"), "-verify_return_error", "-cert",
                            P("client.pem"), "-key", P("client.key"), "-no_ign_eof",
                            "-nocommands"],
                           input=pat[:100000], capture_output=True, timeout=60)
        c2 = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                             "-CAfile", P("ca.pem"), "-ign_eof", "-nocommands"],
                            input=b"", capture_output=True, timeout=60)
        rc, out, err = finish(srv)
        check("client 1: ok received 100000 bytes" in out and "TLSv1.2" in err and
              "peer=CN=interop client" in err,
              "mutual TLS 1.2 with s_client, client subject seen", out, err)
        check("client 2: error NBIO_ECERTVERIFY" in out and "did not return a certificate" in out,
              "our server refuses s_client without a certificate", out, err)
        check(b"alert" in c2.stderr or b"alert" in c2.stdout, "s_client saw the alert",
              c2.stderr[-500:])
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        kill_all()
    sys.exit(rc)
