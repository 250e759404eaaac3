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
//! - **Deadlines and interrupts**: epoch interruption. One process-wide ticker
//!   thread increments the epoch of every interruptible engine each
//!   millisecond; each store's epoch callback checks *its own* deadline and
//!   interrupt flag, so stopping one store never disturbs another.
//! - **Memory limits**: a `ResourceLimiter` on each store reading the
//!   store's current limit.
//! - **Stack**: `Config::max_wasm_stack`.
//! - **Typed calls**: `wasmtime::TypedFunc` for [`TypedSig`](anywasm_core::TypedSig),
//!   `wasmtime::Func::wrap` for [`HostSig`](anywasm_core::HostSig).

mod convert;
mod ticker;

use std::sync::Arc;

use anywasm_core::{
    Backend, Caller, Capabilities, Config, DynHostFn, Error, Extern, ExternData, Features,
    FuncType, GlobalType, HostSig, MemoryType, OptLevel, Result, StoreShared, TableType, TrapCode,
    TypedSig, Val, WasmTy, WasmTyList,
};
use wasmtime::{AsContext, AsContextMut};

use crate::convert::*;

/// The wasmtime backend marker type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Wasmtime;

/// What a wasmtime store holds: the user's data plus the layer's per-store state.
pub struct StoreData<T> {
    user: T,
    shared: Arc<StoreShared>,
    limiter: Limiter,
}

struct Limiter {
    shared: Arc<StoreShared>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.shared.memory_may_grow(desired as u64))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.shared.table_may_grow(desired as u64))
    }
}

/// The engine handle: wasmtime's engine plus whether it is interruptible.
#[derive(Clone)]
pub struct WtEngine {
    engine: wasmtime::Engine,
    interruptible: bool,
}

impl WtEngine {
    /// wasmtime's engine.
    pub fn inner(&self) -> &wasmtime::Engine {
        &self.engine
    }
}

/// How the layer reaches wasmtime's `Caller` from a host function.
///
/// A trait object (rather than `&mut wasmtime::Caller<'a, _>`) lets the
/// backend lend the caller to the host closure and still use it afterwards
/// to convert results; `&mut` would pin its lifetime parameter.
pub trait CallerOps<T: Send + 'static> {
    /// Shared store context.
    fn ctx(&self) -> wasmtime::StoreContext<'_, StoreData<T>>;
    /// Exclusive store context.
    fn ctx_mut(&mut self) -> wasmtime::StoreContextMut<'_, StoreData<T>>;
    /// An export of the calling instance.
    fn export(&mut self, name: &str) -> Option<wasmtime::Extern>;
    /// The store data.
    fn data_mut(&mut self) -> &mut StoreData<T>;
}

impl<T: Send + 'static> CallerOps<T> for wasmtime::Caller<'_, StoreData<T>> {
    fn ctx(&self) -> wasmtime::StoreContext<'_, StoreData<T>> {
        self.as_context()
    }
    fn ctx_mut(&mut self) -> wasmtime::StoreContextMut<'_, StoreData<T>> {
        self.as_context_mut()
    }
    fn export(&mut self, name: &str) -> Option<wasmtime::Extern> {
        self.get_export(name)
    }
    fn data_mut(&mut self) -> &mut StoreData<T> {
        wasmtime::Caller::data_mut(self)
    }
}

/// Stops running code with a neutral trap code (from the epoch callback).
#[derive(Debug)]
struct Stop(TrapCode);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Stop {}

/// The proposals the layer supports on wasmtime. wasmtime implements more,
/// but the layer does not represent shared memories (threads), typed
/// function references and GC types, or exception tags in module
/// interfaces yet, so it does not claim them.
fn supported_features() -> Features {
    let mut f = Features::all();
    f.threads = false;
    f.exceptions = false;
    f.function_references = false;
    f.gc = false;
    f
}

