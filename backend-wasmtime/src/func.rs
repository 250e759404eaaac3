//! Functions: dynamic and typed calls, host functions.

use anywasm_core::{
    BackendFunc, Caller, DynHostFn, Error, Exception, ExternRef, Func, FuncType, HostSig,
    NativeList, NativeTy, Result, StoreId, TypedSig, V128, Val, with_host_slots, with_scratch,
};
use std::mem::MaybeUninit;

use wasmtime::{AsContext, AsContextMut};

use crate::Ctx;
use crate::CtxMut;
use crate::convert::{
    call_err, exception_to_wt, func_type_from_wt, func_type_to_wt, map_err, val_from_wt, val_to_wt,
    val_type_to_wt,
};
use crate::{StoreData, Wasmtime};

/// How the layer reaches wasmtime's `Caller` from a host function.
///
/// A trait object (rather than `&mut wasmtime::Caller<'a, _>`) lets the
/// backend lend the caller to the host closure and still use it afterwards
/// to convert results; `&mut` would pin its lifetime parameter.
pub trait CallerOps<T: Send + 'static> {
    /// Shared store context.
    fn ctx(&self) -> wasmtime::StoreContext<'_, StoreData<T>>;
    /// Exclusive store context.
    fn ctx_mut(&mut self) -> wasmtime::StoreContextMut<'_, StoreData<T>>;
    /// An export of the calling instance.
    fn export(&mut self, name: &str) -> Option<wasmtime::Extern>;
    /// The store data.
    fn data_mut(&mut self) -> &mut StoreData<T>;
}

impl<T: Send + 'static> CallerOps<T> for wasmtime::Caller<'_, StoreData<T>> {
    fn ctx(&self) -> wasmtime::StoreContext<'_, StoreData<T>> {
        self.as_context()
    }
    fn ctx_mut(&mut self) -> wasmtime::StoreContextMut<'_, StoreData<T>> {
        self.as_context_mut()
    }
    fn export(&mut self, name: &str) -> Option<wasmtime::Extern> {
        self.get_export(name)
    }
    fn data_mut(&mut self) -> &mut StoreData<T> {
        wasmtime::Caller::data_mut(self)
    }
}

/// A host function's error for wasmtime; [`Error::Thrown`] becomes the
/// wasm exception the host function parked (see `Caller::throw`).
pub(crate) fn host_err<T: Send + 'static>(
    caller: &mut wasmtime::Caller<'_, StoreData<T>>,
    e: Error,
) -> wasmtime::Error {
    if matches!(e, Error::Thrown)
        && let Some(exception) = caller.data().shared.take_throw::<Wasmtime>()
    {
        return match throw(caller, &exception) {
            Ok(thrown) => thrown,
            Err(e) => wasmtime::Error::new(e),
        };
    }
    wasmtime::Error::new(e)
}

/// Makes wasmtime's exception object for `exception` and throws it.
fn throw<T: Send + 'static>(
    caller: &mut wasmtime::Caller<'_, StoreData<T>>,
    exception: &Exception<Wasmtime>,
) -> Result<wasmtime::Error> {
    let exn = exception_to_wt(&mut *caller, exception.tag().raw(), exception.payload())?;
    match caller.as_context_mut().throw::<()>(exn) {
        Err(thrown) => Ok(thrown),
        Ok(()) => Err(Error::Backend {
            backend: "wasmtime",
            message: "throwing an exception did not unwind".into(),
        }),
    }
}

