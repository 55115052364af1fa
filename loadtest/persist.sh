#!/usr/bin/env bash
# Persistence at scale, through the real binary: like N (default 1,000,000)
# fresh URLs once each in 10k-item batches, time until the batcher has
# written them all (livecount_dirty_urls back to 0, flush metrics), then
# restart on that database and read how long loading took. Writes the
# numbers into loadtest/RESULTS.md between the persist markers.
#
# PERSIST_RUNS (default 3) runs, each on a fresh database; RESULTS.md gets
# the median and every run, and the load average around each (the machine
# may be shared).
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

runs=${PERSIST_RUNS:-3}
: >"$work/runs"
for r in $(seq "$runs"); do
	rm -f "$work"/lc.db*
	load0=$(cut -d' ' -f1 /proc/loadavg)
	start
	t0=$(now)
	"$load" ingest --target "$target" --batch 10000 --connections 2 \
		--urls "$n" --requests $((n / 10000)) --duration 120 --quiet \
		--no-verify >"$work/ingest.json"
	t1=$(now)
	while [ "$(metric livecount_dirty_urls)" != 0 ] ||
		[ "$(metric livecount_flush_rows_total)" -lt "$n" ]; do
		sleep 0.1
	done
	t2=$(now)
	flush_s=$(metric livecount_flush_seconds_total)
	flushes=$(metric livecount_flushes_total)
	kill -TERM "$srv"; wait "$srv"; srv=
	start
	loaded=$(grep -o "loaded [0-9]* URLs from .* in [0-9]* ms" \
		"$work/server.log" | tail -1)
	kill -TERM "$srv"; wait "$srv"; srv=
	db_mb=$(du -m "$work/lc.db" | cut -f1)
	errors=$(tail -1 "$work/ingest.json" |
		python3 -c 'import json,sys; print(json.load(sys.stdin).get("errors"))')
	load_ms=$(echo "$loaded" | sed 's/.* in \([0-9]*\) ms/\1/')
	echo "$t0 $t1 $t2 $flush_s $flushes ${load_ms:--1} $db_mb $errors" \
		"$load0 $(cut -d' ' -f1 /proc/loadavg)" >>"$work/runs"
	echo "persist: run $r: $(tail -1 "$work/runs")" >&2
done

python3 - "$root/loadtest/RESULTS.md" "$n" "$work/runs" <<'EOF'
import os, statistics, subprocess, sys, time
results, n, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [l.split() for l in open(runs) if l.strip()]
ingest = [float(r[1]) - float(r[0]) for r in rows]
after = [float(r[2]) - float(r[1]) for r in rows]
in_flush = [float(r[3]) for r in rows]
loads = [int(r[5]) for r in rows]
def med(v, fmt):
    return "**%s** (%s)" % (fmt % statistics.median(v),
                            ", ".join(fmt % x for x in v))
commit = subprocess.run(["git", "-C", os.path.dirname(results), "rev-parse",
                         "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
out = ["<!-- persist:begin -->",
       "## Persistence at %d URLs (loadtest/persist.sh)" % n, "",
       "%s, commit %s, `nproc` %s, default flush settings (1 s interval, "
       "1M rows/s throttle); %d runs, each on a fresh database: median "
       "(every run). 1-min load average before/after each run: %s." %
       (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit,
        os.cpu_count(), len(rows),
        ", ".join("%s/%s" % (r[8], r[9]) for r in rows)), "",
       "| step | result |", "|---|---|",
       "| like %d fresh URLs once each (10k-item batches) | %s s, errors %s |"
       % (n, med(ingest, "%.2f"), "/".join(r[7] for r in rows)),
       "| until every URL is in SQLite (dirty URLs back to 0) | %s s after "
       "the last like |" % med(after, "%.2f"),
       "| time in flush transactions (`livecount_flush_seconds_total`) | "
       "%s s in %s flushes |" % (med(in_flush, "%.2f"),
                                 "/".join(r[4] for r in rows)),
       "| restart: load every counter back | %s ms |" % med(loads, "%d"),
       "| database size | %s MB |" % "/".join(r[6] for r in rows), "",
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
