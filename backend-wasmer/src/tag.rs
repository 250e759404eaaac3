//! Exception tags.

use anywasm_core::{BackendTag, FuncType, Result};
use wasmer::AsStoreMut;

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmer;
use crate::convert::{val_type_from_wr, val_type_to_wr};
use crate::func::guard_panic;

impl BackendTag for Wasmer {
    fn tag_new<T: Send + 'static>(ctx: CtxMut<'_, T>, ty: &FuncType) -> Result<wasmer::Tag> {
        let params: Vec<wasmer::Type> = ty.params().iter().map(|p| val_type_to_wr(*p)).collect();
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        guard_panic(|| wasmer::Tag::new(&mut store, params))
    }

    fn tag_ty<T: Send + 'static>(ctx: Ctx<'_, T>, tag: &wasmer::Tag) -> Result<FuncType> {
        let ty = tag.ty(&ctx.store_ref());
        Ok(FuncType::new(
            ty.params.iter().map(|p| val_type_from_wr(*p)),
            [],
        ))
    }
}
