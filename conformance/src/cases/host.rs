//! Host functions: typed and dynamic, errors, memory and store data access.

use anywasm_core::{
    Backend, Caller, Config, Error, ExternRef, FuncType, HostSig, Linker, SigOf, Store, TypedSig,
    V128, Val, ValType,
};

use super::{call, engine, module};
use crate::fixtures::HOST;

/// A host error type the tests can recognise after it crossed the guest.
#[derive(Debug, PartialEq)]
pub struct Refused(pub i32);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// Store data of the host tests.
#[derive(Default)]
pub struct HostState {
    /// How often `count` ran.
    pub counter: i64,
}

fn host_linker<B: Backend>() -> Linker<B, HostState>
where
    SigOf<(i32, i32), i32>: HostSig<B, Params = (i32, i32), Results = (i32,)>,
    SigOf<(), i64>: HostSig<B, Params = (), Results = (i64,)>,
    SigOf<i32, i32>: HostSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(i32, i32), ()>: HostSig<B, Params = (i32, i32), Results = ()>,
{
    let mut linker = Linker::<B, HostState>::new();
    linker
        .func_wrap("host", "add", |a: i32, b: i32| a.wrapping_add(b))
        .unwrap();
    linker
        .func_wrap("host", "count", |mut caller: Caller<'_, B, HostState>| {
            caller.data_mut().counter += 1;
            caller.data().counter
        })
        .unwrap();
    linker
        .func_wrap("host", "fail", |x: i32| -> Result<i32, Error> {
            if x < 0 {
                Err(Error::host(Refused(x)))
            } else {
                Ok(x * 2)
            }
        })
        .unwrap();
    linker
        .func_new(
            "host",
            "dyn",
            FuncType::new([ValType::I64, ValType::F64], [ValType::F64, ValType::I32]),
            |_caller, params, results| {
                let (Some(a), Some(b)) = (params[0].as_i64(), params[1].as_f64()) else {
                    return Err(Error::host_msg("bad arguments"));
                };
                results[0] = Val::f64(a as f64 + b);
                results[1] = Val::I32(if b < 0.0 { -1 } else { 1 });
                Ok(())
            },
        )
        .unwrap();
    linker
        .func_wrap(
            "host",
            "upper",
            |mut caller: Caller<'_, B, HostState>, ptr: i32, len: i32| -> Result<(), Error> {
                let memory = caller
                    .get_memory("memory")
                    .ok_or_else(|| Error::host_msg("the caller exports no memory"))?;
                let mut text = memory.read_vec(&caller, ptr as u32 as u64, len as u32 as usize)?;
                text.make_ascii_uppercase();
                memory.write(&mut caller, ptr as u32 as u64, &text)?;
                Ok(())
            },
        )
        .unwrap();
    linker
}

/// Typed host functions, with and without a `Caller`, called from wasm.
pub fn typed_host_functions<B: Backend>()
where
    SigOf<(i32, i32), i32>: HostSig<B, Params = (i32, i32), Results = (i32,)>
        + TypedSig<B, Params = (i32, i32), Results = (i32,)>,
    SigOf<(), i64>: HostSig<B, Params = (), Results = (i64,)>,
    SigOf<i32, i32>: HostSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(i32, i32), ()>: HostSig<B, Params = (i32, i32), Results = ()>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, HOST);
    let linker = host_linker::<B>();
    let mut store = Store::new(&engine, HostState::default());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let add = inst
        .get_typed_func::<(i32, i32), i32>(&mut store, "call_add")
        .unwrap();
    assert_eq!(add.call(&mut store, (40, 2)).unwrap(), 42);
    assert_eq!(add.call(&mut store, (i32::MAX, 1)).unwrap(), i32::MIN);
    let counted = call(&mut store, &inst, "call_count", &[]).unwrap();
    assert_eq!(counted[0].as_i64(), Some(1 + 2));
    assert_eq!(store.data().counter, 2);

    // A host function made directly (not through a linker) is callable from the host.
    let direct = anywasm_core::Func::wrap(&mut store, |a: i32, b: i32| a * b);
    assert_eq!(
        direct.ty(&store).unwrap().to_string(),
        "(func (param i32 i32) (result i32))"
    );
    let typed = direct.typed::<(i32, i32), i32>(&store).unwrap();
    assert_eq!(typed.call(&mut store, (6, 7)).unwrap(), 42);
}

