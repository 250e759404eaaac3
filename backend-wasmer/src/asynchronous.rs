//! Async calls and async host functions on wasmer (cargo feature `async`),
//! with a worker thread standing in for a fiber.
//!
//! wasmer 7.3's own async API cannot serve the layer: its call futures keep
//! the store in an `Rc` (they are not `Send`), and a fiber of the layer's
//! own would resume wasmer's code, whose trap handling keeps per-thread
//! state, on whichever thread polls next. So an async call runs on a worker
//! thread, always the same one for the whole call, as an ordinary
//! synchronous call:
//!
//! - The call's future sends the call to a worker and blocks in `poll`
//!   while wasm runs, as a synchronous call would block its caller.
//! - An async host function runs its prologue on the worker, sends its
//!   future to the polling side and waits for the output. `poll` then
//!   polls the host future itself and returns `Pending` until it is ready:
//!   the executor runs other tasks while the host function waits. The
//!   output goes back to the worker, which runs the epilogue with the store
//!   and goes on with the call.
//! - Dropping the future while a host function waits tells that host
//!   function to fail; the call unwinds at once and `drop` waits for the
//!   worker to be done with the store.
//!
//! The worker touches the store only while the polling side is blocked in
//! `poll` or `drop` of the future that borrows the store: between polls it
//! waits inside a host function. A future that is leaked instead of dropped
//! leaves its worker waiting for good, never touching the store again (as a
//! leaked wasmtime fiber is never resumed).
//!
//! What differs from the other backends: synchronous host functions called
//! by an async call run on the worker thread, so they see its thread-locals
//! (no executor context, for one); and a long-running call yields to the
//! executor only at the store's yield points (see `control`), which need an
//! interruptible engine as on every backend.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use anywasm_core::{
    AsyncReturn, BackendInstance, BoxFuture, Caller, DynAsyncHostFn, Error, Extern, FuncType,
    HostFuture, Result, StoreContextMut, StoreId, Val,
};
use wasmer::{FunctionEnv, StoreMut};

use crate::convert::{func_type_to_wr, val_from_wr};
use crate::func::{WrCaller, WrInstance, bound_host, park_host_error, results_to_wr};
use crate::{CtxMut, NAME, StoreData, ViewMut, Wasmer, WrFunc, WrModule, WrStore};

/// What a worker tells the polling side.
enum Event {
    /// An async host function's future (a `HostFuture<Wasmer, T>`) to await.
    Wait(Box<dyn Any + Send>),
    /// The call should yield to the executor: answer when polled again.
    Yield,
    /// The call ended (a `std::thread::Result<Result<R>>`).
    Done(Box<dyn Any + Send>),
}

/// What the polling side tells an async host function that waits.
enum Reply {
    /// The host future's output (a `Result<AsyncReturn<Wasmer, T>>`).
    Ready(Box<dyn Any + Send>),
    /// Go on after a yield.
    Resume,
    /// The call's future was dropped: fail, so that the call ends.
    Cancel,
}

/// A worker's side of the call it runs.
struct Link {
    events: Sender<Event>,
    replies: Receiver<Reply>,
}

thread_local! {
    /// The call this worker thread runs, for its async host functions.
    static LINK: RefCell<Option<Link>> = const { RefCell::new(None) };
}

/// A call for a worker. Its argument marks the worker idle; the job calls
/// it just before it reports the end of the call, so that the next call
/// finds the worker.
type Job = Box<dyn FnOnce(&mut dyn FnMut()) + Send>;

/// Workers waiting for a call; more than this many end after their call.
const IDLE_WORKERS: usize = 8;

/// The stack of a worker thread, where synchronous host functions run
/// (wasm runs on wasmer's own stack): as large as a main thread's.
const WORKER_STACK: usize = 8 << 20;

static IDLE: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

/// How long a side of a hand-off spins for the other's answer before it
/// sleeps: waking a sleeping thread costs tens of microseconds on a virtual
/// machine, and most answers (a short call, a host future that is ready at
/// once, the next call to an idle worker) come sooner.
const SPIN: std::time::Duration = std::time::Duration::from_micros(20);

/// `rx.recv()`, spinning for [`SPIN`] first.
fn recv<T>(rx: &Receiver<T>) -> std::result::Result<T, std::sync::mpsc::RecvError> {
    let started = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return Err(std::sync::mpsc::RecvError);
            }
            Err(std::sync::mpsc::TryRecvError::Empty) if started.elapsed() < SPIN => {
                std::hint::spin_loop();
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => return rx.recv(),
        }
    }
}

/// Runs `job` on an idle worker, or on a new one.
fn run_on_worker(mut job: Job) -> Result<()> {
    loop {
        let idle = IDLE.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some(worker) = idle else { break };
        match worker.send(job) {
            Ok(()) => return Ok(()),
            // That worker has ended.
            Err(back) => job = back.0,
        }
    }
    std::thread::Builder::new()
        .name("anywasm-wasmer-async".into())
        .stack_size(WORKER_STACK)
        .spawn(move || worker(job))
        .map(drop)
        .map_err(|e| Error::Backend {
            backend: NAME,
            message: format!("cannot start a thread for an async call: {e}"),
        })
}

