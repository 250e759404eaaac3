//! What the host says about a plugin: where it comes from, its limits, its
//! configuration and what it may import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{PluginError, Result};
use crate::wasi::WasiGrant;

/// How inputs and outputs are serialised for a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MessagePack (`rmp-serde`, maps with field names).
    #[default]
    #[serde(alias = "messagepack")]
    MsgPack,
    /// JSON (`serde_json`).
    Json,
    /// JSON in debug builds of the host (readable while developing),
    /// MessagePack in release builds.
    Hybrid,
    /// No serialisation: only [`Plugin::call_raw`](crate::Plugin::call_raw).
    Raw,
}

impl Format {
    /// The concrete format this one means in this build of the host.
    pub fn resolve(self) -> Format {
        match self {
            Format::Hybrid if cfg!(debug_assertions) => Format::Json,
            Format::Hybrid => Format::MsgPack,
            f => f,
        }
    }

    /// The name used in plugin metadata.
    pub fn name(self) -> &'static str {
        match self.resolve() {
            Format::MsgPack => "msgpack",
            Format::Json => "json",
            _ => "raw",
        }
    }

    /// The number passed to the guest's `anywasm_set_format`.
    pub fn abi_code(self) -> i32 {
        match self.resolve() {
            Format::MsgPack => 1,
            Format::Json => 2,
            _ => 0,
        }
    }
}

/// Per-call and per-instance limits.
///
/// The defaults are safe for code the application does not trust: a call
/// may run for **1 second**, an instance may use **64 MiB** of linear memory
/// and tables of a million elements, a call may return **16 MiB** of output,
/// an error or log message may be **64 KiB**, the plugin's key/value store
/// may hold **1 MiB** in **1024** keys, and a call waits at most **10
/// seconds** for a free instance. There is no fuel limit by default (fuel
/// units differ between engines; the deadline bounds every call).
/// [`Limits::unlimited`] switches every limit off, for trusted plugins.
///
/// In a JSON manifest, durations are in milliseconds and `null` means
/// unlimited: `{"deadline": 50, "max_memory_pages": null}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Fuel for each call (engine-specific units approximating instructions).
    pub fuel: Option<u64>,
    /// Wall-clock time for each call.
    #[serde(with = "millis")]
    pub deadline: Option<Duration>,
    /// Maximum linear memory, in 64 KiB pages.
    pub max_memory_pages: Option<u64>,
    /// Maximum elements of each table.
    pub max_table_elements: Option<u64>,
    /// Maximum output of one call, in bytes.
    pub max_output_bytes: Option<u64>,
    /// Maximum length of an error or log message, in bytes.
    pub max_message_bytes: Option<u64>,
    /// Maximum bytes (keys and values) in the plugin's key/value store.
    pub max_store_bytes: Option<u64>,
    /// Maximum keys in the plugin's key/value store.
    pub max_store_keys: Option<u64>,
    /// How long a call waits for a free instance (or for a reload to
    /// finish) before failing with [`PluginError::Busy`].
    #[serde(with = "millis")]
    pub acquire_timeout: Option<Duration>,
}

