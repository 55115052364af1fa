#!/usr/bin/env python3
"""Markdown tables from cluster_bench.sh's raw outputs (medians of the runs,
individual runs in brackets). Usage: cluster_report.py OUTDIR [OUTDIR...]"""
import glob
import json
import os
import re
import statistics
import sys


def last_json(path):
    try:
        lines = [l for l in open(path).read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def med(vals, fmt="{:,.1f}"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    m = statistics.median(vals)
    return "**" + fmt.format(m) + "** (" + ", ".join(fmt.format(v) for v in vals) + ")"


def runs(d, pattern):
    out = []
    for p in sorted(glob.glob(os.path.join(d, pattern)),
                    key=lambda s: int(re.findall(r"_(\d+)\.json$", s)[0])):
        j = last_json(p)
        if j:
            out.append(j)
    return out


def latency(d):
    rows = []
    for rate in (10, 100):
        for v, label in (("single", "single node (no Redis)"),
                         ("same", "cluster, subscribers and likes on node B"),
                         ("cross", "cluster, subscribers on B, likes on A")):
            r = runs(d, "lat_%s_%d_*.json" % (v, rate))
            if not r:
                continue
            rows.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                rate, label,
                med([x["latency_ms"]["p50"] for x in r]),
                med([x["latency_ms"]["p99"] for x in r]),
                med([x["latency_ms"]["max"] for x in r]),
                med([x["delivered_ratio"] for x in r], "{:.4f}"),
                ", ".join(str(x["counts_exact"]) for x in r),
                med([x.get("server_cpu_pct") for x in r], "{:.0f}"),
                ", ".join(str(x["errors"]) for x in r)))
    if not rows:
        return ""
    # Ratios cross/single and cross/same per run (same run index).
    ratios = []
    for rate in (10, 100):
        s = runs(d, "lat_single_%d_*.json" % rate)
        c = runs(d, "lat_cross_%d_*.json" % rate)
        if s and c:
            p50 = [b["latency_ms"]["p50"] / a["latency_ms"]["p50"] for a, b in zip(s, c)]
            p99 = [b["latency_ms"]["p99"] / a["latency_ms"]["p99"] for a, b in zip(s, c)]
            ratios.append("| %d | %s | %s |" % (rate, med(p50, "{:.2f}"), med(p99, "{:.2f}")))
    return ("| likes/s | setup | p50 ms | p99 ms | max ms | delivered | counts exact | server CPU % (all nodes) | errors |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) +
            "\n\nCross-node / single-node, per run pair:\n\n| likes/s | p50 ratio | p99 ratio |\n|---|---|---|\n" +
            "\n".join(ratios) + "\n")


