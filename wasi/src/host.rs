//! The `wasi_snapshot_preview1` functions, as dynamic host functions on the
//! core API, so they behave the same on every backend.
//!
//! Every pointer, length, count and offset a program passes is checked
//! before it is used (see `mem`); no host allocation is sized by what the
//! program claims; arithmetic on guest values is checked; waits end when
//! the store's deadline passes or it is interrupted.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use anywasm_core::{AsContextMut, Backend, Caller, Error, FuncType, Linker, Result, Val, ValType};
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::OpenOptions;

use crate::ctx::{DirFd, Entry, Fd, FileFd, WasiCtx};
use crate::errno;
use crate::mem::{Fail, Mem, R};
use crate::rights::{self, Rights};

pub(crate) const MODULE: &str = "wasi_snapshot_preview1";

// Layout constants of the preview-1 ABI (wasm32).
pub(crate) const FILETYPE_UNKNOWN: u8 = 0;
pub(crate) const FILETYPE_CHARACTER_DEVICE: u8 = 2;
pub(crate) const FILETYPE_DIRECTORY: u8 = 3;
pub(crate) const FILETYPE_REGULAR_FILE: u8 = 4;
const FILETYPE_SYMBOLIC_LINK: u8 = 7;
const OFLAGS_CREAT: u32 = 1;
const OFLAGS_DIRECTORY: u32 = 2;
const OFLAGS_EXCL: u32 = 4;
const OFLAGS_TRUNC: u32 = 8;
const FDFLAGS_APPEND: u32 = 1;
const LOOKUP_SYMLINK_FOLLOW: u32 = 1;

use ValType::{I32, I64};

/// Every function of `wasi_snapshot_preview1` with its parameters; each
/// returns an `i32` errno except `proc_exit`, which returns nothing.
pub const FUNCTIONS: &[(&str, &[ValType])] = &[
    ("args_get", &[I32, I32]),
    ("args_sizes_get", &[I32, I32]),
    ("environ_get", &[I32, I32]),
    ("environ_sizes_get", &[I32, I32]),
    ("clock_res_get", &[I32, I32]),
    ("clock_time_get", &[I32, I64, I32]),
    ("fd_advise", &[I32, I64, I64, I32]),
    ("fd_allocate", &[I32, I64, I64]),
    ("fd_close", &[I32]),
    ("fd_datasync", &[I32]),
    ("fd_fdstat_get", &[I32, I32]),
    ("fd_fdstat_set_flags", &[I32, I32]),
    ("fd_fdstat_set_rights", &[I32, I64, I64]),
    ("fd_filestat_get", &[I32, I32]),
    ("fd_filestat_set_size", &[I32, I64]),
    ("fd_filestat_set_times", &[I32, I64, I64, I32]),
    ("fd_pread", &[I32, I32, I32, I64, I32]),
    ("fd_prestat_get", &[I32, I32]),
    ("fd_prestat_dir_name", &[I32, I32, I32]),
    ("fd_pwrite", &[I32, I32, I32, I64, I32]),
    ("fd_read", &[I32, I32, I32, I32]),
    ("fd_readdir", &[I32, I32, I32, I64, I32]),
    ("fd_renumber", &[I32, I32]),
    ("fd_seek", &[I32, I64, I32, I32]),
    ("fd_sync", &[I32]),
    ("fd_tell", &[I32, I32]),
    ("fd_write", &[I32, I32, I32, I32]),
    ("path_create_directory", &[I32, I32, I32]),
    ("path_filestat_get", &[I32, I32, I32, I32, I32]),
    (
        "path_filestat_set_times",
        &[I32, I32, I32, I32, I64, I64, I32],
    ),
    ("path_link", &[I32, I32, I32, I32, I32, I32, I32]),
    ("path_open", &[I32, I32, I32, I32, I32, I64, I64, I32, I32]),
    ("path_readlink", &[I32, I32, I32, I32, I32, I32]),
    ("path_remove_directory", &[I32, I32, I32]),
    ("path_rename", &[I32, I32, I32, I32, I32, I32]),
    ("path_symlink", &[I32, I32, I32, I32, I32]),
    ("path_unlink_file", &[I32, I32, I32]),
    ("poll_oneoff", &[I32, I32, I32, I32]),
    ("proc_exit", &[I32]),
    ("proc_raise", &[I32]),
    ("random_get", &[I32, I32]),
    ("sched_yield", &[]),
    ("sock_accept", &[I32, I32, I32]),
    ("sock_recv", &[I32, I32, I32, I32, I32, I32]),
    ("sock_send", &[I32, I32, I32, I32, I32]),
    ("sock_shutdown", &[I32, I32]),
];

/// The wasm type of a WASI function.
pub fn function_type(name: &str) -> Option<FuncType> {
    let (_, params) = FUNCTIONS.iter().find(|(n, _)| *n == name)?;
    let results: &[ValType] = if name == "proc_exit" { &[] } else { &[I32] };
    Some(FuncType::new(
        params.iter().copied(),
        results.iter().copied(),
    ))
}

