//! Stores: host data, the resource limiter, fuel and the fuel slices that
//! keep calls interruptible.

use std::sync::Arc;

use anywasm_core::{BackendStore, Error, Result, StoreShared, TrapCode};
use wasmi::{AsContext, AsContextMut};

use crate::CallerOf;
use crate::Ctx;
use crate::CtxMut;
use crate::convert::map_err;
use crate::{NAME, Wasmi, WiEngine};

/// Fuel given to the engine per slice when calls must stay interruptible.
/// About a millisecond of interpretation on a desktop CPU.
pub const FUEL_SLICE: u64 = 200_000;

/// What a wasmi store holds: the user's data plus the layer's per-store state.
pub struct StoreData<T> {
    pub(crate) user: T,
    pub(crate) shared: Arc<StoreShared>,
    limiter: Limiter,
    /// Whether calls run in fuel slices (interruptible engines).
    pub(crate) slicing: bool,
    /// The user's fuel that has not been handed to the engine yet.
    pub(crate) bank: u64,
    /// Memories with non-64 KiB pages (see `WiModule::custom_pages`), by
    /// their debug form: wasmi memory handles have no equality.
    pub(crate) page_sizes: Vec<(String, u8)>,
    /// The future of the async host function that suspended the running
    /// call, with its result types (an `asynchronous::Pending<T>`; this
    /// struct does not require `T: Send`).
    #[cfg(feature = "async")]
    pub(crate) pending: Option<Box<dyn std::any::Any + Send>>,
}

/// The store's memory and table limits, as wasmi asks for them.
struct Limiter {
    shared: Arc<StoreShared>,
}

impl wasmi::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        Ok(self.shared.memory_may_grow(current as u64, desired as u64))
    }

    fn memory_grow_failed(
        &mut self,
        _: &wasmi_core::MemoryError,
    ) -> Result<(), wasmi_core::LimiterError> {
        // Out of fuel or host memory after the limiter said yes.
        self.shared.memory_grow_failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        Ok(self.shared.table_may_grow(desired as u64))
    }

    fn instances(&self) -> usize {
        usize::MAX
    }

    fn tables(&self) -> usize {
        usize::MAX
    }

    fn memories(&self) -> usize {
        usize::MAX
    }
}

/// A shared view of a wasmi store, from a `Store` or a host function's `Caller`.
pub trait View<T: Send + 'static> {
    /// wasmi's shared context.
    fn ctx(&self) -> wasmi::StoreContext<'_, StoreData<T>>;
    /// The store data.
    fn data(&self) -> &StoreData<T>;
}

/// An exclusive view of a wasmi store.
pub trait ViewMut<T: Send + 'static>: View<T> {
    /// wasmi's exclusive context.
    fn ctx_mut(&mut self) -> wasmi::StoreContextMut<'_, StoreData<T>>;
    /// The store data.
    fn data_mut(&mut self) -> &mut StoreData<T>;
    /// An export of the calling instance (only for callers).
    fn export(&self, name: &str) -> Option<wasmi::Extern>;
}

impl<T: Send + 'static> View<T> for wasmi::Store<StoreData<T>> {
    fn ctx(&self) -> wasmi::StoreContext<'_, StoreData<T>> {
        self.as_context()
    }
    fn data(&self) -> &StoreData<T> {
        wasmi::Store::data(self)
    }
}

impl<T: Send + 'static> ViewMut<T> for wasmi::Store<StoreData<T>> {
    fn ctx_mut(&mut self) -> wasmi::StoreContextMut<'_, StoreData<T>> {
        self.as_context_mut()
    }
    fn data_mut(&mut self) -> &mut StoreData<T> {
        wasmi::Store::data_mut(self)
    }
    fn export(&self, _name: &str) -> Option<wasmi::Extern> {
        None
    }
}

impl<T: Send + 'static> View<T> for wasmi::Caller<'_, StoreData<T>> {
    fn ctx(&self) -> wasmi::StoreContext<'_, StoreData<T>> {
        self.as_context()
    }
    fn data(&self) -> &StoreData<T> {
        wasmi::Caller::data(self)
    }
}

impl<T: Send + 'static> ViewMut<T> for wasmi::Caller<'_, StoreData<T>> {
    fn ctx_mut(&mut self) -> wasmi::StoreContextMut<'_, StoreData<T>> {
        self.as_context_mut()
    }
    fn data_mut(&mut self) -> &mut StoreData<T> {
        wasmi::Caller::data_mut(self)
    }
    fn export(&self, name: &str) -> Option<wasmi::Extern> {
        self.get_export(name)
    }
}

/// Before a sliced call: tops the engine up to a full slice of fuel. wasmi
/// refuses to start a call whose entry costs more than the fuel left,
/// instead of reporting a resumable out-of-fuel. (The layer has checked the
/// deadline and interrupt flag already.)
pub(crate) fn sliced_entry<T: Send + 'static>(ctx: &mut dyn ViewMut<T>) -> Result<()> {
    let held = ctx.ctx().get_fuel().unwrap_or(0);
    if held < FUEL_SLICE {
        let data = ctx.data_mut();
        let give = data.bank.min(FUEL_SLICE - held);
        if give > 0 {
            data.bank -= give;
            ctx.ctx_mut()
                .set_fuel(held + give)
                .map_err(|e| map_err(&e))?;
        }
    }
    Ok(())
}

