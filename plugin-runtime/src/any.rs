//! Plugins on a backend named at run time: [`AnyPluginRuntime`] and
//! [`AnyPlugin`], for applications that read the engine from configuration.
//!
//! They wrap [`PluginRuntime<B>`] and [`Plugin<B>`] behind trait objects, so
//! the call site has no backend type; every call goes through the same code
//! as the generic types (one virtual call more).

use std::sync::Arc;

use anywasm::{Backend, BackendKind, with_backend};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::Metadata;
use crate::error::{PluginError, Result};
use crate::manifest::{Format, Manifest};
use crate::plugin::{CancelHandle, Input, Output, Plugin, PluginStats, call_serde};
use crate::reload::{ReloadEvent, ReloadWatcher};
use crate::runtime::{PluginRuntime, RuntimeBuilder};

/// What [`AnyPluginRuntime`] needs of a [`PluginRuntime<B>`].
trait ErasedRuntime: Send + Sync {
    fn load(&self, manifest: Manifest) -> Result<Arc<dyn ErasedPlugin>>;
    fn clear_cache(&self);
    fn cache_size(&self) -> (usize, u64);
    fn cache_stats(&self) -> (u64, u64);
    fn code_cache_loads(&self) -> u64;
    fn memory_budget(&self) -> Option<(u64, u64)>;
}

impl<B: Backend> ErasedRuntime for PluginRuntime<B> {
    fn load(&self, manifest: Manifest) -> Result<Arc<dyn ErasedPlugin>> {
        Ok(Arc::new(PluginRuntime::load(self, manifest)?))
    }
    fn clear_cache(&self) {
        PluginRuntime::clear_cache(self)
    }
    fn cache_size(&self) -> (usize, u64) {
        PluginRuntime::cache_size(self)
    }
    fn cache_stats(&self) -> (u64, u64) {
        PluginRuntime::cache_stats(self)
    }
    fn code_cache_loads(&self) -> u64 {
        PluginRuntime::code_cache_loads(self)
    }
    fn memory_budget(&self) -> Option<(u64, u64)> {
        PluginRuntime::memory_budget(self)
    }
}

/// What [`AnyPlugin`] needs of a [`Plugin<B>`].
trait ErasedPlugin: Send + Sync {
    fn id(&self) -> &str;
    fn metadata(&self) -> Metadata;
    fn format(&self) -> Format;
    fn generation(&self) -> u64;
    fn call_raw(&self, function: &str, input: &[u8]) -> Result<Vec<u8>>;
    fn call_with(&self, function: &str, input: Input<'_>, output: Output<'_>) -> Result<()>;
    fn has_function(&self, function: &str) -> bool;
    fn stats(&self) -> PluginStats;
    fn reload(&self, bytes: &[u8]) -> Result<u64>;
    fn reload_from_source(&self) -> Result<u64>;
    fn cancel_handle(&self) -> CancelHandle;
    fn manifest(&self) -> &Manifest;
    fn watch(&self, on_event: Box<dyn Fn(ReloadEvent) + Send>) -> Result<ReloadWatcher>;
    #[cfg(feature = "async")]
    fn call_raw_async<'a>(
        &'a self,
        function: &'a str,
        input: &'a [u8],
    ) -> anywasm::BoxFuture<'a, Result<Vec<u8>>>;
    #[cfg(feature = "async")]
    fn reload_async<'a>(&'a self, bytes: &'a [u8]) -> anywasm::BoxFuture<'a, Result<u64>>;
    fn close(&self) -> Result<()>;
    #[cfg(feature = "async")]
    fn close_async(&self) -> anywasm::BoxFuture<'_, Result<()>>;
}

