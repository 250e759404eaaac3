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

mod convert;

use std::sync::Arc;

use anywasm_core::{
    Backend, Caller, Capabilities, Config, DynHostFn, Error, Extern, ExternData, Features,
    FuncType, GlobalType, HostSig, MemoryType, Result, StoreShared, TableType, TrapCode, TypedSig,
    Val, WasmTy, WasmTyList,
};
use wasmi::{AsContext, AsContextMut};

use crate::convert::*;

/// Fuel given to the engine per slice when calls must stay interruptible.
/// About a millisecond of interpretation on a desktop CPU.
pub const FUEL_SLICE: u64 = 200_000;

/// A compiled module. Interruptible engines compile the module with its start
/// function turned into an export, and run it after instantiation under the
/// same fuel slicing as any call, so deadlines also stop start functions.
#[derive(Clone)]
pub struct WiModule {
    module: wasmi::Module,
    start: Option<String>,
    /// Exported memories with non-64 KiB pages: wasmi does not tell a
    /// memory's page size, so the layer remembers it.
    custom_pages: Arc<[(String, u8)]>,
    /// wasmi lists imports grouped by kind (functions, tables, memories,
    /// globals); entry `i` is the position in the module's declared order of
    /// wasmi's `i`-th import.
    import_order: Arc<[usize]>,
}

/// The exported memories of a module whose pages are not 64 KiB.
fn custom_pages(bytes: &[u8]) -> Result<Arc<[(String, u8)]>> {
    let info = anywasm_core::ModuleInfo::parse(bytes)?;
    Ok(info
        .exports()
        .iter()
        .filter_map(|e| match &e.ty {
            anywasm_core::ExternType::Memory(m) if m.page_size_log2 != 16 => {
                Some((e.name.clone(), m.page_size_log2))
            }
            _ => None,
        })
        .collect())
}

/// Where each of wasmi's imports sits in the module's declared order.
fn import_order(module: &wasmi::Module, bytes: &[u8]) -> Result<Arc<[usize]>> {
    let info = anywasm_core::ModuleInfo::parse(bytes)?;
    let declared = info.imports();
    let mut used = vec![false; declared.len()];
    let mut order = Vec::with_capacity(declared.len());
    for imp in module.imports() {
        let kind = match imp.ty() {
            wasmi::ExternType::Func(_) => "func",
            wasmi::ExternType::Table(_) => "table",
            wasmi::ExternType::Memory(_) => "memory",
            wasmi::ExternType::Global(_) => "global",
        };
        let pos = declared
            .iter()
            .enumerate()
            .position(|(i, d)| {
                !used[i] && d.module == imp.module() && d.name == imp.name() && d.ty.kind() == kind
            })
            .ok_or_else(|| Error::Backend {
                backend: NAME,
                message: format!("cannot place import `{}`.`{}`", imp.module(), imp.name()),
            })?;
        used[pos] = true;
        order.push(pos);
    }
    Ok(order.into())
}

impl WiModule {
    /// wasmi's module.
    pub fn inner(&self) -> &wasmi::Module {
        &self.module
    }
}

/// The engine handle.
#[derive(Clone)]
pub struct WiEngine {
    engine: wasmi::Engine,
    interruptible: bool,
}

impl WiEngine {
    /// wasmi's engine.
    pub fn inner(&self) -> &wasmi::Engine {
        &self.engine
    }
}

/// The wasmi backend marker type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Wasmi;

/// What a wasmi store holds: the user's data plus the layer's per-store state.
pub struct StoreData<T> {
    user: T,
    shared: Arc<StoreShared>,
    limiter: Limiter,
    /// Whether calls run in fuel slices (interruptible engines).
    slicing: bool,
    /// The user's fuel that has not been handed to the engine yet.
    bank: u64,
    /// Memories with non-64 KiB pages (see `WiModule::custom_pages`), by
    /// their debug form: wasmi memory handles have no equality.
    page_sizes: Vec<(String, u8)>,
    /// The error a host function returned, until the call that ran it
    /// returns. wasmi hands host errors back by reference in resumable calls,
    /// so the layer keeps the error itself here and passes a marker through wasmi.
    host_error: Option<Error>,
}

