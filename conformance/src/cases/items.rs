//! Memories, globals, tables and references created by the host or exported.

use anywasm_core::{
    Backend, Config, Engine, Error, ExternRef, Features, Func, FuncType, Global, GlobalType,
    HostSig, Linker, Memory, MemoryType, Module, Mutability, SigOf, Store, Table, TableType,
    TrapCode, TypedSig, Val, ValType,
};

use super::{assert_trap, call, engine, i32_of, i64_of, instantiate, module};
use crate::fixtures::{EXTERNREF, GROW, PROVIDER, SHARED_ITEMS};

struct Shared<B: Backend> {
    memory: Memory<B>,
    base: Global<B>,
    counter: Global<B>,
    table: Table<B>,
}

fn shared_items<B: Backend>(store: &mut Store<B, ()>) -> (Linker<B, ()>, Shared<B>) {
    let memory = Memory::new(&mut *store, MemoryType::new(1, Some(4))).unwrap();
    let base = Global::new(
        &mut *store,
        GlobalType::new(ValType::I32, Mutability::Const),
        Val::I32(100),
    )
    .unwrap();
    let counter = Global::new(
        &mut *store,
        GlobalType::new(ValType::I32, Mutability::Var),
        Val::I32(0),
    )
    .unwrap();
    let table = Table::new(
        &mut *store,
        TableType::new(ValType::FuncRef, 2, None),
        Val::FuncRef(None),
    )
    .unwrap();
    let mut linker = Linker::new();
    linker
        .define("env", "memory", memory.clone())
        .unwrap()
        .define("env", "base", base.clone())
        .unwrap()
        .define("env", "counter", counter.clone())
        .unwrap()
        .define("env", "table", table.clone())
        .unwrap();
    (
        linker,
        Shared {
            memory,
            base,
            counter,
            table,
        },
    )
}

/// A memory created by the host is imported by two instances: each sees the
/// other's writes, the host sees both, and the host can grow it.
pub fn host_memory_shared_by_instances<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, SHARED_ITEMS);
    let mut store = Store::new(&engine, ());
    let (linker, shared) = shared_items(&mut store);
    let a = linker.instantiate(&mut store, &module).unwrap();
    let b = linker.instantiate(&mut store, &module).unwrap();
    call(&mut store, &a, "store", &[Val::I32(8), Val::I32(77)]).unwrap();
    assert_eq!(
        i32_of(call(&mut store, &b, "load", &[Val::I32(8)]).unwrap()),
        77
    );
    assert_eq!(shared.memory.read_i32(&store, 8).unwrap(), 77);
    shared.memory.write_i32(&mut store, 12, -1).unwrap();
    assert_eq!(
        i32_of(call(&mut store, &a, "load", &[Val::I32(12)]).unwrap()),
        -1
    );
    assert_eq!(shared.memory.grow(&mut store, 1).unwrap(), 1);
    assert_eq!(i32_of(call(&mut store, &b, "size", &[]).unwrap()), 2);
    assert_eq!(shared.memory.size(&store).unwrap(), 2);
    assert_eq!(shared.memory.data_size(&store).unwrap(), 2 * 65536);
    // Beyond the declared maximum of 4 pages.
    assert!(shared.memory.grow(&mut store, 3).is_err());
    assert_eq!(shared.memory.size(&store).unwrap(), 2);
}

