//! Dynamic linking on every backend, with libraries built by clang-14 and
//! wasm-ld-14 (`tests/fixtures/build.sh`) and one written in WAT. Each case
//! is a generic function run as `<backend>::<case>`. Expected values are
//! what the C sources say, worked out by hand in the comments.

use std::path::{Path, PathBuf};

use anywasm::{
    Backend, Config, Engine, Features, Func, FuncType, Linker, Store, TrapCode, Val, ValType,
};
use anywasm_linker::{DynamicLinker, Error, Handle, LinkerConfig, OpenFlags, Symbol, combine};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn setup<B: Backend>(host: Linker<B, ()>) -> (Store<B, ()>, DynamicLinker<B, ()>) {
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ());
    let config = LinkerConfig::new().search_dir(fixtures());
    let dl = DynamicLinker::new(&mut store, config, host).unwrap();
    (store, dl)
}

fn call<B: Backend>(store: &mut Store<B, ()>, f: &Func<B>, args: &[i32]) -> i32 {
    let args: Vec<Val<B>> = args.iter().map(|a| Val::I32(*a)).collect();
    let r = f
        .invoke(&mut *store, &args)
        .unwrap_or_else(|e| panic!("{}: {e}", B::NAME));
    r[0].as_i32().unwrap()
}

fn call_sym<B: Backend>(
    store: &mut Store<B, ()>,
    dl: &mut DynamicLinker<B, ()>,
    name: &str,
    args: &[i32],
) -> i32 {
    let f = dl
        .func(&mut *store, name)
        .unwrap_or_else(|e| panic!("{}: {e}", B::NAME));
    call(store, &f, args)
}

fn data_address<B: Backend>(
    store: &mut Store<B, ()>,
    dl: &mut DynamicLinker<B, ()>,
    name: &str,
) -> u32 {
    match dl.lookup(&mut *store, name).unwrap() {
        Symbol::Data { address } => address,
        Symbol::Func { .. } => panic!("{name} is a function"),
    }
}

fn read_u32<B: Backend>(store: &Store<B, ()>, dl: &DynamicLinker<B, ()>, address: u32) -> u32 {
    dl.memory().read_i32(store, address.into()).unwrap() as u32
}

/// main.wasm needs libmid.so, libbase.so and libutil.so; each is loaded
/// once, dependencies first, in its own aligned region.
pub fn main_calls_side_modules<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    let main = dl.load(&mut store, "main.wasm").unwrap();
    let names: Vec<&str> = dl.libraries().map(|(_, l)| l.name()).collect();
    assert_eq!(
        names,
        ["libbase.so", "libmid.so", "libutil.so", "main.wasm"]
    );
    assert_eq!(dl.libraries().last().unwrap().0, main);
    let mut regions: Vec<(u32, u32)> = Vec::new();
    for (_, l) in dl.libraries() {
        let d = l.dylink();
        assert_eq!(
            l.memory_base() % (1 << d.memory_align_log2),
            0,
            "{} misaligned",
            l.name()
        );
        for (b, s) in &regions {
            assert!(l.memory_base() >= b + s, "{} overlaps", l.name());
        }
        regions.push((l.memory_base(), d.memory_size));
    }
    // base_add(base_value, 1) = 42 + 1
    assert_eq!(call_sym(&mut store, &mut dl, "call_side", &[]), 43);
    // strlen("hello") through a pointer in libutil's data
    assert_eq!(call_sym(&mut store, &mut dl, "greeting_len", &[]), 5);
    // 1 + 2 + ... + 10 on the shared stack, which is restored afterwards
    let sp = dl
        .stack_pointer()
        .get(&mut store)
        .unwrap()
        .as_i32()
        .unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "stack_sum", &[10]), 55);
    assert_eq!(
        dl.stack_pointer()
            .get(&mut store)
            .unwrap()
            .as_i32()
            .unwrap(),
        sp
    );
    // Loading again is the same library.
    assert_eq!(dl.load(&mut store, "main.wasm").unwrap(), main);
    assert_eq!(dl.libraries().count(), 4);
}

/// A pointer in libmid's data points at libbase's `base_value`.
pub fn data_pointer_across_modules<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "main.wasm").unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "read_through_mid", &[]), 42);
    let base_value = data_address(&mut store, &mut dl, "base_value");
    let ptr_slot = data_address(&mut store, &mut dl, "mid_ptr_to_base");
    assert_eq!(read_u32(&store, &dl, ptr_slot), base_value);
    // Writing through libmid's pointer changes libbase's variable.
    assert_eq!(call_sym(&mut store, &mut dl, "write_shared", &[99]), 99);
    assert_eq!(read_u32(&store, &dl, base_value), 99);
    // libbase's own pointer to its own data was relocated too.
    let base_ptr = data_address(&mut store, &mut dl, "base_ptr");
    assert_eq!(read_u32(&store, &dl, base_ptr), base_value);
}

/// Every route to `twice` gives one table index: main's GOT, libmid's
/// GOT, a pointer in libmid's data, and `dlsym`.
pub fn function_pointers_are_equal<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "main.wasm").unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "fn_ptrs_equal", &[]), 1);
    // mid_get_twice()(21) = 42
    assert_eq!(call_sym(&mut store, &mut dl, "call_through_ptr", &[]), 42);
    let Symbol::Func { func, table_index } = dl.lookup(&mut store, "twice").unwrap() else {
        panic!()
    };
    assert!(table_index > 0);
    let stored = data_address(&mut store, &mut dl, "mid_twice_ptr");
    assert_eq!(read_u32(&store, &dl, stored), table_index);
    let handle = dl.dlopen(&mut store, "libbase.so").unwrap();
    let Symbol::Func {
        table_index: again, ..
    } = dl.dlsym(&mut store, handle, "twice").unwrap()
    else {
        panic!()
    };
    assert_eq!(again, table_index);
    // The table entry is the function.
    let Ok(Some(Val::FuncRef(Some(entry)))) = dl.table().get(&mut store, table_index.into()) else {
        panic!()
    };
    assert_eq!(call(&mut store, &entry, &[5]), 10);
    assert_eq!(call(&mut store, &func, &[5]), 10);
}

