"""No acknowledged like lost or counted twice on odd paths: counts at the
int64 limits saturate instead of wrapping, SIGHUP never kills the process
without its final flush, SIGTERM with an unwritable database waits a
bounded time and says how many likes it could not write."""
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time

from lc import SANITIZED, Server, check, run, wait_for

INT64_MAX = 2**63 - 1


def test_counts_saturate_at_int64_limits():
    with Server() as s:
        s.like("big", n=1)
        s.like("neg", n=1, method="DELETE")
        check(s.stop() == 0)
        db = sqlite3.connect(s.db)
        db.execute("UPDATE counters SET likes = ? WHERE url_id = "
                   "(SELECT id FROM urls WHERE url = 'big')",
                   (INT64_MAX - 5,))
        db.execute("UPDATE counters SET unlikes = ? WHERE url_id = "
                   "(SELECT id FROM urls WHERE url = 'neg')",
                   (INT64_MAX - 5,))
        db.commit()
        db.close()
        s.start()
        ws = s.ws(["big", "neg"])
        snap = ws.recv()
        check(snap["counts"] == {"big": INT64_MAX - 5,
                                 "neg": -(INT64_MAX - 5)}, snap)
        st, b = s.like("big", n=1000)
        check(st == 200 and b["count"] == INT64_MAX, b)
        st, b = s.like("neg", n=1000, method="DELETE")
        check(st == 200 and b["count"] == -INT64_MAX, b)
        st, b = s.json("POST", "/v1/likes", [{"url": "big", "n": 1000000}] * 3)
        check(st == 200, b)
        s.settle()
        c = s.counts("big", "neg")
        check(c["big"]["count"] == INT64_MAX, c)
        check(c["big"]["likes"] == INT64_MAX, c)
        check(c["neg"]["count"] == -INT64_MAX, c)
        wait_for(lambda: s.json("GET", "/v1/top?limit=1")[1]["top"],
                 lambda t: t and (t[0]["url"], t[0]["count"]) ==
                 ("big", INT64_MAX), what="the top list")
        # the all-time totals of /v1/stats saturate too (they wrapped to
        # negative, and likes - unlikes then overflowed: UBSan aborted)
        totals = s.stats()["totals"]
        check((totals["likes"], totals["unlikes"], totals["count"]) ==
              (INT64_MAX, INT64_MAX, 0), totals)
        # unlikes still move a saturated count down
        st, b = s.like("big", n=7, method="DELETE")
        check(b["count"] == INT64_MAX - 7, b)
        ws.close()
        check(s.stop() == 0)  # under UBSan a wrap would have aborted
        db = sqlite3.connect(s.db)
        rows = dict(db.execute("SELECT url, count FROM counts_v"))
        check(rows == {"big": INT64_MAX - 7, "neg": -INT64_MAX}, rows)
        db.close()


def hup(s):
    """SIGHUP, then waits for the line every reload logs (done or not)."""
    n = s.logtext().count("SIGHUP: configuration")
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: s.logtext().count("SIGHUP: configuration"),
             lambda k: k > n or s.proc.poll() is not None,
             what="the reload logged")


def test_sighup_reloads_and_never_kills():
    with Server() as s:
        conf = os.path.join(s.dir, "lc.conf")
        with open(conf, "w") as f:
            f.write("log_level = info\n")
        s.args += ["--config", conf]
        s.restart()
        s.like("hup", n=40)
        hup(s)
        check(s.proc.poll() is None, "SIGHUP killed the server")
        with open(conf, "w") as f:
            f.write("log_level = debug\ntop_limit_max = 77\n")
        hup(s)
        check(s.proc.poll() is None)
        s.like("hup", n=2)
        log = s.logtext()
        check("configuration reloaded (log_level = debug)" in log, log)
        check("'top_limit_max = 77' needs a restart" in log, log)
        with open(conf, "w") as f:
            f.write("no_such_key = 1\n")
        hup(s)
        check(s.proc.poll() is None)
        check("configuration not reloaded" in s.logtext())
        check(s.stop() == 0)
        db = sqlite3.connect(s.db)
        check(db.execute("SELECT count FROM counts_v").fetchone() == (42,))
        db.close()


