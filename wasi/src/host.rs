//! The `wasi_snapshot_preview1` functions, as dynamic host functions on the
//! core API, so they behave the same on every backend.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anywasm_core::{Backend, Caller, Error, FuncType, Linker, Memory, Result, Val, ValType};
use cap_std::fs::OpenOptions;

use crate::ctx::{DirFd, Fd, FileFd, WasiCtx};
use crate::errno::{self, Errno};

const MODULE: &str = "wasi_snapshot_preview1";

// Layout constants of the preview-1 ABI (wasm32).
const FILETYPE_UNKNOWN: u8 = 0;
const FILETYPE_CHARACTER_DEVICE: u8 = 2;
const FILETYPE_DIRECTORY: u8 = 3;
const FILETYPE_REGULAR_FILE: u8 = 4;
const FILETYPE_SYMBOLIC_LINK: u8 = 7;
const OFLAGS_CREAT: i32 = 1;
const OFLAGS_DIRECTORY: i32 = 2;
const OFLAGS_EXCL: i32 = 4;
const OFLAGS_TRUNC: i32 = 8;
const FDFLAGS_APPEND: i32 = 1;
const RIGHTS_FD_READ: u64 = 1 << 1;
const RIGHTS_FD_WRITE: u64 = 1 << 6;
const RIGHTS_ALL: u64 = (1 << 30) - 1;

/// A failed call: either an errno for the program, or an error for the host
/// (`proc_exit`, no memory).
enum Fail {
    Errno(Errno),
    Host(Error),
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail::Errno(e)
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail::Errno(errno::from_io(&e))
    }
}

type R<T> = std::result::Result<T, Fail>;

/// Guest memory through the caller.
struct Mem<B: Backend> {
    memory: Memory<B>,
}

impl<B: Backend> Mem<B> {
    fn of<T: Send + 'static>(caller: &mut Caller<'_, B, T>) -> R<Self> {
        caller
            .get_memory("memory")
            .map(|memory| Mem { memory })
            .ok_or_else(|| {
                Fail::Host(Error::host_msg(
                    "WASI needs the program to export its `memory`",
                ))
            })
    }

    fn bytes<T: Send + 'static>(&self, c: &Caller<'_, B, T>, ptr: u32, len: u32) -> R<Vec<u8>> {
        self.memory
            .read_vec(c, u64::from(ptr), len as usize)
            .map_err(|_| Fail::Errno(errno::FAULT))
    }

    fn string<T: Send + 'static>(&self, c: &Caller<'_, B, T>, ptr: u32, len: u32) -> R<String> {
        String::from_utf8(self.bytes(c, ptr, len)?).map_err(|_| Fail::Errno(errno::INVAL))
    }

    fn write<T: Send + 'static>(&self, c: &mut Caller<'_, B, T>, ptr: u32, bytes: &[u8]) -> R<()> {
        self.memory
            .write(c, u64::from(ptr), bytes)
            .map_err(|_| Fail::Errno(errno::FAULT))
    }

    fn put_u32<T: Send + 'static>(&self, c: &mut Caller<'_, B, T>, ptr: u32, v: u32) -> R<()> {
        self.write(c, ptr, &v.to_le_bytes())
    }

    fn put_u64<T: Send + 'static>(&self, c: &mut Caller<'_, B, T>, ptr: u32, v: u64) -> R<()> {
        self.write(c, ptr, &v.to_le_bytes())
    }

    /// The (pointer, length) pairs of an iovec array.
    fn iovecs<T: Send + 'static>(
        &self,
        c: &Caller<'_, B, T>,
        ptr: u32,
        count: u32,
    ) -> R<Vec<(u32, u32)>> {
        let raw = self.bytes(c, ptr, count.checked_mul(8).ok_or(errno::INVAL)?)?;
        Ok(raw
            .chunks_exact(8)
            .map(|v| {
                let p = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                let l = u32::from_le_bytes([v[4], v[5], v[6], v[7]]);
                (p, l)
            })
            .collect())
    }
}

fn arg(v: &Val<impl Backend>) -> u32 {
    v.as_i32().unwrap_or(0) as u32
}

fn arg64(v: &Val<impl Backend>) -> u64 {
    v.as_i64().unwrap_or(0) as u64
}

fn fd_mut(ctx: &mut WasiCtx, fd: u32) -> R<&mut Fd> {
    ctx.fds
        .get_mut(fd as usize)
        .and_then(Option::as_mut)
        .ok_or(Fail::Errno(errno::BADF))
}