/// Host functions whose type is given at run time; a wrong result type is
/// reported to the caller, not trusted.
pub fn dynamic_host_functions<B: Backend>()
where
    SigOf<(i32, i32), i32>: HostSig<B, Params = (i32, i32), Results = (i32,)>,
    SigOf<(), i64>: HostSig<B, Params = (), Results = (i64,)>,
    SigOf<i32, i32>: HostSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(i32, i32), ()>: HostSig<B, Params = (i32, i32), Results = ()>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, HOST);
    let mut store = Store::new(&engine, HostState::default());
    let inst = host_linker::<B>().instantiate(&mut store, &module).unwrap();
    let got = call(
        &mut store,
        &inst,
        "call_dyn",
        &[Val::I64(2), Val::f64(-0.5)],
    )
    .unwrap();
    assert_eq!(got[0].as_f64(), Some(1.5));
    assert_eq!(got[1].as_i32(), Some(-1));

    // A dynamic function that writes a wrong result type.
    let mut linker = host_linker::<B>();
    linker.allow_shadowing(true);
    linker
        .func_new(
            "host",
            "dyn",
            FuncType::new([ValType::I64, ValType::F64], [ValType::F64, ValType::I32]),
            |_c, _p, results| {
                results[0] = Val::I32(1);
                results[1] = Val::I32(1);
                Ok(())
            },
        )
        .unwrap();
    let inst = linker.instantiate(&mut store, &module).unwrap();
    match call(&mut store, &inst, "call_dyn", &[Val::I64(2), Val::f64(1.0)]) {
        Err(Error::TypeMismatch {
            expected, found, ..
        }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("f64", "i32"));
        }
        other => panic!("{}: expected a result type error, got {other:?}", B::NAME),
    }
}

