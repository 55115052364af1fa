"""Live stats beyond likes (issue 19): views (a second counter that only
grows) on every form a like has, and "watching now" (live subscriptions
per URL) pushed at most once per watching_interval_ms; where they show
(counts, updates, snapshots, top, history, stats, metrics); the database
keeps them across a restart and upgrades a version-3 file in place; a
connect storm costs each early subscriber about a frame a second."""
import json
import os
import sqlite3
import tempfile
import time
import urllib.parse

from lc import WS, Server, check, run, wait_for

V = "https://example.com/video"


def q(url):
    return urllib.parse.quote(url, safe="")


def test_views_every_form_and_errors():
    with Server() as s:
        st, b = s.json("POST", "/v1/views?url=" + q(V))
        check(st == 200 and b == {"url": V, "views": 1}, (st, b))
        st, b = s.json("POST", "/v1/views?url=%s&n=9" % q(V))
        check(st == 200 and b["views"] == 10, b)
        st, b = s.json("POST", "/v1/views", {"url": V, "n": 5})
        check(st == 200 and b["views"] == 15, b)
        st, b = s.json("POST", "/v1/views", [{"url": V, "n": 2},
                                              {"url": "other", "n": 3}])
        check(st == 200 and b == {"accepted": 2}, b)
        # bad input: 400, nothing counted
        for path, body in (("/v1/views?url=%s&n=0" % q(V), None),
                           ("/v1/views?url=%s&n=-1" % q(V), None),
                           ("/v1/views?url=%s&n=1000001" % q(V), None),
                           ("/v1/views", {"url": V, "n": 0}),
                           ("/v1/views", {"url": V, "n": -3}),
                           ("/v1/views", [{"url": V, "n": 4},
                                          {"url": V, "n": -1}])):
            st, b = s.json("POST", path, body)
            check(st == 400 and b["error"] == "bad_n", (path, body, st, b))
        st, b = s.json("POST", "/v1/views", [{"url": V, "n": 4},
                                              {"url": V, "n": -1}])
        check("item 1" in b["message"], b)
        st, b = s.json("DELETE", "/v1/views?url=" + q(V))
        check(st == 405, (st, b))
        st, b = s.json("POST", "/v1/views?url=%s&bogus=1" % q(V))
        check(st == 400 and "bogus" in b["message"], b)
        # retried with a key: counted once, first answer again
        h = {"Idempotency-Key": "view-1"}
        st, b1, r1 = s.request("POST", "/v1/views?url=" + q(V), headers=h)
        st, b2, r2 = s.request("POST", "/v1/views?url=" + q(V), headers=h)
        check(b1 == b2 and r2.getheader("idempotent-replayed") == "true",
              (b1, b2))
        # the same key on a like is another request (its own key space)
        st, b = s.json("POST", "/v1/likes?url=" + q(V), headers=h)
        check(st == 200 and b["count"] == 1, b)
        c = s.counts(V, "other")
        check(c[V]["views"] == 18 and c[V]["count"] == 1, c)
        check(c["other"]["views"] == 3 and c["other"]["count"] == 0, c)
        # WebSocket view op, acknowledged when it has an id
        w = s.ws()
        w.send({"op": "view", "url": V, "n": 2, "id": "wv1"})
        ack = w.until(lambda m: m["type"] == "viewed")[-1]
        check(ack == {"type": "viewed", "id": "wv1", "url": V, "views": 20},
              ack)
        w.send({"op": "view", "url": V, "n": 0})
        err = w.until(lambda m: m["type"] == "error")[-1]
        check(err["error"] == "bad_n", err)
        w.close()
        stats = wait_for(lambda: s.json("GET", "/v1/stats")[1],
                         lambda b: b["totals"]["views"] == 23,
                         what="all-time views merged")
        check(stats["views_total"] == 23, stats)
        check(s.metric("livecount_views_total") == 23)


def test_views_need_the_token_and_origin():
    tok = "0123456789abcdef-views"
    with Server("--write-token", tok, "--allowed-origins",
                "https://good.example") as s:
        st, b = s.json("POST", "/v1/views?url=x")
        check(st == 401, (st, b))
        st, b = s.json("POST", "/v1/views?url=x",
                       headers={"Authorization": "Bearer " + tok,
                                "Origin": "https://evil.example"})
        check(st == 403, (st, b))
        st, b = s.json("POST", "/v1/views?url=x",
                       headers={"Authorization": "Bearer " + tok})
        check(st == 200 and b["views"] == 1, (st, b))


def watching(m, url):
    return m["counts"][url]["watching"]


