//! Memory limits for wasmer, through the engine's `Tunables`.
//!
//! wasmer creates memories through the engine's tunables. The backend
//! names the store that is creating memories (a thread-local set around
//! instantiation and `Memory::new`), and the tunables wrap every memory in a
//! [`LimitedMemory`] that asks that store's limit before each growth. The
//! limit is read at growth time, so `Store::set_limits` applies to memories
//! that already exist, as on the other backends.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::Arc;

use anywasm_core::StoreShared;
use wasmer::sys::vm::{
    LinearMemory, MemoryError, MemoryStyle, TableStyle, Trap, VMMemory, VMMemoryDefinition,
    VMSharedMemory, VMTable, VMTableDefinition,
};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryType, Pages, TableType};

thread_local! {
    static CREATING: RefCell<Option<Arc<StoreShared>>> = const { RefCell::new(None) };
}

/// Runs `f` with `shared` as the store whose memories are being created.
pub(crate) fn creating_in<R>(shared: &Arc<StoreShared>, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Arc<StoreShared>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let prev = self.0.take();
            CREATING.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = CREATING.with(|c| c.borrow_mut().replace(shared.clone()));
    let _reset = Reset(prev);
    f()
}

fn current() -> Option<Arc<StoreShared>> {
    CREATING.with(|c| c.borrow().clone())
}

pub(crate) struct LimitingTunables {
    base: BaseTunables,
}

impl LimitingTunables {
    pub(crate) fn new(base: BaseTunables) -> Self {
        Self { base }
    }
}

fn check_initial(shared: &Option<Arc<StoreShared>>, ty: &MemoryType) -> Result<(), MemoryError> {
    if let Some(s) = shared {
        let bytes = ty.minimum.bytes().0 as u64;
        if !s.memory_may_grow(0, bytes) {
            return Err(MemoryError::Generic(format!(
                "memory of {} pages exceeds the store's limit",
                ty.minimum.0
            )));
        }
    }
    Ok(())
}

/// A memory wasmer failed to create gives back what `check_initial` took.
fn creation_failed<M>(
    created: Result<M, MemoryError>,
    shared: &Option<Arc<StoreShared>>,
) -> Result<M, MemoryError> {
    if created.is_err()
        && let Some(s) = shared
    {
        s.memory_grow_failed();
    }
    created
}

/// wasmer's tables are concrete types the tunables cannot wrap, so the
/// store's element limit becomes the table's maximum when it is created
/// (later changes of the limit do not reach existing tables).
fn limit_table(ty: &TableType) -> Result<TableType, String> {
    let Some(max) = current().and_then(|s| {
        let max = s.max_table_elements()?;
        if u64::from(ty.minimum) > max {
            s.note_limit_hit(format!(
                "a table of {} elements exceeds the store's limit of {max}",
                ty.minimum
            ));
        }
        Some(max)
    }) else {
        return Ok(*ty);
    };
    if u64::from(ty.minimum) > max {
        return Err(format!(
            "a table of {} elements exceeds the store's limit of {max}",
            ty.minimum
        ));
    }
    let max = u32::try_from(max).unwrap_or(u32::MAX);
    let mut ty = *ty;
    ty.maximum = Some(ty.maximum.map_or(max, |m| m.min(max)));
    Ok(ty)
}

fn wrap(inner: VMMemory, shared: Option<Arc<StoreShared>>) -> VMMemory {
    match shared {
        Some(shared) => VMMemory(Box::new(LimitedMemory { inner, shared })),
        None => inner,
    }
}

impl Tunables for LimitingTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        self.base.memory_style(memory)
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        let shared = current();
        check_initial(&shared, ty)?;
        let created = self.base.create_host_memory(ty, style);
        Ok(wrap(creation_failed(created, &shared)?, shared))
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        let shared = current();
        check_initial(&shared, ty)?;
        // SAFETY: forwarded from the caller's contract.
        let created = unsafe {
            self.base
                .create_vm_memory(ty, style, vm_definition_location)
        };
        Ok(wrap(creation_failed(created, &shared)?, shared))
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        let ty = limit_table(ty)?;
        self.base.create_host_table(&ty, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        let ty = limit_table(ty)?;
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            self.base
                .create_vm_table(&ty, style, vm_definition_location)
        }
    }
}

/// A memory that asks its store before growing.
#[derive(Debug)]
struct LimitedMemory {
    inner: VMMemory,
    shared: Arc<StoreShared>,
}

impl LinearMemory for LimitedMemory {
    fn ty(&self) -> MemoryType {
        self.inner.ty()
    }

    fn size(&self) -> Pages {
        self.inner.size()
    }

    fn style(&self) -> MemoryStyle {
        self.inner.style()
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let current = self.inner.size().0 as u64 * 65536;
        let desired = current + delta.0 as u64 * 65536;
        if !self.shared.memory_may_grow(current, desired) {
            return Err(MemoryError::Generic(
                "growing beyond the store's memory limit".into(),
            ));
        }
        // wasmer checks the memory's maximum after this: a failed growth
        // gives its budget back.
        let grown = self.inner.grow(delta);
        if grown.is_err() {
            self.shared.memory_grow_failed();
        }
        grown
    }

    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        let current = self.inner.size().0 as u64 * 65536;
        if !self.shared.memory_may_grow(current, min_size) {
            return Err(MemoryError::Generic(
                "growing beyond the store's memory limit".into(),
            ));
        }
        let grown = self.inner.grow_at_least(min_size);
        if grown.is_err() {
            self.shared.memory_grow_failed();
        }
        grown
    }

    fn reset(&mut self) -> Result<(), MemoryError> {
        self.inner.reset()
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.inner.vmmemory()
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Ok(Box::new(LimitedMemory {
            inner: VMMemory(LinearMemory::try_clone(&self.inner)?),
            shared: self.shared.clone(),
        }))
    }

    unsafe fn initialize_with_data(&self, start: usize, data: &[u8]) -> Result<(), Trap> {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.inner.initialize_with_data(start, data) }
    }

    fn copy(&self) -> Result<Box<dyn LinearMemory + Send + Sync + 'static>, MemoryError> {
        Ok(Box::new(LimitedMemory {
            inner: VMMemory(LinearMemory::copy(&self.inner)?),
            shared: self.shared.clone(),
        }))
    }

    fn as_shared(&self) -> Result<VMSharedMemory, MemoryError> {
        self.inner.as_shared()
    }
}
