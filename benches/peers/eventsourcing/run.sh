#!/usr/bin/env bash
# The bank-account comparison on the Python eventsourcing library (PostgreSQL module):
# makes a virtual environment with the pinned packages from PyPI (once; kept under
# target/peers/), then runs bank.py against the database at URL.
# Usage: benches/peers/eventsourcing/run.sh URL [--clients 1,8,32] [--seconds 5]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${STRATA_PEERS_VENV:-$root/target/peers/eventsourcing-venv}"

if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
    echo "eventsourcing peer: installing $(tr '\n' ' ' <"$here/requirements.txt")into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
    cp "$here/requirements.txt" "$venv/requirements.txt"
fi
exec "$venv/bin/python" "$here/bank.py" "$@"
