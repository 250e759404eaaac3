//! Traps: every neutral trap code, and that a store survives them.

use anywasm_core::{Backend, Config, Error, TrapCode, Val};

use super::{assert_trap, call, engine, i32_of, instantiate};
use crate::fixtures::{RECURSION, TRAPS};

/// Each kind of trap in wasm code maps to its neutral [`TrapCode`].
/// (Out of fuel, deadline and interrupt are covered by the limits cases.)
pub fn every_trap_code<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, TRAPS, ());
    let cases: [(&str, &[Val<B>], TrapCode); 9] = [
        ("unreachable", &[], TrapCode::Unreachable),
        ("memory_oob", &[], TrapCode::MemoryOutOfBounds),
        ("table_oob", &[], TrapCode::TableOutOfBounds),
        ("indirect_mismatch", &[], TrapCode::IndirectCallTypeMismatch),
        ("null_reference", &[], TrapCode::NullReference),
        ("integer_overflow", &[], TrapCode::IntegerOverflow),
        ("division_by_zero", &[], TrapCode::DivisionByZero),
        ("bad_conversion", &[], TrapCode::BadConversionToInteger),
        ("stack_overflow", &[Val::I32(0)], TrapCode::StackOverflow),
    ];
    for (name, args, code) in cases {
        let r = call(&mut store, &inst, name, args);
        match r {
            Err(Error::Trap {
                code: c, backend, ..
            }) => {
                assert_eq!(c, code, "{}: `{name}` trapped with the wrong code", B::NAME);
                assert_eq!(backend, B::NAME);
            }
            other => panic!(
                "{}: `{name}` should trap with `{code}`, got {other:?}",
                B::NAME
            ),
        }
    }
}

/// After a trap, the same store and instance keep working.
pub fn store_usable_after_trap<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, TRAPS, ());
    for name in ["unreachable", "memory_oob", "division_by_zero"] {
        assert!(call(&mut store, &inst, name, &[]).is_err());
        assert_eq!(i32_of(call(&mut store, &inst, "fine", &[]).unwrap()), 42);
    }
    assert_trap(
        B::NAME,
        call(&mut store, &inst, "stack_overflow", &[Val::I32(0)]),
        TrapCode::StackOverflow,
    );
    assert_eq!(i32_of(call(&mut store, &inst, "fine", &[]).unwrap()), 42);
}

/// Unbounded recursion is a stack-overflow trap, never a crash of the host,
/// and bounded recursion of moderate depth works.
pub fn deep_recursion_traps<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, RECURSION, ());
    assert_eq!(
        i32_of(call(&mut store, &inst, "depth", &[Val::I32(500)]).unwrap()),
        500
    );
    assert_trap(
        B::NAME,
        call(&mut store, &inst, "depth", &[Val::I32(50_000_000)]),
        TrapCode::StackOverflow,
    );
    assert_eq!(
        i32_of(call(&mut store, &inst, "depth", &[Val::I32(100)]).unwrap()),
        100
    );
}

/// A configured stack limit makes moderate recursion trap, where the
/// default does not; backends without a per-engine limit say `Unsupported`.
pub fn stack_limit<B: Backend>() {
    let mut config = Config::new();
    config.max_wasm_stack(Some(64 * 1024));
    if !B::capabilities().stack_limit {
        match anywasm_core::Engine::<B>::new(&config) {
            Err(e) => assert!(e.is_unsupported(), "{}: {e}", B::NAME),
            Ok(_) => panic!("{}: a stack limit it cannot honour was accepted", B::NAME),
        }
        return;
    }
    let limited = engine::<B>(&config);
    let (mut store, inst) = instantiate(&limited, RECURSION, ());
    assert_trap(
        B::NAME,
        call(&mut store, &inst, "depth", &[Val::I32(5_000)]),
        TrapCode::StackOverflow,
    );
    assert_eq!(
        i32_of(call(&mut store, &inst, "depth", &[Val::I32(50)]).unwrap()),
        50
    );
    let unlimited = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&unlimited, RECURSION, ());
    assert_eq!(
        i32_of(call(&mut store, &inst, "depth", &[Val::I32(5_000)]).unwrap()),
        5_000
    );
}
