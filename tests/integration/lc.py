"""Helpers for livecount integration tests: start the real binary on a free
loopback port with its own database, and talk HTTP, WebSocket and SSE to it
over real sockets. Python standard library only (the WebSocket client is a
small RFC 6455 implementation so tests can also send broken frames)."""

import base64
import http.client
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

SANITIZED = os.environ.get("LC_SANITIZE") == "1"
BIN = os.environ.get("LC_BIN") or (sys.argv[1] if len(sys.argv) > 1 else None)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A livecount process on 127.0.0.1 with a temporary database."""

    def __init__(self, *args, db=None, workers=2, tick_ms=50, port=None,
                 flush_ms=200, env=None):
        self.dir = tempfile.mkdtemp(prefix="lc-it-")
        self.db = db or os.path.join(self.dir, "lc.db")
        self.port = port or free_port()
        self.args = [BIN, "--bind", "127.0.0.1", "--port", str(self.port),
                     "--db", self.db, "--workers", str(workers),
                     "--tick-ms", str(tick_ms), "--flush-interval-ms",
                     str(flush_ms)] + list(args)
        self.env = dict(os.environ, **(env or {}))
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited %d:\n%s" %
                                   (self.proc.returncode, self.logtext()))
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready:\n" + self.logtext())

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop in %ds" % timeout)
        self.log.close()
        return self.proc.returncode

    def restart(self):
        self.stop()
        self.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if exc[0] is not None and not (exc[0] is SystemExit and
                                       not exc[1].code):
            sys.stderr.write("---- server log ----\n" + self.logtext())

    # -- HTTP ---------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        if body is None and method in ("POST", "DELETE"):
            h.setdefault("Content-Length", "0")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data, r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def json(self, method, path, body=None, **kw):
        st, data, r = self.request(method, path, body, **kw)
        try:
            return st, json.loads(data)
        except ValueError:
            raise AssertionError("%s %s -> %d non-JSON %r" %
                                 (method, path, st, data))

    def like(self, url, n=None, method="POST"):
        q = "/v1/likes?url=" + urllib.parse.quote(url, safe="")
        if n is not None:
            q += "&n=%d" % n
        return self.json(method, q)

    def counts(self, *urls):
        q = "&".join("url=" + urllib.parse.quote(u, safe="") for u in urls)
        st, body = self.json("GET", "/v1/counts?" + q)
        assert st == 200, (st, body)
        return body["counts"]

    def count(self, url):
        return self.counts(url)[url]["count"]

    def settle(self):
        """Waits long enough for every pending like to be merged."""
        time.sleep(0.3)

    def metric(self, name):
        st, data, _ = self.get("/metrics")
        total = 0.0
        found = False
        for line in data.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        assert found, name
        return total

    # -- subscribers --------------------------------------------------------
    def ws(self, urls=(), **kw):
        return WS(self.port, urls, **kw)

    def sse(self, urls, **kw):
        return SSE(self.port, urls, **kw)


def read_until(read, pred, timeout):
    """Calls read(time_left) until pred(item); returns every item read."""
    deadline = time.time() + timeout
    seen = []
    while True:
        left = deadline - time.time()
        if left <= 0:
            raise AssertionError("timed out; saw %r" % seen[-5:])
        item = read(left)
        seen.append(item)
        if pred(item):
            return seen


class WS:
    """A minimal RFC 6455 client (text frames, masking optional)."""

    def __init__(self, port, urls=(), protocol="livecount.v1", path="/v1/ws",
                 timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        q = "&".join("url=" + urllib.parse.quote(u, safe="") for u in urls)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n" %
               (path, "?" + q if q else "", key))
        if protocol:
            req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake: %r" % self.buf)
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.handshake = head.decode()
        self.status = int(self.handshake.split(" ", 2)[1])
        if self.status != 101:
            raise ConnectionError(self.handshake)
        self.close_code = None

    def send_frame(self, opcode, payload, mask=True, fin=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        hdr = bytes([b0])
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr += bytes([mbit | n])
        elif n < 65536:
            hdr += bytes([mbit | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([mbit | 127]) + struct.pack("!Q", n)
        if mask:
            m = os.urandom(4)
            payload = bytes(b ^ m[i % 4] for i, b in enumerate(payload))
            hdr += m
        self.sock.sendall(hdr + payload)

    def send(self, obj):
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.send_frame(1, text.encode())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def recv(self, timeout=5):
        """Next text message as JSON; answers pings; raises on close."""
        self.sock.settimeout(timeout)
        while True:
            op, data = self.recv_frame()
            if op == 1:
                return json.loads(data)
            if op == 9:
                self.send_frame(10, data)
            elif op == 8:
                self.close_code = struct.unpack("!H", data[:2])[0] if data else None
                raise ConnectionError("closed %s" % self.close_code)

    def until(self, pred, timeout=5):
        """Reads messages until pred(msg) is true; returns them all."""
        return read_until(self.recv, pred, timeout)

    def close(self):
        try:
            self.send_frame(8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


class SSE:
    """Reads a text/event-stream over a raw socket."""

    def __init__(self, port, urls, headers=None, timeout=10, extra=""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        q = "&".join("url=" + urllib.parse.quote(u, safe="") for u in urls)
        h = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall(("GET /v1/events?%s%s HTTP/1.1\r\nHost: x\r\n"
                           "Accept: text/event-stream\r\n%s\r\n" %
                           (q, extra, h)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed: %r" % self.buf)
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        self.status = int(self.head.split(" ", 2)[1])
        self.raw = b""  # every byte of the stream body, for framing checks

    def event(self, timeout=5):
        """Next event as (event, id, data-as-JSON or None for comments)."""
        self.sock.settimeout(timeout)
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        block, self.buf = self.buf.split(b"\n\n", 1)
        self.raw += block + b"\n\n"
        ev, eid, data = None, None, []
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                return ("comment", None, line)
            k, _, v = line.partition(": ")
            if k == "retry":
                return ("retry", None, int(v))
            if k == "event":
                ev = v
            elif k == "id":
                eid = v
            elif k == "data":
                data.append(v)
            else:
                raise AssertionError("bad SSE line %r" % line)
        assert len(data) == 1, block
        return ev, eid, json.loads(data[0])

    def until(self, pred, timeout=5):
        """Reads events until pred(event) is true; returns them all."""
        return read_until(self.event, pred, timeout)

    def close(self):
        self.sock.close()


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def run(tests):
    """Runs test functions in order; prints and exits nonzero on failure."""
    failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            print("ok   %-50s %.2fs" % (t.__name__, time.time() - t0))
        except Exception:
            failed += 1
            import traceback
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
        sys.stdout.flush()
    sys.exit(1 if failed else 0)
