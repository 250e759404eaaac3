//! Exception tags.

use anywasm_core::{BackendTag, FuncType, Result};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmtime;
use crate::convert::{func_type_from_wt, func_type_to_wt, map_err};

impl BackendTag for Wasmtime {
    fn tag_new<T: Send + 'static>(ctx: CtxMut<'_, T>, ty: &FuncType) -> Result<wasmtime::Tag> {
        let ty = wasmtime::TagType::new(func_type_to_wt(ctx.engine(), ty));
        wasmtime::Tag::new(ctx, &ty).map_err(map_err)
    }

    fn tag_ty<T: Send + 'static>(ctx: Ctx<'_, T>, tag: &wasmtime::Tag) -> Result<FuncType> {
        func_type_from_wt(tag.ty(ctx).ty())
    }
}