fn dir_mut(ctx: &mut WasiCtx, fd: u32) -> R<&mut DirFd> {
    match fd_mut(ctx, fd)? {
        Fd::Dir(d) => Ok(d),
        _ => Err(Fail::Errno(errno::NOTDIR)),
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
        .map_or(0, |d| d.as_nanos() as u64)
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

fn check_writable(d: &DirFd) -> R<()> {
    if d.read_only {
        return Err(Fail::Errno(errno::NOTCAPABLE));
    }
    Ok(())
}

/// Defines one function: `params` and `results` give its wasm type; the
/// body returns the errno (or the results) as `Val`s.
fn def<B, T, F>(linker: &mut Linker<B, T>, name: &str, params: &[ValType], f: F) -> Result<()>
where
    B: Backend,
    T: Send + 'static,
    F: Fn(&mut Caller<'_, B, T>, &[Val<B>]) -> R<()> + Send + Sync + 'static,
{
    let ty = FuncType::new(params.iter().copied(), [ValType::I32]);
    linker.func_new(MODULE, name, ty, move |mut caller, p, r| {
        r[0] = Val::I32(match f(&mut caller, p) {
            Ok(()) => i32::from(errno::SUCCESS),
            Err(Fail::Errno(e)) => i32::from(e),
            Err(Fail::Host(e)) => return Err(e),
        });
        Ok(())
    })?;
    Ok(())
}

/// Adds `wasi_snapshot_preview1` to `linker`. `get` finds the program's
/// [`WasiCtx`] in the store's data.
pub fn add_to_linker<B: Backend, T: Send + 'static>(
    linker: &mut Linker<B, T>,
    get: fn(&mut T) -> &mut WasiCtx,
) -> Result<()> {
    use ValType::{I32, I64};

    // Arguments and environment.
    for (sizes, list, is_env) in [
        ("args_sizes_get", "args_get", false),
        ("environ_sizes_get", "environ_get", true),
    ] {
        def(linker, sizes, &[I32, I32], move |c, p| {
            let m = Mem::of(c)?;
            let items: Vec<String> = strings(get(c.data_mut()), is_env);
            let size: usize = items.iter().map(|s| s.len() + 1).sum();
            m.put_u32(c, arg(&p[0]), items.len() as u32)?;
            m.put_u32(c, arg(&p[1]), size as u32)
        })?;
        def(linker, list, &[I32, I32], move |c, p| {
            let m = Mem::of(c)?;
            let items = strings(get(c.data_mut()), is_env);
            let (mut ptrs, mut buf) = (arg(&p[0]), arg(&p[1]));
            for s in items {
                m.put_u32(c, ptrs, buf)?;
                let mut bytes = s.into_bytes();
                bytes.push(0);
                m.write(c, buf, &bytes)?;
                ptrs += 4;
                buf += bytes.len() as u32;
            }
            Ok(())
        })?;
    }

    // Clocks, randomness, scheduling, exit.
    def(linker, "clock_res_get", &[I32, I32], |c, p| {
        let m = Mem::of(c)?;
        if arg(&p[0]) > 3 {
            return Err(errno::INVAL.into());
        }
        m.put_u64(c, arg(&p[1]), 1)
    })?;
    def(linker, "clock_time_get", &[I32, I64, I32], move |c, p| {
        let m = Mem::of(c)?;
        let now = match arg(&p[0]) {
            0 => nanos(Ok(SystemTime::now())),
            1..=3 => get(c.data_mut()).start.elapsed().as_nanos() as u64,
            _ => return Err(errno::INVAL.into()),
        };
        m.put_u64(c, arg(&p[2]), now)
    })?;
    def(linker, "random_get", &[I32, I32], |c, p| {
        let m = Mem::of(c)?;
        let mut buf = vec![0u8; arg(&p[1]) as usize];
        getrandom::fill(&mut buf).map_err(|_| Fail::Errno(errno::IO))?;
        m.write(c, arg(&p[0]), &buf)
    })?;
    def(linker, "sched_yield", &[], |_, _| {
        std::thread::yield_now();
        Ok(())
    })?;
    linker.func_new(
        MODULE,
        "proc_exit",
        FuncType::new([I32], []),
        |_c, p, _r| Err(Error::Exit(p[0].as_i32().unwrap_or(0))),
    )?;
    def(
        linker,
        "proc_raise",
        &[I32],
        |_, _| Err(errno::NOSYS.into()),
    )?;
    def(linker, "poll_oneoff", &[I32, I32, I32, I32], move |c, p| {
        poll_oneoff(c, p, get)
    })?;

    // File descriptors.
    def(linker, "fd_write", &[I32, I32, I32, I32], move |c, p| {
        let m = Mem::of(c)?;
        let mut data = Vec::new();
        for (ptr, len) in m.iovecs(c, arg(&p[1]), arg(&p[2]))? {
            data.extend(m.bytes(c, ptr, len)?);
        }
        let ctx = get(c.data_mut());
        let n = match fd_mut(ctx, arg(&p[0]))? {
            Fd::Stdout => ctx.write_out(false, &data)?,
            Fd::Stderr => ctx.write_out(true, &data)?,
            Fd::File(f) if f.write => {
                if f.append {
                    f.file.seek(SeekFrom::End(0))?;
                }
                f.file.write_all(&data)?;
                data.len()
            }
            Fd::Dir(_) => return Err(errno::ISDIR.into()),
            _ => return Err(errno::BADF.into()),
        };
        m.put_u32(c, arg(&p[3]), n as u32)
    })?;
    def(
        linker,
        "fd_pwrite",
        &[I32, I32, I32, I64, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let mut data = Vec::new();
            for (ptr, len) in m.iovecs(c, arg(&p[1]), arg(&p[2]))? {
                data.extend(m.bytes(c, ptr, len)?);
            }
            let Fd::File(f) = fd_mut(get(c.data_mut()), arg(&p[0]))? else {
                return Err(errno::SPIPE.into());
            };
            if !f.write {
                return Err(errno::BADF.into());
            }
            let pos = f.file.stream_position()?;
            f.file.seek(SeekFrom::Start(arg64(&p[3])))?;
            let r = f.file.write_all(&data);
            f.file.seek(SeekFrom::Start(pos))?;
            r?;
            m.put_u32(c, arg(&p[4]), data.len() as u32)
        },
    )?;
    for (name, positioned) in [("fd_read", false), ("fd_pread", true)] {
        let params: &[ValType] = if positioned {
            &[I32, I32, I32, I64, I32]
        } else {
            &[I32, I32, I32, I32]
        };
        def(linker, name, params, move |c, p| {
            let m = Mem::of(c)?;
            let iovs = m.iovecs(c, arg(&p[1]), arg(&p[2]))?;
            let want: usize = iovs.iter().map(|(_, l)| *l as usize).sum();
            let mut buf = vec![0u8; want];
            let ctx = get(c.data_mut());
            let n = match fd_mut(ctx, arg(&p[0]))? {
                Fd::Stdin if !positioned => ctx.read_stdin(&mut buf)?,
                Fd::File(f) if f.read => {
                    if positioned {
                        let pos = f.file.stream_position()?;
                        f.file.seek(SeekFrom::Start(arg64(&p[3])))?;
                        let r = read_full(&mut f.file, &mut buf);
                        f.file.seek(SeekFrom::Start(pos))?;
                        r?
                    } else {
                        read_full(&mut f.file, &mut buf)?
                    }
                }
                Fd::Dir(_) => return Err(errno::ISDIR.into()),
                _ => return Err(errno::BADF.into()),
            };
            let mut left = &buf[..n];
            for (ptr, len) in iovs {
                let take = left.len().min(len as usize);
                m.write(c, ptr, &left[..take])?;
                left = &left[take..];
            }
            m.put_u32(c, arg(&p[if positioned { 4 } else { 3 }]), n as u32)
        })?;
    }
    def(linker, "fd_close", &[I32], move |c, p| {
        let ctx = get(c.data_mut());
        fd_mut(ctx, arg(&p[0]))?;
        ctx.fds[arg(&p[0]) as usize] = None;
        Ok(())
    })?;
    def(linker, "fd_seek", &[I32, I64, I32, I32], move |c, p| {
        let m = Mem::of(c)?;
        let offset = p[1].as_i64().unwrap_or(0);
        let Fd::File(f) = fd_mut(get(c.data_mut()), arg(&p[0]))? else {
            return Err(errno::SPIPE.into());
        };
        let to = match arg(&p[2]) {
            0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| errno::INVAL)?),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => return Err(errno::INVAL.into()),
        };
        let pos = f.file.seek(to)?;
        m.put_u64(c, arg(&p[3]), pos)
    })?;
    def(linker, "fd_tell", &[I32, I32], move |c, p| {
        let m = Mem::of(c)?;
        let Fd::File(f) = fd_mut(get(c.data_mut()), arg(&p[0]))? else {
            return Err(errno::SPIPE.into());
        };
        let pos = f.file.stream_position()?;
        m.put_u64(c, arg(&p[1]), pos)
    })?;
    def(linker, "fd_fdstat_get", &[I32, I32], move |c, p| {
        let m = Mem::of(c)?;
        let (kind, flags) = match fd_mut(get(c.data_mut()), arg(&p[0]))? {
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
        b[8..16].copy_from_slice(&RIGHTS_ALL.to_le_bytes());
        b[16..24].copy_from_slice(&RIGHTS_ALL.to_le_bytes());
        m.write(c, arg(&p[1]), &b)
    })?;
    def(linker, "fd_fdstat_set_flags", &[I32, I32], move |c, p| {
        let flags = arg(&p[1]) as i32;
        match fd_mut(get(c.data_mut()), arg(&p[0]))? {
            Fd::File(f) if flags & !FDFLAGS_APPEND == 0 => {
                f.append = flags & FDFLAGS_APPEND != 0;
                Ok(())
            }
            _ => Err(errno::NOTSUP.into()),
        }
    })?;
    def(linker, "fd_fdstat_set_rights", &[I32, I64, I64], |_, _| {
        Err(errno::NOTSUP.into())
    })?;
    def(linker, "fd_filestat_get", &[I32, I32], move |c, p| {
        let m = Mem::of(c)?;
        let stat = match fd_mut(get(c.data_mut()), arg(&p[0]))? {
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
    def(
        linker,
        "fd_filestat_set_size",
        &[I32, I64],
        move |c, p| match fd_mut(get(c.data_mut()), arg(&p[0]))? {
            Fd::File(f) if f.write => Ok(f.file.set_len(arg64(&p[1]))?),
            _ => Err(errno::BADF.into()),
        },
    )?;
    def(
        linker,
        "fd_filestat_set_times",
        &[I32, I64, I64, I32],
        |_, _| Err(errno::NOTSUP.into()),
    )?;
    for name in ["fd_sync", "fd_datasync"] {
        def(linker, name, &[I32], move |c, p| {
            match fd_mut(get(c.data_mut()), arg(&p[0]))? {
                Fd::File(f) => Ok(f.file.sync_all()?),
                _ => Ok(()),
            }
        })?;
    }
    def(linker, "fd_advise", &[I32, I64, I64, I32], move |c, p| {
        fd_mut(get(c.data_mut()), arg(&p[0]))?;
        Ok(())
    })?;
    def(linker, "fd_allocate", &[I32, I64, I64], |_, _| {
        Err(errno::NOTSUP.into())
    })?;
    def(linker, "fd_renumber", &[I32, I32], move |c, p| {
        let ctx = get(c.data_mut());
        let (from, to) = (arg(&p[0]) as usize, arg(&p[1]) as usize);
        fd_mut(ctx, from as u32)?;
        fd_mut(ctx, to as u32)?;
        let moved = ctx.fds[from].take();
        ctx.fds[to] = moved;
        Ok(())
    })?;
    def(linker, "fd_prestat_get", &[I32, I32], move |c, p| {
        let m = Mem::of(c)?;
        let Fd::Dir(DirFd {
            preopen: Some(name),
            ..
        }) = fd_mut(get(c.data_mut()), arg(&p[0]))?
        else {
            return Err(errno::BADF.into());
        };
        let len = name.len() as u32;
        let mut b = [0u8; 8];
        b[4..8].copy_from_slice(&len.to_le_bytes());
        m.write(c, arg(&p[1]), &b)
    })?;
    def(
        linker,
        "fd_prestat_dir_name",
        &[I32, I32, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let Fd::Dir(DirFd {
                preopen: Some(name),
                ..
            }) = fd_mut(get(c.data_mut()), arg(&p[0]))?
            else {
                return Err(errno::BADF.into());
            };
            let name = name.clone().into_bytes();
            if name.len() > arg(&p[2]) as usize {
                return Err(errno::NAMETOOLONG.into());
            }
            m.write(c, arg(&p[1]), &name)
        },
    )?;
    def(
        linker,
        "fd_readdir",
        &[I32, I32, I32, I64, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let d = dir_mut(get(c.data_mut()), arg(&p[0]))?;
            if d.entries.is_none() {
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
            let (buf, cap) = (arg(&p[1]), arg(&p[2]) as usize);
            let mut out = Vec::new();
            for (i, (name, kind)) in entries.iter().enumerate().skip(arg64(&p[3]) as usize) {
                let mut e = Vec::with_capacity(24 + name.len());
                e.extend_from_slice(&(i as u64 + 1).to_le_bytes());
                e.extend_from_slice(&0u64.to_le_bytes());
                e.extend_from_slice(&(name.len() as u32).to_le_bytes());
                e.push(*kind);
                e.extend_from_slice(&[0, 0, 0]);
                e.extend_from_slice(name.as_bytes());
                out.extend(e);
                if out.len() >= cap {
                    break;
                }
            }
            out.truncate(cap);
            m.write(c, buf, &out)?;
            m.put_u32(c, arg(&p[4]), out.len() as u32)
        },
    )?;

    // Paths, always relative to an open directory (cap-std refuses any way out).
    def(
        linker,
        "path_open",
        &[I32, I32, I32, I32, I32, I64, I64, I32, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let path = m.string(c, arg(&p[2]), arg(&p[3]))?;
            let (oflags, rights, fdflags) = (arg(&p[4]) as i32, arg64(&p[5]), arg(&p[7]) as i32);
            let ctx = get(c.data_mut());
            let d = dir_mut(ctx, arg(&p[0]))?;
            let read_only = d.read_only;
            let write = rights & RIGHTS_FD_WRITE != 0;
            let creates = oflags & (OFLAGS_CREAT | OFLAGS_TRUNC) != 0;
            if read_only && (write || creates || fdflags & FDFLAGS_APPEND != 0) {
                return Err(errno::NOTCAPABLE.into());
            }
            let is_dir = d.dir.metadata(&path).map(|md| md.is_dir()).unwrap_or(false);
            let fd = if oflags & OFLAGS_DIRECTORY != 0 || (is_dir && !write && !creates) {
                if !is_dir && oflags & OFLAGS_DIRECTORY != 0 && d.dir.metadata(&path).is_ok() {
                    return Err(errno::NOTDIR.into());
                }
                Fd::Dir(DirFd {
                    dir: d.dir.open_dir(&path)?,
                    preopen: None,
                    read_only,
                    entries: None,
                })
            } else {
                if is_dir {
                    return Err(errno::ISDIR.into());
                }
                let mut o = OpenOptions::new();
                let read = rights & RIGHTS_FD_READ != 0 || !write;
                o.read(read)
                    .write(write)
                    .append(fdflags & FDFLAGS_APPEND != 0);
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
                Fd::File(FileFd {
                    file,
                    read,
                    write,
                    append: fdflags & FDFLAGS_APPEND != 0,
                })
            };
            let slot = match ctx.fds.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    ctx.fds.push(None);
                    ctx.fds.len() - 1
                }
            };
            ctx.fds[slot] = Some(fd);
            m.put_u32(c, arg(&p[8]), slot as u32)
        },
    )?;
    def(
        linker,
        "path_filestat_get",
        &[I32, I32, I32, I32, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let path = m.string(c, arg(&p[2]), arg(&p[3]))?;
            let follow = arg(&p[1]) & 1 != 0;
            let d = dir_mut(get(c.data_mut()), arg(&p[0]))?;
            let meta = if follow {
                d.dir.metadata(&path)?
            } else {
                d.dir.symlink_metadata(&path)?
            };
            m.write(c, arg(&p[4]), &filestat(&meta))
        },
    )?;
    def(
        linker,
        "path_create_directory",
        &[I32, I32, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let path = m.string(c, arg(&p[1]), arg(&p[2]))?;
            let d = dir_mut(get(c.data_mut()), arg(&p[0]))?;
            check_writable(d)?;
            Ok(d.dir.create_dir(&path)?)
        },
    )?;
    def(
        linker,
        "path_remove_directory",
        &[I32, I32, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let path = m.string(c, arg(&p[1]), arg(&p[2]))?;
            let d = dir_mut(get(c.data_mut()), arg(&p[0]))?;
            check_writable(d)?;
            Ok(d.dir.remove_dir(&path)?)
        },
    )?;
    def(linker, "path_unlink_file", &[I32, I32, I32], move |c, p| {
        let m = Mem::of(c)?;
        let path = m.string(c, arg(&p[1]), arg(&p[2]))?;
        let d = dir_mut(get(c.data_mut()), arg(&p[0]))?;
        check_writable(d)?;
        Ok(d.dir.remove_file(&path)?)
    })?;
    def(
        linker,
        "path_rename",
        &[I32, I32, I32, I32, I32, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let from = m.string(c, arg(&p[1]), arg(&p[2]))?;
            let to = m.string(c, arg(&p[4]), arg(&p[5]))?;
            let ctx = get(c.data_mut());
            let (a, b) = (arg(&p[0]), arg(&p[3]));
            check_writable(dir_mut(ctx, b)?)?;
            let target = dir_mut(ctx, b)?.dir.try_clone()?;
            let src = dir_mut(ctx, a)?;
            check_writable(src)?;
            Ok(src.dir.rename(&from, &target, &to)?)
        },
    )?;
    def(
        linker,
        "path_readlink",
        &[I32, I32, I32, I32, I32, I32],
        move |c, p| {
            let m = Mem::of(c)?;
            let path = m.string(c, arg(&p[1]), arg(&p[2]))?;
            let d = dir_mut(get(c.data_mut()), arg(&p[0]))?;
            let target = d.dir.read_link_contents(&path)?;
            let bytes = target.to_string_lossy().into_owned().into_bytes();
            let n = bytes.len().min(arg(&p[4]) as usize);
            m.write(c, arg(&p[3]), &bytes[..n])?;
            m.put_u32(c, arg(&p[5]), n as u32)
        },
    )?;
    for (name, params) in [
        (
            "path_filestat_set_times",
            &[I32, I32, I32, I32, I64, I64, I32][..],
        ),
        ("path_link", &[I32, I32, I32, I32, I32, I32, I32][..]),
        ("path_symlink", &[I32, I32, I32, I32, I32][..]),
        ("sock_accept", &[I32, I32, I32][..]),
        ("sock_recv", &[I32, I32, I32, I32, I32, I32][..]),
        ("sock_send", &[I32, I32, I32, I32, I32][..]),
        ("sock_shutdown", &[I32, I32][..]),
    ] {
        def(linker, name, params, |_, _| Err(errno::NOTSUP.into()))?;
    }
    Ok(())
}

fn strings(ctx: &mut WasiCtx, env: bool) -> Vec<String> {
    if env {
        ctx.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    } else {
        ctx.args.clone()
    }
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Clock subscriptions sleep (the earliest one fires); reads and writes on
/// files and standard streams are always ready.
fn poll_oneoff<B: Backend, T: Send + 'static>(
    c: &mut Caller<'_, B, T>,
    p: &[Val<B>],
    get: fn(&mut T) -> &mut WasiCtx,
) -> R<()> {
    let m = Mem::of(c)?;
    let (input, output, count) = (arg(&p[0]), arg(&p[1]), arg(&p[2]));
    if count == 0 {
        return Err(errno::INVAL.into());
    }
    let subs = m.bytes(c, input, count.checked_mul(48).ok_or(errno::INVAL)?)?;
    let now = get(c.data_mut()).start.elapsed().as_nanos() as u64;
    let mut events = Vec::new();
    let mut earliest: Option<(u64, u64)> = None;
    for s in subs.chunks_exact(48) {
        let userdata = u64::from_le_bytes(s[0..8].try_into().unwrap_or_default());
        match s[8] {
            0 => {
                let clock = u32::from_le_bytes(s[16..20].try_into().unwrap_or_default());
                let timeout = u64::from_le_bytes(s[24..32].try_into().unwrap_or_default());
                let absolute =
                    u16::from_le_bytes(s[40..42].try_into().unwrap_or_default()) & 1 != 0;
                let wait = match (absolute, clock) {
                    (false, _) => timeout,
                    (true, 0) => timeout.saturating_sub(nanos(Ok(SystemTime::now()))),
                    (true, _) => timeout.saturating_sub(now),
                };
                if earliest.is_none_or(|(w, _)| wait < w) {
                    earliest = Some((wait, userdata));
                }
            }
            kind @ (1 | 2) => {
                let mut e = [0u8; 32];
                e[0..8].copy_from_slice(&userdata.to_le_bytes());
                e[10] = kind;
                events.push(e);
            }
            _ => return Err(errno::INVAL.into()),
        }
    }
    if events.is_empty()
        && let Some((wait, userdata)) = earliest
    {
        std::thread::sleep(Duration::from_nanos(wait));
        let mut e = [0u8; 32];
        e[0..8].copy_from_slice(&userdata.to_le_bytes());
        events.push(e);
    }
    let bytes: Vec<u8> = events.concat();
    m.write(c, output, &bytes)?;
    m.put_u32(c, arg(&p[3]), events.len() as u32)
}