struct Limiter {
    shared: Arc<StoreShared>,
}

impl wasmi::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        Ok(self.shared.memory_may_grow(desired as u64))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        Ok(self.shared.table_may_grow(desired as u64))
    }

    fn instances(&self) -> usize {
        usize::MAX
    }

    fn tables(&self) -> usize {
        usize::MAX
    }

    fn memories(&self) -> usize {
        usize::MAX
    }
}

/// A shared view of a wasmi store, from a `Store` or a host function's `Caller`.
pub trait View<T: Send + 'static> {
    /// wasmi's shared context.
    fn ctx(&self) -> wasmi::StoreContext<'_, StoreData<T>>;
    /// The store data.
    fn data(&self) -> &StoreData<T>;
}

/// An exclusive view of a wasmi store.
pub trait ViewMut<T: Send + 'static>: View<T> {
    /// wasmi's exclusive context.
    fn ctx_mut(&mut self) -> wasmi::StoreContextMut<'_, StoreData<T>>;
    /// The store data.
    fn data_mut(&mut self) -> &mut StoreData<T>;
    /// An export of the calling instance (only for callers).
    fn export(&self, name: &str) -> Option<wasmi::Extern>;
}

impl<T: Send + 'static> View<T> for wasmi::Store<StoreData<T>> {
    fn ctx(&self) -> wasmi::StoreContext<'_, StoreData<T>> {
        self.as_context()
    }
    fn data(&self) -> &StoreData<T> {
        wasmi::Store::data(self)
    }
}

impl<T: Send + 'static> ViewMut<T> for wasmi::Store<StoreData<T>> {
    fn ctx_mut(&mut self) -> wasmi::StoreContextMut<'_, StoreData<T>> {
        self.as_context_mut()
    }
    fn data_mut(&mut self) -> &mut StoreData<T> {
        wasmi::Store::data_mut(self)
    }
    fn export(&self, _name: &str) -> Option<wasmi::Extern> {
        None
    }
}

impl<T: Send + 'static> View<T> for wasmi::Caller<'_, StoreData<T>> {
    fn ctx(&self) -> wasmi::StoreContext<'_, StoreData<T>> {
        self.as_context()
    }
    fn data(&self) -> &StoreData<T> {
        wasmi::Caller::data(self)
    }
}

impl<T: Send + 'static> ViewMut<T> for wasmi::Caller<'_, StoreData<T>> {
    fn ctx_mut(&mut self) -> wasmi::StoreContextMut<'_, StoreData<T>> {
        self.as_context_mut()
    }
    fn data_mut(&mut self) -> &mut StoreData<T> {
        wasmi::Caller::data_mut(self)
    }
    fn export(&self, name: &str) -> Option<wasmi::Extern> {
        self.get_export(name)
    }
}

/// The proposals the layer supports on wasmi (wasmi implements no threads,
/// exceptions, typed references or GC).
fn supported_features() -> Features {
    let mut f = Features::all();
    f.threads = false;
    f.exceptions = false;
    f.function_references = false;
    f.gc = false;
    f
}

const NAME: &str = "wasmi";

/// Before a sliced call: stop for a pending interrupt or passed deadline,
/// and top the engine up to a full slice of fuel: wasmi refuses to start a
/// call whose entry costs more than the fuel left, instead of reporting a
/// resumable out-of-fuel.
fn sliced_entry<T: Send + 'static>(ctx: &mut dyn ViewMut<T>) -> Result<()> {
    if let Some(code) = ctx.data().shared.interrupt().check() {
        return Err(Error::trap(NAME, code, ""));
    }
    let held = ctx.ctx().get_fuel().unwrap_or(0);
    if held < FUEL_SLICE {
        let data = ctx.data_mut();
        let give = data.bank.min(FUEL_SLICE - held);
        if give > 0 {
            data.bank -= give;
            ctx.ctx_mut()
                .set_fuel(held + give)
                .map_err(|e| map_err(&e))?;
        }
    }
    Ok(())
}

