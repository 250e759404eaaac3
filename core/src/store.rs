//! Stores, store contexts, per-store limits, deadlines and interruption.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::engine::{Engine, EngineShared};
use crate::error::{Error, Result};
pub use crate::interrupt::{InterruptHandle, InterruptState};

/// Limits a store places on what its instances may allocate.
///
/// They apply on top of the engine-wide
/// [`Config::max_memory_pages`](crate::Config::max_memory_pages): the
/// smaller limit wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreLimits {
    /// Maximum size of each linear memory, in 64 KiB pages.
    pub max_memory_pages: Option<u64>,
    /// Maximum number of elements of each table.
    pub max_table_elements: Option<u64>,
    /// Maximum number of instances in the store.
    pub max_instances: Option<u64>,
}

impl StoreLimits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the per-memory cap in 64 KiB pages.
    pub fn memory_pages(mut self, pages: u64) -> Self {
        self.max_memory_pages = Some(pages);
        self
    }

    /// Sets the per-table element cap.
    pub fn table_elements(mut self, n: u64) -> Self {
        self.max_table_elements = Some(n);
        self
    }

    /// Sets the instance cap.
    pub fn instances(mut self, n: u64) -> Self {
        self.max_instances = Some(n);
        self
    }
}

/// The identity of a store. Every handle (function, memory, table, global,
/// instance, `externref`) records the store that owns it, and the layer
/// refuses a handle used with any other store with
/// [`Error::StoreMismatch`] before the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId(std::num::NonZeroU64);

impl StoreId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // 2^64 stores cannot be created in the life of a process.
        Self(std::num::NonZeroU64::new(n).unwrap_or(std::num::NonZeroU64::MIN))
    }

    /// The number behind the id (unique in the process).
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

/// Refuses a handle owned by `owner` in the store `ctx`.
#[inline]
pub(crate) fn check_store(
    owner: StoreId,
    ctx: StoreId,
    item: impl FnOnce() -> String,
) -> Result<()> {
    if owner == ctx {
        Ok(())
    } else {
        Err(Error::StoreMismatch { item: item() })
    }
}

/// Per-store state the layer keeps next to the engine's store: limits, the
/// deadline and interrupt flag, and counters. Backends receive it in
/// [`BackendStore::store_new`](crate::backend::BackendStore::store_new) and consult it while code runs.
pub struct StoreShared {
    id: StoreId,
    engine: Arc<EngineShared>,
    interrupt: Arc<InterruptState>,
    max_memory_pages: AtomicU64,
    max_table_elements: AtomicU64,
    max_instances: AtomicU64,
    calls: AtomicU64,
    fuel_consumed: AtomicU64,
    fuel_granted: AtomicU64,
    instances: AtomicU64,
    fuel_enabled: bool,
    interruptible: bool,
    limit_hit: Mutex<Option<String>>,
    host_error: Mutex<Option<Error>>,
    /// The exception that ended the last call uncaught (an
    /// `Exception<B>`; this type is not generic over the backend).
    exception: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    /// The exception a host function is throwing (see `Caller::throw`).
    throw: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    budget: std::sync::OnceLock<Arc<MemoryBudget>>,
    /// What this store's memories took from the budget.
    reserved: AtomicU64,
    /// What the growth in progress took from the budget: given back if the
    /// engine then fails it (see [`StoreShared::memory_grow_failed`]).
    pending_growth: AtomicU64,
    /// `ASYNC_REQUIRED` once the store has an async host function, plus
    /// `ASYNC_RUNNING` while an async call runs: either refuses synchronous
    /// calls (see `crate::asynchronous`).
    #[cfg(feature = "async")]
    async_state: std::sync::atomic::AtomicU8,
}

