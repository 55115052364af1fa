#!/usr/bin/env bash
# fanout_profile.sh: one livecount server under a fan-out load, with a
# `perf record` of the server and/or a /metrics delta taken over the like
# phase (issue 21: where a frame's CPU goes; dispatch runs per second).
#
#   loadtest/fanout_profile.sh OUT_DIR
#
# Starts LC_BIN (default build/livecount) with --workers 2 --tick-ms 100 on a
# free loopback port and a fresh database, runs `livecount-load fanout`
# (default: 10,000 subscribers over 1,000 URLs, 1,000 likes/s, 4 like
# connections, 20 s), waits until every subscriber is connected plus 3 s,
# then for 8 s records the server with perf (PERF=1, default; call graphs
# by DWARF unwinding, 499 Hz: the Debian libraries have no frame pointers)
# and for 10 s takes the /metrics counters' rates (METRICS=1). Stops the
# server by pid on exit.
#
# Environment: LC_BIN, LC_BUILD_DIR (livecount-load; default build/),
# TRANSPORT (ws|sse, default ws), SUBS (10000), URLS (1000), RATE (1000),
# DUR (20), PERF (1), METRICS (0).
# Read the profile with e.g.
#   perf report -i OUT_DIR/perf.data --children --sort sym --stdio -g none
#   perf report -i OUT_DIR/perf.data --no-children --sort sym --stdio -G -S SYMBOL
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${LC_BUILD_DIR:-$ROOT/build}
BIN=${LC_BIN:-$BUILD/livecount}
LOAD=$BUILD/livecount-load
OUT=${1:?usage: fanout_profile.sh OUT_DIR}
T=${TRANSPORT:-ws} SUBS=${SUBS:-10000} URLS=${URLS:-1000} RATE=${RATE:-1000} DUR=${DUR:-20}
PERF=${PERF:-1} METRICS=${METRICS:-0}

[[ -x "$BIN" && -x "$LOAD" ]] || { echo "build first: $BIN, $LOAD" >&2; exit 1; }
[[ $PERF == 0 ]] || command -v perf >/dev/null || { echo "needs perf" >&2; exit 1; }
mkdir -p "$OUT/db"
rm -f "$OUT/db/"lc.db*
ulimit -n "$(ulimit -Hn)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
"$BIN" --bind 127.0.0.1 --port "$PORT" --db "$OUT/db/lc.db" --workers 2 --tick-ms 100 \
	>"$OUT/server.log" 2>&1 &
SP=$! LP=""
cleanup() {
	[[ -n $LP ]] && kill "$LP" 2>/dev/null
	kill -TERM "$SP" 2>/dev/null || true
	wait "$SP" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
cut -d' ' -f1 /proc/loadavg >"$OUT/loadavg"
echo "livecount-load fanout --transport $T --subscribers $SUBS --urls $URLS --like-rate $RATE --like-conns 4 --duration $DUR --tick-ms 100 --sources 8 --connect-timeout 30 --target http://127.0.0.1:PORT --server-pid PID" >"$OUT/load.cmd"
timeout 300 "$LOAD" fanout --transport "$T" --subscribers "$SUBS" --urls "$URLS" --like-rate "$RATE" \
	--like-conns 4 --duration "$DUR" --tick-ms 100 --sources 8 --connect-timeout 30 \
	--target "http://127.0.0.1:$PORT" --server-pid "$SP" >"$OUT/load.json" 2>"$OUT/load.err" &
LP=$!
for _ in $(seq 600); do
	[[ $(find "/proc/$SP/fd" -mindepth 1 -maxdepth 1 | wc -l) -gt $SUBS ]] && break
	sleep 0.1
done
sleep 3
if [[ $METRICS != 0 ]]; then
	curl -s "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics0"
	date +%s.%N >"$OUT/metrics0.t"
fi
if [[ $PERF != 0 ]]; then
	perf record -F 499 --call-graph dwarf,16384 -p "$SP" -o "$OUT/perf.data" -- sleep 8 2>"$OUT/perf.err"
fi
if [[ $METRICS != 0 ]]; then
	[[ $PERF != 0 ]] || sleep 10
	curl -s "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics1"
	date +%s.%N >"$OUT/metrics1.t"
fi
wait "$LP" || true
LP=""
tail -1 "$OUT/load.json"
if [[ $METRICS != 0 ]]; then
	python3 - "$OUT" <<'PY'
import sys
o = sys.argv[1]

def read(f):
    m = {}
    for line in open(f):
        if line.startswith("#") or " " not in line:
            continue
        k, v = line.rsplit(" ", 1)
        try:
            m[k] = float(v)
        except ValueError:
            pass
    return m

a, b = read(o + "/metrics0"), read(o + "/metrics1")
dt = float(open(o + "/metrics1.t").read()) - float(open(o + "/metrics0.t").read())
for k in sorted(b):
    if k.endswith("_total") or "_total{" in k:
        d = b[k] - a.get(k, 0)
        if d:
            print(f"{k} {d / dt:,.1f}/s")
PY
fi
