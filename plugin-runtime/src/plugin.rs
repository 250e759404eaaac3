//! Plugins: loading, the instance pool, calls, statistics and reloading.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use anywasm::{
    Backend, Error, Func, Instance, InterruptHandle, Memory, MemoryBudget, Module, Store,
    StoreLimits, TrapCode, Val, ValType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{self, Metadata};
use crate::error::{PluginError, Result};
use crate::host::{
    AbiFault, GuestLimit, HostContext, HostFnFailed, KvStore, PluginState, always_allowed, decode,
    encode,
};
use crate::manifest::{Abi, Format, Limits, Manifest, WasmSource};
use crate::runtime::RuntimeInner;
use crate::{extism, wapc};

/// Counters of one plugin, over all its instances and reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PluginStats {
    /// Calls made (including failed ones).
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Fuel spent by all calls (when the engine meters fuel).
    pub fuel_consumed: u64,
    /// Time spent in calls.
    pub busy: Duration,
    /// Instances created (including replacements for failed ones).
    pub instances_created: u64,
    /// Successful reloads.
    pub reloads: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    fuel: AtomicU64,
    busy_nanos: AtomicU64,
    instances: AtomicU64,
    reloads: AtomicU64,
}

/// One instance with its store, ready to serve calls.
struct Slot<B: Backend> {
    store: Store<B, PluginState>,
    instance: Instance<B>,
    abi: SlotAbi<B>,
    funcs: HashMap<String, Func<B>>,
    interrupt: InterruptHandle,
}

/// How calls reach an instance's functions.
enum SlotAbi<B: Backend> {
    /// anywasm's ABI: the input goes into the guest's memory through its
    /// allocation export.
    Anywasm { memory: Memory<B>, alloc: Func<B> },
    /// Extism's: through the kernel instance's memory beside the guest.
    Extism,
    /// waPC's: every operation through `__guest_call`.
    Wapc { guest_call: Func<B> },
}

struct PoolState<B: Backend> {
    idle: Vec<Slot<B>>,
    live: usize,
}

/// One version of a plugin's code and the instances running it.
pub(crate) struct Generation<B: Backend> {
    number: u64,
    module: Module<B>,
    /// The ABI the code speaks (never `Auto`).
    abi: Abi,
    /// For Extism guests: the kernel module, on the code's engine.
    kernel: Option<Module<B>>,
    metadata: Metadata,
    format: Format,
    state: Option<Vec<u8>>,
    limits: Limits,
    pool: Mutex<PoolState<B>>,
    available: Condvar,
    /// Wakes async calls waiting for an instance.
    #[cfg(feature = "async")]
    notify: tokio::sync::Notify,
    /// Whether the code imports one of the application's async host
    /// functions: then it runs only in async calls.
    is_async: bool,
}

impl<B: Backend> Generation<B> {
    /// The pool changed: wakes a waiting call.
    fn changed(&self) {
        self.available.notify_one();
        #[cfg(feature = "async")]
        self.notify.notify_waiters();
    }
}

impl<B: Backend> Drop for Generation<B> {
    fn drop(&mut self) {
        // Give idle instances their optional `shutdown`, under the plugin's
        // per-call limits, in the thread that lets the generation go (the
        // reload, once the generation's calls have finished, or the drop of
        // the plugin). A panic of a host function there is swallowed: it
        // cannot go on from a destructor.
        let limits = self.limits;
        if self.abi != Abi::Anywasm {
            return;
        }
        if let Ok(pool) = self.pool.get_mut() {
            for slot in pool.idle.iter_mut() {
                let Ok(f) = slot.instance.get_func(&mut slot.store, abi::SHUTDOWN) else {
                    continue;
                };
                // (An instance of an async plugin refuses this synchronous
                // call: it gets no `shutdown`.)
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if arm(&mut slot.store, &limits).is_ok() {
                        let mut ignore = |_: &[u8]| {};
                        let call =
                            call_with_bytes(Mode::Sync, slot, &f, &[][..], &limits, &mut ignore);
                        let _ = ready(call);
                    }
                }));
            }
        }
    }
}

/// Whether the code of `generation` speaks anywasm's ABI and exports
/// `shutdown` (the only ABI with one).
fn has_shutdown<B: Backend>(generation: &Generation<B>) -> bool {
    generation.abi == Abi::Anywasm && generation.module.info().export(abi::SHUTDOWN).is_some()
}

/// Puts the per-call limits on a store; returns the fuel given (0 without fuel).
fn arm<B: Backend>(
    store: &mut Store<B, PluginState>,
    limits: &Limits,
) -> std::result::Result<u64, Error> {
    let config = store.engine().config().clone();
    let mut fuel = 0;
    if config.fuel_enabled() {
        fuel = limits.fuel.unwrap_or(u64::MAX);
        store.set_fuel(fuel)?;
    }
    if config.interruptible_enabled() {
        store.set_deadline(limits.deadline.and_then(|d| Instant::now().checked_add(d)))?;
    }
    let _ = store.take_limit_refusal();
    Ok(fuel)
}

/// How often a waiting call looks whether it was cancelled.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// Calls of a plugin in flight, for cancelling them from any thread.
#[derive(Default)]
struct Cancels {
    /// Bumped by every cancellation: calls that started before and are
    /// still waiting (for an instance, or for a reload) give up.
    epoch: AtomicU64,
    next: AtomicU64,
    running: Mutex<HashMap<u64, (InterruptHandle, Arc<AtomicBool>)>>,
}

/// Ends the calls of one plugin that are in flight, from any thread, with
/// [`PluginError::Cancelled`]; calls made afterwards run normally.
///
/// ```
/// # fn main() -> Result<(), anywasm_plugin::PluginError> {
/// # let wasm = wat::parse_str(r#"(module (memory (export "memory") 1)
/// #   (func (export "anywasm_alloc") (param i32) (result i32) i32.const 16)
/// #   (func (export "spin") (param i32 i32) (result i64) (loop $l (br $l)) i64.const 0)
/// #   (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#).unwrap();
/// use anywasm_plugin::{Format, Limits, Manifest, PluginError, PluginRuntime};
/// let runtime = PluginRuntime::<anywasm::DefaultBackend>::new()?;
/// let plugin = runtime.load(Manifest::from_bytes("spinner", wasm)
///     .format(Format::Raw).limits(Limits::unlimited()))?;
/// let cancel = plugin.cancel_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_millis(50));
///     cancel.cancel();
/// });
/// assert!(matches!(plugin.call_raw("spin", b""), Err(PluginError::Cancelled { .. })));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    cancels: Arc<Cancels>,
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle").finish_non_exhaustive()
    }
}

impl CancelHandle {
    /// Cancels every call of the plugin in flight now.
    pub fn cancel(&self) {
        self.cancels.epoch.fetch_add(1, Ordering::SeqCst);
        let running = self
            .cancels
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (handle, cancelled) in running.values() {
            cancelled.store(true, Ordering::SeqCst);
            handle.interrupt();
        }
    }
}

/// Lets calls in, or holds them while a reload swaps the code.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
    /// Wakes async calls waiting at the gate.
    #[cfg(feature = "async")]
    notify: tokio::sync::Notify,
}

impl Gate {
    fn changed(&self) {
        self.changed.notify_all();
        #[cfg(feature = "async")]
        self.notify.notify_waiters();
    }

    /// The gate's state, as calls and reloads wait on it.
    fn waitable(&self) -> Waitable<'_, GateState> {
        Waitable {
            mutex: &self.state,
            changed: &self.changed,
            #[cfg(feature = "async")]
            notify: &self.notify,
        }
    }
}

/// Lets calls in again when a reload ends, however it ends (an error, a
/// panic, its future dropped).
struct Reopen<'a>(&'a Gate);

impl Drop for Reopen<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        st.draining = false;
        drop(st);
        self.0.changed();
    }
}

#[derive(Default)]
struct GateState {
    inflight: usize,
    draining: bool,
    /// Set by [`Plugin::close`]: every later call and reload is refused.
    closed: bool,
}

/// One call's pass through the [`Gate`]; lets it go when dropped.
struct Pass<'a> {
    gate: &'a Gate,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut st = self.gate.state.lock().unwrap_or_else(|e| e.into_inner());
        st.inflight -= 1;
        drop(st);
        self.gate.changed();
    }
}

/// Why a wait ended without what it waited for.
enum WaitFailed {
    TimedOut(Duration),
    Cancelled,
    /// An async call had to wait outside a tokio runtime with a timer.
    #[cfg(feature = "async")]
    NoTimer,
}