/// A host function with a run-time signature carries every value type the
/// layer has, both ways: `externref`, `funcref`, `v128` and numbers reach
/// it and its results reach wasm intact (null references too). A result
/// of the wrong store is refused before the engine sees it.
pub fn dynamic_host_functions_carry_references<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    if !B::capabilities().extern_ref {
        return;
    }
    let types = [
        ValType::ExternRef,
        ValType::FuncRef,
        ValType::V128,
        ValType::I64,
    ];
    let ty = FuncType::new(types, types);
    let wat = r#"(module
        (import "host" "pass" (func $pass (param externref funcref v128 i64)
                                          (result externref funcref v128 i64)))
        (func (export "seven") (result i32) (i32.const 7))
        (func (export "go") (param externref funcref v128 i64)
                            (result externref funcref v128 i64)
          (call $pass (local.get 0) (local.get 1) (local.get 2) (local.get 3))))"#;
    let m = module(&engine, wat);
    // The host function gives back what it got, with the v128 bits
    // inverted and the i64 plus one.
    let mut linker = Linker::<B, ()>::new();
    linker
        .func_new("host", "pass", ty.clone(), |_c, p, r| {
            r[0] = p[0].clone();
            r[1] = p[1].clone();
            r[2] = Val::V128(V128(!p[2].as_v128().unwrap().0));
            r[3] = Val::I64(p[3].as_i64().unwrap() + 1);
            Ok(())
        })
        .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &m).unwrap();
    let seven = inst.get_func(&mut store, "seven").unwrap();
    let r = ExternRef::new(&mut store, String::from("through the host")).unwrap();
    let bits = 0x0123_4567_89ab_cdef_0011_2233_4455_6677u128;
    let args = [
        Val::ExternRef(Some(r)),
        Val::FuncRef(Some(seven)),
        Val::V128(V128(bits)),
        Val::I64(41),
    ];
    let out = call(&mut store, &inst, "go", &args).unwrap();
    let back = out[0]
        .as_externref()
        .flatten()
        .cloned()
        .expect("an externref");
    assert_eq!(
        back.downcast::<String, _>(&store)
            .unwrap()
            .map(String::as_str),
        Some("through the host"),
        "{}",
        B::NAME
    );
    let f = out[1].as_funcref().flatten().cloned().expect("a funcref");
    assert_eq!(f.invoke(&mut store, &[]).unwrap()[0].as_i32(), Some(7));
    assert_eq!(out[2].as_v128(), Some(V128(!bits)), "{}", B::NAME);
    assert_eq!(out[3].as_i64(), Some(42));
    let nulls = [
        Val::ExternRef(None),
        Val::FuncRef(None),
        Val::V128(V128(0)),
        Val::I64(-1),
    ];
    let out = call(&mut store, &inst, "go", &nulls).unwrap();
    assert!(out[0].as_externref().unwrap().is_none());
    assert!(out[1].as_funcref().unwrap().is_none());
    assert_eq!(out[2].as_v128(), Some(V128(u128::MAX)));
    assert_eq!(out[3].as_i64(), Some(0));

    // A result that belongs to another store.
    let mut other = Store::new(&engine, ());
    let alien = ExternRef::new(&mut other, 1u32).unwrap();
    let mut linker = Linker::<B, ()>::new();
    linker
        .func_new("host", "pass", ty, move |_c, p, r| {
            r.clone_from_slice(p);
            r[0] = Val::ExternRef(Some(alien.clone()));
            Ok(())
        })
        .unwrap();
    let inst = linker.instantiate(&mut store, &m).unwrap();
    match call(&mut store, &inst, "go", &nulls) {
        Err(Error::StoreMismatch { .. }) => {}
        other => panic!("{}: expected a store mismatch, got {other:?}", B::NAME),
    }
    // The store goes on.
    let inst = {
        let mut linker = Linker::<B, ()>::new();
        linker
            .func_new("host", "pass", FuncType::new(types, types), |_c, p, r| {
                r.clone_from_slice(p);
                Ok(())
            })
            .unwrap();
        linker.instantiate(&mut store, &m).unwrap()
    };
    let out = call(&mut store, &inst, "go", &nulls).unwrap();
    assert_eq!(out[3].as_i64(), Some(-1));
}

/// An error returned by a host function reaches the host's caller as that
/// same error, through the guest, and the store stays usable.
pub fn host_errors_pass_through<B: Backend>()
where
    SigOf<(i32, i32), i32>: HostSig<B, Params = (i32, i32), Results = (i32,)>,
    SigOf<(), i64>: HostSig<B, Params = (), Results = (i64,)>,
    SigOf<i32, i32>: HostSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(i32, i32), ()>: HostSig<B, Params = (i32, i32), Results = ()>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, HOST);
    let mut store = Store::new(&engine, HostState::default());
    let inst = host_linker::<B>().instantiate(&mut store, &module).unwrap();
    assert_eq!(
        call(&mut store, &inst, "call_fail", &[Val::I32(4)]).unwrap()[0].as_i32(),
        Some(8)
    );
    let err = call(&mut store, &inst, "call_fail", &[Val::I32(-3)]).unwrap_err();
    assert_eq!(
        err.downcast_host::<Refused>(),
        Some(&Refused(-3)),
        "{}: got {err:?}",
        B::NAME
    );
    // Again, and with a successful call in between: nothing is left behind.
    assert_eq!(
        call(&mut store, &inst, "call_fail", &[Val::I32(5)]).unwrap()[0].as_i32(),
        Some(10)
    );
    let err = call(&mut store, &inst, "call_fail", &[Val::I32(-9)]).unwrap_err();
    assert_eq!(err.downcast_host::<Refused>(), Some(&Refused(-9)));
}

