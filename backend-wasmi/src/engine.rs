//! Engines: capabilities and configuration.

use anywasm_core::{BackendEngine, Capabilities, Config, Features, Result};

use crate::{NAME, Wasmi};

/// The engine handle.
#[derive(Clone)]
pub struct WiEngine {
    pub(crate) engine: wasmi::Engine,
}

impl WiEngine {
    /// wasmi's engine.
    pub fn inner(&self) -> &wasmi::Engine {
        &self.engine
    }
}

impl BackendEngine for Wasmi {
    fn capabilities() -> Capabilities {
        let mut c = Capabilities::new(NAME, <Self as anywasm_core::BackendTypes>::ENGINE_VERSION);
        c.fuel = true;
        c.deadline = true;
        c.memory_limit = true;
        c.stack_limit = true;
        c.memory_slice = true;
        c.extern_ref = true;
        c.exact_caller = true;
        // wasmi keeps compiled functions in the engine's code map until the
        // engine is dropped.
        c.code_freed_with_module = false;
        c.async_calls = cfg!(feature = "async");
        // Everything the layer runs but exceptions, typed references and
        // GC, which wasmi 2.0 does not implement (nor threads).
        c.features = Features::representable();
        c.features.exceptions = false;
        c.features.function_references = false;
        c.features.gc = false;
        c
    }

    fn engine_new(config: &Config) -> Result<WiEngine> {
        let mut c = wasmi::Config::default();
        let f = config.get_features();
        c.consume_fuel(config.fuel_enabled() || config.interruptible_enabled())
            .wasm_mutable_global(f.mutable_global)
            .wasm_sign_extension(f.sign_extension)
            .wasm_saturating_float_to_int(f.saturating_float_to_int)
            .wasm_multi_value(f.multi_value)
            .wasm_bulk_memory(f.bulk_memory)
            .wasm_reference_types(f.reference_types)
            .wasm_simd(f.simd)
            .wasm_relaxed_simd(f.relaxed_simd)
            .wasm_multi_memory(f.multi_memory)
            .wasm_memory64(f.memory64)
            .wasm_tail_call(f.tail_call)
            .wasm_extended_const(f.extended_const)
            .wasm_wide_arithmetic(f.wide_arithmetic)
            .wasm_custom_page_sizes(f.custom_page_sizes);
        if config.interruptible_enabled() {
            // Interruptible stores run calls in fuel slices and resume them
            // when a slice runs out. wasmi charges the translation of a
            // lazily compiled function to the fuel at hand and, when that
            // runs out, fails the call without a way to resume it; compiling
            // every function up front keeps slices invisible.
            c.compilation_mode(wasmi::CompilationMode::Eager);
        }
        if let Some(bytes) = config.get_max_wasm_stack() {
            // wasmi keeps wasm values on its own stack of 8-byte cells, and
            // counts call frames separately; a frame costs at least a few cells.
            let cells = (bytes / 8).max(1024);
            c.set_max_stack_height(cells);
            c.set_max_recursion_depth((bytes / 64).max(64));
        } else {
            // wasmi's own default allows 1000 nested calls; wasmtime's default
            // 512 KiB stack allows several thousand. Use the same translation
            // as above of wasmtime's default so that code that recurses a few
            // thousand deep runs on every backend.
            c.set_max_recursion_depth(512 * 1024 / 64);
        }
        Ok(WiEngine {
            engine: wasmi::Engine::new(&c),
        })
    }
}
