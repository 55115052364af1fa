#!/usr/bin/env bash
# ingest_bench.sh [rounds]: S2 (10k-item JSON batches) next to
# `redis-benchmark -t incr -P 16` in the same minute (issue 21 item 3).
#
# Each round runs, one after the other on this machine: redis-benchmark
# against a fresh local redis-server, then S2 against build/livecount
# (livecount-load ingest --batch 10000 --connections 4), then, when
# LC_BASE_BUILD_DIR names another build (e.g. of main), S2 against that
# build's livecount. It prints every run, the medians and the ratio
# livecount / Redis per round and of the medians, with the load average
# before and after. On a shared machine the rates follow the CPU share each
# side gets, so it also prints the servers' CPU time per operation
# (livecount: server CPU over the load phase / likes; Redis: redis-server
# CPU over the benchmark / INCRs), which contention moves much less, and
# the CPU per operation of server and load client together (what a box
# given over to one side would spend).
# Every process it starts is stopped by pid; every run is bounded by
# `timeout`.
#
# Environment:
#   LC_BUILD_DIR=dir       livecount and livecount-load (default build/)
#   LC_BASE_BUILD_DIR=dir  a second livecount measured in the same rounds
#   DUR=s                  seconds of each S2 run (default 10)
#   CONNS=n                S2 connections (default 4, as bench.sh's S2)
#   REDIS_N=n              INCRs per redis-benchmark run (default 10000000)
#   LC_WORKERS=n           server workers (default nproc)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${LC_BUILD_DIR:-$ROOT/build}
BASE=${LC_BASE_BUILD_DIR:-}
ROUNDS=${1:-5}
DUR=${DUR:-10}
CONNS=${CONNS:-4}
REDIS_N=${REDIS_N:-10000000}
WORKERS=${LC_WORKERS:-$(nproc)}
LOAD=$BUILD/livecount-load

for f in "$BUILD/livecount" "$LOAD" ${BASE:+"$BASE/livecount"}; do
	[[ -x $f ]] || { echo "ingest_bench: missing $f" >&2; exit 1; }
done
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
	{ echo "ingest_bench: needs redis-server and redis-benchmark (apt-get install redis-server)" >&2; exit 1; }

