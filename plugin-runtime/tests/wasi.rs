//! WASI for plugins, granted per manifest, on every backend: a C plugin on
//! wasi-libc and a Rust plugin on the standard library read and write files
//! only where granted, see only the granted environment, print into the
//! host's log, sleep within their deadline and exit as a typed error.
//! Tests are `<backend>::<case>`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anywasm::Backend;
use anywasm_plugin::{
    Format, Manifest, Plugin, PluginError, PluginRuntime, STDERR_LOG_LEVEL, STDOUT_LOG_LEVEL,
    WasiGrant,
};

const C_PLUGIN: &[u8] = include_bytes!("../../plugins/wasi_c.wasm");
const RUST_PLUGIN: &[u8] = include_bytes!("../../plugins/wasi_rs.wasm");
const PLUGINS: [(&str, &[u8]); 2] = [("wasi-c", C_PLUGIN), ("wasi-rs", RUST_PLUGIN)];

type Log = Arc<Mutex<Vec<(String, u32, String)>>>;

fn runtime<B: Backend>(log: &Log) -> PluginRuntime<B> {
    let log = log.clone();
    PluginRuntime::<B>::builder()
        .host(move |h| {
            h.logger(move |plugin, level, line| {
                log.lock()
                    .unwrap()
                    .push((plugin.to_string(), level, line.to_string()))
            })
        })
        .build()
        .unwrap()
}

/// A sandbox: `data/` (read-only for the plugin) holds `hello.txt`, `out/`
/// is writable, `secret.txt` is outside both.
fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("data/hello.txt"), "hello from the host\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    dir
}

fn grant(dir: &Path) -> WasiGrant {
    WasiGrant::new()
        .preopen_read_only(dir.join("data"), "/data")
        .preopen_read_write(dir.join("out"), "/out")
        .env("LANG", "C.UTF-8")
}

fn load<B: Backend>(rt: &PluginRuntime<B>, id: &str, wasm: &[u8], grant: WasiGrant) -> Plugin<B> {
    rt.load(
        Manifest::from_bytes(id, wasm.to_vec())
            .format(Format::Json)
            .deadline(Duration::from_millis(500))
            .wasi(grant),
    )
    .unwrap_or_else(|e| panic!("{}: {id}: {e}", B::NAME))
}

fn guest_error<T: std::fmt::Debug>(r: anywasm_plugin::Result<T>, what: &str) -> String {
    match r {
        Err(PluginError::Guest { message, .. }) => message,
        other => panic!("{what}: expected a guest error, got {other:?}"),
    }
}

/// Files: read where granted, write only where writable, nothing outside.
pub fn files_only_where_granted<B: Backend>() {
    let log = Log::default();
    let rt = runtime::<B>(&log);
    for (id, wasm) in PLUGINS {
        let dir = sandbox();
        let p = load(&rt, id, wasm, grant(dir.path()));
        let what = format!("{} {id}", B::NAME);
        let text: String = p.call("read_file", &"/data/hello.txt").unwrap();
        assert_eq!(text, "hello from the host\n", "{what}");
        for outside in [
            "/data/../secret.txt",
            "/secret.txt",
            "/etc/passwd",
            "/out/../data/../../x",
        ] {
            guest_error(p.call::<_, String>("read_file", &outside), &what);
        }
        guest_error(
            p.call::<_, u64>("write_file", &("/data/new.txt", "x")),
            &what,
        );
        assert!(!dir.path().join("data/new.txt").exists(), "{what}");
        let n: u64 = p
            .call("write_file", &("/out/result.txt", "written"))
            .unwrap();
        assert_eq!(n, 7, "{what}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/result.txt")).unwrap(),
            "written",
            "{what}"
        );
        let back: String = p.call("read_file", &"/out/result.txt").unwrap();
        assert_eq!(back, "written", "{what}");
    }
}

