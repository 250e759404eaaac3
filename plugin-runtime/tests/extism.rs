//! Extism guests, unchanged, on every backend: the same calls give the
//! outputs, errors and var state that Extism's own host gave
//! (`tests/fixtures/extism/expected_*.json`, recorded by `record.py` with
//! the `extism` Python package; `build.sh` rebuilds the guests from their
//! PDKs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anywasm::Backend;
use anywasm_plugin::{Abi, Limits, Manifest, Number, PluginError, PluginRuntime};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extism")
}

#[derive(Deserialize)]
struct Recording {
    recorded_with: String,
    config: std::collections::BTreeMap<String, String>,
    calls: Vec<Call>,
}

#[derive(Deserialize)]
struct Call {
    function: String,
    input: String,
    output: Option<String>,
    error: Option<String>,
}

type Log = Arc<Mutex<Vec<(u32, String)>>>;

fn runtime<B: Backend>(log: &Log) -> PluginRuntime<B> {
    let log = log.clone();
    PluginRuntime::<B>::builder()
        .host(move |h| {
            h.logger(move |_, level, line| log.lock().unwrap().push((level, line.to_string())))
        })
        .build()
        .unwrap()
}

/// What anywasm answers, in the words of Extism's host: the guest's own
/// error message; a non-zero return code as the Python binding words it
/// ("Error code: N"; anywasm uses the Rust host's "Returned non-zero exit
/// code: N"); a missing function as "Function not found: NAME".
fn as_extism_words(e: &PluginError) -> String {
    match e {
        PluginError::Guest { message, .. } => {
            match message.strip_prefix("Returned non-zero exit code: ") {
                Some(code) => format!("Error code: {code}"),
                None => message.clone(),
            }
        }
        PluginError::NoSuchFunction { function, .. } => format!("Function not found: {function}"),
        other => panic!("not an error Extism's host gives: {other}"),
    }
}

fn replay<B: Backend>(runtime: &PluginRuntime<B>, guest: &str, recording: &str) {
    let rec: Recording =
        serde_json::from_slice(&std::fs::read(fixtures().join(recording)).unwrap()).unwrap();
    assert!(
        rec.recorded_with.starts_with("extism "),
        "{}",
        rec.recorded_with
    );
    let mut manifest = Manifest::from_file(guest, fixtures().join(guest));
    for (k, v) in &rec.config {
        manifest = manifest.config(k, v);
    }
    let plugin = runtime.load(manifest).unwrap();
    for (i, call) in rec.calls.iter().enumerate() {
        let got = plugin.call_raw(&call.function, call.input.as_bytes());
        let what = format!("{}: call {i} `{}`", B::NAME, call.function);
        match (&call.output, &call.error, got) {
            (Some(want), None, Ok(out)) => {
                assert_eq!(String::from_utf8(out).unwrap(), *want, "{what}")
            }
            (None, Some(want), Err(e)) => assert_eq!(as_extism_words(&e), *want, "{what}: {e}"),
            (_, _, got) => panic!(
                "{what}: Extism gave {:?}/{:?}, anywasm {got:?}",
                call.output, call.error
            ),
        }
    }
}

/// Replays a guest of the `guest.c` family and checks its log line.
fn replay_guest<B: Backend>(guest: &str, recording: &str) {
    let log = Log::default();
    replay(&runtime::<B>(&log), guest, recording);
    let logged = log.lock().unwrap().clone();
    assert!(
        logged.contains(&(2, "to the log".to_string())),
        "{}: the info line reaches the log: {logged:?}",
        B::NAME
    );
}

/// The C PDK guest against Extism's answers.
pub fn c_pdk_guest_matches_extism<B: Backend>() {
    replay_guest::<B>("guest_c.wasm", "expected_c.json");
}

/// The AssemblyScript PDK guest (the same exports, written in
/// AssemblyScript) against Extism's answers for it.
pub fn assemblyscript_pdk_guest_matches_extism<B: Backend>() {
    replay_guest::<B>("guest_as.wasm", "expected_as.json");
}

