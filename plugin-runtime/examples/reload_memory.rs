//! Resident memory of a process that hot-reloads one plugin many times, on
//! every backend: the numbers of BENCHMARKS.md's "Hot reload" table.
//!
//!     cargo run --release -p anywasm-plugin --example reload_memory -- [reloads [table.md]]
//!
//! Each reload brings new code (a different version number), so nothing
//! comes from the module cache; a call after each reload checks the new
//! code serves. Linux only (reads /proc/self/statm).

use anywasm::Backend;
use anywasm_plugin::{Format, Manifest, PluginRuntime};

fn plugin(version: u32) -> Vec<u8> {
    // Some code to compile: 40 functions besides the ABI.
    let filler: String = (0..40)
        .map(|i| {
            format!("(func $f{i} (param i32) (result i32) (i32.mul (local.get 0) (i32.const {i})))")
        })
        .collect();
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 1024))
          {filler}
          (func (export "version") (param i32 i32) (result i64)
            (i32.store (i32.const 0) (i32.const {version}))
            (i64.const 4))
          (@custom "anywasm.plugin" "{{\"abi\":1,\"formats\":[\"raw\"]}}"))"#
    ))
    .expect("the plugin is valid")
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn measure<B: Backend>(reloads: u32) -> (f64, f64, f64) {
    // The default module cache: it keeps the last 64 modules.
    let rt = PluginRuntime::<B>::new().expect("runtime");
    let p = rt
        .load(Manifest::from_bytes("p", plugin(0)).format(Format::Raw))
        .expect("load");
    let reload = |v: u32| {
        p.reload(&plugin(v)).expect("reload");
        let out = p.call_raw("version", b"").expect("call");
        assert_eq!(out, v.to_le_bytes(), "the new code serves");
    };
    // Warm up: allocators and the module cache reach their working size.
    for v in 1..=100 {
        reload(v);
    }
    let before = rss_mib();
    for v in 101..101 + reloads / 2 {
        reload(v);
    }
    let half = rss_mib();
    for v in 101 + reloads / 2..101 + reloads {
        reload(v);
    }
    (before, half, rss_mib())
}

fn main() {
    let reloads: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut table = format!(
        "| engine | resident after 100 reloads | after {} more | after {} more | growth per 1 000 reloads |\n|---|---|---|---|---|\n",
        reloads / 2,
        reloads
    );
    for (name, (before, half, after)) in [
        ("wasmtime", measure::<anywasm::Wasmtime>(reloads)),
        ("wasmi", measure::<anywasm::Wasmi>(reloads)),
        ("wasmer", measure::<anywasm::Wasmer>(reloads)),
    ] {
        table.push_str(&format!(
            "| {name} | {before:.1} MiB | {half:.1} MiB | {after:.1} MiB | {:.1} MiB |\n",
            (after - before) * 1000.0 / f64::from(reloads.max(1))
        ));
    }
    print!("{table}");
    if let Some(path) = std::env::args().nth(2)
        && let Err(e) = std::fs::write(&path, &table)
    {
        eprintln!("error: cannot write {path}: {e}");
        std::process::exit(1);
    }
}
