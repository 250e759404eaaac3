//! Compiled modules, their metadata, and precompiled blobs.

use std::path::Path;
use std::sync::Arc;

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::module_info::{ContentHash, ModuleInfo};
use crate::types::{ExportType, ImportType};

/// A compiled WebAssembly module, ready to instantiate in any store of its engine.
///
/// Cheap to clone. Its imports, exports and custom sections are read from
/// the bytes by the layer, so they look the same on every backend.
pub struct Module<B: BackendTypes> {
    raw: B::Module,
    info: Arc<ModuleInfo>,
    engine: Engine<B>,
    /// The reserved export under which the start function was compiled
    /// (see [`Instance::new`](crate::Instance::new)).
    start: Option<Arc<str>>,
}

impl<B: Backend> Clone for Module<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            info: self.info.clone(),
            engine: self.engine.clone(),
            start: self.start.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Module<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("backend", &B::NAME)
            .field("hash", &self.info.hash())
            .field("size", &self.info.bytes().len())
            .finish()
    }
}

const BLOB_MAGIC: &[u8; 8] = b"ANYWASM\x01";

/// Everything about an engine configuration that changes generated code
/// (and the layer's version, since the layer rewrites modules before
/// compiling them).
pub(crate) fn config_fingerprint<B: Backend>(engine: &Engine<B>) -> String {
    let c = engine.config();
    format!(
        "anywasm-{}/{}/{}/code={}/fuel={}/interruptible={}/stack={:?}/opt={:?}/features={:?}",
        env!("CARGO_PKG_VERSION"),
        B::NAME,
        B::ENGINE_VERSION,
        B::CODE_REVISION,
        c.fuel_enabled(),
        c.interruptible_enabled(),
        c.get_max_wasm_stack(),
        c.get_opt_level(),
        c.get_features()
    )
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

fn take_bytes<'a>(input: &mut &'a [u8], what: &str) -> Result<&'a [u8]> {
    let bad = || Error::Precompiled(format!("truncated blob (reading {what})"));
    if input.len() < 8 {
        return Err(bad());
    }
    let (len, rest) = input.split_at(8);
    let len = u64::from_le_bytes(len.try_into().map_err(|_| bad())?);
    if len > rest.len() as u64 {
        return Err(bad());
    }
    let (b, rest) = rest.split_at(len as usize);
    *input = rest;
    Ok(b)
}

impl<B: Backend> Module<B> {
    /// Compiles a module from its binary form.
    ///
    /// A module with a start function is compiled with the start function
    /// exported under a reserved name instead (see [`RESERVED_EXPORT_PREFIX`](crate::RESERVED_EXPORT_PREFIX)),
    /// after the engine has validated the module as given.
    pub fn new(engine: &Engine<B>, bytes: impl AsRef<[u8]>) -> Result<Self> {
        let bytes = bytes.as_ref();
        let info = match ModuleInfo::parse(bytes) {
            Ok(info) => info,
            Err(ours) => {
                // Malformed bytes: the engine's own words say more.
                B::module_validate(engine.raw(), bytes)?;
                return Err(ours);
            }
        };
        let (raw, start) = match crate::rewrite::defer_start_of(bytes, &info)? {
            Some(deferred) => {
                // The rewrite hides a start function of the wrong type.
                B::module_validate(engine.raw(), bytes)?;
                let raw = B::module_new(engine.raw(), &deferred.bytes)?;
                (raw, Some(deferred.export.into()))
            }
            None => (B::module_new(engine.raw(), bytes)?, None),
        };
        engine.shared().module_compiled();
        Ok(Self {
            raw,
            info: Arc::new(info),
            engine: engine.clone(),
            start,
        })
    }

    /// The reserved export name of the deferred start function, if any.
    pub(crate) fn start_export(&self) -> Option<&str> {
        self.start.as_deref()
    }

    /// Compiles a module from WebAssembly text.
    pub fn from_wat(engine: &Engine<B>, text: &str) -> Result<Self> {
        let bytes = wat::parse_str(text).map_err(|e| Error::Wat {
            message: e.to_string(),
        })?;
        Self::new(engine, bytes)
    }

