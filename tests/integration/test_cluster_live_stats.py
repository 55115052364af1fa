"""Live stats across a cluster (issue 19 item 6), with a real redis-server
on loopback: views exact cluster-wide through the per-node slots (a
partition, a SIGKILLed and restarted node), and "watching now" summed over
the live nodes: WebSocket on one node and SSE on another both see 2; a
clean stop withdraws a node's watchers at once (its " bye"); a SIGKILLed
node's watchers stop counting after its heartbeat goes silent; a restarted
node (new boot) replaces its old share instead of adding to it."""
import signal
import time
import urllib.parse

from lc import (Proxy, Redis, Server, check, node_totals, run,
                wait_for)


def node(redis, node_id, *args, url=None, **kw):
    kw.setdefault("workers", 1)
    return Server("--redis-url", url or redis.url(), "--node-id",
                  str(node_id), "--watching-interval-ms", "200", *args, **kw)


def link_up(n):
    return n.metric("livecount_cluster_link_up") == 1


def view(n, url, k=1):
    st, b = n.json("POST", "/v1/views?url=%s&n=%d" %
                   (urllib.parse.quote(url, safe=""), k))
    assert st == 200, (st, b)
    return b["views"]


def views(n, url):
    return n.counts(url)[url]["views"]


def watching(n, url):
    return n.counts(url)[url]["watching"]


def converge(nodes, fn, url, expected, timeout=None):
    wait_for(lambda: [fn(n, url) for n in nodes],
             lambda got: all(g == expected for g in got), timeout=timeout,
             what="%s of %s == %d on every node" % (fn.__name__, url,
                                                    expected))


def test_views_exact_after_partition_and_restart():
    with Redis() as r:
        px = Proxy(r.port)
        try:
            with node(r, 1, url=r.url(px.port), flush_ms=100) as a, \
                    node(r, 2) as b:
                for n in (a, b):
                    wait_for(lambda: link_up(n), what="link up")
                view(a, "v", 10)
                b.like("v", n=2)
                converge([a, b], views, "v", 10)
                converge([a, b], lambda n, u: n.count(u), "v", 2)
                px.cut()
                wait_for(lambda: not link_up(a), what="link down on a")
                na = nb = 0
                t_end = time.time() + 4
                while time.time() < t_end:
                    view(a, "v")
                    view(b, "v", 3)
                    na += 1
                    nb += 3
                    time.sleep(0.05)
                # each side shows its own views during the cut
                check(views(a, "v") == 10 + na, (views(a, "v"), na))
                check(views(b, "v") == 10 + nb, (views(b, "v"), nb))
                px.heal()
                converge([a, b], views, "v", 10 + na + nb)
                # every node's own views are in Redis, written with ZADD GT
                check(node_totals(r, "v")["1:v"] == 10 + na)
                check(node_totals(r, "v")["2:v"] == nb)
                total = 10 + na + nb
                # SIGKILLed once flushed, restarted: no view counted twice
                a.wait_db("SELECT node, views FROM node_slots_v WHERE url = ?"
                          " ORDER BY node", [(1, 10 + na), (2, nb)], "v")
                a.stop(signal.SIGKILL)
                view(b, "v", 5)
                a.start()
                wait_for(lambda: link_up(a), what="link up after restart")
                converge([a, b], views, "v", total + 5)
                view(a, "v")
                converge([a, b], views, "v", total + 6)
                check(a.count("v") == 2 and b.count("v") == 2)
        finally:
            px.close()


def test_watching_summed_across_nodes():
    with Redis() as r, node(r, 1) as a, node(r, 2) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        ws = a.ws(["w"], all_updates=True)
        check(ws.recv()["type"] == "snapshot")
        sse = b.sse(["w"], all_updates=True)
        # both figures: the count's API and the subscribers' frames
        converge([a, b], watching, "w", 2)
        ws.until(lambda m: m.get("type") == "update" and
                 m["counts"].get("w", {}).get("watching") == 2)

        def sse_sees(k):
            def pred(ev):
                d = ev[2] if isinstance(ev[2], dict) else {}
                c = d.get("counts", {}).get("w")  # an update's entry
                return isinstance(c, dict) and c.get("watching") == k
            return pred
        sse.until(sse_sees(2))
        # a second tab on b counts too; the top list is cluster-wide
        ws2 = b.ws(["w"])
        converge([a, b], watching, "w", 3)
        # (the top list carries the figure last pushed: one interval late)
        wait_for(lambda: a.json("GET", "/v1/top?by=watching")[1]["top"],
                 lambda t: [(x["url"], x["watching"]) for x in t] ==
                 [("w", 3)], what="w watched 3 times in a's top list")
        ws2.close()
        ws.close()
        converge([a, b], watching, "w", 1)
        sse.until(sse_sees(1))
        sse.close()
        converge([a, b], watching, "w", 0)
        # nobody watches it any more, nobody liked it: freed on both
        # nodes, as on one node
        wait_for(lambda: a.json("GET", "/v1/top?by=watching")[1]["top"],
                 lambda t: t == [], what="nobody watching on a")
        for n in (a, b):
            wait_for(lambda: n.stats()["urls"], lambda u: u == 0,
                     what="'w' freed on port %d" % n.port)
        # watched on b only: a holds it while b's watcher lasts
        ws = b.ws(["only-b"])
        converge([a, b], watching, "only-b", 1)
        n_a = a.stats()["urls"]
        a.settle(ticks=4)
        check(a.stats()["urls"] == n_a == 1 and watching(a, "only-b") == 1)
        ws.close()
        for n in (a, b):
            wait_for(lambda: n.stats()["urls"], lambda u: u == 0,
                     what="'only-b' freed on port %d" % n.port)