/// libmid's constructor reads through libbase's relocated pointer: 42 + 1.
pub fn constructors_run_after_dependencies<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "main.wasm").unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "ctor_result", &[]), 43);
}

/// Weak symbols nobody defines are null, in C and in WAT.
pub fn weak_undefined_symbols_are_null<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "main.wasm").unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "weak_nulls", &[]), 2);
    let wat = wat::parse_file(fixtures().join("libwat.wat")).unwrap();
    dl.load_bytes(&mut store, "libwat.so", wat).unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "wat_hook_is_null", &[]), 1);
}

/// An undefined symbol names itself and who needs it; nothing is loaded,
/// and the linker keeps working.
pub fn missing_symbol_is_a_clear_error<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    let err = dl.load(&mut store, "libmissing.so").unwrap_err();
    assert!(
        matches!(&err, Error::UndefinedSymbol { symbol, library } if symbol == "no_such_function" && library == "libmissing.so"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "undefined symbol `no_such_function` needed by `libmissing.so`"
    );
    assert_eq!(dl.libraries().count(), 0);
    assert!(dl.lookup(&mut store, "uses_missing").is_err());
    // A host function of that name makes it load.
    let mut host = Linker::<B, ()>::new();
    host.func_new(
        "env",
        "no_such_function",
        FuncType::new([ValType::I32], [ValType::I32]),
        |_, p, r| {
            r[0] = Val::I32(p[0].as_i32().unwrap() * 3);
            Ok(())
        },
    )
    .unwrap();
    let (mut store, mut dl) = setup::<B>(host);
    dl.load(&mut store, "libmissing.so").unwrap();
    // no_such_function(4) + 1 = 13
    assert_eq!(call_sym(&mut store, &mut dl, "uses_missing", &[4]), 13);
    // A needed library that does not exist.
    let (mut store, mut dl) = setup::<B>(Linker::new());
    let lib = wat::parse_str(r#"(module (@dylink.0 (needed "libnowhere.so")))"#).unwrap();
    let err = dl
        .load_bytes(&mut store, "needs_nothing_real.so", lib)
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { library, .. } if library == "libnowhere.so"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("needed by `needs_nothing_real.so`"),
        "{err}"
    );
}

/// libping.so and libpong.so need each other.
pub fn circular_dependencies<B: Backend>() {
    fn ping(n: i32) -> i32 {
        if n <= 0 { 0 } else { 1 + pong(n - 1) }
    }
    fn pong(n: i32) -> i32 {
        if n <= 0 { 0 } else { 10 + ping(n - 1) }
    }
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "libping.so").unwrap();
    let names: Vec<&str> = dl.libraries().map(|(_, l)| l.name()).collect();
    assert_eq!(names, ["libpong.so", "libping.so"]);
    for n in [0, 1, 5, 12] {
        assert_eq!(
            call_sym(&mut store, &mut dl, "ping", &[n]),
            ping(n),
            "ping({n})"
        );
        assert_eq!(
            call_sym(&mut store, &mut dl, "pong", &[n]),
            pong(n),
            "pong({n})"
        );
    }
}

/// `dlopen` at run time loads libplugin.so (reusing the loaded libbase.so);
/// `dlsym` gives a function and a variable; `dlclose` is safe.
pub fn dlopen_dlsym_dlclose<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "main.wasm").unwrap();
    let before = dl.libraries().count();
    let h = dl.dlopen(&mut store, "libplugin.so").unwrap();
    assert_eq!(
        dl.libraries().count(),
        before + 1,
        "libbase.so must not load twice"
    );
    let Symbol::Func {
        func: scale,
        table_index,
    } = dl.dlsym(&mut store, h, "plugin_scale").unwrap()
    else {
        panic!()
    };
    // plugin_scale(6) = 6 * plugin_counter (7)
    assert_eq!(call(&mut store, &scale, &[6]), 42);
    let Symbol::Data { address } = dl.dlsym(&mut store, h, "plugin_counter").unwrap() else {
        panic!()
    };
    assert_eq!(read_u32(&store, &dl, address), 7);
    dl.memory()
        .write_i32(&mut store, address.into(), 3)
        .unwrap();
    assert_eq!(call(&mut store, &scale, &[6]), 18);
    // Through the table, as a function pointer.
    let Ok(Some(Val::FuncRef(Some(entry)))) = dl.table().get(&mut store, table_index.into()) else {
        panic!()
    };
    assert_eq!(call(&mut store, &entry, &[2]), 6);
    // A dependency's symbol through the handle: base_value + 1.
    let Symbol::Func { func: plus, .. } = dl.dlsym(&mut store, h, "plugin_base_plus").unwrap()
    else {
        panic!()
    };
    assert_eq!(call(&mut store, &plus, &[1]), 43);
    assert!(matches!(
        dl.dlsym(&mut store, h, "base_value").unwrap(),
        Symbol::Data { .. }
    ));
    assert!(matches!(
        dl.dlsym(&mut store, h, "nope"),
        Err(Error::NoSuchSymbol { .. })
    ));
    dl.dlclose(h).unwrap();
    assert!(matches!(
        dl.dlsym(&mut store, h, "plugin_scale"),
        Err(Error::InvalidHandle(_))
    ));
    assert!(matches!(dl.dlclose(h), Err(Error::InvalidHandle(_))));
    // Code stays loaded: what was looked up still works.
    assert_eq!(call(&mut store, &scale, &[1]), 3);
}

