//! C programs built with wasi-libc, run on every backend: same output,
//! same exit status, every escape refused. Tests are `<backend>::<case>`.

use std::path::Path;

use anywasm::{Backend, Engine, Module};
use anywasm_wasi::{Captured, Output, WasiConfig, run_command};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name, ".wasm"))
    };
}

/// Runs a program; returns (status, stdout, stderr).
fn run<B: Backend>(wasm: &[u8], config: WasiConfig) -> (i32, String, String) {
    let engine = Engine::<B>::default_config().unwrap();
    let module = Module::new(&engine, wasm).unwrap();
    let (out, err) = (Captured::new(), Captured::new());
    let config = config
        .stdout(Output::Capture(out.clone()))
        .stderr(Output::Capture(err.clone()));
    let status =
        run_command(&engine, &module, config).unwrap_or_else(|e| panic!("{}: {e}", B::NAME));
    (status, out.text(), err.text())
}

/// A sandbox: `sandbox/` (read-write, with a symlink leading out),
/// `ro/` (read-only) and `outside.txt` next to them.
fn sandbox() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    std::fs::create_dir(p.join("sandbox")).unwrap();
    std::fs::create_dir(p.join("ro")).unwrap();
    std::fs::write(p.join("outside.txt"), "secret").unwrap();
    std::fs::write(p.join("sandbox/inside.txt"), "fine").unwrap();
    std::fs::write(p.join("ro/readme.txt"), "read me\n").unwrap();
    std::os::unix::fs::symlink(p.join("outside.txt"), p.join("sandbox/link_out")).unwrap();
    root
}

fn preopens(root: &Path) -> WasiConfig {
    WasiConfig::new()
        .preopen_dir(root.join("sandbox"), "/sandbox")
        .preopen_dir_read_only(root.join("ro"), "/ro")
}

/// `hello, world` on stdout, a line on stderr.
pub fn hello<B: Backend>() {
    let (status, out, err) = run::<B>(fixture!("hello"), WasiConfig::new());
    assert_eq!(
        (status, out.as_str(), err.as_str()),
        (0, "hello, world\n", "to stderr\n")
    );
}

/// Arguments and environment as configured, nothing of the host's.
pub fn args_and_env<B: Backend>() {
    let config = WasiConfig::new()
        .args(["prog", "one", "two words"])
        .env("GREETING", "bonjour");
    let (status, out, _) = run::<B>(fixture!("args_env"), config);
    assert_eq!(status, 0);
    assert_eq!(
        out,
        "argc=3\nargv[0]=prog\nargv[1]=one\nargv[2]=two words\nGREETING=bonjour\nHOME=(unset)\nenviron has 1 entries\n"
    );
}

/// Standard input from bytes.
pub fn stdin<B: Backend>() {
    let (status, out, _) = run::<B>(
        fixture!("stdin"),
        WasiConfig::new().stdin_bytes(b"quiet words".to_vec()),
    );
    assert_eq!((status, out.as_str()), (0, "read 11 bytes: QUIET WORDS\n"));
    let (_, out, _) = run::<B>(fixture!("stdin"), WasiConfig::new());
    assert_eq!(out, "read 0 bytes: \n");
}

/// Files in a preopen: write, append, read, stat, mkdir, rename, readdir,
/// unlink, rmdir; a read-only preopen can be read.
pub fn files<B: Backend>() {
    let root = sandbox();
    let (status, out, _) = run::<B>(fixture!("files"), preopens(root.path()));
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        out,
        "read 29 bytes:\nline one\nline two\nline three\nsize=29 regular=1\nmkdir=0\nrename=0\n\
         entry .\nentry ..\nentry data.txt\nentry inside.txt\nentry link_out\nentry sub\n\
         unlink=0\nrmdir=0\nro says: read me\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("sandbox/data.txt")).unwrap(),
        "line one\nline two\nline three\n"
    );
}

