//! The runtime: one engine, a module cache shared by all plugins, and the
//! host functions plugins may import.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anywasm::{
    Backend, CodeCache, CodeCacheOutcome, Config, ContentHash, Engine, Linker, MemoryBudget, Module,
};

use crate::error::{PluginError, Result};
use crate::host::{HostFunctions, PluginState, define_all};
use crate::manifest::Manifest;
use crate::plugin::Plugin;

pub(crate) struct RuntimeInner<B: Backend> {
    pub(crate) engine: Engine<B>,
    /// The engine configuration, for engines of their own (see `compile`).
    config: Config,
    pub(crate) linker: Linker<B, PluginState>,
    modules: Mutex<ModuleCache<B>>,
    compiled: AtomicU64,
    cache_hits: AtomicU64,
    /// Compiled code on disk, if the runtime has a `cache_dir`.
    code_cache: Option<CodeCache>,
    code_cache_loads: AtomicU64,
    /// Shared by the stores of every instance of every plugin.
    pub(crate) budget: Option<Arc<MemoryBudget>>,
    /// Receives log lines (and WASI standard output and error).
    pub(crate) log: Option<crate::host::LogFn>,
    /// The names of the application's async host functions (`host.<name>`).
    async_imports: std::collections::HashSet<String>,
}

/// Compiled modules by the hash of their bytes, least recently used first
/// out when their bytes pass the cache's size or their number its count
/// (compiled code takes several times the wasm's size, and small modules
/// take at least a few pages each, so bytes alone do not bound memory).
struct ModuleCache<B: Backend> {
    entries: HashMap<ContentHash, (Module<B>, u64)>,
    /// Sum of the cached modules' sizes (their wasm bytes).
    bytes: u64,
    max_bytes: u64,
    max_entries: usize,
    tick: u64,
}

impl<B: Backend> ModuleCache<B> {
    fn get(&mut self, hash: &ContentHash) -> Option<Module<B>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(hash).map(|(m, used)| {
            *used = tick;
            m.clone()
        })
    }

    fn insert(&mut self, hash: ContentHash, module: Module<B>) {
        let size = module.size() as u64;
        if size > self.max_bytes || self.max_entries == 0 {
            return;
        }
        self.tick += 1;
        if let Some((old, _)) = self.entries.insert(hash, (module, self.tick)) {
            self.bytes -= old.size() as u64;
        }
        self.bytes += size;
        while self.bytes > self.max_bytes || self.entries.len() > self.max_entries {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(h, _)| *h)
            else {
                break;
            };
            if let Some((m, _)) = self.entries.remove(&oldest) {
                self.bytes -= m.size() as u64;
            }
        }
    }
}

/// The default size of the module cache: 64 MiB of WebAssembly.
pub const DEFAULT_MODULE_CACHE_BYTES: u64 = 64 << 20;
/// The default number of modules the cache keeps.
pub const DEFAULT_MODULE_CACHE_ENTRIES: usize = 64;

impl<B: Backend> RuntimeInner<B> {
    /// Whether `module`.`name` is one of the application's async host
    /// functions.
    pub(crate) fn is_async_import(&self, module: &str, name: &str) -> bool {
        !self.async_imports.is_empty() && self.async_imports.contains(&format!("{module}.{name}"))
    }

    /// Compiles `bytes` (binary or text), or returns the module already
    /// compiled from the same bytes.
    pub(crate) fn compile(&self, plugin: &str, bytes: &[u8]) -> Result<Module<B>> {
        let bytes = wat::parse_bytes(bytes).map_err(|e| PluginError::Engine {
            plugin: plugin.to_string(),
            source: anywasm::Error::Wat {
                message: e.to_string(),
            },
        })?;
        let hash = ContentHash::of(&bytes);
        if let Some(m) = self
            .modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(m);
        }
        let engine_err = |source| PluginError::Engine {
            plugin: plugin.to_string(),
            source,
        };
        // Where dropping a module does not free its code (wasmi, wasmer),
        // each new module gets an engine of its own, dropped with the last
        // module, instance and store of it: code replaced by a reload is
        // freed once its calls finish and the cache lets it go.
        let own_engine;
        let engine = if B::capabilities().code_freed_with_module {
            &self.engine
        } else {
            own_engine = Engine::<B>::new(&self.config).map_err(engine_err)?;
            &own_engine
        };
        let module = match &self.code_cache {
            Some(cache) => {
                let (module, outcome) = cache.module(engine, &bytes).map_err(engine_err)?;
                if outcome == CodeCacheOutcome::Loaded {
                    self.code_cache_loads.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.compiled.fetch_add(1, Ordering::Relaxed);
                }
                module
            }
            None => {
                let module = Module::new(engine, &bytes).map_err(engine_err)?;
                self.compiled.fetch_add(1, Ordering::Relaxed);
                module
            }
        };
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, module.clone());
        Ok(module)
    }
}

