#!/usr/bin/env python3
"""nchan_table.py OUT_DIR [servers] [transports] [size]: per-run detail of a
loadtest/nchan_bench.sh output directory (NCHAN_OUT), beyond the table the
script writes: p99.9, the load average at the start of every run, frames
whose count did not change (watching-only updates), server CPU per frame
and per count-changing frame, and the ratios against nchan and against the
first livecount row (e.g. a base build run with LC_LIVECOUNT).

servers: comma-separated file prefixes (default livecount,lcafter,nchan);
transports: ws,sse; size: subscribers (default 10000).
"""
import json
import os
import statistics as st
import sys


def load(out, s, t, n, i):
    try:
        with open(os.path.join(out, f"{s}_{t}_{n}_{i}.json")) as f:
            d = json.loads(f.read().splitlines()[-1])
        with open(os.path.join(out, f"{s}_{t}_{n}_{i}.loadavg")) as f:
            d["_la"] = float(f.read())
        return d
    except (OSError, ValueError, IndexError):
        return None


def same_in_likes(d):
    """Count-unchanged frames of the like phase (msgs_per_s counts that
    phase only; same_count_updates also has those before the first like)."""
    pre = d.get("msgs_pre", 0) - d.get("snapshots", 0)
    return max(0, d.get("same_count_updates", 0) - max(0, pre))


def cell(xs, fmt):
    return (f"**{fmt.format(st.median(xs))}** ("
            + ", ".join(fmt.format(x) for x in xs) + ")")


def main():
    out = sys.argv[1]
    servers = (sys.argv[2] if len(sys.argv) > 2 else "livecount,lcafter,nchan").split(",")
    trs = (sys.argv[3] if len(sys.argv) > 3 else "ws,sse").split(",")
    n = sys.argv[4] if len(sys.argv) > 4 else "10000"
    med = {}
    print("| transport | server | delivered | p50 ms | p99 ms | p99.9 ms | max ms "
          "| CPU µs / frame | CPU µs / count-changing frame | frames/s "
          "| same-count frames in the like phase | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in trs:
        for s in servers:
            runs = [d for d in (load(out, s, t, n, i) for i in range(1, 10)) if d]
            if not runs:
                continue
            upf = [d["server_cpu_pct"] / 100 / d["msgs_per_s"] * 1e6 for d in runs]
            upc = [d["server_cpu_pct"] / 100
                   / (d["msgs_per_s"] - same_in_likes(d) / d["duration_s"]) * 1e6
                   for d in runs]
            lat = [d["latency_ms"] for d in runs]
            med[(t, s)] = dict(p50=st.median(x["p50"] for x in lat),
                               p99=st.median(x["p99"] for x in lat),
                               upf=st.median(upf), upc=st.median(upc))
            print(f"| {t.upper()} | {s} | {cell([d['delivered_ratio'] for d in runs], '{:.4f}')} "
                  f"| {cell([x['p50'] for x in lat], '{:.2f}')} | {cell([x['p99'] for x in lat], '{:.1f}')} "
                  f"| {cell([x['p999'] for x in lat], '{:.1f}')} | {cell([x['max'] for x in lat], '{:.1f}')} "
                  f"| {cell(upf, '{:.2f}')} | {cell(upc, '{:.2f}')} "
                  f"| {cell([d['msgs_per_s'] for d in runs], '{:,.0f}')} "
                  f"| {', '.join(str(same_in_likes(d)) for d in runs)} "
                  f"| {', '.join('%.2f' % d['_la'] for d in runs)} |")
    print()
    print("| transport | server | p50 / nchan | p99 / nchan | CPU per frame / nchan "
          f"| p50 / {servers[0]} | p99 / {servers[0]} | CPU per frame / {servers[0]} "
          f"| CPU per count-changing frame / {servers[0]} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t in trs:
        for s in servers:
            if s == "nchan" or (t, s) not in med:
                continue
            m, c = med[(t, s)], med.get((t, "nchan"))
            b = med.get((t, servers[0])) if s != servers[0] else None
            r = [f"{m['p50'] / c['p50']:.2f}", f"{m['p99'] / c['p99']:.2f}",
                 f"{m['upf'] / c['upf']:.2f}"] if c else ["–"] * 3
            r += [f"{m['p50'] / b['p50']:.3f}", f"{m['p99'] / b['p99']:.3f}",
                  f"{m['upf'] / b['upf']:.2f}", f"{m['upc'] / b['upc']:.2f}"] if b else ["–"] * 4
            print(f"| {t.upper()} | {s} | " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
