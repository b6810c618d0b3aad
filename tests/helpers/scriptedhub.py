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
import sys
import threading
import time

sys.dont_write_bytecode = True  # importing hubstub leaves no __pycache__ in the source tree
import hubstub  # noqa: E402

lock = threading.Lock()
requests = []
pending = json.loads(sys.argv[2])


class Handler(hubstub.Handler):
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
            return self.error(409, "lease_lost", "the lease is not current")
        if method == "DELETE":
            return self.answer(204)
        return self.error(404, "not_found", "no such path")


def main():
    hubstub.serve(Handler, sys.argv[1])


if __name__ == "__main__":
    main()
