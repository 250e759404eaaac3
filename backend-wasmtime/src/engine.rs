//! Engines: capabilities and configuration.

use anywasm_core::{
    BackendEngine, BackendTypes, Capabilities, Config, Error, Features, OptLevel, Result,
};

use crate::Wasmtime;

/// The engine handle: wasmtime's engine plus whether it is interruptible.
#[derive(Clone)]
pub struct WtEngine {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) interruptible: bool,
}

impl WtEngine {
    /// wasmtime's engine.
    pub fn inner(&self) -> &wasmtime::Engine {
        &self.engine
    }
}

impl BackendEngine for Wasmtime {
    fn capabilities() -> Capabilities {
        let mut c = Capabilities::new(Self::NAME, Self::ENGINE_VERSION);
        c.jit = true;
        c.fuel = true;
        c.deadline = true;
        c.memory_limit = true;
        c.stack_limit = true;
        c.precompiled_modules = true;
        c.memory_slice = true;
        c.extern_ref = true;
        c.exact_caller = true;
        // A module's code is reference-counted and unmapped with it.
        c.code_freed_with_module = true;
        c.async_calls = cfg!(feature = "async");
        // wasmtime implements more (threads), which the layer cannot
        // represent yet; see `Features::representable`.
        c.features = Features::representable();
        c
    }

    fn engine_new(config: &Config) -> Result<WtEngine> {
        let mut c = wasmtime::Config::new();
        let f = config.get_features();
        c.cranelift_opt_level(match config.get_opt_level() {
            OptLevel::None => wasmtime::OptLevel::None,
            OptLevel::Speed => wasmtime::OptLevel::Speed,
        })
        .consume_fuel(config.fuel_enabled())
        .epoch_interruption(config.interruptible_enabled())
        .wasm_multi_value(f.multi_value)
        .wasm_bulk_memory(f.bulk_memory)
        .wasm_reference_types(f.reference_types)
        .wasm_simd(f.simd)
        .wasm_relaxed_simd(f.relaxed_simd)
        .wasm_multi_memory(f.multi_memory)
        .wasm_memory64(f.memory64)
        .wasm_tail_call(f.tail_call)
        .wasm_extended_const(f.extended_const)
        .wasm_exceptions(f.exceptions)
        .wasm_function_references(f.function_references)
        .wasm_gc(f.gc)
        .wasm_wide_arithmetic(f.wide_arithmetic)
        .wasm_custom_page_sizes(f.custom_page_sizes);
        if let Some(stack) = config.get_max_wasm_stack() {
            c.max_wasm_stack(stack);
        }
        let engine = wasmtime::Engine::new(&c).map_err(|e| Error::Backend {
            backend: Self::NAME,
            message: format!("{e:#}"),
        })?;
        Ok(WtEngine {
            engine,
            interruptible: config.interruptible_enabled(),
        })
    }
}
