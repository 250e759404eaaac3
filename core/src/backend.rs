//! The contract between the layer and an engine.
//!
//! Application code does not call these functions; it uses [`Engine`](crate::Engine),
//! [`Store`](crate::Store), [`Func`](crate::Func) and friends, which check their
//! arguments, keep statistics and then call the backend. A new backend is a
//! crate with one marker type implementing the contract's parts, one per
//! concept of the core ([`BackendTypes`], [`BackendEngine`], [`BackendModule`],
//! [`BackendStore`], [`BackendInstance`], [`BackendFunc`], [`BackendMemory`],
//! [`BackendTable`], [`BackendGlobal`], [`BackendTag`], [`BackendExternRef`]), each in the file
//! named like the core's, plus impls of [`TypedSig`] and [`HostSig`] for the
//! signatures it can call natively. [`Backend`] is every part together.
//!
//! Conventions for implementors:
//! - Functions receive arguments the layer has already checked: every handle
//!   and reference belongs to the store of the context, modules belong to
//!   the store's engine, values have the declared types, table indices are
//!   below the table's size, growth stays within maxima and limits. They
//!   must still never panic on anything a guest can influence.
//! - The layer checks deadlines and interrupts before every call, runs
//!   start functions itself (modules reach the backend with their start
//!   function exported under a reserved name), checks the results of
//!   dynamic host functions and catches host functions' panics. A backend
//!   only maps these onto its engine.
//! - Handles a backend creates carry the id of the store they belong to
//!   ([`StoreShared::id`]).
//! - Engine errors are mapped to [`Error`] in the backend crate and nowhere else.
//! - `Ctx`/`CtxMut` are the engine's store contexts; the `T` they carry is the
//!   user's store data.

use std::fmt::Debug;
use std::sync::Arc;

use crate::capabilities::Capabilities;
use crate::config::Config;
use crate::error::Result;
use crate::func::Caller;
use crate::instance::Extern;
use crate::store::StoreId;
use crate::store::StoreShared;
use crate::types::{FuncType, GlobalType, MemoryType, TableType};
use crate::values::{Val, WasmTyList};

/// A host value stored behind an `externref`.
pub type ExternData = Box<dyn std::any::Any + Send + Sync>;

/// How many values [`with_scratch`] keeps on the stack.
const SCRATCH_INLINE: usize = 8;

/// Runs `f` on a scratch slice of `len` values made by `init` (given each
/// value's index): on the stack
/// for up to eight values, on the heap beyond. Backends convert a dynamic
/// call's values into the engine's own type in such slices, so that calls of
/// ordinary signatures allocate nothing. Only the `len` values are made (an
/// engine's value type is often 32 bytes; filling eight unused ones showed
/// in dynamic-call benchmarks).
#[inline]
pub fn with_scratch<V, R>(
    len: usize,
    mut init: impl FnMut(usize) -> V,
    f: impl FnOnce(&mut [V]) -> R,
) -> R {
    use std::mem::MaybeUninit;
    /// The stack buffer and how many of its values are made (dropped with it).
    struct Inline<V> {
        buf: [MaybeUninit<V>; SCRATCH_INLINE],
        made: usize,
    }
    impl<V> Drop for Inline<V> {
        fn drop(&mut self) {
            for v in &mut self.buf[..self.made] {
                // SAFETY: the first `made` values were written.
                unsafe { v.assume_init_drop() };
            }
        }
    }
    if len > SCRATCH_INLINE {
        let mut heap: Vec<V> = (0..len).map(init).collect();
        return f(&mut heap);
    }
    let mut inline = Inline {
        buf: [const { MaybeUninit::uninit() }; SCRATCH_INLINE],
        made: 0,
    };
    while inline.made < len {
        inline.buf[inline.made].write(init(inline.made));
        inline.made += 1;
    }
    let made = &mut inline.buf[..len];
    // SAFETY: these `len` values were written above; `MaybeUninit<V>` has
    // the layout of `V`; `Inline` drops them once, after `f`.
    let values = unsafe { &mut *(made as *mut [MaybeUninit<V>] as *mut [V]) };
    f(values)
}

/// The slots of one call of a host function with a run-time type `ty`:
/// its arguments, then its results, each holding the zero value of its
/// type, in one [`with_scratch`] buffer (on the stack for up to eight).
/// A backend writes the engine's arguments into the first slice, hands
/// both to the layer's function, and reads the results from the second.
#[inline]
pub fn with_host_slots<B: Backend, R>(
    ty: &FuncType,
    f: impl FnOnce(&mut [crate::Val<B>], &mut [crate::Val<B>]) -> R,
) -> R {
    let (params, results) = (ty.params(), ty.results());
    let n = params.len();
    let zero = |i: usize| match params.get(i) {
        Some(t) => crate::Val::default_for(*t),
        None => crate::Val::default_for(results[i - n]),
    };
    with_scratch(n + results.len(), zero, |buf| {
        let (args, rets) = buf.split_at_mut(n);
        f(args, rets)
    })
}

