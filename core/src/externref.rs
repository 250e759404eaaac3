//! `externref` values: references to host data.

use std::any::Any;

use crate::backend::Backend;
use crate::error::Result;
use crate::store::{AsContext, AsContextMut};

/// A reference to a host value that wasm code can hold and pass around but
/// not look into.
pub struct ExternRef<B: Backend> {
    raw: B::ExternRef,
}

impl<B: Backend> Clone for ExternRef<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for ExternRef<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ExternRef").field(&self.raw).finish()
    }
}

impl<B: Backend> ExternRef<B> {
    /// Wraps an engine reference (for backends).
    pub fn from_raw(raw: B::ExternRef) -> Self {
        Self { raw }
    }

    /// The engine's reference.
    pub fn raw(&self) -> &B::ExternRef {
        &self.raw
    }

    /// Wraps `value` as an `externref` owned by the store.
    pub fn new<V: Any + Send + Sync>(
        mut ctx: impl AsContextMut<Backend = B>,
        value: V,
    ) -> Result<Self> {
        Ok(Self {
            raw: B::externref_new(ctx.as_context_mut().raw, Box::new(value))?,
        })
    }

    /// The host value, if it is still alive.
    pub fn data<'a, C: AsContext<Backend = B>>(
        &self,
        ctx: &'a C,
    ) -> Option<&'a (dyn Any + Send + Sync)> {
        B::externref_data(ctx.as_context().raw, &self.raw)
    }

    /// The host value downcast to `V`.
    pub fn downcast<'a, V: Any, C: AsContext<Backend = B>>(&self, ctx: &'a C) -> Option<&'a V> {
        self.data(ctx)?.downcast_ref::<V>()
    }
}
