//! Plugins: loading, the instance pool, calls, statistics and reloading.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use anywasm::{
    Backend, Error, Func, Instance, Memory, Module, Store, StoreLimits, TrapCode, Val, ValType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{self, Metadata};
use crate::error::{PluginError, Result};
use crate::host::{AbiFault, HostContext, KvStore, PluginState, always_allowed, decode, encode};
use crate::manifest::{Format, Manifest, WasmSource};
use crate::runtime::RuntimeInner;

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
    memory: Memory<B>,
    alloc: Func<B>,
    funcs: HashMap<String, Func<B>>,
}

struct PoolState<B: Backend> {
    idle: Vec<Slot<B>>,
    live: usize,
}

/// One version of a plugin's code and the instances running it.
pub(crate) struct Generation<B: Backend> {
    number: u64,
    module: Module<B>,
    metadata: Metadata,
    format: Format,
    state: Option<Vec<u8>>,
    pool: Mutex<PoolState<B>>,
    available: Condvar,
}

impl<B: Backend> Drop for Generation<B> {
    fn drop(&mut self) {
        // Give idle instances their optional `shutdown`.
        if let Ok(pool) = self.pool.get_mut() {
            for slot in pool.idle.iter_mut() {
                if let Ok(f) = slot.instance.get_func(&mut slot.store, abi::SHUTDOWN) {
                    let _ = call_with_bytes(slot, &f, &[]);
                }
            }
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
    current: RwLock<Arc<Generation<B>>>,
    counters: Counters,
    reload_lock: Mutex<()>,
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

fn call_with_bytes<B: Backend>(
    slot: &mut Slot<B>,
    func: &Func<B>,
    input: &[u8],
) -> std::result::Result<Vec<u8>, CallFailure> {
    slot.store.data_mut().guest_error = None;
    slot.store.data_mut().pending = None;
    let len = i32::try_from(input.len())
        .map_err(|_| CallFailure::Abi(format!("input of {} bytes is too large", input.len())))?;
    let ptr = slot
        .alloc
        .invoke(&mut slot.store, &[Val::I32(len)])
        .map_err(CallFailure::Engine)?;
    let ptr = ptr.first().and_then(Val::as_i32).unwrap_or(0) as u32;
    if ptr == 0 && len > 0 {
        return Err(CallFailure::Abi(format!(
            "`{}` could not allocate {len} bytes",
            abi::ALLOC
        )));
    }
    slot.memory
        .write(&mut slot.store, u64::from(ptr), input)
        .map_err(|_| {
            CallFailure::Abi(format!(
                "`{}` returned an out-of-range buffer ({len} bytes at {ptr:#x})",
                abi::ALLOC
            ))
        })?;
    let r = func
        .invoke(&mut slot.store, &[Val::I32(ptr as i32), Val::I32(len)])
        .map_err(CallFailure::Engine)?;
    if let Some(message) = slot.store.data_mut().guest_error.take() {
        return Err(CallFailure::Guest(message));
    }
    let (optr, olen) = abi::unpack(r.first().and_then(Val::as_i64).unwrap_or(0));
    slot.memory
        .read_vec(&slot.store, u64::from(optr), olen as usize)
        .map_err(|_| CallFailure::Abi(format!("output out of range ({olen} bytes at {optr:#x})")))
}

/// Why a call failed, before it is named for the caller.
enum CallFailure {
    Engine(Error),
    Guest(String),
    Abi(String),
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
    let sections: Vec<&[u8]> = module.custom_sections(abi::METADATA_SECTION).collect();
    let metadata = Metadata::from_module(id, &sections)?;
    let format = manifest.format.resolve();
    metadata.check_format(id, format)?;
    for import in module.imports() {
        let (m, n) = (import.module.as_str(), import.name.as_str());
        let granted = always_allowed(m, n) || manifest.grants(m, n);
        if !granted || !runtime.linker.is_defined(m, n) {
            return Err(PluginError::ImportNotGranted {
                plugin: id.to_string(),
                module: m.to_string(),
                name: n.to_string(),
            });
        }
    }
    Ok(Generation {
        number,
        module,
        metadata,
        format,
        state,
        pool: Mutex::new(PoolState {
            idle: Vec::new(),
            live: 0,
        }),
        available: Condvar::new(),
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
            CallFailure::Engine(e) => {
                if let Some(detail) = store.take_limit_refusal() {
                    return PluginError::MemoryLimit {
                        plugin,
                        function,
                        detail,
                    };
                }
                match e {
                    Error::Trap {
                        code: TrapCode::OutOfFuel,
                        ..
                    } => PluginError::OutOfFuel { plugin, function },
                    Error::Trap {
                        code: TrapCode::Deadline | TrapCode::Interrupted,
                        ..
                    } => PluginError::Deadline { plugin, function },
                    Error::Trap { code, .. } => PluginError::Trap {
                        plugin,
                        function,
                        code,
                    },
                    Error::Limit(detail) => PluginError::MemoryLimit {
                        plugin,
                        function,
                        detail,
                    },
                    Error::Host(h) if h.is::<AbiFault>() => PluginError::AbiViolation {
                        plugin,
                        function,
                        detail: h.to_string(),
                    },
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
        let config = self.runtime.engine.config();
        let mut fuel = 0;
        if config.fuel_enabled() {
            fuel = self.manifest.limits.fuel.unwrap_or(u64::MAX);
            store.set_fuel(fuel)?;
        }
        if config.interruptible_enabled() {
            store.set_deadline(self.manifest.limits.deadline.map(|d| Instant::now() + d))?;
        }
        let _ = store.take_limit_refusal();
        Ok(fuel)
    }

    fn new_slot(&self, generation: &Generation<B>) -> Result<Slot<B>> {
        let id = self.id();
        let mut store = Store::new(
            &self.runtime.engine,
            PluginState::new(self.ctx.clone(), generation.format, self.kv.clone()),
        );
        let mut limits = StoreLimits::new();
        limits.max_memory_pages = self.manifest.limits.max_memory_pages;
        limits.max_table_elements = self.manifest.limits.max_table_elements;
        store.set_limits(limits);
        self.arm(&mut store).map_err(|e| engine_err(id, e))?;
        let instance = match self
            .runtime
            .linker
            .instantiate(&mut store, &generation.module)
        {
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
        let mut slot = Slot {
            store,
            instance,
            memory,
            alloc,
            funcs: HashMap::new(),
        };
        if let Ok(f) = slot.instance.get_func(&mut slot.store, abi::SET_FORMAT) {
            let r = f.invoke(&mut slot.store, &[Val::I32(generation.format.abi_code())]);
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
            self.run(&mut slot, abi::INITIALIZE, &bytes)?;
        }
        if let Some(state) = &generation.state
            && self.has_function(&mut slot, abi::STATE_LOAD)
        {
            self.run(&mut slot, abi::STATE_LOAD, state)?;
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
        let f = slot
            .instance
            .get_func(&mut slot.store, name)
            .ok()
            .filter(|f| {
                f.ty(&slot.store).is_ok_and(|ty| {
                    ty.params() == [ValType::I32, ValType::I32] && ty.results() == [ValType::I64]
                })
            })
            .ok_or_else(|| PluginError::NoSuchFunction {
                plugin: self.id().to_string(),
                function: name.to_string(),
            })?;
        slot.funcs.insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// One call on one instance, with the per-call limits.
    fn run(&self, slot: &mut Slot<B>, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        let func = self.function(slot, function)?;
        let fuel = self
            .arm(&mut slot.store)
            .map_err(|e| engine_err(self.id(), e))?;
        let r = call_with_bytes(slot, &func, input);
        if fuel > 0
            && let Ok(left) = slot.store.get_fuel()
        {
            self.counters
                .fuel
                .fetch_add(fuel.saturating_sub(left), Ordering::Relaxed);
        }
        r.map_err(|f| self.name_failure(f, function, &mut slot.store))
    }

    fn acquire(&self, generation: &Generation<B>) -> Result<Slot<B>> {
        let mut pool = generation.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(slot) = pool.idle.pop() {
                return Ok(slot);
            }
            if pool.live < self.manifest.max_instances {
                pool.live += 1;
                drop(pool);
                return self.new_slot(generation).inspect_err(|_| {
                    let mut pool = generation.pool.lock().unwrap_or_else(|e| e.into_inner());
                    pool.live -= 1;
                    generation.available.notify_one();
                });
            }
            pool = generation
                .available
                .wait(pool)
                .unwrap_or_else(|e| e.into_inner());
        }
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
        generation.available.notify_one();
    }

    fn call_bytes(&self, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        let started = Instant::now();
        let generation = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // A host function of the application may panic; the panic goes on
        // to the caller (core resumes it at the call boundary), but first
        // the slot goes back (discarded), or the pool would shrink by one
        // per panic and calls would wait for an instance forever, and the
        // call is counted like any other.
        let outcome = (|| {
            let mut slot = match self.acquire(&generation) {
                Ok(slot) => slot,
                Err(e) => return Ok(Err(e)),
            };
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.run(&mut slot, function, input)
            }));
            let healthy = matches!(
                run,
                Ok(Ok(_) | Err(PluginError::Guest { .. } | PluginError::NoSuchFunction { .. }))
            );
            self.release(&generation, slot, healthy);
            run
        })();
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        if !matches!(outcome, Ok(Ok(_))) {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .busy_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match outcome {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Makes a generation ready: one instance, created now so that a module
    /// that does not link or initialise is refused before it serves calls.
    fn warm(&self, generation: &Generation<B>) -> Result<()> {
        let slot = self.new_slot(generation)?;
        let mut pool = generation.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.live += 1;
        pool.idle.push(slot);
        Ok(())
    }
}

impl<B: Backend> Plugin<B> {
    pub(crate) fn load(runtime: Arc<RuntimeInner<B>>, manifest: Manifest) -> Result<Self> {
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
            counters: Counters::default(),
            reload_lock: Mutex::new(()),
            current: RwLock::new(Arc::new(generation)),
            manifest,
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
        let format = self.format();
        let bytes = encode(format, input).map_err(|detail| PluginError::Encode {
            plugin: self.id().to_string(),
            detail,
        })?;
        let out = self.inner.call_bytes(function, &bytes)?;
        decode(format, &out).map_err(|detail| PluginError::AbiViolation {
            plugin: self.id().to_string(),
            function: function.to_string(),
            detail: format!("the output does not decode: {detail}"),
        })
    }

    /// Calls `function` with raw bytes (for plugins with their own format).
    pub fn call_raw(&self, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        self.inner.call_bytes(function, input)
    }

    /// Whether the current code exports a plugin function called `function`.
    pub fn has_function(&self, function: &str) -> bool {
        let generation = self
            .inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        generation.module.info().export(function).is_some_and(|e| {
            e.ty.func().is_some_and(|t| {
                t.params() == [ValType::I32, ValType::I32] && t.results() == [ValType::I64]
            })
        })
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

    /// Replaces the plugin's code with `bytes`, atomically: calls in flight
    /// finish on the old code, new calls go to the new code. If the old code
    /// exports `anywasm_state_save` and the new code `anywasm_state_load`,
    /// the state is handed over. If the new code does not compile, link or
    /// initialise, the old code keeps serving and the error is returned.
    /// Returns the new generation number.
    pub fn reload(&self, bytes: &[u8]) -> Result<u64> {
        let inner = &self.inner;
        let _one_at_a_time = inner.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old = inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let number = old.number + 1;
        let mut generation = prepare(&inner.runtime, &inner.manifest, number, bytes, None)?;
        let hand_over = generation.module.info().export(abi::STATE_LOAD).is_some()
            && old.module.info().export(abi::STATE_SAVE).is_some();
        if hand_over {
            let mut slot = inner.acquire(&old)?;
            let state = inner.run(&mut slot, abi::STATE_SAVE, &[]);
            inner.release(&old, slot, state.is_ok());
            generation.state = Some(state?);
        }
        inner.warm(&generation)?;
        *inner.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(generation);
        inner.counters.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(number)
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
