"""Cluster mode: several real livecount nodes sharing counts through a real
redis-server on loopback. Every failure case ends in exact counts on every
node: Redis stalled, a partition (a proxy the test cuts), the pub/sub
subscription killed, a lost message, a node SIGKILLed and restarted (same
and empty database), Redis restarted empty, a duplicate node id, two nodes
on one port."""
import os
import re
import signal
import sqlite3
import subprocess
import time

from lc import (BIN, Proxy, Redis, Server, check, free_port, node_totals,
                redis_key, run, wait_for)


def node(redis, node_id, *args, url=None, **kw):
    kw.setdefault("workers", 1)
    return Server("--redis-url", url or redis.url(), "--node-id",
                  str(node_id), *args, **kw)


def converge(nodes, url, expected):
    wait_for(lambda: [n.count(url) for n in nodes],
             lambda got: all(g == expected for g in got),
             what="%s == %d on every node" % (url, expected))


def link_up(n):
    return n.metric("livecount_cluster_link_up") == 1


SLOTS = "SELECT node, likes, unlikes FROM node_slots_v WHERE url = ? " \
    "ORDER BY node"


def test_three_nodes_converge():
    with Redis() as r, node(r, 1) as a, node(r, 2) as b, node(r, 3) as c:
        for n in (a, b, c):
            wait_for(lambda: link_up(n), what="link up")
        ws = c.ws(["x"])
        snap = ws.recv()
        check(snap["type"] == "snapshot", snap)
        a.like("x", n=5)
        b.like("x", n=7)
        c.like("x", n=2, method="DELETE")
        b.like("only-on-b", n=100)
        converge([a, b, c], "x", 10)
        converge([a, b, c], "only-on-b", 100)
        # a subscriber on c sees likes made on a and b
        ws.until(lambda m: m.get("type") == "update" and
                 m["counts"].get("x", {}).get("count") == 10)
        ws.close()
        # the top list is cluster-wide (republished at most once a tick)
        wait_for(lambda: a.json("GET", "/v1/top?limit=5")[1]["top"],
                 lambda t: t and (t[0]["url"], t[0]["count"]) ==
                 ("only-on-b", 100), what="the cluster-wide top list")
        # every node's own totals are in Redis, written with ZADD GT
        # (one slot per node: each ran with one database)
        z = r.cmd("ZRANGE", redis_key("x"), 0, -1, "WITHSCORES")
        check(len(z) == 18 and all(re.fullmatch(r"[123]\.[0-9a-f]{8}:[luv]",
                                                m) for m in z[::2]), z)
        slots = node_totals(r, "x")
        check(slots == {"1:l": 5, "1:u": 0, "1:v": 0, "2:l": 7,
                        "2:u": 0, "2:v": 0, "3:l": 0, "3:u": 2,
                        "3:v": 0}, slots)
        # /v1/stats lists the nodes this node knows
        wait_for(lambda: sorted(n["id"] for n in
                                a.stats()["cluster"]["nodes"]),
                 lambda ids: ids == [1, 2, 3], what="three nodes in /v1/stats")
        st, s = a.json("GET", "/v1/stats")
        check(s["cluster"]["node_id"] == 1 and s["cluster"]["link"] == "up",
              s)
        # its slot: node id and its database's instance, as in Redis
        inst = sqlite3.connect(a.db).execute(
            "SELECT value FROM meta WHERE key = 'instance'").fetchone()[0]
        check(s["cluster"]["slot"] == "1." + inst, (s["cluster"], inst))
        check(r.cmd("ZSCORE", redis_key("x"), "1.%s:l" % inst) == "5")
        check(s["totals"]["count"] == 110, s)
        # the database holds cluster totals and every node's slots
        for n in (a, b, c):
            check(n.stop() == 0)
        db = sqlite3.connect(a.db)
        check(dict(db.execute("SELECT url, count FROM counts_v")) ==
              {"x": 10, "only-on-b": 100})
        rows = sorted(db.execute(
            "SELECT node, likes, unlikes FROM node_slots_v WHERE url='x'"))
        check(rows == [(1, 5, 0), (2, 7, 0), (3, 0, 2)], rows)
        db.close()


def test_redis_stalled():
    with Redis() as r, node(r, 1) as a, node(r, 2) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        a.like("s", n=1)
        converge([a, b], "s", 1)
        r.proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(20):
                a.like("s")
                b.like("s", n=2)
            # each keeps counting and serving its own view
            check(a.count("s") == 21 and b.count("s") == 41,
                  (a.count("s"), b.count("s")))
            wait_for(lambda: not link_up(a), what="link down on a")
            check(a.get("/readyz")[0] == 200)
        finally:
            r.proc.send_signal(signal.SIGCONT)
        converge([a, b], "s", 61)
        wait_for(lambda: link_up(a), what="link up again")


