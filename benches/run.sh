#!/bin/sh
# One benchmark run: the layer and the raw engines (cargo bench -p
# anywasm-benches), then raw wasmi built with its default features
# (benches/raw-wasmi, outside the workspace), then BENCHMARKS.md.
# The Extism rows need `cargo bench -p anywasm-benches --features extism`
# instead of the first step (it builds a second wasmtime). The hot-reload rows come from
# `cargo run --release -p anywasm-plugin --example reload_memory -- 1000
# target/reload-memory.md`, run before this when they should be renewed.
set -eu
cd "$(dirname "$0")/.."
root=$PWD
cargo bench -p anywasm-benches
(cd benches/raw-wasmi && CARGO_TARGET_DIR="$root/target" cargo bench)
cargo run -p anywasm-benches --bin bench-report