pub(crate) fn arg(v: &Val<impl Backend>) -> u32 {
    v.as_i32().unwrap_or(0) as u32
}

pub(crate) fn arg64(v: &Val<impl Backend>) -> u64 {
    v.as_i64().unwrap_or(0) as u64
}

/// The descriptor `fd` if it has all of `needed`.
pub(crate) fn entry(ctx: &mut WasiCtx, fd: u32, needed: Rights) -> R<&mut Entry> {
    let e = ctx
        .fds
        .get_mut(fd as usize)
        .and_then(Option::as_mut)
        .ok_or(Fail::Errno(errno::BADF))?;
    if e.base & needed != needed {
        return Err(errno::NOTCAPABLE.into());
    }
    Ok(e)
}

fn file(ctx: &mut WasiCtx, fd: u32, needed: Rights) -> R<&mut FileFd> {
    match &mut entry(ctx, fd, needed)?.fd {
        Fd::File(f) => Ok(f),
        Fd::Dir(_) => Err(errno::ISDIR.into()),
        _ => Err(errno::SPIPE.into()),
    }
}

fn dir(ctx: &mut WasiCtx, fd: u32, needed: Rights) -> R<&mut DirFd> {
    match &mut entry(ctx, fd, needed)?.fd {
        Fd::Dir(d) => Ok(d),
        _ => Err(errno::NOTDIR.into()),
    }
}

fn file_type(ft: cap_std::fs::FileType) -> u8 {
    if ft.is_dir() {
        FILETYPE_DIRECTORY
    } else if ft.is_file() {
        FILETYPE_REGULAR_FILE
    } else if ft.is_symlink() {
        FILETYPE_SYMBOLIC_LINK
    } else {
        FILETYPE_UNKNOWN
    }
}

fn nanos(t: std::io::Result<SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A `filestat` record (64 bytes).
fn filestat(meta: &cap_std::fs::Metadata) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[16] = file_type(meta.file_type());
    b[24..32].copy_from_slice(&1u64.to_le_bytes());
    b[32..40].copy_from_slice(&meta.len().to_le_bytes());
    b[40..48].copy_from_slice(&nanos(meta.accessed().map(|t| t.into_std())).to_le_bytes());
    b[48..56].copy_from_slice(&nanos(meta.modified().map(|t| t.into_std())).to_le_bytes());
    b[56..64].copy_from_slice(&nanos(meta.created().map(|t| t.into_std())).to_le_bytes());
    b
}

/// A file offset from the program: at most `i64::MAX`, as the host's are.
fn offset(v: u64) -> R<u64> {
    if v > i64::MAX as u64 {
        return Err(errno::INVAL.into());
    }
    Ok(v)
}

