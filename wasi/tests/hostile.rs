//! Hostile guests on every backend: WASI calls with out-of-range and huge
//! arguments end with an errno or a clean error within a second, and the
//! host's resident memory grows by less than twice the guest's memory.
//!
//! One test per backend would measure each other's memory, so the cases of
//! all backends run one after another in a single test (this file is its
//! own test binary). Memory is sampled while each call runs; the bound
//! allows a fixed 16 MiB on top of twice the guest memory for what the
//! process does meanwhile (allocator caches, the sampling thread).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use anywasm::{Backend, Error, TrapCode, Val};
use anywasm_wasi::{FUNCTIONS, Output, WasiConfig, errno};
use common::{Probe, i};

/// Resident memory of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `f`, sampling resident memory meanwhile; returns its result, the
/// peak growth in bytes and how long it took.
fn measured<R>(f: impl FnOnce() -> R) -> (R, u64, Duration) {
    let before = rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let started = Instant::now();
    let r = f();
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    peak.fetch_max(rss_kib(), Ordering::Relaxed);
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before) * 1024;
    (r, growth, took)
}

const ALLOWANCE: u64 = 16 << 20;

/// Calls `name` on `p` under a one-second deadline, and checks that it took
/// less than 1.5 s and grew resident memory less than allowed.
#[track_caller]
fn hostile<B: Backend>(
    p: &mut Probe<B>,
    what: &str,
    name: &str,
    args: &[Val<B>],
) -> anywasm::Result<Vec<Val<B>>> {
    p.store.set_timeout(Duration::from_secs(1)).unwrap();
    let (r, growth, took) = measured(|| p.call(name, args));
    let guest = u64::from(p.pages) << 16;
    // What RELIABILITY.md reports (`-- --nocapture` shows it).
    let outcome = match &r {
        Ok(v) => format!("errno {}", v[0].as_i32().unwrap_or(-1)),
        Err(e) => e.to_string(),
    };
    println!(
        "observed | {} | {what} | {outcome} | {:.1} ms | {:.1} MiB resident for a {} KiB guest",
        B::NAME,
        took.as_secs_f64() * 1000.0,
        growth as f64 / (1 << 20) as f64,
        guest >> 10
    );
    assert!(
        took < Duration::from_millis(1500),
        "{}: {what}: took {took:?}",
        B::NAME
    );
    assert!(
        growth < 2 * guest + ALLOWANCE,
        "{}: {what}: resident memory grew by {growth} bytes for a guest of {guest}",
        B::NAME
    );
    r
}

#[track_caller]
fn hostile_errno<B: Backend>(p: &mut Probe<B>, what: &str, name: &str, args: &[Val<B>]) -> i32 {
    match hostile(p, what, name, args) {
        Ok(r) => r[0].as_i32().unwrap(),
        Err(e) => panic!("{}: {what}: {e}", B::NAME),
    }
}

