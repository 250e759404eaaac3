//! Exception tags (WebAssembly's exception handling).

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::error::{Error, Result};
use crate::store::{AsContext, AsContextMut, StoreId, check_store};
use crate::types::{FuncType, ValType};
use crate::values::Val;

/// An exception tag, valid in the store that created it: what a `throw`
/// names and a `catch` matches, with the types of the values an exception
/// of this tag carries.
///
/// Tags are created by the host (to import into several instances, so
/// that they throw and catch each other's exceptions) or exported by an
/// instance. On backends whose engine runs no exceptions
/// ([`Capabilities::features`](crate::Capabilities)`.exceptions` false),
/// [`Tag::new`] is [`Error::Unsupported`].
pub struct Tag<B: BackendTypes> {
    raw: B::Tag,
    store: StoreId,
}

impl<B: Backend> Clone for Tag<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            store: self.store,
        }
    }
}

impl<B: Backend> std::fmt::Debug for Tag<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tag").field(&self.raw).finish()
    }
}

impl<B: Backend> Tag<B> {
    /// Wraps an engine tag owned by the store `store` (for backends).
    pub fn from_raw(raw: B::Tag, store: StoreId) -> Self {
        Self { raw, store }
    }

    /// The engine's tag.
    pub fn raw(&self) -> &B::Tag {
        &self.raw
    }

    /// The store that owns this tag.
    pub fn store_id(&self) -> StoreId {
        self.store
    }

    /// A new tag whose exceptions carry values of `ty`'s parameter types
    /// (`ty` has no results, as in a `(tag (param …))` declaration).
    pub fn new(mut ctx: impl AsContextMut<Backend = B>, ty: &FuncType) -> Result<Self> {
        if !B::capabilities().features.exceptions {
            return Err(Error::unsupported(B::NAME, "exception tags"));
        }
        if !ty.results().is_empty() {
            return Err(Error::InvalidArgument(format!(
                "a tag's type has no results: {ty}"
            )));
        }
        let ctx = ctx.as_context_mut();
        let store = ctx.shared().id();
        Ok(Self {
            raw: B::tag_new(ctx.raw, ty)?,
            store,
        })
    }

    /// The tag's type: the values its exceptions carry, as parameters.
    pub fn ty(&self, ctx: impl AsContext<Backend = B>) -> Result<FuncType> {
        let ctx = ctx.as_context();
        check_store(self.store, ctx.shared().id(), || "the tag".into())?;
        B::tag_ty(ctx.raw, &self.raw)
    }
}

/// A WebAssembly exception that reached the host: its tag and the values
/// it carries (see [`Store::take_exception`](crate::Store::take_exception)).
pub struct Exception<B: BackendTypes> {
    tag: Tag<B>,
    payload: Vec<Val<B>>,
}

impl<B: Backend> std::fmt::Debug for Exception<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exception")
            .field("tag", &self.tag)
            .field("payload", &self.payload)
            .finish()
    }
}

impl<B: Backend> Exception<B> {
    /// An exception of `tag` carrying `payload` (for backends).
    pub fn new(tag: Tag<B>, payload: Vec<Val<B>>) -> Self {
        Self { tag, payload }
    }

    /// Its tag.
    pub fn tag(&self) -> &Tag<B> {
        &self.tag
    }

    /// The values it carries, in the order of the tag's parameters.
    pub fn payload(&self) -> &[Val<B>] {
        &self.payload
    }

    /// Checks the values against the tag's type, and that the tag and the
    /// references among the values belong to the store of `ctx`.
    pub(crate) fn check(&self, ctx: impl AsContext<Backend = B>) -> Result<()> {
        let ctx = ctx.as_context();
        let ty = self.tag.ty(&ctx)?;
        let found: Vec<ValType> = self.payload.iter().map(Val::ty).collect();
        if found != ty.params() {
            return Err(Error::TypeMismatch {
                context: "exception values".into(),
                expected: FuncType::new(ty.params().iter().copied(), []).to_string(),
                found: FuncType::new(found, []).to_string(),
            });
        }
        let store = ctx.shared().id();
        for v in &self.payload {
            v.check_store(store, || "an exception value".into())?;
        }
        Ok(())
    }
}

/// `Unsupported` when `ty` has an `exnref` and backend `B` runs no
/// exceptions (its engine has no such type).
pub(crate) fn exnrefs_supported<B: Backend>(
    types: impl IntoIterator<Item = ValType>,
    what: &str,
) -> Result<()> {
    let has = types.into_iter().any(|t| t == ValType::ExnRef);
    if has && !B::capabilities().features.exceptions {
        return Err(Error::unsupported(B::NAME, format!("exnref in {what}")));
    }
    Ok(())
}

/// An `exnref`: a reference to a wasm exception object, valid in the store
/// that made it. Wasm code gets one from `catch_ref`/`catch_all_ref` and
/// rethrows it with `throw_ref`; the host reads its tag and values with
/// [`ExnRef::exception`] and makes one with [`ExnRef::new`]. On backends
/// whose engine runs no exceptions, [`ExnRef::new`] is
/// [`Error::Unsupported`] (and no module there has `exnref` values).
pub struct ExnRef<B: BackendTypes> {
    raw: B::ExnRef,
    store: StoreId,
}

impl<B: Backend> Clone for ExnRef<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            store: self.store,
        }
    }
}

impl<B: Backend> std::fmt::Debug for ExnRef<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExnRef")
    }
}

impl<B: Backend> ExnRef<B> {
    /// Wraps an engine exception object owned by the store `store` (for
    /// backends).
    pub fn from_raw(raw: B::ExnRef, store: StoreId) -> Self {
        Self { raw, store }
    }

    /// The engine's exception object.
    pub fn raw(&self) -> &B::ExnRef {
        &self.raw
    }

    /// The store that owns it.
    pub fn store_id(&self) -> StoreId {
        self.store
    }

    /// A new exception object of `exception`'s tag and values, for wasm
    /// code to rethrow (`throw_ref`) or inspect: [`Error::TypeMismatch`] or
    /// [`Error::StoreMismatch`] when the values do not fit the tag or belong
    /// to another store.
    pub fn new(mut ctx: impl AsContextMut<Backend = B>, exception: &Exception<B>) -> Result<Self> {
        if !B::capabilities().features.exceptions {
            return Err(Error::unsupported(B::NAME, "exception references"));
        }
        let ctx = ctx.as_context_mut();
        exception.check(&ctx)?;
        let store = ctx.shared().id();
        let raw = B::exnref_new(ctx.raw, exception.tag().raw(), exception.payload())?;
        Ok(Self { raw, store })
    }

    /// The exception's tag and values (on wasmer only for exceptions of at
    /// most one value, as for
    /// [`Store::take_exception`](crate::Store::take_exception); others are
    /// `Unsupported` there).
    pub fn exception(&self, mut ctx: impl AsContextMut<Backend = B>) -> Result<Exception<B>> {
        let ctx = ctx.as_context_mut();
        check_store(self.store, ctx.shared().id(), || "the exnref".into())?;
        B::exnref_exception(ctx.raw, &self.raw, self.store)
    }
}
