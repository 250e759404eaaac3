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
//! - **Fuel**: a metering middleware compiled into every module counts one
//!   unit per operator in a global of each instance. The store's budget is
//!   handed to all its instances when a call from the host starts and
//!   reconciled when it returns, so a call that stays in one instance spends
//!   fuel exactly; a chain of direct wasm-to-wasm calls across instances of one
//!   store can overdraw the budget by what the other instances spend.
//! - **Deadlines and interrupts**: wasmer's signal-based host interrupt for
//!   one store, driven by a watchdog thread (see the `watchdog` module).
//! - **Memory limits**: engine tunables that wrap each memory and ask the
//!   store's limit before it grows.
//! - **Stack**: wasm runs on wasmer's own fixed-size stack and deep
//!   recursion traps; its size is process-wide in wasmer, so a per-engine
//!   [`Config::max_wasm_stack`] is `Unsupported`.
//! - **Start functions** are run by the layer after instantiation (the module
//!   is compiled with its start function exported), so host functions know
//!   their calling instance and deadlines and fuel apply to start functions.
//! - **The caller's instance**: wasmer does not tell a host function who
//!   called it. Each host function is bound to the first instance it is
//!   imported into; a host function called before that sees the instance
//!   whose export the host called.

mod convert;
mod limits;
mod metering;
mod thunk;
mod watchdog;

use std::sync::{Arc, Mutex, OnceLock};

use anywasm_core::{
    Backend, Caller, Capabilities, Config, DynHostFn, Error, Extern, ExternData, Features,
    FuncType, GlobalType, HostSig, MemoryType, OptLevel, Result, StoreShared, TableType, TrapCode,
    TypedSig, Val, WasmTy, WasmTyList,
};
use wasmer::sys::NativeEngineExt;
use wasmer::{AsStoreMut, AsStoreRef, FunctionEnv, FunctionEnvMut, StoreMut, StoreRef};

use crate::convert::*;
use crate::watchdog::Watch;

const NAME: &str = "wasmer";

/// The wasmer backend marker type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Wasmer;

/// The engine handle.
#[derive(Clone)]
pub struct WrEngine {
    engine: wasmer::Engine,
    fuel: bool,
    interruptible: bool,
    /// The metering middleware keeps per-module state: one compile at a time.
    compile_lock: Arc<Mutex<()>>,
}

impl WrEngine {
    /// wasmer's engine.
    pub fn inner(&self) -> &wasmer::Engine {
        &self.engine
    }
}

/// A compiled module, with the name under which its start function is exported.
#[derive(Clone)]
pub struct WrModule {
    module: wasmer::Module,
    start: Option<String>,
}

/// An instance. Shared, because every function taken from it and every
/// call into it keeps it (wasmer's `Instance` clones its export map).
pub type WrInstance = Arc<wasmer::Instance>;

/// A function, with what the backend knows about whose it is.
#[derive(Clone, Debug)]
pub struct WrFunc {
    func: wasmer::Function,
    /// The instance that exports it, for functions taken from an instance.
    owner: Option<WrInstance>,
    /// For host functions: the instance that imports it, once known.
    binding: Option<Arc<OnceLock<WrInstance>>>,
    /// For host functions with a run-time signature: the wasm thunk that
    /// stands for it as a funcref, once made.
    thunk: Option<Arc<OnceLock<wasmer::Function>>>,
}

impl WrFunc {
    /// wasmer's function.
    pub fn inner(&self) -> &wasmer::Function {
        &self.func
    }
}

struct MeteredInstance {
    remaining: wasmer::Global,
    exhausted: wasmer::Global,
    last_set: u64,
}

/// The layer's data in a wasmer store (inside its `FunctionEnv`).
pub struct StoreData<T> {
    /// Taken out by `store_into_data`; dropped by `Drop` otherwise.
    user: std::mem::ManuallyDrop<T>,
    taken: bool,
    shared: Arc<StoreShared>,
    fuel: u64,
    metered: Vec<MeteredInstance>,
    watch: Option<Arc<Watch>>,
    depth: u32,
    /// Instances whose exports the host is running, innermost last, as
    /// `Arc::as_ptr` of the owner the caller holds: an `Arc` clone per call
    /// was two atomic operations on the typed fast path. Each entry is
    /// popped before `host_call` returns or unwinds, while the caller's
    /// borrow keeps the instance alive; see `running_instance`.
    running: Vec<RunningPtr>,
    host_error: Option<Error>,
}

impl<T> Drop for StoreData<T> {
    fn drop(&mut self) {
        if !self.taken {
            // SAFETY: `user` is dropped exactly once, here, unless
            // `store_into_data` moved it out and set `taken`.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.user) }
        }
    }
}

/// A wasmer store with the layer's data.
pub struct WrStore<T: Send + 'static> {
    store: wasmer::Store,
    env: FunctionEnv<StoreData<T>>,
}

// SAFETY: wasmer 6 stores were `Send`; 7.0 lost it only because the type of
// the optional `on_called` handler dropped its `Send` bound
// (wasmerio/wasmer#7001), which the layer never installs. Everything else
// in the store is owned by it or shared through `Arc`s, the host functions
// and extern data the layer puts in it are `Send + Sync`, and the
// thread-bound parts of a call (trap handler context, interrupt registry)
// are set up and torn down within the call, which borrows the store
// exclusively. The user data is `Send` by the bound.
unsafe impl<T: Send + 'static> Send for WrStore<T> {}

