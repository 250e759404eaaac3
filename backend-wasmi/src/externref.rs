//! `externref` values.

use anywasm_core::{BackendExternRef, ExternData, Result};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmi;

impl BackendExternRef for Wasmi {
    fn externref_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        data: ExternData,
    ) -> Result<wasmi::ExternRef> {
        Ok(wasmi::ExternRef::new(ctx.ctx_mut(), data))
    }

    fn externref_data<'a, T: Send + 'static>(
        ctx: Ctx<'a, T>,
        r: &wasmi::ExternRef,
    ) -> Option<&'a (dyn std::any::Any + Send + Sync)> {
        r.data(ctx.ctx()).downcast_ref::<ExternData>().map(|b| &**b)
    }
}
