#!/usr/bin/env python3
"""`nbio serve` against curl, Python's http.client and raw sockets.

A root directory is made in a temporary directory (small, empty and 50 MB
files, an index.html, a directory to list with names that need escaping,
symbolic links inside and outside the root, a secret file beside the root),
and `nbio serve` runs over it on a free loopback port (and over HTTPS with a
certificate made by `openssl req`).

 - curl: files byte-exact (small, empty, 50 MB: the server's peak RSS stays
   far below the file), HEAD, Range (A-B, A-, -N, 416), If-Modified-Since
   (304, and 200 for an older date), keep-alive (curl -v says it re-used the
   connection, the access log shows one client port), POST /echo with
   Content-Length and chunked, HTTPS (--cacert, ALPN http/1.1), directory
   listing (escaped names, index.html, 301 to the slash form), 404, 405
   with Allow;
 - raw sockets: 100 pipelined requests in one send, 100 in-order responses;
   each smuggling or limit case answered with its exact status, then the
   connection closed; path traversal (.., %2e%2e, %2f, absolute paths,
   links out of the root) never returns the outside file;
 - a client sending its head one byte per 100 ms is closed after
   --header-timeout (1000 ms) while another client keeps being served;
   --idle-timeout closes an idle keep-alive connection;
 - http.client: keep-alive GET/HEAD/POST on one connection;
 - `nbio get` against `nbio serve` (also --pipeline);
 - a small file rewritten, replaced or removed is seen within 2 s (the
   server keeps files up to 64 KiB in memory for at most a second);
 - SIGTERM while a large response is in flight: it completes, exit 0;
   usage errors exit 2, a bad certificate or listen address exit 1;
 - --idle spin, a Unix socket (removed at exit) and [::1] serve too.
"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from nbio_interop import (_procs, check, main, make_self_signed, proc_status_kib, read_line,
                          run_tool, step)

SMALL = b"".join(b"line %d of the small file\n" % i for i in range(100))
SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT\n"
BIG_SIZE = 50 * 1000 * 1000
MID_SIZE = 3 * 1000 * 1000


class Serve:
    """`nbio serve` as a subprocess; stderr goes to a temporary file."""

    def __init__(self, nbio, root, *args):
        self.err = tempfile.TemporaryFile()
        cmd = [nbio, "serve", "--listen", "127.0.0.1:0", "--root", root] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err)
        _procs.append(self.proc)
        line = read_line(self.proc.stdout, 20.0)
        check(line.startswith(b"listening on "),
              "serve's first line should be 'listening on ADDR', got %r (stderr: %r)"
              % (line, self.stderr()))
        self.addr = line[len(b"listening on "):].strip().decode()
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)
        check(self.port != 0, "the real port is printed, not 0: %r" % line)

    def url(self, path, scheme="http"):
        return "%s://%s%s" % (scheme, self.addr, path)

    def stderr(self):
        fd = self.err.fileno()
        out = b""
        while True:
            b = os.pread(fd, 65536, len(out))
            if not b:
                return out.decode(errors="replace")
            out += b

    def access(self):
        """Access-log lines: (client, method, target, status, bytes)."""
        out = []
        for m in re.finditer(r'^(\S+) "(\S+) (\S+) HTTP/1\.\d" (\d{3}) (\d+)$',
                             self.stderr(), re.M):
            out.append((m.group(1), m.group(2), m.group(3), int(m.group(4)), int(m.group(5))))
        return out

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("serve did not exit within %.0f s of signal %d" % (timeout, sig))


DEFERRED = []


def check_later(cond, message):
    """Records a failure and lets the rest of the test run; test() fails at
    the end when any was recorded."""
    if not cond:
        step("FAILED (reported at the end): " + message)
        DEFERRED.append(message)


def sanitized(nbio):
    """True when nbio is built with a sanitizer runtime (its quarantine of
    freed memory makes RSS meaningless)."""
    with open(nbio, "rb") as f:
        data = f.read()
    return any(k in data for k in (b"__asan_init", b"__msan_init", b"__tsan_init"))


def curl(args, timeout=60):
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 10)
    return r


def curl_head(args):
    """curl -si ...: (status, headers dict lower-cased, body)."""
    r = curl(["-i"] + args)
    check(r.returncode == 0, "curl %r failed: %r" % (args, r.stderr))
    return parse_response(r.stdout)


def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return status, headers, body


class Conn:
    """A raw client connection that reads whole responses."""

    def __init__(self, srv, timeout=10.0):
        self.s = socket.create_connection((srv.host, srv.port), timeout=timeout)
        self.buf = bytearray()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        b = self.s.recv(1 << 20)
        if not b:
            raise EOFError("closed by the server (%d bytes unread: %r)"
                           % (len(self.buf), bytes(self.buf[:200])))
        self.buf += b

    def response(self, head_request=False):
        while self.buf.find(b"\r\n\r\n") < 0:
            self._fill()
        end = self.buf.find(b"\r\n\r\n")
        head = bytes(self.buf[:end])
        del self.buf[:end + 4]
        lines = head.split(b"\r\n")
        check(lines[0].startswith(b"HTTP/1.1 "), "bad status line %r" % lines[0])
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        n = 0
        if not (head_request or status in (204, 304) or status < 200):
            check("transfer-encoding" not in headers, "unexpected chunked response")
            n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body = bytes(self.buf[:n])
        del self.buf[:n]
        return status, headers, body

    def closed(self, timeout=5.0):
        """True when the server closes (EOF or reset) within timeout with
        nothing more sent."""
        self.s.settimeout(timeout)
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    return self.buf == b""
                self.buf += b
        except ConnectionResetError:
            return self.buf == b""
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def get(srv, path, extra=b""):
    c = Conn(srv)
    c.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n")
    r = c.response()
    c.close()
    return r


def make_tree(tmp):
    root = os.path.join(tmp, "www")
    outside = os.path.join(tmp, "outside")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "list", "inner dir"))
    os.makedirs(os.path.join(root, "many"))
    os.makedirs(outside)
    with open(os.path.join(outside, "secret.txt"), "wb") as f:
        f.write(SECRET)
    with open(os.path.join(tmp, "secret.txt"), "wb") as f:
        f.write(SECRET)
    with open(os.path.join(root, "small.txt"), "wb") as f:
        f.write(SMALL)
    open(os.path.join(root, "empty.bin"), "wb").close()
    with open(os.path.join(root, "big.bin"), "wb") as f:
        block = os.urandom(1 << 20)
        left = BIG_SIZE
        i = 0
        while left > 0:
            chunk = bytes([i & 0xFF]) + block[1:]
            f.write(chunk[:left])
            left -= min(left, len(chunk))
            i += 1
    with open(os.path.join(root, "mid.bin"), "wb") as f:
        f.write(os.urandom(MID_SIZE))
    with open(os.path.join(root, "sub", "index.html"), "wb") as f:
        f.write(b"<h1>sub index</h1>\n")
    for name in ["a&b<c>.txt", "quote\"s'.txt", "sp ace.html", "100%.txt", "caf\u00e9.txt"]:
        with open(os.path.join(root, "list", name), "wb") as f:
            f.write(b"x")
    for i in range(100):
        with open(os.path.join(root, "many", "f%03d.txt" % i), "wb") as f:
            f.write(b"file number %d\n" % i * (i + 1))
    with open(os.path.join(root, "page.html"), "wb") as f:
        f.write(b"<p>hi</p>\n")
    with open(os.path.join(root, "data.json"), "wb") as f:
        f.write(b"{}\n")
    # links: out of the root (file, dir, absolute, relative), and inside it
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "link_out"))
    os.symlink("../outside", os.path.join(root, "linkdir_out"))
    os.symlink("../../secret.txt", os.path.join(root, "sub", "rel_out"))
    os.symlink(os.path.join(root, "small.txt"), os.path.join(root, "abs_in"))
    os.symlink("small.txt", os.path.join(root, "rel_in"))
    return root


def test_curl(nbio, srv, root, tmp):
    step("curl: files byte-exact (small, empty, 50 MB)")
    for name in ["small.txt", "empty.bin", "big.bin"]:
        out = os.path.join(tmp, "got-" + name)
        t0 = time.monotonic()
        r = curl(["-o", out, "-w", "%{http_code} %{size_download} %{content_type}",
                  srv.url("/" + name)])
        check(r.returncode == 0, "curl %s: %r" % (name, r.stderr))
        with open(out, "rb") as f, open(os.path.join(root, name), "rb") as g:
            check(f.read() == g.read(), "%s differs from the file" % name)
        step("  %s: %s (%.2f s)" % (name, r.stdout.decode(), time.monotonic() - t0))
        check(r.stdout.decode().startswith("200 %d " % os.path.getsize(os.path.join(root, name))),
              "%s: %r" % (name, r.stdout))
    hwm = proc_status_kib(srv.proc.pid, "VmHWM")
    step("  server peak RSS after the 50 MB file: %d KiB" % hwm)
    if sanitized(nbio):
        step("  peak RSS not judged: nbio is built with a sanitizer")
    else:
        check(hwm < 20 * 1024, "the server's peak RSS is %d KiB: was the file held in memory?"
              % hwm)

    step("curl: content types")
    for path, ctype in [("/small.txt", "text/plain; charset=utf-8"), ("/empty.bin",
                        "application/octet-stream"), ("/page.html", "text/html; charset=utf-8"),
                        ("/data.json", "application/json")]:
        st, h, _ = curl_head([srv.url(path)])
        check(st == 200 and h.get("content-type") == ctype, "%s: %d %r" % (path, st, h))

    step("curl: HEAD")
    st, h, body = curl_head(["-I", srv.url("/big.bin")])
    check(st == 200 and h["content-length"] == str(BIG_SIZE) and body == b"",
          "HEAD big.bin: %d %r %r" % (st, h, body[:50]))
    check(re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$", h["last-modified"]),
          "Last-Modified %r" % h["last-modified"])
    check(h.get("accept-ranges") == "bytes", "Accept-Ranges: %r" % h)
    # HEAD then GET on one connection: no body after the HEAD's head
    c = Conn(srv)
    c.send(b"HEAD /small.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h, body = c.response(head_request=True)
    check(st == 200 and h["content-length"] == str(len(SMALL)), "HEAD: %d %r" % (st, h))
    st, h, body = c.response()
    check(st == 200 and body == SMALL, "GET after HEAD: %d %r" % (st, body[:80]))
    c.close()

    step("curl: Range A-B, A-, -N, 416")
    size = len(SMALL)
    for rng, start, end in [("10-19", 10, 19), ("2500-", 2500, size - 1), ("-7", size - 7,
                            size - 1), ("0-99999", 0, size - 1), ("-99999", 0, size - 1)]:
        st, h, body = curl_head(["-H", "Range: bytes=" + rng, srv.url("/small.txt")])
        check(st == 206, "Range %s: status %d" % (rng, st))
        check(body == SMALL[start:end + 1], "Range %s: body %r" % (rng, body))
        check(h.get("content-range") == "bytes %d-%d/%d" % (start, end, size),
              "Range %s: Content-Range %r" % (rng, h.get("content-range")))
        check(h.get("content-length") == str(end - start + 1), "Range %s: %r" % (rng, h))
    out = os.path.join(tmp, "range-big")
    r = curl(["-r", "1000000-2999999", "-o", out, "-w", "%{http_code}", srv.url("/big.bin")])
    with open(out, "rb") as f, open(os.path.join(root, "big.bin"), "rb") as g:
        g.seek(1000000)
        check(r.stdout == b"206" and f.read() == g.read(2000000), "Range on big.bin: %r"
              % r.stdout)
    for rng in ["5000-", "5000-6000", "-0"]:
        st, h, _ = curl_head(["-H", "Range: bytes=" + rng, srv.url("/small.txt")])
        check(st == 416 and h.get("content-range") == "bytes */%d" % size,
              "Range %s: %d %r" % (rng, st, h))
    st, h, _ = curl_head(["-H", "Range: bytes=0-", srv.url("/empty.bin")])
    check(st == 416 and h.get("content-range") == "bytes */0", "Range on empty: %d %r" % (st, h))
    st, _, body = curl_head(["-H", "Range: bytes=0-1,5-6", srv.url("/small.txt")])
    check(st == 200 and body == SMALL, "several ranges: the whole file (%d)" % st)
    st, _, body = curl_head(["-H", "Range: bytes=9-3", srv.url("/small.txt")])
    check(st == 200 and body == SMALL, "an invalid range is ignored (%d)" % st)

    step("curl: If-Modified-Since")
    st, h, _ = curl_head([srv.url("/small.txt")])
    lm = h["last-modified"]
    st, h2, body = curl_head(["-H", "If-Modified-Since: " + lm, srv.url("/small.txt")])
    check(st == 304 and body == b"", "If-Modified-Since = Last-Modified: %d %r" % (st, body))
    check(h2.get("last-modified") == lm, "304 keeps Last-Modified: %r" % h2)
    st, _, body = curl_head(["-H", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT",
                             srv.url("/small.txt")])
    check(st == 200 and body == SMALL, "older If-Modified-Since: %d" % st)
    st, _, body = curl_head(["-H", "If-Modified-Since: garbage", srv.url("/small.txt")])
    check(st == 200 and body == SMALL, "malformed If-Modified-Since is ignored: %d" % st)

    step("curl: keep-alive, one connection for several URLs")
    before = len(srv.access())
    r = curl(["-v", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
              srv.url("/small.txt"), srv.url("/page.html"), srv.url("/sub/")])
    check(r.returncode == 0, "curl: %r" % r.stderr)
    reuse = r.stderr.count(b"Re-using existing connection")
    check(reuse == 2, "curl re-used the connection %d times (want 2): %r" % (reuse, r.stderr))
    time.sleep(0.2)
    lines = srv.access()[before:]
    ports = {l[0] for l in lines}
    check(len(lines) == 3 and len(ports) == 1,
          "access log: 3 lines from one client address, got %r" % lines)

    step("curl: POST /echo (Content-Length and chunked)")
    data = os.urandom(300000)
    src = os.path.join(tmp, "post.bin")
    with open(src, "wb") as f:
        f.write(data)
    for extra in [[], ["-H", "Transfer-Encoding: chunked"]]:
        r = curl(["-i", "--data-binary", "@" + src, "-H", "Content-Type: application/x-test"]
                 + extra + [srv.url("/echo")])
        if r.returncode != 0 and extra:
            check_later(False, "300 KB chunked POST /echo failed: %r" % r.stderr)
            continue
        st, h, body = parse_response(r.stdout)
        check(st == 200 and body == data, "POST /echo %r: %d, %d bytes" % (extra, st, len(body)))
        check(h.get("content-type") == "application/x-test", "echoed Content-Type: %r" % h)
    # a large chunked body is read as fast as one with Content-Length (the
    # read buffer must grow by more than a byte at a time)
    data = os.urandom(4000000)
    with open(src, "wb") as f:
        f.write(data)
    took = {}
    for what, extra in [("Content-Length", []), ("chunked", ["-H", "Transfer-Encoding: chunked"])]:
        t0 = time.monotonic()
        r = curl(["--data-binary", "@" + src] + extra + [srv.url("/echo")])
        took[what] = time.monotonic() - t0
        (check_later if extra else check)(
            r.returncode == 0 and r.stdout == data, "4 MB POST /echo (%s): %d bytes back, %r"
            % (what, len(r.stdout), r.stderr))
    step("  4 MB POST /echo: Content-Length %.2f s, chunked %.2f s"
         % (took["Content-Length"], took["chunked"]))
    check_later(took["chunked"] < 2.0, "a 4 MB chunked POST /echo took %.2f s (Content-Length: "
                "%.2f s)" % (took["chunked"], took["Content-Length"]))
    r = curl(["-i", "-X", "POST", srv.url("/echo")])
    st, h, body = parse_response(r.stdout)
    check(st == 200 and body == b"" and h.get("content-length") == "0",
          "empty POST /echo: %d %r" % (st, h))

    step("curl: directory listing, index.html, redirect")
    st, h, body = curl_head([srv.url("/list/")])
    check(st == 200 and h["content-type"].startswith("text/html"), "listing: %d %r" % (st, h))
    page = body.decode()
    for href, text in [("a%26b%3Cc%3E.txt", "a&amp;b&lt;c&gt;.txt"),
                       ("quote%22s%27.txt", "quote&quot;s&#39;.txt"),
                       ("sp%20ace.html", "sp ace.html"), ("100%25.txt", "100%.txt"),
                       ("caf%C3%A9.txt", "caf\u00e9.txt"), ("inner%20dir/", "inner dir/")]:
        check('<a href="%s">%s</a>' % (href, text) in page,
              "listing lacks %s / %s: %s" % (href, text, page))
    check("<c>" not in page and "\"s'" not in page, "an unescaped name in the listing")
    r = curl(["-o", "/dev/null", "-w", "%{http_code}", srv.url("/list/a%26b%3Cc%3E.txt")])
    check(r.stdout == b"200", "a listed link works: %r" % r.stdout)
    st, _, body = curl_head([srv.url("/sub/")])
    check(st == 200 and body == b"<h1>sub index</h1>\n", "index.html: %d %r" % (st, body))
    st, h, _ = curl_head([srv.url("/sub?q=1")])
    check(st == 301 and h.get("location") == "/sub/?q=1", "directory without slash: %d %r"
          % (st, h))
    st, _, body = curl_head([srv.url("/")])
    check(st == 200 and b'href="small.txt"' in body, "root listing: %d" % st)

    step("curl: 404, 405 with Allow")
    st, _, _ = curl_head([srv.url("/nope.txt")])
    check(st == 404, "missing file: %d" % st)
    for method in ["DELETE", "PUT", "POST", "OPTIONS"]:
        st, h, _ = curl_head(["-X", method, srv.url("/small.txt")])
        check(st == 405 and h.get("allow") == "GET, HEAD", "%s: %d %r" % (method, st, h))


def test_https(nbio, root, tmp):
    step("HTTPS: curl --cacert, ALPN http/1.1")
    made = make_self_signed(tmp)
    check(made is not None, "openssl is needed")
    cert, key = made
    srv = Serve(nbio, root, "--tls-cert", cert, "--tls-key", key)
    out = os.path.join(tmp, "tls-big")
    r = curl(["-v", "--cacert", cert, "-o", os.path.join(tmp, "tls-small"),
              srv.url("/small.txt", "https"), "-o", out, srv.url("/big.bin", "https")])
    check(r.returncode == 0, "curl https: %r" % r.stderr[-2000:])
    check(b"ALPN: server accepted http/1.1" in r.stderr,
          "ALPN http/1.1 not accepted: %r" % r.stderr[-3000:])
    check(b"Re-using existing connection" in r.stderr, "HTTPS keep-alive not re-used")
    with open(os.path.join(tmp, "tls-small"), "rb") as f:
        check(f.read() == SMALL, "small over HTTPS differs")
    with open(out, "rb") as f, open(os.path.join(root, "big.bin"), "rb") as g:
        check(f.read() == g.read(), "big over HTTPS differs")
    r = curl(["--cacert", cert, "--data-binary", "hello tls", srv.url("/echo", "https")])
    check(r.stdout == b"hello tls", "POST /echo over HTTPS: %r" % r.stdout)
    # a refusal travels inside TLS too, then the connection ends
    import ssl
    ctx = ssl.create_default_context(cafile=cert)
    for raw, want in [(b"GET /small.txt HTTP/2.0\r\nHost: x\r\n\r\n", 505),
                      (b"GET /small.txt HTTP/1.1\r\nX: y\r\n\r\n", 400)]:
        s = ctx.wrap_socket(socket.create_connection((srv.host, srv.port), timeout=10),
                            server_hostname="127.0.0.1")
        s.sendall(raw)
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (ssl.SSLError, ConnectionResetError):
            pass
        s.close()
        st, h, _ = parse_response(out) if out else (0, {}, b"")
        check(st == want and h.get("connection") == "close",
              "refusal over TLS: %d %r (want %d)" % (st, out[:100], want))
    # plain HTTP to the HTTPS port: refused, the server goes on
    r = curl(["-o", "/dev/null", srv.url("/small.txt")], timeout=5)
    check(r.returncode != 0, "plain HTTP to the HTTPS port should fail")
    r = curl(["--cacert", cert, srv.url("/small.txt", "https")])
    check(r.stdout == SMALL, "HTTPS after a plain-text client")
    check(srv.stop() == 0, "exit status after SIGTERM")


def test_pipelining(srv):
    step("raw: 100 pipelined requests in one send, 100 in-order responses")
    c = Conn(srv)
    reqs = b"".join(b"GET /many/f%03d.txt HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(100))
    c.send(reqs)
    for i in range(100):
        st, h, body = c.response()
        check(st == 200 and body == b"file number %d\n" % i * (i + 1),
              "pipelined response %d: %d %r" % (i, st, body[:40]))
    # the connection is still usable
    c.send(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    st, h, body = c.response()
    check(st == 200 and body == SMALL and h.get("connection") == "close", "after the pipeline")
    check(c.closed(), "Connection: close is honoured")
    c.close()

    step("raw: pipelined mix (HEAD, 404, POST /echo, range) in order")
    c = Conn(srv)
    c.send(b"HEAD /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
           b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
           b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
           b"GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\n\r\n"
           b"GET /small.txt HTTP/1.0\r\n\r\n")
    st, h, body = c.response(head_request=True)
    check(st == 200 and h["content-length"] == str(len(SMALL)), "HEAD %d" % st)
    st, _, _ = c.response()
    check(st == 404, "404 %d" % st)
    st, _, body = c.response()
    check(st == 200 and body == b"hello", "echo CL %d %r" % (st, body))
    st, _, body = c.response()
    check(st == 200 and body == b"abcde", "echo chunked %d %r" % (st, body))
    st, _, body = c.response()
    check(st == 206 and body == SMALL[:5], "range %d %r" % (st, body))
    st, h, body = c.response()
    check(st == 200 and body == SMALL, "HTTP/1.0 %d" % st)
    check(c.closed(), "HTTP/1.0 without keep-alive closes")
    c.close()


def test_refusals(nbio, root):
    step("raw: smuggling and limits, each refused with its status, then closed")
    srv = Serve(nbio, root, "--max-body", "1M")
    long_target = b"/" + b"a" * 9000
    cases = [
        ("Content-Length with Transfer-Encoding", 400,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two different Content-Length", 400,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        ("Content-Length list that differs", 400,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd"),
        ("Transfer-Encoding: gzip (chunked not last)", 400,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
        ("Transfer-Encoding: chunked, gzip", 400,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        ("Transfer-Encoding: chunked twice", 400,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("unknown transfer coding", 501,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n"),
        ("bad chunk size", 400,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"),
        ("chunk size with a sign", 400,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n"),
        ("bare LF in the head", 400, b"GET /small.txt HTTP/1.1\nHost: x\r\n\r\n"),
        ("bare LF after a field", 400, b"GET /small.txt HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"),
        ("bare CR", 400, b"GET /small.txt HTTP/1.1\r\nHost: x\rX: y\r\n\r\n"),
        ("obs-fold", 400, b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n"),
        ("space before colon", 400, b"GET /small.txt HTTP/1.1\r\nHost : x\r\n\r\n"),
        ("request line over 8 KiB", 414, b"GET " + long_target + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("200 header fields", 431, b"GET /small.txt HTTP/1.1\r\nHost: x\r\n"
         + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"),
        ("a field line over 8 KiB", 431,
         b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n"),
        ("HTTP/2.0", 505, b"GET /small.txt HTTP/2.0\r\nHost: x\r\n\r\n"),
        ("HTTP/1.2", 505, b"GET /small.txt HTTP/1.2\r\nHost: x\r\n\r\n"),
        ("body over --max-body (Content-Length)", 413,
         b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"),
        ("missing Host in HTTP/1.1", 400, b"GET /small.txt HTTP/1.1\r\nX: y\r\n\r\n"),
        ("two Host headers", 400, b"GET /small.txt HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        ("garbage request line", 400, b"HELLO\r\n\r\n"),
        ("a control byte in the target", 400, b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]
    for what, want, raw in cases:
        c = Conn(srv)
        c.send(raw)
        try:
            st, h, body = c.response()
        except EOFError as e:
            raise AssertionError("%s: no response before the close (%s)" % (what, e))
        check(st == want, "%s: status %d, want %d (%r)" % (what, st, want, body))
        check(h.get("connection") == "close", "%s: no Connection: close in %r" % (what, h))
        check(c.closed(), "%s: the connection stays open after the refusal" % what)
        c.close()
        step("  %-40s %d, closed" % (what, st))

    step("raw: a chunked body growing over --max-body: 413")
    c = Conn(srv)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % 65536 + b"z" * 65536 + b"\r\n"
    st = None
    try:
        for _ in range(40):
            c.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        st, h, _ = c.response()
        check(st == 413, "chunked over --max-body: %d" % st)
    except (EOFError, ConnectionResetError) as e:
        check_later(False, "chunked over --max-body: no 413 before the close (%s)" % e)
    c.close()

    step("raw: Expect: 100-continue within and over --max-body")
    c = Conn(srv)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    st, _, _ = c.response()
    check(st == 100, "100 Continue expected, got %d" % st)
    c.send(b"abcd")
    st, _, body = c.response()
    check(st == 200 and body == b"abcd", "echo after 100-continue: %d %r" % (st, body))
    c.close()
    c = Conn(srv)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
           b"Expect: 100-continue\r\n\r\n")
    st, _, _ = c.response()
    check(st == 413 and c.closed(), "over --max-body with Expect: %d" % st)
    c.close()

    step("raw: answers queued before a refusal still go out whole, then the refusal")
    c = Conn(srv)
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    c.send(b"GET /mid.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 2 +
           b"GET /small.txt HTTP/2.0\r\nHost: x\r\n\r\n")
    time.sleep(1.0)  # not reading yet: the answers back up in the server
    got = []
    try:
        for _ in range(3):
            st, _, body = c.response()
            got.append((st, len(body)))
        closed = c.closed()
    except (EOFError, ConnectionResetError) as e:
        closed = "cut: %s" % str(e)[:80]
    step("  got %r, closed: %r" % (got, closed))
    ok = (len(got) == 3 and got[0] == (200, MID_SIZE) and got[1] == (200, MID_SIZE) and
          got[2][0] == 505 and closed is True)
    check_later(ok,
                "two 3 MB answers then a 505 (the refusal closes after the answers queued "
                "before it): got %r, closed %r" % (got, closed))
    c.close()

    # every refusal was logged, and the server is still fine
    st, _, body = get(srv, b"/small.txt")
    check(st == 200 and body == SMALL, "the server serves after the refusals")
    refusals = [l for l in srv.access() if l[1] == "-"]
    check(len(refusals) == 0, "a refusal logged as a request: %r" % refusals)
    logged = re.findall(r'^\S+ "-" (\d{3}) 0$', srv.stderr(), re.M)
    check(len(logged) >= len(cases), "refusals in the access log: %d of %d (%s)"
          % (len(logged), len(cases), srv.stderr()[-2000:]))
    check(srv.stop() == 0, "exit status after SIGTERM")


def test_traversal(srv):
    step("raw: path traversal never reaches the outside")
    attempts = [
        (b"/../secret.txt", (400,)),
        (b"/../outside/secret.txt", (400,)),
        (b"/sub/../../secret.txt", (400,)),
        (b"/%2e%2e/secret.txt", (400,)),
        (b"/%2E%2E/outside/secret.txt", (400,)),
        (b"/.%2e/secret.txt", (400,)),
        (b"/sub/%2e%2e/%2e%2e/secret.txt", (400,)),
        (b"/..%2fsecret.txt", (400,)),
        (b"/sub%2f..%2f..%2fsecret.txt", (400,)),
        (b"/%2f" + os.path.dirname(os.path.dirname(srv.root)).encode().lstrip(b"/")
         + b"/secret.txt", (400,)),
        (b"//etc/passwd", (404,)),
        (b"/etc/passwd", (404,)),
        (b"http://x/../secret.txt", (400,)),
        (b"/link_out", (403,)),
        (b"/linkdir_out/secret.txt", (403,)),
        (b"/sub/rel_out", (403,)),
        (b"/small.txt%00.html", (400,)),
        (b"/%zz", (400,)),
        (b"secret.txt", (400,)),
    ]
    for target, want in attempts:
        st, _, body = get(srv, target)
        check(SECRET not in body and b"root:" not in body,
              "%r returned the outside file!" % target)
        check(st in want, "%r: status %d, want %r" % (target, st, want))
    # the absolute path of the secret, as a target, is looked up under the root
    st, _, body = get(srv, os.path.join(os.path.dirname(srv.root), "secret.txt").encode())
    check(st == 404 and SECRET not in body, "absolute path: %d" % st)
    # links that stay inside the root are served
    for target in [b"/abs_in", b"/rel_in", b"/./small.txt", b"//small.txt"]:
        st, _, body = get(srv, target)
        check(st == 200 and body == SMALL, "%r: %d" % (target, st))
    st, _, body = get(srv, b"/%73mall.txt?x=1")
    check(st == 200 and body == SMALL, "percent-decoded name: %d" % st)
    st, _, body = get(srv, b"http://localhost/small.txt")
    check(st == 200 and body == SMALL, "absolute-form target: %d" % st)
    # the listing does not follow links out either
    st, _, body = get(srv, b"/linkdir_out/")
    check(st == 403 and SECRET not in body, "listing through a link out: %d" % st)


def test_slow_client(nbio, root):
    step("slow head (1 byte / 100 ms) closed after --header-timeout 1000, others served")
    srv = Serve(nbio, root, "--header-timeout", "1000", "--idle-timeout", "1500")
    good_errors, good_count, latencies = [], [0], []
    stop = threading.Event()

    def good():
        try:
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
            while not stop.is_set():
                t0 = time.monotonic()
                conn.request("GET", "/small.txt")
                r = conn.getresponse()
                body = r.read()
                latencies.append(time.monotonic() - t0)
                if r.status != 200 or body != SMALL:
                    raise AssertionError("good client: %d" % r.status)
                good_count[0] += 1
                stop.wait(0.05)
            conn.close()
        except BaseException as e:
            good_errors.append(e)

    t = threading.Thread(target=good, daemon=True)
    t.start()
    slow = socket.create_connection((srv.host, srv.port), timeout=10)
    head = b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    t0 = time.monotonic()
    closed_at = None
    sent = 0
    for b in head:
        try:
            slow.sendall(bytes([b]))
            sent += 1
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.monotonic() - t0
            break
        r, _, _ = __import__("select").select([slow], [], [], 0.1)
        if r:
            try:
                data = slow.recv(4096)
            except ConnectionResetError:
                data = b""
            check(data == b"" or data.startswith(b"HTTP/1.1 408"),
                  "the slow client got %r" % data[:100])
            closed_at = time.monotonic() - t0
            break
    check(closed_at is not None, "the slow client was never closed (%d bytes sent)" % sent)
    step("  slow client closed after %.2f s, %d bytes sent" % (closed_at, sent))
    check(0.9 <= closed_at <= 3.0, "closed after %.2f s, want about 1 s" % closed_at)
    check(sent < len(head), "the whole head went through")
    time.sleep(0.3)
    stop.set()
    t.join(10)
    check(not good_errors, "the good client failed: %r" % good_errors)
    check(good_count[0] >= 10, "the good client made only %d requests" % good_count[0])
    lat = sorted(latencies)
    check(lat[len(lat) // 2] < 0.05, "good client median latency %.1f ms"
          % (lat[len(lat) // 2] * 1000))
    log = srv.stderr()
    check(re.search(r"closed \S+: request head not complete after 1000 ms \(--header-timeout\)",
                    log), "no header-timeout line in %r" % log[-1000:])

    step("--idle-timeout 1500: an idle keep-alive connection is closed")
    c = Conn(srv)
    c.send(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    st, _, body = c.response()
    check(st == 200 and body == SMALL, "first request")
    t0 = time.monotonic()
    check(c.closed(timeout=5), "idle connection not closed")
    took = time.monotonic() - t0
    step("  idle connection closed after %.2f s" % took)
    check(1.2 <= took <= 3.5, "idle close after %.2f s, want about 1.5 s" % took)
    check(re.search(r"closed \S+: idle for 1500 ms \(--idle-timeout\)", srv.stderr()),
          "no idle-timeout line")
    check(srv.stop() == 0, "exit status")


def test_changes(srv, root):
    step("a small file changed, replaced or removed: seen within about a second")
    path = os.path.join(root, "changing.txt")
    with open(path, "wb") as f:
        f.write(b"version 1\n")
    st, _, body = get(srv, b"/changing.txt")
    check(st == 200 and body == b"version 1\n", "first version: %d %r" % (st, body))
    for what, change, want_status, want in [
            ("rewritten", lambda: open(path, "wb").write(b"version 2, longer\n"), 200,
             b"version 2, longer\n"),
            ("replaced", lambda: (open(path + ".new", "wb").write(b"v3\n"),
                                  os.rename(path + ".new", path)), 200, b"v3\n"),
            ("removed", lambda: os.remove(path), 404, None)]:
        time.sleep(0.05)
        change()
        t0 = time.monotonic()
        while True:
            st, h, body = get(srv, b"/changing.txt")
            if st == want_status and (want is None or body == want):
                break
            check(st == 200 and body in (b"version 1\n", b"version 2, longer\n", b"v3\n"),
                  "%s: an inconsistent answer %d %r" % (what, st, body))
            check(time.monotonic() - t0 < 2.0, "%s: still the old file after 2 s" % what)
            time.sleep(0.05)
        step("  %s: seen after %.2f s" % (what, time.monotonic() - t0))


def test_other_listeners(nbio, root, tmp):
    step("--idle spin, a Unix socket and IPv6 listeners")
    srv = Serve(nbio, root, "--idle", "spin")
    st, _, body = get(srv, b"/small.txt")
    check(st == 200 and body == SMALL, "--idle spin: %d" % st)
    check(srv.stop() == 0, "--idle spin: exit status")
    path = os.path.join(tmp, "serve.sock")
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([nbio, "serve", "--listen", path, "--root", root],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    _procs.append(p)
    line = read_line(p.stdout, 20.0)
    check(line == ("listening on %s\n" % path).encode(), "Unix socket: first line %r" % line)
    r = curl(["--unix-socket", path, "http://localhost/small.txt"])
    check(r.returncode == 0 and r.stdout == SMALL, "curl over the Unix socket: %r" % r.stderr)
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=10) == 0, "Unix socket: exit status")
    check(not os.path.exists(path), "the socket file is removed at exit")
    try:
        socket.create_connection(("::1", 9), timeout=1).close()
    except ConnectionRefusedError:
        pass
    except OSError:
        step("  no IPv6 loopback: [::1] not tried")
        return
    p = subprocess.Popen([nbio, "serve", "--listen", "[::1]:0", "--root", root],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    _procs.append(p)
    line = read_line(p.stdout, 20.0)
    m = re.match(rb"listening on \[::1\]:(\d+)\n$", line)
    check(m is not None and int(m.group(1)) > 0, "IPv6: first line %r" % line)
    r = curl(["-g", "http://[::1]:%d/small.txt" % int(m.group(1))])
    check(r.returncode == 0 and r.stdout == SMALL, "curl over IPv6: %r" % r.stderr)
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=10) == 0, "IPv6: exit status")


def test_http_client(srv):
    step("http.client: GET, HEAD, POST on one keep-alive connection")
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    sock_ids = set()
    for method, path, body, want_status, want_body in [
            ("GET", "/small.txt", None, 200, SMALL),
            ("HEAD", "/small.txt", None, 200, b""),
            ("POST", "/echo", b"x" * 100000, 200, b"x" * 100000),
            ("GET", "/missing", None, 404, None),
            ("GET", "/empty.bin", None, 200, b"")]:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        data = r.read()
        sock_ids.add(id(conn.sock))
        check(r.status == want_status, "%s %s: %d" % (method, path, r.status))
        if want_body is not None:
            check(data == want_body, "%s %s: body %r" % (method, path, data[:50]))
    check(len(sock_ids) == 1, "http.client opened %d connections" % len(sock_ids))
    conn.close()


def test_nbio_get(nbio, srv, root, tmp):
    step("nbio get against nbio serve")
    r = run_tool(nbio, ["get", srv.url("/small.txt")])
    check(r.returncode == 0 and r.stdout == SMALL, "nbio get small: %d %r" % (r.returncode,
                                                                             r.stderr))
    out = os.path.join(tmp, "get-big")
    r = run_tool(nbio, ["get", "-o", out, srv.url("/big.bin")], timeout=60)
    check(r.returncode == 0, "nbio get big: %r" % r.stderr)
    with open(out, "rb") as f, open(os.path.join(root, "big.bin"), "rb") as g:
        check(f.read() == g.read(), "nbio get big.bin differs")
    urls = [srv.url("/many/f%03d.txt" % i) for i in range(20)]
    r = run_tool(nbio, ["get", "--pipeline"] + urls)
    want = b"".join(b"file number %d\n" % i * (i + 1) for i in range(20))
    check(r.returncode == 0 and r.stdout == want, "nbio get --pipeline: %d %r"
          % (r.returncode, r.stderr))
    r = run_tool(nbio, ["get", "-d", "posted", srv.url("/echo")])
    check(r.returncode == 0 and r.stdout == b"posted", "nbio get -d: %r" % r.stdout)
    r = run_tool(nbio, ["get", "-f", srv.url("/missing")])
    check(r.returncode == 22, "nbio get -f on 404: %d" % r.returncode)


def test_sigterm(nbio, root):
    step("SIGTERM with a 50 MB response in flight: it completes, exit 0")
    srv = Serve(nbio, root)
    idle = Conn(srv)  # an idle keep-alive connection: closed at the drain
    idle.send(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    check(idle.response()[0] == 200, "idle connection's request")
    c = Conn(srv)
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    while c.buf.find(b"\r\n\r\n") < 0:
        c._fill()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    check(srv.proc.poll() is None, "serve exited with a response in flight")
    st, h, body = c.response()
    check(st == 200 and len(body) == BIG_SIZE, "the response in flight: %d, %d bytes"
          % (st, len(body)))
    with open(os.path.join(root, "big.bin"), "rb") as g:
        check(body == g.read(), "the response in flight differs")
    check(c.closed(), "connection closed after the drain")
    check(idle.closed(), "idle keep-alive connection closed at the drain")
    check(srv.stop(timeout=10) == 0, "exit status after SIGTERM: %r" % srv.proc.returncode)
    # no new connections after the drain
    try:
        socket.create_connection((srv.host, srv.port), timeout=2).close()
        raise AssertionError("still accepting after SIGTERM")
    except (ConnectionRefusedError, socket.timeout):
        pass


def test_startup_errors(nbio, root, tmp):
    step("usage errors exit 2; a bad certificate, key, root or address exit 1")
    for args in [["serve"], ["serve", "--listen"], ["serve", "--listen", "127.0.0.1:0", "--bogus"],
                 ["serve", "--listen", "127.0.0.1:0", "--tls-cert", "x.pem"],
                 ["serve", "--listen", "127.0.0.1:0", "--idle", "sometimes"],
                 ["serve", "--listen", "127.0.0.1:0", "--max-body", "lots"],
                 ["serve", "--listen", "127.0.0.1:0", "extra"]]:
        r = run_tool(nbio, args, timeout=10)
        check(r.returncode == 2 and r.stdout == b"", "%r: exit %d" % (args, r.returncode))
    bad = os.path.join(tmp, "bad.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    made = make_self_signed(tmp, "other")
    for args, what in [(["--tls-cert", os.path.join(tmp, "missing.pem"), "--tls-key", bad],
                        "missing certificate"),
                       (["--tls-cert", bad, "--tls-key", bad], "bad certificate"),
                       (["--tls-cert", made[0], "--tls-key", bad], "bad key"),
                       (["--root", os.path.join(tmp, "no-such-dir")], "missing root"),
                       (["--listen", "300.1.1.1:80"], "bad address")]:
        cmd = ["serve", "--listen", "127.0.0.1:0", "--root", root] + args
        r = run_tool(nbio, cmd, timeout=10)
        check(r.returncode == 1 and b"listening on" not in r.stdout and r.stderr,
              "%s: exit %d, %r %r" % (what, r.returncode, r.stdout, r.stderr))
        step("  %s: %s" % (what, r.stderr.decode().strip()))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    r = run_tool(nbio, ["serve", "--listen", "127.0.0.1:%d" % s.getsockname()[1]], timeout=10)
    s.close()
    check(r.returncode == 1 and b"NBIO_EADDRINUSE" in r.stderr, "address in use: %d %r"
          % (r.returncode, r.stderr))
    r = run_tool(nbio, ["serve", "--help"], timeout=10)
    check(r.returncode == 0 and b"--header-timeout" in r.stdout, "serve --help")


def test(nbio):
    check(shutil.which("curl") is not None, "curl is needed (scripts/install-deps)")
    tmp = tempfile.mkdtemp(prefix="nbio-serve-")
    try:
        root = make_tree(tmp)
        test_startup_errors(nbio, root, tmp)
        srv = Serve(nbio, root)
        srv.root = root
        test_curl(nbio, srv, root, tmp)
        test_pipelining(srv)
        test_traversal(srv)
        test_http_client(srv)
        test_nbio_get(nbio, srv, root, tmp)
        test_changes(srv, root)
        check(srv.proc.poll() is None, "serve died: %s" % srv.stderr()[-2000:])
        check(srv.stop() == 0, "exit status after SIGTERM")
        test_https(nbio, root, tmp)
        test_refusals(nbio, root)
        test_slow_client(nbio, root)
        test_sigterm(nbio, root)
        test_other_listeners(nbio, root, tmp)
        check(not DEFERRED, "%d failure(s) recorded above: %s" % (len(DEFERRED),
                                                                 "; ".join(DEFERRED)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(test, watchdog=170)
