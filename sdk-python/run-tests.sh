#!/usr/bin/env bash
# Builds the Python package the way a user installs it (pip, PEP 517 with
# maturin) into a fresh virtualenv and runs its pytest suite against a real
# broker. Expects the broker binary to be built already
# (`cargo build --workspace --bins`), or TIDELOG_BIN pointing at one.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
python="${PYTHON:-python3}"
venv="${TIDELOG_PY_VENV:-$repo/target/py-venv}"

export TIDELOG_BIN="${TIDELOG_BIN:-$repo/target/debug/tidelog}"
if [[ ! -x "$TIDELOG_BIN" ]]; then
    echo "run-tests.sh: broker binary $TIDELOG_BIN missing; run 'cargo build --workspace --bins' first" >&2
    exit 2
fi
# Share compiled Rust dependencies with other binding builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target-bindings}"

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "$here" pytest

# Run from outside the source tree so the installed package is imported.
cd "$here/tests"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
