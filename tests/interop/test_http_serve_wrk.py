#!/usr/bin/env python3
"""`wrk` against `nbio serve` (skipped, exit 77, when wrk is not installed;
scripts/install-deps installs it).

A bounded run, `wrk -t1 -c20 -d2s`, against a small file, then the same
with every request pipelined 16 deep (a wrk Lua script): wrk's output must
show requests done, zero socket errors (connect, read, write, timeout) and
zero non-2xx responses; afterwards the server still serves the file byte
for byte and exits 0 on SIGTERM.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.request

from nbio_interop import _procs, check, main, read_line, step

BODY = b"".join(b"%04d hello from nbio serve\n" % i for i in range(40))  # 1 KiB

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


def parse_wrk(out):
    """Returns (requests, socket errors dict, non-2xx count)."""
    m = re.search(r"(\d+) requests in", out)
    check(m is not None, "no request count in wrk's output: %r" % out)
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m2 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m2:
        for k, v in zip(["connect", "read", "write", "timeout"], m2.groups()):
            errors[k] = int(v)
    m3 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(m.group(1)), errors, int(m3.group(1)) if m3 else 0


def run_wrk(args, timeout=30):
    r = subprocess.run(["wrk"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "wrk %r exited %d: %s %s" % (args, r.returncode, out, r.stderr))
    return out


def test(nbio):
    wrk = shutil.which("wrk")
    if wrk is None:
        print("SKIP: wrk is not installed (scripts/install-deps installs it)")
        raise SystemExit(77)
    tmp = tempfile.mkdtemp(prefix="nbio-serve-wrk-")
    try:
        with open(os.path.join(tmp, "small.txt"), "wb") as f:
            f.write(BODY)
        lua = os.path.join(tmp, "pipeline.lua")
        with open(lua, "w") as f:
            f.write(PIPELINE_LUA)
        err = open(os.path.join(tmp, "stderr"), "wb")
        proc = subprocess.Popen([nbio, "serve", "--listen", "127.0.0.1:0", "--root", tmp,
                                 "--quiet"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err)
        _procs.append(proc)
        line = read_line(proc.stdout, 20.0)
        check(line.startswith(b"listening on "), "first line %r" % line)
        url = "http://%s/small.txt" % line[len(b"listening on "):].strip().decode()

        for what, extra in [("plain", []), ("pipelined 16 deep", ["-s", lua])]:
            step("wrk -t1 -c20 -d2s (%s) against %s" % (what, url))
            out = run_wrk(["-t1", "-c20", "-d2s", "--latency"] + extra + [url])
            print(out, flush=True)
            n, errors, non2xx = parse_wrk(out)
            check(n > 1000, "%s: only %d requests in 2 s" % (what, n))
            check(all(v == 0 for v in errors.values()), "%s: socket errors %r" % (what, errors))
            check(non2xx == 0, "%s: %d non-2xx responses" % (what, non2xx))
            check(proc.poll() is None, "serve died during wrk (%s)" % what)

        step("the server still serves the file, then exits 0 on SIGTERM")
        with urllib.request.urlopen(url, timeout=10) as r:
            check(r.status == 200 and r.read() == BODY, "GET after wrk")
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=10) == 0, "exit status %r" % proc.returncode)
        err.close()
        with open(os.path.join(tmp, "stderr"), "rb") as f:
            log = f.read().decode(errors="replace")
        check("dropped" not in log, "errors in the server's log: %s" % log[-2000:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(test, watchdog=90)
