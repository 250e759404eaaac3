//! WASI preview 1 error numbers and the mapping from host errors.

use std::io;

/// A WASI `errno`.
pub type Errno = u16;

/// Success.
pub const SUCCESS: Errno = 0;
/// Argument list too long.
pub const TOOBIG: Errno = 1;
/// Permission denied.
pub const ACCES: Errno = 2;
/// Resource unavailable, try again.
pub const AGAIN: Errno = 6;
/// Bad file descriptor.
pub const BADF: Errno = 8;
/// File exists.
pub const EXIST: Errno = 20;
/// Bad address (a pointer outside memory).
pub const FAULT: Errno = 21;
/// Invalid argument.
pub const INVAL: Errno = 28;
/// I/O error.
pub const IO: Errno = 29;
/// Is a directory.
pub const ISDIR: Errno = 31;
/// Too many levels of symbolic links.
pub const LOOP: Errno = 32;
/// Too many open files (the program's descriptor limit).
pub const MFILE: Errno = 33;
/// File name too long.
pub const NAMETOOLONG: Errno = 37;
/// No such file or directory.
pub const NOENT: Errno = 44;
/// No space left (a captured stream reached its limit).
pub const NOSPC: Errno = 51;
/// Function not supported.
pub const NOSYS: Errno = 52;
/// Not a directory.
pub const NOTDIR: Errno = 54;
/// Directory not empty.
pub const NOTEMPTY: Errno = 55;
/// Not supported.
pub const NOTSUP: Errno = 58;
/// Operation not permitted.
pub const PERM: Errno = 63;
/// Invalid seek.
pub const SPIPE: Errno = 70;
/// Capabilities insufficient: the path leads outside the preopened
/// directory, or the directory is read-only.
pub const NOTCAPABLE: Errno = 76;

/// Maps a host error to a WASI errno.
pub fn from_io(e: &io::Error) -> Errno {
    if let Some(code) = e.raw_os_error() {
        return match code {
            1 => PERM,
            2 => NOENT,
            9 => BADF,
            13 => ACCES,
            17 => EXIST,
            20 => NOTDIR,
            21 => ISDIR,
            22 => INVAL,
            24 => MFILE,
            28 => NOSPC,
            29 => SPIPE,
            36 => NAMETOOLONG,
            39 => NOTEMPTY,
            40 => LOOP,
            95 => NOTSUP,
            _ => IO,
        };
    }
    match e.kind() {
        io::ErrorKind::NotFound => NOENT,
        // An error of this kind that the operating system did not report is
        // cap-std refusing a path that leads outside the sandbox (its
        // `escape_attempt`); the system's own EACCES has an OS code.
        io::ErrorKind::PermissionDenied => NOTCAPABLE,
        io::ErrorKind::StorageFull => NOSPC,
        io::ErrorKind::AlreadyExists => EXIST,
        io::ErrorKind::InvalidInput => INVAL,
        io::ErrorKind::IsADirectory => ISDIR,
        io::ErrorKind::NotADirectory => NOTDIR,
        io::ErrorKind::DirectoryNotEmpty => NOTEMPTY,
        io::ErrorKind::Unsupported => NOTSUP,
        _ => IO,
    }
}