/// Waits on `cv` until `ready`, or `timeout` passes, or a cancellation
/// comes after `epoch`; in slices, so cancellations are seen.
fn wait_until<'a, T>(
    mut guard: MutexGuard<'a, T>,
    cv: &Condvar,
    timeout: Option<Duration>,
    cancels: &Cancels,
    epoch: u64,
    mut ready: impl FnMut(&mut T) -> bool,
) -> std::result::Result<MutexGuard<'a, T>, WaitFailed> {
    let started = Instant::now();
    loop {
        if ready(&mut guard) {
            return Ok(guard);
        }
        let slice = next_look(started, timeout, cancels, epoch, WAIT_SLICE)?;
        guard = cv
            .wait_timeout(guard, slice)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// For a wait that found nothing yet: gives up (cancelled, or past its
/// timeout), or says how long to sleep before looking again (at most
/// `slice`, so cancellations are seen).
fn next_look(
    started: Instant,
    timeout: Option<Duration>,
    cancels: &Cancels,
    epoch: u64,
    slice: Duration,
) -> std::result::Result<Duration, WaitFailed> {
    if cancels.epoch.load(Ordering::SeqCst) != epoch {
        return Err(WaitFailed::Cancelled);
    }
    let waited = started.elapsed();
    if timeout.is_some_and(|t| waited >= t) {
        return Err(WaitFailed::TimedOut(waited));
    }
    Ok(timeout.map_or(slice, |t| (t - waited).min(slice)))
}

/// A mutex-guarded state that calls wait on, with what wakes them.
struct Waitable<'a, T> {
    mutex: &'a Mutex<T>,
    changed: &'a Condvar,
    #[cfg(feature = "async")]
    notify: &'a tokio::sync::Notify,
}

/// How often an async wait looks again without a wake-up (the wake-ups
/// make it prompt; this bounds a missed one).
#[cfg(feature = "async")]
const ASYNC_WAIT_SLICE: Duration = Duration::from_millis(5);

/// How often an async plugin call yields to its executor while the guest
/// runs (the store's yield interval).
#[cfg(feature = "async")]
pub const ASYNC_YIELD_INTERVAL: Duration = Duration::from_millis(10);

/// [`wait_until`] in `mode`: an async call waits without blocking its
/// executor's thread.
async fn wait_for<'a, T>(
    mode: Mode,
    on: Waitable<'a, T>,
    timeout: Option<Duration>,
    cancels: &Cancels,
    epoch: u64,
    ready: impl FnMut(&mut T) -> bool,
) -> std::result::Result<MutexGuard<'a, T>, WaitFailed> {
    match mode {
        Mode::Sync => {
            let guard = on.mutex.lock().unwrap_or_else(|e| e.into_inner());
            wait_until(guard, on.changed, timeout, cancels, epoch, ready)
        }
        #[cfg(feature = "async")]
        Mode::Async => {
            let mut ready = ready;
            let started = Instant::now();
            loop {
                // Registered before looking, so a change in between wakes it.
                let mut notified = std::pin::pin!(on.notify.notified());
                notified.as_mut().enable();
                {
                    let mut guard = on.mutex.lock().unwrap_or_else(|e| e.into_inner());
                    if ready(&mut guard) {
                        return Ok(guard);
                    }
                }
                let slice = next_look(started, timeout, cancels, epoch, ASYNC_WAIT_SLICE)?;
                // tokio's timer panics where there is none (no tokio runtime,
                // or one without `enable_time`): a wait there is an error.
                // (Asked first where it can be, so that no panic message is
                // printed.)
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(WaitFailed::NoTimer);
                }
                let timed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tokio::time::timeout(slice, notified)
                }));
                match timed {
                    Ok(timed) => {
                        let _ = timed.await;
                    }
                    Err(_) => return Err(WaitFailed::NoTimer),
                }
            }
        }
    }
}

thread_local! {
    /// The plugins whose calls this thread is inside, to refuse a host
    /// function calling back into its own plugin.
    static INSIDE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// This thread is inside a call of the plugin `key` while this lives.
pub(crate) struct Inside {
    key: usize,
}

impl Inside {
    /// `None` if this thread is inside a call of `key` already.
    pub(crate) fn enter(key: usize) -> Option<Self> {
        INSIDE.with(|v| {
            let mut v = v.borrow_mut();
            if v.contains(&key) {
                return None;
            }
            v.push(key);
            Some(Inside { key })
        })
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.with(|v| {
            let mut v = v.borrow_mut();
            if let Some(i) = v.iter().rposition(|k| *k == self.key) {
                v.remove(i);
            }
        });
    }
}

/// Gives back a pool place taken for an instance being made, unless the
/// instance was made (also when making it panics).
struct Place<'a, B: Backend> {
    generation: &'a Generation<B>,
    taken: bool,
}

impl<B: Backend> Drop for Place<'_, B> {
    fn drop(&mut self) {
        if self.taken {
            let mut pool = self
                .generation
                .pool
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pool.live -= 1;
            drop(pool);
            self.generation.changed();
        }
    }
}

/// A loaded plugin: a cheap, cloneable handle that is `Send + Sync` and
/// serves calls from many threads through a bounded pool of instances.
pub struct Plugin<B: Backend> {
    inner: Arc<PluginInner<B>>,
}

impl<B: Backend> Clone for Plugin<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Plugin<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.inner.ctx.plugin)
            .field("backend", &B::NAME)
            .field("generation", &self.generation())
            .finish()
    }
}

pub(crate) struct PluginInner<B: Backend> {
    runtime: Arc<RuntimeInner<B>>,
    manifest: Manifest,
    ctx: HostContext,
    kv: Arc<Mutex<KvStore>>,
    http: Arc<extism::HttpGrant>,
    current: RwLock<Arc<Generation<B>>>,
    counters: Counters,
    gate: Gate,
    cancels: Arc<Cancels>,
    /// This plugin, as a number for the reentrancy check (see `Inside`).
    key: usize,
}

fn engine_err(plugin: &str, source: Error) -> PluginError {
    PluginError::Engine {
        plugin: plugin.to_string(),
        source,
    }
}

fn read_source(manifest: &Manifest) -> Result<Vec<u8>> {
    match &manifest.source {
        WasmSource::Bytes(b) => Ok(b.clone()),
        WasmSource::File(path) => std::fs::read(path).map_err(|source| PluginError::Io {
            plugin: manifest.id.clone(),
            path: path.display().to_string(),
            source,
        }),
    }
}

/// A call's input as it reaches the guest's buffer.
pub(crate) enum Input<'a> {
    /// Bytes, copied as they are.
    Bytes(&'a [u8]),
    /// `len` bytes that `write` encodes straight into the guest's buffer
    /// (no copy on the host side).
    Encoded {
        len: usize,
        write: &'a dyn Fn(&mut [u8]) -> std::result::Result<(), String>,
    },
}

/// What the call path needs of an input: its length, and to be written
/// into the guest's buffer. Implemented by [`Input`] and by the async
/// calls' inputs, which must be `Sync`.
pub(crate) trait CallInput {
    /// The input's length in bytes.
    fn len(&self) -> usize;
    /// Writes the input into `buf`, which is exactly [`len`](Self::len) long.
    fn write_into(&self, buf: &mut [u8]) -> std::result::Result<(), String>;
}

impl CallInput for Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::Bytes(b) => b.len(),
            Input::Encoded { len, .. } => *len,
        }
    }
    fn write_into(&self, buf: &mut [u8]) -> std::result::Result<(), String> {
        match self {
            Input::Bytes(b) => {
                buf.copy_from_slice(b);
                Ok(())
            }
            Input::Encoded { write, .. } => write(buf),
        }
    }
}

impl CallInput for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn write_into(&self, buf: &mut [u8]) -> std::result::Result<(), String> {
        buf.copy_from_slice(self);
        Ok(())
    }
}

/// How a call reaches wasm: with the core's synchronous calls, or (feature
/// `async`) with its async ones. The call path is written once, as async
/// functions taking the mode; in `Sync` mode nothing in them waits (every
/// wasm call and every wait for an instance is synchronous), and [`ready`]
/// runs them to the end in one poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Sync,
    #[cfg(feature = "async")]
    Async,
}

/// Runs a future of the call path in `Mode::Sync` (see [`Mode`]).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        // Nothing awaited in `Mode::Sync` is pending (see `Mode`).
        std::task::Poll::Pending => unreachable!("a synchronous plugin call waited"),
    }
}

