//! Engine configuration shared by every backend.

use crate::{Error, Result};

/// WebAssembly proposals that can be switched on or off.
///
/// The default is WebAssembly 2.0 (mutable globals, sign extension,
/// saturating conversions, multi-value, bulk memory, reference types and
/// SIMD), which every backend supports. Asking a backend for a proposal it
/// lacks makes [`Engine::new`](crate::Engine::new) fail with
/// [`Error::Unsupported`]; see [`Capabilities::features`](crate::Capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Features {
    /// Mutable imported and exported globals.
    pub mutable_global: bool,
    /// Sign-extension operators.
    pub sign_extension: bool,
    /// Non-trapping float-to-int conversions.
    pub saturating_float_to_int: bool,
    /// Multiple results and block parameters.
    pub multi_value: bool,
    /// Bulk memory and table operations.
    pub bulk_memory: bool,
    /// `funcref`/`externref` values, multiple tables.
    pub reference_types: bool,
    /// 128-bit SIMD.
    pub simd: bool,
    /// Relaxed SIMD.
    pub relaxed_simd: bool,
    /// Shared memories and atomics.
    pub threads: bool,
    /// More than one memory per module.
    pub multi_memory: bool,
    /// 64-bit memory and table indices.
    pub memory64: bool,
    /// `return_call` and friends.
    pub tail_call: bool,
    /// Extended constant expressions.
    pub extended_const: bool,
    /// Exception handling (`try_table`, `throw`, `throw_ref`, `exnref`).
    pub exceptions: bool,
    /// The pre-standard encoding of exception handling (`try`, `catch`,
    /// `rethrow`, `delegate`), which toolchains emitted before `try_table`.
    /// No backend claims it: wasmtime only validates it and wasmer and
    /// wasmi do not know it, so asking for it is `Unsupported` and such a
    /// module does not compile.
    pub legacy_exceptions: bool,
    /// Typed function references.
    pub function_references: bool,
    /// Garbage-collected structs and arrays.
    pub gc: bool,
    /// 128-bit integer arithmetic helpers.
    pub wide_arithmetic: bool,
    /// Memories with non-64 KiB page sizes.
    pub custom_page_sizes: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self::wasm2()
    }
}

impl Features {
    /// WebAssembly 1.0 (MVP) plus mutable globals.
    pub fn wasm1() -> Self {
        Self {
            mutable_global: true,
            sign_extension: false,
            saturating_float_to_int: false,
            multi_value: false,
            bulk_memory: false,
            reference_types: false,
            simd: false,
            relaxed_simd: false,
            threads: false,
            multi_memory: false,
            memory64: false,
            tail_call: false,
            extended_const: false,
            exceptions: false,
            legacy_exceptions: false,
            function_references: false,
            gc: false,
            wide_arithmetic: false,
            custom_page_sizes: false,
        }
    }

    /// WebAssembly 2.0: the MVP plus sign extension, saturating conversions,
    /// multi-value, bulk memory, reference types and SIMD.
    pub fn wasm2() -> Self {
        Self {
            sign_extension: true,
            saturating_float_to_int: true,
            multi_value: true,
            bulk_memory: true,
            reference_types: true,
            simd: true,
            ..Self::wasm1()
        }
    }

    /// Every proposal the layer knows about switched on.
    pub fn all() -> Self {
        Self {
            relaxed_simd: true,
            threads: true,
            multi_memory: true,
            memory64: true,
            tail_call: true,
            extended_const: true,
            exceptions: true,
            legacy_exceptions: true,
            function_references: true,
            gc: true,
            wide_arithmetic: true,
            custom_page_sizes: true,
            ..Self::wasm2()
        }
    }

    /// Every proposal the layer can run modules of today: all but shared
    /// memories (threads) and the legacy exception encoding, which no engine
    /// runs. Exceptions are represented by
    /// [`Tag`](crate::Tag)s. Typed references (function references, GC) and
    /// `exnref` run inside modules, but the layer's [`ValType`](crate::ValType)
    /// has no typed reference types, so a module whose imports or exports
    /// carry one is refused at compile time with `Unsupported`, and so is a
    /// host call of a function with one in its signature. A backend claims
    /// these where its engine runs them.
    pub fn representable() -> Self {
        Self {
            threads: false,
            legacy_exceptions: false,
            ..Self::all()
        }
    }

