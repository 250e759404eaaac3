//! Async calls and async host functions, under a tokio runtime: the same
//! behaviour where the backend claims `async_calls`, `Unsupported` by name
//! elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anywasm_core::{
    AsyncReturn, Backend, Config, Engine, Error, Extern, Func, FuncType, HostFuture, Instance,
    Linker, Memory, SigOf, Store, TypedSig, Val, ValType,
};

use super::{engine, module};
use crate::cases::Refused;

const ASYNC_GUEST: &str = r#"(module
    (import "host" "fetch" (func $fetch (param i32 i32) (result i32)))
    (import "host" "add100" (func $add100 (param i32) (result i32)))
    (import "host" "fail" (func $fail (param i32) (result i32)))
    (import "host" "scale" (func $scale (param i64 f64) (result i64 f64)))
    (memory (export "memory") 1)
    (global $started (mut i32) (i32.const 0))
    (func $start (global.set $started (call $fetch (i32.const 64) (i32.const 1))))
    (start $start)
    (func (export "started") (result i32) global.get $started)
    (func (export "twice") (param i32) (result i32)
        (i32.add
            (call $fetch (i32.const 0) (local.get 0))
            (call $add100 (call $fetch (i32.const 16) (local.get 0)))))
    (func (export "fail") (param i32) (result i32) (call $fail (local.get 0)))
    (func (export "plain") (result i32) i32.const 7)
    (func (export "scale") (param i64 f64) (result i64 f64)
        (call $scale (local.get 0) (local.get 1))))"#;

/// A guest whose host function calls back into it.
const REENTER_GUEST: &str = r#"(module
    (import "host" "reenter" (func $reenter (result i32)))
    (func (export "plain") (result i32) i32.const 7)
    (func (export "probe") (result i32) call $reenter))"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

fn assert_send<F: Send>(f: F) -> F {
    f
}

/// `host.fetch(ptr, x)`: waits 30 ms (an hour for `x == 1000`), then writes
/// `done` at `ptr` in the caller's memory from the epilogue and returns
/// `2x + 1` if another task ran while it waited (`2x` otherwise).
/// `host.add100` is a synchronous host function; `host.fail(n)` fails in
/// the step `n` names; `host.scale(n, x)` is a typed async host function
/// (`func_wrap_async`) that waits 1 ms and answers `(3n, x / 2)`.
fn async_linker<B: Backend>(other_ran: Arc<AtomicBool>) -> Linker<B, ()>
where
    SigOf<i32, i32>: anywasm_core::HostSig<B, Params = (i32,), Results = (i32,)>,
{
    let mut linker = Linker::<B, ()>::new();
    let fetch_ty = FuncType::new([ValType::I32, ValType::I32], [ValType::I32]);
    linker
        .func_new_async("host", "fetch", fetch_ty, move |mut caller, args| {
            let (Val::I32(ptr), Val::I32(x)) = (&args[0], &args[1]) else {
                unreachable!("wasm checked the types")
            };
            let (ptr, x) = (*ptr as u64, *x);
            let memory: Memory<B> = caller
                .get_export("memory")
                .and_then(Extern::into_memory)
                .ok_or_else(|| Error::InvalidArgument("no memory".into()))?;
            let other_ran = other_ran.clone();
            Ok(Box::pin(async move {
                let wait = if x == 1000 { 3_600_000 } else { 30 };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let ran = i32::from(other_ran.load(Ordering::SeqCst));
                Ok(AsyncReturn::with_store(move |mut ctx, results| {
                    memory.write(&mut ctx, ptr, b"done")?;
                    results[0] = Val::I32(2 * x + ran);
                    Ok(())
                }))
            }) as HostFuture<B, ()>)
        })
        .unwrap();
    linker
        .func_wrap("host", "add100", |x: i32| x + 100)
        .unwrap();
    linker
        .func_wrap_async("host", "scale", |_caller, (n, x): (i64, f64)| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok((3 * n, x / 2.0))
        })
        .unwrap();
    let fail_ty = FuncType::new([ValType::I32], [ValType::I32]);
    linker
        .func_new_async("host", "fail", fail_ty, |_caller, args| {
            let n = args[0].as_i32().unwrap_or(-1);
            match n {
                1 => return Err(Error::host(Refused(1))),
                7 => std::panic::panic_any(Refused(7)),
                _ => {}
            }
            Ok(Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                match n {
                    2 => Err(Error::host(Refused(2))),
                    3 => std::panic::panic_any(Refused(3)),
                    4 => Ok(AsyncReturn::with_store(|_, _| Err(Error::host(Refused(4))))),
                    5 => Ok(AsyncReturn::values(vec![Val::I32(1), Val::I32(2)])),
                    6 => Ok(AsyncReturn::values(vec![Val::I64(6)])),
                    _ => Ok(AsyncReturn::values(vec![Val::I32(n)])),
                }
            }) as HostFuture<B, ()>)
        })
        .unwrap();
    linker
}