/// A shared view of a store, from a [`WrStore`] or a host function's environment.
pub trait View<T: Send + 'static> {
    /// wasmer's store reference.
    fn store_ref(&self) -> StoreRef<'_>;
    /// The store data.
    fn data(&self) -> &StoreData<T>;
}

/// An exclusive view of a store.
pub trait ViewMut<T: Send + 'static>: View<T> {
    /// The store and its data, as a host function sees them.
    fn env_mut(&mut self) -> FunctionEnvMut<'_, StoreData<T>>;
}

impl<T: Send + 'static> View<T> for WrStore<T> {
    fn store_ref(&self) -> StoreRef<'_> {
        self.store.as_store_ref()
    }
    fn data(&self) -> &StoreData<T> {
        self.env.as_ref(&self.store)
    }
}

impl<T: Send + 'static> ViewMut<T> for WrStore<T> {
    fn env_mut(&mut self) -> FunctionEnvMut<'_, StoreData<T>> {
        self.env.clone().into_mut(&mut self.store)
    }
}

impl<T: Send + 'static> View<T> for FunctionEnvMut<'_, StoreData<T>> {
    fn store_ref(&self) -> StoreRef<'_> {
        self.as_store_ref()
    }
    fn data(&self) -> &StoreData<T> {
        FunctionEnvMut::data(self)
    }
}

impl<T: Send + 'static> ViewMut<T> for FunctionEnvMut<'_, StoreData<T>> {
    fn env_mut(&mut self) -> FunctionEnvMut<'_, StoreData<T>> {
        self.as_mut()
    }
}

/// What a host function gets: the store view and its own binding.
pub struct WrCaller<'a, T: Send + 'static> {
    env: &'a mut (dyn ViewMut<T> + 'a),
    binding: &'a OnceLock<WrInstance>,
}

/// The proposals the layer supports on wasmer. wasmer also implements
/// exceptions, but the layer cannot represent tags or exception references
/// yet, so it does not claim them.
fn supported_features() -> Features {
    let mut f = Features::wasm2();
    f.relaxed_simd = true;
    f.multi_memory = true;
    f.extended_const = true;
    f.wide_arithmetic = true;
    f
}

/// Runs `f` as a call from the host into wasm: interrupt checks, fuel
/// handed to the instances and taken back, the watchdog, and the caller stack.
fn host_call<T: Send + 'static, R>(
    ctx: &mut dyn ViewMut<T>,
    owner: Option<&WrInstance>,
    f: impl FnOnce(&mut StoreMut<'_>) -> std::result::Result<R, wasmer::RuntimeError>,
) -> Result<R> {
    let mut env = ctx.env_mut();
    let outermost;
    {
        let (data, mut store) = env.data_and_store_mut();
        if let Some(w) = &data.watch
            && let Some(code) = w.state.check()
        {
            return Err(Error::trap(NAME, code, ""));
        }
        outermost = data.depth == 0;
        data.depth += 1;
        if outermost {
            if data.shared.fuel_enabled() {
                let fuel = data.fuel;
                for m in &mut data.metered {
                    set_points(&mut store, m, fuel);
                }
            }
            if let Some(w) = &data.watch {
                watchdog::enter(w);
            }
        }
        if let Some(o) = owner {
            data.running.push(RunningPtr(Arc::as_ptr(o)));
        }
    }
    // Host functions' panics never get here (the core catches them where
    // the host function returns); this guard is for a panic from wasmer
    // itself. The bookkeeping is undone before it goes on, so `running`
    // never keeps a pointer whose owner borrow has ended (which
    // `running_instance` would otherwise dereference later).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut store = env.as_store_mut();
        f(&mut store)
    }));
    let (data, mut store) = env.data_and_store_mut();
    if owner.is_some() {
        data.running.pop();
    }
    data.depth -= 1;
    let result = match result {
        Ok(r) => r,
        Err(panic) => {
            if outermost && let Some(w) = &data.watch {
                watchdog::leave(w);
            }
            std::panic::resume_unwind(panic)
        }
    };
    let mut exhausted = false;
    if outermost {
        if let Some(w) = &data.watch {
            watchdog::leave(w);
        }
        if data.shared.fuel_enabled() {
            exhausted = reconcile_fuel(data, &mut store);
        }
    }
    match result {
        Ok(r) => Ok(r),
        Err(e) => {
            if let Some(ours) = take_host_error(data, &e) {
                return Err(ours);
            }
            let code = e.clone().to_trap();
            if exhausted || (!outermost && any_exhausted(data, &mut store)) {
                return Err(Error::trap(NAME, TrapCode::OutOfFuel, ""));
            }
            if code == Some(wasmer::sys::vm::TrapCode::HostInterrupt) {
                let reason = data
                    .watch
                    .as_ref()
                    .map_or(TrapCode::Interrupted, |w| w.take_reason());
                return Err(Error::trap(NAME, reason, ""));
            }
            Err(map_runtime_err(e))
        }
    }
}

/// A pointer to an instance the host is running (see `StoreData::running`).
#[derive(Clone, Copy)]
struct RunningPtr(*const wasmer::Instance);

