#!/usr/bin/env python3
"""bench_http_serve: `nbio serve` beside nginx, measured in the same run.

 1. requests/s: `wrk -t1 -c50 -d5s` against a small file (1 KiB), wrk
    pinned to CPU 0 and the server to CPU 1 (taskset), nbio serve and nginx
    (one worker process, access_log off) in turn, --repeats rounds (default
    3); the median of each side and their ratio (target >= 1.0x nginx).
    nbio serve keeps files of at most 64 KiB in memory (re-checked once a
    second); nginx's nearest setting, open_file_cache (descriptors kept,
    open_file_cache_valid 1s), is measured too and printed on its own line;
 2. the same with HTTP pipelining 16 deep (a wrk Lua script whose request()
    returns 16 concatenated requests; target >= 2x nginx);
 3. memory per idle keep-alive connection: each server fresh, its VmRSS,
    then N = 10,000 connections (RLIMIT_NOFILE raised to its hard limit)
    each sending one request and reading its response, then VmRSS again:
    (after - before) / N, user-space memory only (kernel socket buffers are
    not in RSS).

--quick (the bench-smoke test, a few seconds): 1 s wrk runs with 10
connections and 500 idle connections; without wrk a Python keep-alive loop
stands in for it, and nginx's side is skipped when nginx is not installed.
It never judges timings: it checks that every server answered, byte for
byte the same file.
"""
import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BODY = b"".join(b"%04d the quick brown fox jumps over the lazy dog.....\n" % i
                for i in range(18))[:1024]

PIPELINE_LUA = """
init = function(args)
   local r = {}
   for i = 1, 16 do
      r[i] = wrk.format(nil, "/small.txt")
   end
   req = table.concat(r)
end
request = function()
   return req
end
"""

procs = []


def die(msg):
    print("bench_http_serve: " + msg, file=sys.stderr)
    for p in procs:
        if p.poll() is None:
            p.kill()
    sys.exit(1)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            die("%s exited with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    die("%s does not accept on port %d" % (what, port))


class Server:
    def __init__(self, kind, args, tmp):
        self.kind, self.args, self.tmp = kind, args, tmp
        self.proc = None

    def start(self):
        port = free_port()
        pin = ["taskset", "-c", "1"] if self.args.pin else []
        if self.kind == "nbio":
            cmd = pin + [self.args.nbio, "serve", "--listen", "127.0.0.1:%d" % port, "--root",
                         os.path.join(self.tmp, "www"), "--quiet", "--idle",
                         self.args.idle]
        else:
            conf = os.path.join(self.tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write("""
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 30000;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 20000; }}
http {{
    types {{ text/plain txt; }}
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    {ofc}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {tmp}/www;
    }}
}}
""".format(tmp=self.tmp, port=port,
                           ofc="open_file_cache max=1000 inactive=60s; open_file_cache_valid 1s;"
                           if self.kind == "nginx-ofc" else ""))
            cmd = pin + [self.args.nginx, "-p", self.tmp, "-c", conf, "-e",
                         os.path.join(self.tmp, "nginx-error.log")]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        procs.append(self.proc)
        wait_port(port, self.proc, self.kind)
        self.port = port
        self.url = "http://127.0.0.1:%d/small.txt" % port
        # the file must come back byte for byte
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            raw += b
        s.close()
        if not raw.startswith(b"HTTP/1.1 200") or not raw.endswith(b"\r\n\r\n" + BODY):
            die("%s did not serve the file: %r" % (self.kind, raw[:300]))
        time.sleep(0.1)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if self.kind == "nbio" else signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def run_wrk(args, url, conns, seconds, lua=None):
    pin = ["taskset", "-c", "0"] if args.pin else []
    cmd = pin + ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds] + \
        (["-s", lua] if lua else []) + [url]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=seconds + 30)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if r.returncode != 0 or m is None:
        die("wrk failed: %s %s" % (out, r.stderr))
    if re.search(r"Socket errors|Non-2xx", out):
        die("wrk saw errors against %s: %s" % (url, out))
    return float(m.group(1))


def python_load(url_port, seconds):
    """Stands in for wrk (--quick without wrk): one keep-alive connection."""
    s = socket.create_connection(("127.0.0.1", url_port), timeout=10)
    req = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    n = 0
    buf = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        s.sendall(req)
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0 and len(buf) >= i + 4 + len(BODY):
                if buf[i + 4:i + 4 + len(BODY)] != BODY:
                    die("python load: wrong body")
                buf = buf[i + 4 + len(BODY):]
                break
            b = s.recv(65536)
            if not b:
                die("python load: closed")
            buf += b
        n += 1
    s.close()
    return n / (time.monotonic() - t0)