type Body<B, T> = dyn Fn(&mut Caller<'_, B, T>, &[Val<B>]) -> R<()> + Send + Sync;

/// Defines one function from [`FUNCTIONS`]; the body returns the errno.
fn def<B, T, F>(linker: &mut Linker<B, T>, name: &str, f: F) -> Result<()>
where
    B: Backend,
    T: Send + 'static,
    F: Fn(&mut Caller<'_, B, T>, &[Val<B>]) -> R<()> + Send + Sync + 'static,
{
    let ty = function_type(name)
        .ok_or_else(|| Error::InvalidArgument(format!("no WASI function `{name}`")))?;
    let f: Box<Body<B, T>> = Box::new(f);
    linker.func_new(MODULE, name, ty, move |mut caller, p, r| {
        r[0] = errno_of(f(&mut caller, p))?;
        Ok(())
    })?;
    Ok(())
}

/// What an async WASI function does after its synchronous part.
#[cfg(feature = "async")]
enum Step<B: Backend, T: Send + 'static> {
    /// Finished.
    Done,
    /// Wait for `until` (without blocking the executor), then finish with
    /// `then`.
    Wait {
        until: anywasm_core::BoxFuture<'static, ()>,
        then: Box<Then<B, T>>,
    },
}

#[cfg(feature = "async")]
type Then<B, T> =
    dyn FnOnce(&mut anywasm_core::StoreContextMut<'_, B, T>) -> R<()> + Send + 'static;

/// The errno of a body's result, or its error for the host.
fn errno_of<B: Backend>(r: R<()>) -> Result<Val<B>> {
    Ok(Val::I32(match r {
        Ok(()) => i32::from(errno::SUCCESS),
        Err(Fail::Errno(e)) => i32::from(e),
        Err(Fail::Host(e)) => return Err(e),
    }))
}

/// Defines one function from [`FUNCTIONS`] as an async host function: the
/// body runs at once, and may ask to wait before it finishes.
#[cfg(feature = "async")]
fn def_async<B, T, F>(linker: &mut Linker<B, T>, name: &str, f: F) -> Result<()>
where
    B: Backend,
    T: Send + 'static,
    F: Fn(&mut Caller<'_, B, T>, &[Val<B>]) -> R<Step<B, T>> + Send + Sync + 'static,
{
    use anywasm_core::{AsyncReturn, HostFuture};
    let ty = function_type(name)
        .ok_or_else(|| Error::InvalidArgument(format!("no WASI function `{name}`")))?;
    linker.func_new_async(MODULE, name, ty, move |mut caller, p| {
        let (until, then) = match f(&mut caller, p) {
            Ok(Step::Wait { until, then }) => (until, then),
            done => {
                let v = errno_of(done.map(|_| ()))?;
                return Ok(
                    Box::pin(async move { Ok(AsyncReturn::values([v])) }) as HostFuture<B, T>
                );
            }
        };
        Ok(Box::pin(async move {
            until.await;
            Ok(AsyncReturn::with_store(move |mut ctx, r| {
                r[0] = errno_of(then(&mut ctx))?;
                Ok(())
            }))
        }) as HostFuture<B, T>)
    })?;
    Ok(())
}

/// [`add_to_linker`] for async calls (feature `async`): `poll_oneoff` and
/// `fd_read` of the host's standard input wait in async host functions, so
/// a program that sleeps or waits for input does not block the executor's
/// thread (the layer's own timer wakes it: any executor will do). As with
/// every async host function, the store then takes only async calls, and
/// the store's deadline and interrupts end the wait. The other functions
/// are the same as in [`add_to_linker`].
///
/// If the host's standard input stops being ready between the wait and
/// the read (another reader took the data), the read answers `EAGAIN`
/// rather than block, and `poll_oneoff` reports no event, as a poll that
/// timed out. (`tests/async_waits.rs` covers both, the wait for standard
/// input in a child process reading a pipe.)
#[cfg(feature = "async")]
pub fn add_to_linker_async<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
) -> Result<()> {
    use crate::poll::{PollArgs, look, stdin_ready};
    add_all(linker, get, false)?;
    def_async(linker, "poll_oneoff", move |c, p| {
        let m = Mem::of(c, get)?;
        let a = PollArgs::new(c, &m, p, get)?;
        let Some(wait) = look(c, &m, &a, get)? else {
            return Ok(Step::Done);
        };
        Ok(Step::Wait {
            until: Box::pin(crate::poll::until_ready(wait)),
            then: Box::new(move |ctx| {
                if look(ctx, &m, &a, get)?.is_some() {
                    m.put_u32(ctx, a.nevents_ptr(), 0)?;
                }
                Ok(())
            }),
        })
    })?;
    // Never blocks: after the first read, data that is not there yet is a
    // short count (the read so far), as from a pipe.
    fn stdin_now<C>(_: &mut C) -> R<()> {
        if stdin_ready() {
            Ok(())
        } else {
            Err(errno::AGAIN.into())
        }
    }
    def_async(linker, "fd_read", move |c, p| {
        let fd = arg(&p[0]);
        let ctx = get(c.data_mut());
        let stdin = matches!(entry(ctx, fd, rights::FD_READ)?.fd, Fd::Stdin);
        let m = Mem::of(c, get)?;
        if !(stdin && get(c.data_mut()).stdin_is_inherited() && !stdin_ready()) {
            fd_read(c, &m, p, get, stdin_now)?;
            return Ok(Step::Done);
        }
        let p = p.to_vec();
        Ok(Step::Wait {
            until: Box::pin(crate::poll::until_ready(crate::poll::Wait {
                clock: None,
                stdin: true,
            })),
            then: Box::new(move |ctx| fd_read(ctx, &m, &p, get, stdin_now)),
        })
    })
}

/// Adds `wasi_snapshot_preview1` to `linker`. `get` finds the program's
/// [`WasiCtx`] in the store's data.
pub fn add_to_linker<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
) -> Result<()> {
    add_all(linker, get, true)
}

/// Every function; the two that wait (`poll_oneoff`, `fd_read`) only if
/// `waits` (the async linker defines its own).
fn add_all<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
    waits: bool,
) -> Result<()> {
    args_and_clocks(linker, get, waits)?;
    descriptors(linker, get)?;
    reads_and_writes(linker, get, waits)?;
    directories(linker, get)?;
    paths(linker, get)?;
    Ok(())
}

fn strings(ctx: &WasiCtx, env: bool) -> Vec<String> {
    if env {
        ctx.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    } else {
        ctx.args.clone()
    }
}

/// Number and total size (with NULs) of the arguments or variables.
fn sizes(items: &[String]) -> R<(u32, u32)> {
    let size: u64 = items.iter().map(|s| s.len() as u64 + 1).sum();
    let count = u32::try_from(items.len()).map_err(|_| errno::TOOBIG)?;
    let size = u32::try_from(size).map_err(|_| errno::TOOBIG)?;
    Ok((count, size))
}

