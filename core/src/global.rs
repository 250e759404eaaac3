//! Globals.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::store::{AsContext, AsContextMut};
use crate::types::GlobalType;
use crate::values::Val;

/// A global, valid in the store that created it.
pub struct Global<B: Backend> {
    raw: B::Global,
}

impl<B: Backend> Clone for Global<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Global<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Global").field(&self.raw).finish()
    }
}

impl<B: Backend> Global<B> {
    /// Wraps an engine global (for backends).
    pub fn from_raw(raw: B::Global) -> Self {
        Self { raw }
    }

    /// The engine's global.
    pub fn raw(&self) -> &B::Global {
        &self.raw
    }

    /// Creates a global owned by the host, mutable or not, e.g. to import
    /// into several instances and change from the host later.
    pub fn new(
        mut ctx: impl AsContextMut<Backend = B>,
        ty: GlobalType,
        value: Val<B>,
    ) -> Result<Self> {
        if value.ty() != ty.content {
            return Err(Error::TypeMismatch {
                context: "global initial value".into(),
                expected: ty.content.to_string(),
                found: value.ty().to_string(),
            });
        }
        Ok(Self {
            raw: B::global_new(ctx.as_context_mut().raw, ty, value)?,
        })
    }

    /// The global's type.
    pub fn ty(&self, ctx: impl AsContext<Backend = B>) -> GlobalType {
        B::global_ty(ctx.as_context().raw, &self.raw)
    }

    /// The current value.
    pub fn get(&self, mut ctx: impl AsContextMut<Backend = B>) -> Val<B> {
        B::global_get(ctx.as_context_mut().raw, &self.raw)
    }

    /// Sets the value of a mutable global.
    pub fn set(&self, mut ctx: impl AsContextMut<Backend = B>, value: Val<B>) -> Result<()> {
        let mut ctx = ctx.as_context_mut();
        let ty = self.ty(&ctx);
        if !ty.is_mutable() {
            return Err(Error::InvalidArgument(
                "cannot set an immutable global".into(),
            ));
        }
        if value.ty() != ty.content {
            return Err(Error::TypeMismatch {
                context: "global value".into(),
                expected: ty.content.to_string(),
                found: value.ty().to_string(),
            });
        }
        B::global_set(ctx.as_context_mut().raw, &self.raw, value)
    }
}
