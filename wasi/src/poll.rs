//! `poll_oneoff`, and waiting for the host's standard input, interruptibly.
//!
//! A wait never outlives the store's deadline or an interrupt: it sleeps
//! through [`Caller::sleep`], which returns the same trap error as a
//! deadline in wasm code would.

use std::time::{Duration, SystemTime};

use anywasm_core::{AsContextMut, Backend, Caller, Val};

use crate::ctx::{Fd, WasiCtx};
use crate::errno::{self, Errno};
use crate::host::{arg, entry, monotonic};
use crate::mem::{Fail, Mem, R};
use crate::rights;

const SUBSCRIPTION: u64 = 48;
const EVENT: u64 = 32;
const TYPE_CLOCK: u8 = 0;
const TYPE_FD_READ: u8 = 1;
const TYPE_FD_WRITE: u8 = 2;
const CLOCK_ABSTIME: u16 = 1;
const EVENT_HANGUP: u16 = 1;
/// How often a wait on the host's standard input looks again.
pub(crate) const STDIN_POLL: Duration = Duration::from_millis(10);

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap_or_default())
}

/// What one subscription says now.
enum State {
    /// Not ready; for a clock, when it will be (monotonic nanoseconds).
    Waiting(Option<u64>),
    /// An event to deliver: (error, bytes available, flags).
    Ready(Errno, u64, u16),
}

