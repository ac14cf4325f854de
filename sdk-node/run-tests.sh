#!/usr/bin/env bash
# Builds the Node SDK (native addon + generated types) and runs its tests
# against a real broker process. The broker binary must already be built
# (`cargo build --workspace --bins`) or be given as TIDELOG_BIN.
set -euo pipefail
cd "$(dirname "$0")"

# One run at a time per checkout: concurrent `npm ci`s would delete each
# other's node_modules.
if command -v flock >/dev/null 2>&1; then
  exec 9>.run-tests.lock
  flock 9
fi

# Share compiled dependencies with the other bindings unless told otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd .. && pwd)/target-bindings}"

# Dependencies only; `npm run build` builds the addon below.
if [ -f package-lock.json ]; then
  TIDELOG_SKIP_BUILD=1 npm ci --no-audit --no-fund
else
  TIDELOG_SKIP_BUILD=1 npm install --no-audit --no-fund
fi
npm run build
npm run typecheck
node --test test/*.test.js