def test_clean_stop_withdraws_at_once():
    with Redis() as r, node(r, 1) as a, node(r, 2) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        subs = [a.ws(["c"]) for _ in range(3)]
        converge([a, b], watching, "c", 3)
        t0 = time.time()
        a.stop(signal.SIGTERM)
        wait_for(lambda: watching(b, "c"), lambda w: w == 0,
                 what="a's watchers withdrawn on b")
        took = time.time() - t0
        print("clean stop: watchers withdrawn on b after %.2f s" % took)
        # "at once": its bye, not the silence after which a node's
        # watchers are dropped (6 s)
        check(took < 5, took)
        for s in subs:
            try:
                s.close()
            except OSError:
                pass


def test_sigkilled_node_stops_counting_and_restart_not_twice():
    with Redis() as r, node(r, 1) as a, node(r, 2) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        subs = [a.ws(["k"]) for _ in range(2)]
        mine = b.sse(["k"])
        converge([a, b], watching, "k", 3)
        t0 = time.time()
        a.stop(signal.SIGKILL)
        wait_for(lambda: watching(b, "k"), lambda w: w == 1, timeout=30,
                 what="a's watchers gone on b")
        print("SIGKILL: watchers gone on b after %.2f s" % (time.time() - t0))
        for s in subs:
            try:
                s.close()
            except OSError:
                pass
        # restarted at once, before b would drop its share: the new run's
        # share replaces the old one
        a.start()
        wait_for(lambda: link_up(a), what="link up after restart")
        subs = [a.ws(["k"])]
        b2 = b.ws(["k"])
        converge([a, b], watching, "k", 3)
        a.stop(signal.SIGKILL)
        a.start()
        wait_for(lambda: link_up(a), what="link up after restart")
        subs = [a.ws(["k"])]
        converge([a, b], watching, "k", 3)
        # the old run's share (1) never comes back on top: still 3 past
        # the silence after which a dead run's share would be dropped
        deadline = time.time() + 7
        while time.time() < deadline:
            check(watching(b, "k") == 3 and watching(a, "k") == 3,
                  (watching(a, "k"), watching(b, "k")))
            time.sleep(0.2)
        for s in subs + [b2]:
            s.close()
        mine.close()
        converge([a, b], watching, "k", 0)


def test_another_version_is_ignored_without_resyncing():
    with Redis() as r, node(r, 1) as a:
        wait_for(lambda: link_up(a), what="link up")
        resyncs = a.metric("livecount_cluster_resyncs_total")
        for i in range(5):  # what nodes of the previous versions send
            r.cmd("PUBLISH", "lc:changes",
                  "lc2 9 00000000000000aa %d\n9 5 0 0 - old\n" % (i + 1))
            r.cmd("PUBLISH", "lc:changes",
                  "lc1 8 00000000000000aa %d\n8 5 0 old\n" % (i + 1))
        r.cmd("PUBLISH", "lc:changes",
              "lc3 9 00000000000000bb 1\n9.0000abcd 2 0 3 - new\n")
        wait_for(lambda: views(a, "new"), lambda v: v == 3,
                 what="the lc3 line merged")
        check(a.count("old") == 0)
        check(a.metric("livecount_cluster_resyncs_total") == resyncs)
        check(a.logtext().count("speaks lc") == 1, a.logtext())


if __name__ == "__main__":
    run([test_views_exact_after_partition_and_restart,
         test_watching_summed_across_nodes,
         test_clean_stop_withdraws_at_once,
         test_sigkilled_node_stops_counting_and_restart_not_twice,
         test_another_version_is_ignored_without_resyncing])
