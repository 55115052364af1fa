#!/usr/bin/env bash
# bench.sh: the standard livecount benchmark (issue 5), run by `make bench`.
#
# Runs scenarios S1..S6 against build/livecount on loopback with
# build/livecount-load (and wrk against nginx as the HTTP baseline, installed
# from Debian when missing), takes the median of 3 runs of each, and writes
# loadtest/RESULTS.md. Every server, nginx and load process it starts is
# stopped by pid; every run is bounded by `timeout`.
#
# Environment:
#   BENCH_QUICK=1        one short run per scenario (checks the script, ~2 min)
#   LC_BUILD_DIR=dir     where livecount and livecount-load are (default build/)
#   LC_RESULTS=file      output (default loadtest/RESULTS.md)
#   LC_WORKERS=N         server workers and nginx worker_processes (default nproc)
#   LC_BENCH_KEEP=1      keep the raw outputs directory
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=${LC_BUILD_DIR:-$ROOT/build}
LIVECOUNT=$BUILD/livecount
LOAD=$BUILD/livecount-load
RESULTS=${LC_RESULTS:-$HERE/RESULTS.md}
WORKERS=${LC_WORKERS:-$(nproc)}
QUICK=${BENCH_QUICK:-0}

if [[ "$QUICK" == 1 ]]; then
	RUNS=1 DUR=3 BIG=2000 SMALL=200 S6_URLS=200000
else
	RUNS=3 DUR=10 BIG=19000 SMALL=1000 S6_URLS=1000000
fi
TICK_MS=100
HOT_LIKE_RATE=100

log() { echo "bench: $*" >&2; }

# ---- prerequisites -------------------------------------------------------
if [[ ! -x "$LIVECOUNT" || ! -x "$LOAD" ]]; then
	log "building $BUILD (Release)"
	cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
[[ -x "$LIVECOUNT" && -x "$LOAD" ]] || { log "missing $LIVECOUNT or $LOAD"; exit 1; }

