//! Exception tags.

use anywasm_core::{BackendTag, Exception, FuncType, Result, StoreId, Val};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmtime;
use crate::convert::{
    exception_from_wt, exception_to_wt, func_type_from_wt, func_type_to_wt, map_err,
};

impl BackendTag for Wasmtime {
    fn tag_new<T: Send + 'static>(ctx: CtxMut<'_, T>, ty: &FuncType) -> Result<wasmtime::Tag> {
        let ty = wasmtime::TagType::new(func_type_to_wt(ctx.engine(), ty));
        wasmtime::Tag::new(ctx, &ty).map_err(map_err)
    }

    fn tag_ty<T: Send + 'static>(ctx: Ctx<'_, T>, tag: &wasmtime::Tag) -> Result<FuncType> {
        func_type_from_wt(tag.ty(ctx).ty())
    }

    fn exnref_new<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        tag: &wasmtime::Tag,
        values: &[Val<Wasmtime>],
    ) -> Result<Self::ExnRef> {
        let mut scope = wasmtime::RootScope::new(&mut ctx);
        let exn = exception_to_wt(&mut scope, tag, values)?;
        exn.to_owned_rooted(&mut scope).map_err(map_err)
    }

    fn exnref_exception<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        exn: &Self::ExnRef,
        store: StoreId,
    ) -> Result<Exception<Wasmtime>> {
        let mut scope = wasmtime::RootScope::new(&mut ctx);
        let rooted = exn.to_rooted(&mut scope);
        exception_from_wt(&mut scope, &rooted, store)
    }
}
