//! Soak tests, on every backend:
//!
//! 1. Eight threads call one plugin handle (a pool of two instances) while
//!    a hostile plugin in the same runtime loops, traps, breaks the ABI and
//!    exhausts its memory on every other call.
//! 2. Four threads call a plugin while it is hot-reloaded again and again,
//!    every tenth new file broken.
//!
//! Every result is checked (no call of the good plugin may fail or come
//! back with another call's data or an older version than one it already
//! saw), and the resident memory is measured. The bounded form runs in
//! `cargo test`; the long form of RELIABILITY.md (8 × 10 000 calls, 1 000
//! reloads) by command:
//!
//!     ANYWASM_SOAK=long cargo test -p anywasm-plugin --test soak -- --nocapture --test-threads 1

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anywasm::Backend;
use anywasm_plugin::{Format, Manifest, PluginRuntime};

fn long() -> bool {
    std::env::var("ANYWASM_SOAK").is_ok_and(|v| v == "long")
}

/// The good plugin: `echo` answers `version:` followed by the input.
fn good(version: u32) -> Vec<u8> {
    let digits = version.to_string();
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 2)
          (data (i32.const 0) "{digits}:")
          (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 1024))
          (func (export "echo") (param $p i32) (param $n i32) (result i64)
            (memory.copy (i32.add (i32.const 65536) (i32.const {len}))
                         (local.get $p) (local.get $n))
            (memory.copy (i32.const 65536) (i32.const 0) (i32.const {len}))
            (i64.or (i64.shl (i64.const 65536) (i64.const 32))
                    (i64.extend_i32_u (i32.add (local.get $n) (i32.const {len})))))
          (@custom "anywasm.plugin" "{{\"abi\":1,\"formats\":[\"raw\"]}}"))"#,
        len = digits.len() + 1
    ))
    .unwrap()
}

/// Broken reloads: not wasm, an ABI that does not fit, a trap at start.
fn broken(n: u32) -> Vec<u8> {
    match n % 3 {
        0 => b"\0asm\x01\0\0\0garbage".to_vec(),
        1 => wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#,
        )
        .unwrap(),
        _ => wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 0))
                 (func $boom unreachable) (start $boom)
                 (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#,
        )
        .unwrap(),
    }
}

