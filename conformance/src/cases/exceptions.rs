//! Exception handling through the layer: tags as externs, exceptions
//! thrown and caught across instances, and exceptions that reach the host.

use anywasm_core::{
    Backend, Caller, Config, Engine, Error, Exception, ExnRef, Extern, ExternType, Features, Func,
    FuncType, Global, GlobalType, HostSig, Linker, Module, Mutability, SigOf, Store, Table,
    TableType, Tag, TrapCode, Val, ValType,
};

use super::{assert_trap, call, engine, i32_of, module};

const THROWER: &str = r#"(module
  (import "env" "oops" (tag $oops (param i32)))
  (tag $own (export "own") (param i64 f32))
  (func (export "throw") (param i32) (throw $oops (local.get 0)))
  (func (export "throw_own") (throw $own (i64.const 1) (f32.const 2)))
  (func (export "throw_null") (throw_ref (ref.null exn)))
  ;; Thrown and caught inside one function: the payload plus one.
  (func (export "inside") (param i32) (result i32)
    (i32.add
      (block $caught (result i32)
        (try_table (catch $oops $caught) (throw $oops (local.get 0)))
        (i32.const -1))
      (i32.const 1))))"#;

const CATCHER: &str = r#"(module
  (import "env" "oops" (tag $oops (param i32)))
  (import "thrower" "throw" (func $throw (param i32)))
  ;; The payload of an `oops` thrown by the other instance, or -1.
  (func (export "catch") (param i32) (result i32)
    (block $caught (result i32)
      (try_table (catch $oops $caught) (call $throw (local.get 0)))
      (i32.const -1))))"#;

/// A store's engine with exceptions on.
fn exceptions_config() -> Config {
    let mut f = Features::default();
    f.exceptions = true;
    let mut config = Config::new();
    config.features(f);
    config
}

