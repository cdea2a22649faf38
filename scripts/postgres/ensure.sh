#!/bin/sh
# Makes sure the machine's PostgreSQL answers on 127.0.0.1:5432 for the
# store tests (QBROKER_TEST_POSTGRES). Go-service machines start it before
# a session; this starts it again if it has stopped, or installs it from
# Debian's packages on a machine that has none.
set -eu
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
	exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in 1 2 3 4 5 6 7 8 9 10; do
	pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
	sleep 1
done
echo "ensure.sh: PostgreSQL does not answer on 127.0.0.1:5432" >&2
exit 1