/// Where the backend claims async calls: an async host function waits on a
/// tokio timer while another task on the same single-threaded runtime
/// runs; its epilogue writes the caller's memory; the start function runs
/// asynchronously; typed and dynamic async calls agree, and so does a
/// typed async host function (`func_wrap_async`, `Func::wrap_async`); the store refuses
/// synchronous calls and instantiations by name. Elsewhere every async
/// entry point is `Unsupported`.
pub fn async_host_function_awaits_a_timer<B: Backend>()
where
    SigOf<i32, i32>: anywasm_core::HostSig<B, Params = (i32,), Results = (i32,)>
        + TypedSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(), i32>: TypedSig<B, Params = (), Results = (i32,)>,
    SigOf<(i64, f64), (i64, f64)>: TypedSig<B, Params = (i64, f64), Results = (i64, f64)>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, ASYNC_GUEST);
    let rt = runtime();
    if !B::capabilities().async_calls {
        refusals::<B>(&engine);
        return;
    }
    let other_ran = Arc::new(AtomicBool::new(false));
    let linker = async_linker::<B>(other_ran.clone());
    let mut store = Store::new(&engine, ());
    rt.block_on(async {
        let inst = assert_send(linker.instantiate_async(&mut store, &module))
            .await
            .unwrap_or_else(|e| panic!("{}: instantiate_async: {e}", B::NAME));
        let started = inst
            .get_typed_func::<(), i32>(&mut store, "started")
            .unwrap();
        assert_eq!(
            started.call_async(&mut store, ()).await.unwrap(),
            2,
            "{}: the start function ran its async import",
            B::NAME
        );
        let twice = inst
            .get_typed_func::<i32, i32>(&mut store, "twice")
            .unwrap();
        let flag = other_ran.clone();
        let (r, ()) = tokio::join!(assert_send(twice.call_async(&mut store, 5)), async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            flag.store(true, Ordering::SeqCst);
        });
        assert_eq!(
            r.unwrap(),
            11 + 111,
            "{}: the other task ran while the host function waited",
            B::NAME
        );
        let memory = inst.get_memory(&mut store, "memory").unwrap();
        let mut buf = [0u8; 4];
        for at in [0, 16, 64] {
            memory.read(&store, at, &mut buf).unwrap();
            assert_eq!(&buf, b"done", "{}: the epilogue wrote at {at}", B::NAME);
        }
        // The dynamic call gives the same.
        let func = inst.get_func(&mut store, "twice").unwrap();
        let mut out = [Val::I32(0)];
        assert_send(func.call_async(&mut store, &[Val::I32(5)], &mut out))
            .await
            .unwrap();
        assert_eq!(out[0].as_i32().unwrap_or(-1), 122, "{}", B::NAME);
        // A typed async host function, through a typed async call.
        let scale = inst
            .get_typed_func::<(i64, f64), (i64, f64)>(&mut store, "scale")
            .unwrap();
        assert_eq!(
            assert_send(scale.call_async(&mut store, (-7, 5.0)))
                .await
                .unwrap(),
            (-21, 2.5),
            "{}",
            B::NAME
        );
        // Wrong arguments are refused as in synchronous calls.
        let err = func
            .call_async(&mut store, &[Val::I64(5)], &mut out)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::TypeMismatch { .. }),
            "{}: {err}",
            B::NAME
        );

        // Synchronous entry into an async store is an error, not a panic.
        let plain = inst.get_typed_func::<(), i32>(&mut store, "plain").unwrap();
        for err in [
            plain.call(&mut store, ()).unwrap_err(),
            func.call(&mut store, &[Val::I32(5)], &mut out).unwrap_err(),
            linker.instantiate(&mut store, &module).unwrap_err(),
        ] {
            assert!(
                matches!(&err, Error::InvalidArgument(m) if m.contains("call_async")),
                "{}: {err}",
                B::NAME
            );
        }
        assert_eq!(plain.call_async(&mut store, ()).await.unwrap(), 7);
        // A typed async host function made with `Func::wrap_async`, called
        // by the host itself.
        let inc = Func::wrap_async(&mut store, |_caller, x: i32| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(x + 1)
        })
        .unwrap();
        let mut out = [Val::I32(0)];
        inc.call_async(&mut store, &[Val::I32(41)], &mut out)
            .await
            .unwrap();
        assert_eq!(out[0].as_i32(), Some(42), "{}", B::NAME);
    });
}

