#!/bin/sh
# Installs the pinned npm oidc-provider (package-lock.json) into
# scripts/oidc-provider/node_modules for the e2e test TestOIDCProvider*
# (e2e/oidcprovider_test.go). `make unit` runs this first.
#
# Skips the install when node_modules already matches the lock file.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
cd "$dir"
command -v node >/dev/null 2>&1 || { echo "install.sh: node is not installed (Node.js >= 20 is needed)" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "install.sh: npm is not installed" >&2; exit 1; }
if [ -f node_modules/.package-lock.json ] && [ -d node_modules/oidc-provider ] &&
	[ node_modules/.package-lock.json -nt package-lock.json ]; then
	exit 0
fi
# oidc-provider 9 declares Node 22 but every flow the tests use works on 20;
# the engine mismatch is only a warning.
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
