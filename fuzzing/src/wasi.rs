//! Target (c): WASI functions called through the probe module with
//! arguments and memory contents the input chooses, against a temporary
//! preopened directory. Every call must end with an errno (or the deadline
//! for waits, or the program's exit), and nothing may appear outside the
//! preopen.

use anywasm::{Backend, Engine, Error, Linker, Module, Store, TrapCode, Val, ValType};
use anywasm_wasi::{Captured, FUNCTIONS, Output, WasiConfig, WasiCtx, add_to_linker, probe};

use crate::{TIMEOUT, engine};

/// Guest memory of the probe, in pages.
const PAGES: u32 = 2;
/// The most calls one input makes.
const MAX_CALLS: usize = 32;

use crate::Reader;

/// An argument value, biased to what matters to WASI: small numbers,
/// descriptors, addresses near the ends of memory, extremes.
trait Value {
    fn value(&mut self) -> u64;
}

impl Value for Reader<'_> {
    fn value(&mut self) -> u64 {
        let end = u64::from(PAGES) << 16;
        match self.u8() % 10 {
            0 => 0,
            1 => u64::from(self.u8() % 8),
            2 => u64::from(self.u8()),
            3 => u64::from(self.u32()) % end,
            4 => end - u64::from(self.u8()),
            5 => end + u64::from(self.u8()),
            6 => u64::from(u32::MAX - u32::from(self.u8())),
            7 => u64::from(self.u32()),
            8 => u64::MAX - u64::from(self.u8()),
            _ => u64::from(self.u32()) << 32 | u64::from(self.u32()),
        }
    }
}

/// Runs the input on every backend.
pub fn run(data: &[u8]) {
    on::<anywasm::Wasmtime>(data);
    on::<anywasm::Wasmi>(data);
    on::<anywasm::Wasmer>(data);
}

fn on<B: Backend>(data: &[u8]) {
    let parent = tempfile::tempdir().expect("a temporary directory");
    let sandbox = parent.path().join("sandbox");
    std::fs::create_dir(&sandbox).expect("the sandbox directory");
    std::fs::write(sandbox.join("file"), b"some content").expect("a file in the sandbox");
    std::fs::create_dir(sandbox.join("dir")).expect("a directory in the sandbox");
    let ro = parent.path().join("ro");
    std::fs::create_dir(&ro).expect("the read-only directory");
    std::fs::write(ro.join("file"), b"read only").expect("a read-only file");

    let mut r = Reader::new(data);
    let stdin: Vec<u8> = (0..r.u8() % 32).map(|_| r.u8()).collect();
    let config = WasiConfig::new()
        .preopen_dir(&sandbox, "/sandbox")
        .preopen_dir_read_only(&ro, "/ro")
        .args(["prog", "arg"])
        .env("KEY", "value")
        .stdin_bytes(stdin)
        .stdout(Output::Capture(Captured::with_limit(64 << 10)))
        .stderr(Output::Capture(Captured::with_limit(64 << 10)))
        .max_open_files(16);
    // The probe is compiled once, with the engine it was compiled on (the
    // engine of `engine()` is renewed now and then on some backends).
    let (engine, module) = crate::cached::<B, (Engine<B>, Module<B>)>("wasi probe", || {
        let engine = engine::<B>();
        let module = Module::new(&engine, probe::module(PAGES, false)).expect("the probe compiles");
        (engine, module)
    });
    let mut store = Store::new(&engine, config.build().expect("the sandbox opens"));
    let mut linker = Linker::<B, WasiCtx>::new();
    add_to_linker(&mut linker, |c| c).expect("WASI links");
    let _ = store.set_fuel(crate::FUEL);
    let instance = linker
        .instantiate(&mut store, &module)
        .expect("the probe instantiates");
    let memory = instance
        .get_memory(&mut store, "memory")
        .expect("the probe's memory");

    for _ in 0..MAX_CALLS {
        if r.is_empty() {
            break;
        }
        // Some bytes into memory first: paths, iovecs, subscriptions.
        let at = u64::from(r.u32()) % (u64::from(PAGES) << 16);
        let len = usize::from(r.u8());
        let bytes: Vec<u8> = (0..len).map(|_| r.u8()).collect();
        let _ = memory.write(&mut store, at, &bytes);

        let (name, params) = FUNCTIONS[usize::from(r.u8()) % FUNCTIONS.len()];
        let args: Vec<Val<B>> = params
            .iter()
            .map(|t| {
                let v = r.value();
                if *t == ValType::I64 {
                    Val::I64(v as i64)
                } else {
                    Val::I32(v as u32 as i32)
                }
            })
            .collect();
        let func = instance
            .get_func(&mut store, name)
            .expect("the probe exports every function");
        let _ = store.set_timeout(TIMEOUT);
        let _ = store.set_fuel(crate::FUEL);
        match func.invoke(&mut store, &args) {
            Ok(r) if name == "proc_exit" => panic!("{}: proc_exit returned {r:?}", B::NAME),
            Ok(r) => {
                let e = r[0].as_i32().expect("an errno");
                assert!(
                    (0..=76).contains(&e),
                    "{}: {name}{args:?} gave errno {e}",
                    B::NAME
                );
            }
            Err(Error::Exit(_)) => break,
            Err(Error::Trap {
                code: TrapCode::Deadline,
                ..
            }) => {}
            Err(e) => panic!("{}: {name}{args:?}: {e}", B::NAME),
        }
    }
    drop(store);
    // Nothing outside the preopens: the parent holds exactly them.
    let mut names: Vec<String> = std::fs::read_dir(parent.path())
        .expect("the parent directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["ro", "sandbox"],
        "{}: something escaped the sandbox",
        B::NAME
    );
    assert_eq!(
        std::fs::read(ro.join("file")).ok().as_deref(),
        Some(&b"read only"[..]),
        "{}: the read-only preopen was changed",
        B::NAME
    );
}
