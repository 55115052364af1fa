#!/bin/sh
# A local cluster on this machine: one redis-server and N livecount nodes
# sharing one port (SO_REUSEPORT), each with its own database. Usage and
# environment: usage() below, also what `scripts/cluster.sh help` prints.
set -eu

usage() {
	cat <<'EOF'
usage: scripts/cluster.sh start [N] | stop | status | help

  start [N]  a redis-server and N livecount nodes (default 3) on one port
  stop       stops the nodes, then the redis-server
  status     each node's state and the cluster's /v1/stats; exit status
             0 when nodes run, 3 when none does (it says so)

Environment (defaults):
  PORT=8080            the port every node listens on (SO_REUSEPORT)
  REDIS_PORT=6390      the redis-server's port, on 127.0.0.1
  DIR=./data/cluster   databases, logs and pid files
  BIN=build/livecount  the binary; WORKERS=1 per node; any LIVECOUNT_* key
e.g. PORT=9000 REDIS_PORT=6391 scripts/cluster.sh start 2
EOF
}

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
	running=0
	for f in "$DIR"/node-*.pid; do
		[ -f "$f" ] || continue
		id=$(basename "$f" .pid)
		if kill -0 "$(cat "$f")" 2>/dev/null; then
			echo "$id: running (pid $(cat "$f"))"
			running=$((running + 1))
		else echo "$id: not running"; fi
	done
	if [ "$running" -eq 0 ]; then
		echo "no livecount node running from $DIR" \
			"(start one with: scripts/cluster.sh start)"
		exit 3
	fi
	if curl -s "http://127.0.0.1:$PORT/v1/stats"; then echo
	else echo "nothing answers on port $PORT (another PORT=?)"; fi
}

case "${1:-}" in
start) start "${2:-3}" ;;
stop) stop ;;
status) status ;;
help | -h | --help) usage ;;
*) usage >&2; exit 2 ;;
esac
