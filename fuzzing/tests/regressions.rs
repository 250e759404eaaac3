//! Every input a fuzz target crashed on, run again through that target
//! (each on all three backends). The inputs are in `tests/regressions/`,
//! named `<target>-<hash>.bin`; RELIABILITY.md says what each one found.
//!
//! `compile-de800ad4.bin` (the WASI fixture `hello.wasm`) overflowed the
//! native stack in wasmi only in the fuzz build, whose coverage
//! instrumentation keeps LLVM from turning wasmi's dispatch tail calls into
//! jumps; the same happened to any application's debug build, since
//! anywasm had not enabled wasmi's `auto-dispatch`. Here it runs in the test
//! profile; `.ci/run` checks the debug-build case with wasmi at opt-level 0,
//! and the fuzz crate enables `wasmi-portable-dispatch`.
//!
//! `hostile_imports-f4bbb516.bin` crashed only as the 36 558th input of a
//! run: the earlier inputs had filled the process-wide wasmer engine with
//! code (wasmer keeps every module's code until its engine is dropped, and
//! panics when the system refuses more mappings). Alone it passes; the
//! regression test of the cause is `backend-wasmer/tests/code_memory.rs`,
//! and the targets now give wasmi and wasmer a new engine every 500
//! inputs.

fn run_all(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(&format!("{target}-")) {
            eprintln!("{name}");
            run(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    eprintln!("{target}: {n} inputs");
}

#[test]
fn compile() {
    run_all("compile", anywasm_fuzzing::compile::run);
}

#[test]
fn hostile_imports() {
    run_all("hostile_imports", anywasm_fuzzing::hostile_imports::run);
}
