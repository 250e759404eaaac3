//! `externref` values.

use anywasm_core::{BackendExternRef, ExternData, Result};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmtime;
use crate::convert::backend_err;

impl BackendExternRef for Wasmtime {
    fn externref_new<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        data: ExternData,
    ) -> Result<Self::ExternRef> {
        let r = wasmtime::ExternRef::new(&mut ctx, data).map_err(backend_err)?;
        r.to_owned_rooted(&mut ctx).map_err(backend_err)
    }

    fn externref_data<'a, T: Send + 'static>(
        ctx: Ctx<'a, T>,
        r: &Self::ExternRef,
    ) -> Option<&'a (dyn std::any::Any + Send + Sync)> {
        let any = r.data(ctx).ok()??;
        any.downcast_ref::<ExternData>().map(|b| &**b)
    }
}