def test_partition():
    with Redis() as r:
        px = Proxy(r.port)
        try:
            with node(r, 1, url=r.url(px.port)) as a, node(r, 2) as b:
                for n in (a, b):
                    wait_for(lambda: link_up(n), what="link up")
                a.like("p", n=10)
                converge([a, b], "p", 10)
                px.cut()
                wait_for(lambda: not link_up(a), what="link down on a")
                # A partition of 10 s (past the 3 s after which a silent
                # node is "down"), likes paced on both sides: time itself
                # is what this part tests.
                t_end = time.time() + 10
                na = nb = 0
                while time.time() < t_end:
                    a.like("p")
                    b.like("p", n=3)
                    na += 1
                    nb += 3
                    time.sleep(0.05)
                # during the cut each side shows its own likes
                check(a.count("p") == 10 + na, (a.count("p"), na))
                check(b.count("p") == 10 + nb, (b.count("p"), nb))
                check(not link_up(a))
                px.heal()
                converge([a, b], "p", 10 + na + nb)
        finally:
            px.close()


def test_pubsub_killed_and_lost_message():
    with Redis() as r, node(r, 1) as a, node(r, 2) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        resyncs = b.metric("livecount_cluster_resyncs_total")
        killed = r.cmd("CLIENT", "KILL", "TYPE", "pubsub")
        check(killed >= 2, killed)
        a.like("k", n=4)
        converge([a, b], "k", 4)
        wait_for(lambda: b.metric("livecount_cluster_resyncs_total") >
                 resyncs, what="a resync on b")
        # A message lost on its way: node 9's total is in Redis but its
        # PUBLISH never arrived; the next message shows a sequence gap,
        # and the resync it triggers brings the total in.
        r.cmd("ZADD", redis_key("k"), "GT", 6, "9:l", 0, "9:u")
        r.cmd("PUBLISH", "lc:changes", "lc3 9 00000000000000aa 1\n")
        for n in (a, b):  # read once node 9 is listed
            wait_for(lambda: [x["id"] for x in n.stats()["cluster"]["nodes"]],
                     lambda ids: 9 in ids, what="node 9 heard")
            n.settle()
        check(a.count("k") == 4 and b.count("k") == 4)
        r.cmd("PUBLISH", "lc:changes", "lc3 9 00000000000000aa 3\n")
        converge([a, b], "k", 10)
        check(b.metric("livecount_cluster_seq_gaps_total") >= 1)
        # duplicates and stale readings never count twice
        r.cmd("PUBLISH", "lc:changes",
              "lc3 9 00000000000000aa 4\n9 6 0 0 - k\n9 5 0 0 - k\n9 6 0 0 - k\n")
        # A marker behind them on the same channel: once it is counted,
        # every node has read and merged them.
        r.cmd("ZADD", redis_key("k-mark"), "GT", 1, "9:l", 0, "9:u")
        r.cmd("PUBLISH", "lc:changes", "lc3 9 00000000000000aa 5\n9 1 0 0 - k-mark\n")
        converge([a, b], "k-mark", 1)
        for n in (a, b):
            n.settle()
        check(a.count("k") == 10 and b.count("k") == 10,
              (a.count("k"), b.count("k")))


def test_node_sigkill_restart():
    with Redis() as r:
        with node(r, 1, flush_ms=100) as a, node(r, 2) as b:
            for n in (a, b):
                wait_for(lambda: link_up(n), what="link up")
            a.like("r", n=50)
            b.like("r", n=5)
            converge([a, b], "r", 55)
            a.wait_db(SLOTS, [(1, 50, 0), (2, 5, 0)], "r")  # flushed
            a.stop(signal.SIGKILL)
            # restart with the same database: nothing counted twice
            a.start()
            wait_for(lambda: link_up(a), what="link up after restart")
            converge([a, b], "r", 55)
            a.like("r", n=1)
            converge([a, b], "r", 56)
            # acknowledged while Redis is stalled: flushed, not pushed;
            # killed; pushed when it comes back
            r.proc.send_signal(signal.SIGSTOP)
            try:
                a.like("r", n=20)
                a.wait_db(SLOTS, [(1, 71, 0), (2, 5, 0)], "r")  # flushed
                a.stop(signal.SIGKILL)
            finally:
                r.proc.send_signal(signal.SIGCONT)
            a.start()
            converge([a, b], "r", 76)
            a.stop(signal.SIGKILL)
            # restart with an empty database: our own total from Redis
            os.unlink(a.db)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(a.db + suffix):
                    os.unlink(a.db + suffix)
            a.start()
            converge([a, b], "r", 76)
            a.like("r", n=4)
            converge([a, b], "r", 80)
            # the lost database's slot keeps its 71, the new one has 4
            z = node_totals(r, "r")["1:l"]
            check(z == 75, z)
            check(sorted(v for m, v in zip(*[iter(r.cmd(
                "ZRANGE", redis_key("r"), 0, -1, "WITHSCORES"))] * 2)
                if m.endswith(":l") and m.startswith("1.")) == ["4", "71"],
                r.cmd("ZRANGE", redis_key("r"), 0, -1, "WITHSCORES"))


