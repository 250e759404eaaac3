//! Functions: dynamic and typed calls, host functions and their callers.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long [`Caller::sleep`] sleeps between looks at the deadline and
/// interrupt flag: the most an interrupt waits.
const SLEEP_SLICE: Duration = Duration::from_millis(5);

use crate::backend::BackendTypes;
use crate::backend::{Backend, HostSig, TypedSig};
use crate::error::{Error, Result};
use crate::instance::Extern;
use crate::memory::Memory;
use crate::store::{AsContext, AsContextMut, StoreContext, StoreContextMut, StoreId, check_store};
use crate::types::{FuncType, ValType};
use crate::values::{SigOf, Val, WasmTy, WasmTyList};

/// Export names starting with this prefix are reserved for what the layer
/// adds to modules for its own use (a deferred start function, fuel
/// counters); they are never visible through [`Instance`](crate::Instance)
/// or [`Caller`].
pub const RESERVED_EXPORT_PREFIX: &str = "__anywasm_";

/// A WebAssembly or host function, valid in the store that created it.
pub struct Func<B: BackendTypes> {
    raw: B::Func,
    store: StoreId,
    /// The function's type, asked of the engine once per handle (a function's
    /// type never changes): dynamic calls check their values against it
    /// without asking the engine, which allocates, on every call.
    ty: OnceLock<Arc<FuncType>>,
}

impl<B: Backend> Clone for Func<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            store: self.store,
            ty: self.ty.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Func<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Func").field(&self.raw).finish()
    }
}

/// Checks that `got` are values of the types `expected`, owned by `store`.
#[inline]
pub(crate) fn check_vals<B: Backend>(
    context: &str,
    expected: &[ValType],
    got: &[Val<B>],
    store: StoreId,
) -> Result<()> {
    if expected.len() != got.len() {
        return Err(Error::TypeMismatch {
            context: context.to_string(),
            expected: format!("{} value(s) {}", expected.len(), list(expected)),
            found: format!("{} value(s)", got.len()),
        });
    }
    for (i, (want, val)) in expected.iter().zip(got).enumerate() {
        if val.ty() != *want {
            return Err(Error::TypeMismatch {
                context: format!("{context}, value {}", i + 1),
                expected: want.to_string(),
                found: val.ty().to_string(),
            });
        }
        val.check_store(store, || format!("{context}, value {}", i + 1))?;
    }
    Ok(())
}

pub(crate) fn list(types: &[ValType]) -> String {
    let items: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    format!("[{}]", items.join(" "))
}

impl<B: Backend> Func<B> {
    /// Wraps an engine function owned by the store `store` (for backends).
    pub fn from_raw(raw: B::Func, store: StoreId) -> Self {
        Self {
            raw,
            store,
            ty: OnceLock::new(),
        }
    }

    /// A host function the layer just made, with its declared type.
    #[cfg(feature = "async")]
    pub(crate) fn from_raw_typed(raw: B::Func, store: StoreId, ty: FuncType) -> Self {
        Self {
            raw,
            store,
            ty: OnceLock::from(Arc::new(ty)),
        }
    }

    /// The engine's function.
    pub fn raw(&self) -> &B::Func {
        &self.raw
    }

    /// The store that owns this function.
    pub fn store_id(&self) -> StoreId {
        self.store
    }

    #[inline]
    pub(crate) fn check(&self, ctx: &impl AsContext<Backend = B>) -> Result<()> {
        check_store(self.store, ctx.as_context().shared().id(), || {
            "the function".into()
        })
    }

