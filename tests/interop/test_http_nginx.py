#!/usr/bin/env python3
"""`nbio get` against nginx (skipped, exit 77, when nginx is not installed;
scripts/install-deps installs it).

nginx runs in the foreground from a generated configuration in a temporary
directory (no master process, one worker, logs and pid file there), plain
HTTP and HTTPS (a certificate made by `openssl req`) on free loopback ports.
Its access log records $connection and $connection_requests, so keep-alive
reuse and pipelining are counted on the server's side.

 - static files (small, empty, 3 MB) come out byte-exact, over HTTP and
   HTTPS (--cacert);
 - three URLs in one run travel over one connection;
 - --pipeline: 16 requests over one connection;
 - --compressed: nginx gzips text/plain, the output is the file;
 - `nbio get -i` / `-I` and `curl -si` / `curl -sI` print the same bytes.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from nbio_interop import _procs, check, main, make_self_signed, payload, run_tool, step

TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i
                for i in range(2000))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, errlog, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check(proc.poll() is None, "nginx exited with %s: %s" % (proc.returncode, read(errlog)))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nginx does not accept on port %d: %s" % (port, read(errlog)))


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


class Nginx:
    def __init__(self, nginx, tmp, cert, key):
        self.tmp = tmp
        self.port, self.tls_port = free_port(), free_port()
        self.access = os.path.join(tmp, "access.log")
        self.errlog = os.path.join(tmp, "error.log")
        www = os.path.join(tmp, "www")
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    log_format conns '$connection $connection_requests $request_method $request_uri $status $body_bytes_sent';
    access_log {tmp}/access.log conns;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000;
    keepalive_timeout 30s;
    gzip on;
    gzip_types text/plain;
    gzip_min_length 0;
    server {{
        listen 127.0.0.1:{port};
        root {www};
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www};
    }}
}}
""".format(tmp=tmp, www=www, port=self.port, tls_port=self.tls_port, cert=cert, key=key))
        # as root, nginx may hand work to an unprivileged user: make
        # everything it reads world-readable
        for dirpath, dirs, files in os.walk(tmp):
            os.chmod(dirpath, 0o755)
            for name in files:
                os.chmod(os.path.join(dirpath, name), 0o644)
        self.proc = subprocess.Popen([nginx, "-p", tmp, "-c", conf, "-e", self.errlog],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(tmp, "stderr.log"), "wb"))
        _procs.append(self.proc)
        wait_port(self.port, self.proc, self.errlog)
        wait_port(self.tls_port, self.proc, self.errlog)
        self.base = "http://127.0.0.1:%d" % self.port
        self.tls_base = "https://127.0.0.1:%d" % self.tls_port

    def log_lines(self):
        """[(connection, connection_requests, method, uri, status, bytes)]"""
        out = []
        for line in read(self.access).splitlines():
            c, n, m, uri, st, size = line.split(" ")
            out.append((int(c), int(n), m, uri, int(st), int(size)))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def get(nbio, args, timeout=30.0):
    return run_tool(nbio, ["get"] + args, b"", timeout)


def ok(r, what):
    check(r.returncode == 0, "%s: exit %d, stderr %r" % (what, r.returncode, r.stderr[-2000:]))


def wait_log(ng, mark, n, what):
    """Waits (bounded) until n more requests are in the access log; returns
    them."""
    deadline = time.monotonic() + 5
    while True:
        lines = ng.log_lines()[mark:]
        if len(lines) >= n or time.monotonic() > deadline:
            check(len(lines) == n, "%s: %d access log lines, want %d: %r"
                  % (what, len(lines), n, lines))
            return lines
        time.sleep(0.05)