#[inline]
fn entry_check<T: Send + 'static>(ctx: &mut dyn ViewMut<T>) -> Result<()> {
    if ctx.data().slicing {
        sliced_entry(ctx)?;
    }
    Ok(())
}

/// Called when a sliced call ran out of engine fuel: decides whether to stop
/// (user fuel exhausted, deadline, interrupt) or refuel and go on.
fn refuel<T: Send + 'static>(ctx: &mut dyn ViewMut<T>, required: u64) -> Result<()> {
    let data = ctx.data_mut();
    if data.bank == 0 || data.bank < required {
        data.bank = 0;
        return Err(Error::trap(NAME, TrapCode::OutOfFuel, ""));
    }
    if let Some(code) = data.shared.interrupt().check() {
        return Err(Error::trap(NAME, code, ""));
    }
    let give = data.bank.min(FUEL_SLICE.max(required));
    data.bank -= give;
    ctx.ctx_mut().set_fuel(give).map_err(|e| map_err(&e))
}

impl Backend for Wasmi {
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

    fn capabilities() -> Capabilities {
        let mut c = Capabilities::new(NAME, Self::ENGINE_VERSION);
        c.fuel = true;
        c.deadline = true;
        c.memory_limit = true;
        c.stack_limit = true;
        c.memory_slice = true;
        c.extern_ref = true;
        c.features = supported_features();
        c
    }

    fn engine_new(config: &Config) -> Result<WiEngine> {
        let mut c = wasmi::Config::default();
        let f = config.get_features();
        c.consume_fuel(config.fuel_enabled() || config.interruptible_enabled())
            .wasm_mutable_global(f.mutable_global)
            .wasm_sign_extension(f.sign_extension)
            .wasm_saturating_float_to_int(f.saturating_float_to_int)
            .wasm_multi_value(f.multi_value)
            .wasm_bulk_memory(f.bulk_memory)
            .wasm_reference_types(f.reference_types)
            .wasm_simd(f.simd)
            .wasm_relaxed_simd(f.relaxed_simd)
            .wasm_multi_memory(f.multi_memory)
            .wasm_memory64(f.memory64)
            .wasm_tail_call(f.tail_call)
            .wasm_extended_const(f.extended_const)
            .wasm_wide_arithmetic(f.wide_arithmetic)
            .wasm_custom_page_sizes(f.custom_page_sizes);
        if let Some(bytes) = config.get_max_wasm_stack() {
            // wasmi keeps wasm values on its own stack of 8-byte cells, and
            // counts call frames separately; a frame costs at least a few cells.
            let cells = (bytes / 8).max(1024);
            c.set_max_stack_height(cells);
            c.set_max_recursion_depth((bytes / 64).max(64));
        } else {
            // wasmi's own default allows 1000 nested calls; wasmtime's default
            // 512 KiB stack allows several thousand. Use the same translation
            // as above of wasmtime's default so that code that recurses a few
            // thousand deep runs on every backend.
            c.set_max_recursion_depth(512 * 1024 / 64);
        }
        Ok(WiEngine {
            engine: wasmi::Engine::new(&c),
            interruptible: config.interruptible_enabled(),
        })
    }

    fn module_new(engine: &WiEngine, bytes: &[u8]) -> Result<WiModule> {
        if engine.interruptible {
            // Validate the module as given, then compile it with its start
            // function exported, to run the start function sliced.
            if let Some(d) = anywasm_core::rewrite::defer_start(bytes)? {
                wasmi::Module::validate(&engine.engine, bytes).map_err(compile_err)?;
                let module = wasmi::Module::new(&engine.engine, &d.bytes).map_err(compile_err)?;
                let import_order = import_order(&module, bytes)?;
                return Ok(WiModule {
                    module,
                    start: Some(d.export),
                    custom_pages: custom_pages(bytes)?,
                    import_order,
                });
            }
        }
        let module = wasmi::Module::new(&engine.engine, bytes).map_err(compile_err)?;
        let import_order = import_order(&module, bytes)?;
        Ok(WiModule {
            module,
            start: None,
            custom_pages: custom_pages(bytes)?,
            import_order,
        })
    }

