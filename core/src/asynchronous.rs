//! Async calls and async host functions (cargo feature `async`).
//!
//! An async host function is three steps, so that it works the same on
//! every backend, including those that suspend a call by returning to the
//! host (wasmi's resumable calls) rather than on a fiber (wasmtime):
//!
//! 1. a synchronous prologue with the [`Caller`]: read the arguments, the
//!    calling instance's memory, the host data;
//! 2. a `'static` [`Future`] that does the waiting (I/O, timers) and owns
//!    what it needs;
//! 3. an [`AsyncReturn`]: the results, or a synchronous epilogue with the
//!    store that writes them (into the memory found in the prologue, for
//!    example) and produces them.
//!
//! A store that has an async host function is an *async store*: from then on
//! it is called with [`Func::call_async`], [`TypedFunc::call_async`] and
//! [`Instance::new_async`]; a synchronous call or instantiation in it is an
//! [`Error::InvalidArgument`] naming the async function to use, never a
//! panic. Backends without async support say so with
//! [`Capabilities::async_calls`](crate::Capabilities::async_calls) and refuse
//! with [`Error::Unsupported`].
//!
//! While an async call runs, a synchronous call into the same store (from
//! a synchronous host function) is refused the same way: wasmtime cannot
//! block on a fiber, so no backend does.
//!
//! Dropping a call's future before it completes cancels the call: the
//! store stays usable. The store's deadline and interrupts end an async
//! host function's wait too, with the same trap as in wasm code. [`sleep`]
//! is a timer that works on any executor.
//!
//! A backend provides this with three methods of the contract
//! ([`BackendFunc::func_new_async`](crate::BackendFunc::func_new_async),
//! [`BackendFunc::func_call_async`](crate::BackendFunc::func_call_async),
//! [`BackendInstance::instantiate_async`](crate::BackendInstance::instantiate_async)),
//! whose defaults refuse; the layer checks
//! [`Capabilities::async_calls`](crate::Capabilities::async_calls) first.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::{Error, Result, catch_host_panic, resume_host_panic};
use crate::func::{Caller, Func, TypedFunc, check_vals};
use crate::instance::Instance;
use crate::linker::Linker;
use crate::module::Module;
use crate::store::{AsContextMut, Store, StoreContextMut};
use crate::types::{FuncType, ValType};
use crate::values::{Val, ValList, WasmTyList};
use crate::{Extern, SigOf, TypedSig};

/// A boxed future that may move between threads, as backends return them.
pub type BoxFuture<'a, R> = Pin<Box<dyn Future<Output = R> + Send + 'a>>;

/// What an async host function's future completes with (see the
/// [module documentation](self)).
pub struct AsyncReturn<B: Backend, T: Send + 'static> {
    finish: Epilogue<B, T>,
}

