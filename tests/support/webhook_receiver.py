#!/usr/bin/env python3
"""A webhook receiver for tayori's tests. Signatures are checked with the `standardwebhooks`
package (the spec's reference implementation), not with tayori's code.

Usage: webhook_receiver.py OUT_DIR SECRET [--fail-first N] [--gone]
Prints "PORT <n>" when ready. Every request is appended to OUT_DIR/hooks.jsonl as
{"id", "timestamp", "verified", "status", "body"}; the first N requests answer 500.
"""
import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("secret")
p.add_argument("--fail-first", type=int, default=0)
p.add_argument("--gone", action="store_true")
args = p.parse_args()
hook = Webhook(args.secret)
lock = threading.Lock()
count = [0]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            hook.verify(body, headers)
            verified = True
        except Exception as e:  # noqa: BLE001 - any failure means "not verified"
            verified = False
            sys.stderr.write("verify failed: %s\n" % e)
        with lock:
            count[0] += 1
            n = count[0]
        status = 410 if args.gone else (500 if n <= args.fail_first else 200)
        rec = {
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "verified": verified,
            "status": status,
            "body": json.loads(body),
        }
        with lock, open(os.path.join(args.out, "hooks.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.send_response(status)
        self.end_headers()

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT %d" % server.server_address[1], flush=True)
server.serve_forever()
