//! What is particular to this backend's async calls, which run on worker
//! threads (see `src/asynchronous.rs`); their behaviour shared with the
//! other backends is in the conformance suite.
#![cfg(feature = "async")]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use anywasm_core::{
    AsyncReturn, Engine, FuncType, HostFuture, Linker, Module, Store, Val, ValType,
};
use anywasm_wasmer::Wasmer;

const GUEST: &str = r#"(module
    (import "host" "wait" (func $wait (param i32) (result i32)))
    (global $calls (mut i32) (i32.const 0))
    (func (export "run") (param i32) (result i32)
        (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
        (call $wait (local.get 0)))
    (func (export "calls") (result i32) global.get $calls))"#;

/// `host.wait(x)`: never ready for `x == 0`, else `x + 1` at once.
fn linker(polled: Arc<AtomicUsize>) -> Linker<Wasmer, ()> {
    let mut linker = Linker::new();
    let ty = FuncType::new([ValType::I32], [ValType::I32]);
    linker
        .func_new_async("host", "wait", ty, move |_, args| {
            let x = args[0].as_i32().unwrap_or(-1);
            let polled = polled.clone();
            Ok(Box::pin(std::future::poll_fn(move |_| {
                polled.fetch_add(1, Ordering::SeqCst);
                match x {
                    0 => Poll::Pending,
                    x => Poll::Ready(Ok(AsyncReturn::values(vec![Val::I32(x + 1)]))),
                }
            })) as HostFuture<Wasmer, ()>)
        })
        .unwrap();
    linker
}

fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// The output of a future that must not wait.
fn ready<F: Future>(f: F) -> F::Output {
    match poll_once(pin!(f)) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("this future does not wait"),
    }
}

/// A call's future that is leaked (not dropped) while its host function
/// waits leaves the worker waiting for good: the store goes on serving
/// other calls, on other workers, and can be dropped.
#[test]
fn a_leaked_call_never_touches_the_store_again() {
    let engine = Engine::<Wasmer>::default_config().unwrap();
    let module = Module::from_wat(&engine, GUEST).unwrap();
    let polled = Arc::new(AtomicUsize::new(0));
    let linker = linker(polled.clone());
    let mut store = Store::new(&engine, ());
    let instance = ready(linker.instantiate_async(&mut store, &module)).unwrap();
    let run = instance.get_func(&mut store, "run").unwrap();
    let calls = instance.get_func(&mut store, "calls").unwrap();

    let mut out = [Val::I32(0)];
    let mut leaked = Box::pin(run.call_async(&mut store, &[Val::I32(0)], &mut out));
    assert!(poll_once(leaked.as_mut()).is_pending());
    assert_eq!(polled.load(Ordering::SeqCst), 1);
    std::mem::forget(leaked);

    for x in [1, 2] {
        let mut out = [Val::I32(0)];
        ready(run.call_async(&mut store, &[Val::I32(x)], &mut out)).unwrap();
        assert_eq!(out[0].as_i32(), Some(x + 1));
    }
    let mut out = [Val::I32(0)];
    ready(calls.call_async(&mut store, &[], &mut out)).unwrap();
    assert_eq!(out[0].as_i32(), Some(3), "the leaked call entered once");
    // The leaked call's host future was polled once, and never again.
    assert_eq!(polled.load(Ordering::SeqCst), 3);
    drop(store);
}

/// Async calls of many stores from many threads at once share the pool of
/// workers; each gets its own results.
#[test]
fn concurrent_calls_share_the_workers() {
    let engine = Engine::<Wasmer>::default_config().unwrap();
    let module = Module::from_wat(&engine, GUEST).unwrap();
    let linker = linker(Arc::new(AtomicUsize::new(0)));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (engine, module, linker) = (engine.clone(), module.clone(), linker.clone());
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let instance = ready(linker.instantiate_async(&mut store, &module)).unwrap();
                let run = instance
                    .get_typed_func::<i32, i32>(&mut store, "run")
                    .unwrap();
                for _ in 0..50 {
                    assert_eq!(ready(run.call_async(&mut store, i + 1)).unwrap(), i + 2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