/// A dynamically typed host function as the layer hands it to a backend.
pub type DynHostFn<B, T> =
    Arc<dyn Fn(Caller<'_, B, T>, &[Val<B>], &mut [Val<B>]) -> Result<()> + Send + Sync + 'static>;

/// A WebAssembly engine behind the layer's API: every part of the contract.
///
/// Implemented automatically for a type that implements all the parts; code
/// generic over engines takes `B: Backend`.
pub trait Backend:
    BackendEngine
    + BackendModule
    + BackendStore
    + BackendInstance
    + BackendFunc
    + BackendMemory
    + BackendTable
    + BackendGlobal
    + BackendTag
    + BackendExternRef
{
}

impl<B> Backend for B where
    B: BackendEngine
        + BackendModule
        + BackendStore
        + BackendInstance
        + BackendFunc
        + BackendMemory
        + BackendTable
        + BackendGlobal
        + BackendTag
        + BackendExternRef
{
}

/// The engine's handle types and names.
///
/// The type implementing this trait is a zero-sized marker (`Wasmtime`,
/// `Wasmi`, `Wasmer`); the associated types are the engine's own handles.
pub trait BackendTypes: Sized + Send + Sync + Debug + Copy + Default + 'static {
    /// Short lowercase name, used in errors and to choose a backend at run time.
    const NAME: &'static str;
    /// Version of the engine crate this backend was built against.
    const ENGINE_VERSION: &'static str;
    /// The revision of what the backend does to modules before the engine
    /// compiles them (rewrites, compiler middleware): part of the key of
    /// compiled code (code cache, precompiled blobs), so a backend bumps it
    /// whenever that changes.
    const CODE_REVISION: u32 = 0;

    /// A configured engine.
    type Engine: Clone + Send + Sync + 'static;
    /// A compiled module.
    type Module: Clone + Send + Sync + 'static;
    /// A store owning instances and host data `T`.
    type Store<T: Send + 'static>: Send + 'static;
    /// A shared borrow of a store.
    type Ctx<'a, T: Send + 'static>;
    /// An exclusive borrow of a store.
    type CtxMut<'a, T: Send + 'static>;
    /// What a host function receives from the engine about its caller.
    type Caller<'a, T: Send + 'static>;
    /// An instance handle (valid in its store).
    type Instance: Clone + Send + Sync + Debug + 'static;
    /// A function handle.
    type Func: Clone + Send + Sync + Debug + 'static;
    /// A memory handle.
    type Memory: Clone + Send + Sync + Debug + 'static;
    /// A table handle.
    type Table: Clone + Send + Sync + Debug + 'static;
    /// A global handle.
    type Global: Clone + Send + Sync + Debug + 'static;
    /// An `externref` handle.
    type ExternRef: Clone + Send + Sync + Debug + 'static;
    /// An exception tag handle (an uninhabited type where the engine has
    /// no exceptions).
    type Tag: Clone + Send + Sync + Debug + 'static;
    /// An exception object (`exnref`).
    type ExnRef: Clone + Send + Sync + 'static;
}

/// Engines: what the backend can do, and creating an engine.
pub trait BackendEngine: BackendTypes {
    /// What this backend can do on this platform.
    fn capabilities() -> Capabilities;
    /// Creates an engine. The layer has already run
    /// [`Config::check_against`] with [`BackendEngine::capabilities`].
    fn engine_new(config: &Config) -> Result<Self::Engine>;
}

/// Modules: compiling, validating and precompiled code.
pub trait BackendModule: BackendTypes {
    /// Compiles a module.
    fn module_new(engine: &Self::Engine, bytes: &[u8]) -> Result<Self::Module>;
    /// Validates a module without compiling it.
    fn module_validate(engine: &Self::Engine, bytes: &[u8]) -> Result<()>;
    /// Serialises compiled code, or returns `Unsupported`.
    fn module_serialize(engine: &Self::Engine, module: &Self::Module) -> Result<Vec<u8>>;
    /// Loads compiled code produced by [`BackendModule::module_serialize`].
    ///
    /// # Safety
    /// `bytes` must come from `module_serialize` of this backend with a
    /// compatible engine; engines execute the contained machine code.
    unsafe fn module_deserialize(engine: &Self::Engine, bytes: &[u8]) -> Result<Self::Module>;
}