/// Tags created by the host are shared by the instances that import them:
/// one throws, another catches by the same tag (and not by another tag of
/// the same type); an exception nobody catches ends the call with
/// [`TrapCode::UncaughtException`], the store stays usable and
/// `Store::take_exception` gives its tag and payload; `throw_ref` of null
/// is [`TrapCode::NullReference`]; exported
/// tags are `Extern::Tag`s with their type; a tag of the wrong type does
/// not link. Where the backend claims no exceptions, an engine asking for
/// them and `Tag::new` are `Unsupported`.
pub fn exception_tags<B: Backend>()
where
    SigOf<i32, ()>: HostSig<B, Params = (i32,), Results = ()>,
{
    let config = exceptions_config();
    let oops_ty = FuncType::new([ValType::I32], []);
    if !B::capabilities().features.exceptions {
        assert!(
            Engine::<B>::new(&config).unwrap_err().is_unsupported(),
            "{}",
            B::NAME
        );
        let engine = engine::<B>(&Config::new());
        let mut store = Store::new(&engine, ());
        assert!(Tag::new(&mut store, &oops_ty).unwrap_err().is_unsupported());
        assert!(store.take_exception().is_none());
        return;
    }
    let engine = engine::<B>(&config);
    let (thrower_m, catcher_m) = (module(&engine, THROWER), module(&engine, CATCHER));
    let mut store = Store::new(&engine, ());
    let oops = Tag::new(&mut store, &oops_ty).unwrap();
    assert_eq!(oops.ty(&store).unwrap(), oops_ty);
    let mut linker = Linker::<B, ()>::new();
    linker.define("env", "oops", oops.clone()).unwrap();
    let thrower = linker.instantiate(&mut store, &thrower_m).unwrap();
    linker
        .define_instance(&mut store, "thrower", &thrower)
        .unwrap();
    let catcher = linker.instantiate(&mut store, &catcher_m).unwrap();

    let caught = call(&mut store, &catcher, "catch", &[Val::I32(41)]).unwrap();
    assert_eq!(i32_of(caught), 41, "{}: caught across instances", B::NAME);
    let inside = call(&mut store, &thrower, "inside", &[Val::I32(1)]).unwrap();
    assert_eq!(i32_of(inside), 2, "{}", B::NAME);
    assert!(store.take_exception().is_none(), "{}: caught", B::NAME);
    // Nobody catches: the call ends, the store goes on, and the host gets
    // the exception's tag and payload.
    assert_trap(
        B::NAME,
        call(&mut store, &thrower, "throw", &[Val::I32(5)]),
        TrapCode::UncaughtException,
    );
    let e = store.take_exception().expect("the uncaught exception");
    assert_eq!(e.tag().ty(&store).unwrap(), oops_ty, "{}", B::NAME);
    assert!(
        matches!(e.payload(), [Val::I32(5)]),
        "{}: {:?}",
        B::NAME,
        e.payload()
    );
    assert!(store.take_exception().is_none(), "{}: taken once", B::NAME);
    // Rethrowing a null exception reference is a trap, not an exception.
    assert_trap(
        B::NAME,
        call(&mut store, &thrower, "throw_null", &[]),
        TrapCode::NullReference,
    );
    assert!(store.take_exception().is_none(), "{}", B::NAME);
    assert_trap(
        B::NAME,
        call(&mut store, &thrower, "throw_own", &[]),
        TrapCode::UncaughtException,
    );
    // wasmer cannot read more than one value of an exception from the host
    // (see `Store::take_exception`): nothing rather than a wrong payload.
    match store.take_exception() {
        None if B::NAME == "wasmer" => {}
        e => {
            let e = e.expect("the uncaught exception");
            assert_eq!(
                e.tag().ty(&store).unwrap(),
                FuncType::new([ValType::I64, ValType::F32], [])
            );
            assert!(
                matches!(e.payload(), [Val::I64(1), f] if f.as_f32() == Some(2.0)),
                "{}: {:?}",
                B::NAME,
                e.payload()
            );
        }
    }
    let again = call(&mut store, &catcher, "catch", &[Val::I32(7)]).unwrap();
    assert_eq!(i32_of(again), 7, "{}", B::NAME);

    // Another tag of the same type is another tag: not caught.
    let other = Tag::new(&mut store, &oops_ty).unwrap();
    let mut linker2 = Linker::<B, ()>::new();
    linker2.define("env", "oops", other).unwrap();
    linker2
        .define_instance(&mut store, "thrower", &thrower)
        .unwrap();
    let stranger = linker2.instantiate(&mut store, &catcher_m).unwrap();
    assert_trap(
        B::NAME,
        call(&mut store, &stranger, "catch", &[Val::I32(3)]),
        TrapCode::UncaughtException,
    );

    // Exported tags.
    let own = thrower.get_tag(&mut store, "own").unwrap();
    let own_ty = FuncType::new([ValType::I64, ValType::F32], []);
    assert_eq!(own.ty(&store).unwrap(), own_ty);
    match thrower.get_export(&mut store, "own").unwrap() {
        Some(e @ Extern::Tag(_)) => assert_eq!(e.ty(&store).unwrap(), ExternType::Tag(own_ty)),
        other => panic!("{}: expected a tag, got {other:?}", B::NAME),
    }
    assert!(matches!(
        thrower.get_func(&mut store, "own"),
        Err(Error::TypeMismatch { .. })
    ));

    // Host functions throw: wasm catches by the tag; uncaught, the host
    // gets the exception; values of the wrong type are the host function's
    // error and nothing is thrown.
    let raiser = module(
        &engine,
        r#"(module
        (import "env" "oops" (tag $oops (param i32)))
        (import "host" "raise" (func $raise (param i32)))
        (import "host" "raise_typed" (func $raise_typed (param i32)))
        (func (export "catch_host") (param i32) (result i32)
          (block $c (result i32)
            (try_table (catch $oops $c) (call $raise (local.get 0)))
            (i32.const -1)))
        (func (export "catch_typed") (param i32) (result i32)
          (block $c (result i32)
            (try_table (catch $oops $c) (call $raise_typed (local.get 0)))
            (i32.const -1)))
        (func (export "let_through") (param i32) (call $raise_typed (local.get 0))))"#,
    );
    let mut host = Linker::<B, ()>::new();
    host.define("env", "oops", oops.clone()).unwrap();
    let tag = oops.clone();
    host.func_new(
        "host",
        "raise",
        FuncType::new([ValType::I32], []),
        move |mut caller, p, _| {
            let v = p[0].as_i32().unwrap_or(0);
            let payload = if v < 0 {
                vec![Val::I64(1)]
            } else {
                vec![Val::I32(v * 2)]
            };
            Err(caller.throw(Exception::new(tag.clone(), payload)))
        },
    )
    .unwrap();
    let tag = oops.clone();
    host.func_wrap(
        "host",
        "raise_typed",
        move |mut caller: Caller<'_, B, ()>, v: i32| -> Result<(), Error> {
            Err(caller.throw(Exception::new(tag.clone(), vec![Val::I32(v + 1)])))
        },
    )
    .unwrap();
    let raised = host.instantiate(&mut store, &raiser).unwrap();
    let caught = call(&mut store, &raised, "catch_typed", &[Val::I32(41)]).unwrap();
    assert_eq!(
        i32_of(caught),
        42,
        "{}: thrown by a typed host function",
        B::NAME
    );
    assert_trap(
        B::NAME,
        call(&mut store, &raised, "let_through", &[Val::I32(5)]),
        TrapCode::UncaughtException,
    );
    let e = store.take_exception().expect("the host's exception");
    assert!(matches!(e.payload(), [Val::I32(6)]), "{}", B::NAME);
    // From a host function with a run-time signature: caught on wasmtime;
    // refused on wasmer, where wasm could not catch it (see its backend).
    let dynamic = call(&mut store, &raised, "catch_host", &[Val::I32(21)]);
    if B::NAME == "wasmer" {
        assert!(
            matches!(&dynamic, Err(e) if e.is_unsupported()),
            "{}: {dynamic:?}",
            B::NAME
        );
    } else {
        assert_eq!(
            i32_of(dynamic.unwrap()),
            42,
            "{}: thrown by the host",
            B::NAME
        );
    }
    assert!(
        matches!(
            call(&mut store, &raised, "catch_host", &[Val::I32(-1)]),
            Err(Error::TypeMismatch { .. })
        ),
        "{}",
        B::NAME
    );

    // A tag of the wrong type does not link; a tag type with results is
    // not a tag type; a tag of another store is refused.
    let wrong = Tag::new(&mut store, &FuncType::new([ValType::I64], [])).unwrap();
    let mut linker3 = Linker::<B, ()>::new();
    linker3.define("env", "oops", wrong).unwrap();
    assert!(matches!(
        linker3.instantiate(&mut store, &thrower_m),
        Err(Error::Link { .. })
    ));
    assert!(matches!(
        Tag::new(&mut store, &FuncType::new([], [ValType::I32])),
        Err(Error::InvalidArgument(_))
    ));
    let mut elsewhere = Store::new(&engine, ());
    assert!(matches!(
        oops.ty(&elsewhere),
        Err(Error::StoreMismatch { .. })
    ));
    let mut linker4 = Linker::<B, ()>::new();
    linker4.define("env", "oops", oops).unwrap();
    assert!(matches!(
        linker4.instantiate(&mut elsewhere, &thrower_m),
        Err(Error::StoreMismatch { .. })
    ));
}

