#!/usr/bin/env python3
"""Runs an HTTP client example against a local server, for CTest:

    run_with_http_server.py CLIENT

Serves a temporary directory holding hello.txt with Python's http.server on
127.0.0.1 (port 0: the socket is bound first, so the real port is known),
runs `CLIENT http://127.0.0.1:PORT/hello.txt`, and passes when the client
exits 0 having printed the status 200 and the body's size. Bounded in time.
"""
import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading

BODY = b"hello from http.server, for the http_request example\n" * 10


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


def main():
    if len(sys.argv) != 2:
        print("usage: run_with_http_server.py CLIENT", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "hello.txt"), "wb") as f:
            f.write(BODY)
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                              functools.partial(Quiet, directory=root))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d/hello.txt" % srv.server_address[1]
        print("server on", url, flush=True)
        try:
            p = subprocess.run([sys.argv[1], url], stdout=subprocess.PIPE, timeout=30)
        except subprocess.TimeoutExpired:
            print("FAIL: the client did not finish within 30 s", file=sys.stderr)
            return 1
        finally:
            srv.shutdown()
    out = p.stdout.decode(errors="replace")
    print(out, end="")
    want = ["Response: HTTP/1.0 200 OK", "Response Body: %d bytes" % len(BODY)]
    missing = [w for w in want if w not in out.splitlines()]
    if p.returncode != 0 or missing:
        print("FAIL: exit %d, missing lines %r" % (p.returncode, missing), file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
