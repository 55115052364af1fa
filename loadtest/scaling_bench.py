#!/usr/bin/env python3
"""scaling_bench.py: the cluster as it is, at 2..16 nodes and a fixed total
change rate (issue 23 item 2).

One run = a fresh redis-server, N "writer" nodes that take likes, one
"observer" node that takes nothing (its CPU is the pure cost of hearing and
merging every other node's changes) and one "viewer" node holding a few
WebSocket subscribers whose likes go to writer 1 (cross-node like->visible).
All nodes: --workers 1 --tick-ms 100, cluster mode on one Redis.

Each writer gets C = RATE/N likes/s as JSON batches over C/10 URLs of its
own, round robin, so that each of its URLs changes about once per tick:
changed URLs/s across the cluster ~= RATE. The rate actually reached is
measured (Redis ZADD calls, the nodes' livecount_cluster_pushed_urls_total).

Measured over a window after a warm-up, from /proc/<pid>/stat (CPU time),
Redis INFO (commands, net bytes, CPU), node /metrics; with the 1-min load
average at the start and the machine's busy share. One JSON line per run
goes to --out (appended).

  loadtest/scaling_bench.py --nodes 2,4,8,16 --rates 0,1000,10000,50000 \
      --runs 3 --out loadtest/scaling_results.jsonl
  loadtest/scaling_bench.py --hot --nodes 2,4,8,16 --rates 1000 --runs 3 \
      --out loadtest/scaling_hot.jsonl     # one URL liked on every node
"""
import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("scaling_bench:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu(pid):
    """utime+stime of a process in seconds, None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            p = f.read().rsplit(")", 1)[1].split()
        return (int(p[11]) + int(p[12])) / TCK
    except OSError:
        return None


def proc_rss_kb(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return None


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def http_get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def metrics(port):
    out = {}
    try:
        st, data = http_get(port, "/metrics")
    except (OSError, http.client.HTTPException):
        return out
    for line in data.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        k, _, v = line.rpartition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def redis_info(port):
    out = {}
    txt = subprocess.run(["redis-cli", "-p", str(port), "INFO", "all"],
                         capture_output=True, text=True, timeout=10).stdout
    for line in txt.splitlines():
        if ":" not in line or line.startswith("#"):
            continue
        k, v = line.split(":", 1)
        v = v.strip()
        if k.startswith("cmdstat_"):
            f = dict(x.split("=") for x in v.split(","))
            out[k] = int(f["calls"])
            out[k + "_usec"] = int(f["usec"])
        else:
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


class Procs:
    def __init__(self):
        self.pids = []

    def spawn(self, argv, log_path, **kw):
        f = open(log_path, "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, **kw)
        f.close()
        self.pids.append(p)
        return p

    def stop(self):
        for p in self.pids:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 15
        for p in self.pids:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.pids = []


def wait_ready(port, proc, cluster, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("node on %d exited" % port)
        m = metrics(port)
        if m and (not cluster or m.get("livecount_cluster_link_up") == 1):
            return
        time.sleep(0.1)
    raise RuntimeError("node on %d not ready" % port)


NODE_KEYS = ("livecount_cluster_pushed_urls_total",
             "livecount_cluster_messages_sent_total",
             "livecount_cluster_messages_received_total",
             "livecount_cluster_received_bytes_total",
             "livecount_cluster_sent_bytes_total",
             "livecount_cluster_redis_commands_total",
             "livecount_cluster_remote_likes_total",
             "livecount_cluster_resyncs_total",
             "livecount_cluster_seq_gaps_total",
             "livecount_flush_rows_total",
             "livecount_flush_seconds_total")


def snapshot(nodes, redis_pid, redis_port):
    s = {"t": time.time(), "machine": machine_cpu(), "redis": redis_info(redis_port),
         "redis_cpu": proc_cpu(redis_pid), "nodes": {}}
    for name, (port, proc) in nodes.items():
        m = metrics(port)
        s["nodes"][name] = {"cpu": proc_cpu(proc.pid), "rss_kb": proc_rss_kb(proc.pid),
                            **{k: m.get(k, 0.0) for k in NODE_KEYS}}
    return s


def one_run(a, n, rate, run_idx, work):
    procs = Procs()
    rp = free_port()
    rdir = os.path.join(work, "redis")
    os.makedirs(rdir, exist_ok=True)
    redis = procs.spawn(["redis-server", "--port", str(rp), "--bind", "127.0.0.1",
                         "--save", "", "--appendonly", "no", "--dir", rdir,
                         "--maxclients", "1000"], os.path.join(work, "redis.log"))
    rec = {"nodes": n, "rate": rate, "run": run_idx, "loadavg_start": loadavg(),
           "window_s": a.window, "tick_ms": 100, "workers": 1}
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(rp), "ping"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        nodes = {}
        names = ["w%d" % i for i in range(1, n + 1)] + ["obs", "view"]
        for i, name in enumerate(names, 1):
            port = free_port()
            db = os.path.join(work, "db-" + name)
            os.makedirs(db, exist_ok=True)
            p = procs.spawn([a.livecount, "--bind", "127.0.0.1", "--port", str(port),
                             "--db", os.path.join(db, "lc.db"), "--workers", "1",
                             "--tick-ms", "100", "--log-level", "warn",
                             "--redis-url", "redis://127.0.0.1:%d" % rp,
                             "--node-id", str(i)], os.path.join(work, name + ".log"))
            nodes[name] = (port, p)
        for name, (port, p) in nodes.items():
            wait_ready(port, p, True)
        # load: each writer C likes/s over C/10 URLs
        loads = []
        dur = a.warm + a.window + 12
        if rate > 0 and a.hot:
            # one URL liked on every writer: each pushes it every tick
            c = rate / n
            rec.update(per_node_likes=c, per_node_urls=1, batch=0, req_rate=c, hot=True)
            prefix = "https://hot.capacity.livecount.test/%d-%d-%d/" % (os.getpid(), n, run_idx)
            for i in range(1, n + 1):
                port = nodes["w%d" % i][0]
                loads.append(procs.spawn(
                    [a.load, "ingest", "--target", "http://127.0.0.1:%d" % port,
                     "--urls", "1", "--url-prefix", prefix, "--rate", "%.3f" % c,
                     "--connections", "2", "--duration", str(dur), "--no-verify", "--quiet"],
                    os.path.join(work, "load-w%d.json" % i)))
        elif rate > 0:
            c = rate / n
            urls = max(1, int(round(c / 10)))
            batch = max(1, int(math.ceil(urls / 4)))
            req_rate = c / batch
            rec.update(per_node_likes=c, per_node_urls=urls, batch=batch,
                       req_rate=req_rate)
            for i in range(1, n + 1):
                port = nodes["w%d" % i][0]
                loads.append(procs.spawn(
                    [a.load, "ingest", "--target", "http://127.0.0.1:%d" % port,
                     "--batch", str(batch), "--urls", str(urls), "--rate",
                     "%.3f" % req_rate, "--connections", "2", "--duration", str(dur),
                     "--no-verify", "--quiet"],
                    os.path.join(work, "load-w%d.json" % i)))
        view = None
        if a.subs > 0:
            view = procs.spawn(
                [a.load, "fanout", "--transport", "ws", "--subscribers", str(a.subs),
                 "--urls", "1", "--like-rate", str(a.view_likes), "--like-conns", "1",
                 "--duration", str(a.window), "--tick-ms", "100", "--connect-timeout", "30",
                 "--target", "http://127.0.0.1:%d" % nodes["view"][0],
                 "--like-target", "http://127.0.0.1:%d" % nodes["w1"][0], "--quiet"],
                os.path.join(work, "view.json"))
        time.sleep(a.warm)
        s0 = snapshot(nodes, redis.pid, rp)
        time.sleep(a.window)
        s1 = snapshot(nodes, redis.pid, rp)
        rec["loadavg_end"] = loadavg()
        if view is not None:
            try:
                view.wait(90)
            except subprocess.TimeoutExpired:
                view.kill()
            try:
                with open(os.path.join(work, "view.json")) as f:
                    d = json.loads([ln for ln in f.read().splitlines()
                                    if ln.startswith("{")][-1])
                rec["view"] = {"p50": d["latency_ms"]["p50"], "p99": d["latency_ms"]["p99"],
                               "max": d["latency_ms"]["max"],
                               "delivered": d.get("delivered_ratio"),
                               "errors": d.get("errors"), "likes_per_s": d.get("likes_per_s")}
            except (OSError, ValueError, IndexError, KeyError) as e:
                rec["view"] = {"error": str(e)}
        for p in loads:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        rec.update(derive(s0, s1, n))
        return rec
    finally:
        procs.stop()


def derive(s0, s1, n):
    dt = s1["t"] - s0["t"]
    r0, r1 = s0["redis"], s1["redis"]
    out = {"dt": round(dt, 3)}
    tot0, idle0 = s0["machine"]
    tot1, idle1 = s1["machine"]
    out["machine_busy_pct"] = round(100 * ((tot1 - tot0) - (idle1 - idle0)) / max(1, tot1 - tot0), 1)
    zadd = r1.get("cmdstat_zadd", 0) - r0.get("cmdstat_zadd", 0)
    pub = r1.get("cmdstat_publish", 0) - r0.get("cmdstat_publish", 0)
    cmds = r1.get("total_commands_processed", 0) - r0.get("total_commands_processed", 0)
    out["redis"] = {
        "zadd_per_s": round(zadd / dt, 1),
        "publish_per_s": round(pub / dt, 2),
        "commands_per_s": round(cmds / dt, 1),
        "net_in_Bps": round((r1["total_net_input_bytes"] - r0["total_net_input_bytes"]) / dt),
        "net_out_Bps": round((r1["total_net_output_bytes"] - r0["total_net_output_bytes"]) / dt),
        "cpu_s_per_s": round((s1["redis_cpu"] - s0["redis_cpu"]) / dt, 4),
        "zadd_usec_per_call": round((r1.get("cmdstat_zadd_usec", 0) - r0.get("cmdstat_zadd_usec", 0))
                                    / max(1, zadd), 3),
        "publish_usec_per_call": round((r1.get("cmdstat_publish_usec", 0)
                                        - r0.get("cmdstat_publish_usec", 0)) / max(1, pub), 2),
        "pubsub_clients": r1.get("pubsub_channels"),
    }
    nodes = {}
    for name in s1["nodes"]:
        a, b = s0["nodes"][name], s1["nodes"][name]
        d = {k: round((b[k] - a[k]) / dt, 2) for k in NODE_KEYS}
        d["cpu_s_per_s"] = round((b["cpu"] - a["cpu"]) / dt, 4) if b["cpu"] is not None else None
        d["rss_kb"] = b["rss_kb"]
        nodes[name] = d
    out["node"] = nodes
    changed = sum(nodes["w%d" % i]["livecount_cluster_pushed_urls_total"] for i in range(1, n + 1))
    out["changed_urls_per_s"] = round(changed, 1)
    obs = nodes["obs"]
    out["obs_cpu_s_per_s"] = obs["cpu_s_per_s"]
    out["obs_msgs_per_s"] = obs["livecount_cluster_messages_received_total"]
    out["obs_bytes_per_s"] = obs["livecount_cluster_received_bytes_total"]
    out["obs_flush_rows_per_s"] = obs["livecount_flush_rows_total"]
    out["obs_flush_busy"] = obs["livecount_flush_seconds_total"]
    w = [nodes["w%d" % i]["cpu_s_per_s"] for i in range(1, n + 1)]
    out["writer_cpu_s_per_s_mean"] = round(sum(w) / len(w), 4)
    out["all_nodes_cpu_s_per_s"] = round(sum(v["cpu_s_per_s"] or 0 for v in nodes.values()), 4)
    out["resyncs"] = sum(v["livecount_cluster_resyncs_total"] for v in nodes.values())
    out["seq_gaps"] = sum(v["livecount_cluster_seq_gaps_total"] for v in nodes.values())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="2,4,8,16")
    ap.add_argument("--rates", default="0,1000,10000,50000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warm", type=float, default=4)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--hot", action="store_true",
                    help="all writers like ONE shared URL (RATE likes/s in all, single likes): "
                    "every writer pushes it every tick")
    ap.add_argument("--subs", type=int, default=50, help="WS subscribers on the viewer node")
    ap.add_argument("--view-likes", type=int, default=20, help="likes/s sent to writer 1")
    ap.add_argument("--build", default=os.environ.get("LC_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--out", default=os.path.join(HERE, "scaling_results.jsonl"))
    a = ap.parse_args()
    a.livecount = os.path.join(a.build, "livecount")
    a.load = os.path.join(a.build, "livecount-load")
    for exe in (a.livecount, a.load):
        if not os.access(exe, os.X_OK):
            sys.exit("build first: " + exe)
    if not shutil.which("redis-server"):
        sys.exit("needs redis-server")
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    nodes = [int(x) for x in a.nodes.split(",")]
    rates = [int(x) for x in a.rates.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    for run_idx in range(1, a.runs + 1):
        # alternate the order run by run so that drifts of the shared machine
        # do not line up with one configuration
        order = [(n, r) for n in nodes for r in rates]
        if run_idx % 2 == 0:
            order.reverse()
        for n, r in order:
            work = tempfile.mkdtemp(prefix="lc-scale-")
            log("run %d: %d nodes, %d changed URLs/s (load average %s)"
                % (run_idx, n, r, loadavg()))
            try:
                rec = one_run(a, n, r, run_idx, work)
            except Exception as e:  # keep the series going
                log("  failed: %s (kept %s)" % (e, work))
                continue
            rec["commit"] = commit
            rec["date"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
            with open(a.out, "a") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")
            log("  changed/s %.0f, obs CPU %.3f, redis CPU %.3f out %.0f B/s, view %s"
                % (rec["changed_urls_per_s"], rec["obs_cpu_s_per_s"],
                   rec["redis"]["cpu_s_per_s"], rec["redis"]["net_out_Bps"],
                   rec.get("view")))
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
