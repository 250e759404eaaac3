//! Modules: compiling (with the control globals, see `control`) and
//! precompiled code.

use std::sync::Arc;

use anywasm_core::rewrite::{FuncImport, GlobalImport, append_imports};
use anywasm_core::{BackendModule, Error, Result, ValType};

use crate::control::{self, Plan};
use crate::convert::compile_err;
use crate::engine::Compiler;
use crate::{NAME, Wasmer, WrEngine};

/// A compiled module.
#[derive(Clone)]
pub struct WrModule {
    pub(crate) module: wasmer::Module,
    /// The engine's compiler, which gives the module's code place back
    /// when the engine and its modules are gone (wasmer frees the code
    /// then).
    _code: Arc<Compiler>,
}

impl WrModule {
    fn new(module: wasmer::Module, engine: &WrEngine) -> Self {
        Self {
            module,
            _code: engine.compiler.clone(),
        }
    }

    /// wasmer's module.
    pub fn inner(&self) -> &wasmer::Module {
        &self.module
    }
}

/// The control globals every module of a controlled engine imports after
/// its own imports.
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
    let module = publishing(compiler, || {
        wasmer::Module::new(engine, bytes).map_err(compile_err)
    });
    compiler.control.set_plan(None);
    module
}

/// Runs a wasmer compile or deserialize in a place for its code (see
/// `Compiler::take_code_place`: the module is refused with `Error::Limit`
/// before wasmer would run out of memory mappings), turning a panic into an
/// error.
///
/// wasmer panics when the system refuses to map compiled code executable
/// ("unable to make memory readonly and executable", `mprotect` failing
/// with `ENOMEM`): it keeps the code of every module an engine has made
/// until the engine is dropped, and Linux allows a process 65 530 mappings,
/// so one engine failed after about 32 700 modules (found by the
/// `hostile_imports` fuzz target, which shared engines across inputs). The
/// places stop that; the guard remains for mappings the rest of the process
/// takes. After such a panic wasmer's engine lock is poisoned: the message
/// says to use a new engine.
fn publishing<R>(compiler: &Compiler, f: impl FnOnce() -> Result<R>) -> Result<R> {
    compiler.take_code_place()?;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = anywasm_core::panic_message(&*p).unwrap_or("a panic");
        Err(Error::Backend {
            backend: NAME,
            message: format!(
                "could not compile or load the module ({msg}); this engine can take no \
                 more code (wasmer keeps every module's code until the engine is dropped): \
                 use a new Engine"
            ),
        })
    });
    if r.is_err() {
        compiler.give_back_code_place();
    }
    r
}

impl BackendModule for Wasmer {
    fn module_new(engine: &WrEngine, bytes: &[u8]) -> Result<WrModule> {
        if !engine.controlled() {
            let module = publishing(&engine.compiler, || {
                wasmer::Module::new(&engine.engine, bytes).map_err(compile_err)
            })?;
            return Ok(WrModule::new(module, engine));
        }
        // The rewrite would hide a module the engine refuses as given.
        wasmer::Module::validate(&engine.engine, bytes).map_err(compile_err)?;
        // With deadlines, the store's stop function follows the globals.
        let stop: &[FuncImport<'_>] = if engine.interruptible {
            &[FuncImport {
                module: control::MODULE,
                name: control::STOP_FUNC,
            }]
        } else {
            &[]
        };
        let rewritten = append_imports(bytes, &CONTROL_IMPORTS, stop)?;
        let plan = Plan {
            fuel_global: rewritten.first_global,
            status_global: rewritten.first_global + 1,
            meter_fuel: engine.fuel,
            stop_func: engine.interruptible.then_some(rewritten.first_func),
        };
        let module = compile(
            &engine.engine,
            &engine.compiler,
            &rewritten.bytes,
            Some(plan),
        )?;
        Ok(WrModule::new(module, engine))
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
        let module = publishing(&engine.compiler, || {
            // SAFETY: forwarded from the caller's contract.
            unsafe { wasmer::Module::deserialize(&engine.engine, bytes) }
                .map_err(|e| Error::Precompiled(e.to_string()))
        })?;
        Ok(WrModule::new(module, engine))
    }
}
