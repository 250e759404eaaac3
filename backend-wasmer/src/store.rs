//! Stores: host data, the control globals shared by all instances, fuel.

use std::borrow::Cow;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anywasm_core::{BackendStore, Error, Result, StoreShared};
use wasmer::{AsStoreMut, AsStoreRef, FunctionEnv, FunctionEnvMut, StoreMut, StoreRef};

use crate::CallerOf;
use crate::Ctx;
use crate::CtxMut;
use crate::control;
use crate::engine::Compiler;
use crate::{NAME, Wasmer, WrEngine, WrInstance};

/// The layer's data in a wasmer store (inside its `FunctionEnv`).
pub struct StoreData<T> {
    /// Taken out by `store_into_data`; dropped by `Drop` otherwise.
    pub(crate) user: std::mem::ManuallyDrop<T>,
    taken: bool,
    /// What every call reads and keeps; the store handle holds it too.
    pub(crate) calls: Arc<CallState>,
    /// The engine's compiler (for the funcref thunks).
    pub(crate) compiler: Arc<Compiler>,
    /// The stop function every instance imports, for engines with
    /// deadlines (see `control`).
    pub(crate) stop: Option<wasmer::Function>,
}

/// The state of a store that every call from the host reads and keeps,
/// shared by the store handle ([`WrStore`]) and the store's data (for host
/// functions, which see only their environment). Reaching the data inside
/// wasmer's store is a handle lookup and a downcast through `dyn Any`;
/// keeping this beside it took two of those off every typed call.
pub struct CallState {
    pub(crate) shared: Arc<StoreShared>,
    /// The store's control globals, for engines with fuel or deadlines.
    pub(crate) control: Option<ControlGlobals>,
    /// Nesting of calls from the host into wasm.
    depth: AtomicU32,
    /// The innermost instance whose export the host is running, as
    /// `Arc::as_ptr` of the owner the caller holds (an `Arc` clone per call
    /// was two atomic operations), or null; each call keeps the value it
    /// replaced and puts it back before it returns or unwinds, while the
    /// caller's borrow keeps the instance alive (see
    /// `func::running_instance`).
    running: AtomicPtr<wasmer::Instance>,
}

