//! Modules: validation, malformed input, linking, metadata, precompiled
//! code, start functions, statistics, threads, unsupported features.

use anywasm_core::{
    Backend, Caller, Config, ContentHash, Engine, Error, ExternType, Features, FuncType, HostSig,
    Instance, LinkErrorKind, Linker, Memory, MemoryType, Module, SigOf, Store, TrapCode, Val,
    ValType,
};

use super::{assert_trap, call, engine, i32_of, module};
use crate::fixtures::{ARITH, LOOPS, SHARED_ITEMS, START};

/// Compiled code survives a serialise / deserialise round trip; backends
/// without precompiled code say `Unsupported`.
pub fn precompiled_round_trip<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let original = module(&engine, ARITH);
    if !B::capabilities().precompiled_modules {
        assert!(
            original.serialize().unwrap_err().is_unsupported(),
            "{}",
            B::NAME
        );
        // SAFETY: the blob is rejected before any engine looks at it.
        let r = unsafe { Module::deserialize(&engine, b"ANYWASM\x01 anything") };
        assert!(r.unwrap_err().is_unsupported());
        return;
    }
    let blob = original.serialize().unwrap();
    // SAFETY: made just above by the same engine.
    let loaded = unsafe { Module::deserialize(&engine, &blob) }.unwrap();
    assert_eq!(loaded.hash(), original.hash());
    assert_eq!(loaded.exports(), original.exports());
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &loaded, &[]).unwrap();
    assert_eq!(
        i32_of(call(&mut store, &inst, "i32_add", &[Val::I32(2), Val::I32(40)]).unwrap()),
        42
    );
    // Start functions survive too (wasmer defers them through an export).
    let with_start = module(
        &engine,
        "(module (global (export \"g\") (mut i32) (i32.const 0)) (func $s i32.const 9 global.set 0) (start $s))",
    );
    let blob = with_start.serialize().unwrap();
    // SAFETY: made just above by the same engine.
    let loaded = unsafe { Module::deserialize(&engine, &blob) }.unwrap();
    let inst = Instance::new(&mut store, &loaded, &[]).unwrap();
    assert_eq!(
        inst.get_global(&mut store, "g")
            .unwrap()
            .get(&mut store)
            .unwrap()
            .as_i32(),
        Some(9)
    );
}

/// A blob that was altered, truncated, is not a blob, or was made with
/// another configuration is rejected with a clear error.
pub fn precompiled_blob_checks<B: Backend>() {
    if !B::capabilities().precompiled_modules {
        return;
    }
    let engine = engine::<B>(&Config::new());
    let blob = module(&engine, ARITH).serialize().unwrap();
    let mut altered = blob.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0xff;
    let truncated = &blob[..blob.len() / 2];
    for (what, bytes) in [
        ("altered", &altered[..]),
        ("truncated", truncated),
        ("wasm", &wat::parse_str(ARITH).unwrap()[..]),
        ("empty", &[][..]),
    ] {
        // SAFETY: each is rejected by the layer's checks before the engine.
        match unsafe { Module::deserialize(&engine, bytes) } {
            Err(Error::Precompiled(_)) => {}
            other => panic!(
                "{}: {what} blob: expected a precompiled error, got {other:?}",
                B::NAME
            ),
        }
    }
    let mut config = Config::new();
    config.consume_fuel(true);
    let other = super::engine::<B>(&config);
    // SAFETY: rejected by the configuration check.
    match unsafe { Module::deserialize(&other, &blob) } {
        Err(Error::Precompiled(msg)) => assert!(msg.contains("fuel=false"), "{msg}"),
        other => panic!(
            "{}: expected a configuration mismatch, got {other:?}",
            B::NAME
        ),
    }
}

