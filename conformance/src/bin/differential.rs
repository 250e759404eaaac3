//! A longer differential run over a range of seeds.
//!
//! ```text
//! cargo run --release -p anywasm-conformance --bin differential -- 0..100000 [OUT_DIR] [--exceptions]
//! ```
//! `--exceptions` generates modules with exception handling and compares
//! the backends that claim it.
//! Disagreements are written to OUT_DIR (default `target/differential`) as
//! `seed-N.wasm` with `seed-N.txt`; once understood, copy the `.wasm` into
//! `conformance/regressions/` so `cargo test` keeps checking it.

use anywasm_conformance::differential::{
    Observation, Profile, Verdict, compare, module_for_seed, observe, write_reproducer,
};

/// One observation per backend in this build that runs `profile`.
#[allow(unused_mut, unused_variables)]
fn observe_all(profile: Profile, wasm: &[u8], seed: u64) -> Vec<(&'static str, Observation)> {
    fn one<B: anywasm_core::Backend>(
        out: &mut Vec<(&'static str, Observation)>,
        profile: Profile,
        wasm: &[u8],
        seed: u64,
    ) {
        if profile.runs_on::<B>() {
            out.push((B::NAME, observe::<B>(profile, wasm, seed)));
        }
    }
    let mut observations = Vec::new();
    #[cfg(feature = "wasmtime")]
    one::<anywasm_wasmtime::Wasmtime>(&mut observations, profile, wasm, seed);
    #[cfg(feature = "wasmi")]
    one::<anywasm_wasmi::Wasmi>(&mut observations, profile, wasm, seed);
    #[cfg(feature = "wasmer")]
    one::<anywasm_wasmer::Wasmer>(&mut observations, profile, wasm, seed);
    observations
}

fn parse_range(s: &str) -> Option<std::ops::Range<u64>> {
    let (a, b) = s.split_once("..")?;
    Some(a.parse().ok()?..b.parse().ok()?)
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let profile = if all.iter().any(|a| a == "--exceptions") {
        Profile::Exceptions
    } else {
        Profile::Common
    };
    let mut args = all.into_iter().filter(|a| a != "--exceptions");
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
        let Some(wasm) = module_for_seed(profile, seed) else {
            skipped += 1;
            continue;
        };
        let observations = observe_all(profile, &wasm, seed);
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
