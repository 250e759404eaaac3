//! No backend takes the application's SIGUSR1 (or SIGUSR2) from it: a
//! handler the application installed before using the engines is still the
//! one that runs, after stores with deadlines were created and stopped.
//! (wasmer's `experimental-host-interrupt` feature, which the wasmer
//! backend does not use, replaces SIGUSR1's handler and aborts the process
//! on a SIGUSR1 it did not send.) One test in its own binary: signal
//! handlers are process-wide.

#![cfg(unix)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anywasm_core::{Backend, Config, Engine, Error, Linker, Module, Store, TrapCode};

static SEEN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count(_: libc::c_int) {
    SEEN.fetch_add(1, Ordering::SeqCst);
}

fn current_handler(signal: libc::c_int) -> usize {
    // SAFETY: querying the disposition with a null new action.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

fn stop_a_loop<B: Backend>() {
    let mut config = Config::new();
    config.interruptible(true);
    let engine = Engine::<B>::new(&config).unwrap();
    let module = Module::from_wat(
        &engine,
        r#"(module (func (export "spin") (loop $l (br $l))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = Linker::new().instantiate(&mut store, &module).unwrap();
    store.set_timeout(Duration::from_millis(30)).unwrap();
    let spin = inst.get_func(&mut store, "spin").unwrap();
    match spin.invoke(&mut store, &[]) {
        Err(Error::Trap {
            code: TrapCode::Deadline,
            ..
        }) => {}
        other => panic!("{}: {other:?}", B::NAME),
    }
}

#[test]
fn the_applications_signal_handlers_stay() {
    let ours = count as extern "C" fn(libc::c_int) as usize;
    for signal in [libc::SIGUSR1, libc::SIGUSR2] {
        // SAFETY: a plain handler that only touches an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ours;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
        }
    }
    stop_a_loop::<anywasm_wasmtime::Wasmtime>();
    stop_a_loop::<anywasm_wasmi::Wasmi>();
    stop_a_loop::<anywasm_wasmer::Wasmer>();
    for signal in [libc::SIGUSR1, libc::SIGUSR2] {
        assert_eq!(
            current_handler(signal),
            ours,
            "signal {signal}'s handler was replaced"
        );
        let before = SEEN.load(Ordering::SeqCst);
        // SAFETY: raising a signal whose handler is ours.
        assert_eq!(unsafe { libc::raise(signal) }, 0);
        assert_eq!(SEEN.load(Ordering::SeqCst), before + 1);
    }
}
