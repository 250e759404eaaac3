//! Deadlines and interrupts of one store, and the one timer thread that
//! tells backends when a deadline passes.
//!
//! Every backend stops running code the same way: it asks
//! [`InterruptState::check`] whether to stop, at call entry and wherever its
//! engine lets it look (wasmtime's epoch callback, wasmi's fuel slices,
//! wasmer's compiled-in checks). Engines that cannot poll on their own get a
//! *hook* ([`InterruptState::set_hook`]) that the layer calls when an
//! interrupt is requested, and that the timer thread calls when a deadline
//! passes; the hook makes the engine look (wasmtime bumps its epoch, wasmer
//! raises a flag its code reads).
//!
//! The same hook tells an engine that a running async call should yield to
//! its executor (`Store::set_yield_interval`, feature `async`).
//!
//! The timer is one process-wide thread that sleeps until the earliest
//! deadline (or yield instant) of the stores with a hook, or the earliest
//! async sleep (`crate::asynchronous::sleep`). It is started when the first such
//! store sets a deadline and ends when no such store is alive, so an idle
//! process has no thread waking up. Setting a deadline later than the
//! timer's next wake-up (the usual case for per-call deadlines) takes two
//! atomic operations and no lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::error::TrapCode;

static TIME_BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

/// An instant as nanoseconds since the process's time base, plus one so that
/// 0 can mean "none". Saturates instead of overflowing.
pub(crate) fn instant_to_nanos(t: Instant) -> u64 {
    t.saturating_duration_since(*TIME_BASE)
        .as_nanos()
        .min(u64::MAX as u128 - 1) as u64
        + 1
}

fn nanos_to_instant(n: u64) -> Instant {
    let d = Duration::from_nanos(n.saturating_sub(1));
    TIME_BASE
        .checked_add(d)
        .unwrap_or(*TIME_BASE + Duration::from_secs(1 << 40))
}

fn now_nanos() -> u64 {
    instant_to_nanos(Instant::now())
}

type Hook = Box<dyn Fn() + Send + Sync>;

/// Interrupt and deadline state of one store, shared with
/// [`InterruptHandle`]s, the timer thread and the backend.
pub struct InterruptState {
    requested: AtomicBool,
    /// The deadline in `instant_to_nanos` form; 0 for none.
    deadline: AtomicU64,
    /// The deadline the timer has already announced through the hook.
    fired: AtomicU64,
    hook: OnceLock<Hook>,
    registered: AtomicBool,
    /// How often a running async call yields to its executor, in nanos; 0
    /// for never.
    yield_interval: AtomicU64,
    /// When the running async call should next yield (`instant_to_nanos`
    /// form; 0 while no async call with yielding runs).
    yield_at: AtomicU64,
    /// The `yield_at` the timer has already announced through the hook.
    yield_fired: AtomicU64,
    /// The task of an async host function waiting in this store, woken by
    /// an interrupt request.
    waiting: Mutex<Option<std::task::Waker>>,
}

impl std::fmt::Debug for InterruptState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterruptState")
            .field("requested", &self.requested.load(Ordering::Relaxed))
            .field("deadline", &self.deadline())
            .finish()
    }
}

impl InterruptState {
    pub(crate) fn new() -> Self {
        Self {
            requested: AtomicBool::new(false),
            deadline: AtomicU64::new(0),
            fired: AtomicU64::new(0),
            hook: OnceLock::new(),
            registered: AtomicBool::new(false),
            yield_interval: AtomicU64::new(0),
            yield_at: AtomicU64::new(0),
            yield_fired: AtomicU64::new(0),
            waiting: Mutex::new(None),
        }
    }