/// The on-disk code cache: a second load comes from the cache and runs; an
/// altered, foreign or misplaced entry is deleted and the module compiled
/// again, never loaded; the size cap evicts the least recently used entry;
/// a directory others may write to is refused. Backends without precompiled
/// code compile every time and say so.
pub fn code_cache_on_disk<B: Backend>() {
    use anywasm_core::{CodeCache, CodeCacheOutcome as O};
    let dir = tempfile::tempdir().unwrap();
    let cache = CodeCache::open(dir.path().join("code")).unwrap();
    let engine = engine::<B>(&Config::new());
    let wasm = wat::parse_str(ARITH).unwrap();
    let add = |m: &Module<B>| {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, m, &[]).unwrap();
        i32_of(call(&mut store, &inst, "i32_add", &[Val::I32(40), Val::I32(2)]).unwrap())
    };
    let (m, first) = cache.module(&engine, &wasm).unwrap();
    assert_eq!(add(&m), 42);
    let (m, second) = cache.module(&engine, &wasm).unwrap();
    assert_eq!(add(&m), 42);
    if !B::capabilities().precompiled_modules {
        assert_eq!(
            (first, second),
            (O::Unsupported, O::Unsupported),
            "{}",
            B::NAME
        );
        assert_eq!(cache.usage().0, 0);
        return;
    }
    assert_eq!((first, second), (O::Stored, O::Loaded), "{}", B::NAME);
    let entry = || {
        let mut entries: Vec<_> = std::fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.pop().unwrap()
    };
    // An altered entry (a flipped byte in the code) is caught by its checksum.
    let path = entry();
    let mut blob = std::fs::read(&path).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    std::fs::write(&path, &blob).unwrap();
    match cache.module(&engine, &wasm).unwrap() {
        (m, O::Replaced(why)) => {
            assert!(why.contains("checksum"), "{why}");
            assert_eq!(add(&m), 42);
        }
        (_, other) => panic!("{}: altered entry: {other:?}", B::NAME),
    }
    assert_eq!(cache.module(&engine, &wasm).unwrap().1, O::Loaded);
    // An entry for other WebAssembly under this module's name is not used.
    let other_wasm = wat::parse_str(LOOPS).unwrap();
    let other_blob = module(&engine, LOOPS).serialize().unwrap();
    let other_len = other_blob.len() as u64;
    std::fs::write(entry(), other_blob).unwrap();
    match cache.module(&engine, &wasm).unwrap() {
        (m, O::Replaced(why)) => {
            assert!(why.contains("other WebAssembly"), "{why}");
            assert_eq!(add(&m), 42);
        }
        (_, other) => panic!("{}: misplaced entry: {other:?}", B::NAME),
    }
    // An engine configured otherwise has entries of its own.
    let mut config = Config::new();
    config.consume_fuel(true);
    let fueled = super::engine::<B>(&config);
    assert_eq!(cache.module(&fueled, &wasm).unwrap().1, O::Stored);
    assert_eq!(cache.usage().0, 2);
    // A cap that holds either entry but not both: storing one evicts the other.
    cache.clear().unwrap();
    let (_, one) = cache.module(&engine, &wasm).unwrap();
    let size = cache.usage().1;
    let small = CodeCache::open(cache.dir())
        .unwrap()
        .max_bytes(size + other_len - 1);
    assert_eq!(
        (one, small.module(&engine, &other_wasm).unwrap().1),
        (O::Stored, O::Stored)
    );
    assert_eq!(small.usage().0, 1);
    assert_eq!(small.module(&engine, &other_wasm).unwrap().1, O::Loaded);
    assert_eq!(small.module(&engine, &wasm).unwrap().1, O::Stored);
    // Too small for any entry: nothing stored, the module still loads.
    let tiny = CodeCache::open(cache.dir()).unwrap().max_bytes(16);
    match tiny.module(&engine, &wasm).unwrap() {
        (m, O::Loaded) => assert_eq!(add(&m), 42),
        (_, other) => panic!("{}: {other:?}", B::NAME),
    }
    tiny.clear().unwrap();
    assert!(matches!(
        tiny.module(&engine, &wasm).unwrap().1,
        O::NotStored(_)
    ));
    assert_eq!(tiny.usage(), (0, 0));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        match CodeCache::open(&shared) {
            Err(Error::CodeCache { message, .. }) => {
                assert!(message.contains("others may write"), "{message}")
            }
            other => panic!("{}: a world-writable cache was opened: {other:?}", B::NAME),
        }
    }
}

