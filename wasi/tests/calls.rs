//! WASI functions called directly through the probe module, on every
//! backend: rights, clocks, directory listings, symbolic links, polling,
//! positioned I/O, exclusive creation, absolute paths, reactors, imported
//! memories and the host's limits. Tests are `<backend>::<case>`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anywasm::{Backend, Engine, Error, Linker, Memory, MemoryType, Module, Store};
use anywasm_wasi::{
    Captured, Output, WasiConfig, WasiCtx, add_to_linker, errno, instantiate_reactor, probe, rights,
};
use common::{Probe, i, l};

const OK: i32 = 0;

fn e(x: u16) -> i32 {
    i32::from(x)
}

/// `/sandbox` (fd 3, read-write) holding `file` ("content") and a symbolic
/// link `link` to it; `/ro` (fd 4, read-only) holding `readme.txt`.
fn dirs() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    std::fs::create_dir(p.join("sandbox")).unwrap();
    std::fs::create_dir(p.join("ro")).unwrap();
    std::fs::write(p.join("sandbox/file"), "content").unwrap();
    std::fs::write(p.join("ro/readme.txt"), "read me").unwrap();
    std::os::unix::fs::symlink("file", p.join("sandbox/link")).unwrap();
    root
}

fn config(root: &Path) -> WasiConfig {
    WasiConfig::new()
        .preopen_dir(root.join("sandbox"), "/sandbox")
        .preopen_dir_read_only(root.join("ro"), "/ro")
}

/// Opens `path` under `dir` with `oflags`, `base` rights and `lookup`
/// flags; returns (errno, fd). The path is placed at 1000, the fd at 996.
fn open<B: Backend>(
    p: &mut Probe<B>,
    dir: u32,
    lookup: u32,
    path: &str,
    oflags: u32,
    base: u64,
) -> (i32, u32) {
    p.put(1000, path.as_bytes());
    let r = p.errno(
        "path_open",
        &[
            i(dir),
            i(lookup),
            i(1000),
            i(path.len() as u32),
            i(oflags),
            l(base),
            l(0),
            i(0),
            i(996),
        ],
    );
    (r, p.get_u32(996))
}

/// Writes `data` to `fd` through one iovec; returns (errno, written).
fn write<B: Backend>(p: &mut Probe<B>, fd: u32, data: &[u8]) -> (i32, u32) {
    p.put(2000, data);
    p.put_u32(1900, 2000);
    p.put_u32(1904, data.len() as u32);
    let r = p.errno("fd_write", &[i(fd), i(1900), i(1), i(1908)]);
    (r, p.get_u32(1908))
}

/// (base, inheriting) rights of `fd`.
fn fdstat<B: Backend>(p: &mut Probe<B>, fd: u32) -> (u64, u64) {
    assert_eq!(p.errno("fd_fdstat_get", &[i(fd), i(3000)]), OK);
    (p.get_u64(3008), p.get_u64(3016))
}

/// Rights are reported as they are, inherited rights bound what a
/// descriptor opened through a directory gets, and every call checks them.
pub fn rights_are_reported_and_enforced<B: Backend>() {
    let root = dirs();
    let mut p = Probe::<B>::new(1, config(root.path()));
    assert_eq!(fdstat(&mut p, 0).0, rights::STDIN);
    assert_eq!(fdstat(&mut p, 1).0, rights::STDOUT);
    assert_eq!(
        fdstat(&mut p, 3),
        (rights::DIR_ALL, rights::DIR_ALL | rights::FILE_ALL)
    );
    assert_eq!(
        fdstat(&mut p, 4),
        (rights::DIR_READ, rights::DIR_READ | rights::FILE_READ)
    );

    // Through the read-only directory: read rights only, writing refused.
    let (r, fd) = open(&mut p, 4, 1, "readme.txt", 0, rights::FILE_READ);
    assert_eq!(r, OK);
    assert_eq!(fdstat(&mut p, fd).0 & rights::FD_WRITE, 0);
    assert_eq!(write(&mut p, fd, b"x").0, e(errno::NOTCAPABLE));
    assert_eq!(
        open(&mut p, 4, 1, "readme.txt", 0, rights::FILE_ALL).0,
        e(errno::NOTCAPABLE)
    );
    p.put(1000, b"newdir");
    assert_eq!(
        p.errno("path_create_directory", &[i(4), i(1000), i(6)]),
        e(errno::NOTCAPABLE)
    );

    // Through the read-write one: write rights, which can be dropped and
    // not taken back.
    let (r, fd) = open(&mut p, 3, 1, "data", 1, rights::FILE_ALL);
    assert_eq!(r, OK);
    assert_eq!(fdstat(&mut p, fd).0, rights::FILE_ALL);
    assert_eq!(write(&mut p, fd, b"abc"), (OK, 3));
    assert_eq!(
        p.errno("fd_fdstat_set_rights", &[i(fd), l(rights::FILE_READ), l(0)]),
        OK
    );
    assert_eq!(write(&mut p, fd, b"abc").0, e(errno::NOTCAPABLE));
    assert_eq!(
        p.errno("fd_fdstat_set_rights", &[i(fd), l(rights::FILE_ALL), l(0)]),
        e(errno::NOTCAPABLE)
    );
    // Standard input cannot be written, standard output cannot be read.
    assert_eq!(write(&mut p, 0, b"x").0, e(errno::NOTCAPABLE));
}