impl std::fmt::Debug for StoreShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreShared")
            .field("max_memory_pages", &self.max_memory_pages())
            .field("calls", &self.calls.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

const NO_LIMIT: u64 = u64::MAX;

#[cfg(feature = "async")]
const ASYNC_REQUIRED: u8 = 1;
#[cfg(feature = "async")]
const ASYNC_RUNNING: u8 = 2;

/// See [`StoreShared::async_call_running`].
#[cfg(feature = "async")]
pub(crate) struct AsyncCallGuard {
    shared: Arc<StoreShared>,
    outermost: bool,
}

#[cfg(feature = "async")]
impl Drop for AsyncCallGuard {
    fn drop(&mut self) {
        if self.outermost {
            self.shared.interrupt.async_call_yields(false);
            self.shared
                .async_state
                .fetch_and(!ASYNC_RUNNING, Ordering::Relaxed);
        }
    }
}

impl StoreShared {
    pub(crate) fn new(engine: &Engine<impl Backend>) -> Self {
        let config = engine.config();
        Self {
            id: StoreId::next(),
            engine: engine.shared().clone(),
            interrupt: Arc::new(InterruptState::new()),
            max_memory_pages: AtomicU64::new(config.get_max_memory_pages().unwrap_or(NO_LIMIT)),
            max_table_elements: AtomicU64::new(NO_LIMIT),
            max_instances: AtomicU64::new(NO_LIMIT),
            calls: AtomicU64::new(0),
            fuel_consumed: AtomicU64::new(0),
            fuel_granted: AtomicU64::new(0),
            instances: AtomicU64::new(0),
            fuel_enabled: config.fuel_enabled(),
            interruptible: config.interruptible_enabled(),
            limit_hit: Mutex::new(None),
            host_error: Mutex::new(None),
            exception: Mutex::new(None),
            throw: Mutex::new(None),
            budget: std::sync::OnceLock::new(),
            reserved: AtomicU64::new(0),
            pending_growth: AtomicU64::new(0),
            #[cfg(feature = "async")]
            async_state: std::sync::atomic::AtomicU8::new(0),
        }
    }

    /// The store's identity.
    #[inline]
    pub fn id(&self) -> StoreId {
        self.id
    }

    /// Whether a module of `engine` may run in this store.
    pub(crate) fn same_engine(&self, engine: &Arc<EngineShared>) -> bool {
        Arc::ptr_eq(&self.engine, engine)
    }

    /// For backends: keeps the error a host function returned while the
    /// engine unwinds the guest, for engines that cannot carry an arbitrary
    /// error across their frames. Take it with [`take_host_error`](Self::take_host_error)
    /// where the call returns.
    pub fn park_host_error(&self, error: Error) {
        let mut slot = self.host_error.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(error);
    }

    /// For backends: keeps the exception that ended a call uncaught, for
    /// [`Store::take_exception`] (`None`: one the engine cannot describe).
    pub fn set_exception<B: Backend>(&self, exception: Option<crate::Exception<B>>) {
        let mut slot = self.exception.lock().unwrap_or_else(|p| p.into_inner());
        *slot = exception.map(|e| Box::new(e) as Box<dyn std::any::Any + Send>);
    }

    pub(crate) fn park_throw<B: Backend>(&self, exception: crate::Exception<B>) {
        let mut slot = self.throw.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(Box::new(exception));
    }

    /// For backends: the exception a host function that returned
    /// [`Error::Thrown`] is throwing.
    pub fn take_throw<B: Backend>(&self) -> Option<crate::Exception<B>> {
        let mut slot = self.throw.lock().unwrap_or_else(|p| p.into_inner());
        slot.take()?.downcast().ok().map(|b| *b)
    }

    pub(crate) fn take_exception<B: Backend>(&self) -> Option<crate::Exception<B>> {
        let mut slot = self.exception.lock().unwrap_or_else(|p| p.into_inner());
        slot.take()?.downcast().ok().map(|b| *b)
    }

    /// For backends: the error parked by [`park_host_error`](Self::park_host_error).
    pub fn take_host_error(&self) -> Option<Error> {
        self.host_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// For the layer: stops a call before it starts if an interrupt is
    /// pending or the deadline has passed.
    #[inline]
    pub(crate) fn entry_check(&self, backend: &'static str) -> Result<()> {
        #[cfg(feature = "async")]
        if self.async_state.load(Ordering::Relaxed) != 0 {
            return Err(self.sync_call_refused());
        }
        self.interrupt_check(backend)
    }

    #[cfg(feature = "async")]
    #[cold]
    fn sync_call_refused(&self) -> Error {
        let state = self.async_state.load(Ordering::Relaxed);
        Error::InvalidArgument(if state & ASYNC_REQUIRED != 0 {
            "this store has async host functions: call into it with `call_async` and \
             instantiate with `new_async`/`instantiate_async`"
                .into()
        } else {
            "a synchronous call or instantiation while an async call runs in the same store \
             (from a host function)"
                .into()
        })
    }

    /// Marks the store as async (it has an async host function).
    #[cfg(feature = "async")]
    pub(crate) fn require_async(&self) {
        self.async_state.fetch_or(ASYNC_REQUIRED, Ordering::Relaxed);
    }

    /// Marks an async call as running until the guard is dropped (the call
    /// completes or its future is dropped).
    #[cfg(feature = "async")]
    pub(crate) fn async_call_running(self: &Arc<Self>) -> AsyncCallGuard {
        let before = self.async_state.fetch_or(ASYNC_RUNNING, Ordering::Relaxed);
        let outermost = before & ASYNC_RUNNING == 0;
        if outermost {
            self.interrupt.async_call_yields(true);
        }
        AsyncCallGuard {
            shared: self.clone(),
            outermost,
        }
    }

    /// Whether a deadline or interrupt stops a call from starting.
    #[inline]
    pub(crate) fn interrupt_check(&self, backend: &'static str) -> Result<()> {
        if self.interruptible
            && let Some(code) = self.interrupt.check()
        {
            return Err(Error::trap(backend, code, ""));
        }
        Ok(())
    }

    /// The interrupt and deadline state.
    pub fn interrupt(&self) -> &Arc<InterruptState> {
        &self.interrupt
    }

    /// Whether the engine meters fuel.
    pub fn fuel_enabled(&self) -> bool {
        self.fuel_enabled
    }

    /// Whether the engine supports deadlines and interrupts.
    pub fn interruptible(&self) -> bool {
        self.interruptible
    }

    /// The effective per-memory cap in pages (engine and store limits combined).
    pub fn max_memory_pages(&self) -> Option<u64> {
        match self.max_memory_pages.load(Ordering::Relaxed) {
            NO_LIMIT => None,
            n => Some(n),
        }
    }

    /// Whether a memory of `desired_bytes` is within the per-memory limit
    /// (recording the refusal if not). Reserves nothing.
    pub(crate) fn memory_within_limit(&self, desired_bytes: u64) -> bool {
        match self.max_memory_pages() {
            None => true,
            Some(pages) => {
                let ok = desired_bytes <= pages.saturating_mul(65536);
                if !ok {
                    self.note_limit_hit(format!(
                        "a memory of {desired_bytes} bytes exceeds the store's limit of {pages} pages ({} bytes)",
                        pages.saturating_mul(65536)
                    ));
                }
                ok
            }
        }
    }

    /// For backends' resource limiters: may a memory of `current_bytes`
    /// grow (or be created, from 0) to `desired_bytes`? Checks the
    /// per-memory limit and takes the growth from the store's
    /// [`MemoryBudget`], if it has one. Records a refusal so a failed
    /// instantiation can say why.
    ///
    /// An engine that fails the growth after this said yes (past the
    /// memory's declared maximum, out of fuel, out of host memory) must call
    /// [`StoreShared::memory_grow_failed`], or the budget keeps what the
    /// failed growth took until the store is dropped.
    pub fn memory_may_grow(&self, current_bytes: u64, desired_bytes: u64) -> bool {
        self.pending_growth.store(0, Ordering::Relaxed);
        if !self.memory_within_limit(desired_bytes) {
            return false;
        }
        let Some(budget) = self.budget.get() else {
            return true;
        };
        let delta = desired_bytes.saturating_sub(current_bytes);
        if budget.try_reserve(delta) {
            self.reserved.fetch_add(delta, Ordering::Relaxed);
            self.pending_growth.store(delta, Ordering::Relaxed);
            true
        } else {
            self.note_limit_hit(format!(
                "{} {} more bytes do not fit in the budget of {} bytes ({} in use)",
                MemoryBudget::REFUSAL,
                delta,
                budget.limit(),
                budget.used()
            ));
            false
        }
    }

    /// For backends' resource limiters: the engine failed the growth that
    /// [`StoreShared::memory_may_grow`] last allowed; what it took from the
    /// budget goes back. (Growth in a store is never concurrent: the engine
    /// asks, then grows or fails, under the store's exclusive borrow.)
    pub fn memory_grow_failed(&self) {
        let delta = self.pending_growth.swap(0, Ordering::Relaxed);
        if delta == 0 {
            return;
        }
        if let Some(budget) = self.budget.get() {
            budget.release(delta);
            self.reserved.fetch_sub(delta, Ordering::Relaxed);
        }
    }

    /// The per-table element cap.
    pub fn max_table_elements(&self) -> Option<u64> {
        match self.max_table_elements.load(Ordering::Relaxed) {
            NO_LIMIT => None,
            n => Some(n),
        }
    }

    /// For backends' resource limiters: may a table grow to `desired` elements?
    pub fn table_may_grow(&self, desired: u64) -> bool {
        match self.max_table_elements() {
            None => true,
            Some(max) => {
                let ok = desired <= max;
                if !ok {
                    self.note_limit_hit(format!(
                        "a table of {desired} elements exceeds the store's limit of {max}"
                    ));
                }
                ok
            }
        }
    }

    /// For backends: remembers that a limit refused an allocation.
    pub fn note_limit_hit(&self, what: String) {
        if let Ok(mut slot) = self.limit_hit.lock() {
            *slot = Some(what);
        }
    }

    /// For backends and the layer: takes the last recorded limit refusal.
    pub fn take_limit_hit(&self) -> Option<String> {
        self.limit_hit.lock().ok().and_then(|mut s| s.take())
    }

    /// Counts one call from the host into wasm. Only the store's own thread
    /// writes this counter, so it avoids an atomic read-modify-write.
    #[inline]
    pub fn count_call(&self) {
        self.calls
            .store(self.calls.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Refuses an instantiation the instance limit does not allow.
    pub(crate) fn check_instance_limit(&self) -> Result<()> {
        let n = self.instances.load(Ordering::Relaxed);
        let max = self.max_instances.load(Ordering::Relaxed);
        if n >= max {
            return Err(Error::Limit(format!(
                "the store already holds its maximum of {max} instances"
            )));
        }
        Ok(())
    }

    /// Counts an instance that was created (a failed instantiation is not counted).
    pub(crate) fn instance_created(&self) {
        self.instances.store(
            self.instances.load(Ordering::Relaxed) + 1,
            Ordering::Relaxed,
        );
        self.engine.instance_created();
    }

    pub(crate) fn record_fuel(&self, granted_delta: i128, remaining: u64) {
        let granted = (self.fuel_granted.load(Ordering::Relaxed) as i128 + granted_delta).max(0);
        self.fuel_granted.store(granted as u64, Ordering::Relaxed);
        let _ = remaining;
    }

    pub(crate) fn update_fuel_consumed(&self, remaining: u64) {
        let granted = self.fuel_granted.load(Ordering::Relaxed);
        self.fuel_consumed
            .store(granted.saturating_sub(remaining), Ordering::Relaxed);
    }

    /// Calls, fuel consumed and instances of this store so far.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            calls: self.calls.load(Ordering::Relaxed),
            fuel_consumed: self.fuel_consumed.load(Ordering::Relaxed),
            instances: self.instances.load(Ordering::Relaxed),
        }
    }

    fn set_limits(&self, engine_max_pages: Option<u64>, limits: StoreLimits) {
        let pages = match (engine_max_pages, limits.max_memory_pages) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(NO_LIMIT),
        };
        self.max_memory_pages.store(pages, Ordering::Relaxed);
        self.max_table_elements.store(
            limits.max_table_elements.unwrap_or(NO_LIMIT),
            Ordering::Relaxed,
        );
        self.max_instances
            .store(limits.max_instances.unwrap_or(NO_LIMIT), Ordering::Relaxed);
    }
}

impl Drop for StoreShared {
    fn drop(&mut self) {
        self.engine.retire_store(&self.stats());
        if let Some(budget) = self.budget.get() {
            budget.release(self.reserved.load(Ordering::Relaxed));
        }
    }
}

/// Linear memory that several stores share out, in bytes: each store given
/// the budget ([`Store::set_memory_budget`]) takes what its memories grow by
/// and gives it back when it is dropped. Growth past the budget fails the
/// way any memory limit does (`memory.grow` returns -1 in wasm, the host
/// gets [`Error::Limit`], an instantiation fails with it).
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// How a refusal's message (see [`Store::take_limit_refusal`]) starts.
    pub const REFUSAL: &'static str = "memory budget:";

    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            limit: bytes,
            used: AtomicU64::new(0),
        })
    }

    /// The budget.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// What the stores hold now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn try_reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// Counters of one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreStats {
    /// Calls from the host into wasm.
    pub calls: u64,
    /// Fuel consumed (when fuel metering is on).
    pub fuel_consumed: u64,
    /// Instances created.
    pub instances: u64,
}

