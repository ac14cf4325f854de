#!/usr/bin/env bash
# Runs every test of Tidelog on a fresh machine: unit tests and the
# end-to-end tests that start real `tidelog` processes on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tiered-storage tests run against a real S3-compatible server: moto_server
# from PyPI, installed into a virtualenv under target/ on first use.
VENV="${TIDELOG_TEST_VENV:-$PWD/target/venv-test}"
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
cargo test --workspace --no-fail-fast
