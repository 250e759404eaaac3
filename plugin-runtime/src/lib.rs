//! # anywasm-plugin
//!
//! Load WebAssembly plugins and call them with Rust structs, on any anywasm
//! backend (wasmtime, wasmi, wasmer), without trusting them.
//!
//! ```no_run
//! use anywasm_plugin::{Manifest, PluginRuntime};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize)]
//! struct Event { kind: String, path: String, size: u64 }
//! #[derive(Deserialize)]
//! struct Decision { icon: String, priority: u32 }
//!
//! # fn main() -> Result<(), anywasm_plugin::PluginError> {
//! let runtime = PluginRuntime::<anywasm::DefaultBackend>::new()?;
//! let plugin = runtime.load(
//!     Manifest::from_file("file_icons", "plugins/file_icons.wasm").fuel(50_000_000),
//! )?;
//! let event = Event { kind: "open".into(), path: "src/main.rs".into(), size: 1200 };
//! let decision: Decision = plugin.call("handle_event", &event)?;
//! println!("{} ({})", decision.icon, decision.priority);
//! # Ok(()) }
//! ```
//!
//! - **The ABI** (`docs/ABI.md`, version [`ABI_VERSION`]): one copy of the
//!   input into the guest, one copy of the output out; guest errors distinct
//!   from traps; host functions with bytes through pending results.
//! - **Formats**: MessagePack, JSON, hybrid (JSON in debug builds), or raw
//!   bytes with [`Plugin::call_raw`]. Bytes travel as MessagePack `bin`
//!   (one copy, no per-byte work) when they are a [`ByteBuf`] or a field
//!   marked `#[serde(with = "anywasm_plugin::serde_bytes")]`; a plain
//!   `Vec<u8>` is, as serde has it, an array of numbers. Both PDKs read and
//!   write `bin` (the Rust PDK as `Bytes`, the C PDK as `APDK_BIN`).
//! - **Host functions**: serde-typed, numeric, and the built-ins `calc`,
//!   `echo`, `json_execute`, `store_put`/`store_get`, granted per plugin.
//! - **Limits per call**: fuel, deadline, memory. A plugin that misbehaves
//!   fails that call with a typed [`PluginError`]; the next call runs on a
//!   fresh instance.
//! - **Sharing**: modules are compiled once per content hash; a [`Plugin`] is
//!   `Send + Sync` and serves concurrent calls from a bounded pool.
//! - **Backend by name**: [`AnyPluginRuntime`] and [`AnyPlugin`] take the
//!   backend as a [`anywasm::BackendKind`] at run time (e.g. from
//!   configuration), with no backend type at the call site.
//! - **WASI**, granted per manifest ([`WasiGrant`]; off by default):
//!   preopened directories read-only or read-write, environment, arguments,
//!   standard output and error into the runtime's log.
//! - **Hot reload**: [`Plugin::watch`] or [`Plugin::reload`], with an
//!   optional state hand-over.
//! - **Extism plugins, unchanged** ([`Abi::Extism`], detected from a
//!   module's `extism:host/env` imports): Extism's exports `() -> i32`, its
//!   kernel memory (a small wasm module beside the guest, as in Extism;
//!   bounded by the plugin's memory limit, every handle and offset
//!   checked), input, output, errors and return
//!   codes, config, vars (the plugin's key/value store, so the same quota)
//!   and logs, with Extism's semantics; `http_request` to the hosts the
//!   manifest allows ([`Manifest::allow_http_host`]). Functions from
//!   `extism:host/user` are the application's
//!   ([`HostFunctions::extism_function`], with [`ExtismCurrent`] to read and
//!   give blocks); an unregistered one is refused at load
//!   ([`PluginError::MissingHostFunction`]).
//! - **waPC guests** ([`Abi::Wapc`], detected from the `__guest_call`
//!   export): operations by name, host calls answered by
//!   [`HostFunctions::wapc_handler`], `__console_log` into the log.
//!
//! ## Crate features
//! `default-backend` (default), `wasmtime`, `wasmi`, `wasmer`: forwarded to `anywasm`.

mod abi;
mod any;
mod error;
mod extism;
mod host;
mod manifest;
mod plugin;
mod reload;
mod runtime;
mod wapc;
mod wasi;

pub use abi::{ABI_VERSION, METADATA_SECTION, Metadata};
pub use any::{AnyPlugin, AnyPluginRuntime, AnyPluginRuntimeBuilder};
pub use error::{PluginError, Result};
pub use extism::ExtismCurrent;
pub use host::{HostContext, HostFunctions, Number};
pub use manifest::{
    Abi, DEFAULT_DEADLINE, DEFAULT_MAX_HTTP_RESPONSE_BYTES, DEFAULT_MAX_MEMORY_PAGES, Format,
    Limits, Manifest, WasmSource,
};
pub use plugin::{CancelHandle, Plugin, PluginStats};
pub use reload::{ReloadEvent, ReloadWatcher};
pub use runtime::{
    DEFAULT_MODULE_CACHE_BYTES, DEFAULT_MODULE_CACHE_ENTRIES, PluginRuntime, PluginRuntimeBuilder,
    RuntimeBuilder,
};
/// Bytes for serde that travel as MessagePack `bin` (and as an array of
/// numbers in JSON): `ByteBuf` for a value of its own, and
/// `#[serde(with = "anywasm_plugin::serde_bytes")]` on `Vec<u8>` fields.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Thumbnail {
///     name: String,
///     #[serde(with = "anywasm_plugin::serde_bytes")]
///     png: Vec<u8>,
/// }
/// ```
pub use serde_bytes::{self, ByteBuf};
pub use wasi::{GrantedDir, STDERR_LOG_LEVEL, STDOUT_LOG_LEVEL, WasiGrant};

/// Re-exported so applications need only this crate.
pub use anywasm;

/// The README's examples (the core API and the plugin host), compiled and
/// run as doctests of this crate, which depends on everything they use.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn plugins_and_runtimes_are_send_and_sync() {
        assert_send_sync::<Plugin<anywasm::DefaultBackend>>();
        assert_send_sync::<PluginRuntime<anywasm::DefaultBackend>>();
        assert_send_sync::<AnyPlugin>();
        assert_send_sync::<AnyPluginRuntime>();
    }
}
