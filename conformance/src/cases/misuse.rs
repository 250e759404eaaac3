//! Misuse of the API: every wrong use is an `Error`, checked by the layer
//! before the engine sees it, never a panic; the stores stay usable.

use std::time::{Duration, Instant};

use anywasm_core::{
    Backend, Config, Engine, Error, Extern, ExternRef, Global, GlobalType, HostSig, Instance,
    Linker, Memory, MemoryType, Mutability, RESERVED_EXPORT_PREFIX, SigOf, Store, StoreLimits,
    Table, TableType, TypedSig, Val, ValType,
};

use super::{call, engine, i32_of, module};

const ITEMS: &str = r#"(module
    (memory (export "memory") 1)
    (global (export "g") (mut i32) (i32.const 7))
    (table (export "t") 2 funcref)
    (func $id (export "id") (param i32) (result i32) local.get 0)
    (func (export "take") (param funcref) (result i32) i32.const 1)
    (elem (i32.const 0) $id))"#;

#[track_caller]
fn assert_store_mismatch<T: std::fmt::Debug>(
    backend: &str,
    what: &str,
    r: anywasm_core::Result<T>,
) {
    match r {
        Err(Error::StoreMismatch { .. }) => {}
        other => panic!("{backend}: {what}: expected StoreMismatch, got {other:?}"),
    }
}

/// Every kind of handle used with a store that did not create it is
/// refused with `Error::StoreMismatch`, and both stores keep working.
pub fn handles_of_another_store_are_refused<B: Backend>()
where
    SigOf<i32, i32>: TypedSig<B, Params = (i32,), Results = (i32,)>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, ITEMS);
    let mut a = Store::new(&engine, ());
    let mut b = Store::new(&engine, ());
    let linker = Linker::<B, ()>::new();
    let ia = linker.instantiate(&mut a, &module).unwrap();
    let ib = linker.instantiate(&mut b, &module).unwrap();
    let n = B::NAME;

    let func = ia.get_func(&mut a, "id").unwrap();
    let typed = func.typed::<i32, i32>(&a).unwrap();
    let memory = ia.get_memory(&mut a, "memory").unwrap();
    let global = ia.get_global(&mut a, "g").unwrap();
    let table = ia.get_table(&mut a, "t").unwrap();

    assert_store_mismatch(n, "Func::call", func.invoke(&mut b, &[Val::I32(1)]));
    assert_store_mismatch(n, "Func::ty", func.ty(&b));
    assert_store_mismatch(n, "Func::typed", func.typed::<i32, i32>(&b));
    assert_store_mismatch(n, "TypedFunc::call", typed.call(&mut b, 1));
    assert_store_mismatch(n, "Memory::data", memory.data(&b));
    assert_store_mismatch(n, "Memory::read", memory.read_i32(&b, 0));
    assert_store_mismatch(n, "Memory::write", memory.write_i32(&mut b, 0, 1));
    assert_store_mismatch(n, "Memory::grow", memory.grow(&mut b, 1));
    assert_store_mismatch(n, "Memory::ty", memory.ty(&b));
    assert_store_mismatch(n, "Global::get", global.get(&mut b));
    assert_store_mismatch(n, "Global::set", global.set(&mut b, Val::I32(1)));
    assert_store_mismatch(n, "Table::get", table.get(&mut b, 0));
    assert_store_mismatch(n, "Table::grow", table.grow(&mut b, 1, Val::FuncRef(None)));
    assert_store_mismatch(n, "Instance::get_export", ia.get_export(&mut b, "id"));
    assert_store_mismatch(n, "Instance::get_func", ia.get_func(&mut b, "id"));

    // References of store A as values in store B.
    let take = ib.get_func(&mut b, "take").unwrap();
    assert_store_mismatch(
        n,
        "funcref argument",
        take.invoke(&mut b, &[Val::FuncRef(Some(func.clone()))]),
    );
    let tb = ib.get_table(&mut b, "t").unwrap();
    assert_store_mismatch(
        n,
        "Table::set",
        tb.set(&mut b, 1, Val::FuncRef(Some(func.clone()))),
    );
    assert_store_mismatch(
        n,
        "Table::new",
        Table::new(
            &mut b,
            TableType::new(ValType::FuncRef, 1, None),
            Val::FuncRef(Some(func.clone())),
        ),
    );
    if B::capabilities().extern_ref {
        let r = ExternRef::new(&mut a, 5u32).unwrap();
        assert_store_mismatch(n, "ExternRef::data", r.data(&b));
        assert_store_mismatch(
            n,
            "Global::new",
            Global::new(
                &mut b,
                GlobalType::new(ValType::ExternRef, Mutability::Var),
                Val::ExternRef(Some(r)),
            ),
        );
    }

    // Items of store A as imports in store B, directly and through a linker.
    let importer = module_with_imports::<B>(&engine);
    let items = [
        Extern::Memory(memory.clone()),
        Extern::Global(global.clone()),
        Extern::Func(func.clone()),
    ];
    assert_store_mismatch(n, "Instance::new", Instance::new(&mut b, &importer, &items));
    let mut l = Linker::<B, ()>::new();
    l.define("a", "memory", memory.clone()).unwrap();
    l.define("a", "g", global.clone()).unwrap();
    l.define("a", "id", func.clone()).unwrap();
    assert_store_mismatch(n, "Linker::instantiate", l.instantiate(&mut b, &importer));
    // ...while store A itself can use them.
    l.instantiate(&mut a, &importer).unwrap();

    // Both stores still work.
    assert_eq!(typed.call(&mut a, 41).unwrap(), 41);
    assert_eq!(i32_of(call(&mut b, &ib, "id", &[Val::I32(3)]).unwrap()), 3);
    assert_eq!(memory.data_size(&a).unwrap(), 65536);
}

