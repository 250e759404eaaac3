//! # anywasm-core
//!
//! One WebAssembly API over several engines. This crate holds the
//! engine-neutral part: the [`Backend`] contract, configuration, types,
//! values, errors, and the user-facing handles ([`Engine`], [`Module`],
//! [`Store`], [`Instance`], [`Func`], [`TypedFunc`], [`Memory`], [`Table`],
//! [`Global`], [`Linker`]) that work with any backend. It depends on no engine.
//!
//! Applications normally depend on the `anywasm` crate, which re-exports this
//! one together with the backends chosen by cargo features. Code written
//! against a generic `B: Backend` runs on all of them:
//!
//! ```
//! use anywasm_core::{Backend, Engine, Instance, Module, Result, SigOf, Store, TypedSig};
//!
//! fn add_on<B: Backend>() -> Result<i32>
//! where
//!     SigOf<(i32, i32), i32>: TypedSig<B, Params = (i32, i32), Results = (i32,)>,
//! {
//!     let engine = Engine::<B>::default_config()?;
//!     let module = Module::from_wat(&engine, r#"(module
//!         (func (export "add") (param i32 i32) (result i32)
//!             local.get 0 local.get 1 i32.add))"#)?;
//!     let mut store = Store::new(&engine, ());
//!     let instance = Instance::new(&mut store, &module, &[])?;
//!     let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
//!     add.call(&mut store, (40, 2))
//! }
//! ```
//!
//! The names follow wasmtime's (and wasmi's) so users of either feel at home.
//!
//! ## Design notes
//! - Typed calls ([`TypedFunc::call`]) and typed host functions
//!   ([`Func::wrap`]) reach the engine's own typed machinery through
//!   [`TypedSig`] and [`HostSig`], which each backend implements for the
//!   canonical signature tuple [`SigOf`], converting each value to the
//!   engine's own type through [`NativeTy`] (nothing for numbers). Nothing
//!   is boxed per call.
//! - Imports, exports and custom sections are parsed here with `wasmparser`,
//!   so they are reported identically by every backend.
//! - Limits, deadlines and interrupts are per store ([`StoreShared`]); each
//!   backend maps them onto its engine's mechanism (see the backend crates).

#[cfg(feature = "async")]
pub mod asynchronous;
mod backend;
mod capabilities;
mod code_cache;
mod config;
mod engine;
mod error;
mod externref;
mod func;
mod global;
mod instance;
mod interrupt;
mod linker;
mod memory;
mod module;
mod module_info;
pub mod rewrite;
mod store;
mod table;
mod tag;
mod types;
mod values;

#[cfg(feature = "async")]
pub use asynchronous::{AsyncReturn, BoxFuture, DynAsyncHostFn, HostFuture};
pub use backend::{
    Backend, BackendEngine, BackendExternRef, BackendFunc, BackendGlobal, BackendInstance,
    BackendMemory, BackendModule, BackendStore, BackendTable, BackendTag, BackendTypes, DynHostFn,
    ExternData, HostSig, TypedSig, with_host_slots, with_scratch,
};
pub use capabilities::Capabilities;
pub use code_cache::{CodeCache, CodeCacheOutcome, DEFAULT_CODE_CACHE_BYTES};
pub use config::{Config, Features, OptLevel};
pub use engine::{Engine, EngineShared, EngineStats};
pub use error::{
    Error, HostErrorMarker, HostPanic, LinkError, LinkErrorKind, Result, TrapCode, panic_message,
};
pub use externref::ExternRef;
pub use func::{Caller, Func, HostReturn, IntoFunc, RESERVED_EXPORT_PREFIX, TypedFunc};
pub use global::Global;
pub use instance::{Extern, Instance, extern_type_matches};
pub use interrupt::timer_thread_running;
pub use linker::Linker;
pub use memory::{LeBytes, Memory};
pub use module::Module;
pub use module_info::{ContentHash, CustomSection, ModuleInfo};
pub use store::{
    AsContext, AsContextMut, InterruptHandle, InterruptState, MemoryBudget, Store, StoreContext,
    StoreContextMut, StoreId, StoreLimits, StoreShared, StoreStats,
};
pub use table::Table;
pub use tag::{Exception, ExnRef, Tag};
pub use types::{
    ExportType, ExternType, FuncType, GlobalType, ImportType, MemoryType, Mutability, TableType,
    ValType,
};
pub use values::{NativeList, NativeTy, SigOf, V128, Val, ValList, ValTy, WasmTy, WasmTyList};

/// Re-exported so backends and tools use the same version.
pub use wasmparser;