/// Stores, their contexts, host data and fuel.
pub trait BackendStore: BackendTypes {
    /// Creates a store holding `data`. `shared` is the layer's per-store state
    /// (limits, deadline, interrupt flag, counters) which the backend keeps
    /// and consults.
    fn store_new<T: Send + 'static>(
        engine: &Self::Engine,
        data: T,
        shared: Arc<StoreShared>,
    ) -> Self::Store<T>;
    /// Takes the user data out of a store.
    fn store_into_data<T: Send + 'static>(store: Self::Store<T>) -> T;
    /// Borrows a store.
    fn store_ctx<T: Send + 'static>(store: &Self::Store<T>) -> Self::Ctx<'_, T>;
    /// Borrows a store exclusively.
    fn store_ctx_mut<T: Send + 'static>(store: &mut Self::Store<T>) -> Self::CtxMut<'_, T>;
    /// Borrows the store through a host function's caller.
    fn caller_ctx<'a, T: Send + 'static>(caller: &'a Self::Caller<'_, T>) -> Self::Ctx<'a, T>;
    /// Borrows the store exclusively through a host function's caller.
    fn caller_ctx_mut<'a, T: Send + 'static>(
        caller: &'a mut Self::Caller<'_, T>,
    ) -> Self::CtxMut<'a, T>;
    /// Reborrows a shared context.
    fn ctx_reborrow<'a, T: Send + 'static>(ctx: &'a Self::Ctx<'_, T>) -> Self::Ctx<'a, T>;
    /// Reborrows an exclusive context.
    fn ctx_mut_reborrow<'a, T: Send + 'static>(
        ctx: &'a mut Self::CtxMut<'_, T>,
    ) -> Self::CtxMut<'a, T>;
    /// Downgrades an exclusive context.
    fn ctx_mut_shared<'a, T: Send + 'static>(ctx: &'a Self::CtxMut<'_, T>) -> Self::Ctx<'a, T>;
    /// The user data.
    fn ctx_data<'a, T: Send + 'static>(ctx: Self::Ctx<'a, T>) -> &'a T;
    /// The user data, mutably.
    fn ctx_data_mut<'a, T: Send + 'static>(ctx: &'a mut Self::CtxMut<'_, T>) -> &'a mut T;
    /// The user data of a store, mutably.
    fn store_data_mut<T: Send + 'static>(store: &mut Self::Store<T>) -> &mut T;
    /// The user data seen from a host function, mutably.
    fn caller_data_mut<'a, T: Send + 'static>(caller: &'a mut Self::Caller<'_, T>) -> &'a mut T;
    /// The layer's per-store state given to [`BackendStore::store_new`].
    fn ctx_shared<'a, T: Send + 'static>(ctx: Self::Ctx<'a, T>) -> &'a Arc<StoreShared>;
    /// Sets the remaining fuel.
    fn fuel_set<T: Send + 'static>(ctx: Self::CtxMut<'_, T>, fuel: u64) -> Result<()>;
    /// Reads the remaining fuel.
    fn fuel_get<T: Send + 'static>(ctx: Self::CtxMut<'_, T>) -> Result<u64>;
}

/// Instances and their exports.
pub trait BackendInstance: BackendTypes {
    /// Instantiates `module` with `imports` in the module's import order (the
    /// layer has resolved names and checked types and stores). The module
    /// has no start section: the layer runs the start function afterwards.
    fn instantiate<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        module: &Self::Module,
        imports: &[Extern<Self>],
    ) -> Result<Self::Instance>;
    /// Looks up an export of an instance.
    fn instance_export<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        instance: &Self::Instance,
        name: &str,
    ) -> Option<Extern<Self>>;
    /// Looks up an export of the instance that called a host function, if the
    /// engine knows it.
    fn caller_export<T: Send + 'static>(
        caller: &mut Self::Caller<'_, T>,
        name: &str,
    ) -> Option<Extern<Self>>;

    /// Instantiates asynchronously (as [`BackendInstance::instantiate`]).
    /// Only reached when the backend claims [`Capabilities::async_calls`];
    /// the default refuses.
    #[cfg(feature = "async")]
    fn instantiate_async<'a, T: Send + 'static>(
        _store: &'a mut Self::Store<T>,
        _module: &'a Self::Module,
        _imports: &'a [Extern<Self>],
    ) -> crate::BoxFuture<'a, Result<Self::Instance>>
    where
        Self: Backend,
    {
        Box::pin(async { Err(crate::Error::unsupported(Self::NAME, "async instantiation")) })
    }
}

