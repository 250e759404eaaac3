//! WASI's waits in async calls (feature `async`): a program that sleeps in
//! `poll_oneoff`, or waits to read the host's standard input, lets the
//! other tasks of a single-threaded tokio runtime run, and the store's
//! deadline ends the sleep, on every backend.
#![cfg(feature = "async")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anywasm::{Backend, Config, Engine, Error, Linker, Module, SigOf, Store, TrapCode, TypedSig};
use anywasm_wasi::{Stdin, WasiConfig, WasiCtx, add_to_linker_async};

/// `nap(ns)` sleeps in `poll_oneoff` on the monotonic clock and returns
/// its errno; `events` is the number of events it reported.
const NAPPER: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "nap") (param $ns i64) (result i32)
    (i64.store (i32.const 0) (i64.const 7))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
  (func (export "events") (result i32) (i32.load (i32.const 128))))"#;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A task of the current runtime that counts every 5 ms, and its count.
fn ticker() -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let ticks = Arc::new(AtomicUsize::new(0));
    let counted = ticks.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    (ticks, task)
}

fn naps_without_blocking<B: Backend>()
where
    SigOf<i64, i32>: TypedSig<B, Params = (i64,), Results = (i32,)>,
    SigOf<(), i32>: TypedSig<B, Params = (), Results = (i32,)>,
{
    let mut config = Config::new();
    config.interruptible(true);
    let engine = Engine::<B>::new(&config).unwrap();
    let module = Module::from_wat(&engine, NAPPER).unwrap();
    let mut linker = Linker::<B, WasiCtx>::new();
    let defined = add_to_linker_async(&mut linker, |c| c);
    if !B::capabilities().async_calls {
        let err = defined.unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { .. }),
            "{}: {err}",
            B::NAME
        );
        return;
    }
    defined.unwrap();
    let mut store = Store::new(&engine, WasiConfig::new().build().unwrap());
    let exec = current_thread();
    exec.block_on(async {
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        let nap = instance
            .get_typed_func::<i64, i32>(&mut store, "nap")
            .unwrap();
        let events = instance
            .get_typed_func::<(), i32>(&mut store, "events")
            .unwrap();
        let (ticks, ticker) = ticker();
        let started = Instant::now();
        let errno = nap.call_async(&mut store, 200_000_000).await.unwrap();
        let took = started.elapsed();
        let during = ticks.load(Ordering::SeqCst);
        ticker.abort();
        assert_eq!(errno, 0, "{}", B::NAME);
        assert_eq!(
            events.call_async(&mut store, ()).await.unwrap(),
            1,
            "{}",
            B::NAME
        );
        assert!(took >= Duration::from_millis(200), "{}: {took:?}", B::NAME);
        assert!(
            during >= 10,
            "{}: the other task ran {during} times during a 200 ms nap",
            B::NAME
        );

        // A ten-second nap ends with the store's deadline.
        store.set_timeout(Duration::from_millis(100)).unwrap();
        let started = Instant::now();
        let err = nap
            .call_async(&mut store, 10_000_000_000)
            .await
            .unwrap_err();
        assert_eq!(
            err.trap_code(),
            Some(TrapCode::Deadline),
            "{}: {err}",
            B::NAME
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{}", B::NAME);
        store.set_deadline(None).unwrap();
        // A nap already over answers at once.
        assert_eq!(nap.call_async(&mut store, 0).await.unwrap(), 0);
    });
}

#[test]
fn wasmtime_naps_without_blocking() {
    naps_without_blocking::<anywasm::Wasmtime>();
}

#[test]
fn wasmi_naps_without_blocking() {
    naps_without_blocking::<anywasm::Wasmi>();
}

#[test]
fn wasmer_naps_without_blocking() {
    naps_without_blocking::<anywasm::Wasmer>();
}

/// `read(len)` reads up to `len` bytes of standard input into memory at 16
/// with `fd_read` and returns its errno; the count is at 8.
const READER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "read") (param $len i32) (result i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (local.get $len))
    (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8))))"#;

/// Set in the child process of `stdin_reads_wait_without_blocking`.
const CHILD: &str = "ANYWASM_STDIN_WAIT_CHILD";
/// What the child says before each read.
const READY: &str = "<reading standard input>";

/// Runs in the child, whose standard input is a pipe from the parent: says
/// [`READY`] on standard output, then reads. The parent writes
/// `first\nsecondthird\n` in one write 100 ms after that.
fn reads_stdin_without_blocking<B: Backend>()
where
    SigOf<i32, i32>: TypedSig<B, Params = (i32,), Results = (i32,)>,
{
    let mut config = Config::new();
    config.interruptible(true);
    let engine = Engine::<B>::new(&config).unwrap();
    let module = Module::from_wat(&engine, READER).unwrap();
    let mut linker = Linker::<B, WasiCtx>::new();
    add_to_linker_async(&mut linker, |c| c).unwrap();
    let wasi = WasiConfig::new().stdin(Stdin::Inherit).build().unwrap();
    let mut store = Store::new(&engine, wasi);
    let exec = current_thread();
    exec.block_on(async {
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        let read = instance
            .get_typed_func::<i32, i32>(&mut store, "read")
            .unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let (ticks, ticker) = ticker();
        // A wait for more data than may come ends with the deadline rather
        // than hang the test.
        store.set_timeout(Duration::from_secs(10)).unwrap();
        println!("{READY}");
        let mut got = Vec::new();
        for (i, want) in ["first\n", "second", "third\n"].into_iter().enumerate() {
            let errno = read.call_async(&mut store, 6).await;
            let errno = errno.unwrap_or_else(|e| panic!("{}: read {i}: {e}", B::NAME));
            assert_eq!(errno, 0, "{}: read {i}", B::NAME);
            let mut n = [0u8; 4];
            memory.read(&store, 8, &mut n).unwrap();
            let mut data = vec![0u8; u32::from_le_bytes(n) as usize];
            memory.read(&store, 16, &mut data).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&data),
                want,
                "{}: read {i}",
                B::NAME
            );
            got.push(ticks.load(Ordering::SeqCst));
        }
        ticker.abort();
        assert!(
            got[0] >= 5,
            "{}: the other task ran {} times during the 100 ms wait",
            B::NAME,
            got[0]
        );
    });
}

/// The program's read of the host's standard input waits without blocking
/// the executor, then reads what came; what came in one write is read in
/// several reads without waiting again (nothing is kept in a buffer where
/// the wait cannot see it). Standard input must be a pipe the test writes
/// to, so the test runs itself again as a child process.
#[test]
fn stdin_reads_wait_without_blocking() {
    if std::env::var_os(CHILD).is_some() {
        reads_stdin_without_blocking::<anywasm::Wasmtime>();
        reads_stdin_without_blocking::<anywasm::Wasmi>();
        reads_stdin_without_blocking::<anywasm::Wasmer>();
        return;
    }
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stdin_reads_wait_without_blocking",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let output = child.stdout.take().unwrap();
    let (lines, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    for backend in ["wasmtime", "wasmi", "wasmer"] {
        loop {
            match said.recv_timeout(Duration::from_secs(120)) {
                // libtest may have begun the line with the test's name.
                Ok(line) if line.ends_with(READY) => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("{backend}: the child did not get ready; it said {seen:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        input.write_all(b"first\nsecondthird\n").unwrap();
        input.flush().unwrap();
    }
    drop(input);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the child did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(line) = said.try_recv() {
        seen.push(line);
    }
    assert!(status.success(), "the child failed: {seen:?}");
}