/// Names with `/`, `..` or NUL must stay inside the search path.
pub fn names_outside_the_search_path_are_refused<B: Backend>() {
    let root = tempfile::tempdir().unwrap();
    let libs = root.path().join("libs");
    std::fs::create_dir_all(libs.join("sub")).unwrap();
    std::fs::copy(fixtures().join("libbase.so"), libs.join("sub/libbase.so")).unwrap();
    std::fs::copy(fixtures().join("libbase.so"), root.path().join("secret.so")).unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.so"), libs.join("link.so")).unwrap();
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ());
    let mut dl = DynamicLinker::new(
        &mut store,
        LinkerConfig::new().search_dir(&libs),
        Linker::new(),
    )
    .unwrap();
    for name in [
        "../secret.so",
        "sub/../../secret.so",
        "link.so",
        "/etc/passwd",
        "lib\0base.so",
        "",
    ] {
        let err = dl.dlopen(&mut store, name).unwrap_err();
        assert!(
            matches!(err, Error::RefusedName { .. }),
            "{name:?}: {err:?}"
        );
    }
    // Inside the search path a `/` is fine.
    dl.dlopen(&mut store, "sub/libbase.so").unwrap();
    dl.dlopen(&mut store, "sub/../sub/libbase.so").unwrap();
    assert!(matches!(
        dl.dlopen(&mut store, "libnone.so"),
        Err(Error::NotFound { .. })
    ));
}

/// Modules that are not libraries, and bytes that are not modules.
pub fn bad_modules_are_refused<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    let plain = wat::parse_str("(module (func (export \"f\")))").unwrap();
    assert!(matches!(
        dl.load_bytes(&mut store, "plain.wasm", plain),
        Err(Error::NotALibrary { .. })
    ));
    for bytes in [
        &b""[..],
        b"\0asm",
        b"\0asm\x01\0\0\0\x00\x05\x08dylink",
        b"not wasm at all",
    ] {
        let err = dl
            .load_bytes(&mut store, "bad.so", bytes.to_vec())
            .unwrap_err();
        assert!(
            matches!(err, Error::Malformed { .. } | Error::NotALibrary { .. }),
            "{bytes:?}: {err:?}"
        );
    }
    // A library whose import has another signature than its definition.
    let wrong = wat::parse_str(
        r#"(module (@dylink.0 (needed "libbase.so"))
             (import "env" "twice" (func (param i64) (result i64))))"#,
    )
    .unwrap();
    let err = dl.load_bytes(&mut store, "wrong.so", wrong).unwrap_err();
    assert!(
        matches!(&err, Error::SignatureMismatch { symbol, .. } if symbol == "twice"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("(i64) -> i64") || err.to_string().contains("i64"),
        "{err}"
    );
    assert!(
        dl.library_by_name("libbase.so").is_none(),
        "a failed load must leave nothing"
    );
    // A library with a memory of its own cannot share the linker's.
    let own = wat::parse_str(r#"(module (@dylink.0) (memory 1))"#).unwrap();
    let err = dl.load_bytes(&mut store, "own_memory.so", own).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { feature, .. } if feature.contains("--import-memory")),
        "{err:?}"
    );
    // An imported exception tag (what cross-module setjmp/longjmp uses)
    // with an engine that does not enable exceptions: refused by name
    // (`shared_exception_tags` has the engine that does).
    let tag =
        wat::parse_str(r#"(module (@dylink.0) (import "env" "__c_longjmp" (tag (param i32))))"#)
            .unwrap();
    let err = dl.load_bytes(&mut store, "tag.so", tag).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { feature, .. } if feature.contains("__c_longjmp")),
        "{err:?}"
    );
    // Thread-local symbols are refused as unsupported.
    let tls = wat::parse_str(r#"(module (@dylink.0 (export-info "counter" tls)))"#).unwrap();
    assert!(matches!(
        dl.load_bytes(&mut store, "tls.so", tls),
        Err(Error::Unsupported { .. })
    ));
    // Too little room.
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ());
    let config = LinkerConfig::new()
        .search_dir(fixtures())
        .max_memory_pages(2);
    let mut dl = DynamicLinker::new(&mut store, config, Linker::new()).unwrap();
    let big = wat::parse_str(r#"(module (@dylink.0 (mem-info (memory 200000 0))))"#).unwrap();
    assert!(matches!(
        dl.load_bytes(&mut store, "big.so", big),
        Err(Error::Limit { .. })
    ));
    // The linker still works.
    dl.load(&mut store, "libbase.so").unwrap();
}

/// A hand-written WAT side module with `(@dylink.0 …)`.
pub fn wat_side_module<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    let wat = wat::parse_file(fixtures().join("libwat.wat")).unwrap();
    let id = dl.load_bytes(&mut store, "libwat.so", wat).unwrap();
    let base = dl.library(id).unwrap().memory_base();
    assert_eq!(base % 8, 0, "mem-info asks for 2^3 alignment");
    // twice(base_value) = 84, directly and through the table.
    assert_eq!(call_sym(&mut store, &mut dl, "wat_twice_base", &[]), 84);
    assert_eq!(
        call_sym(&mut store, &mut dl, "wat_twice_indirect", &[5]),
        10
    );
    assert_eq!(call_sym(&mut store, &mut dl, "wat_read_own", &[]), 7);
    assert_eq!(data_address(&mut store, &mut dl, "wat_data"), base);
}