/// Functions: types, dynamic calls, host functions with run-time types.
pub trait BackendFunc: BackendTypes {
    /// A function's type; `Unsupported` for a type the layer cannot
    /// represent (a function with typed references in its signature,
    /// reached through a table or a funcref).
    fn func_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, func: &Self::Func) -> Result<FuncType>;
    /// Calls a function with dynamically typed values. The layer has checked
    /// `params` (number, types and stores) and the length of `results`
    /// against `ty`, the function's type as [`func_ty`](Self::func_ty) gave
    /// it, so a backend may skip the engine's own checks.
    fn func_call<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        func: &Self::Func,
        ty: &FuncType,
        params: &[Val<Self>],
        results: &mut [Val<Self>],
    ) -> Result<()>;
    /// Creates a host function with a type known at run time. `func` checks
    /// the results it writes itself; the backend passes `results` filled with
    /// zero values of the declared result types.
    fn func_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: FuncType,
        func: DynHostFn<Self, T>,
    ) -> Self::Func;

    /// Creates an async host function (see [`crate::asynchronous`]): the
    /// backend runs `func`'s prologue where wasm calls it, awaits the
    /// future inside [`BackendFunc::func_call_async`]'s future, then runs
    /// the [`AsyncReturn`](crate::AsyncReturn) with the store and passes its
    /// results to wasm. Only reached when the backend claims
    /// [`Capabilities::async_calls`]; the default refuses.
    #[cfg(feature = "async")]
    fn func_new_async<T: Send + 'static>(
        _ctx: Self::CtxMut<'_, T>,
        _ty: FuncType,
        _func: crate::DynAsyncHostFn<Self, T>,
    ) -> Result<Self::Func>
    where
        Self: Backend,
    {
        Err(crate::Error::unsupported(
            Self::NAME,
            "async host functions",
        ))
    }

    /// Calls a function asynchronously (checked as for
    /// [`BackendFunc::func_call`]). Only reached when the backend claims
    /// [`Capabilities::async_calls`]; the default refuses.
    #[cfg(feature = "async")]
    fn func_call_async<'a, T: Send + 'static>(
        _store: &'a mut Self::Store<T>,
        _func: &'a Self::Func,
        _params: &'a [Val<Self>],
        _results: &'a mut [Val<Self>],
    ) -> crate::BoxFuture<'a, Result<()>>
    where
        Self: Backend,
    {
        Box::pin(async { Err(crate::Error::unsupported(Self::NAME, "async calls")) })
    }
}

/// Linear memories.
pub trait BackendMemory: BackendTypes {
    /// Creates a memory owned by the host.
    fn memory_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: MemoryType,
    ) -> Result<Self::Memory>;
    /// A memory's type, with its *current* size as the minimum.
    fn memory_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, memory: &Self::Memory) -> MemoryType;
    /// The memory's contents. A backend refuses memories it cannot lend as
    /// a plain slice (shared memories) with `Unsupported`.
    fn memory_data<'a, T: Send + 'static>(
        ctx: Self::Ctx<'a, T>,
        memory: &Self::Memory,
    ) -> Result<&'a [u8]>;
    /// The memory's contents, mutably.
    fn memory_data_mut<'a, T: Send + 'static>(
        ctx: Self::CtxMut<'a, T>,
        memory: &Self::Memory,
    ) -> Result<&'a mut [u8]>;
    /// Grows by `delta` pages; returns the previous size in pages. The layer
    /// has checked the memory's maximum and the store's limit; an error here
    /// is the engine's own refusal, which the layer words.
    fn memory_grow<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        memory: &Self::Memory,
        delta: u64,
    ) -> Result<u64>;
}

/// Tables.
pub trait BackendTable: BackendTypes {
    /// Creates a table owned by the host, filled with `init`.
    fn table_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: TableType,
        init: Val<Self>,
    ) -> Result<Self::Table>;
    /// A table's type, with its current size as the minimum.
    fn table_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, table: &Self::Table) -> TableType;
    /// The element at `index` (below the table's size, which the layer has
    /// checked), or `None` if the engine cannot read it.
    fn table_get<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &Self::Table,
        index: u64,
    ) -> Option<Val<Self>>;
    /// Sets the element at `index` (below the table's size).
    fn table_set<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &Self::Table,
        index: u64,
        value: Val<Self>,
    ) -> Result<()>;
    /// Grows by `delta` elements set to `init`; returns the previous size.
    /// The layer has checked the table's maximum and the store's limit.
    fn table_grow<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &Self::Table,
        delta: u64,
        init: Val<Self>,
    ) -> Result<u64>;
}