#[inline]
fn entry_check<T: Send + 'static>(ctx: &wasmtime::StoreContextMut<'_, StoreData<T>>) -> Result<()> {
    let shared = &ctx.data().shared;
    if shared.interruptible()
        && let Some(code) = shared.interrupt().check()
    {
        return Err(Error::trap(Wasmtime::NAME, code, ""));
    }
    Ok(())
}

impl Backend for Wasmtime {
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

    fn capabilities() -> Capabilities {
        let mut c = Capabilities::new(Self::NAME, Self::ENGINE_VERSION);
        c.jit = true;
        c.fuel = true;
        c.deadline = true;
        c.memory_limit = true;
        c.stack_limit = true;
        c.precompiled_modules = true;
        c.memory_slice = true;
        c.extern_ref = true;
        c.features = supported_features();
        c
    }

    fn engine_new(config: &Config) -> Result<WtEngine> {
        let mut c = wasmtime::Config::new();
        let f = config.get_features();
        c.cranelift_opt_level(match config.get_opt_level() {
            OptLevel::None => wasmtime::OptLevel::None,
            OptLevel::Speed => wasmtime::OptLevel::Speed,
        })
        .consume_fuel(config.fuel_enabled())
        .epoch_interruption(config.interruptible_enabled())
        .wasm_multi_value(f.multi_value)
        .wasm_bulk_memory(f.bulk_memory)
        .wasm_reference_types(f.reference_types)
        .wasm_simd(f.simd)
        .wasm_relaxed_simd(f.relaxed_simd)
        .wasm_multi_memory(f.multi_memory)
        .wasm_memory64(f.memory64)
        .wasm_tail_call(f.tail_call)
        .wasm_extended_const(f.extended_const)
        .wasm_exceptions(f.exceptions)
        .wasm_function_references(f.function_references)
        .wasm_gc(f.gc)
        .wasm_wide_arithmetic(f.wide_arithmetic)
        .wasm_custom_page_sizes(f.custom_page_sizes);
        if let Some(stack) = config.get_max_wasm_stack() {
            c.max_wasm_stack(stack);
        }
        let engine = wasmtime::Engine::new(&c).map_err(|e| Error::Backend {
            backend: Self::NAME,
            message: format!("{e:#}"),
        })?;
        if config.interruptible_enabled() {
            ticker::register(&engine);
        }
        Ok(WtEngine {
            engine,
            interruptible: config.interruptible_enabled(),
        })
    }

    fn module_new(engine: &WtEngine, bytes: &[u8]) -> Result<wasmtime::Module> {
        wasmtime::Module::new(&engine.engine, bytes).map_err(compile_err)
    }

    fn module_validate(engine: &WtEngine, bytes: &[u8]) -> Result<()> {
        wasmtime::Module::validate(&engine.engine, bytes).map_err(compile_err)
    }

    fn module_serialize(_engine: &WtEngine, module: &wasmtime::Module) -> Result<Vec<u8>> {
        module.serialize().map_err(backend_err)
    }

    unsafe fn module_deserialize(engine: &WtEngine, bytes: &[u8]) -> Result<wasmtime::Module> {
        // SAFETY: forwarded from the caller's contract.
        unsafe { wasmtime::Module::deserialize(&engine.engine, bytes) }
            .map_err(|e| Error::Precompiled(format!("{e:#}")))
    }

