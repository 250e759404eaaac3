//! A module that hands every WASI function to the host, to test or fuzz a
//! WASI setup with arguments of the host's choosing (hostile ones
//! included) without writing a guest program per case.
//!
//! ```
//! # fn main() -> anywasm_core::Result<()> {
//! use anywasm_core::{Engine, Linker, Module, Store, Val};
//! use anywasm_wasi::{WasiConfig, WasiCtx, add_to_linker, probe};
//!
//! let engine = Engine::<anywasm::DefaultBackend>::default_config()?;
//! let module = Module::new(&engine, probe::module(1, false))?;
//! let mut store = Store::new(&engine, WasiConfig::new().build()?);
//! let mut linker = Linker::<_, WasiCtx>::new();
//! add_to_linker(&mut linker, |c| c)?;
//! let instance = linker.instantiate(&mut store, &module)?;
//! // random_get over 4 GiB of a 64 KiB memory: EFAULT (21) at once.
//! let f = instance.get_func(&mut store, "random_get")?;
//! let r = f.invoke(&mut store, &[Val::I32(0), Val::I32(-1)])?;
//! assert_eq!(r[0].as_i32(), Some(21));
//! # Ok(()) }
//! ```

use std::fmt::Write;

use anywasm_core::ValType;

use crate::host::{FUNCTIONS, MODULE};

/// The probe module: it imports every function of [`FUNCTIONS`] and
/// exports each under its own name with the same type; its memory of
/// `pages` 64 KiB pages (at most 65536) is exported as `memory`, or, with
/// `imported`, imported as `env`.`memory` (minimum `pages`). It also
/// exports an empty `_start`.
pub fn module(pages: u32, imported: bool) -> Vec<u8> {
    let mut wat = String::from("(module\n");
    for (i, (name, params)) in FUNCTIONS.iter().enumerate() {
        let _ = writeln!(
            wat,
            "  (import \"{MODULE}\" \"{name}\" (func $f{i} {}))",
            signature(name, params)
        );
    }
    if imported {
        let _ = writeln!(wat, "  (import \"env\" \"memory\" (memory {pages}))");
    } else {
        let _ = writeln!(wat, "  (memory (export \"memory\") {pages})");
    }
    for (i, (name, params)) in FUNCTIONS.iter().enumerate() {
        let args: String = (0..params.len())
            .map(|p| format!(" local.get {p}"))
            .collect();
        let _ = writeln!(
            wat,
            "  (func (export \"{name}\") {}{args} call $f{i})",
            signature(name, params)
        );
    }
    wat.push_str("  (func (export \"_start\")))\n");
    // The text is generated from a fixed table: it always parses.
    wat::parse_str(&wat).unwrap_or_default()
}

fn signature(name: &str, params: &[ValType]) -> String {
    let params: String = params.iter().map(|t| format!(" {t}")).collect();
    let result = if name == "proc_exit" {
        ""
    } else {
        " (result i32)"
    };
    format!("(param{params}){result}")
}