    /// The current deadline.
    pub fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Acquire) {
            0 => None,
            n => Some(nanos_to_instant(n)),
        }
    }

    /// Whether an interrupt was requested and not yet delivered.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// For backends: decides whether running code must stop now, and why.
    ///
    /// An interrupt request is consumed by this call (it stops exactly one
    /// call); a passed deadline keeps stopping calls until it is changed.
    #[inline]
    pub fn check(&self) -> Option<TrapCode> {
        if self.requested.load(Ordering::Relaxed) && self.requested.swap(false, Ordering::AcqRel) {
            return Some(TrapCode::Interrupted);
        }
        self.deadline_passed()
    }

    /// Like [`check`](Self::check), but leaves an interrupt request in place.
    pub fn pending(&self) -> Option<TrapCode> {
        if self.requested.load(Ordering::Acquire) {
            return Some(TrapCode::Interrupted);
        }
        self.deadline_passed()
    }

    #[inline]
    fn deadline_passed(&self) -> Option<TrapCode> {
        match self.deadline.load(Ordering::Acquire) {
            0 => None,
            n if now_nanos() >= n => Some(TrapCode::Deadline),
            _ => None,
        }
    }

    /// For backends whose engine does not poll the layer by itself: `hook`
    /// is called (from any thread) when an interrupt is requested and when
    /// the store's deadline passes; it must make the engine call
    /// [`check`](Self::check) soon. It must be quick and must not block.
    /// Only the first hook is kept.
    pub fn set_hook(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.hook.set(hook);
    }

    fn run_hook(&self) {
        if let Some(hook) = self.hook.get() {
            hook();
        }
    }

    pub(crate) fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.run_hook();
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = waiting {
            w.wake();
        }
    }

    /// For an async host function's wait: `waker` is woken by an interrupt
    /// request, and (through the timer) when the deadline passes.
    #[cfg(feature = "async")]
    pub(crate) fn wake_on_stop(&self, waker: &std::task::Waker) {
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if !waiting.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *waiting = Some(waker.clone());
            }
        }
        if let Some(deadline) = self.deadline() {
            // Without a timer thread the wait ends with the host future or
            // an interrupt; the call still stops at the deadline afterwards.
            let _ = wake_at(deadline, waker.clone());
        }
    }

    /// For backends, where the engine can yield (in async calls): whether
    /// the running call should yield to its executor now. If so, the next
    /// yield is scheduled one interval from now.
    pub fn take_yield_due(self: &Arc<Self>) -> bool {
        let at = self.yield_at.load(Ordering::Acquire);
        if at == 0 || now_nanos() < at {
            return false;
        }
        self.schedule_yield();
        true
    }

    #[cfg(feature = "async")]
    pub(crate) fn set_yield_interval(&self, interval: Option<Duration>) {
        let n = interval.map_or(0, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.yield_interval.store(n, Ordering::Release);
    }

    /// An async call starts (`true`) or ends: yields are scheduled while it
    /// runs, if the store has an interval.
    #[cfg(feature = "async")]
    pub(crate) fn async_call_yields(self: &Arc<Self>, running: bool) {
        if running {
            self.schedule_yield();
        } else {
            self.yield_at.store(0, Ordering::Release);
        }
    }

    fn schedule_yield(self: &Arc<Self>) {
        let interval = self.yield_interval.load(Ordering::Acquire);
        if interval == 0 {
            self.yield_at.store(0, Ordering::Release);
            return;
        }
        let at = now_nanos().saturating_add(interval);
        self.yield_at.store(at, Ordering::SeqCst);
        // Without a timer thread the yield waits for the engine's next look
        // (a deadline, a fuel slice).
        let _ = self.wake_timer_by(at);
    }

    /// Makes sure the timer wakes by `n` (nanos form) if the backend
    /// installed a hook.
    fn wake_timer_by(self: &Arc<Self>, n: u64) -> std::io::Result<()> {
        if self.hook.get().is_none() {
            return Ok(());
        }
        let next = NEXT_WAKE.load(Ordering::SeqCst);
        if self.registered.load(Ordering::Acquire) && next != SCANNING && n >= next {
            // The timer wakes before `n` and will see it then.
            return Ok(());
        }
        arm(self)
    }

    /// Sets the deadline (`None` clears it) and arms the timer if the
    /// backend installed a hook.
    pub(crate) fn set_deadline(self: &Arc<Self>, deadline: Option<Instant>) -> std::io::Result<()> {
        let n = deadline.map_or(0, instant_to_nanos);
        self.deadline.store(n, Ordering::SeqCst);
        if n == 0 {
            return Ok(());
        }
        self.wake_timer_by(n)
    }
}

