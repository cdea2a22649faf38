#!/bin/sh
# Installs the official MCP TypeScript SDK, pinned in package-lock.json, into
# scripts/mcp/node_modules for the real-client test internal/mcp/ts_test.go
# (client.mjs drives `qbroker mcp` over stdio and streamable HTTP). `make unit`
# runs this first and points QBROKER_MCP_CLIENT at this directory.
#
# @modelcontextprotocol/sdk 1.32.2 declares Node >= 18; Node 20 is enough.
# Skips the install when node_modules already matches the lock file.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
cd "$dir"
command -v node >/dev/null 2>&1 || { echo "install.sh: node is not installed (Node.js >= 18 is needed)" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "install.sh: npm is not installed" >&2; exit 1; }
if [ -f node_modules/.package-lock.json ] && [ -d node_modules/@modelcontextprotocol/sdk ] &&
	[ node_modules/.package-lock.json -nt package-lock.json ]; then
	exit 0
fi
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
