//! `externref` values: references to host data.

use std::any::Any;

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::error::Result;
use crate::store::{AsContext, AsContextMut, StoreId, check_store};

/// A reference to a host value that wasm code can hold and pass around but
/// not look into.
pub struct ExternRef<B: BackendTypes> {
    raw: B::ExternRef,
    store: StoreId,
}

impl<B: Backend> Clone for ExternRef<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            store: self.store,
        }
    }
}

impl<B: Backend> std::fmt::Debug for ExternRef<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ExternRef").field(&self.raw).finish()
    }
}

impl<B: Backend> ExternRef<B> {
    /// Wraps an engine reference owned by the store `store` (for backends).
    pub fn from_raw(raw: B::ExternRef, store: StoreId) -> Self {
        Self { raw, store }
    }

    /// The engine's reference.
    pub fn raw(&self) -> &B::ExternRef {
        &self.raw
    }

    /// The store that owns this reference.
    pub fn store_id(&self) -> StoreId {
        self.store
    }

    /// Wraps `value` as an `externref` owned by the store.
    pub fn new<V: Any + Send + Sync>(
        mut ctx: impl AsContextMut<Backend = B>,
        value: V,
    ) -> Result<Self> {
        let ctx = ctx.as_context_mut();
        let store = ctx.shared().id();
        Ok(Self {
            raw: B::externref_new(ctx.raw, Box::new(value))?,
            store,
        })
    }

    /// The host value, if it is still alive.
    pub fn data<'a, C: AsContext<Backend = B>>(
        &self,
        ctx: &'a C,
    ) -> Result<Option<&'a (dyn Any + Send + Sync)>> {
        let ctx = ctx.as_context();
        check_store(self.store, ctx.shared().id(), || "the externref".into())?;
        Ok(B::externref_data(ctx.raw, &self.raw))
    }

    /// The host value downcast to `V` (`None` if it has another type).
    pub fn downcast<'a, V: Any, C: AsContext<Backend = B>>(
        &self,
        ctx: &'a C,
    ) -> Result<Option<&'a V>> {
        Ok(self.data(ctx)?.and_then(|d| d.downcast_ref::<V>()))
    }
}