def test(nbio):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        print("SKIP: nginx is not installed (scripts/install-deps installs it)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="nbio-nginx-")
    ng = None
    try:
        made = make_self_signed(tmp)
        check(made is not None, "openssl is needed for this test")
        cert, key = made
        www = os.path.join(tmp, "www")
        os.mkdir(www)
        big = payload(3 * 1000 * 1000, 11)
        files = {"small.txt": b"hello from nginx\n", "empty.bin": b"", "big.bin": big,
                 "text.txt": TEXT}
        for name, data in files.items():
            with open(os.path.join(www, name), "wb") as f:
                f.write(data)
        ng = Nginx(nginx, tmp, cert, key)
        step("nginx %s on %s and %s" % (subprocess.run([nginx, "-v"], stderr=subprocess.PIPE)
                                        .stderr.decode().strip(), ng.base, ng.tls_base))

        for name, data in files.items():
            step("static file %s (%d bytes), byte-exact" % (name, len(data)))
            r = get(nbio, [ng.base + "/" + name])
            ok(r, name)
            check(r.stdout == data, "%s: %d bytes, want %d (identical: %s)"
                  % (name, len(r.stdout), len(data), r.stdout == data))

        step("keep-alive: three URLs, one connection in nginx's access log")
        mark = len(ng.log_lines())
        r = get(nbio, ["-v", ng.base + "/small.txt", ng.base + "/big.bin", ng.base + "/empty.bin"])
        ok(r, "three URLs")
        check(r.stdout == files["small.txt"] + big, "three URLs: output differs")
        lines = wait_log(ng, mark, 3, "three URLs")
        conns = set(l[0] for l in lines)
        check(len(conns) == 1, "three URLs used %d connections: %r" % (len(conns), lines))
        check([l[1] for l in lines] == [1, 2, 3], "connection_requests %r" % [l[1] for l in lines])
        check(r.stderr.decode().count("* reusing connection to") == 2,
              "-v should report two reuses: %r" % r.stderr)

        step("--pipeline: 16 requests, one connection, in order")
        mark = len(ng.log_lines())
        urls = ["%s/small.txt?n=%d" % (ng.base, i) for i in range(16)]
        r = get(nbio, ["--pipeline"] + urls)
        ok(r, "--pipeline")
        check(r.stdout == files["small.txt"] * 16, "--pipeline output differs (%d bytes)"
              % len(r.stdout))
        lines = wait_log(ng, mark, 16, "--pipeline")
        check(len(set(l[0] for l in lines)) == 1, "--pipeline: connections %r" % lines)
        check([l[3] for l in lines] == ["/small.txt?n=%d" % i for i in range(16)],
              "--pipeline: order %r" % [l[3] for l in lines])
        check([l[1] for l in lines] == list(range(1, 17)), "--pipeline: connection_requests %r"
              % [l[1] for l in lines])

        step("--compressed: nginx sends gzip, the output is the file")
        mark = len(ng.log_lines())
        r = get(nbio, ["--compressed", ng.base + "/text.txt"])
        ok(r, "--compressed")
        check(r.stdout == TEXT, "--compressed: %d bytes, want %d" % (len(r.stdout), len(TEXT)))
        sent = wait_log(ng, mark, 1, "--compressed")[0][5]
        check(sent < len(TEXT) // 4, "--compressed: nginx sent %d bytes for %d (not gzipped?)"
              % (sent, len(TEXT)))
        r = get(nbio, ["-i", "--compressed", ng.base + "/text.txt"])
        ok(r, "-i --compressed")
        check(re.search(rb"\r\nContent-Encoding: gzip\r\n", r.stdout) is not None,
              "-i --compressed shows the head as received: %r" % r.stdout[:400])
        mark = len(ng.log_lines())
        r = get(nbio, [ng.base + "/text.txt"])
        ok(r, "no --compressed")
        check(r.stdout == TEXT, "no --compressed: output differs")
        sent = wait_log(ng, mark, 1, "no --compressed")[0][5]
        check(sent == len(TEXT), "without --compressed nginx sent %d bytes, want %d"
              % (sent, len(TEXT)))

        step("HTTPS with --cacert: byte-exact, keep-alive")
        mark = len(ng.log_lines())
        r = get(nbio, ["--cacert", cert, ng.tls_base + "/big.bin", ng.tls_base + "/small.txt"])
        ok(r, "https")
        check(r.stdout == big + files["small.txt"], "https: output differs (%d bytes)"
              % len(r.stdout))
        lines = wait_log(ng, mark, 2, "https")
        check(len(set(l[0] for l in lines)) == 1, "https: connections %r" % lines)
        r = get(nbio, ["--pipeline", "--cacert", cert] +
                ["%s/small.txt?%d" % (ng.tls_base, i) for i in range(4)])
        ok(r, "https --pipeline")
        check(r.stdout == files["small.txt"] * 4, "https --pipeline output differs")
        r = get(nbio, [ng.tls_base + "/small.txt"])
        check(r.returncode == 1 and b"NBIO_ECERTVERIFY" in r.stderr,
              "https without --cacert: exit %d, stderr %r" % (r.returncode, r.stderr))

        step("nbio get -i / -I and curl -si / -sI print the same bytes")
        curl = shutil.which("curl")
        check(curl is not None, "curl is needed (scripts/install-deps installs it)")
        date = re.compile(rb"\r\nDate: [^\r]*\r\n")
        for flag, path in (("-i", "/small.txt"), ("-i", "/empty.bin"), ("-i", "/missing"),
                           ("-I", "/big.bin"), ("-i", "/text.txt")):
            c = subprocess.run([curl, "-s" + flag[1], ng.base + path], stdout=subprocess.PIPE,
                               timeout=30)
            r = get(nbio, [flag, ng.base + path])
            ok(r, flag + " " + path)
            want = date.sub(b"\r\nDate: X\r\n", c.stdout)
            got = date.sub(b"\r\nDate: X\r\n", r.stdout)
            check(got == want, "%s %s:\n nbio: %r\n curl: %r" % (flag, path, got[:500], want[:500]))

        check(ng.proc.poll() is None, "nginx died: %s" % read(ng.errlog))
    finally:
        if ng is not None:
            ng.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(test, watchdog=60)