    /// Compiles a module from a file holding either the binary or the text form.
    pub fn from_file(engine: &Engine<B>, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let bytes = wat::parse_bytes(&bytes)
            .map_err(|e| Error::Wat {
                message: format!("{}: {e}", path.display()),
            })?
            .into_owned();
        Self::new(engine, bytes)
    }

    /// Checks that `bytes` are a valid module for this engine's configuration,
    /// without compiling it.
    pub fn validate(engine: &Engine<B>, bytes: impl AsRef<[u8]>) -> Result<()> {
        B::module_validate(engine.raw(), bytes.as_ref())
    }

    /// The engine this module was compiled with.
    pub fn engine(&self) -> &Engine<B> {
        &self.engine
    }

    /// Parsed metadata.
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// Imports, in order.
    pub fn imports(&self) -> &[ImportType] {
        self.info.imports()
    }

    /// Exports, in order.
    pub fn exports(&self) -> &[ExportType] {
        self.info.exports()
    }

    /// SHA-256 of the module bytes; the key of module caches.
    pub fn hash(&self) -> ContentHash {
        self.info.hash()
    }

    /// Size of the module bytes.
    pub fn size(&self) -> usize {
        self.info.bytes().len()
    }

    /// Payloads of the custom sections called `name`.
    pub fn custom_sections<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.info.custom_section(name)
    }

    /// The engine's module.
    pub fn raw(&self) -> &B::Module {
        &self.raw
    }

    /// Serialises the compiled code so it can be loaded later without
    /// compiling, with [`Module::deserialize`].
    ///
    /// The blob records the backend, engine version and configuration; fails
    /// with [`Error::Unsupported`] on backends without precompiled code
    /// (see [`Capabilities::precompiled_modules`](crate::Capabilities)).
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let code = B::module_serialize(self.engine.raw(), &self.raw)?;
        let mut out = Vec::with_capacity(code.len() + self.size() + 128);
        out.extend_from_slice(BLOB_MAGIC);
        put_bytes(&mut out, config_fingerprint(&self.engine).as_bytes());
        put_bytes(&mut out, self.info.bytes());
        put_bytes(&mut out, &ContentHash::of(&code).0);
        put_bytes(&mut out, &code);
        Ok(out)
    }

    /// Loads a blob made by [`Module::serialize`].
    ///
    /// A blob from another backend, engine version or configuration, or one
    /// that was altered, is rejected with [`Error::Precompiled`] before the
    /// engine sees it.
    ///
    /// # Safety
    /// The engine runs the machine code inside the blob. The checks above catch
    /// mistakes and corruption, not a forged blob: only load blobs you produced
    /// and stored where others cannot write.
    pub unsafe fn deserialize(engine: &Engine<B>, blob: &[u8]) -> Result<Self> {
        if !B::capabilities().precompiled_modules {
            return Err(Error::unsupported(B::NAME, "precompiled modules"));
        }
        let Some(mut rest) = blob.strip_prefix(BLOB_MAGIC) else {
            return Err(Error::Precompiled(
                "not an anywasm precompiled module (bad magic)".into(),
            ));
        };
        let fingerprint = take_bytes(&mut rest, "configuration")?;
        let expected = config_fingerprint(engine);
        if fingerprint != expected.as_bytes() {
            return Err(Error::Precompiled(format!(
                "made for `{}`, but this engine is `{expected}`",
                String::from_utf8_lossy(fingerprint)
            )));
        }
        let wasm = take_bytes(&mut rest, "module bytes")?;
        let checksum = take_bytes(&mut rest, "checksum")?;
        let code = take_bytes(&mut rest, "code")?;
        if checksum != ContentHash::of(code).0 {
            return Err(Error::Precompiled(
                "checksum mismatch: the blob was altered".into(),
            ));
        }
        let info = ModuleInfo::parse(wasm)?;
        // SAFETY: the caller vouches for the blob's origin; backend, engine
        // version and configuration were checked above.
        let raw = unsafe { B::module_deserialize(engine.raw(), code)? };
        engine.shared().module_compiled();
        let start = crate::rewrite::start_export_name(&info).map(Into::into);
        Ok(Self {
            raw,
            info: Arc::new(info),
            engine: engine.clone(),
            start,
        })
    }
}
