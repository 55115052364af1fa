#!/bin/sh
# Runs every libFuzzer target for a while: tests/fuzz/run.sh [seconds] [build-dir]
#
# Configures a separate clang build (default build-fuzz/, LC_FUZZ=ON), builds
# the fuzz targets and runs each for the given seconds (default 60) on a
# working corpus kept in the build dir (seeded from tests/fuzz/corpus/, grown
# across runs), then prints each target's total executions. Crashing inputs
# are written to <build-dir>/tests/fuzz/long/<target>/artifacts/. Exits 1 if
# any target failed.
set -eu

secs=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac
targets="url query_n likes likes_diff ws_op config http_line idem"
jobs=$(nproc 2>/dev/null || echo 2)

if [ -z "${CC:-}" ]; then
	if command -v clang-14 >/dev/null 2>&1; then CC=clang-14; else CC=clang; fi
fi
if [ -z "${CXX:-}" ]; then
	if command -v clang++-14 >/dev/null 2>&1; then CXX=clang++-14; else CXX=clang++; fi
fi
export CC CXX
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (apt-get install clang-14 libfuzzer-14-dev" \
		"libclang-rt-14-dev)" >&2
	exit 2
fi

cmake -S "$root" -B "$build" -DLC_FUZZ=ON >/dev/null
cmake --build "$build" -j"$jobs" --target fuzz_targets >/dev/null

status=0
summary=""
for t in $targets; do
	work=$build/tests/fuzz/long/$t
	mkdir -p "$work/corpus" "$work/artifacts"
	cp -R "$root/tests/fuzz/corpus/$t/." "$work/corpus/"
	dict=""
	case $t in
	likes | likes_diff | ws_op | http_line) dict=-dict=$root/tests/fuzz/json.dict ;;
	config) dict=-dict=$root/tests/fuzz/config.dict ;;
	esac
	echo "fuzz_$t: running for ${secs}s ..."
	rc=0
	(cd "$work" && "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" \
		-timeout=10 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" $dict "$work/corpus") \
		>"$work/log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" |
		tail -n 1)
	if [ "$rc" -ne 0 ]; then
		status=1
		echo "fuzz_$t: FAILED (exit $rc), see $work/log and $work/artifacts/"
		tail -n 30 "$work/log"
	fi
	line=$(printf '%-14s %12s executions%s' "fuzz_$t" "${execs:-?}" \
		"$([ "$rc" -ne 0 ] && echo '  FAILED')")
	summary="$summary$line
"
done
printf '\n%s' "$summary"
exit $status
