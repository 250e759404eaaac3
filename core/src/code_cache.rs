//! A cache of compiled code on disk, so a module is compiled once per
//! engine configuration rather than once per process.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::backend::Backend;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::module::Module;
use crate::module_info::ContentHash;

/// The extension of cache entries; other files in the directory are left alone.
const ENTRY_EXT: &str = "anywasm-code";

/// The default cap on the cache's size on disk: 1 GiB.
pub const DEFAULT_CODE_CACHE_BYTES: u64 = 1 << 30;

/// Compiled modules on disk, keyed by the module's bytes and everything about
/// the engine that changes its code (backend, engine version, configuration).
///
/// Generic code that loads through the cache on any backend (the
/// conformance case `code_cache_on_disk` runs the same on all three):
///
/// ```
/// use anywasm_core::{Backend, CodeCache, CodeCacheOutcome, Engine, Result};
///
/// fn load_twice<B: Backend>(dir: &std::path::Path) -> Result<()> {
///     let cache = CodeCache::open(dir)?;
///     let engine = Engine::<B>::default_config()?;
///     let wasm = wat::parse_str("(module (func (export \"f\")))").unwrap();
///     let (_module, first) = cache.module(&engine, &wasm)?;
///     let (_module, second) = cache.module(&engine, &wasm)?;
///     if engine.capabilities().precompiled_modules {
///         assert_eq!((first, second), (CodeCacheOutcome::Stored, CodeCacheOutcome::Loaded));
///     } else {
///         assert_eq!(second, CodeCacheOutcome::Unsupported);
///     }
///     Ok(())
/// }
/// ```
///
/// Backends without precompiled code (see
/// [`Capabilities::precompiled_modules`](crate::Capabilities)) compile every
/// time and report [`CodeCacheOutcome::Unsupported`].
///
/// # Trust model
/// Loading compiled code means running machine code read from a file: the
/// engines' deserialisation is `unsafe` for that reason. The cache trusts a
/// file only as far as it trusts the directory, so the directory must be
/// private to the user running the program. [`CodeCache::open`] creates it
/// with mode `0700` and refuses one that is owned by another user or that
/// others may write to (on Unix; elsewhere the directory's access control is
/// the user's to set). Against accidents (a truncated write, a disk error,
/// an entry left by another engine version or configuration, two processes
/// writing at once) every entry is checked before the engine sees it: the
/// blob names the backend, engine version and configuration it was made for,
/// carries a SHA-256 of its code and the WebAssembly it was compiled from,
/// which must be the bytes asked for. An entry that fails a check is deleted
/// and the module compiled again; it is never loaded. A forged entry written
/// by someone who can write the directory is outside what checks can catch,
/// which is why the directory's permissions are checked instead.
#[derive(Debug, Clone)]
pub struct CodeCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// What [`CodeCache::module`] did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCacheOutcome {
    /// The compiled code came from the cache.
    Loaded,
    /// The module was compiled and its code stored.
    Stored,
    /// The module was compiled; storing its code failed (the reason). The
    /// module is fine; the next load compiles again.
    NotStored(String),
    /// An entry was there but failed a check (the reason); it was deleted,
    /// and the module compiled and stored again.
    Replaced(String),
    /// The backend has no precompiled code; the module was compiled.
    Unsupported,
}

