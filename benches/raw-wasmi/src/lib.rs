//! The workloads of `anywasm-benches`, compiled here from the same file.
#![allow(dead_code)] // the plugin fixture is not used by the raw rows

#[path = "../../src/workloads.rs"]
pub mod workloads;