fn module_with_imports<B: Backend>(engine: &Engine<B>) -> anywasm_core::Module<B> {
    module(
        engine,
        r#"(module
            (import "a" "memory" (memory 1))
            (import "a" "g" (global (mut i32)))
            (import "a" "id" (func (param i32) (result i32))))"#,
    )
}

/// A module compiled by one engine is refused by a store of another engine
/// with `Error::EngineMismatch`, whatever the engines' configurations.
pub fn modules_of_another_engine_are_refused<B: Backend>() {
    let one = engine::<B>(&Config::new());
    let other = engine::<B>(&Config::new());
    let module = module(&one, ITEMS);
    let mut store = Store::new(&other, ());
    match Linker::<B, ()>::new().instantiate(&mut store, &module) {
        Err(Error::EngineMismatch { .. }) => {}
        r => panic!("{}: expected EngineMismatch, got {r:?}", B::NAME),
    }
    match Instance::new(&mut store, &module, &[]) {
        Err(Error::EngineMismatch { .. }) => {}
        r => panic!("{}: expected EngineMismatch, got {r:?}", B::NAME),
    }
    assert_eq!(store.stats().instances, 0);
}

/// A timeout too long to be an instant is no deadline: no panic, and code
/// runs; so is a deadline far in the future.
pub fn timeout_overflow_is_no_deadline<B: Backend>() {
    let mut config = Config::new();
    config.interruptible(true);
    let engine = engine::<B>(&config);
    let module = module(&engine, ITEMS);
    let mut store = Store::new(&engine, ());
    let inst = Linker::new().instantiate(&mut store, &module).unwrap();
    store.set_timeout(Duration::MAX).unwrap();
    assert_eq!(
        i32_of(call(&mut store, &inst, "id", &[Val::I32(2)]).unwrap()),
        2
    );
    store
        .set_timeout(Duration::from_secs(u64::MAX / 4))
        .unwrap();
    assert_eq!(
        i32_of(call(&mut store, &inst, "id", &[Val::I32(3)]).unwrap()),
        3
    );
    if let Some(far) = Instant::now().checked_add(Duration::from_secs(1 << 40)) {
        store.set_deadline(Some(far)).unwrap();
        assert_eq!(
            i32_of(call(&mut store, &inst, "id", &[Val::I32(4)]).unwrap()),
            4
        );
    }
}

/// An instantiation that fails (an import missing, a trap in the start
/// function) takes no place under the instance limit and is not counted.
pub fn failed_instantiation_is_not_counted<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let trapping = module(&engine, "(module (func unreachable) (start 0))");
    let importing = module(&engine, r#"(module (import "x" "y" (func)))"#);
    let fine = module(&engine, "(module)");
    let mut store = Store::new(&engine, ());
    store.set_limits(StoreLimits::new().instances(1));
    let linker = Linker::<B, ()>::new();
    for _ in 0..3 {
        assert!(linker.instantiate(&mut store, &trapping).is_err());
        assert!(linker.instantiate(&mut store, &importing).is_err());
    }
    assert_eq!(store.stats().instances, 0, "{}", B::NAME);
    assert_eq!(engine.stats().instances_created, 0, "{}", B::NAME);
    linker.instantiate(&mut store, &fine).unwrap();
    assert_eq!(store.stats().instances, 1);
    assert!(matches!(
        linker.instantiate(&mut store, &fine),
        Err(Error::Limit(_))
    ));
}

