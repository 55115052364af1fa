#!/usr/bin/env bash
# cluster_bench.sh: the cluster-mode benchmarks of issue 11, run by
# `make bench-cluster` (all of them) or one at a time:
#
#   loadtest/cluster_bench.sh [latency|partition|traffic|ingest|big|phase|all]
#
#   latency    like→visible across nodes (subscribers on B, likes on A)
#              beside the same workload on one cluster node and on a
#              single node without Redis, alternating, 10 and 100 likes/s
#   partition  a 10 s cut between node A and Redis (a TCP proxy this
#              script starts), 1k and 100k URLs liked on A during the cut,
#              some on B: time until both show the exact total after the
#              heal, and the resync duration from /metrics
#   traffic    Redis commands/s and bytes per tick per node under 10k
#              likes/s over 1000 URLs (node /metrics and redis INFO deltas)
#   ingest     S1 (wrk, single likes) and S2 (10k-item batches) from
#              bench.sh on one node with cluster mode off/on, alternating
#   big        100,000 WebSocket subscribers over 7 nodes sharing one port
#              (--reuse-port) plus one Redis, one hot URL, 100 likes/s,
#              --tick-ms 1000 (likes go to an 8th node on its own port so
#              that every like is identified by its count; see RESULTS.md)
#   phase      10k subscribers, tick 1000 ms: the ingress node's tick in phase
#              with the subscriber nodes' vs half a tick before (why the
#              cross-node path costs about one extra tick)
#
# Every run starts its own redis-server on a free loopback port (no
# persistence) and its own nodes with temporary databases, and stops
# everything it started (by pid) on exit. Raw outputs go to $OUT (kept).
#
# Environment: RUNS (3), DUR (10), LC_BUILD_DIR (build/), BIG_SUBS (100000),
# BIG_NODES (7), BIG_PROCS (7), BIG_RAMP (5000/s), BIG_DUR (30), PART_SIZES
# ("1000 100000").
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${LC_BUILD_DIR:-$ROOT/build}
LIVECOUNT=$BUILD/livecount
LOAD=$BUILD/livecount-load
UTIL="python3 $HERE/cluster_util.py"
RUNS=${RUNS:-3}
DUR=${DUR:-10}
WHAT=${1:-all}

[[ -x "$LIVECOUNT" && -x "$LOAD" ]] || { echo "build first: $LIVECOUNT, $LOAD" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "needs redis-server" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)"
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/lc-cluster-bench.XXXXXX")}
mkdir -p "$OUT"
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "cluster_bench: outputs in $OUT (commit $COMMIT)" >&2
echo "$COMMIT" >"$OUT/commit"

log() { echo "cluster_bench: $*" >&2; }