/// A runtime with the host functions `host_guest.c` imports, as
/// `record.py` gives them to Extism's host.
fn host_runtime<B: Backend>() -> PluginRuntime<B> {
    use anywasm::ValType::I64;
    let handle = |args: &[Number]| match args.first() {
        Some(Number::I64(h)) => Ok(*h as u64),
        other => Err(format!("expected a handle, got {other:?}")),
    };
    PluginRuntime::<B>::builder()
        .host(move |h| {
            h.extism_function("shout", &[I64], &[I64], move |plugin, args| {
                let text = plugin.memory_string(handle(args)?)?;
                let out = plugin.memory_new((text.to_uppercase() + "!").as_bytes())?;
                Ok(vec![Number::I64(out as i64)])
            });
            h.extism_function("add_numbers", &[I64, I64], &[I64], |_, args| match args {
                [Number::I64(a), Number::I64(b)] => Ok(vec![Number::I64(a.wrapping_add(*b))]),
                other => Err(format!("expected two i64, got {other:?}")),
            });
            h.extism_function("fail_with", &[I64], &[], move |plugin, args| {
                Err(plugin.memory_string(handle(args)?)?)
            });
        })
        .build()
        .unwrap()
}

/// A guest calling the application's host functions (`extism:host/user`)
/// against Extism's answers; then what Extism's Python binding cannot
/// show: a failing host function ends the call with its error, and the
/// plugin goes on.
pub fn host_functions_match_extism<B: Backend>() {
    let runtime = host_runtime::<B>();
    replay(&runtime, "guest_host_c.wasm", "expected_host_c.json");
    let plugin = runtime
        .load(Manifest::from_file(
            "host",
            fixtures().join("guest_host_c.wasm"),
        ))
        .unwrap();
    let err = plugin.call_raw("call_fail", b"no luck").unwrap_err();
    assert!(
        matches!(&err, PluginError::Host { host_function, message, .. }
            if host_function == "fail_with" && message == "no luck"),
        "{}: {err}",
        B::NAME
    );
    assert_eq!(
        plugin.call_raw("call_shout", b"still here").unwrap(),
        b"STILL HERE!"
    );
}

/// Host functions handed what is not a block, or answering with the wrong
/// types, fail the call with a `Host` error naming the function; a guest
/// importing one the application did not register is refused at load.
pub fn hostile_host_function_calls<B: Backend>() {
    let wat = r#"(module
      (import "extism:host/user" "shout" (func $shout (param i64) (result i64)))
      (import "extism:host/user" "wrong" (func $wrong (param i64) (result i64)))
      (import "extism:host/env" "output_set" (func $output (param i64 i64)))
      (memory (export "memory") 1)
      (func (export "not_a_handle") (result i32)
        (drop (call $shout (i64.const 12345)))
        (i32.const 0))
      (func (export "huge_handle") (result i32)
        (drop (call $shout (i64.const -1)))
        (i32.const 0))
      (func (export "wrong_answer") (result i32)
        (drop (call $wrong (i64.const 0)))
        (i32.const 0)))"#;
    use anywasm::ValType::I64;
    let host = PluginRuntime::<B>::builder()
        .host(|h| {
            h.extism_function("shout", &[I64], &[I64], |plugin, args| {
                let Some(Number::I64(h)) = args.first() else {
                    return Err("no handle".into());
                };
                let text = plugin.memory_string(*h as u64)?;
                Ok(vec![
                    Number::I64(plugin.memory_new(text.as_bytes())? as i64),
                ])
            });
            h.extism_function("wrong", &[I64], &[I64], |_, _| Ok(vec![Number::I32(1)]));
        })
        .build()
        .unwrap();
    let plugin = host
        .load(Manifest::from_bytes("hostile-host", wat).abi(Abi::Extism))
        .unwrap();
    for (f, host_fn, words) in [
        ("not_a_handle", "shout", "invalid handle offset"),
        ("huge_handle", "shout", "invalid handle offset"),
        ("wrong_answer", "wrong", "expected [I64]"),
    ] {
        let err = plugin.call_raw(f, b"").unwrap_err();
        assert!(
            matches!(&err, PluginError::Host { host_function, message, .. }
                if host_function == host_fn && message.contains(words)),
            "{}: {f}: {err}",
            B::NAME
        );
    }
    // Not registered: refused at load, naming the function.
    let err = runtime::<B>(&Log::default())
        .load(Manifest::from_file(
            "host",
            fixtures().join("guest_host_c.wasm"),
        ))
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::MissingHostFunction { module, name, .. }
            if module == "extism:host/user"
                && ["shout", "add_numbers", "fail_with"].contains(&name.as_str())),
        "{}: {err}",
        B::NAME
    );
}

