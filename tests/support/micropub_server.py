#!/usr/bin/env python3
"""A Micropub endpoint for tayori's tests, checking what the W3C Micropub Recommendation asks
of a client: a bearer token (§3.1: missing → 401 unauthorized, wrong → 403 forbidden); a JSON
create (§3.3.2) with "type": ["h-entry"] and every property an array, HTML content as
{"html": …}; answered 201 with the new post's URL in Location. Updates (§3.4) name an existing
url and "replace" properties, each an array; deletes (§3.5) name an existing url.

Usage: micropub_server.py OUT_DIR TOKEN [--fail-first N]
Prints "PORT <n>" when ready. Appends every request to OUT_DIR/requests.jsonl as
{"auth", "body", "valid", "status"} and keeps OUT_DIR/posts.json (url → properties,
"deleted" set when deleted). The first N valid requests answer 503.
"""
import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("token")
p.add_argument("--fail-first", type=int, default=0)
args = p.parse_args()
lock = threading.Lock()
state = {"valid": 0, "posts": {}, "next": 1}


def arrays(props):
    return isinstance(props, dict) and all(isinstance(v, list) for v in props.values())


def check(body):
    """The request's action and whether it is valid Micropub JSON."""
    action = body.get("action", "create")
    if action == "create":
        props = body.get("properties")
        ok = body.get("type") == ["h-entry"] and arrays(props)
        content = (props or {}).get("content", [None])[0]
        return action, ok and isinstance(content, dict) and "html" in content
    if action == "update":
        return action, body.get("url") in state["posts"] and arrays(body.get("replace"))
    if action == "delete":
        return action, body.get("url") in state["posts"]
    return action, False


class Endpoint(BaseHTTPRequestHandler):
    def answer(self, status, location=None, error=None):
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        payload = json.dumps({"error": error, "error_description": "test endpoint"}).encode() if error else b""
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth = self.headers.get("Authorization", "")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with lock:
            status, location, error, valid = 400, None, "invalid_request", False
            if not auth.startswith("Bearer "):
                status, error = 401, "unauthorized"
            elif auth != "Bearer " + args.token:
                status, error = 403, "forbidden"
            elif isinstance(body, dict):
                action, valid = check(body)
                if valid:
                    state["valid"] += 1
                    error = None
                    if state["valid"] <= args.fail_first:
                        status = 503
                    elif action == "create":
                        location = "http://127.0.0.1:%d/entries/%d" % (self.server.server_port, state["next"])
                        state["next"] += 1
                        state["posts"][location] = body["properties"]
                        status = 201
                    elif action == "update":
                        state["posts"][body["url"]].update(body["replace"])
                        status = 204
                    else:
                        state["posts"][body["url"]]["deleted"] = True
                        status = 204
            with open(os.path.join(args.out, "requests.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"auth": auth, "body": body, "valid": valid, "status": status},
                                   ensure_ascii=False) + "\n")
            with open(os.path.join(args.out, "posts.json"), "w", encoding="utf-8") as f:
                json.dump(state["posts"], f, ensure_ascii=False)
        self.answer(status, location, error)

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
print("PORT %d" % server.server_port, flush=True)
server.serve_forever()
