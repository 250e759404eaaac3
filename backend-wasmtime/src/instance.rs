//! Instances and exports.

use anywasm_core::{BackendInstance, Extern, Result};

use crate::CallerOf;
use crate::CtxMut;
use crate::Wasmtime;
use crate::convert::{extern_from_wt, extern_to_wt, map_err};

impl BackendInstance for Wasmtime {
    #[cfg(feature = "async")]
    fn instantiate_async<'a, T: Send + 'static>(
        store: &'a mut wasmtime::Store<crate::StoreData<T>>,
        module: &'a wasmtime::Module,
        imports: &'a [Extern<Self>],
    ) -> anywasm_core::BoxFuture<'a, Result<wasmtime::Instance>> {
        crate::asynchronous::instantiate_async(store, module, imports)
    }

    fn instantiate<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        module: &wasmtime::Module,
        imports: &[Extern<Self>],
    ) -> Result<wasmtime::Instance> {
        let imports: Vec<wasmtime::Extern> = imports.iter().map(extern_to_wt).collect();
        wasmtime::Instance::new(&mut ctx, module, &imports).map_err(map_err)
    }

    fn instance_export<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        instance: &wasmtime::Instance,
        name: &str,
    ) -> Option<Extern<Self>> {
        let store = ctx.data().shared.id();
        instance
            .get_export(&mut ctx, name)
            .and_then(|e| extern_from_wt(e, store))
    }

    fn caller_export<T: Send + 'static>(
        caller: &mut CallerOf<'_, T>,
        name: &str,
    ) -> Option<Extern<Self>> {
        let store = caller.ctx().data().shared.id();
        caller.export(name).and_then(|e| extern_from_wt(e, store))
    }
}