/// What a backend without async calls answers.
fn refusals<B: Backend>(engine: &Engine<B>)
where
    SigOf<(), i32>: TypedSig<B, Params = (), Results = (i32,)>,
{
    let unsupported = |e: Error| {
        assert!(
            matches!(e, Error::Unsupported { backend, .. } if backend == B::NAME),
            "{}: {e}",
            B::NAME
        );
    };
    let rt = runtime();
    let mut store = Store::new(engine, ());
    let ty = FuncType::new([], []);
    let new = Func::<B>::new_async(&mut store, ty.clone(), |_, _| {
        Ok(Box::pin(async { Ok(AsyncReturn::none()) }) as HostFuture<B, ()>)
    });
    let Err(e) = new else {
        panic!("{}: Func::new_async is refused", B::NAME)
    };
    unsupported(e);
    let mut linker = Linker::<B, ()>::new();
    let r = linker.func_new_async("host", "f", ty, |_, _| {
        Ok(Box::pin(async { Ok(AsyncReturn::none()) }) as HostFuture<B, ()>)
    });
    let Err(e) = r else {
        panic!("{}: Linker::func_new_async is refused", B::NAME)
    };
    unsupported(e);
    let r = linker.func_wrap_async("host", "g", |_, ()| async { Ok(()) });
    let Err(e) = r else {
        panic!("{}: Linker::func_wrap_async is refused", B::NAME)
    };
    unsupported(e);
    let plain = module(
        engine,
        "(module (func (export \"plain\") (result i32) i32.const 7))",
    );
    unsupported(
        rt.block_on(Instance::new_async(&mut store, &plain, &[]))
            .unwrap_err(),
    );
    unsupported(
        rt.block_on(linker.instantiate_async(&mut store, &plain))
            .unwrap_err(),
    );
    let inst = Instance::new(&mut store, &plain, &[]).unwrap();
    let f = inst.get_typed_func::<(), i32>(&mut store, "plain").unwrap();
    unsupported(rt.block_on(f.call_async(&mut store, ())).unwrap_err());
    // The store is still an ordinary one.
    assert_eq!(f.call(&mut store, ()).unwrap(), 7);
}

/// Errors and panics from each step of an async host function reach the
/// caller of `call_async` as from a synchronous one (errors unchanged,
/// panics resumed with their payload); wrong results are `TypeMismatch`;
/// the store goes on after each.
pub fn async_errors_and_panics_cross_the_await<B: Backend>()
where
    SigOf<i32, i32>: anywasm_core::HostSig<B, Params = (i32,), Results = (i32,)>
        + TypedSig<B, Params = (i32,), Results = (i32,)>,
{
    if !B::capabilities().async_calls {
        return; // Refusals: see `async_host_function_awaits_a_timer`.
    }
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, ASYNC_GUEST);
    let linker = async_linker::<B>(Arc::new(AtomicBool::new(false)));
    let rt = runtime();
    let mut store = Store::new(&engine, ());
    let inst = rt
        .block_on(linker.instantiate_async(&mut store, &module))
        .unwrap();
    let fail = inst.get_typed_func::<i32, i32>(&mut store, "fail").unwrap();
    for step in [1, 2, 4] {
        let err = rt.block_on(fail.call_async(&mut store, step)).unwrap_err();
        assert_eq!(
            err.downcast_host::<Refused>(),
            Some(&Refused(step)),
            "{}: step {step}: {err}",
            B::NAME
        );
        assert_eq!(rt.block_on(fail.call_async(&mut store, 9)).unwrap(), 9);
    }
    for step in [5, 6] {
        let err = rt.block_on(fail.call_async(&mut store, step)).unwrap_err();
        assert!(
            matches!(err, Error::TypeMismatch { .. }),
            "{}: step {step}: {err}",
            B::NAME
        );
        assert_eq!(rt.block_on(fail.call_async(&mut store, 9)).unwrap(), 9);
    }
    for step in [3, 7] {
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let rt = runtime();
            let _ = rt.block_on(fail.call_async(&mut store, step));
        }))
        .expect_err("the host function's panic reaches the caller");
        assert_eq!(
            payload.downcast_ref::<Refused>(),
            Some(&Refused(step)),
            "{}: step {step}",
            B::NAME
        );
        assert_eq!(rt.block_on(fail.call_async(&mut store, 9)).unwrap(), 9);
    }
}

