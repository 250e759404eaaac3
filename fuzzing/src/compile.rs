//! Target (a): arbitrary bytes are validated, compiled and, when they are
//! a module, instantiated with stub imports; its exports are called with
//! zero arguments under fuel and a deadline.

use anywasm::{Backend, Instance, Module, Store, StoreLimits, Val};

use crate::{
    Behaviour, FUEL, MAX_PAGES, TIMEOUT, call_exports, engine, every_backend, stub_imports,
};

/// Runs the input on every backend.
pub fn run(data: &[u8]) {
    crate::quiet_planned_panics();
    every_backend!(on, data);
}

fn on<B: Backend>(data: &[u8]) {
    let engine = engine::<B>();
    let valid = Module::validate(&engine, data).is_ok();
    let module = match Module::new(&engine, data) {
        Ok(m) => m,
        Err(_) => return,
    };
    // A module the engine compiled is one it validates.
    assert!(valid, "{}: compiled a module it does not validate", B::NAME);
    let mut store = Store::new(&engine, ());
    store.set_limits(
        StoreLimits::new()
            .memory_pages(MAX_PAGES)
            .table_elements(100_000)
            .instances(4),
    );
    let _ = store.set_fuel(FUEL);
    let _ = store.set_timeout(TIMEOUT);
    let Some(imports) = stub_imports(&mut store, &module, |_| Behaviour::Returns) else {
        return;
    };
    let instance = match Instance::new(&mut store, &module, &imports) {
        Ok(i) => i,
        Err(_) => return,
    };
    call_exports(&mut store, &instance, |ty| {
        ty.params().iter().map(|t| Val::default_for(*t)).collect()
    });
}