    fn store_new<T: Send + 'static>(
        engine: &WtEngine,
        data: T,
        shared: Arc<StoreShared>,
    ) -> wasmtime::Store<StoreData<T>> {
        let limiter = Limiter {
            shared: shared.clone(),
        };
        let mut store = wasmtime::Store::new(
            &engine.engine,
            StoreData {
                user: data,
                shared,
                limiter,
            },
        );
        store.limiter(|d| &mut d.limiter);
        if engine.interruptible {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|ctx| match ctx.data().shared.interrupt().check() {
                Some(code) => Err(wasmtime::Error::new(Stop(code))),
                None => Ok(wasmtime::UpdateDeadline::Continue(1)),
            });
        }
        store
    }

    fn store_into_data<T: Send + 'static>(store: wasmtime::Store<StoreData<T>>) -> T {
        store.into_data().user
    }

    fn store_ctx<T: Send + 'static>(store: &wasmtime::Store<StoreData<T>>) -> Self::Ctx<'_, T> {
        store.as_context()
    }

    fn store_ctx_mut<T: Send + 'static>(
        store: &mut wasmtime::Store<StoreData<T>>,
    ) -> Self::CtxMut<'_, T> {
        store.as_context_mut()
    }

    fn caller_ctx<'a, T: Send + 'static>(caller: &'a Self::Caller<'_, T>) -> Self::Ctx<'a, T> {
        caller.ctx()
    }

    fn caller_ctx_mut<'a, T: Send + 'static>(
        caller: &'a mut Self::Caller<'_, T>,
    ) -> Self::CtxMut<'a, T> {
        caller.ctx_mut()
    }

    fn ctx_reborrow<'a, T: Send + 'static>(ctx: &'a Self::Ctx<'_, T>) -> Self::Ctx<'a, T> {
        ctx.as_context()
    }

    fn ctx_mut_reborrow<'a, T: Send + 'static>(
        ctx: &'a mut Self::CtxMut<'_, T>,
    ) -> Self::CtxMut<'a, T> {
        ctx.as_context_mut()
    }

    fn ctx_mut_shared<'a, T: Send + 'static>(ctx: &'a Self::CtxMut<'_, T>) -> Self::Ctx<'a, T> {
        ctx.as_context()
    }

    fn ctx_data<'a, T: Send + 'static>(ctx: Self::Ctx<'a, T>) -> &'a T {
        &ctx.data().user
    }

    fn ctx_data_mut<'a, T: Send + 'static>(ctx: &'a mut Self::CtxMut<'_, T>) -> &'a mut T {
        &mut ctx.data_mut().user
    }

    fn store_data_mut<T: Send + 'static>(store: &mut wasmtime::Store<StoreData<T>>) -> &mut T {
        &mut store.data_mut().user
    }

    fn caller_data_mut<'a, T: Send + 'static>(caller: &'a mut Self::Caller<'_, T>) -> &'a mut T {
        &mut caller.data_mut().user
    }

    fn ctx_shared<'a, T: Send + 'static>(ctx: Self::Ctx<'a, T>) -> &'a Arc<StoreShared> {
        &ctx.data().shared
    }

    fn fuel_set<T: Send + 'static>(mut ctx: Self::CtxMut<'_, T>, fuel: u64) -> Result<()> {
        ctx.set_fuel(fuel).map_err(backend_err)
    }

    fn fuel_get<T: Send + 'static>(ctx: Self::CtxMut<'_, T>) -> Result<u64> {
        ctx.get_fuel().map_err(backend_err)
    }

    fn instantiate<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        module: &wasmtime::Module,
        imports: &[Extern<Self>],
    ) -> Result<wasmtime::Instance> {
        entry_check(&ctx)?;
        let imports: Vec<wasmtime::Extern> = imports.iter().map(extern_to_wt).collect();
        wasmtime::Instance::new(&mut ctx, module, &imports).map_err(map_err)
    }

    fn instance_export<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        instance: &wasmtime::Instance,
        name: &str,
    ) -> Option<Extern<Self>> {
        instance.get_export(&mut ctx, name).and_then(extern_from_wt)
    }

    fn caller_export<T: Send + 'static>(
        caller: &mut Self::Caller<'_, T>,
        name: &str,
    ) -> Option<Extern<Self>> {
        caller.export(name).and_then(extern_from_wt)
    }

    fn func_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, func: &wasmtime::Func) -> FuncType {
        func_type_from_wt(&func.ty(ctx))
    }

    fn func_call<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        func: &wasmtime::Func,
        params: &[Val<Self>],
        results: &mut [Val<Self>],
    ) -> Result<()> {
        entry_check(&ctx)?;
        let params: Vec<wasmtime::Val> = params.iter().map(|v| val_to_wt(&mut ctx, v)).collect();
        let mut out = vec![wasmtime::Val::I32(0); results.len()];
        func.call(&mut ctx, &params, &mut out).map_err(map_err)?;
        for (slot, v) in results.iter_mut().zip(out) {
            *slot = val_from_wt(&mut ctx, v);
        }
        Ok(())
    }

    fn func_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: FuncType,
        func: DynHostFn<Self, T>,
    ) -> wasmtime::Func {
        let wt_ty = func_type_to_wt(ctx.engine(), &ty);
        wasmtime::Func::new(ctx, wt_ty, move |caller, params, results| {
            let mut caller = caller;
            let args: Vec<Val<Wasmtime>> = params
                .iter()
                .map(|v| val_from_wt(&mut caller, *v))
                .collect();
            let mut rets: Vec<Val<Wasmtime>> =
                ty.results().iter().map(|t| Val::default_for(*t)).collect();
            func(
                Caller::from_raw(&mut caller as &mut dyn CallerOps<T>),
                &args,
                &mut rets,
            )
            .map_err(wasmtime::Error::new)?;
            for (i, (slot, v)) in results.iter_mut().zip(&rets).enumerate() {
                if v.ty() != ty.results()[i] {
                    return Err(wasmtime::Error::new(result_type_error(&ty, i, v)));
                }
                *slot = val_to_wt(&mut caller, v);
            }
            Ok(())
        })
    }

    fn memory_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: MemoryType,
    ) -> Result<wasmtime::Memory> {
        if ty.shared {
            return Err(Error::unsupported(
                Self::NAME,
                "host-created shared memories",
            ));
        }
        let wt = memory_type_to_wt(&ty)?;
        wasmtime::Memory::new(ctx, wt).map_err(map_err)
    }

    fn memory_ty<T: Send + 'static>(
        ctx: Self::Ctx<'_, T>,
        memory: &wasmtime::Memory,
    ) -> MemoryType {
        let mut ty = memory_type_from_wt(&memory.ty(&ctx));
        ty.minimum = memory.size(&ctx);
        ty
    }

    fn memory_data<'a, T: Send + 'static>(
        ctx: Self::Ctx<'a, T>,
        memory: &wasmtime::Memory,
    ) -> &'a [u8] {
        memory.data(ctx)
    }

    fn memory_data_mut<'a, T: Send + 'static>(
        ctx: Self::CtxMut<'a, T>,
        memory: &wasmtime::Memory,
    ) -> &'a mut [u8] {
        memory.data_mut(ctx)
    }

    fn memory_grow<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        memory: &wasmtime::Memory,
        delta: u64,
    ) -> Result<u64> {
        memory.grow(ctx, delta).map_err(|e| {
            Error::InvalidArgument(format!("cannot grow memory by {delta} pages: {e}"))
        })
    }

    fn table_new<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        ty: TableType,
        init: Val<Self>,
    ) -> Result<wasmtime::Table> {
        let wt = table_type_to_wt(&ty)?;
        let init = ref_to_wt(&mut ctx, &init)?;
        wasmtime::Table::new(ctx, wt, init).map_err(map_err)
    }

    fn table_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, table: &wasmtime::Table) -> TableType {
        let mut ty = table_type_from_wt(&table.ty(&ctx));
        ty.minimum = table.size(&ctx);
        ty
    }

    fn table_get<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        table: &wasmtime::Table,
        index: u64,
    ) -> Option<Val<Self>> {
        let r = table.get(&mut ctx, index)?;
        Some(ref_from_wt(&mut ctx, r))
    }

    fn table_set<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        table: &wasmtime::Table,
        index: u64,
        value: Val<Self>,
    ) -> Result<()> {
        let r = ref_to_wt(&mut ctx, &value)?;
        table.set(&mut ctx, index, r).map_err(map_err)
    }

    fn table_grow<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        table: &wasmtime::Table,
        delta: u64,
        init: Val<Self>,
    ) -> Result<u64> {
        let r = ref_to_wt(&mut ctx, &init)?;
        table
            .grow(&mut ctx, delta, r)
            .map_err(|e| Error::InvalidArgument(format!("cannot grow table by {delta}: {e}")))
    }

    fn global_new<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        ty: GlobalType,
        value: Val<Self>,
    ) -> Result<wasmtime::Global> {
        let wt = global_type_to_wt(&ty);
        let v = val_to_wt(&mut ctx, &value);
        wasmtime::Global::new(ctx, wt, v).map_err(map_err)
    }

    fn global_ty<T: Send + 'static>(
        ctx: Self::Ctx<'_, T>,
        global: &wasmtime::Global,
    ) -> GlobalType {
        global_type_from_wt(&global.ty(ctx))
    }

    fn global_get<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        global: &wasmtime::Global,
    ) -> Val<Self> {
        let v = global.get(&mut ctx);
        val_from_wt(&mut ctx, v)
    }

    fn global_set<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        global: &wasmtime::Global,
        value: Val<Self>,
    ) -> Result<()> {
        let v = val_to_wt(&mut ctx, &value);
        global.set(&mut ctx, v).map_err(map_err)
    }

    fn externref_new<T: Send + 'static>(
        mut ctx: Self::CtxMut<'_, T>,
        data: ExternData,
    ) -> Result<Self::ExternRef> {
        let r = wasmtime::ExternRef::new(&mut ctx, data).map_err(backend_err)?;
        r.to_owned_rooted(&mut ctx).map_err(backend_err)
    }

    fn externref_data<'a, T: Send + 'static>(
        ctx: Self::Ctx<'a, T>,
        r: &Self::ExternRef,
    ) -> Option<&'a (dyn std::any::Any + Send + Sync)> {
        let any = r.data(ctx).ok()??;
        any.downcast_ref::<ExternData>().map(|b| &**b)
    }
}

