#!/usr/bin/env python3
"""Keyed vs unkeyed likes in cluster mode with Redis 2 ms away (issue 20,
item 1). One node (--workers 1) talks to Redis through a proxy that delays
every byte 2 ms each way; --threads client threads (64) with keep-alive connections
send likes for 5 s without a key, then 5 s with a fresh Idempotency-Key
each, while another thread times GET /healthz every 20 ms. Prints the
rates and the /healthz p50/p99 of each phase, median of --runs runs.

  loadtest/cluster_keys_bench.py BUILD/livecount [--runs 3] [--delay-ms 2]
"""
import argparse
THREADS = 32
import http.client
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
sys.argv, _args = sys.argv[:1], sys.argv[1:]
if _args and not _args[0].startswith("-"):
    os.environ["LC_BIN"] = os.path.abspath(_args[0])
import lc  # noqa: E402
import socket  # noqa: E402


class ProxyProcess:
    """The delay proxy in its own process: the client threads here would
    otherwise starve it of the GIL and add their wait to Redis's."""

    def __init__(self, target_port, delay_s):
        rd, wr = os.pipe()
        self.pid = os.fork()
        if not self.pid:
            os.close(rd)
            p = lc.DelayProxy(target_port, delay_s)
            os.write(wr, b"%d\n" % p.port)
            while True:
                time.sleep(3600)
        os.close(wr)
        self.port = int(os.read(rd, 32))
        os.close(rd)

    def close(self):
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)


def phase(port, keyed, seconds, threads=None):
    threads = threads or THREADS
    stop = threading.Event()
    counts = [0] * threads
    lat = []

    def liker(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while not stop.is_set():
            h = {"Content-Length": "0"}
            if keyed:
                h["Idempotency-Key"] = "b-%d-%d-%d" % (os.getpid(), i, n)
            c.request("POST", "/v1/likes?url=bench", headers=h)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                n += 1
        counts[i] = n
        c.close()

    def health():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            t0 = time.perf_counter()
            c.request("GET", "/healthz")
            c.getresponse().read()
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.02)
        c.close()

    ts = [threading.Thread(target=liker, args=(i,)) for i in range(threads)]
    ts.append(threading.Thread(target=health))
    t0 = time.time()
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    el = time.time() - t0
    lat.sort()
    return (sum(counts) / el, lat[len(lat) // 2],
            lat[min(len(lat) - 1, int(len(lat) * 0.99))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delay-ms", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=64)
    a = ap.parse_args(_args)
    global THREADS
    THREADS = a.threads
    rows = []
    for _ in range(a.runs):
        with lc.Redis() as r:
            px = ProxyProcess(r.port, a.delay_ms / 1000)
            try:
                with lc.Server("--redis-url",
                               "redis://127.0.0.1:%d" % px.port,
                               "--node-id", "1", workers=1) as n:
                    while n.metric("livecount_cluster_link_up") != 1:
                        time.sleep(0.05)
                    u = phase(n.port, False, a.seconds)
                    k = phase(n.port, True, a.seconds)
                    time.sleep(0.5)
                    # keys that reached Redis (the others were decided
                    # by the node alone: no cross-node protection)
                    inr = r.cmd("EVAL", "return #redis.call('KEYS', "
                                "'lc:idem:*')", 0)
                    share = inr / max(1.0, k[0] * a.seconds)
                    rows.append(u + k + (share,))
                    print("run: unkeyed %.0f/s healthz p50 %.1f ms p99 %.1f"
                          " | keyed %.0f/s healthz p50 %.1f ms p99 %.1f"
                          " | keys in Redis %.0f%%" %
                          (u + k + (share * 100,)), flush=True)
            finally:
                px.close()
    med = [statistics.median(c) for c in zip(*rows)]
    print("median of %d: unkeyed %.0f/s (healthz p50 %.1f ms, p99 %.1f) | "
          "keyed %.0f/s (healthz p50 %.1f ms, p99 %.1f) | keys in Redis "
          "%.0f%% | keyed/unkeyed %.2f | load %.1f" %
          ((a.runs,) + tuple(med[:6]) + (med[6] * 100, med[3] / med[0],
                                         os.getloadavg()[0])))


main()