/// Loads plugins on backend `B`.
///
/// ```
/// # fn main() -> Result<(), anywasm_plugin::PluginError> {
/// use anywasm_plugin::PluginRuntime;
/// let runtime = PluginRuntime::<anywasm::DefaultBackend>::builder()
///     .host(|h| h.register("double", |_ctx, x: i64| Ok(x * 2)))
///     .build()?;
/// assert_eq!(runtime.cache_stats(), (0, 0));
/// # Ok(()) }
/// ```
pub struct PluginRuntime<B: Backend> {
    inner: Arc<RuntimeInner<B>>,
}

impl<B: Backend> Clone for PluginRuntime<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for PluginRuntime<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("backend", &B::NAME)
            .finish_non_exhaustive()
    }
}

/// What a runtime is built from, whichever way its backend is chosen.
pub(crate) struct Options {
    pub(crate) host: HostFunctions,
    pub(crate) config: Config,
    pub(crate) cache_bytes: u64,
    pub(crate) cache_entries: usize,
    pub(crate) memory_budget: Option<u64>,
    pub(crate) cache_dir: Option<std::path::PathBuf>,
    /// WASI's waits as async host functions (see `async_wasi`).
    pub(crate) async_wasi: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            host: HostFunctions::default(),
            config: Config::new(),
            cache_bytes: DEFAULT_MODULE_CACHE_BYTES,
            cache_entries: DEFAULT_MODULE_CACHE_ENTRIES,
            memory_budget: None,
            cache_dir: None,
            async_wasi: false,
        }
    }
}

impl Options {
    /// The imports that are async host functions, as `module.name`.
    fn async_imports(&self) -> std::collections::HashSet<String> {
        #[cfg(feature = "async")]
        let mut names: std::collections::HashSet<String> = self
            .host
            .bytes_async
            .keys()
            .map(|n| format!("host.{n}"))
            .collect();
        #[cfg(not(feature = "async"))]
        let mut names = std::collections::HashSet::new();
        if self.async_wasi {
            names.insert("wasi_snapshot_preview1.poll_oneoff".to_string());
            names.insert("wasi_snapshot_preview1.fd_read".to_string());
        }
        names
    }

    pub(crate) fn build<B: Backend>(self) -> Result<PluginRuntime<B>> {
        let runtime_err = |source| PluginError::Engine {
            plugin: "<runtime>".into(),
            source,
        };
        let async_imports = self.async_imports();
        let caps = B::capabilities();
        let mut config = self.config;
        config.consume_fuel(caps.fuel).interruptible(caps.deadline);
        let engine = Engine::<B>::new(&config).map_err(runtime_err)?;
        let mut linker = Linker::new();
        define_all(&mut linker, &self.host, self.async_wasi).map_err(runtime_err)?;
        let code_cache = self
            .cache_dir
            .map(CodeCache::open)
            .transpose()
            .map_err(runtime_err)?;
        Ok(PluginRuntime {
            inner: Arc::new(RuntimeInner {
                engine,
                config,
                linker,
                modules: Mutex::new(ModuleCache {
                    entries: HashMap::new(),
                    bytes: 0,
                    max_bytes: self.cache_bytes,
                    max_entries: self.cache_entries,
                    tick: 0,
                }),
                compiled: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                code_cache,
                code_cache_loads: AtomicU64::new(0),
                budget: self.memory_budget.map(MemoryBudget::new),
                log: self.host.log.clone(),
                async_imports,
            }),
        })
    }
}

/// Configures a plugin runtime: a [`PluginRuntimeBuilder`] (from
/// [`PluginRuntime::builder`]) makes a runtime of a backend chosen at
/// compile time, an [`AnyPluginRuntimeBuilder`](crate::AnyPluginRuntimeBuilder)
/// (from [`AnyPluginRuntime::builder`](crate::AnyPluginRuntime::builder)) one
/// of a backend named at run time. The options are the same.
pub struct RuntimeBuilder<T> {
    opts: Options,
    target: T,
}

/// Configures a [`PluginRuntime`] of backend `B`.
pub type PluginRuntimeBuilder<B> = RuntimeBuilder<std::marker::PhantomData<B>>;

impl<T> RuntimeBuilder<T> {
    pub(crate) fn for_target(target: T) -> Self {
        Self {
            opts: Options::default(),
            target,
        }
    }

    /// The backend choice and the options, for `build`.
    pub(crate) fn into_parts(self) -> (T, Options) {
        (self.target, self.opts)
    }

    /// Registers host functions (see [`HostFunctions`]).
    pub fn host(mut self, f: impl FnOnce(&mut HostFunctions)) -> Self {
        f(&mut self.opts.host);
        self
    }

    /// Replaces the engine configuration. Fuel and interruption stay on when
    /// the backend supports them, since per-call limits need them.
    pub fn config(mut self, config: Config) -> Self {
        self.opts.config = config;
        self
    }