/// Host functions are symbols too: called directly and by pointer.
pub fn host_functions_are_symbols<B: Backend>() {
    let mut host = Linker::<B, ()>::new();
    host.func_new(
        "env",
        "host_add",
        FuncType::new([ValType::I32, ValType::I32], [ValType::I32]),
        |_, p, r| {
            r[0] = Val::I32(p[0].as_i32().unwrap() + p[1].as_i32().unwrap());
            Ok(())
        },
    )
    .unwrap();
    let (mut store, mut dl) = setup::<B>(host);
    let lib = wat::parse_str(
        r#"(module (@dylink.0)
             (type $t (func (param i32 i32) (result i32)))
             (import "env" "__indirect_function_table" (table 0 funcref))
             (import "env" "host_add" (func $add (type $t)))
             (import "GOT.func" "host_add" (global $p (mut i32)))
             (func (export "direct") (result i32) (call $add (i32.const 2) (i32.const 3)))
             (func (export "by_pointer") (result i32)
               (call_indirect (type $t) (i32.const 20) (i32.const 22) (global.get $p))))"#,
    )
    .unwrap();
    dl.load_bytes(&mut store, "libhost.so", lib).unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "direct", &[]), 5);
    assert_eq!(call_sym(&mut store, &mut dl, "by_pointer", &[]), 42);
    let Symbol::Func { table_index, .. } = dl.lookup(&mut store, "host_add").unwrap() else {
        panic!()
    };
    assert!(table_index > 0);
}

/// Three standalone modules in one memory (the `wasm-share-memory`
/// example): `common` creates an object on the shared heap, `a` reads it,
/// `b` doubles it; a pointer stored in `common`'s data is relocated.
pub fn shared_memory_combination<B: Backend>() {
    let (common, a, b) = (fixture("common.so"), fixture("a.so"), fixture("b.so"));
    let layout = combine(&LinkerConfig::new(), &[&common, &a, &b], 64 * 1024).unwrap();
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ());
    let mut dl = DynamicLinker::new(&mut store, LinkerConfig::new(), Linker::new()).unwrap();
    let shared = dl
        .load_shared(
            &mut store,
            &[("common.so", &common), ("a.so", &a), ("b.so", &b)],
            64 * 1024,
        )
        .unwrap();
    // The loader used exactly the layout `combine` reports.
    for (id, expected) in shared.libraries.iter().zip(&layout.modules) {
        assert_eq!(dl.library(*id).unwrap().memory_base(), expected.memory_base);
    }
    assert_eq!(shared.heap, layout.heap);
    assert_eq!(shared.pages, u64::from(layout.pages_needed));
    let export = |dl: &DynamicLinker<B, ()>, store: &mut Store<B, ()>, i: usize, name: &str| {
        dl.library(shared.libraries[i])
            .unwrap()
            .instance()
            .get_func(store, name)
            .unwrap()
    };
    let create = export(&dl, &mut store, 0, "create_object");
    let get_value = export(&dl, &mut store, 1, "get_value");
    let double = export(&dl, &mut store, 2, "double");
    let object = create.invoke(&mut store, &[Val::I64(1337)]).unwrap()[0]
        .as_i32()
        .unwrap();
    assert!(
        shared.heap.contains(&(object as u32)),
        "the object lives on the shared heap"
    );
    let value = |store: &mut Store<B, ()>| {
        get_value.invoke(store, &[Val::I32(object)]).unwrap()[0]
            .as_i64()
            .unwrap()
    };
    assert_eq!(value(&mut store), 1337);
    double.invoke(&mut store, &[Val::I32(object)]).unwrap();
    assert_eq!(value(&mut store), 2674);
    // The heap runs out cleanly: 64 KiB / 8 bytes per object.
    let mut n = 1;
    while create.invoke(&mut store, &[Val::I64(0)]).unwrap()[0].as_i32() != Some(0) {
        n += 1;
    }
    assert_eq!(n, 64 * 1024 / 8);
    // A pointer inside data, fixed by common's own relocations.
    let greeting = export(&dl, &mut store, 0, "common_greeting");
    let at = call(&mut store, &greeting, &[]) as u64;
    let text = dl.memory().read_vec(&store, at, 17).unwrap();
    assert_eq!(text, b"hello from common");
}

/// A C main program calls `dlopen`/`dlsym`/`dlclose`/`dlerror` itself
/// (`dlguest.c`), through the host imports `with_guest_dl` defines.
pub fn guest_calls_dlopen<B: Backend>() {
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ());
    let config = LinkerConfig::new().search_dir(fixtures());
    let dl = DynamicLinker::with_guest_dl(&mut store, config, Linker::new()).unwrap();
    let export = |store: &mut Store<B, ()>, name: &str| {
        let mut dl = dl.lock().unwrap();
        if dl.library_by_name("dlguest.wasm").is_none() {
            dl.load(&mut *store, "dlguest.wasm").unwrap();
        }
        dl.func(&mut *store, name).unwrap()
        // The lock ends here, before the guest runs and calls dlopen.
    };
    // libplugin.so is not loaded until the guest asks for it.
    let f = export(&mut store, "use_plugin");
    assert!(dl.lock().unwrap().library_by_name("libplugin.so").is_none());
    // The guest sets plugin_counter to 3 through dlsym's data pointer and
    // calls plugin_scale (x * plugin_counter) through dlsym's function pointer.
    assert_eq!(call(&mut store, &f, &[14]), 42, "{}", B::NAME);
    assert!(dl.lock().unwrap().library_by_name("libplugin.so").is_some());
    // dlsym's pointers are the ones the guest's own GOT holds.
    let f = export(&mut store, "same_pointers");
    assert_eq!(call(&mut store, &f, &[]), 1, "{}", B::NAME);
    // A missing library: NULL, and dlerror names it, once.
    let f = export(&mut store, "missing_library_error");
    let ptr = call(&mut store, &f, &[]) as u32;
    assert_ne!(ptr, 0, "{}: dlerror returned NULL", B::NAME);
    let memory = dl.lock().unwrap().memory().clone();
    let bytes = memory.read_vec(&store, ptr.into(), 256).unwrap();
    let message =
        String::from_utf8_lossy(&bytes[..bytes.iter().position(|b| *b == 0).unwrap()]).into_owned();
    assert!(
        message.starts_with("dlopen: ") && message.contains("libnothere.so"),
        "{}: {message}",
        B::NAME
    );
    // The guest learns nothing about where the search path is on the host.
    let host_dir = fixtures().canonicalize().unwrap();
    assert!(
        !message.contains(host_dir.to_str().unwrap()) && !message.contains("/work"),
        "{}: {message}",
        B::NAME
    );
    let f = export(&mut store, "error_was_cleared");
    assert_eq!(call(&mut store, &f, &[]), 1, "{}", B::NAME);
    // Unknown symbols and closed handles give NULL / non-zero and an error.
    let f = export(&mut store, "unknown_symbol_is_null");
    assert_eq!(call(&mut store, &f, &[]), 1, "{}", B::NAME);
    // dlopen(NULL), RTLD_NOLOAD, one handle per library, bad modes.
    for case in [
        "global_handle_finds_twice",
        "plugin_is_loaded",
        "same_handle_twice",
        "bad_mode_is_refused",
    ] {
        let f = export(&mut store, case);
        assert_eq!(call(&mut store, &f, &[]), 1, "{}: {case}", B::NAME);
    }
}

