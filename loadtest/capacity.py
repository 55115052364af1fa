#!/usr/bin/env python3
"""capacity.py: livecount's capacity model (issue 23), computed from measured
unit costs.

  loadtest/capacity.py --viewers 1000000 --likes-per-s 10000 --live-urls 1000000
  loadtest/capacity.py --viewers 10000000 --hot-url-viewers 10000000 \
      --live-urls 1 --likes-per-s 1000000 --cores 16
  loadtest/capacity.py --constants          # the measured constants and fits
  loadtest/capacity.py --check              # predict measured runs (ctest)
  loadtest/capacity.py ... --json           # the plan as JSON

The results file (default loadtest/capacity_results.json) names the raw
measurement files (unit_costs.py and scaling_bench.py output, one JSON line
per run), constants quoted from RESULTS.md with their section, and the
measured runs the model must predict. Everything the model uses is derived
here from those runs: medians and ranges of per-unit costs, and least-squares
fits of the scaling runs (what grows with the change rate, what with the
node count). docs/CAPACITY.md explains the formulas.

The model describes the cluster as it is: one Redis, one channel that every
node hears, every node merging, holding and persisting every changed URL.
A resource that does not shrink when machines are added (a node's share of
the cluster's changes, Redis) is a bottleneck: the plan names the first one
reached, the load factor at which it is reached, and the design change that
lifts it.
"""
import argparse
import json
import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_RESULTS = os.path.join(HERE, "capacity_results.json")


# ---- statistics -------------------------------------------------------------

def med_range(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals)}


def lstsq(rows, ys):
    """Ordinary least squares by the normal equations (a handful of columns)."""
    k = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(k)] for i in range(k)]
    b = [sum(r[i] * y for r, y in zip(rows, ys)) for i in range(k)]
    # Gaussian elimination with partial pivoting
    for c in range(k):
        p = max(range(c, k), key=lambda i: abs(a[i][c]))
        a[c], a[p] = a[p], a[c]
        b[c], b[p] = b[p], b[c]
        if abs(a[c][c]) < 1e-30:
            raise ValueError("singular fit")
        for i in range(c + 1, k):
            f = a[i][c] / a[c][c]
            for j in range(c, k):
                a[i][j] -= f * a[c][j]
            b[i] -= f * b[c]
    x = [0.0] * k
    for i in reversed(range(k)):
        x[i] = (b[i] - sum(a[i][j] * x[j] for j in range(i + 1, k))) / a[i][i]
    return x


def r2(rows, ys, coef):
    pred = [sum(c * v for c, v in zip(coef, r)) for r in rows]
    mean = sum(ys) / len(ys)
    ss_res = sum((y - p) ** 2 for y, p in zip(ys, pred))
    ss_tot = sum((y - mean) ** 2 for y in ys) or 1e-30
    return 1 - ss_res / ss_tot


def fit_with_range(runs, feats, target, names):
    """Fits all runs together, and each repetition (run index) apart for a
    range of every coefficient."""
    rows = [feats(r) for r in runs]
    ys = [target(r) for r in runs]
    coef = lstsq(rows, ys)
    out = {"r2": round(r2(rows, ys, coef), 4), "points": len(runs)}
    per = {}
    for idx in sorted({r["run"] for r in runs}):
        sub = [r for r in runs if r["run"] == idx]
        if len(sub) > len(names):
            try:
                per[idx] = lstsq([feats(r) for r in sub], [target(r) for r in sub])
            except ValueError:
                pass
    for i, n in enumerate(names):
        vals = [c[i] for c in per.values()]
        out[n] = {"value": coef[i], "min": min(vals + [coef[i]]),
                  "max": max(vals + [coef[i]])}
    return out


# ---- constants from the results file ----------------------------------------

