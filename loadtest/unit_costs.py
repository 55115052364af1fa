#!/usr/bin/env python3
"""unit_costs.py: a single node's cost per unit of work (issue 23 item 1).

Every measurement starts a fresh `livecount --workers 2 --tick-ms 100` on a
free loopback port with a fresh database (as bench.sh does), drives one kind
of work with build/livecount-load (or a small Python client for idempotency
keys) and divides the server's CPU time (utime+stime from /proc/<pid>/stat,
all threads) or RSS growth by the units of work done. CPU per unit is much
less sensitive to the shared machine's noise than throughput.

  frame_ws, frame_sse   CPU per delivered frame: N subscribers on one URL,
                        100 likes/s for 10 s (server CPU / frames received)
  connect_ws, connect_sse  CPU per subscriber connect + snapshot + close, and
                        RSS per connected idle subscriber
  like_single           CPU per single-like POST (64 keep-alive connections)
  like_batch            CPU per like in 10k-item JSON batches
  url                   RSS per URL held (N fresh URLs, flushed), SQLite rows,
                        bytes and flush seconds per URL (insert, then update)
  idem                  RSS and CPU per idempotency key (keyed single likes
                        against the same likes without a key)

One JSON line per run, with the 1-min load average, is appended to --out.

  loadtest/unit_costs.py --runs 3 --out loadtest/unit_costs.jsonl [KIND...]
"""
import argparse
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(*a):
    print("unit_costs:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        p = f.read().rsplit(")", 1)[1].split()
    return (int(p[11]) + int(p[12])) / TCK


