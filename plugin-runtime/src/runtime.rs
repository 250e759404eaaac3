//! The runtime: one engine, a module cache shared by all plugins, and the
//! host functions plugins may import.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anywasm::{Backend, Config, ContentHash, Engine, Linker, Module};

use crate::error::{PluginError, Result};
use crate::host::{HostFunctions, PluginState, define_all};
use crate::manifest::Manifest;
use crate::plugin::Plugin;

pub(crate) struct RuntimeInner<B: Backend> {
    pub(crate) engine: Engine<B>,
    pub(crate) linker: Linker<B, PluginState>,
    modules: Mutex<HashMap<ContentHash, Module<B>>>,
    compiled: AtomicU64,
    cache_hits: AtomicU64,
}

impl<B: Backend> RuntimeInner<B> {
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
            return Ok(m.clone());
        }
        let module = Module::new(&self.engine, &bytes).map_err(|source| PluginError::Engine {
            plugin: plugin.to_string(),
            source,
        })?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
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

/// Configures a [`PluginRuntime`].
pub struct PluginRuntimeBuilder<B: Backend> {
    host: HostFunctions,
    config: Config,
    _backend: std::marker::PhantomData<B>,
}

impl<B: Backend> PluginRuntimeBuilder<B> {
    /// Registers host functions (see [`HostFunctions`]).
    pub fn host(mut self, f: impl FnOnce(&mut HostFunctions)) -> Self {
        f(&mut self.host);
        self
    }

    /// Replaces the engine configuration. Fuel and interruption stay on when
    /// the backend supports them, since per-call limits need them.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Creates the runtime.
    pub fn build(self) -> Result<PluginRuntime<B>> {
        let runtime_err = |source| PluginError::Engine {
            plugin: "<runtime>".into(),
            source,
        };
        let caps = B::capabilities();
        let mut config = self.config;
        config.consume_fuel(caps.fuel).interruptible(caps.deadline);
        let engine = Engine::<B>::new(&config).map_err(runtime_err)?;
        let mut linker = Linker::new();
        define_all(&mut linker, &self.host).map_err(runtime_err)?;
        Ok(PluginRuntime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                modules: Mutex::default(),
                compiled: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
            }),
        })
    }
}

impl<B: Backend> PluginRuntime<B> {
    /// A builder, to register host functions first.
    pub fn builder() -> PluginRuntimeBuilder<B> {
        PluginRuntimeBuilder {
            host: HostFunctions::default(),
            config: Config::new(),
            _backend: std::marker::PhantomData,
        }
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

    /// The engine plugins run on.
    pub fn engine(&self) -> &Engine<B> {
        &self.inner.engine
    }

    /// `(modules compiled, loads served from the cache)`.
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.inner.compiled.load(Ordering::Relaxed),
            self.inner.cache_hits.load(Ordering::Relaxed),
        )
    }
}