/// A host function that panics: the panic reaches the host's caller as a
/// panic (the layer neither swallows it nor turns it into a trap), and the
/// store and instance stay usable, including host functions that find the
/// calling instance's exports. A panic in a start function's host call
/// reaches the code that instantiates.
pub fn host_panic_unwinds_and_store_survives<B: Backend>()
where
    SigOf<(i32, i32), i32>: HostSig<B, Params = (i32, i32), Results = (i32,)>,
    SigOf<(), i64>: HostSig<B, Params = (), Results = (i64,)>,
    SigOf<i32, i32>: HostSig<B, Params = (i32,), Results = (i32,)>
        + TypedSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(i32, i32), ()>: HostSig<B, Params = (i32, i32), Results = ()>,
    SigOf<(), i32>: TypedSig<B, Params = (), Results = (i32,)>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, HOST);
    let mut linker = host_linker::<B>();
    linker.allow_shadowing(true);
    linker
        .func_wrap("host", "fail", |x: i32| -> i32 {
            if x < 0 {
                std::panic::panic_any(Refused(x));
            }
            x * 2
        })
        .unwrap();
    let mut store = Store::new(&engine, HostState::default());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let fail = inst
        .get_typed_func::<i32, i32>(&mut store, "call_fail")
        .unwrap();
    let shout = inst.get_typed_func::<(), i32>(&mut store, "shout").unwrap();
    for round in 0..2 {
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = fail.call(&mut store, -7 - round);
        }))
        .expect_err("the host function's panic reaches the caller");
        assert_eq!(
            payload.downcast_ref::<Refused>(),
            Some(&Refused(-7 - round)),
            "{}: the panic payload is the host function's own",
            B::NAME
        );
        assert_eq!(fail.call(&mut store, 21).unwrap(), 42, "{}", B::NAME);
        // `upper` looks up the caller's memory export after the unwind.
        assert_eq!(shout.call(&mut store, ()).unwrap(), i32::from(b'H'));
        let counted = call(&mut store, &inst, "call_count", &[]).unwrap();
        assert_eq!(counted[0].as_i64(), Some(4 * round as i64 + 3));
    }
    // A start function's host call panics: instantiation resumes the panic.
    let starts = super::module(
        &engine,
        r#"(module (import "host" "fail" (func $fail (param i32) (result i32)))
             (func $start i32.const -40 call $fail drop) (start $start))"#,
    );
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = linker.instantiate(&mut store, &starts);
    }))
    .expect_err("the start function's host panic reaches the instantiating code");
    assert_eq!(
        payload.downcast_ref::<Refused>(),
        Some(&Refused(-40)),
        "{}",
        B::NAME
    );
    assert_eq!(fail.call(&mut store, 5).unwrap(), 10, "{}", B::NAME);
}

/// A host function reads and writes the calling instance's memory.
pub fn host_reads_and_writes_guest_memory<B: Backend>()
where
    SigOf<(i32, i32), i32>: HostSig<B, Params = (i32, i32), Results = (i32,)>,
    SigOf<(), i64>: HostSig<B, Params = (), Results = (i64,)>,
    SigOf<i32, i32>: HostSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(i32, i32), ()>: HostSig<B, Params = (i32, i32), Results = ()>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, HOST);
    let mut store = Store::new(&engine, HostState::default());
    let inst = host_linker::<B>().instantiate(&mut store, &module).unwrap();
    let first = call(&mut store, &inst, "shout", &[]).unwrap();
    assert_eq!(first[0].as_i32(), Some(b'H' as i32));
    let memory = inst.get_memory(&mut store, "memory").unwrap();
    assert_eq!(memory.read_vec(&store, 16, 11).unwrap(), b"HELLO, HOST");
}

/// Host functions see and change the store's data; the host sees the change.
pub fn store_data_from_host_functions<B: Backend>()
where
    SigOf<(i32, i32), i32>: HostSig<B, Params = (i32, i32), Results = (i32,)>,
    SigOf<(), i64>: HostSig<B, Params = (), Results = (i64,)>,
    SigOf<i32, i32>: HostSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<(i32, i32), ()>: HostSig<B, Params = (i32, i32), Results = ()>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, HOST);
    let mut store = Store::new(&engine, HostState { counter: 100 });
    let inst = host_linker::<B>().instantiate(&mut store, &module).unwrap();
    call(&mut store, &inst, "call_count", &[]).unwrap();
    assert_eq!(store.data().counter, 102);
    store.data_mut().counter = -5;
    let got = call(&mut store, &inst, "call_count", &[]).unwrap();
    assert_eq!(got[0].as_i64(), Some(-4 + -3));
    assert_eq!(store.into_data().counter, -3);
}

