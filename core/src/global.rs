//! Globals.

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::error::{Error, Result};
use crate::store::{AsContext, AsContextMut, StoreId, check_store};
use crate::types::GlobalType;
use crate::values::Val;

/// A global, valid in the store that created it.
pub struct Global<B: BackendTypes> {
    raw: B::Global,
    store: StoreId,
}

impl<B: Backend> Clone for Global<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            store: self.store,
        }
    }
}

impl<B: Backend> std::fmt::Debug for Global<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Global").field(&self.raw).finish()
    }
}

fn check_value<B: Backend>(
    ty: &GlobalType,
    value: &Val<B>,
    store: StoreId,
    what: &str,
) -> Result<()> {
    if value.ty() != ty.content {
        return Err(Error::TypeMismatch {
            context: what.into(),
            expected: ty.content.to_string(),
            found: value.ty().to_string(),
        });
    }
    value.check_store(store, || what.into())
}

impl<B: Backend> Global<B> {
    /// Wraps an engine global owned by the store `store` (for backends).
    pub fn from_raw(raw: B::Global, store: StoreId) -> Self {
        Self { raw, store }
    }

    /// The engine's global.
    pub fn raw(&self) -> &B::Global {
        &self.raw
    }

    /// The store that owns this global.
    pub fn store_id(&self) -> StoreId {
        self.store
    }

    fn check(&self, ctx: &impl AsContext<Backend = B>) -> Result<()> {
        check_store(self.store, ctx.as_context().shared().id(), || {
            "the global".into()
        })
    }

    /// Creates a global owned by the host, mutable or not, e.g. to import
    /// into several instances and change from the host later.
    pub fn new(
        mut ctx: impl AsContextMut<Backend = B>,
        ty: GlobalType,
        value: Val<B>,
    ) -> Result<Self> {
        crate::tag::exnrefs_supported::<B>([ty.content], "a global's type")?;
        let ctx = ctx.as_context_mut();
        let store = ctx.shared().id();
        check_value(&ty, &value, store, "global initial value")?;
        Ok(Self {
            raw: B::global_new(ctx.raw, ty, value)?,
            store,
        })
    }

    /// The global's type.
    pub fn ty(&self, ctx: impl AsContext<Backend = B>) -> Result<GlobalType> {
        self.check(&ctx)?;
        Ok(B::global_ty(ctx.as_context().raw, &self.raw))
    }

    /// The current value.
    pub fn get(&self, mut ctx: impl AsContextMut<Backend = B>) -> Result<Val<B>> {
        self.check(&ctx)?;
        Ok(B::global_get(ctx.as_context_mut().raw, &self.raw))
    }

    /// Sets the value of a mutable global.
    pub fn set(&self, mut ctx: impl AsContextMut<Backend = B>, value: Val<B>) -> Result<()> {
        let ty = self.ty(&ctx)?;
        if !ty.is_mutable() {
            return Err(Error::InvalidArgument(
                "cannot set an immutable global".into(),
            ));
        }
        check_value(&ty, &value, self.store, "global value")?;
        B::global_set(ctx.as_context_mut().raw, &self.raw, value)
    }
}
