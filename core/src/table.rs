//! Tables of references.

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::error::{Error, Result};
use crate::store::{AsContext, AsContextMut, StoreId, check_store};
use crate::types::TableType;
use crate::values::Val;

/// A table, valid in the store that created it.
pub struct Table<B: BackendTypes> {
    raw: B::Table,
    store: StoreId,
}

impl<B: Backend> Clone for Table<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            store: self.store,
        }
    }
}

impl<B: Backend> std::fmt::Debug for Table<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Table").field(&self.raw).finish()
    }
}

fn check_elem<B: Backend>(ty: &TableType, v: &Val<B>, store: StoreId, what: &str) -> Result<()> {
    if v.ty() != ty.element {
        return Err(Error::TypeMismatch {
            context: what.into(),
            expected: ty.element.to_string(),
            found: v.ty().to_string(),
        });
    }
    v.check_store(store, || what.into())
}

impl<B: Backend> Table<B> {
    /// Wraps an engine table owned by the store `store` (for backends).
    pub fn from_raw(raw: B::Table, store: StoreId) -> Self {
        Self { raw, store }
    }

    /// The engine's table.
    pub fn raw(&self) -> &B::Table {
        &self.raw
    }

    /// The store that owns this table.
    pub fn store_id(&self) -> StoreId {
        self.store
    }

    fn check(&self, ctx: &impl AsContext<Backend = B>) -> Result<()> {
        check_store(self.store, ctx.as_context().shared().id(), || {
            "the table".into()
        })
    }

    /// Creates a table owned by the host with every element set to `init`.
    /// A growable `funcref` table is what dynamic linking needs.
    pub fn new(
        mut ctx: impl AsContextMut<Backend = B>,
        ty: TableType,
        init: Val<B>,
    ) -> Result<Self> {
        if !ty.element.is_ref() {
            return Err(Error::InvalidArgument(format!(
                "table elements must be references, not {}",
                ty.element
            )));
        }
        crate::tag::exnrefs_supported::<B>([ty.element], "a table's type")?;
        let mut ctx = ctx.as_context_mut();
        let store = ctx.shared().id();
        check_elem(&ty, &init, store, "the table's initial element")?;
        if let Some(max) = ctx.shared().max_table_elements()
            && ty.minimum > max
        {
            return Err(Error::Limit(format!(
                "a table of {} elements exceeds the store's limit of {max}",
                ty.minimum
            )));
        }
        let _ = ctx.shared().take_limit_hit();
        match B::table_new(B::ctx_mut_reborrow(&mut ctx.raw), ty, init) {
            Ok(raw) => Ok(Self { raw, store }),
            Err(e) => Err(match ctx.shared().take_limit_hit() {
                Some(what) => Error::Limit(what),
                None => e,
            }),
        }
    }

    /// The table's type, with its current size as the minimum.
    pub fn ty(&self, ctx: impl AsContext<Backend = B>) -> Result<TableType> {
        self.check(&ctx)?;
        Ok(B::table_ty(ctx.as_context().raw, &self.raw))
    }

    /// Number of elements.
    pub fn size(&self, ctx: impl AsContext<Backend = B>) -> Result<u64> {
        Ok(self.ty(ctx)?.minimum)
    }

    /// The element at `index`, or `None` past the end.
    pub fn get(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        index: u64,
    ) -> Result<Option<Val<B>>> {
        let size = self.size(&ctx)?;
        if index >= size {
            return Ok(None);
        }
        Ok(B::table_get(ctx.as_context_mut().raw, &self.raw, index))
    }

    /// Sets the element at `index`.
    pub fn set(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        index: u64,
        value: Val<B>,
    ) -> Result<()> {
        let ty = self.ty(&ctx)?;
        check_elem(&ty, &value, self.store, "the table element")?;
        if index >= ty.minimum {
            return Err(Error::InvalidArgument(format!(
                "table index {index} out of bounds for a table of {} elements",
                ty.minimum
            )));
        }
        B::table_set(ctx.as_context_mut().raw, &self.raw, index, value)
    }

    /// Grows by `delta` elements set to `init`; returns the previous size.
    ///
    /// Fails with [`Error::Limit`] beyond the store's table limit, and with
    /// [`Error::InvalidArgument`] beyond the table's own maximum.
    pub fn grow(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        delta: u64,
        init: Val<B>,
    ) -> Result<u64> {
        let mut ctx = ctx.as_context_mut();
        let ty = self.ty(&ctx)?;
        check_elem(&ty, &init, self.store, "the table's new elements")?;
        let max = ty
            .maximum
            .unwrap_or(u64::MAX)
            .min(ty.absolute_max_elements());
        let too_big = || {
            Error::InvalidArgument(format!(
                "cannot grow a table of {} elements by {delta}: beyond its maximum of {max}",
                ty.minimum
            ))
        };
        let wanted = ty.minimum.checked_add(delta).ok_or_else(too_big)?;
        // The store's limit first: an engine may enforce it as the table's
        // maximum (wasmer does), and the error must not depend on that.
        let _ = ctx.shared().take_limit_hit();
        if !ctx.shared().table_may_grow(wanted) {
            return Err(Error::Limit(
                ctx.shared().take_limit_hit().unwrap_or_default(),
            ));
        }
        if wanted > max {
            return Err(too_big());
        }
        B::table_grow(B::ctx_mut_reborrow(&mut ctx.raw), &self.raw, delta, init).map_err(|e| {
            match ctx.shared().take_limit_hit() {
                Some(what) => Error::Limit(what),
                None => Error::InvalidArgument(format!("cannot grow table by {delta}: {e}")),
            }
        })
    }
}
