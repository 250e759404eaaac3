//! Globals.

use anywasm_core::{BackendGlobal, Error, GlobalType, Result, Val};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmi;
use crate::convert::{global_type_from_wi, mutability_to_wi, val_from_wi, val_to_wi};

impl BackendGlobal for Wasmi {
    fn global_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: GlobalType,
        value: Val<Self>,
    ) -> Result<wasmi::Global> {
        Ok(wasmi::Global::new(
            ctx.ctx_mut(),
            val_to_wi(&value),
            mutability_to_wi(ty.mutability),
        ))
    }

    fn global_ty<T: Send + 'static>(ctx: Ctx<'_, T>, global: &wasmi::Global) -> GlobalType {
        global_type_from_wi(&global.ty(ctx.ctx()))
    }

    fn global_get<T: Send + 'static>(ctx: CtxMut<'_, T>, global: &wasmi::Global) -> Val<Self> {
        val_from_wi(&global.get(ctx.ctx()), ctx.data().shared.id())
    }

    fn global_set<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        global: &wasmi::Global,
        value: Val<Self>,
    ) -> Result<()> {
        global
            .set(ctx.ctx_mut(), val_to_wi(&value))
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }
}