/// Dropping an async call's future while its host function waits cancels
/// the call; the store goes on, for async calls and for the async host
/// function itself. A synchronous host function that calls back into wasm
/// synchronously while an async call runs gets `InvalidArgument` (in a
/// synchronous call, the same call-back works).
pub fn dropping_an_async_call_cancels_it<B: Backend>()
where
    SigOf<i32, i32>: anywasm_core::HostSig<B, Params = (i32,), Results = (i32,)>
        + TypedSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(), i32>: anywasm_core::HostSig<B, Params = (), Results = (i32,)>
        + TypedSig<B, Params = (), Results = (i32,)>,
{
    if !B::capabilities().async_calls {
        return; // Refusals: see `async_host_function_awaits_a_timer`.
    }
    let engine = engine::<B>(&Config::new());
    let rt = runtime();
    let module_a = module(&engine, ASYNC_GUEST);
    let linker = async_linker::<B>(Arc::new(AtomicBool::new(false)));
    let mut store = Store::new(&engine, ());
    rt.block_on(async {
        let inst = linker
            .instantiate_async(&mut store, &module_a)
            .await
            .unwrap();
        let twice = inst
            .get_typed_func::<i32, i32>(&mut store, "twice")
            .unwrap();
        let plain = inst.get_typed_func::<(), i32>(&mut store, "plain").unwrap();
        for _ in 0..2 {
            let r = tokio::time::timeout(
                Duration::from_millis(20),
                twice.call_async(&mut store, 1000),
            )
            .await;
            assert!(r.is_err(), "{}: the call waits for an hour", B::NAME);
            assert_eq!(plain.call_async(&mut store, ()).await.unwrap(), 7);
            assert_eq!(
                twice.call_async(&mut store, 5).await.unwrap(),
                10 + 110,
                "{}: the store goes on after a cancelled call",
                B::NAME
            );
        }
    });

    // Calling back into wasm from a synchronous host function.
    let module_b = module(&engine, REENTER_GUEST);
    let mut linker = Linker::<B, ()>::new();
    linker
        .func_wrap(
            "host",
            "reenter",
            |mut caller: anywasm_core::Caller<'_, B, ()>| -> i32 {
                let Some(Extern::Func(f)) = caller.get_export("plain") else {
                    return -1;
                };
                let mut out = [Val::I32(0)];
                match f.call(&mut caller, &[], &mut out) {
                    Ok(()) => out[0].as_i32().unwrap_or(-1),
                    Err(Error::InvalidArgument(m)) if m.contains("async call runs") => 1,
                    Err(e) => panic!("{}: unexpected {e}", B::NAME),
                }
            },
        )
        .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module_b).unwrap();
    let probe = inst.get_typed_func::<(), i32>(&mut store, "probe").unwrap();
    assert_eq!(probe.call(&mut store, ()).unwrap(), 7, "{}", B::NAME);
    assert_eq!(
        rt.block_on(probe.call_async(&mut store, ())).unwrap(),
        1,
        "{}: the synchronous call-back inside an async call is refused",
        B::NAME
    );
    assert_eq!(probe.call(&mut store, ()).unwrap(), 7, "{}", B::NAME);
}

/// A guest that waits in an async host function, then loops.
const WAIT_THEN_SPIN: &str = r#"(module
    (import "host" "wait" (func $wait))
    (import "host" "hang" (func $hang))
    (func (export "spin") (call $wait) (loop $l (br $l)))
    (func (export "hang") (call $hang))
    (func (export "plain") (result i32) i32.const 7))"#;

