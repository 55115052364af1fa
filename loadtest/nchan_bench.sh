#!/usr/bin/env bash
# nchan_bench.sh: the peer baseline of issue 13 item 3, called by bench.sh
# (`make bench`) and runnable alone.
#
# The same fan-out workloads with the same load generator against livecount
# and against nginx + nchan (Debian `nginx` and `libnginx-mod-nchan`, loaded
# with load_module from a private nginx.conf on a free loopback port), one
# URL, 10 likes/s, livecount tick 100 ms, 1000 and 10000 subscribers, WS and
# SSE, alternating livecount / nchan run by run with a fresh server each.
# nchan's publisher gets one POST per like, carrying the count the tester
# assigns in livecount's update shape (livecount-load --nchan-pub/--nchan-sub),
# so like→visible is matched the same way for both.
#
# Writes the "nchan" section of loadtest/RESULTS.md (between its markers).
# Environment: RUNS (3), DUR (10), LC_BUILD_DIR, LC_RESULTS, LC_WORKERS
# (server workers and nginx worker_processes, default nproc), NCHAN_SIZES
# ("1000 10000"), NCHAN_TRANSPORTS ("ws sse"), NCHAN_URLS (1: one hot URL;
# subscribers are spread round-robin over the URLs), NCHAN_RATE (10 likes/s
# in all, round-robin over the URLs), NCHAN_LIKE_CONNS (1; more only when no
# URL is liked twice within a round trip, since nchan takes the count the
# tester assigns in publish order).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${LC_BUILD_DIR:-$ROOT/build}
# LC_LIVECOUNT=binary: the livecount of the first row instead of
# $BUILD/livecount (e.g. a baseline build, while the load tool stays
# $BUILD/livecount-load); LC_LABEL / LC_AFTER_LABEL name the two rows.
LIVECOUNT=${LC_LIVECOUNT:-$BUILD/livecount}
# LC_AFTER_BUILD=dir: a second livecount build (e.g. after a change) run in
# the same rotation, reported as "livecount (after)".
AFTER_BUILD=${LC_AFTER_BUILD:-}
LOAD=$BUILD/livecount-load
RESULTS=${LC_RESULTS:-$HERE/RESULTS.md}
WORKERS=${LC_WORKERS:-$(nproc)}
RUNS=${RUNS:-3}
DUR=${DUR:-10}
SIZES=${NCHAN_SIZES:-1000 10000}
TRANSPORTS=${NCHAN_TRANSPORTS:-ws sse}
RATE=${NCHAN_RATE:-10}
URLS=${NCHAN_URLS:-1}
LIKE_CONNS=${NCHAN_LIKE_CONNS:-1}
TICK_MS=100

log() { echo "nchan_bench: $*" >&2; }

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
NCHAN_SO=""
for f in /usr/lib/nginx/modules/ngx_nchan_module.so /usr/share/nginx/modules/ngx_nchan_module.so; do
	[[ -f $f ]] && NCHAN_SO=$f && break
