//! Stores: host data, the resource limiter, the epoch callback, fuel.

use std::sync::Arc;

use anywasm_core::{BackendStore, Result, StoreShared, TrapCode};
use wasmtime::{AsContext, AsContextMut};

use crate::CallerOf;
use crate::Ctx;
use crate::CtxMut;
use crate::convert::backend_err;
use crate::{Wasmtime, WtEngine};

/// What a wasmtime store holds: the user's data plus the layer's per-store state.
pub struct StoreData<T> {
    pub(crate) user: T,
    pub(crate) shared: Arc<StoreShared>,
    limiter: Limiter,
}

/// The store's memory and table limits, as wasmtime asks for them.
struct Limiter {
    shared: Arc<StoreShared>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.shared.memory_may_grow(current as u64, desired as u64))
    }

    fn memory_grow_failed(&mut self, _: wasmtime::Error) -> wasmtime::Result<()> {
        // wasmtime asks before it checks the memory's maximum: a guest
        // growing past it must not keep budget.
        self.shared.memory_grow_failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.shared.table_may_grow(desired as u64))
    }
}

/// Stops running code with a neutral trap code (from the epoch callback).
#[derive(Debug)]
pub(crate) struct Stop(pub(crate) TrapCode);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Stop {}

impl BackendStore for Wasmtime {
    fn store_new<T: Send + 'static>(
        engine: &WtEngine,
        data: T,
        shared: Arc<StoreShared>,
    ) -> wasmtime::Store<StoreData<T>> {
        let limiter = Limiter {
            shared: shared.clone(),
        };
        if engine.interruptible {
            // The epoch moves only when this store (or another of the
            // engine) may have to stop; each store's callback decides.
            let weak = engine.engine.weak();
            shared.interrupt().set_hook(Box::new(move || {
                if let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                }
            }));
        }
        let mut store = wasmtime::Store::new(
            &engine.engine,
            StoreData {
                user: data,
                shared,
                limiter,
            },
        );
        store.limiter(|d| &mut d.limiter);
        if engine.interruptible {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|ctx| {
                let interrupt = ctx.data().shared.interrupt();
                match interrupt.check() {
                    Some(code) => Err(wasmtime::Error::new(Stop(code))),
                    // Only due while an async call runs (see
                    // `Store::set_yield_interval`).
                    #[cfg(feature = "async")]
                    None if interrupt.take_yield_due() => Ok(wasmtime::UpdateDeadline::Yield(1)),
                    None => Ok(wasmtime::UpdateDeadline::Continue(1)),
                }
            });
        }
        store
    }

    fn store_into_data<T: Send + 'static>(store: wasmtime::Store<StoreData<T>>) -> T {
        store.into_data().user
    }

    fn store_ctx<T: Send + 'static>(store: &wasmtime::Store<StoreData<T>>) -> Ctx<'_, T> {
        store.as_context()
    }

    fn store_ctx_mut<T: Send + 'static>(
        store: &mut wasmtime::Store<StoreData<T>>,
    ) -> CtxMut<'_, T> {
        store.as_context_mut()
    }

    fn caller_ctx<'a, T: Send + 'static>(caller: &'a CallerOf<'_, T>) -> Ctx<'a, T> {
        caller.ctx()
    }

    fn caller_ctx_mut<'a, T: Send + 'static>(caller: &'a mut CallerOf<'_, T>) -> CtxMut<'a, T> {
        caller.ctx_mut()
    }

    fn ctx_reborrow<'a, T: Send + 'static>(ctx: &'a Ctx<'_, T>) -> Ctx<'a, T> {
        ctx.as_context()
    }

    fn ctx_mut_reborrow<'a, T: Send + 'static>(ctx: &'a mut CtxMut<'_, T>) -> CtxMut<'a, T> {
        ctx.as_context_mut()
    }

    fn ctx_mut_shared<'a, T: Send + 'static>(ctx: &'a CtxMut<'_, T>) -> Ctx<'a, T> {
        ctx.as_context()
    }

    fn ctx_data<'a, T: Send + 'static>(ctx: Ctx<'a, T>) -> &'a T {
        &ctx.data().user
    }

    fn ctx_data_mut<'a, T: Send + 'static>(ctx: &'a mut CtxMut<'_, T>) -> &'a mut T {
        &mut ctx.data_mut().user
    }

    fn store_data_mut<T: Send + 'static>(store: &mut wasmtime::Store<StoreData<T>>) -> &mut T {
        &mut store.data_mut().user
    }

    fn caller_data_mut<'a, T: Send + 'static>(caller: &'a mut CallerOf<'_, T>) -> &'a mut T {
        &mut caller.data_mut().user
    }

    fn ctx_shared<'a, T: Send + 'static>(ctx: Ctx<'a, T>) -> &'a Arc<StoreShared> {
        &ctx.data().shared
    }

    fn fuel_set<T: Send + 'static>(mut ctx: CtxMut<'_, T>, fuel: u64) -> Result<()> {
        ctx.set_fuel(fuel).map_err(backend_err)
    }

    fn fuel_get<T: Send + 'static>(ctx: CtxMut<'_, T>) -> Result<u64> {
        ctx.get_fuel().map_err(backend_err)
    }
}