    /// Creates a host function with a type chosen at run time.
    ///
    /// `func` receives the arguments and must write one value of the declared
    /// type into each slot of the results; a wrong result type (or a
    /// reference owned by another store) is reported as an error to the
    /// caller of the wasm function, never trusted.
    pub fn new<T: Send + 'static>(
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        ty: FuncType,
        func: impl Fn(Caller<'_, B, T>, &[Val<B>], &mut [Val<B>]) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        let ctx = ctx.as_context_mut();
        let store = ctx.shared().id();
        let results: Arc<[ValType]> = ty.results().into();
        // A backend without exceptions has no exnref: such a function keeps
        // its declared type here and refuses every call.
        let what = "a host function's type";
        let all = ty.params().iter().chain(ty.results()).copied();
        let unsupported = crate::tag::exnrefs_supported::<B>(all, what).is_err();
        let declared = OnceLock::from(Arc::new(ty.clone()));
        let raw = B::func_new(
            ctx.raw,
            ty,
            Arc::new(move |c: Caller<'_, B, T>, p: &[Val<B>], r: &mut [Val<B>]| {
                if unsupported {
                    return crate::tag::exnrefs_supported::<B>([ValType::ExnRef], what);
                }
                crate::error::catch_host_panic(|| {
                    func(c, p, r)?;
                    check_vals("the results of a host function", &results, r, store)
                })
            }),
        );
        Self {
            raw,
            store,
            ty: declared,
        }
    }

    /// Creates a host function from a Rust closure; its parameter and result
    /// types give the wasm signature.
    ///
    /// The closure may take a [`Caller`] first, then up to 16 arguments of
    /// [`WasmTy`] types (numbers, [`V128`](crate::V128), `Option<Func<B>>`,
    /// `Option<ExternRef<B>>`), and return `()`, one `WasmTy`, a tuple of
    /// them, or a `Result` of those (an `Err` reaches the wasm caller's
    /// caller as [`Error::Host`] or as the error returned). A reference of
    /// another store among the results is an [`Error::StoreMismatch`] for
    /// the caller, never handed to the engine.
    pub fn wrap<T: Send + 'static, Params, Results>(
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        func: impl IntoFunc<B, T, Params, Results>,
    ) -> Self {
        func.into_func(ctx.as_context_mut())
    }

    /// The function's type.
    pub fn ty(&self, ctx: impl AsContext<Backend = B>) -> Result<FuncType> {
        self.check(&ctx)?;
        let ctx = ctx.as_context();
        self.cached_ty(|| B::func_ty(ctx.raw, &self.raw)).cloned()
    }

    /// The function's type from the handle's cache, asking `engine` the
    /// first time (and again after an error, which is not cached).
    #[inline]
    fn cached_ty(&self, engine: impl FnOnce() -> Result<FuncType>) -> Result<&FuncType> {
        if let Some(ty) = self.ty.get() {
            return Ok(ty);
        }
        let ty = engine()?;
        Ok(self.ty.get_or_init(|| Arc::new(ty)))
    }

    /// Calls the function with dynamically typed arguments, writing results
    /// into `results` (which must have one slot per result).
    #[inline]
    pub fn call(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        params: &[Val<B>],
        results: &mut [Val<B>],
    ) -> Result<()> {
        let mut ctx = ctx.as_context_mut();
        let ty = self.check_call(&ctx, params, results)?;
        ctx.shared().entry_check(B::NAME)?;
        ctx.shared().count_call();
        let r = B::func_call(
            B::ctx_mut_reborrow(&mut ctx.raw),
            &self.raw,
            ty,
            params,
            results,
        );
        after_call(&mut ctx);
        crate::error::resume_host_panic(r)
    }

    /// The checks before a dynamic call: the store, the arguments' types and
    /// stores, the number of result slots. Returns the type checked against.
    pub(crate) fn check_call<T: Send + 'static>(
        &self,
        ctx: &StoreContextMut<'_, B, T>,
        params: &[Val<B>],
        results: &[Val<B>],
    ) -> Result<&FuncType> {
        check_store(self.store, ctx.shared().id(), || "the function".into())?;
        let ty = self.cached_ty(|| B::func_ty(B::ctx_mut_shared(&ctx.raw), &self.raw))?;
        check_vals("arguments", ty.params(), params, self.store)?;
        if results.len() != ty.results().len() {
            return Err(Error::TypeMismatch {
                context: "results buffer".into(),
                expected: format!("{} slot(s)", ty.results().len()),
                found: format!("{} slot(s)", results.len()),
            });
        }
        Ok(ty)
    }

    /// Calls the function and returns its results in a new vector.
    pub fn invoke(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        params: &[Val<B>],
    ) -> Result<Vec<Val<B>>> {
        let mut ctx = ctx.as_context_mut();
        let ty = self.ty(&ctx)?;
        let mut results: Vec<Val<B>> = ty.results().iter().map(|t| Val::default_for(*t)).collect();
        self.call(&mut ctx, params, &mut results)?;
        Ok(results)
    }

    /// A typed view of this function, checked once here so that calls need no
    /// checks: `Params` and `Results` are `()`, a [`WasmTy`] or a tuple of them.
    pub fn typed<P: WasmTyList, R: WasmTyList>(
        &self,
        ctx: impl AsContext<Backend = B>,
    ) -> Result<TypedFunc<B, P, R>>
    where
        SigOf<P, R>: TypedSig<B, Params = P::Tuple, Results = R::Tuple>,
    {
        let ctx = ctx.as_context();
        self.check(&ctx)?;
        let ty = self.cached_ty(|| B::func_ty(B::ctx_reborrow(&ctx.raw), &self.raw))?;
        let (want_p, want_r) = (P::types(), R::types());
        if ty.params() != want_p || ty.results() != want_r {
            return Err(Error::TypeMismatch {
                context: "typed function".into(),
                expected: FuncType::new(want_p, want_r).to_string(),
                found: ty.to_string(),
            });
        }
        let native = <SigOf<P, R> as TypedSig<B>>::typed(ctx.raw, &self.raw)?;
        Ok(TypedFunc {
            native,
            func: self.clone(),
            _marker: PhantomData,
        })
    }
}

