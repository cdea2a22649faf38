#!/usr/bin/env bash
# Reproduces docs/benchmarks.md: starts `qbroker dev` with a known emulator
# key (so the direct-to-emulator baselines can run in the same session),
# drives every step at concurrency 1, 8 and 32, and measures server RSS idle
# and after 100,000 logins.
#   scripts/bench.sh [duration]   (default 5s per run)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.26.10
dur=${1:-5s}
bin=$(mktemp -d)/qbroker
go build -o "$bin" ./cmd/qbroker
work=$(mktemp -d)
export QB_BENCH_IONQ_KEY="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$bin" dev --addr 127.0.0.1:0 --gateway-addr 127.0.0.1:0 --sim-addr 127.0.0.1:0 --data "$work/data" \
  --ionq-key-env QB_BENCH_IONQ_KEY --no-budgets --log-level warn >"$work/dev.out" 2>"$work/dev.err" &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^export QBROKER_SECRET_ID' "$work/dev.out" 2>/dev/null && break; sleep 0.1; done
eval "$(grep '^export' "$work/dev.out")"
sim=$(sed -n 's/^  emulator: \(http[^ ]*\).*/\1/p' "$work/dev.out")
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$dev/status"; }

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
echo "idle RSS after start: $(rss)"
"$bin" bench --step health,login,jobtoken,submit,status,flow,status-direct,submit-direct \
  --concurrency 1,8,32 --duration "$dur" --warmup 1s \
  --direct-addr "$sim" --direct-key-env QB_BENCH_IONQ_KEY
echo "RSS after the runs: $(rss)"
# 100,000 more logins, then RSS.
total=0
while [ "$total" -lt 100000 ]; do
  n=$("$bin" bench --step login --concurrency 32 --duration 15s --warmup 0s --table=false 2>&1 | sed -n 's/.* ops=\([0-9]*\).*/\1/p')
  total=$((total + ${n:-0}))
done
echo "RSS after $total more logins: $(rss)"
