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

# Tiered-storage tests run against a real S3-compatible server: moto_server
# from PyPI, installed into a virtualenv under target/ on first use.
VENV="${TIDELOG_TEST_VENV:-$root/target/venv-test}"
if [ ! -x "$VENV/bin/moto_server" ]; then
  if ! python3 -m venv "$VENV"; then
    echo "error: python3 -m venv failed; install python3 with venv (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi
export MOTO_SERVER="$VENV/bin/moto_server"

# The end-to-end tests run the real binary from target/debug.
cargo build --workspace --bins
export TIDELOG_BIN="$root/target/debug/tidelog"

cargo test --workspace --no-fail-fast 2>&1 | tee "$logs/cargo.log" || status=1

# The Python and Node SDKs, installed the way users install them, against
# a live broker.
sdk-python/run-tests.sh 2>&1 | tee "$logs/python.log" || status=1
sdk-node/run-tests.sh 2>&1 | tee "$logs/node.log" || status=1

# The Terraform module (terraform/README.md, "Tests"): fmt and validate,
# plan tests with a mocked AWS provider, apply and destroy of the example
# against moto_server, and the configuration it writes run by the real
# tidelog binary.
terraform/test.sh 2>&1 | tee "$logs/terraform.log" || status=1

# Totals: cargo's "test result:" lines, pytest's "N passed, M failed" line,
# node's TAP "# pass N" / "# fail N", terraform/test.sh's "PASS:" / "FAIL:"
# lines.
count() { # $1 = passed|failed
    local cargo py node tf
    cargo=$(grep -hE '^test result:' "$logs/cargo.log" | awk -v w="$1" '{ for (i = 1; i < NF; i++) if ($(i+1) ~ "^" w) s += $i } END { print s + 0 }')
    py=$(grep -hE '(passed|failed).* in [0-9.]+s' "$logs/python.log" | tail -n 1 | awk -v w="$1" '{ for (i = 1; i < NF; i++) if ($(i+1) ~ "^" w) s += $i } END { print s + 0 }')
    if [ "$1" = passed ]; then
        node=$(grep -hE '^# pass [0-9]+' "$logs/node.log" | awk '{ s += $3 } END { print s + 0 }')
    else
        node=$(grep -hE '^# fail [0-9]+' "$logs/node.log" | awk '{ s += $3 } END { print s + 0 }')
    fi
    if [ "$1" = passed ]; then
        tf=$(grep -c '^PASS: ' "$logs/terraform.log" || true)
    else
        tf=$(grep -c '^FAIL: ' "$logs/terraform.log" || true)
    fi
    echo $((cargo + py + node + tf))
}
passed=$(count passed)
failed=$(count failed)
echo
echo "total: ${passed} passed, ${failed} failed"
exit "$status"
