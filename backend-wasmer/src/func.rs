//! Functions: the call wrapper every call from the host goes through,
//! dynamic and typed calls, host functions and what they know of their
//! calling instance.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use anywasm_core::{
    BackendFunc, Caller, DynHostFn, Error, ExternRef, Func, FuncType, HostErrorMarker, HostSig,
    NativeTy, Result, StoreId, TrapCode, TypedSig, V128, Val, ValList, ValType, WasmTyList,
    with_host_slots, with_scratch,
};
use wasmer::{AsStoreMut, FunctionEnv, FunctionEnvMut, StoreMut};

use crate::Ctx;
use crate::CtxMut;
use crate::convert::{func_type_from_wr, func_type_to_wr, map_runtime_err, val_from_wr, val_to_wr};

use crate::{NAME, StoreData, View, ViewMut, Wasmer, control, module, thunk};

/// An instance. Shared, because every function taken from it and every
/// call into it keeps it (wasmer's `Instance` clones its export map).
pub type WrInstance = Arc<wasmer::Instance>;

/// Makes a host function's wasmer function anew, bound to an instance:
/// `(store, the store's FunctionEnv<StoreData<T>> as Any, binding)`.
pub(crate) type MakeHost = Arc<
    dyn Fn(&mut StoreMut<'_>, &dyn Any, Arc<OnceLock<WrInstance>>) -> Option<wasmer::Function>
        + Send
        + Sync,
>;

/// What the backend keeps of a host function to tell it its calling
/// instance: wasmer does not tell host functions who called them, so each
/// import of a host function into an instance is a function of its own,
/// bound to that instance.
#[derive(Clone)]
pub(crate) struct HostBinding {
    /// The instance this function was imported into, once known.
    pub(crate) instance: Arc<OnceLock<WrInstance>>,
    /// Makes a copy of the function for another importing instance.
    pub(crate) make: MakeHost,
}

impl std::fmt::Debug for HostBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBinding").finish_non_exhaustive()
    }
}

/// A function, with what the backend knows about whose it is.
#[derive(Clone, Debug)]
pub struct WrFunc {
    pub(crate) func: wasmer::Function,
    /// The instance that exports it, for functions taken from an instance.
    pub(crate) owner: Option<WrInstance>,
    /// For host functions made through the layer.
    pub(crate) host: Option<HostBinding>,
    /// For host functions with a run-time signature: the wasm thunk that
    /// stands for it as a funcref, once made.
    pub(crate) thunk: Option<Arc<OnceLock<wasmer::Function>>>,
}

impl WrFunc {
    /// wasmer's function.
    pub fn inner(&self) -> &wasmer::Function {
        &self.func
    }

    pub(crate) fn plain(func: wasmer::Function, owner: Option<WrInstance>) -> Self {
        Self {
            func,
            owner,
            host: None,
            thunk: None,
        }
    }
}

/// What a host function gets: the store view and its own binding.
pub struct WrCaller<'a, T: Send + 'static> {
    pub(crate) env: &'a mut (dyn ViewMut<T> + 'a),
    binding: &'a OnceLock<WrInstance>,
}

impl<'a, T: Send + 'static> WrCaller<'a, T> {
    pub(crate) fn new(
        env: &'a mut (dyn ViewMut<T> + 'a),
        binding: &'a OnceLock<WrInstance>,
    ) -> Self {
        Self { env, binding }
    }
}

