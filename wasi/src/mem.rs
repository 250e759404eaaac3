//! Guest memory as WASI functions see it: every pointer and length a
//! program passes is checked against its memory before anything is read,
//! written or allocated, and data moves between guest memory and files in
//! bounded chunks.

use anywasm_core::{AsContext, AsContextMut, Backend, Caller, Error, Memory};

use crate::ctx::WasiCtx;
use crate::errno::{self, Errno};

/// Size of the host buffer data moves through.
pub(crate) const CHUNK: usize = 64 * 1024;
/// The most one `fd_read`/`fd_write` moves; a larger request is answered
/// with a short count, which POSIX allows and which libc and Rust's std
/// loop over. It bounds the time one call holds the host.
pub(crate) const MAX_TRANSFER: usize = 16 << 20;
/// The longest path a program may pass.
pub(crate) const MAX_PATH: u32 = 4096;

/// A failed call: either an errno for the program, or an error for the host
/// (`proc_exit`, no memory, a deadline that ended a wait).
pub(crate) enum Fail {
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

pub(crate) type R<T> = std::result::Result<T, Fail>;

/// The program's memory.
#[derive(Clone)]
pub(crate) struct Mem<B: Backend> {
    memory: Memory<B>,
}

impl<B: Backend> Mem<B> {
    /// The memory the calling program exports as `memory`, or else the one
    /// set with [`WasiCtx::set_memory`].
    pub(crate) fn of<T: Send + 'static>(
        c: &mut Caller<'_, B, T>,
        get: fn(&mut T) -> &mut WasiCtx,
    ) -> R<Self> {
        let memory = match c.get_memory("memory") {
            Some(m) => m,
            None => get(c.data_mut()).memory::<B>().ok_or_else(|| {
                Fail::Host(Error::host_msg(
                    "WASI needs the program to export its `memory`, or the host to give it \
                     with WasiCtx::set_memory",
                ))
            })?,
        };
        Ok(Mem { memory })
    }

    /// `len` bytes at `ptr`, or `EFAULT`.
    pub(crate) fn bytes<'a, C: AsContext<Backend = B>>(
        &self,
        c: &'a C,
        ptr: u32,
        len: u64,
    ) -> R<&'a [u8]> {
        self.memory
            .slice(c, u64::from(ptr), len)
            .map_err(|_| Fail::Errno(errno::FAULT))
    }

    /// `len` bytes at `ptr`, mutably, or `EFAULT`.
    pub(crate) fn bytes_mut<'a, C: AsContextMut<Backend = B>>(
        &self,
        c: &'a mut C,
        ptr: u32,
        len: u64,
    ) -> R<&'a mut [u8]> {
        self.memory
            .slice_mut(c, u64::from(ptr), len)
            .map_err(|_| Fail::Errno(errno::FAULT))
    }

    pub(crate) fn write<C: AsContextMut<Backend = B>>(
        &self,
        c: &mut C,
        ptr: u32,
        bytes: &[u8],
    ) -> R<()> {
        self.bytes_mut(c, ptr, bytes.len() as u64)?
            .copy_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn put_u32<C: AsContextMut<Backend = B>>(
        &self,
        c: &mut C,
        ptr: u32,
        v: u32,
    ) -> R<()> {
        self.write(c, ptr, &v.to_le_bytes())
    }

    pub(crate) fn put_u64<C: AsContextMut<Backend = B>>(
        &self,
        c: &mut C,
        ptr: u32,
        v: u64,
    ) -> R<()> {
        self.write(c, ptr, &v.to_le_bytes())
    }

    pub(crate) fn get_u32<C: AsContext<Backend = B>>(&self, c: &C, ptr: u32) -> R<u32> {
        let b = self.bytes(c, ptr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A path: at most [`MAX_PATH`] bytes of UTF-8.
    pub(crate) fn path<C: AsContext<Backend = B>>(&self, c: &C, ptr: u32, len: u32) -> R<String> {
        let bytes = self.bytes(c, ptr, u64::from(len))?;
        if len > MAX_PATH {
            return Err(errno::NAMETOOLONG.into());
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| Fail::Errno(errno::INVAL))
    }

    /// Checks that an array of `count` iovecs at `iovs` lies in memory.
    fn check_iovecs<C: AsContext<Backend = B>>(&self, c: &C, iovs: u32, count: u32) -> R<()> {
        self.bytes(c, iovs, u64::from(count) * 8).map(drop)
    }

    /// The `(buf, len)` of iovec `i` of the array at `iovs`.
    fn iovec<C: AsContext<Backend = B>>(&self, c: &C, iovs: u32, i: u32) -> R<(u32, u32)> {
        let at = i
            .checked_mul(8)
            .and_then(|off| iovs.checked_add(off))
            .ok_or(errno::FAULT)?;
        Ok((self.get_u32(c, at)?, self.get_u32(c, at + 4)?))
    }

    /// Writes the program's iovecs to `sink`, chunk by chunk, up to
    /// [`MAX_TRANSFER`] bytes. Stops at a short write; an error after some
    /// bytes went out is reported as the count so far, as POSIX does.
    pub(crate) fn gather<C: AsContextMut<Backend = B>>(
        &self,
        c: &mut C,
        iovs: u32,
        count: u32,
        mut sink: impl FnMut(&mut C, &[u8]) -> R<usize>,
    ) -> R<usize> {
        self.check_iovecs(c, iovs, count)?;
        let mut buf = Vec::new();
        let mut total = 0usize;
        for i in 0..count {
            let (ptr, len) = self.iovec(c, iovs, i)?;
            self.bytes(c, ptr, u64::from(len))?;
            let mut done = 0usize;
            while done < len as usize && total < MAX_TRANSFER {
                let n = (len as usize - done).min(CHUNK).min(MAX_TRANSFER - total);
                buf.clear();
                buf.extend_from_slice(self.bytes(c, ptr + done as u32, n as u64)?);
                let wrote = match sink(c, &buf) {
                    Ok(w) => w.min(n),
                    Err(_) if total > 0 => return Ok(total),
                    Err(e) => return Err(e),
                };
                total += wrote;
                done += wrote;
                if wrote < n {
                    return Ok(total);
                }
            }
            if total >= MAX_TRANSFER {
                break;
            }
        }
        Ok(total)
    }

    /// Fills the program's iovecs from `source`, chunk by chunk, up to
    /// [`MAX_TRANSFER`] bytes; a short read (end of file, or a stream with
    /// no more data now) ends the call.
    pub(crate) fn scatter<C: AsContextMut<Backend = B>>(
        &self,
        c: &mut C,
        iovs: u32,
        count: u32,
        mut source: impl FnMut(&mut C, &mut [u8]) -> R<usize>,
    ) -> R<usize> {
        self.check_iovecs(c, iovs, count)?;
        let mut buf = Vec::new();
        let mut total = 0usize;
        for i in 0..count {
            let (ptr, len) = self.iovec(c, iovs, i)?;
            self.bytes(c, ptr, u64::from(len))?;
            let mut done = 0usize;
            while done < len as usize && total < MAX_TRANSFER {
                let n = (len as usize - done).min(CHUNK).min(MAX_TRANSFER - total);
                buf.resize(n, 0);
                let got = match source(c, &mut buf) {
                    Ok(g) => g.min(n),
                    Err(_) if total > 0 => return Ok(total),
                    Err(e) => return Err(e),
                };
                self.write(c, ptr + done as u32, &buf[..got])?;
                total += got;
                done += got;
                if got < n {
                    return Ok(total);
                }
            }
            if total >= MAX_TRANSFER {
                break;
            }
        }
        Ok(total)
    }
}