impl BackendFunc for Wasmtime {
    #[cfg(feature = "async")]
    fn func_new_async<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: FuncType,
        func: anywasm_core::DynAsyncHostFn<Self, T>,
    ) -> Result<wasmtime::Func> {
        crate::asynchronous::func_new_async(ctx, ty, func)
    }

    #[cfg(feature = "async")]
    fn func_call_async<'a, T: Send + 'static>(
        store: &'a mut wasmtime::Store<StoreData<T>>,
        func: &'a wasmtime::Func,
        params: &'a [Val<Self>],
        results: &'a mut [Val<Self>],
    ) -> anywasm_core::BoxFuture<'a, Result<()>> {
        crate::asynchronous::func_call_async(store, func, params, results)
    }

    fn func_ty<T: Send + 'static>(ctx: Ctx<'_, T>, func: &wasmtime::Func) -> Result<FuncType> {
        func_type_from_wt(&func.ty(ctx))
    }

    fn func_call<T: Send + 'static>(
        mut ctx: CtxMut<'_, T>,
        func: &wasmtime::Func,
        ty: &FuncType,
        params: &[Val<Self>],
        results: &mut [Val<Self>],
    ) -> Result<()> {
        let store = ctx.data().shared.id();
        // wasmtime's checked `Func::call` looks the function's type up in the
        // engine's registry and checks every argument again; the layer has
        // checked them against `ty` (cached in the handle), so the values go
        // straight to the engine's raw call, in one buffer for arguments and
        // then results.
        let len = params.len().max(results.len());
        with_scratch(
            len,
            |_| wasmtime::ValRaw::i32(0),
            |raw| {
                for (slot, v) in raw.iter_mut().zip(params) {
                    *slot = val_to_wt(&mut ctx, v).to_raw(&mut ctx).map_err(map_err)?;
                }
                // SAFETY: `call_unchecked`'s contract, point by point:
                // - the buffer holds `max(params, results)` values;
                // - the arguments have the function's parameter types and belong
                //   to this store: `Func::check_call` checked them against `ty`,
                //   which `func_ty` read from the engine and which only holds
                //   types the layer represents exactly (no typed references);
                // - the call is not made from inside an async call, nor in a
                //   store that requires async entry points: `entry_check`
                //   refuses synchronous calls in both states (the layer marks a
                //   store async before it gets its first async host function).
                unsafe { func.call_unchecked(&mut ctx, std::ptr::from_mut(raw)) }
                    .map_err(|e| call_err(&mut ctx, e))?;
                for ((slot, raw), t) in results.iter_mut().zip(raw.iter()).zip(ty.results()) {
                    // SAFETY: the engine wrote a value of the result type `t`.
                    let v = unsafe { wasmtime::Val::from_raw(&mut ctx, *raw, val_type_to_wt(*t)) };
                    *slot = val_from_wt(&mut ctx, v, store);
                }
                Ok(())
            },
        )
    }

    fn func_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: FuncType,
        func: DynHostFn<Self, T>,
    ) -> wasmtime::Func {
        let wt_ty = func_type_to_wt(ctx.engine(), &ty);
        let store = ctx.data().shared.id();
        let host = move |mut caller: wasmtime::Caller<'_, StoreData<T>>,
                         raw: &mut [MaybeUninit<wasmtime::ValRaw>]|
              -> wasmtime::Result<()> {
            with_host_slots(&ty, |args, rets| {
                for ((slot, v), t) in args.iter_mut().zip(raw.iter()).zip(ty.params()) {
                    // SAFETY: wasmtime passes the arguments first, each of
                    // its type in `ty` (the type this function was made with).
                    let v = unsafe {
                        wasmtime::Val::from_raw(&mut caller, v.assume_init(), val_type_to_wt(*t))
                    };
                    *slot = val_from_wt(&mut caller, v, store);
                }
                func(
                    Caller::from_raw(&mut caller as &mut dyn CallerOps<T>),
                    args,
                    rets,
                )
                .map_err(|e| host_err(&mut caller, e))?;
                for (slot, v) in raw.iter_mut().zip(rets.iter()) {
                    slot.write(val_to_wt(&mut caller, v).to_raw(&mut caller)?);
                }
                Ok(())
            })
        };
        // SAFETY: `host` reads its arguments and writes its results as the
        // types of `ty` say: `func` is the layer's wrapper (`Func::new`, the
        // only maker of host functions with run-time types), which returns
        // an error unless every result has its declared type and belongs to
        // this store. wasmtime's `Func::new` would check the same again and
        // convert through a vector of its own values.
        unsafe { wasmtime::Func::new_unchecked(ctx, wt_ty, host) }
    }
}