/// An exported memory is readable and writable from the host in bytes,
/// little-endian values, copies, fills and a borrowed slice.
pub fn exported_memory_access<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, GROW, ());
    let memory = inst.get_memory(&mut store, "memory").unwrap();
    assert_eq!(memory.data_size(&store).unwrap(), 65536);
    assert_eq!(memory.ty(&store).unwrap(), MemoryType::new(1, None));
    memory.write(&mut store, 100, b"abcdef").unwrap();
    let mut buf = [0u8; 3];
    memory.read(&store, 101, &mut buf).unwrap();
    assert_eq!(&buf, b"bcd");
    memory
        .write_le::<u32>(&mut store, 200, 0xdead_beef)
        .unwrap();
    assert_eq!(
        memory.read_vec(&store, 200, 4).unwrap(),
        [0xef, 0xbe, 0xad, 0xde]
    );
    memory.write_i64(&mut store, 208, i64::MIN + 1).unwrap();
    assert_eq!(memory.read_i64(&store, 208).unwrap(), i64::MIN + 1);
    memory.write_f32(&mut store, 216, 1.25).unwrap();
    assert_eq!(memory.read_f32(&store, 216).unwrap(), 1.25);
    memory.write_f64(&mut store, 224, -2.5).unwrap();
    assert_eq!(memory.read_f64(&store, 224).unwrap(), -2.5);
    memory.copy(&mut store, 102, 100, 6).unwrap();
    assert_eq!(memory.read_vec(&store, 100, 8).unwrap(), b"ababcdef");
    memory.fill(&mut store, 300, 0x5a, 10).unwrap();
    assert_eq!(&memory.data(&store).unwrap()[300..310], &[0x5a; 10]);
    memory.data_mut(&mut store).unwrap()[400] = 9;
    assert_eq!(memory.read_le::<u8>(&store, 400).unwrap(), 9);
    // Growing from inside wasm is seen by the host.
    assert_eq!(
        i32_of(call(&mut store, &inst, "grow", &[Val::I32(2)]).unwrap()),
        1
    );
    assert_eq!(memory.size(&store).unwrap(), 3);
    assert_eq!(memory.read_le::<u8>(&store, 400).unwrap(), 9);
}

/// Host accesses outside a memory are errors that say where, never panics.
pub fn memory_access_out_of_bounds_is_an_error<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let (mut store, inst) = instantiate(&engine, GROW, ());
    let memory = inst.get_memory(&mut store, "memory").unwrap();
    let mut buf = [0u8; 10];
    match memory.read(&store, 65530, &mut buf) {
        Err(Error::MemoryOutOfBounds {
            offset: 65530,
            len: 10,
            size: 65536,
        }) => {}
        other => panic!(
            "{}: expected an out-of-bounds error, got {other:?}",
            B::NAME
        ),
    }
    assert!(matches!(
        memory.write(&mut store, u64::MAX, b"x"),
        Err(Error::MemoryOutOfBounds { .. })
    ));
    assert!(matches!(
        memory.read_i64(&store, 65532),
        Err(Error::MemoryOutOfBounds { .. })
    ));
    assert!(matches!(
        memory.copy(&mut store, 65000, 0, 1000),
        Err(Error::MemoryOutOfBounds { .. })
    ));
    assert!(matches!(
        memory.fill(&mut store, 1, 0, usize::MAX),
        Err(Error::MemoryOutOfBounds { .. })
    ));
    assert!(memory.read_vec(&store, 0, 65536).is_ok());
}

