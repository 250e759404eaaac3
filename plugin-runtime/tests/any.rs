//! Plugins on a backend named at run time behave as the generic ones do, on
//! every backend.

use std::path::PathBuf;
use std::time::Duration;

use anywasm::{BackendKind, Error};
use anywasm_plugin::{AnyPluginRuntime, Format, Manifest, PluginError, PluginRuntime};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Event {
    kind: String,
    path: String,
    size: u64,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Decision {
    icon: String,
    priority: u32,
}

fn icons() -> Manifest {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/file_icons_c.wasm");
    Manifest::from_file("file_icons", path)
        .format(Format::MsgPack)
        .allow("anywasm.calc")
        .allow("anywasm.echo")
}

fn event() -> Event {
    Event {
        kind: "open".into(),
        path: "src/main.rs".into(),
        size: 1200,
    }
}

const SPIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))
  (func (export "ok") (param i32 i32) (result i64) (i64.const 0))
  (@custom "anywasm.plugin" "{\"abi\":1,\"name\":\"spin\",\"formats\":[\"raw\"]}"))"#;

#[test]
fn any_runtime_calls_like_the_generic_one_on_every_backend() {
    for kind in BackendKind::ALL {
        // As read from configuration.
        let kind: BackendKind = kind.name().to_uppercase().parse().unwrap();
        let runtime = AnyPluginRuntime::builder(kind)
            .memory_budget(256 << 20)
            .build()
            .unwrap();
        assert_eq!(runtime.kind(), kind);
        let plugin = runtime.load(icons()).unwrap();
        assert_eq!(plugin.kind(), kind);
        assert_eq!(plugin.id(), "file_icons");
        let any: Decision = plugin.call("handle_event", &event()).unwrap();
        // The same call through the generic runtime of that backend.
        let generic: Decision = anywasm::with_backend!(kind, B => {
            let runtime = PluginRuntime::<B>::new().unwrap();
            runtime.load(icons()).unwrap().call("handle_event", &event()).unwrap()
        })
        .unwrap();
        assert_eq!(any, generic, "{kind}");
        assert!(runtime.memory_budget().unwrap().0 > 0, "{kind}");
        assert_eq!(runtime.cache_size().0, 1, "{kind}");
        // Errors are the same typed errors.
        match plugin.call::<_, Decision>("no_such_function", &event()) {
            Err(PluginError::NoSuchFunction { function, .. }) => {
                assert_eq!(function, "no_such_function")
            }
            other => panic!("{kind}: {other:?}"),
        }
        assert_eq!(plugin.generation(), 1);
        let bytes = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/file_icons_c.wasm"),
        )
        .unwrap();
        assert_eq!(plugin.reload(&bytes).unwrap(), 2, "{kind}");
        let again: Decision = plugin.call("handle_event", &event()).unwrap();
        assert_eq!(again, generic, "{kind}");
        plugin.close().unwrap();
        let r: anywasm_plugin::Result<Decision> = plugin.call("handle_event", &event());
        assert!(
            matches!(r, Err(anywasm_plugin::PluginError::Closed { .. })),
            "{kind}: {r:?}"
        );
    }
}

#[test]
fn any_plugins_are_cancellable_and_limited_on_every_backend() {
    for kind in BackendKind::ALL {
        let runtime = AnyPluginRuntime::new(kind).unwrap();
        let plugin = runtime
            .load(
                Manifest::from_bytes("spin", wat::parse_str(SPIN).unwrap())
                    .format(Format::Raw)
                    .deadline(Duration::from_secs(60)),
            )
            .unwrap();
        let cancel = plugin.cancel_handle();
        let call = {
            let plugin = plugin.clone();
            std::thread::spawn(move || plugin.call_raw("spin", b""))
        };
        std::thread::sleep(Duration::from_millis(100));
        cancel.cancel();
        match call.join().unwrap() {
            Err(PluginError::Cancelled { function, .. }) => assert_eq!(function, "spin"),
            other => panic!("{kind}: {other:?}"),
        }
        assert_eq!(plugin.call_raw("ok", b"").unwrap(), b"", "{kind}");
        // Default limits: the loop ends with the deadline.
        let plugin = runtime
            .load(Manifest::from_bytes("spin2", wat::parse_str(SPIN).unwrap()).format(Format::Raw))
            .unwrap();
        assert!(
            matches!(
                plugin.call_raw("spin", b""),
                Err(PluginError::Deadline { .. })
            ),
            "{kind}"
        );
    }
}

/// The async calls and reloads of an `AnyPlugin` give what the generic
/// plugin's give, on every backend.
#[cfg(feature = "async")]
#[test]
fn any_plugins_call_and_reload_asynchronously_on_every_backend() {
    let exec = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for kind in BackendKind::ALL {
        let runtime = AnyPluginRuntime::new(kind).unwrap();
        let plugin = runtime.load(icons()).unwrap();
        let sync: Decision = plugin.call("handle_event", &event()).unwrap();
        exec.block_on(async {
            let any: Decision = plugin.call_async("handle_event", &event()).await.unwrap();
            assert_eq!(any, sync, "{kind}");
            match plugin
                .call_async::<_, Decision>("no_such_function", &event())
                .await
            {
                Err(PluginError::NoSuchFunction { .. }) => {}
                other => panic!("{kind}: {other:?}"),
            }
            let spin = runtime
                .load(
                    Manifest::from_bytes("spin", wat::parse_str(SPIN).unwrap()).format(Format::Raw),
                )
                .unwrap();
            assert_eq!(spin.call_raw_async("ok", b"").await.unwrap(), b"", "{kind}");
            let bytes = std::fs::read(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/file_icons_c.wasm"),
            )
            .unwrap();
            assert_eq!(plugin.reload_async(&bytes).await.unwrap(), 2, "{kind}");
            let again: Decision = plugin.call_async("handle_event", &event()).await.unwrap();
            assert_eq!(again, sync, "{kind}");
            plugin.close_async().await.unwrap();
            let r = plugin.call_raw_async("handle_event", b"").await;
            assert!(
                matches!(r, Err(anywasm_plugin::PluginError::Closed { .. })),
                "{kind}: {r:?}"
            );
        });
    }
}

#[test]
fn unknown_backend_names_are_refused() {
    let err = "v8".parse::<BackendKind>().unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert!(err.to_string().contains("unknown backend `v8`"), "{err}");
}