/// Realtime and monotonic clocks with their real resolution; the CPU-time
/// clocks are not offered.
pub fn clocks<B: Backend>() {
    let mut p = Probe::<B>::new(1, WasiConfig::new());
    for id in [0, 1] {
        assert_eq!(p.errno("clock_res_get", &[i(id), i(8)]), OK);
        let res = p.get_u64(8);
        assert!(
            (1..=1_000_000).contains(&res),
            "{}: resolution {res}",
            B::NAME
        );
        assert_eq!(p.errno("clock_time_get", &[i(id), l(1), i(16)]), OK);
        assert!(p.get_u64(16) > 0);
    }
    for id in [2, 3] {
        assert_eq!(p.errno("clock_res_get", &[i(id), i(8)]), e(errno::NOTSUP));
        assert_eq!(
            p.errno("clock_time_get", &[i(id), l(1), i(8)]),
            e(errno::NOTSUP)
        );
    }
    assert_eq!(
        p.errno("clock_time_get", &[i(9), l(1), i(8)]),
        e(errno::INVAL)
    );
}

/// The names of a directory listing read with `fd_readdir` from `cookie`.
fn list<B: Backend>(p: &mut Probe<B>, fd: u32, cookie: u64) -> Vec<String> {
    assert_eq!(
        p.errno("fd_readdir", &[i(fd), i(4096), i(8192), l(cookie), i(4000)]),
        OK
    );
    let used = p.get_u32(4000) as usize;
    let buf = p.get(4096, used);
    let mut names = Vec::new();
    let mut at = 0;
    while at + 24 <= buf.len() {
        let len = u32::from_le_bytes(buf[at + 16..at + 20].try_into().unwrap()) as usize;
        names.push(
            String::from_utf8_lossy(&buf[at + 24..(at + 24 + len).min(buf.len())]).into_owned(),
        );
        at += 24 + len;
    }
    names
}

/// A listing started again (cookie 0, as after `rewinddir`) sees the
/// directory as it is now.
pub fn readdir_after_rewind<B: Backend>() {
    let root = dirs();
    let mut p = Probe::<B>::new(1, config(root.path()));
    let before = list(&mut p, 3, 0);
    assert_eq!(before, [".", "..", "file", "link"]);
    std::fs::write(root.path().join("sandbox/later"), "").unwrap();
    // Continuing the old listing keeps its view; starting over sees the file.
    assert_eq!(list(&mut p, 3, 2), ["file", "link"]);
    assert_eq!(list(&mut p, 3, 0), [".", "..", "file", "later", "link"]);
}

