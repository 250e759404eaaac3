//! Functions: dynamic and typed calls (sliced when interruptible), host
//! functions.

use anywasm_core::{
    BackendFunc, Caller, DynHostFn, ExternRef, Func, FuncType, HostSig, NativeList, NativeTy,
    Result, StoreId, TypedSig, V128, Val, with_host_slots, with_scratch,
};

use crate::Ctx;
use crate::CtxMut;
use crate::convert::{
    call_err, func_type_from_wi, func_type_to_wi, host_err, map_err, nullable, val_from_wi,
    val_to_wi,
};
use crate::store::{refuel, sliced_entry};
use crate::{StoreData, View, ViewMut, Wasmi};

/// One dynamic call on wasmi's values, sliced when the store is
/// interruptible (see the crate documentation).
fn call_wi<T: Send + 'static>(
    ctx: &mut dyn ViewMut<T>,
    func: &wasmi::Func,
    params: &[wasmi::Val],
    out: &mut [wasmi::Val],
) -> Result<()> {
    if ctx.data().slicing {
        sliced_entry(&mut *ctx)?;
        let mut call = func
            .call_resumable(ctx.ctx_mut(), params, out)
            .map_err(|e| call_err(&*ctx, &e))?;
        loop {
            match call {
                wasmi::ResumableCall::Finished => break,
                wasmi::ResumableCall::HostTrap(t) => {
                    return Err(call_err(&*ctx, &t.into_host_error()));
                }
                wasmi::ResumableCall::OutOfFuel(o) => {
                    refuel(&mut *ctx, o.required_fuel())?;
                    call = o
                        .resume(ctx.ctx_mut(), out)
                        .map_err(|e| call_err(&*ctx, &e))?;
                }
            }
        }
    } else {
        func.call(ctx.ctx_mut(), params, out)
            .map_err(|e| call_err(&*ctx, &e))?;
    }
    Ok(())
}

impl BackendFunc for Wasmi {
    #[cfg(feature = "async")]
    fn func_new_async<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: FuncType,
        func: anywasm_core::DynAsyncHostFn<Self, T>,
    ) -> Result<wasmi::Func> {
        crate::asynchronous::func_new_async(ctx, ty, func)
    }

    #[cfg(feature = "async")]
    fn func_call_async<'a, T: Send + 'static>(
        store: &'a mut wasmi::Store<StoreData<T>>,
        func: &'a wasmi::Func,
        params: &'a [Val<Self>],
        results: &'a mut [Val<Self>],
    ) -> anywasm_core::BoxFuture<'a, Result<()>> {
        crate::asynchronous::func_call_async(store, func, params, results)
    }

    fn func_ty<T: Send + 'static>(ctx: Ctx<'_, T>, func: &wasmi::Func) -> Result<FuncType> {
        Ok(func_type_from_wi(&func.ty(ctx.ctx())))
    }

    fn func_call<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        func: &wasmi::Func,
        _ty: &FuncType,
        params: &[Val<Self>],
        results: &mut [Val<Self>],
    ) -> Result<()> {
        let store = ctx.data().shared.id();
        // One stack buffer: the arguments, then the result slots (which
        // wasmi sets to their type's default before the call).
        let n = params.len();
        let make = |i: usize| params.get(i).map_or(wasmi::Val::I32(0), val_to_wi);
        with_scratch(n + results.len(), make, |buf| {
            let (wi_params, out) = buf.split_at_mut(n);
            call_wi(&mut *ctx, func, wi_params, out)?;
            for (slot, v) in results.iter_mut().zip(out.iter()) {
                *slot = val_from_wi(v, store);
            }
            Ok(())
        })
    }

    fn func_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: FuncType,
        func: DynHostFn<Self, T>,
    ) -> wasmi::Func {
        let wi_ty = func_type_to_wi(&ty);
        let store = ctx.data().shared.id();
        wasmi::Func::new(ctx.ctx_mut(), wi_ty, move |mut caller, params, results| {
            with_host_slots(&ty, |args, rets| {
                for (slot, v) in args.iter_mut().zip(params) {
                    *slot = val_from_wi(v, store);
                }
                let caller_view = &mut caller as &mut dyn ViewMut<T>;
                if let Err(e) = func(Caller::from_raw(caller_view), args, rets) {
                    return Err(host_err(&caller, e));
                }
                for (slot, v) in results.iter_mut().zip(rets.iter()) {
                    *slot = val_to_wi(v);
                }
                Ok(())
            })
        })
    }
}