// SAFETY: a `RunningPtr` is only dereferenced by `running_instance`, inside
// the call that pushed it, on the thread that holds the store exclusively
// for that call; `wasmer::Instance` itself is `Send + Sync`.
unsafe impl Send for RunningPtr {}
// SAFETY: as above; shared access only reads the pointer value.
unsafe impl Sync for RunningPtr {}

/// The innermost instance the host is running, as a new `Arc`.
fn running_instance<T>(data: &StoreData<T>) -> Option<WrInstance> {
    let ptr = data.running.last()?.0;
    // SAFETY: `ptr` came from `Arc::as_ptr` of an owner that `host_call`'s
    // caller borrows for the whole call, and `host_call` pops it before
    // returning or unwinding; we are inside that call (a host function it
    // led to), so the `Arc` is alive and one more strong count is sound.
    unsafe {
        Arc::increment_strong_count(ptr);
        Some(Arc::from_raw(ptr))
    }
}

/// Registers an instance compiled with the metering middleware, giving it
/// the store's remaining budget.
fn meter_instance<T>(
    data: &mut StoreData<T>,
    store: &mut StoreMut<'_>,
    instance: &wasmer::Instance,
) {
    let remaining = instance
        .exports
        .get_global(metering::FUEL_GLOBAL)
        .ok()
        .cloned();
    let exhausted = instance
        .exports
        .get_global(metering::EXHAUSTED_GLOBAL)
        .ok()
        .cloned();
    if let (Some(remaining), Some(exhausted)) = (remaining, exhausted) {
        let mut m = MeteredInstance {
            remaining,
            exhausted,
            last_set: 0,
        };
        let fuel = if data.depth > 0 {
            // Inside a call: the budget not yet spent by others.
            let mut spent = 0u64;
            for o in &data.metered {
                let (left, _) = points(store, o);
                spent = spent.saturating_add(o.last_set.saturating_sub(left));
            }
            data.fuel.saturating_sub(spent)
        } else {
            data.fuel
        };
        set_points(store, &mut m, fuel);
        data.metered.push(m);
    }
}

/// A function as wasmer accepts it in a table, global or funcref argument:
/// itself, or for a host function with a run-time signature, its wasm thunk
/// (see `thunk`).
fn funcref_to_wr<T>(
    data: &mut StoreData<T>,
    store: &mut StoreMut<'_>,
    f: &WrFunc,
) -> Result<wasmer::Function> {
    let Some(cell) = &f.thunk else {
        return Ok(f.func.clone());
    };
    if let Some(t) = cell.get() {
        return Ok(t.clone());
    }
    let ty = func_type_from_wr(&f.func.ty(store));
    let module =
        wasmer::Module::new(&*store, thunk::thunk_module(&ty)).map_err(thunk::thunk_error)?;
    let imports = wasmer::imports! { "" => { "f" => f.func.clone() } };
    let instance = wasmer::Instance::new(store, &module, &imports).map_err(thunk::thunk_error)?;
    if data.shared.fuel_enabled() {
        meter_instance(data, store, &instance);
    }
    let t = instance
        .exports
        .get_function("f")
        .map_err(thunk::thunk_error)?
        .clone();
    let _ = cell.set(t.clone());
    Ok(cell.get().cloned().unwrap_or(t))
}

/// Runs a wasmer call that panics on a funcref it cannot take (a host
/// function with a run-time signature re-exported by an instance, which the
/// backend cannot tell from a wasm function), turning the panic into
/// `Unsupported`. wasmer checks before it changes anything, so the store
/// stays consistent.
fn guard_panic<R>(f: impl FnOnce() -> R) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = anywasm_core::panic_message(&*p).unwrap_or("a wasmer panic");
        Error::unsupported(NAME, format!("this funcref ({msg})"))
    })
}

/// [`val_to_wr`] for values that may hold a host function with a run-time
/// signature.
fn val_to_wr_in<T>(
    data: &mut StoreData<T>,
    store: &mut StoreMut<'_>,
    v: &Val<Wasmer>,
) -> Result<wasmer::Value> {
    match v {
        Val::FuncRef(Some(f)) => Ok(wasmer::Value::FuncRef(Some(funcref_to_wr(
            data,
            store,
            f.raw(),
        )?))),
        v => Ok(val_to_wr(v)),
    }
}

fn set_points(store: &mut StoreMut<'_>, m: &mut MeteredInstance, fuel: u64) {
    let _ = m.remaining.set(store, wasmer::Value::I64(fuel as i64));
    let _ = m.exhausted.set(store, wasmer::Value::I32(0));
    m.last_set = fuel;
}

fn points(store: &mut StoreMut<'_>, m: &MeteredInstance) -> (u64, bool) {
    let remaining = match m.remaining.get(store) {
        wasmer::Value::I64(v) => v as u64,
        _ => 0,
    };
    let exhausted = matches!(m.exhausted.get(store), wasmer::Value::I32(1));
    (remaining, exhausted)
}

fn any_exhausted<T: Send + 'static>(data: &StoreData<T>, store: &mut StoreMut<'_>) -> bool {
    data.metered.iter().any(|m| points(store, m).1)
}

