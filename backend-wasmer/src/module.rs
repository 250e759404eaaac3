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
    let module = publishing(|| wasmer::Module::new(engine, bytes).map_err(compile_err));
    compiler.control.set_plan(None);
    module
}

/// Runs a wasmer compile or deserialize, turning its panic into an error.
///
/// wasmer panics when the system refuses to map compiled code executable
/// ("unable to make memory readonly and executable", `mprotect` failing
/// with `ENOMEM`). Since wasmer keeps the code of every module an engine has
/// made until the engine is dropped, and Linux allows a process 65 530
/// mappings, one engine stops compiling after some 30 000 modules (found by
/// the `hostile_imports` fuzz target, which shares engines across inputs).
/// The panic leaves wasmer's engine lock poisoned, so every later compile
/// on that engine fails the same way: the message says to use a new
/// engine, as `Capabilities::code_freed_with_module` (false on wasmer)
/// warns. Nothing of the failed module is left in a store.
fn publishing<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = anywasm_core::panic_message(&*p).unwrap_or("a panic");
        Err(Error::Backend {
            backend: NAME,
            message: format!(
                "could not compile or load the module ({msg}); this engine can take no \
                 more code (wasmer keeps every module's code until the engine is dropped): \
                 use a new Engine"
            ),
        })
    })
}

impl BackendModule for Wasmer {
    fn module_new(engine: &WrEngine, bytes: &[u8]) -> Result<WrModule> {
        if !engine.controlled() {
            let module =
                publishing(|| wasmer::Module::new(&engine.engine, bytes).map_err(compile_err))?;
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
        let module = publishing(|| {
            // SAFETY: forwarded from the caller's contract.
            unsafe { wasmer::Module::deserialize(&engine.engine, bytes) }
                .map_err(|e| Error::Precompiled(e.to_string()))
        })?;
        Ok(WrModule { module })
    }
}