declare -A NPID NPORT
ALL_PIDS=()
cleanup() {
	local rc=$?
	stop_all
	log "raw outputs in $OUT"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_all() {
	local p
	for p in "${ALL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${ALL_PIDS[@]}"; do
		for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ALL_PIDS=()
	NPID=() NPORT=()
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # port pid
	local i
	for i in $(seq 300); do
		kill -0 "$2" 2>/dev/null || return 1
		curl -sf -o /dev/null "http://127.0.0.1:$1/healthz" && return 0
		sleep 0.1
	done
	return 1
}

REDIS_PORT="" REDIS_PID=""
start_redis() {
	REDIS_PORT=$(free_port)
	mkdir -p "$OUT/redis-$REDIS_PORT"
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$OUT/redis-$REDIS_PORT" --maxclients 1000 \
		>"$OUT/redis-$REDIS_PORT/redis.log" 2>&1 &
	REDIS_PID=$!
	ALL_PIDS+=("$REDIS_PID")
	for _ in $(seq 100); do
		redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	log "redis did not start"
	exit 1
}

# start_node NAME PORT ARGS... (cluster flags included in ARGS by the caller)
start_node() {
	local name=$1 port=$2
	shift 2
	local db="$OUT/db-$name-$$-$RANDOM"
	mkdir -p "$db"
	echo "livecount --bind 127.0.0.1 --port PORT --db DB $*" >"$OUT/node-$name.cmd"
	"$LIVECOUNT" --bind 127.0.0.1 --port "$port" --db "$db/lc.db" "$@" \
		>"$OUT/node-$name.log" 2>&1 &
	NPID[$name]=$!
	NPORT[$name]=$port
	ALL_PIDS+=("$!")
}

wait_node() { # NAME [cluster]
	wait_http "${NPORT[$1]}" "${NPID[$1]}" || { log "node $1 did not start"; tail "$OUT/node-$1.log" >&2; exit 1; }
	if [[ "${2:-}" == cluster ]]; then
		$UTIL wait-link "${NPORT[$1]}" 30 || { log "node $1: no link to Redis"; tail "$OUT/node-$1.log" >&2; exit 1; }
	fi
}

cluster_flags() { # id
	echo "--redis-url redis://127.0.0.1:$REDIS_PORT --node-id $1"
}

# run_load NAME args... : livecount-load, JSON summary in $OUT/NAME.json
run_load() {
	local name=$1
	shift
	echo "livecount-load $*" >"$OUT/$name.cmd"
	cut -d' ' -f1-3 /proc/loadavg >"$OUT/$name.loadavg"
	log "$name (load average $(cat "$OUT/$name.loadavg"))"
	timeout 1800 "$LOAD" "$@" --quiet >"$OUT/$name.json" 2>"$OUT/$name.err" || true
	python3 - "$OUT/$name.json" <<'PY' >&2 || true
import json, sys
try:
    d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
    lat = d["latency_ms"]
    print(f"   errors={d['errors']} {d['errors_by_kind']} likes/s={d['likes_per_s']} "
          f"p50={lat['p50']}ms p99={lat['p99']}ms max={lat['max']}ms "
          f"delivered={d['delivered_ratio']} exact={d['counts_exact']} "
          f"server_cpu={d.get('server_cpu_pct')}%")
except Exception as e:
    print(f"   no summary ({e})")
PY
}

# ---- 1. like→visible across nodes ---------------------------------------------
bench_latency() {
	log "== latency: 1000 WS subscribers, 1 URL, 10 and 100 likes/s, tick 100 ms"
	start_redis
	local pa pb ps
	pa=$(free_port) pb=$(free_port) ps=$(free_port)
	start_node A "$pa" --workers 1 --tick-ms 100 $(cluster_flags 1)
	start_node B "$pb" --workers 1 --tick-ms 100 $(cluster_flags 2)
	start_node S "$ps" --workers 1 --tick-ms 100
	wait_node A cluster
	wait_node B cluster
	wait_node S
	local common=(fanout --transport ws --subscribers 1000 --urls 1 --duration "$DUR"
		--tick-ms 100 --sources 4 --connect-timeout 30)
	for i in $(seq "$RUNS"); do
		for rate in 10 100; do
			run_load "lat_single_${rate}_$i" "${common[@]}" --like-rate "$rate" \
				--target "http://127.0.0.1:$ps" --server-pid "${NPID[S]}"
			run_load "lat_same_${rate}_$i" "${common[@]}" --like-rate "$rate" \
				--target "http://127.0.0.1:$pb" --server-pid "${NPID[A]},${NPID[B]}"
			run_load "lat_cross_${rate}_$i" "${common[@]}" --like-rate "$rate" \
				--target "http://127.0.0.1:$pb" --like-target "http://127.0.0.1:$pa" \
				--server-pid "${NPID[A]},${NPID[B]}"
		done
	done
	stop_all
}

# ---- 2. convergence after a 10 s partition ------------------------------------
bench_partition() {
	log "== partition: 10 s cut between node A and Redis (fresh Redis and nodes per run)"
	local size i pp pa pb proxy_pid
	for size in ${PART_SIZES:-1000 100000}; do
		for i in $(seq "$RUNS"); do
			start_redis
			pp=$(free_port) pa=$(free_port) pb=$(free_port)
			$UTIL proxy "$pp" "$REDIS_PORT" >"$OUT/proxy_${size}_$i.log" 2>&1 &
			proxy_pid=$!
			ALL_PIDS+=("$proxy_pid")
			sleep 0.5
			start_node "A_${size}_$i" "$pa" --workers 1 --tick-ms 100 --redis-url "redis://127.0.0.1:$pp" --node-id 1
			start_node "B_${size}_$i" "$pb" --workers 1 --tick-ms 100 $(cluster_flags 2)
			wait_node "A_${size}_$i" cluster
			wait_node "B_${size}_$i" cluster
			log "partition_${size}_$i (load average $(cut -d' ' -f1-3 /proc/loadavg))"
			echo "cluster_util.py partition --a PORT_A --b PORT_B --proxy-pid PID --urls $size --b-urls 1000 --cut-s 10 --redis-port PORT" \
				>"$OUT/partition_${size}_$i.cmd"
			timeout 600 $UTIL partition --a "$pa" --b "$pb" --proxy-pid "$proxy_pid" \
				--urls "$size" --b-urls 1000 --cut-s 10 --redis-port "$REDIS_PORT" \
				>"$OUT/partition_${size}_$i.json" 2>"$OUT/partition_${size}_$i.err" || true
			tail -1 "$OUT/partition_${size}_$i.json" >&2 || true
			stop_all
		done
	done
}

# ---- 3. Redis traffic under steady load ---------------------------------------
snap() { # file ports...
	local f=$1
	shift
	{
		echo "{\"t\": $(date +%s.%N), \"redis\": $($UTIL redis-stats "$REDIS_PORT"), \"nodes\": {"
		local first=1 p
		for p in "$@"; do
			[[ $first == 1 ]] || echo ","
			first=0
			echo "\"$p\": $($UTIL metrics "$p")"
		done
		echo "}}"
	} >"$f"
}

bench_traffic() {
	log "== traffic: 10k likes/s over 1000 URLs, 3 nodes"
	start_redis
	local pa pb pc
	pa=$(free_port) pb=$(free_port) pc=$(free_port)
	start_node A "$pa" --workers 1 --tick-ms 100 $(cluster_flags 1)
	start_node B "$pb" --workers 1 --tick-ms 100 $(cluster_flags 2)
	start_node C "$pc" --workers 1 --tick-ms 100 $(cluster_flags 3)
	wait_node A cluster
	wait_node B cluster
	wait_node C cluster
	echo "$pa $pb $pc" >"$OUT/traffic_ports"
	local win=10
	for i in $(seq "$RUNS"); do
		# idle: no likes at all
		snap "$OUT/traffic_idle_${i}.0" "$pa" "$pb" "$pc"
		sleep "$win"
		snap "$OUT/traffic_idle_${i}.1" "$pa" "$pb" "$pc"
		# 10k likes/s, all on A; the window starts 2 s into the load
		log "traffic_a_$i"
		echo "livecount-load ingest --target http://127.0.0.1:PORT_A --rate 10000 --urls 1000 --connections 32 --duration $((win + 4))" >"$OUT/traffic_a_$i.cmd"
		"$LOAD" ingest --target "http://127.0.0.1:$pa" --rate 10000 --urls 1000 \
			--connections 32 --duration $((win + 4)) --quiet >"$OUT/traffic_a_$i.json" 2>&1 &
		local lp=$!
		sleep 2
		snap "$OUT/traffic_a_${i}.0" "$pa" "$pb" "$pc"
		sleep "$win"
		snap "$OUT/traffic_a_${i}.1" "$pa" "$pb" "$pc"
		wait "$lp" || true
		# 10k likes/s spread over A, B and C (3,333/s each)
		log "traffic_abc_$i"
		local lps=() p
		for p in "$pa" "$pb" "$pc"; do
			"$LOAD" ingest --target "http://127.0.0.1:$p" --rate 3333 --urls 1000 \
				--connections 16 --duration $((win + 4)) --quiet >"$OUT/traffic_abc_${i}_$p.json" 2>&1 &
			lps+=($!)
		done
		echo "3 x livecount-load ingest --target http://127.0.0.1:PORT_{A,B,C} --rate 3333 --urls 1000 --connections 16 --duration $((win + 4))" >"$OUT/traffic_abc_$i.cmd"
		sleep 2
		snap "$OUT/traffic_abc_${i}.0" "$pa" "$pb" "$pc"
		sleep "$win"
		snap "$OUT/traffic_abc_${i}.1" "$pa" "$pb" "$pc"
		for p in "${lps[@]}"; do wait "$p" || true; done
	done
	stop_all
}

# ---- 4. single-node ingest, cluster mode off vs on ---------------------------------
bench_ingest() {
	log "== ingest: S1/S2 with cluster mode off vs on, alternating"
	start_redis
	local lua="$OUT/post.lua"
	printf 'wrk.method = "POST"\nwrk.body = ""\n' >"$lua"
	local path="/v1/likes?url=https%3A%2F%2Fbench.livecount.test%2Fs1"
	local i mode p
	local order
	for i in $(seq "$RUNS"); do
		# off-on, on-off, ...: an order effect cancels over the rounds.
		order="off on"
		((i % 2 == 0)) && order="on off"
		for mode in $order; do
			p=$(free_port)
			if [[ $mode == on ]]; then
				start_node "ing_$mode" "$p" --workers 2 --tick-ms 100 $(cluster_flags 1)
				wait_node "ing_$mode" cluster
			else
				start_node "ing_$mode" "$p" --workers 2 --tick-ms 100
				wait_node "ing_$mode"
			fi
			log "s1_${mode}_$i"
			echo "wrk -t1 -c64 -d${DUR}s --latency -s post.lua 'http://127.0.0.1:PORT$path'" >"$OUT/s1_${mode}_$i.cmd"
			timeout $((DUR + 60)) wrk -t1 -c64 -d"${DUR}s" --latency -s "$lua" \
				"http://127.0.0.1:$p$path" >"$OUT/s1_${mode}_$i.wrk" 2>&1 || true
			grep -E 'Requests/sec' "$OUT/s1_${mode}_$i.wrk" >&2 || true
			run_load "s2_${mode}_$i" ingest --batch 10000 --connections 4 --duration "$DUR" \
				--urls 10000 --target "http://127.0.0.1:$p" --server-pid "${NPID[ing_$mode]}"
			$UTIL metrics "$p" >"$OUT/s2_${mode}_$i.metrics" || true
			kill -TERM "${NPID[ing_$mode]}"
			wait "${NPID[ing_$mode]}" || true
		done
	done
	stop_all
}

# ---- 5. 100k subscribers on one machine -----------------------------------------
# Two ways to send the likes, alternating run by run, a fresh cluster each:
#   ingress  to an 8th node on its own port (no subscribers): its answers
#            carry the cluster count, so every like is identified exactly,
#            and every subscriber sees it across nodes (the worst case);
#   shared   to the shared port, so the kernel spreads them over the 7
#            nodes like the subscribers; each node answers its own view of
#            the total, so likes are matched by send order
#            (--like-match send-order: the k-th like sent is count k).
big_run() { # variant run
	local variant=$1 i=$2
	local subs=${BIG_SUBS:-100000} nodes=${BIG_NODES:-7} procs=${BIG_PROCS:-7}
	local ramp=${BIG_RAMP:-5000} dur=${BIG_DUR:-30}
	log "== big ($variant, run $i): $subs WS subscribers over $nodes nodes on one port, 1 URL, 100 likes/s, tick 1000 ms"
	start_redis
	local port pi id pids=() like_args=()
	port=$(free_port) pi=$(free_port)
	for id in $(seq "$nodes"); do
		start_node "n$id" "$port" --workers 1 --tick-ms 1000 --reuse-port \
			--max-conns-per-ip 0 $(cluster_flags "$id")
	done
	if [[ $variant == ingress ]]; then
		start_node ingress "$pi" --workers 1 --tick-ms 1000 $(cluster_flags 100)
		wait_node ingress cluster
		like_args=(--like-target "http://127.0.0.1:$pi")
	else
		like_args=(--like-match send-order)
	fi
	for id in $(seq "$nodes"); do
		# All share $port: wait for each process's log line instead.
		for _ in $(seq 100); do
			grep -q "link to Redis .* up" "$OUT/node-n$id.log" 2>/dev/null && break
			sleep 0.1
		done
		kill -0 "${NPID[n$id]}" || { log "node n$id died"; cat "$OUT/node-n$id.log" >&2; exit 1; }
		pids+=("${NPID[n$id]}")
	done
	[[ $variant == ingress ]] && pids+=("${NPID[ingress]}")
	local pidlist
	pidlist=$(IFS=,; echo "${pids[*]}")
	echo "$pidlist" >"$OUT/big_${variant}_$i.pids"
	$UTIL sampler "$OUT/big_${variant}_$i.sampler.jsonl" "${pids[@]}" "$REDIS_PID" &
	local sp=$!
	ALL_PIDS+=("$sp")
	run_load "big_${variant}_$i" fanout --transport ws --subscribers "$subs" --urls 1 --like-rate 100 \
		--duration "$dur" --tick-ms 1000 --procs "$procs" --sources 16 \
		--ramp-per-s "$ramp" --connect-timeout 60 --max-pending 2048 \
		--target "http://127.0.0.1:$port" "${like_args[@]}" --server-pid "$pidlist"
	kill -TERM "$sp" 2>/dev/null || true
	for id in $(seq "$nodes"); do
		cp "$OUT/node-n$id.log" "$OUT/big_${variant}_${i}_node-n$id.log"
		grep -E "error|warn" "$OUT/node-n$id.log" | tail -5 >&2 || true
	done
	stop_all
}

bench_big() {
	local i v
	for i in $(seq "${BIG_RUNS:-$RUNS}"); do
		for v in ${BIG_LIKES:-ingress shared}; do
			big_run "$v" "$i"
		done
	done
}

# ---- 5b. why cross-node like→visible is ~2 ticks at tick 1000 ms ---------------------
# 10k WS subscribers over 3 nodes sharing a port, likes to an ingress node
# started either just after the subscriber nodes (their ticks then run about
# in phase with its own, as in `big`) or 500 ms before them (half a tick out
# of phase). Alternating, RUNS rounds.
phase_run() { # mode run
	local mode=$1 i=$2 port pi id
	start_redis
	port=$(free_port) pi=$(free_port)
	if [[ $mode == ingress_first ]]; then
		start_node "ph_ingress" "$pi" --workers 1 --tick-ms 1000 $(cluster_flags 100)
		sleep 0.5
	fi
	for id in 1 2 3; do
		start_node "ph_n$id" "$port" --workers 1 --tick-ms 1000 --reuse-port $(cluster_flags "$id")
	done
	if [[ $mode == nodes_first ]]; then
		sleep 0.05
		start_node "ph_ingress" "$pi" --workers 1 --tick-ms 1000 $(cluster_flags 100)
	fi
	wait_node ph_ingress cluster
	sleep 1
	run_load "phase_${mode}_$i" fanout --transport ws --subscribers 10000 --urls 1 --like-rate 100 \
		--duration 10 --tick-ms 1000 --sources 8 --target "http://127.0.0.1:$port" \
		--like-target "http://127.0.0.1:$pi"
	stop_all
}

bench_phase() {
	local i
	for i in $(seq "$RUNS"); do
		phase_run nodes_first "$i"
		phase_run ingress_first "$i"
	done
}

case "$WHAT" in
latency) bench_latency ;;
partition) bench_partition ;;
traffic) bench_traffic ;;
ingest) bench_ingest ;;
big) bench_big ;;
phase) bench_phase ;;
all)
	bench_latency
	bench_partition
	bench_traffic
	bench_ingest
	bench_big
	bench_phase
	;;
*) echo "usage: $0 [latency|partition|traffic|ingest|big|phase|all]" >&2; exit 2 ;;
esac
python3 "$HERE/cluster_report.py" "$OUT" >"$OUT/report.md" || true
log "report: $OUT/report.md"