def test_watching_joins_and_leaves():
    with Server("--watching-interval-ms", "300") as s:
        w1 = s.ws([V], all_updates=True)
        snap = w1.recv()
        check(snap["stats"][V] == {"count": 0, "views": 0, "watching": 0} or
              snap["stats"][V]["watching"] in (0, 1), snap)
        w1.until(lambda m: m["type"] == "update" and watching(m, V) == 1)
        e = s.sse([V], all_updates=True)
        check(e.event()[0] == "snapshot")
        w1.until(lambda m: m["type"] == "update" and watching(m, V) == 2)
        e.until(lambda ev: ev[0] == "update" and
                ev[2]["counts"][V]["watching"] == 2)
        # one connection on two URLs counts once for each
        w2 = s.ws([V, "other"], all_updates=True)
        w1.until(lambda m: m["type"] == "update" and watching(m, V) == 3)
        check(s.counts(V)[V]["watching"] == 3)
        wait_for(lambda: [(t["url"], t["watching"]) for t in
                          s.json("GET", "/v1/top?by=watching")[1]["top"]],
                 lambda t: t == [(V, 3), ("other", 1)],
                 what="top by watching")
        # leaving: counted down within 2 intervals (plus a tick)
        t0 = time.time()
        w2.close()
        e.close()
        w1.until(lambda m: m["type"] == "update" and watching(m, V) == 1)
        check(time.time() - t0 < 2 * 0.3 + 1.0, time.time() - t0)
        wait_for(lambda: s.counts("other")["other"]["watching"],
                 lambda n: n == 0, what="other watched by nobody")
        # a like's update carries all three figures
        s.json("POST", "/v1/views?url=%s&n=4" % q(V))
        s.like(V)
        m = w1.until(lambda m: m["type"] == "update" and
                     m["counts"][V]["count"] == 1 and
                     m["counts"][V]["views"] == 4)[-1]
        check(set(m["counts"][V]) == {"count", "delta", "views", "watching"},
              m)
        check(m["counts"][V]["watching"] == 1, m)
        w1.close()
        # the URL only watched is freed once nobody watches it
        wait_for(lambda: s.json("GET", "/v1/top?by=watching")[1]["top"],
                 lambda t: t == [], what="nobody watching")


def test_top_by_and_history():
    with Server(flush_ms=100) as s:
        s.json("POST", "/v1/likes", [{"url": "a", "n": 5},
                                     {"url": "b", "n": 1}])
        s.json("POST", "/v1/views", [{"url": "a", "n": 1},
                                     {"url": "b", "n": 50},
                                     {"url": "c", "n": 7}])

        def top(by):
            st, b = s.json("GET", "/v1/top?by=" + by)
            check(st == 200, b)
            return [(t["url"], t["count"], t["views"]) for t in b["top"]]
        wait_for(lambda: top("views"),
                 lambda t: t == [("b", 1, 50), ("c", 0, 7), ("a", 5, 1)],
                 what="top by views")
        check(top("count") == [("a", 5, 1), ("b", 1, 50)], top("count"))
        check(top("count") == [(u, c, v) for u, c, v in
                               top("count")])  # default by=count too
        st, b = s.json("GET", "/v1/top")
        check([t["url"] for t in b["top"]] == ["a", "b"], b)
        st, b = s.json("GET", "/v1/top?by=likes")
        check(st == 400 and b["error"] == "bad_request", b)
        w = s.ws(["b"])
        w.recv()
        s.json("POST", "/v1/views?url=b&n=2")

        def points():
            st, h = s.json("GET", "/v1/history?url=b")
            return h["points"]
        p = wait_for(points, lambda p: p and p[-1]["views"] == 52 and
                     p[-1]["watching_max"] >= 1, what="b's minute written")
        check(set(p[-1]) == {"t", "likes", "unlikes", "views",
                             "watching_max"}, p)
        w.close()
        # the database, as README's queries read it
        rows = s.db_rows("SELECT url, views FROM counts_v ORDER BY url")
        wait_for(lambda: s.db_rows("SELECT url, views FROM counts_v "
                                   "ORDER BY url"),
                 lambda r: r == [("a", 1), ("b", 52), ("c", 7)],
                 what="views in counts_v")
        rows = s.db_rows("SELECT max(watching_max) FROM history_v "
                         "WHERE url = 'b'")
        check(rows[0][0] >= 1, rows)
        s.restart()  # views come back from the database
        c = s.counts("a", "b", "c")
        check((c["a"]["views"], c["b"]["views"], c["c"]["views"]) ==
              (1, 52, 7), c)
        st, stats = s.json("GET", "/v1/stats")
        check(stats["totals"]["views"] == 60, stats)