done
if [[ ! -x "$NGINX" || -z "$NCHAN_SO" ]]; then
	log "installing nginx and libnginx-mod-nchan from Debian"
	made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan >/dev/null 2>&1 || true
	[[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
	NCHAN_SO=/usr/lib/nginx/modules/ngx_nchan_module.so
fi
[[ -x "$NGINX" && -f "$NCHAN_SO" ]] || { log "no nginx/nchan: skipped"; exit 0; }
[[ -x "$LIVECOUNT" && -x "$LOAD" ]] || { log "build first"; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
OUT=${NCHAN_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lc-nchan.XXXXXX")}
mkdir -p "$OUT"
SERVER_PID="" NGINX_PID=""
cleanup() {
	local rc=$?
	[[ -n "$SERVER_PID" ]] && stop_livecount
	[[ -n "$NGINX_PID" ]] && stop_nginx
	log "raw outputs in $OUT"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_port() { # port pid path
	for _ in $(seq 300); do
		kill -0 "$2" 2>/dev/null || return 1
		curl -s -o /dev/null "http://127.0.0.1:$1$3" && return 0
		sleep 0.1
	done
	return 1
}

N=0
start_livecount() { # [binary]
	local bin=${1:-$LIVECOUNT}
	N=$((N + 1))
	PORT=$(free_port)
	mkdir -p "$OUT/db$N"
	"$bin" --bind 127.0.0.1 --port "$PORT" --db "$OUT/db$N/lc.db" --workers "$WORKERS" \
		--tick-ms "$TICK_MS" >"$OUT/livecount$N.log" 2>&1 &
	SERVER_PID=$!
	wait_port "$PORT" "$SERVER_PID" /healthz || { log "livecount did not start"; exit 1; }
	SPIDS=$SERVER_PID
}
stop_livecount() {
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

start_nginx() {
	N=$((N + 1))
	PORT=$(free_port)
	local d="$OUT/nginx$N"
	mkdir -p "$d/logs"
	cat >"$d/nginx.conf" <<NGX
load_module $NCHAN_SO;
worker_processes $WORKERS;
worker_rlimit_nofile $(ulimit -Hn);
daemon off;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections $(($(ulimit -Hn) - 100)); }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    server {
        listen 127.0.0.1:$PORT reuseport;
        # One publish per like; subscribers by WebSocket or EventSource.
        location ~ ^/pub/(.+)\$ { nchan_publisher; nchan_channel_id \$1; }
        location ~ ^/sub/(.+)\$ {
            nchan_subscriber websocket eventsource;
            nchan_channel_id \$1;
        }
        location = / { return 204; }
    }
}
NGX
	"$NGINX" -p "$d" -c "$d/nginx.conf" >"$d/logs/stdout.log" 2>&1 &
	NGINX_PID=$!
	wait_port "$PORT" "$NGINX_PID" / || { log "nginx did not start"; cat "$d/logs/error.log" >&2; exit 1; }
	sleep 0.3
	SPIDS=$(echo "$NGINX_PID" $(pgrep -P "$NGINX_PID") | tr ' ' ',')
}
stop_nginx() {
	kill -QUIT "$NGINX_PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$NGINX_PID" 2>/dev/null || true
	wait "$NGINX_PID" 2>/dev/null || true
	NGINX_PID=""
}

run() { # name extra-args...
	local name=$1
	shift
	echo "livecount-load $* --target http://127.0.0.1:PORT --server-pid PIDS" >"$OUT/$name.cmd"
	cut -d' ' -f1 /proc/loadavg >"$OUT/$name.loadavg"
	log "$name (load average $(cat "$OUT/$name.loadavg"))"
	timeout 600 "$LOAD" "$@" --target "http://127.0.0.1:$PORT" --server-pid "$SPIDS" --quiet \
		>"$OUT/$name.json" 2>"$OUT/$name.err" || true
	python3 - "$OUT/$name.json" <<'PY' >&2 || true
import json, sys
try:
    d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
    l = d["latency_ms"]
    print(f"   errors={d['errors']} p50={l['p50']} p99={l['p99']} max={l['max']} delivered={d['delivered_ratio']} cpu={d.get('server_cpu_pct')}% msgs/s={d['msgs_per_s']}")
except Exception as e:
    print(f"   no summary ({e})")
PY
}

T0=$(date +%s)
for t in $TRANSPORTS; do
	for n in $SIZES; do
		common=(fanout --transport "$t" --subscribers "$n" --urls "$URLS" --like-rate "$RATE"
			--like-conns "$LIKE_CONNS" --duration "$DUR" --tick-ms "$TICK_MS" --sources 8 --connect-timeout 30)
		for i in $(seq "$RUNS"); do
			start_livecount
			run "livecount_${t}_${n}_$i" "${common[@]}"
			stop_livecount
			if [[ -n $AFTER_BUILD ]]; then
				start_livecount "$AFTER_BUILD/livecount"
				run "lcafter_${t}_${n}_$i" "${common[@]}"
				stop_livecount
			fi
			start_nginx
			run "nchan_${t}_${n}_$i" "${common[@]}" --nchan-pub /pub/ --nchan-sub /sub/
			stop_nginx
		done
	done
done
echo $(($(date +%s) - T0)) >"$OUT/elapsed_s"

python3 - "$OUT" "$RESULTS" "$RUNS" "$DUR" "$WORKERS" "$NGINX" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" "$SIZES" "$TRANSPORTS" "$URLS" "$RATE" "$LIKE_CONNS" <<'PY'
import json, os, statistics, subprocess, sys, datetime
out, results, runs, dur, workers, nginx, commit = sys.argv[1:8]
sizes = [int(x) for x in sys.argv[8].split()]
transports = sys.argv[9].split()
nurls, rate, lconns = int(sys.argv[10]), sys.argv[11], int(sys.argv[12])
where = "One URL" if nurls == 1 else f"{nurls:,} URLs (subscribers and likes round-robin over them)"
lconn_txt = "one like connection" if lconns == 1 else f"{lconns} like connections"
servers = ["livecount"] + (["lcafter"] if os.environ.get("LC_AFTER_BUILD") else []) + ["nchan"]
label = {"livecount": os.environ.get("LC_LABEL", "livecount"),
         "lcafter": os.environ.get("LC_AFTER_LABEL", "livecount (after)"), "nchan": "nchan"}
runs = int(runs)

def load(name):
    try:
        return json.loads(open(os.path.join(out, name + ".json")).read().splitlines()[-1])
    except Exception:
        return None

def med(xs, f):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return "**" + f.format(statistics.median(xs)) + "** (" + ", ".join(f.format(x) for x in xs) + ")"

def us_per_frame(d):
    if not d or not d.get("msgs_per_s"):
        return None
    return d.get("server_cpu_pct", 0) / 100.0 / d["msgs_per_s"] * 1e6

ver = subprocess.run(["sh", "-c", f"{nginx} -v 2>&1; dpkg-query -W -f='${{Version}}' libnginx-mod-nchan 2>/dev/null"],
                     capture_output=True, text=True).stdout.replace("\n", ", ").strip(", ")
L = ["<!-- nchan:begin -->", "## Peer baseline: livecount vs nginx + nchan (fan-out)", "",
     f"Written by `loadtest/nchan_bench.sh` (called by `make bench`) on "
     f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit}`; {ver}. "
     f"{where}, {runs} run(s) of {dur} s per cell, livecount and nchan alternating run by run "
     f"with a fresh server each; livecount `--workers {workers} --tick-ms 100`, nginx "
     f"`worker_processes {workers}`; the same `livecount-load fanout` ({rate} likes/s in all, "
     f"{lconn_txt}, `--sources 8`). nchan gets one `POST /pub/<channel>` per like whose body is "
     "livecount's update shape with the count the tester assigns, so both are matched the same way. "
     "Delivered = subscribers whose last count equals the final count. CPU per delivered frame = "
     "server CPU over the like phase / frames received in it (nginx: master + workers). "
     "RSS per subscriber = (RSS with all subscribers connected − RSS before) / subscribers "
     "(nginx: summed over its processes; shared memory pages count once per process that touched them).", ""]
import glob
la = sorted(float(open(f).read()) for f in glob.glob(os.path.join(out, "*.loadavg")))
if la:
    L.append(f"1-min load average at the start of the runs: {la[0]:.1f}–{la[-1]:.1f} (median "
             f"{statistics.median(la):.1f}); the machine is shared, so compare within a row pair.")
    L.append("")
L.append("| transport | subscribers | server | delivered | p50 ms | p99 ms | max ms | server CPU µs / frame | RSS KB / subscriber | errors |")
L.append("|---|---|---|---|---|---|---|---|---|---|")
ratios = []
for t in transports:
    for n in sizes:
        cells = {}
        for srv in servers:
            rs = [load(f"{srv}_{t}_{n}_{i}") for i in range(1, runs + 1)]
            rs_ok = [r for r in rs if r]
            cells[srv] = rs_ok
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                t.upper(), f"{n:,}", label.get(srv, srv),
                med([r["delivered_ratio"] for r in rs_ok], "{:.4f}"),
                med([r["latency_ms"]["p50"] for r in rs_ok], "{:,.1f}"),
                med([r["latency_ms"]["p99"] for r in rs_ok], "{:,.1f}"),
                med([r["latency_ms"]["max"] for r in rs_ok], "{:,.1f}"),
                med([us_per_frame(r) for r in rs_ok], "{:.2f}"),
                med([r.get("server_rss_per_subscriber_kb") for r in rs_ok], "{:.2f}"),
                ", ".join(str(r["errors"]) for r in rs_ok) or "no run"))
        for lc in servers[:-1]:
          a, b = cells[lc], cells["nchan"]
          if a and b:
            p99 = statistics.median([x["latency_ms"]["p99"] for x in a]) / statistics.median([x["latency_ms"]["p99"] for x in b])
            p50 = statistics.median([x["latency_ms"]["p50"] for x in a]) / statistics.median([x["latency_ms"]["p50"] for x in b])
            cu = [us_per_frame(x) for x in a], [us_per_frame(x) for x in b]
            cr = statistics.median([x for x in cu[0] if x]) / statistics.median([x for x in cu[1] if x]) if all(cu[0]) and all(cu[1]) else float("nan")
            ratios.append(f"| {t.upper()} | {n:,} | {label[lc]} | {p50:.2f} | {p99:.2f} | {cr:.2f} |")
L += ["", "Ratios livecount / nchan (medians):", "", "| transport | subscribers | livecount | p50 | p99 | CPU per frame |", "|---|---|---|---|---|---|"] + ratios
L += ["", "```", "# per run, PORT/PIDS filled in by the script:"]
for t in transports:
    for n in sizes:
        for srv in servers:
            try:
                L.append(open(os.path.join(out, f"{srv}_{t}_{n}_1.cmd")).read().strip())
            except OSError:
                pass
L += ["```", "", "nginx.conf (nchan part): `load_module .../ngx_nchan_module.so;` "
      "`location ~ ^/pub/(.+)$ { nchan_publisher; nchan_channel_id $1; }` "
      "`location ~ ^/sub/(.+)$ { nchan_subscriber websocket eventsource; nchan_channel_id $1; }`.",
      "<!-- nchan:end -->"]
sec = "\n".join(L)
old = open(results).read() if os.path.exists(results) else ""
a, b = "<!-- nchan:begin -->", "<!-- nchan:end -->"
if a in old and b in old:
    new = old[:old.index(a)] + sec + old[old.index(b) + len(b):]
else:
    new = old.rstrip("\n") + "\n\n" + sec + "\n"
open(results, "w").write(new)
print(sec)
PY
log "updated $RESULTS"
