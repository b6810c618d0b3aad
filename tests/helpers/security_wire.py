#!/usr/bin/env python3
# Raw-socket probes of a hub for the security suite: what it answers to bytes no HTTP client sends.
"""Each mode prints one JSON object describing what happened.

Usage: security_wire.py MODE HOST PORT [ARGS]
  garbage            binary garbage instead of a request
  h2-preface         the HTTP/2 connection preface (prior knowledge) on a plain connection
  http10             GET /healthz as HTTP/1.0
  http09             GET /healthz as HTTP/0.9 (no version)
  huge-header        a request with a 1 MiB header line
  many-headers       a request with 10000 headers
  big-body N CHUNKED POST /v1/tasks with an N-byte body, by Content-Length or chunked (1/0);
                     reports the status and how many bytes the hub read before answering
  slow-headers S     sends a request's headers one byte every 0.5 s; reports when the hub
                     closed the connection (at most S seconds of trying)
  slow-body S        complete headers, then a body one byte every 0.5 s (same report)
  many N             opens N idle connections, asks /healthz on a fresh one while they are
                     open, closes them, and asks again
"""
import json
import socket
import sys
import time


def connect(host, port, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def read_all(s, limit=1 << 20):
    """Reads until the peer closes (or the timeout): returns (bytes, closed)."""
    out = b""
    try:
        while len(out) < limit:
            d = s.recv(65536)
            if not d:
                return out, True
            out += d
    except socket.timeout:
        return out, False
    except ConnectionResetError:
        return out, True
    return out, False


def status_of(data):
    if data.startswith(b"HTTP/"):
        parts = data.split(b" ", 2)
        if len(parts) > 1 and parts[1].isdigit():
            return int(parts[1])
    return None


def body_of(data):
    at = data.find(b"\r\n\r\n")
    return data[at + 4:].decode("utf-8", "replace") if at >= 0 else ""


def exchange(host, port, payload, timeout=10):
    s = connect(host, port, timeout)
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data, closed = read_all(s)
    s.close()
    return {"status": status_of(data), "closed": closed, "head": data[:400].decode("latin-1"),
            "body": body_of(data)[:400]}


def healthz(host, port, timeout=10):
    try:
        r = exchange(host, port, b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n", timeout)
        return r["status"]
    except OSError as e:
        return str(e)


def big_body(host, port, n, chunked):
    s = connect(host, port, 30)
    head = b"POST /v1/tasks HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer hgr_000000000000_x\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % n
    s.sendall(head)
    # Sends the body in 64 KiB pieces while watching for an early answer; pending holds the
    # bytes of the current piece the socket has not taken yet.
    sent, piece, pending, answer = 0, b"x" * 65536, b"", b""
    s.setblocking(False)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            d = s.recv(65536)
            if not d:
                break
            answer += d
            if b"\r\n\r\n" in answer:
                break
        except BlockingIOError:
            pass
        except ConnectionResetError:
            break
        if not pending:
            if sent >= n:
                if not chunked:
                    break
                pending, chunked = b"0\r\n\r\n", False
            else:
                part = piece[: min(len(piece), n - sent)]
                sent += len(part)
                pending = (b"%x\r\n" % len(part)) + part + b"\r\n" if chunked else part
        try:
            k = s.send(pending)
            pending = pending[k:]
        except BlockingIOError:
            time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            break
    s.setblocking(True)
    s.settimeout(30)
    more, closed = read_all(s)
    answer += more
    s.close()
    return {"status": status_of(answer), "sent": sent, "closed": closed, "head": answer[:300].decode("latin-1"),
            "body": body_of(answer)[:400]}


def slow(host, port, seconds, body):
    s = connect(host, port, 1)
    if body:
        s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer x\r\nContent-Length: 100000\r\n\r\n")
        drip = b"{" + b" " * 99999
    else:
        drip = b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Slow: " + b"a" * 100000
    t0, i, answer = time.time(), 0, b""
    s.settimeout(0.5)
    while time.time() - t0 < seconds:
        try:
            s.sendall(drip[i:i + 1])
            i += 1
        except OSError:
            return {"closed_after_s": time.time() - t0, "bytes_sent": i, "answer": answer[:200].decode("latin-1")}
        try:
            d = s.recv(4096)
            if not d:
                return {"closed_after_s": time.time() - t0, "bytes_sent": i, "answer": answer[:200].decode("latin-1")}
            answer += d
        except socket.timeout:
            pass
        except ConnectionResetError:
            return {"closed_after_s": time.time() - t0, "bytes_sent": i, "answer": answer[:200].decode("latin-1")}
    s.close()
    return {"closed_after_s": None, "bytes_sent": i}


def many(host, port, n):
    socks, error = [], None
    for _ in range(n):
        try:
            socks.append(connect(host, port, 5))
        except OSError as e:
            error = str(e)
            break
    during = healthz(host, port, 5)
    for s in socks:
        s.close()
    after = None
    deadline = time.time() + 20
    while time.time() < deadline:
        after = healthz(host, port, 5)
        if after == 200:
            break
        time.sleep(0.2)
    return {"opened": len(socks), "connect_error": error, "healthz_during": during, "healthz_after": after}


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    args = sys.argv[4:]
    if mode == "garbage":
        payload = bytes((i * 7919 + 13) % 256 for i in range(4096))
        r = exchange(host, port, payload)
    elif mode == "h2-preface":
        settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        r = exchange(host, port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings)
    elif mode == "http10":
        r = exchange(host, port, b"GET /healthz HTTP/1.0\r\n\r\n")
    elif mode == "http09":
        r = exchange(host, port, b"GET /healthz\r\n")
    elif mode == "huge-header":
        r = exchange(host, port, b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    elif mode == "many-headers":
        hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(10000))
        r = exchange(host, port, b"GET /healthz HTTP/1.1\r\nHost: hub\r\n" + hdrs + b"\r\n")
    elif mode == "big-body":
        r = big_body(host, port, int(args[0]), args[1] == "1")
    elif mode == "slow-headers":
        r = slow(host, port, float(args[0]), False)
    elif mode == "slow-body":
        r = slow(host, port, float(args[0]), True)
    elif mode == "many":
        r = many(host, port, int(args[0]))
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
