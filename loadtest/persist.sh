#!/usr/bin/env bash
# Persistence at scale, through the real binary: like N (default 1,000,000)
# fresh URLs once each in 10k-item batches, time until the batcher has
# written them all (livecount_dirty_urls back to 0, flush metrics), then
# restart on that database and read how long loading took. Writes the
# numbers into loadtest/RESULTS.md between the persist markers.
#
# usage: loadtest/persist.sh [build-dir]     (make persist)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
bin=$build/livecount
load=$build/livecount-load
n=${PERSIST_URLS:-1000000}
work=$(mktemp -d /tmp/lc-persist.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target=http://127.0.0.1:$port
srv=

cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

start() {
	"$bin" --bind 127.0.0.1 --port "$port" --db "$work/lc.db" \
		>>"$work/server.log" 2>&1 &
	srv=$!
	for _ in $(seq 300); do
		curl -sf "$target/readyz" >/dev/null && return 0
		sleep 0.05
	done
	echo "persist: server did not start" >&2
	exit 1
}
metric() { curl -sf "$target/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
now() { date +%s.%N; }

start
t0=$(now)
"$load" ingest --target "$target" --batch 10000 --connections 2 --urls "$n" \
	--requests $((n / 10000)) --duration 120 --quiet --no-verify \
	>"$work/ingest.json"
t1=$(now)
while [ "$(metric livecount_dirty_urls)" != 0 ] ||
	[ "$(metric livecount_flush_rows_total)" -lt "$n" ]; do
	sleep 0.1
done
t2=$(now)
flush_s=$(metric livecount_flush_seconds_sum)
flushes=$(metric livecount_flushes_total)
kill -TERM "$srv"; wait "$srv"; srv=
start
loaded=$(grep -o "loaded [0-9]* URLs from .* in [0-9]* ms" "$work/server.log" | tail -1)
kill -TERM "$srv"; wait "$srv"; srv=
db_mb=$(du -m "$work/lc.db" | cut -f1)

python3 - "$root/loadtest/RESULTS.md" "$n" "$t0" "$t1" "$t2" "$flush_s" \
	"$flushes" "$loaded" "$db_mb" "$work/ingest.json" <<'EOF'
import json, os, subprocess, sys, time
results, n, t0, t1, t2, flush_s, flushes, loaded, db_mb, ing = sys.argv[1:]
n, t0, t1, t2 = int(n), float(t0), float(t1), float(t2)
j = json.loads(open(ing).read().strip().split("\n")[-1])
commit = subprocess.run(["git", "-C", os.path.dirname(results), "rev-parse",
                         "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
ms = int(loaded.rsplit(" in ", 1)[1].split()[0]) if loaded else -1
out = ["<!-- persist:begin -->", "## Persistence at %d URLs (loadtest/persist.sh)" % n, "",
       "%s, commit %s, `nproc` %s, default flush settings (1 s interval, 1M rows/s throttle)." %
       (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit, os.cpu_count()), "",
       "| step | result |", "|---|---|",
       "| like %d fresh URLs once each (10k-item batches) | %.2f s, %s errors, counts exact: %s |" %
       (n, t1 - t0, j.get("errors"), "not checked (1M reads)"),
       "| until every URL is in SQLite (dirty URLs back to 0) | %.2f s after the last like; %s s spent in %s flush transactions |" %
       (t2 - t1, flush_s, flushes),
       "| restart: load every counter back | %d ms (`%s`) |" % (ms, loaded),
       "| database size | %s MB |" % db_mb, "",
       "Targets: flush 1M dirty URLs in <= 2 s, start with 1M URLs in <= 3 s.",
       "<!-- persist:end -->"]
text = open(results).read() if os.path.exists(results) else ""
block = "\n".join(out) + "\n"
if "<!-- persist:begin -->" in text:
    a = text.index("<!-- persist:begin -->")
    b = text.index("<!-- persist:end -->") + len("<!-- persist:end -->\n")
    text = text[:a] + block + text[b:]
else:
    text = text.rstrip("\n") + "\n\n" + block
open(results, "w").write(text)
print("\n".join(out))
EOF