/// The four programs of issue #11, and the rest.
fn hostile_cases<B: Backend>() {
    // 1. fd_read into 8191 iovecs of 4 GiB each: EFAULT, nothing allocated.
    let mut p = Probe::<B>::new(1, WasiConfig::new().stdin_bytes(vec![7; 1 << 16]));
    for k in 0..8191u32 {
        p.put_u32(k * 8, 0);
        p.put_u32(k * 8 + 4, u32::MAX);
    }
    let e = hostile_errno(
        &mut p,
        "fd_read of 8191 x 4 GiB",
        "fd_read",
        &[i(0), i(0), i(8191), i(65532)],
    );
    assert_eq!(e, i32::from(errno::FAULT), "{}", B::NAME);

    // 2. fd_write of 4096 iovecs all covering the same 64 MiB: a short
    // write of at most 16 MiB, streamed through a small buffer.
    let mut p = Probe::<B>::new(1024, WasiConfig::new().stdout(Output::Discard));
    for k in 0..4096u32 {
        p.put_u32(k * 8, 0);
        p.put_u32(k * 8 + 4, 64 << 20);
    }
    let e = hostile_errno(
        &mut p,
        "fd_write of 4096 x 64 MiB",
        "fd_write",
        &[i(1), i(0), i(4096), i(32768)],
    );
    assert_eq!(e, 0, "{}", B::NAME);
    let written = p.memory.read_i32(&p.store, 32768).unwrap() as u32;
    assert!(
        written > 0 && written <= 16 << 20,
        "{}: wrote {written}",
        B::NAME
    );

    // 3. random_get over 4 GiB of a 64 KiB memory: EFAULT at once.
    let mut p = Probe::<B>::new(1, WasiConfig::new());
    let e = hostile_errno(
        &mut p,
        "random_get of 4 GiB",
        "random_get",
        &[i(0), i(u32::MAX)],
    );
    assert_eq!(e, i32::from(errno::FAULT), "{}", B::NAME);
    // ...and filling the whole memory works, in place.
    assert_eq!(
        hostile_errno(
            &mut p,
            "random_get of all memory",
            "random_get",
            &[i(0), i(65536)]
        ),
        0
    );

    // 4. poll_oneoff on a relative clock of one hour ends with the store's
    // deadline, as a deadline in wasm would.
    let mut p = Probe::<B>::new(1, WasiConfig::new());
    let mut sub = [0u8; 48];
    sub[24..32].copy_from_slice(&3_600_000_000_000u64.to_le_bytes());
    p.memory.write(&mut p.store, 0, &sub).unwrap();
    p.store.set_timeout(Duration::from_millis(200)).unwrap();
    let started = Instant::now();
    let r = p.call("poll_oneoff", &[i(0), i(64), i(1), i(128)]);
    let took = started.elapsed();
    println!(
        "observed | {} | poll_oneoff on a one-hour clock, 200 ms deadline | {} | {:.1} ms",
        B::NAME,
        r.as_ref()
            .map_or_else(|e| e.to_string(), |v| format!("{v:?}")),
        took.as_secs_f64() * 1000.0
    );
    match r {
        Err(Error::Trap {
            code: TrapCode::Deadline,
            ..
        }) => {}
        other => panic!("{}: poll_oneoff for an hour: {other:?}", B::NAME),
    }
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(1200),
        "{}: poll_oneoff ended after {took:?}",
        B::NAME
    );
}

/// Every WASI function with arguments at and past the edges of memory and
/// of their types, against a preopened directory: an errno (or, for waits,
/// the deadline) within a second, no panic, bounded memory.
fn sweep<B: Backend>() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("file"), b"content").unwrap();
    let config = || {
        WasiConfig::new()
            .preopen_dir(root.path(), "/sandbox")
            .args(["prog", "arg"])
            .env("K", "V")
            .stdin_bytes(b"input".to_vec())
    };
    let edges: [u32; 8] = [0, 1, 3, 65532, 65535, 65536, 0x7fff_ffff, u32::MAX];
    let mut p = Probe::<B>::new(1, config());
    // Memory that looks like plausible structures: small numbers everywhere.
    let pattern: Vec<u8> = (0..65536u32).map(|k| (k % 7) as u8).collect();
    for (name, params) in FUNCTIONS {
        if *name == "proc_exit" {
            continue;
        }
        for (round, &edge) in edges.iter().enumerate() {
            p.memory.write(&mut p.store, 0, &pattern).unwrap();
            let args: Vec<Val<B>> = params
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    // Mix the edge with small values so one bad argument at
                    // a time meets otherwise sensible ones.
                    let v = if (k + round) % 2 == 0 { edge } else { 3 };
                    match t {
                        anywasm::ValType::I64 => {
                            Val::I64(if v == u32::MAX { -1 } else { i64::from(v) })
                        }
                        _ => Val::I32(v as i32),
                    }
                })
                .collect();
            let what = format!("{name}{args:?}");
            match hostile(&mut p, &what, name, &args) {
                Ok(r) => {
                    let e = r[0].as_i32().unwrap();
                    assert!((0..=76).contains(&e), "{}: {what}: errno {e}", B::NAME);
                }
                Err(Error::Trap {
                    code: TrapCode::Deadline,
                    ..
                }) if *name == "poll_oneoff" || *name == "fd_read" => {}
                Err(e) => panic!("{}: {what}: {e}", B::NAME),
            }
        }
    }
    // Nothing escaped the sandbox: the directory holds what it held, or
    // what the program made inside it.
    assert!(root.path().join("file").exists());
}

#[test]
fn hostile_guests_cannot_harm_the_host() {
    hostile_cases::<anywasm::Wasmtime>();
    hostile_cases::<anywasm::Wasmi>();
    hostile_cases::<anywasm::Wasmer>();
    sweep::<anywasm::Wasmtime>();
    sweep::<anywasm::Wasmi>();
    sweep::<anywasm::Wasmer>();
}
