#!/usr/bin/env bash
# The PostgreSQL comparison, side by side on one server and one workload (bank-account
# commands, one event each, load + decide + append, from 1, 8 and 32 clients; and bulk
# appends): strata (`strata bench postgres`, whose lines carry the raw INSERT ceiling),
# cqrs-es + postgres-es (benches/peers/cqrs-es) and the Python eventsourcing library
# (benches/peers/eventsourcing). Builds what it runs in release mode, then prints one
# table (median of the runs). Not part of CI.
#
# Usage: scripts/bench-peers.sh [RUNS] [SECONDS]   (default 1 run, 5 s per client count)
# The server: $STRATA_BENCH_POSTGRES_URL, else $STRATA_TEST_POSTGRES_URL (see
# scripts/services.sh), a postgres:// URL ending in a database name; the peers get
# databases of their own beside it (strata_peer_cqrs_es, strata_peer_eventsourcing),
# made anew by each run. Needs psql and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-1}"
seconds="${2:-5}"
url="${STRATA_BENCH_POSTGRES_URL:-${STRATA_TEST_POSTGRES_URL:-}}"
if [[ -z "$url" ]]; then
    eval "$(scripts/services.sh)"
    url="${STRATA_TEST_POSTGRES_URL:?no PostgreSQL: set STRATA_BENCH_POSTGRES_URL}"
fi
server="${url%/*}"
clients="1,8,32"
out="target/peers/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
mkdir -p target/peers

echo "== building strata and the cqrs-es peer (release)" >&2
cargo build --release --locked -p strata-cli >&2
CARGO_TARGET_DIR=target/peers cargo build --release --locked \
    --manifest-path benches/peers/cqrs-es/Cargo.toml >&2

fresh_database() { # name
    psql "$url" -qX -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >&2
}

{
    echo "# $(uname -srm); $(nproc) cores; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# $(psql "$url" -qXAt -c 'SELECT version()')"
    echo "# commit $(git rev-parse --short HEAD); $runs run(s) of ${seconds}s per client count"
} | tee "$out" >&2

for run in $(seq 1 "$runs"); do
    echo "== run $run of $runs (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    echo "-- strata" >&2
    target/release/strata bench postgres --url "$url" --clients "$clients" \
        --seconds "$seconds" | tee -a "$out" >&2
    echo "-- cqrs-es" >&2
    fresh_database strata_peer_cqrs_es
    target/peers/release/strata-peer-cqrs-es "$server/strata_peer_cqrs_es" \
        --clients "$clients" --seconds "$seconds" | tee -a "$out" >&2
    echo "-- eventsourcing" >&2
    fresh_database strata_peer_eventsourcing
    benches/peers/eventsourcing/run.sh "$server/strata_peer_eventsourcing" \
        --clients "$clients" --seconds "$seconds" | tee -a "$out" >&2
done
psql "$url" -qX -c "DROP DATABASE IF EXISTS strata_peer_cqrs_es WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS strata_peer_eventsourcing WITH (FORCE)" >&2

echo "== results in $out" >&2
python3 benches/peers/table.py "$out"
