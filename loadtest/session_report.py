#!/usr/bin/env python3
"""Markdown tables from loadtest/session_bench.sh's raw outputs.

    loadtest/session_report.py OUT_DIR

Medians in bold, every run in brackets (in run order), the 1-min load
average of each run's start as a range. CPU per unit is server CPU time
(utime + stime from /proc/<pid>/stat) over the measured phase divided by the
units served in it.
"""
import glob
import json
import os
import re
import statistics
import sys

out = sys.argv[1]


def runs_of(prefix):
    names = sorted(glob.glob(os.path.join(out, prefix + "_*.loadavg")),
                   key=lambda p: int(re.search(r"_(\d+)\.loadavg$", p).group(1)))
    return [os.path.basename(p)[:-len(".loadavg")] for p in names]


def load_json(name):
    try:
        return json.loads(open(os.path.join(out, name + ".json")).read().splitlines()[-1])
    except Exception:
        return None


def loadavg(names):
    la = []
    for n in names:
        try:
            la.append(float(open(os.path.join(out, n + ".loadavg")).read().split()[0]))
        except Exception:
            pass
    return f"{min(la):.1f}–{max(la):.1f}" if la else "–"


def med(xs, f="{:,.1f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return "**" + f.format(statistics.median(xs)) + "** (" + ", ".join(f.format(x) for x in xs) + ")"


def m(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def s1():
    rows, vals = [], {}
    for v in ("base", "mid", "head"):
        names = runs_of(f"s1_{v}")
        if not names:
            continue
        rps, cpu, p99 = [], [], []
        for n in names:
            w = open(os.path.join(out, n + ".wrk")).read()
            r = re.search(r"Requests/sec:\s+([\d.]+)", w)
            tot = re.search(r"(\d+) requests in", w)
            q = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", w, re.M)
            c0, c1, _, _ = (float(x) for x in open(os.path.join(out, n + ".cpu")).read().split())
            rps.append(float(r.group(1)) if r else None)
            cpu.append((c1 - c0) / int(tot.group(1)) * 1e6 if tot else None)
            if q:
                p99.append(float(q.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[q.group(2)])
        vals[v] = (rps, cpu)
        rows.append(f"| {v} | {med(rps, '{:,.0f}')} | {med(cpu, '{:.2f}')} | {med(p99, '{:.2f}')} | {loadavg(names)} |")
    print("| build | req/s | server CPU µs / request | wrk p99 ms | load avg |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    for a in ("mid", "head"):
        if "base" in vals and a in vals:
            print(f"{a} / base: req/s **{m(vals[a][0]) / m(vals['base'][0]):.3f}**, "
                  f"CPU per request **{m(vals[a][1]) / m(vals['base'][1]):.3f}**  ")


def mixed():
    vals = {}
    print("| ingest | likes/s | views/s | items/s | server CPU % | server CPU µs / item | errors | exact | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v, label in (("0", "likes only"), ("10", "10 views per like")):
        names = runs_of(f"mixed_v{v}")
        ds = [load_json(n) for n in names]
        ds = [d for d in ds if d]
        cpu = [d["server_cpu_pct"] / 100 / d["items_per_s"] * 1e6 if d.get("items_per_s") else None for d in ds]
        vals[v] = ([d["items_per_s"] for d in ds], cpu)
        print(f"| {label} | {med([d['likes_per_s'] for d in ds], '{:,.0f}')} | "
              f"{med([d['views_per_s'] for d in ds], '{:,.0f}')} | {med([d['items_per_s'] for d in ds], '{:,.0f}')} | "
              f"{med([d['server_cpu_pct'] for d in ds], '{:.0f}')} | {med(cpu, '{:.3f}')} | "
              f"{', '.join(str(d['errors']) for d in ds)} | {', '.join(str(d['counts_exact']) for d in ds)} | {loadavg(names)} |")
    if "0" in vals and "10" in vals:
        print()
        print(f"mixed / likes only: items/s **{m(vals['10'][0]) / m(vals['0'][0]):.3f}**, "
              f"CPU per item **{m(vals['10'][1]) / m(vals['0'][1]):.3f}** (inverse: {m(vals['0'][1]) / m(vals['10'][1]):.3f}×)")


def us_frame(d):
    return d["server_cpu_pct"] / 100 / d["msgs_per_s"] * 1e6 if d.get("msgs_per_s") else None


def fanout():
    sizes = sorted({int(re.search(r"fan_\w+?_(\d+)_\d+\.loadavg$", p).group(1))
                    for p in glob.glob(os.path.join(out, "fan_*.loadavg"))})
    label = {"base": "base", "on": "head, watching on (1000 ms)", "off": "head, watching off (600000 ms)"}
    print("| subscribers | server | delivered | p50 ms | p99 ms | max ms | server CPU µs / frame | RSS KB / subscriber | errors | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ratios, storm = [], []
    for n in sizes:
        cell = {}
        for v in ("base", "on", "off"):
            names = runs_of(f"fan_{v}_{n}")
            ds = [d for d in (load_json(x) for x in names) if d]
            cell[v] = ds
            if not ds:
                continue
            print(f"| {n:,} | {label[v]} | {med([d['delivered_ratio'] for d in ds], '{:.4f}')} | "
                  f"{med([d['latency_ms']['p50'] for d in ds])} | {med([d['latency_ms']['p99'] for d in ds])} | "
                  f"{med([d['latency_ms']['max'] for d in ds])} | {med([us_frame(d) for d in ds], '{:.2f}')} | "
                  f"{med([d.get('server_rss_per_subscriber_kb') for d in ds], '{:.2f}')} | "
                  f"{', '.join(str(d['errors']) for d in ds)} | {loadavg(names)} |")
            storm.append(f"| {n:,} | {label[v]} | {med([d['connect_per_s'] for d in ds], '{:,.0f}')} | "
                         f"{med([d.get('server_connect_wall_s') for d in ds], '{:.2f}')} | "
                         f"{med([d.get('server_cpu_connect_s') for d in ds], '{:.2f}')} | "
                         f"{med([d.get('server_cpu_connect_s', 0) / d['ready'] * 1e6 if d.get('ready') else None for d in ds], '{:.0f}')} | "
                         f"{med([d.get('msgs_pre', 0) / d['subscribers'] if d.get('subscribers') else None for d in ds], '{:.2f}')} | "
                         f"{med([d.get('msgs_pre_max') for d in ds], '{:.0f}')} | "
                         f"{med([d.get('same_count_updates', 0) / d['subscribers'] / d['duration_s'] if d.get('subscribers') and d.get('duration_s') else None for d in ds], '{:.2f}')} |")
        for a, b in (("on", "off"), ("on", "base")):
            if cell.get(a) and cell.get(b):
                p = m([d["latency_ms"]["p99"] for d in cell[a]]) / m([d["latency_ms"]["p99"] for d in cell[b]])
                c = m([us_frame(d) for d in cell[a]]) / m([us_frame(d) for d in cell[b]])
                ratios.append(f"| {n:,} | {a} / {b} | {p:.2f} | {c:.2f} |")
    print()
    print("Ratios of medians:")
    print()
    print("| subscribers | pair | p99 | CPU per frame |")
    print("|---|---|---|---|")
    print("\n".join(ratios))
    print()
    print("Connect ramp (all subscribers started at once, `--max-pending 512`; frames before the first like, "
          "the snapshot included; server CPU from the first connect until the likes start):")
    print()
    print("| subscribers | server | connects/s | ramp wall s | server CPU s | server CPU µs / subscriber | frames / subscriber | most frames to one subscriber | count-unchanged updates / subscriber / s (like phase) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(storm))


def commands():
    print("```")
    seen = set()
    for p in sorted(glob.glob(os.path.join(out, "*_1.cmd"))):
        key = re.sub(r"_(base|head|on|off|v0|v10)_", "_", os.path.basename(p))
        c = open(p).read().strip()
        if c not in seen:
            seen.add(c)
            print(c)
    print("```")


for title, fn in (("S1", s1), ("mixed", mixed), ("fanout", fanout)):
    if glob.glob(os.path.join(out, {"S1": "s1_", "mixed": "mixed_", "fanout": "fan_"}[title] + "*.loadavg")):
        print(f"<!-- {title} -->")
        fn()
        print()
commands()
