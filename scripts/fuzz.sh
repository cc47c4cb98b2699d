#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ and runs each for a bounded time, starting from the
# seed corpus in the repository; fails on the first crash (the input is kept in
# fuzz/artifacts/<target>/). Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] (default 20).
# Needs the nightly toolchain; installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
targets=(segment index_files import_lines append_body)

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

echo "== building the fuzz targets (debug assertions on)"
cargo +nightly fuzz build --debug-assertions

mkdir -p fuzz/target
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    # A scratch corpus seeded from the repository's: what a run adds stays out of git.
    # One process per target (no -jobs): the machine is shared.
    work="fuzz/target/corpus/$target"
    log="fuzz/target/$target.log"
    mkdir -p "$work"
    if ! cargo +nightly fuzz run --debug-assertions "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || tail -n 3 "$log"
done