def test_version_3_database_upgrades_in_place():
    d = tempfile.mkdtemp(prefix="lc-v3-")
    path = os.path.join(d, "v3.db")
    db = sqlite3.connect(path)
    db.executescript("""
PRAGMA application_id = 1279480908;
CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE);
CREATE TABLE counters (url_id INTEGER PRIMARY KEY REFERENCES urls(id),
  likes INTEGER NOT NULL, unlikes INTEGER NOT NULL,
  updated_at INTEGER NOT NULL);
CREATE TABLE likes_minute (url_id INTEGER NOT NULL REFERENCES urls(id),
  minute INTEGER NOT NULL, likes INTEGER NOT NULL, unlikes INTEGER NOT NULL,
  PRIMARY KEY (url_id, minute)) WITHOUT ROWID;
CREATE VIEW counts_v AS SELECT u.url, c.likes - c.unlikes AS count, c.likes,
  c.unlikes, strftime('%Y-%m-%d %H:%M:%f', c.updated_at / 1000.0,
  'unixepoch') AS updated_at FROM counters c JOIN urls u ON u.id = c.url_id;
CREATE VIEW history_v AS SELECT u.url, datetime(m.minute, 'unixepoch')
  AS minute, m.likes, m.unlikes, m.likes - m.unlikes AS net
  FROM likes_minute m JOIN urls u ON u.id = m.url_id;
CREATE TABLE node_slots (url_id INTEGER NOT NULL REFERENCES urls(id),
  node INTEGER NOT NULL, likes INTEGER NOT NULL, unlikes INTEGER NOT NULL,
  PRIMARY KEY (url_id, node)) WITHOUT ROWID;
CREATE VIEW node_slots_v AS SELECT u.url, s.node, s.likes - s.unlikes
  AS count, s.likes, s.unlikes FROM node_slots s JOIN urls u
  ON u.id = s.url_id;
CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, status INTEGER NOT NULL,
  body TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
INSERT INTO urls VALUES (1, 'old');
INSERT INTO counters VALUES (1, 12, 2, 1700000000000);
INSERT INTO likes_minute VALUES (1, 1700000000 / 60 * 60, 12, 2);
PRAGMA user_version = 3;
""")
    db.close()
    with Server(db=path) as s:
        c = s.counts("old")["old"]
        check((c["count"], c["likes"], c["views"]) == (10, 12, 0), c)
        st, b = s.json("POST", "/v1/views?url=old&n=3")
        check(b["views"] == 3, b)
        wait_for(lambda: s.db_rows("SELECT views FROM counts_v"),
                 lambda r: r == [(3,)], what="views written")
        check(s.db_rows("PRAGMA user_version")[0][0] >= 5)  # views came in 5
        check(s.db_rows("SELECT likes, views, watching_max FROM history_v "
                        "ORDER BY minute LIMIT 1") == [(12, 0, 0)])


def test_connect_storm_is_about_a_frame_a_second():
    n, interval = 1000, 1000
    with Server("--watching-interval-ms", str(interval),
                "--max-conns-per-ip", "0") as s:
        early = [s.ws(["storm"], all_updates=True) for _ in range(5)]
        for w in early:
            w.recv()
        t0 = time.time()
        rest = [WS(s.port, ["storm"], all_updates=True) for _ in range(n)]
        burst = time.time() - t0
        # everyone counted, within two intervals after the burst
        m = early[0].until(lambda m: m["type"] == "update" and
                           m["counts"]["storm"]["watching"] == n + 5,
                           timeout=10)
        frames = [len([x for x in m if x["type"] == "update"])]
        for w in early[1:]:
            frames.append(len([x for x in w.until(
                lambda m: m["type"] == "update" and
                m["counts"]["storm"]["watching"] == n + 5, timeout=10)
                if x["type"] == "update"]))
        # at most one frame per interval over the burst (+ first and last)
        bound = burst * 1000 / interval + 3
        check(max(frames) <= bound, (frames, burst))
        print("     %d connects in %.2f s: %s frames to each early "
              "subscriber (bound %.1f)" % (n, burst, frames, bound))
        for w in early + rest:
            w.sock.close()


if __name__ == "__main__":
    run([test_views_every_form_and_errors,
         test_views_need_the_token_and_origin,
         test_watching_joins_and_leaves, test_top_by_and_history,
         test_version_3_database_upgrades_in_place,
         test_connect_storm_is_about_a_frame_a_second])