/// Charges the store for what its instances spent; returns whether one ran dry.
fn reconcile_fuel<T: Send + 'static>(data: &mut StoreData<T>, store: &mut StoreMut<'_>) -> bool {
    let mut spent = 0u64;
    let mut exhausted = false;
    for m in &mut data.metered {
        let (left, ex) = points(store, m);
        spent = spent.saturating_add(m.last_set.saturating_sub(left));
        exhausted |= ex;
        m.last_set = left;
    }
    data.fuel = if exhausted {
        0
    } else {
        data.fuel.saturating_sub(spent)
    };
    exhausted
}

impl Backend for Wasmer {
    const NAME: &'static str = NAME;
    const ENGINE_VERSION: &'static str = "7.3.0";

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

    fn capabilities() -> Capabilities {
        let mut c = Capabilities::new(NAME, Self::ENGINE_VERSION);
        c.jit = true;
        c.fuel = true;
        c.deadline = cfg!(unix);
        c.memory_limit = true;
        c.stack_limit = false;
        c.precompiled_modules = true;
        c.memory_slice = true;
        c.extern_ref = true;
        c.features = supported_features();
        c
    }

    fn engine_new(config: &Config) -> Result<WrEngine> {
        let mut compiler = wasmer::sys::Cranelift::new();
        compiler.opt_level(match config.get_opt_level() {
            OptLevel::None => wasmer::sys::CraneliftOptLevel::None,
            OptLevel::Speed => wasmer::sys::CraneliftOptLevel::Speed,
        });
        if config.fuel_enabled() {
            use wasmer::sys::CompilerConfig;
            compiler.push_middleware(Arc::new(metering::FuelMetering::default()));
        }
        let f = config.get_features();
        let mut features = wasmer::sys::Features::none();
        features
            .reference_types(f.reference_types)
            .simd(f.simd)
            .bulk_memory(f.bulk_memory)
            .multi_value(f.multi_value)
            .multi_memory(f.multi_memory)
            .relaxed_simd(f.relaxed_simd)
            .extended_const(f.extended_const)
            .exceptions(f.exceptions)
            .wide_arithmetic(f.wide_arithmetic);
        let mut engine: wasmer::Engine = wasmer::sys::EngineBuilder::new(compiler)
            .set_features(Some(features))
            .engine()
            .into();
        let target = engine.target().clone();
        engine.set_tunables(limits::LimitingTunables::new(
            wasmer::sys::BaseTunables::for_target(&target),
        ));
        Ok(WrEngine {
            engine,
            fuel: config.fuel_enabled(),
            interruptible: config.interruptible_enabled(),
            compile_lock: Arc::default(),
        })
    }

    fn module_new(engine: &WrEngine, bytes: &[u8]) -> Result<WrModule> {
        let deferred = anywasm_core::rewrite::defer_start(bytes);
        // Report the engine's own error for bytes the layer cannot rewrite.
        let (code, start) = match deferred {
            Ok(Some(d)) => {
                // The rewritten module exports the start function instead,
                // which hides a start function of the wrong type: validate
                // the module as given first.
                wasmer::Module::validate(&engine.engine, bytes).map_err(compile_err)?;
                (std::borrow::Cow::Owned(d.bytes), Some(d.export))
            }
            Ok(None) => (std::borrow::Cow::Borrowed(bytes), None),
            Err(_) => (std::borrow::Cow::Borrowed(bytes), None),
        };
        let _guard = engine.fuel.then(|| engine.compile_lock.lock());
        let module = wasmer::Module::new(&engine.engine, &*code).map_err(compile_err)?;
        Ok(WrModule { module, start })
    }

    fn module_validate(engine: &WrEngine, bytes: &[u8]) -> Result<()> {
        wasmer::Module::validate(&engine.engine, bytes).map_err(compile_err)
    }

