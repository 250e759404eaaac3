//! Exception tags.

use anywasm_core::{BackendTag, Exception, FuncType, Result, StoreId, Val};
use wasmer::AsStoreMut;

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmer;
use crate::convert::{val_type_from_wr, val_type_to_wr};
use crate::func::{exception_from_wr, exception_to_wr, guard_panic};

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

    fn exnref_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        tag: &wasmer::Tag,
        values: &[Val<Wasmer>],
    ) -> Result<wasmer::Exception> {
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        exception_to_wr(data, &mut store, tag, values)
    }

    fn exnref_exception<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        exn: &wasmer::Exception,
        store: StoreId,
    ) -> Result<Exception<Wasmer>> {
        let mut env = ctx.env_mut();
        let mut wr_store = env.as_store_mut();
        exception_from_wr(&mut wr_store, exn, store)
    }
}