/// Every way out of the sandbox fails with ENOTCAPABLE (76). A file of a
/// read-only preopen opened for writing opens for reading only (wasi-libc
/// asks only for the rights the directory passes on), and writing to it
/// fails with EBADF (8), which wasi-libc makes of ENOTCAPABLE for `write`.
pub fn escapes_are_refused<B: Backend>() {
    let root = sandbox();
    // An existing directory, so the deep `..` is refused for escaping and
    // not merely for naming a missing directory.
    std::fs::create_dir(root.path().join("sandbox/sub")).unwrap();
    let (status, out, _) = run::<B>(fixture!("escape"), preopens(root.path()));
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        out,
        "dot-dot: refused (errno 76)\n\
         dot-dot deep: refused (errno 76)\n\
         absolute: refused (errno 76)\n\
         symlink out: refused (errno 76)\n\
         write read-only: -1 (errno 8)\n\
         create in read-only: refused (errno 76)\n\
         mkdir in read-only: -1 (errno 76)\n\
         unlink in read-only: -1 (errno 76)\n\
         inside: OPENED (errno 0)\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("outside.txt")).unwrap(),
        "secret"
    );
    assert!(root.path().join("ro/readme.txt").exists());
}

/// `exit(3)` is exit status 3, not a trap; output before it is kept.
pub fn exit_status<B: Backend>() {
    let (status, out, _) = run::<B>(fixture!("exit3"), WasiConfig::new());
    assert_eq!((status, out.as_str()), (3, "about to exit\n"));
}

/// Clocks advance, sleeping works, randomness is random.
pub fn clocks_and_random<B: Backend>() {
    let (status, out, _) = run::<B>(fixture!("clock_random"), WasiConfig::new());
    assert_eq!(status, 0);
    assert_eq!(
        out,
        "monotonic advances: 1\nrealtime after 2020: 1\ngetentropy: 0, some bytes set: 1\ntwo draws differ: 1\n"
    );
}

/// Sockets are not offered: each `sock_*` call answers ENOTSUP (58).
pub fn sockets_answer_enotsup<B: Backend>() {
    let engine = Engine::<B>::default_config().unwrap();
    for (call, args) in [
        ("sock_accept", "(i32.const 3) (i32.const 0) (i32.const 0)"),
        (
            "sock_recv",
            "(i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)",
        ),
        (
            "sock_send",
            "(i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)",
        ),
        ("sock_shutdown", "(i32.const 3) (i32.const 0)"),
    ] {
        let n = args.matches("i32.const").count();
        let module = Module::from_wat(
            &engine,
            &format!(
                r#"(module
                  (import "wasi_snapshot_preview1" "{call}" (func $s (param {params}) (result i32)))
                  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                  (memory (export "memory") 1)
                  (func (export "_start") (call $exit (call $s {args}))))"#,
                params = vec!["i32"; n].join(" ")
            ),
        )
        .unwrap();
        let status = run_command(&engine, &module, WasiConfig::new())
            .unwrap_or_else(|e| panic!("{}: {call}: {e}", B::NAME));
        assert_eq!(status, 58, "{}: {call}", B::NAME);
    }
}

macro_rules! wasi_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            wasi_tests!(@cases $b; hello, args_and_env, stdin, files, escapes_are_refused, exit_status, clocks_and_random,
                sockets_answer_enotsup);
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

/// The same program gives byte-identical output and status on every backend.
#[test]
fn identical_on_every_backend() {
    let programs: [(&str, &[u8]); 5] = [
        ("hello", fixture!("hello")),
        ("args_env", fixture!("args_env")),
        ("files", fixture!("files")),
        ("escape", fixture!("escape")),
        ("exit3", fixture!("exit3")),
    ];
    for (name, wasm) in programs {
        let config = |root: &Path| preopens(root).args(["x", "y"]).env("GREETING", "hi");
        let (a, b, c) = (sandbox(), sandbox(), sandbox());
        let wt = run::<anywasm::Wasmtime>(wasm, config(a.path()));
        let wi = run::<anywasm::Wasmi>(wasm, config(b.path()));
        let wr = run::<anywasm::Wasmer>(wasm, config(c.path()));
        assert_eq!(wt, wi, "{name}: wasmtime and wasmi differ");
        assert_eq!(wt, wr, "{name}: wasmtime and wasmer differ");
    }
}
