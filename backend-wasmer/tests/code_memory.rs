//! wasmer keeps the code of every module an engine compiles until the
//! engine is dropped, and panics when the system refuses to map more code
//! executable. The backend turns that panic into an error that says what to
//! do (found by the `hostile_imports` fuzz target after ~36 000 inputs on
//! shared engines). A test file of its own: it uses up the process's memory
//! mappings for a moment.

use anywasm_core::{Config, Engine, Error, Module};
use anywasm_wasmer::Wasmer;

fn wasm(i: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (func (export "f") (result i32) i32.const {i}))"#
    ))
    .unwrap()
}

#[test]
fn an_engine_full_of_code_fails_with_an_error_and_a_new_engine_works() {
    // Linux allows a process this many mappings; each module's code takes
    // at least one, so the engine fails before that many modules.
    let Some(max_maps) = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        eprintln!("no /proc/sys/vm/max_map_count: not Linux, nothing to exhaust");
        return;
    };
    assert!(
        max_maps <= 1 << 20,
        "vm.max_map_count is {max_maps}; the test would take too long"
    );
    let engine = Engine::<Wasmer>::new(&Config::new()).unwrap();
    let mut failed_at = None;
    for i in 0..max_maps {
        match Module::new(&engine, wasm(i)) {
            Ok(_) => {}
            Err(e) => {
                failed_at = Some((i, e));
                break;
            }
        }
    }
    let (i, e) = failed_at.expect("the engine ran out of code mappings");
    eprintln!("wasmer's engine failed after {i} modules: {e}");
    match &e {
        Error::Backend { backend, message } => {
            assert_eq!(*backend, "wasmer");
            assert!(message.contains("use a new Engine"), "{message}");
        }
        other => panic!("expected Error::Backend, got {other:?}"),
    }
    // The same engine keeps answering with an error, not a panic.
    assert!(Module::new(&engine, wasm(0)).is_err());
    // Its code goes with it; a new engine compiles again.
    drop(engine);
    let engine = Engine::<Wasmer>::new(&Config::new()).unwrap();
    Module::new(&engine, wasm(1)).expect("a new engine compiles");
}