/// Calls `func` in `mode` and returns its results.
pub(crate) async fn invoke<B: Backend>(
    mode: Mode,
    store: &mut Store<B, PluginState>,
    func: &Func<B>,
    args: &[Val<B>],
) -> std::result::Result<Vec<Val<B>>, Error> {
    match mode {
        Mode::Sync => func.invoke(store, args),
        #[cfg(feature = "async")]
        Mode::Async => {
            let ty = func.ty(&*store)?;
            let mut out: Vec<Val<B>> = ty.results().iter().map(|t| Val::default_for(*t)).collect();
            func.call_async(store, args, &mut out).await?;
            Ok(out)
        }
    }
}

/// Instantiates `module` from `linker` in `mode`.
pub(crate) async fn instantiate<B: Backend>(
    mode: Mode,
    linker: &anywasm::Linker<B, PluginState>,
    store: &mut Store<B, PluginState>,
    module: &Module<B>,
) -> std::result::Result<Instance<B>, Error> {
    match mode {
        Mode::Sync => linker.instantiate(store, module),
        #[cfg(feature = "async")]
        Mode::Async => linker.instantiate_async(store, module).await,
    }
}

/// Where a call's output goes: a function of the bytes in the guest's
/// memory (decoded there, or copied out).
pub(crate) type Output<'a> = &'a mut dyn FnMut(&[u8]);

async fn call_with_bytes<B: Backend, I: CallInput + ?Sized, O: FnMut(&[u8]) + ?Sized>(
    mode: Mode,
    slot: &mut Slot<B>,
    func: &Func<B>,
    input: &I,
    limits: &Limits,
    output: &mut O,
) -> std::result::Result<(), CallFailure> {
    let SlotAbi::Anywasm { memory, alloc } = &slot.abi else {
        return Err(CallFailure::Abi("not an instance of anywasm's ABI".into()));
    };
    let (memory, alloc) = (memory.clone(), alloc.clone());
    slot.store.data_mut().guest_error = None;
    slot.store.data_mut().pending = None;
    let len = i32::try_from(input.len())
        .map_err(|_| CallFailure::Abi(format!("input of {} bytes is too large", input.len())))?;
    let ptr = invoke(mode, &mut slot.store, &alloc, &[Val::I32(len)])
        .await
        .map_err(CallFailure::Engine)?;
    let ptr = ptr.first().and_then(Val::as_i32).unwrap_or(0) as u32;
    if ptr == 0 && len > 0 {
        return Err(CallFailure::Abi(format!(
            "`{}` could not allocate {len} bytes",
            abi::ALLOC
        )));
    }
    let buf = memory
        .slice_mut(&mut slot.store, u64::from(ptr), len as u64)
        .map_err(|_| {
            CallFailure::Abi(format!(
                "`{}` returned an out-of-range buffer ({len} bytes at {ptr:#x})",
                abi::ALLOC
            ))
        })?;
    input.write_into(buf).map_err(CallFailure::Encode)?;
    let r = invoke(
        mode,
        &mut slot.store,
        func,
        &[Val::I32(ptr as i32), Val::I32(len)],
    )
    .await
    .map_err(CallFailure::Engine)?;
    if let Some(message) = slot.store.data_mut().guest_error.take() {
        return Err(CallFailure::Guest(message));
    }
    let (optr, olen) = abi::unpack(r.first().and_then(Val::as_i64).unwrap_or(0));
    check_output_size(limits, u64::from(olen))?;
    let bytes = memory
        .slice(&slot.store, u64::from(optr), u64::from(olen))
        .map_err(|_| {
            CallFailure::Abi(format!("output out of range ({olen} bytes at {optr:#x})"))
        })?;
    output(bytes);
    Ok(())
}

/// Refuses an output past the manifest's `max_output_bytes`.
fn check_output_size(limits: &Limits, len: u64) -> std::result::Result<(), CallFailure> {
    match limits.max_output_bytes {
        Some(max) if len > max => Err(CallFailure::Limit("output size", max)),
        _ => Ok(()),
    }
}

/// A call by Extism's convention: the input in a fresh kernel memory, the
/// export called with no arguments, then the error the guest set (whatever
/// its return code), a non-zero return code, or the output, in that order,
/// with Extism's own words for a non-zero code.
async fn call_extism<B: Backend, I: CallInput + ?Sized, O: FnMut(&[u8]) + ?Sized>(
    mode: Mode,
    slot: &mut Slot<B>,
    func: &Func<B>,
    input: &I,
    limits: &Limits,
    output: &mut O,
) -> std::result::Result<(), CallFailure> {
    let max = slot
        .store
        .data()
        .limits
        .max_memory_pages
        .map_or(u64::MAX, |p| p.saturating_mul(65536));
    let placed = extism::start_call(&mut slot.store, input.len() as u64, |buf| {
        input.write_into(buf)
    })
    .map_err(CallFailure::Engine)?;
    match placed {
        None => return Err(CallFailure::Limit("Extism kernel memory (bytes)", max)),
        Some(Err(e)) => return Err(CallFailure::Encode(e)),
        Some(Ok(())) => {}
    }
    let r = invoke(mode, &mut slot.store, func, &[])
        .await
        .map_err(CallFailure::Engine)?;
    if let Some(message) = extism::error(&slot.store).map_err(CallFailure::Engine)? {
        return Err(CallFailure::Guest(message));
    }
    let rc = r.first().and_then(Val::as_i32).unwrap_or(0);
    if rc != 0 {
        return Err(CallFailure::Guest(format!(
            "Returned non-zero exit code: {rc}"
        )));
    }
    let out = extism::output(&slot.store).map_err(CallFailure::Engine)?;
    check_output_size(limits, out.len() as u64)?;
    output(out);
    Ok(())
}

/// A call by waPC's convention: the operation and payload wait on the host
/// until the guest asks for them (`__guest_request`); `__guest_call`
/// answers 1 with a response or 0 with an error.
async fn call_wapc<B: Backend, I: CallInput + ?Sized, O: FnMut(&[u8]) + ?Sized>(
    mode: Mode,
    slot: &mut Slot<B>,
    guest_call: &Func<B>,
    operation: &str,
    input: &I,
    output: &mut O,
) -> std::result::Result<(), CallFailure> {
    // waPC hands the guest the payload when it asks for it: the host keeps
    // it (bounded by the caller's own input).
    let mut payload = vec![0; input.len()];
    input
        .write_into(&mut payload)
        .map_err(CallFailure::Encode)?;
    let too_large =
        |what: &str, n: usize| CallFailure::Abi(format!("{what} of {n} bytes is too large"));
    let op_len =
        i32::try_from(operation.len()).map_err(|_| too_large("operation", operation.len()))?;
    let len = i32::try_from(payload.len()).map_err(|_| too_large("input", payload.len()))?;
    slot.store.data_mut().wapc.start(operation, payload);
    let r = invoke(
        mode,
        &mut slot.store,
        guest_call,
        &[Val::I32(op_len), Val::I32(len)],
    )
    .await
    .map_err(CallFailure::Engine)?;
    let state = &mut slot.store.data_mut().wapc;
    if r.first().and_then(Val::as_i32) == Some(1) {
        output(&state.guest_response.take().unwrap_or_default());
        Ok(())
    } else {
        Err(CallFailure::Guest(state.guest_error.take().unwrap_or_else(
            || "the guest failed without an error message".into(),
        )))
    }
}

/// Whether an export of this type is a plugin function in `abi`: anywasm's
/// `(ptr, len) -> packed`, Extism's `() -> i32` or `() -> ()`.
fn callable(abi: Abi, ty: &anywasm::FuncType) -> bool {
    match abi {
        Abi::Extism => ty.params().is_empty() && matches!(ty.results(), [] | [ValType::I32]),
        _ => ty.params() == [ValType::I32, ValType::I32] && ty.results() == [ValType::I64],
    }
}