/// Globals.
pub trait BackendGlobal: BackendTypes {
    /// Creates a global owned by the host.
    fn global_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: GlobalType,
        value: Val<Self>,
    ) -> Result<Self::Global>;
    /// A global's type.
    fn global_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, global: &Self::Global) -> GlobalType;
    /// A global's value.
    fn global_get<T: Send + 'static>(ctx: Self::CtxMut<'_, T>, global: &Self::Global) -> Val<Self>;
    /// Sets a mutable global (the layer has checked mutability and type).
    fn global_set<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        global: &Self::Global,
        value: Val<Self>,
    ) -> Result<()>;
}

/// Exception tags.
pub trait BackendTag: BackendTypes {
    /// Creates a tag owned by the host; the layer has checked that `ty` has
    /// no results and that the backend claims exceptions.
    fn tag_new<T: Send + 'static>(ctx: Self::CtxMut<'_, T>, ty: &FuncType) -> Result<Self::Tag>;
    /// A tag's type (`Unsupported` as for [`BackendFunc::func_ty`]).
    fn tag_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, tag: &Self::Tag) -> Result<FuncType>;
    /// A new exception object of `tag` carrying `values`; the layer has
    /// checked the values against the tag's type and their store.
    fn exnref_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        tag: &Self::Tag,
        values: &[Val<Self>],
    ) -> Result<Self::ExnRef>;
    /// The tag and values of an exception object of the store `store`.
    fn exnref_exception<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        exn: &Self::ExnRef,
        store: StoreId,
    ) -> Result<crate::tag::Exception<Self>>;
}

/// `externref` values.
pub trait BackendExternRef: BackendTypes {
    /// Wraps a host value as an `externref`.
    fn externref_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        data: ExternData,
    ) -> Result<Self::ExternRef>;
    /// The host value behind an `externref`.
    fn externref_data<'a, T: Send + 'static>(
        ctx: Self::Ctx<'a, T>,
        r: &Self::ExternRef,
    ) -> Option<&'a (dyn std::any::Any + Send + Sync)>;
}

/// A signature a backend can call natively through the engine's own typed call.
///
/// Implemented by each backend for `(Params, Results)` pairs in tuple form
/// (see [`SigOf`](crate::SigOf)), so a [`TypedFunc`](crate::TypedFunc) compiles
/// down to the engine's `TypedFunc::call` with no per-call conversion.
pub trait TypedSig<B: Backend>: Sized + 'static {
    /// Parameter tuple.
    type Params: WasmTyList;
    /// Result tuple.
    type Results: WasmTyList;
    /// The engine's typed function.
    type Native: Clone + Send + Sync + 'static;

    /// Builds the engine's typed function; the layer has checked the type.
    fn typed<T: Send + 'static>(ctx: B::Ctx<'_, T>, func: &B::Func) -> Result<Self::Native>;
    /// Calls it in the store `store` (the layer has checked the store of
    /// references among `params`; references among the results are made
    /// with this id).
    fn call<T: Send + 'static>(
        native: &Self::Native,
        ctx: B::CtxMut<'_, T>,
        store: StoreId,
        params: Self::Params,
    ) -> Result<Self::Results>;
}

/// A host function signature a backend can wrap natively (like wasmtime's
/// `Func::wrap`). Implemented by each backend for `(Params, Results)` pairs in
/// tuple form.
pub trait HostSig<B: Backend>: Sized + 'static {
    /// Parameter tuple.
    type Params: WasmTyList;
    /// Result tuple.
    type Results: WasmTyList;

    /// Wraps `f` as an engine function of the store `store` (references
    /// among its arguments are made with this id; the layer checks the
    /// store of references among its results).
    fn wrap<T: Send + 'static, F>(ctx: B::CtxMut<'_, T>, store: StoreId, f: F) -> B::Func
    where
        F: Fn(Caller<'_, B, T>, Self::Params) -> Result<Self::Results> + Send + Sync + 'static;
}

#[cfg(test)]
mod scratch_tests {
    use super::with_scratch;
    use std::sync::Arc;

    /// Every value made is dropped once, inline or on the heap, even when
    /// `f` panics.
    #[test]
    fn values_are_made_and_dropped_once() {
        let token = Arc::new(());
        for len in [0, 1, 8, 9, 20] {
            let n = with_scratch(len, |_| token.clone(), |v| v.len());
            assert_eq!(n, len);
            assert_eq!(Arc::strong_count(&token), 1, "len {len}");
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_scratch(len, |_| token.clone(), |_| panic!("inside"))
            }));
            assert!(r.is_err());
            assert_eq!(Arc::strong_count(&token), 1, "len {len} after a panic");
        }
    }
}