apt_install() {
	# Debian packages only; a package's service is never started by its
	# install (policy-rc.d), so nothing listens until this script starts it.
	local made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	local rc=0
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || rc=1
	fi
	[[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
	return $rc
}
for tool in python3 wrk nginx; do
	if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
		log "installing $tool from Debian"
		apt_install "$tool" || log "could not install $tool"
	fi
done
command -v python3 >/dev/null || { log "python3 is required"; exit 1; }
HAVE_WRK=0; command -v wrk >/dev/null && HAVE_WRK=1
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAVE_NGINX=0; [[ -x "$NGINX" ]] && HAVE_NGINX=1

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

OUT=$(mktemp -d "${TMPDIR:-/tmp}/lc-bench.XXXXXX")
SERVER_PID="" NGINX_PID=""
cleanup() {
	local rc=$?
	[[ -n "$SERVER_PID" ]] && stop_server
	[[ -n "$NGINX_PID" ]] && stop_nginx
	if [[ -n "${LC_BENCH_KEEP:-}" || $rc -ne 0 ]]; then
		log "raw outputs kept in $OUT"
	else
		rm -rf "$OUT"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # port pid path
	python3 - "$1" "$2" "$3" <<'PY'
import sys, time, urllib.request, urllib.error, os
port, pid, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.time() + 30
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("process exited during start-up")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
            if r.status < 300:
                sys.exit(0)
    except urllib.error.HTTPError as e:
        if e.code < 300:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit("no answer within 30 s")
PY
}

SERVER_N=0
start_server() { # extra livecount flags...
	SERVER_N=$((SERVER_N + 1))
	PORT=$(free_port)
	local db="$OUT/db$SERVER_N"
	mkdir -p "$db"
	SERVER_CMD="livecount --port PORT --db lc.db --workers $WORKERS --tick-ms $TICK_MS $*"
	"$LIVECOUNT" --port "$PORT" --db "$db/lc.db" --workers "$WORKERS" --tick-ms "$TICK_MS" "$@" \
		>"$OUT/server$SERVER_N.log" 2>&1 &
	SERVER_PID=$!
	wait_http "$PORT" "$SERVER_PID" /healthz || { log "server did not start"; tail "$OUT/server$SERVER_N.log" >&2; exit 1; }
	TARGET="http://127.0.0.1:$PORT"
}

stop_server() {
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

start_nginx() {
	NPORT=$(free_port)
	local d="$OUT/nginx"
	mkdir -p "$d/logs"
	cat >"$d/nginx.conf" <<NGX
worker_processes $WORKERS;
daemon off;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    server {
        # reuseport: the kernel spreads connections over the workers, as it
        # does for livecount's SO_REUSEPORT listeners.
        listen 127.0.0.1:$NPORT reuseport;
        location / { return 204; }
    }
}
NGX
	"$NGINX" -p "$d" -c "$d/nginx.conf" >"$d/logs/stdout.log" 2>&1 &
	NGINX_PID=$!
	wait_http "$NPORT" "$NGINX_PID" / || { log "nginx did not start"; cat "$d/logs/error.log" >&2; exit 1; }
}

stop_nginx() {
	kill -QUIT "$NGINX_PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$NGINX_PID" 2>/dev/null || true
	wait "$NGINX_PID" 2>/dev/null || true
	NGINX_PID=""
}

note_cmd() { # name command...
	printf '%s\t%s\n' "$1" "${*:2}" >>"$OUT/commands.tsv"
}

run_load() { # name livecount-load args...
	local name=$1
	shift
	note_cmd "$name" "livecount-load $* --target http://127.0.0.1:PORT --server-pid PID" \
		"# server: ${SERVER_CMD% }"
	log "$name"
	timeout 900 "$LOAD" "$@" --target "$TARGET" --tick-ms "$TICK_MS" --server-pid "$SERVER_PID" \
		--quiet >"$OUT/$name.json" 2>"$OUT/$name.err" || true
	python3 "$OUT/brief.py" "$OUT/$name.json" >&2 || true
}

cat >"$OUT/brief.py" <<'PY'
import json, sys
try:
    d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
    lat = d["latency_ms"]
    print(f"   errors={d['errors']} req/s={d['requests_per_s']} likes/s={d['likes_per_s']} "
          f"p50={lat['p50']}ms p99={lat['p99']}ms delivered={d['delivered_ratio']}")
except Exception as e:
    print(f"   no summary ({e})")
PY

WRK_LUA="$OUT/post.lua"
cat >"$WRK_LUA" <<'LUA'
-- One like per request: POST with an empty body. wrk.format() derives
-- Content-Length from wrk.body (a header set by hand is dropped), so the empty
-- body is what sends "Content-Length: 0"; without it the request has no
-- length and the server closes the connection after each answer.
wrk.method = "POST"
wrk.body = ""
LUA
S1_PATH="/v1/likes?url=https%3A%2F%2Fbench.livecount.test%2Fs1"

run_wrk() { # name base-url
	local name=$1 url="$2$S1_PATH"
	note_cmd "$name" "wrk -t1 -c64 -d${DUR}s --latency -s post.lua 'http://127.0.0.1:PORT$S1_PATH'"
	log "$name"
	timeout $((DUR + 60)) wrk -t1 -c64 -d"${DUR}s" --latency -s "$WRK_LUA" "$url" \
		>"$OUT/$name.wrk" 2>&1 || true
	grep -E 'Requests/sec|Non-2xx' "$OUT/$name.wrk" | sed 's/^/   /' >&2 || true
}

metrics_snapshot() { # file
	python3 - "$PORT" >"$1" 2>/dev/null <<'PY' || true
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5) as r:
    for line in r.read().decode().splitlines():
        if not line.startswith("#") and any(k in line for k in ("flush", "dirty", "batcher")):
            print(line)
PY
}

T_BEGIN=$(date +%s)
python3 - "$OUT/meta.json" "$ROOT" "$WORKERS" "$RUNS" "$DUR" "$QUICK" "$BIG" "$SMALL" "$S6_URLS" \
	"$TICK_MS" "$HOT_LIKE_RATE" "$HAVE_NGINX" "$HAVE_WRK" "$NGINX" <<'PY'
import json, os, platform, subprocess, sys, datetime
out, root = sys.argv[1], sys.argv[2]
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, cwd=root, timeout=20).stdout.strip()
    except Exception:
        return ""
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
mem_kb = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
meta = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            cpu=cpu, nproc=os.cpu_count(), mem_gib=round(mem_kb / 1048576, 1),
            kernel=platform.release(), os=sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
            commit=sh("git", "rev-parse", "--short", "HEAD") or "(no commit)",
            dirty=bool(sh("git", "status", "--porcelain", "--untracked-files=no")),
            workers=int(sys.argv[3]), runs=int(sys.argv[4]), duration=int(sys.argv[5]),
            quick=sys.argv[6] == "1", big=int(sys.argv[7]), small=int(sys.argv[8]),
            s6_urls=int(sys.argv[9]), tick_ms=int(sys.argv[10]), hot_like_rate=int(sys.argv[11]),
            have_nginx=sys.argv[12] == "1", have_wrk=sys.argv[13] == "1",
            nginx=sh(sys.argv[14], "-v") or sh("sh", "-c", f"{sys.argv[14]} -v 2>&1"),
            wrk=sh("sh", "-c", "wrk -v 2>&1 | head -1 | cut -d' ' -f1-2"),
            loadavg=open("/proc/loadavg").read().split()[:3])
