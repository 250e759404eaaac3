#!/usr/bin/env bash
# Rebuilds the example plugins and the PDK test plugins from source.
# Needs Debian's clang-14 + lld-14 (C) and rustc + libstd-rust-dev-wasm32
# (Rust 1.63 with the wasm32 standard library):
#   apt-get install -y clang-14 lld-14 rustc libstd-rust-dev-wasm32
# The built .wasm files are committed, so `cargo test` does not need this.
set -euo pipefail
cd "$(dirname "$0")"

CLANG=${CLANG:-clang-14}
RUSTC=${RUSTC:-/usr/bin/rustc}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

c_plugin() {
    "$CLANG" --target=wasm32-unknown-unknown -O2 -mbulk-memory -nostdlib \
        -Wall -Wextra -Werror \
        -Wl,--no-entry -Wl,--export-dynamic -Wl,--strip-debug \
        -o "$2" "$1"
}

# The Rust PDK as a library, then each plugin against it.
"$RUSTC" --edition 2021 --target wasm32-unknown-unknown --crate-type rlib \
    --crate-name anywasm_pdk -O --out-dir "$out" ../pdk/rust/src/lib.rs

rust_plugin() {
    "$RUSTC" --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib \
        -O -C strip=debuginfo --extern anywasm_pdk="$out/libanywasm_pdk.rlib" \
        -o "$2" "$1"
}

c_plugin file_icons.c file_icons_c.wasm
rust_plugin file_icons.rs file_icons_rs.wasm
c_plugin pdk_values.c pdk_values_c.wasm
rust_plugin pdk_values.rs pdk_values_rs.wasm
echo "built: $(ls *.wasm | tr '\n' ' ')"
