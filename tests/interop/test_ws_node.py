"""WebSocket interop with Node's `ws` package, both directions:

- a Node `ws` server (echo, with and without perMessageDeflate) for
  `nbio ws`: text and binary lines of 0 B .. 10 MB, byte-exact, close 1000;
  a server close with 4002 reported by nbio ws with exit 1;
- a Node `ws` client against `nbio echo-server --framing ws` (with and
  without --ws-compress, the client offering permessage-deflate or not):
  the same sizes, text stays text, a ping answered, a burst in flight, and
  the client's close 4000 answered.

`ws` is installed with npm at test time into ws-node/ under the test's
working directory (the build tree); the test is skipped (exit 77) only when
npm cannot install it (no npm, no registry).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbio_interop import (EchoServer, TestFailure, check, main, payload, read_line,  # noqa: E402
                          run_tool, step, _procs)

MB10 = 10 * 1000 * 1000
SIZES = [0, 125, 126, 65535, 65536, MB10]

PACKAGE_JSON = {
    "name": "nbio-ws-interop",
    "version": "1.0.0",
    "private": True,
    "description": "Node ws peer of libnbio's interop tests (installed at test time)",
    "dependencies": {"ws": "^8"},
}

# A ws echo server: prints "listening PORT", echoes each message with its
# type, and prints one JSON line per connection when it closes.
SERVER_JS = r"""
'use strict';
const { WebSocketServer } = require('ws');
const crypto = require('crypto');
const deflate = process.argv[2] === 'deflate';
const mode = process.argv[3] || 'echo';
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate,
                                  maxPayload: 64 * 1024 * 1024 });
wss.on('listening', () => console.log('listening ' + wss.address().port));
wss.on('connection', (ws, req) => {
  const got = [];
  const ext = req.headers['sec-websocket-extensions'] || '';
  ws.on('message', (data, isBinary) => {
    got.push([isBinary, data.length, crypto.createHash('sha256').update(data).digest('hex')]);
    if (mode === 'close4002') { ws.close(4002, 'node says no'); return; }
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => {
    console.log(JSON.stringify({ messages: got, code: code, reason: reason.toString(),
                                 offered: ext, deflate: ws.extensions.indexOf('permessage-deflate') >= 0 }));
  });
  ws.on('error', (e) => console.log(JSON.stringify({ error: String(e) })));
});
setTimeout(() => process.exit(3), 150000).unref();
"""

# A ws client: sends text and binary messages of every size, checks each
# echo (bytes and type), a burst in flight, a ping, then closes with 4000
# and prints one JSON line with what happened.
CLIENT_JS = r"""
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');
const url = process.argv[2];
const deflate = process.argv[3] === 'deflate';
const sizes = JSON.parse(process.argv[4]);
function text(n, seed) {
  const unit = Buffer.from('h\u00e9llo w\u00f6rld \u2713 \u{1F600} ' + seed + ' ');
  const b = Buffer.alloc(n, 'x');
  let off = 0;
  while (off + unit.length <= n) { unit.copy(b, off); off += unit.length; }
  return b.toString('utf8');
}
const msgs = [];
for (const n of sizes) { msgs.push(text(n, n)); msgs.push(crypto.randomBytes(n)); }
for (let i = 0; i < 200; i++) msgs.push(i % 2 ? crypto.randomBytes(i * 37 % 3000) : text(i * 13 % 2000, i));
const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 64 * 1024 * 1024 });
const result = { ok: 0, bad: [], deflate: null, pong: false };
let next = 0;
const fail = (why) => { result.bad.push(why); };
ws.on('open', () => {
  result.deflate = ws.extensions.indexOf('permessage-deflate') >= 0;
  // sizes one at a time, then the burst all at once
  const sendNext = () => {
    if (next < sizes.length * 2) { ws.send(msgs[next]); return; }
    for (let i = next; i < msgs.length; i++) ws.send(msgs[i]);
  };
  ws.on('message', (data, isBinary) => {
    const want = msgs[next];
    const wantBinary = Buffer.isBuffer(want);
    const wantBuf = wantBinary ? want : Buffer.from(want, 'utf8');
    if (isBinary !== wantBinary) fail('message ' + next + ': type');
    else if (!wantBuf.equals(data)) fail('message ' + next + ': ' + data.length + ' bytes differ');
    else result.ok++;
    next++;
    if (next < sizes.length * 2) sendNext();
    else if (next === sizes.length * 2) sendNext();
    else if (next === msgs.length) ws.ping(Buffer.from('node ping'));
  });
  ws.on('pong', (data) => { result.pong = data.toString() === 'node ping'; ws.close(4000, 'node bye'); });
  sendNext();
});
ws.on('close', (code, reason) => {
  result.closeCode = code; result.closeReason = reason.toString(); result.total = msgs.length;
  console.log(JSON.stringify(result));
  process.exit(0);
});
ws.on('error', (e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(1); });
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout', result: result })); process.exit(2); }, 90000);
"""


def skip(why):
    print("SKIP test_ws_node.py: %s" % why)
    sys.exit(77)


def install_ws(d):
    """npm install ws into d (once: a later run finds it there)."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        skip("node is not installed (apt-get install nodejs npm; scripts/install-deps does it)")
    if os.path.exists(os.path.join(d, "node_modules", "ws", "package.json")):
        return node
    npm = shutil.which("npm")
    if npm is None:
        skip("npm is not installed, so the ws package cannot be installed")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "package.json"), "w") as f:
        json.dump(PACKAGE_JSON, f, indent=2)
    t0 = time.monotonic()
    try:
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-progress",
                            "--loglevel=error"], cwd=d, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    except subprocess.TimeoutExpired:
        skip("npm install ws did not finish within 120 s (no registry?)")
    if r.returncode != 0 or not os.path.exists(os.path.join(d, "node_modules", "ws")):
        skip("npm install ws failed (exit %d): %s" % (r.returncode, r.stdout.decode(errors="replace")[-600:]))
    step("npm install ws into %s: %.1f s" % (d, time.monotonic() - t0))
    return node