// `depth` and `running` are atomics only so that `CallState` is `Sync` (the
// store moves between threads); they are read and written by the one thread
// that holds the store exclusively for the call, so `Relaxed` is enough.
impl CallState {
    pub(crate) fn new(shared: Arc<StoreShared>, control: Option<ControlGlobals>) -> Self {
        Self {
            shared,
            control,
            depth: AtomicU32::new(0),
            running: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Enters a call from the host: returns the depth and running instance
    /// to restore with [`CallState::leave`].
    pub(crate) fn enter(&self, owner: Option<&WrInstance>) -> (u32, *mut wasmer::Instance) {
        let depth = self.depth.load(Ordering::Relaxed);
        self.depth.store(depth + 1, Ordering::Relaxed);
        let running = self.running.load(Ordering::Relaxed);
        if let Some(o) = owner {
            self.running
                .store(Arc::as_ptr(o).cast_mut(), Ordering::Relaxed);
        }
        (depth, running)
    }

    /// Leaves a call entered with [`CallState::enter`].
    pub(crate) fn leave(&self, (depth, running): (u32, *mut wasmer::Instance)) {
        self.running.store(running, Ordering::Relaxed);
        self.depth.store(depth, Ordering::Relaxed);
    }

    /// Whether no call from the host is running.
    pub(crate) fn idle(&self) -> bool {
        self.depth.load(Ordering::Relaxed) == 0
    }

    /// The innermost running instance's pointer, or null.
    pub(crate) fn running(&self) -> *const wasmer::Instance {
        self.running.load(Ordering::Relaxed)
    }
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

/// The globals every instance of a controlled store imports (see `control`).
pub(crate) struct ControlGlobals {
    pub(crate) fuel: wasmer::Global,
    pub(crate) status: wasmer::Global,
    /// The status word's address, for this thread's own reads and resets.
    status_word: StatusPtr,
    /// The same address for other threads (the deadline timer, interrupt
    /// requests), cleared before the store is dropped.
    cell: Arc<StatusCell>,
}

impl ControlGlobals {
    /// The status word, read atomically (another thread may set it).
    pub(crate) fn status(&self) -> i32 {
        // SAFETY: the word lives in a host-created global of this store,
        // boxed at a fixed address for the store's life; `self` is store data,
        // reached only through a borrow of the store, which is therefore alive.
        unsafe { AtomicI32::from_ptr(self.status_word.0.as_ptr()) }.load(Ordering::SeqCst)
    }

    /// Sets the status word back to `RUNNING`.
    pub(crate) fn reset_status(&self) {
        // SAFETY: as in `status`.
        unsafe { AtomicI32::from_ptr(self.status_word.0.as_ptr()) }
            .store(control::RUNNING, Ordering::SeqCst);
    }
}

/// The address of a store's status word (an `i32` in the first bytes of a
/// `VMGlobalDefinition`, which wasmer keeps boxed at a fixed address for the
/// global's life).
#[derive(Clone, Copy)]
struct StatusPtr(NonNull<i32>);

// SAFETY: the pointer is only dereferenced through atomic operations, by
// the store's own thread and, under `StatusCell`'s lock, by threads that
// ask the store to stop; `StatusCell::clear` runs before the global is
// freed.
unsafe impl Send for StatusPtr {}
// SAFETY: as for `Send`: shared access reads or writes the word only with
// atomic operations, and only while the store (which owns it) is alive.
unsafe impl Sync for StatusPtr {}

/// The status word as other threads reach it.
pub(crate) struct StatusCell {
    word: Mutex<Option<StatusPtr>>,
}

impl StatusCell {
    /// Asks the code running in the store to stop at its next check.
    pub(crate) fn stop(&self) {
        let word = self.word.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = *word {
            // SAFETY: `clear` has not run (the store is alive, as its global
            // is), and the lock keeps it from running now.
            unsafe { AtomicI32::from_ptr(p.0.as_ptr()) }.store(control::STOP, Ordering::SeqCst);
        }
    }

    fn clear(&self) {
        *self.word.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Creates the control globals of a store and finds the status word's address.
fn control_globals(store: &mut wasmer::Store) -> Result<ControlGlobals> {
    let fuel = wasmer::Global::new_mut(&mut *store, wasmer::Value::I64(0));
    let status = wasmer::Global::new_mut(&mut *store, wasmer::Value::I32(control::RUNNING));
    // Only the `sys` runtime is built, so the extern is a `sys` one.
    let vm = wasmer::Extern::Global(status.clone())
        .to_vm_extern()
        .unwrap_sys();
    let wasmer::sys::vm::VMExtern::Global(handle) = vm else {
        return Err(Error::Backend {
            backend: NAME,
            message: "the status global is not a sys global".into(),
        });
    };
    let objects = store.objects_mut().as_sys();
    let definition = handle.get(objects).vmglobal();
    let word = StatusPtr(definition.cast::<i32>());
    Ok(ControlGlobals {
        fuel,
        status,
        status_word: word,
        cell: Arc::new(StatusCell {
            word: Mutex::new(Some(word)),
        }),
    })
}

/// A wasmer store with the layer's data.
pub struct WrStore<T: Send + 'static> {
    pub(crate) store: wasmer::Store,
    pub(crate) env: FunctionEnv<StoreData<T>>,
    /// The same as `StoreData::calls`, kept here too (see [`CallState`]).
    calls: Arc<CallState>,
}

impl<T: Send + 'static> Drop for WrStore<T> {
    fn drop(&mut self) {
        // Other threads must stop writing the status word before its global
        // goes with the store.
        if let Some(c) = &self.calls.control {
            c.cell.clear();
        }
    }
}

// SAFETY: wasmer 6 stores were `Send`; 7.x lost it only because the type of
// the optional `on_called` handler in `StoreInner` has no `Send` bound
// (wasmerio/wasmer#7001), while its only public setter
// (`StoreMut::on_called`) requires `Send + Sync`, and so does every public
// way of putting host code or data into a store (`Function::new*`,
// `FunctionEnv::new`, `ExternRef::new`) in wasmer 7.3 without its
// `experimental-async` feature. Everything the layer puts in the store is
// `Send + Sync` or owned by it, and the user data is `Send` by the bound.
// Code outside the layer reaches the engine's store only through unsafe
// functions (`Store::raw_mut`, `StoreContextMut::into_raw`,
// `Caller::raw_mut`) whose contracts forbid non-`Send` contents. Re-check
// this when wasmer is upgraded; enabling its async feature fails the build
// (`no_async_host_functions` below).
unsafe impl<T: Send + 'static> Send for WrStore<T> {}

/// Fails the build when wasmer's `experimental-async` feature is on, whose
/// `Function::new_async` accepts host closures that are not `Send` and so
/// would make the `unsafe impl Send` above unsound. Without the feature,
/// `wasmer::Function::new_async` names this trait's function; with it, it
/// names wasmer's own (inherent functions come first), whose type differs.
mod no_async_host_functions {
    pub struct NotInWasmer;

    pub trait NewAsync {
        fn new_async() -> NotInWasmer {
            NotInWasmer
        }
    }

    impl NewAsync for wasmer::Function {}

    const _: fn() -> NotInWasmer = <wasmer::Function>::new_async;
}

/// A shared view of a store, from a [`WrStore`] or a host function's environment.
pub trait View<T: Send + 'static> {
    /// wasmer's store reference.
    fn store_ref(&self) -> StoreRef<'_>;
    /// The store data.
    fn data(&self) -> &StoreData<T>;
    /// The store's shared state (faster than `data().calls.shared` where it
    /// can be).
    fn shared(&self) -> &Arc<StoreShared> {
        &self.data().calls.shared
    }
}

/// An exclusive view of a store.
pub trait ViewMut<T: Send + 'static>: View<T> {
    /// The store and its data, as a host function sees them.
    fn env_mut(&mut self) -> FunctionEnvMut<'_, StoreData<T>>;
    /// The call state and wasmer's store, for a call into wasm. From a store
    /// handle the state is borrowed from beside wasmer's store; from a host
    /// function's environment it is a clone, so that no reference into the
    /// store's data is held while wasm (and its host functions) run.
    fn call_parts(&mut self) -> (Cow<'_, Arc<CallState>>, StoreMut<'_>);
}

impl<T: Send + 'static> View<T> for WrStore<T> {
    fn store_ref(&self) -> StoreRef<'_> {
        self.store.as_store_ref()
    }
    fn data(&self) -> &StoreData<T> {
        self.env.as_ref(&self.store)
    }
    fn shared(&self) -> &Arc<StoreShared> {
        &self.calls.shared
    }
}