/// Runs a module's start function (exported under a reserved name by the
/// layer's rewrite) as a call from the host that is not counted in the
/// store's statistics: to the user it is part of instantiation.
pub(crate) fn run_start<B: Backend, T: Send + 'static>(
    ctx: &mut StoreContextMut<'_, B, T>,
    func: &Func<B>,
) -> Result<()> {
    ctx.shared().entry_check(B::NAME)?;
    let ty = FuncType::new([], []);
    let r = B::func_call(
        B::ctx_mut_reborrow(&mut ctx.raw),
        &func.raw,
        &ty,
        &[],
        &mut [],
    );
    after_call(ctx);
    crate::error::resume_host_panic(r)
}

#[inline]
pub(crate) fn after_call<B: Backend, T: Send + 'static>(ctx: &mut StoreContextMut<'_, B, T>) {
    if ctx.shared().fuel_enabled()
        && let Ok(remaining) = B::fuel_get(B::ctx_mut_reborrow(&mut ctx.raw))
    {
        ctx.shared().update_fuel_consumed(remaining);
    }
}

/// A function with a signature fixed in Rust types; calls go straight to the
/// engine's own typed call.
///
/// ```
/// # fn demo<B: anywasm_core::Backend>() -> anywasm_core::Result<()>
/// # where anywasm_core::SigOf<(i32, i32), i32>: anywasm_core::TypedSig<B, Params = (i32, i32), Results = (i32,)> {
/// use anywasm_core::{Engine, Instance, Module, Store};
/// let engine = Engine::<B>::default_config()?;
/// let module = Module::from_wat(&engine, r#"(module
///     (func (export "add") (param i32 i32) (result i32)
///         local.get 0 local.get 1 i32.add))"#)?;
/// let mut store = Store::new(&engine, ());
/// let instance = Instance::new(&mut store, &module, &[])?;
/// let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
/// assert_eq!(add.call(&mut store, (2, 3))?, 5);
/// # Ok(()) }
/// ```
pub struct TypedFunc<B: Backend, P: WasmTyList, R: WasmTyList>
where
    SigOf<P, R>: TypedSig<B>,
{
    native: <SigOf<P, R> as TypedSig<B>>::Native,
    func: Func<B>,
    _marker: PhantomData<fn(P) -> R>,
}

impl<B: Backend, P: WasmTyList, R: WasmTyList> Clone for TypedFunc<B, P, R>
where
    SigOf<P, R>: TypedSig<B>,
{
    fn clone(&self) -> Self {
        Self {
            native: self.native.clone(),
            func: self.func.clone(),
            _marker: PhantomData,
        }
    }
}

impl<B: Backend, P: WasmTyList, R: WasmTyList> std::fmt::Debug for TypedFunc<B, P, R>
where
    SigOf<P, R>: TypedSig<B>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedFunc")
            .field("func", &self.func)
            .field("params", &P::types())
            .field("results", &R::types())
            .finish()
    }
}