/// Called when a sliced call ran out of engine fuel: decides whether to stop
/// (user fuel exhausted, deadline, interrupt) or refuel and go on.
pub(crate) fn refuel<T: Send + 'static>(ctx: &mut dyn ViewMut<T>, required: u64) -> Result<()> {
    let data = ctx.data_mut();
    if data.bank == 0 || data.bank < required {
        data.bank = 0;
        return Err(Error::trap(NAME, TrapCode::OutOfFuel, ""));
    }
    if let Some(code) = data.shared.interrupt().check() {
        return Err(Error::trap(NAME, code, ""));
    }
    let give = data.bank.min(FUEL_SLICE.max(required));
    data.bank -= give;
    ctx.ctx_mut().set_fuel(give).map_err(|e| map_err(&e))
}

impl BackendStore for Wasmi {
    fn store_new<T: Send + 'static>(
        engine: &WiEngine,
        data: T,
        shared: Arc<StoreShared>,
    ) -> wasmi::Store<StoreData<T>> {
        let slicing = shared.interruptible();
        // Without fuel enabled by the user, an interruptible store has an
        // unlimited budget that it still hands out in slices.
        let bank = if slicing && !shared.fuel_enabled() {
            u64::MAX
        } else {
            0
        };
        let limiter = Limiter {
            shared: shared.clone(),
        };
        let mut store = wasmi::Store::new(
            &engine.engine,
            StoreData {
                user: data,
                shared,
                limiter,
                slicing,
                bank,
                page_sizes: Vec::new(),
                #[cfg(feature = "async")]
                pending: None,
            },
        );
        store.limiter(|d| &mut d.limiter);
        if slicing && bank > 0 {
            let give = FUEL_SLICE;
            store.data_mut().bank -= give;
            let _ = store.set_fuel(give);
        }
        store
    }

    fn store_into_data<T: Send + 'static>(store: wasmi::Store<StoreData<T>>) -> T {
        store.into_data().user
    }

    fn store_ctx<T: Send + 'static>(store: &wasmi::Store<StoreData<T>>) -> Ctx<'_, T> {
        store
    }

    fn store_ctx_mut<T: Send + 'static>(store: &mut wasmi::Store<StoreData<T>>) -> CtxMut<'_, T> {
        store
    }

    fn caller_ctx<'a, T: Send + 'static>(caller: &'a CallerOf<'_, T>) -> Ctx<'a, T> {
        &**caller
    }

    fn caller_ctx_mut<'a, T: Send + 'static>(caller: &'a mut CallerOf<'_, T>) -> CtxMut<'a, T> {
        &mut **caller
    }

    fn ctx_reborrow<'a, T: Send + 'static>(ctx: &'a Ctx<'_, T>) -> Ctx<'a, T> {
        *ctx
    }

    fn ctx_mut_reborrow<'a, T: Send + 'static>(ctx: &'a mut CtxMut<'_, T>) -> CtxMut<'a, T> {
        &mut **ctx
    }

    fn ctx_mut_shared<'a, T: Send + 'static>(ctx: &'a CtxMut<'_, T>) -> Ctx<'a, T> {
        &**ctx
    }

    fn ctx_data<'a, T: Send + 'static>(ctx: Ctx<'a, T>) -> &'a T {
        &ctx.data().user
    }

    fn ctx_data_mut<'a, T: Send + 'static>(ctx: &'a mut CtxMut<'_, T>) -> &'a mut T {
        &mut ctx.data_mut().user
    }

    fn store_data_mut<T: Send + 'static>(store: &mut wasmi::Store<StoreData<T>>) -> &mut T {
        &mut store.data_mut().user
    }

    fn caller_data_mut<'a, T: Send + 'static>(caller: &'a mut CallerOf<'_, T>) -> &'a mut T {
        &mut caller.data_mut().user
    }

    fn ctx_shared<'a, T: Send + 'static>(ctx: Ctx<'a, T>) -> &'a Arc<StoreShared> {
        &ctx.data().shared
    }

    fn fuel_set<T: Send + 'static>(ctx: CtxMut<'_, T>, fuel: u64) -> Result<()> {
        if ctx.data().slicing {
            let give = fuel.min(FUEL_SLICE);
            ctx.data_mut().bank = fuel - give;
            ctx.ctx_mut().set_fuel(give).map_err(|e| map_err(&e))
        } else {
            ctx.ctx_mut().set_fuel(fuel).map_err(|e| map_err(&e))
        }
    }

    fn fuel_get<T: Send + 'static>(ctx: CtxMut<'_, T>) -> Result<u64> {
        let engine = ctx.ctx().get_fuel().map_err(|e| map_err(&e))?;
        Ok(ctx.data().bank.saturating_add(engine))
    }
}