impl<T: Send + 'static> ViewMut<T> for WrStore<T> {
    fn env_mut(&mut self) -> FunctionEnvMut<'_, StoreData<T>> {
        self.env.clone().into_mut(&mut self.store)
    }
    fn call_parts(&mut self) -> (Cow<'_, Arc<CallState>>, StoreMut<'_>) {
        (Cow::Borrowed(&self.calls), self.store.as_store_mut())
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
    fn call_parts(&mut self) -> (Cow<'_, Arc<CallState>>, StoreMut<'_>) {
        let (data, store) = self.data_and_store_mut();
        (Cow::Owned(data.calls.clone()), store)
    }
}

pub(crate) fn data_mut<T: Send + 'static>(ctx: &mut dyn ViewMut<T>) -> &mut T {
    // `env_mut` gives a `FunctionEnvMut` borrowed from `ctx`; its data lives in
    // the store as long as `ctx` is borrowed.
    let mut env = ctx.env_mut();
    let ptr: *mut T = &mut *env.data_mut().user;
    // SAFETY: the data is owned by the store's object arena, which stays in
    // place while `ctx` is exclusively borrowed for 'a; no other reference to
    // it exists for that time.
    unsafe { &mut *ptr }
}

/// The stop function (see `control`): compiled code calls it where it
/// finds the status word set. It fails with the trap of a deadline passed
/// or an interrupt; yields an async call that should yield to its
/// executor; and goes on otherwise (a stop asked for before the call began,
/// or a yield outside an async call).
fn at_stop<T: Send + 'static>(
    mut env: FunctionEnvMut<'_, StoreData<T>>,
) -> std::result::Result<(), wasmer::RuntimeError> {
    let calls = env.data().calls.clone();
    if let Some(c) = &calls.control {
        c.reset_status();
    }
    let interrupt = calls.shared.interrupt();
    let stopped = match interrupt.check() {
        Some(code) => Err(Error::trap(NAME, code, "")),
        #[cfg(feature = "async")]
        None if interrupt.take_yield_due() => crate::asynchronous::yield_now(),
        None => Ok(()),
    };
    stopped.map_err(|e| crate::func::park_host_error(&mut env, e, false))
}