impl<P, R> TypedSig<Wasmtime> for (P, R)
where
    P: WasmTyList + wasmtime::WasmParams,
    R: WasmTyList + wasmtime::WasmResults,
{
    type Params = P;
    type Results = R;
    type Native = wasmtime::TypedFunc<P, R>;

    fn typed<T: Send + 'static>(
        ctx: wasmtime::StoreContext<'_, StoreData<T>>,
        func: &wasmtime::Func,
    ) -> Result<Self::Native> {
        func.typed::<P, R>(ctx).map_err(map_err)
    }

    #[inline]
    fn call<T: Send + 'static>(
        native: &Self::Native,
        mut ctx: wasmtime::StoreContextMut<'_, StoreData<T>>,
        params: P,
    ) -> Result<R> {
        entry_check(&ctx)?;
        native.call(&mut ctx, params).map_err(map_err)
    }
}

macro_rules! host_sig {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<R, $($t),*> HostSig<Wasmtime> for (($($t,)*), R)
        where
            $($t: WasmTy + wasmtime::WasmTy,)*
            R: WasmTyList + wasmtime::WasmRet,
        {
            type Params = ($($t,)*);
            type Results = R;

            #[allow(non_snake_case)]
            fn wrap<T: Send + 'static, F>(
                ctx: wasmtime::StoreContextMut<'_, StoreData<T>>,
                f: F,
            ) -> wasmtime::Func
            where
                F: Fn(Caller<'_, Wasmtime, T>, ($($t,)*)) -> Result<R> + Send + Sync + 'static,
            {
                wasmtime::Func::wrap(
                    ctx,
                    move |caller: wasmtime::Caller<'_, StoreData<T>>, $($t: $t),*| -> wasmtime::Result<R> {
                        let mut caller = caller;
                        f(Caller::from_raw(&mut caller as &mut dyn CallerOps<T>), ($($t,)*)).map_err(wasmtime::Error::new)
                    },
                )
            }
        }
    };
}

host_sig!(0;);
anywasm_core::for_each_tuple!(host_sig);
