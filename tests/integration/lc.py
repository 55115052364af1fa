"""The one helper module of livecount's integration tests and of the
Python parts of loadtest/ (loadtest/cluster_util.py imports it): start the
real binary on a free loopback port with its own database, talk HTTP,
WebSocket and SSE to it over real sockets, start and stop a real
redis-server, and put a TCP proxy a test can cut between a node and Redis.
Python standard library only (the WebSocket client is a small RFC 6455
implementation so tests can also send broken frames).

Waiting: a test never sleeps for "long enough". It polls an observable
with a deadline (wait_for): the tick `seq` of /v1/stats (settle), a count,
a metric, a frame. A loaded machine then makes a test slower, never red.
A sleep is left only where a test needs time itself to pass (a rate
window, an idle timeout), with a comment saying so."""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

SANITIZED = os.environ.get("LC_SANITIZE") == "1"
BIN = os.environ.get("LC_BIN") or (sys.argv[1] if len(sys.argv) > 1 else None)


# Deadline of every wait: generous, since the machine may be loaded (or the
# binary sanitized); a test that passes is never slowed by it.
WAIT_S = float(os.environ.get("LC_WAIT_S", "60"))


def wait_for(fn, pred=bool, timeout=None, what=None, interval=0.02,
             errors=(OSError,)):
    """Calls fn() until pred(value) holds and returns that value; raises
    AssertionError naming `what` and the last value at the deadline.
    Exceptions in `errors` (a server still starting, a cut link) count as
    a value that does not hold."""
    deadline = time.time() + (WAIT_S if timeout is None else timeout)
    last = None
    while True:
        try:
            last = fn()
            if pred(last):
                return last
        except errors as e:
            last = e
        if time.time() >= deadline:
            raise AssertionError("timed out waiting for %s (last: %r)" %
                                 (what or getattr(fn, "__name__", fn),
                                  last))
        time.sleep(interval)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Client:
    """HTTP to a livecount on 127.0.0.1:port. One connection per request
    by default; keepalive=True reuses one and retries a request whose
    connection broke (twice, for benchmarks polling a node that a test
    partitions)."""

    def __init__(self, port, keepalive=False):
        self.port = port
        self.keepalive = keepalive
        self.conn = None

    def request(self, method, path, body=None, headers=None, timeout=None):
        """Returns (status, body bytes, http.client.HTTPResponse)."""
        timeout = WAIT_S if timeout is None else timeout
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        if body is None and method in ("POST", "DELETE"):
            h.setdefault("Content-Length", "0")
        if not self.keepalive:
            c = http.client.HTTPConnection("127.0.0.1", self.port,
                                           timeout=timeout)
            try:
                c.request(method, path, body=body, headers=h)
                r = c.getresponse()
                return r.status, r.read(), r
            finally:
                c.close()
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=timeout)
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                return r.status, r.read(), r
            except (OSError, http.client.HTTPException):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.05)  # a retry's back-off, not a wait

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

    def stats(self):
        st, body = self.json("GET", "/v1/stats")
        assert st == 200, (st, body)
        return body

    def seq(self):
        """The dispatch tick's sequence number: +1 every tick."""
        return self.stats()["seq"]

    def settle(self, ticks=2):
        """Waits until every like acknowledged before the call is merged
        (visible to every worker and subscriber, handed to the batcher):
        two more ticks have started, so at least one swapped the shards
        after the call (the tick running at the call may have swapped
        just before it)."""
        want = self.seq() + ticks
        wait_for(self.seq, lambda s: s >= want,
                 what="tick seq %d on port %d" % (want, self.port))

    def metrics(self):
        """/metrics as {name or name{labels}: value}."""
        st, data, _ = self.get("/metrics")
        out = {}
        for line in data.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
        return out

    def metric(self, name):
        """One metric, summed over its labels (AssertionError if absent)."""
        st, data, _ = self.get("/metrics")
        total = 0.0
        found = False
        for line in data.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        assert found, name
        return total

    def wait_metric(self, name, pred, timeout=None):
        """Polls a metric until pred(value); returns the value."""
        return wait_for(lambda: self.metric(name), pred, timeout,
                        what="%s on port %d" % (name, self.port))

    def wait_count(self, url, want, timeout=None):
        """Polls /v1/counts until url's count is `want`."""
        return wait_for(lambda: self.count(url), lambda c: c == want,
                        timeout, what="count of %r == %r" % (url, want))


