//! Modules: compiling and precompiled code.

use anywasm_core::{BackendModule, Error, Result};

use crate::convert::{backend_err, compile_err};
use crate::{Wasmtime, WtEngine};

impl BackendModule for Wasmtime {
    fn module_new(engine: &WtEngine, bytes: &[u8]) -> Result<wasmtime::Module> {
        wasmtime::Module::new(&engine.engine, bytes).map_err(compile_err)
    }

    fn module_validate(engine: &WtEngine, bytes: &[u8]) -> Result<()> {
        wasmtime::Module::validate(&engine.engine, bytes).map_err(compile_err)
    }

    fn module_serialize(_engine: &WtEngine, module: &wasmtime::Module) -> Result<Vec<u8>> {
        module.serialize().map_err(backend_err)
    }

    unsafe fn module_deserialize(engine: &WtEngine, bytes: &[u8]) -> Result<wasmtime::Module> {
        // SAFETY: forwarded from the caller's contract.
        unsafe { wasmtime::Module::deserialize(&engine.engine, bytes) }
            .map_err(|e| Error::Precompiled(format!("{e:#}")))
    }
}
