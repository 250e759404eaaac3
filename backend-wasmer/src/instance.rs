//! Instances: imports (with the store's control globals and per-instance
//! copies of host functions) and exports.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use anywasm_core::{BackendInstance, Error, Extern, Result};
use wasmer::AsStoreMut;

use crate::CallerOf;
use crate::CtxMut;
use crate::convert::{extern_from_wr, extern_to_wr, instantiation_err};
use crate::func::{WrInstance, caller_instance};
use crate::{NAME, Wasmer, WrModule, limits};

impl BackendInstance for Wasmer {
    fn instantiate<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        module: &WrModule,
        imports: &[Extern<Self>],
    ) -> Result<WrInstance> {
        let shared = ctx.shared().clone();
        let mut env = ctx.env_mut();
        let fenv = env.as_ref();
        let (data, mut store) = env.data_and_store_mut();
        // Host functions learn the instance that imports them; one already
        // bound to another instance is imported as a copy bound to this one.
        let mut bindings: Vec<Arc<OnceLock<WrInstance>>> = Vec::new();
        let mut wr_imports = Vec::with_capacity(imports.len() + 2);
        for e in imports {
            let host = match e {
                Extern::Func(f) => f.raw().host.as_ref(),
                _ => None,
            };
            match host {
                Some(h) if h.instance.get().is_some() => {
                    let binding: Arc<OnceLock<WrInstance>> = Arc::default();
                    let copy = (h.make)(
                        &mut store.as_store_mut(),
                        &fenv as &dyn Any,
                        binding.clone(),
                    )
                    .ok_or_else(|| Error::Backend {
                        backend: NAME,
                        message: "a host function of another store type".into(),
                    })?;
                    bindings.push(binding);
                    wr_imports.push(wasmer::Extern::Function(copy));
                }
                Some(h) => {
                    bindings.push(h.instance.clone());
                    wr_imports.push(extern_to_wr(e));
                }
                None => wr_imports.push(extern_to_wr(e)),
            }
        }
        if let Some(c) = &data.calls.control {
            wr_imports.push(wasmer::Extern::Global(c.fuel.clone()));
            wr_imports.push(wasmer::Extern::Global(c.status.clone()));
        }
        if let Some(stop) = &data.stop {
            wr_imports.push(wasmer::Extern::Function(stop.clone()));
        }
        let instance = limits::creating_in(&shared, || {
            wasmer::Instance::new_by_index(&mut store, &module.module, &wr_imports)
                .map(Arc::new)
                .map_err(instantiation_err)
        })?;
        for b in bindings {
            let _ = b.set(instance.clone());
        }
        Ok(instance)
    }

    #[cfg(feature = "async")]
    fn instantiate_async<'a, T: Send + 'static>(
        store: &'a mut crate::WrStore<T>,
        module: &'a WrModule,
        imports: &'a [Extern<Self>],
    ) -> anywasm_core::BoxFuture<'a, Result<WrInstance>> {
        crate::asynchronous::instantiate_async(store, module, imports)
    }

    fn instance_export<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        instance: &WrInstance,
        name: &str,
    ) -> Option<Extern<Self>> {
        let e = instance.exports.get_extern(name)?.clone();
        extern_from_wr(e, Some(instance), ctx.shared().id())
    }

    fn caller_export<T: Send + 'static>(
        caller: &mut CallerOf<'_, T>,
        name: &str,
    ) -> Option<Extern<Self>> {
        let instance = caller_instance(caller)?;
        let e = instance.exports.get_extern(name)?.clone();
        extern_from_wr(e, Some(&instance), caller.env.data().calls.shared.id())
    }
}