/// The default time limit of a call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);
/// The default bound of an HTTP response an Extism guest receives (Extism's
/// own default): 50 MiB.
pub const DEFAULT_MAX_HTTP_RESPONSE_BYTES: u64 = 50 << 20;
/// The default memory limit of an instance, in 64 KiB pages (64 MiB).
pub const DEFAULT_MAX_MEMORY_PAGES: u64 = 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: None,
            deadline: Some(DEFAULT_DEADLINE),
            max_memory_pages: Some(DEFAULT_MAX_MEMORY_PAGES),
            max_table_elements: Some(1_000_000),
            max_output_bytes: Some(16 << 20),
            max_message_bytes: Some(64 << 10),
            max_store_bytes: Some(1 << 20),
            max_store_keys: Some(1024),
            acquire_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl Limits {
    /// No limit at all: for plugins the application trusts. A plugin that
    /// loops forever under these limits blocks its caller until it is
    /// cancelled ([`Plugin::cancel_handle`](crate::Plugin::cancel_handle)).
    pub fn unlimited() -> Self {
        Self {
            fuel: None,
            deadline: None,
            max_memory_pages: None,
            max_table_elements: None,
            max_output_bytes: None,
            max_message_bytes: None,
            max_store_bytes: None,
            max_store_keys: None,
            acquire_timeout: None,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// Which guest ABI a plugin speaks.
///
/// ```
/// use anywasm_plugin::{Abi, Manifest};
/// let m = Manifest::from_file("count_vowels", "count_vowels.wasm").abi(Abi::Extism);
/// assert_eq!(m.get_abi(), Abi::Extism);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Abi {
    /// Decided from the module: a module importing from `extism:host/env`
    /// speaks Extism's ABI, one exporting `__guest_call` waPC's, any other
    /// anywasm's.
    #[default]
    Auto,
    /// anywasm's own ABI (`docs/ABI.md`): the fast path, with formats,
    /// pending results and lifecycle exports.
    Anywasm,
    /// Extism's guest ABI: exports `() -> i32`, input, output, errors,
    /// config and vars through the `extism:host/env` kernel, so plugins
    /// built with Extism's PDKs run unchanged (see the crate docs for what
    /// is mapped and what is refused).
    Extism,
    /// waPC's guest ABI: `__guest_call` with operations by name, the
    /// application's answers to `__host_call` from
    /// [`HostFunctions::wapc_handler`](crate::HostFunctions::wapc_handler).
    Wapc,
}

impl Abi {
    /// Its name, as in a manifest (`"auto"`, `"anywasm"`, `"extism"`).
    pub fn name(self) -> &'static str {
        match self {
            Abi::Auto => "auto",
            Abi::Anywasm => "anywasm",
            Abi::Extism => "extism",
            Abi::Wapc => "wapc",
        }
    }
}

impl std::str::FromStr for Abi {
    type Err = PluginError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Abi::Auto),
            "anywasm" => Ok(Abi::Anywasm),
            "extism" => Ok(Abi::Extism),
            "wapc" => Ok(Abi::Wapc),
            other => Err(PluginError::Manifest(format!(
                "unknown ABI `{other}` (auto, anywasm, extism or wapc)"
            ))),
        }
    }
}

/// Where a plugin's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WasmSource {
    /// A `.wasm` (or `.wat`) file.
    File(PathBuf),
    /// Bytes in memory.
    Bytes(Vec<u8>),
}

/// Everything the host says about one plugin.
///
/// ```
/// use anywasm_plugin::{Format, Manifest};
/// use std::time::Duration;
/// let m = Manifest::from_file("file_icons", "plugins/file_icons.wasm")
///     .format(Format::MsgPack)
///     .fuel(10_000_000)
///     .deadline(Duration::from_millis(50))
///     .max_memory_pages(64)
///     .config("theme", "dark")
///     .allow("anywasm.echo");
/// assert_eq!(m.id(), "file_icons");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub(crate) id: String,
    pub(crate) source: WasmSource,
    pub(crate) abi: Abi,
    pub(crate) format: Format,
    pub(crate) limits: Limits,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) allowed: Vec<String>,
    /// Hosts an Extism guest may reach with `http_request` (glob patterns).
    pub(crate) http_hosts: Vec<String>,
    /// The largest HTTP response body an Extism guest may receive.
    pub(crate) max_http_response_bytes: u64,
    pub(crate) max_instances: usize,
    pub(crate) wasi: Option<WasiGrant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    id: String,
    wasm: PathBuf,
    #[serde(default)]
    abi: Abi,
    #[serde(default)]
    format: Format,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    allow: Vec<String>,
    max_instances: Option<usize>,
    wasi: Option<WasiGrant>,
}

