//! Each fuzz target on a fixed-seed sample of inputs, in `cargo test`: a
//! few thousand inputs in all, every one run on all three backends. The
//! long runs are `cargo +nightly fuzz run <target>` (see fuzz/README.md).

use anywasm_fuzzing::{Inputs, compile, dylink, guest_abis, hostile_imports, plugin_abi, wasi};

/// A valid module from `wasm-smith`, for mutation.
fn smith_module(inputs: &mut Inputs) -> Vec<u8> {
    let raw = inputs.bytes(1024);
    let mut u = arbitrary::Unstructured::new(&raw);
    wasm_smith::Module::new(wasm_smith::Config::default(), &mut u)
        .map(|m| m.to_bytes())
        .unwrap_or_default()
}

#[test]
fn compile_bounded() {
    let mut inputs = Inputs::new(0xa11);
    for k in 0..2000 {
        let data = if k % 2 == 0 {
            inputs.input(512)
        } else {
            let m = smith_module(&mut inputs);
            inputs.mutate(m)
        };
        compile::run(&data);
    }
}

#[test]
fn hostile_imports_bounded() {
    let mut inputs = Inputs::new(0xb22);
    for _ in 0..1000 {
        hostile_imports::run(&inputs.input(2048));
    }
}

#[test]
fn wasi_bounded() {
    let mut inputs = Inputs::new(0xc33);
    for _ in 0..1000 {
        wasi::run(&inputs.input(1024));
    }
}

#[test]
fn plugin_abi_bounded() {
    let mut inputs = Inputs::new(0xd44);
    for _ in 0..500 {
        plugin_abi::run(&inputs.input(256));
    }
}

#[test]
fn guest_abis_bounded() {
    let mut inputs = Inputs::new(0xf66);
    for _ in 0..500 {
        guest_abis::run(&inputs.input(256));
    }
}

#[test]
fn dylink_bounded() {
    let fixtures: Vec<Vec<u8>> = ["libbase.so", "libmid.so", "libutil.so", "libplugin.so"]
        .iter()
        .filter_map(|f| {
            std::fs::read(format!(
                "{}/../linker/tests/fixtures/{f}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .ok()
        })
        .collect();
    let mut inputs = Inputs::new(0xe55);
    for k in 0..1000 {
        let data = match (k % 3, fixtures.get(k % fixtures.len().max(1))) {
            (0, Some(f)) => inputs.mutate(f.clone()),
            _ => inputs.input(256),
        };
        dylink::run(&data);
    }
}
