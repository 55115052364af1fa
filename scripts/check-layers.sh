#!/bin/sh
# check-layers.sh [build-dir]: checks the layering of the server's objects.
#
# From `nm` of the built objects of the livecount target and the lc_core
# library, builds the graph "object A calls (or reads) a symbol object B
# defines", then checks
#   1. no circle: tsort(1) over the edges reports no loop;
#   2. no upward call: every edge goes to the same or a lower layer.
# The layers and the file in each are written once, in src/layers.txt
# (bottom to top: core, services, transports, wiring, main). An object
# whose file is not there fails the check (CMake would not build it
# either): place each new file in a layer there.
# Exit status 0 when both hold, 1 otherwise.
set -eu
BUILD=${1:-build}
LAYERS=${LAYERS:-$(dirname "$0")/../src/layers.txt}

# "object rank" for every file of src/layers.txt (rank = the position of
# its layer among the `layer` lines).
layer_table=$(awk -F '\t' '
	/^layer / { sub(/^layer /, "", $1); rank[$1] = n++; next }
	/^[a-z]+\t/ { split($2, f, " ")
		for (i in f) { sub(/\.cc?$/, "", f[i]); print f[i], rank[$1] } }
' "$LAYERS")

layer() {
	echo "$layer_table" | awk -v o="$1" '$1 == o { print $2 }'
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
	name=$(basename "$o" .o) && name=${name%.cc} && name=${name%.c}
	nm --defined-only -g "$o" | awk -v n="$name" 'NF == 3 { print $3, n }'
done | sort >"$tmp/defs"
for o in $objs; do
	name=$(basename "$o" .o) && name=${name%.cc} && name=${name%.c}
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
		echo "check-layers: $from or $to has no layer in $LAYERS" >&2
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
