//! The plugin runtime on every backend: tests are named `<backend>::<case>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anywasm::{Backend, TrapCode, ValType};
use anywasm_plugin::{Format, Manifest, Number, PluginError, PluginRuntime, ReloadEvent};
use serde::{Deserialize, Serialize};

const HOSTILE: &str = include_str!("fixtures/hostile.wat");
const HOSTS: &str = include_str!("fixtures/hosts.wat");
const C_PLUGIN: &[u8] = include_bytes!("../../plugins/file_icons_c.wasm");
const RUST_PLUGIN: &[u8] = include_bytes!("../../plugins/file_icons_rs.wasm");
/// The same plugin in AssemblyScript with `pdk/assemblyscript` (JSON only).
const AS_PLUGIN: &[u8] = include_bytes!("../../plugins/file_icons_as.wasm");

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct Event {
    kind: String,
    path: String,
    size: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Decision {
    icon: String,
    priority: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Counts {
    calls: u64,
    initialized: u64,
}

fn event(path: &str, size: u64) -> Event {
    Event {
        kind: "open".into(),
        path: path.into(),
        size,
    }
}

fn runtime<B: Backend>() -> PluginRuntime<B> {
    PluginRuntime::<B>::builder()
        .host(|h| {
            h.register("double", |_ctx, x: i64| {
                if x < 0 {
                    Err(format!("negative: {x}"))
                } else {
                    Ok(x * 2)
                }
            });
            h.register_numeric("add3", &[ValType::I32; 3], &[ValType::I32], |_ctx, args| {
                let sum = args
                    .iter()
                    .map(|a| if let Number::I32(v) = a { *v } else { 0 })
                    .sum();
                Ok(vec![Number::I32(sum)])
            });
            h.json_handler("greet", |ctx, params| {
                Ok(serde_json::json!({"hello": params["name"], "from": &*ctx.plugin}))
            });
        })
        .build()
        .unwrap()
}

fn hostile<B: Backend>(
    rt: &PluginRuntime<B>,
    m: impl FnOnce(Manifest) -> Manifest,
) -> anywasm_plugin::Plugin<B> {
    rt.load(m(Manifest::from_bytes("hostile", HOSTILE)
        .format(Format::Raw)
        .allow("anywasm.echo")))
        .unwrap()
}

fn echo_works<B: Backend>(p: &anywasm_plugin::Plugin<B>) {
    assert_eq!(p.call_raw("echo", b"still here").unwrap(), b"still here");
}

/// The C, Rust and AssemblyScript example plugins, called with structs in
/// every format each declares.
pub fn example_plugins_in_both_formats<B: Backend>() {
    let rt = runtime::<B>();
    let all = &[Format::MsgPack, Format::Json, Format::Hybrid][..];
    for (name, bytes, formats) in [
        ("c", C_PLUGIN, all),
        ("rust", RUST_PLUGIN, all),
        ("assemblyscript", AS_PLUGIN, &[Format::Json][..]),
    ] {
        for &format in formats {
            let plugin = rt
                .load(
                    Manifest::from_bytes(format!("icons-{name}"), bytes)
                        .format(format)
                        .config("theme", "dark")
                        .allow("anywasm.calc")
                        .allow("anywasm.echo"),
                )
                .unwrap_or_else(|e| panic!("{name} {format:?}: {e}"));
            let d: Decision = plugin
                .call("handle_event", &event("src/main.rs", 2_500_000))
                .unwrap();
            assert_eq!(
                d,
                Decision {
                    icon: "dark/rust".into(),
                    priority: 8
                },
                "{name} {format:?}"
            );
            let d: Decision = plugin
                .call("handle_event", &event("README.md", 100))
                .unwrap();
            assert_eq!(
                d,
                Decision {
                    icon: "dark/markdown".into(),
                    priority: 10
                }
            );
            let mut delete = event("big.wasm", 50_000_000);
            delete.kind = "delete".into();
            let d: Decision = plugin.call("handle_event", &delete).unwrap();
            assert_eq!(
                d,
                Decision {
                    icon: "dark/webassembly".into(),
                    priority: 0
                }
            );
            let counts: Counts = plugin.call("stats", &()).unwrap();
            assert_eq!(
                counts,
                Counts {
                    calls: 3,
                    initialized: 1
                },
                "{name} {format:?}"
            );
            assert_eq!(
                plugin.call_raw("echo_via_host", b"\x00raw\xff").unwrap(),
                b"\x00raw\xff"
            );
        }
    }
    let meta = rt
        .load(Manifest::from_bytes("m", RUST_PLUGIN).allow("anywasm.*"))
        .unwrap()
        .metadata();
    assert_eq!(
        (meta.name.as_deref(), meta.version.as_deref()),
        (Some("file-icons-rs"), Some("1.0.0"))
    );
}

/// A guest error is a typed value and keeps the instance.
pub fn guest_errors_are_values<B: Backend>() {
    let rt = runtime::<B>();
    let plugin = rt
        .load(
            Manifest::from_bytes("icons", C_PLUGIN)
                .allow("anywasm.calc")
                .allow("anywasm.echo"),
        )
        .unwrap();
    match plugin.call::<_, Decision>("handle_event", &event("", 1)) {
        Err(PluginError::Guest {
            message, function, ..
        }) => {
            assert_eq!(
                (message.as_str(), function.as_str()),
                ("empty path", "handle_event")
            );
        }
        other => panic!("{}: expected a guest error, got {other:?}", B::NAME),
    }
    #[derive(Serialize)]
    struct Wrong {
        nope: u32,
    }
    assert!(matches!(
        plugin.call::<_, Decision>("handle_event", &Wrong { nope: 1 }),
        Err(PluginError::Guest { .. })
    ));
    let d: Decision = plugin.call("handle_event", &event("a.c", 1)).unwrap();
    assert_eq!(d.icon, "c");
    // The instance survived the guest errors: it counts the calls.
    let c: Counts = plugin.call("stats", &()).unwrap();
    assert_eq!(
        c,
        Counts {
            calls: 1,
            initialized: 1
        }
    );
    assert!(matches!(
        plugin.call_raw("no_such", b""),
        Err(PluginError::NoSuchFunction { .. })
    ));
}

/// The AssemblyScript PDK: guest errors as values (the instance stays),
/// a format it does not declare refused at load, malformed JSON a guest
/// error, not a trap.
pub fn assemblyscript_pdk_errors<B: Backend>() {
    let rt = runtime::<B>();
    let m = || {
        Manifest::from_bytes("icons-as", AS_PLUGIN)
            .allow("anywasm.calc")
            .allow("anywasm.echo")
    };
    assert!(matches!(
        rt.load(m().format(Format::MsgPack)),
        Err(PluginError::FormatNotSupported { .. })
    ));
    let plugin = rt.load(m().format(Format::Json)).unwrap();
    match plugin.call::<_, Decision>("handle_event", &event("", 1)) {
        Err(PluginError::Guest { message, .. }) => assert_eq!(message, "empty path"),
        other => panic!("{}: {other:?}", B::NAME),
    }
    for bad in [&b"not json"[..], b"[1,2]", b"{\"kind\":\"open\"}"] {
        match plugin.call_raw("handle_event", bad) {
            Err(PluginError::Guest { message, .. }) => {
                assert_eq!(message, "handle_event expects {kind, path, size}")
            }
            other => panic!("{}: {:?}: {other:?}", B::NAME, String::from_utf8_lossy(bad)),
        }
    }
    let d: Decision = plugin.call("handle_event", &event("lib.h", 1)).unwrap();
    assert_eq!(d.icon, "c");
    let c: Counts = plugin.call("stats", &()).unwrap();
    assert_eq!(
        c,
        Counts {
            calls: 1,
            initialized: 1
        },
        "the instance survived the guest errors"
    );
}

/// Serde, numeric and built-in host functions, and their errors as values.
pub fn host_functions<B: Backend>() {
    let rt = runtime::<B>();
    let load = |format| {
        rt.load(
            Manifest::from_bytes("hosts", HOSTS)
                .format(format)
                .config("colour", "teal")
                .allow("anywasm.*")
                .allow("host.double")
                .allow("host.add3"),
        )
        .unwrap()
    };
    for format in [Format::MsgPack, Format::Json] {
        let p = load(format);
        assert_eq!(p.call::<i64, i64>("double", &21).unwrap(), 42, "{format:?}");
        // A host function's error reaches the guest as an error value.
        match p.call::<i64, i64>("double", &-1) {
            Err(PluginError::Guest { message, .. }) => assert_eq!(message, "negative: -1"),
            other => panic!("{}: {other:?}", B::NAME),
        }
    }
    let p = load(Format::Raw);
    assert_eq!(p.call_raw("config", b"colour").unwrap(), b"teal");
    assert!(matches!(
        p.call_raw("config", b"missing"),
        Err(PluginError::Guest { .. })
    ));
    let out = p
        .call_raw("json", br#"{"name":"greet","params":{"name":"ada"}}"#)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, serde_json::json!({"hello": "ada", "from": "hosts"}));
    match p.call_raw("json", br#"{"name":"nobody"}"#) {
        Err(PluginError::Guest { message, .. }) => assert!(message.contains("nobody"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.call_raw("put_get", br#"{"k":[1,2]}"#).unwrap(),
        br#"{"k":[1,2]}"#
    );
    assert!(matches!(
        p.call_raw("put_get", b"not json"),
        Err(PluginError::Guest { .. })
    ));
    let nums = p.call_raw("numbers", b"").unwrap();
    let words: Vec<u32> = nums
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(words, [35, 6, 0]);
    // The key/value store belongs to the plugin: another plugin starts empty.
    let other = rt
        .load(
            Manifest::from_bytes("hosts2", HOSTS)
                .format(Format::Raw)
                .allow("anywasm.*")
                .allow("host.*"),
        )
        .unwrap();
    assert_eq!(other.call_raw("put_get", b"1").unwrap(), b"1");
}

/// Fuel, memory, stack and deadline limits: typed errors, then a working call.
pub fn every_limit_is_a_typed_error_and_the_next_call_works<B: Backend>() {
    let rt = runtime::<B>();
    let p = hostile(&rt, |m| m.fuel(5_000_000).max_memory_pages(32));
    assert!(
        matches!(p.call_raw("spin", b""), Err(PluginError::OutOfFuel { .. })),
        "{}",
        B::NAME
    );
    echo_works(&p);
    match p.call_raw("bomb", b"") {
        Err(PluginError::MemoryLimit { detail, .. }) => {
            assert!(detail.contains("32 pages"), "{detail}")
        }
        other => panic!("{}: expected a memory limit, got {other:?}", B::NAME),
    }
    echo_works(&p);
    match p.call_raw("recurse", b"") {
        Err(PluginError::Trap {
            code: TrapCode::StackOverflow,
            ..
        }) => {}
        other => panic!("{}: expected a stack overflow, got {other:?}", B::NAME),
    }
    echo_works(&p);
    assert!(matches!(
        p.call_raw("trap", b""),
        Err(PluginError::Trap {
            code: TrapCode::Unreachable,
            ..
        })
    ));
    echo_works(&p);
    let p = hostile(&rt, |m| m.deadline(Duration::from_millis(100)));
    assert!(
        matches!(p.call_raw("spin", b""), Err(PluginError::Deadline { .. })),
        "{}",
        B::NAME
    );
    echo_works(&p);
    // A big input that the memory limit does not allow.
    let p = hostile(&rt, |m| m.max_memory_pages(2));
    assert!(matches!(
        p.call_raw("echo", &vec![7u8; 200_000]),
        Err(PluginError::AbiViolation { .. })
    ));
    echo_works(&p);
    assert_eq!(p.stats().errors, 1);
}

/// Bad pointers and undecodable output are ABI violations.
pub fn abi_violations_are_typed_errors<B: Backend>() {
    let rt = runtime::<B>();
    let p = hostile(&rt, |m| m);
    for f in ["bad_output", "bad_host_ptr"] {
        match p.call_raw(f, b"") {
            Err(PluginError::AbiViolation { function, .. }) => assert_eq!(function, f),
            other => panic!("{}: {f}: expected an ABI violation, got {other:?}", B::NAME),
        }
        echo_works(&p);
    }
    let p = rt
        .load(
            Manifest::from_bytes("hostile-mp", HOSTILE)
                .format(Format::MsgPack)
                .allow("anywasm.echo"),
        )
        .unwrap();
    match p.call::<u32, String>("bad_msgpack", &1) {
        Err(PluginError::AbiViolation { detail, .. }) => {
            assert!(detail.contains("MessagePack"), "{detail}")
        }
        other => panic!("{}: expected an ABI violation, got {other:?}", B::NAME),
    }
    assert_eq!(
        p.call::<String, String>("echo", &"fine".into()).unwrap(),
        "fine"
    );
    match p.call_raw("fail", b"") {
        Err(PluginError::Guest { message, .. }) => assert_eq!(message, "something went wrong"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.call_raw("not_a_plugin_function", b""),
        Err(PluginError::NoSuchFunction { .. })
    ));
}

/// Imports not granted, missing metadata, wrong ABI or format: refused at load.
pub fn bad_plugins_do_not_load<B: Backend>() {
    let rt = runtime::<B>();
    // Not granted: echo without `allow`.
    match rt.load(Manifest::from_bytes("h", HOSTILE).format(Format::Raw)) {
        Err(PluginError::ImportNotGranted { module, name, .. }) => {
            assert_eq!((module.as_str(), name.as_str()), ("anywasm", "echo"))
        }
        other => panic!("{}: {other:?}", B::NAME),
    }
    let wasi = r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1) (func (export "anywasm_alloc") (param i32) (result i32) i32.const 0)
        (@custom "anywasm.plugin" "{\"abi\":1}"))"#;
    assert!(matches!(
        rt.load(Manifest::from_bytes("w", wasi).allow("wasi_snapshot_preview1.*")),
        Err(PluginError::ImportNotGranted { .. })
    ));
    let no_meta = "(module (memory (export \"memory\") 1))";
    assert!(matches!(
        rt.load(Manifest::from_bytes("n", no_meta)),
        Err(PluginError::NotAPlugin { .. })
    ));
    let v2 = r#"(module (memory (export "memory") 1) (@custom "anywasm.plugin" "{\"abi\":2}"))"#;
    assert!(matches!(
        rt.load(Manifest::from_bytes("v", v2)),
        Err(PluginError::AbiVersion { found: 2, .. })
    ));
    let json_only = r#"(module (memory (export "memory") 1)
        (func (export "anywasm_alloc") (param i32) (result i32) i32.const 0)
        (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"json\"]}"))"#;
    assert!(matches!(
        rt.load(Manifest::from_bytes("j", json_only).format(Format::MsgPack)),
        Err(PluginError::FormatNotSupported { .. })
    ));
    assert!(
        rt.load(Manifest::from_bytes("j", json_only).format(Format::Json))
            .is_ok()
    );
    let no_alloc =
        r#"(module (memory (export "memory") 1) (@custom "anywasm.plugin" "{\"abi\":1}"))"#;
    assert!(matches!(
        rt.load(Manifest::from_bytes("a", no_alloc)),
        Err(PluginError::AbiViolation { .. })
    ));
    assert!(matches!(
        rt.load(Manifest::from_bytes("x", b"\0asm\x01\0\0\0\x01".to_vec())),
        Err(PluginError::Engine { .. })
    ));
    assert!(matches!(
        rt.load(Manifest::from_file("f", "/nonexistent.wasm")),
        Err(PluginError::Io { .. })
    ));
}

/// Eight threads share one plugin; no result goes to the wrong caller.
pub fn concurrent_calls_from_eight_threads<B: Backend>() {
    let rt = runtime::<B>();
    let p = hostile(&rt, |m| m.max_instances(3));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..60u32 {
                    let payload = format!(
                        "thread {t} call {i} {}",
                        "x".repeat((i * 37 % 300) as usize)
                    );
                    let out = p.call_raw("echo", payload.as_bytes()).unwrap();
                    assert_eq!(out, payload.as_bytes(), "a result went to the wrong caller");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = p.stats();
    assert_eq!((s.calls, s.errors), (480, 0));
    assert!(s.instances_created <= 3, "the pool is bounded: {s:?}");
}

/// The same bytes compile once.
pub fn modules_are_cached_by_content<B: Backend>() {
    let rt = runtime::<B>();
    let a = rt
        .load(
            Manifest::from_bytes("a", HOSTILE)
                .allow("anywasm.echo")
                .format(Format::Raw),
        )
        .unwrap();
    let b = rt
        .load(
            Manifest::from_bytes("b", HOSTILE)
                .allow("anywasm.echo")
                .format(Format::Raw),
        )
        .unwrap();
    assert_eq!(rt.cache_stats(), (1, 1));
    echo_works(&a);
    echo_works(&b);
}

/// With a `cache_dir`, a second runtime (as in a second process) loads the
/// plugin's compiled code from disk where the engine keeps compiled code,
/// and the plugin works the same; a directory others may write to is refused.
pub fn compiled_code_is_kept_on_disk<B: Backend>() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("code");
    let load = || {
        let rt = PluginRuntime::<B>::builder()
            .cache_dir(&cache)
            .build()
            .unwrap();
        let p = rt
            .load(
                Manifest::from_bytes("a", HOSTILE)
                    .allow("anywasm.echo")
                    .format(Format::Raw),
            )
            .unwrap();
        echo_works(&p);
        (rt.cache_stats().0, rt.code_cache_loads())
    };
    let keeps = B::capabilities().precompiled_modules;
    assert_eq!(load(), (1, 0), "{}", B::NAME);
    let second = if keeps { (0, 1) } else { (1, 0) };
    assert_eq!(load(), second, "{}", B::NAME);
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        usize::from(keeps)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = PluginRuntime::<B>::builder()
            .cache_dir(&cache)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("others may write"), "{err}");
    }
}

fn versioned(version: &str, state_export: &str) -> String {
    format!(
        r#"(module
        (memory (export "memory") 1)
        (global $state (mut i32) (i32.const 0))
        (data (i32.const 16) "{version}")
        (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 4096))
        (func (export "version") (param i32 i32) (result i64) (i64.const 0x0000001000000002))
        (func (export "bump") (param i32 i32) (result i64)
          (global.set $state (i32.add (global.get $state) (i32.const 1)))
          (i32.store (i32.const 64) (global.get $state))
          (i64.const 0x0000004000000004))
        {state_export}
        (@custom "anywasm.plugin" "{{\"abi\":1,\"formats\":[\"raw\"]}}"))"#
    )
}