/// The ABI is recognised from the imports, and can be forced.
pub fn the_abi_is_detected<B: Backend>() {
    let runtime = runtime::<B>(&Log::default());
    let path = fixtures().join("guest_c.wasm");
    let plugin = runtime
        .load(Manifest::from_file("forced", &path).abi(Abi::Extism))
        .unwrap();
    assert_eq!(plugin.call_raw("echo", b"x").unwrap(), b"x");
    assert!(plugin.has_function("count_vowels") && !plugin.has_function("memory"));
    // Forced to anywasm's ABI it is not a plugin of that kind.
    let err = runtime
        .load(Manifest::from_file("wrong", &path).abi(Abi::Anywasm))
        .unwrap_err();
    assert!(matches!(err, PluginError::NotAPlugin { .. }), "{err}");
}

/// A hostile Extism guest: handles that are not handles, loads and stores
/// far outside the kernel memory, allocations past the limit, a huge
/// output. Every call ends with an answer or a typed error, never a panic,
/// and the host allocates nothing the limit does not allow.
pub fn hostile_extism_guest<B: Backend>() {
    let wat = r#"(module
      (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
      (import "extism:host/env" "length" (func $length (param i64) (result i64)))
      (import "extism:host/env" "load_u64" (func $load (param i64) (result i64)))
      (import "extism:host/env" "store_u64" (func $store (param i64 i64)))
      (import "extism:host/env" "output_set" (func $output (param i64 i64)))
      (import "extism:host/env" "config_get" (func $config (param i64) (result i64)))
      (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
      (import "extism:host/env" "error_set" (func $error (param i64)))
      (memory (export "memory") 1)
      (func (export "wild") (result i32)
        (call $store (i64.const -8) (i64.const 1))
        (call $store (i64.const 0x7fffffffffff) (i64.const 1))
        (drop (call $load (i64.const -1)))
        (drop (call $length (i64.const 12345)))
        (call $output (i64.const 16) (i64.const -1))
        (call $error (i64.const -5))
        (i32.const 0))
      ;; 1 (a non-zero exit code) when the allocation fails.
      (func (export "huge_alloc") (result i32)
        (i64.eqz (call $alloc (i64.const 0x7fffffffffffffff))))
      (func (export "many_allocs") (result i32)
        (block $full
          (loop $l
            (br_if $full (i64.eqz (call $alloc (i64.const 4096))))
            (br $l)))
        (i32.const 0))
      (func (export "bad_config_key") (result i32)
        (drop (call $config (i64.const 999)))
        (i32.const 0))
      (func (export "bad_var") (result i32)
        (call $var_set (i64.const 999) (i64.const 0))
        (i32.const 0)))"#;
    let runtime = runtime::<B>(&Log::default());
    let limits = Limits {
        max_memory_pages: Some(16),
        ..Limits::default()
    };
    let plugin = runtime
        .load(Manifest::from_bytes("hostile", wat).limits(limits))
        .unwrap();
    // Ignored, as in Extism's bounds-checked kernel.
    assert_eq!(plugin.call_raw("wild", b"").unwrap(), b"", "{}", B::NAME);
    // Allocation failure is 0, not a host allocation.
    let err = plugin.call_raw("huge_alloc", b"").unwrap_err();
    assert!(
        matches!(&err, PluginError::Guest { message, .. } if message == "Returned non-zero exit code: 1"),
        "{err}"
    );
    // 1 MiB of kernel memory (16 pages) ends the loop.
    assert_eq!(plugin.call_raw("many_allocs", b"").unwrap(), b"");
    for f in ["bad_config_key", "bad_var"] {
        let err = plugin.call_raw(f, b"").unwrap_err();
        assert!(
            matches!(&err, PluginError::AbiViolation { detail, .. } if detail.contains("invalid handle offset")),
            "{}: {f}: {err}",
            B::NAME
        );
    }
    // An input larger than the kernel memory is refused before the call.
    let err = plugin.call_raw("wild", &vec![0; 2 << 20]).unwrap_err();
    assert!(matches!(err, PluginError::LimitExceeded { .. }), "{err}");
    // And the plugin still works.
    assert_eq!(plugin.call_raw("wild", b"ok").unwrap(), b"");
    // A kernel function imported with the wrong type, or a kernel export
    // that is not part of the ABI: refused by name, not a panic.
    for import in [
        r#"(import "extism:host/env" "load_u8" (func (param i32) (result i32)))"#,
        r#"(import "extism:host/env" "end" (global i64))"#,
    ] {
        let wat = format!(r#"(module {import} (func (export "f") (result i32) (i32.const 0)))"#);
        let err = match runtime.load(Manifest::from_bytes("wrong-kernel", wat).abi(Abi::Extism)) {
            Ok(p) => p.call_raw("f", b"").unwrap_err(),
            Err(e) => e,
        };
        let name = if import.contains("load_u8") {
            "load_u8"
        } else {
            "end"
        };
        assert!(err.to_string().contains(name), "{}: {err}", B::NAME);
    }
}

/// The kernel's loads and stores at the edges: the end of the blocks
/// handed out, the end of the input, and after the input is freed. The
/// guest writes what it saw, one little-endian u64 each, as its output.
pub fn kernel_edges<B: Backend>() {
    let wat = r#"(module
      (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
      (import "extism:host/env" "free" (func $free (param i64)))
      (import "extism:host/env" "load_u8" (func $load8 (param i64) (result i32)))
      (import "extism:host/env" "load_u64" (func $load (param i64) (result i64)))
      (import "extism:host/env" "store_u8" (func $store8 (param i64 i32)))
      (import "extism:host/env" "store_u64" (func $store (param i64 i64)))
      (import "extism:host/env" "input_offset" (func $in_off (result i64)))
      (import "extism:host/env" "input_length" (func $in_len (result i64)))
      (import "extism:host/env" "input_load_u8" (func $in8 (param i64) (result i32)))
      (import "extism:host/env" "input_load_u64" (func $in64 (param i64) (result i64)))
      (import "extism:host/env" "output_set" (func $output (param i64 i64)))
      (memory (export "memory") 1)
      (func (export "edges") (result i32) (local $o i64) (local $h i64)
        ;; The output block first, then $h: the last block, ending the bytes.
        (local.set $o (call $alloc (i64.const 96)))
        (local.set $h (call $alloc (i64.const 16)))
        (call $store (i64.add (local.get $h) (i64.const 8)) (i64.const 0x0807060504030201))
        (call $store8 (i64.add (local.get $h) (i64.const 16)) (i32.const 9))
        (call $store (i64.add (local.get $h) (i64.const 9)) (i64.const -1))
        (call $store (local.get $o)
          (call $load (i64.add (local.get $h) (i64.const 8))))
        (call $store (i64.add (local.get $o) (i64.const 8))
          (call $load (i64.add (local.get $h) (i64.const 9))))
        (call $store (i64.add (local.get $o) (i64.const 16))
          (i64.extend_i32_u (call $load8 (i64.add (local.get $h) (i64.const 15)))))
        (call $store (i64.add (local.get $o) (i64.const 24))
          (i64.extend_i32_u (call $load8 (i64.add (local.get $h) (i64.const 16)))))
        (call $store (i64.add (local.get $o) (i64.const 32)) (call $in64 (i64.const 2)))
        (call $store (i64.add (local.get $o) (i64.const 40)) (call $in64 (i64.const 3)))
        (call $store (i64.add (local.get $o) (i64.const 48))
          (i64.extend_i32_u (call $in8 (i64.const 9))))
        (call $store (i64.add (local.get $o) (i64.const 56))
          (i64.extend_i32_u (call $in8 (i64.const 10))))
        (call $store (i64.add (local.get $o) (i64.const 64)) (call $load (i64.const -8)))
        (call $free (call $in_off))
        (call $store (i64.add (local.get $o) (i64.const 72)) (call $in_len))
        (call $store (i64.add (local.get $o) (i64.const 80))
          (i64.extend_i32_u (call $in8 (i64.const 0))))
        (call $store (i64.add (local.get $o) (i64.const 88)) (call $in64 (i64.const 0)))
        (call $output (local.get $o) (i64.const 96))
        (i32.const 0)))"#;
    let runtime = runtime::<B>(&Log::default());
    let plugin = runtime
        .load(Manifest::from_bytes("edges", wat).abi(Abi::Extism))
        .unwrap();
    let expected: [u64; 12] = [
        0x0807_0605_0403_0201,            // the last 8 bytes of the last block
        0,                                // 8 bytes crossing the end
        0x08,                             // the last byte
        0,                                // the first byte past the end (the store was ignored)
        u64::from_le_bytes(*b"cdefghij"), // the input's last 8 bytes
        0,                                // 8 bytes crossing the input's end
        u64::from(b'j'),                  // the input's last byte
        0,                                // past the input
        0,                                // far outside the memory
        0,                                // the input's length once freed
        0,                                // its bytes once freed
        0,
    ];
    // Twice: the second call starts from a clean kernel.
    for _ in 0..2 {
        let out = plugin.call_raw("edges", b"abcdefghij").unwrap();
        let seen: Vec<u64> = out
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(seen, expected, "{}", B::NAME);
    }
}

/// An Extism manifest, unchanged: the module and its hash, memory pages,
/// var bytes, config, paths, timeout; what cannot be honoured is refused.
pub fn extism_manifests<B: Backend>() {
    use sha2::Digest as _;
    let runtime = runtime::<B>(&Log::default());
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(fixtures().join("guest_c.wasm")).unwrap();
    std::fs::write(dir.path().join("guest.wasm"), &wasm).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    let hash: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let json = format!(
        r#"{{"wasm": [{{"path": "guest.wasm", "hash": "{hash}", "name": "main"}}],
            "memory": {{"max_pages": 32, "max_var_bytes": 10}},
            "config": {{"greeting": "Ahoy"}},
            "allowed_hosts": ["example.com"],
            "allowed_paths": {{"data": "/data", "ro:assets": "/assets"}},
            "timeout_ms": 250}}"#
    );
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, &json).unwrap();
    let m = Manifest::from_extism_json_file("from_extism", &path).unwrap();
    assert_eq!(m.get_abi(), Abi::Extism);
    assert_eq!(m.get_limits().max_memory_pages, Some(32));
    assert_eq!(m.get_limits().max_store_bytes, Some(10));
    assert_eq!(
        m.get_limits().deadline,
        Some(std::time::Duration::from_millis(250))
    );
    let preopens = m.get_wasi().unwrap().preopens();
    let find = |g: &str| preopens.iter().find(|p| p.guest == g).unwrap();
    assert!(find("/data").writable && !find("/assets").writable);
    assert_eq!(find("/assets").host, dir.path().join("assets"));
    let plugin = runtime.load(m).unwrap();
    assert_eq!(
        plugin.call_raw("greet", b"sailor").unwrap(),
        b"Ahoy, sailor!"
    );
    // 10 bytes of vars: "total" and its 8 bytes do not fit.
    let err = plugin.call_raw("count_vowels", b"a").unwrap_err();
    assert!(
        matches!(&err, PluginError::AbiViolation { detail, .. } if detail == "Variable store is full"),
        "{}: {err}",
        B::NAME
    );
    // Inline base64 data works too.
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(&wasm);
    let inline = format!(r#"{{"wasm": [{{"data": "{data}"}}]}}"#);
    let plugin = runtime
        .load(Manifest::from_extism_json("inline", &inline, dir.path()).unwrap())
        .unwrap();
    assert_eq!(plugin.call_raw("echo", b"x").unwrap(), b"x");
    // Refused with a reason.
    for (json, reason) in [
        (
            r#"{"wasm": [{"path": "guest.wasm", "hash": "00"}]}"#,
            "hash mismatch",
        ),
        (
            r#"{"wasm": [{"url": "https://example.com/p.wasm"}]}"#,
            "URL",
        ),
        (
            r#"{"wasm": [{"path": "guest.wasm"}, {"path": "guest.wasm"}]}"#,
            "2 modules",
        ),
        (r#"{"wasm": []}"#, "0 modules"),
        (
            r#"{"wasm": [{"path": "guest.wasm"}], "memroy": {}}"#,
            "unknown field",
        ),
    ] {
        let err = Manifest::from_extism_json("bad", json, dir.path()).unwrap_err();
        assert!(err.to_string().contains(reason), "{json}: {err}");
    }
}

/// A one-shot HTTP server on 127.0.0.1: answers one request with `status`
/// and `body`, and hands back the request it read.
fn serve_once(status: &str, body: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hello",
        listener.local_addr().unwrap().port()
    );
    let status = status.to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Served: yes\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(body).unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (url, server)
}

