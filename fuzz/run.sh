#!/usr/bin/env bash
# Runs one fuzz target for a given time and prints one line for
# RELIABILITY.md: target, seconds, executions, crashes.
#
#   fuzz/run.sh TARGET SECONDS
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Seeds: the repository's own modules for `compile` and `dylink`; the other
# targets start from nothing. Crashes land in fuzz/artifacts/TARGET/; each
# becomes a regression test in fuzzing/tests/regressions.rs.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
seconds=$2
corpus=corpus/$target
mkdir -p "$corpus"
case $target in
    compile) cp ../wasi/tests/fixtures/*.wasm ../plugins/*.wasm ../linker/tests/fixtures/*.so ../linker/tests/fixtures/*.wasm "$corpus"/ ;;
    dylink) cp ../linker/tests/fixtures/*.so "$corpus"/ ;;
esac
max_len=4096
[ "$target" = compile ] && max_len=65536
log=$(mktemp)
# Each input runs on all three engines: allow 20 s per input, 6 GiB in all.
# `-len_control=0`: inputs of any length up to max_len from the start (the
# default grows the limit slowly, and wasm-smith makes little of 10 bytes).
cargo +nightly fuzz run "$target" -s none -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=6144 -max_len="$max_len" \
    -len_control=0 \
    -print_final_stats=1 "$corpus" 2>&1 | tee "$log" | grep -E "^#[0-9]+ +(pulse|DONE)|ERROR|panicked" || true
runs=$(grep -E "^stat::number_of_executed_units" "$log" | awk '{print $2}' || true)
# libFuzzer prints no final stats when it stops on a crash, a timeout or
# out-of-memory; then the last pulse line tells how far it got.
[ -n "$runs" ] || runs=$(grep -oE "^#[0-9]+" "$log" | tail -1 | tr -d '#' || true)
grep -E "^==[0-9]+== ERROR|^SUMMARY|deadly signal|out-of-memory|timeout" "$log" | head -5 || true
crashes=$(ls "artifacts/$target" 2>/dev/null | grep -c . || true)
echo "result: target=$target seconds=$seconds executions=${runs:-?} crash_files=$crashes"
