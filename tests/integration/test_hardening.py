"""Hardening: write token, allowed origins, connection and rate limits,
TLS, slowloris, churn without fd leaks, and faults (disk full, locked
database, SIGTERM with subscribers and likes in flight)."""
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time

import lc
from lc import WAIT_S, WS, Server, check, run, wait_for


def test_write_token():
    with Server("--write-token", "s3cret-s3cret-s3cret") as s:
        st, b = s.like("t/1")
        check((st, b["error"]) == (401, "unauthorized"), (st, b))
        st, b = s.json("POST", "/v1/likes", {"url": "t/1"},
                       headers={"Authorization": "Bearer wrong"})
        check(st == 401, st)
        st, b = s.json("POST", "/v1/likes?url=t/1",
                       headers={"Authorization": "Bearer s3cret-s3cret-s3cret"})
        check(st == 200 and b["count"] == 1, b)
        check(s.counts("t/1")["t/1"]["count"] >= 0)  # reads stay open
        w = s.ws(["t/1"])
        w.recv()
        w.send({"op": "like", "url": "t/1", "n": 1})
        # the HTTP like's update may still arrive after the snapshot
        m = w.until(lambda m: m["type"] != "update")[-1]
        check(m["type"] == "error" and m["error"] == "unauthorized", m)
        w.close()
        w = WS(s.port, (), path="/v1/ws?token=s3cret-s3cret-s3cret&url=t/1")
        w.recv()
        w.send({"op": "like", "url": "t/1", "n": 2})
        w.until(lambda m: m["type"] == "update" and
                m["counts"]["t/1"]["count"] == 3)
        w.close()


def test_allowed_origins():
    with Server("--allowed-origins", "https://good.example, https://also.example") as s:
        check(lc.ws_upgrade_raw(s.port, "https://good.example").startswith(b"HTTP/1.1 101"))
        check(not lc.ws_upgrade_raw(s.port, "https://evil.example").startswith(
            b"HTTP/1.1 101"))
        st, d, r = s.request("GET", "/v1/counts?url=a",
                             headers={"Origin": "https://also.example"})
        check(r.getheader("Access-Control-Allow-Origin") ==
              "https://also.example", r.getheaders())
        check(r.getheader("Vary") == "Origin")
        st, d, r = s.request("GET", "/v1/counts?url=a",
                             headers={"Origin": "https://evil.example"})
        check(r.getheader("Access-Control-Allow-Origin") is None)


def connect_from(ip, port):
    """A connection to 127.0.0.1:port from another loopback address, so
    the test's own /metrics reads (from 127.0.0.1) are not limited."""
    x = socket.socket()
    x.bind((ip, 0))
    x.settimeout(WAIT_S)
    x.connect(("127.0.0.1", port))
    return x


def healthz_from(ip, port):
    x = connect_from(ip, port)
    try:
        x.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        return x.recv(100)
    finally:
        x.close()


def test_connection_limits():
    with Server("--max-conns-per-ip", "20") as s:
        a0 = s.metric("livecount_connections_accepted_total")
        socks = [connect_from("127.0.0.2", s.port) for _ in range(20)]
        # the 20 are accepted (each /metrics read is one more accept)
        polls = [0]

        def accepted():
            polls[0] += 1
            return (s.metric("livecount_connections_accepted_total") - a0 -
                    polls[0])
        wait_for(accepted, lambda n: n >= 20, what="20 accepted")
        extra = connect_from("127.0.0.2", s.port)
        try:
            got = extra.recv(10)
        except ConnectionResetError:
            got = b""
        check(got == b"", "the 21st connection from one IP is closed")
        check(s.metric("livecount_connections_refused_total") >= 1)
        for x in socks:
            x.close()
        # released on close: new connections are welcome again
        wait_for(lambda: healthz_from("127.0.0.2", s.port),
                 lambda out: out.startswith(b"HTTP/1.1 200"),
                 errors=(OSError,), what="/healthz from 127.0.0.2")


def test_like_rate_limit():
    with Server("--max-likes-per-sec-per-ip", "50", workers=1) as s:
        # 80 at once (pipelined): 30 over the bucket of 50 however slow
        # the machine is
        answers = lc.pipeline(s.port, [b"POST /v1/likes?url=rl HTTP/1.1\r\n"
                                       b"Host: x\r\nContent-Length: 0\r\n"
                                       b"\r\n"] * 80)
        codes = [st for st, h, d in answers]
        retry = None
        for st, h, d in answers:
            if st == 429:
                retry = h.get("retry-after")
                check(json.loads(d)["error"] == "rate_limited")
        check(codes.count(200) >= 50 and 429 in codes, codes)
        check(retry is not None and int(retry) >= 1, retry)
        s.settle()
        check(s.count("rl") == codes.count(200))