class Server(Client):
    """A livecount process on 127.0.0.1 with a temporary database."""

    def __init__(self, *args, db=None, workers=2, tick_ms=50, port=None,
                 flush_ms=200, env=None):
        self.dir = tempfile.mkdtemp(prefix="lc-it-")
        self.db = db or os.path.join(self.dir, "lc.db")
        Client.__init__(self, port or free_port())
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

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("server exited %d:\n%s" %
                                   (self.proc.returncode, self.logtext()))
            return self.get("/readyz")[0]
        try:
            wait_for(ready, lambda st: st == 200, interval=0.05,
                     what="/readyz")
        except AssertionError as e:
            raise RuntimeError("server not ready (%s):\n%s" %
                               (e, self.logtext()))

    def logtext(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=None):
        timeout = WAIT_S if timeout is None else timeout
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop in %gs" % timeout)
        self.log.close()
        return self.proc.returncode

    def restart(self):
        self.stop()
        self.start()

    def db_rows(self, sql, *params):
        """Rows of a query on the server's database, read beside the
        running server (WAL: a reader never blocks its writer)."""
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True,
                             timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def wait_db(self, sql, want, *params, timeout=None):
        """Polls a query until its rows are `want`: what a flush wrote."""
        return wait_for(lambda: self.db_rows(sql, *params),
                        lambda rows: rows == want, timeout,
                        what="%s -> %r" % (sql, want),
                        errors=(OSError, sqlite3.Error))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if exc[0] is not None and not (exc[0] is SystemExit and
                                       not exc[1].code):
            sys.stderr.write("---- server log ----\n" + self.logtext())

    # -- subscribers --------------------------------------------------------
    def ws(self, urls=(), **kw):
        return WS(self.port, urls, **kw)

    def sse(self, urls, **kw):
        return SSE(self.port, urls, **kw)


def pipeline(port, requests):
    """Sends raw HTTP/1.1 requests (bytes, each with a Content-Length when
    it has a body) in one write on one connection, so they reach the
    server together however loaded the machine is; returns a
    (status, {lower-case header: value}, body) per answer."""
    s = socket.create_connection(("127.0.0.1", port), WAIT_S)
    try:
        s.sendall(b"".join(requests))
        buf, out = b"", []
        while len(out) < len(requests):
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                lines = buf[:i].decode("latin-1").split("\r\n")
                h = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    h[k.strip().lower()] = v.strip()
                n = int(h.get("content-length", 0))
                if len(buf) >= i + 4 + n:
                    out.append((int(lines[0].split()[1]), h,
                                buf[i + 4:i + 4 + n]))
                    buf = buf[i + 4 + n:]
                    continue
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed after %d answers" % len(out))
            buf += chunk
        return out
    finally:
        s.close()


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


def ws_upgrade_raw(port, origin, path="/v1/ws"):
    """A WebSocket upgrade request with an Origin header, over a raw socket;
    returns the first bytes of the answer (the handshake or a refusal)."""
    sock = socket.create_connection(("127.0.0.1", port), 5)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: "
                  "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: livecount.v1\r\nOrigin: %s\r\n\r\n"
                  % (path, origin)).encode())
    data = sock.recv(4096)
    sock.close()
    return data


def cd(entry):
    """An update entry's count and delta (it also carries views and
    watching)."""
    return {"count": entry["count"], "delta": entry["delta"]}


def cds(msg):
    """An update's entries whose count moved, as {url: {count, delta}}
    (an entry may also come for its watching figure alone)."""
    return {u: cd(e) for u, e in msg["counts"].items() if e["delta"]}


def snap(msg):
    """A snapshot's counts, after checking its "stats" agree with them
    (API.md: "counts":{U:C} and "stats":{U:{count,views,watching}})."""
    counts, stats = msg["counts"], msg["stats"]
    assert set(stats) == set(counts), msg
    for u, c in counts.items():
        assert stats[u]["count"] == c, msg
        assert stats[u]["views"] >= 0 and stats[u]["watching"] >= 0, msg
    return counts


def stats_only(msg):
    """An update in which no count moved (only watching or views did).
    Tests written for counts skip them (WS/SSE all_updates=False): a
    subscriber's own arrival changes its URL's watching figure."""
    counts = msg.get("counts") if isinstance(msg, dict) else None
    return (isinstance(counts, dict) and "seq" in msg and
            all(isinstance(v, dict) and v.get("delta") == 0
                for v in counts.values()))