OUT=$(mktemp -d "${TMPDIR:-/tmp}/lc-ingest.XXXXXX")
SERVER_PID="" REDIS_PID=""
stop() { # pid
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
cleanup() {
	[[ -n $SERVER_PID ]] && stop "$SERVER_PID"
	[[ -n $REDIS_PID ]] && stop "$REDIS_PID"
	rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_up() { # cmd... : retried for 30 s
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

cpu_ticks() { # pid: utime + stime in clock ticks
	awk '{print $14 + $15}' "/proc/$1/stat"
}

redis_run() { # prints "INCR/s server-us/INCR server+client-us/INCR"
	local port c0 out
	port=$(free_port)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no >"$OUT/redis.log" 2>&1 &
	REDIS_PID=$!
	wait_up redis-cli -p "$port" ping || { echo "ingest_bench: redis did not start" >&2; exit 1; }
	c0=$(cpu_ticks "$REDIS_PID")
	out=$(/usr/bin/time -f '%U %S' -o "$OUT/time" timeout 300 redis-benchmark -p "$port" \
		-t incr -P 16 -n "$REDIS_N" --csv 2>/dev/null)
	python3 - "$out" "$c0" "$(cpu_ticks "$REDIS_PID")" "$REDIS_N" "$(getconf CLK_TCK)" \
		"$(tail -n 1 "$OUT/time")" <<'PY'
import csv, sys
out, c0, c1, n, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
client = sum(float(x) for x in sys.argv[6].split())
r = [x for x in csv.reader(out.splitlines()) if x and x[0] == "INCR"]
server = (c1 - c0) / hz
print(int(float(r[0][1])) if r else 0, f"{server / n * 1e6:.3f}", f"{(server + client) / n * 1e6:.3f}")
PY
	stop "$REDIS_PID"
	REDIS_PID=""
}

s2_run() { # livecount-binary : prints "likes/s cpu% exact errors server-us/like server+client-us/like"
	local port db
	port=$(free_port)
	db=$(mktemp -d "$OUT/db.XXXX")
	"$1" --port "$port" --db "$db/lc.db" --workers "$WORKERS" --tick-ms 100 \
		>"$db/server.log" 2>&1 &
	SERVER_PID=$!
	wait_up curl -sf "http://127.0.0.1:$port/healthz" || { echo "ingest_bench: server did not start" >&2; exit 1; }
	/usr/bin/time -f '%U %S' -o "$OUT/time" timeout $((DUR + 120)) "$LOAD" ingest \
		--batch 10000 --connections "$CONNS" --duration "$DUR" --urls 10000 \
		--target "http://127.0.0.1:$port" --server-pid "$SERVER_PID" --quiet \
		2>/dev/null | tail -n 1 >"$OUT/s2.json"
	python3 - "$OUT/s2.json" "$(tail -n 1 "$OUT/time")" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read())
client = sum(float(x) for x in sys.argv[2].split())
n = max(d["acknowledged"], 1)
server = d["server_cpu_pct"] / 100 * d["duration_s"]
print(int(d["likes_per_s"]), d["server_cpu_pct"], d["counts_exact"], d["errors"],
      f"{server / n * 1e6:.3f}", f"{(server + client) / n * 1e6:.3f}")
PY
	stop "$SERVER_PID"
	SERVER_PID=""
}

echo "ingest_bench: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD)," \
	"$ROUNDS rounds, S2 ${DUR}s $CONNS connections, redis-benchmark -t incr -P 16 -n $REDIS_N, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(us/op: server CPU per operation, then server + load client)"
printf '%-6s %12s %13s %12s %6s %13s %6s %12s %13s %6s\n' round redis_incr/s us/incr \
	livecount/s cpu% us/like ratio base/s us/like ratio
for i in $(seq "$ROUNDS"); do
	read -r r rus rtot < <(redis_run)
	read -r l cpu exact err lus ltot < <(s2_run "$BUILD/livecount")
	b="-" bus="-" btot="-" bratio="-"
	if [[ -n $BASE ]]; then
		read -r b _ _ _ bus btot < <(s2_run "$BASE/livecount")
		bratio=$(python3 -c "print(f'{$b/$r:.2f}')")
	fi
	ratio=$(python3 -c "print(f'{$l/$r:.2f}')")
	printf '%-6s %12s %13s %12s %6s %13s %6s %12s %13s %6s   exact=%s errors=%s\n' "$i" "$r" \
		"$rus/$rtot" "$l" "$cpu" "$lus/$ltot" "$ratio" "$b" "$bus/$btot" "$bratio" "$exact" "$err"
	echo "$r $l $b $rus $lus $bus $rtot $ltot $btot" >>"$OUT/rows"
done
python3 - "$OUT/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda k: statistics.median(float(r[k]) for r in rows if r[k] != "-") if any(r[k] != "-" for r in rows) else None
r, l, b, rus, lus, bus, rtot, ltot, btot = (med(k) for k in range(9))
print(f"median  redis {r:,.0f} INCR/s  livecount {l:,.0f} likes/s  ratio {l / r:.2f}"
      + (f"  base {b:,.0f} likes/s  ratio {b / r:.2f}" if b else ""))
print(f"median  server CPU per operation: redis {rus:.3f} us/INCR, livecount {lus:.3f} us/like"
      f" (INCR cost / like cost {rus / lus:.2f})"
      + (f", base {bus:.3f} us/like ({rus / bus:.2f})" if bus else ""))
print(f"median  server + load client CPU per operation: redis {rtot:.3f} us/INCR, livecount {ltot:.3f} us/like"
      f" ({rtot / ltot:.2f})" + (f", base {btot:.3f} us/like ({rtot / btot:.2f})" if btot else ""))
PY
echo "ingest_bench: load average after $(cut -d' ' -f1-3 /proc/loadavg)"
