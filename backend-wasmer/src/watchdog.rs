//! Deadlines and interrupts for wasmer, on its signal-based host interrupt.
//!
//! wasmer can stop the code running in one store (`Store::interrupter`),
//! but has no deadlines, and an interrupt sent just before the code starts
//! can be missed. One process-wide watchdog thread keeps the stores that are
//! running calls; it interrupts a store when its deadline passes or an
//! interrupt was requested, and repeats every few milliseconds until the
//! call has returned.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anywasm_core::{InterruptState, TrapCode};

/// What the watchdog knows about one store.
pub(crate) struct Watch {
    pub(crate) state: Arc<InterruptState>,
    pub(crate) interrupter: wasmer::Interrupter,
    /// Why the store was last stopped: 0 none, 1 deadline, 2 interrupt.
    reason: AtomicU8,
}

impl Watch {
    pub(crate) fn new(state: Arc<InterruptState>, interrupter: wasmer::Interrupter) -> Self {
        Self {
            state,
            interrupter,
            reason: AtomicU8::new(0),
        }
    }

    /// Why the store was stopped (to name the trap), clearing it.
    pub(crate) fn take_reason(&self) -> TrapCode {
        match self.reason.swap(0, Ordering::AcqRel) {
            1 => TrapCode::Deadline,
            _ => TrapCode::Interrupted,
        }
    }
}

struct Running {
    watch: Arc<Watch>,
    fired: Option<Instant>,
}

struct Watchdog {
    running: Mutex<Vec<Running>>,
    wake: Condvar,
}

const RETRY: Duration = Duration::from_millis(5);

static WATCHDOG: LazyLock<Watchdog> = LazyLock::new(|| {
    std::thread::Builder::new()
        .name("anywasm-wasmer-watchdog".into())
        .spawn(run)
        .expect("spawning the watchdog thread");
    Watchdog {
        running: Mutex::new(Vec::new()),
        wake: Condvar::new(),
    }
});

fn run() {
    let wd = &*WATCHDOG;
    let Ok(mut running) = wd.running.lock() else {
        return;
    };
    loop {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for r in running.iter_mut() {
            match r.fired {
                Some(at) => {
                    // Still running after an interrupt: the signal may have
                    // been missed; send it again.
                    if now >= at + RETRY {
                        r.watch.interrupter.interrupt();
                        r.fired = Some(now);
                    }
                    next = Some(next.map_or(now + RETRY, |n| n.min(now + RETRY)));
                }
                None => {
                    if let Some(code) = r.watch.state.check() {
                        let reason = if code == TrapCode::Deadline { 1 } else { 2 };
                        r.watch.reason.store(reason, Ordering::Release);
                        r.watch.interrupter.interrupt();
                        r.fired = Some(now);
                        next = Some(next.map_or(now + RETRY, |n| n.min(now + RETRY)));
                    } else if let Some(d) = r.watch.state.deadline() {
                        next = Some(next.map_or(d, |n| n.min(d)));
                    }
                }
            }
        }
        let timeout = next.map_or(Duration::from_secs(3600), |n| {
            n.saturating_duration_since(Instant::now())
        });
        running = match wd.wake.wait_timeout(running, timeout) {
            Ok((guard, _)) => guard,
            Err(_) => return,
        };
    }
}

/// Registers a store whose call is starting.
pub(crate) fn enter(watch: &Arc<Watch>) {
    let wd = &*WATCHDOG;
    if let Ok(mut running) = wd.running.lock() {
        running.push(Running {
            watch: watch.clone(),
            fired: None,
        });
    }
    wd.wake.notify_one();
}

/// Unregisters a store whose call returned.
pub(crate) fn leave(watch: &Arc<Watch>) {
    if let Ok(mut running) = WATCHDOG.running.lock()
        && let Some(i) = running.iter().position(|r| Arc::ptr_eq(&r.watch, watch))
    {
        running.swap_remove(i);
    }
}

/// Wakes the watchdog (a deadline changed or an interrupt was requested).
pub(crate) fn wake() {
    WATCHDOG.wake.notify_one();
}
