"""Leading-edge dispatch: a lone like after a quiet period goes out at once
(not at the next regular tick), while changes within a tick after a
dispatch are coalesced into one frame per subscriber. The same for the
batcher: a lone like is in the database long before flush_interval_ms.
Orderings are read from the server's own `seq`/`ts`, with margins of half
a (long) tick, not from tight wall-clock bounds."""
import http.client
import signal
import threading
import time

from lc import Server, cd, check, run, wait_for

TICK_MS = 2000


def test_lone_like_goes_out_at_once():
    with Server(tick_ms=TICK_MS) as s:
        ws = s.ws(["lone"])
        check(ws.recv()["type"] == "snapshot")
        sse = s.sse(["lone"])
        check(sse.event()[0] == "snapshot")
        s.settle(ticks=1)  # a quiet tick has passed
        sent_ms = time.time() * 1000
        s.like("lone")
        u1 = ws.recv()
        check(u1["type"] == "update" and u1["counts"]["lone"]["count"] == 1,
              u1)
        # dispatched off the regular schedule: well before a tick passed
        check(u1["ts"] - sent_ms < TICK_MS / 2, (u1["ts"], sent_ms))
        e = sse.event()
        check(e[2]["seq"] == u1["seq"], (e, u1))
        # a like right after a dispatch waits for the next tick
        s.like("lone")
        u2 = ws.recv()
        check(cd(u2["counts"]["lone"]) == {"count": 2, "delta": 1}, u2)
        check(u2["seq"] > u1["seq"], (u1, u2))
        check(u2["ts"] - u1["ts"] >= TICK_MS * 0.9, (u1["ts"], u2["ts"]))
        check(s.metric("livecount_dispatch_kicks_total") >= 1)
        ws.close()
        sse.close()


def test_burst_is_one_frame_per_subscriber():
    with Server(tick_ms=TICK_MS, workers=4) as s:
        subs = [s.ws(["burst"]) for _ in range(3)]
        for w in subs:
            check(w.recv()["type"] == "snapshot")
        s.settle(ticks=1)  # a quiet tick has passed
        # one batch of 1000 likes: one frame, delta 1000
        st, b = s.json("POST", "/v1/likes", [{"url": "burst", "n": 1}] * 1000)
        check(st == 200 and b["accepted"] == 1000, b)
        for w in subs:
            u = w.recv()
            check(cd(u["counts"]["burst"]) == {"count": 1000, "delta": 1000}, u)
        # 1000 single likes from 4 clients within one tick: the first goes
        # out at once (leading edge), the rest in the next tick. Quiet
        # first: a regular tick after the one that carried the batch.
        wait_for(s.seq, lambda q: q >= u["seq"] + 1, what="a quiet tick")

        def client():
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            for _ in range(250):
                c.request("POST", "/v1/likes?url=burst")
                c.getresponse().read()
            c.close()
        t0 = time.time()
        ts = [threading.Thread(target=client) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        within_tick = time.time() - t0 < TICK_MS / 1000 * 0.9
        for w in subs:
            frames = []
            while not frames or frames[-1]["counts"]["burst"]["count"] < 2000:
                frames.append(w.recv())
            check(frames[-1]["counts"]["burst"]["count"] == 2000, frames)
            check(sum(f["counts"]["burst"]["delta"] for f in frames) == 1000,
                  frames)
            if within_tick:
                check(len(frames) <= 2, [f["counts"] for f in frames])
            w.close()
        check(s.count("burst") == 2000)


def test_lone_like_persisted_at_once():
    # flush interval of a minute: without a leading edge nothing would be
    # written before the SIGKILL below
    with Server(tick_ms=100, flush_ms=60000) as s:
        s.settle()  # running steadily
        s.like("durable", n=3)
        # half the flush interval: only a leading-edge flush is this early
        s.wait_db("SELECT count FROM counts_v WHERE url='durable'", [(3,)],
                  timeout=30)
        s.stop(signal.SIGKILL)


def test_quiet_url_at_once_while_another_is_busy():
    """The leading edge is per URL: with likes on A arriving every few
    milliseconds (so the server dispatches all the time), a like on B goes
    out at once, while A's subscriber still gets at most a frame a tick and
    every count is exact."""
    with Server(tick_ms=TICK_MS, workers=2) as s:
        wa, wb = s.ws(["busy"]), s.ws(["quiet"])
        check(wa.recv()["type"] == "snapshot")
        check(wb.recv()["type"] == "snapshot")
        stop = threading.Event()
        sent = [0]

        def hammer():
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            while not stop.is_set():
                c.request("POST", "/v1/likes?url=busy")
                c.getresponse().read()
                sent[0] += 1
                time.sleep(0.002)
            c.close()
        t = threading.Thread(target=hammer)
        t.start()
        wa.until(lambda m: m["type"] == "update")  # A is busy now
        time.sleep(TICK_MS / 4000)  # well inside A's tick
        sent_ms = time.time() * 1000
        s.like("quiet")
        ub = wb.recv()
        check(cd(ub["counts"]["quiet"]) == {"count": 1, "delta": 1}, ub)
        check(ub["ts"] - sent_ms < TICK_MS / 2, (ub["ts"], sent_ms))
        time.sleep(TICK_MS * 2 / 1000)
        stop.set()
        t.join()
        frames = wa.until(lambda m: m["counts"]["busy"]["count"] == sent[0],
                          timeout=TICK_MS * 3 / 1000)
        ts = [m["ts"] for m in frames]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        check(all(g >= TICK_MS * 0.9 for g in gaps), gaps)
        check(s.count("busy") == sent[0] and s.count("quiet") == 1)
        print("     B out %.0f ms after its like while A took %d likes; A's "
              "frames %d ms apart at least" %
              (ub["ts"] - sent_ms, sent[0], min(gaps) if gaps else -1))


run([test_lone_like_goes_out_at_once, test_burst_is_one_frame_per_subscriber,
     test_lone_like_persisted_at_once,
     test_quiet_url_at_once_while_another_is_busy])
