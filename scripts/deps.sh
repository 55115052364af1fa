#!/bin/sh
# Installs the Debian packages livecount needs to build, run and test, when
# any is missing. Usage: scripts/deps.sh [run|test]
# As root it runs apt-get; otherwise it prints the command to run.
set -eu
mode=${1:-run}
pkgs="build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-uv
libjansson-dev libsimdjson-dev libsqlite3-dev libuv1-dev libhiredis-dev sqlite3 curl"
[ "$mode" = test ] && pkgs="$pkgs libcmocka-dev python3 openssl clang-14
libfuzzer-14-dev libclang-rt-14-dev redis-server nginx prometheus
universal-ctags stunnel4"
# The web tests need Node.js 20+ and npm; Debian's own are used when the
# machine has none (the tests' run.sh says so if it is too old).
[ "$mode" = test ] && ! command -v node >/dev/null 2>&1 && pkgs="$pkgs nodejs npm"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "livecount: missing Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "livecount: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $missing >/dev/null 2>&1 || {
	apt-get -o DPkg::Lock::Timeout=600 update >/dev/null && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $missing >/dev/null
}