fn with_feature(name: &str) -> Features {
    let mut f = Features::wasm2();
    match name {
        "relaxed-simd" => f.relaxed_simd = true,
        "threads" => f.threads = true,
        "multi-memory" => f.multi_memory = true,
        "memory64" => f.memory64 = true,
        "tail-call" => f.tail_call = true,
        "extended-const" => f.extended_const = true,
        "exceptions" => f.exceptions = true,
        "legacy-exceptions" => f.legacy_exceptions = true,
        "function-references" => f.function_references = true,
        "gc" => {
            f.gc = true;
            f.function_references = true;
        }
        "wide-arithmetic" => f.wide_arithmetic = true,
        "custom-page-sizes" => f.custom_page_sizes = true,
        _ => {}
    }
    f
}

/// Every proposal a backend does not list in its capabilities is refused
/// with `Unsupported`; every one it lists is accepted.
pub fn unsupported_proposals<B: Backend>() {
    let caps = B::capabilities();
    for ((name, _), (_, supported)) in Features::all().iter().zip(caps.features.iter()) {
        let mut config = Config::new();
        config.features(with_feature(name));
        let r = Engine::<B>::new(&config);
        let gc_needs_refs = name == "gc" && !caps.features.function_references;
        match (supported && !gc_needs_refs, r) {
            (true, Ok(_)) => {}
            (false, Err(e)) if e.is_unsupported() => {
                assert!(e.to_string().contains(name), "{}: {e}", B::NAME);
            }
            (want, got) => panic!(
                "{}: proposal `{name}` supported={want}, engine: {got:?}",
                B::NAME
            ),
        }
    }
    for (flag, mut config) in [
        (caps.fuel, Config::new().consume_fuel(true).clone()),
        (caps.deadline, Config::new().interruptible(true).clone()),
        (
            caps.memory_limit,
            Config::new().max_memory_pages(Some(1)).clone(),
        ),
        (
            caps.stack_limit,
            Config::new().max_wasm_stack(Some(1 << 20)).clone(),
        ),
    ] {
        let r = Engine::<B>::new(&config);
        assert_eq!(r.is_ok(), flag, "{}: {config:?}", B::NAME);
        if !flag {
            assert!(r.unwrap_err().is_unsupported());
        }
        config.features(Features::wasm2());
    }
}

/// Malformed or invalid bytes give a compile error on every backend, from
/// both `Module::new` and `Module::validate`, and never a panic.
pub fn malformed_modules<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let valid = wat::parse_str(ARITH).unwrap();
    let invalid_body = wat::parse_str("(module (func (result i32) f32.const 1))").unwrap();
    let mut bad_section = wat::parse_str("(module)").unwrap();
    bad_section.extend_from_slice(&[0x20, 0x01, 0x00]);
    let cases: [(&str, Vec<u8>); 7] = [
        ("empty", vec![]),
        ("short header", b"\0asm".to_vec()),
        ("wrong magic", b"\0wasm\x01\0\0\0".to_vec()),
        ("wrong version", b"\0asm\x02\0\0\0".to_vec()),
        ("truncated", valid[..valid.len() - 7].to_vec()),
        ("invalid body", invalid_body),
        ("unknown section", bad_section),
    ];
    for (what, bytes) in cases {
        match Module::new(&engine, &bytes) {
            Err(Error::Compile { .. }) => {}
            other => panic!(
                "{}: {what}: expected a compile error, got {other:?}",
                B::NAME
            ),
        }
        assert!(
            matches!(
                Module::validate(&engine, &bytes),
                Err(Error::Compile { .. })
            ),
            "{}: {what}: validate accepted it",
            B::NAME
        );
    }
    Module::validate(&engine, &valid).unwrap();
}

