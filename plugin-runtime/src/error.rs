//! Errors of the plugin runtime.

use anywasm::TrapCode;

/// What went wrong loading or calling a plugin.
///
/// Every failure of a call has its own variant, so an application can react
/// to a misbehaving plugin precisely; none of them leaves the plugin
/// unusable (see [`Plugin::call`](crate::Plugin::call)), except
/// [`PluginError::Closed`], which follows the application's own
/// [`Plugin::close`](crate::Plugin::close).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The bytes are not an anywasm plugin (no `anywasm.plugin` section, bad metadata).
    #[error("plugin `{plugin}` is not an anywasm plugin: {reason}")]
    NotAPlugin {
        /// Plugin id.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin was built for another ABI version.
    #[error(
        "plugin `{plugin}` uses plugin ABI version {found}, but this host supports version {supported}"
    )]
    AbiVersion {
        /// Plugin id.
        plugin: String,
        /// The plugin's version.
        found: u64,
        /// The host's version.
        supported: u32,
    },
    /// The plugin imports something it was not granted (or that does not exist).
    #[error("plugin `{plugin}` imports `{module}`.`{name}`, which it was not granted")]
    ImportNotGranted {
        /// Plugin id.
        plugin: String,
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// The plugin cannot speak the serialisation format the host asked for.
    #[error("plugin `{plugin}` does not support the {format} format (it declares: {declared})")]
    FormatNotSupported {
        /// Plugin id.
        plugin: String,
        /// The format asked for.
        format: &'static str,
        /// What the plugin declares.
        declared: String,
    },
    /// The plugin has no such function (with the plugin-function signature).
    #[error("plugin `{plugin}` has no function `{function}`")]
    NoSuchFunction {
        /// Plugin id.
        plugin: String,
        /// The function asked for.
        function: String,
    },
    /// The call used up its fuel.
    #[error("plugin `{plugin}` ran out of fuel in `{function}`")]
    OutOfFuel {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
    },
    /// The call ran past its deadline.
    #[error("plugin `{plugin}` exceeded its deadline in `{function}`")]
    Deadline {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
    },
    /// The call was cancelled through the plugin's
    /// [`CancelHandle`](crate::CancelHandle). The next call runs normally.
    #[error("plugin `{plugin}`: the call to `{function}` was cancelled")]
    Cancelled {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
    },
    /// No instance became free (or a reload did not finish) within the
    /// manifest's `acquire_timeout`.
    #[error("plugin `{plugin}` is busy: no instance for `{function}` within {waited:?}")]
    Busy {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
        /// How long the call waited.
        waited: std::time::Duration,
    },
    /// The plugin was closed ([`Plugin::close`](crate::Plugin::close)): it
    /// takes no more calls or reloads.
    #[error("plugin `{plugin}` is closed: `{function}` was refused")]
    Closed {
        /// Plugin id.
        plugin: String,
        /// Function (or `<reload>`).
        function: String,
    },
    /// A host function called into (or reloaded) the plugin that is calling
    /// it. That would wait for the call it is part of; it is refused.
    #[error("plugin `{plugin}`: `{function}` was called again from inside one of its own calls")]
    Reentrant {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
    },
    /// The plugin imports one of the application's async host functions, so
    /// it runs only in async calls ([`Plugin::call_async`](crate::Plugin::call_async)).
    #[error(
        "plugin `{plugin}` imports async host functions: `{function}` needs an async call (`call_async`)"
    )]
    AsyncOnly {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
    },
    /// One of the application's host functions failed; its message.
    #[error("plugin `{plugin}`: host function `{host_function}` failed in `{function}`: {message}")]
    Host {
        /// Plugin id.
        plugin: String,
        /// The plugin function that called it.
        function: String,
        /// The host function.
        host_function: String,
        /// The host function's message.
        message: String,
    },
    /// The plugin went past one of its manifest's size limits (output,
    /// messages, key/value store).
    #[error("plugin `{plugin}` exceeded its {what} limit of {limit} in `{function}`")]
    LimitExceeded {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
        /// Which limit (e.g. "output size").
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The plugin tried to use more memory than its limit.
    #[error("plugin `{plugin}` exceeded its memory limit in `{function}`: {detail}")]
    MemoryLimit {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
        /// What was refused.
        detail: String,
    },
    /// The runtime's memory budget, shared by all instances of all plugins
    /// (see [`PluginRuntimeBuilder::memory_budget`](crate::PluginRuntimeBuilder::memory_budget)),
    /// had no room for what the plugin's memory needed.
    #[error(
        "plugin `{plugin}` does not fit in the runtime's memory budget in `{function}`: {detail}"
    )]
    MemoryBudget {
        /// Plugin id.
        plugin: String,
        /// Function (`<instantiate>` when a new instance did not fit).
        function: String,
        /// What was refused.
        detail: String,
    },
    /// The plugin ended its own instance through WASI `proc_exit` (libc's
    /// `exit`). The instance is replaced, as after a trap.
    #[error("plugin `{plugin}` exited with status {code} in `{function}`")]
    Exit {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
        /// The exit status.
        code: i32,
    },
    /// The guest reported an error (through `anywasm.error`).
    #[error("plugin `{plugin}` failed in `{function}`: {message}")]
    Guest {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
        /// The guest's message.
        message: String,
    },
    /// The guest trapped.
    #[error("plugin `{plugin}` trapped in `{function}`: {code}")]
    Trap {
        /// Plugin id.
        plugin: String,
        /// Function.
        function: String,
        /// The trap.
        code: TrapCode,
    },
    /// The guest broke the ABI: an out-of-range pointer or length, output
    /// that does not decode, a missing export.
    #[error("plugin `{plugin}` violated the plugin ABI in `{function}`: {detail}")]
    AbiViolation {
        /// Plugin id.
        plugin: String,
        /// Function (or the ABI export involved).
        function: String,
        /// What was wrong.
        detail: String,
    },
    /// The host could not serialise the input.
    #[error("cannot encode the input for plugin `{plugin}`: {detail}")]
    Encode {
        /// Plugin id.
        plugin: String,
        /// The serialiser's message.
        detail: String,
    },
    /// Reading the plugin's file failed.
    #[error("cannot read plugin `{plugin}` from {path}: {source}")]
    Io {
        /// Plugin id.
        plugin: String,
        /// The path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The plugin imports a host function the application did not
    /// register (an Extism guest's `extism:host/user` function).
    #[error(
        "plugin `{plugin}` imports the host function `{module}`.`{name}`, which the application did not register"
    )]
    MissingHostFunction {
        /// The plugin's id.
        plugin: String,
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// The manifest is invalid.
    #[error("invalid plugin manifest: {0}")]
    Manifest(String),
    /// Any other failure of the engine layer, with the plugin it concerns.
    #[error("plugin `{plugin}`: {source}")]
    Engine {
        /// Plugin id.
        plugin: String,
        /// The layer's error.
        #[source]
        source: anywasm::Error,
    },
}

/// Shorthand for results of the plugin runtime.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;