/// `http_request` reaches the hosts a manifest allows (a glob, as
/// Extism's `allowed_hosts`), with the guest's headers; the status comes
/// back (a 404 is a response, not an error); other hosts and responses
/// past the bound fail the call with the host function's error.
pub fn http_requests_to_allowed_hosts<B: Backend>() {
    let runtime = runtime::<B>(&Log::default());
    let load = |m: Manifest| runtime.load(m).unwrap();
    let guest = || Manifest::from_file("http", fixtures().join("guest_c.wasm"));
    let plugin = load(guest().allow_http_host("127.0.0.*"));
    let (url, server) = serve_once("201 Created", b"hello");
    assert_eq!(
        plugin.call_raw("http_get", url.as_bytes()).unwrap(),
        b"201 hello",
        "{}",
        B::NAME
    );
    let request = server.join().unwrap();
    assert!(request.starts_with("GET /hello HTTP/1.1\r\n"), "{request}");
    assert!(
        request.to_ascii_lowercase().contains("x-guest: c"),
        "{request}"
    );
    let (url, server) = serve_once("404 Not Found", b"");
    assert_eq!(
        plugin.call_raw("http_get", url.as_bytes()).unwrap(),
        b"404 "
    );
    server.join().unwrap();
    // No host allowed: refused before anything is sent.
    let closed = load(guest());
    let err = closed.call_raw("http_get", url.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, PluginError::Host { host_function, message, .. }
            if host_function == "http_request" && message.contains("is not allowed")),
        "{err}"
    );
    // A response past the bound.
    let small = load(
        guest()
            .allow_http_host("127.0.0.1")
            .max_http_response_bytes(3),
    );
    let (url, server) = serve_once("200 OK", b"too long");
    let err = small.call_raw("http_get", url.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("exceeds the configured maximum"),
        "{err}"
    );
    server.join().unwrap();
    // A bad pattern is a manifest error.
    assert!(matches!(
        runtime.load(guest().allow_http_host("[")),
        Err(PluginError::Manifest(_))
    ));
}