/// The resolution of the host's clock, in nanoseconds.
fn clock_resolution(id: u32) -> u64 {
    #[cfg(unix)]
    {
        let clock = if id == 0 {
            libc::CLOCK_REALTIME
        } else {
            libc::CLOCK_MONOTONIC
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        if unsafe { libc::clock_getres(clock, &mut ts) } == 0 {
            let n = (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64;
            return n.max(1);
        }
        1
    }
    #[cfg(not(unix))]
    {
        let _ = id;
        // Windows' system time and performance counter tick in 100 ns.
        100
    }
}

fn args_and_clocks<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
    waits: bool,
) -> Result<()> {
    for (sizes_name, list_name, is_env) in [
        ("args_sizes_get", "args_get", false),
        ("environ_sizes_get", "environ_get", true),
    ] {
        def(linker, sizes_name, move |c, p| {
            let m = Mem::of(c, get)?;
            let (count, size) = sizes(&strings(get(c.data_mut()), is_env))?;
            m.put_u32(c, arg(&p[0]), count)?;
            m.put_u32(c, arg(&p[1]), size)
        })?;
        def(linker, list_name, move |c, p| {
            let m = Mem::of(c, get)?;
            let items = strings(get(c.data_mut()), is_env);
            let (count, size) = sizes(&items)?;
            let (ptrs, buf) = (arg(&p[0]), arg(&p[1]));
            // Both areas first, so nothing is written when one is out of bounds.
            m.bytes(c, ptrs, u64::from(count) * 4)?;
            m.bytes(c, buf, u64::from(size))?;
            let (mut at_ptr, mut at_buf) = (ptrs, buf);
            for s in items {
                m.put_u32(c, at_ptr, at_buf)?;
                let dst = m.bytes_mut(c, at_buf, s.len() as u64 + 1)?;
                dst[..s.len()].copy_from_slice(s.as_bytes());
                dst[s.len()] = 0;
                at_ptr += 4;
                at_buf += s.len() as u32 + 1;
            }
            Ok(())
        })?;
    }

    // Only the two clocks the host can measure for the program: CPU time of
    // a program whose store moves between threads has no honest meaning.
    def(linker, "clock_res_get", move |c, p| {
        let m = Mem::of(c, get)?;
        match arg(&p[0]) {
            id @ (0 | 1) => m.put_u64(c, arg(&p[1]), clock_resolution(id)),
            2 | 3 => Err(errno::NOTSUP.into()),
            _ => Err(errno::INVAL.into()),
        }
    })?;
    def(linker, "clock_time_get", move |c, p| {
        let m = Mem::of(c, get)?;
        let now = match arg(&p[0]) {
            0 => nanos(Ok(SystemTime::now())),
            1 => monotonic(get(c.data_mut())),
            2 | 3 => return Err(errno::NOTSUP.into()),
            _ => return Err(errno::INVAL.into()),
        };
        m.put_u64(c, arg(&p[2]), now)
    })?;
    def(linker, "random_get", move |c, p| {
        let m = Mem::of(c, get)?;
        // Filled in place, after the bounds check: no host buffer.
        let buf = m.bytes_mut(c, arg(&p[0]), u64::from(arg(&p[1])))?;
        getrandom::fill(buf).map_err(|_| Fail::Errno(errno::IO))
    })?;
    def(linker, "sched_yield", |_, _| {
        std::thread::yield_now();
        Ok(())
    })?;
    linker.func_new(
        MODULE,
        "proc_exit",
        FuncType::new([I32], []),
        |_c, p, _r| Err(Error::Exit(p[0].as_i32().unwrap_or(0))),
    )?;
    def(linker, "proc_raise", |_, _| Err(errno::NOSYS.into()))?;
    if waits {
        def(linker, "poll_oneoff", move |c, p| {
            crate::poll::poll_oneoff(c, p, get)
        })?;
    }
    for name in [
        "sock_accept",
        "sock_recv",
        "sock_send",
        "sock_shutdown",
        "path_link",
        "path_symlink",
        "path_filestat_set_times",
        "fd_filestat_set_times",
        "fd_allocate",
    ] {
        def(linker, name, |_, _| Err(errno::NOTSUP.into()))?;
    }
    Ok(())
}

/// Nanoseconds since the program started, on the host's monotonic clock.
pub(crate) fn monotonic(ctx: &WasiCtx) -> u64 {
    u64::try_from(ctx.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn descriptors<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
) -> Result<()> {
    def(linker, "fd_close", move |c, p| {
        let ctx = get(c.data_mut());
        entry(ctx, arg(&p[0]), 0)?;
        ctx.fds[arg(&p[0]) as usize] = None;
        Ok(())
    })?;
    def(linker, "fd_renumber", move |c, p| {
        let ctx = get(c.data_mut());
        let (from, to) = (arg(&p[0]), arg(&p[1]));
        entry(ctx, from, 0)?;
        entry(ctx, to, 0)?;
        let moved = ctx.fds[from as usize].take();
        ctx.fds[to as usize] = moved;
        Ok(())
    })?;
    def(linker, "fd_seek", move |c, p| {
        let m = Mem::of(c, get)?;
        let delta = p[1].as_i64().unwrap_or(0);
        let whence = arg(&p[2]);
        // Asking where one is needs only the right to tell.
        let needed = if whence == 1 && delta == 0 {
            rights::FD_TELL
        } else {
            rights::FD_SEEK
        };
        let f = file(get(c.data_mut()), arg(&p[0]), needed)?;
        let to = match whence {
            0 => SeekFrom::Start(u64::try_from(delta).map_err(|_| errno::INVAL)?),
            1 => SeekFrom::Current(delta),
            2 => SeekFrom::End(delta),
            _ => return Err(errno::INVAL.into()),
        };
        let pos = f.file.seek(to)?;
        m.put_u64(c, arg(&p[3]), pos)
    })?;
    def(linker, "fd_tell", move |c, p| {
        let m = Mem::of(c, get)?;
        let pos = file(get(c.data_mut()), arg(&p[0]), rights::FD_TELL)?
            .file
            .stream_position()?;
        m.put_u64(c, arg(&p[1]), pos)
    })?;
    def(linker, "fd_fdstat_get", move |c, p| {
        let m = Mem::of(c, get)?;
        let e = entry(get(c.data_mut()), arg(&p[0]), 0)?;
        let (kind, flags) = match &e.fd {
            Fd::Stdin | Fd::Stdout | Fd::Stderr => (FILETYPE_CHARACTER_DEVICE, 0u16),
            Fd::File(f) => (
                FILETYPE_REGULAR_FILE,
                if f.append { FDFLAGS_APPEND as u16 } else { 0 },
            ),
            Fd::Dir(_) => (FILETYPE_DIRECTORY, 0),
        };
        let mut b = [0u8; 24];
        b[0] = kind;
        b[2..4].copy_from_slice(&flags.to_le_bytes());
        b[8..16].copy_from_slice(&e.base.to_le_bytes());
        b[16..24].copy_from_slice(&e.inheriting.to_le_bytes());
        m.write(c, arg(&p[1]), &b)
    })?;
    def(linker, "fd_fdstat_set_flags", move |c, p| {
        let flags = arg(&p[1]);
        let f = file(get(c.data_mut()), arg(&p[0]), rights::FD_FDSTAT_SET_FLAGS)?;
        if flags & !FDFLAGS_APPEND != 0 {
            return Err(errno::NOTSUP.into());
        }
        f.append = flags & FDFLAGS_APPEND != 0;
        Ok(())
    })?;
    def(linker, "fd_fdstat_set_rights", move |c, p| {
        let e = entry(get(c.data_mut()), arg(&p[0]), 0)?;
        let (base, inheriting) = (arg64(&p[1]), arg64(&p[2]));
        // Rights can only be dropped, never gained.
        if base & !e.base != 0 || inheriting & !e.inheriting != 0 {
            return Err(errno::NOTCAPABLE.into());
        }
        e.base = base;
        e.inheriting = inheriting;
        Ok(())
    })?;
    def(linker, "fd_filestat_get", move |c, p| {
        let m = Mem::of(c, get)?;
        let stat = match &entry(get(c.data_mut()), arg(&p[0]), rights::FD_FILESTAT_GET)?.fd {
            Fd::File(f) => filestat(&f.file.metadata()?),
            Fd::Dir(d) => filestat(&d.dir.dir_metadata()?),
            _ => {
                let mut b = [0u8; 64];
                b[16] = FILETYPE_CHARACTER_DEVICE;
                b
            }
        };
        m.write(c, arg(&p[1]), &stat)
    })?;
    def(linker, "fd_filestat_set_size", move |c, p| {
        let size = offset(arg64(&p[1]))?;
        Ok(
            file(get(c.data_mut()), arg(&p[0]), rights::FD_FILESTAT_SET_SIZE)?
                .file
                .set_len(size)?,
        )
    })?;
    for (name, right) in [
        ("fd_sync", rights::FD_SYNC),
        ("fd_datasync", rights::FD_DATASYNC),
    ] {
        def(linker, name, move |c, p| {
            match &entry(get(c.data_mut()), arg(&p[0]), right)?.fd {
                Fd::File(f) => Ok(f.file.sync_all()?),
                _ => Ok(()),
            }
        })?;
    }
    def(linker, "fd_advise", move |c, p| {
        entry(get(c.data_mut()), arg(&p[0]), rights::FD_ADVISE)?;
        if arg(&p[3]) > 5 {
            return Err(errno::INVAL.into());
        }
        Ok(())
    })?;
    def(linker, "fd_prestat_get", move |c, p| {
        let m = Mem::of(c, get)?;
        let name = preopen_name(get(c.data_mut()), arg(&p[0]))?;
        let mut b = [0u8; 8];
        b[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
        m.write(c, arg(&p[1]), &b)
    })?;
    def(linker, "fd_prestat_dir_name", move |c, p| {
        let m = Mem::of(c, get)?;
        let name = preopen_name(get(c.data_mut()), arg(&p[0]))?;
        if name.len() > arg(&p[2]) as usize {
            return Err(errno::NAMETOOLONG.into());
        }
        m.write(c, arg(&p[1]), name.as_bytes())
    })?;
    Ok(())
}

fn preopen_name(ctx: &mut WasiCtx, fd: u32) -> R<String> {
    match &entry(ctx, fd, 0)?.fd {
        Fd::Dir(DirFd {
            preopen: Some(name),
            ..
        }) => Ok(name.clone()),
        _ => Err(errno::BADF.into()),
    }
}

/// `fd_read`; `wait_stdin` waits until the host's standard input has data
/// (or refuses to), before each read of it.
fn fd_read<B: Backend, T: Send + 'static, C: AsContextMut<Backend = B, Data = T>>(
    c: &mut C,
    m: &Mem<B>,
    p: &[Val<B>],
    get: fn(&mut T) -> &mut WasiCtx,
    wait_stdin: impl Fn(&mut C) -> R<()>,
) -> R<()> {
    let fd = arg(&p[0]);
    entry(get(c.as_context_mut().data_mut()), fd, rights::FD_READ)?;
    let n = m.scatter(c, arg(&p[1]), arg(&p[2]), |c, chunk| {
        {
            let mut ctx = c.as_context_mut();
            match &mut entry(get(ctx.data_mut()), fd, rights::FD_READ)?.fd {
                Fd::File(f) => return Ok(f.file.read(chunk)?),
                Fd::Stdin => {}
                _ => return Err(errno::BADF.into()),
            }
        }
        if get(c.as_context_mut().data_mut()).stdin_is_inherited() {
            wait_stdin(c)?;
        }
        Ok(get(c.as_context_mut().data_mut()).read_stdin(chunk)?)
    })?;
    m.put_u32(c, arg(&p[3]), n as u32)
}

fn reads_and_writes<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
    waits: bool,
) -> Result<()> {
    def(linker, "fd_write", move |c, p| {
        let m = Mem::of(c, get)?;
        let fd = arg(&p[0]);
        entry(get(c.data_mut()), fd, rights::FD_WRITE)?;
        let n = m.gather(c, arg(&p[1]), arg(&p[2]), |c, chunk| {
            let ctx = get(c.data_mut());
            Ok(match &mut entry(ctx, fd, rights::FD_WRITE)?.fd {
                Fd::Stdout => ctx.write_out(false, chunk)?,
                Fd::Stderr => ctx.write_out(true, chunk)?,
                Fd::File(f) => {
                    if f.append {
                        f.file.seek(SeekFrom::End(0))?;
                    }
                    f.file.write(chunk)?
                }
                _ => return Err(errno::BADF.into()),
            })
        })?;
        m.put_u32(c, arg(&p[3]), n as u32)
    })?;
    if waits {
        def(linker, "fd_read", move |c, p| {
            let m = Mem::of(c, get)?;
            fd_read(c, &m, p, get, |c| crate::poll::wait_stdin_readable(c))
        })?;
    }
    // Positioned reads and writes leave the descriptor's position where it was.
    def(linker, "fd_pwrite", move |c, p| {
        let m = Mem::of(c, get)?;
        let fd = arg(&p[0]);
        let at = offset(arg64(&p[3]))?;
        let f = file(get(c.data_mut()), fd, rights::FD_WRITE | rights::FD_SEEK)?;
        let saved = f.file.stream_position()?;
        f.file.seek(SeekFrom::Start(at))?;
        let n = m.gather(c, arg(&p[1]), arg(&p[2]), |c, chunk| {
            Ok(file(get(c.data_mut()), fd, rights::FD_WRITE)?
                .file
                .write(chunk)?)
        });
        file(get(c.data_mut()), fd, 0)?
            .file
            .seek(SeekFrom::Start(saved))?;
        m.put_u32(c, arg(&p[4]), n? as u32)
    })?;
    def(linker, "fd_pread", move |c, p| {
        let m = Mem::of(c, get)?;
        let fd = arg(&p[0]);
        let at = offset(arg64(&p[3]))?;
        let f = file(get(c.data_mut()), fd, rights::FD_READ | rights::FD_SEEK)?;
        let saved = f.file.stream_position()?;
        f.file.seek(SeekFrom::Start(at))?;
        let n = m.scatter(c, arg(&p[1]), arg(&p[2]), |c, chunk| {
            Ok(file(get(c.data_mut()), fd, rights::FD_READ)?
                .file
                .read(chunk)?)
        });
        file(get(c.data_mut()), fd, 0)?
            .file
            .seek(SeekFrom::Start(saved))?;
        m.put_u32(c, arg(&p[4]), n? as u32)
    })?;
    Ok(())
}

fn directories<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
) -> Result<()> {
    def(linker, "fd_readdir", move |c, p| {
        let m = Mem::of(c, get)?;
        let (buf, cap, cookie) = (arg(&p[1]), arg(&p[2]), arg64(&p[3]));
        m.bytes(c, buf, u64::from(cap))?;
        let d = dir(get(c.data_mut()), arg(&p[0]), rights::FD_READDIR)?;
        // A listing that starts over (cookie 0, as after `rewinddir`) sees
        // the directory as it is now.
        if cookie == 0 || d.entries.is_none() {
            let mut list = vec![
                (".".to_string(), FILETYPE_DIRECTORY),
                ("..".to_string(), FILETYPE_DIRECTORY),
            ];
            let mut names: Vec<(String, u8)> = d
                .dir
                .entries()?
                .filter_map(|e| e.ok())
                .map(|e| {
                    let kind = e.file_type().map_or(FILETYPE_UNKNOWN, file_type);
                    (e.file_name().to_string_lossy().into_owned(), kind)
                })
                .collect();
            // The same order on every host and backend.
            names.sort();
            list.extend(names);
            d.entries = Some(list);
        }
        let entries = d.entries.clone().unwrap_or_default();
        let start = usize::try_from(cookie).unwrap_or(usize::MAX);
        let mut used = 0u32;
        for (i, (name, kind)) in entries.iter().enumerate().skip(start) {
            if used >= cap {
                break;
            }
            let mut e = Vec::with_capacity(24 + name.len());
            e.extend_from_slice(&(i as u64 + 1).to_le_bytes());
            e.extend_from_slice(&0u64.to_le_bytes());
            e.extend_from_slice(&(name.len() as u32).to_le_bytes());
            e.push(*kind);
            e.extend_from_slice(&[0, 0, 0]);
            e.extend_from_slice(name.as_bytes());
            // The last entry may be cut; the program sees a full buffer and
            // asks again from its cookie.
            let n = (cap - used).min(e.len() as u32);
            m.write(c, buf + used, &e[..n as usize])?;
            used += n;
        }
        m.put_u32(c, arg(&p[4]), used)
    })?;
    Ok(())
}

