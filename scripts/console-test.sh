#!/usr/bin/env bash
# The web console's end-to-end test: installs what is missing (Debian's chromium, the npm
# packages of console-tests/), builds the strata binary, and runs the browser test against
# a real `strata serve` on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

echo "== npm ci (console-tests)"
(cd console-tests && npm ci --no-audit --no-fund --silent)

echo "== building strata"
cargo build -p strata-cli ${CARGO_LOCKED:+--locked}

echo "== console test"
STRATA_BIN="${STRATA_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/strata}" node --test console-tests/