def idle_memory(srv, n):
    """Opens n connections, each with one request answered; returns
    (KiB per connection, rss before, rss after, seconds)."""
    before = rss_kib(srv.proc.pid)
    req = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    socks = []
    t0 = time.monotonic()
    try:
        for i in range(n):
            s = socket.socket()
            s.settimeout(10)
            s.connect(("127.0.0.1", srv.port))
            s.sendall(req)
            got = b""
            while not got.endswith(BODY):
                b = s.recv(65536)
                if not b:
                    die("%s closed connection %d" % (srv.kind, i))
                got += b
            socks.append(s)
        took = time.monotonic() - t0
        time.sleep(0.5)
        after = rss_kib(srv.proc.pid)
        # every connection is still open and served
        for s in socks[:: max(1, n // 50)]:
            s.sendall(req)
            got = b""
            while not got.endswith(BODY):
                b = s.recv(65536)
                if not b:
                    die("%s closed an idle connection" % srv.kind)
                got += b
    finally:
        for s in socks:
            s.close()
    return (after - before) / n, before, after, took


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--nbio", default=os.path.join(here, "..", "tools", "nbio"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--idle", default="wait", choices=["wait", "spin"],
                    help="nbio serve's --idle (default wait)")
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    ap.add_argument("--no-wrk", action="store_true", help="as if wrk were not installed")
    args = ap.parse_args()
    if not os.access(args.nbio, os.X_OK):
        die("no nbio program at %s (--nbio PATH)" % args.nbio)
    if args.quick:
        args.repeats, args.duration, args.conns, args.idle_conns = 1, 1, 10, 500
    if args.pin and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        print("note: not pinned (taskset or a second CPU missing)")
        args.pin = False
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle_conns + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want), hard))
        soft = min(hard, want)
    if soft < want:
        print("note: RLIMIT_NOFILE hard limit %d: %d idle connections instead of %d"
              % (hard, soft - 256, args.idle_conns))
        args.idle_conns = max(10, soft - 256)

    have_wrk = shutil.which("wrk") is not None and not args.no_wrk
    have_nginx = bool(args.nginx) and os.access(args.nginx, os.X_OK)
    kinds = ["nbio"] + (["nginx"] if have_nginx else [])
    # nginx with open_file_cache (descriptors kept, re-checked every second),
    # the nearest to nbio serve's in-memory copies of small files
    rate_kinds = kinds + (["nginx-ofc"] if have_nginx and not args.quick else [])
    if not have_nginx:
        print("note: nginx not found: its side is skipped (scripts/install-deps installs it)")
    if not have_wrk:
        print("note: wrk not found: a Python keep-alive loop stands in "
              "(scripts/install-deps installs wrk)")

    tmp = tempfile.mkdtemp(prefix="bench-http-serve-")
    os.makedirs(os.path.join(tmp, "www"))
    with open(os.path.join(tmp, "www", "small.txt"), "wb") as f:
        f.write(BODY)
    for dirpath, dirs, files in os.walk(tmp):  # nginx as root may drop privileges
        os.chmod(dirpath, 0o755)
    os.chmod(os.path.join(tmp, "www", "small.txt"), 0o644)
    summary = {}
    try:
        measures = [("keepalive", None)]
        lua = os.path.join(tmp, "pipeline16.lua")
        with open(lua, "w") as f:
            f.write(PIPELINE_LUA)
        if have_wrk:
            measures.append(("pipeline16", lua))
        for name, script in measures:
            rates = {k: [] for k in rate_kinds}
            for _ in range(args.repeats):
                for kind in rate_kinds:
                    srv = Server(kind, args, tmp).start()
                    try:
                        if have_wrk:
                            rate = run_wrk(args, srv.url, args.conns, args.duration, script)
                        else:
                            rate = python_load(srv.port, args.duration)
                    finally:
                        srv.stop()
                    rates[kind].append(rate)
            med = {k: statistics.median(v) for k, v in rates.items()}
            target = 2.0 if name == "pipeline16" else 1.0
            tool = ("wrk -t1 -c%d -d%ds%s" % (args.conns, args.duration,
                                               " (16 per write)" if script else "")
                    if have_wrk else "python 1 conn %ds" % args.duration)
            if "nginx" in med:
                ratio = med["nbio"] / med["nginx"]
                summary[name] = ratio
                print("%-11s %s  nbio %.0f req/s  nginx %.0f req/s  ratio %.2f (target >= %.1f)"
                      "  [rounds: nbio %s; nginx %s]"
                      % (name, tool, med["nbio"], med["nginx"], ratio, target,
                         " ".join("%.0f" % x for x in rates["nbio"]),
                         " ".join("%.0f" % x for x in rates["nginx"])), flush=True)
                if "nginx-ofc" in med:
                    print("%-11s %s  nginx with open_file_cache %.0f req/s  ratio %.2f  [rounds: %s]"
                          % (name, tool, med["nginx-ofc"], med["nbio"] / med["nginx-ofc"],
                             " ".join("%.0f" % x for x in rates["nginx-ofc"])), flush=True)
            else:
                print("%-11s %s  nbio %.0f req/s  (nginx skipped)" % (name, tool, med["nbio"]),
                      flush=True)

        per = {}
        for kind in kinds:
            srv = Server(kind, args, tmp).start()
            try:
                kib, before, after, took = idle_memory(srv, args.idle_conns)
            finally:
                srv.stop()
            per[kind] = kib
            print("idle-mem    %-5s %d keep-alive conns open+served in %.2f s: rss %.1f -> %.1f"
                  " MiB, %.2f KiB/conn" % (kind, args.idle_conns, took, before / 1024.0,
                                            after / 1024.0, kib), flush=True)
        if "nginx" in per:
            print("idle-mem    ratio nbio/nginx %.2f" % (per["nbio"] / per["nginx"]
                                                        if per["nginx"] > 0 else float("inf")))
        print("summary %s idle_kib_per_conn %s" % (
            " ".join("%s_ratio %.2f" % kv for kv in summary.items()),
            " ".join("%s %.2f" % kv for kv in per.items())))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