impl Drop for InterruptState {
    fn drop(&mut self) {
        if self.registered.load(Ordering::Acquire) {
            // Let the timer see that one of its stores is gone, so it ends
            // when the last one goes. `try_lock`: the timer thread itself may
            // drop the last reference while it holds the lock; it prunes
            // dead stores after each scan anyway.
            let _guard = TIMER.try_lock();
            TIMER_WAKE.notify_one();
        }
    }
}

/// A handle that stops code running in one store from any thread.
///
/// [`interrupt`](InterruptHandle::interrupt) makes the call running in the
/// store trap with [`TrapCode::Interrupted`], or, if none is running, the
/// next call. Other stores, even on the same engine, are never affected.
#[derive(Debug, Clone)]
pub struct InterruptHandle {
    pub(crate) state: Arc<InterruptState>,
}

impl InterruptHandle {
    /// Requests an interrupt.
    pub fn interrupt(&self) {
        self.state.request();
    }
}

// ----- the timer thread --------------------------------------------------

/// `NEXT_WAKE` while the timer is scanning: setters must wake it.
const SCANNING: u64 = 0;
/// `NEXT_WAKE` when the timer sleeps without a deadline.
const NEVER: u64 = u64::MAX;

/// When the timer thread will next look at the stores (nanos form).
static NEXT_WAKE: AtomicU64 = AtomicU64::new(NEVER);

struct Timer {
    stores: Vec<Weak<InterruptState>>,
    /// Async sleeps (`crate::asynchronous::sleep`) and async waits for a
    /// store's deadline: whom to wake when (nanos form), earliest first.
    sleepers: std::collections::BinaryHeap<Sleeper>,
    running: bool,
}

/// A task to wake at `at`.
struct Sleeper {
    at: u64,
    waker: std::task::Waker,
}

impl PartialEq for Sleeper {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Sleeper {}
impl PartialOrd for Sleeper {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Sleeper {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.at.cmp(&self.at)
    }
}

static TIMER: Mutex<Timer> = Mutex::new(Timer {
    stores: Vec::new(),
    sleepers: std::collections::BinaryHeap::new(),
    running: false,
});

/// Wakes `waker` at `at` (an instant), from the timer thread. A spurious or
/// late wake-up is harmless: the task looks at the time itself.
#[cfg(feature = "async")]
pub(crate) fn wake_at(at: Instant, waker: std::task::Waker) -> std::io::Result<()> {
    let at = instant_to_nanos(at);
    let mut timer = TIMER.lock().unwrap_or_else(|p| p.into_inner());
    timer.sleepers.push(Sleeper { at, waker });
    if timer.running {
        if at < NEXT_WAKE.load(Ordering::SeqCst) {
            TIMER_WAKE.notify_one();
        }
        return Ok(());
    }
    start_timer(&mut timer).inspect_err(|_| {
        timer.sleepers.clear();
    })
}

/// Starts the timer thread (the lock held; `timer.running` is false).
fn start_timer(timer: &mut Timer) -> std::io::Result<()> {
    NEXT_WAKE.store(SCANNING, Ordering::SeqCst);
    std::thread::Builder::new()
        .name("anywasm-deadlines".into())
        .spawn(run_timer)
        .inspect_err(|_| NEXT_WAKE.store(NEVER, Ordering::SeqCst))?;
    timer.running = true;
    Ok(())
}
static TIMER_WAKE: Condvar = Condvar::new();

fn arm(state: &Arc<InterruptState>) -> std::io::Result<()> {
    let mut timer = TIMER.lock().unwrap_or_else(|p| p.into_inner());
    if !state.registered.swap(true, Ordering::AcqRel) {
        timer.stores.push(Arc::downgrade(state));
    }
    if timer.running {
        TIMER_WAKE.notify_one();
        return Ok(());
    }
    start_timer(&mut timer).inspect_err(|_| {
        // No thread: the deadline still stops calls at entry and on
        // engines that poll by themselves; forget the registration so a
        // later deadline tries again.
        state.registered.store(false, Ordering::Release);
        timer
            .stores
            .retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(state)));
    })
}