const SAVE: &str = r#"(func (export "anywasm_state_save") (param i32 i32) (result i64)
    (i32.store (i32.const 64) (global.get $state)) (i64.const 0x0000004000000004))"#;
const LOAD: &str = r#"(func (export "anywasm_state_load") (param i32 i32) (result i64)
    (global.set $state (i32.load (local.get 0))) (i64.const 0))"#;

/// Hot reload with calls running, a state hand-over and a broken file.
pub fn hot_reload_swaps_and_keeps_serving<B: Backend>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wat");
    std::fs::write(&path, versioned("v1", SAVE)).unwrap();
    let rt = runtime::<B>();
    let p = rt
        .load(
            Manifest::from_file("reloading", &path)
                .format(Format::Raw)
                .max_instances(1),
        )
        .unwrap();
    assert_eq!(p.call_raw("version", b"").unwrap(), b"v1");
    for _ in 0..5 {
        p.call_raw("bump", b"").unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = p.watch(move |e| drop(tx.send(e))).unwrap();

    // Calls keep running while the code is swapped.
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                let v = p
                    .call_raw("version", b"")
                    .expect("no call fails during a reload");
                *seen.entry(v).or_insert(0) += 1;
            }
            seen
        })
    };
    std::fs::write(&path, versioned("v2", &format!("{SAVE}{LOAD}"))).unwrap();
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(ReloadEvent::Reloaded { generation }) => assert_eq!(generation, 2),
        other => panic!("{}: expected a reload, got {other:?}", B::NAME),
    }
    assert_eq!(p.call_raw("version", b"").unwrap(), b"v2");
    // The state was handed over: the counter continues from 5.
    assert_eq!(p.call_raw("bump", b"").unwrap(), 6u32.to_le_bytes());

    // A broken file leaves v2 serving and reports the error.
    std::fs::write(&path, "(module (func $oops").unwrap();
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(ReloadEvent::Failed { .. }) => {}
        other => panic!("{}: expected a failed reload, got {other:?}", B::NAME),
    }
    assert_eq!(p.call_raw("version", b"").unwrap(), b"v2");
    stop.store(true, Ordering::SeqCst);
    let seen = caller.join().unwrap();
    assert!(seen.contains_key(b"v2".as_slice()), "{seen:?}");
    drop(watcher);
    assert_eq!(p.generation(), 2);
    assert_eq!(p.stats().reloads, 1);
}

