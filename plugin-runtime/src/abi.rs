//! The guest ABI (see `docs/ABI.md`): metadata, names and packing.

use serde::Deserialize;

use crate::error::{PluginError, Result};
use crate::manifest::Format;

/// The ABI version this host implements.
pub const ABI_VERSION: u32 = 1;
/// The custom section that declares a plugin.
pub const METADATA_SECTION: &str = "anywasm.plugin";
/// The guest's allocation export.
pub const ALLOC: &str = "anywasm_alloc";
/// The guest's optional format export.
pub const SET_FORMAT: &str = "anywasm_set_format";
/// Optional lifecycle exports.
pub const INITIALIZE: &str = "initialize";
/// Called when an instance is retired.
pub const SHUTDOWN: &str = "shutdown";
/// A reactor's set-up export (wasi-libc, C++ constructors), run once per
/// instance before anything else.
pub const REACTOR_INITIALIZE: &str = "_initialize";
/// State hand-over on reload: save.
pub const STATE_SAVE: &str = "anywasm_state_save";
/// State hand-over on reload: load.
pub const STATE_LOAD: &str = "anywasm_state_load";

/// Pending-result status: success.
pub const STATUS_OK: i64 = 0;
/// Pending-result status: the host function failed; the result is a message.
pub const STATUS_ERROR: i64 = 1;
/// Pending-result status: not found.
pub const STATUS_NOT_FOUND: i64 = 2;

/// What a plugin declares about itself, read without running it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// ABI version.
    pub abi: u64,
    /// Plugin name.
    #[serde(default)]
    pub name: Option<String>,
    /// Plugin version.
    #[serde(default)]
    pub version: Option<String>,
    /// Formats the guest speaks.
    #[serde(default = "default_formats")]
    pub formats: Vec<String>,
}

fn default_formats() -> Vec<String> {
    vec!["msgpack".into(), "json".into()]
}

impl Metadata {
    /// Reads and checks the metadata section of a module.
    pub fn from_module(plugin: &str, sections: &[&[u8]]) -> Result<Self> {
        let not = |reason: String| PluginError::NotAPlugin {
            plugin: plugin.to_string(),
            reason,
        };
        let bytes = match sections {
            [] => {
                return Err(not(format!(
                    "it has no `{METADATA_SECTION}` custom section"
                )));
            }
            [one] => *one,
            _ => {
                return Err(not(format!(
                    "it has more than one `{METADATA_SECTION}` section"
                )));
            }
        };
        // Tolerate the NUL padding C compilers add after a string.
        let text = std::str::from_utf8(bytes)
            .map_err(|_| not(format!("the `{METADATA_SECTION}` section is not UTF-8")))?
            .trim_end_matches('\0');
        let meta: Metadata = serde_json::from_str(text).map_err(|e| {
            not(format!(
                "the `{METADATA_SECTION}` section is not valid metadata: {e}"
            ))
        })?;
        if meta.abi != u64::from(ABI_VERSION) {
            return Err(PluginError::AbiVersion {
                plugin: plugin.to_string(),
                found: meta.abi,
                supported: ABI_VERSION,
            });
        }
        Ok(meta)
    }

    /// Checks that the guest speaks `format`.
    pub fn check_format(&self, plugin: &str, format: Format) -> Result<()> {
        let name = format.name();
        if format.resolve() == Format::Raw || self.formats.iter().any(|f| f == name) {
            return Ok(());
        }
        Err(PluginError::FormatNotSupported {
            plugin: plugin.to_string(),
            format: name,
            declared: self.formats.join(", "),
        })
    }
}

/// Splits a plugin function's result into `(ptr, len)`.
pub fn unpack(result: i64) -> (u32, u32) {
    let r = result as u64;
    ((r >> 32) as u32, r as u32)
}

/// Packs a pending result.
pub fn pending(status: i64, len: usize) -> i64 {
    (status << 32) | (len as u32 as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_checked() {
        let ok = Metadata::from_module("p", &[br#"{"abi":1,"name":"x"}"#]).unwrap();
        assert_eq!(ok.name.as_deref(), Some("x"));
        assert_eq!(ok.formats, ["msgpack", "json"]);
        assert!(matches!(
            Metadata::from_module("p", &[br#"{"abi":2}"#]),
            Err(PluginError::AbiVersion {
                found: 2,
                supported: 1,
                ..
            })
        ));
        assert!(matches!(
            Metadata::from_module("p", &[]),
            Err(PluginError::NotAPlugin { .. })
        ));
        assert!(matches!(
            Metadata::from_module("p", &[b"{"]),
            Err(PluginError::NotAPlugin { .. })
        ));
        let padded = Metadata::from_module("p", &[b"{\"abi\":1}\0\0"]).unwrap();
        assert_eq!(padded.abi, 1);
        assert!(ok.check_format("p", Format::Json).is_ok());
        let json_only = Metadata::from_module("p", &[br#"{"abi":1,"formats":["json"]}"#]).unwrap();
        assert!(matches!(
            json_only.check_format("p", Format::MsgPack),
            Err(PluginError::FormatNotSupported { .. })
        ));
    }

    #[test]
    fn packing_round_trips() {
        assert_eq!(unpack(((1234u64 << 32) | 99) as i64), (1234, 99));
        assert_eq!(unpack(pending(STATUS_ERROR, 7)), (1, 7));
        assert_eq!(unpack(-1), (u32::MAX, u32::MAX));
    }
}