/// A store: owns instances, host objects and the host's data `T`.
///
/// All wasm state lives in a store; handles such as [`Func`](crate::Func) or
/// [`Memory`](crate::Memory) are only valid with the store that created them.
/// Dropping the store frees everything in it.
pub struct Store<B: Backend, T: Send + 'static = ()> {
    raw: B::Store<T>,
    engine: Engine<B>,
    shared: Arc<StoreShared>,
    limits: StoreLimits,
}

impl<B: Backend, T: Send + 'static> std::fmt::Debug for Store<B, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &B::NAME)
            .field("limits", &self.limits)
            .field("stats", &self.shared.stats())
            .finish_non_exhaustive()
    }
}

impl<B: Backend, T: Send + 'static> Store<B, T> {
    /// Creates a store for `engine` holding `data`.
    pub fn new(engine: &Engine<B>, data: T) -> Self {
        let shared = Arc::new(StoreShared::new(engine));
        engine.shared().register_store(&shared);
        let raw = B::store_new(engine.raw(), data, shared.clone());
        Self {
            raw,
            engine: engine.clone(),
            shared,
            limits: StoreLimits::default(),
        }
    }

    /// The engine this store belongs to.
    pub fn engine(&self) -> &Engine<B> {
        &self.engine
    }

    /// The host data.
    pub fn data(&self) -> &T {
        B::ctx_data(B::store_ctx(&self.raw))
    }

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        B::store_data_mut(&mut self.raw)
    }

    /// Consumes the store and returns the host data.
    pub fn into_data(self) -> T {
        B::store_into_data(self.raw)
    }

    /// Applies limits to this store (see [`StoreLimits`]). Memories that
    /// already exist keep their size but cannot grow past the new limit.
    pub fn set_limits(&mut self, limits: StoreLimits) {
        self.limits = limits;
        self.shared
            .set_limits(self.engine.config().get_max_memory_pages(), limits);
    }

    /// Makes this store's memories take their size from `budget`, shared
    /// with other stores (see [`MemoryBudget`]). Only the first budget given
    /// to a store counts; set it before creating memories.
    pub fn set_memory_budget(&mut self, budget: Arc<MemoryBudget>) -> Result<()> {
        self.shared
            .budget
            .set(budget)
            .map_err(|_| Error::InvalidArgument("the store already has a memory budget".into()))
    }

    /// The limits set with [`Store::set_limits`].
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// The exception that ended the last call with
    /// [`TrapCode::UncaughtException`](crate::TrapCode::UncaughtException):
    /// its tag and the values it carries. Kept until taken or until another
    /// exception escapes a call. Always `None` on backends without
    /// exceptions, and on wasmer for an exception that carries more than
    /// one value (wasmer 7.3 reads only the first of them correctly from
    /// the host; code in wasm catches all of them right).
    pub fn take_exception(&mut self) -> Option<crate::Exception<B>> {
        B::ctx_shared(B::store_ctx(&self.raw)).take_exception()
    }

    /// Sets the fuel available to code in this store.
    ///
    /// Fails with [`Error::NotEnabled`] unless the engine was configured with
    /// [`Config::consume_fuel`](crate::Config::consume_fuel).
    pub fn set_fuel(&mut self, fuel: u64) -> Result<()> {
        self.as_context_mut().set_fuel(fuel)
    }

    /// Adds fuel to what remains.
    pub fn add_fuel(&mut self, fuel: u64) -> Result<()> {
        self.as_context_mut().add_fuel(fuel)
    }

    /// The fuel that remains.
    pub fn get_fuel(&mut self) -> Result<u64> {
        self.as_context_mut().get_fuel()
    }

    /// Sets (or clears) the instant after which running code in this store
    /// traps with [`TrapCode::Deadline`](crate::TrapCode::Deadline). Other stores are not affected.
    ///
    /// Fails with [`Error::NotEnabled`] unless the engine was configured with
    /// [`Config::interruptible`](crate::Config::interruptible).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) -> Result<()> {
        if !self.shared.interruptible {
            return Err(Error::NotEnabled {
                feature: "deadlines",
                setter: "interruptible",
            });
        }
        self.shared
            .interrupt
            .set_deadline(deadline)
            .map_err(|e| Error::Backend {
                backend: "anywasm",
                message: format!("cannot start the deadline timer thread: {e}"),
            })
    }

    /// How often an async call in this store yields to its executor while
    /// wasm code runs (`None`, the default: never), so that a long call
    /// does not starve other tasks of a single-threaded executor. Needs
    /// [`Config::interruptible`](crate::Config::interruptible), like
    /// deadlines; synchronous calls never yield.
    #[cfg(feature = "async")]
    pub fn set_yield_interval(&mut self, interval: Option<Duration>) -> Result<()> {
        if !self.shared.interruptible {
            return Err(Error::NotEnabled {
                feature: "yielding in async calls",
                setter: "interruptible",
            });
        }
        self.shared.interrupt.set_yield_interval(interval);
        Ok(())
    }

    /// Sets the deadline to `timeout` from now. A timeout too long to be
    /// represented as an instant (such as [`Duration::MAX`]) means no deadline.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.set_deadline(Instant::now().checked_add(timeout))
    }

    /// The current deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.interrupt.deadline()
    }

    /// A handle to interrupt code running in this store from another thread.
    pub fn interrupt_handle(&self) -> Result<InterruptHandle> {
        if !self.shared.interruptible {
            return Err(Error::NotEnabled {
                feature: "interruption",
                setter: "interruptible",
            });
        }
        Ok(InterruptHandle {
            state: self.shared.interrupt.clone(),
        })
    }

    /// Counters of this store.
    pub fn stats(&self) -> StoreStats {
        self.shared.stats()
    }

    /// The last allocation a memory limit refused in this store (inside or
    /// outside wasm), if any, and forgets it. A guest whose `memory.grow`
    /// failed and that then trapped can so be told apart from other traps.
    pub fn take_limit_refusal(&mut self) -> Option<String> {
        self.shared.take_limit_hit()
    }

    /// The engine's store, for code that needs an engine feature the layer
    /// does not cover. Using it ties the code to one backend.
    pub fn raw(&self) -> &B::Store<T> {
        &self.raw
    }

    /// The engine's store, mutably.
    ///
    /// # Safety
    /// The layer's promises rest on what it puts in the engine's store. The
    /// caller must not put into it anything that is not `Send` (the wasmer
    /// backend's store is `Send` only because everything in it is), must not
    /// create shared memories in it, and must not replace the data, limiter,
    /// callbacks or hooks the backend installed.
    pub unsafe fn raw_mut(&mut self) -> &mut B::Store<T> {
        &mut self.raw
    }

    /// The engine's store, for the layer's own calls.
    #[cfg(feature = "async")]
    pub(crate) fn raw_mut_internal(&mut self) -> &mut B::Store<T> {
        &mut self.raw
    }
}