/// Makes temporary file names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl CodeCache {
    /// Opens (creating it if needed, private to the user) the cache in `dir`,
    /// with a size cap of [`DEFAULT_CODE_CACHE_BYTES`].
    ///
    /// Fails with [`Error::CodeCache`] if the directory cannot be created or
    /// is not private to the user (see the trust model in [`CodeCache`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let err = |message: String| Error::CodeCache {
            path: dir.display().to_string(),
            message,
        };
        create_private_dir(&dir).map_err(|e| err(format!("cannot create: {e}")))?;
        check_private(&dir).map_err(err)?;
        Ok(Self {
            dir,
            max_bytes: DEFAULT_CODE_CACHE_BYTES,
        })
    }

    /// Caps the cache's size on disk: after storing an entry, the least
    /// recently used entries are deleted until the cache fits. An entry
    /// larger than the cap is not stored.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The compiled module for `wasm` on `engine`: loaded from the cache when
    /// a valid entry is there, otherwise compiled (and stored when the backend
    /// can serialise code). Compile errors are the same as
    /// [`Module::new`]'s; problems with the cache never fail the load (they
    /// show in the [`CodeCacheOutcome`]).
    pub fn module<B: Backend>(
        &self,
        engine: &Engine<B>,
        wasm: &[u8],
    ) -> Result<(Module<B>, CodeCacheOutcome)> {
        if !B::capabilities().precompiled_modules {
            return Ok((Module::new(engine, wasm)?, CodeCacheOutcome::Unsupported));
        }
        let path = self.entry_path(engine, wasm);
        let mut rejected = None;
        match self.load(engine, wasm, &path) {
            Ok(Some(module)) => return Ok((module, CodeCacheOutcome::Loaded)),
            Ok(None) => {}
            Err(reason) => {
                let _ = fs::remove_file(&path);
                rejected = Some(reason);
            }
        }
        let module = Module::new(engine, wasm)?;
        let stored = module.serialize().and_then(|blob| self.store(&path, &blob));
        let outcome = match (stored, rejected) {
            (Err(e), _) => CodeCacheOutcome::NotStored(e.to_string()),
            (Ok(()), Some(reason)) => CodeCacheOutcome::Replaced(reason),
            (Ok(()), None) => CodeCacheOutcome::Stored,
        };
        Ok((module, outcome))
    }

    /// The number of entries and their total size in bytes.
    pub fn usage(&self) -> (usize, u64) {
        let entries = self.entries();
        (entries.len(), entries.iter().map(|e| e.1).sum())
    }

    /// Deletes every entry.
    pub fn clear(&self) -> Result<()> {
        for (path, _, _) in self.entries() {
            fs::remove_file(&path).map_err(|e| Error::CodeCache {
                path: path.display().to_string(),
                message: format!("cannot delete: {e}"),
            })?;
        }
        Ok(())
    }

    fn entry_path<B: Backend>(&self, engine: &Engine<B>, wasm: &[u8]) -> PathBuf {
        let fingerprint = crate::module::config_fingerprint(engine);
        let mut keyed = Vec::with_capacity(fingerprint.len() + 1 + wasm.len());
        keyed.extend_from_slice(fingerprint.as_bytes());
        keyed.push(0);
        keyed.extend_from_slice(wasm);
        let key = ContentHash::of(&keyed).to_hex();
        self.dir.join(format!("{key}.{ENTRY_EXT}"))
    }

    /// `Ok(None)`: no entry. `Err`: an entry that must not be used, and why.
    fn load<B: Backend>(
        &self,
        engine: &Engine<B>,
        wasm: &[u8],
        path: &Path,
    ) -> std::result::Result<Option<Module<B>>, String> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read the entry: {e}")),
        };
        if !meta.file_type().is_file() {
            return Err("the entry is not a regular file".into());
        }
        let blob = fs::read(path).map_err(|e| format!("cannot read the entry: {e}"))?;
        // SAFETY: the directory is private to the user (checked by `open`),
        // so the entry was written by this user's programs; `deserialize`
        // checks backend, engine version, configuration and a SHA-256 of the
        // code before the engine sees it.
        let module = unsafe { Module::deserialize(engine, &blob) }.map_err(|e| e.to_string())?;
        if module.info().bytes() != wasm {
            return Err("the entry was compiled from other WebAssembly".into());
        }
        // Recently used entries are evicted last.
        if let Ok(file) = fs::File::options().append(true).open(path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Ok(Some(module))
    }

    /// Writes `blob` to `path` atomically (a private temporary file renamed
    /// into place), then evicts down to the cap.
    fn store(&self, path: &Path, blob: &[u8]) -> Result<()> {
        let err = |message: String| Error::CodeCache {
            path: self.dir.display().to_string(),
            message,
        };
        if blob.len() as u64 > self.max_bytes {
            return Err(err(format!(
                "an entry of {} bytes is larger than the cache's cap of {} bytes",
                blob.len(),
                self.max_bytes
            )));
        }
        let temp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = private_file(&temp)?;
            file.write_all(blob)?;
            file.sync_all()?;
            fs::rename(&temp, path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(err(format!("cannot write an entry: {e}")));
        }
        self.evict(path);
        Ok(())
    }

    /// Deletes the least recently used entries (but not `keep`) until the
    /// cache fits its cap.
    fn evict(&self, keep: &Path) {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort_by_key(|e| e.2);
        for (path, size, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && fs::remove_file(&path).is_ok() {
                total -= size;
            }
        }
    }

    /// `(path, size, last used)` of every entry.
    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(|e| {
            let e = e.ok()?;
            let path = e.path();
            if path.extension()? != ENTRY_EXT {
                return None;
            }
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| {
                (
                    path,
                    meta.len(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                )
            })
        })
        .collect()
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::File::options().write(true).create_new(true).open(path)
}

/// The directory must be a real directory, owned by this user, that no one
/// else may write to.
#[cfg(unix)]
fn check_private(dir: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_dir() {
        return Err("not a directory (a symbolic link is not accepted either)".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "owned by user {}, not by this user ({me}); compiled code is only loaded from a directory private to the user",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "others may write to it (mode {:o}); compiled code is only loaded from a directory private to the user (chmod go-w)",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(dir: &Path) -> std::result::Result<(), String> {
    if fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read: {e}"))?
        .is_dir()
    {
        Ok(())
    } else {
        Err("not a directory".into())
    }
}
