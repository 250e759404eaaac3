//! The configuration of a WASI program and its state: arguments,
//! environment, standard streams and the table of file descriptors.

use std::any::Any;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anywasm_core::{Backend, Memory};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, File};

use crate::rights::{self, Rights};

/// How many descriptors a program may hold open at once by default
/// (standard streams and preopens included): each open file is a
/// descriptor of the host process, which has a limit of its own.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;

/// Where the program's standard input comes from.
#[derive(Debug, Clone)]
pub enum Stdin {
    /// Nothing: reads return end of file.
    Empty,
    /// These bytes.
    Bytes(Arc<Vec<u8>>),
    /// The host process's standard input.
    Inherit,
}

/// Where standard output or error goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// Nowhere.
    Discard,
    /// Into a buffer the host reads afterwards ([`Captured`]).
    Capture(Captured),
    /// The host process's own stream.
    Inherit,
    /// Line by line to a function of the host ([`Lines`]), e.g. its log.
    Lines(Lines),
}

/// Standard output or error delivered line by line: each complete line
/// (without its newline, decoded lossily as UTF-8) goes to a function of the
/// host. A line longer than the maximum is delivered in pieces of that
/// size, so the host never holds more than one maximum-length line per
/// stream; text left without a newline is delivered when the program's
/// [`WasiCtx`] is dropped.
#[derive(Clone)]
pub struct Lines {
    inner: Arc<LinesInner>,
}

struct LinesInner {
    deliver: Box<dyn Fn(&str) + Send + Sync>,
    pending: Mutex<Vec<u8>>,
    max_line: usize,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines")
            .field("max_line", &self.inner.max_line)
            .finish_non_exhaustive()
    }
}

impl Lines {
    /// Lines of at most `max_line` bytes (at least 1) to `deliver`.
    pub fn new(max_line: usize, deliver: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(LinesInner {
                deliver: Box::new(deliver),
                pending: Mutex::new(Vec::new()),
                max_line: max_line.max(1),
            }),
        }
    }

    fn write(&self, mut bytes: &[u8]) -> usize {
        let n = bytes.len();
        let inner = &*self.inner;
        let mut pending = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        while !bytes.is_empty() {
            let room = inner.max_line - pending.len();
            let take = bytes.len().min(room);
            match bytes[..take].iter().position(|b| *b == b'\n') {
                Some(i) => {
                    pending.extend_from_slice(&bytes[..i]);
                    (inner.deliver)(&String::from_utf8_lossy(&pending));
                    pending.clear();
                    bytes = &bytes[i + 1..];
                }
                None => {
                    pending.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if pending.len() == inner.max_line {
                        (inner.deliver)(&String::from_utf8_lossy(&pending));
                        pending.clear();
                    }
                }
            }
        }
        n
    }
}

impl Drop for LinesInner {
    fn drop(&mut self) {
        let pending = self.pending.get_mut().unwrap_or_else(|p| p.into_inner());
        if !pending.is_empty() {
            (self.deliver)(&String::from_utf8_lossy(pending));
        }
    }
}

/// Bytes a program wrote to a captured stream.
///
/// Unbounded by default; [`Captured::with_limit`] caps it, after which the
/// program's writes fail with `ENOSPC` (so a program cannot make the host
/// hold more than the limit).
#[derive(Debug, Clone)]
pub struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    limit: usize,
}

impl Default for Captured {
    fn default() -> Self {
        Self::with_limit(usize::MAX)
    }
}

impl Captured {
    /// A new, empty, unbounded buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty buffer that keeps at most `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            bytes: Arc::default(),
            limit,
        }
    }

    /// What has been written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.bytes.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// What has been written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.contents()).into_owned()
    }

    /// How many bytes have been written.
    pub fn len(&self) -> usize {
        self.bytes.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends what fits under the limit; a short count when the limit is
    /// reached, `ENOSPC` when nothing fits.
    fn write(&self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut b = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.limit.saturating_sub(b.len());
        if room == 0 && !bytes.is_empty() {
            return Err(std::io::ErrorKind::StorageFull.into());
        }
        let n = bytes.len().min(room);
        b.extend_from_slice(&bytes[..n]);
        Ok(n)
    }
}

/// A host directory made visible to the program.
#[derive(Debug, Clone)]
pub struct Preopen {
    /// The directory on the host.
    pub host: PathBuf,
    /// The name the program sees (e.g. `/sandbox` or `.`).
    pub guest: String,
    /// Whether the program may only read.
    pub read_only: bool,
}