impl<P, R> TypedSig<Wasmi> for (P, R)
where
    P: NativeList<Wasmi, Native: wasmi::WasmParams>,
    R: NativeList<Wasmi, Native: wasmi::WasmResults>,
{
    type Params = P;
    type Results = R;
    type Native = wasmi::TypedFunc<P::Native, R::Native>;

    fn typed<T: Send + 'static>(ctx: &dyn View<T>, func: &wasmi::Func) -> Result<Self::Native> {
        func.typed::<P::Native, R::Native>(ctx.ctx())
            .map_err(|e| map_err(&e))
    }

    #[inline]
    fn call<T: Send + 'static>(
        native: &Self::Native,
        mut ctx: &mut dyn ViewMut<T>,
        store: StoreId,
        params: P,
    ) -> Result<R> {
        let params = params.into_native(&mut ctx)?;
        if !ctx.data().slicing {
            return native
                .call(ctx.ctx_mut(), params)
                .map(|r| R::from_native(r, store))
                .map_err(|e| call_err(&*ctx, &e));
        }
        sliced_entry(ctx)?;
        let mut call = native
            .call_resumable(ctx.ctx_mut(), params)
            .map_err(|e| call_err(&*ctx, &e))?;
        loop {
            match call {
                wasmi::TypedResumableCall::Finished(r) => return Ok(R::from_native(r, store)),
                wasmi::TypedResumableCall::HostTrap(t) => {
                    return Err(call_err(&*ctx, t.host_error()));
                }
                wasmi::TypedResumableCall::OutOfFuel(o) => {
                    refuel(ctx, o.required_fuel())?;
                    call = o.resume(ctx.ctx_mut()).map_err(|e| call_err(&*ctx, &e))?;
                }
            }
        }
    }
}

macro_rules! host_sig {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<R, $($t),*> HostSig<Wasmi> for (($($t,)*), R)
        where
            $($t: NativeTy<Wasmi, Native: wasmi::WasmTy>,)*
            R: NativeList<Wasmi>,
            Result<R::Native, wasmi::Error>: wasmi::WasmRet,
        {
            type Params = ($($t,)*);
            type Results = R;

            #[allow(non_snake_case, unused_variables)]
            fn wrap<T: Send + 'static, F>(ctx: &mut dyn ViewMut<T>, store: StoreId, f: F) -> wasmi::Func
            where
                F: Fn(Caller<'_, Wasmi, T>, ($($t,)*)) -> Result<R> + Send + Sync + 'static,
            {
                wasmi::Func::wrap(
                    ctx.ctx_mut(),
                    move |mut caller: wasmi::Caller<'_, StoreData<T>>, $($t: $t::Native),*| -> Result<R::Native, wasmi::Error> {
                        f(Caller::from_raw(&mut caller as &mut dyn ViewMut<T>), ($(<$t as NativeTy<Wasmi>>::from_native($t, store),)*))
                            .and_then(|r| r.into_native(&mut (&mut caller as &mut dyn ViewMut<T>)))
                            .map_err(|e| host_err(&caller, e))
                    },
                )
            }
        }
    };
}

impl NativeTy<Wasmi> for V128 {
    type Native = wasmi::V128;
    #[inline]
    fn into_native<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<wasmi::V128> {
        Ok(self.0.into())
    }
    #[inline]
    fn from_native(native: wasmi::V128, _store: StoreId) -> Self {
        V128(native.as_u128())
    }
}

impl NativeTy<Wasmi> for Option<Func<Wasmi>> {
    type Native = wasmi::Nullable<wasmi::Func>;
    #[inline]
    fn into_native<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<Self::Native> {
        Ok(nullable(self.map(|f| *f.raw())))
    }
    #[inline]
    fn from_native(native: Self::Native, store: StoreId) -> Self {
        native.val().map(|f| Func::from_raw(*f, store))
    }
}

impl NativeTy<Wasmi> for Option<ExternRef<Wasmi>> {
    type Native = wasmi::Nullable<wasmi::ExternRef>;
    #[inline]
    fn into_native<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<Self::Native> {
        Ok(nullable(self.map(|r| *r.raw())))
    }
    #[inline]
    fn from_native(native: Self::Native, store: StoreId) -> Self {
        native.val().map(|r| ExternRef::from_raw(*r, store))
    }
}

host_sig!(0;);
anywasm_core::for_each_tuple!(host_sig);