/// RTLD_NOLOAD from a guest, before the library is loaded.
pub fn guest_noload_loads_nothing<B: Backend>() {
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ());
    let config = LinkerConfig::new().search_dir(fixtures());
    let dl = DynamicLinker::with_guest_dl(&mut store, config, Linker::new()).unwrap();
    let f = {
        let mut dl = dl.lock().unwrap();
        dl.load(&mut store, "dlguest.wasm").unwrap();
        dl.func(&mut store, "plugin_is_loaded").unwrap()
    };
    assert_eq!(call(&mut store, &f, &[]), 0, "{}", B::NAME);
    assert!(dl.lock().unwrap().library_by_name("libplugin.so").is_none());
}

/// `__heap_base`, `__heap_end`, `__stack_low` and `__stack_high` are given to
/// every load, through `GOT.mem` and as `env` constants: the heap starts
/// after the libraries and ends with the memory's last page.
pub fn linker_symbols_on_every_load<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    let libc = wat::parse_str(
        r#"(module (@dylink.0 (mem-info (memory 100 4)))
             (import "env" "memory" (memory 0))
             (import "GOT.mem" "__heap_base" (global $hb (mut i32)))
             (import "GOT.mem" "__heap_end" (global $he (mut i32)))
             (import "GOT.mem" "__stack_low" (global $sl (mut i32)))
             (import "env" "__stack_high" (global $sh i32))
             (func (export "heap_base") (result i32) (global.get $hb))
             (func (export "heap_end") (result i32) (global.get $he))
             (func (export "stack_low") (result i32) (global.get $sl))
             (func (export "stack_high") (result i32) (global.get $sh)))"#,
    )
    .unwrap();
    let id = dl.load_bytes(&mut store, "libc.so", libc).unwrap();
    let lib_end = dl.library(id).unwrap().memory_base() + 100;
    let heap_base = call_sym(&mut store, &mut dl, "heap_base", &[]) as u32;
    let heap_end = call_sym(&mut store, &mut dl, "heap_end", &[]) as u32;
    assert!(
        heap_base >= lib_end && heap_base.is_multiple_of(16),
        "{heap_base:#x}"
    );
    let pages = dl.memory().size(&store).unwrap();
    assert_eq!(u64::from(heap_end), pages * 65536);
    assert_eq!(dl.heap(), Some(heap_base..heap_end));
    assert_eq!(dl.memory_end(), u64::from(heap_end));
    let sp = dl
        .stack_pointer()
        .get(&mut store)
        .unwrap()
        .as_i32()
        .unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "stack_high", &[]), sp);
    assert_eq!(
        call_sym(&mut store, &mut dl, "stack_low", &[]),
        sp - 64 * 1024
    );
    // Through dlsym too.
    assert_eq!(data_address(&mut store, &mut dl, "__heap_base"), heap_base);
    // The heap is laid out once.
    assert!(matches!(
        dl.load_shared(&mut store, &[("x.so", &fixture("a.so"))], 1024),
        Err(Error::Unsupported { .. })
    ));
}

/// A library opened after the program grew its heap goes beyond the
/// memory's end, and nothing of the heap is overwritten.
pub fn dlopen_after_growth_goes_beyond_the_heap<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "main.wasm").unwrap();
    let heap = dl.heap().unwrap();
    // The program's malloc grows memory (sbrk) and fills its heap.
    let grown_from = dl.memory().size(&store).unwrap();
    dl.memory().grow(&mut store, 2).unwrap();
    let end = (grown_from + 2) * 65536;
    let used = u64::from(heap.start)..end;
    let pattern = vec![0xa5u8; (used.end - used.start) as usize];
    dl.memory().write(&mut store, used.start, &pattern).unwrap();
    let h = dl.dlopen(&mut store, "libplugin.so").unwrap();
    let plugin = dl.library_by_name("libplugin.so").unwrap();
    let base = u64::from(dl.library(plugin).unwrap().memory_base());
    assert!(
        base >= end,
        "libplugin.so at {base:#x}, inside the heap ..{end:#x}"
    );
    assert_eq!(
        dl.memory()
            .read_vec(&store, used.start, pattern.len())
            .unwrap(),
        pattern,
        "{}: the heap was overwritten",
        B::NAME
    );
    let Symbol::Func { func, .. } = dl.dlsym(&mut store, h, "plugin_scale").unwrap() else {
        panic!()
    };
    assert_eq!(call(&mut store, &func, &[6]), 42);
    // Without growth in between, the next library follows the last one.
    let wat = wat::parse_file(fixtures().join("libwat.wat")).unwrap();
    let id = dl.load_bytes(&mut store, "libwat.so", wat).unwrap();
    assert!(u64::from(dl.library(id).unwrap().memory_base()) >= base);
}