impl<P, R> TypedSig<Wasmtime> for (P, R)
where
    P: NativeList<Wasmtime, Native: wasmtime::WasmParams>,
    R: NativeList<Wasmtime, Native: wasmtime::WasmResults>,
{
    type Params = P;
    type Results = R;
    type Native = wasmtime::TypedFunc<P::Native, R::Native>;

    fn typed<T: Send + 'static>(ctx: Ctx<'_, T>, func: &wasmtime::Func) -> Result<Self::Native> {
        func.typed::<P::Native, R::Native>(ctx).map_err(map_err)
    }

    #[inline]
    fn call<T: Send + 'static>(
        native: &Self::Native,
        mut ctx: CtxMut<'_, T>,
        store: StoreId,
        params: P,
    ) -> Result<R> {
        let params = params.into_native(&mut ctx)?;
        native
            .call(&mut ctx, params)
            .map(|r| R::from_native(r, store))
            .map_err(|e| call_err(&mut ctx, e))
    }
}

impl NativeTy<Wasmtime> for V128 {
    type Native = wasmtime::V128;
    #[inline]
    fn into_native<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<wasmtime::V128> {
        Ok(self.0.into())
    }
    #[inline]
    fn from_native(native: wasmtime::V128, _store: StoreId) -> Self {
        V128(native.as_u128())
    }
}

impl NativeTy<Wasmtime> for Option<Func<Wasmtime>> {
    type Native = Option<wasmtime::Func>;
    #[inline]
    fn into_native<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<Self::Native> {
        Ok(self.map(|f| *f.raw()))
    }
    #[inline]
    fn from_native(native: Self::Native, store: StoreId) -> Self {
        native.map(|f| Func::from_raw(f, store))
    }
}

impl NativeTy<Wasmtime> for Option<ExternRef<Wasmtime>> {
    type Native = Option<wasmtime::OwnedRooted<wasmtime::ExternRef>>;
    #[inline]
    fn into_native<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<Self::Native> {
        Ok(self.map(|r| r.raw().clone()))
    }
    #[inline]
    fn from_native(native: Self::Native, store: StoreId) -> Self {
        native.map(|r| ExternRef::from_raw(r, store))
    }
}

macro_rules! host_sig {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<R, $($t),*> HostSig<Wasmtime> for (($($t,)*), R)
        where
            $($t: NativeTy<Wasmtime, Native: wasmtime::WasmTy>,)*
            R: NativeList<Wasmtime, Native: wasmtime::WasmRet>,
        {
            type Params = ($($t,)*);
            type Results = R;

            #[allow(non_snake_case, unused_variables)]
            fn wrap<T: Send + 'static, F>(ctx: CtxMut<'_, T>, store: StoreId, f: F) -> wasmtime::Func
            where
                F: Fn(Caller<'_, Wasmtime, T>, ($($t,)*)) -> Result<R> + Send + Sync + 'static,
            {
                wasmtime::Func::wrap(
                    ctx,
                    move |mut caller: wasmtime::Caller<'_, StoreData<T>>, $($t: $t::Native),*| -> wasmtime::Result<R::Native> {
                        f(Caller::from_raw(&mut caller as &mut dyn CallerOps<T>), ($(<$t as NativeTy<Wasmtime>>::from_native($t, store),)*))
                            .and_then(|r| r.into_native(&mut caller.as_context_mut()))
                            .map_err(|e| host_err(&mut caller, e))
                    },
                )
            }
        }
    };
}

host_sig!(0;);
anywasm_core::for_each_tuple!(host_sig);
