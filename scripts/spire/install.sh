#!/bin/sh
# Builds SPIRE v1.13.3 (spire-server and spire-agent) for the e2e tests
# (e2e/spire_test.go) into .tools/spire/bin/. The versions are pinned by
# the tools module tools/spire/go.mod, kept apart from qbroker's own go.mod.
# The build is slow (several minutes of CPU, cgo for the sqlite datastore),
# so it is skipped while both binaries are newer than tools/spire/go.sum.
set -eu

cd "$(dirname "$0")/../.."
bin=.tools/spire/bin
sum=tools/spire/go.sum

if [ -x "$bin/spire-server" ] && [ -x "$bin/spire-agent" ] &&
	[ "$bin/spire-server" -nt "$sum" ] && [ "$bin/spire-agent" -nt "$sum" ]; then
	exit 0
fi

mkdir -p "$bin"
echo "building SPIRE (spire-server, spire-agent) into $bin; this takes several minutes the first time" >&2
GOTOOLCHAIN="${GOTOOLCHAIN:-go1.26.10}" ${GO:-go} build -modfile=tools/spire/go.mod -o "$bin/" \
	github.com/spiffe/spire/cmd/spire-server \
	github.com/spiffe/spire/cmd/spire-agent
# go build leaves an unchanged binary's mtime alone; make the skip test hold.
touch "$bin/spire-server" "$bin/spire-agent"
