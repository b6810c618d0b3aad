#!/usr/bin/env python3
# Fault-injecting TCP proxy for the fault suite: loopback only, seeded faults for a bounded window, then a clean pass-through.
"""
faultproxy.py --target 127.0.0.1:PORT [options]

Forwards every connection made to its loopback listener to the target. Each accepted
connection gets a fault plan drawn from a random generator seeded by (--seed, the
connection's index), so connection N meets the same fault in every run with the same seed,
whatever the timing. A plan is one of:

  reset   after AT bytes went one way, both ends are reset (RST, SO_LINGER 0)
  stall   after AT bytes went one way, nothing moves either way for STALL ms
  delay   after AT bytes went one way, the next SPAN bytes that way are drip-fed: a few
          bytes, a pause, a few bytes ...
  close   after AT bytes went one way, both ends are closed cleanly (FIN): the reader sees
          a truncated stream
  refuse  the connection is reset at once and the listener stops listening for REFUSE ms
          (new connections meet ECONNREFUSED), the port stays ours
  clean   nothing happens

"One way" is the direction drawn with the plan: up (client to target) or down (target to
client). When a stall or a delay is over, the connection draws its next plan from the same
generator, with AT counted from there: a long-lived keep-alive connection meets faults one
after another until it draws a reset, close, refusal or clean (unless --no-repeat). Faults are planned only for connections accepted during the first --window seconds
(and while faults are on); when the window ends, every fault not yet struck is dropped, a
stalled or dripping connection goes back to full speed and a refusal ends: from then on the
proxy is a plain pass-through, so a test always converges.

Control: SIGUSR1 turns faults off (a clean pass-through, pending faults dropped), SIGUSR2
turns them on again. --control FILE is read every 50 ms; a change to its first word sets
the mode: "faults", "clean", or "hold" (a partition: nothing is forwarded on any
connection and new connections are refused until another word is written).

Reports: the listening address on standard output ("listening 127.0.0.1:PORT") and in
--ready-file; counters in --stats (JSON, rewritten atomically); one JSON line per
plan (conn; n, its number on the connection; at, counted from the connection's start),
fault struck and connection end in --log. --plan-only N prints the plans connections 1..N
would draw (at counted from the fault before), without listening. The proxy exits on
SIGTERM, SIGINT, or, with --exit-with-stdin, when its standard input closes (so a test
that dies cannot leave it behind).
"""
import argparse
import errno
import heapq
import ipaddress
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time

KINDS = ("reset", "stall", "delay", "close", "refuse")
READ_SIZE = 65536
BUFFER_CAP = 1 << 20  # bytes held for one direction before the proxy stops reading its source


def parse_range(text, what):
    parts = text.split("-", 1)
    try:
        lo = int(parts[0])
        hi = int(parts[1]) if len(parts) > 1 else lo
    except ValueError:
        raise argparse.ArgumentTypeError("%s: %r is not N or MIN-MAX" % (what, text))
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError("%s: %r is not a range MIN-MAX with 0 <= MIN <= MAX" % (what, text))
    return (lo, hi)