impl<B: Backend> ErasedPlugin for Plugin<B> {
    fn id(&self) -> &str {
        Plugin::id(self)
    }
    fn metadata(&self) -> Metadata {
        Plugin::metadata(self)
    }
    fn format(&self) -> Format {
        Plugin::format(self)
    }
    fn generation(&self) -> u64 {
        Plugin::generation(self)
    }
    fn call_raw(&self, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        Plugin::call_raw(self, function, input)
    }
    fn call_with(&self, function: &str, input: Input<'_>, output: Output<'_>) -> Result<()> {
        Plugin::call_with(self, function, input, output)
    }
    fn has_function(&self, function: &str) -> bool {
        Plugin::has_function(self, function)
    }
    fn stats(&self) -> PluginStats {
        Plugin::stats(self)
    }
    fn reload(&self, bytes: &[u8]) -> Result<u64> {
        Plugin::reload(self, bytes)
    }
    fn reload_from_source(&self) -> Result<u64> {
        Plugin::reload_from_source(self)
    }
    fn cancel_handle(&self) -> CancelHandle {
        Plugin::cancel_handle(self)
    }
    fn manifest(&self) -> &Manifest {
        Plugin::manifest(self)
    }
    fn watch(&self, on_event: Box<dyn Fn(ReloadEvent) + Send>) -> Result<ReloadWatcher> {
        Plugin::watch(self, on_event)
    }
    #[cfg(feature = "async")]
    fn call_raw_async<'a>(
        &'a self,
        function: &'a str,
        input: &'a [u8],
    ) -> anywasm::BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(Plugin::call_raw_async(self, function, input))
    }
    #[cfg(feature = "async")]
    fn reload_async<'a>(&'a self, bytes: &'a [u8]) -> anywasm::BoxFuture<'a, Result<u64>> {
        Box::pin(Plugin::reload_async(self, bytes))
    }
    fn close(&self) -> Result<()> {
        Plugin::close(self)
    }
    #[cfg(feature = "async")]
    fn close_async(&self) -> anywasm::BoxFuture<'_, Result<()>> {
        Box::pin(Plugin::close_async(self))
    }
}

/// A plugin runtime on the backend named at run time.
///
/// ```
/// use anywasm_plugin::{AnyPluginRuntime, Manifest, Format};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // e.g. from a configuration file; only backends in this build work.
/// let kind: anywasm::BackendKind = "wasmi".parse()?;
/// let runtime = AnyPluginRuntime::builder(kind).build()?;
/// assert_eq!(runtime.kind(), kind);
/// # let plugin = runtime.load(Manifest::from_bytes("p", b"not wasm".to_vec()));
/// # assert!(plugin.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AnyPluginRuntime {
    kind: BackendKind,
    inner: Arc<dyn ErasedRuntime>,
}

impl std::fmt::Debug for AnyPluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyPluginRuntime")
            .field("backend", &self.kind)
            .finish_non_exhaustive()
    }
}

impl AnyPluginRuntime {
    /// A builder for a runtime on backend `kind`. The options are those of
    /// [`PluginRuntimeBuilder`](crate::PluginRuntimeBuilder).
    pub fn builder(kind: BackendKind) -> AnyPluginRuntimeBuilder {
        RuntimeBuilder::for_target(kind)
    }

    /// A runtime on backend `kind` without application host functions.
    pub fn new(kind: BackendKind) -> Result<Self> {
        Self::builder(kind).build()
    }

    fn wrap<B: Backend>(kind: BackendKind, runtime: PluginRuntime<B>) -> Self {
        Self {
            kind,
            inner: Arc::new(runtime),
        }
    }

    /// The backend.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// See [`PluginRuntime::load`].
    pub fn load(&self, manifest: Manifest) -> Result<AnyPlugin> {
        Ok(AnyPlugin {
            kind: self.kind,
            inner: self.inner.load(manifest)?,
        })
    }

    /// See [`PluginRuntime::clear_cache`].
    pub fn clear_cache(&self) {
        self.inner.clear_cache()
    }

    /// See [`PluginRuntime::cache_size`].
    pub fn cache_size(&self) -> (usize, u64) {
        self.inner.cache_size()
    }

    /// See [`PluginRuntime::cache_stats`].
    pub fn cache_stats(&self) -> (u64, u64) {
        self.inner.cache_stats()
    }

    /// See [`PluginRuntime::code_cache_loads`].
    pub fn code_cache_loads(&self) -> u64 {
        self.inner.code_cache_loads()
    }

    /// See [`PluginRuntime::memory_budget`].
    pub fn memory_budget(&self) -> Option<(u64, u64)> {
        self.inner.memory_budget()
    }
}

/// Configures an [`AnyPluginRuntime`]: the options of
/// [`RuntimeBuilder`], on the backend named at run time.
pub type AnyPluginRuntimeBuilder = RuntimeBuilder<BackendKind>;