/// Growing a table past the store's limit is `Error::Limit` on every
/// backend; past its own maximum, `InvalidArgument`. Neither panics, and a
/// hostile delta is refused before anything is allocated.
pub fn table_growth_limits<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let mut store = Store::new(&engine, ());
    store.set_limits(StoreLimits::new().table_elements(10));
    let table = Table::new(
        &mut store,
        TableType::new(ValType::FuncRef, 2, Some(8)),
        Val::FuncRef(None),
    )
    .unwrap();
    assert_eq!(table.grow(&mut store, 3, Val::FuncRef(None)).unwrap(), 2);
    assert!(matches!(
        table.grow(&mut store, 4, Val::FuncRef(None)),
        Err(Error::InvalidArgument(_))
    ));
    let open = Table::new(
        &mut store,
        TableType::new(ValType::FuncRef, 2, None),
        Val::FuncRef(None),
    )
    .unwrap();
    assert!(matches!(
        open.grow(&mut store, 9, Val::FuncRef(None)),
        Err(Error::Limit(_))
    ));
    assert!(matches!(
        open.grow(&mut store, u64::MAX, Val::FuncRef(None)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Table::new(
            &mut store,
            TableType::new(ValType::FuncRef, 11, None),
            Val::FuncRef(None)
        ),
        Err(Error::Limit(_))
    ));
    assert_eq!(open.size(&store).unwrap(), 2);
    // Memories too: a hostile delta is refused, not attempted.
    let memory = Memory::new(&mut store, MemoryType::new(1, None)).unwrap();
    assert!(matches!(
        memory.grow(&mut store, u64::MAX),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        memory.grow(&mut store, 1 << 20),
        Err(Error::InvalidArgument(_))
    ));
}

/// What the layer adds to modules for its own use (the deferred start
/// function, wasmer's control globals) is never visible to users, through
/// an instance or through a host function's caller, whatever the engine's
/// configuration.
pub fn reserved_exports_are_invisible<B: Backend>()
where
    SigOf<(), ()>: HostSig<B, Params = (), Results = ()>,
{
    for (fuel, interruptible) in [(false, false), (true, true)] {
        let mut config = Config::new();
        config.consume_fuel(fuel).interruptible(interruptible);
        let engine = engine::<B>(&config);
        let module = module(
            &engine,
            r#"(module
                (import "host" "look" (func $look))
                (global $g (mut i32) (i32.const 0))
                (func $init global.get $g i32.const 1 i32.add global.set $g)
                (start $init)
                (func (export "run") call $look))"#,
        );
        let mut store = Store::new(&engine, Vec::<String>::new());
        if fuel {
            store.set_fuel(1_000_000).unwrap();
        }
        let mut linker = Linker::<B, Vec<String>>::new();
        linker
            .func_wrap(
                "host",
                "look",
                |mut caller: anywasm_core::Caller<'_, B, Vec<String>>| {
                    for name in [
                        "__anywasm_start",
                        "__anywasm_fuel",
                        "__anywasm_fuel_exhausted",
                        "fuel",
                        "status",
                    ] {
                        if caller.get_export(name).is_some() {
                            caller.data_mut().push(name.to_string());
                        }
                    }
                },
            )
            .unwrap();
        let inst = linker.instantiate(&mut store, &module).unwrap();
        call(&mut store, &inst, "run", &[]).unwrap();
        assert!(
            store.data().is_empty(),
            "{}: the caller sees {:?}",
            B::NAME,
            store.data()
        );
        assert!(
            inst.get_export(&mut store, "__anywasm_start")
                .unwrap()
                .is_none()
        );
        assert_eq!(module.exports().len(), 1);
        assert!(
            module
                .exports()
                .iter()
                .all(|e| !e.name.starts_with(RESERVED_EXPORT_PREFIX))
        );
    }
}