/// Host globals, mutable and not, imported; exported globals read and set.
pub fn globals_imported_and_exported<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, SHARED_ITEMS);
    let mut store = Store::new(&engine, ());
    let (linker, shared) = shared_items(&mut store);
    let inst = linker.instantiate(&mut store, &module).unwrap();
    assert_eq!(
        i32_of(call(&mut store, &inst, "read_base", &[]).unwrap()),
        100
    );
    assert_eq!(i32_of(call(&mut store, &inst, "bump", &[]).unwrap()), 1);
    assert_eq!(shared.counter.get(&mut store).unwrap().as_i32(), Some(1));
    shared.counter.set(&mut store, Val::I32(10)).unwrap();
    assert_eq!(i32_of(call(&mut store, &inst, "bump", &[]).unwrap()), 11);
    assert!(matches!(
        shared.base.set(&mut store, Val::I32(1)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        shared.counter.set(&mut store, Val::I64(1)),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(
        shared.base.ty(&store).unwrap(),
        GlobalType::new(ValType::I32, Mutability::Const)
    );

    let g = inst.get_global(&mut store, "g").unwrap();
    assert_eq!(
        g.ty(&store).unwrap(),
        GlobalType::new(ValType::I64, Mutability::Var)
    );
    assert_eq!(g.get(&mut store).unwrap().as_i64(), Some(5));
    g.set(&mut store, Val::I64(-9)).unwrap();
    assert_eq!(i64_of(call(&mut store, &inst, "get_g", &[]).unwrap()), -9);
    let k = inst.get_global(&mut store, "k").unwrap();
    assert_eq!(k.get(&mut store).unwrap().as_f32(), Some(1.5));
    assert!(k.set(&mut store, Val::f32(2.0)).is_err());
    // A host global can be created with any value type.
    let f = Global::new(
        &mut store,
        GlobalType::new(ValType::F64, Mutability::Var),
        Val::f64(0.5),
    )
    .unwrap();
    f.set(&mut store, Val::f64(-1.0)).unwrap();
    assert_eq!(f.get(&mut store).unwrap().as_f64(), Some(-1.0));
    assert!(matches!(
        Global::new(
            &mut store,
            GlobalType::new(ValType::I32, Mutability::Var),
            Val::I64(0)
        ),
        Err(Error::TypeMismatch { .. })
    ));
}

/// A growable funcref table made by the host holds functions exported by
/// another instance; wasm calls through it; the host reads, sets and grows it.
pub fn host_table_with_other_instances_functions<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, SHARED_ITEMS);
    let mut store = Store::new(&engine, ());
    let (linker, shared) = shared_items(&mut store);
    let provider = Linker::new()
        .instantiate(&mut store, &super::module(&engine, PROVIDER))
        .unwrap();
    let seven = provider.get_func(&mut store, "seven").unwrap();
    let eleven = provider.get_func(&mut store, "eleven").unwrap();
    let one_arg = provider.get_func(&mut store, "one_arg").unwrap();
    let table = &shared.table;
    table.set(&mut store, 0, Val::FuncRef(Some(seven))).unwrap();
    table
        .set(&mut store, 1, Val::FuncRef(Some(eleven)))
        .unwrap();
    let inst = linker.instantiate(&mut store, &module).unwrap();
    assert_eq!(
        i32_of(call(&mut store, &inst, "call_slot", &[Val::I32(0)]).unwrap()),
        7
    );
    assert_eq!(
        i32_of(call(&mut store, &inst, "call_slot", &[Val::I32(1)]).unwrap()),
        11
    );
    assert_eq!(table.size(&store).unwrap(), 2);
    assert_eq!(table.grow(&mut store, 2, Val::FuncRef(None)).unwrap(), 2);
    assert_eq!(table.size(&store).unwrap(), 4);
    assert_trap(
        B::NAME,
        call(&mut store, &inst, "call_slot", &[Val::I32(3)]),
        TrapCode::NullReference,
    );
    assert_trap(
        B::NAME,
        call(&mut store, &inst, "call_slot", &[Val::I32(4)]),
        TrapCode::TableOutOfBounds,
    );
    table
        .set(&mut store, 3, Val::FuncRef(Some(one_arg)))
        .unwrap();
    assert_trap(
        B::NAME,
        call(&mut store, &inst, "call_slot", &[Val::I32(3)]),
        TrapCode::IndirectCallTypeMismatch,
    );
    // The element read back is a function the host can call.
    let got = table.get(&mut store, 1).unwrap().unwrap();
    let f = got.as_funcref().flatten().cloned().unwrap();
    assert_eq!(i32_of(f.invoke(&mut store, &[]).unwrap()), 11);
    assert!(table.get(&mut store, 2).unwrap().unwrap().is_null());
    assert!(table.get(&mut store, 4).unwrap().is_none());
    assert!(table.set(&mut store, 4, Val::FuncRef(None)).is_err());
    assert!(matches!(
        table.set(&mut store, 0, Val::I32(0)),
        Err(Error::TypeMismatch { .. })
    ));
}