impl AnyPluginRuntimeBuilder {
    /// Creates the runtime; [`PluginError::Engine`] with
    /// [`anywasm::Error::Unsupported`] if this build does not contain the
    /// backend.
    pub fn build(self) -> Result<AnyPluginRuntime> {
        let (kind, opts) = self.into_parts();
        let built =
            with_backend!(kind, B => opts.build::<B>().map(|r| AnyPluginRuntime::wrap(kind, r)));
        built.unwrap_or_else(|source| {
            Err(PluginError::Engine {
                plugin: "<runtime>".into(),
                source,
            })
        })
    }
}

/// A plugin on a backend named at run time (from [`AnyPluginRuntime::load`]).
/// Each method is the one of [`Plugin`] of the same name.
#[derive(Clone)]
pub struct AnyPlugin {
    kind: BackendKind,
    inner: Arc<dyn ErasedPlugin>,
}

impl std::fmt::Debug for AnyPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyPlugin")
            .field("id", &self.inner.id())
            .field("backend", &self.kind)
            .finish_non_exhaustive()
    }
}

impl AnyPlugin {
    /// The backend the plugin runs on.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// See [`Plugin::id`].
    pub fn id(&self) -> &str {
        self.inner.id()
    }

    /// See [`Plugin::metadata`].
    pub fn metadata(&self) -> Metadata {
        self.inner.metadata()
    }

    /// See [`Plugin::format`].
    pub fn format(&self) -> Format {
        self.inner.format()
    }

    /// See [`Plugin::generation`].
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// See [`Plugin::call`].
    pub fn call<In: Serialize, Out: DeserializeOwned>(
        &self,
        function: &str,
        input: &In,
    ) -> Result<Out> {
        call_serde(
            self.id(),
            self.format(),
            function,
            input,
            |input, output| self.inner.call_with(function, input, output),
        )
    }

    /// See [`Plugin::call_raw`].
    pub fn call_raw(&self, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        self.inner.call_raw(function, input)
    }

    /// See [`Plugin::call_async`] (feature `async`). The input is encoded
    /// into a buffer first and copied into the guest from there: one copy
    /// more than the generic plugin makes for MessagePack.
    #[cfg(feature = "async")]
    pub async fn call_async<In: Serialize + Sync, Out: DeserializeOwned + Send>(
        &self,
        function: &str,
        input: &In,
    ) -> Result<Out> {
        let format = self.format();
        let bytes = crate::host::encode(format, input).map_err(|detail| PluginError::Encode {
            plugin: self.id().to_string(),
            detail,
        })?;
        let out = self.inner.call_raw_async(function, &bytes).await?;
        let decoded = crate::host::decode(format, &out);
        crate::plugin::decoded_output(self.id(), function, Some(decoded))
    }

    /// See [`Plugin::call_raw_async`] (feature `async`).
    #[cfg(feature = "async")]
    pub async fn call_raw_async(&self, function: &str, input: &[u8]) -> Result<Vec<u8>> {
        self.inner.call_raw_async(function, input).await
    }

    /// See [`Plugin::has_function`].
    pub fn has_function(&self, function: &str) -> bool {
        self.inner.has_function(function)
    }

    /// See [`Plugin::stats`].
    pub fn stats(&self) -> PluginStats {
        self.inner.stats()
    }

    /// See [`Plugin::reload`].
    pub fn reload(&self, bytes: &[u8]) -> Result<u64> {
        self.inner.reload(bytes)
    }

    /// See [`Plugin::reload_async`] (feature `async`).
    #[cfg(feature = "async")]
    pub async fn reload_async(&self, bytes: &[u8]) -> Result<u64> {
        self.inner.reload_async(bytes).await
    }

    /// See [`Plugin::close`].
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// See [`Plugin::close_async`] (feature `async`).
    #[cfg(feature = "async")]
    pub async fn close_async(&self) -> Result<()> {
        self.inner.close_async().await
    }

    /// See [`Plugin::reload_from_source`].
    pub fn reload_from_source(&self) -> Result<u64> {
        self.inner.reload_from_source()
    }

    /// See [`Plugin::cancel_handle`].
    pub fn cancel_handle(&self) -> CancelHandle {
        self.inner.cancel_handle()
    }

    /// See [`Plugin::manifest`].
    pub fn manifest(&self) -> &Manifest {
        self.inner.manifest()
    }

    /// See [`Plugin::watch`].
    pub fn watch(&self, on_event: impl Fn(ReloadEvent) + Send + 'static) -> Result<ReloadWatcher> {
        self.inner.watch(Box::new(on_event))
    }
}