    fn module_serialize(_engine: &WrEngine, module: &WrModule) -> Result<Vec<u8>> {
        let code = module.module.serialize().map_err(|e| Error::Backend {
            backend: NAME,
            message: e.to_string(),
        })?;
        // The start export's name travels with the code.
        let mut out = Vec::with_capacity(code.len() + 64);
        let name = module.start.as_deref().unwrap_or("");
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&code);
        Ok(out)
    }

    unsafe fn module_deserialize(engine: &WrEngine, bytes: &[u8]) -> Result<WrModule> {
        let bad = || Error::Precompiled("truncated wasmer blob".into());
        let len = u32::from_le_bytes(
            bytes
                .get(..4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        let name = bytes.get(4..4 + len).ok_or_else(bad)?;
        let code = &bytes[4 + len..];
        let start = (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned());
        // SAFETY: forwarded from the caller's contract.
        let module = unsafe { wasmer::Module::deserialize(&engine.engine, code) }
            .map_err(|e| Error::Precompiled(e.to_string()))?;
        Ok(WrModule { module, start })
    }

    fn store_new<T: Send + 'static>(
        engine: &WrEngine,
        data: T,
        shared: Arc<StoreShared>,
    ) -> WrStore<T> {
        let mut store = wasmer::Store::new(engine.engine.clone());
        let watch = if engine.interruptible {
            let w = Arc::new(Watch::new(shared.interrupt().clone(), store.interrupter()));
            shared.interrupt().set_wakeup(Box::new(watchdog::wake));
            Some(w)
        } else {
            None
        };
        let env = FunctionEnv::new(
            &mut store,
            StoreData {
                user: std::mem::ManuallyDrop::new(data),
                taken: false,
                shared,
                fuel: 0,
                metered: Vec::new(),
                watch,
                depth: 0,
                running: Vec::new(),
                host_error: None,
            },
        );
        WrStore { store, env }
    }

    fn store_into_data<T: Send + 'static>(mut store: WrStore<T>) -> T {
        // wasmer owns the data inside the store: move the user's part out and
        // mark it so that dropping the store does not drop it again.
        let data = store.env.as_mut(&mut store.store);
        data.taken = true;
        // SAFETY: `taken` is set, so `StoreData::drop` will not touch `user`,
        // and the store is dropped at the end of this function without any
        // other access to it.
        unsafe { std::mem::ManuallyDrop::take(&mut data.user) }
    }

    fn store_ctx<T: Send + 'static>(store: &WrStore<T>) -> Self::Ctx<'_, T> {
        store
    }

    fn store_ctx_mut<T: Send + 'static>(store: &mut WrStore<T>) -> Self::CtxMut<'_, T> {
        store
    }

    fn caller_ctx<'a, T: Send + 'static>(caller: &'a WrCaller<'_, T>) -> Self::Ctx<'a, T> {
        &*caller.env
    }

    fn caller_ctx_mut<'a, T: Send + 'static>(
        caller: &'a mut WrCaller<'_, T>,
    ) -> Self::CtxMut<'a, T> {
        &mut *caller.env
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
        data_mut(&mut **ctx)
    }

    fn store_data_mut<T: Send + 'static>(store: &mut WrStore<T>) -> &mut T {
        &mut store.env.as_mut(&mut store.store).user
    }

    fn caller_data_mut<'a, T: Send + 'static>(caller: &'a mut WrCaller<'_, T>) -> &'a mut T {
        data_mut(&mut *caller.env)
    }

    fn ctx_shared<'a, T: Send + 'static>(ctx: Self::Ctx<'a, T>) -> &'a Arc<StoreShared> {
        &ctx.data().shared
    }

    fn fuel_set<T: Send + 'static>(ctx: Self::CtxMut<'_, T>, fuel: u64) -> Result<()> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        data.fuel = fuel;
        if data.depth > 0 {
            for m in &mut data.metered {
                set_points(&mut store, m, fuel);
            }
        }
        Ok(())
    }

    fn fuel_get<T: Send + 'static>(ctx: Self::CtxMut<'_, T>) -> Result<u64> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        if data.depth == 0 {
            return Ok(data.fuel);
        }
        let mut spent = 0u64;
        for m in &data.metered {
            let (left, _) = points(&mut store, m);
            spent = spent.saturating_add(m.last_set.saturating_sub(left));
        }
        Ok(data.fuel.saturating_sub(spent))
    }

    fn instantiate<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        module: &WrModule,
        imports: &[Extern<Self>],
    ) -> Result<WrInstance> {
        let wr_imports: Vec<wasmer::Extern> = imports.iter().map(extern_to_wr).collect();
        let shared = ctx.data().shared.clone();
        let instance = {
            let mut env = ctx.env_mut();
            let mut store = env.as_store_mut();
            limits::creating_in(&shared, || {
                wasmer::Instance::new_by_index(&mut store, &module.module, &wr_imports)
                    .map(Arc::new)
                    .map_err(instantiation_err)
            })?
        };
        // Bind host functions to the instance that imports them.
        for e in imports {
            if let Extern::Func(f) = e
                && let Some(b) = &f.raw().binding
            {
                let _ = b.set(instance.clone());
            }
        }
        // Meter the new instance from the store's budget.
        if shared.fuel_enabled() {
            let mut env = ctx.env_mut();
            let (data, mut store) = env.data_and_store_mut();
            meter_instance(data, &mut store, &instance);
        }
        if let Some(start) = &module.start {
            let func = instance
                .exports
                .get_function(start)
                .map_err(|e| Error::Backend {
                    backend: NAME,
                    message: e.to_string(),
                })?
                .clone();
            host_call(ctx, Some(&instance), |store| {
                func.call(store, &[]).map(drop)
            })?;
        }
        Ok(instance)
    }

    fn instance_export<T: Send + 'static>(
        _ctx: Self::CtxMut<'_, T>,
        instance: &WrInstance,
        name: &str,
    ) -> Option<Extern<Self>> {
        let e = instance.exports.get_extern(name)?.clone();
        extern_from_wr(e, Some(instance))
    }

    fn caller_export<T: Send + 'static>(
        caller: &mut WrCaller<'_, T>,
        name: &str,
    ) -> Option<Extern<Self>> {
        let instance = match caller.binding.get() {
            Some(i) => i.clone(),
            None => running_instance(caller.env.data())?,
        };
        let e = instance.exports.get_extern(name)?.clone();
        extern_from_wr(e, Some(&instance))
    }

    fn func_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, func: &WrFunc) -> FuncType {
        func_type_from_wr(&func.func.ty(&ctx.store_ref()))
    }

    fn func_call<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        func: &WrFunc,
        params: &[Val<Self>],
        results: &mut [Val<Self>],
    ) -> Result<()> {
        let params: Vec<wasmer::Value> = {
            let mut env = ctx.env_mut();
            let (data, mut store) = env.data_and_store_mut();
            params
                .iter()
                .map(|v| val_to_wr_in(data, &mut store, v))
                .collect::<Result<_>>()?
        };
        let out = host_call(ctx, func.owner.as_ref(), |store| {
            func.func.call(store, &params)
        })?;
        for (slot, v) in results.iter_mut().zip(out.iter()) {
            *slot = val_from_wr(v);
        }
        Ok(())
    }

    fn func_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: FuncType,
        func: DynHostFn<Self, T>,
    ) -> WrFunc {
        let binding: Arc<OnceLock<WrInstance>> = Arc::default();
        let bound = binding.clone();
        let wr_ty = func_type_to_wr(&ty);
        let mut env = ctx.env_mut();
        let fenv = env.as_ref();
        let mut store = env.as_store_mut();
        let f = wasmer::Function::new_with_env(&mut store, &fenv, wr_ty, move |env, params| {
            let mut env = env;
            let args: Vec<Val<Wasmer>> = params.iter().map(val_from_wr).collect();
            let mut rets: Vec<Val<Wasmer>> =
                ty.results().iter().map(|t| Val::default_for(*t)).collect();
            let r = func(
                Caller::from_raw(WrCaller {
                    env: &mut env as &mut dyn ViewMut<T>,
                    binding: &bound,
                }),
                &args,
                &mut rets,
            );
            if let Err(e) = r {
                return Err(park_host_error(&mut env, e));
            }
            let mut out = Vec::with_capacity(rets.len());
            for (i, v) in rets.iter().enumerate() {
                if v.ty() != ty.results()[i] {
                    return Err(park_host_error(&mut env, result_type_error(&ty, i, v)));
                }
                let (data, mut store) = env.data_and_store_mut();
                match val_to_wr_in(data, &mut store, v) {
                    Ok(v) => out.push(v),
                    Err(e) => return Err(park_host_error(&mut env, e)),
                }
            }
            Ok(out)
        });
        WrFunc {
            func: f,
            owner: None,
            binding: Some(binding),
            thunk: Some(Arc::default()),
        }
    }

    fn memory_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: MemoryType,
    ) -> Result<wasmer::Memory> {
        if ty.shared {
            return Err(Error::unsupported(NAME, "shared memories (threads)"));
        }
        let wr = memory_type_to_wr(&ty)?;
        let shared = ctx.data().shared.clone();
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        limits::creating_in(&shared, || wasmer::Memory::new(&mut store, wr))
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    fn memory_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, memory: &wasmer::Memory) -> MemoryType {
        let store = ctx.store_ref();
        let mut ty = memory_type_from_wr(&memory.ty(&store));
        ty.minimum = memory.size(&store).0 as u64;
        ty
    }

    fn memory_data<'a, T: Send + 'static>(
        ctx: Self::Ctx<'a, T>,
        memory: &wasmer::Memory,
    ) -> &'a [u8] {
        let store = ctx.store_ref();
        let view = memory.view(&store);
        let (ptr, len) = (view.data_ptr(), view.data_size() as usize);
        if len == 0 {
            return &[];
        }
        // SAFETY: the memory's buffer stays where it is and keeps its size for
        // as long as the store is borrowed: growing it, running code or
        // dropping the store all need the store exclusively. Shared memories,
        // which other threads could write, cannot be created through the layer.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    fn memory_data_mut<'a, T: Send + 'static>(
        ctx: Self::CtxMut<'a, T>,
        memory: &wasmer::Memory,
    ) -> &'a mut [u8] {
        let (ptr, len) = {
            let env = ctx.env_mut();
            let view = memory.view(&env);
            (view.data_ptr(), view.data_size() as usize)
        };
        if len == 0 {
            return &mut [];
        }
        // SAFETY: as in `memory_data`, and the store is borrowed exclusively
        // for 'a, so this is the only reference to the buffer.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    fn memory_grow<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        memory: &wasmer::Memory,
        delta: u64,
    ) -> Result<u64> {
        let delta32 = u32::try_from(delta)
            .map_err(|_| Error::InvalidArgument(format!("cannot grow memory by {delta} pages")))?;
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        memory
            .grow(&mut store, wasmer::Pages(delta32))
            .map(|p| p.0 as u64)
            .map_err(|e| {
                Error::InvalidArgument(format!("cannot grow memory by {delta} pages: {e}"))
            })
    }

    fn table_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: TableType,
        init: Val<Self>,
    ) -> Result<wasmer::Table> {
        let wr = table_type_to_wr(&ty)?;
        let shared = ctx.data().shared.clone();
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let init = val_to_wr_in(data, &mut store, &init)?;
        guard_panic(|| limits::creating_in(&shared, || wasmer::Table::new(&mut store, wr, init)))?
            .map_err(map_runtime_err)
    }

    fn table_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, table: &wasmer::Table) -> TableType {
        let store = ctx.store_ref();
        let mut ty = table_type_from_wr(&table.ty(&store));
        ty.minimum = table.size(&store) as u64;
        ty
    }

    fn table_get<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &wasmer::Table,
        index: u64,
    ) -> Option<Val<Self>> {
        let index = u32::try_from(index).ok()?;
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        table.get(&mut store, index).map(|v| val_from_wr(&v))
    }

    fn table_set<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &wasmer::Table,
        index: u64,
        value: Val<Self>,
    ) -> Result<()> {
        let index = u32::try_from(index)
            .map_err(|_| Error::InvalidArgument(format!("table index {index}")))?;
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let value = val_to_wr_in(data, &mut store, &value)?;
        guard_panic(|| table.set(&mut store, index, value))?
            .map_err(|e| Error::InvalidArgument(e.message()))
    }

    fn table_grow<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        table: &wasmer::Table,
        delta: u64,
        init: Val<Self>,
    ) -> Result<u64> {
        let delta32 = u32::try_from(delta)
            .map_err(|_| Error::InvalidArgument(format!("cannot grow table by {delta}")))?;
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let init = val_to_wr_in(data, &mut store, &init)?;
        guard_panic(|| table.grow(&mut store, delta32, init))?
            .map(u64::from)
            .map_err(|e| {
                Error::InvalidArgument(format!("cannot grow table by {delta}: {}", e.message()))
            })
    }

    fn global_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        ty: GlobalType,
        value: Val<Self>,
    ) -> Result<wasmer::Global> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let v = val_to_wr_in(data, &mut store, &value)?;
        guard_panic(|| {
            if ty.is_mutable() {
                wasmer::Global::new_mut(&mut store, v)
            } else {
                wasmer::Global::new(&mut store, v)
            }
        })
    }

    fn global_ty<T: Send + 'static>(ctx: Self::Ctx<'_, T>, global: &wasmer::Global) -> GlobalType {
        global_type_from_wr(&global.ty(&ctx.store_ref()))
    }

    fn global_get<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        global: &wasmer::Global,
    ) -> Val<Self> {
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        val_from_wr(&global.get(&mut store))
    }

    fn global_set<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        global: &wasmer::Global,
        value: Val<Self>,
    ) -> Result<()> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let value = val_to_wr_in(data, &mut store, &value)?;
        guard_panic(|| global.set(&mut store, value))?
            .map_err(|e| Error::InvalidArgument(e.message()))
    }

    fn externref_new<T: Send + 'static>(
        ctx: Self::CtxMut<'_, T>,
        data: ExternData,
    ) -> Result<wasmer::ExternRef> {
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        Ok(wasmer::ExternRef::new(&mut store, data))
    }

    fn externref_data<'a, T: Send + 'static>(
        ctx: Self::Ctx<'a, T>,
        r: &wasmer::ExternRef,
    ) -> Option<&'a (dyn std::any::Any + Send + Sync)> {
        let store = ctx.store_ref();
        let data: &ExternData = r.downcast::<ExternData>(&store)?;
        let ptr: *const (dyn std::any::Any + Send + Sync) = &**data;
        // SAFETY: the host value lives in the store's object arena, which is
        // not moved or freed while the store is borrowed for 'a; `StoreRef` is
        // only a view of that borrow.
        Some(unsafe { &*ptr })
    }
}

