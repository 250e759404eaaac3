//! The cases. Each is a plain function generic over the backend; it panics
//! (as a test) when the backend misbehaves.

mod asynchronous;
mod calls;
mod exceptions;
mod host;
mod items;
mod limits;
mod misuse;
mod modules;
mod traps;

pub use asynchronous::*;
pub use calls::*;
pub use exceptions::*;
pub use host::*;
pub use items::*;
pub use limits::*;
pub use misuse::*;
pub use modules::*;
pub use traps::*;

use anywasm_core::{
    Backend, Config, Engine, Error, Instance, Linker, Module, Store, TrapCode, Val,
};

/// An engine with `config`, or a test failure naming the backend.
pub fn engine<B: Backend>(config: &Config) -> Engine<B> {
    Engine::<B>::new(config).unwrap_or_else(|e| panic!("{}: cannot create engine: {e}", B::NAME))
}

/// A module from WAT text.
pub fn module<B: Backend>(engine: &Engine<B>, wat: &str) -> Module<B> {
    Module::from_wat(engine, wat)
        .unwrap_or_else(|e| panic!("{}: fixture does not compile: {e}", B::NAME))
}

/// A store and an instance of a module without imports.
pub fn instantiate<B: Backend, T: Send + 'static>(
    engine: &Engine<B>,
    wat: &str,
    data: T,
) -> (Store<B, T>, Instance<B>) {
    let module = module(engine, wat);
    let mut store = Store::new(engine, data);
    let instance = Linker::new()
        .instantiate(&mut store, &module)
        .unwrap_or_else(|e| panic!("{}: cannot instantiate: {e}", B::NAME));
    (store, instance)
}

/// Calls an export dynamically.
pub fn call<B: Backend, T: Send + 'static>(
    store: &mut Store<B, T>,
    instance: &Instance<B>,
    name: &str,
    args: &[Val<B>],
) -> anywasm_core::Result<Vec<Val<B>>> {
    let f = instance.get_func(&mut *store, name)?;
    f.invoke(store, args)
}

/// Asserts that `r` is a trap with `code`.
#[track_caller]
pub fn assert_trap<T: std::fmt::Debug>(backend: &str, r: anywasm_core::Result<T>, code: TrapCode) {
    match r {
        Err(Error::Trap { code: c, .. }) if c == code => {}
        other => panic!("{backend}: expected trap `{code}`, got {other:?}"),
    }
}

/// The first result as an i32.
#[track_caller]
pub fn i32_of<B: Backend>(vals: Vec<Val<B>>) -> i32 {
    vals.first()
        .and_then(Val::as_i32)
        .unwrap_or_else(|| panic!("expected an i32 result, got {vals:?}"))
}

/// The first result as an i64.
#[track_caller]
pub fn i64_of<B: Backend>(vals: Vec<Val<B>>) -> i64 {
    vals.first()
        .and_then(Val::as_i64)
        .unwrap_or_else(|| panic!("expected an i64 result, got {vals:?}"))
}