/// Whether the backend has `externref`s; where it has none, making one is
/// `Unsupported`.
fn has_externrefs<B: Backend>(engine: &anywasm_core::Engine<B>) -> bool {
    if B::capabilities().extern_ref {
        return true;
    }
    let mut store = Store::new(engine, ());
    assert!(
        ExternRef::new(&mut store, 1u32)
            .unwrap_err()
            .is_unsupported()
    );
    false
}

/// Host values travel through wasm as `externref` and come back intact.
pub fn externref_round_trip<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    if !has_externrefs(&engine) {
        return;
    }
    let (mut store, inst) = instantiate(&engine, EXTERNREF, ());
    let r = ExternRef::new(&mut store, String::from("kept by the guest")).unwrap();
    call(&mut store, &inst, "keep", &[Val::ExternRef(Some(r))]).unwrap();
    let back = call(&mut store, &inst, "give", &[]).unwrap();
    let back = back[0]
        .as_externref()
        .flatten()
        .cloned()
        .expect("a non-null externref");
    assert_eq!(
        back.downcast::<String, _>(&store)
            .unwrap()
            .map(String::as_str),
        Some("kept by the guest")
    );
    assert!(back.downcast::<u32, _>(&store).unwrap().is_none());
    assert_eq!(
        i32_of(call(&mut store, &inst, "is_null", &[Val::ExternRef(None)]).unwrap()),
        1
    );
    let table = inst.get_table(&mut store, "refs").unwrap();
    assert!(table.get(&mut store, 1).unwrap().unwrap().is_null());
}

