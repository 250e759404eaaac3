//! Engines: a configured backend, shared by modules and stores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::capabilities::Capabilities;
use crate::config::Config;
use crate::error::Result;
use crate::store::{StoreShared, StoreStats};

/// Counters of one engine, over all its modules and stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EngineStats {
    /// Modules compiled (or deserialised) with this engine.
    pub modules_compiled: u64,
    /// Stores currently alive.
    pub stores_alive: u64,
    /// Instances living in stores that are alive.
    pub instances_alive: u64,
    /// Instances ever created.
    pub instances_created: u64,
    /// Calls from the host into wasm, over all stores ever created.
    pub calls: u64,
    /// Fuel consumed, over all stores ever created.
    pub fuel_consumed: u64,
}

/// The engine-wide counters and the registry of live stores.
#[derive(Debug, Default)]
pub struct EngineShared {
    modules_compiled: AtomicU64,
    instances_created: AtomicU64,
    retired: Mutex<StoreStats>,
    live: Mutex<Vec<Weak<StoreShared>>>,
}

impl EngineShared {
    pub(crate) fn module_compiled(&self) {
        self.modules_compiled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn instance_created(&self) {
        self.instances_created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn register_store(&self, store: &Arc<StoreShared>) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(store));
        }
    }

    pub(crate) fn retire_store(&self, stats: &StoreStats) {
        if let Ok(mut r) = self.retired.lock() {
            r.calls += stats.calls;
            r.fuel_consumed += stats.fuel_consumed;
        }
    }

    fn stats(&self) -> EngineStats {
        let mut out = EngineStats {
            modules_compiled: self.modules_compiled.load(Ordering::Relaxed),
            instances_created: self.instances_created.load(Ordering::Relaxed),
            ..EngineStats::default()
        };
        if let Ok(r) = self.retired.lock() {
            out.calls = r.calls;
            out.fuel_consumed = r.fuel_consumed;
        }
        if let Ok(live) = self.live.lock() {
            for s in live.iter().filter_map(Weak::upgrade) {
                let st = s.stats();
                out.stores_alive += 1;
                out.instances_alive += st.instances;
                out.calls += st.calls;
                out.fuel_consumed += st.fuel_consumed;
            }
        }
        out
    }
}

/// A configured engine of backend `B`.
///
/// Cheap to clone (all clones share the engine). Modules compiled with an
/// engine can be instantiated in any store of the same engine.
///
/// ```
/// # fn demo<B: anywasm_core::Backend>() -> anywasm_core::Result<()> {
/// use anywasm_core::{Config, Engine};
/// let engine = Engine::<B>::new(Config::new().consume_fuel(true))?;
/// assert!(engine.capabilities().fuel);
/// # Ok(()) }
/// ```
pub struct Engine<B: BackendTypes> {
    raw: B::Engine,
    config: Arc<Config>,
    shared: Arc<EngineShared>,
}

impl<B: Backend> Clone for Engine<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            config: self.config.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Engine<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &B::NAME)
            .field("config", &self.config)
            .finish()
    }
}

impl<B: Backend> Engine<B> {
    /// Creates an engine, or fails with [`Error::Unsupported`](crate::Error::Unsupported)
    /// if the backend cannot honour `config`.
    pub fn new(config: &Config) -> Result<Self> {
        config.check_against(B::NAME, &B::capabilities())?;
        let raw = B::engine_new(config)?;
        Ok(Self {
            raw,
            config: Arc::new(config.clone()),
            shared: Arc::default(),
        })
    }

    /// An engine with the default [`Config`].
    pub fn default_config() -> Result<Self> {
        Self::new(&Config::new())
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        B::NAME
    }

    /// What the backend supports.
    pub fn capabilities(&self) -> Capabilities {
        B::capabilities()
    }

    /// The configuration the engine was created with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters over all modules and stores of this engine.
    pub fn stats(&self) -> EngineStats {
        self.shared.stats()
    }

    /// The engine's own handle.
    pub fn raw(&self) -> &B::Engine {
        &self.raw
    }

    pub(crate) fn shared(&self) -> &Arc<EngineShared> {
        &self.shared
    }
}