def utf8_text(n, seed):
    unit = ("h\u00e9llo w\u00f6rld \u2713 \U0001f600 %d " % seed).encode()
    b = bytearray(b"x" * n)
    off = 0
    while off + len(unit) <= n:
        b[off:off + len(unit)] = unit
        off += len(unit)
    return bytes(b)


def sha(b):
    return hashlib.sha256(b).hexdigest()


class NodeServer:
    def __init__(self, node, d, deflate, mode="echo"):
        self.proc = subprocess.Popen([node, os.path.join(d, "server.js"),
                                      "deflate" if deflate else "plain", mode], cwd=d,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _procs.append(self.proc)
        line = read_line(self.proc.stdout, 20)
        check(line.startswith(b"listening "), "node server: %r" % line)
        self.port = int(line.split()[1])
        self.url = "ws://127.0.0.1:%d/node?x=1" % self.port

    def connection_report(self, timeout=20):
        line = read_line(self.proc.stdout, timeout)
        check(line, "node server: no report line")
        rep = json.loads(line)
        check("error" not in rep, "node server: %r" % rep)
        return rep

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)


def test_nbio_client(nbio, node, d):
    for server_deflate in (True, False):
        for client_compress in (False, True):
            srv = NodeServer(node, d, server_deflate)
            flags = ["--compress"] if client_compress else []
            want = server_deflate and client_compress
            t0 = time.monotonic()
            texts = [utf8_text(n, n) for n in SIZES]
            inp = b"".join(t + b"\n" for t in texts)
            r = run_tool(nbio, ["ws"] + flags + [srv.url], inp, timeout=60)
            check(r.returncode == 0 and r.stderr == b"", "nbio ws: exit %r, stderr %r"
                  % (r.returncode, r.stderr))
            check(r.stdout == inp, "nbio ws printed %d bytes, expected %d" % (len(r.stdout), len(inp)))
            rep = srv.connection_report()
            check(rep["messages"] == [[False, len(t), sha(t)] for t in texts],
                  "the node server received other text messages")
            check(rep["code"] == 1000, "the node server saw close %r" % rep["code"])
            check(rep["deflate"] == want, "deflate agreed %r, expected %r (offered %r)"
                  % (rep["deflate"], want, rep["offered"]))
            bins = [payload(n, n).replace(b"\n", b"\x0b") for n in SIZES]
            inp = b"".join(b + b"\n" for b in bins)
            r = run_tool(nbio, ["ws", "--binary"] + flags + [srv.url], inp, timeout=60)
            check(r.returncode == 0 and r.stdout == inp, "nbio ws --binary: exit %r, %d bytes, %r"
                  % (r.returncode, len(r.stdout), r.stderr))
            rep = srv.connection_report()
            check(rep["messages"] == [[True, len(b), sha(b)] for b in bins],
                  "the node server received other binary messages")
            check(rep["code"] == 1000, "the node server saw close %r" % rep["code"])
            step("nbio ws%s -> node ws server (perMessageDeflate %s): text and binary, %d sizes "
                 "byte-exact, close 1000, deflate agreed %s, %.1f s"
                 % (" --compress" if client_compress else "", server_deflate, len(SIZES), want,
                    time.monotonic() - t0))
            srv.stop()
    srv = NodeServer(node, d, False, "close4002")
    p = subprocess.Popen([nbio, "ws", srv.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    _procs.append(p)
    p.stdin.write(b"hello\n")
    p.stdin.flush()
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        raise TestFailure("nbio ws did not end after the node server's close 4002")
    check(p.returncode == 1 and err == b"nbio ws: closed by peer: 4002 node says no\n",
          "node server close 4002: exit %r, stderr %r" % (p.returncode, err))
    step("node server close 4002: %r, exit 1" % err.decode().strip())
    srv.stop()


def test_node_client(nbio, node, d):
    for server_compress in (False, True):
        args = ["--framing", "ws", "--idle", "wait"] + (["--ws-compress"] if server_compress else [])
        srv = EchoServer(nbio, "127.0.0.1:0", *args)
        for client_deflate in (False, True):
            want = server_compress and client_deflate
            t0 = time.monotonic()
            r = subprocess.run([node, os.path.join(d, "client.js"), "ws://%s/echo" % srv.addr,
                                "deflate" if client_deflate else "plain", json.dumps(SIZES)],
                               cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=100)
            check(r.returncode == 0, "node client: exit %d, %r %r" % (r.returncode, r.stdout, r.stderr))
            rep = json.loads(r.stdout.decode().strip().splitlines()[-1])
            check(not rep["bad"] and rep["ok"] == rep["total"],
                  "node client: %d of %d echoes right, %r" % (rep["ok"], rep["total"], rep["bad"][:5]))
            check(rep["pong"], "node client: no pong for its ping")
            check(rep["closeCode"] == 4000, "node client: the server answered close 4000 with %r"
                  % rep["closeCode"])
            check(rep["deflate"] == want, "node client: deflate agreed %r, expected %r"
                  % (rep["deflate"], want))
            step("node ws client (perMessageDeflate %s) -> echo-server%s: %d messages echoed "
                 "byte-exact with their type, pong, close 4000 answered, %.1f s"
                 % (client_deflate, " --ws-compress" if server_compress else "", rep["total"],
                    time.monotonic() - t0))
        check(srv.alive(), "echo-server died")
        check(srv.stderr() == "", "echo-server logged: %r" % srv.stderr())
        check(srv.stop() == 0, "echo-server exit status after SIGTERM")


def test(nbio):
    d = os.path.abspath("ws-node")
    node = install_ws(d)
    with open(os.path.join(d, "server.js"), "w") as f:
        f.write(SERVER_JS)
    with open(os.path.join(d, "client.js"), "w") as f:
        f.write(CLIENT_JS)
    v = subprocess.run([node, "-e", "console.log(process.version + ' ws ' + "
                        "require('ws/package.json').version)"], cwd=d,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    step("node %s" % v.stdout.decode().strip())
    test_nbio_client(nbio, node, d)
    test_node_client(nbio, node, d)


if __name__ == "__main__":
    main(test, watchdog=175)