/// A shared borrow of a store, from a [`Store`] or a host function's [`Caller`](crate::Caller).
pub struct StoreContext<'a, B: Backend, T: Send + 'static> {
    pub(crate) raw: B::Ctx<'a, T>,
}

/// An exclusive borrow of a store, from a [`Store`] or a host function's [`Caller`](crate::Caller).
pub struct StoreContextMut<'a, B: Backend, T: Send + 'static> {
    pub(crate) raw: B::CtxMut<'a, T>,
}

impl<'a, B: Backend, T: Send + 'static> StoreContext<'a, B, T> {
    /// Wraps an engine context (for backends).
    pub fn from_raw(raw: B::Ctx<'a, T>) -> Self {
        Self { raw }
    }

    /// The engine context.
    pub fn into_raw(self) -> B::Ctx<'a, T> {
        self.raw
    }

    pub(crate) fn shared(&self) -> &Arc<StoreShared> {
        B::ctx_shared(B::ctx_reborrow(&self.raw))
    }

    /// The host data.
    pub fn data(self) -> &'a T {
        B::ctx_data(self.raw)
    }
}

impl<'a, B: Backend, T: Send + 'static> StoreContextMut<'a, B, T> {
    /// Wraps an engine context (for backends).
    pub fn from_raw(raw: B::CtxMut<'a, T>) -> Self {
        Self { raw }
    }

    /// The engine context.
    ///
    /// # Safety
    /// As for [`Store::raw_mut`].
    pub unsafe fn into_raw(self) -> B::CtxMut<'a, T> {
        self.raw
    }

    /// The host data.
    pub fn data(&self) -> &T {
        B::ctx_data(B::ctx_mut_shared(&self.raw))
    }

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        B::ctx_data_mut(&mut self.raw)
    }

    pub(crate) fn shared(&self) -> &Arc<StoreShared> {
        B::ctx_shared(B::ctx_mut_shared(&self.raw))
    }

    /// See [`Store::set_fuel`].
    pub fn set_fuel(mut self, fuel: u64) -> Result<()> {
        if !self.shared().fuel_enabled {
            return Err(fuel_not_enabled());
        }
        let before = B::fuel_get(B::ctx_mut_reborrow(&mut self.raw))?;
        B::fuel_set(B::ctx_mut_reborrow(&mut self.raw), fuel)?;
        self.shared()
            .record_fuel(fuel as i128 - before as i128, fuel);
        Ok(())
    }

    /// See [`Store::add_fuel`].
    pub fn add_fuel(mut self, fuel: u64) -> Result<()> {
        if !self.shared().fuel_enabled {
            return Err(fuel_not_enabled());
        }
        let before = B::fuel_get(B::ctx_mut_reborrow(&mut self.raw))?;
        let after = before.saturating_add(fuel);
        B::fuel_set(B::ctx_mut_reborrow(&mut self.raw), after)?;
        self.shared()
            .record_fuel(after as i128 - before as i128, after);
        Ok(())
    }

    /// See [`Store::get_fuel`].
    pub fn get_fuel(self) -> Result<u64> {
        if !self.shared().fuel_enabled {
            return Err(fuel_not_enabled());
        }
        B::fuel_get(self.raw)
    }
}