class WS:
    """A minimal RFC 6455 client (text frames, masking optional)."""

    def __init__(self, port, urls=(), protocol="livecount.v1", path="/v1/ws",
                 timeout=10, all_updates=False):
        self.all_updates = all_updates
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
        self.sock.sendall(self.frame(opcode, payload, mask, fin))

    @staticmethod
    def frame(opcode, payload, mask=True, fin=True):
        """One frame as bytes (several can go out in one write)."""
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
        return hdr + payload

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

    def recv(self, timeout=None):
        """Next text message as JSON; answers pings; raises on close."""
        self.sock.settimeout(WAIT_S if timeout is None else timeout)
        while True:
            op, data = self.recv_frame()
            if op == 1:
                msg = json.loads(data)
                if not self.all_updates and stats_only(msg):
                    continue
                return msg
            if op == 9:
                self.send_frame(10, data)
            elif op == 8:
                self.close_code = struct.unpack("!H", data[:2])[0] if data else None
                raise ConnectionError("closed %s" % self.close_code)

    def until(self, pred, timeout=None):
        """Reads messages until pred(msg) is true; returns them all."""
        return read_until(self.recv, pred,
                          WAIT_S if timeout is None else timeout)

    def close(self):
        try:
            self.send_frame(8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


class SSE:
    """Reads a text/event-stream over a raw socket."""

    def __init__(self, port, urls, headers=None, timeout=10, extra="",
                 all_updates=False):
        self.all_updates = all_updates
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

    def event(self, timeout=None):
        """Next event as (event, id, data-as-JSON or None for comments)."""
        while True:
            ev = self._event(timeout)
            if (self.all_updates or ev[0] != "update" or
                    not stats_only(ev[2])):
                return ev

    def _event(self, timeout=None):
        self.sock.settimeout(WAIT_S if timeout is None else timeout)
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

    def until(self, pred, timeout=None):
        """Reads events until pred(event) is true; returns them all."""
        return read_until(self.event, pred,
                          WAIT_S if timeout is None else timeout)

    def close(self):
        self.sock.close()


class DelayProxy:
    """(Used by test_cluster_keys and loadtest/cluster_keys_bench.)
    Forwards 127.0.0.1:port to a Redis port, each byte delay_s late in
    each direction (latency, not a throughput limit)."""

    def __init__(self, target_port, delay_s):
        self.target, self.delay = target_port, delay_s
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
                u = socket.create_connection(("127.0.0.1", self.target), 2)
            except OSError:
                return
            self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                self._pipe(a, b)

    def _pipe(self, a, b):
        q, cv = [], threading.Condition()

        def rd():
            while True:
                try:
                    d = a.recv(65536)
                except OSError:
                    d = b""
                with cv:
                    q.append((time.monotonic() + self.delay, d))
                    cv.notify()
                if not d:
                    return

        def wr():
            while True:
                with cv:
                    while not q:
                        cv.wait()
                    due, d = q.pop(0)
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    if not d:
                        b.shutdown(socket.SHUT_WR)
                        return
                    b.sendall(d)
                except OSError:
                    return
        threading.Thread(target=rd, daemon=True).start()
        threading.Thread(target=wr, daemon=True).start()

    def close(self):
        self.lsock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


# -- Redis ----------------------------------------------------------------
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_key(url):
    """A URL's sorted set in Redis (cluster.h: lc:u:{TTTT}:<url>, TTTT
    from an unseeded FNV-1a of the URL)."""
    h = 2166136261
    for b in url.encode():
        h = ((h ^ b) * 16777619) & 0xffffffff
    return "lc:u:{%04x}:%s" % ((h ^ (h >> 16)) & 0xffff, url)


def node_totals(r, url):
    """A URL's totals in Redis per node: {"<node>:l": likes, ...}, the
    sum over that node's slots (one per database it ran with: members
    "<node>.<instance>:l", and "<node>:l" from before instances)."""
    z = r.cmd("ZRANGE", redis_key(url), 0, -1, "WITHSCORES") or []
    out = {}
    for m, v in zip(z[::2], z[1::2]):
        slot, kind = m.rsplit(":", 1)
        k = slot.split(".")[0] + ":" + kind
        out[k] = out.get(k, 0) + int(v)
    return out


class Redis:
    """redis-server without persistence; restart() comes back empty."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="lc-redis-")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--enable-debug-command", "local"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.cmd("PING"), lambda r: r == "PONG",
                 interval=0.05, what="redis-server to answer PING")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def restart(self):
        self.stop()
        self.start()

    def url(self, port=None):
        return "redis://127.0.0.1:%d" % (port or self.port)

    def cmd(self, *args, timeout=5):
        """One command over RESP; returns str, int, list or None."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout)
        try:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return _read(f)
        finally:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _read(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise OSError("bad RESP reply %r" % line)


class Proxy:
    """Forwards 127.0.0.1:port (listen_port, or a free one) to a target
    port: a partition between a node and Redis. cut() drops every
    connection and refuses new ones (accepted and closed at once) until
    heal(). mute_replies() lets requests through but drops what the
    target answers (a command applied whose reply never arrives) until
    heal()."""

    def __init__(self, target_port, listen_port=0):
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", listen_port))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.up = True
        self.muted = False
        self.conns = []
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), 2)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b, reply in ((c, u, False), (u, c, True)):
                threading.Thread(target=self._pipe, args=(a, b, reply),
                                 daemon=True).start()

    def _pipe(self, a, b, reply):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if not (reply and self.muted):
                    b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def mute_replies(self):
        self.muted = True

    def heal(self):
        self.up = True
        self.muted = False

    def close(self):
        self.closing = True
        self.cut()
        self.lsock.close()


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