def rss_kb(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE // 1024


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/metrics")
        data = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in data.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


class Server:
    def __init__(self, a, work, extra=()):
        self.port = free_port()
        self.db = os.path.join(work, "lc.db")
        self.log = open(os.path.join(work, "server.log"), "w")
        self.p = subprocess.Popen(
            [a.livecount, "--bind", "127.0.0.1", "--port", str(self.port), "--db", self.db,
             "--workers", "2", "--tick-ms", "100", "--log-level", "warn",
             "--max-conns-per-ip", "0", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("server exited")
            try:
                metrics(self.port)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)

    @property
    def target(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def load(a, *args):
    r = subprocess.run([a.load, *args, "--quiet"], capture_output=True, text=True,
                       timeout=600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError("no summary: " + r.stderr[-300:])
    return json.loads(lines[-1])


def m_frame(a, srv, transport):
    subs = a.frame_subs
    d = load(a, "fanout", "--transport", transport, "--subscribers", str(subs), "--urls", "1",
             "--like-rate", "100", "--duration", "10", "--sources", "8",
             "--connect-timeout", "30", "--target", srv.target,
             "--server-pid", str(srv.p.pid))
    frames = d["msgs_per_s"]
    cpu_s = d["server_cpu_pct"] / 100.0
    return {"value": round(cpu_s / frames * 1e9), "unit": "ns/frame", "subscribers": subs,
            "frames_per_s": frames, "server_cpu_pct": d["server_cpu_pct"],
            "delivered": d.get("delivered_ratio"), "errors": d["errors"],
            "p50_ms": d["latency_ms"]["p50"], "p99_ms": d["latency_ms"]["p99"]}


def kernel_mem():
    """Kernel memory that grows with sockets: slab (struct sock, files, epoll
    items) plus TCP buffer pages, in bytes (machine-wide: noisy)."""
    slab = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                slab = int(line.split()[1]) * 1024
    tcp = 0
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                v = line.split()
                tcp = int(v[v.index("mem") + 1]) * PAGE
    return slab + tcp


def m_connect(a, srv, transport):
    subs = a.connect_subs
    k0 = kernel_mem()
    c0 = cpu(srv.p.pid)
    lp = subprocess.Popen([a.load, "fanout", "--transport", transport, "--subscribers",
                           str(subs), "--urls", "100", "--like-rate", "1", "--duration", "2",
                           "--sources", "8", "--connect-timeout", "60", "--target",
                           srv.target, "--server-pid", str(srv.p.pid), "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    while lp.poll() is None:  # kernel memory while every subscriber is connected
        peak = max(peak, kernel_mem() - k0)
        time.sleep(0.1)
    d = json.loads([ln for ln in lp.stdout.read().splitlines() if ln.startswith("{")][-1])
    time.sleep(1)  # closes processed
    c1 = cpu(srv.p.pid)
    like_cpu = d["server_cpu_pct"] / 100.0 * 2.0
    return {"value": round((c1 - c0 - like_cpu) / subs * 1e9), "unit": "ns/connect",
            "subscribers": subs, "cpu_s": round(c1 - c0, 3),
            "connect_per_s": d.get("connect_per_s"), "errors": d["errors"],
            "rss_per_subscriber_kb": d.get("server_rss_per_subscriber_kb"),
            # both ends of every connection are on this machine: / 2
            "kernel_bytes_per_socket": round(peak / (2 * subs))}


def m_like_single(a, srv):
    d = load(a, "ingest", "--connections", "64", "--duration", "10", "--urls", "1000",
             "--target", srv.target, "--server-pid", str(srv.p.pid))
    return {"value": round(d["server_cpu_pct"] / 100.0 / d["requests_per_s"] * 1e9),
            "unit": "ns/like", "requests_per_s": d["requests_per_s"],
            "server_cpu_pct": d["server_cpu_pct"], "counts_exact": d.get("counts_exact"),
            "errors": d["errors"]}


def m_like_batch(a, srv):
    d = load(a, "ingest", "--batch", "10000", "--connections", "4", "--duration", "10",
             "--urls", "10000", "--target", srv.target, "--server-pid", str(srv.p.pid))
    return {"value": round(d["server_cpu_pct"] / 100.0 / d["likes_per_s"] * 1e9),
            "unit": "ns/like", "likes_per_s": d["likes_per_s"],
            "server_cpu_pct": d["server_cpu_pct"], "counts_exact": d.get("counts_exact"),
            "errors": d["errors"]}


def wait_flushed(port, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = metrics(port)
        if m.get("livecount_dirty_urls", 1) == 0:
            return m
        time.sleep(0.2)
    raise RuntimeError("flush did not finish")


def db_bytes(path):
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def m_url(a, srv):
    n = a.url_count
    prefix = "https://capacity.livecount.test/u%d/" % os.getpid()
    time.sleep(1)
    r0, m0, b0 = rss_kb(srv.p.pid), metrics(srv.port), db_bytes(srv.db)
    c0 = cpu(srv.p.pid)
    load(a, "ingest", "--batch", "10000", "--connections", "4", "--duration", "120",
         "--requests", str(n // 10000), "--urls", str(n), "--url-prefix", prefix,
         "--no-verify", "--target", srv.target)
    m1 = wait_flushed(srv.port)
    time.sleep(1.5)
    r1, b1, c1 = rss_kb(srv.p.pid), db_bytes(srv.db), cpu(srv.p.pid)
    urls = m1.get("livecount_urls", 0) - m0.get("livecount_urls", 0)
    rows1 = m1["livecount_flush_rows_total"] - m0["livecount_flush_rows_total"]
    fsec1 = m1["livecount_flush_seconds_total"] - m0["livecount_flush_seconds_total"]
    # second round: the same URLs change again (updates, not inserts)
    load(a, "ingest", "--batch", "10000", "--connections", "4", "--duration", "120",
         "--requests", str(n // 10000), "--urls", str(n), "--url-prefix", prefix,
         "--no-verify", "--target", srv.target)
    m2 = wait_flushed(srv.port)
    time.sleep(1.5)
    b2, c2 = db_bytes(srv.db), cpu(srv.p.pid)
    rows2 = m2["livecount_flush_rows_total"] - m1["livecount_flush_rows_total"]
    fsec2 = m2["livecount_flush_seconds_total"] - m1["livecount_flush_seconds_total"]
    tables = {}
    con = sqlite3.connect("file:%s?mode=ro" % srv.db, uri=True, timeout=30)
    for (t,) in con.execute("select name from sqlite_master where type='table'"):
        tables[t] = con.execute('select count(*) from "%s"' % t).fetchone()[0]
    con.close()
    return {"value": round((r1 - r0) * 1024 / max(1, urls)), "unit": "B RSS/URL",
            "urls": urls, "rss_kb": [r0, r1],
            "flush_rows_per_url_insert": round(rows1 / max(1, urls), 3),
            "flush_rows_per_url_update": round(rows2 / max(1, urls), 3),
            "flush_us_per_url_insert": round(fsec1 / max(1, urls) * 1e6, 2),
            "flush_us_per_url_update": round(fsec2 / max(1, urls) * 1e6, 2),
            "db_bytes_per_url_insert": round((b1 - b0) / max(1, urls)),
            "db_bytes_growth_per_url_update": round((b2 - b1) / max(1, urls)),
            "cpu_ns_per_url_insert_incl_flush": round((c1 - c0) / max(1, urls) * 1e9),
            "cpu_ns_per_url_update_incl_flush": round((c2 - c1) / max(1, urls) * 1e9),
            "table_rows": tables}


def keyed_likes(port, n, keyed, tag):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = "/v1/likes?url=https%3A%2F%2Fcapacity.livecount.test%2Fidem"
    for i in range(n):
        h = {"Content-Length": "0"}
        if keyed:
            h["Idempotency-Key"] = "%s-%08d-0123456789abcdef0123456789abcdef" % (tag, i)
        c.request("POST", path, headers=h)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError("like: %d" % r.status)
    c.close()


def m_idem(a, srv):
    n = a.idem_keys
    tag = "k%d" % os.getpid()
    keyed_likes(srv.port, 2000, False, tag)  # warm: connection, URL, buffers
    time.sleep(1.5)
    r0, c0 = rss_kb(srv.p.pid), cpu(srv.p.pid)
    keyed_likes(srv.port, n, False, tag)
    time.sleep(1.5)
    r1, c1 = rss_kb(srv.p.pid), cpu(srv.p.pid)
    keyed_likes(srv.port, n, True, tag)
    m = wait_flushed(srv.port)
    time.sleep(2.5)
    r2, c2 = rss_kb(srv.p.pid), cpu(srv.p.pid)
    keys = m.get("livecount_idempotency_keys", 0)
    con = sqlite3.connect("file:%s?mode=ro" % srv.db, uri=True, timeout=30)
    pages = con.execute("pragma page_count").fetchone()[0] * con.execute(
        "pragma page_size").fetchone()[0]
    con.close()
    return {"value": round(((r2 - r1) - (r1 - r0)) * 1024 / max(1, keys)),
            "unit": "B RSS/key", "keys": keys, "rss_kb": [r0, r1, r2],
            "cpu_ns_per_like_unkeyed": round((c1 - c0) / n * 1e9),
            "cpu_ns_per_like_keyed": round((c2 - c1) / n * 1e9),
            "db_bytes_total": pages}


KINDS = {
    "frame_ws": lambda a, s: m_frame(a, s, "ws"),
    "frame_sse": lambda a, s: m_frame(a, s, "sse"),
    "connect_ws": lambda a, s: m_connect(a, s, "ws"),
    "connect_sse": lambda a, s: m_connect(a, s, "sse"),
    "like_single": m_like_single,
    "like_batch": m_like_batch,
    "url": m_url,
    "idem": m_idem,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kinds", nargs="*", default=list(KINDS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frame-subs", type=int, default=2000)
    ap.add_argument("--connect-subs", type=int, default=10000)
    ap.add_argument("--url-count", type=int, default=500000)
    ap.add_argument("--idem-keys", type=int, default=20000)
    ap.add_argument("--build", default=os.environ.get("LC_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--out", default=os.path.join(HERE, "unit_costs.jsonl"))
    a = ap.parse_args()
    a.livecount = os.path.join(a.build, "livecount")
    a.load = os.path.join(a.build, "livecount-load")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    for run in range(1, a.runs + 1):
        for kind in a.kinds:
            work = tempfile.mkdtemp(prefix="lc-unit-")
            la = loadavg()
            log("run %d: %s (load average %s)" % (run, kind, la))
            srv = None
            try:
                srv = Server(a, work)
                rec = KINDS[kind](a, srv)
            except Exception as e:
                log("  failed: %s" % e)
                continue
            finally:
                if srv:
                    srv.stop()
                shutil.rmtree(work, ignore_errors=True)
            rec.update(kind=kind, run=run, loadavg_start=la, loadavg_end=loadavg(),
                       commit=commit, date=time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                       server="--workers 2 --tick-ms 100")
            with open(a.out, "a") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")
            log("  %s %s" % (rec["value"], rec["unit"]))


if __name__ == "__main__":
    main()
