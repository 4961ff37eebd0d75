#!/usr/bin/env python3
"""A WebSub hub's publish endpoint for tayori's tests, checking what the W3C WebSub
Recommendation (§7, "Publishing") asks of a publisher's ping: a POST, form-encoded, with
hub.mode=publish and hub.url naming the topic (the feed).

Usage: websub_hub.py OUT_DIR [--fail-first N]
Prints "PORT <n>" when ready; appends every request to OUT_DIR/pings.jsonl as
{"method", "content_type", "mode", "url", "valid", "status"}; the first N answer 503.
"""
import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--fail-first", type=int, default=0)
args = p.parse_args()
lock = threading.Lock()
count = [0]


class Hub(BaseHTTPRequestHandler):
    def record(self, method, ctype, form):
        mode = form.get("hub.mode", [""])[0]
        url = form.get("hub.url", [""])[0]
        valid = (method == "POST" and ctype.split(";")[0].strip() == "application/x-www-form-urlencoded"
                 and mode == "publish" and url.startswith(("http://", "https://")))
        with lock:
            count[0] += 1
            status = 503 if count[0] <= args.fail_first else (204 if valid else 400)
            with open(os.path.join(args.out, "pings.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"method": method, "content_type": ctype, "mode": mode,
                                    "url": url, "valid": valid, "status": status}) + "\n")
        self.send_response(status)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        self.record("POST", self.headers.get("content-type", ""), parse_qs(body))

    def do_GET(self):
        self.record("GET", "", {})

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
print("PORT %d" % server.server_address[1], flush=True)
server.serve_forever()