impl<B: Backend, P: WasmTyList, R: WasmTyList> TypedFunc<B, P, R>
where
    SigOf<P, R>: TypedSig<B, Params = P::Tuple, Results = R::Tuple>,
{
    /// Calls the function.
    #[inline]
    pub fn call(&self, mut ctx: impl AsContextMut<Backend = B>, params: P) -> Result<R> {
        let mut ctx = ctx.as_context_mut();
        let shared = ctx.shared();
        let store = shared.id();
        check_store(self.func.store, store, || "the function".into())?;
        params.check_store(store)?;
        shared.entry_check(B::NAME)?;
        shared.count_call();
        let r = <SigOf<P, R> as TypedSig<B>>::call(
            &self.native,
            B::ctx_mut_reborrow(&mut ctx.raw),
            store,
            params.into_tuple(),
        );
        after_call(&mut ctx);
        crate::error::resume_host_panic(r).map(R::from_tuple)
    }

    /// The untyped function.
    pub fn func(&self) -> &Func<B> {
        &self.func
    }

    /// The engine's typed function.
    pub fn native(&self) -> &<SigOf<P, R> as TypedSig<B>>::Native {
        &self.native
    }
}

/// What a host function sees of its caller: the store (host data, fuel) and
/// the exports of the calling instance (its memory, most importantly).
pub struct Caller<'a, B: BackendTypes, T: Send + 'static> {
    raw: B::Caller<'a, T>,
}

impl<'a, B: Backend, T: Send + 'static> Caller<'a, B, T> {
    /// Wraps the engine's caller (for backends).
    pub fn from_raw(raw: B::Caller<'a, T>) -> Self {
        Self { raw }
    }

    /// The engine's caller.
    ///
    /// # Safety
    /// As for [`Store::raw_mut`](crate::Store::raw_mut).
    pub unsafe fn raw_mut(&mut self) -> &mut B::Caller<'a, T> {
        &mut self.raw
    }

    /// The store this host function runs in.
    pub fn store_id(&self) -> StoreId {
        B::ctx_shared(B::caller_ctx(&self.raw)).id()
    }

    /// The store's deadline, if it has one: a host function that waits for
    /// something outside (a socket, a child process) bounds the wait by it,
    /// then returns [`check_interrupt`](Self::check_interrupt)'s error.
    pub fn deadline(&self) -> Option<Instant> {
        B::ctx_shared(B::caller_ctx(&self.raw))
            .interrupt()
            .deadline()
    }

    /// Returns the trap error that ends the call if the store's deadline
    /// has passed or an interrupt was requested (the interrupt is then
    /// consumed). A host function that works for long should call this
    /// now and then and return its error, which ends the call exactly as a
    /// deadline in wasm code would.
    pub fn check_interrupt(&self) -> Result<()> {
        let shared = B::ctx_shared(B::caller_ctx(&self.raw));
        if shared.interruptible()
            && let Some(code) = shared.interrupt().check()
        {
            return Err(Error::trap(B::NAME, code, ""));
        }
        Ok(())
    }

    /// Throws `exception` into the wasm code that called this host
    /// function, where a `try_table` catching its tag gets its values:
    /// the host function returns what this gives, `return
    /// Err(caller.throw(exception))`. Uncaught, it ends the call like any
    /// wasm exception ([`TrapCode::UncaughtException`](crate::TrapCode),
    /// [`Store::take_exception`](crate::Store::take_exception)).
    ///
    /// Gives [`Error::Unsupported`] where the backend has no exceptions
    /// (on wasmer, the host function fails with it when it has a run-time
    /// signature, `Func::new`: wasmer 7.3 would not let wasm catch the
    /// exception), and [`Error::TypeMismatch`] or [`Error::StoreMismatch`] when the
    /// values do not fit the tag or belong to another store; the host
    /// function then fails with that error and nothing is thrown.
    pub fn throw(&mut self, exception: crate::Exception<B>) -> Error {
        if !B::capabilities().features.exceptions {
            return Error::unsupported(B::NAME, "throwing wasm exceptions");
        }
        if let Err(e) = exception.check(&*self) {
            return e;
        }
        let shared = B::ctx_shared(B::caller_ctx(&self.raw)).clone();
        shared.park_throw(exception);
        Error::Thrown
    }

    /// Sleeps for `duration`, or until the store's deadline passes or an
    /// interrupt is requested, whichever comes first; in the latter cases it
    /// returns the trap error of [`check_interrupt`](Self::check_interrupt).
    /// Host functions that wait use this, so a waiting guest can be stopped.
    pub fn sleep(&self, duration: Duration) -> Result<()> {
        let until = Instant::now().checked_add(duration);
        loop {
            self.check_interrupt()?;
            let now = Instant::now();
            let left = match until {
                Some(u) if u <= now => return Ok(()),
                Some(u) => u - now,
                None => Duration::MAX,
            };
            let shared = B::ctx_shared(B::caller_ctx(&self.raw));
            let to_deadline = shared
                .interrupt()
                .deadline()
                .map_or(Duration::MAX, |d| d.saturating_duration_since(now));
            std::thread::sleep(left.min(to_deadline).min(SLEEP_SLICE));
        }
    }

    /// The store's host data.
    pub fn data(&self) -> &T {
        B::ctx_data(B::caller_ctx(&self.raw))
    }

    /// The store's host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        B::caller_data_mut(&mut self.raw)
    }

    /// An export of the calling instance. Names the layer reserves
    /// ([`RESERVED_EXPORT_PREFIX`]) are never found.
    ///
    /// The calling instance is the instance whose import this host function
    /// is. On wasmtime and wasmi a host function reached through a
    /// `funcref` from another instance sees that instance; on wasmer, whose
    /// host functions are not told their caller, it sees the instance that
    /// imported it (each import of a host function is bound to its instance).
    pub fn get_export(&mut self, name: &str) -> Option<Extern<B>> {
        if name.starts_with(RESERVED_EXPORT_PREFIX) {
            return None;
        }
        B::caller_export(&mut self.raw, name)
    }

    /// The calling instance's memory exported as `name` (usually `"memory"`).
    pub fn get_memory(&mut self, name: &str) -> Option<Memory<B>> {
        match self.get_export(name)? {
            Extern::Memory(m) => Some(m),
            _ => None,
        }
    }

    /// A function exported by the calling instance.
    pub fn get_func(&mut self, name: &str) -> Option<Func<B>> {
        match self.get_export(name)? {
            Extern::Func(f) => Some(f),
            _ => None,
        }
    }

    /// The store's remaining fuel.
    pub fn get_fuel(&mut self) -> Result<u64> {
        self.as_context_mut().get_fuel()
    }

    /// Sets the store's remaining fuel.
    pub fn set_fuel(&mut self, fuel: u64) -> Result<()> {
        self.as_context_mut().set_fuel(fuel)
    }
}