def test_sigterm_with_unwritable_database():
    with Server("--shutdown-timeout-ms", "1000", flush_ms=100) as s:
        s.like("w", n=1)
        s.wait_db("SELECT count FROM counts_v WHERE url = 'w'", [(1,)])
        db = sqlite3.connect(s.db, timeout=1, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # hold the write lock
        s.like("w", n=5)
        s.like("w2", n=3, method="DELETE")
        # bounded: the timeout plus at most one busy-wait of SQLite (5 s)
        # that a flush already running when SIGTERM came may be in, with
        # room for a loaded machine (s.stop fails past it)
        t0 = time.time()
        rc = s.stop(timeout=20)
        took = time.time() - t0
        db.execute("ROLLBACK")
        db.close()
        log = s.logtext()
        check(rc != 0, "exit status %r after losing likes" % rc)
        check("8 acknowledged likes and unlikes of 2 URLs could not be "
              "written" in log, log)
        check("stopped cleanly" not in log.split("received")[-1], log)
        print("     stopped %.1f s after SIGTERM (shutdown_timeout_ms 1000)"
              % took)


def sigkill_loss(s, urls, seconds, senders=4):
    """Acknowledged likes at a steady pace over `urls` for `seconds`, then
    SIGKILL; returns (acknowledged, in the database, pace per second)."""
    stop = threading.Event()
    acked = [0] * senders

    def load(k):
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        body = json.dumps([{"url": u, "n": 1} for u in urls])
        while not stop.is_set():
            try:
                c.request("POST", "/v1/likes", body,
                          {"Content-Type": "application/json"})
                if c.getresponse().read() and True:
                    acked[k] += len(urls)
            except OSError:
                return
    ts = [threading.Thread(target=load, args=(k,)) for k in range(senders)]
    t0 = time.time()
    for t in ts:
        t.start()
    time.sleep(seconds)  # a steady load for `seconds`: time is the point
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    pace = sum(acked) / (time.time() - t0)
    stop.set()
    for t in ts:
        t.join()
    s.log.close()
    db = sqlite3.connect(s.db)
    saved = db.execute("SELECT coalesce(sum(likes), 0) FROM counters")\
        .fetchone()[0]
    db.close()
    return sum(acked), saved, pace


def test_sigkill_loss_window():
    """README's promise: SIGKILL loses at most what was acknowledged in the
    last flush_interval_ms + tick_ms (plus, when max_rows_per_sec
    throttles, the changes of the URLs still waiting). Measured here."""
    flush_ms, tick_ms = 500, 50
    with Server(flush_ms=flush_ms, tick_ms=tick_ms) as s:
        acked, saved, pace = sigkill_loss(s, ["kw/%d" % i for i in range(20)],
                                          3)
        lost_s = (acked - saved) / pace
        print("     unthrottled: %d acknowledged, %d lost = %.2f s of likes "
              "(flush %d ms + tick %d ms)" % (acked, acked - saved, lost_s,
                                              flush_ms, tick_ms))
        check(0 < saved <= acked, (saved, acked))
        # The window is measured and logged (README quotes it), not
        # asserted: the batcher runs at nice 10, so a loaded machine
        # stretches it (a slower test must not be a red one).
    # throttled: 2000 URLs per batch, 1000 rows/s: most URLs wait
    with Server("--max-rows-per-sec", "1000", flush_ms=200,
                tick_ms=tick_ms) as s:
        urls = ["kt/%d" % i for i in range(2000)]
        s.settle()  # running steadily
        acked, saved, pace = sigkill_loss(s, urls, 2, senders=2)
        print("     throttled (1000 rows/s, 2000 URLs): %d acknowledged, "
              "%d lost = %.2f s of likes" % (acked, acked - saved,
                                             (acked - saved) / pace))
        check(saved <= acked)


def build_shim():
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim",
                       "clockstep.c")
    out = os.path.join(tempfile.mkdtemp(prefix="lc-shim-"), "clockstep.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", out, src, "-ldl"],
                   check=True, capture_output=True, timeout=60)
    return out


def test_wall_clock_step_back():
    """The wall clock steps back 60 s mid-run (an LD_PRELOAD shim): flushes
    go on, rate limits and WebSocket op windows stay fair, the minute
    that comes round again only grows, and a SIGKILL right after loses no
    more than the flush window."""
    if SANITIZED:
        print("     SKIP: LD_PRELOAD next to the sanitizer runtime")
        return
    shim = build_shim()
    shift_file = os.path.join(tempfile.mkdtemp(prefix="lc-shift-"), "s")
    with open(shift_file, "w") as f:
        f.write("0")
    env = {"LD_PRELOAD": shim, "LC_CLOCK_SHIFT_FILE": shift_file}
    with Server("--max-likes-per-sec-per-ip", "100000", env=env,
                flush_ms=200) as s:
        for _ in range(20):
            s.like("step")
        ws = s.ws(["step"])
        check(ws.recv()["type"] == "snapshot")
        s.wait_db("SELECT count FROM counts_v", [(20,)])  # written
        with open(shift_file, "w") as f:
            f.write("-60")
        # likes until an update's ts shows the stepped clock (the shim
        # re-reads the file every 20 ms), then the rest of 50
        n = 0
        while True:
            st, b = s.like("step")
            check(st == 200, (st, b))
            n += 1
            u = ws.until(lambda m: m["type"] == "update" and
                         m["counts"]["step"]["count"] == 20 + n)[-1]
            if u["ts"] < time.time() * 1000 - 30000:
                break
            check(n < 50, "the clock never stepped back")
        for _ in range(50 - n):
            st, b = s.like("step")
            check(st == 200, (st, b))  # no 429 storm for 60 s
        for _ in range(20):  # under max_ops_per_sec: not closed
            ws.send({"op": "subscribe", "urls": ["step"]})
        # flushes went on (30 s: half the step, which a flush scheduled by
        # the wall clock would wait out)
        s.wait_db("SELECT count FROM counts_v", [(70,)], timeout=30)
        # the revisited minute added to its row instead of overwriting it
        s.wait_db("SELECT sum(likes) FROM likes_minute", [(70,)], timeout=30)
        check(s.get("/readyz")[0] == 200)
        s.like("step", n=5)
        s.wait_db("SELECT count FROM counts_v", [(75,)], timeout=30)
        s.stop(signal.SIGKILL)
        db = sqlite3.connect(s.db)
        count = db.execute("SELECT count FROM counts_v").fetchone()[0]
        db.close()
        check(count == 75, count)
        ws.close()


run([test_counts_saturate_at_int64_limits, test_sighup_reloads_and_never_kills,
     test_sigterm_with_unwritable_database, test_sigkill_loss_window,
     test_wall_clock_step_back])