/// The environment is exactly the granted one; output goes to the log,
/// stdout and stderr at their levels, line by line.
pub fn environment_and_output<B: Backend>() {
    let log = Log::default();
    let rt = runtime::<B>(&log);
    for (id, wasm) in PLUGINS {
        let dir = sandbox();
        let p = load(&rt, id, wasm, grant(dir.path()));
        let what = format!("{} {id}", B::NAME);
        let lang: Option<String> = p.call("env", &"LANG").unwrap();
        assert_eq!(lang.as_deref(), Some("C.UTF-8"), "{what}");
        for name in ["HOME", "PATH", "USER"] {
            let v: Option<String> = p.call("env", &name).unwrap();
            assert_eq!(v, None, "{what}: {name}");
        }
        log.lock().unwrap().clear();
        let () = p.call("say", &"two\nlines").unwrap();
        // Standard error is not buffered; standard output may be until the
        // program flushes it (both plugins do).
        let lines = log.lock().unwrap().clone();
        let of = |level| {
            lines
                .iter()
                .filter(|(plugin, l, _)| plugin == id && *l == level)
                .map(|(_, _, text)| text.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(of(STDOUT_LOG_LEVEL), ["two", "lines"], "{what}: {lines:?}");
        assert_eq!(
            of(STDERR_LOG_LEVEL),
            ["warning: two", "lines"],
            "{what}: {lines:?}"
        );
    }
}

/// A sleep ends with the call's deadline; `exit` is a typed error; the
/// plugin keeps serving after both.
pub fn sleep_and_exit_are_bounded<B: Backend>() {
    let log = Log::default();
    let rt = runtime::<B>(&log);
    for (id, wasm) in PLUGINS {
        let dir = sandbox();
        let p = load(&rt, id, wasm, grant(dir.path()));
        let what = format!("{} {id}", B::NAME);
        let () = p.call("nap", &10u64).unwrap();
        let started = Instant::now();
        match p.call::<_, ()>("nap", &60_000u64) {
            Err(PluginError::Deadline { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        match p.call::<_, ()>("quit", &3u64) {
            Err(PluginError::Exit { code, .. }) => assert_eq!(code, 3, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
        let text: String = p.call("read_file", &"/data/hello.txt").unwrap();
        assert_eq!(text, "hello from the host\n", "{what}");
    }
}

/// Without a grant a WASI plugin does not load; a grant naming a directory
/// that does not exist is a clear error; a JSON manifest grants WASI too.
pub fn grants_are_checked<B: Backend>() {
    let log = Log::default();
    let rt = runtime::<B>(&log);
    for (id, wasm) in PLUGINS {
        match rt.load(Manifest::from_bytes(id, wasm.to_vec()).format(Format::Json)) {
            Err(PluginError::ImportNotGranted { module, .. }) => {
                assert_eq!(module, "wasi_snapshot_preview1")
            }
            other => panic!("{} {id}: {other:?}", B::NAME),
        }
        let missing = WasiGrant::new().preopen_read_only("/no/such/dir", "/data");
        match rt.load(Manifest::from_bytes(id, wasm.to_vec()).wasi(missing)) {
            Err(e @ PluginError::Manifest(_)) => {
                assert!(e.to_string().contains("/no/such/dir"), "{e}")
            }
            other => panic!("{} {id}: {other:?}", B::NAME),
        }
    }
    let dir = sandbox();
    std::fs::write(dir.path().join("plugin.wasm"), C_PLUGIN).unwrap();
    std::fs::write(
        dir.path().join("plugin.json"),
        r#"{"id": "from-json", "wasm": "plugin.wasm", "format": "json",
            "wasi": {"env": {"MODE": "json"},
                     "preopens": [{"host": "data", "guest": "/data"},
                                  {"host": "out", "guest": "/out", "writable": true}]}}"#,
    )
    .unwrap();
    let p = rt
        .load(Manifest::from_json_file(dir.path().join("plugin.json")).unwrap())
        .unwrap();
    let mode: Option<String> = p.call("env", &"MODE").unwrap();
    assert_eq!(mode.as_deref(), Some("json"));
    let text: String = p.call("read_file", &"/data/hello.txt").unwrap();
    assert_eq!(text, "hello from the host\n");
    let _: u64 = p.call("write_file", &("/out/j.txt", "j")).unwrap();
    assert!(dir.path().join("out/j.txt").exists());
}

macro_rules! wasi_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            wasi_tests!(@cases $b; files_only_where_granted, environment_and_output,
                sleep_and_exit_are_bounded, grants_are_checked);
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

wasi_tests!(wasmtime, anywasm::Wasmtime);
wasi_tests!(wasmi, anywasm::Wasmi);
wasi_tests!(wasmer, anywasm::Wasmer);
