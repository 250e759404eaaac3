//! Async plugin calls (feature `async`) under tokio, on every backend (a
//! backend without async calls would refuse them by name). Tests are
//! `<backend>::<case>`.
#![cfg(feature = "async")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anywasm::Backend;
use anywasm_plugin::{Format, Limits, Manifest, Plugin, PluginError, PluginRuntime};

/// `fetch` hands its input to the async `host.fetch` and returns what it
/// answers; `spin` loops; `echo` answers its input.
const GUEST: &str = r#"(module
  (import "host" "fetch" (func $fetch (param i32 i32) (result i64)))
  (import "anywasm" "take_result" (func $take (param i32)))
  (memory (export "memory") 2)
  (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 4096))
  (func $out (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func (export "fetch") (param $p i32) (param $l i32) (result i64)
    (local $len i32)
    (local.set $len (i32.wrap_i64 (call $fetch (local.get $p) (local.get $l))))
    (call $take (i32.const 8192))
    (call $out (i32.const 8192) (local.get $len)))
  (func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))
  (func (export "echo") (param i32 i32) (result i64) (call $out (local.get 0) (local.get 1)))
  (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#;

/// The same without the async import: an ordinary plugin.
const PLAIN: &str = r#"(module
  (memory (export "memory") 2)
  (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 4096))
  (func $out (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
  (func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))
  (func (export "echo") (param i32 i32) (result i64) (call $out (local.get 0) (local.get 1)))
  (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#;

const CONCURRENT: usize = 8;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A runtime whose `host.fetch` waits until `CONCURRENT` calls are inside
/// it at once (or 5 s), then answers `fetched:<input>`; `"fail"` is an
/// error for the guest.
fn runtime<B: Backend>(inside: Arc<AtomicUsize>) -> anywasm_plugin::Result<PluginRuntime<B>> {
    PluginRuntime::<B>::builder()
        .host(move |h| {
            let inside = inside.clone();
            h.register_bytes_async("fetch", move |_ctx, input| {
                let inside = inside.clone();
                async move {
                    inside.fetch_add(1, Ordering::SeqCst);
                    let until = Instant::now() + Duration::from_secs(5);
                    while inside.load(Ordering::SeqCst) < CONCURRENT && Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if input == b"fail" {
                        return Err("the fetch failed".to_string());
                    }
                    let mut out = b"fetched:".to_vec();
                    out.extend_from_slice(&input);
                    Ok(out)
                }
            });
        })
        .build()
}

fn load<B: Backend>(rt: &PluginRuntime<B>, wat: &str, limits: Limits) -> Plugin<B> {
    let bytes = wat::parse_str(wat).unwrap();
    rt.load(
        Manifest::from_bytes("async", bytes)
            .format(Format::Raw)
            .allow("host.*")
            .max_instances(CONCURRENT)
            .limits(limits),
    )
    .unwrap()
}

/// A task of the current runtime that counts every 5 ms, and its count.
fn ticker() -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let ticks = Arc::new(AtomicUsize::new(0));
    let counted = ticks.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    (ticks, task)
}

fn assert_send<F: Send>(f: F) -> F {
    f
}

/// Eight calls whose host function awaits run at once on one thread: each
/// host function waits until all eight are inside it (it would wait 5 s
/// and then see fewer if the calls ran one after the other). A guest error
/// from the async host function reaches the guest; a synchronous call of a
/// plugin with an async import is `AsyncOnly`, and the plugin goes on.
pub fn async_host_functions_wait_concurrently<B: Backend>() {
    let inside = Arc::new(AtomicUsize::new(0));
    let rt = match runtime::<B>(inside.clone()) {
        Ok(rt) => rt,
        Err(PluginError::Engine {
            source: anywasm::Error::Unsupported { backend, .. },
            ..
        }) if !B::capabilities().async_calls => {
            assert_eq!(backend, B::NAME);
            return;
        }
        Err(e) => panic!("{}: {e}", B::NAME),
    };
    let plugin = load(&rt, GUEST, Limits::default());
    let exec = current_thread();
    let started = Instant::now();
    let results = exec.block_on(async {
        let calls = (0..CONCURRENT).map(|i| {
            let plugin = plugin.clone();
            async move {
                let input = format!("{i}");
                assert_send(plugin.call_raw_async("fetch", input.as_bytes())).await
            }
        });
        // Spawned tasks must be `Send`: so is a plugin call.
        let handles: Vec<_> = calls.map(tokio::spawn).collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(
            r.unwrap(),
            format!("fetched:{i}").into_bytes(),
            "{}",
            B::NAME
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{}: the calls waited one after the other",
        B::NAME
    );
    assert_eq!(plugin.stats().calls, CONCURRENT as u64);

    // A guest error, then an ordinary call.
    inside.store(CONCURRENT, Ordering::SeqCst);
    let r = exec.block_on(plugin.call_raw_async("fetch", b"fail"));
    assert_eq!(
        r.unwrap(),
        b"the fetch failed",
        "{}: the guest got the error",
        B::NAME
    );
    let r = plugin.call_raw("echo", b"x");
    assert!(
        matches!(r, Err(PluginError::AsyncOnly { .. })),
        "{}: {r:?}",
        B::NAME
    );
    assert_eq!(
        exec.block_on(plugin.call_raw_async("echo", b"x")).unwrap(),
        b"x"
    );
}

/// A looping plugin in an async call lets the other tasks of a
/// single-threaded runtime run while it loops, and ends with its deadline;
/// a call whose future is dropped (here by a timeout) gives its instance
/// back, and the plugin goes on. Synchronous and async calls of an
/// ordinary plugin share its instances.
pub fn looping_plugin_does_not_starve_the_runtime<B: Backend>() {
    let rt = PluginRuntime::<B>::new().unwrap();
    let plugin = load(
        &rt,
        PLAIN,
        Limits {
            deadline: Some(Duration::from_millis(400)),
            ..Limits::default()
        },
    );
    let exec = current_thread();
    if !B::capabilities().async_calls {
        let r = exec.block_on(plugin.call_raw_async("echo", b"x"));
        assert!(
            matches!(
                &r,
                Err(PluginError::Engine {
                    source: anywasm::Error::Unsupported { .. },
                    ..
                })
            ),
            "{}: {r:?}",
            B::NAME
        );
        assert_eq!(plugin.call_raw("echo", b"x").unwrap(), b"x");
        return;
    }
    let (call_ended, ticks_during_call) = exec.block_on(async {
        let (ticks, ticker) = ticker();
        let r = plugin.call_raw_async("spin", b"").await;
        let during = ticks.load(Ordering::SeqCst);
        ticker.abort();
        assert!(
            matches!(r, Err(PluginError::Deadline { .. })),
            "{}: {r:?}",
            B::NAME
        );
        (Instant::now(), during)
    });
    let _ = call_ended;
    assert!(
        ticks_during_call >= 5,
        "{}: the other task ran {ticks_during_call} times during a 400 ms loop",
        B::NAME
    );

    // Cancelled by dropping the future: the instance comes back.
    let before = plugin.stats().instances_created;
    exec.block_on(async {
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            plugin.call_raw_async("spin", b""),
        )
        .await;
        assert!(r.is_err(), "{}: the loop outlives the timeout", B::NAME);
        assert_eq!(
            plugin.call_raw_async("echo", b"again").await.unwrap(),
            b"again"
        );
    });
    assert_eq!(plugin.call_raw("echo", b"sync").unwrap(), b"sync");
    assert!(plugin.stats().instances_created > before, "{}", B::NAME);
    assert_eq!(
        plugin.stats().errors,
        2,
        "{}: the deadline and the dropped call",
        B::NAME
    );
}

/// A WASI plugin that sleeps in `poll_oneoff` (`nap`, nanoseconds as its
/// 8-byte input) and answers `done`.
const NAPPER: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 200) "done")
  (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "nap") (param $p i32) (param i32) (result i64)
    (i64.store (i32.const 0) (i64.const 7))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.load (local.get $p)))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
    (i64.or (i64.shl (i64.const 200) (i64.const 32)) (i64.const 4)))
  (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#;

/// With `async_wasi`, a WASI plugin sleeping in `poll_oneoff` in an async
/// call lets other tasks run, and its deadline ends the sleep; without it
/// the same plugin runs in synchronous calls as before.
pub fn wasi_sleeps_without_blocking<B: Backend>() {
    let manifest = |bytes: Vec<u8>| {
        Manifest::from_bytes("napper", bytes)
            .format(Format::Raw)
            .wasi(anywasm_plugin::WasiGrant::new())
            .limits(Limits {
                deadline: Some(Duration::from_millis(500)),
                ..Limits::default()
            })
    };
    let bytes = wat::parse_str(NAPPER).unwrap();
    let sync_rt = PluginRuntime::<B>::new().unwrap();
    let sync_plugin = sync_rt.load(manifest(bytes.clone())).unwrap();
    let ns = 20_000_000u64.to_le_bytes();
    assert_eq!(
        sync_plugin.call_raw("nap", &ns).unwrap(),
        b"done",
        "{}",
        B::NAME
    );

    let rt = match PluginRuntime::<B>::builder().async_wasi(true).build() {
        Ok(rt) => rt,
        Err(PluginError::Engine {
            source: anywasm::Error::Unsupported { .. },
            ..
        }) if !B::capabilities().async_calls => return,
        Err(e) => panic!("{}: {e}", B::NAME),
    };
    let plugin = rt.load(manifest(bytes)).unwrap();
    let r = plugin.call_raw("nap", &ns);
    assert!(
        matches!(r, Err(PluginError::AsyncOnly { .. })),
        "{}: {r:?}",
        B::NAME
    );
    let exec = current_thread();
    exec.block_on(async {
        let (ticks, ticker) = ticker();
        let ns = 200_000_000u64.to_le_bytes();
        assert_eq!(plugin.call_raw_async("nap", &ns).await.unwrap(), b"done");
        let during = ticks.load(Ordering::SeqCst);
        ticker.abort();
        assert!(
            during >= 10,
            "{}: {during} ticks during a 200 ms nap",
            B::NAME
        );
        let ns = 10_000_000_000u64.to_le_bytes();
        let started = Instant::now();
        let r = plugin.call_raw_async("nap", &ns).await;
        assert!(
            matches!(r, Err(PluginError::Deadline { .. })),
            "{}: {r:?}",
            B::NAME
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{}", B::NAME);
    });
}

/// A synchronous host function that calls back into its own plugin, or
/// reloads it, during an async call gets `Reentrant` at once, whichever
/// thread the backend runs host functions on (wasmer: a worker thread).
pub fn reentrant_calls_are_refused_in_async_calls<B: Backend>() {
    if !B::capabilities().async_calls {
        return; // Refusals: see `looping_plugin_does_not_starve_the_runtime`.
    }
    let me: Arc<std::sync::OnceLock<Plugin<B>>> = Arc::default();
    let again = me.clone();
    let rt = PluginRuntime::<B>::builder()
        .host(move |h| {
            let again = again.clone();
            h.register_bytes("fetch", move |_ctx, _input| {
                let plugin = again.get().ok_or("no plugin yet")?;
                let word = |refused: bool| if refused { "refused" } else { "ran" };
                let call = plugin.call_raw("echo", b"x");
                let reload = plugin.reload(b"");
                Ok(format!(
                    "{} {}",
                    word(matches!(call, Err(PluginError::Reentrant { .. }))),
                    word(matches!(reload, Err(PluginError::Reentrant { .. })))
                )
                .into_bytes())
            });
        })
        .build()
        .unwrap();
    let plugin = load(&rt, GUEST, Limits::default());
    let _ = me.set(plugin.clone());
    let out = current_thread()
        .block_on(assert_send(plugin.call_raw_async("fetch", b"")))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "refused refused",
        "{}",
        B::NAME
    );
}

/// Async calls reuse the plugin's instance, as synchronous ones do.
pub fn async_calls_reuse_instances<B: Backend>() {
    if !B::capabilities().async_calls {
        return; // Refusals: see `looping_plugin_does_not_starve_the_runtime`.
    }
    let rt = PluginRuntime::<B>::new().unwrap();
    let plugin = load(&rt, PLAIN, Limits::default());
    let exec = current_thread();
    for _ in 0..20 {
        assert_eq!(
            exec.block_on(plugin.call_raw_async("echo", b"x")).unwrap(),
            b"x"
        );
        assert_eq!(plugin.call_raw("echo", b"x").unwrap(), b"x");
    }
    let stats = plugin.stats();
    assert_eq!(
        (stats.calls, stats.instances_created),
        (40, 1),
        "{}",
        B::NAME
    );
}

/// An async call that must wait for an instance outside a tokio runtime
/// (whose timer the wait uses) is an error saying so, not tokio's panic;
/// the plugin goes on.
pub fn waiting_outside_tokio_is_an_error<B: Backend>() {
    if !B::capabilities().async_calls {
        return; // Refusals: see `looping_plugin_does_not_starve_the_runtime`.
    }
    let rt = PluginRuntime::<B>::builder()
        .host(|h| {
            h.register_bytes("fetch", |_ctx, _input| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(b"slow".to_vec())
            });
        })
        .build()
        .unwrap();
    let bytes = wat::parse_str(GUEST).unwrap();
    let plugin = rt
        .load(
            Manifest::from_bytes("async", bytes)
                .format(Format::Raw)
                .allow("host.*")
                .max_instances(1),
        )
        .unwrap();
    let busy = {
        let plugin = plugin.clone();
        std::thread::spawn(move || plugin.call_raw("fetch", b""))
    };
    std::thread::sleep(Duration::from_millis(50));
    // Polled by hand, as an executor that is not tokio would.
    let mut call = std::pin::pin!(plugin.call_raw_async("echo", b"x"));
    let waker = std::task::Waker::noop();
    let r = loop {
        if let std::task::Poll::Ready(r) = call
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            break r;
        }
    };
    match &r {
        Err(PluginError::Engine {
            source: anywasm::Error::InvalidArgument(m),
            ..
        }) if m.contains("tokio") => {}
        other => panic!("{}: {other:?}", B::NAME),
    }
    assert_eq!(busy.join().unwrap().unwrap(), b"slow", "{}", B::NAME);
    assert_eq!(plugin.call_raw("echo", b"x").unwrap(), b"x", "{}", B::NAME);
}

