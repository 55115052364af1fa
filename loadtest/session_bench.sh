#!/usr/bin/env bash
# session_bench.sh: before/after benchmarks for issues 17, 18, 19 and 21.1
# (the "Session: issues 17–19, 21" section of RESULTS.md).
#
#   loadtest/session_bench.sh s1|mixed|fanout|all
#
# Two builds run alternately, run by run, with a fresh server each:
#   BASE_BUILD   the baseline commit's build dir (default /work/wt-base/build)
#   MID_BUILD    an intermediate commit's build dir, with S1_VARIANTS="base mid head"
#   LC_BUILD_DIR this tree's build dir (default build/)
# Every run's 1-min load average is saved next to its output; the report
# (session_report.py) quotes medians, ranges and server CPU per unit from
# /proc/<pid>/stat, which is steadier than throughput on a shared machine.
#
#   s1      wrk -t1 -c64 POST /v1/likes?url= (the S1 command), server CPU per
#           request from /proc, base vs head
#   mixed   10k-item batches: likes only vs 10 view batches per like batch
#           (livecount-load --views-per-like 10), head only
#   fanout  WS, one hot URL, 100 likes/s, 1k/10k/19k subscribers joining at
#           the tool's fastest ramp: base, head (watching on, default 1000 ms),
#           head with --watching-interval-ms 600000 (watching frames off)
#
# Environment: RUNS (3), DUR (10), SIZES ("1000 10000 19000"), OUT (raw
# outputs; default a new temp dir), LC_WORKERS (nproc).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
HEAD_BUILD=${LC_BUILD_DIR:-$ROOT/build}
BASE_BUILD=${BASE_BUILD:-/work/wt-base/build}
LOAD=$HEAD_BUILD/livecount-load
RUNS=${RUNS:-3}
DUR=${DUR:-10}
SIZES=${SIZES:-1000 10000 19000}
WORKERS=${LC_WORKERS:-$(nproc)}
MID_BUILD=${MID_BUILD:-}
S1_VARIANTS=${S1_VARIANTS:-base head}
TICK_MS=100
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lc-session.XXXXXX")}
mkdir -p "$OUT"
log() { echo "session_bench: $*" >&2; }

for b in "$HEAD_BUILD" "$BASE_BUILD"; do
	[[ -x $b/livecount ]] || { log "no $b/livecount: build it first"; exit 1; }
