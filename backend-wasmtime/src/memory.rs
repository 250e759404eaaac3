//! Linear memories.

use anywasm_core::{BackendMemory, BackendTypes, Error, MemoryType, Result};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmtime;
use crate::convert::{backend_err, map_err, memory_type_from_wt, memory_type_to_wt};

impl BackendMemory for Wasmtime {
    fn memory_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: MemoryType,
    ) -> Result<wasmtime::Memory> {
        if ty.shared {
            return Err(Error::unsupported(
                Self::NAME,
                "host-created shared memories",
            ));
        }
        let wt = memory_type_to_wt(&ty)?;
        wasmtime::Memory::new(ctx, wt).map_err(map_err)
    }

    fn memory_ty<T: Send + 'static>(ctx: Ctx<'_, T>, memory: &wasmtime::Memory) -> MemoryType {
        let mut ty = memory_type_from_wt(&memory.ty(&ctx));
        ty.minimum = memory.size(&ctx);
        ty
    }

    // `wasmtime::Memory` is never a shared memory (those are
    // `wasmtime::SharedMemory`), so wasmtime lends its bytes as a slice.
    fn memory_data<'a, T: Send + 'static>(
        ctx: Ctx<'a, T>,
        memory: &wasmtime::Memory,
    ) -> Result<&'a [u8]> {
        Ok(memory.data(ctx))
    }

    fn memory_data_mut<'a, T: Send + 'static>(
        ctx: CtxMut<'a, T>,
        memory: &wasmtime::Memory,
    ) -> Result<&'a mut [u8]> {
        Ok(memory.data_mut(ctx))
    }

    fn memory_grow<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        memory: &wasmtime::Memory,
        delta: u64,
    ) -> Result<u64> {
        memory.grow(ctx, delta).map_err(backend_err)
    }
}
