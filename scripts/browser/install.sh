#!/bin/sh
# Installs what the real-browser console test needs
# (internal/server/console_browser_test.go): Debian's chromium (apt, when
# missing) and the pinned npm axe-core (package-lock.json) into
# scripts/browser/node_modules. `make unit` runs this first and points
# QBROKER_CHROMIUM and QBROKER_AXE at them.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
if ! command -v chromium >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	else
		sudo apt-get update -qq >/dev/null
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	fi
fi
cd "$dir"
if [ -f node_modules/axe-core/axe.min.js ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
	exit 0
fi
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
