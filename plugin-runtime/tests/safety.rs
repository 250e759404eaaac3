//! A bad plugin cannot hang or exhaust the application, on every backend:
//! default limits, cancellation, panics and contention, reload semantics,
//! typed host errors, size limits and the key/value store. Tests are
//! `<backend>::<case>`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anywasm::{Backend, ValType};
use anywasm_plugin::{
    Format, Limits, Manifest, Number, Plugin, PluginError, PluginRuntime, PluginRuntimeBuilder,
};

const SAFETY: &str = include_str!("fixtures/safety.wat");

/// What the host functions of a test do, switched from the test.
#[derive(Default)]
struct Switches {
    panic_in_init: AtomicBool,
    panic_in_save: AtomicBool,
    plugin: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
    /// Calls of `host.note` (a `shutdown` export's mark).
    notes: AtomicUsize,
}

fn runtime<B: Backend>(switches: &Arc<Switches>) -> PluginRuntime<B> {
    builder::<B>(switches).build().unwrap()
}

fn builder<B: Backend>(switches: &Arc<Switches>) -> PluginRuntimeBuilder<B> {
    let (s1, s2, s3) = (switches.clone(), switches.clone(), switches.clone());
    let s4 = switches.clone();
    PluginRuntime::<B>::builder().host(move |h| {
        h.register_numeric("init_hook", &[], &[], move |_, _| {
            if s1.panic_in_init.load(Ordering::SeqCst) {
                panic!("initialize hook panics");
            }
            Ok(vec![])
        });
        h.register_numeric("save_hook", &[], &[], move |_, _| {
            if s2.panic_in_save.load(Ordering::SeqCst) {
                panic!("state save hook panics");
            }
            Ok(vec![])
        });
        h.register_numeric(
            "fail_num",
            &[ValType::I32],
            &[ValType::I32],
            |_, args| match args {
                [Number::I32(x)] if *x < 0 => Err(format!("negative: {x}")),
                [Number::I32(x)] => Ok(vec![Number::I32(*x)]),
                _ => Err("bad arguments".into()),
            },
        );
        h.register_numeric("reenter", &[], &[ValType::I32], move |_, _| {
            let refused = s3.plugin.get().is_some_and(|f| f());
            Ok(vec![Number::I32(i32::from(refused))])
        });
        h.register_numeric("note", &[], &[], move |_, _| {
            s4.notes.fetch_add(1, Ordering::SeqCst);
            Ok(vec![])
        });
        h.register_numeric("nap", &[ValType::I32], &[], |_, args| {
            if let [Number::I32(ms)] = args {
                std::thread::sleep(Duration::from_millis(*ms as u64));
            }
            Ok(vec![])
        });
    })
}

fn load<B: Backend>(
    runtime: &PluginRuntime<B>,
    wat: &str,
    f: impl FnOnce(Manifest) -> Manifest,
) -> Plugin<B> {
    let bytes = wat::parse_str(wat).unwrap();
    runtime
        .load(f(Manifest::from_bytes("safety", bytes)
            .format(Format::Raw)
            .allow("host.*")))
        .unwrap()
}

fn i32_out(r: anywasm_plugin::Result<Vec<u8>>) -> i32 {
    let bytes = r.unwrap();
    i32::from_le_bytes(bytes[..4].try_into().unwrap())
}

/// Under the default limits an infinite loop ends with a deadline error
/// after about a second, and the next call works.
pub fn default_limits_stop_an_infinite_loop<B: Backend>() {
    let switches = Arc::default();
    let rt = runtime::<B>(&switches);
    let plugin = load(&rt, SAFETY, |m| m);
    assert_eq!(plugin.manifest().get_limits(), &Limits::default());
    let started = Instant::now();
    let r = plugin.call_raw("spin", b"");
    assert!(
        matches!(r, Err(PluginError::Deadline { .. })),
        "{}: {r:?}",
        B::NAME
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{}: {took:?}",
        B::NAME
    );
    assert_eq!(plugin.call_raw("echo", b"ok").unwrap(), b"ok");
}

/// A cancel handle ends a call in flight from another thread with
/// `Cancelled`; a cancellation while nothing runs does not touch the next
/// call.
pub fn cancel_ends_calls_in_flight<B: Backend>() {
    let switches = Arc::default();
    let rt = runtime::<B>(&switches);
    let plugin = load(&rt, SAFETY, |m| m.limits(Limits::unlimited()));
    let cancel = plugin.cancel_handle();
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.cancel();
        })
    };
    let r = plugin.call_raw("spin", b"");
    canceller.join().unwrap();
    assert!(
        matches!(r, Err(PluginError::Cancelled { .. })),
        "{}: {r:?}",
        B::NAME
    );
    assert_eq!(plugin.call_raw("echo", b"again").unwrap(), b"again");
    cancel.cancel();
    assert_eq!(plugin.call_raw("echo", b"still").unwrap(), b"still");
}

