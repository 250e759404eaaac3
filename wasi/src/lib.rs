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
//! Sockets, links and changing file times answer `ENOTSUP`; `proc_raise`
//! answers `ENOSYS`. `proc_exit` ends the program with
//! [`Error::Exit`](anywasm_core::Error::Exit), a result rather than a trap.

mod ctx;
pub mod errno;
mod host;

use anywasm_core::{Backend, Engine, Error, Linker, Module, Result, Store};

pub use ctx::{Captured, Output, Preopen, Stdin, WasiConfig, WasiCtx};
pub use host::add_to_linker;

/// Runs a WASI command module (`_start`) and returns its exit status: 0 if
/// `_start` returns, the `proc_exit` code otherwise. Traps and other
/// failures are errors.
pub fn run_command<B: Backend>(
    engine: &Engine<B>,
    module: &Module<B>,
    config: WasiConfig,
) -> Result<i32> {
    let ctx = config.build()?;
    let mut store = Store::new(engine, ctx);
    let mut linker = Linker::<B, WasiCtx>::new();
    add_to_linker(&mut linker, |c| c)?;
    let instance = linker.instantiate(&mut store, module)?;
    let start = instance.get_func(&mut store, "_start")?;
    match start.invoke(&mut store, &[]) {
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