    fn module_validate(engine: &WiEngine, bytes: &[u8]) -> Result<()> {
        wasmi::Module::validate(&engine.engine, bytes).map_err(compile_err)
    }

    fn module_serialize(_engine: &WiEngine, _module: &WiModule) -> Result<Vec<u8>> {
        Err(Error::unsupported(
            NAME,
            "precompiled modules (wasmi compiles lazily on load)",
        ))
    }

    unsafe fn module_deserialize(_engine: &WiEngine, _bytes: &[u8]) -> Result<WiModule> {
        Err(Error::unsupported(
            NAME,
            "precompiled modules (wasmi compiles lazily on load)",
        ))
    }

    fn store_new<T: Send + 'static>(
        engine: &WiEngine,
        data: T,
        shared: Arc<StoreShared>,
    ) -> wasmi::Store<StoreData<T>> {
        let slicing = shared.interruptible();
        // Without fuel enabled by the user, an interruptible store has an
        // unlimited budget that it still hands out in slices.
        let bank = if slicing && !shared.fuel_enabled() {
            u64::MAX
        } else {
            0
        };
        let limiter = Limiter {
            shared: shared.clone(),
        };
        let mut store = wasmi::Store::new(
            &engine.engine,
            StoreData {
                user: data,
                shared,
                limiter,
                slicing,
                bank,
                page_sizes: Vec::new(),
                host_error: None,
            },
        );
        store.limiter(|d| &mut d.limiter);
        if slicing && bank > 0 {
            let give = FUEL_SLICE;
            store.data_mut().bank -= give;
            let _ = store.set_fuel(give);
        }
        store
    }

    fn store_into_data<T: Send + 'static>(store: wasmi::Store<StoreData<T>>) -> T {
        store.into_data().user
    }

    fn store_ctx<T: Send + 'static>(store: &wasmi::Store<StoreData<T>>) -> Self::Ctx<'_, T> {
        store
    }

    fn store_ctx_mut<T: Send + 'static>(
        store: &mut wasmi::Store<StoreData<T>>,
    ) -> Self::CtxMut<'_, T> {
        store
    }

    fn caller_ctx<'a, T: Send + 'static>(caller: &'a Self::Caller<'_, T>) -> Self::Ctx<'a, T> {
        &**caller
    }

    fn caller_ctx_mut<'a, T: Send + 'static>(
        caller: &'a mut Self::Caller<'_, T>,
    ) -> Self::CtxMut<'a, T> {
        &mut **caller
    }

    fn ctx_reborrow<'a, T: Send + 'static>(ctx: &'a Self::Ctx<'_, T>) -> Self::Ctx<'a, T> {
        *ctx
    }

    fn ctx_mut_reborrow<'a, T: Send + 'static>(
        ctx: &'a mut Self::CtxMut<'_, T>,
    ) -> Self::CtxMut<'a, T> {
        &mut **ctx
    }

    fn ctx_mut_shared<'a, T: Send + 'static>(ctx: &'a Self::CtxMut<'_, T>) -> Self::Ctx<'a, T> {
        &**ctx
    }

    fn ctx_data<'a, T: Send + 'static>(ctx: Self::Ctx<'a, T>) -> &'a T {
        &ctx.data().user
    }

    fn ctx_data_mut<'a, T: Send + 'static>(ctx: &'a mut Self::CtxMut<'_, T>) -> &'a mut T {
        &mut ctx.data_mut().user
    }

    fn store_data_mut<T: Send + 'static>(store: &mut wasmi::Store<StoreData<T>>) -> &mut T {
        &mut store.data_mut().user
    }

    fn caller_data_mut<'a, T: Send + 'static>(caller: &'a mut Self::Caller<'_, T>) -> &'a mut T {
        &mut caller.data_mut().user
    }

    fn ctx_shared<'a, T: Send + 'static>(ctx: Self::Ctx<'a, T>) -> &'a Arc<StoreShared> {
        &ctx.data().shared
    }

    fn fuel_set<T: Send + 'static>(ctx: Self::CtxMut<'_, T>, fuel: u64) -> Result<()> {
        if ctx.data().slicing {
            let give = fuel.min(FUEL_SLICE);
            ctx.data_mut().bank = fuel - give;
            ctx.ctx_mut().set_fuel(give).map_err(|e| map_err(&e))
        } else {
            ctx.ctx_mut().set_fuel(fuel).map_err(|e| map_err(&e))
        }
    }

    fn fuel_get<T: Send + 'static>(ctx: Self::CtxMut<'_, T>) -> Result<u64> {
        let engine = ctx.ctx().get_fuel().map_err(|e| map_err(&e))?;
        Ok(ctx.data().bank.saturating_add(engine))
    }

    fn instantiate<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        module: &WiModule,
        imports: &[Extern<Self>],
    ) -> Result<wasmi::Instance> {
        entry_check(&mut *ctx)?;
        let imports: Vec<wasmi::Extern> = module
            .import_order
            .iter()
            .map(|&i| extern_to_wi(&imports[i]))
            .collect();
        let instance = match wasmi::Instance::new(ctx.ctx_mut(), &module.module, &imports) {
            Ok(i) => i,
            Err(e) => return Err(call_err(&mut *ctx, e)),
        };
        for (name, log2) in module.custom_pages.iter() {
            if let Some(m) = instance.get_memory(ctx.ctx(), name) {
                ctx.data_mut().page_sizes.push((format!("{m:?}"), *log2));
            }
        }
        if let Some(start) = &module.start {
            let func = instance
                .get_func(ctx.ctx(), start)
                .ok_or_else(|| Error::Backend {
                    backend: NAME,
                    message: "the deferred start function is missing".into(),
                })?;
            Self::func_call(&mut *ctx, &func, &[], &mut [])?;
        }
        Ok(instance)
    }

    fn instance_export<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        instance: &wasmi::Instance,
        name: &str,
    ) -> Option<Extern<Self>> {
        instance
            .get_export(ctx.ctx(), name)
            .and_then(extern_from_wi)
    }

    fn caller_export<T: Send + 'static>(
        caller: &mut Self::Caller<'_, T>,
        name: &str,
    ) -> Option<Extern<Self>> {
        caller.export(name).and_then(extern_from_wi)
    }

    fn func_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, func: &wasmi::Func) -> FuncType {
        func_type_from_wi(&func.ty(ctx.ctx()))
    }

    fn func_call<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        func: &wasmi::Func,
        params: &[Val<Self>],
        results: &mut [Val<Self>],
    ) -> Result<()> {
        entry_check(&mut *ctx)?;
        let params: Vec<wasmi::Val> = params.iter().map(val_to_wi).collect();
        let mut out: Vec<wasmi::Val> = results.iter().map(val_to_wi).collect();
        if ctx.data().slicing {
            let mut call = match func.call_resumable(ctx.ctx_mut(), &params, &mut out) {
                Ok(c) => c,
                Err(e) => return Err(call_err(&mut *ctx, e)),
            };
            loop {
                match call {
                    wasmi::ResumableCall::Finished => break,
                    wasmi::ResumableCall::HostTrap(t) => {
                        return Err(call_err(&mut *ctx, t.into_host_error()));
                    }
                    wasmi::ResumableCall::OutOfFuel(o) => {
                        refuel(&mut *ctx, o.required_fuel())?;
                        call = match o.resume(ctx.ctx_mut(), &mut out) {
                            Ok(c) => c,
                            Err(e) => return Err(call_err(&mut *ctx, e)),
                        };
                    }
                }
            }
        } else {
            if let Err(e) = func.call(ctx.ctx_mut(), &params, &mut out) {
                return Err(call_err(&mut *ctx, e));
            }
        }
        for (slot, v) in results.iter_mut().zip(&out) {
            *slot = val_from_wi(v);
        }
        Ok(())
    }

    fn func_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: FuncType,
        func: DynHostFn<Self, T>,
    ) -> wasmi::Func {
        let wi_ty = func_type_to_wi(&ty);
        wasmi::Func::new(ctx.ctx_mut(), wi_ty, move |caller, params, results| {
            let mut caller = caller;
            let args: Vec<Val<Wasmi>> = params.iter().map(val_from_wi).collect();
            let mut rets: Vec<Val<Wasmi>> =
                ty.results().iter().map(|t| Val::default_for(*t)).collect();
            if let Err(e) = func(
                Caller::from_raw(&mut caller as &mut dyn ViewMut<T>),
                &args,
                &mut rets,
            ) {
                return Err(host_err(&mut caller, e));
            }
            for (i, (slot, v)) in results.iter_mut().zip(&rets).enumerate() {
                if v.ty() != ty.results()[i] {
                    return Err(host_err(&mut caller, result_type_error(&ty, i, v)));
                }
                *slot = val_to_wi(v);
            }
            Ok(())
        })
    }

    fn memory_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: MemoryType,
    ) -> Result<wasmi::Memory> {
        if ty.shared {
            return Err(Error::unsupported(NAME, "shared memories (threads)"));
        }
        let wi = memory_type_to_wi(&ty)?;
        let memory = wasmi::Memory::new(ctx.ctx_mut(), wi)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if ty.page_size_log2 != 16 {
            ctx.data_mut()
                .page_sizes
                .push((format!("{memory:?}"), ty.page_size_log2));
        }
        Ok(memory)
    }

    fn memory_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, memory: &wasmi::Memory) -> MemoryType {
        let wi = memory.ty(ctx.ctx());
        let pages = memory.size(ctx.ctx());
        let bytes = memory.data(ctx.ctx()).len() as u64;
        let page_size_log2 = match bytes.checked_div(pages) {
            Some(size) => size.trailing_zeros() as u8,
            None => {
                let key = format!("{memory:?}");
                ctx.data()
                    .page_sizes
                    .iter()
                    .find(|(m, _)| *m == key)
                    .map_or(16, |(_, log2)| *log2)
            }
        };
        MemoryType {
            minimum: pages,
            maximum: wi.maximum(),
            memory64: wi.is_64(),
            shared: false,
            page_size_log2,
        }
    }

    fn memory_data<'a, T: Send + 'static>(
        ctx: Self::Ctx<'a, T>,
        memory: &wasmi::Memory,
    ) -> &'a [u8] {
        memory.data(ctx.ctx())
    }

    fn memory_data_mut<'a, T: Send + 'static>(
        ctx: Self::CtxMut<'a, T>,
        memory: &wasmi::Memory,
    ) -> &'a mut [u8] {
        memory.data_mut(ctx.ctx_mut())
    }

    fn memory_grow<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        memory: &wasmi::Memory,
        delta: u64,
    ) -> Result<u64> {
        memory.grow(ctx.ctx_mut(), delta).map_err(|e| {
            Error::InvalidArgument(format!("cannot grow memory by {delta} pages: {e}"))
        })
    }

    fn table_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: TableType,
        init: Val<Self>,
    ) -> Result<wasmi::Table> {
        let wi = table_type_to_wi(&ty)?;
        let init = ref_to_wi(&init)?;
        wasmi::Table::new(ctx.ctx_mut(), wi, init).map_err(|e| map_err(&e))
    }

    fn table_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, table: &wasmi::Table) -> TableType {
        let mut ty = table_type_from_wi(&table.ty(ctx.ctx()));
        ty.minimum = table.size(ctx.ctx());
        ty
    }

    fn table_get<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &wasmi::Table,
        index: u64,
    ) -> Option<Val<Self>> {
        table.get(ctx.ctx(), index).map(|r| ref_from_wi(&r))
    }

    fn table_set<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &wasmi::Table,
        index: u64,
        value: Val<Self>,
    ) -> Result<()> {
        let r = ref_to_wi(&value)?;
        table
            .set(ctx.ctx_mut(), index, r)
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    fn table_grow<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &wasmi::Table,
        delta: u64,
        init: Val<Self>,
    ) -> Result<u64> {
        let r = ref_to_wi(&init)?;
        table
            .grow(ctx.ctx_mut(), delta, r)
            .map_err(|e| Error::InvalidArgument(format!("cannot grow table by {delta}: {e}")))
    }

    fn global_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: GlobalType,
        value: Val<Self>,
    ) -> Result<wasmi::Global> {
        Ok(wasmi::Global::new(
            ctx.ctx_mut(),
            val_to_wi(&value),
            mutability_to_wi(ty.mutability),
        ))
    }

    fn global_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, global: &wasmi::Global) -> GlobalType {
        global_type_from_wi(&global.ty(ctx.ctx()))
    }

    fn global_get<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        global: &wasmi::Global,
    ) -> Val<Self> {
        val_from_wi(&global.get(ctx.ctx()))
    }

    fn global_set<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        global: &wasmi::Global,
        value: Val<Self>,
    ) -> Result<()> {
        global
            .set(ctx.ctx_mut(), val_to_wi(&value))
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    fn externref_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        data: ExternData,
    ) -> Result<wasmi::ExternRef> {
        Ok(wasmi::ExternRef::new(ctx.ctx_mut(), data))
    }

    fn externref_data<'a, T: Send + 'static>(
        ctx: Self::Ctx<'a, T>,
        r: &wasmi::ExternRef,
    ) -> Option<&'a (dyn std::any::Any + Send + Sync)> {
        r.data(ctx.ctx()).downcast_ref::<ExternData>().map(|b| &**b)
    }
}