json.dump(meta, open(out, "w"))
PY

# ---- S1: single-like POST throughput, livecount vs nginx -----------------
start_server
if [[ $HAVE_WRK == 1 ]]; then
	for i in $(seq "$RUNS"); do run_wrk "s1_wrk_livecount_$i" "$TARGET"; done
fi
for i in $(seq "$RUNS"); do
	run_load "s1_load_$i" ingest --connections 64 --duration "$DUR" --urls 1000
done
stop_server
if [[ $HAVE_WRK == 1 && $HAVE_NGINX == 1 ]]; then
	start_nginx
	for i in $(seq "$RUNS"); do run_wrk "s1_wrk_nginx_$i" "http://127.0.0.1:$NPORT"; done
	stop_nginx
fi

# ---- S2: batched ingest, 10k-item batches ---------------------------------
start_server
for i in $(seq "$RUNS"); do
	run_load "s2_$i" ingest --batch 10000 --connections 4 --duration "$DUR" --urls 10000
done
stop_server

# ---- S3/S4/S5: fan-out on one hot URL, WS and SSE, small and ~19k ---------
# A fresh server per run, so that its memory growth is the subscribers'.
for transport in ws sse; do
	for n in "$SMALL" "$BIG"; do
		for i in $(seq "$RUNS"); do
			start_server
			run_load "s3_${transport}_${n}_$i" fanout --transport "$transport" \
				--subscribers "$n" --urls 1 --like-rate "$HOT_LIKE_RATE" \
				--duration "$DUR" --sources 8 --connect-timeout 30
			stop_server
		done
	done
done

# ---- S6: ingest while the batcher flushes 1M dirty URLs, vs without --------
start_server
S6_DUR=$((DUR / 2 > 3 ? DUR / 2 : 3))
for i in $(seq "$RUNS"); do
	run_load "s6_base_$i" ingest --batch 1000 --connections 8 --duration "$S6_DUR" --urls 1000
done
for i in $(seq "$RUNS"); do
	# Touch S6_URLS distinct URLs (fresh ones each time) as fast as possible...
	run_load "s6_dirty_$i" ingest --batch 10000 --connections 4 --duration 60 \
		--requests $((S6_URLS / 10000)) --urls "$S6_URLS" --no-verify
	metrics_snapshot "$OUT/s6_flush_${i}.metrics_before"
	# ...then measure ingest while they are being flushed.
	run_load "s6_flush_$i" ingest --batch 1000 --connections 8 --duration "$S6_DUR" --urls 1000
	metrics_snapshot "$OUT/s6_flush_${i}.metrics_after"
done
stop_server

echo $(($(date +%s) - T_BEGIN)) >"$OUT/elapsed_s"
python3 "$HERE/bench_report.py" "$OUT" "$RESULTS"
log "wrote $RESULTS"

# ---- peer baseline: the same fan-out workloads against nginx + nchan ----------
# (issue 13 item 3; rewrites its own section of RESULTS.md). BENCH_NCHAN=0 skips.
if [[ "${BENCH_NCHAN:-1}" == 1 ]]; then
	if [[ "$QUICK" == 1 ]]; then
		RUNS=1 DUR=3 NCHAN_SIZES="200 2000" LC_BUILD_DIR="$BUILD" LC_RESULTS="$RESULTS" \
			LC_WORKERS="$WORKERS" "$HERE/nchan_bench.sh" >/dev/null || log "nchan baseline failed"
	else
		RUNS="$RUNS" DUR="$DUR" LC_BUILD_DIR="$BUILD" LC_RESULTS="$RESULTS" \
			LC_WORKERS="$WORKERS" "$HERE/nchan_bench.sh" >/dev/null || log "nchan baseline failed"
	fi
fi
