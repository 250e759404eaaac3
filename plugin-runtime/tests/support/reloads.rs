//! Hot reloads and resident memory, shared by `tests/reload_memory.rs`,
//! `tests/soak.rs` and `examples/reload_memory.rs` (included with `#[path]`;
//! each uses part of it).
#![allow(dead_code)]

use anywasm::Backend;
use anywasm_plugin::{Format, Manifest, PluginRuntime};

/// A raw-format plugin whose `version` function answers `version`, with
/// `funcs` more exported functions so each reload has code to compile.
pub fn versioned_plugin(version: u32, funcs: u32) -> Vec<u8> {
    let filler: String = (0..funcs)
        .map(|i| {
            format!(
                "(func $f{i} (export \"f{i}\") (param i32) (result i32)
                   (i32.add (i32.mul (local.get 0) (i32.const {i})) (i32.const {version})))"
            )
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

/// The process's resident memory in MiB (0 where `/proc` is missing).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / (1024.0 * 1024.0))
}

/// Reloads one plugin (default limits and module cache) with new code,
/// each reload followed by a call that checks the new code serves: 100
/// reloads to warm up, then `reloads`. The resident memory after the warm
/// up, after half of `reloads` and at the end.
pub fn reload_memory<B: Backend>(funcs: u32, reloads: u32) -> (f64, f64, f64) {
    let rt = PluginRuntime::<B>::new().expect("runtime");
    let p = rt
        .load(Manifest::from_bytes("p", versioned_plugin(0, funcs)).format(Format::Raw))
        .expect("load");
    let reload = |v: u32| {
        p.reload(&versioned_plugin(v, funcs)).expect("reload");
        let out = p.call_raw("version", b"").expect("call");
        assert_eq!(out, v.to_le_bytes(), "the new code serves");
    };
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