fn data_mut<T: Send + 'static>(ctx: &mut dyn ViewMut<T>) -> &mut T {
    // `env_mut` gives a `FunctionEnvMut` borrowed from `ctx`; its data lives in
    // the store as long as `ctx` is borrowed.
    let mut env = ctx.env_mut();
    let ptr: *mut T = &mut *env.data_mut().user;
    // SAFETY: the data is owned by the store's object arena, which stays in
    // place while `ctx` is exclusively borrowed for 'a; no other reference to
    // it exists for that time.
    unsafe { &mut *ptr }
}

fn park_host_error<T: Send + 'static>(
    env: &mut FunctionEnvMut<'_, StoreData<T>>,
    e: Error,
) -> wasmer::RuntimeError {
    env.data_mut().host_error = Some(e);
    wasmer::RuntimeError::user(Box::new(HostErr))
}

fn take_host_error<T: Send + 'static>(
    data: &mut StoreData<T>,
    e: &wasmer::RuntimeError,
) -> Option<Error> {
    if e.is::<HostErr>() {
        return data.host_error.take();
    }
    None
}

impl<P, R> TypedSig<Wasmer> for (P, R)
where
    P: WasmTyList + NativeParams,
    R: WasmTyList + NativeResults,
{
    type Params = P;
    type Results = R;
    type Native = WrTyped<P, R>;

    fn typed<T: Send + 'static>(ctx: &dyn View<T>, func: &WrFunc) -> Result<Self::Native> {
        let store = ctx.store_ref();
        let native = func
            .func
            .typed::<P::Native, R::Native>(&store)
            .map_err(|e| Error::TypeMismatch {
                context: "typed function".into(),
                expected: "the requested signature".into(),
                found: e.to_string(),
            })?;
        Ok(WrTyped {
            native: Arc::new(native),
            owner: func.owner.clone(),
            _marker: std::marker::PhantomData,
        })
    }

    #[inline]
    fn call<T: Send + 'static>(
        native: &Self::Native,
        ctx: &mut dyn ViewMut<T>,
        params: P,
    ) -> Result<R> {
        let r = host_call(ctx, native.owner.as_ref(), |store| {
            P::call(&native.native, store, params)
        })?;
        Ok(R::from_native(r))
    }
}