    /// Each feature with its name, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, bool)> {
        [
            ("mutable-global", self.mutable_global),
            ("sign-extension", self.sign_extension),
            ("saturating-float-to-int", self.saturating_float_to_int),
            ("multi-value", self.multi_value),
            ("bulk-memory", self.bulk_memory),
            ("reference-types", self.reference_types),
            ("simd", self.simd),
            ("relaxed-simd", self.relaxed_simd),
            ("threads", self.threads),
            ("multi-memory", self.multi_memory),
            ("memory64", self.memory64),
            ("tail-call", self.tail_call),
            ("extended-const", self.extended_const),
            ("exceptions", self.exceptions),
            ("legacy-exceptions", self.legacy_exceptions),
            ("function-references", self.function_references),
            ("gc", self.gc),
            ("wide-arithmetic", self.wide_arithmetic),
            ("custom-page-sizes", self.custom_page_sizes),
        ]
        .into_iter()
    }

    /// The names of features switched on in `self` but not in `supported`.
    pub fn missing_from(&self, supported: &Features) -> Vec<&'static str> {
        self.iter()
            .zip(supported.iter())
            .filter(|((_, want), (_, have))| *want && !*have)
            .map(|((name, _), _)| name)
            .collect()
    }

    /// The same set as `wasmparser` features, for validation done by the layer.
    pub fn to_wasmparser(&self) -> wasmparser::WasmFeatures {
        use wasmparser::WasmFeatures as W;
        let mut f = W::empty();
        f.set(W::FLOATS, true);
        f.set(W::MUTABLE_GLOBAL, self.mutable_global);
        f.set(W::SIGN_EXTENSION, self.sign_extension);
        f.set(W::SATURATING_FLOAT_TO_INT, self.saturating_float_to_int);
        f.set(W::MULTI_VALUE, self.multi_value);
        f.set(W::BULK_MEMORY, self.bulk_memory);
        f.set(W::REFERENCE_TYPES, self.reference_types);
        f.set(W::SIMD, self.simd);
        f.set(W::RELAXED_SIMD, self.relaxed_simd);
        f.set(W::THREADS, self.threads);
        f.set(W::MULTI_MEMORY, self.multi_memory);
        f.set(W::MEMORY64, self.memory64);
        f.set(W::TAIL_CALL, self.tail_call);
        f.set(W::EXTENDED_CONST, self.extended_const);
        f.set(W::EXCEPTIONS, self.exceptions);
        f.set(W::LEGACY_EXCEPTIONS, self.legacy_exceptions);
        f.set(W::FUNCTION_REFERENCES, self.function_references);
        f.set(W::GC, self.gc);
        f.set(W::GC_TYPES, true);
        f.set(W::WIDE_ARITHMETIC, self.wide_arithmetic);
        f.set(W::CUSTOM_PAGE_SIZES, self.custom_page_sizes);
        f
    }
}

/// How hard the engine should optimise compiled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OptLevel {
    /// Compile quickly, run slower.
    None,
    /// Optimise for speed (the default).
    #[default]
    Speed,
}