/// Host functions, with a run-time signature (`Func::new`) or a typed one,
/// are funcrefs like any other: in a host table wasm calls through, in a
/// global, as an argument, and read back. (wasmer cannot take a `Func::new`
/// function as a funcref; its backend gives it a wasm thunk.)
pub fn host_functions_as_funcrefs<B: Backend>()
where
    anywasm_core::SigOf<i32, i32>: anywasm_core::HostSig<B, Params = (i32,), Results = (i32,)>,
{
    let engine = engine::<B>(&Config::new());
    let mut store = Store::new(&engine, ());
    let ty = FuncType::new([ValType::I32], [ValType::I32]);
    let dynamic = Func::new(&mut store, ty.clone(), |_, p, r| {
        r[0] = Val::I32(p[0].as_i32().unwrap_or(0) + 100);
        Ok(())
    });
    let table = Table::new(
        &mut store,
        TableType::new(ValType::FuncRef, 1, None),
        Val::FuncRef(None),
    )
    .unwrap();
    table
        .set(&mut store, 0, Val::FuncRef(Some(dynamic.clone())))
        .unwrap();
    table
        .grow(&mut store, 1, Val::FuncRef(Some(dynamic.clone())))
        .unwrap();
    let global = Global::new(
        &mut store,
        GlobalType::new(ValType::FuncRef, Mutability::Var),
        Val::FuncRef(None),
    )
    .unwrap();
    global
        .set(&mut store, Val::FuncRef(Some(dynamic.clone())))
        .unwrap();
    let m = module(
        &engine,
        r#"(module
            (type $t (func (param i32) (result i32)))
            (import "host" "table" (table 1 funcref))
            (func (export "call_slot") (param i32 i32) (result i32)
              (call_indirect (type $t) (local.get 1) (local.get 0)))
            (func (export "call_ref") (param funcref i32) (result i32)
              (table.set 0 (i32.const 0) (local.get 0))
              (call_indirect (type $t) (local.get 1) (i32.const 0))))"#,
    );
    let mut linker = Linker::new();
    linker.define("host", "table", table.clone()).unwrap();
    let inst = linker.instantiate(&mut store, &m).unwrap();
    for slot in [0, 1] {
        assert_eq!(
            i32_of(
                call(
                    &mut store,
                    &inst,
                    "call_slot",
                    &[Val::I32(slot), Val::I32(1)]
                )
                .unwrap()
            ),
            101
        );
    }
    let Val::FuncRef(Some(from_global)) = global.get(&mut store).unwrap() else {
        panic!("{}: null global", B::NAME)
    };
    assert_eq!(
        i32_of(from_global.invoke(&mut store, &[Val::I32(2)]).unwrap()),
        102
    );
    let typed = Func::wrap(&mut store, |x: i32| x * 2);
    for (f, expected) in [(dynamic.clone(), 103), (typed, 6)] {
        let r = call(
            &mut store,
            &inst,
            "call_ref",
            &[Val::FuncRef(Some(f)), Val::I32(3)],
        )
        .unwrap();
        assert_eq!(i32_of(r), expected, "{}", B::NAME);
    }
    let read = table.get(&mut store, 1).unwrap().unwrap();
    let f = read.as_funcref().flatten().cloned().unwrap();
    assert_eq!(i32_of(f.invoke(&mut store, &[Val::I32(5)]).unwrap()), 105);

    // The same host function re-exported by an instance: the backend sees
    // an instance export, not its own host function. wasmer cannot store
    // it (its "dynamic function" panic) and the layer says so; the others
    // store it.
    let reexport = module(
        &engine,
        r#"(module (import "host" "f" (func $f (param i32) (result i32))) (export "f" (func $f)))"#,
    );
    let mut linker = Linker::new();
    linker.define("host", "f", dynamic).unwrap();
    let again = linker
        .instantiate(&mut store, &reexport)
        .unwrap()
        .get_func(&mut store, "f")
        .unwrap();
    match table.set(&mut store, 0, Val::FuncRef(Some(again))) {
        Ok(()) if B::NAME != "wasmer" => {
            let r = call(&mut store, &inst, "call_slot", &[Val::I32(0), Val::I32(7)]).unwrap();
            assert_eq!(i32_of(r), 107, "{}", B::NAME);
        }
        Err(e) if B::NAME == "wasmer" && e.is_unsupported() => {}
        other => panic!(
            "{}: re-exported host function in a table: {other:?}",
            B::NAME
        ),
    }
    // Either way the table and store go on working.
    let r = call(&mut store, &inst, "call_slot", &[Val::I32(1), Val::I32(8)]).unwrap();
    assert_eq!(i32_of(r), 108, "{}", B::NAME);
}

const TYPED_REFS: &str = r#"
(module
  (import "host" "pick" (func $pick (param externref externref i32) (result externref)))
  (import "host" "same" (func $same (param funcref) (result funcref)))
  (import "host" "foreign" (func $foreign (result funcref)))
  (import "host" "made" (func $made (result funcref)))
  (type $ii (func (param i32) (result i32)))
  (table 1 funcref)
  (elem declare func $double)
  (func $double (export "double") (param i32) (result i32)
    local.get 0
    i32.const 2
    i32.mul)
  (func (export "id") (param externref) (result externref)
    local.get 0)
  (func (export "choose") (param externref externref i32) (result externref)
    local.get 0
    local.get 1
    local.get 2
    call $pick)
  (func (export "double_ref") (result funcref)
    ref.func $double)
  (func (export "apply") (param funcref i32) (result i32)
    i32.const 0
    local.get 0
    table.set
    local.get 1
    i32.const 0
    call_indirect (type $ii))
  (func (export "through_host") (param funcref i32) (result i32)
    i32.const 0
    local.get 0
    call $same
    table.set
    local.get 1
    i32.const 0
    call_indirect (type $ii))
  (func (export "call_foreign") (result funcref)
    call $foreign)
  (func (export "call_made") (param i32) (result i32)
    i32.const 0
    call $made
    table.set
    local.get 0
    i32.const 0
    call_indirect (type $ii)))
