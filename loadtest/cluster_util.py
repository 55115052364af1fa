#!/usr/bin/env python3
"""Helpers for cluster_bench.sh (issue 11's cluster benchmarks).

  cluster_util.py proxy LISTEN_PORT TARGET_PORT
      A TCP proxy between a node and Redis. SIGUSR1 cuts it (every
      connection is shut down, new ones are accepted and closed at once),
      SIGUSR2 heals it. The same partition (lc.Proxy) as the ctest cluster
      test.
  cluster_util.py metrics PORT           /metrics as JSON {name: value}
  cluster_util.py wait-link PORT [S]     until livecount_cluster_link_up 1
  cluster_util.py redis-stats PORT       INFO stats + commandstats as JSON
  cluster_util.py sampler OUT PID...     every second: machine CPU busy %
      (from /proc/stat), and per pid RSS KB and open fds, as JSON lines
  cluster_util.py partition ...          one partition run (see --help)
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

# The one helper module of the tests (HTTP client, cut-able proxy, Redis).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
import lc  # noqa: E402


# ---- HTTP and the proxy: tests/integration/lc.py --------------------------

class Node(lc.Client):
    """A node over one keep-alive connection (retried when it breaks)."""

    def __init__(self, port):
        lc.Client.__init__(self, port, keepalive=True)

    def jget(self, path):
        st, data, _ = self.request("GET", path, timeout=30)
        if st != 200:
            raise RuntimeError("GET %s: %d %r" % (path, st, data[:200]))
        return json.loads(data)

    def total(self):
        return self.jget("/v1/stats")["totals"]["count"]

    def counts_of(self, urls):
        out = {}
        for i in range(0, len(urls), 50):
            q = "&".join("url=" + urllib.parse.quote(u, safe="")
                         for u in urls[i:i + 50])
            c = self.jget("/v1/counts?" + q)["counts"]
            for u in urls[i:i + 50]:
                out[u] = c[u]["count"]
        return out

    def like_batch(self, items):
        for i in range(0, len(items), 10000):
            chunk = items[i:i + 10000]
            st, data, _ = self.request("POST", "/v1/likes",
                                       [{"url": u, "n": n} for u, n in chunk],
                                       timeout=30)
            if st != 200:
                raise RuntimeError("batch: %d %r" % (st, data[:200]))
            acc = json.loads(data).get("accepted")
            if acc != len(chunk):
                raise RuntimeError("batch accepted %r" % acc)


def proxy(listen_port, target_port):
    """lc.Proxy on a fixed port, cut and healed by signals."""
    px = lc.Proxy(target_port, listen_port)

    def cut(*_):
        px.cut()
        print("proxy: cut %.3f" % time.time(), flush=True)

    def heal(*_):
        px.heal()
        print("proxy: healed %.3f" % time.time(), flush=True)

    signal.signal(signal.SIGUSR1, cut)
    signal.signal(signal.SIGUSR2, heal)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        signal.pause()


# ---- redis ----------------------------------------------------------------

def redis_stats(port):
    out = {}
    for section in ("stats", "commandstats", "cpu"):
        txt = subprocess.run(["redis-cli", "-p", str(port), "INFO", section],
                             capture_output=True, text=True, timeout=10).stdout
        for line in txt.splitlines():
            if ":" not in line or line.startswith("#"):
                continue
            k, v = line.split(":", 1)
            if k.startswith("cmdstat_"):
                calls = int(v.split(",")[0].split("=")[1])
                out[k] = calls
            else:
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
    return out


# ---- sampler --------------------------------------------------------------

def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v), idle


def proc_info(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/stat" % pid) as f:
            p = f.read().rsplit(")", 1)[1].split()
        cpu = (int(p[11]) + int(p[12])) / os.sysconf("SC_CLK_TCK")
        return rss, fds, cpu
    except OSError:
        return None, None, None


def sampler(out, pids):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    t0, i0 = cpu_times()
    with open(out, "w") as f:
        while True:
            time.sleep(1)
            t1, i1 = cpu_times()
            busy = 100.0 * ((t1 - t0) - (i1 - i0)) / max(1, t1 - t0)
            t0, i0 = t1, i1
            rec = {"t": time.time(), "busy_pct": round(busy, 1),
                   "ncpu": os.cpu_count(), "procs": {}}
            for p in pids:
                rss, fds, cpu = proc_info(p)
                rec["procs"][p] = {"rss_kb": rss, "fds": fds, "cpu_s": cpu}
            f.write(json.dumps(rec) + "\n")
            f.flush()


# ---- partition run ----------------------------------------------------------

def wait_link(port, want, timeout):
    c = Node(port)
    try:
        lc.wait_for(lambda: c.metrics().get("livecount_cluster_link_up"),
                    lambda v: v == want, timeout, interval=0.01,
                    errors=(Exception,))
        return True
    except AssertionError:
        return False


def partition(a):
    A, B = Node(a.a), Node(a.b)
    tag = "%d-%d" % (os.getpid(), int(time.time() * 1000))
    a_urls = ["https://part.livecount.test/%s/a/%d" % (tag, i)
              for i in range(a.urls)]
    # B likes b_urls URLs: half of them also liked on A, half its own.
    nb = a.b_urls
    b_urls = a_urls[: nb // 2] + ["https://part.livecount.test/%s/b/%d" % (tag, i)
                                  for i in range(nb - nb // 2)]
    res = {"urls_a": a.urls, "urls_b": nb, "cut_s": a.cut_s}
    for c, name in ((A, "a"), (B, "b")):
        if not wait_link(c.port, 1, 30):
            raise RuntimeError("node %s link not up before the cut" % name)
    base_a, base_b = A.total(), B.total()
    if base_a != base_b:
        # Should not happen: the previous run ended converged.
        try:
            base_a, base_b = lc.wait_for(lambda: (A.total(), B.total()),
                                         lambda t: t[0] == t[1], 10,
                                         what="equal totals")
        except AssertionError:
            base_a, base_b = A.total(), B.total()
    res["base_a"], res["base_b"] = base_a, base_b
    m0a, m0b = A.metrics(), B.metrics()
    r0 = redis_stats(a.redis_port) if a.redis_port else {}
    t_cut = time.time()
    os.kill(a.proxy_pid, signal.SIGUSR1)
    res["a_down_after_ms"] = None
    if wait_link(a.a, 0, 10):
        res["a_down_after_ms"] = round((time.time() - t_cut) * 1000, 1)
    # Likes on both sides of the cut, in 10k-item JSON batches.
    t = time.time()
    A.like_batch([(u, 1) for u in a_urls])
    res["a_post_s"] = round(time.time() - t, 3)
    B.like_batch([(u, 1) for u in b_urls])
    A.settle()  # merged: each side's own view
    B.settle()
    res["during_cut_a"] = A.total() - base_a
    res["during_cut_b"] = B.total() - base_b
    res["during_cut_a_link"] = A.metrics().get("livecount_cluster_link_up")
    while time.time() < t_cut + a.cut_s:
        time.sleep(0.01)
    expected = base_a + a.urls + nb
    t_heal = time.time()
    os.kill(a.proxy_pid, signal.SIGUSR2)
    done = {}
    link_up_ms = None
    deadline = t_heal + a.timeout
    while len(done) < 2 and time.time() < deadline:
        now = time.time()
        for c, name in ((A, "a"), (B, "b")):
            if name in done:
                continue
            try:
                if c.total() == expected:
                    done[name] = round((time.time() - t_heal) * 1000, 1)
            except Exception:
                pass
        if link_up_ms is None:
            try:
                if A.metrics().get("livecount_cluster_link_up") == 1:
                    link_up_ms = round((time.time() - t_heal) * 1000, 1)
            except Exception:
                pass
        time.sleep(max(0, 0.01 - (time.time() - now)))
    # The totals can be exact before A's link is declared up (its command
    # connection pushes while the subscriber connection is still backing
    # off, and the resync completes after the counts match): wait for the
    # link and its resync before the final /metrics read.
    while link_up_ms is None and time.time() < deadline:
        try:
            if A.metrics().get("livecount_cluster_link_up") == 1:
                link_up_ms = round((time.time() - t_heal) * 1000, 1)
        except Exception:
            pass
        time.sleep(0.01)
    time.sleep(0.5)
    res["a_link_up_after_heal_ms"] = link_up_ms
    res["converged_a_ms"] = done.get("a")
    res["converged_b_ms"] = done.get("b")
    res["converged_ms"] = max(done.values()) if len(done) == 2 else None
    res["expected_total"] = expected
    res["final_total_a"], res["final_total_b"] = A.total(), B.total()
    # Exact per URL on both nodes.
    exp = {u: 1 for u in a_urls}
    for u in b_urls:
        exp[u] = exp.get(u, 0) + 1
    allu = list(exp)
    bad = {}
    for c, name in ((A, "a"), (B, "b")):
        got = c.counts_of(allu)
        wrong = [u for u in allu if got[u] != exp[u]]
        bad[name] = len(wrong)
        if wrong:
            res["example_wrong_" + name] = [(u, got[u], exp[u]) for u in wrong[:3]]
    res["urls_wrong_a"], res["urls_wrong_b"] = bad["a"], bad["b"]
    res["exact"] = bad["a"] == 0 and bad["b"] == 0 and res["converged_ms"] is not None
    m1a, m1b = A.metrics(), B.metrics()
    if a.redis_port:
        r1 = redis_stats(a.redis_port)
        for k in ("client_output_buffer_limit_disconnections", "total_commands_processed",
                  "total_net_input_bytes", "total_net_output_bytes", "total_connections_received"):
            if k in r1:
                res["redis_" + k] = r1[k] - r0.get(k, 0)
    for m0, m1, name in ((m0a, m1a, "a"), (m0b, m1b, "b")):
        res["resyncs_" + name] = m1.get("livecount_cluster_resyncs_total", 0) - \
            m0.get("livecount_cluster_resyncs_total", 0)
        res["resync_last_ms_" + name] = m1.get("livecount_cluster_resync_last_milliseconds")
        res["errors_" + name] = m1.get("livecount_cluster_errors_total", 0) - \
            m0.get("livecount_cluster_errors_total", 0)
    print(json.dumps(res))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    cmd = sys.argv[1]
    if cmd == "proxy":
        proxy(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "metrics":
        print(json.dumps(Node(int(sys.argv[2])).metrics()))
    elif cmd == "wait-link":
        ok = wait_link(int(sys.argv[2]), 1,
                       float(sys.argv[3]) if len(sys.argv) > 3 else 30)
        sys.exit(0 if ok else 1)
    elif cmd == "redis-stats":
        print(json.dumps(redis_stats(int(sys.argv[2]))))
    elif cmd == "sampler":
        sampler(sys.argv[2], [int(p) for p in sys.argv[3:]])
    elif cmd == "partition":
        p = argparse.ArgumentParser(prog="cluster_util.py partition")
        p.add_argument("--a", type=int, required=True, help="node A port (behind the proxy)")
        p.add_argument("--b", type=int, required=True, help="node B port")
        p.add_argument("--proxy-pid", type=int, required=True)
        p.add_argument("--urls", type=int, default=1000, help="URLs liked on A during the cut")
        p.add_argument("--b-urls", type=int, default=1000, help="URLs liked on B during the cut")
        p.add_argument("--cut-s", type=float, default=10)
        p.add_argument("--timeout", type=float, default=120)
        p.add_argument("--redis-port", type=int, default=0, help="for INFO stats deltas")
        partition(p.parse_args(sys.argv[2:]))
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