/// Engine configuration.
///
/// Build one with [`Config::new`] and the setters, then hand it to
/// [`Engine::new`](crate::Engine::new). The same `Config` means the same
/// thing on every backend; where a backend cannot honour a setting, creating
/// the engine fails with [`Error::Unsupported`] rather than ignoring it.
///
/// ```
/// use anywasm_core::{Config, Features};
/// let mut config = Config::new();
/// config
///     .consume_fuel(true)
///     .interruptible(true)
///     .max_memory_pages(Some(256))
///     .features(Features::wasm2());
/// assert!(config.fuel_enabled());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Config {
    pub(crate) opt_level: OptLevel,
    pub(crate) consume_fuel: bool,
    pub(crate) interruptible: bool,
    pub(crate) max_memory_pages: Option<u64>,
    pub(crate) max_wasm_stack: Option<usize>,
    pub(crate) features: Features,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// The default configuration: optimised code, no fuel, not interruptible,
    /// no memory limit beyond the module's own, the engine's default stack,
    /// WebAssembly 2.0 features.
    pub fn new() -> Self {
        Self {
            opt_level: OptLevel::Speed,
            consume_fuel: false,
            interruptible: false,
            max_memory_pages: None,
            max_wasm_stack: None,
            features: Features::default(),
        }
    }

    /// Sets the optimisation level.
    pub fn opt_level(&mut self, level: OptLevel) -> &mut Self {
        self.opt_level = level;
        self
    }

    /// Enables fuel metering: every store starts with zero fuel and code runs only
    /// while the store has fuel ([`Store::set_fuel`](crate::Store::set_fuel)).
    ///
    /// Fuel units approximate executed instructions but are engine-specific: the
    /// same code consumes different amounts on different backends.
    pub fn consume_fuel(&mut self, enable: bool) -> &mut Self {
        self.consume_fuel = enable;
        self
    }

    /// Enables deadlines and interruption of running code
    /// ([`Store::set_deadline`](crate::Store::set_deadline),
    /// [`Store::interrupt_handle`](crate::Store::interrupt_handle)). Off by
    /// default because it costs a little on every loop iteration.
    pub fn interruptible(&mut self, enable: bool) -> &mut Self {
        self.interruptible = enable;
        self
    }

    /// Caps every linear memory of every store at this many 64 KiB pages.
    /// Growing beyond it fails the way `memory.grow` fails (it returns -1);
    /// instantiating a module whose initial memory is larger fails with
    /// [`Error::Limit`]. Stores can lower the cap further with
    /// [`StoreLimits`](crate::StoreLimits).
    pub fn max_memory_pages(&mut self, pages: Option<u64>) -> &mut Self {
        self.max_memory_pages = pages;
        self
    }

    /// Limits the stack available to wasm code, in bytes. Deeper recursion
    /// traps with [`TrapCode::StackOverflow`](crate::TrapCode::StackOverflow).
    /// Backends without a per-engine stack limit return `Unsupported`.
    pub fn max_wasm_stack(&mut self, bytes: Option<usize>) -> &mut Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Selects the WebAssembly proposals to accept.
    pub fn features(&mut self, features: Features) -> &mut Self {
        self.features = features;
        self
    }

    /// The optimisation level.
    pub fn get_opt_level(&self) -> OptLevel {
        self.opt_level
    }

    /// Whether fuel metering is on.
    pub fn fuel_enabled(&self) -> bool {
        self.consume_fuel
    }

    /// Whether deadlines and interruption are on.
    pub fn interruptible_enabled(&self) -> bool {
        self.interruptible
    }

    /// The engine-wide memory cap in pages.
    pub fn get_max_memory_pages(&self) -> Option<u64> {
        self.max_memory_pages
    }

    /// The stack limit in bytes.
    pub fn get_max_wasm_stack(&self) -> Option<usize> {
        self.max_wasm_stack
    }

    /// The enabled proposals.
    pub fn get_features(&self) -> &Features {
        &self.features
    }

    /// Checks this configuration against what a backend can do.
    ///
    /// Backends call this first in their engine constructor so that every
    /// backend refuses the same things the same way.
    pub fn check_against(&self, backend: &'static str, caps: &crate::Capabilities) -> Result<()> {
        let missing = self.features.missing_from(&caps.features);
        if !missing.is_empty() {
            return Err(Error::unsupported(
                backend,
                format!("the WebAssembly proposal(s): {}", missing.join(", ")),
            ));
        }
        if self.consume_fuel && !caps.fuel {
            return Err(Error::unsupported(backend, "fuel metering"));
        }
        if self.interruptible && !caps.deadline {
            return Err(Error::unsupported(backend, "deadlines and interruption"));
        }
        if self.max_memory_pages.is_some() && !caps.memory_limit {
            return Err(Error::unsupported(backend, "memory limits"));
        }
        if self.max_wasm_stack.is_some() && !caps.stack_limit {
            return Err(Error::unsupported(
                backend,
                "a per-engine wasm stack limit (Config::max_wasm_stack)",
            ));
        }
        Ok(())
    }
}
