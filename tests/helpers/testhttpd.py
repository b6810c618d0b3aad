#!/usr/bin/env python3
# Loopback HTTP/HTTPS server for the HTTP client's unit tests: echo, status codes, stalls, slow and gated chunked streams, connection counting.
#
# Usage: testhttpd.py [--https CERT KEY] [--mtls CERT KEY CLIENT_CA]
# Listens on 127.0.0.1 at ports the kernel picks and prints them on one line
# ("http=P https=P mtls=P"). Exits when its standard input closes, so a test that dies
# cannot leave it behind.
import argparse
import hashlib
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATTERN = bytes(i % 251 for i in range(251)) * 64  # byte i of a body is i % 251


def pattern(offset, n):
    out = bytearray()
    while n > 0:
        start = offset % 251
        take = min(n, len(PATTERN) - start)
        out += PATTERN[start:start + take]
        offset += take
        n -= take
    return bytes(out)


class State:
    def __init__(self):
        self.lock = threading.Condition()
        self.connections = 0
        self.gates = {}


STATE = State()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with STATE.lock:
            STATE.connections += 1

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        chunks = []
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def reply(self, status, body, ctype="text/plain", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for name, value in extra:
            self.send_header(name, value)
        if status in (204, 304):
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def handle_any(self):
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self.read_body()
        path = url.path
        if path == "/echo":
            doc = {
                "method": self.command,
                "path": path,
                "target": self.path,
                "query": url.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
            }
            self.reply(200, json.dumps(doc).encode(), "application/json")
        elif path.startswith("/status/"):
            code = int(path[len("/status/"):])
            self.reply(code, b"status %d\n" % code, extra=[("X-Status", str(code))])
        elif path == "/headers":
            self.reply(200, b"ok", extra=[("X-Mixed-Case", "Hello World"),
                                          ("X-Padded", "  spaced value  "),
                                          ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        elif path == "/conns":
            with STATE.lock:
                n = STATE.connections
            self.reply(200, str(n).encode())
        elif path == "/bytes":
            n = int(q.get("n", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            sent = 0
            while sent < n:
                piece = pattern(sent, min(n - sent, 1 << 16))
                self.wfile.write(piece)
                sent += len(piece)
        elif path == "/sha256":
            doc = {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}
            self.reply(200, json.dumps(doc).encode(), "application/json")
        elif path == "/stall":
            deadline = time.monotonic() + int(q.get("ms", "10000")) / 1000
            while time.monotonic() < deadline:
                time.sleep(0.02)
            self.reply(200, b"late")
        elif path in ("/chunked", "/gated"):
            chunks = int(q.get("chunks", "10"))
            size = int(q.get("size", "100"))
            delay = int(q.get("delay_ms", "0")) / 1000
            gate = q.get("id")
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(chunks):
                if path == "/gated" and i > 0:
                    # The next chunk goes out only once the client has seen this many: a
                    # client that buffers the whole body never gets there.
                    with STATE.lock:
                        if not STATE.lock.wait_for(lambda: STATE.gates.get(gate, 0) >= i, 15):
                            self.close_connection = True
                            return
                elif delay:
                    time.sleep(delay)
                self.chunk(pattern(i * size, size))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/release":
            with STATE.lock:
                STATE.gates[q["id"]] = STATE.gates.get(q["id"], 0) + 1
                STATE.lock.notify_all()
            self.reply(200, b"ok")
        elif path == "/whoami":
            cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
            cn = ""
            for rdn in (cert or {}).get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
            self.reply(200, json.dumps({"cn": cn}).encode(), "application/json")
        else:
            self.reply(404, b"no such test endpoint\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    tls = None

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls:
            # The handshake runs in the connection's thread, so a client that fails it
            # cannot hold up the others.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass  # refused handshakes and clients that hang up are what some tests are about


def serve(tls=None):
    srv = Server(("127.0.0.1", 0), Handler)
    srv.tls = tls
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--https", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--mtls", nargs=3, metavar=("CERT", "KEY", "CLIENT_CA"))
    args = ap.parse_args()
    ports = ["http=%d" % serve()]
    if args.https:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*args.https)
        ports.append("https=%d" % serve(ctx))
    if args.mtls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.mtls[0], args.mtls[1])
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(args.mtls[2])
        ports.append("mtls=%d" % serve(ctx))
    print(" ".join(ports), flush=True)
    sys.stdin.read()  # until the test closes our stdin or dies
    os._exit(0)


if __name__ == "__main__":
    main()
