#!/usr/bin/env bash
# Rebuilds the example plugins and the PDK test plugins from source.
# Needs Debian's clang-14 + lld-14 (C), wasi-libc + libclang-rt-14-dev-wasm32
# (C over WASI) and rustc + libstd-rust-dev-wasm32 (Rust 1.63 with the
# wasm32 standard libraries):
#   apt-get install -y clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 \
#       rustc libstd-rust-dev-wasm32
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

# C with wasi-libc, as a reactor (needs wasi-libc and libclang-rt-14-dev-wasm32).
c_wasi_plugin() {
    "$CLANG" --target=wasm32-wasi -O2 -mexec-model=reactor \
        -Wall -Wextra -Werror \
        -Wl,--export-dynamic -Wl,--strip-debug \
        -o "$2" "$1"
}

# The Rust PDK as a library for each target, then each plugin against it.
for target in wasm32-unknown-unknown wasm32-wasi; do
    mkdir -p "$out/$target"
    "$RUSTC" --edition 2021 --target "$target" --crate-type rlib \
        --crate-name anywasm_pdk -O --out-dir "$out/$target" ../pdk/rust/src/lib.rs
done

rust_plugin() { # source output [target]
    local target=${3:-wasm32-unknown-unknown}
    "$RUSTC" --edition 2021 --target "$target" --crate-type cdylib \
        -O -C strip=debuginfo --extern anywasm_pdk="$out/$target/libanywasm_pdk.rlib" \
        -o "$2" "$1"
}

c_plugin file_icons.c file_icons_c.wasm
rust_plugin file_icons.rs file_icons_rs.wasm
c_plugin pdk_values.c pdk_values_c.wasm
rust_plugin pdk_values.rs pdk_values_rs.wasm
c_wasi_plugin wasi_c.c wasi_c.wasm
rust_plugin wasi_rs.rs wasi_rs.wasm wasm32-wasi
# The AssemblyScript plugin with pdk/assemblyscript (npm, pinned by its lock
# file; the PDK is installed as a copy, which AssemblyScript's resolver needs).
(cd file_icons_as && npm ci --silent --install-links && npm run -s build)
echo "built: $(ls *.wasm | tr '\n' ' ')"