/// Without `SYMLINK_FOLLOW`, a final symbolic link is not followed.
pub fn final_symlinks_follow_only_when_asked<B: Backend>() {
    let root = dirs();
    let mut p = Probe::<B>::new(1, config(root.path()));
    assert_eq!(
        open(&mut p, 3, 0, "link", 0, rights::FILE_READ).0,
        e(errno::LOOP)
    );
    assert_eq!(open(&mut p, 3, 1, "link", 0, rights::FILE_READ).0, OK);
    p.put(1000, b"link");
    assert_eq!(
        p.errno("path_filestat_get", &[i(3), i(0), i(1000), i(4), i(1100)]),
        OK
    );
    assert_eq!(p.get(1100 + 16, 1)[0], 7, "{}: not a symlink", B::NAME);
    assert_eq!(
        p.errno("path_filestat_get", &[i(3), i(1), i(1000), i(4), i(1100)]),
        OK
    );
    assert_eq!(p.get(1100 + 16, 1)[0], 4, "{}: not a file", B::NAME);
    // readlink, whole and cut short.
    assert_eq!(
        p.errno(
            "path_readlink",
            &[i(3), i(1000), i(4), i(1200), i(64), i(1300)]
        ),
        OK
    );
    assert_eq!((p.get(1200, 4), p.get_u32(1300)), (b"file".to_vec(), 4));
    assert_eq!(
        p.errno(
            "path_readlink",
            &[i(3), i(1000), i(4), i(1200), i(2), i(1300)]
        ),
        OK
    );
    assert_eq!(p.get_u32(1300), 2);
}

/// Absolute paths and `..` reach the host's implementation (no libc in
/// between to refuse them first) and are refused there.
pub fn absolute_paths_are_refused<B: Backend>() {
    let root = dirs();
    let mut p = Probe::<B>::new(1, config(root.path()));
    for path in ["/etc/passwd", "../ro/readme.txt", "/", "./../ro"] {
        assert_eq!(
            open(&mut p, 3, 1, path, 0, rights::FILE_READ).0,
            e(errno::NOTCAPABLE),
            "{}: {path}",
            B::NAME
        );
    }
    p.put(1000, b"/etc");
    assert_eq!(
        p.errno("path_filestat_get", &[i(3), i(1), i(1000), i(4), i(1100)]),
        e(errno::NOTCAPABLE)
    );
}

/// `O_EXCL` creation fails when the file exists.
pub fn exclusive_creation<B: Backend>() {
    let root = dirs();
    let mut p = Probe::<B>::new(1, config(root.path()));
    assert_eq!(open(&mut p, 3, 1, "once", 1 | 4, rights::FILE_ALL).0, OK);
    assert_eq!(
        open(&mut p, 3, 1, "once", 1 | 4, rights::FILE_ALL).0,
        e(errno::EXIST)
    );
}

/// `fd_seek`/`fd_tell`, and positioned reads and writes that leave the
/// position where it was.
pub fn seek_tell_and_positioned_io<B: Backend>() {
    let root = dirs();
    let mut p = Probe::<B>::new(1, config(root.path()));
    let (r, fd) = open(&mut p, 3, 1, "rw", 1, rights::FILE_ALL);
    assert_eq!(r, OK);
    assert_eq!(write(&mut p, fd, b"hello world"), (OK, 11));
    assert_eq!(p.errno("fd_tell", &[i(fd), i(8)]), OK);
    assert_eq!(p.get_u64(8), 11);
    assert_eq!(p.errno("fd_seek", &[i(fd), l(0), i(0), i(8)]), OK);
    assert_eq!(p.get_u64(8), 0);
    // pread "world" at 6; the position stays 0.
    p.put_u32(1900, 2000);
    p.put_u32(1904, 5);
    assert_eq!(
        p.errno("fd_pread", &[i(fd), i(1900), i(1), l(6), i(1908)]),
        OK
    );
    assert_eq!((p.get(2000, 5), p.get_u32(1908)), (b"world".to_vec(), 5));
    // pwrite "HELLO" at 0; the position stays 0.
    p.put(2000, b"HELLO");
    assert_eq!(
        p.errno("fd_pwrite", &[i(fd), i(1900), i(1), l(0), i(1908)]),
        OK
    );
    assert_eq!(p.errno("fd_tell", &[i(fd), i(8)]), OK);
    assert_eq!(p.get_u64(8), 0);
    p.put_u32(1904, 64);
    assert_eq!(p.errno("fd_read", &[i(fd), i(1900), i(1), i(1908)]), OK);
    assert_eq!(p.get(2000, p.get_u32(1908) as usize), b"HELLO world");
    // Seeking before the start, and positions past i64, are refused.
    assert_eq!(
        p.errno("fd_seek", &[i(fd), l(u64::MAX), i(0), i(8)]),
        e(errno::INVAL)
    );
    assert_eq!(
        p.errno("fd_pread", &[i(fd), i(1900), i(1), l(u64::MAX), i(1908)]),
        e(errno::INVAL)
    );
    assert_eq!(
        std::fs::read(root.path().join("sandbox/rw")).unwrap(),
        b"HELLO world"
    );
}

