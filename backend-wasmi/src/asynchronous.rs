//! Async calls and async host functions on wasmi's resumable calls: an
//! async host function runs its prologue, parks its future in the store and
//! returns a marker error, which suspends the call; the call's future awaits
//! the parked future, runs the epilogue with the store and resumes the call
//! with the results.

use std::sync::Arc;

use anywasm_core::{
    AsyncReturn, BackendInstance, BoxFuture, Caller, DynAsyncHostFn, Error, Extern, FuncType,
    HostFuture, Result, StoreContextMut, Val, ValType,
};

use crate::convert::{call_err, func_type_to_wi, host_err, val_from_wi, val_to_wi};
use crate::store::{refuel, sliced_entry};
use crate::{CtxMut, NAME, StoreData, ViewMut, Wasmi, WiModule};

/// Marks the suspension of a call by an async host function.
#[derive(Debug)]
struct AsyncPending;

impl std::fmt::Display for AsyncPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an async host function was called outside an async call")
    }
}

impl wasmi::errors::HostError for AsyncPending {}

/// Yields to the executor once (wakes itself and returns `Pending`).
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// An async host function's future, parked in the store while the call is
/// suspended.
pub(crate) struct Pending<T: Send + 'static> {
    future: HostFuture<Wasmi, T>,
    results: Arc<[ValType]>,
}

pub(crate) fn func_new_async<T: Send + 'static>(
    ctx: CtxMut<'_, T>,
    ty: FuncType,
    func: DynAsyncHostFn<Wasmi, T>,
) -> Result<wasmi::Func> {
    let wi_ty = func_type_to_wi(&ty);
    let store = ctx.data().shared.id();
    let results: Arc<[ValType]> = ty.results().into();
    Ok(wasmi::Func::new(
        ctx.ctx_mut(),
        wi_ty,
        move |mut caller, params, _results| {
            let args: Vec<Val<Wasmi>> = params.iter().map(|v| val_from_wi(v, store)).collect();
            match func(Caller::from_raw(&mut caller as &mut dyn ViewMut<T>), &args) {
                Ok(future) => {
                    caller.data_mut().pending = Some(Box::new(Pending {
                        future,
                        results: results.clone(),
                    }));
                    Err(wasmi::Error::host(AsyncPending))
                }
                Err(e) => Err(host_err(&caller, e)),
            }
        },
    ))
}

pub(crate) fn func_call_async<'a, T: Send + 'static>(
    store: &'a mut wasmi::Store<StoreData<T>>,
    func: &'a wasmi::Func,
    params: &'a [Val<Wasmi>],
    results: &'a mut [Val<Wasmi>],
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let id = store.data().shared.id();
        let wi_params: Vec<wasmi::Val> = params.iter().map(val_to_wi).collect();
        let mut out = vec![wasmi::Val::I32(0); results.len()];
        // A future dropped while suspended left its host future here.
        store.data_mut().pending = None;
        if store.data().slicing {
            sliced_entry(&mut *store)?;
        }
        let mut call = match func.call_resumable(&mut *store, &wi_params, &mut out) {
            Ok(call) => call,
            // The host called an async host function itself: wasmi has no
            // wasm frame to suspend, and ends the call with the marker.
            Err(e) if e.downcast_ref::<AsyncPending>().is_some() => {
                let rets = awaited(&mut *store).await?;
                for (slot, v) in results.iter_mut().zip(rets) {
                    *slot = v;
                }
                return Ok(());
            }
            Err(e) => return Err(call_err(&*store, &e)),
        };
        loop {
            call = match call {
                wasmi::ResumableCall::Finished => break,
                wasmi::ResumableCall::HostTrap(t) => {
                    if t.host_error().downcast_ref::<AsyncPending>().is_none() {
                        return Err(call_err(&*store, &t.into_host_error()));
                    }
                    let rets = awaited(&mut *store).await?;
                    let wi_rets: Vec<wasmi::Val> = rets.iter().map(val_to_wi).collect();
                    t.resume(&mut *store, &wi_rets, &mut out)
                        .map_err(|e| call_err(&*store, &e))?
                }
                wasmi::ResumableCall::OutOfFuel(o) => {
                    refuel(&mut *store, o.required_fuel())?;
                    if store.data().shared.interrupt().take_yield_due() {
                        YieldNow(false).await;
                    }
                    o.resume(&mut *store, &mut out)
                        .map_err(|e| call_err(&*store, &e))?
                }
            };
        }
        for (slot, v) in results.iter_mut().zip(out.iter()) {
            *slot = val_from_wi(v, id);
        }
        Ok(())
    })
}

/// Awaits the host future an async host function parked in the store, and
/// runs its epilogue: the host function's results.
async fn awaited<T: Send + 'static>(
    store: &mut wasmi::Store<StoreData<T>>,
) -> Result<Vec<Val<Wasmi>>> {
    let pending = store.data_mut().pending.take();
    let Some(pending) = pending.and_then(|p| p.downcast::<Pending<T>>().ok()) else {
        return Err(Error::Backend {
            backend: NAME,
            message: "a suspended call has no pending host future".into(),
        });
    };
    let ret: AsyncReturn<Wasmi, T> = pending.future.await?;
    let mut rets: Vec<Val<Wasmi>> = pending
        .results
        .iter()
        .map(|t| Val::default_for(*t))
        .collect();
    ret.finish(
        StoreContextMut::from_raw(&mut *store as &mut dyn ViewMut<T>),
        &mut rets,
    )?;
    Ok(rets)
}

pub(crate) fn instantiate_async<'a, T: Send + 'static>(
    store: &'a mut wasmi::Store<StoreData<T>>,
    module: &'a WiModule,
    imports: &'a [Extern<Wasmi>],
) -> BoxFuture<'a, Result<wasmi::Instance>> {
    // The layer has taken the start function out of the module: wasmi's
    // instantiation calls no host function, and never waits.
    let r = <Wasmi as BackendInstance>::instantiate(store as &mut dyn ViewMut<T>, module, imports);
    Box::pin(async move { r })
}