/// Why a call failed, before it is named for the caller.
enum CallFailure {
    Engine(Error),
    /// The input could not be encoded into the guest's buffer.
    Encode(String),
    Guest(String),
    Abi(String),
    Limit(&'static str, u64),
}

/// Compiles (or finds in the cache) and checks a version of a plugin's code.
fn prepare<B: Backend>(
    runtime: &RuntimeInner<B>,
    manifest: &Manifest,
    number: u64,
    bytes: &[u8],
    state: Option<Vec<u8>>,
) -> Result<Generation<B>> {
    let id = manifest.id.as_str();
    let module = runtime.compile(id, bytes)?;
    let abi = match manifest.abi {
        Abi::Auto if module.imports().iter().any(|i| i.module == extism::ENV) => Abi::Extism,
        Abi::Auto if module.info().export(wapc::GUEST_CALL).is_some() => Abi::Wapc,
        Abi::Auto => Abi::Anywasm,
        other => other,
    };
    let format = manifest.format.resolve();
    let metadata = match abi {
        Abi::Extism | Abi::Wapc => Metadata {
            abi: 0,
            name: None,
            version: None,
            formats: vec![format.name().to_string()],
        },
        _ => {
            let sections: Vec<&[u8]> = module.custom_sections(abi::METADATA_SECTION).collect();
            let metadata = Metadata::from_module(id, &sections)?;
            metadata.check_format(id, format)?;
            metadata
        }
    };
    for import in module.imports() {
        let (m, n) = (import.module.as_str(), import.name.as_str());
        if abi == Abi::Extism && m == extism::USER && !runtime.linker.is_defined(m, n) {
            return Err(PluginError::MissingHostFunction {
                plugin: id.to_string(),
                module: m.to_string(),
                name: n.to_string(),
            });
        }
        let granted = match abi {
            Abi::Extism => m == extism::ENV || m == extism::USER,
            Abi::Wapc => m == wapc::MODULE,
            _ => false,
        } || always_allowed(m, n)
            || manifest.grants(m, n);
        let defined = runtime.linker.is_defined(m, n)
            || (abi == Abi::Extism && extism::kernel_provides(m, n));
        if !granted || !defined {
            return Err(PluginError::ImportNotGranted {
                plugin: id.to_string(),
                module: m.to_string(),
                name: n.to_string(),
            });
        }
    }
    let kernel =
        match abi {
            Abi::Extism => Some(extism::compile_kernel(module.engine()).map_err(|source| {
                PluginError::Engine {
                    plugin: id.to_string(),
                    source,
                }
            })?),
            _ => None,
        };
    let is_async = module
        .imports()
        .iter()
        .any(|i| runtime.is_async_import(&i.module, &i.name));
    Ok(Generation {
        number,
        module,
        abi,
        kernel,
        metadata,
        format,
        state,
        limits: manifest.limits,
        pool: Mutex::new(PoolState {
            idle: Vec::new(),
            live: 0,
        }),
        available: Condvar::new(),
        #[cfg(feature = "async")]
        notify: tokio::sync::Notify::new(),
        is_async,
    })
}

impl<B: Backend> PluginInner<B> {
    fn id(&self) -> &str {
        &self.ctx.plugin
    }

    fn name_failure(
        &self,
        f: CallFailure,
        function: &str,
        store: &mut Store<B, PluginState>,
    ) -> PluginError {
        let plugin = self.id().to_string();
        let function = function.to_string();
        match f {
            CallFailure::Encode(detail) => PluginError::Encode { plugin, detail },
            CallFailure::Guest(message) => PluginError::Guest {
                plugin,
                function,
                message,
            },
            CallFailure::Abi(detail) => PluginError::AbiViolation {
                plugin,
                function,
                detail,
            },
            CallFailure::Limit(what, limit) => PluginError::LimitExceeded {
                plugin,
                function,
                what,
                limit,
            },
            CallFailure::Engine(e) => {
                if let Some(detail) = store.take_limit_refusal() {
                    return memory_refusal(plugin, function, detail);
                }
                match e {
                    Error::Exit(code) => PluginError::Exit {
                        plugin,
                        function,
                        code,
                    },
                    Error::Trap {
                        code: TrapCode::OutOfFuel,
                        ..
                    } => PluginError::OutOfFuel { plugin, function },
                    Error::Trap {
                        code: TrapCode::Deadline,
                        ..
                    } => PluginError::Deadline { plugin, function },
                    // Only a cancellation interrupts a plugin's store.
                    Error::Trap {
                        code: TrapCode::Interrupted,
                        ..
                    } => PluginError::Cancelled { plugin, function },
                    Error::Trap { code, .. } => PluginError::Trap {
                        plugin,
                        function,
                        code,
                    },
                    Error::Limit(detail) => memory_refusal(plugin, function, detail),
                    Error::Host(h) if h.is::<AbiFault>() => PluginError::AbiViolation {
                        plugin,
                        function,
                        detail: h.to_string(),
                    },
                    Error::Host(h) if h.is::<HostFnFailed>() => {
                        let f = h.downcast_ref::<HostFnFailed>();
                        PluginError::Host {
                            plugin,
                            function,
                            host_function: f.map(|f| f.function.clone()).unwrap_or_default(),
                            message: f.map(|f| f.message.clone()).unwrap_or_default(),
                        }
                    }
                    Error::Host(h) if h.is::<GuestLimit>() => {
                        let l = h.downcast_ref::<GuestLimit>();
                        PluginError::LimitExceeded {
                            plugin,
                            function,
                            what: l.map_or("message size", |l| l.what),
                            limit: l.map_or(0, |l| l.limit),
                        }
                    }
                    other => PluginError::Engine {
                        plugin,
                        source: other,
                    },
                }
            }
        }
    }

    /// Puts the per-call limits on a store.
    fn arm(&self, store: &mut Store<B, PluginState>) -> std::result::Result<u64, Error> {
        arm(store, &self.manifest.limits)
    }

    /// This plugin, as a number for the reentrancy check. (Not its
    /// address: instances made before the plugin moved into its `Arc`
    /// would carry another.)
    fn key(&self) -> usize {
        self.key
    }

    async fn new_slot(&self, mode: Mode, generation: &Generation<B>) -> Result<Slot<B>> {
        let id = self.id();
        let wasi = match &self.manifest.wasi {
            Some(grant) => grant.build(id, self.runtime.log.as_ref(), &self.manifest.limits)?,
            None => anywasm_wasi::WasiCtx::empty(),
        };
        let mut store = Store::new(
            generation.module.engine(),
            PluginState::new(
                self.ctx.clone(),
                generation.format,
                self.kv.clone(),
                self.manifest.limits,
                wasi,
            ),
        );
        store.data_mut().http = self.http.clone();
        store.data_mut().plugin_key = self.key();
        let mut limits = StoreLimits::new();
        limits.max_memory_pages = self.manifest.limits.max_memory_pages;
        limits.max_table_elements = self.manifest.limits.max_table_elements;
        store.set_limits(limits);
        if let Some(budget) = &self.runtime.budget {
            store
                .set_memory_budget(budget.clone())
                .map_err(|e| engine_err(id, e))?;
        }
        self.arm(&mut store).map_err(|e| engine_err(id, e))?;
        let linker = &self.runtime.linker;
        if mode == Mode::Sync && generation.is_async {
            return Err(self.async_only("<instantiate>"));
        }
        #[cfg(feature = "async")]
        if self.runtime.engine.config().interruptible_enabled() {
            // Only async calls yield (at this interval).
            store
                .set_yield_interval(Some(ASYNC_YIELD_INTERVAL))
                .map_err(|e| engine_err(id, e))?;
        }
        let instantiated = match &generation.kernel {
            Some(kernel) => {
                extism::instantiate(mode, linker, &mut store, kernel, &generation.module).await
            }
            None => instantiate(mode, linker, &mut store, &generation.module).await,
        };
        let instance = match instantiated {
            Ok(i) => i,
            Err(e) => {
                let f = CallFailure::Engine(e);
                return Err(self.name_failure(f, "<instantiate>", &mut store));
            }
        };
        let abi_err = |detail: String| PluginError::AbiViolation {
            plugin: id.to_string(),
            function: "<load>".into(),
            detail,
        };
        let slot_abi = match generation.abi {
            Abi::Extism => SlotAbi::Extism,
            Abi::Wapc => {
                let guest_call = instance
                    .get_func(&mut store, wapc::GUEST_CALL)
                    .ok()
                    .filter(|f| {
                        f.ty(&store).is_ok_and(|ty| {
                            ty.params() == [ValType::I32, ValType::I32]
                                && ty.results() == [ValType::I32]
                        })
                    })
                    .ok_or_else(|| {
                        abi_err(format!(
                            "a waPC guest must export `{}` of type (i32, i32) -> i32",
                            wapc::GUEST_CALL
                        ))
                    })?;
                SlotAbi::Wapc { guest_call }
            }
            _ => {
                let memory = instance
                    .get_memory(&mut store, "memory")
                    .map_err(|_| abi_err("the plugin exports no `memory`".into()))?;
                let alloc = instance
                    .get_func(&mut store, abi::ALLOC)
                    .map_err(|_| abi_err(format!("the plugin does not export `{}`", abi::ALLOC)))?;
                let alloc_ty = alloc.ty(&store).map_err(|e| engine_err(id, e))?;
                if alloc_ty.to_string() != "(func (param i32) (result i32))" {
                    return Err(abi_err(format!(
                        "`{}` must have type (i32) -> i32",
                        abi::ALLOC
                    )));
                }
                SlotAbi::Anywasm { memory, alloc }
            }
        };
        let interrupt = store.interrupt_handle().map_err(|e| engine_err(id, e))?;
        let mut slot = Slot {
            store,
            instance,
            abi: slot_abi,
            funcs: HashMap::new(),
            interrupt,
        };
        // A reactor (C with wasi-libc, C++) sets itself up in `_initialize`
        // before any other export may run.
        if let Ok(f) = slot
            .instance
            .get_func(&mut slot.store, abi::REACTOR_INITIALIZE)
        {
            if let Err(e) = invoke(mode, &mut slot.store, &f, &[]).await {
                return Err(self.name_failure(
                    CallFailure::Engine(e),
                    abi::REACTOR_INITIALIZE,
                    &mut slot.store,
                ));
            }
            self.arm(&mut slot.store).map_err(|e| engine_err(id, e))?;
        }
        // waPC guests register their operations in `_start`/`wapc_init`.
        if generation.abi == Abi::Wapc {
            for init in wapc::INIT_EXPORTS {
                if let Ok(f) = slot.instance.get_func(&mut slot.store, init) {
                    self.arm(&mut slot.store).map_err(|e| engine_err(id, e))?;
                    if let Err(e) = invoke(mode, &mut slot.store, &f, &[]).await {
                        return Err(self.name_failure(
                            CallFailure::Engine(e),
                            init,
                            &mut slot.store,
                        ));
                    }
                }
            }
        }
        // anywasm's lifecycle exports mean nothing to Extism and waPC guests.
        if matches!(generation.abi, Abi::Extism | Abi::Wapc) {
            self.counters.instances.fetch_add(1, Ordering::Relaxed);
            return Ok(slot);
        }
        if let Ok(f) = slot.instance.get_func(&mut slot.store, abi::SET_FORMAT) {
            let format = [Val::I32(generation.format.abi_code())];
            let r = invoke(mode, &mut slot.store, &f, &format).await;
            if let Err(e) = r {
                return Err(self.name_failure(
                    CallFailure::Engine(e),
                    abi::SET_FORMAT,
                    &mut slot.store,
                ));
            }
        }
        #[derive(Serialize)]
        struct InitContext<'a> {
            plugin: &'a str,
            config: &'a std::collections::BTreeMap<String, String>,
        }
        if self.has_function(&mut slot, abi::INITIALIZE) {
            let init = InitContext {
                plugin: id,
                config: &self.ctx.config,
            };
            let bytes = match generation.format.resolve() {
                Format::Raw => serde_json::to_vec(&init).unwrap_or_default(),
                f => encode(f, &init).map_err(|detail| PluginError::Encode {
                    plugin: id.to_string(),
                    detail,
                })?,
            };
            self.run(mode, &mut slot, abi::INITIALIZE, &bytes[..], &mut |_| {})
                .await?;
        }
        if let Some(state) = &generation.state
            && self.has_function(&mut slot, abi::STATE_LOAD)
        {
            self.run(mode, &mut slot, abi::STATE_LOAD, &state[..], &mut |_| {})
                .await?;
        }
        self.counters.instances.fetch_add(1, Ordering::Relaxed);
        Ok(slot)
    }