/// ELF order: the main program's `pick` wins over libpick.so's, for
/// libuser.so's direct call and function pointer; the library's own is
/// still reachable through its handle.
pub fn main_program_overrides_library_symbols<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "override_main.wasm").unwrap();
    assert_eq!(
        call_sym(&mut store, &mut dl, "main_pick", &[]),
        2,
        "{}",
        B::NAME
    );
    assert_eq!(call_sym(&mut store, &mut dl, "user_pick", &[]), 2);
    assert_eq!(call_sym(&mut store, &mut dl, "pick", &[]), 2);
    assert_eq!(call_sym(&mut store, &mut dl, "same_pick_ptr", &[]), 1);
    let h = dl.dlopen(&mut store, "libpick.so").unwrap();
    let Symbol::Func { func, .. } = dl.dlsym(&mut store, h, "pick").unwrap() else {
        panic!()
    };
    assert_eq!(call(&mut store, &func, &[]), 1);
}

/// `__wasm_apply_data_relocs` runs after instantiation unless it is the
/// start function (LLVM 14): here the start function is something else.
pub fn relocations_when_the_start_function_is_another<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    let lib = wat::parse_str(
        r#"(module (@dylink.0 (mem-info (memory 8 2)))
             (import "env" "memory" (memory 0))
             (import "env" "__memory_base" (global $mb i32))
             (global $started (mut i32) (i32.const 0))
             (func $init (global.set $started (i32.const 1)))
             (start $init)
             ;; A pointer in data to the word after it.
             (func (export "__wasm_apply_data_relocs")
               (i32.store (global.get $mb) (i32.add (global.get $mb) (i32.const 4))))
             (func (export "started") (result i32) (global.get $started))
             (func (export "pointer") (result i32) (i32.load (global.get $mb))))"#,
    )
    .unwrap();
    let id = dl.load_bytes(&mut store, "libstart.so", lib).unwrap();
    let base = dl.library(id).unwrap().memory_base() as i32;
    assert_eq!(call_sym(&mut store, &mut dl, "started", &[]), 1);
    assert_eq!(
        call_sym(&mut store, &mut dl, "pointer", &[]),
        base + 4,
        "{}",
        B::NAME
    );
}

/// One file is one library, whatever path names it.
pub fn a_file_is_loaded_once_whatever_its_name<B: Backend>() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("sub")).unwrap();
    std::fs::copy(
        fixtures().join("libbase.so"),
        root.path().join("sub/libbase.so"),
    )
    .unwrap();
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ());
    let config = LinkerConfig::new()
        .search_dir(root.path())
        .search_dir(root.path().join("sub"));
    let mut dl = DynamicLinker::new(&mut store, config, Linker::new()).unwrap();
    let h = dl.dlopen(&mut store, "sub/libbase.so").unwrap();
    for name in ["sub/../sub/libbase.so", "./sub/libbase.so", "libbase.so"] {
        assert_eq!(dl.dlopen(&mut store, name).unwrap(), h, "{name}");
    }
    assert_eq!(dl.libraries().count(), 1, "{}", B::NAME);
    // A library needing `libbase.so` binds to the one loaded.
    let lib = wat::parse_str(
        r#"(module (@dylink.0 (needed "libbase.so"))
             (import "env" "twice" (func $t (param i32) (result i32)))
             (func (export "four") (result i32) (call $t (i32.const 2))))"#,
    )
    .unwrap();
    dl.load_bytes(&mut store, "libfour.so", lib).unwrap();
    assert_eq!(dl.libraries().count(), 2);
    assert_eq!(call_sym(&mut store, &mut dl, "four", &[]), 4);
}

/// A dynamically linked WASI command (`tests/fixtures/wasi`: a PIE main
/// and two side modules calling WASI directly) prints, reads a file from
/// its preopened directory and exits with 7, with WASI reading and writing
/// the imported shared memory.
pub fn wasi_program_with_side_modules<B: Backend>() {
    use anywasm_wasi::{Captured, Output, WasiConfig, WasiCtx, add_to_linker};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "a file on the host\n").unwrap();
    let out = Captured::new();
    let ctx = WasiConfig::new()
        .preopen_dir(dir.path(), "/data")
        .stdout(Output::Capture(out.clone()))
        .build()
        .unwrap();
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ctx);
    let mut host = Linker::<B, WasiCtx>::new();
    add_to_linker(&mut host, |c| c).unwrap();
    let config = LinkerConfig::new().search_dir(fixtures().join("wasi"));
    let mut dl = DynamicLinker::new(&mut store, config, host).unwrap();
    let main = dl.load(&mut store, "wasi_main.wasm").unwrap();
    let names: Vec<&str> = dl.libraries().map(|(_, l)| l.name()).collect();
    assert_eq!(names, ["libwasio.so", "libgreet.so", "wasi_main.wasm"]);
    store.data_mut().set_memory(dl.memory().clone());
    let status = dl.run_start(&mut store, main).unwrap();
    assert_eq!(
        out.text(),
        "hello from a side module\nread: a file on the host\n",
        "{}",
        B::NAME
    );
    assert_eq!(status, 7, "{}", B::NAME);
    // A library is not a command.
    let lib = dl.library_by_name("libwasio.so").unwrap();
    assert!(matches!(
        dl.run_start(&mut store, lib),
        Err(Error::NoSuchSymbol { .. })
    ));
}

