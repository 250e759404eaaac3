//! # anywasm-wasi
//!
//! WASI preview 1 (`wasi_snapshot_preview1`) for every anywasm backend,
//! written once on the core host-function API: the same code serves
//! wasmtime, wasmi and wasmer, so a program behaves the same on each.
//!
//! ```no_run
//! use anywasm_core::{Engine, Module};
//! use anywasm_wasi::{Captured, Output, WasiConfig, run_command};
//!
//! # fn main() -> anywasm_core::Result<()> {
//! let engine = Engine::<anywasm::Wasmi>::default_config()?;
//! let module = Module::from_file(&engine, "hello.wasm")?;
//! let out = Captured::new();
//! let config = WasiConfig::new()
//!     .arg("hello")
//!     .env("GREETING", "hi")
//!     .preopen_dir("/tmp/sandbox", "/sandbox")
//!     .stdout(Output::Capture(out.clone()));
//! let status = run_command(&engine, &module, config)?;
//! println!("exit {status}: {}", out.text());
//! # Ok(()) }
//! ```
//!
//! ## The sandbox
//! - Files are reached only through preopened directories, with `cap-std`:
//!   `..`, absolute paths and symbolic links that lead out of a preopen fail
//!   with `ENOTCAPABLE`, whatever the backend.
//! - A read-only preopen refuses writes, creation and removal with
//!   `ENOTCAPABLE`.
//! - Nothing of the host's environment, arguments or standard streams is
//!   visible unless configured.
//!
//! - Every descriptor has rights ([`rights`]), reported by `fd_fdstat_get`
//!   and checked by every call; a read-only preopen passes on no right to
//!   write.
//!
//! ## A hostile program cannot harm the host
//! - Every pointer, length, count and offset is checked against the
//!   program's memory before it is used, and no host allocation is sized by
//!   what the program claims: reads and writes move data in 64 KiB chunks,
//!   at most 16 MiB per call (a short count, as POSIX allows), and
//!   `random_get` fills the program's memory in place.
//! - Waits (`poll_oneoff`, reading the host's standard input) sleep in
//!   slices and end with the store's deadline or interrupt trap, exactly as
//!   wasm code does.
//! - A program holds at most [`DEFAULT_MAX_OPEN_FILES`] descriptors
//!   ([`WasiConfig::max_open_files`]); [`Captured`] output can be capped.
//!
//! Sockets, links, symbolic links, changing file times and preallocating
//! answer `ENOTSUP`, as do the process and thread CPU-time clocks;
//! `proc_raise` answers `ENOSYS`. `proc_exit` ends the program with
//! [`Error::Exit`], a result rather than a trap.
//!
//! A program that imports its memory (a position-independent main program
//! of the dynamic linker) is served through the memory given with
//! [`WasiCtx::set_memory`].

mod ctx;
pub mod errno;
mod host;
mod mem;
mod poll;
pub mod probe;
pub mod rights;

use anywasm_core::{Backend, Engine, Error, Linker, Module, Result, Store};

pub use ctx::{
    Captured, DEFAULT_MAX_OPEN_FILES, Lines, Output, Preopen, Stdin, WasiConfig, WasiCtx,
};
#[cfg(feature = "async")]
pub use host::add_to_linker_async;
pub use host::{FUNCTIONS, add_to_linker, function_type};

/// Runs a WASI command module (`_start`) and returns its exit status: 0 if
/// `_start` returns, the `proc_exit` code otherwise. Traps and other
/// failures are errors.
pub fn run_command<B: Backend>(
    engine: &Engine<B>,
    module: &Module<B>,
    config: WasiConfig,
) -> Result<i32> {
    let mut store = Store::new(engine, config.build()?);
    run_command_in(&mut store, module)
}

/// [`run_command`] in a store the caller made, so that its limits apply
/// (fuel, deadline, memory limits: see [`Store`]).
///
/// ```
/// # fn main() -> anywasm_core::Result<()> {
/// use std::time::Duration;
/// use anywasm_core::{Config, Engine, Error, Module, Store, TrapCode};
/// use anywasm_wasi::{WasiConfig, run_command_in};
///
/// let engine = Engine::<anywasm::DefaultBackend>::new(Config::new().interruptible(true))?;
/// let spin = Module::from_wat(&engine, r#"(module (memory (export "memory") 1)
///     (func (export "_start") (loop $l (br $l))))"#)?;
/// let mut store = Store::new(&engine, WasiConfig::new().build()?);
/// store.set_timeout(Duration::from_millis(50))?;
/// let r = run_command_in(&mut store, &spin);
/// assert!(matches!(r, Err(Error::Trap { code: TrapCode::Deadline, .. })));
/// # Ok(()) }
/// ```
pub fn run_command_in<B: Backend>(
    store: &mut Store<B, WasiCtx>,
    module: &Module<B>,
) -> Result<i32> {
    let mut linker = Linker::<B, WasiCtx>::new();
    add_to_linker(&mut linker, |c| c)?;
    let instance = linker.instantiate(&mut *store, module)?;
    let start = instance.get_func(&mut *store, "_start")?;
    match start.invoke(&mut *store, &[]) {
        Ok(_) => Ok(0),
        Err(Error::Exit(code)) => Ok(code),
        Err(e) => Err(e),
    }
}

/// Instantiates a WASI reactor module and runs its `_initialize` export if it
/// has one; the store keeps the program's state for later calls.
pub fn instantiate_reactor<B: Backend>(
    store: &mut Store<B, WasiCtx>,
    module: &Module<B>,
) -> Result<anywasm_core::Instance<B>> {
    let mut linker = Linker::<B, WasiCtx>::new();
    add_to_linker(&mut linker, |c| c)?;
    let instance = linker.instantiate(&mut *store, module)?;
    if let Ok(init) = instance.get_func(&mut *store, "_initialize") {
        init.invoke(&mut *store, &[])?;
    }
    Ok(instance)
}
