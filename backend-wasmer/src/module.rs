//! Modules: compiling (with the control globals, see `control`) and
//! precompiled code.

use anywasm_core::rewrite::{GlobalImport, append_global_imports};
use anywasm_core::{BackendModule, Error, Result, ValType};

use crate::control::{self, Plan};
use crate::convert::compile_err;
use crate::engine::Compiler;
use crate::{NAME, Wasmer, WrEngine};

/// A compiled module.
#[derive(Clone)]
pub struct WrModule {
    pub(crate) module: wasmer::Module,
}

impl WrModule {
    /// wasmer's module.
    pub fn inner(&self) -> &wasmer::Module {
        &self.module
    }
}

/// The control globals every module of a controlled engine imports last.
const CONTROL_IMPORTS: [GlobalImport<'static>; 2] = [
    GlobalImport {
        module: control::MODULE,
        name: control::FUEL,
        ty: ValType::I64,
        mutable: true,
    },
    GlobalImport {
        module: control::MODULE,
        name: control::STATUS,
        ty: ValType::I32,
        mutable: true,
    },
];

/// Compiles `bytes` under the engine's compile lock with `plan` for the
/// control middleware (`None`: as they are).
pub(crate) fn compile(
    engine: &wasmer::Engine,
    compiler: &Compiler,
    bytes: &[u8],
    plan: Option<Plan>,
) -> Result<wasmer::Module> {
    let _turn = compiler.lock.lock().unwrap_or_else(|p| p.into_inner());
    compiler.control.set_plan(plan);
    let module = wasmer::Module::new(engine, bytes).map_err(compile_err);
    compiler.control.set_plan(None);
    module
}

impl BackendModule for Wasmer {
    fn module_new(engine: &WrEngine, bytes: &[u8]) -> Result<WrModule> {
        if !engine.controlled() {
            let module = wasmer::Module::new(&engine.engine, bytes).map_err(compile_err)?;
            return Ok(WrModule { module });
        }
        // The rewrite would hide a module the engine refuses as given.
        wasmer::Module::validate(&engine.engine, bytes).map_err(compile_err)?;
        let rewritten = append_global_imports(bytes, &CONTROL_IMPORTS)?;
        let plan = Plan {
            fuel_global: rewritten.first_index,
            status_global: rewritten.first_index + 1,
            meter_fuel: engine.fuel,
            check_stop: engine.interruptible,
        };
        let module = compile(
            &engine.engine,
            &engine.compiler,
            &rewritten.bytes,
            Some(plan),
        )?;
        Ok(WrModule { module })
    }

    fn module_validate(engine: &WrEngine, bytes: &[u8]) -> Result<()> {
        wasmer::Module::validate(&engine.engine, bytes).map_err(compile_err)
    }

    fn module_serialize(_engine: &WrEngine, module: &WrModule) -> Result<Vec<u8>> {
        module
            .module
            .serialize()
            .map(|b| b.to_vec())
            .map_err(|e| Error::Backend {
                backend: NAME,
                message: e.to_string(),
            })
    }

    unsafe fn module_deserialize(engine: &WrEngine, bytes: &[u8]) -> Result<WrModule> {
        // SAFETY: forwarded from the caller's contract.
        let module = unsafe { wasmer::Module::deserialize(&engine.engine, bytes) }
            .map_err(|e| Error::Precompiled(e.to_string()))?;
        Ok(WrModule { module })
    }
}