impl<P, R> TypedSig<Wasmi> for (P, R)
where
    P: WasmTyList + wasmi::WasmParams,
    R: WasmTyList + wasmi::WasmResults,
{
    type Params = P;
    type Results = R;
    type Native = wasmi::TypedFunc<P, R>;

    fn typed<T: Send + 'static>(ctx: &dyn View<T>, func: &wasmi::Func) -> Result<Self::Native> {
        func.typed::<P, R>(ctx.ctx()).map_err(|e| map_err(&e))
    }

    #[inline]
    fn call<T: Send + 'static>(
        native: &Self::Native,
        ctx: &mut dyn ViewMut<T>,
        params: P,
    ) -> Result<R> {
        if !ctx.data().slicing {
            return match native.call(ctx.ctx_mut(), params) {
                Ok(r) => Ok(r),
                Err(e) => Err(call_err(ctx, e)),
            };
        }
        sliced_entry(ctx)?;
        let mut call = match native.call_resumable(ctx.ctx_mut(), params) {
            Ok(c) => c,
            Err(e) => return Err(call_err(ctx, e)),
        };
        loop {
            match call {
                wasmi::TypedResumableCall::Finished(r) => return Ok(r),
                wasmi::TypedResumableCall::HostTrap(t) => {
                    let e = match ctx.data_mut().host_error.take() {
                        Some(e) => e,
                        None => map_err(t.host_error()),
                    };
                    return Err(e);
                }
                wasmi::TypedResumableCall::OutOfFuel(o) => {
                    refuel(ctx, o.required_fuel())?;
                    call = match o.resume(ctx.ctx_mut()) {
                        Ok(c) => c,
                        Err(e) => return Err(call_err(ctx, e)),
                    };
                }
            }
        }
    }
}

macro_rules! host_sig {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<R, $($t),*> HostSig<Wasmi> for (($($t,)*), R)
        where
            $($t: WasmTy + wasmi::WasmTy,)*
            R: WasmTyList,
            Result<R, wasmi::Error>: wasmi::WasmRet,
        {
            type Params = ($($t,)*);
            type Results = R;

            #[allow(non_snake_case)]
            fn wrap<T: Send + 'static, F>(ctx: &mut dyn ViewMut<T>, f: F) -> wasmi::Func
            where
                F: Fn(Caller<'_, Wasmi, T>, ($($t,)*)) -> Result<R> + Send + Sync + 'static,
            {
                wasmi::Func::wrap(
                    ctx.ctx_mut(),
                    move |caller: wasmi::Caller<'_, StoreData<T>>, $($t: $t),*| -> Result<R, wasmi::Error> {
                        let mut caller = caller;
                        match f(Caller::from_raw(&mut caller as &mut dyn ViewMut<T>), ($($t,)*)) {
                            Ok(r) => Ok(r),
                            Err(e) => Err(host_err(&mut caller, e)),
                        }
                    },
                )
            }
        }
    };
}

host_sig!(0;);
anywasm_core::for_each_tuple!(host_sig);
