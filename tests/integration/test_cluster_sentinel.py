"""Cluster mode with Redis Sentinel (issue 20, item 4): a primary, a
replica and three sentinels (down-after-milliseconds 1000), two nodes with
redis+sentinel://. The primary is SIGKILLed (or handed over with SENTINEL
FAILOVER: it stays as a replica answering writes with READONLY) while both
nodes take likes; the sentinels promote the replica, the nodes follow it
(/v1/stats names it), every node ends exact, and a new like crosses nodes
at once again."""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import lc
from lc import REDIS_SERVER, Redis, Server, check, free_port, run

MASTER = "lcmaster"


class Proc:
    """A redis-server (or sentinel) from a config file in its own dir."""

    def __init__(self, conf_lines, sentinel=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lc-sentinel-")
        self.conf = os.path.join(self.dir, "redis.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n" % (self.port,
                                                          self.dir))
            f.write("\n".join(conf_lines) + "\n")
        args = [REDIS_SERVER, self.conf] + (["--sentinel"] if sentinel
                                            else [])
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.r = Redis.__new__(Redis)   # only its cmd()
        self.r.port = self.port
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.cmd("PING") == "PONG":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def cmd(self, *a):
        return self.r.cmd(*a)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(pred, timeout=30, what="condition"):
    """Until pred() is True (lc.wait_for, the one poll of the tests)."""
    lc.wait_for(pred, lambda v: v is True, timeout, what,
                errors=(OSError, AssertionError, RuntimeError))


def link_up(n):
    return n.metric("livecount_cluster_link_up") == 1


def primary(n):
    return n.json("GET", "/v1/stats")[1]["cluster"]["primary"]


def failover(graceful):
    plain = ["save \"\"", "appendonly no"]
    procs = []
    try:
        p = Proc(plain)
        procs.append(p)
        rep = Proc(plain + ["replicaof 127.0.0.1 %d" % p.port])
        procs.append(rep)
        wait_for(lambda: "master_link_status:up" in
                 rep.cmd("INFO", "replication"), what="replica in sync")
        sentinels = []
        for _ in range(3):
            s = Proc(["sentinel monitor %s 127.0.0.1 %d 2" % (MASTER, p.port),
                      "sentinel down-after-milliseconds %s 1000" % MASTER,
                      "sentinel failover-timeout %s 5000" % MASTER,
                      "sentinel parallel-syncs %s 1" % MASTER],
                     sentinel=True)
            procs.append(s)
            sentinels.append(s)
        wait_for(lambda: all(
            int(dict(zip(*[iter(s.cmd("SENTINEL", "master", MASTER))] * 2))
                ["num-other-sentinels"]) == 2 for s in sentinels),
            what="sentinels know each other")
        url = "redis+sentinel://%s/%s" % (
            ",".join("127.0.0.1:%d" % s.port for s in sentinels), MASTER)
        with Server("--redis-url", url, "--node-id", "1", workers=1) as a, \
                Server("--redis-url", url, "--node-id", "2", workers=1) as b:
            for n in (a, b):
                wait_for(lambda: link_up(n), what="link up")
                check(primary(n) == "127.0.0.1:%d" % p.port, primary(n))
            a.like("f", n=3)
            wait_for(lambda: b.count("f") == 3, what="before failover")
            # both nodes take likes while the primary dies
            sent = {"a": 3, "b": 0}
            stop = threading.Event()

            def liker(n, key):
                while not stop.is_set():
                    try:
                        st, _ = n.like("f")
                        if st == 200:
                            sent[key] += 1
                    except OSError:
                        pass
                    time.sleep(0.01)
            ts = [threading.Thread(target=liker, args=(a, "a")),
                  threading.Thread(target=liker, args=(b, "b"))]
            for t in ts:
                t.start()
            time.sleep(0.5)
            t_kill = time.time()
            if graceful:
                # the old primary stays, as a replica: writes to it get
                # READONLY until the nodes ask the sentinels again
                sentinels[0].cmd("SENTINEL", "FAILOVER", MASTER)
            else:
                p.kill()
            try:
                wait_for(lambda: all(primary(n) == "127.0.0.1:%d" % rep.port
                                     for n in (a, b)),
                         timeout=60, what="nodes follow the new primary")
                t_follow = time.time() - t_kill
                time.sleep(0.5)
            finally:
                stop.set()
                for t in ts:
                    t.join()
            total = sent["a"] + sent["b"]
            check(sent["a"] > 10 and sent["b"] > 10, sent)
            wait_for(lambda: a.count("f") == total and b.count("f") == total,
                     timeout=60, what="exact after failover (%d)" % total)
            t_exact = time.time() - t_kill
            for n in (a, b):
                wait_for(lambda: link_up(n), what="link up after failover")
            got = lc.node_totals(rep, "f")
            check(got.get("1:l", 0) + got.get("2:l", 0) == total, (got, total))
            # a new like crosses nodes at once again
            t0 = time.time()
            b.like("after", n=1)
            wait_for(lambda: a.count("after") == 1, timeout=10,
                     what="a new like crosses")
            cross_ms = (time.time() - t0) * 1000
            check(a.metric("livecount_cluster_failovers_total") >= 1)
            # followed on the sentinels' +switch-master message
            for n in (a, b):
                check("+switch-master %s " % MASTER in n.logtext(),
                      n.logtext()[-2000:])
            # a clean stop (the sentinel watcher too) gives the lease back
            check(a.stop(timeout=20) == 0 and
                  "stopped cleanly" in a.logtext())
            check(rep.cmd("GET", "lc:node:1") is None)
            print("%s failover: nodes followed in %.1f s, exact in %.1f s "
                  "after it (%d likes during it); a new like crossed "
                  "in %.0f ms" % ("graceful" if graceful else "SIGKILL",
                                 t_follow, t_exact, total, cross_ms))
    finally:
        for x in procs:
            x.close()


def test_failover():
    failover(graceful=False)


def test_graceful_failover():
    failover(graceful=True)


def test_sentinel_url_forms():
    from lc import BIN
    for bad in ("redis+sentinel://127.0.0.1/m",          # no port
                "redis+sentinel://127.0.0.1:1",          # no master
                "redis+sentinel://127.0.0.1:1/m/x"):     # bad db
        p = subprocess.run([BIN, "--check-config", "--node-id", "1",
                            "--redis-url", bad], capture_output=True,
                           timeout=20)
        check(p.returncode == 2 and b"redis+sentinel://HOST:PORT" in
              p.stderr, p)
    p = subprocess.run([BIN, "--check-config", "--node-id", "1"],
                       capture_output=True, timeout=20,
                       env=dict(os.environ, LIVECOUNT_REDIS_URL=
                                "redis+sentinel://u:pw-xyz@h1:26379,"
                                "h2:26380/mymaster/2"))
    out = p.stdout.decode()
    check(p.returncode == 0 and "pw-xyz" not in out and
          "redis+sentinel://u:***@h1:26379,h2:26380/mymaster/2" in out,
          (p.returncode, out, p.stderr))


run([test_sentinel_url_forms, test_failover, test_graceful_failover])
