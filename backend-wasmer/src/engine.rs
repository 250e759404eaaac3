//! Engines: capabilities, configuration, and the one compiler per engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anywasm_core::{BackendEngine, Capabilities, Config, Error, Features, OptLevel, Result};
use wasmer::sys::NativeEngineExt;

use crate::control::Control;
use crate::{NAME, Wasmer, limits};

/// The engine handle.
#[derive(Clone)]
pub struct WrEngine {
    pub(crate) engine: wasmer::Engine,
    pub(crate) fuel: bool,
    pub(crate) interruptible: bool,
    pub(crate) compiler: Arc<Compiler>,
}

impl WrEngine {
    /// wasmer's engine.
    pub fn inner(&self) -> &wasmer::Engine {
        &self.engine
    }

    /// Whether modules of this engine import the store's control globals.
    pub(crate) fn controlled(&self) -> bool {
        self.fuel || self.interruptible
    }
}

/// What every compile of an engine goes through: the control middleware
/// keeps the plan of the module being compiled, so compiles of one engine
/// (user modules and the backend's thunks alike) take turns.
#[derive(Debug, Default)]
pub(crate) struct Compiler {
    pub(crate) lock: Mutex<()>,
    pub(crate) control: Arc<Control>,
    /// Modules (thunks included) whose code this engine holds: wasmer
    /// frees code only when the engine goes, with this.
    compiled: AtomicU64,
}

/// Modules whose code the wasmer engines of this process hold.
static CODE_HELD: AtomicU64 = AtomicU64::new(0);

/// How many modules' code the wasmer engines of the process may hold.
///
/// wasmer keeps each module's code mapped until its engine is dropped (two
/// mappings a module), and panics when the system refuses another mapping,
/// leaving the engine's lock poisoned for good (every later compile, host
/// function or funcref read on it panics). On Linux a process may have
/// `vm.max_map_count` mappings (65 530 by default); the backend lets wasmer
/// take at most half of them, so it refuses the module with an error first.
/// Elsewhere there is no such count.
fn code_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(u64::MAX, |maps| maps / 4)
    })
}

impl Compiler {
    /// Takes a place for one more module's code, or refuses with
    /// `Error::Limit` when the process's wasmer engines hold all they may.
    pub(crate) fn take_code_place(&self) -> Result<()> {
        let limit = code_limit();
        CODE_HELD
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map_err(|n| {
                Error::Limit(format!(
                    "wasmer: the wasmer engines of this process hold the code of {n} modules, the \
                     most the system's memory mappings allow; wasmer frees a module's code only \
                     when its engine is dropped: drop engines no longer used, or compile on a \
                     new engine after dropping an old one"
                ))
            })?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back the place of a module that did not compile.
    pub(crate) fn give_back_code_place(&self) {
        self.compiled.fetch_sub(1, Ordering::Relaxed);
        CODE_HELD.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Compiler {
    fn drop(&mut self) {
        CODE_HELD.fetch_sub(*self.compiled.get_mut(), Ordering::AcqRel);
    }
}

/// The proposals the layer supports on wasmer.
fn supported_features() -> Features {
    let mut f = Features::wasm2();
    f.exceptions = true;
    f.relaxed_simd = true;
    f.multi_memory = true;
    f.extended_const = true;
    f.wide_arithmetic = true;
    f
}

impl BackendEngine for Wasmer {
    fn capabilities() -> Capabilities {
        let mut c = Capabilities::new(NAME, <Self as anywasm_core::BackendTypes>::ENGINE_VERSION);
        c.jit = true;
        c.fuel = true;
        c.deadline = true;
        c.memory_limit = true;
        c.stack_limit = false;
        c.precompiled_modules = true;
        c.memory_slice = true;
        c.extern_ref = true;
        c.async_calls = cfg!(feature = "async");
        c.features = supported_features();
        c
    }

    fn engine_new(config: &Config) -> Result<WrEngine> {
        let mut compiler = wasmer::sys::Cranelift::new();
        compiler.opt_level(match config.get_opt_level() {
            OptLevel::None => wasmer::sys::CraneliftOptLevel::None,
            OptLevel::Speed => wasmer::sys::CraneliftOptLevel::Speed,
        });
        let ours = Arc::new(Compiler::default());
        if config.fuel_enabled() || config.interruptible_enabled() {
            use wasmer::sys::CompilerConfig;
            compiler.push_middleware(ours.control.clone());
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
            compiler: ours,
        })
    }
}
