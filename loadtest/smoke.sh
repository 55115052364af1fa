#!/usr/bin/env bash
# loadtest_smoke: a short correctness run of livecount-load against a real
# livecount (ctest label "integration"). Asserts on correctness only — exact
# counts, every subscriber converged, no errors, a valid JSON summary — never
# on speed.
#
# usage: smoke.sh <livecount-binary> <livecount-load-binary>
set -euo pipefail

LIVECOUNT=${1:?usage: smoke.sh <livecount> <livecount-load>}
LOAD=${2:?usage: smoke.sh <livecount> <livecount-load>}
LIVECOUNT=$(realpath "$LIVECOUNT")
LOAD=$(realpath "$LOAD")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lc-smoke.XXXXXX")
SERVER_PID=""
cleanup() {
	local rc=$?
	if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 && -f "$TMP/server.log" ]]; then
		echo "---- server log (last 40 lines) ----" >&2
		tail -n 40 "$TMP/server.log" >&2 || true
	fi
	[[ -n "${LC_SMOKE_KEEP:-}" ]] || rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
TARGET="http://127.0.0.1:$PORT"

"$LIVECOUNT" --port "$PORT" --db "$TMP/lc.db" --tick-ms 100 >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

# Wait for GET /healthz to answer 200 (at most 20 s).
python3 - "$PORT" "$SERVER_PID" <<'PY'
import sys, time, urllib.request, os
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 20
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("server exited during start-up")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit("server did not answer /healthz within 20 s")
PY
echo "smoke: server up on $TARGET"

PASSED=0
FAILED=0

# check NAME KIND FILE: validate the JSON summary on the last line of FILE.
check() {
	local name=$1 kind=$2 file=$3
	if python3 - "$kind" "$file" "$TARGET" <<'PY'; then
import json, sys
kind, path = sys.argv[1], sys.argv[2]
lines = [l for l in open(path).read().splitlines() if l.strip()]
if not lines:
    sys.exit("no output")
d = json.loads(lines[-1])
problems = []
def want(cond, msg):
    if not cond:
        problems.append(msg)
for k in ("mode", "connections", "duration_s", "errors", "requests_per_s", "likes_per_s",
          "msgs_per_s", "connect_per_s", "latency_ms", "delivered_ratio"):
    want(k in d, f"missing key {k}")
for k in ("p50", "p90", "p99", "p999", "max"):
    want(k in d.get("latency_ms", {}), f"missing latency_ms.{k}")
want(d.get("errors") == 0, f"errors={d.get('errors')} {d.get('errors_by_kind')}")
want(d.get("counts_exact") is True, f"counts not exact: counted={d.get('counted')} "
     f"acknowledged={d.get('expected')}")
want(d.get("delivered_ratio") == 1.0, f"delivered_ratio={d.get('delivered_ratio')}")
want(d.get("acknowledged", 0) > 0, "no like was acknowledged")
if kind == "views":
    # --views-per-like: the server's view total is the views acknowledged
    # (this run is the only one sending views to this server).
    import time, urllib.request
    want(d.get("views", 0) > 0, "no view was acknowledged")
    deadline, total = time.time() + 10, None
    while time.time() < deadline:
        with urllib.request.urlopen(f"{sys.argv[3]}/v1/stats", timeout=5) as r:
            total = json.loads(r.read())["totals"]["views"]
        if total == d.get("views"):
            break
        time.sleep(0.1)
    want(total == d.get("views"), f"server views {total} != acknowledged {d.get('views')}")
if kind == "fanout":
    want(d.get("ready") == d.get("connections"), f"ready={d.get('ready')}")
    want(d.get("converged") == d.get("connections"), f"converged={d.get('converged')}")
    want(d.get("latency_ms", {}).get("count", 0) > 0, "no like->visible latency recorded")
if problems:
    sys.exit("; ".join(problems))
lat = d["latency_ms"]
print(f"  ok: {d['likes_per_s']:.0f} likes/s, {d['msgs_per_s']:.0f} msgs/s, "
      f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms")
PY
		PASSED=$((PASSED + 1))
		echo "smoke: PASS $name"
	else
		FAILED=$((FAILED + 1))
		echo "smoke: FAIL $name (output in $file)"
		tail -n 20 "$file" | sed 's/^/  | /'
	fi
}

# run NAME KIND ARGS...: one bounded livecount-load run.
run() {
	local name=$1 kind=$2
	shift 2
	echo "smoke: $name: livecount-load $*"
	local out="$TMP/$name.out"
	timeout 60 "$LOAD" "$@" --target "$TARGET" --tick-ms 100 >"$out" 2>"$TMP/$name.err" || true
	cat "$TMP/$name.err" | tail -n 3 | sed 's/^/  | /'
	check "$name" "$kind" "$out"
}

run ingest_single ingest ingest --connections 16 --duration 3 --urls 20
run ingest_batch ingest ingest --connections 4 --duration 3 --urls 50 --batch 100
run ingest_views views ingest --connections 4 --duration 3 --urls 50 --batch 100 --views-per-like 3
run fanout_ws fanout fanout --transport ws --subscribers 100 --urls 5 --like-rate 100 --duration 3
run fanout_sse fanout fanout --transport sse --subscribers 100 --urls 5 --like-rate 100 --duration 3

# Graceful stop: SIGTERM must end the server promptly.
kill -TERM "$SERVER_PID"
STOPPED=0
for _ in $(seq 100); do
	if ! kill -0 "$SERVER_PID" 2>/dev/null; then STOPPED=1; break; fi
	sleep 0.1
done
if [[ $STOPPED -eq 1 ]]; then
	wait "$SERVER_PID" 2>/dev/null && echo "smoke: server exited 0 on SIGTERM" ||
		echo "smoke: note: server exit status $? on SIGTERM"
	SERVER_PID=""
else
	echo "smoke: FAIL server still running 10 s after SIGTERM"
	FAILED=$((FAILED + 1))
fi

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