/// The innermost instance the host is running, as a new `Arc`.
pub(crate) fn running_instance<T>(data: &StoreData<T>) -> Option<WrInstance> {
    let ptr = data.calls.running();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` came from `Arc::as_ptr` of an owner that `host_call`'s
    // caller borrows for the whole call, and `host_call` puts the previous
    // value back before returning or unwinding; we are inside that call (a
    // host function it led to), so the `Arc` is alive and one more strong
    // count is sound.
    unsafe {
        Arc::increment_strong_count(ptr);
        Some(Arc::from_raw(ptr))
    }
}

/// Runs `f` as a call from the host into wasm: the status word reset and
/// deadline re-check of the outermost call, the caller stack, and the
/// mapping of what the control globals say after a trap.
pub(crate) fn host_call<T: Send + 'static, R>(
    ctx: &mut dyn ViewMut<T>,
    owner: Option<&WrInstance>,
    f: impl FnOnce(&mut StoreMut<'_>) -> std::result::Result<R, wasmer::RuntimeError>,
) -> Result<R> {
    let (calls, mut store) = ctx.call_parts();
    if calls.idle()
        && let Some(c) = &calls.control
    {
        // A stop asked for before this call (the layer has checked that
        // nothing is due now) must not stop it; one asked for from now on
        // must. So: reset, then look again.
        c.reset_status();
        if let Some(code) = calls.shared.interrupt().check() {
            return Err(Error::trap(NAME, code, ""));
        }
    }
    let entered = calls.enter(owner);
    // Host functions' panics never get here (the core catches them where
    // the host function returns); this guard is for a panic from wasmer
    // itself. The bookkeeping is undone before it goes on, so the running
    // instance is never a pointer whose owner borrow has ended (which
    // `running_instance` would otherwise dereference later).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut store)));
    calls.leave(entered);
    let e = match result {
        Ok(Ok(r)) => return Ok(r),
        Ok(Err(e)) => e,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    if e.is::<HostErrorMarker>()
        && let Some(ours) = calls.shared.take_host_error()
    {
        return Err(ours);
    }
    if let Some(exception) = e.to_exception() {
        let described = exception_from_wr(&mut store, &exception, calls.shared.id()).ok();
        calls.shared.set_exception(described);
        return Err(Error::trap(NAME, TrapCode::UncaughtException, ""));
    }
    if let Some(c) = &calls.control
        && c.status() == control::OUT_OF_FUEL
        && e.clone().to_trap() == Some(wasmer::sys::vm::TrapCode::UnreachableCodeReached)
    {
        // The budget is spent: what is left is less than the block that
        // could not run.
        let _ = c.fuel.set(&mut store, wasmer::Value::I64(0));
        c.reset_status();
        return Err(Error::trap(NAME, TrapCode::OutOfFuel, ""));
    }
    Err(map_runtime_err(e))
}

/// Parks a host function's error in the store and returns wasmer's marker;
/// [`Error::Thrown`] becomes the wasm exception the host function parked
/// (see `Caller::throw`).
///
/// A wasm exception thrown from a host function with a run-time signature
/// (`dynamic`) reaches wasmer's handlers uncatchable by wasm code (wasmer
/// 7.3; from typed host functions it is caught as it should be), so there
/// the throw is refused as `Unsupported` rather than made uncatchable.
pub(crate) fn park_host_error<T: Send + 'static>(
    env: &mut FunctionEnvMut<'_, StoreData<T>>,
    e: Error,
    dynamic: bool,
) -> wasmer::RuntimeError {
    let e = match e {
        Error::Thrown => match env.data().calls.shared.take_throw::<Wasmer>() {
            Some(_) if dynamic => Error::unsupported(
                NAME,
                "throwing a wasm exception from a host function with a run-time \
                 signature (Func::new); a typed one (Func::wrap) can",
            ),
            Some(exception) => match throw(env, &exception) {
                Ok(thrown) => return thrown,
                Err(e) => e,
            },
            None => Error::Thrown,
        },
        e => e,
    };
    env.data().calls.shared.park_host_error(e);
    wasmer::RuntimeError::user(Box::new(HostErrorMarker))
}

/// Makes wasmer's exception for `exception`, as the error that throws it.
fn throw<T: Send + 'static>(
    env: &mut FunctionEnvMut<'_, StoreData<T>>,
    exception: &anywasm_core::Exception<Wasmer>,
) -> Result<wasmer::RuntimeError> {
    let (data, mut store) = env.data_and_store_mut();
    let exn = exception_to_wr(data, &mut store, exception.tag().raw(), exception.payload())?;
    Ok(wasmer::RuntimeError::exception(&store, exn))
}

/// A new wasmer exception object of `tag` carrying `values`.
pub(crate) fn exception_to_wr<T>(
    data: &StoreData<T>,
    store: &mut StoreMut<'_>,
    tag: &wasmer::Tag,
    values: &[Val<Wasmer>],
) -> Result<wasmer::Exception> {
    let mut wr = Vec::with_capacity(values.len());
    for v in values {
        wr.push(val_to_wr_in(data, store, v)?);
    }
    guard_panic(|| wasmer::Exception::new(store, tag, &wr))
}

/// The tag and values of a wasmer exception object. wasmer 7.3 reads an
/// exception's values from the host as if each took a whole slot, while its
/// compiled code packs them: only the first comes out right. An exception
/// with more is `Unsupported` rather than described wrong.
pub(crate) fn exception_from_wr(
    store: &mut StoreMut<'_>,
    exn: &wasmer::Exception,
    id: StoreId,
) -> Result<anywasm_core::Exception<Wasmer>> {
    let tag = exn.tag(store);
    if tag.ty(store).params.len() > 1 {
        return Err(Error::unsupported(
            NAME,
            "reading an exception of more than one value (wasmer 7.3 reads all but the first wrong)",
        ));
    }
    let payload = exn
        .payload(store)
        .iter()
        .map(|v| crate::convert::val_from_wr(v, id))
        .collect();
    Ok(anywasm_core::Exception::new(
        anywasm_core::Tag::from_raw(tag, id),
        payload,
    ))
}

/// A function as wasmer accepts it in a table, global or funcref argument:
/// itself, or for a host function with a run-time signature, its wasm thunk
/// (see `thunk`).
pub(crate) fn funcref_to_wr<T>(
    data: &StoreData<T>,
    store: &mut StoreMut<'_>,
    f: &WrFunc,
) -> Result<wasmer::Function> {
    let Some(cell) = &f.thunk else {
        return Ok(f.func.clone());
    };
    if let Some(t) = cell.get() {
        return Ok(t.clone());
    }
    let ty = func_type_from_wr(&f.func.ty(store));
    let module = module::compile(
        store.engine(),
        &data.compiler,
        &thunk::thunk_module(&ty),
        None,
    )
    .map_err(thunk::thunk_error)?;
    let imports = wasmer::imports! { "" => { "f" => f.func.clone() } };
    let instance = wasmer::Instance::new(store, &module, &imports).map_err(thunk::thunk_error)?;
    let t = instance
        .exports
        .get_function("f")
        .map_err(thunk::thunk_error)?
        .clone();
    let _ = cell.set(t.clone());
    Ok(cell.get().cloned().unwrap_or(t))
}

/// Runs a wasmer call that panics on a funcref it cannot take (a host
/// function with a run-time signature re-exported by an instance, which the
/// backend cannot tell from a wasm function), turning the panic into
/// `Unsupported`. wasmer checks before it changes anything, so the store
/// stays consistent.
pub(crate) fn guard_panic<R>(f: impl FnOnce() -> R) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = anywasm_core::panic_message(&*p).unwrap_or("a wasmer panic");
        Error::unsupported(NAME, format!("this funcref ({msg})"))
    })
}

/// [`val_to_wr`] for values that may hold a host function with a run-time
/// signature.
pub(crate) fn val_to_wr_in<T>(
    data: &StoreData<T>,
    store: &mut StoreMut<'_>,
    v: &Val<Wasmer>,
) -> Result<wasmer::Value> {
    match v {
        Val::FuncRef(Some(f)) => Ok(wasmer::Value::FuncRef(Some(funcref_to_wr(
            data,
            store,
            f.raw(),
        )?))),
        v => Ok(val_to_wr(v)),
    }
}

/// A dynamic host function bound to `binding`.
fn dynamic_host<T: Send + 'static>(
    store: &mut StoreMut<'_>,
    fenv: &FunctionEnv<StoreData<T>>,
    ty: &FuncType,
    func: &DynHostFn<Wasmer, T>,
    binding: Arc<OnceLock<WrInstance>>,
    id: StoreId,
) -> wasmer::Function {
    let (ty, func) = (ty.clone(), func.clone());
    let wr_ty = func_type_to_wr(&ty);
    wasmer::Function::new_with_env(store, fenv, wr_ty, move |mut env, params| {
        with_host_slots(&ty, |args, rets| {
            for (slot, v) in args.iter_mut().zip(params) {
                *slot = val_from_wr(v, id);
            }
            let r = func(
                Caller::from_raw(WrCaller {
                    env: &mut env as &mut dyn ViewMut<T>,
                    binding: &binding,
                }),
                args,
                rets,
            );
            if let Err(e) = r {
                return Err(park_host_error(&mut env, e, true));
            }
            results_to_wr(&mut env, rets)
        })
    })
}

/// A host function's results (with a run-time signature) for wasmer, or
/// the parked error of one that cannot cross.
pub(crate) fn results_to_wr<T: Send + 'static>(
    env: &mut FunctionEnvMut<'_, StoreData<T>>,
    rets: &[Val<Wasmer>],
) -> std::result::Result<Vec<wasmer::Value>, wasmer::RuntimeError> {
    let mut out = Vec::with_capacity(rets.len());
    for v in rets {
        let (data, mut store) = env.data_and_store_mut();
        match val_to_wr_in(data, &mut store, v) {
            Ok(v) => out.push(v),
            Err(e) => return Err(park_host_error(env, e, true)),
        }
    }
    Ok(out)
}

/// A host function made through the layer, with the maker of its copies
/// bound to other importing instances (see [`HostBinding`]). `make` makes
/// one bound to the given instance cell.
pub(crate) fn bound_host<T: Send + 'static>(
    ctx: CtxMut<'_, T>,
    make: impl Fn(
        &mut StoreMut<'_>,
        &FunctionEnv<StoreData<T>>,
        Arc<OnceLock<WrInstance>>,
    ) -> wasmer::Function
    + Send
    + Sync
    + 'static,
) -> WrFunc {
    let binding: Arc<OnceLock<WrInstance>> = Arc::default();
    let mut env = ctx.env_mut();
    let fenv = env.as_ref();
    let mut store = env.as_store_mut();
    let f = make(&mut store, &fenv, binding.clone());
    let make: MakeHost = Arc::new(move |store, fenv, binding| {
        let fenv = fenv.downcast_ref::<FunctionEnv<StoreData<T>>>()?;
        Some(make(store, fenv, binding))
    });
    WrFunc {
        func: f,
        owner: None,
        host: Some(HostBinding {
            instance: binding,
            make,
        }),
        thunk: Some(Arc::default()),
    }
}

impl BackendFunc for Wasmer {
    fn func_ty<T: Send + 'static>(ctx: Ctx<'_, T>, func: &WrFunc) -> Result<FuncType> {
        Ok(func_type_from_wr(&func.func.ty(&ctx.store_ref())))
    }

    fn func_call<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        func: &WrFunc,
        _ty: &FuncType,
        params: &[Val<Self>],
        results: &mut [Val<Self>],
    ) -> Result<()> {
        call_dynamic(ctx, func, params, results)
    }

    fn func_new<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: FuncType,
        func: DynHostFn<Self, T>,
    ) -> WrFunc {
        let id = ctx.shared().id();
        bound_host(ctx, move |store, fenv, binding| {
            dynamic_host(store, fenv, &ty, &func, binding, id)
        })
    }

    #[cfg(feature = "async")]
    fn func_new_async<T: Send + 'static>(
        ctx: CtxMut<'_, T>,
        ty: FuncType,
        func: anywasm_core::DynAsyncHostFn<Self, T>,
    ) -> Result<WrFunc> {
        crate::asynchronous::func_new_async(ctx, ty, func)
    }

    #[cfg(feature = "async")]
    fn func_call_async<'a, T: Send + 'static>(
        store: &'a mut crate::WrStore<T>,
        func: &'a WrFunc,
        params: &'a [Val<Self>],
        results: &'a mut [Val<Self>],
    ) -> anywasm_core::BoxFuture<'a, Result<()>> {
        crate::asynchronous::func_call_async(store, func, params, results)
    }
}

/// A dynamic call (for [`BackendFunc::func_call`] and the async worker).
pub(crate) fn call_dynamic<T: Send + 'static>(
    ctx: CtxMut<'_, T>,
    func: &WrFunc,
    params: &[Val<Wasmer>],
    results: &mut [Val<Wasmer>],
) -> Result<()> {
    let id = ctx.shared().id();
    // Only a function reference needs the store's data (a host function
    // may need its wasm thunk); numbers convert without looking it up.
    let funcrefs = params.iter().any(|v| matches!(v, Val::FuncRef(Some(_))));
    with_scratch(
        params.len(),
        |i| val_to_wr(&params[i]),
        |wr_params| {
            if funcrefs {
                let mut env = ctx.env_mut();
                let (data, mut store) = env.data_and_store_mut();
                for (slot, v) in wr_params.iter_mut().zip(params) {
                    if let Val::FuncRef(Some(_)) = v {
                        *slot = val_to_wr_in(data, &mut store, v)?;
                    }
                }
            }
            // wasmer returns the results in a new boxed slice.
            let out = host_call(ctx, func.owner.as_ref(), |store| {
                func.func.call(store, wr_params)
            })?;
            for (slot, v) in results.iter_mut().zip(out.iter()) {
                *slot = val_from_wr(v, id);
            }
            Ok(())
        },
    )
}

impl<P, R> TypedSig<Wasmer> for (P, R)
where
    P: WasmTyList + NativeParams,
    R: WasmTyList + NativeResults,
{
    type Params = P;
    type Results = R;
    type Native = WrTyped<P, R>;

    fn typed<T: Send + 'static>(ctx: &dyn View<T>, func: &WrFunc) -> Result<Self::Native> {
        let store = ctx.store_ref();
        let native = func
            .func
            .typed::<P::Native, R::Native>(&store)
            .map_err(|e| Error::TypeMismatch {
                context: "typed function".into(),
                expected: "the requested signature".into(),
                found: e.to_string(),
            })?;
        Ok(WrTyped {
            native: Arc::new(native),
            owner: func.owner.clone(),
            _marker: std::marker::PhantomData,
        })
    }

    #[inline]
    fn call<T: Send + 'static>(
        native: &Self::Native,
        mut ctx: &mut dyn ViewMut<T>,
        store: StoreId,
        params: P,
    ) -> Result<R> {
        let params = params.to_wr(&mut ctx)?;
        let r = host_call(ctx, native.owner.as_ref(), |wr_store| {
            P::call(&native.native, wr_store, params)
        })?;
        Ok(R::from_wr(r, store))
    }
}

/// wasmer's typed function with the instance that owns it.
pub struct WrTyped<P: NativeParams, R: NativeResults> {
    native: Arc<wasmer::TypedFunction<P::Native, R::Native>>,
    owner: Option<WrInstance>,
    _marker: std::marker::PhantomData<fn(P) -> R>,
}

impl<P: NativeParams, R: NativeResults> Clone for WrTyped<P, R> {
    fn clone(&self) -> Self {
        Self {
            native: self.native.clone(),
            owner: self.owner.clone(),
            _marker: std::marker::PhantomData,
        }
    }
}

/// A value type in the form wasmer's typed functions take.
pub trait Native:
    NativeTy<Wasmer, Native: wasmer::FromToNativeWasmType + Send + Sync + 'static>
{
}

impl<A: NativeTy<Wasmer, Native: wasmer::FromToNativeWasmType + Send + Sync + 'static>> Native
    for A
{
}

/// wasmer's form of a `v128` in typed functions: wasmer 7.3 passes `u128`
/// values but implements its conversion trait only for the number types.
#[derive(Clone, Copy)]
pub struct WrV128(u128);

// SAFETY: `u128` is wasmer's own `v128` representation (`NativeWasmType`
// with `Type::V128`); this is a transparent wrapper around it.
unsafe impl wasmer::FromToNativeWasmType for WrV128 {
    type Native = u128;
    #[inline]
    fn from_native(native: u128) -> Self {
        WrV128(native)
    }
    #[inline]
    fn to_native(self) -> u128 {
        self.0
    }
}

impl NativeTy<Wasmer> for V128 {
    type Native = WrV128;
    #[inline]
    fn into_native<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<WrV128> {
        Ok(WrV128(self.0))
    }
    #[inline]
    fn from_native(native: WrV128, _store: StoreId) -> Self {
        V128(native.0)
    }
}

impl NativeTy<Wasmer> for Option<Func<Wasmer>> {
    type Native = Option<wasmer::Function>;
    /// A host function with a run-time signature becomes its wasm thunk
    /// (see `funcref_to_wr`), which needs the store.
    fn into_native<T: Send + 'static>(self, ctx: &mut CtxMut<'_, T>) -> Result<Self::Native> {
        let Some(f) = self else { return Ok(None) };
        let mut env = ctx.env_mut();
        let (data, mut store) = env.data_and_store_mut();
        funcref_to_wr(data, &mut store, f.raw()).map(Some)
    }
    #[inline]
    fn from_native(native: Self::Native, store: StoreId) -> Self {
        native.map(|f| Func::from_raw(WrFunc::plain(f, None), store))
    }
}

impl NativeTy<Wasmer> for Option<ExternRef<Wasmer>> {
    type Native = Option<wasmer::ExternRef>;
    #[inline]
    fn into_native<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<Self::Native> {
        Ok(self.map(|r| r.raw().clone()))
    }
    #[inline]
    fn from_native(native: Self::Native, store: StoreId) -> Self {
        native.map(|r| ExternRef::from_raw(r, store))
    }
}

/// Parameter tuples in the layer's form, mapped to wasmer's (a single
/// parameter is a bare value in wasmer, a 1-tuple in the layer).
pub trait NativeParams: ValList<Wasmer> {
    /// wasmer's parameter list.
    type Native: wasmer::WasmTypeList;
    /// Into wasmer's form (see [`NativeTy::into_native`]).
    fn to_wr<T: Send + 'static>(self, ctx: &mut CtxMut<'_, T>) -> Result<Self::Native>;
    /// Calls a typed function with these parameters.
    fn call<R: wasmer::WasmTypeList>(
        f: &wasmer::TypedFunction<Self::Native, R>,
        store: &mut StoreMut<'_>,
        params: Self::Native,
    ) -> std::result::Result<R, wasmer::RuntimeError>;
}

/// Result tuples in the layer's form, mapped to wasmer's.
pub trait NativeResults: ValList<Wasmer> {
    /// wasmer's result list.
    type Native: wasmer::WasmTypeList;
    /// Converts from wasmer's form (references made in `store`).
    fn from_wr(n: Self::Native, store: StoreId) -> Self;
    /// Into wasmer's form (see [`NativeTy::into_native`]).
    fn to_wr<T: Send + 'static>(self, ctx: &mut CtxMut<'_, T>) -> Result<Self::Native>;
}

impl NativeParams for () {
    type Native = ();
    #[inline(always)]
    fn to_wr<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<()> {
        Ok(())
    }
    #[inline]
    fn call<R: wasmer::WasmTypeList>(
        f: &wasmer::TypedFunction<(), R>,
        store: &mut StoreMut<'_>,
        _params: (),
    ) -> std::result::Result<R, wasmer::RuntimeError> {
        f.call(store)
    }
}

impl NativeResults for () {
    type Native = ();
    #[inline(always)]
    fn from_wr(_: (), _store: StoreId) -> Self {}
    #[inline(always)]
    fn to_wr<T: Send + 'static>(self, _: &mut CtxMut<'_, T>) -> Result<()> {
        Ok(())
    }
}

impl<A0: Native> NativeParams for (A0,) {
    type Native = A0::Native;
    #[inline(always)]
    fn to_wr<T: Send + 'static>(self, ctx: &mut CtxMut<'_, T>) -> Result<A0::Native> {
        self.0.into_native(ctx)
    }
    #[inline]
    fn call<R: wasmer::WasmTypeList>(
        f: &wasmer::TypedFunction<A0::Native, R>,
        store: &mut StoreMut<'_>,
        params: A0::Native,
    ) -> std::result::Result<R, wasmer::RuntimeError> {
        f.call(store, params)
    }
}

impl<A0: Native> NativeResults for (A0,) {
    type Native = A0::Native;
    #[inline(always)]
    fn from_wr(n: A0::Native, store: StoreId) -> Self {
        (A0::from_native(n, store),)
    }
    #[inline(always)]
    fn to_wr<T: Send + 'static>(self, ctx: &mut CtxMut<'_, T>) -> Result<A0::Native> {
        self.0.into_native(ctx)
    }
}

macro_rules! native_tuples {
    ($($t:ident $i:tt),*) => {
        impl<$($t: Native),*> NativeParams for ($($t,)*) {
            type Native = ($($t::Native,)*);
            #[inline(always)]
            fn to_wr<T: Send + 'static>(self, ctx: &mut CtxMut<'_, T>) -> Result<Self::Native> {
                Ok(($(self.$i.into_native(ctx)?,)*))
            }
            #[inline]
            fn call<R: wasmer::WasmTypeList>(
                f: &wasmer::TypedFunction<Self::Native, R>,
                store: &mut StoreMut<'_>,
                params: Self::Native,
            ) -> std::result::Result<R, wasmer::RuntimeError> {
                f.call(store, $(params.$i),*)
            }
        }

        impl<$($t: Native),*> NativeResults for ($($t,)*) {
            type Native = ($($t::Native,)*);
            #[inline(always)]
            fn from_wr(n: Self::Native, store: StoreId) -> Self {
                ($($t::from_native(n.$i, store),)*)
            }
            #[inline(always)]
            fn to_wr<T: Send + 'static>(self, ctx: &mut CtxMut<'_, T>) -> Result<Self::Native> {
                Ok(($(self.$i.into_native(ctx)?,)*))
            }
        }
    };
}

// Arity 1 is above: wasmer writes a single value bare, not as a 1-tuple.
native_tuples!(A0 0, A1 1);
native_tuples!(A0 0, A1 1, A2 2);
native_tuples!(A0 0, A1 1, A2 2, A3 3);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13, A14 14);
native_tuples!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13, A14 14, A15 15);

macro_rules! host_sig {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<R, $($t),*> HostSig<Wasmer> for (($($t,)*), R)
        where
            $($t: Native,)*
            R: WasmTyList + NativeResults,
        {
            type Params = ($($t,)*);
            type Results = R;

            #[allow(non_snake_case)]
            fn wrap<T: Send + 'static, F>(ctx: &mut dyn ViewMut<T>, store_id: StoreId, f: F) -> WrFunc
            where
                F: Fn(Caller<'_, Wasmer, T>, ($($t,)*)) -> Result<R> + Send + Sync + 'static,
            {
                #[allow(unused_variables)]
                fn typed_host<T: Send + 'static, R, F, $($t),*>(
                    store: &mut StoreMut<'_>,
                    fenv: &FunctionEnv<StoreData<T>>,
                    f: Arc<F>,
                    binding: Arc<OnceLock<WrInstance>>,
                    store_id: StoreId,
                ) -> wasmer::Function
                where
                    $($t: Native,)*
                    R: WasmTyList + NativeResults,
                    F: Fn(Caller<'_, Wasmer, T>, ($($t,)*)) -> Result<R> + Send + Sync + 'static,
                {
                    wasmer::Function::new_typed_with_env(
                        store,
                        fenv,
                        move |mut env: FunctionEnvMut<'_, StoreData<T>>, $($t: $t::Native),*| -> std::result::Result<R::Native, wasmer::RuntimeError> {
                            let r = f(
                                Caller::from_raw(WrCaller {
                                    env: &mut env as &mut dyn ViewMut<T>,
                                    binding: &binding,
                                }),
                                ($(<$t as NativeTy<Wasmer>>::from_native($t, store_id),)*),
                            );
                            match r.and_then(|r| r.to_wr(&mut (&mut env as &mut dyn ViewMut<T>))) {
                                Ok(r) => Ok(r),
                                Err(e) => Err(park_host_error(&mut env, e, false)),
                            }
                        },
                    )
                }

                let params = <($($t,)*) as WasmTyList>::types();
                let results = R::types();
                if params.contains(&ValType::V128) || results.contains(&ValType::V128) {
                    return v128_host(ctx, FuncType::new(params, results), f);
                }
                let f = Arc::new(f);
                let binding: Arc<OnceLock<WrInstance>> = Arc::default();
                let mut env = ctx.env_mut();
                let fenv = env.as_ref();
                let mut store = env.as_store_mut();
                let func = typed_host(&mut store, &fenv, f.clone(), binding.clone(), store_id);
                let make: MakeHost = Arc::new(move |store, fenv, binding| {
                    let fenv = fenv.downcast_ref::<FunctionEnv<StoreData<T>>>()?;
                    Some(typed_host(store, fenv, f.clone(), binding, store_id))
                });
                WrFunc {
                    func,
                    owner: None,
                    host: Some(HostBinding { instance: binding, make }),
                    thunk: None,
                }
            }
        }
    };
}

host_sig!(0;);
anywasm_core::for_each_tuple!(host_sig);

/// A typed host function with `v128` parameters or results, made as a
/// dynamic one: wasmer 7.3's typed host functions pass `v128` values wrong
/// (the function reads garbage and its results arrive as garbage), while
/// its typed calls and its dynamic host functions carry them right.
fn v128_host<T: Send + 'static, P: ValList<Wasmer>, R: ValList<Wasmer>, F>(
    ctx: CtxMut<'_, T>,
    ty: FuncType,
    f: F,
) -> WrFunc
where
    F: Fn(Caller<'_, Wasmer, T>, P) -> Result<R> + Send + Sync + 'static,
{
    let func: DynHostFn<Wasmer, T> = Arc::new(move |caller, args, results| {
        let mismatch = || Error::TypeMismatch {
            context: "host function".into(),
            expected: "its own signature".into(),
            found: "other values".into(),
        };
        let args = P::from_vals(args).ok_or_else(mismatch)?;
        let mut out = Vec::with_capacity(R::LEN);
        f(caller, args)?.push_vals(&mut out);
        if out.len() != results.len() {
            return Err(mismatch());
        }
        results.clone_from_slice(&out);
        Ok(())
    });
    <Wasmer as BackendFunc>::func_new(ctx, ty, func)
}

/// The calling instance of a host function: the one it was imported into,
/// or, for one the host put in a table or called itself, the instance
/// whose export the host is running.
pub(crate) fn caller_instance<T: Send + 'static>(caller: &WrCaller<'_, T>) -> Option<WrInstance> {
    match caller.binding.get() {
        Some(i) => Some(i.clone()),
        None => running_instance(caller.env.data()),
    }
}
