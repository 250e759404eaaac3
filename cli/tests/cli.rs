//! Every subcommand of the `anywasm` binary on fixtures, including bad input.

use std::process::{Command, Output};

const MATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/math.wat");

/// The code cache the tests share (never the user's own).
const CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/anywasm-cli-cache");

fn anywasm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anywasm"))
        .args(args)
        .env("ANYWASM_CACHE_DIR", CACHE)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure is one line on stderr, no backtrace, and the given status.
#[track_caller]
fn fails_with(o: &Output, status: i32, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(status),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    let err = stderr(o);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn demo_runs_on_every_engine() {
    let o = anywasm(&["demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for engine in ["wasmtime", "wasmi", "wasmer"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(engine))
            .unwrap_or_else(|| panic!("{engine} missing: {out}"));
        assert!(line.contains("75025"), "{line}");
    }
}

#[test]
fn inspect_shows_the_module() {
    let o = anywasm(&["inspect", MATH]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "add: (func (param i32 i32) (result i32))",
        "pair: (func (result i32 i64))",
        "memory: (memory 1 4)",
        "0: 32-bit, min 1 pages, max 4",
        "0: funcref, min 2, unbounded",
        "note (5 bytes)",
        "proposals used: multi-value",
        "sha256: ",
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{out}");
    }
}

#[test]
fn inspect_shows_dylink() {
    let lib = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../linker/tests/fixtures/libmid.so"
    );
    let o = anywasm(&["inspect", lib]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "dynamic library (dylink.0):",
        "memory: 12 bytes, aligned to 4",
        "needed: libbase.so",
        "import env.maybe_fn, weak",
        "GOT.mem.base_value: (global (mut i32))",
    ] {
        assert!(out.contains(needle), "`{needle}` not in:\n{out}");
    }
    assert!(!stdout(&anywasm(&["inspect", MATH])).contains("dylink"));
}

#[test]
fn call_prints_results_on_each_engine() {
    for engine in ["wasmtime", "wasmi", "wasmer"] {
        let o = anywasm(&["call", MATH, "add", "40", "2", "--backend", engine]);
        assert_eq!(stdout(&o), "42\n", "{engine}: {}", stderr(&o));
        let o = anywasm(&["call", MATH, "add", "-5", "3", "-b", engine]);
        assert_eq!(stdout(&o), "-2\n");
        let o = anywasm(&["call", MATH, "half", "3", "-b", engine]);
        assert_eq!(stdout(&o), "1.5\n");
        let o = anywasm(&["call", MATH, "big", "0x40000000", "-b", engine]);
        assert_eq!(stdout(&o), "2147483648\n");
        let o = anywasm(&["call", MATH, "pair", "-b", engine]);
        assert_eq!(stdout(&o), "1\n2\n");
    }
}

#[test]
fn call_reports_traps_and_limits() {
    fails_with(
        &anywasm(&["call", MATH, "div", "1", "0"]),
        3,
        "integer divide by zero",
    );
    fails_with(
        &anywasm(&["call", MATH, "spin", "--fuel", "10000", "-b", "wasmi"]),
        3,
        "all fuel consumed",
    );
    fails_with(
        &anywasm(&["call", MATH, "spin", "--timeout-ms", "50", "-b", "wasmer"]),
        3,
        "deadline exceeded",
    );
}

#[test]
fn bad_input_is_one_line_and_a_status() {
    fails_with(
        &anywasm(&["call", MATH, "add", "1"]),
        1,
        "takes 2 argument(s), 1 given",
    );
    fails_with(
        &anywasm(&["call", MATH, "add", "1", "x"]),
        1,
        "argument 2 (`x`) is not a valid i32",
    );
    fails_with(
        &anywasm(&["call", MATH, "add", "1", "99999999999"]),
        1,
        "is not a valid i32",
    );
    fails_with(
        &anywasm(&["call", MATH, "nope"]),
        1,
        "no exported function named `nope`",
    );
    fails_with(
        &anywasm(&["call", MATH, "memory"]),
        1,
        "expected func, found memory",
    );
    fails_with(
        &anywasm(&["call", "/nonexistent.wasm", "f"]),
        1,
        "cannot read /nonexistent.wasm",
    );
    fails_with(
        &anywasm(&["call", MATH, "add", "1", "2", "-b", "v8"]),
        1,
        "unknown backend `v8`",
    );
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\x00asm\x01\x00\x00\x00\x05\xff\xff").unwrap();
    fails_with(
        &anywasm(&["inspect", garbage.to_str().unwrap()]),
        1,
        "garbage.wasm",
    );
    fails_with(
        &anywasm(&["call", garbage.to_str().unwrap(), "f"]),
        1,
        "invalid module",
    );
    std::fs::write(&garbage, "not wasm at all").unwrap();
    fails_with(
        &anywasm(&["call", garbage.to_str().unwrap(), "f"]),
        1,
        "neither WebAssembly nor valid WebAssembly text",
    );
    std::fs::write(&garbage, [0xffu8, 0xfe, 0x00]).unwrap();
    fails_with(
        &anywasm(&["bench", garbage.to_str().unwrap()]),
        1,
        "neither WebAssembly",
    );
    let imports = dir.path().join("imports.wat");
    std::fs::write(
        &imports,
        r#"(module (import "env" "f" (func)) (func (export "g")))"#,
    )
    .unwrap();
    fails_with(
        &anywasm(&["call", imports.to_str().unwrap(), "g"]),
        1,
        "imports `env`.`f`",
    );
}

#[test]
fn bench_prints_a_table_or_json() {
    let o = anywasm(&["bench", MATH, "add", "1", "2", "--iterations", "50"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("engine"), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let o = anywasm(&["bench", MATH, "--json", "--backends", "wasmi,wasmer"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["backend"], "wasmi");
    assert!(rows[1]["compile_ns"].as_u64().unwrap() > 0);
    // wasmi keeps no compiled code; wasmer loads it from the cache.
    assert!(rows[0]["cached_load_ns"].is_null(), "{rows:?}");
    assert!(rows[1]["cached_load_ns"].as_u64().unwrap() > 0, "{rows:?}");
    let o = anywasm(&[
        "bench",
        MATH,
        "--json",
        "--backends",
        "wasmer",
        "--no-cache",
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(rows[0]["cached_load_ns"].is_null(), "{rows:?}");
    fails_with(
        &anywasm(&["bench", MATH, "add", "1"]),
        1,
        "argument(s) given",
    );
}

#[test]
fn conformance_prints_the_matrix() {
    let o = anywasm(&["conformance"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("| wasm-v2 |"), "{out}");
    for engine in ["wasmtime 48.0.8", "wasmi 2.0.0", "wasmer 7.3.0"] {
        assert!(out.contains(engine), "{engine}: {out}");
    }
}

fn wasi_fixture(name: &str) -> String {
    format!(
        "{}/../wasi/tests/fixtures/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn run_passes_args_env_and_exit_status_on_each_engine() {
    let prog = wasi_fixture("args_env");
    for engine in ["wasmtime", "wasmi", "wasmer"] {
        let o = anywasm(&[
            "run",
            "-b",
            engine,
            "--env",
            "GREETING=hi",
            &prog,
            "--",
            "one",
            "two words",
        ]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            "argc=3\nargv[0]=args_env.wasm\nargv[1]=one\nargv[2]=two words\nGREETING=hi\nHOME=(unset)\n\
             environ has 1 entries\n",
            "{engine}"
        );
        let o = anywasm(&["run", "-b", engine, &wasi_fixture("exit3")]);
        assert_eq!(o.status.code(), Some(3), "{engine}: {}", stderr(&o));
        assert_eq!(stdout(&o), "about to exit\n");
    }
}

#[test]
fn run_gives_only_the_named_directories() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("{}::/sandbox", dir.path().display());
    let o = anywasm(&["run", "--dir", &spec, &wasi_fixture("files")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("line three"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data.txt")).unwrap(),
        "line one\nline two\nline three\n"
    );
    // Read-only: the program cannot create its file.
    let ro = tempfile::tempdir().unwrap();
    let o = anywasm(&[
        "run",
        "--dir",
        &format!("{}::/sandbox:ro", ro.path().display()),
        &wasi_fixture("files"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("fopen w failed: 76"), "{}", stdout(&o));
    assert!(std::fs::read_dir(ro.path()).unwrap().next().is_none());
    // Bad input.
    fails_with(
        &anywasm(&["run", "--dir", "/no/such/dir", &wasi_fixture("files")]),
        1,
        "is not a directory",
    );
    fails_with(
        &anywasm(&["run", "--env", "=x", &wasi_fixture("hello")]),
        1,
        "name is empty",
    );
    fails_with(&anywasm(&["run", MATH]), 1, "no `_start` export");
    fails_with(
        &anywasm(&["run", "missing.wasm"]),
        1,
        "cannot read missing.wasm",
    );
}

/// `run` takes the same limits as `call`: an untrusted program that loops,
/// or wants more memory than allowed, ends with one line and a status.
#[test]
fn run_enforces_limits_on_each_engine() {
    let dir = tempfile::tempdir().unwrap();
    let spin = dir.path().join("spin.wat");
    std::fs::write(
        &spin,
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
    )
    .unwrap();
    let big = dir.path().join("big.wat");
    std::fs::write(
        &big,
        r#"(module (memory (export "memory") 64) (func (export "_start")))"#,
    )
    .unwrap();
    let grows = dir.path().join("grows.wat");
    std::fs::write(
        &grows,
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start")
              ;; exit status 7 when growing past the limit fails, as it must
              (if (i32.eq (memory.grow (i32.const 64)) (i32.const -1))
                (then (call $exit (i32.const 7))))))"#,
    )
    .unwrap();
    let (spin, big, grows) = (
        spin.to_str().unwrap(),
        big.to_str().unwrap(),
        grows.to_str().unwrap(),
    );
    for engine in ["wasmtime", "wasmi", "wasmer"] {
        fails_with(
            &anywasm(&["run", "-b", engine, "--timeout-ms", "100", spin]),
            3,
            "deadline exceeded",
        );
        fails_with(
            &anywasm(&["run", "-b", engine, "--fuel", "100000", spin]),
            3,
            "all fuel consumed",
        );
        fails_with(
            &anywasm(&["run", "-b", engine, "--max-memory-mb", "1", big]),
            1,
            "limit",
        );
        let o = anywasm(&["run", "-b", engine, "--max-memory-mb", "2", grows]);
        assert_eq!(o.status.code(), Some(7), "{engine}: {}", stderr(&o));
        let o = anywasm(&["run", "-b", engine, "--max-memory-mb", "8", grows]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
    }
    fails_with(
        &anywasm(&["run", "--max-memory-mb", "0", spin]),
        1,
        "at least 1",
    );
}

const ZSTD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/zstd/zstd.wasm");

/// A real program (the zstd library, 850 KB of wasm): the second run loads
/// its code from the cache and prints the same as the first, which is what
/// the program built natively prints; `--no-cache` and a cache directory
/// others may write to compile instead.
#[test]
fn run_loads_compiled_code_from_the_cache() {
    let expected = include_str!("fixtures/zstd/expected-64.txt");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    for (engine, first, second) in [
        (
            "wasmtime",
            "compiled, stored in the code cache",
            "loaded from the code cache",
        ),
        (
            "wasmer",
            "compiled, stored in the code cache",
            "loaded from the code cache",
        ),
        ("wasmi", "keeps no compiled code", "keeps no compiled code"),
    ] {
        for how in [first, second] {
            let o = anywasm(&[
                "run",
                "-b",
                engine,
                "--timings",
                "--cache-dir",
                cache,
                ZSTD,
                "--",
                "64",
            ]);
            assert!(o.status.success(), "{engine}: {}", stderr(&o));
            assert_eq!(stdout(&o), expected, "{engine}");
            assert!(
                stderr(&o).contains(how),
                "{engine}: `{how}` not in {}",
                stderr(&o)
            );
        }
        let o = anywasm(&[
            "run",
            "-b",
            engine,
            "--timings",
            "--no-cache",
            ZSTD,
            "--",
            "64",
        ]);
        assert_eq!(stdout(&o), expected, "{engine}");
        assert!(stderr(&o).contains("cache off"), "{}", stderr(&o));
    }
    let entries = std::fs::read_dir(cache).unwrap().count();
    assert_eq!(entries, 2, "one entry per engine that keeps code");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let o = anywasm(&["run", "--timings", "--cache-dir", cache, ZSTD, "--", "1"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("warning: compiling without the code cache")
                && err.contains("others may write"),
            "{err}"
        );
        assert!(err.contains("cache off"), "{err}");
    }
}

/// A dynamically linked WASI program (the linker's `tests/fixtures/wasi`: a
/// PIE main and two side modules) runs with its libraries from the
/// program's directory or from `--lib-path`, on each engine.
#[test]
fn run_links_a_dynamically_linked_program() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../linker/tests/fixtures/wasi");
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("input.txt"), "from the --dir\n").unwrap();
    let dir = format!("{}::/data", data.path().display());
    let main = format!("{fixtures}/wasi_main.wasm");
    for engine in ["wasmtime", "wasmi", "wasmer"] {
        let o = anywasm(&["run", "-b", engine, "--dir", &dir, &main]);
        assert_eq!(o.status.code(), Some(7), "{engine}: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            "hello from a side module\nread: from the --dir\n",
            "{engine}"
        );
    }
    // The main program elsewhere, its libraries through --lib-path.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("prog.wasm");
    std::fs::copy(&main, &copy).unwrap();
    let copy = copy.to_str().unwrap();
    let o = anywasm(&["run", "--dir", &dir, copy]);
    fails_with(
        &o,
        1,
        "library `libgreet.so` needed by `prog.wasm` was not found",
    );
    let o = anywasm(&["run", "--dir", &dir, "--lib-path", fixtures, copy]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    // Limits apply: the program cannot run out its fuel unnoticed.
    let o = anywasm(&["run", "--fuel", "10", "--dir", &dir, &main]);
    assert_ne!(o.status.code(), Some(7), "{}", stdout(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    // --lib-path means nothing for a program that is not dynamically linked.
    let o = anywasm(&["run", "--lib-path", fixtures, &wasi_fixture("exit3")]);
    fails_with(&o, 1, "no `dylink.0` section");
    let o = anywasm(&["run", "--lib-path", "/no/such/dir", &main]);
    fails_with(&o, 1, "not a directory");
}

/// A WASI program (clang) whose libraries were built by emcc: C and C++
/// side modules, through `anywasm run`, on each engine.
#[test]
fn run_links_emscripten_side_modules() {
    let main = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../linker/tests/fixtures/emscripten/em_main.wasm"
    );
    for engine in ["wasmtime", "wasmi", "wasmer"] {
        let o = anywasm(&["run", "-b", engine, main]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            "em_add(1, 2) = 5\nem_read() = 40\nshapes_total() = 67\nshapes_rect_area() = 42\n",
            "{engine}"
        );
    }
}

const EXTISM_GUEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugin-runtime/tests/fixtures/extism/guest_c.wasm"
);

/// `plugin call`: an Extism plugin, one call per input on the same plugin
/// (the var `total` carries over), on each engine; config; errors after the
/// outputs so far.
#[test]
fn plugin_call_runs_an_extism_plugin() {
    for engine in ["wasmtime", "wasmi", "wasmer"] {
        let o = anywasm(&[
            "plugin",
            "call",
            "-b",
            engine,
            EXTISM_GUEST,
            "count_vowels",
            "Hello, World!",
            "aeiou",
        ]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            "{\"count\":3,\"total\":3}\n{\"count\":5,\"total\":8}\n",
            "{engine}"
        );
    }
    let o = anywasm(&[
        "plugin",
        "call",
        "--config",
        "greeting=Howdy",
        EXTISM_GUEST,
        "greet",
        "anywasm",
    ]);
    assert_eq!(stdout(&o), "Howdy, anywasm!\n", "{}", stderr(&o));
    // The guest's error, after the output of the calls before it.
    let o = anywasm(&["plugin", "call", EXTISM_GUEST, "fail", "bad input"]);
    fails_with(&o, 1, "failed in `fail`: bad input");
    let o = anywasm(&["plugin", "call", EXTISM_GUEST, "nope", "x"]);
    fails_with(&o, 1, "has no function `nope`");
    let o = anywasm(&[
        "plugin",
        "call",
        "--abi",
        "extasm",
        EXTISM_GUEST,
        "echo",
        "x",
    ]);
    fails_with(&o, 1, "unknown ABI `extasm`");
    // A waPC guest: FUNCTION is the operation.
    let wapc = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugin-runtime/tests/fixtures/wapc/guest_as.wasm"
    );
    for engine in ["wasmtime", "wasmi", "wasmer"] {
        let o = anywasm(&[
            "plugin", "call", "-b", engine, wapc, "upper", "hello", "waPC",
        ]);
        assert_eq!(stdout(&o), "HELLO\nWAPC\n", "{engine}: {}", stderr(&o));
    }
    let o = anywasm(&["plugin", "call", wapc, "nope", "x"]);
    fails_with(&o, 1, "Could not find function \"nope\"");
    let out = stdout(&anywasm(&["plugin", "inspect", wapc]));
    assert!(out.starts_with("abi: wapc"), "{out}");
    let o = anywasm(&[
        "plugin",
        "call",
        "--config",
        "novalue",
        EXTISM_GUEST,
        "echo",
        "x",
    ]);
    fails_with(&o, 1, "not KEY=VALUE");
    // An anywasm plugin: JSON in, JSON out.
    let icons = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/file_icons_c.wasm");
    let o = anywasm(&[
        "plugin",
        "call",
        "--allow",
        "anywasm.calc",
        "--allow",
        "anywasm.echo",
        icons,
        "handle_event",
        r#"{"kind":"open","path":"src/main.rs","size":1200}"#,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"icon\""), "{}", stdout(&o));
}

/// A plugin error ends the command after the outputs so far.
#[test]
fn plugin_call_stops_at_the_first_error() {
    let o = anywasm(&["plugin", "call", EXTISM_GUEST, "greet", "one", "two"]);
    assert_eq!(stdout(&o), "Hello, one!\nHello, two!\n");
    let wat = tempfile::NamedTempFile::with_suffix(".wat").unwrap();
    std::fs::write(
        wat.path(),
        r#"(module
          (import "extism:host/env" "input_length" (func $len (result i64)))
          (memory (export "memory") 1)
          ;; Fails (exit code 1) when the input is longer than 3 bytes.
          (func (export "short") (result i32) (i64.gt_u (call $len) (i64.const 3))))"#,
    )
    .unwrap();
    let o = anywasm(&[
        "plugin",
        "call",
        wat.path().to_str().unwrap(),
        "short",
        "a",
        "bb",
        "cccc",
        "d",
    ]);
    assert_eq!(stdout(&o), "\n\n", "two outputs (empty), then the error");
    fails_with(&o, 1, "Returned non-zero exit code: 1");
}

/// `plugin inspect` names the ABI and the imports.
#[test]
fn plugin_inspect_names_the_abi() {
    let o = anywasm(&["plugin", "inspect", EXTISM_GUEST]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("abi: extism"), "{out}");
    assert!(
        out.contains("extism:host/env: ") && out.contains("var_set"),
        "{out}"
    );
    assert!(out.contains("count_vowels"), "{out}");
    let icons = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/file_icons_c.wasm");
    let out = stdout(&anywasm(&["plugin", "inspect", icons]));
    assert!(out.starts_with("abi: anywasm"), "{out}");
    let out = stdout(&anywasm(&["plugin", "inspect", MATH]));
    assert!(out.starts_with("abi: none"), "{out}");
}
