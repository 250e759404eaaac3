//! Exception tags (WebAssembly's exception handling).

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::error::{Error, Result};
use crate::store::{AsContext, AsContextMut, StoreId, check_store};
use crate::types::FuncType;
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
}
