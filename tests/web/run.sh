#!/usr/bin/env bash
# Web tests: the SDK in Node and the dashboard in headless Chromium, each test
# file against its own real livecount on a free loopback port.
#
# usage: tests/web/run.sh path/to/livecount [test-file.test.mjs ...]
#
# Installs what is missing first: the npm devDependencies (ws, playwright-core)
# into tests/web/node_modules with `npm ci`, and Debian's chromium with apt-get
# when running as root. Environment: LC_SCREENSHOT_DIR (default: build/ at the
# top of the repository) receives dashboard.png; LC_CHROMIUM overrides
# /usr/bin/chromium.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ $# -lt 1 ]; then
	echo "usage: $0 path/to/livecount [test-file.test.mjs ...]" >&2
	exit 2
fi
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
if [ ! -x "$bin" ]; then
	echo "run.sh: $bin is not an executable" >&2
	exit 2
fi
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
	echo "run.sh: Node.js 20 or newer is needed (node --test)" >&2
	exit 2
fi

# One installer at a time when ctest runs several web tests in parallel.
exec 9>"${TMPDIR:-/tmp}/livecount-web-install.lock"
flock 9
cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "run.sh: npm ci (ws, playwright-core)"
	npm ci --no-audit --no-fund --loglevel=error
fi
chromium=${LC_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "run.sh: apt-get install chromium"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null
fi
flock -u 9
exec 9>&-

export LC_BINARY="$bin"
export LC_WEB_ROOT="$root/web"
export LC_SCREENSHOT_DIR="${LC_SCREENSHOT_DIR:-$root/build}"

if [ $# -eq 0 ]; then
	set -- *.test.mjs
fi
exec node --test --test-reporter=spec "$@"
