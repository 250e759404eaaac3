//! # anywasm-wasmi
//!
//! The [wasmi](https://github.com/wasmi-labs/wasmi) backend of anywasm: an
//! interpreter, for Android, iOS and every platform where generating machine
//! code at run time is not allowed. It pulls in no JIT.
//!
//! ```
//! use anywasm_core::{Engine, Instance, Module, Store};
//! use anywasm_wasmi::Wasmi;
//!
//! let engine = Engine::<Wasmi>::default_config()?;
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
//! ## How the layer's mechanisms map onto wasmi
//! - **Fuel**: wasmi's own fuel.
//! - **Deadlines and interrupts**: wasmi has no epochs, so an interruptible
//!   engine always meters fuel internally and runs every call as a *resumable*
//!   call in slices of [`FUEL_SLICE`] fuel. Between slices the store checks its
//!   own deadline and interrupt flag, then refuels and resumes the same call.
//!   The user's fuel budget (if fuel is enabled) is kept separately, so it is
//!   spent exactly as without slicing.
//! - **Memory limits**: a `ResourceLimiter` on each store.
//! - **Stack**: `Config::max_wasm_stack` bytes are translated into wasmi's
//!   value-stack height (8 bytes per value) and recursion depth.
//! - **Precompiled modules**: not supported (wasmi compiles lazily and fast);
//!   [`Module::serialize`](anywasm_core::Module::serialize) returns `Unsupported`.
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

pub use engine::WiEngine;
pub use module::WiModule;
pub use store::{FUEL_SLICE, StoreData, View, ViewMut};

const NAME: &str = "wasmi";

/// The wasmi backend marker type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Wasmi;

impl BackendTypes for Wasmi {
    const NAME: &'static str = NAME;
    const ENGINE_VERSION: &'static str = "2.0.0";

    type Engine = WiEngine;
    type Module = WiModule;
    type Store<T: Send + 'static> = wasmi::Store<StoreData<T>>;
    type Ctx<'a, T: Send + 'static> = &'a (dyn View<T> + 'a);
    type CtxMut<'a, T: Send + 'static> = &'a mut (dyn ViewMut<T> + 'a);
    type Caller<'a, T: Send + 'static> = &'a mut (dyn ViewMut<T> + 'a);
    type Instance = wasmi::Instance;
    type Func = wasmi::Func;
    type Memory = wasmi::Memory;
    type Table = wasmi::Table;
    type Global = wasmi::Global;
    type ExternRef = wasmi::ExternRef;
    type Tag = tag::NoTag;
    type ExnRef = tag::NoExnRef;
}

/// A shared store context of this backend.
pub(crate) type Ctx<'a, T> = <Wasmi as BackendTypes>::Ctx<'a, T>;
/// An exclusive store context of this backend.
pub(crate) type CtxMut<'a, T> = <Wasmi as BackendTypes>::CtxMut<'a, T>;
/// What this backend's host functions receive.
pub(crate) type CallerOf<'a, T> = <Wasmi as BackendTypes>::Caller<'a, T>;