/// The pre-standard exception encoding (`try`/`catch`, which toolchains
/// emitted before `try_table`): no backend claims it, asking for it is
/// `Unsupported` by name, and such a module does not compile, also with
/// (standard) exceptions on.
pub fn legacy_exception_encoding<B: Backend>() {
    let legacy = wat::parse_str(
        r#"(module
          (tag $e (param i32))
          (func (export "f") (result i32)
            try (result i32)
              i32.const 1
              throw $e
            catch $e
            end))"#,
    )
    .unwrap();
    let caps = B::capabilities().features;
    assert!(!caps.legacy_exceptions, "{}", B::NAME);
    let mut features = Features::wasm2();
    features.exceptions = caps.exceptions;
    let engine = engine::<B>(Config::new().features(features));
    match Module::new(&engine, &legacy) {
        Err(Error::Compile { .. }) => {}
        other => panic!("{}: expected a compile error, got {other:?}", B::NAME),
    }
    features.legacy_exceptions = true;
    // The module is valid in that encoding: what fails is the encoding.
    let mut legacy_on = features;
    legacy_on.exceptions = true;
    wasmparser::Validator::new_with_features(legacy_on.to_wasmparser())
        .validate_all(&legacy)
        .unwrap();
    let e = Engine::<B>::new(Config::new().features(features)).unwrap_err();
    assert!(
        e.is_unsupported() && e.to_string().contains("legacy-exceptions"),
        "{}: {e}",
        B::NAME
    );
}

