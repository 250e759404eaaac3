//! Resident memory of a process that hot-reloads one plugin many times, on
//! every backend: the numbers of BENCHMARKS.md's "Hot reload" table.
//!
//!     cargo run --release -p anywasm-plugin --example reload_memory -- [reloads [table.md]]
//!
//! Each reload brings new code (a different version number), so nothing
//! comes from the module cache; a call after each reload checks the new
//! code serves. Linux only (reads /proc/self/statm).

#[path = "../tests/support/reloads.rs"]
mod reloads;

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
        (
            "wasmtime",
            reloads::reload_memory::<anywasm::Wasmtime>(40, reloads),
        ),
        (
            "wasmi",
            reloads::reload_memory::<anywasm::Wasmi>(40, reloads),
        ),
        (
            "wasmer",
            reloads::reload_memory::<anywasm::Wasmer>(40, reloads),
        ),
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