/// A plugin that imports an async host function (`wait` calls it), with a
/// counter it hands over across reloads when `state` has the save (and
/// load) exports.
fn stateful(version: &str, state: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
        (import "host" "fetch" (func $fetch (param i32 i32) (result i64)))
        (memory (export "memory") 1)
        (global $state (mut i32) (i32.const 0))
        (data (i32.const 16) "{version}")
        (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 4096))
        (func (export "version") (param i32 i32) (result i64) (i64.const 0x0000001000000002))
        (func (export "wait") (param i32 i32) (result i64)
          (drop (call $fetch (local.get 0) (local.get 1))) (i64.const 0))
        (func (export "bump") (param i32 i32) (result i64)
          (global.set $state (i32.add (global.get $state) (i32.const 1)))
          (i32.store (i32.const 64) (global.get $state))
          (i64.const 0x0000004000000004))
        {state}
        (@custom "anywasm.plugin" "{{\"abi\":1,\"formats\":[\"raw\"]}}"))"#
    ))
    .unwrap()
}

const SAVE: &str = r#"(func (export "anywasm_state_save") (param i32 i32) (result i64)
    (i32.store (i32.const 64) (global.get $state)) (i64.const 0x0000004000000004))"#;
const LOAD: &str = r#"(func (export "anywasm_state_load") (param i32 i32) (result i64)
    (global.set $state (i32.load (local.get 0))) (i64.const 0))"#;