/// wasmer's typed function with the instance that owns it.
pub struct WrTyped<P: NativeParams, R: NativeResults> {
    native: Arc<wasmer::TypedFunction<P::Native, R::Native>>,
    owner: Option<WrInstance>,
    _marker: std::marker::PhantomData<fn(P) -> R>,
}

impl<P: NativeParams, R: NativeResults> Clone for WrTyped<P, R> {
    fn clone(&self) -> Self {
        Self {
            native: self.native.clone(),
            owner: self.owner.clone(),
            _marker: std::marker::PhantomData,
        }
    }
}

/// Parameter tuples in the layer's form, mapped to wasmer's (a single
/// parameter is a bare value in wasmer, a 1-tuple in the layer).
pub trait NativeParams: Sized + Send + Sync + 'static {
    /// wasmer's parameter list.
    type Native: wasmer::WasmTypeList;
    /// Calls a typed function with these parameters.
    fn call<R: wasmer::WasmTypeList>(
        f: &wasmer::TypedFunction<Self::Native, R>,
        store: &mut StoreMut<'_>,
        params: Self,
    ) -> std::result::Result<R, wasmer::RuntimeError>;
}

/// Result tuples in the layer's form, mapped to wasmer's.
pub trait NativeResults: Sized + Send + Sync + 'static {
    /// wasmer's result list.
    type Native: wasmer::WasmTypeList;
    /// Converts from wasmer's form.
    fn from_native(n: Self::Native) -> Self;
    /// Converts into wasmer's form.
    fn into_native(self) -> Self::Native;
}