impl Manifest {
    fn new(id: impl Into<String>, source: WasmSource) -> Self {
        Self {
            id: id.into(),
            source,
            abi: Abi::Auto,
            format: Format::default(),
            limits: Limits::default(),
            config: BTreeMap::new(),
            allowed: Vec::new(),
            http_hosts: Vec::new(),
            max_http_response_bytes: DEFAULT_MAX_HTTP_RESPONSE_BYTES,
            max_instances: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2),
            wasi: None,
        }
    }

    /// Lets an Extism guest's `http_request` reach hosts matching `pattern`
    /// (a glob such as `api.example.com` or `*.example.com`, matched against
    /// the URL's host, as Extism's `allowed_hosts`). Without any, every
    /// request is refused. A request is bounded by the call's deadline (30
    /// seconds when the plugin has none) and its response by
    /// [`Manifest::max_http_response_bytes`].
    pub fn allow_http_host(mut self, pattern: impl Into<String>) -> Self {
        self.http_hosts.push(pattern.into());
        self
    }

    /// The HTTP hosts an Extism guest may reach.
    pub fn get_http_hosts(&self) -> &[String] {
        &self.http_hosts
    }

    /// The largest HTTP response body an Extism guest may receive (default
    /// [`DEFAULT_MAX_HTTP_RESPONSE_BYTES`]); a larger one fails the call.
    pub fn max_http_response_bytes(mut self, bytes: u64) -> Self {
        self.max_http_response_bytes = bytes;
        self
    }

    /// Which ABI the plugin speaks (default [`Abi::Auto`]).
    pub fn abi(mut self, abi: Abi) -> Self {
        self.abi = abi;
        self
    }

    /// The ABI set with [`Manifest::abi`].
    pub fn get_abi(&self) -> Abi {
        self.abi
    }

    /// A plugin whose code is in a file (binary or text).
    pub fn from_file(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::new(id, WasmSource::File(path.into()))
    }

    /// A plugin whose code is in memory.
    pub fn from_bytes(id: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self::new(id, WasmSource::Bytes(bytes.into()))
    }

    /// Reads a JSON manifest:
    /// `{"id": "...", "wasm": "path", "format": "msgpack", "limits": {"fuel": 1000000,
    /// "deadline": 50, "max_memory_pages": 64}, "config": {...}, "allow": [...],
    /// "max_instances": 4, "wasi": {...}}` (deadline in milliseconds; a relative
    /// `wasm` path is relative to the manifest; `wasi` as in [`WasiGrant`]).
    pub fn from_json_file(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let text = read_text("<manifest>", &path)?;
        let f: ManifestFile = serde_json::from_str(&text)
            .map_err(|e| PluginError::Manifest(format!("{}: {e}", path.display())))?;
        let wasm = if f.wasm.is_relative() {
            path.parent()
                .map_or(f.wasm.clone(), |dir| dir.join(&f.wasm))
        } else {
            f.wasm
        };
        let mut m = Self::new(f.id, WasmSource::File(wasm));
        m.abi = f.abi;
        m.format = f.format;
        m.limits = f.limits;
        m.config = f.config;
        m.allowed = f.allow;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        m.wasi = f.wasi.map(|w| w.relative_to(dir));
        if let Some(n) = f.max_instances {
            m = m.max_instances(n);
        }
        m.check()?;
        Ok(m)
    }

    /// Reads a manifest in Extism's format, so an Extism plugin's manifest
    /// works unchanged: `{"wasm": [{"path": "plugin.wasm", "hash": "…"}],
    /// "memory": {"max_pages": 16, "max_var_bytes": 1024}, "config":
    /// {…}, "allowed_paths": {"data": "/data", "ro:assets": "/assets"},
    /// "allowed_hosts": […], "timeout_ms": 100}`. The plugin speaks
    /// [`Abi::Extism`]. Mapped: the module (a `path`, relative to `dir`, or
    /// base64 `data`; a `hash` is checked as Extism does, SHA-256 in hex),
    /// `max_pages` → [`Limits::max_memory_pages`], `max_var_bytes` →
    /// [`Limits::max_store_bytes`], `config`, `allowed_paths` → WASI
    /// preopens (`ro:` read-only, as in Extism), `timeout_ms` → the
    /// deadline, `allowed_hosts` → [`Manifest::allow_http_host`],
    /// `max_http_response_bytes` → [`Manifest::max_http_response_bytes`].
    /// Refused: modules from a `url` and more than one module.
    ///
    /// ```
    /// use anywasm_plugin::{Abi, Manifest};
    /// // (the module is read now; this one is in the crate's test fixtures)
    /// let m = Manifest::from_extism_json(
    ///     "count_vowels",
    ///     r#"{"wasm": [{"path": "guest_c.wasm"}], "memory": {"max_pages": 16},
    ///         "config": {"greeting": "Ahoy"}, "timeout_ms": 250}"#,
    ///     std::path::Path::new("tests/fixtures/extism"),
    /// ).unwrap();
    /// assert_eq!(m.get_abi(), Abi::Extism);
    /// assert_eq!(m.get_limits().max_memory_pages, Some(16));
    /// ```
    pub fn from_extism_json(id: impl Into<String>, json: &str, dir: &Path) -> Result<Self> {
        use base64::Engine as _;
        use sha2::Digest as _;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ExtismManifest {
            #[serde(default)]
            wasm: Vec<ExtismWasm>,
            #[serde(default)]
            memory: ExtismMemory,
            #[serde(default)]
            config: BTreeMap<String, String>,
            #[serde(default)]
            allowed_hosts: Option<Vec<String>>,
            #[serde(default)]
            allowed_paths: Option<BTreeMap<String, PathBuf>>,
            #[serde(default)]
            timeout_ms: Option<u64>,
        }
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct ExtismMemory {
            max_pages: Option<u32>,
            max_http_response_bytes: Option<u64>,
            max_var_bytes: Option<u64>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ExtismWasm {
            path: Option<PathBuf>,
            data: Option<String>,
            url: Option<String>,
            #[serde(default)]
            headers: Option<BTreeMap<String, String>>,
            #[serde(default)]
            method: Option<String>,
            name: Option<String>,
            hash: Option<String>,
        }
        let id = id.into();
        let bad = |m: String| PluginError::Manifest(format!("Extism manifest of `{id}`: {m}"));
        let f: ExtismManifest = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let [wasm] = f.wasm.as_slice() else {
            return Err(bad(format!(
                "{} modules; exactly one is supported (Extism's linking of several is not)",
                f.wasm.len()
            )));
        };
        let _ = (&wasm.name, &wasm.headers, &wasm.method);
        let bytes = match (&wasm.path, &wasm.data, &wasm.url) {
            (Some(path), None, None) => {
                let path = if path.is_relative() {
                    dir.join(path)
                } else {
                    path.clone()
                };
                std::fs::read(&path).map_err(|source| PluginError::Io {
                    plugin: id.clone(),
                    path: path.display().to_string(),
                    source,
                })?
            }
            (None, Some(data), None) => base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| bad(format!("`data` is not base64: {e}")))?,
            (None, None, Some(url)) => {
                return Err(bad(format!(
                    "the module is at a URL ({url}); this host loads no code over HTTP: give a `path`"
                )));
            }
            _ => {
                return Err(bad(
                    "a module needs exactly one of `path`, `data` or `url`".into()
                ));
            }
        };
        if let Some(want) = &wasm.hash {
            let got: String = sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if !got.eq_ignore_ascii_case(want) {
                return Err(bad(format!(
                    "hash mismatch: the module's SHA-256 is {got}, the manifest says {want}"
                )));
            }
        }
        let mut m = Self::from_bytes(id, bytes).abi(Abi::Extism);
        if let Some(pages) = f.memory.max_pages {
            m.limits.max_memory_pages = Some(pages.into());
        }
        if let Some(bytes) = f.memory.max_var_bytes {
            m.limits.max_store_bytes = Some(bytes);
        }
        if let Some(ms) = f.timeout_ms {
            m.limits.deadline = Some(Duration::from_millis(ms));
        }
        m.config = f.config;
        m.http_hosts = f.allowed_hosts.unwrap_or_default();
        if let Some(max) = f.memory.max_http_response_bytes {
            m.max_http_response_bytes = max;
        }
        if let Some(paths) = f.allowed_paths {
            let mut grant = WasiGrant::new();
            for (host, guest) in paths {
                let guest = guest.to_string_lossy().into_owned();
                grant = match host.strip_prefix("ro:") {
                    Some(h) => grant.preopen_read_only(dir.join(h), guest),
                    None => grant.preopen_read_write(dir.join(&host), guest),
                };
            }
            m.wasi = Some(grant);
        }
        m.check()?;
        Ok(m)
    }

    /// [`Manifest::from_extism_json`] from a file; relative paths are
    /// relative to the file's directory.
    pub fn from_extism_json_file(id: impl Into<String>, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let id = id.into();
        let text = read_text(&id, path)?;
        Self::from_extism_json(id, &text, path.parent().unwrap_or(Path::new(".")))
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.id.is_empty() {
            return Err(PluginError::Manifest("the plugin id is empty".into()));
        }
        for p in &self.http_hosts {
            glob::Pattern::new(p).map_err(|e| {
                PluginError::Manifest(format!("allowed HTTP host `{p}` is not a pattern: {e}"))
            })?;
        }
        Ok(())
    }

    /// The plugin's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the code comes from.
    pub fn source(&self) -> &WasmSource {
        &self.source
    }

    /// The serialisation format.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// All limits at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Fuel per call.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = Some(fuel);
        self
    }

    /// Deadline per call.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.limits.deadline = Some(deadline);
        self
    }

    /// Memory limit in 64 KiB pages.
    pub fn max_memory_pages(mut self, pages: u64) -> Self {
        self.limits.max_memory_pages = Some(pages);
        self
    }

    /// How long a call waits for a free instance.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.limits.acquire_timeout = Some(timeout);
        self
    }

    /// A configuration value the guest can read with `anywasm.config_get`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Grants an import: `"anywasm.echo"`, `"host.lookup"`, or a whole module
    /// with `"host.*"` / `"anywasm.*"`.
    pub fn allow(mut self, import: impl Into<String>) -> Self {
        self.allowed.push(import.into());
        self
    }

    /// Grants WASI (`wasi_snapshot_preview1`) as `grant` says; without it a
    /// plugin that imports WASI does not load.
    pub fn wasi(mut self, grant: WasiGrant) -> Self {
        self.wasi = Some(grant);
        self
    }

    /// The WASI grant, if any.
    pub fn get_wasi(&self) -> Option<&WasiGrant> {
        self.wasi.as_ref()
    }

    /// How many instances may serve calls at the same time (at least 1).
    pub fn max_instances(mut self, n: usize) -> Self {
        self.max_instances = n.max(1);
        self
    }

    /// The limits.
    pub fn get_limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the manifest grants `module`.`name`.
    pub fn grants(&self, module: &str, name: &str) -> bool {
        if module == crate::wasi::WASI_MODULE {
            return self.wasi.is_some();
        }
        self.allowed
            .iter()
            .any(|a| a == &format!("{module}.{name}") || a.strip_suffix(".*") == Some(module))
    }
}

/// A manifest file's text; a failure names the plugin and the path.
fn read_text(plugin: &str, path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| PluginError::Io {
        plugin: plugin.to_string(),
        path: path.display().to_string(),
        source,
    })
}