/// `reload_async` hands over the state of a plugin that imports an async
/// host function (which `reload` refuses as `AsyncOnly`, leaving the old
/// code serving); a reload whose future is dropped while it waits for a
/// call in flight leaves the old code serving too.
pub fn async_reload_hands_over_state<B: Backend>() {
    if !B::capabilities().async_calls {
        return; // Refusals: see `looping_plugin_does_not_starve_the_runtime`.
    }
    let rt = PluginRuntime::<B>::builder()
        .host(|h| {
            h.register_bytes_async("fetch", |_ctx, _input| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(Vec::new())
            });
        })
        .build()
        .unwrap();
    let plugin = rt
        .load(
            Manifest::from_bytes("stateful", stateful("v1", SAVE))
                .format(Format::Raw)
                .allow("host.*")
                .max_instances(2),
        )
        .unwrap();
    let v2 = stateful("v2", &format!("{SAVE}{LOAD}"));
    let exec = current_thread();
    exec.block_on(async {
        for _ in 0..5 {
            plugin.call_raw_async("bump", b"").await.unwrap();
        }
        match plugin.reload(&v2) {
            Err(PluginError::AsyncOnly { .. }) => {}
            other => panic!("{}: {other:?}", B::NAME),
        }
        assert_eq!(
            plugin.call_raw_async("version", b"").await.unwrap(),
            b"v1",
            "{}",
            B::NAME
        );
        // Dropped while the reload waits for a call in flight (an
        // instance waiting in its async host function).
        let busy = plugin.call_raw_async("wait", b"");
        let (r, ()) = tokio::join!(busy, async {
            let reload = tokio::time::timeout(
                Duration::from_millis(20),
                assert_send(plugin.reload_async(&v2)),
            )
            .await;
            assert!(reload.is_err(), "{}: the reload waits", B::NAME);
        });
        r.unwrap();
        assert_eq!(plugin.generation(), 1, "{}", B::NAME);
        assert_eq!(
            assert_send(plugin.reload_async(&v2)).await.unwrap(),
            2,
            "{}",
            B::NAME
        );
        assert_eq!(plugin.call_raw_async("version", b"").await.unwrap(), b"v2");
        assert_eq!(
            plugin.call_raw_async("bump", b"").await.unwrap(),
            6u32.to_le_bytes(),
            "{}: the counter went on from 5",
            B::NAME
        );
    });
    assert_eq!(plugin.stats().reloads, 1, "{}", B::NAME);
}