    fn has_function(&self, slot: &mut Slot<B>, name: &str) -> bool {
        self.function(slot, name).is_ok()
    }

    /// A plugin function of the instance, checked once.
    fn function(&self, slot: &mut Slot<B>, name: &str) -> Result<Func<B>> {
        if let Some(f) = slot.funcs.get(name) {
            return Ok(f.clone());
        }
        // waPC: every operation goes through `__guest_call`; the guest
        // itself answers for operations it does not know.
        if let SlotAbi::Wapc { guest_call } = &slot.abi {
            return Ok(guest_call.clone());
        }
        let abi = match slot.abi {
            SlotAbi::Extism => Abi::Extism,
            _ => Abi::Anywasm,
        };
        let f = slot
            .instance
            .get_func(&mut slot.store, name)
            .ok()
            .filter(|f| f.ty(&slot.store).is_ok_and(|ty| callable(abi, &ty)))
            .ok_or_else(|| PluginError::NoSuchFunction {
                plugin: self.id().to_string(),
                function: name.to_string(),
            })?;
        slot.funcs.insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// One call on one instance, with the per-call limits.
    async fn run<I: CallInput + ?Sized, O: FnMut(&[u8]) + ?Sized>(
        &self,
        mode: Mode,
        slot: &mut Slot<B>,
        function: &str,
        input: &I,
        output: &mut O,
    ) -> Result<()> {
        let func = self.function(slot, function)?;
        let fuel = self
            .arm(&mut slot.store)
            .map_err(|e| engine_err(self.id(), e))?;
        let limits = &self.manifest.limits;
        let r = match slot.abi {
            SlotAbi::Anywasm { .. } => {
                call_with_bytes(mode, slot, &func, input, limits, output).await
            }
            SlotAbi::Extism => call_extism(mode, slot, &func, input, limits, output).await,
            SlotAbi::Wapc { .. } => call_wapc(mode, slot, &func, function, input, output).await,
        };
        if fuel > 0
            && let Ok(left) = slot.store.get_fuel()
        {
            self.counters
                .fuel
                .fetch_add(fuel.saturating_sub(left), Ordering::Relaxed);
        }
        r.map_err(|f| self.name_failure(f, function, &mut slot.store))
    }

    async fn acquire(
        &self,
        mode: Mode,
        generation: &Generation<B>,
        function: &str,
        epoch: u64,
    ) -> Result<Slot<B>> {
        let max = self.manifest.max_instances;
        // The pool's lock is let go before anything else is awaited.
        let idle = {
            let mut pool = wait_for(
                mode,
                Waitable {
                    mutex: &generation.pool,
                    changed: &generation.available,
                    #[cfg(feature = "async")]
                    notify: &generation.notify,
                },
                self.manifest.limits.acquire_timeout,
                &self.cancels,
                epoch,
                |p| !p.idle.is_empty() || p.live < max,
            )
            .await
            .map_err(|w| self.wait_failed(w, function))?;
            let idle = pool.idle.pop();
            if idle.is_none() {
                pool.live += 1;
            }
            idle
        };
        if let Some(slot) = idle {
            return Ok(slot);
        }
        let mut place = Place {
            generation,
            taken: true,
        };
        let slot = self.new_slot(mode, generation).await?;
        place.taken = false;
        Ok(slot)
    }

    fn wait_failed(&self, w: WaitFailed, function: &str) -> PluginError {
        let (plugin, function) = (self.id().to_string(), function.to_string());
        match w {
            WaitFailed::TimedOut(waited) => PluginError::Busy {
                plugin,
                function,
                waited,
            },
            WaitFailed::Cancelled => PluginError::Cancelled { plugin, function },
            #[cfg(feature = "async")]
            WaitFailed::NoTimer => PluginError::Engine {
                plugin,
                source: Error::InvalidArgument(format!(
                    "`{function}` waited for an instance outside a tokio runtime with its \
                     timer enabled (`Plugin::call_async` waits with tokio's timer)"
                )),
            },
        }
    }

    fn async_only(&self, function: &str) -> PluginError {
        PluginError::AsyncOnly {
            plugin: self.id().to_string(),
            function: function.to_string(),
        }
    }

    fn closed(&self, function: &str) -> PluginError {
        PluginError::Closed {
            plugin: self.id().to_string(),
            function: function.to_string(),
        }
    }

    /// Waits at the gate until `ready`, bounded by `acquire_timeout` and
    /// ended by a cancellation; `what` names the waiter in the error.
    async fn at_gate(
        &self,
        mode: Mode,
        what: &str,
        epoch: u64,
        ready: impl FnMut(&mut GateState) -> bool,
    ) -> Result<MutexGuard<'_, GateState>> {
        let timeout = self.manifest.limits.acquire_timeout;
        wait_for(
            mode,
            self.gate.waitable(),
            timeout,
            &self.cancels,
            epoch,
            ready,
        )
        .await
        .map_err(|w| self.wait_failed(w, what))
    }

