"""Counting across workers and clients, persistence across restarts, crash
safety, start-up refusals and configuration errors."""
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import lc
from lc import Server, check, run

REQ = (b"POST /v1/likes?url=%s HTTP/1.1\r\nHost: x\r\n"
       b"Content-Length: 0\r\n\r\n")


def hammer(port, url, total, per_burst=100):
    """Sends `total` single likes on one keep-alive connection, pipelining
    bursts; returns the number of 200 responses."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    req = REQ % url.encode()
    ok = 0
    buf = b""
    sent = 0
    while sent < total:
        n = min(per_burst, total - sent)
        s.sendall(req * n)
        sent += n
        got = 0
        while got < n:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
            while True:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    break
                head = buf[:i]
                clen = int(head.lower().split(b"content-length: ")[1]
                           .split(b"\r\n")[0])
                if len(buf) < i + 4 + clen:
                    break
                if head.startswith(b"HTTP/1.1 200"):
                    ok += 1
                buf = buf[i + 4 + clen:]
                got += 1
    s.close()
    return ok


def test_concurrent_clients_exact_totals():
    with Server(workers=2) as s:
        results = []
        threads = [threading.Thread(
            target=lambda i=i: results.append(
                hammer(s.port, "hot" if i % 2 else "cold/%d" % i, 10000)))
            for i in range(16)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.time() - t0
        check(sum(results) == 160000, results)
        s.settle()
        check(s.count("hot") == 80000, s.counts("hot"))
        for i in range(0, 16, 2):
            check(s.count("cold/%d" % i) == 10000)
        print("     16 x 10k pipelined likes in %.2fs (%.0f/s, Python client)"
              % (dt, 160000 / dt))
        check(s.stop() == 0)


def workload(s):
    for i in range(200):
        s.like("w/%d" % (i % 7), n=1 + i % 5)
        if i % 3 == 0:
            s.like("w/%d" % (i % 5), n=2, method="DELETE")
    s.json("POST", "/v1/likes",
           [{"url": "w/%d" % (i % 11), "n": (i % 9) - 4 or 1}
            for i in range(3000)])
    s.settle()
    return s.counts(*["w/%d" % i for i in range(11)])


def test_one_and_four_workers_agree():
    with Server(workers=1) as one:
        a = workload(one)
    with Server(workers=4) as four:
        b = workload(four)
    strip = lambda c: {u: (v["likes"], v["unlikes"]) for u, v in c.items()}
    check(strip(a) == strip(b), (strip(a), strip(b)))


def test_restart_keeps_counts_and_history():
    with Server(flush_ms=60000) as s:  # only the shutdown flush writes
        s.like("p/1", n=41)
        s.like("p/1", n=1, method="DELETE")
        s.json("POST", "/v1/likes", [{"url": "p/2", "n": 5}] * 10)
        # acknowledged, maybe not merged yet: SIGTERM must keep them
        check(s.stop(signal.SIGTERM) == 0)
        db = sqlite3.connect(s.db)
        rows = dict(db.execute("SELECT url, count FROM counts_v"))
        check(rows == {"p/1": 40, "p/2": 50}, rows)
        hist = db.execute("SELECT sum(likes), sum(unlikes) FROM history_v "
                          "WHERE url = 'p/1'").fetchone()
        check(hist == (41, 1), hist)
        check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
        db.close()
        s.start()
        c = s.counts("p/1", "p/2")
        check(c["p/1"]["count"] == 40 and c["p/1"]["likes"] == 41, c)
        check(c["p/2"]["count"] == 50, c)
        # all-time totals come from the database, not from this run
        st, stats = s.json("GET", "/v1/stats")
        check(stats["totals"] == {"likes": 91, "unlikes": 1, "count": 90,
                                  "views": 0},
              stats)
        check(stats["likes_total"] == 0, stats)
        s.like("p/1", n=2)
        s.settle()
        check(s.count("p/1") == 42)
        st, stats = s.json("GET", "/v1/stats")
        check(stats["totals"]["count"] == 92, stats)
        check(s.stop() == 0)
        db = sqlite3.connect(s.db)
        hist = db.execute("SELECT sum(likes) FROM likes_minute").fetchone()
        check(hist[0] >= 41 + 2 + 50, hist)
        db.close()


def test_sigkill_under_batch_load():
    with Server(flush_ms=100) as s:
        stop = threading.Event()
        acked = [0]

        def load():
            batch = [{"url": "k/%d" % i, "n": 1} for i in range(2000)]
            while not stop.is_set():
                try:
                    st, b = s.json("POST", "/v1/likes", batch)
                    if st == 200:
                        acked[0] += 2000
                except OSError:
                    return

        ts = [threading.Thread(target=load) for _ in range(4)]
        for t in ts:
            t.start()
        # Killed mid-load once some flush has committed rows (so `saved`
        # below is from a real flush, not zero).
        s.wait_metric("livecount_flush_rows_total", lambda v: v > 0)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        stop.set()
        for t in ts:
            t.join()
        s.log.close()
        db = sqlite3.connect(s.db)
        check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
        saved = db.execute("SELECT coalesce(sum(likes), 0) FROM counters")\
            .fetchone()[0]
        db.close()
        check(0 < saved <= acked[0], (saved, acked[0]))
        print("     acknowledged %d likes, %d survived SIGKILL (flush 100 ms)"
              % (acked[0], saved))
        s.start()  # restart works on the crashed database
        total = sum(v["likes"] for v in s.counts(
            *["k/%d" % i for i in range(50)]).values())
        check(total > 0)
        check(s.stop() == 0)


def test_refusals_at_start():
    d = Server.__new__(Server)
    import tempfile
    tmp = tempfile.mkdtemp(prefix="lc-it-")
    notdb = os.path.join(tmp, "notes.db")
    with open(notdb, "wb") as f:
        f.write(b"precious bytes, not SQLite\n" * 10)
    before = open(notdb, "rb").read()
    p = subprocess.run([lc.BIN, "--port", "0", "--db", notdb],
                       capture_output=True, timeout=10)
    check(p.returncode != 0, p)
    check(b"not an SQLite database" in p.stderr, p.stderr)
    check(open(notdb, "rb").read() == before, "file left untouched")
    check(not os.path.exists(notdb + "-wal"))

    with Server() as s:  # a second server on the same database
        p = subprocess.run([lc.BIN, "--port", "0", "--db", s.db],
                           capture_output=True, timeout=10)
        check(p.returncode != 0 and b"in use" in p.stderr, p.stderr)


def test_config_errors_exit_2():
    for args, key in ((["--tick-ms", "abc"], b"tick_ms"),
                      (["--port", "99999"], b"port"),
                      (["--bogus", "1"], b"--bogus"),
                      (["--config", "/nonexistent.conf"], b"nonexistent")):
        p = subprocess.run([lc.BIN] + args, capture_output=True, timeout=10)
        check(p.returncode == 2, (args, p.returncode))
        lines = p.stderr.strip().split(b"\n")
        check(len(lines) == 1 and key in lines[0], p.stderr)
    p = subprocess.run([lc.BIN, "--check-config"], capture_output=True,
                       env=dict(os.environ, LIVECOUNT_TICK_MS="0"))
    check(p.returncode == 2 and b"tick_ms" in p.stderr, p.stderr)
    p = subprocess.run([lc.BIN, "--check-config", "--tick-ms", "7"],
                       capture_output=True, timeout=10)
    check(p.returncode == 0 and b"tick_ms = 7" in p.stdout, p)
    for flag in ("--help", "--version"):
        p = subprocess.run([lc.BIN, flag], capture_output=True, timeout=10)
        check(p.returncode == 0 and p.stdout, flag)


def test_port_zero_logs_port():
    import tempfile
    tmp = tempfile.mkdtemp(prefix="lc-it-")
    p = subprocess.Popen([lc.BIN, "--bind", "127.0.0.1", "--port", "0",
                          "--db", os.path.join(tmp, "x.db")],
                         stderr=subprocess.PIPE)
    try:
        line = b""
        deadline = time.time() + 10
        while b"listening on" not in line and time.time() < deadline:
            line = p.stderr.readline()
        port = int(line.split(b"127.0.0.1:")[1].split()[0])
        c = socket.create_connection(("127.0.0.1", port), 5)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        check(c.recv(100).startswith(b"HTTP/1.1 200"))
        c.close()
    finally:
        p.send_signal(signal.SIGINT)
        check(p.wait(10) == 0)


if __name__ == "__main__":
    run([test_concurrent_clients_exact_totals, test_one_and_four_workers_agree,
         test_restart_keeps_counts_and_history, test_sigkill_under_batch_load,
         test_refusals_at_start, test_config_errors_exit_2,
         test_port_zero_logs_port])
