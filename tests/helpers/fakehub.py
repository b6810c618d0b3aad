#!/usr/bin/env python3
"""A small stand-in for the hub's event and finish endpoints, with faults on demand, for the
uploader's unit test. It keeps each run's events as the protocol says (next_seq, seq_gap,
invalid_transition, events_total) and lets the test break things: answer 5xx, drop
connections, refuse the token, lose events, cancel or end a run, lower the body limit.

    fakehub.py PORT_FILE        serves on a free loopback port, writes "PORT\\n" to PORT_FILE

Control (no auth):
    POST /_control {"token": T, "fail": {"status": 503, "count": N, "what": "events|finish|any"},
                    "drop": N (close N connections unanswered), "truncate": {"run": R, "to": N},
                    "status": {"run": R, "status": S}, "max_body": BYTES}
    GET /_state -> {"requests": N, "runs": {R: {"events": [...], "finish": {...} | null,
                    "finish_seen_events": N, "finishes": N}}}
"""
import json
import re
import sys
import threading

sys.dont_write_bytecode = True  # importing hubstub leaves no __pycache__ in the source tree
import hubstub  # noqa: E402

ENDED = ("succeeded", "failed", "cancelled")

lock = threading.Lock()
state = {
    "token": "token-1",
    "requests": 0,
    "fail": None,  # {"status", "count", "what"}
    "drop": 0,
    "max_body": 8 << 20,
    "runs": {},
}


def run_of(rid):
    return state["runs"].setdefault(rid, {"events": [], "status": "running", "finish": None,
                                          "finish_seen_events": None, "finishes": 0})


class Handler(hubstub.Handler):
    def do_GET(self):
        if self.path == "/_state":
            with lock:
                doc = {"requests": state["requests"], "runs": state["runs"]}
                self.answer(200, doc)
            return
        self.error(404, "not_found", "no such path")

    def do_POST(self):
        raw = self.body()
        if self.path == "/_control":
            with lock:
                ctl = json.loads(raw or b"{}")
                if "token" in ctl:
                    state["token"] = ctl["token"]
                if "fail" in ctl:
                    state["fail"] = ctl["fail"]
                if "drop" in ctl:
                    state["drop"] = ctl["drop"]
                if "max_body" in ctl:
                    state["max_body"] = ctl["max_body"]
                if "truncate" in ctl:
                    r = run_of(ctl["truncate"]["run"])
                    del r["events"][ctl["truncate"]["to"]:]
                if "status" in ctl:
                    run_of(ctl["status"]["run"])["status"] = ctl["status"]["status"]
            self.answer(200, {})
            return
        m = re.fullmatch(r"/v1/runs/([A-Za-z0-9_-]+)/(events|finish)", self.path)
        with lock:
            state["requests"] += 1
            if state["drop"] > 0:
                state["drop"] -= 1
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass
                return
            if not m:
                self.error(404, "not_found", "no such path")
                return
            rid, what = m.group(1), m.group(2)
            if self.headers.get("Authorization") != "Bearer " + state["token"]:
                self.error(401, "unauthorized", "session token not valid")
                return
            fail = state["fail"]
            if fail and fail["count"] > 0 and fail.get("what", "any") in ("any", what):
                fail["count"] -= 1
                self.error(fail["status"], "unavailable", "injected failure")
                return
            if len(raw) > state["max_body"]:
                self.error(413, "too_large", "body of %d bytes is over the limit" % len(raw))
                return
            body = json.loads(raw)
            run = run_of(rid)
            if what == "events":
                self.post_events(run, body)
            else:
                self.post_finish(run, body)

    def post_events(self, run, body):
        first, events = body["first_seq"], body["events"]
        for e in events:
            if e.get("kind") == "log" and len(e["text"].encode()) > 65536:
                self.error(413, "too_large", "event text over 64 KiB")
                return
        if run["finish"] is not None:
            self.error(409, "invalid_transition", "events after finish", status=run["status"])
            return
        have = len(run["events"])
        if first > have:
            self.error(409, "seq_gap", "first_seq %d is above next_seq %d" % (first, have), next_seq=have)
            return
        run["events"].extend(events[have - first:])
        self.answer(200, {"next_seq": len(run["events"]), "status": run["status"]})

    def post_finish(self, run, body):
        rec = {k: body.get(k) for k in ("status", "exit_code", "error", "events_total")}
        if run["finish"] is not None:
            if run["finish"] == rec and run["finish_ok"]:
                self.answer(200, {"status": run["status"]})
            else:
                self.error(409, "invalid_transition", "finish differs", status=run["status"])
            return
        have = len(run["events"])
        if rec["events_total"] > have:
            self.error(409, "seq_gap", "events_total above next_seq", next_seq=have)
            return
        run["finishes"] += 1
        run["finish"] = rec
        run["finish_seen_events"] = have
        run["finish_ok"] = run["status"] not in ENDED
        if run["status"] in ENDED:
            self.error(409, "invalid_transition", "the run already ended", status=run["status"])
            return
        run["status"] = rec["status"]
        self.answer(200, {"status": run["status"]})


def main():
    hubstub.serve(Handler, sys.argv[1])


if __name__ == "__main__":
    main()