fn run_timer() {
    let mut timer = TIMER.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        NEXT_WAKE.store(SCANNING, Ordering::SeqCst);
        let now = now_nanos();
        let mut next = NEVER;
        timer.stores.retain(|weak| {
            let Some(state) = weak.upgrade() else {
                return false;
            };
            for (at, fired) in [
                (&state.deadline, &state.fired),
                (&state.yield_at, &state.yield_fired),
            ] {
                let d = at.load(Ordering::SeqCst);
                if d != 0 && d != fired.load(Ordering::Acquire) {
                    if d <= now {
                        fired.store(d, Ordering::Release);
                        state.run_hook();
                    } else {
                        next = next.min(d);
                    }
                }
            }
            true
        });
        // A store whose last reference was the one upgraded above.
        timer.stores.retain(|weak| weak.strong_count() > 0);
        let mut due = Vec::new();
        while timer.sleepers.peek().is_some_and(|s| s.at <= now) {
            due.extend(timer.sleepers.pop().map(|s| s.waker));
        }
        if !due.is_empty() {
            // Woken without the lock: a waker may poll (and sleep) at once.
            drop(timer);
            due.into_iter().for_each(std::task::Waker::wake);
            timer = TIMER.lock().unwrap_or_else(|p| p.into_inner());
            continue;
        }
        if let Some(s) = timer.sleepers.peek() {
            next = next.min(s.at);
        }
        if timer.stores.is_empty() && timer.sleepers.is_empty() {
            timer.running = false;
            NEXT_WAKE.store(NEVER, Ordering::SeqCst);
            return;
        }
        NEXT_WAKE.store(next, Ordering::SeqCst);
        timer = if next == NEVER {
            TIMER_WAKE.wait(timer).unwrap_or_else(|p| p.into_inner())
        } else {
            let wait = Duration::from_nanos(next.saturating_sub(now_nanos()));
            TIMER_WAKE
                .wait_timeout(timer, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0
        };
    }
}

/// Whether the timer thread is running (for tests of its life cycle).
#[doc(hidden)]
pub fn timer_thread_running() -> bool {
    TIMER.lock().map(|t| t.running).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn hooked(counter: &Arc<AtomicUsize>) -> Arc<InterruptState> {
        let state = Arc::new(InterruptState::new());
        let c = counter.clone();
        state.set_hook(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        state
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn a_passed_deadline_runs_the_hook_once_and_the_thread_ends_with_its_stores() {
        let fired = Arc::new(AtomicUsize::new(0));
        let state = hooked(&fired);
        state
            .set_deadline(Some(Instant::now() + Duration::from_millis(20)))
            .unwrap();
        assert!(wait_for(|| fired.load(Ordering::SeqCst) == 1));
        assert_eq!(state.check(), Some(TrapCode::Deadline));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(fired.load(Ordering::SeqCst), 1, "fired more than once");

        // A later deadline fires too; an earlier one set after it wins.
        state
            .set_deadline(Some(Instant::now() + Duration::from_secs(3600)))
            .unwrap();
        state
            .set_deadline(Some(Instant::now() + Duration::from_millis(10)))
            .unwrap();
        assert!(wait_for(|| fired.load(Ordering::SeqCst) == 2));

        // No other test of this binary gives a store a hook: with this one
        // gone the thread ends, and the next deadline starts it again.
        assert!(timer_thread_running());
        drop(state);
        assert!(
            wait_for(|| !timer_thread_running()),
            "the timer outlived its stores"
        );
        let again = hooked(&fired);
        again
            .set_deadline(Some(Instant::now() + Duration::from_millis(1)))
            .unwrap();
        assert!(wait_for(|| fired.load(Ordering::SeqCst) == 3));
        drop(again);
        assert!(wait_for(|| !timer_thread_running()));
    }

    #[test]
    fn interrupts_run_the_hook_at_once_and_are_consumed_by_check() {
        let fired = Arc::new(AtomicUsize::new(0));
        let state = hooked(&fired);
        state.request();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert_eq!(state.pending(), Some(TrapCode::Interrupted));
        assert_eq!(state.check(), Some(TrapCode::Interrupted));
        assert_eq!(state.check(), None);
    }

    #[test]
    fn far_deadlines_do_not_overflow() {
        let state = Arc::new(InterruptState::new());
        let far = Instant::now().checked_add(Duration::from_secs(u32::MAX as u64 * 1000));
        if let Some(far) = far {
            state.set_deadline(Some(far)).unwrap();
            assert_eq!(state.check(), None);
        }
    }
}
