//! Modules: compiling (wasmi has no precompiled code).

use std::sync::Arc;

use anywasm_core::{BackendModule, Error, ExternType, ModuleInfo, Result};

use crate::convert::compile_err;
use crate::{NAME, Wasmi, WiEngine};

/// A compiled module, with what wasmi does not tell about it.
#[derive(Clone)]
pub struct WiModule {
    pub(crate) module: wasmi::Module,
    /// Exported memories with non-64 KiB pages: wasmi does not tell a
    /// memory's page size, so the layer remembers it.
    pub(crate) custom_pages: Arc<[(String, u8)]>,
    /// wasmi lists imports grouped by kind (functions, tables, memories,
    /// globals); entry `i` is the position in the module's declared order of
    /// wasmi's `i`-th import.
    pub(crate) import_order: Arc<[usize]>,
}

impl WiModule {
    /// wasmi's module.
    pub fn inner(&self) -> &wasmi::Module {
        &self.module
    }
}

/// The exported memories of a module whose pages are not 64 KiB.
fn custom_pages(info: &ModuleInfo) -> Arc<[(String, u8)]> {
    info.exports()
        .iter()
        .filter_map(|e| match &e.ty {
            ExternType::Memory(m) if m.page_size_log2 != 16 => {
                Some((e.name.clone(), m.page_size_log2))
            }
            _ => None,
        })
        .collect()
}

/// Where each of wasmi's imports sits in the module's declared order.
fn import_order(module: &wasmi::Module, info: &ModuleInfo) -> Result<Arc<[usize]>> {
    let declared = info.imports();
    let mut used = vec![false; declared.len()];
    let mut order = Vec::with_capacity(declared.len());
    for imp in module.imports() {
        let kind = match imp.ty() {
            wasmi::ExternType::Func(_) => "func",
            wasmi::ExternType::Table(_) => "table",
            wasmi::ExternType::Memory(_) => "memory",
            wasmi::ExternType::Global(_) => "global",
        };
        let pos = declared
            .iter()
            .enumerate()
            .position(|(i, d)| {
                !used[i] && d.module == imp.module() && d.name == imp.name() && d.ty.kind() == kind
            })
            .ok_or_else(|| Error::Backend {
                backend: NAME,
                message: format!("cannot place import `{}`.`{}`", imp.module(), imp.name()),
            })?;
        used[pos] = true;
        order.push(pos);
    }
    Ok(order.into())
}

impl BackendModule for Wasmi {
    fn module_new(engine: &WiEngine, bytes: &[u8]) -> Result<WiModule> {
        let module = wasmi::Module::new(&engine.engine, bytes).map_err(compile_err)?;
        let info = ModuleInfo::parse(bytes)?;
        Ok(WiModule {
            import_order: import_order(&module, &info)?,
            custom_pages: custom_pages(&info),
            module,
        })
    }

    fn module_validate(engine: &WiEngine, bytes: &[u8]) -> Result<()> {
        wasmi::Module::validate(&engine.engine, bytes).map_err(compile_err)
    }

    fn module_serialize(_engine: &WiEngine, _module: &WiModule) -> Result<Vec<u8>> {
        Err(Error::unsupported(
            NAME,
            "precompiled modules (wasmi compiles lazily on load)",
        ))
    }

    unsafe fn module_deserialize(_engine: &WiEngine, _bytes: &[u8]) -> Result<WiModule> {
        Err(Error::unsupported(
            NAME,
            "precompiled modules (wasmi compiles lazily on load)",
        ))
    }
}
