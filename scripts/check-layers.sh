#!/bin/sh
# check-layers.sh [build-dir]: checks the layering of the server's objects.
#
# From `nm` of the built objects of the livecount target and the lc_core
# library, builds the graph "object A calls (or reads) a symbol object B
# defines", then checks
#   1. no circle: tsort(1) over the edges reports no loop;
#   2. no upward call: every edge goes to the same or a lower layer.
# Layers, bottom to top (README, "How it works"):
#   0 core       counter, dispatch, subs, delivery, limits, store, ... (lc_core)
#   1 services   worker, bridge (cluster link to Redis), metrics
#   2 transports http*, ws, sse
#   3 wiring     server
#   4 main       main
# An object not in the table fails the check: place each new file in a
# layer here. Exit status 0 when both hold, 1 otherwise.
set -eu
BUILD=${1:-build}

layer() {
	case "$1" in
	log | config | counter | parse | parse_simdjson | store | dispatch | batcher | subs | \
		delivery | limits | slots | cluster | notify | idem) echo 0 ;;
	worker | bridge | metrics) echo 1 ;;
	http | http_* | ws | sse) echo 2 ;;
	server) echo 3 ;;
	main) echo 4 ;;
	*) echo "" ;;
	esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The objects the build links: livecount's from its link line (stale
# objects of deleted files are ignored), lc_core's from its archive.
link="$BUILD/CMakeFiles/livecount.dir/link.txt"
[ -f "$link" ] && [ -f "$BUILD/liblc_core.a" ] ||
	{ echo "check-layers: build $BUILD first" >&2; exit 1; }
objs=""
for o in $(tr ' ' '\n' <"$link" | grep '\.o$'); do
	objs="$objs $BUILD/$o"
done
for m in $(ar t "$BUILD/liblc_core.a"); do
	objs="$objs $BUILD/CMakeFiles/lc_core.dir/src/$m"
done

# "symbol object" for every global definition, "object symbol" for every use.
for o in $objs; do
	name=$(basename "$o" .o)
	name=${name%.c}
	name=${name%.cc}
	nm --defined-only -g "$o" | awk -v n="$name" 'NF == 3 { print $3, n }'
done | sort >"$tmp/defs"
for o in $objs; do
	name=$(basename "$o" .o)
	name=${name%.c}
	name=${name%.cc}
	nm -u "$o" | awk -v n="$name" '{ print $NF, n }'
done | sort >"$tmp/uses"

# Edges user -> definer (self edges dropped), one per pair.
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 { print $2, $3 }' | sort -u \
	>"$tmp/edges"

rc=0
if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/tsort"; then
	echo "check-layers: the objects call each other in a circle:" >&2
	cat "$tmp/tsort" >&2
	rc=1
fi
while read -r from to; do
	lf=$(layer "$from")
	lt=$(layer "$to")
	if [ -z "$lf" ] || [ -z "$lt" ]; then
		echo "check-layers: $from or $to has no layer in $0" >&2
		rc=1
	elif [ "$lt" -gt "$lf" ]; then
		echo "check-layers: $from (layer $lf) calls up into $to" \
			"(layer $lt)" >&2
		rc=1
	fi
done <"$tmp/edges"
n=$(wc -l <"$tmp/edges")
if [ $rc -eq 0 ]; then
	echo "check-layers: $n calls between objects, no circle, none upward"
fi
exit $rc