"#;

/// `funcref` and `externref` (as `Option<Func<B>>` and
/// `Option<ExternRef<B>>`) through typed calls and typed host functions:
/// null and non-null, wasm and host functions, in both directions; a
/// reference of another store, passed in or returned by a host function,
/// is `StoreMismatch`, and the store goes on.
pub fn typed_references<B: Backend>()
where
    SigOf<Option<ExternRef<B>>, Option<ExternRef<B>>>:
        TypedSig<B, Params = (Option<ExternRef<B>>,), Results = (Option<ExternRef<B>>,)>,
    SigOf<(Option<ExternRef<B>>, Option<ExternRef<B>>, i32), Option<ExternRef<B>>>: TypedSig<
            B,
            Params = (Option<ExternRef<B>>, Option<ExternRef<B>>, i32),
            Results = (Option<ExternRef<B>>,),
        > + HostSig<
            B,
            Params = (Option<ExternRef<B>>, Option<ExternRef<B>>, i32),
            Results = (Option<ExternRef<B>>,),
        >,
    SigOf<Option<Func<B>>, Option<Func<B>>>:
        HostSig<B, Params = (Option<Func<B>>,), Results = (Option<Func<B>>,)>,
    SigOf<(), Option<Func<B>>>: TypedSig<B, Params = (), Results = (Option<Func<B>>,)>
        + HostSig<B, Params = (), Results = (Option<Func<B>>,)>,
    SigOf<(Option<Func<B>>, i32), i32>:
        TypedSig<B, Params = (Option<Func<B>>, i32), Results = (i32,)>,
    SigOf<i32, i32>: TypedSig<B, Params = (i32,), Results = (i32,)>
        + HostSig<B, Params = (i32,), Results = (i32,)>,
    SigOf<Option<Func<B>>, Option<ExternRef<B>>>:
        TypedSig<B, Params = (Option<Func<B>>,), Results = (Option<ExternRef<B>>,)>,
{
    let engine = engine::<B>(&Config::new());
    if !has_externrefs(&engine) {
        return;
    }
    // A function of another store, which a host function hands out.
    let mut other = Store::new(&engine, ());
    let alien = Func::wrap(&mut other, |x: i32| x);
    let alien_ref = ExternRef::new(&mut other, 7u32).unwrap();

    let module = module(&engine, TYPED_REFS);
    let mut linker = Linker::<B, ()>::new();
    linker
        .func_wrap(
            "host",
            "pick",
            |a: Option<ExternRef<B>>, b: Option<ExternRef<B>>, which: i32| {
                if which == 0 { a } else { b }
            },
        )
        .unwrap();
    linker
        .func_wrap("host", "same", |f: Option<Func<B>>| f)
        .unwrap();
    linker
        .func_wrap("host", "foreign", move || Some(alien.clone()))
        .unwrap();
    let mut store = Store::new(&engine, ());
    // A typed host function returning a host function with a run-time
    // signature (wasmer hands wasm its thunk).
    let ty = FuncType::new([ValType::I32], [ValType::I32]);
    let triple = Func::new(&mut store, ty, |_, p, r| {
        r[0] = Val::I32(3 * p[0].as_i32().unwrap_or_default());
        Ok(())
    });
    linker
        .func_wrap("host", "made", move || Some(triple.clone()))
        .unwrap();
    let inst = linker.instantiate(&mut store, &module).unwrap();
    assert_eq!(
        i32_of(call(&mut store, &inst, "call_made", &[Val::I32(7)]).unwrap()),
        21
    );

    // externref in and out, through wasm and through a host function.
    let id = inst
        .get_typed_func::<Option<ExternRef<B>>, Option<ExternRef<B>>>(&mut store, "id")
        .unwrap();
    let seven = ExternRef::new(&mut store, 7u32).unwrap();
    let back = id.call(&mut store, Some(seven)).unwrap().expect("non-null");
    assert_eq!(back.downcast::<u32, _>(&store).unwrap(), Some(&7));
    assert!(id.call(&mut store, None).unwrap().is_none());
    let choose = inst
        .get_typed_func::<(Option<ExternRef<B>>, Option<ExternRef<B>>, i32), Option<ExternRef<B>>>(
            &mut store, "choose",
        )
        .unwrap();
    let (a, b) = (
        ExternRef::new(&mut store, "a").unwrap(),
        ExternRef::new(&mut store, "b").unwrap(),
    );
    for (which, want) in [(0, "a"), (1, "b")] {
        let got = choose
            .call(&mut store, (Some(a.clone()), Some(b.clone()), which))
            .unwrap()
            .expect("non-null");
        assert_eq!(got.downcast::<&str, _>(&store).unwrap(), Some(&want));
    }
    assert!(
        choose
            .call(&mut store, (None, Some(b), 0))
            .unwrap()
            .is_none()
    );

    // funcref out of wasm, called from the host.
    let double_ref = inst
        .get_typed_func::<(), Option<Func<B>>>(&mut store, "double_ref")
        .unwrap();
    let double = double_ref.call(&mut store, ()).unwrap().expect("non-null");
    let typed = double.typed::<i32, i32>(&store).unwrap();
    assert_eq!(typed.call(&mut store, 21).unwrap(), 42);

    // funcref into wasm: a wasm function, a typed host function, through a
    // host function and back, and null.
    let apply = inst
        .get_typed_func::<(Option<Func<B>>, i32), i32>(&mut store, "apply")
        .unwrap();
    assert_eq!(
        apply.call(&mut store, (Some(double.clone()), 5)).unwrap(),
        10
    );
    let inc = Func::wrap(&mut store, |x: i32| x + 1);
    assert_eq!(apply.call(&mut store, (Some(inc.clone()), 5)).unwrap(), 6);
    assert_trap(
        B::NAME,
        apply.call(&mut store, (None, 5)),
        TrapCode::NullReference,
    );
    let through_host = inst
        .get_typed_func::<(Option<Func<B>>, i32), i32>(&mut store, "through_host")
        .unwrap();
    assert_eq!(through_host.call(&mut store, (Some(inc), 41)).unwrap(), 42);
    let ty = FuncType::new([ValType::I32], [ValType::I32]);
    let negate = Func::new(&mut store, ty, |_, p, r| {
        r[0] = Val::I32(-p[0].as_i32().unwrap_or_default());
        Ok(())
    });
    assert_eq!(
        apply.call(&mut store, (Some(negate.clone()), 5)).unwrap(),
        -5
    );
    assert_eq!(
        through_host.call(&mut store, (Some(negate), 6)).unwrap(),
        -6
    );

    // References of another store: refused before the engine sees them.
    assert!(matches!(
        id.call(&mut store, Some(alien_ref)),
        Err(Error::StoreMismatch { .. })
    ));
    let call_foreign = inst
        .get_typed_func::<(), Option<Func<B>>>(&mut store, "call_foreign")
        .unwrap();
    assert!(
        matches!(
            call_foreign.call(&mut store, ()),
            Err(Error::StoreMismatch { .. })
        ),
        "{}",
        B::NAME
    );
    assert_eq!(apply.call(&mut store, (Some(double), 4)).unwrap(), 8);

    // A reference type is a type like any other.
    assert!(matches!(
        inst.get_typed_func::<Option<Func<B>>, Option<ExternRef<B>>>(&mut store, "id"),
        Err(Error::TypeMismatch { .. })
    ));
}