/// Reads the store's fuel global.
pub(crate) fn fuel_of(store: &mut StoreMut<'_>, c: &ControlGlobals) -> u64 {
    match c.fuel.get(store) {
        wasmer::Value::I64(v) => v as u64,
        _ => 0,
    }
}

impl BackendStore for Wasmer {
    fn store_new<T: Send + 'static>(
        engine: &WrEngine,
        data: T,
        shared: Arc<StoreShared>,
    ) -> WrStore<T> {
        let mut store = wasmer::Store::new(engine.engine.clone());
        // Creating two globals in a fresh store cannot fail but on a wasmer
        // that is not `sys`, which this crate does not build.
        let control = engine
            .controlled()
            .then(|| control_globals(&mut store).ok())
            .flatten();
        if engine.interruptible
            && let Some(c) = &control
        {
            let cell = c.cell.clone();
            shared.interrupt().set_hook(Box::new(move || cell.stop()));
        }
        let calls = Arc::new(CallState::new(shared, control));
        let env = FunctionEnv::new(
            &mut store,
            StoreData {
                user: std::mem::ManuallyDrop::new(data),
                taken: false,
                calls: calls.clone(),
                compiler: engine.compiler.clone(),
                stop: None,
            },
        );
        if engine.interruptible && calls.control.is_some() {
            let stop = wasmer::Function::new_typed_with_env(&mut store, &env, at_stop::<T>);
            env.as_mut(&mut store).stop = Some(stop);
        }
        WrStore { store, env, calls }
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

    fn store_ctx<T: Send + 'static>(store: &WrStore<T>) -> Ctx<'_, T> {
        store
    }

    fn store_ctx_mut<T: Send + 'static>(store: &mut WrStore<T>) -> CtxMut<'_, T> {
        store
    }

    fn caller_ctx<'a, T: Send + 'static>(caller: &'a CallerOf<'_, T>) -> Ctx<'a, T> {
        &*caller.env
    }

    fn caller_ctx_mut<'a, T: Send + 'static>(caller: &'a mut CallerOf<'_, T>) -> CtxMut<'a, T> {
        &mut *caller.env
    }

    fn ctx_reborrow<'a, T: Send + 'static>(ctx: &'a Ctx<'_, T>) -> Ctx<'a, T> {
        *ctx
    }

    fn ctx_mut_reborrow<'a, T: Send + 'static>(ctx: &'a mut CtxMut<'_, T>) -> CtxMut<'a, T> {
        &mut **ctx
    }

    fn ctx_mut_shared<'a, T: Send + 'static>(ctx: &'a CtxMut<'_, T>) -> Ctx<'a, T> {
        &**ctx
    }

    fn ctx_data<'a, T: Send + 'static>(ctx: Ctx<'a, T>) -> &'a T {
        &ctx.data().user
    }

    fn ctx_data_mut<'a, T: Send + 'static>(ctx: &'a mut CtxMut<'_, T>) -> &'a mut T {
        data_mut(&mut **ctx)
    }

    fn store_data_mut<T: Send + 'static>(store: &mut WrStore<T>) -> &mut T {
        &mut store.env.as_mut(&mut store.store).user
    }

    fn caller_data_mut<'a, T: Send + 'static>(caller: &'a mut CallerOf<'_, T>) -> &'a mut T {
        data_mut(&mut *caller.env)
    }

    fn ctx_shared<'a, T: Send + 'static>(ctx: Ctx<'a, T>) -> &'a Arc<StoreShared> {
        ctx.shared()
    }

    fn fuel_set<T: Send + 'static>(ctx: CtxMut<'_, T>, fuel: u64) -> Result<()> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let Some(c) = &data.calls.control else {
            return Err(Error::unsupported(NAME, "fuel in an engine without fuel"));
        };
        c.fuel
            .set(&mut store, wasmer::Value::I64(fuel as i64))
            .map_err(|e| Error::Backend {
                backend: NAME,
                message: e.message(),
            })
    }

    fn fuel_get<T: Send + 'static>(ctx: CtxMut<'_, T>) -> Result<u64> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        Ok(data
            .calls
            .control
            .as_ref()
            .map_or(0, |c| fuel_of(&mut store, c)))
    }
}