const EXNREFS: &str = r#"(module
  (tag $e (export "e") (param i32))
  (tag $two (export "two") (param i64 f32))
  (global (export "g") (mut exnref) (ref.null exn))
  ;; The exception object of a thrown `e`, caught with `catch_ref`.
  (func (export "catch_ref") (param i32) (result exnref)
    (local $x exnref)
    (block $h (result i32 exnref)
      (try_table (catch_ref $e $h) (throw $e (local.get 0)))
      unreachable)
    local.set $x
    drop
    local.get $x)
  (func (export "rethrow") (param exnref) (throw_ref (local.get 0)))
  ;; Rethrows and catches it again: the value of an `e`.
  (func (export "value") (param exnref) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (throw_ref (local.get 0)))
      unreachable))
  (func (export "is_null") (param exnref) (result i32)
    (ref.is_null (local.get 0))))"#;

/// `exnref` values between wasm and the host: an exception object caught
/// with `catch_ref` reaches the host, which reads its tag and values and
/// passes it back to be rethrown; the host makes exception objects of its
/// own; null, globals, wrong values and other stores behave. On backends
/// without exceptions, an exnref in a host-made global, table or function
/// type is `Unsupported`.
pub fn exnref_values<B: Backend>() {
    if !B::capabilities().features.exceptions {
        let engine = engine::<B>(&Config::new());
        let mut store = Store::new(&engine, ());
        let ty = GlobalType::new(ValType::ExnRef, Mutability::Var);
        let e = Global::new(&mut store, ty, Val::ExnRef(None)).unwrap_err();
        assert!(e.is_unsupported(), "{}: {e}", B::NAME);
        let ty = TableType::new(ValType::ExnRef, 1, None);
        let e = Table::new(&mut store, ty, Val::ExnRef(None)).unwrap_err();
        assert!(e.is_unsupported(), "{}: {e}", B::NAME);
        let ty = FuncType::new([ValType::ExnRef], [ValType::I32]);
        let f = Func::new(&mut store, ty.clone(), |_, _, r| {
            r[0] = Val::I32(1);
            Ok(())
        });
        assert_eq!(f.ty(&store).unwrap(), ty);
        let e = f.invoke(&mut store, &[Val::ExnRef(None)]).unwrap_err();
        assert!(e.is_unsupported(), "{}: {e}", B::NAME);
        return;
    }
    let engine = engine::<B>(&exceptions_config());
    let (mut store, inst) = super::instantiate(&engine, EXNREFS, ());
    let e = inst.get_tag(&mut store, "e").unwrap();
    let exn = |vals: Vec<Val<B>>| -> ExnRef<B> {
        match &vals[..] {
            [Val::ExnRef(Some(r))] => r.clone(),
            other => panic!("{}: expected an exnref, got {other:?}", B::NAME),
        }
    };

    // From wasm to the host and back.
    let r = exn(call(&mut store, &inst, "catch_ref", &[Val::I32(7)]).unwrap());
    let described = r.exception(&mut store).unwrap();
    assert_eq!(described.tag().ty(&store).unwrap(), e.ty(&store).unwrap());
    assert!(matches!(described.payload(), [Val::I32(7)]), "{}", B::NAME);
    let value = call(&mut store, &inst, "value", &[Val::ExnRef(Some(r.clone()))]).unwrap();
    assert_eq!(i32_of(value), 7, "{}", B::NAME);
    assert_trap(
        B::NAME,
        call(
            &mut store,
            &inst,
            "rethrow",
            &[Val::ExnRef(Some(r.clone()))],
        ),
        TrapCode::UncaughtException,
    );
    let escaped = store.take_exception().expect("the rethrown exception");
    assert!(matches!(escaped.payload(), [Val::I32(7)]), "{}", B::NAME);

    // Made by the host.
    let mine = ExnRef::new(&mut store, &Exception::new(e.clone(), vec![Val::I32(42)])).unwrap();
    let value = call(
        &mut store,
        &inst,
        "value",
        &[Val::ExnRef(Some(mine.clone()))],
    )
    .unwrap();
    assert_eq!(i32_of(value), 42, "{}", B::NAME);
    assert!(matches!(
        ExnRef::new(&mut store, &Exception::new(e.clone(), vec![Val::I64(1)])),
        Err(Error::TypeMismatch { .. })
    ));
    let two = inst.get_tag(&mut store, "two").unwrap();
    let pair = ExnRef::new(
        &mut store,
        &Exception::new(two, vec![Val::I64(1), Val::f32(2.0)]),
    )
    .unwrap();
    // wasmer reads only exceptions of at most one value from the host.
    match pair.exception(&mut store) {
        Err(e) if B::NAME == "wasmer" => assert!(e.is_unsupported(), "{e}"),
        got => assert!(
            matches!(got.as_ref().map(|x| x.payload()), Ok([Val::I64(1), f]) if f.as_f32() == Some(2.0)),
            "{}: {got:?}",
            B::NAME
        ),
    }

    // Null, and a global holding one.
    let null = call(&mut store, &inst, "is_null", &[Val::ExnRef(None)]).unwrap();
    assert_eq!(i32_of(null), 1);
    let g = inst.get_global(&mut store, "g").unwrap();
    assert!(g.get(&mut store).unwrap().is_null());
    g.set(&mut store, Val::ExnRef(Some(mine))).unwrap();
    let held = g.get(&mut store).unwrap();
    let not_null = call(&mut store, &inst, "is_null", &[held]).unwrap();
    assert_eq!(i32_of(not_null), 0);

    // A host-made table of them (wasmer 7.3 keeps none in tables).
    let ty = TableType::new(ValType::ExnRef, 2, None);
    match Table::new(&mut store, ty, Val::ExnRef(None)) {
        Err(e) if B::NAME == "wasmer" => assert!(e.is_unsupported(), "{e}"),
        table => {
            let table = table.unwrap();
            table
                .set(&mut store, 1, Val::ExnRef(Some(r.clone())))
                .unwrap();
            assert!(table.get(&mut store, 0).unwrap().unwrap().is_null());
            let back = table.get(&mut store, 1).unwrap().unwrap();
            let value = call(&mut store, &inst, "value", &[back]).unwrap();
            assert_eq!(i32_of(value), 7, "{}", B::NAME);
        }
    }

    // Another store's exception objects and tags are refused.
    let (mut other, other_inst) = super::instantiate(&engine, EXNREFS, ());
    let theirs = exn(call(&mut other, &other_inst, "catch_ref", &[Val::I32(1)]).unwrap());
    assert!(matches!(
        call(
            &mut store,
            &inst,
            "value",
            &[Val::ExnRef(Some(theirs.clone()))]
        ),
        Err(Error::StoreMismatch { .. })
    ));
    assert!(matches!(
        theirs.exception(&mut store),
        Err(Error::StoreMismatch { .. })
    ));
    let their_tag = other_inst.get_tag(&mut other, "e").unwrap();
    assert!(matches!(
        ExnRef::new(&mut store, &Exception::new(their_tag, vec![Val::I32(1)])),
        Err(Error::StoreMismatch { .. })
    ));
}
