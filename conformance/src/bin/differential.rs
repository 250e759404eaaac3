//! A longer differential run over a range of seeds.
//!
//! ```text
//! cargo run --release -p anywasm-conformance --bin differential -- 0..100000 [OUT_DIR]
//! ```
//! Disagreements are written to OUT_DIR (default `target/differential`) as
//! `seed-N.wasm` with `seed-N.txt`; once understood, copy the `.wasm` into
//! `conformance/regressions/` so `cargo test` keeps checking it.

use anywasm_conformance::differential::{
    Observation, Verdict, compare, module_for_seed, observe, write_reproducer,
};

/// One observation per backend in this build.
#[allow(unused_mut, clippy::vec_init_then_push)]
fn observe_all(wasm: &[u8], seed: u64) -> Vec<(&'static str, Observation)> {
    let mut observations = Vec::new();
    #[cfg(feature = "wasmtime")]
    observations.push((
        "wasmtime",
        observe::<anywasm_wasmtime::Wasmtime>(wasm, seed),
    ));
    #[cfg(feature = "wasmi")]
    observations.push(("wasmi", observe::<anywasm_wasmi::Wasmi>(wasm, seed)));
    #[cfg(feature = "wasmer")]
    observations.push(("wasmer", observe::<anywasm_wasmer::Wasmer>(wasm, seed)));
    observations
}

fn parse_range(s: &str) -> Option<std::ops::Range<u64>> {
    let (a, b) = s.split_once("..")?;
    Some(a.parse().ok()?..b.parse().ok()?)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let range = args
        .next()
        .as_deref()
        .and_then(parse_range)
        .unwrap_or(0..10_000);
    let out = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/differential").to_string()
    });
    let out = std::path::PathBuf::from(out);
    let (mut agree, mut skipped, mut disagree) = (0u64, 0u64, 0u64);
    let total = range.end.saturating_sub(range.start);
    for (i, seed) in range.enumerate() {
        let Some(wasm) = module_for_seed(seed) else {
            skipped += 1;
            continue;
        };
        let observations = observe_all(&wasm, seed);
        match compare(&observations) {
            Verdict::Agree => agree += 1,
            Verdict::NoModule | Verdict::KnownRefusal(_) => skipped += 1,
            Verdict::Disagree(report) => {
                disagree += 1;
                eprintln!("seed {seed} disagrees:\n{report}");
                if let Err(e) = write_reproducer(&out, seed, &wasm, &report) {
                    eprintln!("error: cannot write the reproducer: {e}");
                }
            }
        }
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "{}/{total}: {agree} agree, {skipped} skipped, {disagree} disagree",
                i + 1
            );
        }
    }
    println!("{agree} agree, {skipped} skipped, {disagree} disagree");
    if disagree > 0 {
        println!("reproducers in {}", out.display());
        std::process::exit(1);
    }
}
