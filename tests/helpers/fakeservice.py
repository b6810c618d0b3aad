#!/usr/bin/env python3
# A loopback fake of a remote job service (think Kubernetes Jobs, reduced), for the remote
# scheduler backend's tests: jobs that print lines over time, logs streamed as a chunked
# response from any line on, status and exit code, cancel, delete.
#
# Usage: fakeservice.py   -- listens on 127.0.0.1 at a port the kernel picks, prints
# "port=P", and exits when its standard input closes (a test that dies leaves nothing behind).
#
#   POST   /jobs                 {"lines": N, "interval_ms": M, "text": "line", "exit_code": C,
#                                 "hold_after": K, "run_id": "..."}  -> 201 {"id", "url"}
#          the job prints "<text> 1" ... "<text> N", one line every M ms; with hold_after it
#          stops after line K until POST /jobs/ID/release
#   GET    /jobs/ID              -> {"id", "state": "running|succeeded|failed|cancelled",
#                                    "exit_code": C|null, "lines": printed so far}
#   GET    /jobs/ID/log?from=L   -> 200, chunked: the job's output from line L (0-based) on,
#                                   as it is printed; ends when the job has ended
#   POST   /jobs/ID/cancel       {"grace_s": G} -> 202; the job prints "<text> cancelled" and
#                                   ends with exit code 143
#   POST   /jobs/ID/release      -> 204 (see hold_after)
#   DELETE /jobs/ID              -> 204
#   GET    /jobs                 -> {"jobs": [ids]}
#   GET    /stats                -> {"log_requests": [{"job", "from"}], "cancels": [{"job",
#                                    "grace_s"}], "deletes": [ids], "creates": [bodies]}
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Job:
    def __init__(self, job_id, spec):
        self.id = job_id
        self.lines_total = int(spec.get("lines", 5))
        self.interval = max(0, int(spec.get("interval_ms", 50))) / 1000.0
        self.text = str(spec.get("text", "line"))
        self.exit_code = int(spec.get("exit_code", 0))
        self.hold_after = spec.get("hold_after")
        self.released = False
        self.cancelled = False
        self.output = []  # printed lines, each ending in "\n"
        self.state = "running"
        self.code = None
        self.cond = threading.Condition()
        threading.Thread(target=self.work, daemon=True).start()

    def work(self):
        for i in range(1, self.lines_total + 1):
            with self.cond:
                if self.hold_after is not None and i > int(self.hold_after):
                    while not self.released and not self.cancelled:
                        self.cond.wait()
                self.cond.wait_for(lambda: self.cancelled, timeout=self.interval)
                if self.cancelled:
                    break
                self.output.append("%s %d\n" % (self.text, i))
                self.cond.notify_all()
        with self.cond:
            if self.cancelled:
                self.output.append("%s cancelled\n" % self.text)
                self.state, self.code = "cancelled", 143
            else:
                self.state = "succeeded" if self.exit_code == 0 else "failed"
                self.code = self.exit_code
            self.cond.notify_all()

    def doc(self):
        with self.cond:
            return {"id": self.id, "state": self.state, "exit_code": self.code, "lines": len(self.output)}


class Service:
    def __init__(self):
        self.lock = threading.Lock()
        self.jobs = {}
        self.next_id = 1
        self.stats = {"log_requests": [], "cancels": [], "deletes": [], "creates": []}


SERVICE = Service()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        return json.loads(raw)

    def answer(self, status, doc=None):
        data = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def job(self, job_id):
        with SERVICE.lock:
            return SERVICE.jobs.get(job_id)

    def route(self):
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        return parts, parse_qs(url.query)

    def do_GET(self):
        parts, q = self.route()
        if parts == ["jobs"]:
            with SERVICE.lock:
                return self.answer(200, {"jobs": sorted(SERVICE.jobs)})
        if parts == ["stats"]:
            with SERVICE.lock:
                return self.answer(200, SERVICE.stats)
        if len(parts) >= 2 and parts[0] == "jobs":
            job = self.job(parts[1])
            if not job:
                return self.answer(404, {"error": "no such job"})
            if len(parts) == 2:
                return self.answer(200, job.doc())
            if len(parts) == 3 and parts[2] == "log":
                return self.stream(job, int(q.get("from", ["0"])[0]))
        self.answer(404, {"error": "not found"})

    def stream(self, job, start):
        with SERVICE.lock:
            SERVICE.stats["log_requests"].append({"job": job.id, "from": start})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        at = start
        try:
            while True:
                with job.cond:
                    job.cond.wait_for(lambda: len(job.output) > at or job.state != "running", timeout=1.0)
                    lines = job.output[at:]
                    ended = job.state != "running"
                if lines:
                    # Whole lines per chunk: a reader that stops between chunks stops at a line end.
                    data = "".join(lines).encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    at += len(lines)
                if ended and at >= len(job.output):
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self):
        parts, _ = self.route()
        if parts == ["jobs"]:
            spec = self.body()
            with SERVICE.lock:
                job_id = "job%d" % SERVICE.next_id
                SERVICE.next_id += 1
                SERVICE.jobs[job_id] = Job(job_id, spec)
                SERVICE.stats["creates"].append(spec)
            return self.answer(201, {"id": job_id, "url": "/jobs/" + job_id})
        if len(parts) == 3 and parts[0] == "jobs" and parts[2] in ("cancel", "release"):
            job = self.job(parts[1])
            if not job:
                return self.answer(404, {"error": "no such job"})
            spec = self.body()
            with job.cond:
                if parts[2] == "cancel":
                    job.cancelled = True
                else:
                    job.released = True
                job.cond.notify_all()
            if parts[2] == "cancel":
                with SERVICE.lock:
                    SERVICE.stats["cancels"].append({"job": job.id, "grace_s": spec.get("grace_s")})
                return self.answer(202, job.doc())
            return self.answer(204)
        self.answer(404, {"error": "not found"})

    def do_DELETE(self):
        parts, _ = self.route()
        if len(parts) == 2 and parts[0] == "jobs":
            with SERVICE.lock:
                job = SERVICE.jobs.pop(parts[1], None)
                if job:
                    SERVICE.stats["deletes"].append(job.id)
            if job:
                with job.cond:
                    job.cancelled = True
                    job.cond.notify_all()
                return self.answer(204)
            return self.answer(404, {"error": "no such job"})
        self.answer(404, {"error": "not found"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("port=%d" % server.server_address[1], flush=True)
    # Exit with the test that started us.
    while sys.stdin.read(1):
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
