//! Globals.

use anywasm_core::{BackendGlobal, Error, GlobalType, Result, Val};
use wasmer::AsStoreMut;

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmer;
use crate::convert::{global_type_from_wr, val_from_wr};
use crate::func::{guard_panic, val_to_wr_in};

impl BackendGlobal for Wasmer {
    fn global_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: GlobalType,
        value: Val<Self>,
    ) -> Result<wasmer::Global> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let v = val_to_wr_in(data, &mut store, &value)?;
        guard_panic(|| {
            if ty.is_mutable() {
                wasmer::Global::new_mut(&mut store, v)
            } else {
                wasmer::Global::new(&mut store, v)
            }
        })
    }

    fn global_ty<T: Send + 'static>(ctx: Ctx<'_, T>, global: &wasmer::Global) -> GlobalType {
        global_type_from_wr(&global.ty(&ctx.store_ref()))
    }

    fn global_get<T: Send + 'static>(ctx: CtxMut<'_, T>, global: &wasmer::Global) -> Val<Self> {
        let id = ctx.shared().id();
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        val_from_wr(&global.get(&mut store), id)
    }

    fn global_set<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        global: &wasmer::Global,
        value: Val<Self>,
    ) -> Result<()> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        let value = val_to_wr_in(data, &mut store, &value)?;
        guard_panic(|| global.set(&mut store, value))?
            .map_err(|e| Error::InvalidArgument(e.message()))
    }
}
