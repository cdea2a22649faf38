#!/usr/bin/env bash
# Issue 11's comparison, all in one session on this machine (docs/benchmarks.md):
# full-flow and job-token throughput and p99 for
#   A. SQLite, one `qbroker server`            (the baseline)
#   B. PostgreSQL, one replica
#   C. PostgreSQL, three replicas (broker calls spread over the three)
# each with one standalone `qbroker gateway` and the IonQ emulator, plus the
# gateway's overhead against calling the emulator directly.
#   scripts/bench-stores.sh [duration]   (default 8s per run)
# Needs PostgreSQL on 127.0.0.1:5432 (scripts/postgres/ensure.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.26.10
dur=${1:-8s}
scripts/postgres/ensure.sh
bin=$(mktemp -d)/qbroker
go build -o "$bin" ./cmd/qbroker
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
waitfor() { for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout waiting for $2 in $1" >&2; cat "$1" >&2; exit 1; }

export IONQ_API_KEY="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
simport=$(port)
"$bin" sim --addr "127.0.0.1:$simport" >"$work/sim.out" 2>&1 & pids+=($!)
waitfor "$work/sim.out" "listening"
sim="http://127.0.0.1:$simport"
export QBROKER_SEAL_KEY=$(head -c 32 /dev/urandom | base64)
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%FT%TZ); PostgreSQL $(psql -V | awk '{print $3}') on the same machine"

# run NAME STORE REPLICAS: start the cluster, provision, bench, stop.
run() {
  local name=$1 store=$2 n=$3 dir="$work/$1" brokers=() first=""
  mkdir -p "$dir"
  local schema="qbroker_bench_$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  if [ "$store" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -c "CREATE SCHEMA $schema" postgres
    export QB_BENCH_DSN="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&search_path=$schema"
  fi
  local p1; p1=$(port); first="http://127.0.0.1:$p1"
  printf 'public_url: %s\nseal: {type: env, env: QBROKER_SEAL_KEY}\nwatch_policies: false\nlog: {level: warn}\nstore: {type: %s, dsn_env: QB_BENCH_DSN}\n' "$first" "$store" >"$dir/qbroker.yaml"
  local cpids=()
  for i in $(seq "$n"); do
    local p=$p1; [ "$i" -gt 1 ] && p=$(port)
    "$bin" server --config "$dir/qbroker.yaml" --addr "127.0.0.1:$p" --data "$dir/r$i" >"$dir/r$i.out" 2>"$dir/r$i.err" & cpids+=($!)
    waitfor "$dir/r$i.out" "listening"
    brokers+=("http://127.0.0.1:$p")
  done
  local root; root=$(sed -n 's/^Initial root token (shown once; store it safely): //p' "$dir/r1.out")
  export QBROKER_ADDR=$first QBROKER_TOKEN=$root
  "$bin" role write demo --provider ionq --devices simulator --max-shots 1000 >/dev/null
  export QBROKER_ROLE_ID=$("$bin" approle role-id demo)
  export QBROKER_SECRET_ID=$("$bin" approle secret-id demo --agent bench | sed -n 's/.*"secret_id": *"\([^"]*\)".*/\1/p')
  echo "$IONQ_API_KEY" | "$bin" provider set ionq >/dev/null
  local gwport; gwport=$(port)
  QBROKER_GATEWAY_TOKEN=$("$bin" token create-gateway) "$bin" gateway --broker "$first" --addr "127.0.0.1:$gwport" --ionq-upstream "$sim" --log-level warn >"$dir/gw.out" 2>&1 & cpids+=($!)
  waitfor "$dir/gw.out" "listening"
  export QBROKER_GATEWAY_ADDR="http://127.0.0.1:$gwport"
  local targets=()
  for b in "${brokers[@]:1}"; do targets+=(--target "$b"); done
  echo; echo "### $name"
  "$bin" bench --step jobtoken,flow --concurrency 8 --duration "$dur" --warmup 2s "${targets[@]}" 2>/dev/null
  if [ "$name" = "A-sqlite-1" ]; then
    echo; echo "### gateway overhead (SQLite cluster; same emulator)"
    "$bin" bench --step submit,submit-direct,status,status-direct --concurrency 8 --duration "$dur" --warmup 2s --direct-addr "$sim" --direct-key-env IONQ_API_KEY 2>/dev/null
  fi
  for p in "${cpids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait "${cpids[@]}" 2>/dev/null || true
  if [ "$store" = postgres ]; then PGOPTIONS=--client-min-messages=warning psql -q -h 127.0.0.1 -U postgres -c "DROP SCHEMA $schema CASCADE" postgres; fi
}
run A-sqlite-1 sqlite 1
run B-postgres-1 postgres 1
run C-postgres-3 postgres 3
