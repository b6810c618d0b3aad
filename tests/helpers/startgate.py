#!/usr/bin/env python3
# An HTTP proxy in front of a real hub that can hold or refuse the agent's start calls, for
# specs of what an agent does while the hub has not answered `POST /v1/runs/{id}/start` yet.
"""
    startgate.py PORT_FILE HUB_PORT

Forwards every request to the hub on 127.0.0.1:HUB_PORT and its answer back, except
`POST /v1/runs/{id}/start`, which it treats as the gate's mode says:

    pass     forwarded (the mode it starts in)
    hold     kept unanswered until the mode changes, then treated as the new mode says
    refuse   answered with {"error": {"code", "message"}} and the given status, never
             forwarded, so the hub's run stays accepted

Control (no auth):
    POST /_gate {"start": "pass|hold|refuse", "status": 409, "code": "lease_lost"}
    GET  /_gate -> {"held": N, "log": [{"what": "request|answer", "method", "path",
                                         "status"}, ...]}   (in the order they happened)

The server writes "PORT\\n" to PORT_FILE once it listens on a free loopback port, and exits
when its standard input closes, so a spec that dies cannot leave it behind.
"""
import http.client
import json
import re
import sys
import threading

sys.dont_write_bytecode = True  # importing hubstub leaves no __pycache__ in the source tree
import hubstub  # noqa: E402

HUB_PORT = int(sys.argv[2])
START = re.compile(r"/v1/runs/[A-Za-z0-9_-]+/start")

gate = threading.Condition()
state = {"start": "pass", "status": 409, "code": "lease_lost", "held": 0, "log": []}


def note(what, method, path, status=None):
    with gate:
        state["log"].append({"what": what, "method": method, "path": path, "status": status})


class Handler(hubstub.Handler):
    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def handle_any(self, method):
        raw = self.body()
        if self.path == "/_gate":
            with gate:
                if method == "POST":
                    ctl = json.loads(raw or b"{}")
                    for k in ("start", "status", "code"):
                        if k in ctl:
                            state[k] = ctl[k]
                    gate.notify_all()
                doc = {"held": state["held"], "log": list(state["log"])}
            return self.answer(200, doc)
        note("request", method, self.path)
        if method == "POST" and START.fullmatch(self.path):
            with gate:
                state["held"] += 1
                while state["start"] == "hold":
                    gate.wait()
                state["held"] -= 1
                mode, status, code = state["start"], state["status"], state["code"]
            if mode == "refuse":
                # Noted before it is sent: whatever the agent does after it comes later.
                note("answer", method, self.path, status)
                self.error(status, code, "refused by the test's gate")
                return
        self.forward(method, raw)

    def forward(self, method, raw):
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        conn = http.client.HTTPConnection("127.0.0.1", HUB_PORT, timeout=120)
        try:
            conn.request(method, self.path, body=raw if raw else None, headers=headers)
            res = conn.getresponse()
            body = res.read()
            status, ctype = res.status, res.getheader("Content-Type")
        except OSError:
            self.close_connection = True
            return
        finally:
            conn.close()
        note("answer", method, self.path, status)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Hangar-Protocol", "1")
        self.end_headers()
        self.wfile.write(body)


def main():
    threading.Thread(target=hubstub.serve, args=(Handler, sys.argv[1]), daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main()
