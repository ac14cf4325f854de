#!/usr/bin/env bash
# Runs the fault matrix (tests/tests/fault_matrix.rs) against the debug
# build and writes its table, with the date and commit, to RELIABILITY.md.
# Usage: tests/write-reliability.sh   (needs moto_server: tests/run-all.sh
# installs it under target/venv-test)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export TIDELOG_BIN="${TIDELOG_BIN:-$root/target/debug/tidelog}"
export MOTO_SERVER="${MOTO_SERVER:-$root/target/venv-test/bin/moto_server}"
cargo build --workspace --bins
table=$(mktemp)
trap 'rm -f "$table"' EXIT
TIDELOG_RELIABILITY_OUT="$table" cargo test -p tidelog-e2e --test fault_matrix -- --nocapture
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo "+changes")
{
  echo "# Reliability: the fault matrix"
  echo
  echo "Written by \`tests/write-reliability.sh\` on $(date -u +%Y-%m-%d) at commit \`$commit\`;"
  echo "\`tests/run-all.sh\` runs the same matrix on every change (\`tests/tests/fault_matrix.rs\`)."
  echo
  echo "Workload: $(grep -oE 'const PRODUCERS: usize = [0-9]+' tests/tests/fault_matrix.rs | grep -oE '[0-9]+$') idempotent producers, \`acks=all\`, uniquely numbered"
  echo "records over $(grep -oE 'const PARTITIONS: u32 = [0-9]+' tests/tests/fault_matrix.rs | grep -oE '[0-9]+$') partitions, and a consumer reading live. After the fault heals every partition is"
  echo "read from offset 0 and compared with what the producers were told was acknowledged."
  echo "*Lost*: acknowledged but absent. *Duplicated*: present twice. *Reordered*: a producer's records"
  echo "out of order within a partition. *Read, then gone*: a record the live consumer saw that the final"
  echo "read does not hold at that offset. *Lost, reported*: destroyed by the fault itself (an object deleted"
  echo "from the bucket) and reported by every read as DATA_LOSS naming its range; never silent."
  echo "*Recovery*: from the start of healing (restart, resume, room on disk) to"
  echo "the next acknowledgement. A scenario passes only with 0 lost silently, duplicated, reordered and gone."
  echo
  cat "$table"
  echo
  echo "Not in the matrix yet (issue 16): a power cut that drops unsynced writes, fsync EIO,"
  echo "bit flips in index files, producer snapshots, manifests and the metadata log, object-store faults"
  echo "through a fault proxy, network partitions, rolling restarts, clock skew, client kills, and fuzzing."
  echo "Replication-dependent cluster scenarios wait for issue 15."
} > RELIABILITY.md
echo "wrote RELIABILITY.md"