done
[[ -x $LOAD ]] || { log "no $LOAD"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVER_PID=""
cleanup() {
	local rc=$?
	[[ -n "$SERVER_PID" ]] && stop_server
	log "raw outputs in $OUT"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

N=0
start_server() { # build-dir extra-flags...
	local build=$1
	shift
	N=$((N + 1))
	PORT=$(free_port)
	mkdir -p "$OUT/db$N"
	"$build/livecount" --port "$PORT" --db "$OUT/db$N/lc.db" --workers "$WORKERS" \
		--tick-ms "$TICK_MS" "$@" >"$OUT/server$N.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 300); do
		kill -0 "$SERVER_PID" 2>/dev/null || { log "server exited"; tail "$OUT/server$N.log" >&2; exit 1; }
		curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0
		sleep 0.1
	done
	log "server did not start"
	exit 1
}

stop_server() {
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

cpu_s() { # pid: utime+stime in seconds
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

note() { # name build command...
	local name=$1
	shift
	echo "$*" >"$OUT/$name.cmd"
	cut -d' ' -f1-3 /proc/loadavg >"$OUT/$name.loadavg"
	log "$name (load average $(cut -d' ' -f1 /proc/loadavg))"
}

run_load() { # name livecount-load args...
	local name=$1
	shift
	note "$name" "livecount-load $* --target http://127.0.0.1:PORT --tick-ms $TICK_MS --server-pid PID" \
		"# server: livecount --port PORT --db DB --workers $WORKERS --tick-ms $TICK_MS ${SERVER_FLAGS:-}"
	timeout 600 "$LOAD" "$@" --target "http://127.0.0.1:$PORT" --tick-ms "$TICK_MS" \
		--server-pid "$SERVER_PID" --quiet >"$OUT/$name.json" 2>"$OUT/$name.err" || true
	python3 - "$OUT/$name.json" <<'PY' >&2 || true
import json, sys
try:
    d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
    print(f"   errors={d['errors']} items/s={d.get('items_per_s')} msgs/s={d['msgs_per_s']} "
          f"p99={d['latency_ms']['p99']} cpu%={d.get('server_cpu_pct')} delivered={d['delivered_ratio']}")
except Exception as e:
    print(f"   no summary ({e})")
PY
}

build_of() {
	case $1 in
	base) echo "$BASE_BUILD" ;;
	mid) echo "$MID_BUILD" ;;
	*) echo "$HEAD_BUILD" ;;
	esac
}

# ---- S1: single-like POST (wrk), server CPU per request ----------------------
do_s1() {
	command -v wrk >/dev/null || { log "wrk missing (apt-get install wrk)"; return 1; }
	local lua="$OUT/post.lua" path="/v1/likes?url=https%3A%2F%2Fbench.livecount.test%2Fs1"
	printf 'wrk.method = "POST"\nwrk.body = ""\n' >"$lua"
	local vs=($S1_VARIANTS)
	for i in $(seq "$RUNS"); do
		# rotate the order run by run
		local order=("${vs[@]:$(((i - 1) % ${#vs[@]}))}" "${vs[@]:0:$(((i - 1) % ${#vs[@]}))}")
		for v in "${order[@]}"; do
			local name="s1_${v}_$i"
			start_server "$(build_of "$v")"
			note "$name" "wrk -t1 -c64 -d${DUR}s --latency -s post.lua 'http://127.0.0.1:PORT$path'"
			local c0 c1 t0 t1
			c0=$(cpu_s "$SERVER_PID")
			t0=$(date +%s.%N)
			timeout $((DUR + 60)) wrk -t1 -c64 -d"${DUR}s" --latency -s "$lua" \
				"http://127.0.0.1:$PORT$path" >"$OUT/$name.wrk" 2>&1 || true
			c1=$(cpu_s "$SERVER_PID")
			t1=$(date +%s.%N)
			echo "$c0 $c1 $t0 $t1" >"$OUT/$name.cpu"
			curl -s "http://127.0.0.1:$PORT/v1/counts?url=https%3A%2F%2Fbench.livecount.test%2Fs1" \
				>"$OUT/$name.count" || true
			grep -E 'Requests/sec|Non-2xx' "$OUT/$name.wrk" | sed 's/^/   /' >&2 || true
			stop_server
		done
	done
}

# ---- issue 19 (a): mixed ingest vs likes only, same commit -------------------
do_mixed() {
	for i in $(seq "$RUNS"); do
		local order="0 10"
		((i % 2 == 0)) && order="10 0"
		for v in $order; do
			start_server "$HEAD_BUILD"
			SERVER_FLAGS="" run_load "mixed_v${v}_$i" ingest --batch 10000 --connections 4 \
				--duration "$DUR" --urls 10000 --views-per-like "$v"
			stop_server
		done
	done
}

# ---- issue 19 (b, c, d) and S3: fan-out, base / watching on / off ------------
do_fanout() {
	local cfgs=(base on off)
	for n in $SIZES; do
		for i in $(seq "$RUNS"); do
			# rotate the order run by run so no config always goes first
			for k in 0 1 2; do
				local v=${cfgs[$(((k + i - 1) % 3))]}
				local flags=()
				[[ $v == off ]] && flags=(--watching-interval-ms 600000)
				start_server "$(build_of "$v")" "${flags[@]}"
				SERVER_FLAGS="${flags[*]}" run_load "fan_${v}_${n}_$i" fanout --transport ws \
					--subscribers "$n" --urls 1 --like-rate 100 --duration "$DUR" \
					--sources 8 --connect-timeout 30
				stop_server
			done
		done
	done
}

git -C "$ROOT" rev-parse --short HEAD >"$OUT/head_commit" 2>/dev/null || true
git -C "$(dirname "$BASE_BUILD")" rev-parse --short HEAD >"$OUT/base_commit" 2>/dev/null || true
case "${1:-all}" in
s1) do_s1 ;;
mixed) do_mixed ;;
fanout) do_fanout ;;
all) do_s1; do_mixed; do_fanout ;;
*) log "usage: $0 s1|mixed|fanout|all"; exit 2 ;;
esac
