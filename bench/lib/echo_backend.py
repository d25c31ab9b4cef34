#!/usr/bin/env python3
"""Tiny HTTP server that answers every request with the request head it received, byte for byte.

Only used by the harness's correctness checks (not measured): the backend nginx forwards `/echo` here, so a
check can see exactly which identity headers each proxy sent, how many times, and that spoofed copies were
stripped. Usage: echo_backend.py PORT [WORKDIR (ignored: names the run in ps)]
"""
import http.server
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = (self.requestline + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
