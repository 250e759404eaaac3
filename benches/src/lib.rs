//! # anywasm-benches
//!
//! Criterion benchmarks (`benches/run.sh`): each workload on each engine,
//! once through anywasm and once through the engine's own API, in the same
//! group, so the ratio comes from one run (raw wasmi from `benches/raw-wasmi`,
//! run right after; see `benches/engines.rs`). `bench-report` turns
//! criterion's results into `BENCHMARKS.md`.
//!
//! This library holds the workloads shared by the benchmark and its tests
//! ([`workloads`], also compiled into `benches/raw-wasmi`).

pub mod workloads;

pub use workloads::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_big_module_is_valid_big_and_deterministic() {
        let a = big_module(1 << 20);
        assert!(
            a.len() > 1 << 20 && a.len() < (1 << 20) + 10_000,
            "{}",
            a.len()
        );
        assert_eq!(a, big_module(1 << 20));
        wat::parse_bytes(&a).unwrap();
        anywasm::ModuleInfo::parse(&a).unwrap();
    }
}