def test_redis_restarted_empty():
    with Redis() as r, node(r, 1) as a, node(r, 2) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        a.like("e", n=3)
        b.like("e", n=4)
        b.like("f", n=1)
        converge([a, b], "e", 7)
        r.restart()
        # every node repopulates it
        wait_for(lambda: node_totals(r, "e"),
                 lambda t: t.get("2:l") == 4 and t.get("1:l") == 3,
                 what="Redis repopulated")
        a.like("e", n=1)
        converge([a, b], "e", 8)
        # a brand-new node learns the full totals
        with node(r, 3) as c:
            converge([a, b, c], "e", 8)
            converge([c], "f", 1)


def test_duplicate_node_id_refused():
    with Redis() as r, node(r, 1) as a:
        try:
            node(r, 1)
        except RuntimeError as e:
            check("node_id 1 is in use" in str(e), e)
        else:
            raise AssertionError("a second node 1 started")
        check(a.get("/healthz")[0] == 200)
    # cluster mode needs a node id
    with Redis() as r:
        try:
            Server("--redis-url", r.url())
        except RuntimeError as e:
            check("node_id" in str(e), e)
        else:
            raise AssertionError("started without node_id")


def test_reuse_port():
    port = free_port()
    with Redis() as r:
        with node(r, 1, "--reuse-port", port=port) as a, \
                node(r, 2, "--reuse-port", port=port) as b:
            # a third server on the busy port without reuse_port: refused
            # (run by hand: /readyz on the shared port would answer for a)
            p = subprocess.run(
                [BIN, "--bind", "127.0.0.1", "--port", str(port), "--db",
                 os.path.join(a.dir, "third.db")],
                capture_output=True, timeout=20)
            check(p.returncode != 0 and
                  b"in use by another process" in p.stderr, p)
            for _ in range(40):
                a.like("rp")  # a.port == b.port: the kernel picks
            converge([a, b], "rp", 40)
            check(a.proc.poll() is None and b.proc.poll() is None)


def test_idempotency_keys_hold_across_nodes():
    with Redis() as r, node(r, 1) as a, node(r, 2) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        h = {"Idempotency-Key": "x-node-1"}
        st, d1, r1 = a.request("POST", "/v1/likes?url=idem&n=3", headers=h)
        check(st == 200, d1)
        # the retry goes to another node: answered there, not counted (a
        # retry racing the first node's settle is told 409 in_progress
        # with Retry-After, and retried as a client would)
        st, d2, r2 = wait_for(
            lambda: b.request("POST", "/v1/likes?url=idem&n=3", headers=h),
            lambda res: res[0] != 409, what="the key settled")
        check(st == 200 and d2 == d1, (d1, d2))
        check(r2.getheader("idempotent-replayed") == "true")
        st, d3, r3 = a.request("POST", "/v1/likes?url=idem&n=3", headers=h)
        check(d3 == d1 and r3.getheader("idempotent-replayed") == "true")
        converge([a, b], "idem", 3)
        v = r.cmd("GET", "lc:idem:h:x-node-1")
        check(v is not None and v.startswith("200\n"), v)
        # with Redis stalled each node decides alone (bounded wait)
        r.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.time()
            st, d, _ = a.request("POST", "/v1/likes?url=idem2",
                                 headers={"Idempotency-Key": "x-node-2"})
            check(st == 200 and time.time() - t0 < 2.5, time.time() - t0)
        finally:
            r.proc.send_signal(signal.SIGCONT)


run([test_three_nodes_converge, test_idempotency_keys_hold_across_nodes, test_redis_stalled, test_partition,
     test_pubsub_killed_and_lost_message, test_node_sigkill_restart,
     test_redis_restarted_empty, test_duplicate_node_id_refused,
     test_reuse_port])
