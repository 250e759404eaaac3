//! Linear memories.

use anywasm_core::{BackendMemory, Error, MemoryType, Result};
use wasmer::AsStoreMut;

use crate::Ctx;
use crate::CtxMut;
use crate::convert::{memory_type_from_wr, memory_type_to_wr};
use crate::{NAME, Wasmer, limits};

fn shared_refused() -> Error {
    Error::unsupported(
        NAME,
        "byte access to a shared memory (other threads may write it)",
    )
}

impl BackendMemory for Wasmer {
    fn memory_new<T: Send + 'static>(ctx: CtxMut<'_, T>, ty: MemoryType) -> Result<wasmer::Memory> {
        if ty.shared {
            return Err(Error::unsupported(NAME, "shared memories (threads)"));
        }
        let wr = memory_type_to_wr(&ty)?;
        let shared = ctx.shared().clone();
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        limits::creating_in(&shared, || wasmer::Memory::new(&mut store, wr))
            .map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    fn memory_ty<T: Send + 'static>(ctx: Ctx<'_, T>, memory: &wasmer::Memory) -> MemoryType {
        let store = ctx.store_ref();
        let mut ty = memory_type_from_wr(&memory.ty(&store));
        ty.minimum = memory.size(&store).0 as u64;
        ty
    }

    fn memory_data<'a, T: Send + 'static>(
        ctx: Ctx<'a, T>,
        memory: &wasmer::Memory,
    ) -> Result<&'a [u8]> {
        let store = ctx.store_ref();
        if memory.ty(&store).shared {
            return Err(shared_refused());
        }
        let view = memory.view(&store);
        let (ptr, len) = (view.data_ptr(), view.data_size() as usize);
        if len == 0 {
            return Ok(&[]);
        }
        // SAFETY: the memory is not shared (checked above), so only this
        // store's code writes it, and its buffer stays where it is and keeps
        // its size for as long as the store is borrowed: growing it, running
        // code or dropping the store all need the store exclusively.
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    fn memory_data_mut<'a, T: Send + 'static>(
        ctx: CtxMut<'a, T>,
        memory: &wasmer::Memory,
    ) -> Result<&'a mut [u8]> {
        let (ptr, len) = {
            let env = ctx.env_mut();
            if memory.ty(&env).shared {
                return Err(shared_refused());
            }
            let view = memory.view(&env);
            (view.data_ptr(), view.data_size() as usize)
        };
        if len == 0 {
            return Ok(&mut []);
        }
        // SAFETY: as in `memory_data`, and the store is borrowed exclusively
        // for 'a, so this is the only reference to the buffer.
        Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    }

    fn memory_grow<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        memory: &wasmer::Memory,
        delta: u64,
    ) -> Result<u64> {
        // The layer has checked the memory's maximum, within 2^16 pages.
        let delta32 = u32::try_from(delta).unwrap_or(u32::MAX);
        let mut env = ctx.env_mut();
        let mut store = env.as_store_mut();
        memory
            .grow(&mut store, wasmer::Pages(delta32))
            .map(|p| p.0 as u64)
            .map_err(|e| Error::Backend {
                backend: NAME,
                message: e.to_string(),
            })
    }
}