/// The synchronous step after an async host function's future.
type Epilogue<B, T> =
    Box<dyn FnOnce(StoreContextMut<'_, B, T>, &mut [Val<B>]) -> Result<()> + Send>;

impl<B: Backend, T: Send + 'static> AsyncReturn<B, T> {
    /// The results, in order; their number and types are checked against
    /// the function's type.
    pub fn values(values: impl Into<Vec<Val<B>>>) -> Self {
        let values = values.into();
        Self::with_store(move |_, results| {
            if values.len() != results.len() {
                return Err(Error::TypeMismatch {
                    context: "the results of an async host function".into(),
                    expected: format!("{} value(s)", results.len()),
                    found: format!("{} value(s)", values.len()),
                });
            }
            results.clone_from_slice(&values);
            Ok(())
        })
    }

    /// No results (for a function without any).
    pub fn none() -> Self {
        Self::values(Vec::new())
    }

    /// An epilogue that runs with the store once the future is done and
    /// writes the results into the given slots (which hold zeros of the
    /// result types).
    pub fn with_store(
        finish: impl FnOnce(StoreContextMut<'_, B, T>, &mut [Val<B>]) -> Result<()> + Send + 'static,
    ) -> Self {
        Self {
            finish: Box::new(finish),
        }
    }

    /// Runs the epilogue (for backends).
    pub fn finish(self, ctx: StoreContextMut<'_, B, T>, results: &mut [Val<B>]) -> Result<()> {
        (self.finish)(ctx, results)
    }
}

/// The future an async host function returns after its prologue.
pub type HostFuture<B, T> = BoxFuture<'static, Result<AsyncReturn<B, T>>>;

/// An async host function as the layer hands it to a backend: the prologue
/// (with the caller and the arguments) returns the future. The layer has
/// wrapped it so that panics become errors (resumed where the outermost call
/// returns) and the results are checked.
pub type DynAsyncHostFn<B, T> =
    Arc<dyn Fn(Caller<'_, B, T>, &[Val<B>]) -> Result<HostFuture<B, T>> + Send + Sync + 'static>;

/// A future whose panics in `poll` become [`Error::Host`] with a
/// [`HostPanic`](crate::HostPanic), as for synchronous host functions.
struct CatchPanics<B: Backend, T: Send + 'static>(HostFuture<B, T>);

impl<B: Backend, T: Send + 'static> Future for CatchPanics<B, T> {
    type Output = Result<AsyncReturn<B, T>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        let mut out = Poll::Pending;
        let r = catch_host_panic(|| {
            out = inner.as_mut().poll(cx);
            Ok(())
        });
        match r {
            Ok(()) => out,
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// A future that completes after `duration` (feature `async`), on any
/// executor: the layer's timer thread (the one that serves deadlines)
/// wakes it. For host functions' waits that must not depend on a
/// particular runtime, such as WASI's `poll_oneoff` in async calls.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        until: Instant::now().checked_add(duration),
    }
}

/// See [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    /// `None`: longer than an instant can say (never).
    until: Option<Instant>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(until) = self.until else {
            return Poll::Pending;
        };
        if Instant::now() >= until {
            return Poll::Ready(());
        }
        if crate::interrupt::wake_at(until, cx.waker().clone()).is_err() {
            // No timer thread could be started: look again soon rather
            // than never.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// An async host function's future, ended early by the store's deadline or
/// an interrupt with the same trap as wasm code (as [`Caller::sleep`] ends a
/// synchronous host function's wait).
struct UntilStopped<B: Backend, T: Send + 'static> {
    future: CatchPanics<B, T>,
    interrupt: Arc<crate::interrupt::InterruptState>,
}

impl<B: Backend, T: Send + 'static> Future for UntilStopped<B, T> {
    type Output = Result<AsyncReturn<B, T>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(r) = Pin::new(&mut self.future).poll(cx) {
            return Poll::Ready(r);
        }
        if let Some(code) = self.interrupt.check() {
            return Poll::Ready(Err(Error::trap(B::NAME, code, "")));
        }
        self.interrupt.wake_on_stop(cx.waker());
        // An interrupt between the check and the registration.
        match self.interrupt.check() {
            Some(code) => Poll::Ready(Err(Error::trap(B::NAME, code, ""))),
            None => Poll::Pending,
        }
    }
}

/// An async host function with Rust types as one with run-time types: the
/// arguments (checked by the engine against the type made from `P`) become
/// `P`, and `R` becomes the results.
fn typed_async<B, T, P, R, F, Fut>(func: F) -> DynAsyncHostFn<B, T>
where
    B: Backend,
    T: Send + 'static,
    P: ValList<B>,
    R: ValList<B>,
    F: Fn(Caller<'_, B, T>, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    Arc::new(move |caller, args| {
        let params = P::from_vals(args).ok_or_else(|| Error::Backend {
            backend: B::NAME,
            message: "an async host function's arguments do not match its type".into(),
        })?;
        let future = func(caller, params);
        Ok(Box::pin(async move {
            let results = future.await?;
            let mut values = Vec::with_capacity(R::LEN);
            results.push_vals(&mut values);
            Ok(AsyncReturn::values(values))
        }) as HostFuture<B, T>)
    })
}

fn not_async_error(backend: &'static str) -> Error {
    Error::unsupported(
        backend,
        "async calls and async host functions (see Capabilities::async_calls)",
    )
}

