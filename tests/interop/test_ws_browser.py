"""A real browser against `nbio echo-server --framing ws`.

Headless Debian `chromium` loads a page served by `nbio serve --root TMPDIR`
whose script opens WebSockets to two echo servers (plain, and with
--ws-compress: Chromium offers permessage-deflate itself), sends text and
binary messages of 0 B .. 1 MiB one at a time and a burst of 100 in flight,
checks every echo (bytes and type), the negotiated extension and a clean
close (1000), and writes one line per check and a final
`DONE pass=N fail=M` line into the DOM. The test reads the DOM and asserts
that every check passed and that the servers logged nothing.

Reading the DOM: `--dump-dom` dumps it at the load event, and
`--virtual-time-budget` does not wait for WebSocket traffic (virtual time
runs ahead while only a WebSocket is busy), so neither sees a result that
arrives over the network. The test therefore runs the same headless
Chromium (`--headless --no-sandbox --disable-gpu
--disable-background-networking`) with `--remote-debugging-pipe` and asks
it, over that pipe, for the page's DOM until the result line is there (at
most 60 s), then dumps `document.documentElement.outerHTML`.

Skipped (exit 77) only when chromium is not installed and cannot be
installed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbio_interop import (EchoServer, TestFailure, check, main, read_line, step,  # noqa: E402
                          _procs)

PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>nbio WebSocket echo</title></head>
<body>
<h1>nbio echo-server --framing ws</h1>
<pre id="log"></pre>
<div id="result">pending</div>
<script src="ws_echo.js"></script>
</body></html>
"""

PAGE_JS = r"""
'use strict';
const params = new URLSearchParams(location.search);
const logEl = document.getElementById('log');
let pass = 0, fail = 0;
function line(ok, what) {
  if (ok) pass++; else fail++;
  logEl.textContent += (ok ? 'PASS ' : 'FAIL ') + what + '\n';
}
function text(n, seed) {
  // exactly n UTF-8 bytes, multi-byte characters included
  const unit = 'h\u00e9llo w\u00f6rld \u2713 \u{1F600} ' + seed + ' ';
  const ub = new TextEncoder().encode(unit).length;
  const reps = Math.floor(n / ub);
  return unit.repeat(reps) + 'x'.repeat(n - reps * ub);
}
function bytes(n, seed) {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 255; }
  return b;
}
function same(got, want) {
  if (typeof want === 'string') return typeof got === 'string' && got === want;
  if (!(got instanceof ArrayBuffer)) return false;
  const g = new Uint8Array(got);
  if (g.length !== want.length) return false;
  for (let i = 0; i < g.length; i++) if (g[i] !== want[i]) return false;
  return true;
}
function describe(m) {
  return typeof m === 'string' ? 'text ' + new TextEncoder().encode(m).length + ' B'
                               : 'binary ' + m.length + ' B';
}
function run(name, addr, wantDeflate) {
  return new Promise((resolve) => {
    const sizes = [0, 125, 126, 65535, 65536, 1 << 20];
    const msgs = [];
    for (const n of sizes) { msgs.push(text(n, n)); msgs.push(bytes(n, n + 1)); }
    const burst = [];
    for (let i = 0; i < 100; i++) burst.push(i % 2 ? bytes(i * 37 % 3000, i) : text(i * 13 % 2000, i));
    let ws;
    try { ws = new WebSocket('ws://' + addr + '/browser?case=' + name); }
    catch (e) { line(false, name + ': new WebSocket: ' + e); resolve(); return; }
    ws.binaryType = 'arraybuffer';
    let next = 0, phase = 'one', bi = 0, finished = false;
    const timer = setTimeout(() => { line(false, name + ': timed out at message ' + next + ' / burst ' + bi); finish(); }, 40000);
    function finish() { if (!finished) { finished = true; clearTimeout(timer); resolve(); } }
    ws.onopen = () => {
      const deflate = ws.extensions.indexOf('permessage-deflate') >= 0;
      line(deflate === wantDeflate, name + ': extensions "' + ws.extensions + '"');
      ws.send(msgs[0]);
    };
    ws.onmessage = (e) => {
      if (phase === 'one') {
        line(same(e.data, msgs[next]), name + ': echo of ' + describe(msgs[next]));
        next++;
        if (next < msgs.length) { ws.send(msgs[next]); return; }
        phase = 'burst';
        for (const m of burst) ws.send(m);
        return;
      }
      if (!same(e.data, burst[bi])) line(false, name + ': burst message ' + bi + ' (' + describe(burst[bi]) + ')');
      bi++;
      if (bi === burst.length) {
        line(true, name + ': burst of ' + burst.length + ' messages in flight, echoed in order');
        ws.close(1000, 'browser done');
      }
    };
    ws.onerror = () => { line(false, name + ': error event'); };
    ws.onclose = (e) => {
      line(e.code === 1000 && e.wasClean && phase === 'burst' && bi === burst.length,
           name + ': close ' + e.code + ' "' + e.reason + '" wasClean=' + e.wasClean);
      finish();
    };
  });
}
(async () => {
  await run('plain', params.get('plain'), false);
  await run('compressed', params.get('compressed'), true);
  document.getElementById('result').textContent = 'DONE pass=' + pass + ' fail=' + fail;
})();
"""


