//! Linear memories.

use anywasm_core::{BackendMemory, Error, MemoryType, Result};

use crate::Ctx;
use crate::CtxMut;
use crate::convert::memory_type_to_wi;
use crate::{NAME, Wasmi};

impl BackendMemory for Wasmi {
    fn memory_new<T: Send + 'static>(ctx: CtxMut<'_, T>, ty: MemoryType) -> Result<wasmi::Memory> {
        if ty.shared {
            return Err(Error::unsupported(NAME, "shared memories (threads)"));
        }
        let wi = memory_type_to_wi(&ty)?;
        let memory = wasmi::Memory::new(ctx.ctx_mut(), wi)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if ty.page_size_log2 != 16 {
            ctx.data_mut()
                .page_sizes
                .push((format!("{memory:?}"), ty.page_size_log2));
        }
        Ok(memory)
    }

    fn memory_ty<T: Send + 'static>(ctx: Ctx<'_, T>, memory: &wasmi::Memory) -> MemoryType {
        let wi = memory.ty(ctx.ctx());
        let pages = memory.size(ctx.ctx());
        let bytes = memory.data(ctx.ctx()).len() as u64;
        let page_size_log2 = match bytes.checked_div(pages) {
            Some(size) => size.trailing_zeros() as u8,
            None => {
                let key = format!("{memory:?}");
                ctx.data()
                    .page_sizes
                    .iter()
                    .find(|(m, _)| *m == key)
                    .map_or(16, |(_, log2)| *log2)
            }
        };
        MemoryType {
            minimum: pages,
            maximum: wi.maximum(),
            memory64: wi.is_64(),
            shared: false,
            page_size_log2,
        }
    }

    // wasmi has no shared memories: its memories are always plain slices.
    fn memory_data<'a, T: Send + 'static>(
        ctx: Ctx<'a, T>,
        memory: &wasmi::Memory,
    ) -> Result<&'a [u8]> {
        Ok(memory.data(ctx.ctx()))
    }

    fn memory_data_mut<'a, T: Send + 'static>(
        ctx: CtxMut<'a, T>,
        memory: &wasmi::Memory,
    ) -> Result<&'a mut [u8]> {
        Ok(memory.data_mut(ctx.ctx_mut()))
    }

    fn memory_grow<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        memory: &wasmi::Memory,
        delta: u64,
    ) -> Result<u64> {
        memory
            .grow(ctx.ctx_mut(), delta)
            .map_err(|e| Error::Backend {
                backend: NAME,
                message: e.to_string(),
            })
    }
}