/// Whether the host's standard input has data (or end of file) now.
pub(crate) fn stdin_ready() -> bool {
    #[cfg(unix)]
    {
        let mut fds = [libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` is a valid array of one pollfd for the call's length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        // An error (such as a closed descriptor) is "ready": the read reports it.
        n != 0
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Waits until the host's standard input has data, or the store's deadline
/// passes or it is interrupted.
pub(crate) fn wait_stdin_readable<B: Backend, T: Send + 'static>(c: &Caller<'_, B, T>) -> R<()> {
    while !stdin_ready() {
        c.sleep(STDIN_POLL).map_err(Fail::Host)?;
    }
    Ok(())
}

fn fd_state(ctx: &mut WasiCtx, fd: u32, kind: u8) -> State {
    let stdin_inherited = ctx.stdin_is_inherited();
    let stdin_available = ctx.stdin_available();
    let e = match entry(ctx, fd, rights::POLL_FD_READWRITE) {
        Ok(e) => e,
        Err(Fail::Errno(e)) => return State::Ready(e, 0, 0),
        Err(Fail::Host(_)) => return State::Ready(errno::IO, 0, 0),
    };
    match (&mut e.fd, kind) {
        (Fd::File(f), TYPE_FD_READ) => {
            // Regular files are always ready; tell how much is left.
            let left = match (
                f.file.metadata(),
                std::io::Seek::stream_position(&mut f.file),
            ) {
                (Ok(m), Ok(pos)) => m.len().saturating_sub(pos),
                _ => 0,
            };
            State::Ready(errno::SUCCESS, left, 0)
        }
        (Fd::File(_), _) => State::Ready(errno::SUCCESS, 0, 0),
        (Fd::Stdin, TYPE_FD_READ) => match stdin_available {
            Some(0) => State::Ready(errno::SUCCESS, 0, EVENT_HANGUP),
            Some(n) => State::Ready(errno::SUCCESS, n, 0),
            None if stdin_inherited && !stdin_ready() => State::Waiting(None),
            None => State::Ready(errno::SUCCESS, 0, 0),
        },
        (Fd::Stdout | Fd::Stderr, TYPE_FD_WRITE) => State::Ready(errno::SUCCESS, 0, 0),
        (Fd::Dir(_), _) => State::Ready(errno::ISDIR, 0, 0),
        _ => State::Ready(errno::BADF, 0, 0),
    }
}

/// A `poll_oneoff` call's arguments, checked, and when it was entered.
#[derive(Clone, Copy)]
pub(crate) struct PollArgs {
    input: u32,
    output: u32,
    count: u32,
    nevents: u32,
    /// Monotonic and real time at entry (relative clocks count from it).
    entered: u64,
    entered_realtime: u64,
}

impl PollArgs {
    /// Where the number of events goes.
    #[cfg(feature = "async")]
    pub(crate) fn nevents_ptr(&self) -> u32 {
        self.nevents
    }

    /// Checks every area the call touches, before it does anything.
    pub(crate) fn new<B: Backend, T: Send + 'static, C: AsContextMut<Backend = B, Data = T>>(
        c: &mut C,
        m: &Mem<B>,
        p: &[Val<B>],
        get: fn(&mut T) -> &mut WasiCtx,
    ) -> R<Self> {
        let (input, output, count, nevents) = (arg(&p[0]), arg(&p[1]), arg(&p[2]), arg(&p[3]));
        if count == 0 {
            return Err(errno::INVAL.into());
        }
        m.bytes(c, input, u64::from(count) * SUBSCRIPTION)?;
        m.bytes(c, output, u64::from(count) * EVENT)?;
        m.bytes(c, nevents, 4)?;
        Ok(Self {
            input,
            output,
            count,
            nevents,
            entered: monotonic(get(c.as_context_mut().data_mut())),
            entered_realtime: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        })
    }
}

/// What to wait for when no subscription is ready.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wait {
    /// Until the earliest clock (from now), if any.
    pub(crate) clock: Option<Duration>,
    /// Also until the host's standard input has data.
    pub(crate) stdin: bool,
}

impl Wait {
    /// How long to sleep before looking again.
    pub(crate) fn slice(&self) -> Duration {
        let wait = self.clock.unwrap_or(Duration::MAX);
        if self.stdin {
            wait.min(STDIN_POLL)
        } else {
            wait
        }
    }
}

/// Clock subscriptions fire when their time comes; fd subscriptions report
/// readiness (regular files always; standard input when it has data or
/// ends; standard output and error always for writing). One look: writes
/// the events that are ready and their number, or says what to wait for.
pub(crate) fn look<B: Backend, T: Send + 'static, C: AsContextMut<Backend = B, Data = T>>(
    c: &mut C,
    m: &Mem<B>,
    a: &PollArgs,
    get: fn(&mut T) -> &mut WasiCtx,
) -> R<Option<Wait>> {
    let now = monotonic(get(c.as_context_mut().data_mut()));
    let mut ready = 0u32;
    let mut next: Option<u64> = None;
    let mut stdin_waits = false;
    for i in 0..a.count {
        let at = a.input + i * SUBSCRIPTION as u32;
        let sub = m.bytes(c, at, SUBSCRIPTION)?;
        let (userdata, kind) = (le_u64(&sub[0..8]), sub[8]);
        let state = match kind {
            TYPE_CLOCK => {
                let clock = u32::from_le_bytes(sub[16..20].try_into().unwrap_or_default());
                let timeout = le_u64(&sub[24..32]);
                let absolute = u16::from_le_bytes(sub[40..42].try_into().unwrap_or_default())
                    & CLOCK_ABSTIME
                    != 0;
                let due = match (clock, absolute) {
                    (0 | 1, false) => Some(a.entered.saturating_add(timeout)),
                    (1, true) => Some(timeout),
                    (0, true) => Some(
                        a.entered
                            .saturating_add(timeout.saturating_sub(a.entered_realtime)),
                    ),
                    _ => None,
                };
                match (clock, due) {
                    (2 | 3, _) => State::Ready(errno::NOTSUP, 0, 0),
                    (_, None) => State::Ready(errno::INVAL, 0, 0),
                    (_, Some(d)) if d <= now => State::Ready(errno::SUCCESS, 0, 0),
                    (_, Some(d)) => State::Waiting(Some(d)),
                }
            }
            TYPE_FD_READ | TYPE_FD_WRITE => {
                let fd = u32::from_le_bytes(sub[16..20].try_into().unwrap_or_default());
                fd_state(get(c.as_context_mut().data_mut()), fd, kind)
            }
            _ => return Err(errno::INVAL.into()),
        };
        match state {
            State::Waiting(Some(d)) => next = Some(next.map_or(d, |n| n.min(d))),
            State::Waiting(None) => stdin_waits = true,
            State::Ready(error, nbytes, flags) => {
                let mut e = [0u8; EVENT as usize];
                e[0..8].copy_from_slice(&userdata.to_le_bytes());
                e[8..10].copy_from_slice(&error.to_le_bytes());
                e[10] = kind;
                if kind != TYPE_CLOCK {
                    e[16..24].copy_from_slice(&nbytes.to_le_bytes());
                    e[24..26].copy_from_slice(&flags.to_le_bytes());
                }
                m.write(c, a.output + ready * EVENT as u32, &e)?;
                ready += 1;
            }
        }
    }
    if ready > 0 {
        m.put_u32(c, a.nevents, ready)?;
        return Ok(None);
    }
    Ok(Some(Wait {
        clock: next.map(|n| Duration::from_nanos(n.saturating_sub(now))),
        stdin: stdin_waits,
    }))
}

/// `poll_oneoff`: with nothing ready it sleeps until the earliest clock,
/// interruptibly, and looks again.
pub(crate) fn poll_oneoff<B: Backend, T: Send + 'static>(
    c: &mut Caller<'_, B, T>,
    p: &[Val<B>],
    get: fn(&mut T) -> &mut WasiCtx,
) -> R<()> {
    let m = Mem::of(c, get)?;
    let a = PollArgs::new(c, &m, p, get)?;
    while let Some(wait) = look(c, &m, &a, get)? {
        c.sleep(wait.slice()).map_err(Fail::Host)?;
    }
    Ok(())
}

/// Waits (on the layer's timer, any executor) until `wait`'s clock comes or,
/// if it waits for standard input too, until that has data.
#[cfg(feature = "async")]
pub(crate) async fn until_ready(wait: Wait) {
    let end = wait
        .clock
        .and_then(|d| std::time::Instant::now().checked_add(d));
    loop {
        if wait.stdin && stdin_ready() {
            return;
        }
        let left = match end {
            Some(end) => end.saturating_duration_since(std::time::Instant::now()),
            None => Duration::MAX,
        };
        if left.is_zero() {
            return;
        }
        let slice = if wait.stdin {
            left.min(STDIN_POLL)
        } else {
            left
        };
        anywasm_core::asynchronous::sleep(slice).await;
    }
}
