#!/usr/bin/env bash
# Soak: SOAK_SECONDS (default 600) of mixed load against one livecount:
# open-loop ingest, 5000 long-lived subscribers (4000 WS + 1000 SSE), and
# connection churn (short-lived subscribers coming and going all the time).
# Samples the server's RSS and open fds every 10 s and writes the series and
# a verdict into loadtest/RESULTS.md (between the soak markers).
# Loopback only; every process it starts is stopped at the end.
#
# usage: loadtest/soak.sh [build-dir]     (make soak)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
bin=$build/livecount
load=$build/livecount-load
dur=${SOAK_SECONDS:-600}
work=$(mktemp -d /tmp/lc-soak.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target=http://127.0.0.1:$port
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -n "${srv:-}" ] && kill "$srv" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

[ -x "$bin" ] && [ -x "$load" ] || { echo "soak: build first (make)" >&2; exit 2; }
"$bin" --bind 127.0.0.1 --port "$port" --db "$work/lc.db" --log-level warn \
	2>"$work/server.log" &
srv=$!
for _ in $(seq 100); do
	curl -sf "$target/readyz" >/dev/null && break
	sleep 0.1
done

echo "soak: ${dur}s against pid $srv on $target (work dir $work)" >&2
"$load" ingest --target "$target" --connections 16 --rate 20000 --urls 10000 \
	--duration "$dur" --quiet >"$work/ingest.json" 2>&1 &
pids+=($!)
"$load" fanout --target "$target" --transport ws --subscribers 4000 --urls 50 \
	--like-rate 200 --duration "$dur" --sources 4 --quiet \
	>"$work/fanout-ws.json" 2>&1 &
pids+=($!)
"$load" fanout --target "$target" --transport sse --subscribers 1000 --urls 50 \
	--like-rate 50 --duration "$dur" --sources 4 --quiet \
	>"$work/fanout-sse.json" 2>&1 &
pids+=($!)
(
	# churn: 200 short-lived subscribers every few seconds, both transports
	end=$((SECONDS + dur - 10))
	n=0
	while [ $SECONDS -lt $end ]; do
		t=ws; [ $((n % 2)) = 1 ] && t=sse
		"$load" fanout --target "$target" --transport $t --subscribers 200 \
			--urls 5 --like-rate 20 --duration 3 --quiet >/dev/null 2>&1 || true
		n=$((n + 1))
	done
	echo "$n" >"$work/churn.count"
) &
pids+=($!)

samples=$work/samples.tsv
printf 't_s\trss_kb\tfds\tws\tsse\n' >"$samples"
t0=$SECONDS
while [ $((SECONDS - t0)) -lt "$dur" ]; do
	sleep 10
	rss=$(awk '/^VmRSS:/ {print $2}' /proc/$srv/status)
	fds=$(ls /proc/$srv/fd | wc -l)
	m=$(curl -sf "$target/metrics" || true)
	ws=$(echo "$m" | awk '/^livecount_connections\{transport="ws"\}/ {print $2}')
	sse=$(echo "$m" | awk '/^livecount_connections\{transport="sse"\}/ {print $2}')
	printf '%d\t%s\t%s\t%s\t%s\n' $((SECONDS - t0)) "$rss" "$fds" "$ws" "$sse" \
		| tee -a "$samples" >&2
done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
sleep 2
rss_end=$(awk '/^VmRSS:/ {print $2}' /proc/$srv/status)
fds_end=$(ls /proc/$srv/fd | wc -l)
kill -TERM "$srv"
wait "$srv" && rc=0 || rc=$?
srv=

python3 - "$work" "$root/loadtest/RESULTS.md" "$dur" "$rc" "$rss_end" "$fds_end" <<'EOF'
import json, os, subprocess, sys, time
work, results, dur, rc, rss_end, fds_end = sys.argv[1:7]
rows = [l.split("\t") for l in open(os.path.join(work, "samples.tsv")).read().split("\n")[1:] if l]
def last_json(name):
    try:
        return json.loads(open(os.path.join(work, name)).read().strip().split("\n")[-1])
    except Exception:
        return {}
ing, ws, sse = last_json("ingest.json"), last_json("fanout-ws.json"), last_json("fanout-sse.json")
churn = open(os.path.join(work, "churn.count")).read().strip() if os.path.exists(os.path.join(work, "churn.count")) else "?"
warm = [r for r in rows if 60 <= int(r[0]) <= int(dur)] or rows
rss = [int(r[1]) for r in warm]
fds = [int(r[2]) for r in warm]
commit = subprocess.run(["git", "-C", os.path.dirname(results), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
out = ["<!-- soak:begin -->", "## Soak (loadtest/soak.sh)", "",
       "%s, commit %s, `nproc` %s, %s s: open-loop ingest 20k req/s over 10k URLs, "
       "4000 WS + 1000 SSE long-lived subscribers on 50 URLs, and churn "
       "(%s rounds of 200 short-lived subscribers). Samples every 10 s." %
       (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit, os.cpu_count(), dur, churn), "",
       "| under load, after warm-up (60 s .. end) | min | max |", "|---|---|---|",
       "| server RSS (kB) | %d | %d |" % (min(rss), max(rss)),
       "| open fds | %d | %d |" % (min(fds), max(fds)), "",
       "End of load: RSS %s kB, %s fds; SIGTERM exit code %s. "
       "Ingest: %s errors, counts exact: %s. Fan-out delivered ratio: WS %s, SSE %s." %
       (rss_end, fds_end, rc, ing.get("errors"), ing.get("counts_exact"),
        ws.get("delivered_ratio"), sse.get("delivered_ratio")), "",
       "<details><summary>samples</summary>", "", "| t (s) | RSS (kB) | fds | WS | SSE |", "|---|---|---|---|---|"]
out += ["| %s |" % " | ".join(r) for r in rows]
out += ["", "</details>", "<!-- soak:end -->"]
text = open(results).read() if os.path.exists(results) else ""
block = "\n".join(out) + "\n"
if "<!-- soak:begin -->" in text:
    a = text.index("<!-- soak:begin -->")
    b = text.index("<!-- soak:end -->") + len("<!-- soak:end -->\n")
    text = text[:a] + block + text[b:]
else:
    text = text.rstrip("\n") + "\n\n" + block
open(results, "w").write(text)
print("\n".join(out[:12]))
EOF
