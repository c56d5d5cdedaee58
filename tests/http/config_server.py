#!/usr/bin/env python3
"""A config service for the HTTP source's tests: serves DIR/config.json at any path with an
ETag (its SHA-1) and honours If-None-Match with 304. DIR/mode changes the answer:
"500" (a server error), "sleep" (answers after 5 s: a timeout), "garbage" (200 with a body
that is no JSON); absent or "ok": the file. Listens on a free loopback port and writes it to
DIR/port once it accepts connections."""
import hashlib
import http.server
import os
import sys
import time

DIR = sys.argv[1]


def read(name):
    try:
        with open(os.path.join(DIR, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        mode = (read("mode") or b"ok").strip().decode()
        if mode == "500":
            return self.reply(500, b"config service down")
        if mode == "sleep":
            time.sleep(5)
        body = b"\x00<html>not a config" if mode == "garbage" else (read("config.json") or b"")
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if self.headers.get("If-None-Match") == etag:
            return self.reply(304, b"", etag)
        return self.reply(200, body, etag)

    def reply(self, status, body, etag=None):
        # Logged before the answer goes out, so that a client that has it finds it logged.
        with open(os.path.join(DIR, "requests"), "a") as f:
            f.write(f"{status}\n")
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