/// Panics in `initialize` and in `anywasm_state_save` lose no pool place:
/// with one instance, calls go on afterwards instead of waiting forever.
pub fn panics_lose_no_instance<B: Backend>() {
    let switches: Arc<Switches> = Arc::default();
    let rt = runtime::<B>(&switches);
    let plugin = load(&rt, SAFETY, |m| {
        m.max_instances(1).acquire_timeout(Duration::from_secs(2))
    });
    for _ in 0..3 {
        // The instance traps and is replaced; its replacement's
        // `initialize` panics, and the panic reaches the caller.
        assert!(matches!(
            plugin.call_raw("trap", b""),
            Err(PluginError::Trap { .. })
        ));
        switches.panic_in_init.store(true, Ordering::SeqCst);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            plugin.call_raw("echo", b"x")
        }));
        assert!(
            r.is_err(),
            "{}: initialize's panic did not reach the caller",
            B::NAME
        );
        switches.panic_in_init.store(false, Ordering::SeqCst);
        assert_eq!(plugin.call_raw("echo", b"x").unwrap(), b"x", "{}", B::NAME);
    }
    switches.panic_in_save.store(true, Ordering::SeqCst);
    let v2 = wat::parse_str(SAFETY.replace(
        "(global $version i32 (i32.const 1))",
        "(global $version i32 (i32.const 2))",
    ))
    .unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plugin.reload(&v2)));
    assert!(
        r.is_err(),
        "{}: state save's panic did not reach the caller",
        B::NAME
    );
    switches.panic_in_save.store(false, Ordering::SeqCst);
    assert_eq!(i32_out(plugin.call_raw("version", b"")), 1, "{}", B::NAME);
    plugin.reload(&v2).unwrap();
    assert_eq!(i32_out(plugin.call_raw("version", b"")), 2, "{}", B::NAME);
}

/// With every instance busy, a call waits at most `acquire_timeout` and
/// fails with `Busy`.
pub fn busy_pool_times_out<B: Backend>() {
    let switches = Arc::default();
    let rt = runtime::<B>(&switches);
    let plugin = load(&rt, SAFETY, |m| {
        m.max_instances(1)
            .acquire_timeout(Duration::from_millis(100))
    });
    let busy = {
        let plugin = plugin.clone();
        std::thread::spawn(move || plugin.call_raw("slow", &800i32.to_le_bytes()))
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let r = plugin.call_raw("echo", b"x");
    assert!(
        matches!(r, Err(PluginError::Busy { .. })),
        "{}: {r:?}",
        B::NAME
    );
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{}",
        B::NAME
    );
    assert_eq!(i32_out(busy.join().unwrap()), 1);
    assert_eq!(plugin.call_raw("echo", b"x").unwrap(), b"x");
}

/// A host function that calls back into its own plugin gets `Reentrant`
/// at once, even with every instance busy, instead of waiting forever.
pub fn reentrant_calls_are_refused<B: Backend>() {
    let switches: Arc<Switches> = Arc::default();
    let rt = runtime::<B>(&switches);
    let plugin = load(&rt, SAFETY, |m| m.max_instances(1));
    let again = plugin.clone();
    let _ = switches.plugin.set(Box::new(move || {
        matches!(
            again.call_raw("echo", b"x"),
            Err(PluginError::Reentrant { .. })
        ) && matches!(again.reload(b""), Err(PluginError::Reentrant { .. }))
    }));
    assert_eq!(i32_out(plugin.call_raw("reenter", b"")), 1, "{}", B::NAME);
}

/// A numeric host function's error reaches the caller as `PluginError::Host`
/// naming it, on every backend.
pub fn host_errors_are_typed<B: Backend>() {
    let switches = Arc::default();
    let rt = runtime::<B>(&switches);
    let plugin = load(&rt, SAFETY, |m| m);
    match plugin.call_raw("fail_num", b"") {
        Err(PluginError::Host {
            host_function,
            message,
            ..
        }) => {
            assert_eq!(host_function, "fail_num");
            assert_eq!(message, "negative: -1");
        }
        other => panic!("{}: {other:?}", B::NAME),
    }
    assert_eq!(plugin.call_raw("echo", b"x").unwrap(), b"x");
}