/// Reloads started at once take turns: each swaps the code in its turn,
/// and the generations follow one another.
pub fn concurrent_reloads_take_turns<B: Backend>() {
    let rt = runtime::<B>();
    let p = rt
        .load(
            Manifest::from_bytes("turns", versioned("v1", SAVE))
                .format(Format::Raw)
                .max_instances(1),
        )
        .unwrap();
    let reloads: Vec<_> = ["v2", "v3", "v4"]
        .into_iter()
        .map(|v| {
            let (p, bytes) = (p.clone(), versioned(v, SAVE));
            std::thread::spawn(move || p.reload(bytes.as_bytes()))
        })
        .collect();
    let mut numbers: Vec<u64> = reloads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [2, 3, 4], "{}", B::NAME);
    assert_eq!(p.generation(), 4, "{}", B::NAME);
    assert_eq!(p.stats().reloads, 3, "{}", B::NAME);
    let v = p.call_raw("version", b"").unwrap();
    assert!(
        ["v2", "v3", "v4"].contains(&&*String::from_utf8_lossy(&v)),
        "{}",
        B::NAME
    );
}

/// A JSON manifest with limits, config and grants.
pub fn manifest_from_json<B: Backend>() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hostile.wat"), HOSTILE).unwrap();
    let manifest = dir.path().join("plugin.json");
    std::fs::write(
        &manifest,
        r#"{"id": "from-json", "wasm": "hostile.wat", "format": "raw",
            "limits": {"fuel": 100000, "deadline": 5000, "max_memory_pages": 8},
            "config": {"a": "b"}, "allow": ["anywasm.echo"], "max_instances": 2}"#,
    )
    .unwrap();
    let m = Manifest::from_json_file(&manifest).unwrap();
    assert_eq!(m.get_limits().fuel, Some(100_000));
    let p = runtime::<B>().load(m).unwrap();
    assert_eq!(p.id(), "from-json");
    echo_works(&p);
    assert!(matches!(
        p.call_raw("spin", b""),
        Err(PluginError::OutOfFuel { .. })
    ));
    std::fs::write(&manifest, r#"{"id": "x", "wasm": "a.wasm", "colour": 1}"#).unwrap();
    assert!(matches!(
        Manifest::from_json_file(&manifest),
        Err(PluginError::Manifest(_))
    ));
}