def make_cert(d):
    crt, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True)
    return crt, key


def test_tls_https_and_wss():
    d = tempfile.mkdtemp(prefix="lc-tls-")
    crt, key = make_cert(d)
    port = lc.free_port()
    log = open(os.path.join(d, "server.log"), "wb")
    p = subprocess.Popen([lc.BIN, "--bind", "127.0.0.1", "--port", str(port),
                          "--db", os.path.join(d, "lc.db"), "--tls-cert", crt,
                          "--tls-key", key], stderr=log)
    try:
        ctx = ssl.create_default_context(cafile=crt)
        ctx.check_hostname = False

        def https(method, path):
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                            timeout=WAIT_S)
            try:
                c.request(method, path, headers={"Content-Length": "0"})
                r = c.getresponse()
                return r.status, json.loads(r.read())
            finally:
                c.close()
        st, b = wait_for(lambda: https("POST", "/v1/likes?url=tls"),
                         interval=0.1, what="the TLS server to answer")
        check(st == 200 and b["count"] == 1, (st, b))
        # merged (snapshots read the table; /v1/counts reads our own
        # write before that): two more ticks, as lc.Client.settle
        want = https("GET", "/v1/stats")[1]["seq"] + 2
        wait_for(lambda: https("GET", "/v1/stats")[1]["seq"],
                 lambda q: q >= want, what="tick seq %d" % want)
        # WSS on the same port
        raw = socket.create_connection(("127.0.0.1", port), 5)
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(b"GET /v1/ws?url=tls HTTP/1.1\r\nHost: x\r\nUpgrade: "
                    b"websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                    b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Protocol: livecount.v1\r\n\r\n")
        data = b""
        while b'"snapshot"' not in data:
            data += tls.recv(4096)
        check(data.startswith(b"HTTP/1.1 101") and b'"tls":1' in data, data)
        tls.close()
        # plain HTTP on the TLS port gets no HTTP answer
        plain = socket.create_connection(("127.0.0.1", port), 5)
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.settimeout(3)
        try:
            out = plain.recv(100)
        except (socket.timeout, ConnectionResetError):
            out = b""
        check(not out.startswith(b"HTTP/1.1 200"), out)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(10)
        log.close()
        check(rc == 0, "exit %d: %s" % (rc, open(log.name).read()))
    p = subprocess.run([lc.BIN, "--tls-cert", crt], capture_output=True)
    check(p.returncode == 2 and b"tls_key" in p.stderr, p.stderr)


def test_slowloris_dropped_normal_requests_fast():
    with Server() as s:
        slow = []
        for _ in range(50):
            x = socket.create_connection(("127.0.0.1", s.port), 5)
            x.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(x)
        t0 = time.time()
        for _ in range(20):
            check(s.get("/healthz")[0] == 200)
        fast = time.time() - t0
        # a half-sent header gets 408 and a close at http_timeout_ms (10 s)
        dropped = 0
        deadline = time.time() + 10 + WAIT_S
        for x in slow:
            x.settimeout(max(0.1, deadline - time.time()))
            got = b""
            try:
                while True:
                    chunk = x.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                if got == b"" or got.startswith(b"HTTP/1.1 408"):
                    dropped += 1
            except (socket.timeout, ConnectionResetError):
                pass
            x.close()
        print("     20 requests in %.3fs beside 50 slowloris connections; "
              "%d of them dropped by the header timeout" % (fast, dropped))
        check(dropped == 50, dropped)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_churn_no_fd_leak():
    with Server() as s:
        s.settle()  # running steadily
        before = fd_count(s.proc.pid)
        for i in range(300):
            kind = i % 3
            if kind == 0:
                w = s.ws(["churn"])
                w.recv()
                w.sock.close()  # abrupt, no close frame
            elif kind == 1:
                e = s.sse(["churn"])
                e.event()
                e.close()
            else:
                x = socket.create_connection(("127.0.0.1", s.port), 5)
                x.sendall(b"POST /v1/likes?url=churn HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 5\r\n\r\n[")  # truncated body
                x.close()
        # every connection is closed on the server's side too
        wait_for(lambda: fd_count(s.proc.pid), lambda n: n <= before + 2,
                 what="fds back to %d + 2" % before)
        s.settle()
        check(s.count("churn") == 0, "a truncated body counts nothing")
        check(s.metric('livecount_connections{transport="ws"}') == 0)
        check(s.metric('livecount_connections{transport="sse"}') == 0)