def partition(d):
    rows = []
    for size in (1000, 100000):
        r = []
        for p in sorted(glob.glob(os.path.join(d, "partition_%d_*.json" % size))):
            j = last_json(p)
            if j:
                r.append(j)
        if not r:
            continue
        rows.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            f"{size:,}",
            med([x["a_link_up_after_heal_ms"] for x in r], "{:,.0f}"),
            med([x["converged_a_ms"] for x in r], "{:,.0f}"),
            med([x["converged_b_ms"] for x in r], "{:,.0f}"),
            med([x["resync_last_ms_a"] for x in r], "{:,.0f}"),
            med([x["resync_last_ms_b"] for x in r], "{:,.0f}"),
            ", ".join(str(x["exact"]) for x in r),
            ", ".join("%s/%s" % (x["during_cut_a"], x["during_cut_b"]) for x in r)))
    if not rows:
        return ""
    return ("| URLs liked on A during the cut | A's link up after heal ms | A exact total after heal ms | B exact total after heal ms | resync ms on A (`/metrics`) | resync ms on B | every URL exact on both | likes seen during the cut A/B |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def traffic(d):
    out = []
    ports = open(os.path.join(d, "traffic_ports")).read().split() if \
        os.path.exists(os.path.join(d, "traffic_ports")) else []
    names = dict(zip(ports, "ABC"))
    for kind, label in (("idle", "idle (no likes)"), ("a", "10k likes/s on A"),
                        ("abc", "10k likes/s over A, B, C")):
        per = {}
        red = {"cmds": [], "in": [], "out": [], "top": []}
        for f0 in sorted(glob.glob(os.path.join(d, "traffic_%s_*.0" % kind))):
            try:
                s0 = json.load(open(f0))
                s1 = json.load(open(f0[:-2] + ".1"))
            except (OSError, ValueError):
                continue
            dt = s1["t"] - s0["t"]
            ticks = dt / 0.1
            for p, m1 in s1["nodes"].items():
                m0 = s0["nodes"][p]
                dd = lambda k: m1.get(k, 0) - m0.get(k, 0)
                e = per.setdefault(names.get(p, p), {"cmd": [], "bpt": [], "mpt": [], "rbpt": [], "likes": []})
                e["cmd"].append(dd("livecount_cluster_redis_commands_total") / dt)
                e["bpt"].append(dd("livecount_cluster_sent_bytes_total") / ticks)
                e["mpt"].append(dd("livecount_cluster_messages_sent_total") / ticks)
                e["rbpt"].append(dd("livecount_cluster_received_bytes_total") / ticks)
                e["likes"].append(dd("livecount_likes_total") / dt if "livecount_likes_total" in m1 else None)
            r0, r1 = s0["redis"], s1["redis"]
            red["cmds"].append((r1["total_commands_processed"] - r0["total_commands_processed"]) / dt)
            red["in"].append((r1["total_net_input_bytes"] - r0["total_net_input_bytes"]) / ticks)
            red["out"].append((r1["total_net_output_bytes"] - r0["total_net_output_bytes"]) / ticks)
            cs = {k[8:]: (r1.get(k, 0) - r0.get(k, 0)) / dt for k in r1 if k.startswith("cmdstat_")}
            red["top"].append(", ".join("%s %.0f/s" % kv for kv in sorted(cs.items(), key=lambda kv: -kv[1])[:5] if kv[1] > 0))
        if not per:
            continue
        out.append("**%s**\n\n| node | Redis commands/s | bytes sent per tick | messages sent per tick | bytes received per tick |\n|---|---|---|---|---|" % label)
        for n in sorted(per):
            e = per[n]
            out.append("| %s | %s | %s | %s | %s |" % (n, med(e["cmd"], "{:,.0f}"), med(e["bpt"], "{:,.0f}"),
                                                  med(e["mpt"], "{:,.2f}"), med(e["rbpt"], "{:,.0f}")))
        out.append("| redis-server (INFO) | %s | in %s | | out %s |" % (
            med(red["cmds"], "{:,.0f}"), med(red["in"], "{:,.0f}"), med(red["out"], "{:,.0f}")))
        out.append("\nRedis commands by type (first run): %s\n" % (red["top"][0] if red["top"] else "–"))
    return "\n".join(out) + "\n"


def ingest(d):
    def wrk_rps(p):
        try:
            m = re.search(r"Requests/sec:\s+([\d.]+)", open(p).read())
            return float(m.group(1)) if m else None
        except OSError:
            return None
    def num(p):
        return int(re.findall(r"_(\d+)\.wrk$", p)[0])
    s1 = {m: [wrk_rps(p) for p in sorted(glob.glob(os.path.join(d, "s1_%s_*.wrk" % m)), key=num)]
          for m in ("off", "on")}
    s2 = {m: runs(d, "s2_%s_*.json" % m) for m in ("off", "on")}
    if not any(s1.values()) and not any(s2.values()):
        return ""
    rows = []
    for m in ("off", "on"):
        rows.append("| %s | %s | %s | %s | %s | %s |" % (
            m, med(s1[m], "{:,.0f}"), med([x["likes_per_s"] for x in s2[m]], "{:,.0f}"),
            med([x.get("server_cpu_pct") for x in s2[m]], "{:.0f}"),
            med([x["server_cpu_pct"] / 100 / x["likes_per_s"] * 1e9 for x in s2[m]
                 if x.get("server_cpu_pct") and x.get("likes_per_s")], "{:,.0f}"),
            ", ".join(str(x["counts_exact"]) for x in s2[m])))
    r1 = [b / a for a, b in zip(s1["off"], s1["on"]) if a and b]
    r2 = [b["likes_per_s"] / a["likes_per_s"] for a, b in zip(s2["off"], s2["on"]) if a["likes_per_s"]]
    return ("| cluster mode | S1 wrk req/s | S2 likes/s | S2 server CPU % | S2 server CPU ns per like | S2 counts exact |\n|---|---|---|---|---|---|\n" +
            "\n".join(rows) + "\n\nOn/off per adjacent pair: S1 %s, S2 %s (medians: S1 %s, S2 %s)\n" % (
                med(r1, "{:.3f}"), med(r2, "{:.3f}"),
                "{:.3f}".format(statistics.median([x for x in s1["on"] if x]) / statistics.median([x for x in s1["off"] if x])) if all(s1.values()) else "–",
                "{:.3f}".format(statistics.median([x["likes_per_s"] for x in s2["on"]]) / statistics.median([x["likes_per_s"] for x in s2["off"]])) if all(s2.values()) else "–"))


def cpu_during(d, name, j):
    """Machine CPU busy % over the like phase, from the sampler."""
    try:
        recs = [json.loads(l) for l in open(os.path.join(d, name + ".sampler.jsonl"))]
    except OSError:
        return None
    if not recs:
        return None
    # The like phase is the last duration_s before the load ended; the
    # sampler stops a few seconds after (converge + report).
    end = os.path.getmtime(os.path.join(d, name + ".json"))
    start = end - j["wall_s"]
    conn_s = (j["subscribers"] / j["connect_per_s"]) if j.get("connect_per_s") else 0
    lo = start + conn_s + 2
    hi = lo + j["duration_s"]
    sel = [r["busy_pct"] for r in recs if lo <= r["t"] <= hi]
    return statistics.mean(sel) if sel else None


def big(d):
    out = []
    rows = {}
    for p in sorted(glob.glob(os.path.join(d, "big_*.json"))):
        j = last_json(p)
        if not j:
            continue
        name = os.path.basename(p)[:-5]
        m = re.match(r"big_(\w+?)_(\d+)$", name)
        if m:
            rows.setdefault(m.group(1), []).append((j, cpu_during(d, name, j)))
        lat = j["latency_ms"]
        out.append("`%s`: subscribers %d, ready %d, converged %d (delivered %.4f), errors %d %s, "
                   "like→visible p50 %.0f ms, p99 %.0f ms, max %.0f ms, likes/s %.1f, msgs/s %.0f, "
                   "connect %.0f/s, server CPU (all nodes) %.0f %%, RSS all nodes start %d KB → ready %d KB "
                   "(%.2f KB/subscriber), loadgen CPU %.0f %%" % (
                       os.path.basename(p), j["subscribers"], j["ready"], j["converged"],
                       j["delivered_ratio"] or 0, j["errors"], j["errors_by_kind"], lat["p50"], lat["p99"],
                       lat["max"], j["likes_per_s"], j["msgs_per_s"], j["connect_per_s"],
                       j.get("server_cpu_pct", 0), j.get("server_rss_start_kb", 0),
                       j.get("server_rss_ready_kb", 0), j.get("server_rss_per_subscriber_kb", 0),
                       j["loadgen_cpu_pct"]))
    tab = []
    for v, rs in rows.items():
        js = [x for x, _ in rs]
        tab.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            v, ", ".join("%d/%d" % (x["converged"], x["subscribers"]) for x in js),
            ", ".join(str(x["counts_exact"]) for x in js),
            med([x["latency_ms"]["p50"] for x in js], "{:,.0f}"),
            med([x["latency_ms"]["p99"] for x in js], "{:,.0f}"),
            med([x["latency_ms"]["max"] for x in js], "{:,.0f}"),
            med([x["server_to_client_ms"]["p99"] for x in js], "{:,.0f}"),
            med([x.get("server_rss_per_subscriber_kb") for x in js], "{:.2f}"),
            med([x.get("server_cpu_pct") for x in js], "{:.0f}"),
            med([c for _, c in rs], "{:.0f}"),
            ", ".join(str(x["errors"]) for x in js)))
    if tab:
        out.insert(0, "| likes to | converged | counts exact | like→visible p50 ms | p99 ms | max ms | server ts→client p99 ms | RSS KB / subscriber (all nodes) | nodes' CPU % (100 = 1 core) | machine CPU busy % over the like phase (2 cores) | errors |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(tab))
    return "\n\n".join(out) + "\n" if out else ""


def phase(d):
    rows = []
    for mode, label in (("nodes_first", "in phase (subscriber nodes started first, as in `big`)"),
                        ("ingress_first", "ingress started 500 ms before the subscriber nodes")):
        r = runs(d, "phase_%s_*.json" % mode)
        if not r:
            continue
        rows.append("| %s | %s | %s | %s | %s | %s |" % (
            label, med([x["latency_ms"]["p50"] for x in r], "{:,.0f}"),
            med([x["latency_ms"]["p99"] for x in r], "{:,.0f}"),
            med([x["server_to_client_ms"]["p99"] for x in r], "{:,.0f}"),
            med([x["delivered_ratio"] for x in r], "{:.4f}"),
            ", ".join(str(x["errors"]) for x in r)))
    if not rows:
        return ""
    return ("| ingress tick phase | like→visible p50 ms | p99 ms | server ts→client p99 ms | delivered | errors |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def main():
    for d in sys.argv[1:]:
        for name, fn in (("latency", latency), ("partition", partition), ("traffic", traffic),
                         ("ingest", ingest), ("big", big), ("phase", phase)):
            try:
                s = fn(d)
            except Exception as e:  # a partial run still reports the rest
                s = "(%s: %s)\n" % (name, e)
            if s.strip():
                print("### %s (%s)\n\n%s" % (name, d, s))


if __name__ == "__main__":
    main()