/// `http_headers` gives the last response's headers as JSON, and a server
/// that never answers ends the call within the plugin's deadline with the
/// host function's error.
pub fn http_headers_and_timeout<B: Backend>() {
    let wat = r#"(module
      (import "extism:host/env" "input_offset" (func $input (result i64)))
      (import "extism:host/env" "http_request" (func $request (param i64 i64) (result i64)))
      (import "extism:host/env" "http_headers" (func $headers (result i64)))
      (import "extism:host/env" "http_status_code" (func $status (result i32)))
      (import "extism:host/env" "length" (func $length (param i64) (result i64)))
      (import "extism:host/env" "output_set" (func $output (param i64 i64)))
      (memory (export "memory") 1)
      ;; The input is Extism's request JSON; the output, the headers' JSON.
      (func (export "headers") (result i32) (local $h i64)
        (drop (call $request (call $input) (i64.const 0)))
        (local.set $h (call $headers))
        (call $output (local.get $h) (call $length (local.get $h)))
        (i32.sub (call $status) (i32.const 200))))"#;
    let runtime = runtime::<B>(&Log::default());
    let deadline = std::time::Duration::from_millis(500);
    let plugin = runtime
        .load(
            Manifest::from_bytes("headers", wat)
                .allow_http_host("127.0.0.1")
                .deadline(deadline),
        )
        .unwrap();
    let (url, server) = serve_once("200 OK", b"body");
    let request = format!(r#"{{"url": "{url}", "method": "GET", "headers": {{}}}}"#);
    let out = plugin.call_raw("headers", request.as_bytes()).unwrap();
    server.join().unwrap();
    let headers: std::collections::BTreeMap<String, String> = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        headers.get("x-served").map(String::as_str),
        Some("yes"),
        "{headers:?}"
    );
    assert_eq!(headers.get("content-length").map(String::as_str), Some("4"));
    // A server that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let silent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let _ = wait.recv_timeout(std::time::Duration::from_secs(20));
        drop(conn);
    });
    let request = format!(r#"{{"url": "{url}"}}"#);
    let started = std::time::Instant::now();
    let err = plugin.call_raw("headers", request.as_bytes()).unwrap_err();
    let took = started.elapsed();
    // The request is cut short by the call's deadline, which ends the call
    // as a deadline does (not as a failed request).
    assert!(
        matches!(&err, PluginError::Deadline { .. }),
        "{}: {err}",
        B::NAME
    );
    // Bounded by the deadline (with a wide margin for a loaded machine),
    // not by the server, which would hold the connection for 20 s.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}: {err}");
    done.send(()).unwrap();
    silent.join().unwrap();
}