/// A plugin whose `shutdown` calls the async `host.record` with `bye`.
const SHUTS: &str = r#"(module
  (import "host" "record" (func $record (param i32 i32) (result i64)))
  (memory (export "memory") 2)
  (data (i32.const 100) "bye")
  (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "echo") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get 0)) (i64.const 32))
            (i64.extend_i32_u (local.get 1))))
  (func (export "shutdown") (param i32 i32) (result i64)
    (drop (call $record (i32.const 100) (i32.const 3)))
    (i64.const 0))
  (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#;

/// An async plugin's instances get their `shutdown` (an async call) when
/// `reload_async` retires them and when `close_async` closes the plugin;
/// a synchronous `close` cannot run it, says so and leaves the plugin open.
pub fn async_plugins_get_their_shutdown<B: Backend>() {
    let said: Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Arc::default();
    let rt = {
        let said = said.clone();
        PluginRuntime::<B>::builder()
            .host(move |h| {
                let said = said.clone();
                h.register_bytes_async("record", move |_ctx, input| {
                    let said = said.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        said.lock().unwrap().push(input);
                        Ok(Vec::new())
                    }
                });
            })
            .build()
            .unwrap()
    };
    let plugin = load(&rt, SHUTS, Limits::default());
    let said = || said.lock().unwrap().clone();
    current_thread().block_on(async {
        assert_eq!(plugin.call_raw_async("echo", b"hi").await.unwrap(), b"hi");
        let r = plugin.close();
        assert!(
            matches!(r, Err(PluginError::AsyncOnly { .. })),
            "{}: {r:?}",
            B::NAME
        );
        assert_eq!(plugin.call_raw_async("echo", b"on").await.unwrap(), b"on");
        assert!(said().is_empty());

        let bytes = wat::parse_str(SHUTS).unwrap();
        assert_eq!(plugin.reload_async(&bytes).await.unwrap(), 2);
        assert_eq!(said(), [b"bye".to_vec()], "{}", B::NAME);
        assert_eq!(plugin.call_raw_async("echo", b"v2").await.unwrap(), b"v2");

        plugin.close_async().await.unwrap();
        assert_eq!(said(), [b"bye".to_vec(), b"bye".to_vec()], "{}", B::NAME);
        let r = plugin.call_raw_async("echo", b"x").await;
        assert!(
            matches!(r, Err(PluginError::Closed { .. })),
            "{}: {r:?}",
            B::NAME
        );
        plugin.close_async().await.unwrap();
    });
    drop(plugin);
    assert_eq!(said().len(), 2);
}

macro_rules! async_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            async_tests!(@cases $b; async_host_functions_wait_concurrently,
                looping_plugin_does_not_starve_the_runtime, wasi_sleeps_without_blocking,
                reentrant_calls_are_refused_in_async_calls, async_calls_reuse_instances,
                waiting_outside_tokio_is_an_error, async_reload_hands_over_state,
                async_plugins_get_their_shutdown);
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

async_tests!(wasmtime, anywasm::Wasmtime);
async_tests!(wasmi, anywasm::Wasmi);
async_tests!(wasmer, anywasm::Wasmer);
