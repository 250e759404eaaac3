//! Target (d): the plugin ABI from the guest's side. The input becomes a
//! plugin whose allocator returns a chosen pointer, whose function returns
//! a chosen `(ptr << 32) | len`, whose memory holds chosen bytes, and which
//! calls the host's imports (`error`, `log`, `config_get`, `take_result`,
//! `echo`, `store_put`, `store_get`) with chosen arguments first. Every
//! call must end with output or a typed `PluginError`, never a panic, and
//! the plugin must serve the next call.

use std::fmt::Write;

use anywasm::Backend;
use anywasm_plugin::{Format, Manifest, PluginRuntime};

use crate::Reader;

/// A guest pointer or length: inside the memory, at its edges, or wild.
pub(crate) trait Addr {
    fn addr(&mut self, size: u32) -> u32;
}

impl Addr for Reader<'_> {
    fn addr(&mut self, size: u32) -> u32 {
        match self.u8() % 6 {
            0 => u32::from(self.u8()),
            1 => self.u32() % size,
            2 => size.wrapping_sub(u32::from(self.u8())),
            3 => size.wrapping_add(u32::from(self.u8())),
            4 => u32::MAX - u32::from(self.u8()),
            _ => self.u32(),
        }
    }
}

/// The plugin the input describes, as WebAssembly text.
fn plugin_wat(r: &mut Reader<'_>) -> String {
    let pages = u32::from(r.u8() % 4) + 1;
    let size = pages << 16;
    let mut wat = String::from(
        r#"(module
  (import "anywasm" "error" (func $error (param i32 i32)))
  (import "anywasm" "log" (func $log (param i32 i32 i32)))
  (import "anywasm" "config_get" (func $config_get (param i32 i32) (result i64)))
  (import "anywasm" "take_result" (func $take (param i32)))
  (import "anywasm" "echo" (func $echo (param i32 i32) (result i64)))
  (import "anywasm" "store_put" (func $put (param i32 i32) (result i64)))
  (import "anywasm" "store_get" (func $get (param i64) (result i64)))
"#,
    );
    let _ = writeln!(wat, "  (memory (export \"memory\") {pages} 8)");
    let payload_at = r.u32() % size;
    let payload: String = (0..r.u8()).map(|_| format!("\\{:02x}", r.u8())).collect();
    let _ = writeln!(wat, "  (data (i32.const {payload_at}) \"{payload}\")");
    let grow = r.u8() % 3;
    let alloc = r.addr(size);
    let _ = writeln!(
        wat,
        "  (func (export \"anywasm_alloc\") (param i32) (result i32) (drop (memory.grow (i32.const {grow}))) (i32.const {alloc}))"
    );
    wat.push_str("  (func (export \"f\") (param i32 i32) (result i64)\n");
    for _ in 0..r.u8() % 6 {
        let (a, b, c) = (r.addr(size), r.addr(size), r.addr(size));
        let call = match r.u8() % 7 {
            0 => format!("(call $error (i32.const {a}) (i32.const {b}))"),
            1 => format!(
                "(call $log (i32.const {}) (i32.const {a}) (i32.const {b}))",
                c % 6
            ),
            2 => format!("(drop (call $config_get (i32.const {a}) (i32.const {b})))"),
            3 => format!("(call $take (i32.const {a}))"),
            4 => format!("(drop (call $echo (i32.const {a}) (i32.const {b})))"),
            5 => format!("(drop (call $put (i32.const {a}) (i32.const {b})))"),
            _ => format!("(drop (call $get (i64.const {a})))"),
        };
        let _ = writeln!(wat, "    {call}");
    }
    let ret = (u64::from(r.addr(size)) << 32) | u64::from(r.addr(size));
    let _ = writeln!(wat, "    (i64.const {}))", ret as i64);
    wat.push_str(
        "  (@custom \"anywasm.plugin\" \"{\\\"abi\\\":1,\\\"formats\\\":[\\\"raw\\\",\\\"msgpack\\\",\\\"json\\\"]}\"))\n",
    );
    wat
}

/// Runs the input on every backend.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let wat = plugin_wat(&mut r);
    let Ok(wasm) = wat::parse_str(&wat) else {
        // The text is generated to parse; a failure is a bug of this target.
        panic!("the generated plugin does not parse:\n{wat}");
    };
    let input: Vec<u8> = r.data.to_vec();
    on::<anywasm::Wasmtime>(&wasm, &input);
    on::<anywasm::Wasmi>(&wasm, &input);
    on::<anywasm::Wasmer>(&wasm, &input);
}

fn on<B: Backend>(wasm: &[u8], input: &[u8]) {
    // One runtime per backend for the process; its module cache is emptied
    // after each input, so memory does not grow with the inputs.
    let runtime = crate::cached::<B, PluginRuntime<B>>("plugin runtime", || {
        PluginRuntime::<B>::new().expect("a plugin runtime")
    });
    let _clear = crate::ClearCache(&runtime);
    let manifest = Manifest::from_bytes("fuzzed", wasm.to_vec())
        .format(Format::Raw)
        .fuel(crate::FUEL)
        .deadline(crate::TIMEOUT)
        .max_memory_pages(8)
        .config("key", "value")
        .allow("anywasm.echo")
        .allow("anywasm.store_put")
        .allow("anywasm.store_get");
    let plugin = match runtime.load(manifest) {
        Ok(p) => p,
        // A plugin the runtime refuses is refused with an error.
        Err(_) => return,
    };
    for _ in 0..2 {
        if let Ok(out) = plugin.call_raw("f", input) {
            assert!(
                out.len() <= 8 << 16,
                "{}: {} bytes of output from 8 pages",
                B::NAME,
                out.len()
            );
        }
    }
}
