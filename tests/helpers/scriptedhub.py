#!/usr/bin/env python3
"""A hub that says what a test tells it to, for checking how the agent treats a hub's answers
(a compromised or broken hub included). It registers any agent, hands out the assignments it was
given once, each in its own work answer, then answers work polls with nothing after a short
wait; it refuses every accept with 409 (so no run starts) and records every request.

    scriptedhub.py PORT_FILE ASSIGNMENTS_JSON

ASSIGNMENTS_JSON is a list of {"run_id", "lease_id"} objects. The server writes "PORT\\n" to
PORT_FILE once it listens on a free loopback port.

    GET /_requests -> [{"method", "path"}, ...] (no auth; everything else is answered as a hub)
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
requests = []
pending = json.loads(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Hangar-Protocol", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_requests":
            with lock:
                return self.answer(200, list(requests))
        self.route("GET")

    def do_POST(self):
        self.body()
        self.route("POST")

    def do_DELETE(self):
        self.body()
        self.route("DELETE")

    def route(self, method):
        with lock:
            requests.append({"method": method, "path": self.path})
        p = self.path.split("?")[0]
        if method == "POST" and p == "/v1/agents":
            return self.answer(201, {
                "agent_id": "agent_scripted", "session_token": "hst_" + "a" * 43,
                "heartbeat_interval_s": 1, "poll_wait_s": 1, "lease_ttl_s": 30,
                "max_batch_bytes": 1 << 20, "runs": []})
        if p.endswith("/work"):
            with lock:
                a = pending.pop(0) if pending else None
            if a is not None:
                return self.answer(200, {"assign": [a], "cancel": [], "action": "none"})
            time.sleep(0.3)
            return self.answer(200, {"assign": [], "cancel": [], "action": "none"})
        if p.endswith("/heartbeat"):
            return self.answer(200, {"cancel": [], "action": "none", "lease_ttl_s": 30})
        if p.endswith("/accept"):
            return self.answer(409, {"error": "lease_lost", "message": "the lease is not current"})
        if method == "DELETE":
            self.send_response(204)
            self.send_header("Hangar-Protocol", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        return self.answer(404, {"error": "not_found", "message": "no such path"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