    /// Waits until no reload or close holds the calls; [`PluginError::Closed`]
    /// once the plugin is closed.
    async fn open_gate(
        &self,
        mode: Mode,
        what: &str,
        epoch: u64,
    ) -> Result<MutexGuard<'_, GateState>> {
        let st = self
            .at_gate(mode, what, epoch, |s| !s.draining || s.closed)
            .await?;
        if st.closed {
            return Err(self.closed(what));
        }
        Ok(st)
    }

    /// Lets a call in, unless a reload is swapping the code (then it waits)
    /// or the plugin is closed.
    async fn enter(&self, mode: Mode, function: &str, epoch: u64) -> Result<Pass<'_>> {
        self.open_gate(mode, function, epoch).await?.inflight += 1;
        Ok(Pass { gate: &self.gate })
    }

    /// Holds the calls for a reload or a close (`what`): waits for its turn
    /// (another reload or close may hold them), makes new calls wait, and
    /// waits for the calls in flight to finish, each wait bounded by
    /// `acquire_timeout`. The calls go on when the returned guard drops.
    async fn hold_calls(&self, mode: Mode, what: &str, epoch: u64) -> Result<Reopen<'_>> {
        // (The gate's lock is let go at the end of each statement: held
        // across an await, it would make the future neither `Send` nor
        // correct.)
        self.open_gate(mode, what, epoch).await?.draining = true;
        let reopen = Reopen(&self.gate);
        drop(self.at_gate(mode, what, epoch, |s| s.inflight == 0).await?);
        Ok(reopen)
    }

    /// Gives each idle instance of `generation` its `shutdown` export (when
    /// the code has one), in `mode`, under the per-call limits, and lets the
    /// instances go. All of them run; the first failure is returned.
    async fn shut_down(&self, mode: Mode, generation: &Generation<B>) -> Result<()> {
        let slots = {
            let mut pool = generation.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.live -= pool.idle.len();
            std::mem::take(&mut pool.idle)
        };
        if !has_shutdown(generation) {
            return Ok(());
        }
        let mut result = Ok(());
        for mut slot in slots {
            let mut ignore = |_: &[u8]| {};
            let r = self
                .run(mode, &mut slot, abi::SHUTDOWN, &[][..], &mut ignore)
                .await;
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Closes the plugin in `mode` (see [`Plugin::close`]).
    async fn close_in(&self, mode: Mode) -> Result<()> {
        const CLOSE: &str = "<close>";
        let epoch = self.cancels.epoch.load(Ordering::SeqCst);
        let reopen = match self.hold_calls(mode, CLOSE, epoch).await {
            // Closed before: nothing more to do.
            Err(PluginError::Closed { .. }) => return Ok(()),
            other => other?,
        };
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if mode == Mode::Sync && current.is_async && has_shutdown(&current) {
            // The plugin stays open (`reopen` lets the calls go on).
            return Err(self.async_only(abi::SHUTDOWN));
        }
        self.gate
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        drop(reopen);
        self.shut_down(mode, &current).await
    }

    /// A reload in `mode` (see [`Plugin::reload`]).
    async fn reload_in(&self, mode: Mode, bytes: &[u8]) -> Result<u64> {
        const RELOAD: &str = "<reload>";
        let epoch = self.cancels.epoch.load(Ordering::SeqCst);
        // Compiled while calls go on; numbered once it is this reload's turn.
        let mut generation = prepare(&self.runtime, &self.manifest, 0, bytes, None)?;
        let reopen = self.hold_calls(mode, RELOAD, epoch).await?;

        let old = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let number = old.number + 1;
        generation.number = number;
        let hand_over = generation.module.info().export(abi::STATE_LOAD).is_some()
            && old.module.info().export(abi::STATE_SAVE).is_some();
        if hand_over && mode == Mode::Sync && old.is_async {
            return Err(self.async_only(abi::STATE_SAVE));
        }
        if hand_over {
            // The old instance used last (the top of the idle stack); given
            // back discarded unless the save succeeds.
            let slot = self.acquire(mode, &old, abi::STATE_SAVE, epoch).await?;
            let mut held = Held {
                inner: self,
                generation: &old,
                slot: Some(slot),
                healthy: false,
            };
            let mut saved = Vec::new();
            let mut keep = |b: &[u8]| saved = b.to_vec();
            self.run(mode, held.slot(), abi::STATE_SAVE, &[][..], &mut keep)
                .await?;
            held.healthy = true;
            drop(held);
            generation.state = Some(saved);
        }
        self.warm(&generation)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(generation);
        drop(reopen);
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
        // The old generation's calls are over: its instances get their
        // `shutdown` here, in this thread (a failure there does not undo
        // the reload). An async reload runs them as async calls, so an
        // async plugin's run too; in a synchronous one, dropping `old`
        // runs them (see `Generation`'s `Drop`).
        #[cfg(feature = "async")]
        if mode == Mode::Async {
            let _ = self.shut_down(mode, &old).await;
        }
        drop(old);
        Ok(number)
    }

    fn release(&self, generation: &Generation<B>, slot: Slot<B>, healthy: bool) {
        let mut pool = generation.pool.lock().unwrap_or_else(|e| e.into_inner());
        if healthy {
            pool.idle.push(slot);
        } else {
            // Discard an instance whose state may be broken; the next call
            // gets a fresh one.
            pool.live -= 1;
            drop(pool);
            drop(slot);
        }
        generation.changed();
    }

    /// A synchronous call: refused inside a call of the same plugin on this
    /// thread (a host function calling back into its plugin).
    fn call_bytes<I: CallInput + ?Sized, O: FnMut(&[u8]) + ?Sized>(
        &self,
        function: &str,
        input: &I,
        output: &mut O,
    ) -> Result<()> {
        let Some(_inside) = Inside::enter(self.key()) else {
            return Err(PluginError::Reentrant {
                plugin: self.id().to_string(),
                function: function.to_string(),
            });
        };
        ready(self.call_bytes_in(Mode::Sync, function, input, output))
    }

    /// A call in `mode`: waits for the gate and an instance, runs, gives the
    /// instance back and counts the call.
    async fn call_bytes_in<I: CallInput + ?Sized, O: FnMut(&[u8]) + ?Sized>(
        &self,
        mode: Mode,
        function: &str,
        input: &I,
        output: &mut O,
    ) -> Result<()> {
        // Counted when it ends, however it ends (a dropped future too).
        let mut counted = Counted {
            counters: &self.counters,
            started: Instant::now(),
            ok: false,
        };
        let epoch = self.cancels.epoch.load(Ordering::SeqCst);
        // A host function of the application may panic; the panic goes on
        // to the caller (core resumes it at the call boundary), but first
        // the slot goes back (discarded), or the pool would shrink by one
        // per panic and calls would wait for an instance forever, and the
        // call is counted like any other. The same holds when an async
        // call's future is dropped before it completes: `Held` gives the
        // instance back (discarded) from its destructor.
        let outcome = CatchPanics(std::pin::pin!(async {
            let _pass = self.enter(mode, function, epoch).await?;
            let generation = self
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if mode == Mode::Sync && generation.is_async {
                return Err(self.async_only(function));
            }
            let slot = self.acquire(mode, &generation, function, epoch).await?;
            let mut held = Held {
                inner: self,
                generation: &generation,
                slot: Some(slot),
                healthy: false,
            };
            let running = Running::register(&self.cancels, held.slot().interrupt.clone());
            // A cancellation between taking the epoch and registering.
            if self.cancels.epoch.load(Ordering::SeqCst) != epoch {
                running.cancelled.store(true, Ordering::SeqCst);
                held.slot().interrupt.interrupt();
            }
            let r = self.run(mode, held.slot(), function, input, output).await;
            // An instance a cancellation reached may hold an interrupt it
            // did not deliver: it is not reused.
            let was_cancelled = running.cancelled.load(Ordering::SeqCst);
            drop(running);
            held.healthy = !was_cancelled
                && matches!(
                    r,
                    Ok(_) | Err(PluginError::Guest { .. } | PluginError::NoSuchFunction { .. })
                );
            r
        }))
        .await;
        counted.ok = matches!(outcome, Ok(Ok(_)));
        drop(counted);
        match outcome {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Makes a generation ready: one instance, created now so that a module
    /// that does not link or initialise is refused before it serves calls.
    /// An async plugin's first instance is made by its first call, which
    /// reports such errors.
    fn warm(&self, generation: &Generation<B>) -> Result<()> {
        if generation.is_async {
            return Ok(());
        }
        let slot = ready(self.new_slot(Mode::Sync, generation))?;
        let mut pool = generation.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.live += 1;
        pool.idle.push(slot);
        Ok(())
    }
}

/// An instance taken from the pool for one call; given back when dropped
/// (kept if the call left it healthy, discarded otherwise: after a panic,
/// or when an async call's future was dropped mid-call).
struct Held<'a, B: Backend> {
    inner: &'a PluginInner<B>,
    generation: &'a Generation<B>,
    slot: Option<Slot<B>>,
    healthy: bool,
}

impl<B: Backend> Held<'_, B> {
    fn slot(&mut self) -> &mut Slot<B> {
        // Taken only by `drop`.
        self.slot
            .as_mut()
            .unwrap_or_else(|| unreachable!("the slot is held until drop"))
    }
}

impl<B: Backend> Drop for Held<'_, B> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.inner.release(self.generation, slot, self.healthy);
        }
    }
}

