# What the stand-in hubs (fakehub.py, scriptedhub.py) share: protocol-shaped answers, a port file.
"""Answers as the protocol shapes them (JSON, the Hangar-Protocol header, errors as
{"error": {"code", "message"}}) and a server on a free loopback port that it names in a file,
written whole (through a rename) once it listens."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, doc=None):
        """Answers doc as JSON, or an empty body when doc is None."""
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Hangar-Protocol", "1")
        self.end_headers()
        self.wfile.write(body)

    def error(self, http_status, code, message, **extra):
        """A protocol error; extra facts (next_seq, status) sit beside "error"."""
        doc = {"error": {"code": code, "message": message}}
        doc.update(extra)
        self.answer(http_status, doc)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


def serve(handler, port_file):
    """Serves handler on 127.0.0.1 at a port the kernel picks, writing "PORT\\n" to port_file."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(port_file + ".tmp", port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
