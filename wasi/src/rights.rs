//! WASI preview 1 rights: what each descriptor may do.
//!
//! A descriptor has *base* rights (what it may do itself) and *inheriting*
//! rights (the most a descriptor opened through it may get). `fd_fdstat_get`
//! reports both truthfully and every operation checks its right, answering
//! `ENOTCAPABLE` without it. A read-only preopen has neither write rights
//! nor any right that changes the directory, and passes none on.

/// A set of rights.
pub type Rights = u64;

/// `fd_datasync`.
pub const FD_DATASYNC: Rights = 1 << 0;
/// `fd_read`, `fd_pread`.
pub const FD_READ: Rights = 1 << 1;
/// `fd_seek` (also implies `FD_TELL`).
pub const FD_SEEK: Rights = 1 << 2;
/// `fd_fdstat_set_flags`.
pub const FD_FDSTAT_SET_FLAGS: Rights = 1 << 3;
/// `fd_sync`.
pub const FD_SYNC: Rights = 1 << 4;
/// `fd_tell`.
pub const FD_TELL: Rights = 1 << 5;
/// `fd_write`, `fd_pwrite`.
pub const FD_WRITE: Rights = 1 << 6;
/// `fd_advise`.
pub const FD_ADVISE: Rights = 1 << 7;
/// `fd_allocate`.
pub const FD_ALLOCATE: Rights = 1 << 8;
/// `path_create_directory`.
pub const PATH_CREATE_DIRECTORY: Rights = 1 << 9;
/// `path_open` with `O_CREAT`.
pub const PATH_CREATE_FILE: Rights = 1 << 10;
/// `path_link` (source).
pub const PATH_LINK_SOURCE: Rights = 1 << 11;
/// `path_link` (target).
pub const PATH_LINK_TARGET: Rights = 1 << 12;
/// `path_open`.
pub const PATH_OPEN: Rights = 1 << 13;
/// `fd_readdir`.
pub const FD_READDIR: Rights = 1 << 14;
/// `path_readlink`.
pub const PATH_READLINK: Rights = 1 << 15;
/// `path_rename` (source directory).
pub const PATH_RENAME_SOURCE: Rights = 1 << 16;
/// `path_rename` (target directory).
pub const PATH_RENAME_TARGET: Rights = 1 << 17;
/// `path_filestat_get`.
pub const PATH_FILESTAT_GET: Rights = 1 << 18;
/// `path_filestat_set_size` (`path_open` with `O_TRUNC`).
pub const PATH_FILESTAT_SET_SIZE: Rights = 1 << 19;
/// `path_filestat_set_times`.
pub const PATH_FILESTAT_SET_TIMES: Rights = 1 << 20;
/// `fd_filestat_get`.
pub const FD_FILESTAT_GET: Rights = 1 << 21;
/// `fd_filestat_set_size`.
pub const FD_FILESTAT_SET_SIZE: Rights = 1 << 22;
/// `fd_filestat_set_times`.
pub const FD_FILESTAT_SET_TIMES: Rights = 1 << 23;
/// `path_symlink`.
pub const PATH_SYMLINK: Rights = 1 << 24;
/// `path_remove_directory`.
pub const PATH_REMOVE_DIRECTORY: Rights = 1 << 25;
/// `path_unlink_file`.
pub const PATH_UNLINK_FILE: Rights = 1 << 26;
/// `poll_oneoff` on the descriptor.
pub const POLL_FD_READWRITE: Rights = 1 << 27;

/// What a regular file opened for reading may do.
pub const FILE_READ: Rights = FD_READ
    | FD_SEEK
    | FD_TELL
    | FD_ADVISE
    | FD_FILESTAT_GET
    | FD_SYNC
    | FD_FDSTAT_SET_FLAGS
    | POLL_FD_READWRITE;
/// What writing adds to a regular file.
pub const FILE_WRITE: Rights = FD_WRITE | FD_DATASYNC | FD_FILESTAT_SET_SIZE;
/// Every right a regular file can have here (`fd_allocate` and changing
/// times are not offered).
pub const FILE_ALL: Rights = FILE_READ | FILE_WRITE;
/// What a directory may do when only reading.
pub const DIR_READ: Rights =
    PATH_OPEN | FD_READDIR | PATH_READLINK | PATH_FILESTAT_GET | FD_FILESTAT_GET | FD_SYNC;
/// What changing a directory adds (links, symlinks and times are not offered).
pub const DIR_WRITE: Rights = PATH_CREATE_DIRECTORY
    | PATH_CREATE_FILE
    | PATH_RENAME_SOURCE
    | PATH_RENAME_TARGET
    | PATH_FILESTAT_SET_SIZE
    | PATH_REMOVE_DIRECTORY
    | PATH_UNLINK_FILE;
/// Every right a directory can have here.
pub const DIR_ALL: Rights = DIR_READ | DIR_WRITE;
/// Standard input.
pub const STDIN: Rights = FD_READ | FD_FILESTAT_GET | POLL_FD_READWRITE;
/// Standard output and error.
pub const STDOUT: Rights = FD_WRITE | FD_FILESTAT_GET | POLL_FD_READWRITE;

/// The rights of a preopened directory: its own and what it passes on.
pub(crate) fn preopen(read_only: bool) -> (Rights, Rights) {
    if read_only {
        (DIR_READ, DIR_READ | FILE_READ)
    } else {
        (DIR_ALL, DIR_ALL | FILE_ALL)
    }
}