def parse_rate(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("rate %r is not a number" % text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("rate %r is not between 0 and 1" % text)
    return v


def parse_addr(text, what):
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("%s: %r is not HOST:PORT" % (what, text))
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
        port = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("%s: %r is not an IP address and port" % (what, text))
    # Tests send traffic to this machine only.
    if not ip.is_loopback:
        raise argparse.ArgumentTypeError("%s: %s is not a loopback address" % (what, host))
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("%s: port %d is out of range" % (what, port))
    return (str(ip), port)


def options(argv):
    p = argparse.ArgumentParser(prog="faultproxy.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, type=lambda s: parse_addr(s, "--target"),
                   help="where connections go (loopback HOST:PORT)")
    p.add_argument("--listen", default="127.0.0.1:0", type=lambda s: parse_addr(s, "--listen"),
                   help="loopback HOST:PORT to listen on (port 0: one the kernel picks)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--window", type=float, default=30.0,
                   help="seconds from start during which faults are planned (then pass-through)")
    for kind in KINDS:
        p.add_argument("--" + kind, type=parse_rate, default=0.0, metavar="P",
                       help="probability that a connection meets a %s" % kind)
    p.add_argument("--at", type=lambda s: parse_range(s, "--at"), default=(0, 4096), metavar="MIN-MAX",
                   help="bytes that pass before a fault strikes (default 0-4096)")
    p.add_argument("--down", type=parse_rate, default=0.5, metavar="P",
                   help="probability that the fault counts bytes target-to-client (default 0.5)")
    p.add_argument("--no-repeat", dest="repeat", action="store_false",
                   help="one plan per connection: no further fault after a stall or delay")
    p.add_argument("--stall-ms", type=lambda s: parse_range(s, "--stall-ms"), default=(500, 3000))
    p.add_argument("--delay-span", type=lambda s: parse_range(s, "--delay-span"), default=(256, 8192),
                   help="bytes drip-fed by a delay fault")
    p.add_argument("--delay-chunk", type=lambda s: parse_range(s, "--delay-chunk"), default=(1, 64),
                   help="bytes per drip")
    p.add_argument("--delay-ms", type=lambda s: parse_range(s, "--delay-ms"), default=(5, 50),
                   help="pause between drips")
    p.add_argument("--refuse-ms", type=lambda s: parse_range(s, "--refuse-ms"), default=(200, 1000))
    p.add_argument("--control", help="file whose first word sets the mode: faults, clean or hold")
    p.add_argument("--stats", help="file to keep the counters in (JSON)")
    p.add_argument("--log", help="file to append one JSON line per plan, fault and connection end")
    p.add_argument("--ready-file", help="file to write HOST:PORT to once listening")
    p.add_argument("--exit-with-stdin", action="store_true", help="exit when standard input closes")
    p.add_argument("--plan-only", type=int, metavar="N",
                   help="print the plans of connections 1..N as JSON lines and exit")
    args = p.parse_args(argv)
    if sum(getattr(args, k) for k in KINDS) > 1.0 + 1e-9:
        p.error("the fault rates add up to more than 1")
    return args


def draw_plan(args, rng, number):
    """The next fault plan from a connection's generator. Every draw is made whatever the
    kind, so changing one rate does not shift the other parameters."""
    pick = rng.random()
    kind, edge = "clean", 0.0
    for k in KINDS:
        edge += getattr(args, k)
        if pick < edge:
            kind = k
            break
    return {
        "kind": kind,
        "number": number,
        "dir": "down" if rng.random() < args.down else "up",
        "at": rng.randint(*args.at),
        "stall_ms": rng.randint(*args.stall_ms),
        "span": rng.randint(*args.delay_span),
        "refuse_ms": rng.randint(*args.refuse_ms),
        "drip": random.Random(rng.random()),  # what a delay draws its drip sizes and pauses from
    }


def plan_rng(args, index):
    """Connection `index`'s plan generator: a pure function of the seed and the index, so a
    run can be replayed whatever the timing."""
    return random.Random("faultproxy/%d/%d" % (args.seed, index))


def plans_for(args, index, n):
    """The first n plans connection `index` would draw (n > 1 when stalls and delays are
    followed by further faults)."""
    rng = plan_rng(args, index)
    out = []
    for k in range(1, n + 1):
        plan = draw_plan(args, rng, k)
        out.append(plan)
        if plan["kind"] not in ("stall", "delay") or not args.repeat:
            break
    return out


def public_plan(plan):
    keep = {"kind": plan["kind"], "n": plan["number"]}
    if plan["kind"] in ("reset", "stall", "delay", "close"):
        keep["dir"] = plan["dir"]
        keep["at"] = plan["at"]
    if plan["kind"] == "stall":
        keep["stall_ms"] = plan["stall_ms"]
    if plan["kind"] == "delay":
        keep["span"] = plan["span"]
    if plan["kind"] == "refuse":
        keep["refuse_ms"] = plan["refuse_ms"]
    return keep


def hard_close(sock):
    """Close with an RST instead of a FIN (pending bytes are discarded)."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Pipe:
    """One direction of a connection: bytes read from src wait in buf until written to dst."""

    def __init__(self, name):
        self.name = name
        self.buf = bytearray()
        self.received = 0
        self.forwarded = 0
        self.eof = False  # src sent FIN
        self.shut = False  # FIN passed on to dst
        self.limit = None  # read no further than this many bytes until the fault struck
        self.drip_left = 0  # bytes still to drip-feed
        self.drip_next = 0.0  # monotonic time of the next drip


class Conn:
    def __init__(self, proxy, index, client, rng, plan):
        self.proxy = proxy
        self.index = index
        self.client = client
        self.upstream = None
        self.connecting = True
        self.rng = rng
        self.plan = plan
        self.pending = plan["kind"] in ("reset", "stall", "delay", "close")
        self.after_fault = False  # a stall or delay struck: the next plan follows when it is over
        self.stalled_until = 0.0
        self.closed = False
        self.closing_until = None  # after a "close" fault: FINs sent, reading until EOF
        self.wake = None  # the earliest timer already set for this connection
        self.up = Pipe("up")
        self.down = Pipe("down")
        if self.pending:
            self.pipe(plan["dir"]).limit = plan["at"]

    def next_plan(self):
        """A stall or delay is over: the connection draws its next fault, counted in bytes
        from here (a long keep-alive connection meets faults until a clean draw)."""
        self.after_fault = False
        if not self.proxy.faults_live() or not self.proxy.args.repeat:
            return
        plan = draw_plan(self.proxy.args, self.rng, self.plan["number"] + 1)
        self.plan = plan
        self.proxy.planned(self, plan)
        if plan["kind"] == "refuse":
            self.proxy.refuse(plan, self.index)
            self.finish("refused", rst=True)
        elif plan["kind"] != "clean":
            p = self.pipe(plan["dir"])
            plan["at"] += p.forwarded
            p.limit = plan["at"]
            self.pending = True

    def pipe(self, name):
        return self.up if name == "up" else self.down

    # --- fault handling -------------------------------------------------------------

    def drop_fault(self):
        """The window ended or faults were turned off: back to a clean connection."""
        if self.pending:
            self.pending = False
            self.pipe(self.plan["dir"]).limit = None
        self.stalled_until = 0.0
        self.up.drip_left = self.down.drip_left = 0
        self.after_fault = False

    def check_fault(self):
        """Strikes the planned fault once exactly `at` bytes went its way."""
        if self.after_fault and time.monotonic() >= self.stalled_until and \
                self.up.drip_left == 0 and self.down.drip_left == 0:
            self.next_plan()
        if not self.pending or self.connecting:
            return
        p = self.pipe(self.plan["dir"])
        if p.forwarded < self.plan["at"]:
            return
        self.pending = False
        p.limit = None
        kind = self.plan["kind"]
        self.proxy.fault_struck(self, kind)
        if kind == "reset":
            self.finish("reset", rst=True)
        elif kind == "close":
            self.start_closing()
        elif kind == "stall":
            self.stalled_until = time.monotonic() + self.plan["stall_ms"] / 1000.0
            self.after_fault = True
        elif kind == "delay":
            p.drip_left = self.plan["span"]
            p.drip_next = time.monotonic()
            self.after_fault = True

    def start_closing(self):
        """A clean close: FIN both ways now, then read and discard until both ends closed
        too (closing a socket with unread bytes would send an RST instead)."""
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.up.buf.clear()
        self.down.buf.clear()
        self.up.drip_left = self.down.drip_left = 0
        self.closing_until = time.monotonic() + 5.0
        self.closing_eof = set()

    def closing_event(self, sock):
        try:
            data = sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.closing_eof.add(sock)
        if len(self.closing_eof) == 2:
            self.finish("closed", rst=False)

    def wake_at(self, when):
        """Calls update() at `when` (once, however often asked)."""
        if when <= time.monotonic():
            return
        if self.wake is not None and self.wake <= when:
            return
        self.wake = when

        def fire():
            if self.wake == when:
                self.wake = None
            self.update()

        self.proxy.at(when, fire)

    # --- I/O ------------------------------------------------------------------------

    def held(self):
        return self.proxy.holding or time.monotonic() < self.stalled_until

    def wants_read(self, p):
        if p.eof or self.held() or len(p.buf) >= BUFFER_CAP:
            return False
        if p.limit is not None and p.received >= p.limit:
            return False
        return True

    def wants_write(self, p):
        if self.held():
            return False
        if p.drip_left > 0 and time.monotonic() < p.drip_next:
            return False
        return bool(p.buf) or (p.eof and not p.shut)

    def update(self):
        """Recomputes what to wait for on both sockets."""
        if self.closed:
            return
        if self.connecting:
            self.proxy.watch(self.client, self, selectors.EVENT_READ if self.wants_read(self.up) else 0)
            self.proxy.watch(self.upstream, self, selectors.EVENT_WRITE)
            return
        self.check_fault()
        if self.closed:
            return
        if self.closing_until is not None:
            if time.monotonic() >= self.closing_until:
                self.finish("closed", rst=False)
                return
            for s in (self.client, self.upstream):
                self.proxy.watch(s, self, 0 if s in self.closing_eof else selectors.EVENT_READ)
            self.wake_at(self.closing_until)
            return
        if self.up.eof and self.up.shut and self.down.eof and self.down.shut:
            self.finish("done", rst=False)
            return
        c_ev = (selectors.EVENT_READ if self.wants_read(self.up) else 0) | \
               (selectors.EVENT_WRITE if self.wants_write(self.down) else 0)
        u_ev = (selectors.EVENT_READ if self.wants_read(self.down) else 0) | \
               (selectors.EVENT_WRITE if self.wants_write(self.up) else 0)
        self.proxy.watch(self.client, self, c_ev)
        self.proxy.watch(self.upstream, self, u_ev)
        if time.monotonic() < self.stalled_until and not self.proxy.holding:
            self.wake_at(self.stalled_until)
        for p in (self.up, self.down):
            if p.drip_left > 0 and (p.buf or (p.eof and not p.shut)) and not self.held():
                self.wake_at(p.drip_next)

    def on_event(self, sock, mask):
        if self.closed:
            return
        if self.closing_until is not None:
            self.closing_event(sock)
            self.update()
            return
        try:
            if self.connecting:
                if sock is self.upstream and mask & selectors.EVENT_WRITE:
                    err = self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self.proxy.count("upstream_failed")
                        self.finish("upstream %s" % os.strerror(err), rst=True)
                        return
                    self.connecting = False
                if sock is self.client and mask & selectors.EVENT_READ:
                    self.read(self.client, self.up)
            else:
                src_in, dst_out = (self.up, self.down) if sock is self.client else (self.down, self.up)
                if mask & selectors.EVENT_READ:
                    self.read(sock, src_in)
                if mask & selectors.EVENT_WRITE and not self.closed:
                    self.write(sock, dst_out)
        except OSError as e:
            self.finish("error: %s" % e, rst=True)
            return
        self.update()

    def read(self, sock, p):
        if not self.wants_read(p):
            return
        n = READ_SIZE
        if p.limit is not None:
            n = min(n, p.limit - p.received)
        try:
            data = sock.recv(n)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            # One end reset: so does the other.
            self.finish("reset by %s" % ("client" if sock is self.client else "target"), rst=True)
            return
        if not data:
            p.eof = True
            return
        p.received += len(data)
        p.buf += data

    def write(self, sock, p):
        if not self.wants_write(p):
            return
        if p.buf:
            n = len(p.buf)
            if p.drip_left > 0:
                n = min(n, p.drip_left, self.plan["drip"].randint(*self.proxy.args.delay_chunk))
            try:
                sent = sock.send(p.buf[:n])
            except (BlockingIOError, InterruptedError):
                return
            except (BrokenPipeError, ConnectionResetError):
                self.finish("reset by %s" % ("client" if sock is self.client else "target"), rst=True)
                return
            del p.buf[:sent]
            p.forwarded += sent
            self.proxy.bytes(p.name, sent)
            if p.drip_left > 0:
                p.drip_left = max(0, p.drip_left - sent)
                p.drip_next = time.monotonic() + self.plan["drip"].randint(*self.proxy.args.delay_ms) / 1000.0
        if not p.buf and p.eof and not p.shut:
            p.shut = True
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def finish(self, why, rst):
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.upstream):
            if s is not None:
                self.proxy.unwatch(s)
        if rst:
            hard_close(self.client)
            hard_close(self.upstream)
        else:
            for s in (self.client, self.upstream):
                if s is None:
                    continue
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self.proxy.ended(self, why)


class Proxy:
    def __init__(self, args):
        self.args = args
        self.sel = selectors.DefaultSelector()
        self.timers = []
        self.timer_seq = 0
        self.conns = set()
        self.index = 0
        self.started = time.monotonic()
        self.window_end = self.started + args.window
        self.in_window = args.window > 0
        self.faults_on = True  # SIGUSR1/SIGUSR2 and the control file's faults/clean
        self.holding = False  # the control file's hold
        self.signalled = []  # modes asked for by signals, applied by the loop
        self.control_word = None
        self.listening = False
        self.refusing_until = 0.0
        self.stop = False
        self.stats = {"connections": 0, "active": 0, "clean": 0, "refused": 0, "upstream_failed": 0,
                      "planned": {k: 0 for k in KINDS}, "struck": {k: 0 for k in KINDS},
                      "bytes_up": 0, "bytes_down": 0}
        self.stats_dirty = True
        self.stats_written = 0.0
        self.log_file = open(args.log, "a", buffering=1) if args.log else None
        self.listener = self.open_listener(args.listen)
        self.addr = self.listener.getsockname()
        self.start_listening()
        if args.window > 0:
            self.at(self.window_end, self.end_window)

    # --- listener -------------------------------------------------------------------

    def open_listener(self, addr):
        host, port = addr
        # Stopping and restarting a listener on the same socket keeps the port only when the
        # port was bound explicitly: pick a free one first when asked for port 0.
        for _ in range(20):
            chosen = port
            if chosen == 0:
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                t.bind((host, 0))
                chosen = t.getsockname()[1]
                t.close()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, chosen))
            except OSError:
                s.close()
                if port != 0:
                    raise
                continue
            s.setblocking(False)
            return s
        raise OSError(errno.EADDRINUSE, "no free port on %s" % host)

    def start_listening(self):
        if self.listening:
            return
        self.listener.listen(128)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.listening = True

    def stop_listening(self):
        """New connections are refused (RST to the SYN) while the port stays ours. Whatever
        already waits in the accept queue is taken first and reset, and counted."""
        if not self.listening:
            return
        while True:
            try:
                s, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            self.stats["connections"] += 1
            self.stats["refused"] += 1
            self.index += 1
            hard_close(s)
        self.sel.unregister(self.listener)
        # On Linux, shutting down the reading side of a listening socket stops it listening
        # and resets the queue, and listen() later starts it again on the same bound port.
        self.listener.shutdown(socket.SHUT_RD)
        self.listening = False
        self.dirty()

    def should_listen(self):
        if self.holding:
            return False
        return time.monotonic() >= self.refusing_until

    def sync_listening(self):
        if self.should_listen():
            self.start_listening()
        else:
            self.stop_listening()

    def accept(self):
        for _ in range(64):
            if not self.listening:
                return
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return
                raise
            self.index += 1
            self.stats["connections"] += 1
            rng = plan_rng(self.args, self.index)
            plan = draw_plan(self.args, rng, 1)
            if not self.faults_live():
                plan["kind"] = "clean"
            self.planned_conn(self.index, plan)
            if plan["kind"] == "refuse":
                hard_close(client)
                self.refuse(plan)
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(self, self.index, client, rng, plan)
            self.conns.add(conn)
            self.stats["active"] += 1
            self.dirty()
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.setblocking(False)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.upstream = up
            err = up.connect_ex(self.args.target)
            if err not in (0, errno.EINPROGRESS):
                self.count("upstream_failed")
                conn.finish("upstream %s" % os.strerror(err), rst=True)
                continue
            conn.update()

    def faults_live(self):
        return self.in_window and self.faults_on

    def planned(self, conn, plan):
        self.planned_conn(conn.index, plan)

    def planned_conn(self, index, plan):
        self.event("plan", conn=index, **public_plan(plan))
        if plan["kind"] == "clean":
            if plan["number"] == 1:
                self.stats["clean"] += 1
        else:
            self.stats["planned"][plan["kind"]] += 1
        self.dirty()

    def refuse(self, plan, index=None):
        """The listener stops listening for the plan's time (the connection that drew it
        is reset by the caller)."""
        self.stats["struck"]["refuse"] += 1
        self.stats["refused"] += 1
        self.event("fault", conn=index or self.index, kind="refuse", n=plan["number"], ms=plan["refuse_ms"])
        self.refusing_until = max(self.refusing_until, time.monotonic() + plan["refuse_ms"] / 1000.0)
        self.at(self.refusing_until, self.sync_listening)
        self.stop_listening()

    # --- modes, window, timers ------------------------------------------------------

    def end_window(self):
        if not self.in_window:
            return
        self.in_window = False
        self.event("window_end")
        self.drop_faults()

    def drop_faults(self):
        self.refusing_until = 0.0
        for c in list(self.conns):
            c.drop_fault()
            c.update()
        self.sync_listening()
        self.dirty()

    def set_mode(self, word):
        if word == "faults":
            self.faults_on, self.holding = True, False
        elif word == "clean":
            self.faults_on, self.holding = False, False
            self.drop_faults()
        elif word == "hold":
            self.holding = True
        else:
            self.event("bad_control", word=word)
            return
        self.event("mode", mode=word)
        self.sync_listening()
        for c in list(self.conns):
            c.update()
        self.dirty()

    def poll_control(self):
        try:
            with open(self.args.control) as f:
                words = f.read().split()
        except OSError:
            words = []
        word = words[0] if words else None
        if word is not None and word != self.control_word:
            self.control_word = word
            self.set_mode(word)
        self.at(time.monotonic() + 0.05, self.poll_control)

    def at(self, when, fn):
        self.timer_seq += 1
        heapq.heappush(self.timers, (when, self.timer_seq, fn))

    def run_timers(self):
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, fn = heapq.heappop(self.timers)
            fn()

    # --- bookkeeping ----------------------------------------------------------------

    def watch(self, sock, conn, events):
        try:
            key = self.sel.get_key(sock)
        except KeyError:
            key = None
        if events == 0:
            if key is not None:
                self.sel.unregister(sock)
        elif key is None:
            self.sel.register(sock, events, conn)
        elif key.events != events:
            self.sel.modify(sock, events, conn)

    def unwatch(self, sock):
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def count(self, name):
        self.stats[name] += 1
        self.dirty()

    def bytes(self, direction, n):
        self.stats["bytes_" + direction] += n
        self.dirty()

    def fault_struck(self, conn, kind):
        self.stats["struck"][kind] += 1
        self.event("fault", conn=conn.index, kind=kind, n=conn.plan["number"], dir=conn.plan["dir"],
                   at=conn.plan["at"])
        self.dirty()

    def ended(self, conn, why):
        if conn in self.conns:
            self.conns.discard(conn)
            self.stats["active"] -= 1
        self.event("end", conn=conn.index, why=why, up=conn.up.forwarded, down=conn.down.forwarded)
        self.dirty()

    def event(self, what, **fields):
        if self.log_file:
            fields["event"] = what
            fields["t"] = round(time.monotonic() - self.started, 3)
            self.log_file.write(json.dumps(fields, sort_keys=True) + "\n")

    def dirty(self):
        self.stats_dirty = True

    def write_stats(self, force=False):
        if not self.args.stats or not self.stats_dirty:
            return
        now = time.monotonic()
        if not force and now - self.stats_written < 0.05:
            return
        doc = dict(self.stats)
        doc.update(pid=os.getpid(), port=self.addr[1], seed=self.args.seed,
                   mode="hold" if self.holding else ("faults" if self.faults_on else "clean"),
                   in_window=self.in_window, listening=self.listening)
        tmp = self.args.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, sort_keys=True)
        os.replace(tmp, self.args.stats)
        self.stats_dirty = False
        self.stats_written = now

    # --- main loop ------------------------------------------------------------------

    def serve(self):
        host, port = self.addr
        if self.args.ready_file:
            tmp = self.args.ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%s:%d\n" % (host, port))
            os.replace(tmp, self.args.ready_file)
        sys.stdout.write("listening %s:%d\n" % (host, port))
        sys.stdout.flush()
        if self.args.control:
            self.poll_control()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "signal")
        if self.args.exit_with_stdin:
            os.set_blocking(0, False)
            self.sel.register(0, selectors.EVENT_READ, "stdin")
        while not self.stop:
            timeout = 0.25
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
            for key, mask in self.sel.select(timeout):
                if key.data is None:
                    self.accept()
                elif key.data == "signal":
                    try:
                        self.wake_r.recv(256)
                    except OSError:
                        pass
                elif key.data == "stdin":
                    try:
                        if not os.read(0, 4096):
                            self.stop = True
                    except BlockingIOError:
                        pass
                    except OSError:
                        self.stop = True
                else:
                    key.data.on_event(key.fileobj, mask)
            while self.signalled:
                self.set_mode(self.signalled.pop(0))
            self.run_timers()
            self.write_stats()
        for c in list(self.conns):
            c.finish("proxy exit", rst=True)
        self.write_stats(force=True)
        self.event("exit")


def main(argv):
    args = options(argv)
    if args.plan_only is not None:
        for i in range(1, args.plan_only + 1):
            for plan in plans_for(args, i, 8):
                out = public_plan(plan)
                out["conn"] = i
                print(json.dumps(out, sort_keys=True))
        return 0
    proxy = Proxy(args)

    # Handlers only note what was asked: the loop applies it between two events.
    def on_signal(signum, frame):
        if signum == signal.SIGUSR1:
            proxy.signalled.append("clean")
        elif signum == signal.SIGUSR2:
            proxy.signalled.append("faults")
        else:
            proxy.stop = True

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    proxy.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
