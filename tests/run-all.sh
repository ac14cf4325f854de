#!/usr/bin/env bash
# Runs every test of Tidelog on a fresh machine: unit tests and the
# end-to-end tests that start real `tidelog` processes on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
# The end-to-end tests run the real binary from target/debug.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
