"""The database file is checked: deleted, moved or replaced under the
running server, it is noticed within a flush interval (log, metric,
/readyz), the database at the configured path is written again from
memory, and nothing acknowledged is lost; if that cannot be done the
server never claims a clean stop."""

import os
import shutil
import sqlite3
import threading
import time

import lc
from lc import Server, check, run

URLS = ["https://example.com/fc/%d" % i for i in range(20)]


def poll(fn, timeout, step=0.05):
    """fn() once true, or its value at the deadline (lc.wait_for)."""
    try:
        return lc.wait_for(fn, bool, timeout, interval=step, errors=())
    except AssertionError:
        return fn()


class Liker(threading.Thread):
    """Likes URLS round-robin until stopped; counts what was acknowledged."""

    def __init__(self, s):
        super().__init__(daemon=True)
        self.s, self.acked, self.stopping = s, {}, False

    def run(self):
        i = 0
        while not self.stopping:
            u = URLS[i % len(URLS)]
            i += 1
            st, _ = self.s.like(u)
            if st == 200:
                self.acked[u] = self.acked.get(u, 0) + 1

    def stop(self):
        self.stopping = True
        self.join()


def db_counts(path):
    db = sqlite3.connect(path)
    rows = dict(db.execute("SELECT url, likes FROM counts_v"))
    db.close()
    return rows


def lost_metric(s):
    try:
        return s.metric("livecount_db_file_lost_total")
    except AssertionError:  # a server without the check
        return 0


def exact_after_restart(s, liker):
    """Clean stop, then the file and a restarted server hold every like."""
    check(s.stop() == 0, "clean stop")
    check("stopped cleanly" in s.logtext())
    rows = db_counts(s.db)
    for u, n in liker.acked.items():
        check(rows.get(u) == n, "%s: database %r, acknowledged %d" %
              (u, rows.get(u), n))
    s.start()
    got = s.counts(*URLS)
    for u, n in liker.acked.items():
        check(got[u]["likes"] == n, (u, got[u], n))


def test_deleted_while_likes_flow():
    with Server(flush_ms=200) as s:
        liker = Liker(s)
        liker.start()
        poll(lambda: len(liker.acked) == len(URLS), 10)
        time.sleep(0.5)  # some flushes went into the file
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(s.db + suffix):
                os.unlink(s.db + suffix)
        check(poll(lambda: lost_metric(s) >= 1, 5), "noticed")
        check("deleted or moved away" in s.logtext())
        check(poll(lambda: os.path.exists(s.db), 5), "recreated")
        time.sleep(0.5)
        liker.stop()
        check(poll(lambda: s.json("GET", "/readyz")[0] == 200, 10))
        exact_after_restart(s, liker)


def test_only_the_main_file_deleted():
    # the -wal and -shm left at the path belong to the lost file: they
    # must not be replayed over the new one
    with Server(flush_ms=200) as s:
        liker = Liker(s)
        liker.start()
        poll(lambda: len(liker.acked) == len(URLS), 10)
        time.sleep(0.5)
        os.unlink(s.db)
        check(poll(lambda: lost_metric(s) >= 1, 5), "noticed")
        time.sleep(0.5)
        liker.stop()
        check(poll(lambda: s.json("GET", "/readyz")[0] == 200, 10))
        db = sqlite3.connect(s.db)
        check(db.execute("PRAGMA quick_check").fetchone()[0] == "ok")
        db.close()
        exact_after_restart(s, liker)


def test_replaced_by_an_old_copy_while_likes_flow():
    with Server(flush_ms=200) as s:
        liker = Liker(s)
        liker.start()
        poll(lambda: len(liker.acked) == len(URLS), 10)
        time.sleep(0.5)
        old = os.path.join(s.dir, "old.db")
        src = sqlite3.connect(s.db)
        dst = sqlite3.connect(old)
        src.backup(dst)  # a consistent copy, as an operator would take
        dst.close()
        src.close()
        time.sleep(0.5)  # more likes after the copy
        os.replace(old, s.db)
        check(poll(lambda: lost_metric(s) >= 1, 5), "noticed")
        check("replaced by another file" in s.logtext())
        time.sleep(0.5)
        liker.stop()
        check(poll(lambda: s.json("GET", "/readyz")[0] == 200, 10))
        exact_after_restart(s, liker)


def test_moved_and_readyz_says_so_until_written_again():
    # a database that cannot be opened at the path: /readyz 503 and the
    # stop admits what it could not write
    with Server("--shutdown-timeout-ms", "1000", flush_ms=200) as s:
        check(s.like(URLS[0])[0] == 200)
        poll(lambda: s.metric("livecount_dirty_urls") == 0 and
             os.path.exists(s.db), 5)
        time.sleep(0.3)
        os.rename(s.db, s.db + ".moved")
        with open(s.db, "w") as f:
            f.write("not a database\n" * 10)
        check(poll(lambda: lost_metric(s) >= 1, 5), "noticed")
        st, b = s.json("GET", "/readyz")
        check(st == 503 and b["status"] == "degraded", (st, b))
        check(s.like(URLS[1])[0] == 200, "keeps counting")
        rc = s.stop()
        check(rc != 0, "no clean stop claimed: exit %r" % rc)
        check("stopped cleanly" not in s.logtext())
        check("WITHOUT writing everything" in s.logtext())
        with open(s.db) as f:
            check(f.read().startswith("not a database"), "left untouched")
        # once the path is free again, a restart on the moved file keeps
        # what had been written
        os.replace(s.db + ".moved", s.db)


if __name__ == "__main__":
    run([test_deleted_while_likes_flow, test_only_the_main_file_deleted,
         test_replaced_by_an_old_copy_while_likes_flow,
         test_moved_and_readyz_says_so_until_written_again])
