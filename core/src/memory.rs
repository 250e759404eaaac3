//! Linear memories.

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::error::{Error, Result};
use crate::store::{AsContext, AsContextMut, StoreId, check_store};
use crate::types::MemoryType;

/// A linear memory, valid in the store that created it.
///
/// Host accesses are bounds-checked and return
/// [`Error::MemoryOutOfBounds`] instead of panicking, so offsets and lengths
/// that come from a guest can be used directly.
pub struct Memory<B: BackendTypes> {
    raw: B::Memory,
    store: StoreId,
}

impl<B: Backend> Clone for Memory<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            store: self.store,
        }
    }
}

impl<B: Backend> std::fmt::Debug for Memory<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Memory").field(&self.raw).finish()
    }
}

/// A value with a fixed little-endian byte representation in memory.
pub trait LeBytes: Sized + Copy {
    /// Size in bytes.
    const SIZE: usize;
    /// Decodes from exactly `SIZE` bytes.
    fn from_le_slice(bytes: &[u8]) -> Self;
    /// Encodes into exactly `SIZE` bytes.
    fn write_le_slice(self, out: &mut [u8]);
}

macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn from_le_slice(bytes: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
            #[inline]
            fn write_le_slice(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
le_bytes!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, u128);

fn range(offset: u64, len: u64, size: usize) -> Result<std::ops::Range<usize>> {
    match offset.checked_add(len) {
        Some(end) if end <= size as u64 => Ok(offset as usize..end as usize),
        _ => Err(Error::MemoryOutOfBounds {
            offset,
            len,
            size: size as u64,
        }),
    }
}

impl<B: Backend> Memory<B> {
    /// Wraps an engine memory owned by the store `store` (for backends).
    ///
    /// The memory must belong to that store and must not be a shared
    /// memory; the layer hands out plain slices of it.
    pub fn from_raw(raw: B::Memory, store: StoreId) -> Self {
        Self { raw, store }
    }

    /// The engine's memory.
    pub fn raw(&self) -> &B::Memory {
        &self.raw
    }

    /// The store that owns this memory.
    pub fn store_id(&self) -> StoreId {
        self.store
    }

    #[inline]
    fn check(&self, ctx: &impl AsContext<Backend = B>) -> Result<()> {
        check_store(self.store, ctx.as_context().shared().id(), || {
            "the memory".into()
        })
    }

    /// Creates a memory owned by the host, e.g. to import into several instances.
    pub fn new(mut ctx: impl AsContextMut<Backend = B>, ty: MemoryType) -> Result<Self> {
        let mut ctx = ctx.as_context_mut();
        let store = ctx.shared().id();
        let _ = ctx.shared().take_limit_hit();
        match B::memory_new(B::ctx_mut_reborrow(&mut ctx.raw), ty) {
            Ok(raw) => Ok(Self { raw, store }),
            Err(e) => Err(match ctx.shared().take_limit_hit() {
                Some(what) => Error::Limit(what),
                None => e,
            }),
        }
    }

    /// The memory's type, with its current size as the minimum.
    pub fn ty(&self, ctx: impl AsContext<Backend = B>) -> Result<MemoryType> {
        self.check(&ctx)?;
        Ok(B::memory_ty(ctx.as_context().raw, &self.raw))
    }

    /// Size in bytes.
    pub fn data_size(&self, ctx: impl AsContext<Backend = B>) -> Result<usize> {
        Ok(self.data(&ctx)?.len())
    }

    /// Size in pages.
    pub fn size(&self, ctx: impl AsContext<Backend = B>) -> Result<u64> {
        Ok(self.ty(ctx)?.minimum)
    }

    /// Grows by `delta` pages and returns the previous size in pages.
    ///
    /// Fails with [`Error::Limit`] when the store's or engine's memory limit
    /// refuses, and with [`Error::InvalidArgument`] beyond the memory's own
    /// maximum or when the engine cannot grow it.
    pub fn grow(&self, mut ctx: impl AsContextMut<Backend = B>, delta: u64) -> Result<u64> {
        let mut ctx = ctx.as_context_mut();
        self.check(&ctx)?;
        let ty = B::memory_ty(B::ctx_mut_shared(&ctx.raw), &self.raw);
        let too_big = || {
            Error::InvalidArgument(format!(
                "cannot grow a memory of {} pages by {delta} pages: beyond its maximum of {} pages",
                ty.minimum,
                ty.maximum.unwrap_or(ty.absolute_max_pages())
            ))
        };
        let wanted = ty.minimum.checked_add(delta).ok_or_else(too_big)?;
        if wanted > ty.maximum.unwrap_or(u64::MAX).min(ty.absolute_max_pages()) {
            return Err(too_big());
        }
        let _ = ctx.shared().take_limit_hit();
        let bytes = wanted.saturating_mul(1 << ty.page_size_log2);
        if !ctx.shared().memory_within_limit(bytes) {
            let what = ctx.shared().take_limit_hit().unwrap_or_default();
            return Err(Error::Limit(what));
        }
        match B::memory_grow(B::ctx_mut_reborrow(&mut ctx.raw), &self.raw, delta) {
            Ok(old) => Ok(old),
            Err(e) => Err(match ctx.shared().take_limit_hit() {
                Some(what) => Error::Limit(what),
                None => Error::InvalidArgument(format!("cannot grow memory by {delta} pages: {e}")),
            }),
        }
    }

    /// The whole memory as a byte slice, borrowed from the store.
    pub fn data<'a, C: AsContext<Backend = B>>(&self, ctx: &'a C) -> Result<&'a [u8]> {
        self.check(ctx)?;
        B::memory_data(ctx.as_context().raw, &self.raw)
    }

    /// The whole memory as a mutable byte slice, borrowed from the store.
    pub fn data_mut<'a, C: AsContextMut<Backend = B>>(
        &self,
        ctx: &'a mut C,
    ) -> Result<&'a mut [u8]> {
        self.check(&*ctx)?;
        B::memory_data_mut(ctx.as_context_mut().raw, &self.raw)
    }

    /// The bytes `[offset, offset + len)`, or [`Error::MemoryOutOfBounds`].
    /// Checks the range before anything is copied, so a length claimed by a
    /// guest costs nothing when it is out of bounds.
    pub fn slice<'a, C: AsContext<Backend = B>>(
        &self,
        ctx: &'a C,
        offset: u64,
        len: u64,
    ) -> Result<&'a [u8]> {
        let data = self.data(ctx)?;
        let r = range(offset, len, data.len())?;
        Ok(&data[r])
    }

    /// The bytes `[offset, offset + len)`, mutably; see [`Memory::slice`].
    pub fn slice_mut<'a, C: AsContextMut<Backend = B>>(
        &self,
        ctx: &'a mut C,
        offset: u64,
        len: u64,
    ) -> Result<&'a mut [u8]> {
        let data = self.data_mut(ctx)?;
        let r = range(offset, len, data.len())?;
        Ok(&mut data[r])
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    pub fn read(
        &self,
        ctx: impl AsContext<Backend = B>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        buf.copy_from_slice(self.slice(&ctx, offset, buf.len() as u64)?);
        Ok(())
    }

    /// Reads `len` bytes at `offset` into a new vector. The range is checked
    /// before the vector is allocated.
    pub fn read_vec(
        &self,
        ctx: impl AsContext<Backend = B>,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        Ok(self.slice(&ctx, offset, len as u64)?.to_vec())
    }

    /// Copies `data` into memory at `offset`.
    pub fn write(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        self.slice_mut(&mut ctx, offset, data.len() as u64)?
            .copy_from_slice(data);
        Ok(())
    }

    /// Reads a little-endian value (`i32`, `u64`, `f64`, ...) at `offset`.
    pub fn read_le<V: LeBytes>(&self, ctx: impl AsContext<Backend = B>, offset: u64) -> Result<V> {
        Ok(V::from_le_slice(self.slice(
            &ctx,
            offset,
            V::SIZE as u64,
        )?))
    }

    /// Writes a little-endian value at `offset`.
    pub fn write_le<V: LeBytes>(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        offset: u64,
        value: V,
    ) -> Result<()> {
        value.write_le_slice(self.slice_mut(&mut ctx, offset, V::SIZE as u64)?);
        Ok(())
    }

    /// Reads an `i32` at `offset`.
    pub fn read_i32(&self, ctx: impl AsContext<Backend = B>, offset: u64) -> Result<i32> {
        self.read_le(ctx, offset)
    }

    /// Reads an `i64` at `offset`.
    pub fn read_i64(&self, ctx: impl AsContext<Backend = B>, offset: u64) -> Result<i64> {
        self.read_le(ctx, offset)
    }

    /// Reads an `f32` at `offset`.
    pub fn read_f32(&self, ctx: impl AsContext<Backend = B>, offset: u64) -> Result<f32> {
        self.read_le(ctx, offset)
    }

    /// Reads an `f64` at `offset`.
    pub fn read_f64(&self, ctx: impl AsContext<Backend = B>, offset: u64) -> Result<f64> {
        self.read_le(ctx, offset)
    }

    /// Writes an `i32` at `offset`.
    pub fn write_i32(
        &self,
        ctx: impl AsContextMut<Backend = B>,
        offset: u64,
        v: i32,
    ) -> Result<()> {
        self.write_le(ctx, offset, v)
    }

    /// Writes an `i64` at `offset`.
    pub fn write_i64(
        &self,
        ctx: impl AsContextMut<Backend = B>,
        offset: u64,
        v: i64,
    ) -> Result<()> {
        self.write_le(ctx, offset, v)
    }

    /// Writes an `f32` at `offset`.
    pub fn write_f32(
        &self,
        ctx: impl AsContextMut<Backend = B>,
        offset: u64,
        v: f32,
    ) -> Result<()> {
        self.write_le(ctx, offset, v)
    }

    /// Writes an `f64` at `offset`.
    pub fn write_f64(
        &self,
        ctx: impl AsContextMut<Backend = B>,
        offset: u64,
        v: f64,
    ) -> Result<()> {
        self.write_le(ctx, offset, v)
    }

    /// Copies `len` bytes from `src` to `dst` within this memory (the ranges may overlap).
    pub fn copy(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        dst: u64,
        src: u64,
        len: usize,
    ) -> Result<()> {
        let mem = self.data_mut(&mut ctx)?;
        let s = range(src, len as u64, mem.len())?;
        let d = range(dst, len as u64, mem.len())?;
        mem.copy_within(s, d.start);
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte`.
    pub fn fill(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        offset: u64,
        byte: u8,
        len: usize,
    ) -> Result<()> {
        self.slice_mut(&mut ctx, offset, len as u64)?.fill(byte);
        Ok(())
    }
}
