//! Differential testing in `cargo test`: a fixed range of seeds, every
//! backend, results compared. Disagreements are written to
//! `target/differential/` as `seed-N.wasm` + `seed-N.txt`; a longer run is
//! `cargo run --release -p anywasm-conformance --bin differential -- 0..10000`.

#![cfg(all(feature = "wasmtime", feature = "wasmi", feature = "wasmer"))]

use anywasm_conformance::differential::{
    Observation, Profile, Verdict, compare, module_for_seed, observe, uses_exceptions,
    write_reproducer,
};

/// How many seeds `cargo test` checks (a few hundred modules).
const SEEDS: std::ops::Range<u64> = 0..500;
/// Seeds for modules with exceptions.
const EXCEPTION_SEEDS: std::ops::Range<u64> = 0..400;

/// The observations of every backend that runs `profile`'s modules.
fn observe_all(profile: Profile, seed: u64, wasm: &[u8]) -> Vec<(&'static str, Observation)> {
    fn one<B: anywasm_core::Backend>(
        out: &mut Vec<(&'static str, Observation)>,
        profile: Profile,
        seed: u64,
        wasm: &[u8],
    ) {
        if profile.runs_on::<B>() {
            out.push((B::NAME, observe::<B>(profile, wasm, seed)));
        }
    }
    let mut out = Vec::new();
    one::<anywasm_wasmtime::Wasmtime>(&mut out, profile, seed, wasm);
    one::<anywasm_wasmi::Wasmi>(&mut out, profile, seed, wasm);
    one::<anywasm_wasmer::Wasmer>(&mut out, profile, seed, wasm);
    out
}

fn verdict(seed: u64, wasm: &[u8]) -> Verdict {
    compare(&observe_all(Profile::Common, seed, wasm))
}

/// Compares the backends of `profile` on `seeds`; returns how many modules
/// ran and agreed, and how many of those throw or catch exceptions.
fn run_seeds(profile: Profile, seeds: std::ops::Range<u64>) -> (usize, usize) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../differential");
    let (mut agree, mut exceptional, mut disagreements) = (0, 0, Vec::new());
    for seed in seeds {
        let Some(wasm) = module_for_seed(profile, seed) else {
            continue;
        };
        let observations = observe_all(profile, seed, &wasm);
        assert!(
            observations.len() >= 2,
            "{profile:?} runs on fewer than two backends"
        );
        match compare(&observations) {
            Verdict::Agree if matches!(observations[0].1, Observation::Ran { .. }) => {
                agree += 1;
                if uses_exceptions(&wasm) {
                    exceptional += 1;
                }
            }
            Verdict::Agree => {}
            Verdict::NoModule | Verdict::KnownRefusal(_) => {}
            Verdict::Disagree(report) => {
                let _ = write_reproducer(&dir, seed, &wasm, &report);
                disagreements.push(format!("seed {seed}:\n{report}"));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s), reproducers in {}:\n{}",
        disagreements.len(),
        dir.display(),
        disagreements.join("\n")
    );
    (agree, exceptional)
}

#[test]
fn backends_agree_on_random_modules() {
    let (agree, _) = run_seeds(Profile::Common, SEEDS);
    assert!(agree >= 300, "only {agree} modules compared");
}

/// Modules that throw and catch (wasmtime and wasmer, which claim
/// exceptions): results, traps and the values of escaping exceptions agree.
#[test]
fn backends_agree_on_random_modules_with_exceptions() {
    let (agree, exceptional) = run_seeds(Profile::Exceptions, EXCEPTION_SEEDS);
    eprintln!("{agree} modules ran and agreed, {exceptional} of them with exceptions");
    assert!(agree >= 150, "only {agree} modules compared");
    assert!(
        exceptional >= 50,
        "only {exceptional} modules use exceptions"
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
