//! Runs the spec testsuite on every backend and writes `CONFORMANCE.md`.
//!
//! ```text
//! cargo run --release -p anywasm-conformance --bin conformance-matrix [-- OUTPUT]
//! ```
//! OUTPUT defaults to `CONFORMANCE.md` at the workspace root; `-` prints it.

use anywasm_conformance::matrix::{Column, column, render, today};

/// One column per backend in this build.
#[allow(unused_mut, clippy::vec_init_then_push)]
fn columns() -> Vec<Column> {
    let mut columns = Vec::new();
    #[cfg(feature = "wasmtime")]
    columns.push(column::<anywasm_wasmtime::Wasmtime>(
        anywasm_conformance::expected::WASMTIME,
    ));
    #[cfg(feature = "wasmi")]
    columns.push(column::<anywasm_wasmi::Wasmi>(
        anywasm_conformance::expected::WASMI,
    ));
    #[cfg(feature = "wasmer")]
    columns.push(column::<anywasm_wasmer::Wasmer>(
        anywasm_conformance::expected::WASMER,
    ));
    columns
}

fn main() {
    let output = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../CONFORMANCE.md").to_string());
    let columns = columns();
    let text = render(&columns, &today());
    if output == "-" {
        print!("{text}");
    } else if let Err(e) = std::fs::write(&output, text) {
        eprintln!("error: cannot write {output}: {e}");
        std::process::exit(1);
    } else {
        eprintln!("wrote {output}");
    }
}