/// One host function imported by two instances, each with its own memory:
/// each call sees the memory of the instance that made it.
pub fn caller_is_the_importing_instance<B: Backend>()
where
    SigOf<(), i32>: HostSig<B, Params = (), Results = (i32,)>,
{
    let engine = engine::<B>(&Config::new());
    let wat = |byte: u8| {
        format!(
            r#"(module
                (import "host" "peek" (func $peek (result i32)))
                (memory (export "memory") 1)
                (data (i32.const 0) "\{byte:02x}")
                (func (export "run") (result i32) call $peek))"#
        )
    };
    let mut store = Store::new(&engine, ());
    let peek = anywasm_core::Func::wrap(&mut store, |mut caller: Caller<'_, B, ()>| -> i32 {
        match caller.get_memory("memory") {
            Some(m) => i32::from(m.read_le::<u8>(&caller, 0).unwrap_or(0)),
            None => -1,
        }
    });
    let mut linker = Linker::<B, ()>::new();
    linker.define("host", "peek", peek).unwrap();
    let a = linker
        .instantiate(&mut store, &module(&engine, &wat(0x0a)))
        .unwrap();
    let b = linker
        .instantiate(&mut store, &module(&engine, &wat(0x0b)))
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            call(&mut store, &a, "run", &[]).unwrap()[0].as_i32(),
            Some(0x0a),
            "{}",
            B::NAME
        );
        assert_eq!(
            call(&mut store, &b, "run", &[]).unwrap()[0].as_i32(),
            Some(0x0b),
            "{}",
            B::NAME
        );
    }
}

/// A host function imported by instance A and reached through a table from
/// instance B's code: with [`Capabilities::exact_caller`](anywasm_core::Capabilities),
/// `Caller::get_export` answers for B (the code that called); without it,
/// for A (the importer). The backends say which they do, and do it.
pub fn caller_through_a_funcref<B: Backend>()
where
    SigOf<(), i32>: HostSig<B, Params = (), Results = (i32,)>,
{
    let engine = engine::<B>(&Config::new());
    let mut store = Store::new(&engine, ());
    let peek = anywasm_core::Func::wrap(&mut store, |mut caller: Caller<'_, B, ()>| -> i32 {
        match caller.get_memory("memory") {
            Some(m) => i32::from(m.read_le::<u8>(&caller, 0).unwrap_or(0)),
            None => -1,
        }
    });
    let mut linker = Linker::<B, ()>::new();
    linker.define("host", "peek", peek).unwrap();
    let a = linker
        .instantiate(
            &mut store,
            &module(
                &engine,
                r#"(module
                    (import "host" "peek" (func $peek (result i32)))
                    (memory (export "memory") 1)
                    (data (i32.const 0) "\0a")
                    (table (export "t") 1 funcref)
                    (elem (i32.const 0) $peek))"#,
            ),
        )
        .unwrap();
    let mut linker = Linker::<B, ()>::new();
    linker.define_instance(&mut store, "a", &a).unwrap();
    let b = linker
        .instantiate(
            &mut store,
            &module(
                &engine,
                r#"(module
                    (import "a" "t" (table 1 funcref))
                    (memory (export "memory") 1)
                    (data (i32.const 0) "\0b")
                    (type $peek (func (result i32)))
                    (func (export "run") (result i32) (call_indirect (type $peek) (i32.const 0))))"#,
            ),
        )
        .unwrap();
    let expected = if B::capabilities().exact_caller {
        0x0b
    } else {
        0x0a
    };
    assert_eq!(
        call(&mut store, &b, "run", &[]).unwrap()[0].as_i32(),
        Some(expected),
        "{}",
        B::NAME
    );
}