/// Polls `count` subscriptions written at 100; returns the events.
fn poll<B: Backend>(p: &mut Probe<B>, subs: &[[u8; 48]]) -> Vec<[u8; 32]> {
    for (k, s) in subs.iter().enumerate() {
        p.put(100 + 48 * k as u32, s);
    }
    assert_eq!(
        p.errno(
            "poll_oneoff",
            &[i(100), i(1000), i(subs.len() as u32), i(1500)]
        ),
        OK
    );
    (0..p.get_u32(1500))
        .map(|k| p.get(1000 + 32 * k, 32).try_into().unwrap())
        .collect()
}

fn sub(userdata: u64, kind: u8, fd_or_clock: u32, timeout: u64) -> [u8; 48] {
    let mut s = [0u8; 48];
    s[0..8].copy_from_slice(&userdata.to_le_bytes());
    s[8] = kind;
    s[16..20].copy_from_slice(&fd_or_clock.to_le_bytes());
    s[24..32].copy_from_slice(&timeout.to_le_bytes());
    s
}

/// `poll_oneoff` reports readiness of descriptors (with the bytes
/// available) and errors of bad ones; clocks fire after their time.
pub fn poll_reports_readiness<B: Backend>() {
    let root = dirs();
    let mut p = Probe::<B>::new(1, config(root.path()).stdin_bytes(b"abc".to_vec()));
    let (_, file) = open(&mut p, 3, 1, "file", 0, rights::FILE_READ);
    let events = poll(
        &mut p,
        &[
            sub(1, 1, 0, 0),
            sub(2, 1, file, 0),
            sub(3, 2, 1, 0),
            sub(4, 1, 99, 0),
            sub(5, 0, 1, 3_600_000_000_000),
        ],
    );
    let by = |u: u64| {
        events
            .iter()
            .find(|e| u64::from_le_bytes(e[0..8].try_into().unwrap()) == u)
    };
    let nbytes = |e: &[u8; 32]| u64::from_le_bytes(e[16..24].try_into().unwrap());
    let error = |e: &[u8; 32]| u16::from_le_bytes(e[8..10].try_into().unwrap());
    assert_eq!(nbytes(by(1).unwrap()), 3, "{}: stdin", B::NAME);
    assert_eq!(nbytes(by(2).unwrap()), 7, "{}: file", B::NAME);
    assert_eq!(error(by(3).unwrap()), 0);
    assert_eq!(error(by(4).unwrap()), errno::BADF);
    assert!(by(5).is_none(), "{}: the hour-long clock fired", B::NAME);

    // Empty standard input is at its end: ready, hung up.
    let mut p = Probe::<B>::new(1, WasiConfig::new());
    let events = poll(&mut p, &[sub(1, 1, 0, 0)]);
    assert_eq!(u16::from_le_bytes(events[0][24..26].try_into().unwrap()), 1);

    // Only a clock: it fires after its time.
    let started = Instant::now();
    let events = poll(&mut p, &[sub(7, 0, 1, 30_000_000)]);
    assert_eq!(events.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(29),
        "{}",
        B::NAME
    );
    // CPU-time clocks are not offered; unknown subscription kinds are refused.
    let events = poll(&mut p, &[sub(8, 0, 2, 0)]);
    assert_eq!(
        u16::from_le_bytes(events[0][8..10].try_into().unwrap()),
        errno::NOTSUP
    );
    p.put(100, &sub(9, 7, 0, 0));
    assert_eq!(
        p.errno("poll_oneoff", &[i(100), i(1000), i(1), i(1500)]),
        e(errno::INVAL)
    );
}

