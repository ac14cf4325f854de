#!/usr/bin/env bash
# Runs every test of Tidelog on a fresh machine: unit tests and the
# end-to-end tests that start real `tidelog` processes on loopback.
# Ends with one summary line: "total: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
status=0

# The end-to-end tests run the real binary from target/debug.
cargo build --workspace --bins
export TIDELOG_BIN="$root/target/debug/tidelog"

cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/cargo.log" || status=1

passed=$(grep -hE '^test result:' "$logs"/*.log | awk '{ for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) s += $i } END { print s + 0 }')
failed=$(grep -hE '^test result:' "$logs"/*.log | awk '{ for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed/) s += $i } END { print s + 0 }')
echo
echo "total: ${passed} passed, ${failed} failed"
exit "$status"