/// What a WASI program is given: nothing by default.
///
/// ```
/// use anywasm_wasi::{Captured, Output, WasiConfig};
/// let out = Captured::new();
/// let config = WasiConfig::new()
///     .arg("prog")
///     .arg("--verbose")
///     .env("GREETING", "hello")
///     .stdin_bytes(b"input".to_vec())
///     .stdout(Output::Capture(out.clone()));
/// assert_eq!(config.get_args(), ["prog", "--verbose"]);
/// ```
#[derive(Debug, Clone)]
pub struct WasiConfig {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Stdin,
    stdout: Output,
    stderr: Output,
    preopens: Vec<Preopen>,
    max_open_files: usize,
}

impl Default for WasiConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl WasiConfig {
    /// No arguments, no environment, no files; standard input empty and
    /// output discarded. Nothing of the host leaks unless added here.
    pub fn new() -> Self {
        Self {
            args: Vec::new(),
            env: Vec::new(),
            stdin: Stdin::Empty,
            stdout: Output::Discard,
            stderr: Output::Discard,
            preopens: Vec::new(),
            max_open_files: DEFAULT_MAX_OPEN_FILES,
        }
    }

    /// The most descriptors the program may hold open at once, standard
    /// streams and preopens included ([`DEFAULT_MAX_OPEN_FILES`] by
    /// default); opening more fails with `EMFILE`.
    pub fn max_open_files(mut self, n: usize) -> Self {
        self.max_open_files = n;
        self
    }

    /// Adds an argument (the first is the program name).
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Adds arguments.
    pub fn args<S: Into<String>>(mut self, a: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Standard input.
    pub fn stdin(mut self, s: Stdin) -> Self {
        self.stdin = s;
        self
    }

    /// Standard input from bytes.
    pub fn stdin_bytes(self, bytes: Vec<u8>) -> Self {
        self.stdin(Stdin::Bytes(Arc::new(bytes)))
    }

    /// Standard output.
    pub fn stdout(mut self, o: Output) -> Self {
        self.stdout = o;
        self
    }

    /// Standard error.
    pub fn stderr(mut self, o: Output) -> Self {
        self.stderr = o;
        self
    }

    /// Inherits the host's standard input, output and error.
    pub fn inherit_stdio(self) -> Self {
        self.stdin(Stdin::Inherit)
            .stdout(Output::Inherit)
            .stderr(Output::Inherit)
    }

    /// Makes the host directory `host` visible as `guest`, read-write.
    pub fn preopen_dir(mut self, host: impl AsRef<Path>, guest: impl Into<String>) -> Self {
        self.preopens.push(Preopen {
            host: host.as_ref().to_path_buf(),
            guest: guest.into(),
            read_only: false,
        });
        self
    }

    /// Makes the host directory `host` visible as `guest`, read-only.
    pub fn preopen_dir_read_only(
        mut self,
        host: impl AsRef<Path>,
        guest: impl Into<String>,
    ) -> Self {
        self.preopens.push(Preopen {
            host: host.as_ref().to_path_buf(),
            guest: guest.into(),
            read_only: true,
        });
        self
    }

    /// The arguments.
    pub fn get_args(&self) -> &[String] {
        &self.args
    }

    /// Opens the preopened directories and makes the program's state.
    pub fn build(self) -> Result<WasiCtx, anywasm_core::Error> {
        let mut fds = stdio();
        for p in &self.preopens {
            let dir = Dir::open_ambient_dir(&p.host, ambient_authority()).map_err(|source| {
                anywasm_core::Error::Io {
                    path: p.host.display().to_string(),
                    source,
                }
            })?;
            let (base, inheriting) = rights::preopen(p.read_only);
            fds.push(Some(Entry {
                fd: Fd::Dir(DirFd {
                    dir,
                    preopen: Some(p.guest.clone()),
                    entries: None,
                }),
                base,
                inheriting,
            }));
        }
        Ok(self.into_ctx(fds))
    }

    fn into_ctx(self, fds: Vec<Option<Entry>>) -> WasiCtx {
        WasiCtx {
            args: self.args,
            env: self.env,
            stdin: self.stdin,
            stdin_pos: 0,
            stdout: self.stdout,
            stderr: self.stderr,
            fds,
            max_open_files: self.max_open_files,
            start: Instant::now(),
            memory: None,
        }
    }
}

/// The three standard streams' descriptors.
fn stdio() -> Vec<Option<Entry>> {
    let entry = |kind, base| {
        Some(Entry {
            fd: kind,
            base,
            inheriting: 0,
        })
    };
    vec![
        entry(Fd::Stdin, rights::STDIN),
        entry(Fd::Stdout, rights::STDOUT),
        entry(Fd::Stderr, rights::STDOUT),
    ]
}

/// An open directory.
pub(crate) struct DirFd {
    pub(crate) dir: Dir,
    pub(crate) preopen: Option<String>,
    /// Names listed by `fd_readdir`, read when a listing starts (cookie 0).
    pub(crate) entries: Option<Vec<(String, u8)>>,
}

/// An open file.
pub(crate) struct FileFd {
    pub(crate) file: File,
    pub(crate) append: bool,
}

pub(crate) enum Fd {
    Stdin,
    Stdout,
    Stderr,
    File(FileFd),
    Dir(DirFd),
}

/// A descriptor and its rights.
pub(crate) struct Entry {
    pub(crate) fd: Fd,
    pub(crate) base: Rights,
    pub(crate) inheriting: Rights,
}

/// The state of a WASI program; keep it in the store's data and give
/// [`add_to_linker`](crate::add_to_linker) a way to reach it.
pub struct WasiCtx {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    stdin: Stdin,
    stdin_pos: usize,
    stdout: Output,
    stderr: Output,
    pub(crate) fds: Vec<Option<Entry>>,
    pub(crate) max_open_files: usize,
    pub(crate) start: Instant,
    /// The program's memory when it imports it rather than exporting it
    /// (a `Memory<B>`; see [`WasiCtx::set_memory`]).
    memory: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for WasiCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiCtx")
            .field("args", &self.args)
            .field("open_fds", &self.fds.iter().filter(|f| f.is_some()).count())
            .finish_non_exhaustive()
    }
}