/// `get_log_level` tells a guest whether logging is wanted: everything
/// (Extism's trace, 0) when the application has a logger, nothing (above
/// every level) when it has none; and a line logged then reaches the log
/// with the level mapped to ours (Extism's warn is our 1).
pub fn log_level<B: Backend>() {
    let wat = r#"(module
      (import "extism:host/env" "get_log_level" (func $level (result i32)))
      (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
      (import "extism:host/env" "store_u8" (func $store (param i64 i32)))
      (import "extism:host/env" "log_warn" (func $warn (param i64)))
      (memory (export "memory") 1)
      ;; Logs "w" at warn and returns the level as its exit code + 1.
      (func (export "level") (result i32) (local $h i64)
        (local.set $h (call $alloc (i64.const 1)))
        (call $store (local.get $h) (i32.const 119))
        (call $warn (local.get $h))
        (i32.add (call $level) (i32.const 1))))"#;
    let log = Log::default();
    let logged = runtime::<B>(&log)
        .load(Manifest::from_bytes("level", wat))
        .unwrap();
    let err = logged.call_raw("level", b"").unwrap_err();
    assert!(
        err.to_string().contains("exit code: 1"),
        "{}: {err}",
        B::NAME
    );
    assert_eq!(log.lock().unwrap().as_slice(), &[(1, "w".to_string())]);
    let silent = PluginRuntime::<B>::new()
        .unwrap()
        .load(Manifest::from_bytes("level", wat))
        .unwrap();
    let err = silent.call_raw("level", b"").unwrap_err();
    let expected = format!("exit code: {}", i32::MAX.wrapping_add(1));
    assert!(err.to_string().contains(&expected), "{}: {err}", B::NAME);
}

macro_rules! extism_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            extism_tests!(@cases $b; c_pdk_guest_matches_extism,
                assemblyscript_pdk_guest_matches_extism, the_abi_is_detected, extism_manifests,
                http_requests_to_allowed_hosts,
                hostile_extism_guest, kernel_edges, host_functions_match_extism,
                hostile_host_function_calls, http_headers_and_timeout, log_level);
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

extism_tests!(wasmtime, anywasm::Wasmtime);
extism_tests!(wasmi, anywasm::Wasmi);
extism_tests!(wasmer, anywasm::Wasmer);
