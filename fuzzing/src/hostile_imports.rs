//! Target (b): a `wasm-smith` module built from the input, whose function
//! imports are host functions that return, fail, trap, panic or return
//! results of the wrong type, as the input chooses. Its start function and
//! exports run under fuel and a deadline; the layer must carry every host
//! failure back as an error (or, for a panic, resume it at the call) and
//! leave the store usable.

use anywasm::{Backend, Error, Instance, Module, Store, StoreLimits, Val};
use arbitrary::Unstructured;

use crate::{
    Behaviour, FUEL, MAX_PAGES, TIMEOUT, call_exports, engine, is_planned_panic, stub_imports,
};

/// The `wasm-smith` configuration: what the backends run through the
/// layer. Modules with exceptions (and their tags, `exnref` values and
/// host functions throwing through them) run on the backends that claim
/// exceptions; wasmi refuses them at compile time.
fn smith_config() -> wasm_smith::Config {
    wasm_smith::Config {
        max_imports: 8,
        max_funcs: 20,
        max_memories: 1,
        max_tables: 2,
        max_memory32_bytes: 4 << 20,
        memory64_enabled: false,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        exceptions_enabled: true,
        gc_enabled: false,
        threads_enabled: false,
        tail_call_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        allow_start_export: true,
        ..wasm_smith::Config::default()
    }
}

/// Runs the input on every backend.
pub fn run(data: &[u8]) {
    crate::quiet_planned_panics();
    let mut u = Unstructured::new(data);
    let Ok(module) = wasm_smith::Module::new(smith_config(), &mut u) else {
        return;
    };
    let wasm = module.to_bytes();
    let choices: Vec<u8> = u.take_rest().to_vec();
    on::<anywasm::Wasmtime>(&wasm, &choices);
    on::<anywasm::Wasmi>(&wasm, &choices);
    on::<anywasm::Wasmer>(&wasm, &choices);
}

fn on<B: Backend>(wasm: &[u8], choices: &[u8]) {
    let engine = engine::<B>();
    let module = match Module::new(&engine, wasm) {
        Ok(m) => m,
        // wasm-smith's modules are valid; an engine may still refuse one
        // over its own limits, with an error.
        Err(_) => return,
    };
    let behaviour = |i: usize| Behaviour::from_byte(choices.get(i).copied().unwrap_or(0));
    let mut store = Store::new(&engine, ());
    store.set_limits(
        StoreLimits::new()
            .memory_pages(MAX_PAGES)
            .table_elements(100_000),
    );
    let Some(imports) = stub_imports(&mut store, &module, behaviour) else {
        return;
    };
    let _ = store.set_fuel(FUEL);
    let _ = store.set_timeout(TIMEOUT);
    let instance = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Instance::new(&mut store, &module, &imports)
    }));
    let instance = match instance {
        Ok(Ok(i)) => i,
        Ok(Err(_)) => return,
        Err(payload) if is_planned_panic(&*payload) => return,
        Err(payload) => std::panic::resume_unwind(payload),
    };
    let mut k = 0usize;
    call_exports(&mut store, &instance, |ty| {
        ty.params()
            .iter()
            .map(|t| {
                k += 1;
                let b = choices.get(k).copied().unwrap_or(0);
                match Val::<B>::default_for(*t) {
                    Val::I32(_) => Val::I32(i32::from(b as i8)),
                    Val::I64(_) => Val::I64(i64::from(b as i8)),
                    other => other,
                }
            })
            .collect()
    });
    // The store is still usable after whatever happened.
    let _ = store.set_fuel(FUEL);
    let _ = store.set_timeout(TIMEOUT);
    let probe = Module::from_wat(
        &engine,
        r#"(module (func (export "f") (result i32) i32.const 7))"#,
    )
    .expect("a fixed module compiles");
    if let Ok(i) = Instance::new(&mut store, &probe, &[]) {
        match i
            .get_func(&mut store, "f")
            .and_then(|f| f.invoke(&mut store, &[]))
        {
            Ok(v) => assert_eq!(
                v[0].as_i32(),
                Some(7),
                "{}: a wrong result after fuzzing",
                B::NAME
            ),
            Err(Error::Trap { .. }) => {}
            Err(e) => panic!("{}: the store is broken after fuzzing: {e}", B::NAME),
        }
    }
}