fn paths<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
) -> Result<()> {
    def(linker, "path_open", move |c, p| path_open(c, p, get))?;
    def(linker, "path_filestat_get", move |c, p| {
        let m = Mem::of(c, get)?;
        let path = m.path(c, arg(&p[2]), arg(&p[3]))?;
        let follow = arg(&p[1]) & LOOKUP_SYMLINK_FOLLOW != 0;
        let d = dir(get(c.data_mut()), arg(&p[0]), rights::PATH_FILESTAT_GET)?;
        let meta = if follow {
            d.dir.metadata(&path)?
        } else {
            d.dir.symlink_metadata(&path)?
        };
        m.write(c, arg(&p[4]), &filestat(&meta))
    })?;
    def(linker, "path_create_directory", move |c, p| {
        let m = Mem::of(c, get)?;
        let path = m.path(c, arg(&p[1]), arg(&p[2]))?;
        let d = dir(get(c.data_mut()), arg(&p[0]), rights::PATH_CREATE_DIRECTORY)?;
        Ok(d.dir.create_dir(&path)?)
    })?;
    def(linker, "path_remove_directory", move |c, p| {
        let m = Mem::of(c, get)?;
        let path = m.path(c, arg(&p[1]), arg(&p[2]))?;
        let d = dir(get(c.data_mut()), arg(&p[0]), rights::PATH_REMOVE_DIRECTORY)?;
        Ok(d.dir.remove_dir(&path)?)
    })?;
    def(linker, "path_unlink_file", move |c, p| {
        let m = Mem::of(c, get)?;
        let path = m.path(c, arg(&p[1]), arg(&p[2]))?;
        let d = dir(get(c.data_mut()), arg(&p[0]), rights::PATH_UNLINK_FILE)?;
        Ok(d.dir.remove_file(&path)?)
    })?;
    def(linker, "path_rename", move |c, p| {
        let m = Mem::of(c, get)?;
        let from = m.path(c, arg(&p[1]), arg(&p[2]))?;
        let to = m.path(c, arg(&p[4]), arg(&p[5]))?;
        let ctx = get(c.data_mut());
        let target = dir(ctx, arg(&p[3]), rights::PATH_RENAME_TARGET)?
            .dir
            .try_clone()?;
        let src = dir(ctx, arg(&p[0]), rights::PATH_RENAME_SOURCE)?;
        Ok(src.dir.rename(&from, &target, &to)?)
    })?;
    def(linker, "path_readlink", move |c, p| {
        let m = Mem::of(c, get)?;
        let path = m.path(c, arg(&p[1]), arg(&p[2]))?;
        let (buf, cap) = (arg(&p[3]), arg(&p[4]));
        m.bytes(c, buf, u64::from(cap))?;
        let d = dir(get(c.data_mut()), arg(&p[0]), rights::PATH_READLINK)?;
        let target = d.dir.read_link_contents(&path)?;
        let bytes = target.to_string_lossy().into_owned().into_bytes();
        let n = bytes.len().min(cap as usize);
        m.write(c, buf, &bytes[..n])?;
        m.put_u32(c, arg(&p[5]), n as u32)
    })?;
    Ok(())
}

