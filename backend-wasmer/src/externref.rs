//! `externref` values.

use anywasm_core::{BackendExternRef, ExternData, Result};
use wasmer::AsStoreMut;

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmer;

impl BackendExternRef for Wasmer {
    fn externref_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        data: ExternData,
    ) -> Result<wasmer::ExternRef> {
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        Ok(wasmer::ExternRef::new(&mut store, data))
    }

    fn externref_data<'a, T: Send + 'static>(
        ctx: Ctx<'a, T>,
        r: &wasmer::ExternRef,
    ) -> Option<&'a (dyn std::any::Any + Send + Sync)> {
        let store = ctx.store_ref();
        let data: &ExternData = r.downcast::<ExternData>(&store)?;
        let ptr: *const (dyn std::any::Any + Send + Sync) = &**data;
        // SAFETY: the host value lives in the store's object arena, which is
        // not moved or freed while the store is borrowed for 'a; `StoreRef` is
        // only a view of that borrow.
        Some(unsafe { &*ptr })
    }
}