def test_sigterm_with_subscribers_and_likes_in_flight():
    with Server(flush_ms=60000) as s:
        subs = [s.ws(["flight"]) for _ in range(20)] + \
               [s.sse(["flight"]) for _ in range(20)]
        acked = [0]
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    st, b = s.json("POST", "/v1/likes",
                                   [{"url": "flight", "n": 1}] * 100)
                except OSError:
                    return
                if st == 200:
                    acked[0] += 100
                elif st != 503:
                    return

        ts = [threading.Thread(target=load) for _ in range(4)]
        for t in ts:
            t.start()
        # SIGTERM while likes flow
        wait_for(lambda: acked[0], lambda n: n >= 2000, what="likes flowing")
        s.proc.send_signal(signal.SIGTERM)
        check(s.proc.wait(20) == 0)
        stop.set()
        for t in ts:
            t.join()
        s.log.close()
        db = sqlite3.connect(s.db)
        saved = db.execute("SELECT likes FROM counts_v WHERE url = 'flight'")\
            .fetchone()[0]
        db.close()
        check(saved == acked[0], "every acknowledged like saved: %d vs %d" %
              (saved, acked[0]))
        print("     %d likes acknowledged during SIGTERM, all %d in the "
              "database" % (acked[0], saved))
        for x in subs:
            x.close()


def test_database_locked_by_another_writer_is_retried():
    with Server(flush_ms=200) as s:
        s.like("lock/1", n=3)
        s.wait_db("SELECT likes FROM counts_v", [(3,)])
        db = sqlite3.connect(s.db, timeout=1, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # hold the write lock
        try:
            s.like("lock/1", n=4)
            # a flush fails after the batcher's 5 s busy timeout
            s.wait_metric("livecount_flush_errors_total", lambda v: v >= 1)
            st, b = wait_for(lambda: s.json("GET", "/readyz"),
                             lambda r: r[0] == 503, what="degraded")
            check(b["status"] == "degraded", (st, b))
            s.settle()
            check(s.count("lock/1") == 7, "still counting while locked")
        finally:
            db.execute("ROLLBACK")
            db.close()
        wait_for(lambda: s.json("GET", "/readyz"), lambda r: r[0] == 200,
                 what="ready again")
        s.wait_db("SELECT likes FROM counts_v", [(7,)])


def test_disk_full_then_space_returns():
    if os.geteuid() != 0 or not shutil.which("mount"):
        print("     SKIP: mounting a tmpfs needs root")
        return
    mnt = tempfile.mkdtemp(prefix="lc-tmpfs-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt],
                      capture_output=True).returncode != 0:
        print("     SKIP: cannot mount tmpfs here")
        return
    filler = os.path.join(mnt, "filler")
    try:
        with Server(db=os.path.join(mnt, "lc.db"), flush_ms=200) as s:
            # fill the disk, then make URLs that need new pages
            # unbuffered: a buffered close would raise ENOSPC itself
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError:
                    pass
            batch = [{"url": "full/%d/" % i + "x" * 300, "n": 1}
                     for i in range(2000)]
            st, b = s.json("POST", "/v1/likes", batch)
            check(st == 200, b)
            s.wait_metric("livecount_flush_errors_total", lambda v: v >= 1)
            wait_for(lambda: s.json("GET", "/readyz")[0],
                     lambda st: st == 503, what="degraded")
            st, b = s.like("full/after")
            check(st == 200, "keeps counting and serving")
            os.unlink(filler)  # space returns
            wait_for(lambda: s.json("GET", "/readyz")[0],
                     lambda st: st == 200, what="ready again")
            s.wait_metric("livecount_dirty_urls", lambda v: v == 0)
            check(s.stop() == 0)
            db = sqlite3.connect(s.db)
            n = db.execute("SELECT count(*) FROM counts_v WHERE url LIKE "
                           "'full/%'").fetchone()[0]
            db.close()
            check(n == 2001, n)
    finally:
        subprocess.run(["umount", "-l", mnt])


if __name__ == "__main__":
    run([test_write_token, test_allowed_origins, test_connection_limits,
         test_like_rate_limit, test_tls_https_and_wss,
         test_slowloris_dropped_normal_requests_fast, test_churn_no_fd_leak,
         test_sigterm_with_subscribers_and_likes_in_flight,
         test_database_locked_by_another_writer_is_retried,
         test_disk_full_then_space_returns])