/// Deadlines, interrupts and fuel stop async calls as they stop synchronous
/// ones, after the call has waited in an async host function, and while it
/// waits there (a host future waiting an hour on the layer's own
/// [`sleep`](anywasm_core::asynchronous::sleep)); the store goes on.
pub fn deadlines_and_fuel_stop_async_calls<B: Backend>()
where
    SigOf<(), i32>: TypedSig<B, Params = (), Results = (i32,)>,
    SigOf<(), ()>: TypedSig<B, Params = (), Results = ()>,
{
    if !B::capabilities().async_calls {
        return; // Refusals: see `async_host_function_awaits_a_timer`.
    }
    let rt = runtime();
    for fuel in [false, true] {
        let mut config = Config::new();
        config.interruptible(true).consume_fuel(fuel);
        let engine = engine::<B>(&config);
        let module = module(&engine, WAIT_THEN_SPIN);
        let mut linker = Linker::<B, ()>::new();
        linker
            .func_new_async("host", "wait", FuncType::new([], []), |_, _| {
                Ok(Box::pin(async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok(AsyncReturn::none())
                }) as HostFuture<B, ()>)
            })
            .unwrap();
        linker
            .func_new_async("host", "hang", FuncType::new([], []), |_, _| {
                Ok(Box::pin(async {
                    anywasm_core::asynchronous::sleep(Duration::from_secs(3600)).await;
                    Ok(AsyncReturn::none())
                }) as HostFuture<B, ()>)
            })
            .unwrap();
        let mut store = Store::new(&engine, ());
        if fuel {
            store.set_fuel(u64::MAX).unwrap();
        }
        rt.block_on(async {
            let inst = linker.instantiate_async(&mut store, &module).await.unwrap();
            let plain = inst.get_typed_func::<(), i32>(&mut store, "plain").unwrap();
            // Looping after a wait, then waiting in the host function.
            for name in ["spin", "hang"] {
                let f = inst.get_typed_func::<(), ()>(&mut store, name).unwrap();
                stopped_by_deadline_and_interrupt(&mut store, &f, name).await;
            }
            if fuel {
                let spin = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
                store.set_fuel(100_000).unwrap();
                let err = spin.call_async(&mut store, ()).await.unwrap_err();
                assert_eq!(
                    err.trap_code(),
                    Some(anywasm_core::TrapCode::OutOfFuel),
                    "{}: {err}",
                    B::NAME
                );
                store.set_fuel(1_000).unwrap();
            }
            assert_eq!(
                plain.call_async(&mut store, ()).await.unwrap(),
                7,
                "{}",
                B::NAME
            );
        });
    }
}

/// The store's deadline, then an interrupt from another thread, each end
/// `f`'s async call soon with their own trap.
async fn stopped_by_deadline_and_interrupt<B: Backend>(
    store: &mut Store<B, ()>,
    f: &anywasm_core::TypedFunc<B, (), ()>,
    name: &str,
) where
    SigOf<(), ()>: TypedSig<B, Params = (), Results = ()>,
{
    for code in [
        anywasm_core::TrapCode::Deadline,
        anywasm_core::TrapCode::Interrupted,
    ] {
        let stopper = if code == anywasm_core::TrapCode::Deadline {
            store.set_timeout(Duration::from_millis(100)).unwrap();
            None
        } else {
            store.set_deadline(None).unwrap();
            let handle = store.interrupt_handle().unwrap();
            Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                handle.interrupt();
            }))
        };
        let started = std::time::Instant::now();
        let err = f.call_async(store, ()).await.unwrap_err();
        assert_eq!(err.trap_code(), Some(code), "{}: `{name}`: {err}", B::NAME);
        assert!(started.elapsed() < Duration::from_secs(5), "{}", B::NAME);
        if let Some(stopper) = stopper {
            stopper.join().unwrap();
        }
    }
}

/// With a yield interval, a looping async call lets another task of a
/// single-threaded executor run while it loops; without one (the default)
/// the other task runs only after the call. Setting an interval needs an
/// interruptible engine, like deadlines.
pub fn long_async_calls_yield_to_other_tasks<B: Backend>()
where
    SigOf<(), ()>: TypedSig<B, Params = (), Results = ()>,
{
    let spin = r#"(module (func (export "spin") (loop $l (br $l))))"#;
    if B::capabilities().async_calls {
        let engine = engine::<B>(&Config::new());
        let mut store = Store::new(&engine, ());
        let err = store
            .set_yield_interval(Some(Duration::from_millis(1)))
            .unwrap_err();
        assert!(
            matches!(err, Error::NotEnabled { .. }),
            "{}: {err}",
            B::NAME
        );
    } else {
        return; // Refusals: see `async_host_function_awaits_a_timer`.
    }
    let rt = runtime();
    let mut config = Config::new();
    config.interruptible(true);
    let engine = engine::<B>(&config);
    let module = module(&engine, spin);
    for interval in [Some(Duration::from_millis(2)), None] {
        let mut store = Store::new(&engine, ());
        store.set_yield_interval(interval).unwrap();
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let spin = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
        store.set_timeout(Duration::from_millis(400)).unwrap();
        let (call_ended, other_ran) = rt.block_on(async {
            let call = async {
                let r = spin.call_async(&mut store, ()).await;
                let err = r.unwrap_err();
                assert_eq!(
                    err.trap_code(),
                    Some(anywasm_core::TrapCode::Deadline),
                    "{}: {err}",
                    B::NAME
                );
                std::time::Instant::now()
            };
            let other = async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                std::time::Instant::now()
            };
            tokio::join!(call, other)
        });
        assert_eq!(
            other_ran < call_ended,
            interval.is_some(),
            "{}: with interval {interval:?}, the other task ran {} the looping call ended",
            B::NAME,
            if other_ran < call_ended {
                "before"
            } else {
                "after"
            }
        );
    }
}