impl WasiCtx {
    /// A program state with nothing: no arguments, environment or
    /// directories, empty input, output discarded (what
    /// `WasiConfig::new().build()` gives, without a `Result`).
    pub fn empty() -> Self {
        WasiConfig::new().into_ctx(stdio())
    }

    /// The memory WASI reads and writes for a program that imports its
    /// memory instead of exporting it as `memory` (a position-independent
    /// main program of the dynamic linker, for example). A program that
    /// exports `memory` uses its own.
    pub fn set_memory<B: Backend>(&mut self, memory: Memory<B>) {
        self.memory = Some(Box::new(memory));
    }

    /// The memory set with [`WasiCtx::set_memory`], if it is one of backend `B`.
    pub(crate) fn memory<B: Backend>(&self) -> Option<Memory<B>> {
        self.memory.as_ref()?.downcast_ref::<Memory<B>>().cloned()
    }

    /// Whether standard input is the host's own (reads may block).
    pub(crate) fn stdin_is_inherited(&self) -> bool {
        matches!(self.stdin, Stdin::Inherit)
    }

    /// How many bytes standard input can give without blocking, if known.
    pub(crate) fn stdin_available(&self) -> Option<u64> {
        match &self.stdin {
            Stdin::Empty => Some(0),
            Stdin::Bytes(b) => Some(b.len().saturating_sub(self.stdin_pos) as u64),
            Stdin::Inherit => None,
        }
    }

    pub(crate) fn read_stdin(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &self.stdin {
            Stdin::Empty => Ok(0),
            Stdin::Inherit => read_host_stdin(buf),
            Stdin::Bytes(b) => {
                let rest = &b[self.stdin_pos.min(b.len())..];
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                self.stdin_pos += n;
                Ok(n)
            }
        }
    }

    pub(crate) fn write_out(&mut self, err: bool, bytes: &[u8]) -> std::io::Result<usize> {
        match if err { &self.stderr } else { &self.stdout } {
            Output::Discard => Ok(bytes.len()),
            Output::Capture(c) => c.write(bytes),
            Output::Lines(l) => Ok(l.write(bytes)),
            Output::Inherit if err => std::io::stderr().write_all(bytes).map(|_| bytes.len()),
            Output::Inherit => {
                let mut out = std::io::stdout();
                out.write_all(bytes)?;
                out.flush()?;
                Ok(bytes.len())
            }
        }
    }
}

/// Reads the host's standard input from its descriptor, past the standard
/// library's buffer: the waits (`poll_oneoff`, the async `fd_read`) ask the
/// descriptor whether data is there, and data read ahead into a buffer would
/// be there without the descriptor saying so (a read would then wait for
/// more).
fn read_host_stdin(buf: &mut [u8]) -> std::io::Result<usize> {
    #[cfg(unix)]
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; reading
        // descriptor 0 touches nothing else (a closed one is an error).
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    #[cfg(not(unix))]
    std::io::stdin().read(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_newlines_and_at_the_maximum() {
        let got = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = {
            let got = got.clone();
            Lines::new(4, move |l| got.lock().unwrap().push(l.to_string()))
        };
        assert_eq!(sink.write(b"ab\ncdefgh"), 9);
        assert_eq!(sink.write(b"i\n\nxy"), 5);
        assert_eq!(*got.lock().unwrap(), ["ab", "cdef", "ghi", ""]);
        drop(sink);
        assert_eq!(got.lock().unwrap().last().unwrap(), "xy");
    }
}