/// A host function of the application that panics: the panic reaches the
/// caller of `call`, and the plugin keeps serving, more times over than it
/// has instances.
pub fn host_function_panics_reach_the_caller_and_the_plugin_survives<B: Backend>() {
    let rt = PluginRuntime::<B>::builder()
        .host(|h| {
            h.register("double", |_ctx, x: i64| -> Result<i64, String> {
                assert!(x != 13, "unlucky {x}");
                Ok(x * 2)
            });
            // The fixture imports it too.
            h.register_numeric("add3", &[ValType::I32; 3], &[ValType::I32], |_, _| {
                Ok(vec![Number::I32(0)])
            });
        })
        .build()
        .unwrap();
    let p = rt
        .load(
            Manifest::from_bytes("hosts", HOSTS)
                .format(Format::MsgPack)
                .allow("anywasm.*")
                .allow("host.*")
                .max_instances(2),
        )
        .unwrap();
    for _ in 0..5 {
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = p.call::<i64, i64>("double", &13);
        }))
        .expect_err("the host function's panic reaches the caller");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(message, "unlucky 13", "{}", B::NAME);
        assert_eq!(
            p.call::<i64, i64>("double", &21).unwrap(),
            42,
            "{}",
            B::NAME
        );
    }
    let stats = p.stats();
    assert_eq!((stats.calls, stats.errors), (10, 5), "{}", B::NAME);
}

