//! WASI preview 1 for plugins, granted per manifest ([`WasiGrant`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anywasm_wasi::{Lines, Output, Stdin, WasiConfig, WasiCtx};
use serde::Deserialize;

use crate::error::{PluginError, Result};
use crate::host::LogFn;
use crate::manifest::Limits;

/// The WASI module plugins import from.
pub(crate) const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Log level of a plugin's standard output lines.
pub const STDOUT_LOG_LEVEL: u32 = 2;
/// Log level of a plugin's standard error lines.
pub const STDERR_LOG_LEVEL: u32 = 1;

/// What a plugin may reach through WASI (`wasi_snapshot_preview1`). Without
/// a grant a plugin that imports WASI does not load.
///
/// Each instance gets its own WASI state (descriptors, current files) made
/// from the grant; directories are reached only through the preopens,
/// read-only unless granted otherwise; the environment and arguments are
/// exactly those listed; standard input is empty; standard output and error
/// go line by line to the runtime's log
/// ([`HostFunctions::logger`](crate::HostFunctions::logger)) at levels
/// [`STDOUT_LOG_LEVEL`] and [`STDERR_LOG_LEVEL`], lines cut at the
/// manifest's `max_message_bytes`. The plugin's limits bound WASI calls as
/// any other: a `poll_oneoff` sleep ends with the call's deadline.
///
/// ```
/// use anywasm_plugin::{Manifest, WasiGrant};
/// let m = Manifest::from_file("report", "plugins/report.wasm").wasi(
///     WasiGrant::new()
///         .preopen_read_only("/srv/templates", "/templates")
///         .preopen_read_write("/tmp/report-out", "/out")
///         .env("LANG", "C.UTF-8")
///         .arg("report"),
/// );
/// assert!(m.get_wasi().is_some());
/// ```
///
/// In a JSON manifest: `"wasi": {"args": ["report"], "env": {"LANG":
/// "C.UTF-8"}, "preopens": [{"host": "templates", "guest": "/templates"},
/// {"host": "/tmp/out", "guest": "/out", "writable": true}]}` (a relative
/// host path is relative to the manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasiGrant {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    preopens: Vec<GrantedDir>,
}

/// A host directory a plugin sees through WASI.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantedDir {
    /// The directory on the host.
    pub host: PathBuf,
    /// The name the plugin opens it by.
    pub guest: String,
    /// Whether the plugin may create, write and remove in it.
    #[serde(default)]
    pub writable: bool,
}

impl WasiGrant {
    /// Nothing but the clocks and random numbers: no files, no environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// An argument (`argv`), in order; the first is the program name by
    /// convention.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// A host directory the plugin may read, as `guest`.
    pub fn preopen_read_only(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.preopens.push(GrantedDir {
            host: host.into(),
            guest: guest.into(),
            writable: false,
        });
        self
    }

    /// A host directory the plugin may read and change, as `guest`.
    pub fn preopen_read_write(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
    ) -> Self {
        self.preopens.push(GrantedDir {
            host: host.into(),
            guest: guest.into(),
            writable: true,
        });
        self
    }

    /// The preopened directories.
    pub fn preopens(&self) -> &[GrantedDir] {
        &self.preopens
    }

    /// Makes relative host paths relative to `dir` (a JSON manifest's).
    pub(crate) fn relative_to(mut self, dir: &std::path::Path) -> Self {
        for p in &mut self.preopens {
            if p.host.is_relative() {
                p.host = dir.join(&p.host);
            }
        }
        self
    }

    /// A fresh WASI state for one instance of plugin `plugin`.
    pub(crate) fn build(
        &self,
        plugin: &str,
        log: Option<&LogFn>,
        limits: &Limits,
    ) -> Result<WasiCtx> {
        let mut config = WasiConfig::new()
            .args(self.args.iter().cloned())
            .stdin(Stdin::Empty);
        for (k, v) in &self.env {
            config = config.env(k.clone(), v.clone());
        }
        for p in &self.preopens {
            config = if p.writable {
                config.preopen_dir(&p.host, p.guest.clone())
            } else {
                config.preopen_dir_read_only(&p.host, p.guest.clone())
            };
        }
        if let Some(log) = log {
            let max = limits
                .max_message_bytes
                .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
            let stream = |level: u32| {
                let (log, plugin) = (log.clone(), plugin.to_string());
                Output::Lines(Lines::new(max, move |line| log(&plugin, level, line)))
            };
            config = config
                .stdout(stream(STDOUT_LOG_LEVEL))
                .stderr(stream(STDERR_LOG_LEVEL));
        }
        config.build().map_err(|e| {
            PluginError::Manifest(format!("plugin `{plugin}`: WASI cannot start: {e}"))
        })
    }
}
