//! waPC guests on every backend: a guest built with waPC's AssemblyScript
//! library (`tests/fixtures/wapc`, rebuilt by `build.sh`) and hostile ones
//! in WAT. There is no waPC reference host that builds here without a
//! second wasmtime, so the expected answers follow from the protocol and
//! the guest's source, written out in each assertion.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anywasm::Backend;
use anywasm_plugin::{Abi, Manifest, PluginError, PluginRuntime};

type Log = Arc<Mutex<Vec<(u32, String)>>>;

fn runtime<B: Backend>(log: &Log) -> PluginRuntime<B> {
    let log = log.clone();
    PluginRuntime::<B>::builder()
        .host(move |h| {
            h.logger(move |_, level, line| log.lock().unwrap().push((level, line.to_string())));
            h.wapc_handler(|ctx, binding, namespace, operation, payload| {
                match (binding, namespace, operation, payload) {
                    (_, _, _, b"fail me") => Err("the host refuses".into()),
                    ("app", "text", "greet", name) => {
                        let mut answer = format!("hello from {}, ", ctx.plugin).into_bytes();
                        answer.extend_from_slice(name);
                        Ok(answer)
                    }
                    _ => Err(format!("no {binding}/{namespace}/{operation}")),
                }
            })
        })
        .build()
        .unwrap()
}

fn guest() -> Manifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wapc/guest_as.wasm");
    Manifest::from_file("wapc_guest", path)
}

fn guest_error(e: PluginError) -> String {
    match e {
        PluginError::Guest { message, .. } => message,
        other => panic!("not a guest error: {other}"),
    }
}

/// The AssemblyScript guest: operations by name, errors, host calls that
/// succeed and fail, the console, an unknown operation.
pub fn assemblyscript_guest<B: Backend>() {
    let log = Log::default();
    let runtime = runtime::<B>(&log);
    let plugin = runtime.load(guest()).unwrap();
    assert!(
        plugin.has_function("upper"),
        "waPC: the guest answers for its operations"
    );
    let call = |op: &str, payload: &[u8]| plugin.call_raw(op, payload);
    assert_eq!(
        call("echo", b"bytes \0\x01").unwrap(),
        b"bytes \0\x01",
        "{}",
        B::NAME
    );
    assert_eq!(call("echo", b"").unwrap(), b"");
    assert_eq!(call("upper", b"Hello, waPC!").unwrap(), b"HELLO, WAPC!");
    assert_eq!(
        guest_error(call("fail", b"bad input").unwrap_err()),
        "bad input"
    );
    assert_eq!(
        call("ask_host", b"anywasm").unwrap(),
        b"host said: hello from wapc_guest, anywasm"
    );
    assert_eq!(
        call("ask_host", b"fail me").unwrap(),
        b"host failed: the host refuses"
    );
    assert_eq!(call("log", b"to the console").unwrap(), b"logged");
    assert_eq!(
        log.lock().unwrap().as_slice(),
        [(2, "to the console".to_string())]
    );
    assert_eq!(
        guest_error(call("nope", b"").unwrap_err()),
        "Could not find function \"nope\""
    );
    // A large payload both ways.
    let big = vec![b'a'; 1 << 20];
    assert_eq!(call("upper", &big).unwrap(), vec![b'A'; 1 << 20]);
    // The same plugin keeps working after errors.
    assert_eq!(call("echo", b"still here").unwrap(), b"still here");
}

/// Without a handler, host calls fail with a message saying so.
pub fn host_calls_without_a_handler<B: Backend>() {
    let runtime = PluginRuntime::<B>::new().unwrap();
    let plugin = runtime.load(guest().abi(Abi::Wapc)).unwrap();
    let out = plugin.call_raw("ask_host", b"x").unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "host failed: no waPC host handler: `app`/`text`/`greet` is not served"
    );
}

/// Hostile waPC guests: pointers outside memory, asking twice, a response
/// larger than the output limit, a failure without a message. Each is a
/// typed error; the plugin stays usable.
pub fn hostile_wapc_guests<B: Backend>() {
    let wat = r#"(module
      (import "wapc" "__guest_request" (func $req (param i32 i32)))
      (import "wapc" "__guest_response" (func $resp (param i32 i32)))
      (memory (export "memory") 1)
      (func (export "__guest_call") (param $op i32) (param $len i32) (result i32)
        ;; The operation's first byte chooses the misbehaviour.
        (call $req (i32.const 0) (i32.const 64))
        (block $done
          (br_if $done (i32.ne (i32.load8_u (i32.const 0)) (i32.const 0x61)))  ;; "a": request far away
          (call $req (i32.const 0x7fffffff) (i32.const 0))
          (return (i32.const 1)))
        (block $done
          (br_if $done (i32.ne (i32.load8_u (i32.const 0)) (i32.const 0x62)))  ;; "b": request twice
          (call $req (i32.const 0) (i32.const 64))
          (return (i32.const 1)))
        (block $done
          (br_if $done (i32.ne (i32.load8_u (i32.const 0)) (i32.const 0x63)))  ;; "c": 64 KiB response
          (call $resp (i32.const 0) (i32.const 65536))
          (return (i32.const 1)))
        (block $done
          (br_if $done (i32.ne (i32.load8_u (i32.const 0)) (i32.const 0x64)))  ;; "d": response outside memory
          (call $resp (i32.const 65000) (i32.const 1000))
          (return (i32.const 1)))
        ;; anything else: fail without a message
        (i32.const 0)))"#;
    let runtime = runtime::<B>(&Log::default());
    let limits = anywasm_plugin::Limits {
        max_output_bytes: Some(1024),
        ..anywasm_plugin::Limits::default()
    };
    let plugin = runtime
        .load(Manifest::from_bytes("hostile", wat).limits(limits))
        .unwrap();
    for (op, want) in [
        ("a", "AbiViolation"),
        ("b", "AbiViolation"),
        ("c", "LimitExceeded"),
        ("d", "AbiViolation"),
    ] {
        let err = plugin.call_raw(op, b"").unwrap_err();
        let got = match &err {
            PluginError::AbiViolation { .. } => "AbiViolation",
            PluginError::LimitExceeded { .. } => "LimitExceeded",
            _ => "other",
        };
        assert_eq!(got, want, "{}: `{op}`: {err}", B::NAME);
    }
    let err = plugin.call_raw("e", b"").unwrap_err();
    assert_eq!(
        guest_error(err),
        "the guest failed without an error message"
    );
    // A payload larger than the guest's memory: the guest's request for it
    // lands out of range, a typed error.
    let err = plugin.call_raw("z", &vec![0; 128 << 10]).unwrap_err();
    assert!(matches!(err, PluginError::AbiViolation { .. }), "{err}");
}

macro_rules! wapc_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            wapc_tests!(@cases $b; assemblyscript_guest, host_calls_without_a_handler,
                hostile_wapc_guests);
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

wapc_tests!(wasmtime, anywasm::Wasmtime);
wapc_tests!(wasmi, anywasm::Wasmi);
wapc_tests!(wasmer, anywasm::Wasmer);