impl<B: Backend, T: Send + 'static> AsContext for Caller<'_, B, T> {
    type Backend = B;
    type Data = T;
    #[inline]
    fn as_context(&self) -> StoreContext<'_, B, T> {
        StoreContext::from_raw(B::caller_ctx(&self.raw))
    }
}

impl<B: Backend, T: Send + 'static> AsContextMut for Caller<'_, B, T> {
    #[inline]
    fn as_context_mut(&mut self) -> StoreContextMut<'_, B, T> {
        StoreContextMut::from_raw(B::caller_ctx_mut(&mut self.raw))
    }
}

/// What a typed host function may return: `()`, a [`WasmTy`], a tuple of them,
/// or a `Result` of one of those whose error converts into [`Error`].
pub trait HostReturn: Send + 'static {
    /// The values returned on success.
    type Ok: WasmTyList;
    /// Converts into a result.
    fn into_result(self) -> Result<Self::Ok>;
}

impl<L: WasmTyList> HostReturn for L {
    type Ok = L;
    #[inline]
    fn into_result(self) -> Result<L> {
        Ok(self)
    }
}

impl<L: WasmTyList, E: Into<Error> + Send + 'static> HostReturn for Result<L, E> {
    type Ok = L;
    #[inline]
    fn into_result(self) -> Result<L> {
        self.map_err(Into::into)
    }
}

