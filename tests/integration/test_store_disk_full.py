"""The database on a full disk: the server keeps counting, says so, and
recovers with the room that is freed, even when that is much less than the
whole backlog would need written in one transaction."""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

import lc
from lc import Server, check, run


def poll(fn, timeout, step=0.1):
    """fn() once true, or its value at the deadline (lc.wait_for)."""
    try:
        return lc.wait_for(fn, bool, timeout, interval=step, errors=())
    except AssertionError:
        return fn()


def mount_tmpfs(size):
    if os.geteuid() != 0 or not shutil.which("mount"):
        print("     SKIP: mounting a tmpfs needs root")
        return None
    mnt = tempfile.mkdtemp(prefix="lc-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs",
                        mnt], capture_output=True, text=True)
    if r.returncode != 0:
        print("     SKIP: cannot mount a tmpfs here: " + r.stderr.strip())
        return None
    return mnt


def fill(path):
    """Fills the file system holding path; returns the bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                n += f.write(b"\0" * 16384)
        except OSError:
            pass
    return n


def like_all(s, nurls, n=1):
    for k in range(0, nurls, 5000):
        batch = [{"url": "full/%06d/" % i + "x" * 120, "n": n}
                 for i in range(k, k + 5000)]
        st, b = s.json("POST", "/v1/likes", batch)
        check(st == 200, b)


def written(s):
    return (s.metric("livecount_dirty_urls") == 0 and
            s.json("GET", "/readyz")[0] == 200)


def test_recovers_with_only_part_of_the_room_freed():
    mnt = mount_tmpfs("24m")
    if not mnt:
        return
    filler = os.path.join(mnt, "filler")
    nurls, rounds = 30000, 5
    try:
        with Server(db=os.path.join(mnt, "lc.db"), flush_ms=200) as s:
            check(s.like("full/first")[0] == 200)
            poll(lambda: s.metric("livecount_dirty_urls") == 0, 10)
            size = fill(filler)
            like_all(s, nurls)
            check(poll(lambda: s.json("GET", "/readyz")[0] == 503, 10),
                  "/readyz says the database cannot be written")
            check(s.metric("livecount_flush_errors_total") >= 1)
            check(s.like("full/after")[0] == 200, "keeps counting")
            # Room for the rows (about 10 MB) and a little more, not for
            # twice them: the WAL of a transaction holding every row must
            # be folded into the database file before it can be reused.
            os.truncate(filler, size - 14 * 1024 * 1024)
            check(poll(lambda: written(s), 30, 0.5), "recovered: dirty "
                  "%r" % s.metric("livecount_dirty_urls"))
            # Every URL changes again, round after round: written in place
            # once the WAL can be checkpointed, else the WAL grows.
            for r in range(rounds):
                like_all(s, nurls)
                check(poll(lambda: written(s), 30, 0.5),
                      "round %d: dirty %r, errors %r" % (
                          r, s.metric("livecount_dirty_urls"),
                          s.metric("livecount_flush_errors_total")))
            check(s.stop() == 0, "clean stop")
            db = sqlite3.connect(s.db)
            n, likes = db.execute(
                "SELECT count(*), sum(likes) FROM counts_v WHERE url LIKE "
                "'full/%'").fetchone()
            db.close()
            check((n, likes) == (nurls + 2, nurls * (rounds + 1) + 2),
                  (n, likes))
    finally:
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)


if __name__ == "__main__":
    run([test_recovers_with_only_part_of_the_room_freed])