fn fuel_not_enabled() -> Error {
    Error::NotEnabled {
        feature: "fuel",
        setter: "consume_fuel",
    }
}

/// Anything that can lend a shared borrow of a store: [`Store`],
/// [`Caller`](crate::Caller), the contexts, and references to them.
pub trait AsContext {
    /// The backend.
    type Backend: Backend;
    /// The store's host data type.
    type Data: Send + 'static;
    /// Borrows the store.
    fn as_context(&self) -> StoreContext<'_, Self::Backend, Self::Data>;
}

/// Anything that can lend an exclusive borrow of a store.
pub trait AsContextMut: AsContext {
    /// Borrows the store exclusively.
    fn as_context_mut(&mut self) -> StoreContextMut<'_, Self::Backend, Self::Data>;
}

impl<B: Backend, T: Send + 'static> AsContext for Store<B, T> {
    type Backend = B;
    type Data = T;
    #[inline]
    fn as_context(&self) -> StoreContext<'_, B, T> {
        StoreContext {
            raw: B::store_ctx(&self.raw),
        }
    }
}

impl<B: Backend, T: Send + 'static> AsContextMut for Store<B, T> {
    #[inline]
    fn as_context_mut(&mut self) -> StoreContextMut<'_, B, T> {
        StoreContextMut {
            raw: B::store_ctx_mut(&mut self.raw),
        }
    }
}