fn worker(first: Job) {
    let (me, jobs) = channel::<Job>();
    let mut job = first;
    loop {
        let mut idle = false;
        job(&mut || {
            let mut workers = IDLE.lock().unwrap_or_else(|p| p.into_inner());
            if workers.len() < IDLE_WORKERS {
                workers.push(me.clone());
                idle = true;
            }
        });
        if !idle {
            return;
        }
        match recv(&jobs) {
            Ok(next) => job = next,
            Err(_) => return,
        }
    }
}

/// The store's address, for the worker (see the module documentation for
/// when it is used).
struct StorePtr<T: Send + 'static>(*mut WrStore<T>);

// SAFETY: `WrStore<T>` is `Send`; the worker dereferences the pointer only
// while the future that holds the store's exclusive borrow is blocked in
// `poll` or `drop` waiting for it, so the store is never used from two
// threads at once.
unsafe impl<T: Send + 'static> Send for StorePtr<T> {}

/// What an async call runs on its worker, with the store.
type WithStore<T, R> = Box<dyn FnOnce(&mut WrStore<T>) -> Result<R> + Send>;

/// Runs `f` with the store on a worker thread (see the module
/// documentation).
struct OnWorker<'a, T: Send + 'static, R> {
    store: StorePtr<T>,
    _borrow: std::marker::PhantomData<&'a mut WrStore<T>>,
    start: Option<WithStore<T, R>>,
    /// While the call runs: replies to it, and its events.
    link: Option<(Sender<Reply>, Receiver<Event>)>,
    /// The future of the async host function that waits.
    waiting: Option<HostFuture<Wasmer, T>>,
    /// The call has yielded; it goes on at the next poll.
    yielded: bool,
}

impl<'a, T: Send + 'static, R: Send + 'static> OnWorker<'a, T, R> {
    fn new(
        store: &'a mut WrStore<T>,
        f: impl FnOnce(&mut WrStore<T>) -> Result<R> + Send + 'static,
    ) -> Self {
        Self {
            store: StorePtr(store),
            _borrow: std::marker::PhantomData,
            start: Some(Box::new(f)),
            link: None,
            waiting: None,
            yielded: false,
        }
    }

    fn begin(&mut self, f: WithStore<T, R>) -> Result<()> {
        let (events, from_worker) = channel();
        let (to_worker, replies) = channel();
        let store = StorePtr(self.store.0);
        let job: Job = Box::new(move |idle| {
            LINK.with(|l| {
                *l.borrow_mut() = Some(Link {
                    events: events.clone(),
                    replies,
                })
            });
            let store = store;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: see `StorePtr`: the polling side is blocked in
                // `poll` (it is waiting for this call's events) while the
                // borrow of the store it holds lasts.
                f(unsafe { &mut *store.0 })
            }));
            LINK.with(|l| l.borrow_mut().take());
            idle();
            let _ = events.send(Event::Done(Box::new(r)));
        });
        run_on_worker(job)?;
        self.link = Some((to_worker, from_worker));
        Ok(())
    }
}

fn worker_gone() -> Error {
    Error::Backend {
        backend: NAME,
        message: "the worker thread of an async call ended before the call".into(),
    }
}

impl<T: Send + 'static, R: Send + 'static> Future for OnWorker<'_, T, R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        let this = self.get_mut();
        if let Some(f) = this.start.take()
            && let Err(e) = this.begin(f)
        {
            return Poll::Ready(Err(e));
        }
        loop {
            let Some((replies, events)) = &this.link else {
                return Poll::Ready(Err(Error::InvalidArgument(
                    "an async call's future was polled after it completed".into(),
                )));
            };
            if std::mem::take(&mut this.yielded) && replies.send(Reply::Resume).is_err() {
                this.link = None;
                return Poll::Ready(Err(worker_gone()));
            }
            if let Some(waiting) = &mut this.waiting {
                let Poll::Ready(out) = waiting.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                this.waiting = None;
                if replies.send(Reply::Ready(Box::new(out))).is_err() {
                    this.link = None;
                    return Poll::Ready(Err(worker_gone()));
                }
            }
            // Wasm runs on the worker meanwhile.
            match recv(events) {
                Ok(Event::Wait(future)) => match future.downcast::<HostFuture<Wasmer, T>>() {
                    Ok(future) => this.waiting = Some(*future),
                    Err(_) => {
                        let _ = replies.send(Reply::Cancel);
                    }
                },
                Ok(Event::Yield) => {
                    this.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Ok(Event::Done(r)) => {
                    this.link = None;
                    let r = match r.downcast::<std::thread::Result<Result<R>>>() {
                        Ok(r) => *r,
                        Err(_) => return Poll::Ready(Err(worker_gone())),
                    };
                    return match r {
                        Ok(r) => Poll::Ready(r),
                        Err(panic) => std::panic::resume_unwind(panic),
                    };
                }
                Err(_) => {
                    this.link = None;
                    return Poll::Ready(Err(worker_gone()));
                }
            }
        }
    }
}

