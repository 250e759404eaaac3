//! # anywasm-wasmtime
//!
//! The [wasmtime](https://wasmtime.dev) backend of anywasm: a JIT compiler
//! (Cranelift) for desktop and server targets.
//!
//! ```
//! use anywasm_core::{Engine, Instance, Module, Store};
//! use anywasm_wasmtime::Wasmtime;
//!
//! let engine = Engine::<Wasmtime>::default_config()?;
//! let module = Module::from_wat(&engine, r#"(module
//!     (func (export "add") (param i32 i32) (result i32)
//!         local.get 0 local.get 1 i32.add))"#)?;
//! let mut store = Store::new(&engine, ());
//! let instance = Instance::new(&mut store, &module, &[])?;
//! let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
//! assert_eq!(add.call(&mut store, (1, 2))?, 3);
//! # Ok::<(), anywasm_core::Error>(())
//! ```
//!
//! ## How the layer's mechanisms map onto wasmtime
//! - **Fuel**: wasmtime's own fuel (`Config::consume_fuel`, `Store::set_fuel`).
//! - **Deadlines and interrupts**: epoch interruption. Each store's epoch
//!   callback checks *its own* deadline and interrupt flag. The epoch only
//!   moves when something may have to stop: the layer's deadline timer
//!   bumps it when a store's deadline passes, and an interrupt request bumps
//!   it at once. Other stores of the engine see the bump, look at their own
//!   flags and go on; nothing ticks while nothing is due.
//! - **Memory limits**: a `ResourceLimiter` on each store reading the
//!   store's current limit.
//! - **Stack**: `Config::max_wasm_stack`.
//! - **Typed calls**: `wasmtime::TypedFunc` for [`TypedSig`](anywasm_core::TypedSig),
//!   `wasmtime::Func::wrap` for [`HostSig`](anywasm_core::HostSig).
//!
//! The crate has one file per concept of the core (`engine.rs`,
//! `module.rs`, `store.rs`, `instance.rs`, `func.rs`, `memory.rs`,
//! `table.rs`, `global.rs`, `externref.rs`), each implementing that part
//! of the backend contract; `convert.rs` converts types and errors.

#[cfg(feature = "async")]
mod asynchronous;
mod convert;
mod engine;
mod externref;
mod func;
mod global;
mod instance;
mod memory;
mod module;
mod store;
mod table;
mod tag;

use anywasm_core::BackendTypes;

pub use engine::WtEngine;
pub use func::CallerOps;
pub use store::StoreData;

/// The wasmtime backend marker type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Wasmtime;

impl BackendTypes for Wasmtime {
    const NAME: &'static str = "wasmtime";
    const ENGINE_VERSION: &'static str = "48.0.8";

    type Engine = WtEngine;
    type Module = wasmtime::Module;
    type Store<T: Send + 'static> = wasmtime::Store<StoreData<T>>;
    type Ctx<'a, T: Send + 'static> = wasmtime::StoreContext<'a, StoreData<T>>;
    type CtxMut<'a, T: Send + 'static> = wasmtime::StoreContextMut<'a, StoreData<T>>;
    type Caller<'a, T: Send + 'static> = &'a mut (dyn CallerOps<T> + 'a);
    type Instance = wasmtime::Instance;
    type Func = wasmtime::Func;
    type Memory = wasmtime::Memory;
    type Table = wasmtime::Table;
    type Global = wasmtime::Global;
    type ExternRef = wasmtime::OwnedRooted<wasmtime::ExternRef>;
    type Tag = wasmtime::Tag;
    type ExnRef = wasmtime::OwnedRooted<wasmtime::ExnRef>;
}

/// A shared store context of this backend.
pub(crate) type Ctx<'a, T> = <Wasmtime as BackendTypes>::Ctx<'a, T>;
/// An exclusive store context of this backend.
pub(crate) type CtxMut<'a, T> = <Wasmtime as BackendTypes>::CtxMut<'a, T>;
/// What this backend's host functions receive.
pub(crate) type CallerOf<'a, T> = <Wasmtime as BackendTypes>::Caller<'a, T>;