impl<B: Backend> Func<B> {
    /// Creates an async host function (see the [module
    /// documentation](crate::asynchronous)): `func` is the synchronous
    /// prologue and returns the future. The store becomes an async store.
    ///
    /// `Unsupported` on backends without
    /// [`Capabilities::async_calls`](crate::Capabilities::async_calls).
    pub fn new_async<T: Send + 'static>(
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        ty: FuncType,
        func: impl Fn(Caller<'_, B, T>, &[Val<B>]) -> Result<HostFuture<B, T>> + Send + Sync + 'static,
    ) -> Result<Self> {
        if !B::capabilities().async_calls {
            return Err(not_async_error(B::NAME));
        }
        let what = "an async host function's type";
        crate::tag::exnrefs_supported::<B>(ty.params().iter().chain(ty.results()).copied(), what)?;
        let ctx = ctx.as_context_mut();
        let store = ctx.shared().id();
        let interrupt = ctx
            .shared()
            .interruptible()
            .then(|| ctx.shared().interrupt().clone());
        let results: Arc<[ValType]> = ty.results().into();
        let wrapped: DynAsyncHostFn<B, T> = Arc::new(move |c, p| {
            let future = catch_host_panic(|| func(c, p))?;
            let results = results.clone();
            let interrupt = interrupt.clone();
            Ok(Box::pin(async move {
                let future = CatchPanics(future);
                let ret = match interrupt {
                    Some(interrupt) => UntilStopped { future, interrupt }.await?,
                    None => future.await?,
                };
                Ok(AsyncReturn::with_store(move |ctx, slots| {
                    catch_host_panic(|| ret.finish(ctx, slots))?;
                    check_vals(
                        "the results of an async host function",
                        &results,
                        slots,
                        store,
                    )
                }))
            }) as HostFuture<B, T>)
        });
        let shared = ctx.shared().clone();
        let raw = B::func_new_async(ctx.raw, ty.clone(), wrapped)?;
        shared.require_async();
        Ok(Self::from_raw_typed(raw, store, ty))
    }

    /// Creates an async host function with a type given by Rust types, as
    /// [`Func::wrap`] does for synchronous ones: `func` gets the [`Caller`]
    /// and the arguments (a value, a tuple, or `()`), and returns a
    /// `'static` future of the results. A function that needs the store
    /// after the wait (to write the caller's memory) uses
    /// [`Func::new_async`] with [`AsyncReturn::with_store`].
    pub fn wrap_async<T, P, R, F, Fut>(
        ctx: impl AsContextMut<Backend = B, Data = T>,
        func: F,
    ) -> Result<Self>
    where
        T: Send + 'static,
        P: ValList<B>,
        R: ValList<B>,
        F: Fn(Caller<'_, B, T>, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
    {
        let ty = FuncType::new(P::types(), R::types());
        let func = typed_async(func);
        Self::new_async(ctx, ty, move |c, p| func(c, p))
    }

    /// Calls the function in an async store (or any store, on a backend
    /// with async calls). The call runs in the future's `poll`; it suspends
    /// where an async host function waits. Checks as [`Func::call`].
    pub async fn call_async<T: Send + 'static>(
        &self,
        store: &mut Store<B, T>,
        params: &[Val<B>],
        results: &mut [Val<B>],
    ) -> Result<()> {
        if !B::capabilities().async_calls {
            return Err(not_async_error(B::NAME));
        }
        let _running = {
            let ctx = store.as_context_mut();
            self.check_call(&ctx, params, results)?;
            ctx.shared().interrupt_check(B::NAME)?;
            ctx.shared().count_call();
            ctx.shared().async_call_running()
        };
        let r = B::func_call_async(store.raw_mut_internal(), self.raw(), params, results).await;
        crate::func::after_call(&mut store.as_context_mut());
        resume_host_panic(r)
    }
}

impl<B: Backend, P: WasmTyList + ValList<B>, R: WasmTyList + ValList<B>> TypedFunc<B, P, R>
where
    SigOf<P, R>: TypedSig<B, Params = P::Tuple, Results = R::Tuple>,
{
    /// Calls the function asynchronously (see [`Func::call_async`]). The
    /// values go through the dynamic call.
    pub async fn call_async<T: Send + 'static>(
        &self,
        store: &mut Store<B, T>,
        params: P,
    ) -> Result<R> {
        let mut args = Vec::with_capacity(P::LEN);
        params.push_vals(&mut args);
        let mut out: Vec<Val<B>> = R::types().into_iter().map(Val::default_for).collect();
        self.func().call_async(store, &args, &mut out).await?;
        R::from_vals(&out).ok_or_else(|| Error::Backend {
            backend: B::NAME,
            message: "a typed async call's results do not match its type".into(),
        })
    }
}