impl<T: Send + 'static, R> Drop for OnWorker<'_, T, R> {
    fn drop(&mut self) {
        let Some((replies, events)) = self.link.take() else {
            return;
        };
        // Cancelled while a host function waits or the call has yielded:
        // the host function (or the stop function) fails and the call
        // unwinds (no wasm code runs on an error from a host function).
        self.waiting = None;
        let _ = replies.send(Reply::Cancel);
        // The store is borrowed until the worker has let go of it.
        while let Ok(event) = events.recv() {
            match event {
                Event::Wait(_) | Event::Yield => {
                    let _ = replies.send(Reply::Cancel);
                }
                Event::Done(_) => break,
            }
        }
    }
}

fn cancelled() -> Error {
    Error::Backend {
        backend: NAME,
        message: "the async call was cancelled".into(),
    }
}

/// Yields the async call this worker runs to its executor (from the store's
/// stop function, see `store::at_stop`): returns when the call is polled
/// again, or fails when it has been dropped. Outside an async call it
/// returns at once.
pub(crate) fn yield_now() -> Result<()> {
    LINK.with(|l| {
        let link = l.borrow();
        let Some(link) = link.as_ref() else {
            return Ok(());
        };
        if link.events.send(Event::Yield).is_err() {
            return Err(cancelled());
        }
        match recv(&link.replies) {
            Ok(Reply::Resume) => Ok(()),
            _ => Err(cancelled()),
        }
    })
}

/// An async host function bound to `binding` (as `func::dynamic_host`).
fn async_host<T: Send + 'static>(
    store: &mut StoreMut<'_>,
    fenv: &FunctionEnv<StoreData<T>>,
    ty: &FuncType,
    func: &DynAsyncHostFn<Wasmer, T>,
    binding: Arc<OnceLock<WrInstance>>,
    id: StoreId,
) -> wasmer::Function {
    let (ty, func) = (ty.clone(), func.clone());
    let wr_ty = func_type_to_wr(&ty);
    wasmer::Function::new_with_env(store, fenv, wr_ty, move |mut env, params| {
        let args: Vec<Val<Wasmer>> = params.iter().map(|v| val_from_wr(v, id)).collect();
        let caller = WrCaller::new(&mut env as &mut dyn ViewMut<T>, &binding);
        let future = match func(Caller::from_raw(caller), &args) {
            Ok(future) => future,
            Err(e) => return Err(park_host_error(&mut env, e, true)),
        };
        let out = LINK.with(|l| {
            let link = l.borrow();
            let link = link.as_ref()?;
            link.events.send(Event::Wait(Box::new(future))).ok()?;
            recv(&link.replies).ok()
        });
        let ret = match out {
            Some(Reply::Ready(out)) => match out.downcast::<Result<AsyncReturn<Wasmer, T>>>() {
                Ok(out) => *out,
                Err(_) => Err(Error::Backend {
                    backend: NAME,
                    message: "an async host function got another store type's output".into(),
                }),
            },
            Some(Reply::Cancel | Reply::Resume) => Err(cancelled()),
            None => Err(Error::InvalidArgument(
                "an async host function was called outside an async call (use call_async)".into(),
            )),
        };
        let mut rets: Vec<Val<Wasmer>> =
            ty.results().iter().map(|t| Val::default_for(*t)).collect();
        let finished = ret.and_then(|ret| {
            ret.finish(
                StoreContextMut::from_raw(&mut env as &mut dyn ViewMut<T>),
                &mut rets,
            )
        });
        if let Err(e) = finished {
            return Err(park_host_error(&mut env, e, true));
        }
        results_to_wr(&mut env, &rets)
    })
}

pub(crate) fn func_new_async<T: Send + 'static>(
    ctx: CtxMut<'_, T>,
    ty: FuncType,
    func: DynAsyncHostFn<Wasmer, T>,
) -> Result<WrFunc> {
    let id = ctx.shared().id();
    Ok(bound_host(ctx, move |store, fenv, binding| {
        async_host(store, fenv, &ty, &func, binding, id)
    }))
}

pub(crate) fn func_call_async<'a, T: Send + 'static>(
    store: &'a mut WrStore<T>,
    func: &'a WrFunc,
    params: &'a [Val<Wasmer>],
    results: &'a mut [Val<Wasmer>],
) -> BoxFuture<'a, Result<()>> {
    let (func, params, mut slots) = (func.clone(), params.to_vec(), results.to_vec());
    let call = OnWorker::new(store, move |store| {
        crate::func::call_dynamic(store as &mut dyn ViewMut<T>, &func, &params, &mut slots)?;
        Ok(slots)
    });
    Box::pin(async move {
        let out = call.await?;
        results.clone_from_slice(&out);
        Ok(())
    })
}

pub(crate) fn instantiate_async<'a, T: Send + 'static>(
    store: &'a mut WrStore<T>,
    module: &'a WrModule,
    imports: &'a [Extern<Wasmer>],
) -> BoxFuture<'a, Result<WrInstance>> {
    // The layer has taken the start function out of the module: wasmer's
    // instantiation calls no host function, and never waits.
    let r = Wasmer::instantiate(store as &mut dyn ViewMut<T>, module, imports);
    Box::pin(async move { r })
}
