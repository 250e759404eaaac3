//! Instances and exports.

use anywasm_core::{BackendInstance, Extern, Result};

use crate::CallerOf;
use crate::CtxMut;
use crate::convert::{call_err, extern_from_wi, extern_to_wi};
use crate::store::sliced_entry;
use crate::{Wasmi, WiModule};

impl BackendInstance for Wasmi {
    #[cfg(feature = "async")]
    fn instantiate_async<'a, T: Send + 'static>(
        store: &'a mut wasmi::Store<crate::StoreData<T>>,
        module: &'a WiModule,
        imports: &'a [Extern<Self>],
    ) -> anywasm_core::BoxFuture<'a, Result<wasmi::Instance>> {
        crate::asynchronous::instantiate_async(store, module, imports)
    }

    fn instantiate<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        module: &WiModule,
        imports: &[Extern<Self>],
    ) -> Result<wasmi::Instance> {
        if ctx.data().slicing {
            sliced_entry(&mut *ctx)?;
        }
        let imports: Vec<wasmi::Extern> = module
            .import_order
            .iter()
            .map(|&i| extern_to_wi(&imports[i]))
            .collect();
        let instance = match wasmi::Instance::new(ctx.ctx_mut(), &module.module, &imports) {
            Ok(i) => i,
            Err(e) => return Err(call_err(&*ctx, &e)),
        };
        for (name, log2) in module.custom_pages.iter() {
            if let Some(m) = instance.get_memory(ctx.ctx(), name) {
                ctx.data_mut().page_sizes.push((format!("{m:?}"), *log2));
            }
        }
        Ok(instance)
    }

    fn instance_export<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        instance: &wasmi::Instance,
        name: &str,
    ) -> Option<Extern<Self>> {
        let store = ctx.data().shared.id();
        instance
            .get_export(ctx.ctx(), name)
            .and_then(|e| extern_from_wi(e, store))
    }

    fn caller_export<T: Send + 'static>(
        caller: &mut CallerOf<'_, T>,
        name: &str,
    ) -> Option<Extern<Self>> {
        let store = caller.data().shared.id();
        caller.export(name).and_then(|e| extern_from_wi(e, store))
    }
}