/// A Rust closure usable as a typed host function (see [`Func::wrap`]).
///
/// `Params` is a marker for the closure's argument list; `Results` is its
/// return type.
pub trait IntoFunc<B: Backend, T: Send + 'static, Params, Results>: Send + Sync + 'static {
    /// The wasm signature.
    fn func_type() -> FuncType;
    /// Creates the function in a store.
    fn into_func(self, ctx: StoreContextMut<'_, B, T>) -> Func<B>;
    /// Creates the function in a store from a shared closure (the linker
    /// creates one function per store from one definition).
    fn into_func_shared(this: Arc<Self>, ctx: StoreContextMut<'_, B, T>) -> Func<B>;
}

/// A typed host function's results in tuple form, after checking that the
/// references among them belong to the function's store.
#[inline]
fn host_results<R: HostReturn>(r: R, store: StoreId) -> Result<<R::Ok as WasmTyList>::Tuple> {
    let r = r.into_result()?;
    r.check_store(store)?;
    Ok(r.into_tuple())
}

macro_rules! into_func {
    ($n:expr; $($t:ident $i:tt),*) => {
        // With a `Caller` first.
        impl<B, T, F, R, $($t),*> IntoFunc<B, T, (Caller<'_, B, T>, $($t,)*), R> for F
        where
            B: Backend,
            T: Send + 'static,
            F: Fn(Caller<'_, B, T>, $($t),*) -> R + Send + Sync + 'static,
            R: HostReturn,
            $($t: WasmTy,)*
            (($($t,)*), <R::Ok as WasmTyList>::Tuple):
                HostSig<B, Params = ($($t,)*), Results = <R::Ok as WasmTyList>::Tuple>,
        {
            fn func_type() -> FuncType {
                FuncType::new(<($($t,)*) as WasmTyList>::types(), R::Ok::types())
            }

            #[allow(unused_variables)]
            fn into_func(self, ctx: StoreContextMut<'_, B, T>) -> Func<B> {
                let store = ctx.shared().id();
                Func::from_raw(<(($($t,)*), <R::Ok as WasmTyList>::Tuple) as HostSig<B>>::wrap(
                    ctx.raw,
                    store,
                    move |caller: Caller<'_, B, T>, args: ($($t,)*)| {
                        crate::error::catch_host_panic(|| host_results(self(caller, $(args.$i),*), store))
                    },
                ), store)
            }

            #[allow(unused_variables)]
            fn into_func_shared(this: Arc<Self>, ctx: StoreContextMut<'_, B, T>) -> Func<B> {
                let store = ctx.shared().id();
                Func::from_raw(<(($($t,)*), <R::Ok as WasmTyList>::Tuple) as HostSig<B>>::wrap(
                    ctx.raw,
                    store,
                    move |caller: Caller<'_, B, T>, args: ($($t,)*)| {
                        crate::error::catch_host_panic(|| host_results((*this)(caller, $(args.$i),*), store))
                    },
                ), store)
            }
        }

        // Without a `Caller`.
        impl<B, T, F, R, $($t),*> IntoFunc<B, T, ($($t,)*), R> for F
        where
            B: Backend,
            T: Send + 'static,
            F: Fn($($t),*) -> R + Send + Sync + 'static,
            R: HostReturn,
            $($t: WasmTy,)*
            (($($t,)*), <R::Ok as WasmTyList>::Tuple):
                HostSig<B, Params = ($($t,)*), Results = <R::Ok as WasmTyList>::Tuple>,
        {
            fn func_type() -> FuncType {
                FuncType::new(<($($t,)*) as WasmTyList>::types(), R::Ok::types())
            }

            #[allow(unused_variables)]
            fn into_func(self, ctx: StoreContextMut<'_, B, T>) -> Func<B> {
                let store = ctx.shared().id();
                Func::from_raw(<(($($t,)*), <R::Ok as WasmTyList>::Tuple) as HostSig<B>>::wrap(
                    ctx.raw,
                    store,
                    move |_caller: Caller<'_, B, T>, args: ($($t,)*)| {
                        crate::error::catch_host_panic(|| host_results(self($(args.$i),*), store))
                    },
                ), store)
            }

            #[allow(unused_variables)]
            fn into_func_shared(this: Arc<Self>, ctx: StoreContextMut<'_, B, T>) -> Func<B> {
                let store = ctx.shared().id();
                Func::from_raw(<(($($t,)*), <R::Ok as WasmTyList>::Tuple) as HostSig<B>>::wrap(
                    ctx.raw,
                    store,
                    move |_caller: Caller<'_, B, T>, args: ($($t,)*)| {
                        crate::error::catch_host_panic(|| host_results((*this)($(args.$i),*), store))
                    },
                ), store)
            }
        }
    };
}

into_func!(0;);
crate::for_each_tuple!(into_func);
