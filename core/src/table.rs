//! Tables of references.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::store::{AsContext, AsContextMut};
use crate::types::TableType;
use crate::values::Val;

/// A table, valid in the store that created it.
pub struct Table<B: Backend> {
    raw: B::Table,
}

impl<B: Backend> Clone for Table<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Table<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Table").field(&self.raw).finish()
    }
}

fn check_elem<B: Backend>(ty: &TableType, v: &Val<B>) -> Result<()> {
    if v.ty() != ty.element {
        return Err(Error::TypeMismatch {
            context: "table element".into(),
            expected: ty.element.to_string(),
            found: v.ty().to_string(),
        });
    }
    Ok(())
}

impl<B: Backend> Table<B> {
    /// Wraps an engine table (for backends).
    pub fn from_raw(raw: B::Table) -> Self {
        Self { raw }
    }

    /// The engine's table.
    pub fn raw(&self) -> &B::Table {
        &self.raw
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
        check_elem(&ty, &init)?;
        Ok(Self {
            raw: B::table_new(ctx.as_context_mut().raw, ty, init)?,
        })
    }

    /// The table's type, with its current size as the minimum.
    pub fn ty(&self, ctx: impl AsContext<Backend = B>) -> TableType {
        B::table_ty(ctx.as_context().raw, &self.raw)
    }

    /// Number of elements.
    pub fn size(&self, ctx: impl AsContext<Backend = B>) -> u64 {
        self.ty(ctx).minimum
    }

    /// The element at `index`, or `None` past the end.
    pub fn get(&self, mut ctx: impl AsContextMut<Backend = B>, index: u64) -> Option<Val<B>> {
        B::table_get(ctx.as_context_mut().raw, &self.raw, index)
    }

    /// Sets the element at `index`.
    pub fn set(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        index: u64,
        value: Val<B>,
    ) -> Result<()> {
        let mut ctx = ctx.as_context_mut();
        let ty = self.ty(&ctx);
        check_elem(&ty, &value)?;
        if index >= ty.minimum {
            return Err(Error::InvalidArgument(format!(
                "table index {index} out of bounds for a table of {} elements",
                ty.minimum
            )));
        }
        B::table_set(ctx.as_context_mut().raw, &self.raw, index, value)
    }

    /// Grows by `delta` elements set to `init`; returns the previous size.
    pub fn grow(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        delta: u64,
        init: Val<B>,
    ) -> Result<u64> {
        let mut ctx = ctx.as_context_mut();
        let ty = self.ty(&ctx);
        check_elem(&ty, &init)?;
        B::table_grow(ctx.as_context_mut().raw, &self.raw, delta, init)
    }
}
