//! Target (f): the Extism and waPC guest ABIs from the guest's side. The
//! input becomes an Extism guest or a waPC guest that calls the host's
//! imports for that ABI with chosen arguments: handles that are live, freed,
//! inside a block or wild for Extism's kernel (and the application's
//! `extism:host/user` function), pointers and lengths inside the memory, at
//! its edges or wild for waPC. Every call must end with output or a typed
//! `PluginError`, never a panic, the output must respect the limits, and
//! the plugin must serve the next call.

use std::fmt::Write;

use anywasm::Backend;
use anywasm::ValType::I64;
use anywasm_plugin::{Abi, Manifest, Number, PluginRuntime};

use crate::Reader;
use crate::plugin_abi::Addr;

/// The memory limit of the fuzzed plugins, in pages.
const PAGES: u64 = 8;

/// An i64 operand for an Extism kernel call.
fn handle(r: &mut Reader<'_>) -> String {
    match r.u8() % 7 {
        0 => "(i64.const 0)".into(),
        1 => "(global.get $h)".into(),
        2 => format!("(i64.add (global.get $h) (i64.const {}))", r.u8() % 16),
        3 => "(call $input_offset)".into(),
        4 => format!("(i64.const {})", r.u32() % (PAGES as u32 * 65536)),
        5 => format!("(i64.const {})", (1u64 << 32) - u64::from(r.u8())),
        _ => format!(
            "(i64.const {})",
            u64::from_le_bytes([
                r.u8(),
                r.u8(),
                r.u8(),
                r.u8(),
                r.u8(),
                r.u8(),
                r.u8(),
                r.u8()
            ]) as i64
        ),
    }
}

