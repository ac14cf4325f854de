#!/usr/bin/env bash
# Cluster measurements of issue 14 (BENCHMARKS.md, "Cluster"):
#   throughput — `tidelog bench produce|consume` with 3 partitions on one
#                broker, then on a three-broker cluster (one partition per
#                broker), same flags;
#   failover   — time from `kill -9` of the controller to the next
#                successful `topic create` through a surviving broker,
#                10 tries, p50 and max.
# Usage: bench/scripts/cluster.sh [path/to/tidelog]   (default: release build)
# Runs everything on loopback ports 17070-17399 under a temp directory.
set -euo pipefail
BIN=${1:-target/release/tidelog}
RECORDS=${RECORDS:-1000000}
TRIES=${TRIES:-10}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_ready() { # $1 = http port
  for _ in $(seq 300); do curl -sf "127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.05; done
  echo "broker on $1 not ready" >&2; return 1
}

start() { # $1 = node id, $2 = voters ("" for a lone broker), $3 = run name
  local id=$1 voters=$2 name=$3 base=$((17000 + 100 * $1))
  local args=(serve --data-dir "$work/$name/d$id" --listen "127.0.0.1:$((base + 70))"
              --http-listen "127.0.0.1:$((base + 71))")
  if [ -n "$voters" ]; then
    args+=(--node-id "$id" --cluster-listen "127.0.0.1:$((base + 72))" --voters "$voters")
  fi
  "$BIN" "${args[@]}" >>"$work/$name.log" 2>&1 &
  pids[$id]=$!
}

bench() { # $1 = mode, $2 = brokers
  "$BIN" --broker "$2" bench "$1" --topic t --partitions 3 --records "$RECORDS" --json 2>/dev/null | tail -1 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f MB/s, %.0f records/s, p50 %s ms, p99 %s ms" % (d["mb_per_sec"], d["records_per_sec"], d.get("latency_ms", {}).get("p50", "-"), d.get("latency_ms", {}).get("p99", "-")))'
}

V=1=127.0.0.1:17172,2=127.0.0.1:17272,3=127.0.0.1:17372
echo "== one broker, 3 partitions"
start 1 "" single; wait_ready 17171
echo "produce: $(bench produce 127.0.0.1:17170)"
echo "consume: $(bench consume 127.0.0.1:17170)"
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true

echo "== three brokers, 3 partitions (one per broker)"
for i in 1 2 3; do start "$i" "$V" cluster; done
for i in 1 2 3; do wait_ready $((17071 + 100 * i)); done
ALL=127.0.0.1:17170,127.0.0.1:17270,127.0.0.1:17370
echo "produce: $(bench produce "$ALL")"
echo "consume: $(bench consume "$ALL")"

echo "== failover: kill -9 of the controller to the next topic create ($TRIES tries)"
times=()
for n in $(seq "$TRIES"); do
  c=$("$BIN" --broker "$ALL" cluster status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["controller_id"])')
  other=$(( c % 3 + 1 ))
  t0=$(date +%s%N)
  kill -9 "${pids[$c]}"; wait "${pids[$c]}" 2>/dev/null || true
  until "$BIN" --broker "127.0.0.1:$((17070 + 100 * other))" topic create "f$n" >/dev/null 2>&1; do sleep 0.02; done
  t1=$(date +%s%N)
  times+=($(( (t1 - t0) / 1000000 )))
  start "$c" "$V" cluster; wait_ready $((17071 + 100 * c))
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "failover to next topic create: p50 %d ms, max %d ms (n=%d)\n", a[int((NR+1)/2)], a[NR], NR}'
