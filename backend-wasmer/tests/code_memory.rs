//! wasmer keeps the code of every module an engine compiles until the
//! engine is dropped, and panics (poisoning the engine for good) when the
//! system refuses to map more code. The backend refuses a module with
//! `Error::Limit` before that (found by the `hostile_imports` fuzz target
//! after ~36 000 inputs on shared engines). A test file of its own: it fills
//! the process's share of memory mappings for wasmer.

use anywasm_core::{Config, Engine, Error, Instance, Module, Store};
use anywasm_wasmer::Wasmer;

fn wasm(i: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (func (export "f") (result i32) i32.const {i}))"#
    ))
    .unwrap()
}

#[test]
fn engines_full_of_code_refuse_modules_with_an_error() {
    // Linux allows a process this many mappings; wasmer takes two per
    // module, and the backend lets it have half of them.
    let Some(max_maps) = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        eprintln!("no /proc/sys/vm/max_map_count: not Linux, no mapping count to respect");
        return;
    };
    assert!(
        max_maps <= 1 << 20,
        "vm.max_map_count is {max_maps}; the test would take too long"
    );
    let engine = Engine::<Wasmer>::new(&Config::new()).unwrap();
    let first = Module::new(&engine, wasm(7)).unwrap();
    let mut refused = None;
    for i in 1..max_maps {
        if let Err(e) = Module::new(&engine, wasm(i)) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("the engines' code place ran out");
    eprintln!("modules compiled before the refusal: {i}; {e}");
    assert_eq!(u64::from(i), u64::from(max_maps) / 4, "{e}");
    assert!(
        matches!(&e, Error::Limit(m) if m.contains("new engine")),
        "expected Error::Limit, got {e:?}"
    );
    // The refusal is before wasmer: the engine still works (an earlier
    // module instantiates and runs), and a new engine is refused too while
    // this one holds the code.
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &first, &[]).unwrap();
    let f = instance.get_func(&mut store, "f").unwrap();
    assert_eq!(f.invoke(&mut store, &[]).unwrap()[0].as_i32(), Some(7));
    let other = Engine::<Wasmer>::new(&Config::new()).unwrap();
    assert!(matches!(Module::new(&other, wasm(0)), Err(Error::Limit(_))));
    // Their code goes with the engine and its modules.
    drop((store, instance, f, first, engine));
    Module::new(&other, wasm(1)).expect("the code place is free again");
}