/// Missing imports and imports of the wrong type are link errors naming the
/// module, field and expected type.
pub fn link_errors<B: Backend>()
where
    SigOf<i64, i64>: HostSig<B, Params = (i64,), Results = (i64,)>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, SHARED_ITEMS);
    let mut store = Store::new(&engine, ());
    match Linker::new().instantiate(&mut store, &module) {
        Err(Error::Link(e)) => {
            assert_eq!((e.module.as_str(), e.name.as_str()), ("env", "memory"));
            assert_eq!(e.expected, ExternType::Memory(MemoryType::new(1, Some(4))));
            assert_eq!(e.kind, LinkErrorKind::Missing);
            assert!(e.to_string().contains("`env`.`memory`"), "{e}");
        }
        other => panic!("{}: expected a link error, got {other:?}", B::NAME),
    }
    // A memory without the required maximum does not match.
    let mut linker = Linker::<B, ()>::new();
    let unbounded = Memory::new(&mut store, MemoryType::new(1, None)).unwrap();
    linker.define("env", "memory", unbounded).unwrap();
    match linker.instantiate(&mut store, &module) {
        Err(Error::Link(e)) if matches!(e.kind, LinkErrorKind::Incompatible { .. }) => {
            assert_eq!(e.name, "memory")
        }
        other => panic!(
            "{}: expected an incompatible memory, got {other:?}",
            B::NAME
        ),
    }
    // A function where a global is required; a function of the wrong type.
    let host = anywasm_core::Func::wrap(&mut store, |x: i64| x);
    let m = anywasm_core::Module::from_wat(
        &engine,
        r#"(module (import "m" "g" (global i32)) (import "m" "f" (func (param i32))))"#,
    )
    .unwrap();
    assert!(matches!(
        Instance::new(&mut store, &m, &[host.clone().into(), host.clone().into()]),
        Err(Error::Link(e)) if matches!(e.kind, LinkErrorKind::Incompatible { .. })
    ));
    let mut linker = Linker::<B, ()>::new();
    linker.func_wrap("m", "f", |x: i64| x).unwrap();
    linker
        .define(
            "m",
            "g",
            anywasm_core::Global::new(
                &mut store,
                anywasm_core::GlobalType::new(ValType::I32, anywasm_core::Mutability::Var),
                Val::I32(0),
            )
            .unwrap(),
        )
        .unwrap();
    match linker.instantiate(&mut store, &m) {
        Err(Error::Link(e)) => {
            assert_eq!(e.name, "g", "a mutable global for an immutable import")
        }
        other => panic!("{}: expected a link error, got {other:?}", B::NAME),
    }
    assert!(matches!(
        Instance::new(&mut store, &m, &[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(
        linker.func_wrap("m", "f", |x: i64| x).is_err(),
        "redefinition is refused"
    );
}

/// Imports, exports with types, custom sections, hash and size are reported
/// the same on every backend.
pub fn module_metadata<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let text = format!(
        "{}\n(@custom \"meta\" \"v1\")",
        SHARED_ITEMS.trim_end().trim_end_matches(')')
    );
    let text = format!("{text})");
    let bytes = wat::parse_str(&text).unwrap();
    let module = Module::new(&engine, &bytes).unwrap();
    let imports: Vec<String> = module
        .imports()
        .iter()
        .map(|i| format!("{}.{}: {}", i.module, i.name, i.ty))
        .collect();
    assert_eq!(
        imports,
        [
            "env.memory: (memory 1 4)",
            "env.base: (global i32)",
            "env.counter: (global (mut i32))",
            "env.table: (table 2 funcref)",
        ]
    );
    let export = |name: &str| module.info().export(name).map(|e| e.ty.to_string());
    assert_eq!(
        export("call_slot").as_deref(),
        Some("(func (param i32) (result i32))")
    );
    assert_eq!(export("g").as_deref(), Some("(global (mut i64))"));
    assert_eq!(export("k").as_deref(), Some("(global f32)"));
    assert_eq!(module.custom_sections("meta").collect::<Vec<_>>(), [b"v1"]);
    assert_eq!(module.hash(), ContentHash::of(&bytes));
    assert_eq!(module.size(), bytes.len());
    assert_eq!(module.exports().len(), 9);
}

/// A start function runs at instantiation with host functions that see the
/// instance's memory; a trap in it fails instantiation with that trap.
pub fn start_function<B: Backend>()
where
    SigOf<(), i32>: HostSig<B, Params = (), Results = (i32,)>,
{
    let engine = engine::<B>(&Config::new());
    let module = module(&engine, START);
    let mut linker = Linker::<B, ()>::new();
    linker.func_wrap("host", "seed", || 41).unwrap();
    linker
        .func_wrap("host", "memory_size", |mut caller: Caller<'_, B, ()>| {
            caller
                .get_memory("memory")
                .map_or(-1, |m| m.size(&caller).unwrap() as i32)
        })
        .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    assert_eq!(
        inst.get_global(&mut store, "g")
            .unwrap()
            .get(&mut store)
            .unwrap()
            .as_i32(),
        Some(41)
    );
    assert_eq!(
        inst.get_global(&mut store, "seen")
            .unwrap()
            .get(&mut store)
            .unwrap()
            .as_i32(),
        Some(2)
    );
    let trapping = super::module(&engine, "(module (func $s unreachable) (start $s))");
    assert_trap(
        B::NAME,
        Instance::new(&mut store, &trapping, &[]),
        TrapCode::Unreachable,
    );
}

/// The engine counts modules, stores, instances and calls.
pub fn statistics<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let m = module(&engine, ARITH);
    let _loops = module(&engine, LOOPS);
    assert_eq!(engine.stats().modules_compiled, 2);
    {
        let mut store = Store::new(&engine, ());
        let a = Instance::new(&mut store, &m, &[]).unwrap();
        let _b = Instance::new(&mut store, &m, &[]).unwrap();
        for _ in 0..3 {
            call(&mut store, &a, "nothing", &[]).unwrap();
        }
        let s = engine.stats();
        assert_eq!(
            (s.stores_alive, s.instances_alive, s.calls),
            (1, 2, 3),
            "{}: {s:?}",
            B::NAME
        );
        assert_eq!(store.stats().calls, 3);
    }
    let s = engine.stats();
    assert_eq!(
        (
            s.stores_alive,
            s.instances_alive,
            s.instances_created,
            s.calls
        ),
        (0, 0, 2, 3),
        "{s:?}"
    );
}