/// Output and messages beyond the manifest's limits fail with
/// `LimitExceeded`, before the host copies them.
pub fn size_limits<B: Backend>() {
    let switches = Arc::default();
    let rt = runtime::<B>(&switches);
    let limits = Limits {
        max_output_bytes: Some(8),
        max_message_bytes: Some(1000),
        ..Limits::default()
    };
    let plugin = load(&rt, SAFETY, |m| m.limits(limits));
    assert_eq!(plugin.call_raw("echo", b"12345678").unwrap(), b"12345678");
    let r = plugin.call_raw("echo", b"123456789");
    assert!(
        matches!(
            r,
            Err(PluginError::LimitExceeded {
                what: "output size",
                limit: 8,
                ..
            })
        ),
        "{}: {r:?}",
        B::NAME
    );
    let r = plugin.call_raw("long_error", b"");
    assert!(
        matches!(
            r,
            Err(PluginError::LimitExceeded {
                what: "message size",
                limit: 1000,
                ..
            })
        ),
        "{}: {r:?}",
        B::NAME
    );
}

/// The key/value store by name: set, get, delete, shared by instances and
/// kept across reloads, within its quota.
pub fn key_value_store<B: Backend>() {
    let switches = Arc::default();
    let rt = runtime::<B>(&switches);
    let limits = Limits {
        max_store_bytes: Some(16),
        ..Limits::default()
    };
    let plugin = load(&rt, SAFETY, |m| m.limits(limits).max_instances(2));
    assert_eq!(i32_out(plugin.call_raw("kv_get", b"")), -1);
    assert_eq!(i32_out(plugin.call_raw("kv_set", b"0123456789")), 0);
    assert_eq!(plugin.call_raw("kv_get", b"").unwrap(), b"0123456789");
    // 1 + 20 bytes do not fit in 16.
    assert_eq!(
        i32_out(plugin.call_raw("kv_set", &[7; 20])),
        3,
        "{}",
        B::NAME
    );
    let v2 = wat::parse_str(SAFETY.replace(
        "(global $version i32 (i32.const 1))",
        "(global $version i32 (i32.const 2))",
    ))
    .unwrap();
    plugin.reload(&v2).unwrap();
    assert_eq!(plugin.call_raw("kv_get", b"").unwrap(), b"0123456789");
    assert_eq!(i32_out(plugin.call_raw("kv_delete", b"")), 0);
    assert_eq!(i32_out(plugin.call_raw("kv_delete", b"")), 2);
    assert_eq!(i32_out(plugin.call_raw("kv_set", &[7; 15])), 0);
}

/// `close`: every instance gets its `shutdown` (which here calls
/// `host.note`), then every call and reload, from any handle, is
/// `Closed`; closing again does nothing.
pub fn close_gives_shutdown_then_refuses<B: Backend>() {
    let switches: Arc<Switches> = Arc::default();
    let rt = runtime::<B>(&switches);
    let wat = SAFETY
        .replace(
            "(import \"host\" \"nap\" (func $nap (param i32)))",
            "(import \"host\" \"nap\" (func $nap (param i32)))\n  (import \"host\" \"note\" (func $note))",
        )
        .replace(
            "(func (export \"spin\")",
            "(func (export \"shutdown\") (param i32 i32) (result i64) (call $note) (i64.const 0))\n  (func (export \"spin\")",
        );
    let plugin = load(&rt, &wat, |m| m.max_instances(2));
    // Two calls at once leave two instances in the pool.
    let slow = {
        let plugin = plugin.clone();
        std::thread::spawn(move || plugin.call_raw("slow", &100i32.to_le_bytes()))
    };
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(i32_out(plugin.call_raw("count", b"")), 1);
    slow.join().unwrap().unwrap();
    // Usually two; one if the slow call started late (nothing was discarded).
    let instances = plugin.stats().instances_created as usize;
    assert!(instances >= 1);
    let other = plugin.clone();
    plugin.close().unwrap();
    assert_eq!(
        switches.notes.load(Ordering::SeqCst),
        instances,
        "{}: each instance gets its shutdown once",
        B::NAME
    );
    for r in [
        other.call_raw("count", b""),
        plugin.call_raw("version", b""),
    ] {
        assert!(
            matches!(r, Err(PluginError::Closed { .. })),
            "{}: {r:?}",
            B::NAME
        );
    }
    let v2 = wat::parse_str(&wat).unwrap();
    assert!(matches!(other.reload(&v2), Err(PluginError::Closed { .. })));
    other.close().unwrap();
    drop((plugin, other));
    assert_eq!(
        switches.notes.load(Ordering::SeqCst),
        instances,
        "{}",
        B::NAME
    );
}