def read_jsonl(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def load_results(path):
    with open(path) as f:
        res = json.load(f)
    base = os.path.dirname(os.path.abspath(path))
    res["unit_runs"] = read_jsonl(os.path.join(base, res["unit_costs_file"]))
    res["scaling_runs"] = read_jsonl(os.path.join(base, res["scaling_file"]))
    hot = res.get("scaling_hot_file")
    if hot and os.path.exists(os.path.join(base, hot)):
        res["hot_runs"] = read_jsonl(os.path.join(base, hot))
    fl = res.get("scaling_flush_file")
    if fl and os.path.exists(os.path.join(base, fl)):
        res["flush_runs"] = read_jsonl(os.path.join(base, fl))
    return res


def constants(res):
    """Every constant of the model: {name: {"value", "min", "max", "unit", "source"}}."""
    c = {}

    def put(name, mr, unit, source, scale=1.0):
        if mr is None:
            return
        c[name] = {"value": mr["median"] * scale, "min": mr["min"] * scale,
                   "max": mr["max"] * scale, "n": mr.get("n"), "unit": unit,
                   "source": source}

    units = res["unit_runs"]

    def uv(kind, key="value"):
        return med_range([r.get(key) for r in units if r["kind"] == kind
                          and r.get("errors", 0) == 0])

    src = "unit_costs.py (%s)" % res["unit_costs_file"]
    # per frame: a process holding 10k-19k subscribers (the regime of a loaded
    # node); 2k subscribers on one URL cost less per frame (cache-resident)
    for tr in ("ws", "sse"):
        big = [r["value"] for r in units if r["kind"] == "frame_" + tr
               and r.get("errors", 0) == 0 and r["subscribers"] >= 10000]
        small = [r["value"] for r in units if r["kind"] == "frame_" + tr
                 and r.get("errors", 0) == 0 and r["subscribers"] < 10000]
        put("cpu_frame_" + tr, med_range(big), "ns",
            src + ", frame_%s at 10k-19k subscribers" % tr)
        put("cpu_frame_%s_2k" % tr, med_range(small), "ns",
            src + ", frame_%s at 2k subscribers" % tr)
    put("cpu_connect_ws", uv("connect_ws"), "ns", src + ", connect_ws")
    put("cpu_connect_sse", uv("connect_sse"), "ns", src + ", connect_sse")
    put("rss_subscriber_ws", uv("connect_ws", "rss_per_subscriber_kb"), "B",
        src + ", connect_ws", 1024)
    put("rss_subscriber_sse", uv("connect_sse", "rss_per_subscriber_kb"), "B",
        src + ", connect_sse", 1024)
    put("kernel_bytes_per_idle_socket", uv("connect_ws", "kernel_bytes_per_socket"), "B",
        src + ", connect_ws (slab + TCP pages while connected, / 2 ends)")
    put("cpu_like_single", uv("like_single"), "ns", src + ", like_single")
    put("cpu_like_batch", uv("like_batch"), "ns", src + ", like_batch")
    put("rss_url", uv("url"), "B", src + ", url")
    put("db_bytes_url", uv("url", "db_bytes_per_url_insert"), "B", src + ", url")
    put("db_bytes_url_update", uv("url", "db_bytes_growth_per_url_update"), "B",
        src + ", url (database + WAL growth when every URL changes once more)")
    # flush wall time per URL row over both rounds (insert, then update): the
    # rounds' boundary in the metrics is not exact, their sum is
    put("flush_us_url_unit", med_range([
        (r["flush_us_per_url_insert"] + r["flush_us_per_url_update"]) / 2
        for r in units if r["kind"] == "url"]), "us",
        src + ", url (batcher wall time per URL written, 500k-URL flushes)")
    put("cpu_url_flush", med_range([
        r["cpu_ns_per_url_update_incl_flush"] for r in units if r["kind"] == "url"]), "ns",
        src + ", url (server CPU per changed URL in a batch, incl. its flush)")
    put("rss_idem_key", uv("idem"), "B", src + ", idem")
    keyed = med_range([r["cpu_ns_per_like_keyed"] - r["cpu_ns_per_like_unkeyed"]
                       for r in units if r["kind"] == "idem"])
    put("cpu_idem_key", keyed, "ns", src + ", idem (keyed - unkeyed single like)")

    # scaling runs: only those that reached their change rate's neighbourhood
    sc = [r for r in res["scaling_runs"] if r.get("resyncs", 0) == 0]
    ssrc = "scaling_bench.py (%s)" % res["scaling_file"]
    # the fits also take the hot-URL runs (one URL on every writer: many
    # 1-URL messages), which separate the cost per message from the cost per
    # URL in it
    hot = [r for r in res.get("hot_runs", []) if r.get("resyncs", 0) == 0]
    if hot:
        ssrc = "scaling_bench.py (%s + %s)" % (res["scaling_file"], res["scaling_hot_file"])
    fitruns = sc + hot
    loaded = [r for r in sc if r["changed_urls_per_s"] > 500]
    # observer node: hears every change, takes none
    f = fit_with_range(
        fitruns, lambda r: [1.0, r["changed_urls_per_s"], r["obs_msgs_per_s"]],
        lambda r: r["obs_cpu_s_per_s"], ["idle_s", "per_change_s", "per_msg_s"])
    c["fit_observer"] = f
    c["cpu_node_idle"] = dict(_fitc(f["idle_s"], 1e9), unit="ns/s",
                              source=ssrc + ", observer fit")
    c["cpu_remote_change"] = dict(_fitc(f["per_change_s"], 1e9), unit="ns",
                                  source=ssrc + ", observer fit (incl. its flush)")
    c["cpu_remote_msg"] = dict(_fitc(f["per_msg_s"], 1e9), unit="ns",
                               source=ssrc + ", observer fit")
    # writer's own change: ingest in small batches + ZADD/PUBLISH push
    # runs where each writer changes >= 2000 URLs/s (CPU time has 10 ms steps)
    own = med_range([(r["writer_cpu_s_per_s_mean"] - r["obs_cpu_s_per_s"])
                     / (r["changed_urls_per_s"] / r["nodes"]) * 1e9 for r in loaded
                     if r["changed_urls_per_s"] / r["nodes"] >= 2000])
    put("cpu_own_change", own, "ns", ssrc + ", (writer - observer) / own changed URL")
    # Redis: per ZADD, per message delivered to a subscriber, per URL line in
    # it. Two regimes identify them: the hot runs deliver many 1-URL messages
    # (the cost per message), the spread runs few messages of up to 512 URLs
    # (the cost per URL line). Stage 1 fits the cost per message on the hot
    # runs, stage 2 the rest on the spread runs with it fixed. (One fit over
    # both puts the per-URL cost of big messages on the message: 7-8 us, and
    # over-predicts the hot runs by ~40 %.)
    def deliveries(r):
        return r["redis"]["publish_per_s"] * (r["nodes"] + 2)

    zadd0 = 1.3e-6
    if hot:
        h = fit_with_range(
            hot, lambda r: [1.0, deliveries(r)],
            lambda r: r["redis"]["cpu_s_per_s"] - zadd0 * r["redis"]["zadd_per_s"],
            ["idle_s", "per_delivery_s"])
        per_delivery = h["per_delivery_s"]
        c["fit_redis_hot"] = h
    else:
        per_delivery = {"value": 0.0, "min": 0.0, "max": 0.0}
    g = fit_with_range(
        sc, lambda r: [1.0, r["redis"]["zadd_per_s"], r["changed_urls_per_s"] * (r["nodes"] + 2)],
        lambda r: r["redis"]["cpu_s_per_s"] - per_delivery["value"] * deliveries(r),
        ["idle_s", "per_zadd_s", "per_url_delivered_s"])
    g["per_delivery_s"] = per_delivery
    c["fit_redis"] = g
    c["redis_cpu_idle"] = dict(_fitc(g["idle_s"], 1e9), unit="ns/s", source=ssrc + ", Redis fit")
    c["redis_cpu_zadd"] = dict(_fitc(g["per_zadd_s"], 1e9), unit="ns", source=ssrc + ", Redis fit")
    c["redis_cpu_delivery"] = dict(_fitc(g["per_delivery_s"], 1e9), unit="ns",
                                   source=ssrc + ", Redis fit (a message to one subscriber)")
    c["redis_cpu_url_delivered"] = dict(_fitc(g["per_url_delivered_s"], 1e9), unit="ns",
                                        source=ssrc + ", Redis fit (a URL line to one subscriber)")
    put("bytes_change_received", med_range(
        [r["obs_bytes_per_s"] / r["changed_urls_per_s"] for r in loaded]), "B",
        ssrc + ", observer bytes received / changed URL")
    put("redis_in_bytes_change", med_range(
        [r["redis"]["net_in_Bps"] / r["changed_urls_per_s"] for r in loaded]), "B",
        ssrc + ", Redis input / changed URL (ZADD + PUBLISH)")
    put("zadd_per_change", med_range(
        [r["redis"]["zadd_per_s"] / r["changed_urls_per_s"] for r in loaded]), "",
        ssrc + ", ZADD / changed URL")
    fl = [r for r in res.get("flush_runs", []) if r.get("obs_flush_rows_per_s", 0) > 2000]
    if fl:  # cross-check: ~5k rows per flush, so each commit's fixed cost weighs in
        put("flush_us_url_observer", med_range(
            [r["obs_flush_busy"] / r["obs_flush_rows_per_s"] * 1e6 for r in fl]), "us",
            "scaling_bench.py (%s), observer: batcher wall time per remote-changed URL row "
            "at ~5k rows per flush" % res["scaling_flush_file"])
    # the model: large flushes (the case where the batcher is the limit)
    c["flush_us_url_update"] = dict(c["flush_us_url_unit"])
    for k, v in res.get("quoted", {}).items():
        c[k] = dict(v, n="quoted")
    return c


def _fitc(f, scale):
    return {"value": f["value"] * scale, "min": f["min"] * scale, "max": f["max"] * scale}


def cv(c, name):
    return c[name]["value"]


# ---- the model --------------------------------------------------------------

PUSH_CHUNK = 512  # URLs per PUBLISH (src/bridge.c)


def changed_per_s(urls, likes_per_s, tick_s):
    """Distinct URLs changed per second when likes_per_s fall uniformly (Poisson)
    over `urls` URLs: each URL changes in a tick with probability 1-exp(-lambda T)."""
    if urls <= 0 or likes_per_s <= 0:
        return 0.0
    lam = likes_per_s / urls
    return urls * (-math.expm1(-lam * tick_s)) / tick_s


def workload(t):
    """Rates the target implies, independent of the deployment."""
    tick = t["tick_ms"] / 1000.0
    v, h, u, lk = t["viewers"], t["hot_url_viewers"], t["live_urls"], t["likes_per_s"]
    h = min(h, v)
    hot_likes = t.get("hot_url_likes")
    if hot_likes is None:
        hot_likes = lk * h / v if v else 0.0
    rest_urls = max(0, u - (1 if h else 0))
    rest_likes = max(0.0, lk - hot_likes)
    p_hot = -math.expm1(-hot_likes * tick) if h else 0.0
    p_rest = -math.expm1(-(rest_likes / rest_urls) * tick) if rest_urls and rest_likes else 0.0
    frames = (h * p_hot + (v - h) * p_rest) / tick
    x = (p_hot + rest_urls * p_rest) / tick
    connects = t.get("connects_per_s")
    if connects is None:
        connects = v / t["dwell_s"]
    # distinct URLs changed per flush interval (1 s): the rows a flush writes
    f_hot = -math.expm1(-hot_likes) if h else 0.0
    f_rest = -math.expm1(-(rest_likes / rest_urls)) if rest_urls and rest_likes else 0.0
    return {"frames_per_s": frames, "changed_urls_per_s": x, "hot_changes_per_s": p_hot / tick,
            "changed_urls_per_flush_s": f_hot + rest_urls * f_rest,
            "connects_per_s": connects, "likes_per_s": lk, "hot_likes_per_s": hot_likes,
            "rest_likes_per_url_per_s": rest_likes / rest_urls if rest_urls else 0.0,
            "held_urls": t.get("held_urls") or u, "stored_urls": t.get("stored_urls") or u}


def node_count_effects(t, w, n, c):
    """What depends on the node count N: ZADDs (a URL liked on k nodes in a tick
    is pushed by k nodes), messages published and delivered. Design options:
    t["ingest_nodes"] = I > 0: likes go to I ingest nodes only (they publish,
    the N viewer nodes do not); t["interest"]: a node receives only the
    changes of URLs it has viewers for (share f, interest_fraction)."""
    tick = t["tick_ms"] / 1000.0
    writers = t.get("ingest_nodes") or n
    listeners = n  # ingest nodes need not subscribe
    f = interest_fraction(t, n) if t.get("interest") else 1.0
    # hot URL: its likes spread over the nodes taking likes
    hot = w["hot_likes_per_s"] / writers
    zadd_hot = writers * (-math.expm1(-hot * tick)) / tick if w["hot_likes_per_s"] else 0.0
    lam = w["rest_likes_per_url_per_s"]
    rest_urls = max(0, t["live_urls"] - (1 if t["hot_url_viewers"] else 0))
    zadd_rest = rest_urls * writers * (-math.expm1(-(lam / writers) * tick)) / tick \
        if lam else 0.0
    zadds = zadd_hot + zadd_rest
    per_node_tick = zadds * tick / writers  # URLs one writer pushes per tick
    ticks_with_changes = min(1.0, per_node_tick)
    msgs = writers * (ticks_with_changes / tick) * max(1.0, math.ceil(per_node_tick / PUSH_CHUNK)) \
        if zadds else 0.0
    # every node also publishes a heartbeat each second on the same channel
    # (src/bridge.c beat()), which every node hears: N^2 deliveries/s; with
    # interest routing a node would need only its own back
    beats = n + (t.get("ingest_nodes") or 0)
    beat_heard = 1 if t.get("interest") else listeners
    deliveries = msgs * listeners * f + beats * beat_heard  # today: f = 1
    url_deliveries = zadds * listeners * f
    return {"zadd_per_s": zadds, "publish_per_s": msgs + beats, "deliveries_per_s": deliveries,
            "url_lines_delivered_per_s": url_deliveries,
            "messages_heard_per_node": msgs * f + beat_heard,
            "interest": f, "writers": writers, "hot_share": zadd_hot / zadds if zadds else 0.0}


def plan_once(t, c):
    """Sizes today's design for the target: machines, per-machine and Redis
    loads, and the utilization of every resource that adding machines does
    not relieve."""
    w = workload(t)
    cores, util = t["cores"], t["max_util"]
    budget = cores * util  # CPU seconds per second a machine may spend
    tr = t["transport"]
    frame = cv(c, "cpu_frame_" + tr) * 1e-9
    conn = cv(c, "cpu_connect_" + tr) * 1e-9
    single = cv(c, "cpu_like_single") * 1e-9
    batch = cv(c, "cpu_like_batch") * 1e-9
    bshare = t["batched_share"]
    likes_cpu = w["likes_per_s"] * ((1 - bshare) * single + bshare * batch)
    ingest = t.get("ingest_nodes") or 0
    divisible = w["frames_per_s"] * frame + w["connects_per_s"] * conn \
        + (0 if ingest else likes_cpu)
    idle = cv(c, "cpu_node_idle") * 1e-9
    merge_per_change = cv(c, "cpu_remote_change") * 1e-9
    msg_cost = cv(c, "cpu_remote_msg") * 1e-9
    own = cv(c, "cpu_own_change") * 1e-9
    x = w["changed_urls_per_s"]
    rss_sub = cv(c, "rss_subscriber_" + tr)
    kernel_sub = cv(c, "kernel_bytes_per_idle_socket")
    # rss_url was measured with ~46-byte URLs (unit_costs.py url)
    per_url_mem = cv(c, "rss_url") + t["url_bytes"] - 46
    held = w["held_urls"] * (interest_fraction(t, max(1, math.ceil(
        t["viewers"] / t["max_subs_per_machine"]))) if t.get("interest") else 1.0)
    urls_mem = held * per_url_mem
    ram = t["ram_gb"] * 1e9 * util

    # machines: CPU (the merge part is paid by every machine), subscribers per
    # machine, memory; iterate since pushes and messages depend on N
    n = max(1, math.ceil(t["viewers"] / t["max_subs_per_machine"]))
    for _ in range(100):
        eff = node_count_effects(t, w, n, c)
        fixed = idle + x * merge_per_change * eff["interest"] \
            + eff["messages_heard_per_node"] * msg_cost
        room = budget - fixed
        push = 0 if ingest else eff["zadd_per_s"] * own
        n_cpu = math.ceil((divisible + push) / room) if room > 0 else n
        room_mem = ram - urls_mem - 8e6
        n_mem = math.ceil(t["viewers"] * (rss_sub + kernel_sub) / room_mem) if room_mem > 0 else n
        new_n = max(n, n_cpu, n_mem, 1)
        if new_n == n:
            break
        n = new_n
    eff = node_count_effects(t, w, n, c)
    f = eff["interest"]
    fixed = idle + x * merge_per_change * f + eff["messages_heard_per_node"] * msg_cost
    push = 0 if ingest else eff["zadd_per_s"] * own
    subs_pm = t["viewers"] / n
    procs_pm = max(1, math.ceil(subs_pm / (t["fd_limit"] - 1000)))
    node_cpu = fixed + (divisible + push) / n
    if ingest:  # the ingest tier: enough machines for the likes and their pushes
        ingest = max(ingest, math.ceil((likes_cpu + eff["zadd_per_s"] * own) / (budget - idle)))
    node_mem = subs_pm * (rss_sub + kernel_sub) + urls_mem + 8e6
    node_out = (w["frames_per_s"] / n) * t["frame_bytes"]
    node_in = x * cv(c, "bytes_change_received") * f + eff["messages_heard_per_node"] * 60
    like_in = 0 if ingest else w["likes_per_s"] / n * ((1 - bshare) * 250 + bshare * 60)
    # Redis (one instance, one thread)
    redis_cpu = (cv(c, "redis_cpu_idle") + cv(c, "redis_cpu_zadd") * eff["zadd_per_s"]
                 + cv(c, "redis_cpu_delivery") * eff["deliveries_per_s"]
                 + cv(c, "redis_cpu_url_delivered") * eff["url_lines_delivered_per_s"]) * 1e-9
    redis_out = eff["url_lines_delivered_per_s"] * cv(c, "bytes_change_received")
    redis_in = eff["zadd_per_s"] * cv(c, "redis_in_bytes_change")
    slots = min(eff["writers"], 2)
    redis_mem = w["stored_urls"] * (cv(c, "redis_bytes_url_1node")
                                    + (slots - 1) * cv(c, "redis_bytes_url_per_extra_node")
                                    + t["url_bytes"])
    # R Redis shards (Redis Cluster, sharded pub/sub): the load spreads by URL
    # hash, except that one URL's load stays on its shard
    shards = t.get("redis_shards") or 1
    per_shard = max(1.0 / shards, eff["hot_share"])
    redis_cpu *= per_shard
    redis_out *= per_shard
    redis_in *= per_shard
    redis_mem /= shards
    node_db = w["stored_urls"] * cv(c, "db_bytes_url")
    # every node writes every URL changed in a flush interval (1 s) to SQLite
    flush_rows = w["changed_urls_per_flush_s"] * f
    nic = t["nic_gbit"] * 1e9 / 8
    frac = interest_fraction(t, n)
    res = []
    held_now = held

    def add(name, used, cap, what, fix, effect):
        res.append({"resource": name, "utilization": used / cap if cap else math.inf,
                    "used": used, "capacity": cap, "what": what, "design_change": fix,
                    "effect": effect})

    add("node_merge", fixed, util,
        "every node hears and merges every changed URL of the cluster on its main "
        "(dispatcher) and bridge threads: %.0f changed URLs/s x %.2f us + %.0f messages/s "
        "x %.0f us, out of one core" % (x * f, merge_per_change * 1e6,
                                        eff["messages_heard_per_node"], msg_cost * 1e6),
        "partition lc:changes by URL hash; a node subscribes only to the partitions of "
        "URLs it has viewers for (interest routing, as LinkedIn's dispatchers)",
        "merge work per node x%.2g (share of live URLs with a viewer on a node)" % frac)
    add("node_flush", flush_rows * cv(c, "flush_us_url_update") * 1e-6, util,
        "every node writes every URL changed in the cluster to its own SQLite "
        "(%.0f rows/s on one batcher thread)" % flush_rows,
        "each node persists only its own slots (or one durable store per partition)",
        "rows per node x1/N")
    add("node_url_table", held_now * per_url_mem,
        ram - subs_pm * (rss_sub + kernel_sub),
        "every node holds every liked URL in memory, liked URLs are never evicted "
        "(%.3g URLs x %.0f B; raise max_urls past 5M)" % (held_now, per_url_mem),
        "evict liked URLs without viewers once flushed (the count stays in SQLite/Redis); "
        "with interest routing a node holds only URLs it serves",
        "held URLs per node x%.2g" % frac)
    add("redis_cpu", redis_cpu, t["redis_util"],
        "one Redis thread: a ZADD per URL per node per tick (%.3g/s) and every message to "
        "every node (%.3g deliveries/s, %.3g URL lines/s)"
        % (eff["zadd_per_s"], eff["deliveries_per_s"], eff["url_lines_delivered_per_s"]),
        "Redis Cluster with sharded pub/sub (SPUBLISH to the URL's shard channel) over R "
        "shards, nodes subscribing by interest; likes through an ingest tier so that a hot "
        "URL is pushed by a few ingest nodes, not by all N",
        "ZADD / R; deliveries x%.2g / R" % frac)
    add("redis_nic_out", redis_out, nic,
        "Redis sends every changed URL to every node (%.3g MB/s)" % (redis_out / 1e6),
        "sharded pub/sub + interest routing", "x%.2g, then / R shards" % frac)
    add("redis_memory", redis_mem, t["ram_gb"] * 1e9 * 0.8,
        "every URL ever liked is a sorted set in the one Redis (%.3g GB)" % (redis_mem / 1e9),
        "Redis Cluster (memory / R); cold counts only in the durable store "
        "(expire the keys of URLs idle for a day)", "memory / R, hot set only")
    add("node_memory", node_mem, t["ram_gb"] * 1e9,
        "subscribers (%.0f per machine) + every held URL" % subs_pm, "more machines", "")
    add("node_nic_out", node_out, nic, "frames to viewers (%.3g MB/s per machine)"
        % (node_out / 1e6), "more machines", "linear")
    return {
        "target": t, "workload": w, "machines": n + ingest,
        "processes": n * procs_pm + ingest,
        "processes_per_machine": procs_pm, "workers_per_process": cores,
        "redis_instances": shards, "ingest_machines": ingest, "interest_fraction": frac,
        "per_machine": {
            "cpu_cores_used": node_cpu, "cpu_fixed_cores": fixed,
            "subscribers": subs_pm, "memory_GB": node_mem / 1e9,
            "net_out_MBps": node_out / 1e6, "net_in_MBps": (node_in + like_in) / 1e6,
            "sqlite_rows_per_s": flush_rows, "sqlite_GB": node_db / 1e9},
        "redis": {"cpu_cores": redis_cpu, "zadd_per_s": eff["zadd_per_s"],
                  "publish_per_s": eff["publish_per_s"],
                  "deliveries_per_s": eff["deliveries_per_s"],
                  "net_out_MBps": redis_out / 1e6, "net_in_MBps": redis_in / 1e6,
                  "memory_GB": redis_mem / 1e9},
        "resources": res,
    }


SCALED = ("viewers", "hot_url_viewers", "hot_url_likes", "likes_per_s", "live_urls",
          "held_urls", "stored_urls", "connects_per_s")
HARD = ("node_merge", "node_flush", "node_url_table", "redis_cpu", "redis_nic_out",
        "redis_memory")


def scaled(t, k):
    u = dict(t)
    for f in SCALED:
        if u.get(f) is not None:
            u[f] = u[f] * k
    u["live_urls"] = max(1, u["live_urls"])
    return u


def plan(t, c):
    """plan_once, plus for every hard resource the load factor (all of the
    target's rates and sizes times k) at which it reaches its capacity, found
    by bisection; the first bottleneck is the smallest."""
    p = plan_once(t, c)
    for r in p["resources"]:
        if r["resource"] not in HARD:
            continue

        def util(k, name=r["resource"]):
            q = plan_once(scaled(t, k), c)
            return next(x["utilization"] for x in q["resources"] if x["resource"] == name)
        lo, hi = 1e-6, 1e6
        if util(hi) < 1:
            r["breaks_at_load_x"] = math.inf
            continue
        if util(lo) >= 1:
            r["breaks_at_load_x"] = 0.0
            continue
        for _ in range(60):
            mid = math.sqrt(lo * hi)
            if util(mid) >= 1:
                hi = mid
            else:
                lo = mid
        r["breaks_at_load_x"] = hi
    hard = [r for r in p["resources"] if r["resource"] in HARD]
    p["first_bottleneck"] = min(hard, key=lambda r: r["breaks_at_load_x"])
    p["feasible"] = p["first_bottleneck"]["breaks_at_load_x"] >= 1
    return p


def interest_fraction(t, n):
    """Share of live URLs that have at least one viewer on a given node when
    viewers land on nodes at random: 1 - exp(-viewers per URL / N)."""
    u = max(1, t["live_urls"])
    per_url = (t["viewers"] - t["hot_url_viewers"]) / u
    f_rest = -math.expm1(-per_url / max(1, n))
    hot = 1 if t["hot_url_viewers"] else 0
    return min(1.0, (f_rest * (u - hot) + hot) / u)


# ---- predictions of measured runs (--check) ---------------------------------

def predict(run, c):
    """Predicts the measured quantities of one run described in the results file."""
    k = run["kind"]
    i = run["inputs"]
    out = {}
    if k == "fanout_cluster":
        tick = i["tick_ms"] / 1000.0
        changes = min(1.0, -math.expm1(-i["likes_per_s"] * tick)) / tick
        frames = i["subscribers"] * changes
        nodes = i["nodes"]
        cpu = (frames * cv(c, "cpu_frame_" + i["transport"])
               + i["likes_per_s"] * cv(c, "cpu_like_single")
               + nodes * cv(c, "cpu_node_idle")
               + nodes * changes * cv(c, "cpu_remote_change")) * 1e-9
        out["nodes_cpu_pct"] = 100 * cpu
        out["rss_total_MB"] = (i["subscribers"] * cv(c, "rss_subscriber_" + i["transport"])
                               + nodes * i["base_rss_kb"] * 1024) / 1e6
    elif k == "redis_traffic":
        tick = i["tick_ms"] / 1000.0
        if i.get("arrivals") == "round_robin":  # livecount-load: each URL in turn
            x = min(i["likes_per_s"], i["urls"] / tick)
        else:
            x = changed_per_s(i["urls"], i["likes_per_s"], tick)
        zadds = x * cv(c, "zadd_per_change")
        per_tick = zadds * tick / i["publishing_nodes"]
        msgs = i["publishing_nodes"] / tick * math.ceil(per_tick / PUSH_CHUNK)
        out["redis_commands_per_s"] = zadds + msgs + i.get("idle_commands_per_s", 0)
        out["redis_out_bytes_per_tick"] = x * cv(c, "bytes_change_received") * i["nodes"] * tick
        out["node_received_bytes_per_tick"] = x * cv(c, "bytes_change_received") * tick
        out["publish_per_s"] = msgs
    elif k == "redis_cpu_ingest":
        tick = i["tick_ms"] / 1000.0
        x = changed_per_s(i["urls"], i["likes_per_s"], tick)
        per_tick = x * tick
        msgs = 1 / tick * math.ceil(per_tick / PUSH_CHUNK)
        cpu = (cv(c, "redis_cpu_zadd") * x + cv(c, "redis_cpu_delivery") * msgs * i["nodes"]
               + cv(c, "redis_cpu_url_delivered") * x * i["nodes"]) * 1e-9
        out["redis_cpu_pct"] = 100 * cpu
    elif k == "redis_hot":
        # one URL liked on every one of N writers: each pushes it every tick in
        # a message of its own, and Redis delivers each to all L subscribers
        tick = i["tick_ms"] / 1000.0
        per_writer = i["likes_per_s"] / i["writers"]
        zadds = i["writers"] * (-math.expm1(-per_writer * tick)) / tick
        beats = i["listeners"]  # one heartbeat per node per second, heard by all
        cpu = (cv(c, "redis_cpu_idle") + cv(c, "redis_cpu_zadd") * zadds
               + (cv(c, "redis_cpu_delivery") + cv(c, "redis_cpu_url_delivered"))
               * zadds * i["listeners"] + cv(c, "redis_cpu_delivery") * beats * i["listeners"]) \
            * 1e-9
        out["redis_cpu_pct"] = 100 * cpu
        out["publish_per_s"] = zadds + beats
    else:
        raise ValueError("unknown run kind " + k)
    return out


def hot_validation(res):
    """Validation entries from the hot-URL runs (scaling_bench.py --hot): one
    per node count, measured = the median of its runs."""
    runs = res.get("hot_runs", [])
    out = []
    for n in sorted({r["nodes"] for r in runs}):
        rs = [r for r in runs if r["nodes"] == n]
        cpu = med_range([100 * r["redis"]["cpu_s_per_s"] for r in rs])
        pub = med_range([r["redis"]["publish_per_s"] for r in rs])
        out.append({
            "name": "hot_url_%d_writers" % n,
            "source": "%s: one URL liked on %d writers (+ observer + viewer), %d runs"
                      % (res["scaling_hot_file"], n, len(rs)),
            "kind": "redis_hot",
            "inputs": {"writers": n, "listeners": n + 2, "likes_per_s": rs[0]["rate"],
                       "tick_ms": rs[0]["tick_ms"]},
            "measured": {"redis_cpu_pct": {"value": cpu["median"],
                                           "range": [cpu["min"], cpu["max"]]},
                         "publish_per_s": {"value": pub["median"],
                                           "range": [pub["min"], pub["max"]]}},
            "tolerance": 0.30})
    return out


def check(res, c, tol=None):
    rows, ok = [], True
    for run in res["validation"]:
        p = predict(run, c)
        t = run.get("tolerance", 0.30) if tol is None else tol
        for q, m in run["measured"].items():
            v = p[q]
            err = v / m["value"] - 1
            good = abs(err) <= t
            ok &= good
            rows.append({"run": run["name"], "quantity": q, "measured": m["value"],
                         "range": m.get("range"), "predicted": v, "error": err,
                         "tolerance": t, "ok": good, "source": run["source"]})
    return ok, rows


# ---- output -----------------------------------------------------------------

def fmt(v, d=3):
    if v is None:
        return "-"
    if isinstance(v, float) and (v == math.inf):
        return "inf"
    if abs(v) >= 1e9:
        return "{:.3g}".format(v)
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "{:.{}g}".format(v, d)


def print_constants(c, out):
    out.write("constant | median | range | unit | source\n")
    for k, v in c.items():
        if k.startswith("fit_"):
            continue
        out.write("%s | %s | %s..%s | %s | %s\n" % (k, fmt(v["value"]), fmt(v.get("min")),
                                                   fmt(v.get("max")), v.get("unit", ""),
                                                   v.get("source", "")))
    for k in ("fit_observer", "fit_redis_hot", "fit_redis"):
        if k not in c:
            continue
        f = c[k]
        terms = ", ".join("%s %s (%s..%s)" % (n, fmt(f[n]["value"]), fmt(f[n]["min"]),
                                             fmt(f[n]["max"]))
                          for n in f if isinstance(f[n], dict))
        out.write("%s: r2 %s over %d runs: %s\n" % (k, f["r2"], f["points"], terms))


def print_plan(p, out):
    t, w = p["target"], p["workload"]
    out.write("target: %s viewers (%s on the hottest URL), %s likes/s, %s live URLs, "
              "%s held per node, %s stored; machines of %d cores / %g GB / %g Gbit/s, "
              "tick %d ms, %s\n"
              % (fmt(t["viewers"]), fmt(t["hot_url_viewers"]), fmt(t["likes_per_s"]),
                 fmt(t["live_urls"]), fmt(w["held_urls"]), fmt(w["stored_urls"]), t["cores"],
                 t["ram_gb"], t["nic_gbit"], t["tick_ms"], t["transport"]))
    out.write("workload: %s frames/s, %s changed URLs/s (%s per flush second), %s connects/s\n"
              % (fmt(w["frames_per_s"]), fmt(w["changed_urls_per_s"]),
                 fmt(w["changed_urls_per_flush_s"]), fmt(w["connects_per_s"])))
    pm = p["per_machine"]
    what_if = [k for k, on in (("%d Redis shards" % (t.get("redis_shards") or 1),
                                (t.get("redis_shards") or 1) > 1),
                               ("interest routing", bool(t.get("interest"))),
                               ("an ingest tier", bool(t.get("ingest_nodes"))))
               if on]
    out.write("%s: %d machines%s, %d livecount processes (%d per viewer machine, "
              "workers %d), %d Redis%s\n"
              % ("with " + ", ".join(what_if) if what_if else "today's design",
                 p["machines"],
                 " (%d of them ingest)" % p["ingest_machines"] if p["ingest_machines"] else "",
                 p["processes"], p["processes_per_machine"], p["workers_per_process"],
                 p["redis_instances"], "" if p["feasible"] else
                 "  -- NOT FEASIBLE: see the first bottleneck"))
    out.write("per machine: %s subscribers, CPU %s cores (%s of them on the cluster's "
              "changes), %s GB, out %s MB/s, in %s MB/s, SQLite %s rows/s and %s GB\n"
              % (fmt(pm["subscribers"]), fmt(pm["cpu_cores_used"]), fmt(pm["cpu_fixed_cores"]),
                 fmt(pm["memory_GB"]), fmt(pm["net_out_MBps"]), fmt(pm["net_in_MBps"]),
                 fmt(pm["sqlite_rows_per_s"]), fmt(pm["sqlite_GB"])))
    r = p["redis"]
    out.write("redis: %s cores, %s ZADD/s, %s PUBLISH/s, %s deliveries/s, out %s MB/s, "
              "in %s MB/s, %s GB\n" % (fmt(r["cpu_cores"]), fmt(r["zadd_per_s"]),
                                        fmt(r["publish_per_s"]), fmt(r["deliveries_per_s"]),
                                        fmt(r["net_out_MBps"]), fmt(r["net_in_MBps"]),
                                        fmt(r["memory_GB"])))
    out.write("resources more machines do not relieve: utilization at the target, "
              "load factor at which it is full:\n")
    hard = [x for x in p["resources"] if "breaks_at_load_x" in x]
    for x in sorted(hard, key=lambda x: x["breaks_at_load_x"]):
        out.write("  %-15s %8s  x%-8s %s\n" % (x["resource"], fmt(x["utilization"]),
                                              fmt(x["breaks_at_load_x"]), x["what"]))
    f = p["first_bottleneck"]
    out.write("FIRST BOTTLENECK: %s, full at x%s of the target: %s\n  lift: %s\n  effect: %s\n"
              % (f["resource"], fmt(f["breaks_at_load_x"]), f["what"], f["design_change"],
                 f["effect"]))


def cell(vals, d=3):
    m = med_range(vals)
    if m is None:
        return "-"
    if m["n"] == 1:
        return fmt(m["median"], d)
    return "**%s** (%s–%s)" % (fmt(m["median"], d), fmt(m["min"], d), fmt(m["max"], d))


def markdown(res, c, out):
    """The tables of docs/CAPACITY.md and RESULTS.md's Capacity section."""
    out.write("#### Unit costs (medians, range over runs)\n\n")
    out.write("| constant | median | range | runs | unit | source |\n|---|---|---|---|---|---|\n")
    for k, v in c.items():
        if k.startswith("fit_"):
            continue
        out.write("| `%s` | **%s** | %s–%s | %s | %s | %s |\n"
                  % (k, fmt(v["value"]), fmt(v.get("min")), fmt(v.get("max")),
                     v.get("n") or "fit", v.get("unit", ""), v.get("source", "")))
    la = [r["loadavg_start"][0] for r in res["unit_runs"]]
    out.write("\nUnit-cost runs: %d, 1-min load average at their start %s–%s.\n\n"
              % (len(la), fmt(min(la)), fmt(max(la))))
    for k in ("fit_observer", "fit_redis_hot", "fit_redis"):
        if k not in c:
            continue
        f = c[k]
        out.write("- `%s` (least squares over %d runs, R² %s): %s\n"
                  % (k, f["points"], f["r2"], ", ".join(
                      "%s = %s (per repetition %s–%s)" % (n, fmt(f[n]["value"]),
                                                           fmt(f[n]["min"]), fmt(f[n]["max"]))
                      for n in f if isinstance(f[n], dict))))
    out.write("\n#### Scaling curve (N writer nodes + observer + viewer, workers 1, tick 100 ms)\n\n")
    out.write("| N | target changed URLs/s | reached | observer CPU ms/s | observer ns per change "
              "| writer CPU ms/s | Redis CPU ms/s | Redis ns per change | Redis out MB/s "
              "| PUBLISH/s | cross-node p50 ms | p99 ms | load avg | runs |\n")
    out.write("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    cells = {}
    for r in res["scaling_runs"]:
        cells.setdefault((r["nodes"], r["rate"]), []).append(r)
    for (n, rate), rs in sorted(cells.items()):
        x = [r["changed_urls_per_s"] for r in rs]
        out.write("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n" % (
            n, "{:,}".format(rate), cell(x),
            cell([1e3 * r["obs_cpu_s_per_s"] for r in rs]),
            cell([1e9 * r["obs_cpu_s_per_s"] / r["changed_urls_per_s"] for r in rs])
            if rate else "-",
            cell([1e3 * r["writer_cpu_s_per_s_mean"] for r in rs]),
            cell([1e3 * r["redis"]["cpu_s_per_s"] for r in rs]),
            cell([1e9 * r["redis"]["cpu_s_per_s"] / r["changed_urls_per_s"] for r in rs])
            if rate else "-",
            cell([r["redis"]["net_out_Bps"] / 1e6 for r in rs]),
            cell([r["redis"]["publish_per_s"] for r in rs]),
            cell([r["view"]["p50"] for r in rs if "p50" in r.get("view", {})]),
            cell([r["view"]["p99"] for r in rs if "p99" in r.get("view", {})]),
            "%s–%s" % (fmt(min(r["loadavg_start"][0] for r in rs)),
                       fmt(max(r["loadavg_start"][0] for r in rs))), len(rs)))
    hv = hot_validation(res)
    if hv:
        out.write("\n#### One URL liked on every writer (`scaling_bench.py --hot`, "
                  "1000 likes/s in all)\n\n")
        out.write("| writers N | PUBLISH/s | model | Redis CPU % | model (fit incl. these runs) "
                  "| observer CPU ms/s | load avg | runs |\n|---|---|---|---|---|---|---|---|\n")
        for v in hv:
            n = v["inputs"]["writers"]
            rs = [r for r in res["hot_runs"] if r["nodes"] == n]
            p = predict(v, c)
            m = v["measured"]
            out.write("| %d | **%s** (%s–%s) | %s | **%s** (%s–%s) | %s | %s | %s–%s | %d |\n" % (
                n, fmt(m["publish_per_s"]["value"]), *[fmt(x) for x in m["publish_per_s"]["range"]],
                fmt(p["publish_per_s"]), fmt(m["redis_cpu_pct"]["value"]),
                *[fmt(x) for x in m["redis_cpu_pct"]["range"]], fmt(p["redis_cpu_pct"]),
                cell([1e3 * r["obs_cpu_s_per_s"] for r in rs]),
                fmt(min(r["loadavg_start"][0] for r in rs)),
                fmt(max(r["loadavg_start"][0] for r in rs)), len(rs)))
    out.write("\n#### Predictions of measured runs (`capacity.py --check`)\n\n")
    out.write("| run | quantity | measured | predicted | error |\n|---|---|---|---|---|\n")
    ok, rows = check(res, c)
    for r in rows:
        out.write("| %s | %s | %s%s | %s | %+.0f %% |\n"
                  % (r["run"], r["quantity"], fmt(r["measured"]),
                     " (%s–%s)" % tuple(fmt(v) for v in r["range"]) if r["range"] else "",
                     fmt(r["predicted"]), 100 * r["error"]))


def finite(v):
    """JSON has no infinity: a resource that never fills reads null."""
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return None
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [finite(x) for x in v]
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=DEFAULT_RESULTS)
    ap.add_argument("--viewers", type=float, default=1e6, help="concurrent subscribers")
    ap.add_argument("--likes-per-s", type=float, default=1e4)
    ap.add_argument("--live-urls", type=float, default=1e6,
                    help="URLs with viewers (likes spread over them)")
    ap.add_argument("--hot-url-viewers", type=float, default=0,
                    help="viewers of the hottest URL (the rest spread evenly)")
    ap.add_argument("--hot-url-likes", type=float, default=None,
                    help="likes/s to the hottest URL (default: its share of viewers)")
    ap.add_argument("--held-urls", type=float, default=None,
                    help="liked URLs held in memory per node (default: live URLs)")
    ap.add_argument("--stored-urls", type=float, default=None,
                    help="URLs with a count in Redis and SQLite (default: live URLs)")
    ap.add_argument("--connects-per-s", type=float, default=None,
                    help="subscriber connects/s (default: viewers / --dwell-s)")
    ap.add_argument("--dwell-s", type=float, default=120.0)
    ap.add_argument("--cores", type=int, default=16, help="cores per machine")
    ap.add_argument("--ram-gb", type=float, default=64)
    ap.add_argument("--nic-gbit", type=float, default=10)
    ap.add_argument("--max-util", type=float, default=0.7, help="CPU/RAM share to plan for")
    ap.add_argument("--redis-util", type=float, default=0.8,
                    help="share of Redis's one thread to plan for")
    ap.add_argument("--tick-ms", type=int, default=100)
    ap.add_argument("--transport", choices=("ws", "sse"), default="ws")
    ap.add_argument("--batched-share", type=float, default=0.0,
                    help="share of likes arriving in batches (an ingest tier) rather than single POSTs")
    ap.add_argument("--fd-limit", type=int, default=1048576)
    ap.add_argument("--max-subs-per-machine", type=float, default=100000,
                    help="subscribers per machine (LinkedIn's frontends: 100k; measured here: 100k on one box)")
    ap.add_argument("--max-urls", type=int, default=5000000)
    ap.add_argument("--url-bytes", type=int, default=60)
    ap.add_argument("--frame-bytes", type=int, default=200,
                    help="bytes on the wire per update frame (payload + headers)")
    ap.add_argument("--redis-shards", type=int, default=1,
                    help="what if: R Redis instances (Redis Cluster + sharded pub/sub)")
    ap.add_argument("--interest", action="store_true",
                    help="what if: the change channel is partitioned and a node hears only "
                    "URLs it has viewers for (and holds only those)")
    ap.add_argument("--ingest-nodes", type=int, default=0,
                    help="what if: likes go to an ingest tier of at least this many machines, "
                    "viewer nodes take none")
    ap.add_argument("--constants", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="predict the measured runs of the results file; exit 1 if one is off by more than its tolerance")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", action="store_true",
                    help="the constants, the scaling curve and the checks as Markdown tables")
    a = ap.parse_args(argv)
    res = load_results(a.results)
    c = constants(res)
    out = sys.stdout
    if a.markdown:
        markdown(res, c, out)
        return 0
    if a.constants:
        if a.json:
            json.dump(c, out, indent=1, default=str)
            out.write("\n")
        else:
            print_constants(c, out)
        return 0
    if a.check:
        ok, rows = check(res, c)
        if a.json:
            json.dump(rows, out, indent=1)
            out.write("\n")
        else:
            for r in rows:
                out.write("%-4s %s %s: measured %s predicted %s (%+.0f %%, tolerance %.0f %%)\n"
                          % ("ok" if r["ok"] else "OFF", r["run"], r["quantity"],
                             fmt(r["measured"]), fmt(r["predicted"]), 100 * r["error"],
                             100 * r["tolerance"]))
        return 0 if ok else 1
    t = {"viewers": a.viewers, "likes_per_s": a.likes_per_s, "live_urls": a.live_urls,
         "hot_url_viewers": a.hot_url_viewers, "hot_url_likes": a.hot_url_likes,
         "held_urls": a.held_urls, "stored_urls": a.stored_urls,
         "connects_per_s": a.connects_per_s, "dwell_s": a.dwell_s, "cores": a.cores,
         "ram_gb": a.ram_gb, "nic_gbit": a.nic_gbit, "max_util": a.max_util,
         "redis_util": a.redis_util, "tick_ms": a.tick_ms, "transport": a.transport,
         "batched_share": a.batched_share, "fd_limit": a.fd_limit,
         "max_subs_per_machine": a.max_subs_per_machine, "max_urls": a.max_urls,
         "url_bytes": a.url_bytes, "frame_bytes": a.frame_bytes,
         "redis_shards": a.redis_shards, "interest": a.interest,
         "ingest_nodes": a.ingest_nodes}
    p = plan(t, c)
    if a.json:
        json.dump(finite(p), out, indent=1, default=lambda v: None)
        out.write("\n")
    else:
        print_plan(p, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