/// Invalid WebAssembly text is a WAT error with a position.
pub fn wat_errors<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    match Module::from_wat(&engine, "(module (func (export \"f\") i32.const))") {
        Err(Error::Wat { message }) => assert!(message.contains("1:"), "{message}"),
        other => panic!("{}: expected a WAT error, got {other:?}", B::NAME),
    }
    let missing = Module::from_file(&engine, "/nonexistent/anywasm.wasm");
    assert!(matches!(missing, Err(Error::Io { .. })));
}

/// Engines and modules are shared between threads; stores move between them.
pub fn stores_move_between_threads<B: Backend>() {
    let engine = engine::<B>(&Config::new());
    let m = module(&engine, ARITH);
    let mut store = Store::new(&engine, 5i32);
    let inst = Instance::new(&mut store, &m, &[]).unwrap();
    let (mut store, inst) = std::thread::spawn(move || {
        let five = *store.data();
        let got = call(&mut store, &inst, "i32_add", &[Val::I32(1), Val::I32(five)]).unwrap();
        assert_eq!(i32_of(got), 6);
        (store, inst)
    })
    .join()
    .unwrap();
    assert_eq!(
        i32_of(call(&mut store, &inst, "i32_mul", &[Val::I32(3), Val::I32(4)]).unwrap()),
        12
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (engine, m) = (engine.clone(), m.clone());
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let inst = Instance::new(&mut store, &m, &[]).unwrap();
                for i in 0..50 {
                    let got =
                        call(&mut store, &inst, "i32_add", &[Val::I32(t), Val::I32(i)]).unwrap();
                    assert_eq!(i32_of(got), t + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let _ = FuncType::new([], []);
}
