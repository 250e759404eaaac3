#!/usr/bin/env bash
# Rebuilds the example plugins and the plugin test fixtures from source.
# Needs Debian's clang-14 + lld-14 (C) and rustc + libstd-rust-dev-wasm32
# (Rust 1.63 with the wasm32 standard library):
#   apt-get install -y clang-14 lld-14 rustc libstd-rust-dev-wasm32
# The built .wasm files are committed, so `cargo test` does not need this.
set -euo pipefail
cd "$(dirname "$0")"

CLANG=${CLANG:-clang-14}
RUSTC=${RUSTC:-/usr/bin/rustc}

c_plugin() {
    "$CLANG" --target=wasm32-unknown-unknown -O2 -mbulk-memory -nostdlib \
        -Wall -Wextra -Werror \
        -Wl,--no-entry -Wl,--export-dynamic -Wl,--strip-debug \
        -o "$2" "$1"
}

rust_plugin() {
    "$RUSTC" --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib \
        -O -C strip=debuginfo -o "$2" "$1"
}

c_plugin file_icons.c file_icons_c.wasm
rust_plugin file_icons.rs file_icons_rs.wasm
echo "built: $(ls *.wasm | tr '\n' ' ')"