macro_rules! plugin_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            plugin_tests!(@cases $b;
                example_plugins_in_both_formats, guest_errors_are_values, assemblyscript_pdk_errors,
                host_functions,
                every_limit_is_a_typed_error_and_the_next_call_works, abi_violations_are_typed_errors,
                bad_plugins_do_not_load, concurrent_calls_from_eight_threads,
                modules_are_cached_by_content, compiled_code_is_kept_on_disk, hot_reload_swaps_and_keeps_serving, concurrent_reloads_take_turns, manifest_from_json,
                host_function_panics_reach_the_caller_and_the_plugin_survives);
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

plugin_tests!(wasmtime, anywasm::Wasmtime);
plugin_tests!(wasmi, anywasm::Wasmi);
plugin_tests!(wasmer, anywasm::Wasmer);

/// The README's `no_run` blocks are examples that CI runs
/// (`examples/readme_plugin_host.rs`, `examples/readme_wasi.rs`,
/// `examples/readme_extism.rs`): block and example must not drift apart.
#[test]
fn readme_blocks_are_the_examples() {
    let readme = include_str!("../../README.md");
    for (section, example, name) in [
        (
            "### A plugin host",
            include_str!("../examples/readme_plugin_host.rs"),
            "readme_plugin_host",
        ),
        (
            "### WASI programs",
            include_str!("../examples/readme_wasi.rs"),
            "readme_wasi",
        ),
        (
            "### Extism plugins",
            include_str!("../examples/readme_extism.rs"),
            "readme_extism",
        ),
    ] {
        let start = readme.find(section).expect("the README's section");
        let block = &readme[start..];
        let block = &block[block.find("```rust,no_run\n").expect("its code block") + 15..];
        let block = &block[..block.find("```").expect("the block's end")];
        // Compared without white space: rustfmt lays the example out its way.
        let squeeze = |s: &str| s.split_whitespace().collect::<String>();
        assert!(
            squeeze(example).ends_with(&squeeze(block)),
            "README.md ({section}) and examples/{name}.rs differ"
        );
    }
}
