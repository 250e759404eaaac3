//! Differential testing in `cargo test`: a fixed range of seeds, every
//! backend, results compared. Disagreements are written to
//! `target/differential/` as `seed-N.wasm` + `seed-N.txt`; a longer run is
//! `cargo run --release -p anywasm-conformance --bin differential -- 0..10000`.

#![cfg(all(feature = "wasmtime", feature = "wasmi", feature = "wasmer"))]

use anywasm_conformance::differential::{
    Verdict, compare, module_for_seed, observe, write_reproducer,
};

/// How many seeds `cargo test` checks (a few hundred modules).
const SEEDS: std::ops::Range<u64> = 0..500;

fn verdict(seed: u64, wasm: &[u8]) -> Verdict {
    compare(&[
        (
            "wasmtime",
            observe::<anywasm_wasmtime::Wasmtime>(wasm, seed),
        ),
        ("wasmi", observe::<anywasm_wasmi::Wasmi>(wasm, seed)),
        ("wasmer", observe::<anywasm_wasmer::Wasmer>(wasm, seed)),
    ])
}

#[test]
fn backends_agree_on_random_modules() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../differential");
    let (mut agree, mut skipped, mut disagreements) = (0, 0, Vec::new());
    for seed in SEEDS {
        let Some(wasm) = module_for_seed(seed) else {
            continue;
        };
        match verdict(seed, &wasm) {
            Verdict::Agree => agree += 1,
            Verdict::NoModule | Verdict::KnownRefusal(_) => skipped += 1,
            Verdict::Disagree(report) => {
                let _ = write_reproducer(&dir, seed, &wasm, &report);
                disagreements.push(format!("seed {seed}:\n{report}"));
            }
        }
    }
    assert!(
        agree >= 300,
        "only {agree} modules compared (skipped {skipped})"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s), reproducers in {}:\n{}",
        disagreements.len(),
        dir.display(),
        disagreements.join("\n")
    );
}

/// Modules that once made the backends disagree, kept as regression tests
/// (`conformance/regressions/*.wasm`, seed in the file name).
#[test]
fn regressions_agree() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let seed = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit('-').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let wasm = std::fs::read(&path).unwrap();
        match verdict(seed, &wasm) {
            Verdict::Agree | Verdict::KnownRefusal(_) => {}
            other => panic!("{}: {other:?}", path.display()),
        }
    }
}
