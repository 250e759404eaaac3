//! WASI's waits in async calls (feature `async`): a program that sleeps in
//! `poll_oneoff` lets the other tasks of a single-threaded tokio runtime
//! run, and the store's deadline ends the sleep, on every backend.
#![cfg(feature = "async")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anywasm::{Backend, Config, Engine, Error, Linker, Module, SigOf, Store, TrapCode, TypedSig};
use anywasm_wasi::{WasiConfig, WasiCtx, add_to_linker_async};

/// `nap(ns)` sleeps in `poll_oneoff` on the monotonic clock and returns
/// its errno; `events` is the number of events it reported.
const NAPPER: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "nap") (param $ns i64) (result i32)
    (i64.store (i32.const 0) (i64.const 7))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
  (func (export "events") (result i32) (i32.load (i32.const 128))))"#;

fn naps_without_blocking<B: Backend>()
where
    SigOf<i64, i32>: TypedSig<B, Params = (i64,), Results = (i32,)>,
    SigOf<(), i32>: TypedSig<B, Params = (), Results = (i32,)>,
{
    let mut config = Config::new();
    config.interruptible(true);
    let engine = Engine::<B>::new(&config).unwrap();
    let module = Module::from_wat(&engine, NAPPER).unwrap();
    let mut linker = Linker::<B, WasiCtx>::new();
    let defined = add_to_linker_async(&mut linker, |c| c);
    if !B::capabilities().async_calls {
        let err = defined.unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "{}: {err}",
            B::NAME
        );
        return;
    }
    defined.unwrap();
    let mut store = Store::new(&engine, WasiConfig::new().build().unwrap());
    let exec = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    exec.block_on(async {
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        let nap = instance
            .get_typed_func::<i64, i32>(&mut store, "nap")
            .unwrap();
        let events = instance
            .get_typed_func::<(), i32>(&mut store, "events")
            .unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let started = Instant::now();
        let errno = nap.call_async(&mut store, 200_000_000).await.unwrap();
        let took = started.elapsed();
        let during = ticks.load(Ordering::SeqCst);
        ticker.abort();
        assert_eq!(errno, 0, "{}", B::NAME);
        assert_eq!(
            events.call_async(&mut store, ()).await.unwrap(),
            1,
            "{}",
            B::NAME
        );
        assert!(took >= Duration::from_millis(200), "{}: {took:?}", B::NAME);
        assert!(
            during >= 10,
            "{}: the other task ran {during} times during a 200 ms nap",
            B::NAME
        );

        // A ten-second nap ends with the store's deadline.
        store.set_timeout(Duration::from_millis(100)).unwrap();
        let started = Instant::now();
        let err = nap
            .call_async(&mut store, 10_000_000_000)
            .await
            .unwrap_err();
        assert_eq!(
            err.trap_code(),
            Some(TrapCode::Deadline),
            "{}: {err}",
            B::NAME
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{}", B::NAME);
        store.set_deadline(None).unwrap();
        // A nap already over answers at once.
        assert_eq!(nap.call_async(&mut store, 0).await.unwrap(), 0);
    });
}

#[test]
fn wasmtime_naps_without_blocking() {
    naps_without_blocking::<anywasm::Wasmtime>();
}

#[test]
fn wasmi_naps_without_blocking() {
    naps_without_blocking::<anywasm::Wasmi>();
}

#[test]
fn wasmer_naps_without_blocking() {
    naps_without_blocking::<anywasm::Wasmer>();
}
