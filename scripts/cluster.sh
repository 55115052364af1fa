#!/bin/sh
# A local cluster on this machine: one redis-server and N livecount nodes
# sharing one port (SO_REUSEPORT), each with its own database.
#   scripts/cluster.sh start [N]   # default 3 nodes
#   scripts/cluster.sh stop
#   scripts/cluster.sh status
# Environment: PORT (default 8080), REDIS_PORT (default 6390),
# DIR (default ./data/cluster), BIN (default build/livecount),
# WORKERS (per node, default 1), and any LIVECOUNT_* setting.
set -eu
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
REDIS_PORT=${REDIS_PORT:-6390}
DIR=${DIR:-./data/cluster}
BIN=${BIN:-build/livecount}
WORKERS=${WORKERS:-1}

start() {
	n=${1:-3}
	[ -x "$BIN" ] || { echo "cluster.sh: build first (make build)" >&2; exit 1; }
	command -v redis-server >/dev/null ||
		{ echo "cluster.sh: needs redis-server (apt-get install redis-server)" >&2; exit 1; }
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
	if [ ! -f "$DIR/redis.pid" ] || ! kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then
		redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
			--appendonly no --daemonize yes --dir "$DIR" \
			--pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
		i=0
		until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
			i=$((i + 1)); [ $i -lt 100 ] || { echo "redis did not start" >&2; exit 1; }
			sleep 0.1
		done
		echo "redis-server on 127.0.0.1:$REDIS_PORT"
	fi
	for id in $(seq 1 "$n"); do
		"$BIN" --port "$PORT" --reuse-port --workers "$WORKERS" \
			--redis-url "redis://127.0.0.1:$REDIS_PORT" --node-id "$id" \
			--db "$DIR/node-$id.db" >"$DIR/node-$id.log" 2>&1 &
		echo $! >"$DIR/node-$id.pid"
	done
	sleep 1
	for id in $(seq 1 "$n"); do
		kill -0 "$(cat "$DIR/node-$id.pid")" 2>/dev/null ||
			{ echo "node $id did not start:"; cat "$DIR/node-$id.log"; exit 1; } >&2
	done
	echo "$n nodes on port $PORT (logs and databases in $DIR)"
}

stop() {
	for f in "$DIR"/node-*.pid; do
		[ -f "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
	done
	for f in "$DIR"/node-*.pid; do
		[ -f "$f" ] || continue
		while kill -0 "$(cat "$f")" 2>/dev/null; do sleep 0.1; done
		rm -f "$f"
	done
	if [ -f "$DIR/redis.pid" ]; then
		kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
		rm -f "$DIR/redis.pid"
	fi
	echo "stopped"
}

status() {
	for f in "$DIR"/node-*.pid; do
		[ -f "$f" ] || continue
		id=$(basename "$f" .pid)
		if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$id: running (pid $(cat "$f"))"
		else echo "$id: not running"; fi
	done
	curl -s "http://127.0.0.1:$PORT/v1/stats" && echo
}

case "${1:-}" in
start) start "${2:-3}" ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start [N] | stop | status" >&2; exit 2 ;;
esac