/// One call for the plugin's counters, counted when dropped.
struct Counted<'a> {
    counters: &'a Counters,
    started: Instant,
    ok: bool,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let c = self.counters;
        c.calls.fetch_add(1, Ordering::Relaxed);
        if !self.ok {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        c.busy_nanos
            .fetch_add(self.started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// A call in [`Cancels::running`] while this lives.
struct Running<'a> {
    cancels: &'a Cancels,
    id: u64,
    cancelled: Arc<AtomicBool>,
}

impl<'a> Running<'a> {
    fn register(cancels: &'a Cancels, interrupt: InterruptHandle) -> Self {
        let id = cancels.next.fetch_add(1, Ordering::Relaxed);
        let cancelled = Arc::new(AtomicBool::new(false));
        cancels
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (interrupt, cancelled.clone()));
        Self {
            cancels,
            id,
            cancelled,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.cancels
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// A future whose panics (in `poll`) come out as `Err(payload)`.
struct CatchPanics<F>(F);

impl<F: std::future::Future + Unpin> std::future::Future for CatchPanics<F> {
    type Output = std::thread::Result<F::Output>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::pin::Pin::new(fut).poll(cx)
        })) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

impl<B: Backend> Plugin<B> {
    pub(crate) fn load(runtime: Arc<RuntimeInner<B>>, manifest: Manifest) -> Result<Self> {
        manifest.check()?;
        let bytes = read_source(&manifest)?;
        let generation = prepare(&runtime, &manifest, 1, &bytes, None)?;
        let ctx = HostContext {
            plugin: manifest.id.as_str().into(),
            config: Arc::new(manifest.config.clone()),
        };
        let inner = PluginInner {
            runtime,
            ctx,
            kv: Arc::default(),
            http: extism::HttpGrant::of(&manifest),
            counters: Counters::default(),
            current: RwLock::new(Arc::new(generation)),
            manifest,
            gate: Gate::default(),
            cancels: Arc::default(),
            key: {
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(1);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
        };
        {
            let generation = inner
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            inner.warm(&generation)?;
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The plugin's id.
    pub fn id(&self) -> &str {
        self.inner.id()
    }

    /// What the plugin declares about itself (read without running it).
    pub fn metadata(&self) -> Metadata {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .metadata
            .clone()
    }

    /// The format the plugin is called with.
    pub fn format(&self) -> Format {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .format
    }

    /// Which version of the code serves new calls (1 at load, +1 per reload).
    pub fn generation(&self) -> u64 {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .number
    }

    /// Calls `function` with a serde value and decodes its output.
    ///
    /// Every failure is typed ([`PluginError`]); after any of them the next
    /// call succeeds: an instance that trapped, ran out of fuel or time, hit
    /// its memory limit or broke the ABI is discarded and replaced by a fresh,
    /// re-initialised one. A guest error keeps the instance.
    ///
    /// A panic in one of the application's own host functions is not turned
    /// into an error: it continues in the caller of `call`, with its
    /// payload, on every backend; the instance it ran on is discarded first,
    /// so the plugin keeps serving.
    pub fn call<In: Serialize, Out: DeserializeOwned>(
        &self,
        function: &str,
        input: &In,
    ) -> Result<Out> {
        call_serde(
            self.id(),
            self.format(),
            function,
            input,
            |input, output| self.inner.call_bytes(function, &input, output),
        )
    }

    /// Calls `function` with raw bytes (for plugins with their own format).
    pub fn call_raw(&self, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.inner
            .call_bytes(function, input, &mut |b: &[u8]| out = b.to_vec())?;
        Ok(out)
    }

    /// Calls `function` asynchronously (feature `async`): as
    /// [`call`](Self::call), but waiting for an instance, the guest's run
    /// and the application's async host functions
    /// ([`HostFunctions::register_async`](crate::HostFunctions::register_async))
    /// let the executor run other tasks. The guest yields to the executor
    /// every [`ASYNC_YIELD_INTERVAL`] while it runs, so a looping plugin
    /// does not starve a single-threaded runtime; its deadline and fuel
    /// stop it as in a synchronous call. It waits for a free instance with
    /// tokio's timer, so it runs inside a tokio runtime with its timer
    /// enabled; a wait elsewhere fails with [`PluginError::Engine`] saying
    /// so.
    ///
    /// Dropping the future before it completes cancels the call; the
    /// instance it ran on is discarded and the plugin goes on serving.
    /// A panic in a host function continues in the caller, as for `call`.
    /// On a backend without async calls it is [`PluginError::Engine`] with
    /// `Unsupported`.
    #[cfg(feature = "async")]
    pub async fn call_async<In: Serialize + Sync, Out: DeserializeOwned + Send>(
        &self,
        function: &str,
        input: &In,
    ) -> Result<Out> {
        let (id, format) = (self.id(), self.format());
        let mut decoded: Option<std::result::Result<Out, String>> = None;
        let mut output = |bytes: &[u8]| decoded = Some(decode(format, bytes));
        let encode_err = |detail| PluginError::Encode {
            plugin: id.to_string(),
            detail,
        };
        if format.resolve() == Format::MsgPack {
            let len = msgpack_len(input).map_err(encode_err)?;
            let input = SyncInput(EncodedWith {
                len,
                write: |buf: &mut [u8]| write_msgpack(input, buf),
            });
            self.call_bytes_async(function, &input, &mut output).await?;
        } else {
            let bytes = encode(format, input).map_err(encode_err)?;
            self.call_bytes_async(function, &bytes[..], &mut output)
                .await?;
        }
        decoded_output(id, function, decoded)
    }

    /// Calls `function` asynchronously with raw bytes (see
    /// [`call_async`](Self::call_async)).
    #[cfg(feature = "async")]
    pub async fn call_raw_async(&self, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.call_bytes_async(function, input, &mut |b: &[u8]| out = b.to_vec())
            .await?;
        Ok(out)
    }

    #[cfg(feature = "async")]
    async fn call_bytes_async<I: CallInput + Sync + ?Sized, O: FnMut(&[u8]) + Send + ?Sized>(
        &self,
        function: &str,
        input: &I,
        output: &mut O,
    ) -> Result<()> {
        let key = self.inner.key();
        let call = self
            .inner
            .call_bytes_in(Mode::Async, function, input, output);
        InsideEachPoll {
            key,
            future: std::pin::pin!(call),
            plugin: self.id(),
            function,
        }
        .await
    }

    /// A call with the input and output in the forms [`call_serde`] uses.
    pub(crate) fn call_with(
        &self,
        function: &str,
        input: Input<'_>,
        output: Output<'_>,
    ) -> Result<()> {
        self.inner.call_bytes(function, &input, output)
    }

    /// Whether the current code exports a plugin function called `function`.
    /// A waPC guest answers for its operations itself, so for one this is
    /// always `true` (an unknown operation fails when called).
    pub fn has_function(&self, function: &str) -> bool {
        let generation = self
            .inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if generation.abi == Abi::Wapc {
            return true;
        }
        generation
            .module
            .info()
            .export(function)
            .is_some_and(|e| e.ty.func().is_some_and(|t| callable(generation.abi, t)))
    }

    /// Counters of this plugin.
    pub fn stats(&self) -> PluginStats {
        let c = &self.inner.counters;
        PluginStats {
            calls: c.calls.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            fuel_consumed: c.fuel.load(Ordering::Relaxed),
            busy: Duration::from_nanos(c.busy_nanos.load(Ordering::Relaxed)),
            instances_created: c.instances.load(Ordering::Relaxed),
            reloads: c.reloads.load(Ordering::Relaxed),
        }
    }

    /// Replaces the plugin's code with `bytes`. Returns the new generation
    /// number.
    ///
    /// What happens, in order (docs/ABI.md, "Hot reload"):
    /// 1. The new code is compiled and checked; if it does not compile,
    ///    link or initialise, the old code keeps serving and the error is
    ///    returned.
    /// 2. New calls wait (up to the manifest's `acquire_timeout`) while the
    ///    calls in flight finish on the old code; if they do not finish in
    ///    that time the reload fails with [`PluginError::Busy`] and the old
    ///    code goes on serving.
    /// 3. If the old code exports `anywasm_state_save` and the new code
    ///    `anywasm_state_load`, the state of the old instance used last is
    ///    saved, after every call on the old code has finished, so nothing
    ///    is lost; every instance of the new code loads it. (Instances of
    ///    one generation do not share their memory: state that several
    ///    instances must see belongs in the key/value store, which belongs
    ///    to the plugin and survives reloads.)
    /// 4. New calls go to the new code. The old instances get their
    ///    `shutdown` here, in the reloading thread, under the plugin's
    ///    per-call limits, and the old code is released.
    ///
    /// Reloads take turns: a reload waits (up to `acquire_timeout`) while
    /// another holds the calls. A host function of this plugin that reloads
    /// it gets [`PluginError::Reentrant`]. A plugin that imports async host
    /// functions hands its state over only in
    /// [`reload_async`](Self::reload_async) (here it is
    /// [`PluginError::AsyncOnly`]).
    pub fn reload(&self, bytes: &[u8]) -> Result<u64> {
        let inner = &self.inner;
        let Some(_inside) = Inside::enter(inner.key()) else {
            return Err(PluginError::Reentrant {
                plugin: inner.id().to_string(),
                function: "<reload>".into(),
            });
        };
        ready(inner.reload_in(Mode::Sync, bytes))
    }

    /// Reloads asynchronously (feature `async`): as [`reload`](Self::reload),
    /// but its waits (for the calls in flight, for another reload) do not
    /// block the executor, and it can hand over the state of a plugin that
    /// imports async host functions (which `reload` refuses with
    /// [`PluginError::AsyncOnly`]) and give such a plugin's old instances
    /// their `shutdown` (as async calls). Its waits use tokio's timer, as
    /// [`call_async`](Self::call_async)'s do. Dropping the future before it
    /// completes leaves the old code serving.
    #[cfg(feature = "async")]
    pub async fn reload_async(&self, bytes: &[u8]) -> Result<u64> {
        let inner = &*self.inner;
        InsideEachPoll {
            key: inner.key(),
            future: Box::pin(inner.reload_in(Mode::Async, bytes)),
            plugin: inner.id(),
            function: "<reload>",
        }
        .await
    }

    /// Closes the plugin, so that nothing its instances would still do at
    /// their end is lost:
    /// 1. New calls wait while the calls in flight finish (up to the
    ///    manifest's `acquire_timeout`; if they do not, the close fails
    ///    with [`PluginError::Busy`] and the plugin stays open).
    /// 2. From then on every call and reload, from any clone of this
    ///    handle, is refused with [`PluginError::Closed`].
    /// 3. Each instance gets its `shutdown` export, where the code has one,
    ///    in this thread, under the plugin's per-call limits, and is let go.
    ///    All of them run; the first failure is returned (the plugin is
    ///    closed all the same).
    ///
    /// Closing a closed plugin does nothing. A plugin that imports async
    /// host functions and exports `shutdown` closes with
    /// [`close_async`](Self::close_async) (here [`PluginError::AsyncOnly`],
    /// and it stays open). Without `close`, instances get their `shutdown`
    /// when the last handle is dropped, except those of an async plugin,
    /// which cannot run synchronously there.
    pub fn close(&self) -> Result<()> {
        let inner = &self.inner;
        let Some(_inside) = Inside::enter(inner.key()) else {
            return Err(PluginError::Reentrant {
                plugin: inner.id().to_string(),
                function: "<close>".into(),
            });
        };
        ready(inner.close_in(Mode::Sync))
    }

    /// Closes the plugin asynchronously (feature `async`): as
    /// [`close`](Self::close), but its waits do not block the executor and
    /// the `shutdown` calls are async calls, so a plugin that imports async
    /// host functions gets them too.
    #[cfg(feature = "async")]
    pub async fn close_async(&self) -> Result<()> {
        let inner = &*self.inner;
        InsideEachPoll {
            key: inner.key(),
            future: Box::pin(inner.close_in(Mode::Async)),
            plugin: inner.id(),
            function: "<close>",
        }
        .await
    }

    /// A handle that cancels this plugin's calls in flight, from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            cancels: self.inner.cancels.clone(),
        }
    }

    /// Reloads from the manifest's file.
    pub fn reload_from_source(&self) -> Result<u64> {
        let bytes = read_source(&self.inner.manifest)?;
        self.reload(&bytes)
    }

    /// The manifest the plugin was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }
}

/// A serde call: encodes `input` in `format`, calls, decodes the output.
/// Encodes `input`, calls, and decodes the output where the guest left it.
/// MessagePack is encoded straight into the guest's buffer (its length
/// measured by a first pass that copies nothing), so bytes marked for serde
/// cross with one copy each way, as raw bytes do.
pub(crate) fn call_serde<In: Serialize, Out: DeserializeOwned>(
    id: &str,
    format: Format,
    function: &str,
    input: &In,
    call: impl FnOnce(Input<'_>, Output<'_>) -> Result<()>,
) -> Result<Out> {
    let encode_err = |detail| PluginError::Encode {
        plugin: id.to_string(),
        detail,
    };
    let mut decoded: Option<std::result::Result<Out, String>> = None;
    let mut output = |bytes: &[u8]| decoded = Some(decode(format, bytes));
    if format.resolve() == Format::MsgPack {
        let len = msgpack_len(input).map_err(encode_err)?;
        let write = |buf: &mut [u8]| write_msgpack(input, buf);
        call(Input::Encoded { len, write: &write }, &mut output)?;
    } else {
        let bytes = encode(format, input).map_err(encode_err)?;
        call(Input::Bytes(&bytes), &mut output)?;
    }
    decoded_output(id, function, decoded)
}

/// The decoded output of a serde call, or why there is none.
pub(crate) fn decoded_output<Out>(
    id: &str,
    function: &str,
    decoded: Option<std::result::Result<Out, String>>,
) -> Result<Out> {
    decoded
        .unwrap_or_else(|| Err("the call left no output".into()))
        .map_err(|detail| PluginError::AbiViolation {
            plugin: id.to_string(),
            function: function.to_string(),
            detail: format!("the output does not decode: {detail}"),
        })
}

/// An encoded input whose encoder may be shared between threads (an async
/// call's future holds it across awaits).
#[cfg(feature = "async")]
struct SyncInput<W: Fn(&mut [u8]) -> std::result::Result<(), String> + Sync>(EncodedWith<W>);

/// `len` bytes that `write` encodes straight into the guest's buffer.
#[cfg(feature = "async")]
struct EncodedWith<W> {
    len: usize,
    write: W,
}

#[cfg(feature = "async")]
impl<W: Fn(&mut [u8]) -> std::result::Result<(), String> + Sync> CallInput for SyncInput<W> {
    fn len(&self) -> usize {
        self.0.len
    }
    fn write_into(&self, buf: &mut [u8]) -> std::result::Result<(), String> {
        (self.0.write)(buf)
    }
}

/// An async plugin call, marked as inside its plugin on the thread that
/// polls it while it is polled: a host function that calls back into the
/// same plugin synchronously gets [`PluginError::Reentrant`] there, as in
/// synchronous calls (a thread mark held across awaits would be wrong:
/// the task may move between threads).
#[cfg(feature = "async")]
struct InsideEachPoll<'a, F> {
    key: usize,
    future: F,
    plugin: &'a str,
    function: &'a str,
}

#[cfg(feature = "async")]
impl<R, F: std::future::Future<Output = Result<R>> + Unpin> std::future::Future
    for InsideEachPoll<'_, F>
{
    type Output = Result<R>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<R>> {
        let Some(_inside) = Inside::enter(self.key) else {
            return std::task::Poll::Ready(Err(PluginError::Reentrant {
                plugin: self.plugin.to_string(),
                function: self.function.to_string(),
            }));
        };
        std::pin::Pin::new(&mut self.future).poll(cx)
    }
}

/// The length of `value` in MessagePack, found without writing it anywhere.
fn msgpack_len<T: Serialize>(value: &T) -> std::result::Result<usize, String> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    rmp_serde::encode::write_named(&mut count, value).map_err(|e| e.to_string())?;
    Ok(count.0)
}

/// Writes `value` in MessagePack into `buf`, which must be its exact length.
fn write_msgpack<T: Serialize>(value: &T, buf: &mut [u8]) -> std::result::Result<(), String> {
    let expected = buf.len();
    let mut rest = buf;
    let differs = || {
        format!(
            "the value encoded to other than the {expected} bytes it measured (a Serialize implementation that is not deterministic?)"
        )
    };
    rmp_serde::encode::write_named(&mut rest, value).map_err(|_| differs())?;
    if rest.is_empty() {
        Ok(())
    } else {
        Err(differs())
    }
}

/// A refused memory growth: the runtime's budget or the plugin's own limit.
fn memory_refusal(plugin: String, function: String, detail: String) -> PluginError {
    if detail.contains(MemoryBudget::REFUSAL) {
        PluginError::MemoryBudget {
            plugin,
            function,
            detail,
        }
    } else {
        PluginError::MemoryLimit {
            plugin,
            function,
            detail,
        }
    }
}