/// Side modules built by Debian's emscripten (emcc 3.1.6,
/// `tests/fixtures/emscripten`): C with a relocated pointer and a
/// constructor, C++ with virtual functions (vtables relocated through
/// `GOT.func`) and global objects built by `__wasm_call_ctors`.
pub fn emscripten_side_modules<B: Backend>() {
    let mut host = Linker::<B, ()>::new();
    // C++'s operator delete, which libshapes.so imports and never calls.
    host.func_new(
        "env",
        "_ZdlPv",
        FuncType::new([ValType::I32], []),
        |_, _, _| Ok(()),
    )
    .unwrap();
    let engine = Engine::<B>::default_config().unwrap();
    let mut store = Store::new(&engine, ());
    let config = LinkerConfig::new().search_dir(fixtures().join("emscripten"));
    let mut dl = DynamicLinker::new(&mut store, config, host).unwrap();
    dl.load(&mut store, "libemside.so").unwrap();
    dl.load(&mut store, "libshapes.so").unwrap();
    // 1 + 2 + the constructor's 2; the pointer in data leads to 40.
    assert_eq!(
        call_sym(&mut store, &mut dl, "em_add", &[1, 2]),
        5,
        "{}",
        B::NAME
    );
    assert_eq!(call_sym(&mut store, &mut dl, "em_read", &[]), 40);
    // 6 * 7 + 5 * 5 through two vtables.
    assert_eq!(call_sym(&mut store, &mut dl, "shapes_total", &[]), 67);
    assert_eq!(call_sym(&mut store, &mut dl, "shapes_rect_area", &[]), 42);
}

/// A command's `_start` runs its constructors itself (wasi-libc's crt1
/// does), so loading does not run them first.
pub fn a_command_runs_its_own_constructors<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    let cmd = wat::parse_str(
        r#"(module (@dylink.0)
             (global $ctors (mut i32) (i32.const 0))
             (func $ctors (export "__wasm_call_ctors")
               (global.set $ctors (i32.add (global.get $ctors) (i32.const 1))))
             (func (export "_start") (call $ctors)
               (if (i32.ne (global.get $ctors) (i32.const 1)) (then unreachable)))
             (func (export "ctor_runs") (result i32) (global.get $ctors)))"#,
    )
    .unwrap();
    let id = dl.load_bytes(&mut store, "cmd.wasm", cmd).unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "ctor_runs", &[]), 0);
    assert_eq!(dl.run_start(&mut store, id).unwrap(), 0, "{}", B::NAME);
    assert_eq!(call_sym(&mut store, &mut dl, "ctor_runs", &[]), 1);
}

/// One handle per library, counted; `dlopen(NULL)`; RTLD_NOLOAD,
/// RTLD_LOCAL and RTLD_GLOBAL with their defined meaning.
pub fn handles_and_open_flags<B: Backend>() {
    let (mut store, mut dl) = setup::<B>(Linker::new());
    dl.load(&mut store, "main.wasm").unwrap();
    // NOLOAD of something not loaded loads nothing.
    let noload = OpenFlags {
        no_load: true,
        ..OpenFlags::local()
    };
    assert!(matches!(
        dl.dlopen_with(&mut store, Some("libplugin.so"), noload),
        Err(Error::NotLoaded { .. })
    ));
    assert!(dl.library_by_name("libplugin.so").is_none());
    // Local: reachable through the handle only.
    let h = dl
        .dlopen_with(&mut store, Some("libplugin.so"), OpenFlags::local())
        .unwrap();
    let plugin = dl.library_by_name("libplugin.so").unwrap();
    assert!(!dl.library(plugin).unwrap().is_global());
    assert!(dl.dlsym(&mut store, h, "plugin_scale").is_ok());
    assert!(matches!(
        dl.lookup(&mut store, "plugin_scale"),
        Err(Error::NoSuchSymbol { .. })
    ));
    let user = wat::parse_str(
        r#"(module (@dylink.0)
             (import "env" "plugin_scale" (func $s (param i32) (result i32)))
             (func (export "scale_by_plugin") (param i32) (result i32) (call $s (local.get 0))))"#,
    )
    .unwrap();
    dl.add_library_bytes("libuser_of_plugin.so", user);
    assert!(matches!(
        dl.load(&mut store, "libuser_of_plugin.so"),
        Err(Error::UndefinedSymbol { .. })
    ));
    // A library that needs it by name sees it.
    let needs = wat::parse_str(
        r#"(module (@dylink.0 (needed "libplugin.so"))
             (import "env" "plugin_scale" (func $s (param i32) (result i32)))
             (func (export "scale_needed") (param i32) (result i32) (call $s (local.get 0))))"#,
    )
    .unwrap();
    dl.load_bytes(&mut store, "libneeds_plugin.so", needs)
        .unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "scale_needed", &[6]), 42);
    // NOLOAD of a loaded library, made global: same handle, now global.
    let global_noload = OpenFlags {
        no_load: true,
        ..OpenFlags::global()
    };
    assert_eq!(
        dl.dlopen_with(&mut store, Some("libplugin.so"), global_noload)
            .unwrap(),
        h
    );
    assert!(dl.library(plugin).unwrap().is_global());
    dl.load(&mut store, "libuser_of_plugin.so").unwrap();
    assert_eq!(call_sym(&mut store, &mut dl, "scale_by_plugin", &[2]), 14);
    // Opened twice (local, then NOLOAD|GLOBAL): valid until closed twice.
    dl.dlclose(h).unwrap();
    assert!(dl.dlsym(&mut store, h, "plugin_scale").is_ok());
    dl.dlclose(h).unwrap();
    assert!(matches!(
        dl.dlsym(&mut store, h, "plugin_scale"),
        Err(Error::InvalidHandle(_))
    ));
    assert!(matches!(dl.dlclose(h), Err(Error::InvalidHandle(_))));
    // Reopening gives the same handle again.
    assert_eq!(dl.dlopen(&mut store, "libplugin.so").unwrap(), h);
    // The global namespace.
    let g = dl
        .dlopen_with(&mut store, None, OpenFlags::local())
        .unwrap();
    assert_eq!(g, Handle::GLOBAL);
    assert!(matches!(
        dl.dlsym(&mut store, g, "twice").unwrap(),
        Symbol::Func { .. }
    ));
    dl.dlclose(g).unwrap();
    // Mode bits.
    let f = OpenFlags::from_mode(OpenFlags::RTLD_NOW | OpenFlags::RTLD_NOLOAD).unwrap();
    assert!(f.no_load && !f.global);
    assert!(OpenFlags::from_mode(0x8).unwrap_err().contains("0x8"));
}