impl<B: Backend, T: Send + 'static> AsContext for StoreContext<'_, B, T> {
    type Backend = B;
    type Data = T;
    #[inline]
    fn as_context(&self) -> StoreContext<'_, B, T> {
        StoreContext {
            raw: B::ctx_reborrow(&self.raw),
        }
    }
}

impl<B: Backend, T: Send + 'static> AsContext for StoreContextMut<'_, B, T> {
    type Backend = B;
    type Data = T;
    #[inline]
    fn as_context(&self) -> StoreContext<'_, B, T> {
        StoreContext {
            raw: B::ctx_mut_shared(&self.raw),
        }
    }
}

impl<B: Backend, T: Send + 'static> AsContextMut for StoreContextMut<'_, B, T> {
    #[inline]
    fn as_context_mut(&mut self) -> StoreContextMut<'_, B, T> {
        StoreContextMut {
            raw: B::ctx_mut_reborrow(&mut self.raw),
        }
    }
}

impl<C: AsContext + ?Sized> AsContext for &C {
    type Backend = C::Backend;
    type Data = C::Data;
    #[inline]
    fn as_context(&self) -> StoreContext<'_, C::Backend, C::Data> {
        (**self).as_context()
    }
}

impl<C: AsContext + ?Sized> AsContext for &mut C {
    type Backend = C::Backend;
    type Data = C::Data;
    #[inline]
    fn as_context(&self) -> StoreContext<'_, C::Backend, C::Data> {
        (**self).as_context()
    }
}

impl<C: AsContextMut + ?Sized> AsContextMut for &mut C {
    #[inline]
    fn as_context_mut(&mut self) -> StoreContextMut<'_, C::Backend, C::Data> {
        (**self).as_context_mut()
    }
}