    /// The most WebAssembly (in bytes of modules) the module cache keeps;
    /// the least recently used modules go first ([`DEFAULT_MODULE_CACHE_BYTES`]
    /// by default). Plugins keep their own modules alive however the cache
    /// changes.
    pub fn module_cache_bytes(mut self, bytes: u64) -> Self {
        self.opts.cache_bytes = bytes;
        self
    }

    /// The most modules the cache keeps ([`DEFAULT_MODULE_CACHE_ENTRIES`]
    /// by default); 0 turns the cache off.
    pub fn module_cache_entries(mut self, entries: usize) -> Self {
        self.opts.cache_entries = entries;
        self
    }

    /// The most linear memory, in bytes, that all instances of all plugins
    /// of this runtime may hold together, old versions still draining after
    /// a reload included (no budget by default; each instance still has its
    /// manifest's `max_memory_pages`). A memory that would grow past it
    /// fails like any memory limit: `memory.grow` answers -1 to the guest,
    /// and an instance that cannot be created or a call that cannot get its
    /// memory ends with [`PluginError::MemoryBudget`]. Memory returns to the
    /// budget when an instance is dropped.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.opts.memory_budget = Some(bytes);
        self
    }

    /// Keeps compiled plugin code on disk in `dir`, so that a plugin is
    /// compiled once rather than in every process (see
    /// [`anywasm::CodeCache`], whose size cap and checks apply). The
    /// directory must be private to the user: `build` fails with
    /// [`PluginError::Engine`] if others may write to it. On wasmi, which
    /// compiles lazily and keeps no compiled code, plugins compile as
    /// before. Off by default.
    pub fn cache_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.opts.cache_dir = Some(dir.into());
        self
    }

    /// Makes WASI's waits (`poll_oneoff`, reading the host's standard
    /// input) async host functions (feature `async`; see
    /// [`anywasm_wasi::add_to_linker_async`]): a WASI plugin that sleeps or
    /// waits for input in a [`Plugin::call_async`](crate::Plugin::call_async)
    /// does not block the executor. A plugin that imports either then runs
    /// only in async calls ([`PluginError::AsyncOnly`] otherwise), and only
    /// on backends with async calls. Off by default.
    #[cfg(feature = "async")]
    pub fn async_wasi(mut self, on: bool) -> Self {
        self.opts.async_wasi = on;
        self
    }
}

impl<B: Backend> PluginRuntimeBuilder<B> {
    /// Creates the runtime.
    pub fn build(self) -> Result<PluginRuntime<B>> {
        self.opts.build()
    }
}

impl<B: Backend> PluginRuntime<B> {
    /// A builder, to register host functions first.
    pub fn builder() -> PluginRuntimeBuilder<B> {
        RuntimeBuilder::for_target(std::marker::PhantomData)
    }

    /// A runtime without application host functions.
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// Loads a plugin: reads and compiles its code (or takes it from the
    /// cache), checks its metadata, ABI version, format and imports against
    /// the manifest, and creates a first instance.
    pub fn load(&self, manifest: Manifest) -> Result<Plugin<B>> {
        Plugin::load(self.inner.clone(), manifest)
    }

    /// The runtime's engine. On backends whose modules free their code when
    /// dropped (wasmtime) every plugin runs on it; on the others (wasmi,
    /// wasmer) each compiled plugin module has an engine of its own, with
    /// the same configuration, so that replaced code can be freed.
    pub fn engine(&self) -> &Engine<B> {
        &self.inner.engine
    }

    /// Empties the module cache (plugins keep the modules they run).
    pub fn clear_cache(&self) {
        let mut cache = self.inner.modules.lock().unwrap_or_else(|e| e.into_inner());
        cache.entries.clear();
        cache.bytes = 0;
    }

    /// `(modules in the cache, bytes of WebAssembly they hold)`.
    pub fn cache_size(&self) -> (usize, u64) {
        let cache = self.inner.modules.lock().unwrap_or_else(|e| e.into_inner());
        (cache.entries.len(), cache.bytes)
    }

    /// `(bytes in use, budget)` of the runtime's memory budget, if it has
    /// one (see [`PluginRuntimeBuilder::memory_budget`]).
    pub fn memory_budget(&self) -> Option<(u64, u64)> {
        self.inner.budget.as_ref().map(|b| (b.used(), b.limit()))
    }

    /// Modules whose compiled code came from the code cache on disk (see
    /// [`PluginRuntimeBuilder::cache_dir`]); they are not counted as
    /// compiled in [`cache_stats`](Self::cache_stats).
    pub fn code_cache_loads(&self) -> u64 {
        self.inner.code_cache_loads.load(Ordering::Relaxed)
    }

    /// `(modules compiled, loads served from the cache)`.
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.inner.compiled.load(Ordering::Relaxed),
            self.inner.cache_hits.load(Ordering::Relaxed),
        )
    }
}