/// A reactor's `_initialize` runs once and its state stays for later calls.
pub fn reactors_keep_their_state<B: Backend>() {
    let engine = Engine::<B>::default_config().unwrap();
    let module = Module::from_wat(
        &engine,
        r#"(module
            (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
            (memory (export "memory") 1)
            (global $count (mut i32) (i32.const -1))
            (func (export "_initialize")
              (drop (call $sizes (i32.const 0) (i32.const 4)))
              (global.set $count (i32.load (i32.const 0))))
            (func (export "count") (result i32) global.get $count))"#,
    )
    .unwrap();
    let mut store = Store::new(
        &engine,
        WasiConfig::new()
            .env("A", "1")
            .env("B", "2")
            .build()
            .unwrap(),
    );
    let instance = instantiate_reactor(&mut store, &module).unwrap();
    let count = instance.get_func(&mut store, "count").unwrap();
    assert_eq!(count.invoke(&mut store, &[]).unwrap()[0].as_i32(), Some(2));
}

/// A program that imports its memory is served through the memory the
/// host gives with `WasiCtx::set_memory`; without it, a clear error.
pub fn imported_memory<B: Backend>() {
    let engine = Engine::<B>::default_config().unwrap();
    let module = Module::new(&engine, probe::module(1, true)).unwrap();
    for given in [true, false] {
        let out = Captured::new();
        let mut store = Store::new(
            &engine,
            WasiConfig::new()
                .stdout(Output::Capture(out.clone()))
                .build()
                .unwrap(),
        );
        let memory = Memory::new(&mut store, MemoryType::new(1, None)).unwrap();
        if given {
            store.data_mut().set_memory(memory.clone());
        }
        let mut linker = Linker::<B, WasiCtx>::new();
        add_to_linker(&mut linker, |c| c).unwrap();
        linker.define("env", "memory", memory.clone()).unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        memory
            .write(&mut store, 100, b"through imported memory")
            .unwrap();
        memory.write_i32(&mut store, 0, 100).unwrap();
        memory.write_i32(&mut store, 4, 23).unwrap();
        let f = instance.get_func(&mut store, "fd_write").unwrap();
        let r = f.invoke(&mut store, &[i(1), i(0), i(1), i(8)]);
        if given {
            assert_eq!(r.unwrap()[0].as_i32(), Some(0));
            assert_eq!(out.text(), "through imported memory");
        } else {
            match r {
                Err(Error::Host(e)) => assert!(e.to_string().contains("set_memory"), "{e}"),
                other => panic!("{}: expected a host error, got {other:?}", B::NAME),
            }
        }
    }
}

/// The host's limits: open descriptors (`EMFILE`) and captured output
/// (`ENOSPC` once full, a short count when it fills).
pub fn descriptor_and_output_limits<B: Backend>() {
    let root = dirs();
    let mut p = Probe::<B>::new(1, config(root.path()).max_open_files(7));
    // stdin, stdout, stderr, two preopens: two more fit.
    assert_eq!(open(&mut p, 3, 1, "file", 0, rights::FILE_READ).0, OK);
    assert_eq!(open(&mut p, 3, 1, "file", 0, rights::FILE_READ).0, OK);
    assert_eq!(
        open(&mut p, 3, 1, "file", 0, rights::FILE_READ).0,
        e(errno::MFILE)
    );
    assert_eq!(p.errno("fd_close", &[i(5)]), OK);
    assert_eq!(open(&mut p, 3, 1, "file", 0, rights::FILE_READ).0, OK);

    let out = Captured::with_limit(10);
    let mut p = Probe::<B>::new(1, WasiConfig::new().stdout(Output::Capture(out.clone())));
    assert_eq!(write(&mut p, 1, b"0123456789abcdef"), (OK, 10));
    assert_eq!(write(&mut p, 1, b"more").0, e(errno::NOSPC));
    assert_eq!(out.text(), "0123456789");
}

macro_rules! call_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            call_tests!(@cases $b; rights_are_reported_and_enforced, clocks, readdir_after_rewind,
                final_symlinks_follow_only_when_asked, absolute_paths_are_refused, exclusive_creation,
                seek_tell_and_positioned_io, poll_reports_readiness, reactors_keep_their_state,
                imported_memory, descriptor_and_output_limits);
        }
    };
    (@cases $b:ty; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                super::$case::<$b>();
            }
        )*
    };
}

call_tests!(wasmtime, anywasm::Wasmtime);
call_tests!(wasmi, anywasm::Wasmi);
call_tests!(wasmer, anywasm::Wasmer);