const TYPED_INSIDE: &str = r#"
(module
  (type $ii (func (param i32) (result i32)))
  (type $point (struct (field $x (mut i32)) (field $y i32)))
  (type $takes_ref (func (param (ref $ii)) (result i32)))
  (tag $boxed (param (ref null $point)))
  (table (export "table") 2 funcref)
  (elem (i32.const 0) func $double $apply)
  (func $double (type $ii)
    local.get 0
    i32.const 2
    i32.mul)
  (func $apply (type $takes_ref)
    i32.const 21
    local.get 0
    call_ref $ii)
  (func (export "run") (param i32) (result i32)
    (call_ref $ii (local.get 0) (ref.func $double))
    (struct.get $point $y (struct.new $point (i32.const 1) (i32.const 100)))
    i32.add)
  (func (export "throw_boxed")
    (throw $boxed (struct.new $point (i32.const 1) (i32.const 2)))))
"#;

/// Typed function references and GC objects inside a module run where the
/// backend claims both proposals; what the layer's types cannot carry is
/// refused by name, never misreported: an import or export of a typed
/// reference type when the module is compiled, a function with one in its
/// signature when the host asks for its type or calls it, and an escaping
/// exception that carries one is not described. Elsewhere the engine
/// refuses the proposals and such a module does not compile.
pub fn typed_references_inside_modules<B: Backend>()
where
    SigOf<i32, i32>: TypedSig<B, Params = (i32,), Results = (i32,)>,
{
    let caps = B::capabilities().features;
    let mut features = Features::wasm2();
    features.function_references = true;
    features.gc = true;
    features.exceptions = true;
    if !(caps.function_references && caps.gc && caps.exceptions) {
        let engine = engine::<B>(&Config::new());
        assert!(
            matches!(
                Module::from_wat(&engine, TYPED_INSIDE),
                Err(Error::Compile { .. })
            ),
            "{}",
            B::NAME
        );
        let e = Engine::<B>::new(Config::new().features(features)).unwrap_err();
        assert!(e.is_unsupported(), "{}: {e}", B::NAME);
        return;
    }
    let engine = engine::<B>(Config::new().features(features));
    let (mut store, inst) = instantiate(&engine, TYPED_INSIDE, ());
    assert_eq!(
        i32_of(call(&mut store, &inst, "run", &[Val::I32(5)]).unwrap()),
        110
    );

    let table = inst.get_table(&mut store, "table").unwrap();
    let double = table.get(&mut store, 0).unwrap().unwrap();
    let double = double.as_funcref().flatten().unwrap().clone();
    assert_eq!(
        double.ty(&store).unwrap().to_string(),
        "(func (param i32) (result i32))"
    );
    assert_eq!(
        i32_of(double.invoke(&mut store, &[Val::I32(21)]).unwrap()),
        42
    );
    let apply = table.get(&mut store, 1).unwrap().unwrap();
    let apply = apply.as_funcref().flatten().unwrap().clone();
    let unsupported = |r: Result<(), Error>| match r {
        Err(e) if e.is_unsupported() => assert!(e.to_string().contains("(ref"), "{e}"),
        other => panic!("{}: expected Unsupported, got {other:?}", B::NAME),
    };
    unsupported(apply.ty(&store).map(drop));
    unsupported(apply.invoke(&mut store, &[]).map(drop));
    unsupported(apply.typed::<i32, i32>(&store).map(drop));

    assert_trap(
        B::NAME,
        call(&mut store, &inst, "throw_boxed", &[]),
        TrapCode::UncaughtException,
    );
    assert!(store.take_exception().is_none());
    assert_eq!(
        i32_of(call(&mut store, &inst, "run", &[Val::I32(1)]).unwrap()),
        102
    );

    let exported = "(module (type $ii (func)) (func (export \"f\") (param (ref $ii))))";
    match Module::from_wat(&engine, exported) {
        Err(e) if e.is_unsupported() => assert!(e.to_string().contains("(ref"), "{e}"),
        other => panic!("{}: expected Unsupported, got {other:?}", B::NAME),
    }
}