/// Exception tags imported from `env` are one tag per name for every
/// module: a library throws `__cpp_exception`, another catches it, and a
/// `__c_longjmp` of its own type lives beside it; a module importing a tag
/// under a known name with another type does not link. Where the backend
/// runs no exceptions, the first such module is refused by name.
pub fn shared_exception_tags<B: Backend>() {
    let thrower = wat::parse_str(
        r#"(module (@dylink.0)
             (import "env" "__cpp_exception" (tag $e (param i32)))
             (import "env" "__c_longjmp" (tag $j (param i32)))
             (func (export "throw_it") (param i32) (throw $e (local.get 0))))"#,
    )
    .unwrap();
    let catcher = wat::parse_str(
        r#"(module (@dylink.0)
             (import "env" "__cpp_exception" (tag $e (param i32)))
             (import "env" "__c_longjmp" (tag $j (param i32)))
             (import "env" "throw_it" (func $throw (param i32)))
             ;; The payload of a `__cpp_exception` from the other library;
             ;; a `__c_longjmp` is not one and is not caught here.
             (func (export "catch_it") (param i32) (result i32)
               (block $c (result i32)
                 (try_table (catch $e $c) (call $throw (local.get 0)))
                 (i32.const -1)))
             (func (export "longjmp_caught") (result i32)
               (block $c (result i32)
                 (try_table (catch $e $c) (throw $j (i32.const 1)))
                 (i32.const -1))))"#,
    )
    .unwrap();
    let mut f = Features::default();
    f.exceptions = true;
    let mut config = Config::new();
    config.features(f);
    if !B::capabilities().features.exceptions {
        let (mut store, mut dl) = setup::<B>(Linker::new());
        let err = dl
            .load_bytes(&mut store, "libthrow.so", thrower)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported { feature, .. }
                if feature.contains("__cpp_exception") && feature.contains("no exceptions")),
            "{}: {err:?}",
            B::NAME
        );
        return;
    }
    let engine = Engine::<B>::new(&config).unwrap();
    let mut store = Store::new(&engine, ());
    let mut dl = DynamicLinker::new(
        &mut store,
        LinkerConfig::new().search_dir(fixtures()),
        Linker::new(),
    )
    .unwrap();
    dl.load_bytes(&mut store, "libthrow.so", thrower).unwrap();
    dl.load_bytes(&mut store, "libcatch.so", catcher).unwrap();
    assert_eq!(
        call_sym(&mut store, &mut dl, "catch_it", &[42]),
        42,
        "{}",
        B::NAME
    );
    let f = dl.func(&mut store, "longjmp_caught").unwrap();
    assert!(
        matches!(
            f.invoke(&mut store, &[]),
            Err(anywasm::Error::Trap {
                code: TrapCode::UncaughtException,
                ..
            })
        ),
        "{}",
        B::NAME
    );
    // The store goes on.
    assert_eq!(call_sym(&mut store, &mut dl, "catch_it", &[7]), 7);
    let wrong = wat::parse_str(
        r#"(module (@dylink.0) (import "env" "__cpp_exception" (tag (param i64))))"#,
    )
    .unwrap();
    let err = dl.load_bytes(&mut store, "libwrong.so", wrong).unwrap_err();
    assert!(
        matches!(&err, Error::SignatureMismatch { symbol, .. } if symbol == "__cpp_exception"),
        "{}: {err:?}",
        B::NAME
    );
}

macro_rules! linker_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            linker_tests!(@cases $b;
                main_calls_side_modules, data_pointer_across_modules, function_pointers_are_equal,
                constructors_run_after_dependencies, weak_undefined_symbols_are_null,
                missing_symbol_is_a_clear_error, circular_dependencies, dlopen_dlsym_dlclose,
                names_outside_the_search_path_are_refused, bad_modules_are_refused, wat_side_module,
                host_functions_are_symbols, shared_memory_combination, guest_calls_dlopen,
                guest_noload_loads_nothing, linker_symbols_on_every_load,
                dlopen_after_growth_goes_beyond_the_heap, main_program_overrides_library_symbols,
                relocations_when_the_start_function_is_another,
                a_file_is_loaded_once_whatever_its_name, handles_and_open_flags,
                wasi_program_with_side_modules, a_command_runs_its_own_constructors,
                emscripten_side_modules, shared_exception_tags);
        }
    };
    (@cases $b:ty; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                super::$case::<$b>();
            }
        )*
    };
}

linker_tests!(wasmtime, anywasm::Wasmtime);
linker_tests!(wasmi, anywasm::Wasmi);
linker_tests!(wasmer, anywasm::Wasmer);