/// Reload with a pool: calls in flight finish on the old code; the state of
/// the instance used last is handed over after they finished, so nothing
/// they did is lost; the old instances' `shutdown` runs under the limits.
pub fn reload_drains_then_hands_over<B: Backend>() {
    let switches = Arc::default();
    let rt = runtime::<B>(&switches);
    // Version 1 shuts down by looping forever: its limits must end that.
    let v1 = SAFETY.replace(
        "(func (export \"spin\")",
        "(func (export \"shutdown\") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))\n  (func (export \"spin\")",
    );
    let plugin = load(&rt, &v1, |m| {
        m.max_instances(1).deadline(Duration::from_millis(300))
    });
    assert_eq!(i32_out(plugin.call_raw("count", b"")), 1);
    // A slow call in flight, then the reload.
    let slow = {
        let plugin = plugin.clone();
        std::thread::spawn(move || plugin.call_raw("slow", &150i32.to_le_bytes()))
    };
    std::thread::sleep(Duration::from_millis(50));
    let v2 = wat::parse_str(SAFETY.replace(
        "(global $version i32 (i32.const 1))",
        "(global $version i32 (i32.const 2))",
    ))
    .unwrap();
    let started = Instant::now();
    assert_eq!(plugin.reload(&v2).unwrap(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{}: shutdown ran unbounded",
        B::NAME
    );
    // The slow call ran on version 1 and counted to 2 before the hand-over.
    assert_eq!(i32_out(slow.join().unwrap()), 2, "{}", B::NAME);
    assert_eq!(i32_out(plugin.call_raw("version", b"")), 2);
    assert_eq!(
        i32_out(plugin.call_raw("count", b"")),
        3,
        "{}: the count was lost",
        B::NAME
    );
}

/// The runtime's memory budget is shared by all instances of all plugins,
/// old versions draining after a reload included; what does not fit is a
/// typed error (or -1 from `memory.grow`), and dropped instances give their
/// memory back.
pub fn memory_budget_across_plugins<B: Backend>() {
    const PAGE: u64 = 65536;
    let switches = Arc::default();
    let rt = builder::<B>(&switches)
        .memory_budget(5 * PAGE)
        .build()
        .unwrap();
    let wat = SAFETY;
    let manifest = |id: &str| {
        Manifest::from_bytes(id, wat::parse_str(wat).unwrap())
            .format(Format::Raw)
            .allow("host.*")
            .max_instances(1)
    };
    let a = rt.load(manifest("a")).unwrap();
    let b = rt.load(manifest("b")).unwrap();
    assert_eq!(
        rt.memory_budget(),
        Some((4 * PAGE, 5 * PAGE)),
        "{}",
        B::NAME
    );
    // 4 + 2 pages do not fit in 5; 4 + 1 do.
    assert_eq!(i32_out(a.call_raw("grow", &2i32.to_le_bytes())), -1);
    assert_eq!(i32_out(a.call_raw("grow", &1i32.to_le_bytes())), 2);
    // A third plugin's first instance does not fit.
    match rt.load(manifest("c")) {
        Err(PluginError::MemoryBudget {
            plugin, function, ..
        }) => {
            assert_eq!(plugin, "c");
            assert_eq!(function, "<instantiate>");
        }
        other => panic!("{}: {other:?}", B::NAME),
    }
    // Dropping b gives its 2 pages back.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while rt.memory_budget().unwrap().0 != 3 * PAGE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rt.memory_budget().unwrap().0, 3 * PAGE, "{}", B::NAME);
    let c = rt.load(manifest("c")).unwrap();
    assert_eq!(i32_out(c.call_raw("version", b"")), 1);
    // A reload of a (3 pages) needs room for the new instance (2 pages)
    // while the old one drains: 5 + 2 do not fit, the reload fails and a
    // keeps working on the old code.
    let v2 = wat::parse_str(wat.replace(
        "(global $version i32 (i32.const 1))",
        "(global $version i32 (i32.const 2))",
    ))
    .unwrap();
    match a.reload(&v2) {
        Err(PluginError::MemoryBudget { plugin, .. }) => assert_eq!(plugin, "a"),
        other => panic!("{}: {other:?}", B::NAME),
    }
    assert_eq!(i32_out(a.call_raw("version", b"")), 1);
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while rt.memory_budget().unwrap().0 != 3 * PAGE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    a.reload(&v2).unwrap();
    assert_eq!(i32_out(a.call_raw("version", b"")), 2);
    // Once the old instance is gone, a holds 2 pages.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rt.memory_budget().unwrap().0 != 2 * PAGE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rt.memory_budget().unwrap().0, 2 * PAGE, "{}", B::NAME);
}

macro_rules! safety_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            safety_tests!(@cases $b; default_limits_stop_an_infinite_loop, cancel_ends_calls_in_flight,
                panics_lose_no_instance, busy_pool_times_out, reentrant_calls_are_refused,
                host_errors_are_typed, size_limits, key_value_store, reload_drains_then_hands_over,
                close_gives_shutdown_then_refuses,
                memory_budget_across_plugins);
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

safety_tests!(wasmtime, anywasm::Wasmtime);
safety_tests!(wasmi, anywasm::Wasmi);
safety_tests!(wasmer, anywasm::Wasmer);