const HOSTILE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))
  (func (export "trap") (param i32 i32) (result i64) unreachable)
  (func (export "bad_ptr") (param i32 i32) (result i64) (i64.const 0x7fffff0000000010))
  (func (export "hog") (param i32 i32) (result i64)
    (drop (memory.grow (i32.const 60000)))
    (i32.store (i32.const 0x7ffffff0) (i32.const 1))
    (i64.const 0))
  (func (export "ok") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32))
            (i64.extend_i32_u (local.get 1))))
  (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#;

#[path = "support/reloads.rs"]
mod reloads;
use reloads::rss_mib;

/// Splits `version:payload`.
fn split(out: &[u8]) -> (u32, &[u8]) {
    let colon = out
        .iter()
        .position(|b| *b == b':')
        .expect("a version prefix");
    let version = std::str::from_utf8(&out[..colon]).unwrap().parse().unwrap();
    (version, &out[colon + 1..])
}

/// Scenario 1: eight threads, one good handle, a hostile plugin alongside.
pub fn calls_with_a_hostile_neighbour<B: Backend>() {
    let per_thread: u32 = if long() { 10_000 } else { 300 };
    let rt = PluginRuntime::<B>::new().unwrap();
    let good = rt
        .load(
            Manifest::from_bytes("good", good(1))
                .format(Format::Raw)
                .max_instances(2),
        )
        .unwrap();
    let hostile = rt
        .load(
            Manifest::from_bytes("hostile", wat::parse_str(HOSTILE).unwrap())
                .format(Format::Raw)
                .max_instances(2)
                .deadline(Duration::from_millis(10))
                .max_memory_pages(16),
        )
        .unwrap();
    let wrong = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let hostile_kinds = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u64>::new()));
    let phase = |calls: u32| {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (good, hostile) = (good.clone(), hostile.clone());
                let (wrong, failed, kinds) = (wrong.clone(), failed.clone(), hostile_kinds.clone());
                std::thread::spawn(move || {
                    for i in 0..calls {
                        if i % 2 == 1 {
                            let f = ["spin", "trap", "bad_ptr", "hog", "ok"][(i as usize / 2) % 5];
                            let kind = match hostile.call_raw(f, b"x") {
                                Ok(out) if out == b"x" => "ok".to_string(),
                                Ok(_) => {
                                    wrong.fetch_add(1, Ordering::Relaxed);
                                    "wrong".to_string()
                                }
                                Err(e) => format!("{e:?}").split([' ', '{']).next().unwrap().into(),
                            };
                            *kinds.lock().unwrap().entry(kind).or_default() += 1;
                            continue;
                        }
                        let payload = format!("t{t} c{i} {}", "p".repeat((i % 97) as usize));
                        match good.call_raw("echo", payload.as_bytes()) {
                            Ok(out) if split(&out) == (1, payload.as_bytes()) => {}
                            Ok(_) => {
                                wrong.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                eprintln!("{}: good call failed: {e}", B::NAME);
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    };
    // A tenth of the calls first, so that the memory measured is the
    // working size, not the first allocations.
    phase(per_thread / 10);
    let before = rss_mib();
    let started = Instant::now();
    phase(per_thread - per_thread / 10);
    let (wrong, failed) = (
        wrong.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    let kinds = hostile_kinds.lock().unwrap().clone();
    println!(
        "soak calls | {} | {} good calls, {} hostile calls | good failed {failed} | wrong {wrong} | hostile outcomes {kinds:?} | {:.1} s | resident {before:.0} → {:.0} MiB",
        B::NAME,
        8 * per_thread / 2,
        8 * per_thread / 2,
        started.elapsed().as_secs_f64(),
        rss_mib()
    );
    assert_eq!((failed, wrong), (0, 0), "{}", B::NAME);
    // Every kind of misbehaviour happened and was a typed error.
    for kind in ["Deadline", "Trap", "AbiViolation", "ok"] {
        assert!(
            kinds.contains_key(kind),
            "{}: no {kind} in {kinds:?}",
            B::NAME
        );
    }
    // `hog` ends as MemoryLimit (its refused growth is named) or as the
    // trap that follows; nothing else may happen.
    for kind in kinds.keys() {
        assert!(
            ["Deadline", "Trap", "AbiViolation", "MemoryLimit", "ok"].contains(&kind.as_str()),
            "{}: unexpected outcome {kind} in {kinds:?}",
            B::NAME
        );
    }
    let s = good.stats();
    assert_eq!(s.errors, 0);
    assert!(s.instances_created <= 2, "{}: {s:?}", B::NAME);
}

/// Scenario 2: reloads under load, every tenth one broken.
pub fn reloads_under_load<B: Backend>() {
    let reloads: u32 = if long() { 1000 } else { 60 };
    let rt = PluginRuntime::<B>::new().unwrap();
    let plugin = rt
        .load(
            Manifest::from_bytes("reloaded", good(1))
                .format(Format::Raw)
                .max_instances(3),
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let latest_ok = Arc::new(AtomicU64::new(1));
    let mut before = rss_mib();
    let started = Instant::now();
    let callers: Vec<_> = (0..4)
        .map(|t| {
            let (plugin, stop, latest_ok) = (plugin.clone(), stop.clone(), latest_ok.clone());
            std::thread::spawn(move || {
                let (mut calls, mut failed, mut wrong, mut seen) = (0u64, 0u64, 0u64, 0u32);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let payload = format!("t{t} c{i}");
                    // Versions that finished loading before this call began.
                    let floor = latest_ok.load(Ordering::SeqCst) as u32;
                    calls += 1;
                    match plugin.call_raw("echo", payload.as_bytes()) {
                        Ok(out) => {
                            let (version, echoed) = split(&out);
                            // Never data of another call; never older than a
                            // version seen before, or than one whose reload
                            // returned before the call began.
                            if echoed != payload.as_bytes() || version < seen || version < floor {
                                wrong += 1;
                            }
                            seen = version;
                        }
                        Err(e) => {
                            eprintln!("{}: call failed during reloads: {e}", B::NAME);
                            failed += 1;
                        }
                    }
                }
                (calls, failed, wrong)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0u32, 0u32);
    let mut version = 1u32;
    for n in 1..=reloads {
        if n == reloads / 10 {
            // The working size, after the first tenth of the reloads.
            before = rss_mib();
        }
        if n % 10 == 0 {
            match plugin.reload(&broken(n / 10)) {
                Err(_) => refused += 1,
                Ok(v) => panic!("{}: broken reload {n} was applied as {v}", B::NAME),
            }
        } else {
            version += 1;
            plugin.reload(&good(version)).unwrap();
            latest_ok.store(u64::from(version), Ordering::SeqCst);
            ok += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut calls, mut failed, mut wrong) = (0, 0, 0);
    for c in callers {
        let (a, b, w) = c.join().unwrap();
        calls += a;
        failed += b;
        wrong += w;
    }
    let out = plugin.call_raw("echo", b"last").unwrap();
    assert_eq!(split(&out), (version, &b"last"[..]));
    println!(
        "soak reloads | {} | {reloads} reloads ({ok} applied, {refused} broken refused) | {calls} calls | failed {failed} | wrong {wrong} | {:.1} s | resident {before:.0} → {:.0} MiB",
        B::NAME,
        started.elapsed().as_secs_f64(),
        rss_mib()
    );
    assert_eq!((failed, wrong), (0, 0), "{}", B::NAME);
    assert_eq!(refused, reloads / 10);
    assert!(calls > 0);
}

macro_rules! soak_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            soak_tests!(@cases $b; calls_with_a_hostile_neighbour, reloads_under_load);
        }
    };
    (@cases $b:ty; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                super::$case::<$b>();
            }
        )*
    };
}

soak_tests!(wasmtime, anywasm::Wasmtime);
soak_tests!(wasmi, anywasm::Wasmi);
soak_tests!(wasmer, anywasm::Wasmer);
