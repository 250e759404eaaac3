//! Globals.

use anywasm_core::{BackendGlobal, GlobalType, Result, Val};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmtime;
use crate::convert::{global_type_from_wt, global_type_to_wt, map_err, val_from_wt, val_to_wt};

impl BackendGlobal for Wasmtime {
    fn global_new<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        ty: GlobalType,
        value: Val<Self>,
    ) -> Result<wasmtime::Global> {
        let wt = global_type_to_wt(&ty);
        let v = val_to_wt(&mut ctx, &value);
        wasmtime::Global::new(ctx, wt, v).map_err(map_err)
    }

    fn global_ty<T: Send + 'static>(ctx: Ctx<'_, T>, global: &wasmtime::Global) -> GlobalType {
        global_type_from_wt(&global.ty(ctx))
    }

    fn global_get<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        global: &wasmtime::Global,
    ) -> Val<Self> {
        let store = ctx.data().shared.id();
        let v = global.get(&mut ctx);
        val_from_wt(&mut ctx, v, store)
    }

    fn global_set<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        global: &wasmtime::Global,
        value: Val<Self>,
    ) -> Result<()> {
        let v = val_to_wt(&mut ctx, &value);
        global.set(&mut ctx, v).map_err(map_err)
    }
}