fn extism_wat(r: &mut Reader<'_>) -> String {
    let mut wat = String::from(
        r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "error_get" (func $error_get (result i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/env" "http_headers" (func $http_headers (result i64)))
  (import "extism:host/user" "echo" (func $echo (param i64) (result i64)))
  (memory (export "memory") 1)
  (global $h (mut i64) (i64.const 0))
  (func (export "f") (result i32)
"#,
    );
    for _ in 0..r.u8() % 12 {
        let (a, b) = (handle(r), handle(r));
        let call = match r.u8() % 17 {
            0 => format!("(global.set $h (call $alloc {a}))"),
            1 => format!("(call $free {a})"),
            2 => format!("(drop (call $length {a}))"),
            3 => format!("(drop (call $load_u8 {a}))"),
            4 => format!("(drop (call $load_u64 {a}))"),
            5 => format!("(call $store_u8 {a} (i32.wrap_i64 {b}))"),
            6 => format!("(call $store_u64 {a} {b})"),
            7 => format!("(drop (call $input_load_u64 {a}))"),
            8 => format!("(call $output_set {a} {b})"),
            9 => format!("(call $error_set {a})"),
            10 => "(global.set $h (call $error_get))".into(),
            11 => format!("(global.set $h (call $config_get {a}))"),
            12 => format!("(global.set $h (call $var_get {a}))"),
            13 => format!("(call $var_set {a} {b})"),
            14 => format!("(call $log_info {a})"),
            15 => format!("(global.set $h (call $http_request {a} {b}))"),
            _ => format!("(global.set $h (call $echo {a}))"),
        };
        let _ = writeln!(wat, "    {call}");
    }
    let _ = writeln!(wat, "    (i32.const {})))", r.u8() % 3);
    wat
}

fn wapc_wat(r: &mut Reader<'_>) -> String {
    let pages = u32::from(r.u8() % 4) + 1;
    let size = pages << 16;
    let mut wat = String::from(
        r#"(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__guest_error" (func $guest_error (param i32 i32)))
  (import "wapc" "__host_call" (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wapc" "__host_response_len" (func $host_response_len (result i32)))
  (import "wapc" "__host_response" (func $host_response (param i32)))
  (import "wapc" "__host_error_len" (func $host_error_len (result i32)))
  (import "wapc" "__host_error" (func $host_error (param i32)))
  (import "wapc" "__console_log" (func $console_log (param i32 i32)))
"#,
    );
    let _ = writeln!(wat, "  (memory (export \"memory\") {pages} 8)");
    wat.push_str("  (func (export \"__guest_call\") (param i32 i32) (result i32)\n");
    for _ in 0..r.u8() % 10 {
        let mut a = || r.addr(size);
        let (p0, p1, p2, p3) = (a(), a(), a(), a());
        let call = match r.u8() % 9 {
            0 => format!("(call $guest_request (i32.const {p0}) (i32.const {p1}))"),
            1 => format!("(call $guest_response (i32.const {p0}) (i32.const {p1}))"),
            2 => format!("(call $guest_error (i32.const {p0}) (i32.const {p1}))"),
            3 => format!(
                "(drop (call $host_call (i32.const {p0}) (i32.const {}) (i32.const {p1}) (i32.const {}) (i32.const {p2}) (i32.const {}) (i32.const {p3}) (i32.const {})))",
                p1 % 64,
                p2 % 64,
                p3 % 64,
                p0 % 256
            ),
            4 => "(drop (call $host_response_len))".into(),
            5 => format!("(call $host_response (i32.const {p0}))"),
            6 => "(drop (call $host_error_len))".into(),
            7 => format!("(call $host_error (i32.const {p0}))"),
            _ => format!("(call $console_log (i32.const {p0}) (i32.const {p1}))"),
        };
        let _ = writeln!(wat, "    {call}");
    }
    let _ = writeln!(wat, "    (i32.const {})))", r.u8() % 2);
    wat
}

/// Runs the input on every backend.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let extism = r.u8().is_multiple_of(2);
    let wat = if extism {
        extism_wat(&mut r)
    } else {
        wapc_wat(&mut r)
    };
    let Ok(wasm) = wat::parse_str(&wat) else {
        // The text is generated to parse; a failure is a bug of this target.
        panic!("the generated guest does not parse:\n{wat}");
    };
    let abi = if extism { Abi::Extism } else { Abi::Wapc };
    let input: Vec<u8> = r.data.to_vec();
    on::<anywasm::Wasmtime>(&wasm, abi, &input);
    on::<anywasm::Wasmi>(&wasm, abi, &input);
    on::<anywasm::Wasmer>(&wasm, abi, &input);
}

fn on<B: Backend>(wasm: &[u8], abi: Abi, input: &[u8]) {
    let runtime = crate::cached::<B, PluginRuntime<B>>("guest ABI runtime", || {
        PluginRuntime::<B>::builder()
            .host(|h| {
                // Echoes a block back as a new one; fails on an odd first byte.
                h.extism_function("echo", &[I64], &[I64], |plugin, args| {
                    let Some(Number::I64(handle)) = args.first() else {
                        return Err("no handle".into());
                    };
                    let bytes = plugin.memory_get(*handle as u64)?;
                    if bytes.first().is_some_and(|b| b % 2 == 1) {
                        return Err("odd".into());
                    }
                    Ok(vec![Number::I64(plugin.memory_new(&bytes)? as i64)])
                });
                h.wapc_handler(|_, _, _, _, payload| {
                    if payload.first().is_some_and(|b| b % 2 == 1) {
                        Err("odd".into())
                    } else {
                        Ok(payload.to_vec())
                    }
                });
            })
            .build()
            .expect("a plugin runtime")
    });
    let _clear = crate::ClearCache(&runtime);
    let manifest = Manifest::from_bytes("fuzzed", wasm.to_vec())
        .abi(abi)
        .fuel(crate::FUEL)
        .deadline(crate::TIMEOUT)
        .max_memory_pages(PAGES)
        .config("key", "value");
    let plugin = match runtime.load(manifest) {
        Ok(p) => p,
        // A guest the runtime refuses is refused with an error.
        Err(_) => return,
    };
    let function = if abi == Abi::Extism { "f" } else { "op" };
    for _ in 0..2 {
        if let Ok(out) = plugin.call_raw(function, input) {
            assert!(
                out.len() as u64 <= PAGES << 16,
                "{}: {} bytes of output from {PAGES} pages",
                B::NAME,
                out.len()
            );
        }
    }
}