impl<B: Backend> Instance<B> {
    /// Instantiates `module` in an async store and runs its start function
    /// with [`Func::call_async`]. Checks as [`Instance::new`].
    pub async fn new_async<T: Send + 'static>(
        store: &mut Store<B, T>,
        module: &Module<B>,
        imports: &[Extern<B>],
    ) -> Result<Self> {
        if !B::capabilities().async_calls {
            return Err(not_async_error(B::NAME));
        }
        let running = {
            let mut ctx = store.as_context_mut();
            Self::check_imports(&mut ctx, module, imports)?;
            ctx.shared().interrupt_check(B::NAME)?;
            let _ = ctx.shared().take_limit_hit();
            ctx.shared().async_call_running()
        };
        let raw = B::instantiate_async(store.raw_mut_internal(), module.raw(), imports).await;
        drop(running);
        let raw = Self::instantiated(&mut store.as_context_mut(), resume_host_panic(raw))?;
        let id = store.as_context_mut().shared().id();
        let start = Self::start_func(&mut store.as_context_mut(), module, &raw)?;
        if let Some(start) = start {
            start.call_async(store, &[], &mut []).await?;
        }
        store.as_context_mut().shared().instance_created();
        Ok(Self::from_raw(raw, module.clone(), id))
    }
}

impl<B: Backend, T: Send + 'static> Linker<B, T> {
    /// Defines an async host function (see [`Func::new_async`]).
    pub fn func_new_async(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        func: impl Fn(Caller<'_, B, T>, &[Val<B>]) -> Result<HostFuture<B, T>> + Send + Sync + 'static,
    ) -> Result<&mut Self> {
        if !B::capabilities().async_calls {
            return Err(not_async_error(B::NAME));
        }
        let func = Arc::new(func);
        let ty2 = ty.clone();
        self.define_host(
            module,
            name,
            ty,
            Arc::new(move |ctx| {
                let func = func.clone();
                Func::new_async(ctx, ty2.clone(), move |c, p| func(c, p))
            }),
        )
    }

    /// Defines an async host function with a type given by Rust types (see
    /// [`Func::wrap_async`]).
    pub fn func_wrap_async<P, R, F, Fut>(
        &mut self,
        module: &str,
        name: &str,
        func: F,
    ) -> Result<&mut Self>
    where
        P: ValList<B>,
        R: ValList<B>,
        F: Fn(Caller<'_, B, T>, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
    {
        let ty = FuncType::new(P::types(), R::types());
        let func = typed_async(func);
        self.func_new_async(module, name, ty, move |c, p| func(c, p))
    }

    /// Resolves the module's imports against this linker and instantiates it
    /// with [`Instance::new_async`].
    pub async fn instantiate_async(
        &self,
        store: &mut Store<B, T>,
        module: &Module<B>,
    ) -> Result<Instance<B>> {
        let imports = self.resolve(&mut store.as_context_mut(), module)?;
        Instance::new_async(store, module, &imports).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a future on this thread, parking between polls: an executor
    /// that is not tokio.
    fn block_on<F: Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    #[test]
    fn sleep_wakes_on_any_executor_in_order() {
        let started = Instant::now();
        block_on(sleep(Duration::from_millis(30)));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // A longer sleep registered first does not hold up a shorter one.
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads: Vec<_> = [80u64, 10]
            .into_iter()
            .map(|ms| {
                let order = order.clone();
                std::thread::spawn(move || {
                    block_on(sleep(Duration::from_millis(ms)));
                    order.lock().unwrap().push(ms);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [10, 80]);
        // A sleep too long for an instant never ends, and does not panic.
        let mut forever = std::pin::pin!(sleep(Duration::MAX));
        let waker = std::task::Waker::noop();
        assert!(
            forever
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
    }
}
