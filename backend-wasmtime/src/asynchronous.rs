//! Async calls and async host functions on wasmtime's own async support
//! (fibers): the host function's future runs inside wasmtime's.

use anywasm_core::{
    AsyncReturn, BoxFuture, Caller, DynAsyncHostFn, Extern, FuncType, Result, StoreContextMut, Val,
};
use wasmtime::AsContextMut;

use crate::convert::{call_err, extern_to_wt, func_type_to_wt, map_err, val_from_wt, val_to_wt};
use crate::func::{CallerOps, host_err};
use crate::{CtxMut, StoreData, Wasmtime};

pub(crate) fn func_new_async<T: Send + 'static>(
    ctx: CtxMut<'_, T>,
    ty: FuncType,
    func: DynAsyncHostFn<Wasmtime, T>,
) -> Result<wasmtime::Func> {
    let wt_ty = func_type_to_wt(ctx.engine(), &ty);
    let store = ctx.data().shared.id();
    Ok(wasmtime::Func::new_async(
        ctx,
        wt_ty,
        move |mut caller, params, results| {
            let func = func.clone();
            let ty = ty.clone();
            Box::new(async move {
                let args: Vec<Val<Wasmtime>> = params
                    .iter()
                    .map(|v| val_from_wt(&mut caller, *v, store))
                    .collect();
                let future = func(
                    Caller::from_raw(&mut caller as &mut dyn CallerOps<T>),
                    &args,
                );
                let ret: AsyncReturn<Wasmtime, T> = match future {
                    Ok(future) => future.await,
                    Err(e) => Err(e),
                }
                .map_err(|e| host_err(&mut caller, e))?;
                let mut rets: Vec<Val<Wasmtime>> =
                    ty.results().iter().map(|t| Val::default_for(*t)).collect();
                ret.finish(
                    StoreContextMut::from_raw(caller.as_context_mut()),
                    &mut rets,
                )
                .map_err(|e| host_err(&mut caller, e))?;
                for (slot, v) in results.iter_mut().zip(&rets) {
                    *slot = val_to_wt(&mut caller, v);
                }
                Ok(())
            })
        },
    ))
}

pub(crate) fn func_call_async<'a, T: Send + 'static>(
    store: &'a mut wasmtime::Store<StoreData<T>>,
    func: &'a wasmtime::Func,
    params: &'a [Val<Wasmtime>],
    results: &'a mut [Val<Wasmtime>],
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let id = store.data().shared.id();
        let wt_params: Vec<wasmtime::Val> = params
            .iter()
            .map(|v| val_to_wt(&mut store.as_context_mut(), v))
            .collect();
        let mut out = vec![wasmtime::Val::I32(0); results.len()];
        let r = func.call_async(&mut *store, &wt_params, &mut out).await;
        r.map_err(|e| call_err(&mut store.as_context_mut(), e))?;
        for (slot, v) in results.iter_mut().zip(out) {
            *slot = val_from_wt(&mut store.as_context_mut(), v, id);
        }
        Ok(())
    })
}

pub(crate) fn instantiate_async<'a, T: Send + 'static>(
    store: &'a mut wasmtime::Store<StoreData<T>>,
    module: &'a wasmtime::Module,
    imports: &'a [Extern<Wasmtime>],
) -> BoxFuture<'a, Result<wasmtime::Instance>> {
    Box::pin(async move {
        let imports: Vec<wasmtime::Extern> = imports.iter().map(extern_to_wt).collect();
        wasmtime::Instance::new_async(&mut *store, module, &imports)
            .await
            .map_err(map_err)
    })
}