fn path_open<B: Backend, T: Send + 'static>(
    c: &mut Caller<'_, B, T>,
    p: &[Val<B>],
    get: fn(&mut T) -> &mut WasiCtx,
) -> R<()> {
    let m = Mem::of(c, get)?;
    let path = m.path(c, arg(&p[2]), arg(&p[3]))?;
    m.bytes(c, arg(&p[8]), 4)?;
    let follow = if arg(&p[1]) & LOOKUP_SYMLINK_FOLLOW != 0 {
        FollowSymlinks::Yes
    } else {
        FollowSymlinks::No
    };
    let (oflags, wanted, wanted_inheriting, fdflags) =
        (arg(&p[4]), arg64(&p[5]), arg64(&p[6]), arg(&p[7]));
    let ctx = get(c.data_mut());
    if ctx.fds.iter().filter(|f| f.is_some()).count() >= ctx.max_open_files {
        return Err(errno::MFILE.into());
    }
    let mut needed = rights::PATH_OPEN;
    if oflags & OFLAGS_CREAT != 0 {
        needed |= rights::PATH_CREATE_FILE;
    }
    if oflags & OFLAGS_TRUNC != 0 {
        needed |= rights::PATH_FILESTAT_SET_SIZE;
    }
    let parent = entry(ctx, arg(&p[0]), needed)?;
    let Fd::Dir(d) = &parent.fd else {
        return Err(errno::NOTDIR.into());
    };
    let offered = parent.inheriting;
    // Rights a program asks for beyond what the directory passes on are
    // dropped, as wasi-libc expects, except the right to write: asking to
    // write where writing cannot be granted fails at once.
    if wanted & rights::FD_WRITE != 0 && offered & rights::FD_WRITE == 0 {
        return Err(errno::NOTCAPABLE.into());
    }
    let append = fdflags & FDFLAGS_APPEND != 0;
    if append && offered & rights::FD_WRITE == 0 {
        return Err(errno::NOTCAPABLE.into());
    }
    let meta = match follow {
        FollowSymlinks::Yes => d.dir.metadata(&path),
        FollowSymlinks::No => d.dir.symlink_metadata(&path),
    };
    let is_dir = meta.as_ref().is_ok_and(|md| md.is_dir());
    let write = wanted & rights::FD_WRITE != 0 || append;
    let creates = oflags & (OFLAGS_CREAT | OFLAGS_TRUNC) != 0;
    let entry = if oflags & OFLAGS_DIRECTORY != 0 || (is_dir && !write && !creates) {
        if meta.is_ok() && !is_dir {
            return Err(errno::NOTDIR.into());
        }
        let opened = match follow {
            FollowSymlinks::Yes => d.dir.open_dir(&path)?,
            FollowSymlinks::No => d.dir.open_dir_nofollow(&path)?,
        };
        Entry {
            fd: Fd::Dir(DirFd {
                dir: opened,
                preopen: None,
                entries: None,
            }),
            base: wanted & offered & rights::DIR_ALL,
            inheriting: wanted_inheriting & offered,
        }
    } else {
        if is_dir {
            return Err(errno::ISDIR.into());
        }
        let mut o = OpenOptions::new();
        let read = wanted & rights::FD_READ != 0 || !write;
        o.read(read).write(write).append(append).follow(follow);
        if oflags & OFLAGS_CREAT != 0 {
            if oflags & OFLAGS_EXCL != 0 {
                o.create_new(true);
            } else {
                o.create(true);
            }
        }
        if oflags & OFLAGS_TRUNC != 0 {
            o.truncate(true);
        }
        let file = d.dir.open_with(&path, &o)?;
        let mut base = wanted & offered & rights::FILE_ALL;
        if !write {
            base &= !rights::FILE_WRITE;
        }
        Entry {
            fd: Fd::File(FileFd { file, append }),
            base,
            inheriting: 0,
        }
    };
    let slot = match ctx.fds.iter().position(Option::is_none) {
        Some(i) => i,
        None => {
            ctx.fds.push(None);
            ctx.fds.len() - 1
        }
    };
    ctx.fds[slot] = Some(entry);
    m.put_u32(c, arg(&p[8]), slot as u32)
}