impl NativeParams for () {
    type Native = ();
    #[inline]
    fn call<R: wasmer::WasmTypeList>(
        f: &wasmer::TypedFunction<(), R>,
        store: &mut StoreMut<'_>,
        _params: (),
    ) -> std::result::Result<R, wasmer::RuntimeError> {
        f.call(store)
    }
}

impl NativeResults for () {
    type Native = ();
    #[inline]
    fn from_native(_: ()) -> Self {}
    #[inline]
    fn into_native(self) {}
}

impl<A0: wasmer::FromToNativeWasmType + Send + Sync + 'static> NativeParams for (A0,) {
    type Native = A0;
    #[inline]
    fn call<R: wasmer::WasmTypeList>(
        f: &wasmer::TypedFunction<A0, R>,
        store: &mut StoreMut<'_>,
        params: (A0,),
    ) -> std::result::Result<R, wasmer::RuntimeError> {
        f.call(store, params.0)
    }
}

impl<A0: wasmer::FromToNativeWasmType + Send + Sync + 'static> NativeResults for (A0,) {
    type Native = A0;
    #[inline]
    fn from_native(n: A0) -> Self {
        (n,)
    }
    #[inline]
    fn into_native(self) -> A0 {
        self.0
    }
}

macro_rules! native_tuples {
    ($($t:ident $i:tt),*) => {
        impl<$($t: wasmer::FromToNativeWasmType + Send + Sync + 'static),*> NativeParams for ($($t,)*) {
            type Native = ($($t,)*);
            #[inline]
            fn call<R: wasmer::WasmTypeList>(
                f: &wasmer::TypedFunction<($($t,)*), R>,
                store: &mut StoreMut<'_>,
                params: Self,
            ) -> std::result::Result<R, wasmer::RuntimeError> {
                f.call(store, $(params.$i),*)
            }
        }

        impl<$($t: wasmer::FromToNativeWasmType + Send + Sync + 'static),*> NativeResults for ($($t,)*) {
            type Native = ($($t,)*);
            #[inline]
            fn from_native(n: Self::Native) -> Self {
                n
            }
            #[inline]
            fn into_native(self) -> Self::Native {
                self
            }
        }
    };
}

// Arity 1 is above: wasmer writes a single value bare, not as a 1-tuple.
native_tuples!(A0 0, A1 1);
native_tuples!(A0 0, A1 1, A2 2);
native_tuples!(A0 0, A1 1, A2 2, A3 3);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13, A14 14);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13, A14 14, A15 15);

macro_rules! host_sig {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<R, $($t),*> HostSig<Wasmer> for (($($t,)*), R)
        where
            $($t: WasmTy + wasmer::FromToNativeWasmType,)*
            R: WasmTyList + NativeResults,
        {
            type Params = ($($t,)*);
            type Results = R;

            #[allow(non_snake_case)]
            fn wrap<T: Send + 'static, F>(ctx: &mut dyn ViewMut<T>, f: F) -> WrFunc
            where
                F: Fn(Caller<'_, Wasmer, T>, ($($t,)*)) -> Result<R> + Send + Sync + 'static,
            {
                let binding: Arc<OnceLock<WrInstance>> = Arc::default();
                let bound = binding.clone();
                let mut env = ctx.env_mut();
                let fenv = env.as_ref();
                let mut store = env.as_store_mut();
                let func = wasmer::Function::new_typed_with_env(
                    &mut store,
                    &fenv,
                    move |env: FunctionEnvMut<'_, StoreData<T>>, $($t: $t),*| -> std::result::Result<R::Native, wasmer::RuntimeError> {
                        let mut env = env;
                        let r = f(
                            Caller::from_raw(WrCaller {
                                env: &mut env as &mut dyn ViewMut<T>,
                                binding: &bound,
                            }),
                            ($($t,)*),
                        );
                        match r {
                            Ok(r) => Ok(r.into_native()),
                            Err(e) => Err(park_host_error(&mut env, e)),
                        }
                    },
                );
                WrFunc {
                    func,
                    owner: None,
                    binding: Some(binding),
                    thunk: None,
                }
            }
        }
    };
}

host_sig!(0;);
anywasm_core::for_each_tuple!(host_sig);
