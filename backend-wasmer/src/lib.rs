//! # anywasm-wasmer
//!
//! The [wasmer](https://wasmer.io) backend of anywasm (the `sys` runtime with
//! the Cranelift compiler).
//!
//! ```
//! use anywasm_core::{Engine, Instance, Module, Store};
//! use anywasm_wasmer::Wasmer;
//!
//! let engine = Engine::<Wasmer>::default_config()?;
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
//! ## How the layer's mechanisms map onto wasmer
//! - **Fuel and deadlines** are compiled into the code (see the `control`
//!   module): every module of an engine with fuel or deadlines imports two
//!   globals from its store, a fuel counter every basic block charges and a
//!   status word every function entry and loop header reads, calling the
//!   store's stop function (a third import) when it is set. All instances
//!   of a store share them, so fuel is one budget per store. The layer's
//!   deadline timer and interrupt requests set the status word from any
//!   thread, and the stop function ends the call with their trap (or
//!   yields an async call to its executor); no signal is sent, so host functions' system calls never see
//!   `EINTR` and no signal handler of the application is replaced. (The
//!   backend does not use wasmer's `experimental-host-interrupt` feature,
//!   which installs a SIGUSR1 handler that aborts the process on a SIGUSR1
//!   it did not send.)
//! - **Memory limits**: engine tunables that wrap each memory and ask the
//!   store's limit before it grows.
//! - **Stack**: wasm runs on wasmer's own fixed-size stack and deep
//!   recursion traps; its size is process-wide in wasmer, so a per-engine
//!   [`Config::max_wasm_stack`](anywasm_core::Config::max_wasm_stack) is
//!   `Unsupported`.
//! - **The caller's instance**: wasmer does not tell a host function who
//!   called it. Each import of a host function is a function of its own,
//!   bound to the instance importing it; a host function the host put in a
//!   table or calls itself sees the instance whose export the host called.
//!
//! Like every backend, wasmer installs signal handlers to turn faults of
//! wasm code into traps: SIGSEGV and SIGILL, SIGFPE on x86, SIGBUS on ARM
//! and Apple targets. Each forwards faults outside wasm code to the handler
//! installed before it.
//!
//! The crate has one file per concept of the core (`engine.rs`,
//! `module.rs`, `store.rs`, `instance.rs`, `func.rs`, `memory.rs`,
//! `table.rs`, `global.rs`, `externref.rs`), each implementing that part
//! of the backend contract; `convert.rs` converts types and errors.
//!
//! **Async calls** (feature `async`) run each call on a worker thread of the
//! backend's (see `asynchronous.rs`), not through wasmer 7's async API
//! (`experimental-async`), whose futures are not `Send` and whose host
//! closures need not be, which would break this backend's `Send` store (the
//! build fails if that feature is enabled; see `store.rs`).

#[cfg(feature = "async")]
mod asynchronous;
mod control;
mod convert;
mod engine;
mod externref;
mod func;
mod global;
mod instance;
mod limits;
mod memory;
mod module;
mod store;
mod table;
mod tag;
mod thunk;

use anywasm_core::BackendTypes;

pub use engine::WrEngine;
pub use func::{NativeParams, NativeResults, WrCaller, WrFunc, WrInstance, WrTyped};
pub use module::WrModule;
pub use store::{StoreData, View, ViewMut, WrStore};

const NAME: &str = "wasmer";

/// The wasmer backend marker type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Wasmer;

impl BackendTypes for Wasmer {
    const NAME: &'static str = NAME;
    const ENGINE_VERSION: &'static str = "7.3.0";
    /// 1: the stop function import (see `control`).
    const CODE_REVISION: u32 = 1;

    type Engine = WrEngine;
    type Module = WrModule;
    type Store<T: Send + 'static> = WrStore<T>;
    type Ctx<'a, T: Send + 'static> = &'a (dyn View<T> + 'a);
    type CtxMut<'a, T: Send + 'static> = &'a mut (dyn ViewMut<T> + 'a);
    type Caller<'a, T: Send + 'static> = WrCaller<'a, T>;
    type Instance = WrInstance;
    type Func = WrFunc;
    type Memory = wasmer::Memory;
    type Table = wasmer::Table;
    type Global = wasmer::Global;
    type ExternRef = wasmer::ExternRef;
    type ExnRef = wasmer::Exception;
    type Tag = wasmer::Tag;
}

/// A shared store context of this backend.
pub(crate) type Ctx<'a, T> = <Wasmer as BackendTypes>::Ctx<'a, T>;
/// An exclusive store context of this backend.
pub(crate) type CtxMut<'a, T> = <Wasmer as BackendTypes>::CtxMut<'a, T>;
/// What this backend's host functions receive.
pub(crate) type CallerOf<'a, T> = <Wasmer as BackendTypes>::Caller<'a, T>;