def skip(why):
    print("SKIP test_ws_browser.py: %s" % why)
    sys.exit(77)


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    if os.geteuid() == 0 and shutil.which("apt-get"):
        step("chromium is not installed: trying apt-get install chromium")
        try:
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=100,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        except subprocess.TimeoutExpired:
            pass
        p = shutil.which("chromium")
        if p:
            return p
    skip("chromium is not installed and cannot be installed here "
         "(apt-get install chromium; scripts/install-deps does it)")


class DevToolsPipe:
    """Chromium with --remote-debugging-pipe: JSON messages separated by NUL,
    written to its fd 3 and read from its fd 4."""

    def __init__(self, chromium, profile):
        import fcntl
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # above 3 and 4, so that moving them there in the child clobbers nothing
        for name in ("to_chrome_r", "from_chrome_w"):
            fd = locals()[name]
            high = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
            os.close(fd)
            if name == "to_chrome_r":
                to_chrome_r = high
            else:
                from_chrome_w = high
        self.err = tempfile.TemporaryFile()

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-extensions",
             "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err,
            preexec_fn=fds, close_fds=False)  # 3 and 4 stay open (dup2 clears CLOEXEC)
        _procs.append(self.proc)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=20):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        import select
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise TestFailure("DevTools %s: %r" % (method, reply["error"]))
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("DevTools %s: no answer within %d s" % (method, timeout))
            r, _, _ = select.select([self.from_chrome], [], [], left)
            if r:
                b = os.read(self.from_chrome, 1 << 16)
                if not b:
                    self.err.seek(0)
                    raise TestFailure("chromium closed its DevTools pipe (stderr: %r)"
                                      % self.err.read()[-2000:])
                self.buf += b

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (TestFailure, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_chrome)
        os.close(self.from_chrome)


def evaluate(dt, session, expr):
    r = dt.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
    return r.get("result", {}).get("value")


def test(nbio):
    chromium = find_chromium()
    v = subprocess.run([chromium, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       timeout=30)
    step(v.stdout.decode().strip())
    plain = EchoServer(nbio, "127.0.0.1:0", "--framing", "ws", "--idle", "wait")
    compressed = EchoServer(nbio, "127.0.0.1:0", "--framing", "ws", "--ws-compress",
                            "--idle", "wait")
    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as profile:
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write(PAGE_HTML)
        with open(os.path.join(root, "ws_echo.js"), "w") as f:
            f.write(PAGE_JS)
        serve = subprocess.Popen([nbio, "serve", "--listen", "127.0.0.1:0", "--root", root,
                                  "--quiet"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        _procs.append(serve)
        line = read_line(serve.stdout, 20)
        check(line.startswith(b"listening on "), "nbio serve: %r" % line)
        http = line[len(b"listening on "):].strip().decode()
        url = "http://%s/index.html?plain=%s&compressed=%s" % (http, plain.addr, compressed.addr)
        step("page %s" % url)
        dt = DevToolsPipe(chromium, profile)
        try:
            target = dt.call("Target.createTarget", {"url": url}, timeout=60)["targetId"]
            session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                              timeout=30)["sessionId"]
            t0 = time.monotonic()
            result = None
            while time.monotonic() - t0 < 60:
                result = evaluate(dt, session, "document.getElementById('result') && "
                                               "document.getElementById('result').textContent")
                if result and result.startswith("DONE"):
                    break
                time.sleep(0.2)
            dom = evaluate(dt, session, "document.documentElement.outerHTML") or ""
        finally:
            dt.close()
        serve.terminate()
        serve.wait(10)
    log = dom.split('<pre id="log">', 1)[-1].split("</pre>", 1)[0]
    for l in log.strip().splitlines():
        step("page: " + l)
    check(result is not None and result.startswith("DONE"),
          "the page did not finish within 60 s (result %r); DOM:\n%s" % (result, dom[:3000]))
    fails = [l for l in log.splitlines() if l.startswith("FAIL")]
    passes = [l for l in log.splitlines() if l.startswith("PASS")]
    check(not fails and result == "DONE pass=%d fail=0" % len(passes),
          "the page reported failures: %s %r" % (result, fails))
    # 2 cases x (extension + 12 echoes + burst + close)
    check(len(passes) == 2 * 15, "expected 30 passed checks, got %d" % len(passes))
    check(plain.stderr() == "" and compressed.stderr() == "",
          "echo-server logged: %r %r" % (plain.stderr(), compressed.stderr()))
    step("chromium: %s, time %.1f s" % (result, time.monotonic() - t0))
    for s in (plain, compressed):
        check(s.stop() == 0, "echo-server exit status after SIGTERM")


if __name__ == "__main__":
    main(test, watchdog=170)
