//! What a backend can do, as data.

use crate::config::Features;

/// What a backend supports. Conformance tests read this to decide which
/// behaviour to expect, and assert [`Error::Unsupported`](crate::Error::Unsupported)
/// wherever a flag is false.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend's name, e.g. `"wasmtime"`.
    pub backend: &'static str,
    /// The engine crate's version.
    pub engine_version: &'static str,
    /// Compiles to native code (JIT) rather than interpreting.
    pub jit: bool,
    /// Fuel metering ([`Config::consume_fuel`](crate::Config::consume_fuel)).
    pub fuel: bool,
    /// Deadlines and interruption that stop one store only.
    pub deadline: bool,
    /// Per-engine and per-store memory limits.
    pub memory_limit: bool,
    /// A configurable wasm stack limit ([`Config::max_wasm_stack`](crate::Config::max_wasm_stack)).
    pub stack_limit: bool,
    /// Serialising compiled modules ([`Module::serialize`](crate::Module::serialize)).
    pub precompiled_modules: bool,
    /// A borrowed `&[u8]` view of linear memory ([`Memory::data`](crate::Memory::data)).
    pub memory_slice: bool,
    /// `externref` values created by the host.
    pub extern_ref: bool,
    /// [`Caller::get_export`](crate::Caller::get_export) answers for the
    /// instance whose code called the host function even when it reached
    /// it through a `funcref` imported by another instance. Without it
    /// (wasmer, whose host functions are not told their caller), it answers
    /// for the instance that imported the host function. Both answer for the
    /// calling instance when a host function is called as its own import.
    pub exact_caller: bool,
    /// Dropping a module, with the instances and stores made from it, frees
    /// its compiled code. Without it (wasmi, wasmer) compiled code stays
    /// until its engine is dropped: a long-running process that keeps
    /// compiling new modules should compile them on engines it can drop
    /// (the plugin runtime gives each new module its own engine there). On
    /// Linux, wasmer's held code also counts against the process's memory
    /// mappings: past `vm.max_map_count / 4` modules held by its engines, a
    /// compile fails with [`Error::Limit`](crate::Error::Limit).
    pub code_freed_with_module: bool,
    /// Async calls and async host functions ([`crate::asynchronous`], cargo
    /// feature `async` of the layer and of the backend). Without it they are
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    pub async_calls: bool,
    /// The WebAssembly proposals the backend can enable.
    pub features: Features,
}

impl Capabilities {
    /// A backend that supports nothing beyond plain WebAssembly 1.0; backends
    /// start from this and switch on what they have.
    pub fn new(backend: &'static str, engine_version: &'static str) -> Self {
        Self {
            backend,
            engine_version,
            jit: false,
            fuel: false,
            deadline: false,
            memory_limit: false,
            stack_limit: false,
            precompiled_modules: false,
            memory_slice: false,
            extern_ref: false,
            exact_caller: false,
            code_freed_with_module: false,
            async_calls: false,
            features: Features::wasm1(),
        }
    }
}
