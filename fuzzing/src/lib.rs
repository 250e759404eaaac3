//! # anywasm-fuzzing
//!
//! The fuzz targets of anywasm as plain functions of the input bytes. Each
//! runs its input on every backend (wasmtime, wasmi, wasmer) and panics
//! only on a bug: a panic that escapes the layer, an error where the API
//! promises none, a limit not enforced.
//!
//! | target | what the input becomes |
//! |---|---|
//! | [`compile`](compile::run) | arbitrary bytes: validated, compiled, instantiated with stub imports, exports called |
//! | [`hostile_imports`](hostile_imports::run) | a `wasm-smith` module whose imports are host functions that return, fail, trap or panic as the input says |
//! | [`wasi`](wasi::run) | a sequence of WASI calls with chosen arguments on the probe module, against a temporary preopen |
//! | [`plugin_abi`](plugin_abi::run) | a plugin whose allocator, results and host calls return chosen pointers, lengths and payloads |
//! | [`dylink`](dylink::run) | `dylink.0` sections and libraries for the dynamic linker |
//! | [`guest_abis`](guest_abis::run) | an Extism or waPC guest calling its ABI's host imports (and an Extism host function) with chosen handles, pointers and lengths |
//!
//! `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz run <target>`);
//! `tests/bounded.rs` runs a fixed-seed sample of inputs of each in
//! `cargo test`. RELIABILITY.md records the runs.

pub mod compile;
pub mod dylink;
pub mod guest_abis;
pub mod hostile_imports;
pub mod plugin_abi;
pub mod wasi;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Mutex, Once};
use std::time::Duration;

use anywasm::{Backend, Config, Engine};

/// Runs `$f::<B>($data)` for every backend.
#[macro_export]
macro_rules! every_backend {
    ($f:ident, $data:expr) => {{
        $f::<anywasm::Wasmtime>($data);
        $f::<anywasm::Wasmi>($data);
        $f::<anywasm::Wasmer>($data);
    }};
}

/// Fuel for one fuzzed call: enough for real work, small enough that an
/// infinite loop ends quickly.
pub const FUEL: u64 = 2_000_000;
/// Time for one fuzzed call (waits in WASI end with it).
pub const TIMEOUT: Duration = Duration::from_millis(100);
/// Memory limit of fuzzed stores, in pages (16 MiB).
pub const MAX_PAGES: u64 = 256;

/// Inputs an engine serves on a backend that keeps compiled code until its
/// engine is dropped (`Capabilities::code_freed_with_module` false): one
/// wasmer engine can hold the code of about 32 000 modules on Linux.
const ENGINE_USES: u32 = 500;

/// An engine of backend `B` with fuel, deadlines and a memory limit, made
/// once per process (compiling with it is what the targets measure), or
/// every 500 calls where the engine keeps all code it compiles.
pub fn engine<B: Backend>() -> Engine<B> {
    type Engines = HashMap<TypeId, (Box<dyn Any + Send + Sync>, u32)>;
    static ENGINES: Mutex<Option<Engines>> = Mutex::new(None);
    let mut map = ENGINES.lock().unwrap_or_else(|p| p.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    let make = || -> Box<dyn Any + Send + Sync> {
        let mut config = Config::new();
        // Every proposal the backend claims (exceptions, GC, ...): a user
        // may turn any of them on, so hostile modules may use them.
        config
            .features(B::capabilities().features)
            .consume_fuel(true)
            .interruptible(true)
            .max_memory_pages(Some(MAX_PAGES));
        Box::new(Engine::<B>::new(&config).expect("the fuzzing configuration is supported"))
    };
    let entry = map.entry(TypeId::of::<B>()).or_insert_with(|| (make(), 0));
    entry.1 += 1;
    if entry.1 > ENGINE_USES && !B::capabilities().code_freed_with_module {
        *entry = (make(), 1);
    }
    entry
        .0
        .downcast_ref::<Engine<B>>()
        .expect("one engine type per backend")
        .clone()
}

/// Values of [`cached`] by backend and name.
type Cache = HashMap<(TypeId, &'static str), Box<dyn Any + Send + Sync>>;

/// A value made once per process for backend `B` under `name` (a compiled
/// module, a plugin runtime), so inputs do not pay for it.
pub fn cached<B: Backend, V: Clone + Send + Sync + 'static>(
    name: &'static str,
    make: impl FnOnce() -> V,
) -> V {
    static VALUES: Mutex<Option<Cache>> = Mutex::new(None);
    let mut map = VALUES.lock().unwrap_or_else(|p| p.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    map.entry((TypeId::of::<B>(), name))
        .or_insert_with(|| Box::new(make()))
        .downcast_ref::<V>()
        .expect("one type per name")
        .clone()
}

/// Empties a plugin runtime's module cache when dropped, so that the
/// memory of a long run does not grow with its inputs.
pub(crate) struct ClearCache<'a, B: Backend>(pub(crate) &'a anywasm_plugin::PluginRuntime<B>);

impl<B: Backend> Drop for ClearCache<'_, B> {
    fn drop(&mut self) {
        self.0.clear_cache();
    }
}

/// The payload of the panics the targets make host functions throw on
/// purpose.
pub const HOST_PANIC: &str = "anywasm-fuzzing: a host function panics on purpose";

/// Whether a caught panic is one the targets threw on purpose.
pub fn is_planned_panic(payload: &(dyn Any + Send)) -> bool {
    anywasm::panic_message(payload) == Some(HOST_PANIC)
}

/// Keeps the planned panics quiet: libFuzzer's hook aborts on every panic,
/// even one that is caught, and the default hook prints each. Other panics
/// still reach the previous hook.
pub fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if anywasm::panic_message(info.payload()) != Some(HOST_PANIC) {
                previous(info);
            }
        }));
    });
}

/// A deterministic source of inputs for the bounded runs (SplitMix64).
#[derive(Debug, Clone)]
pub struct Inputs {
    state: u64,
}

impl Inputs {
    /// The inputs of `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// An input of a random length below `max`.
    pub fn input(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next_u64() % max as u64) as usize;
        self.bytes(len)
    }

    /// `bytes` with a few random bytes changed (a crude mutation, for
    /// bounded runs starting from valid modules).
    pub fn mutate(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        let n = self.next_u64() % 4;
        for _ in 0..n {
            if bytes.is_empty() {
                break;
            }
            let at = (self.next_u64() % bytes.len() as u64) as usize;
            bytes[at] = self.next_u64() as u8;
        }
        bytes
    }
}

/// What a stub host function does when called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Returns zero values of its result types.
    Returns,
    /// Returns a host error.
    Fails,
    /// Panics (with [`HOST_PANIC`]).
    Panics,
    /// Returns a trap error, as if it had trapped.
    Traps,
    /// Writes results of the wrong type (which the layer must refuse).
    WrongResults,
}

impl Behaviour {
    /// The behaviour a byte selects.
    pub fn from_byte(b: u8) -> Self {
        match b % 5 {
            0 => Behaviour::Returns,
            1 => Behaviour::Fails,
            2 => Behaviour::Panics,
            3 => Behaviour::Traps,
            _ => Behaviour::WrongResults,
        }
    }
}

/// Items satisfying every import of `module` in `store`: host functions
/// behaving as `behaviour(i)` for the `i`-th import, and fresh memories,
/// tables and globals of the imported types. `None` when an import cannot
/// be made (a tag, or a memory over the store's limit).
pub fn stub_imports<B: Backend, T: Send + 'static>(
    store: &mut anywasm::Store<B, T>,
    module: &anywasm::Module<B>,
    behaviour: impl Fn(usize) -> Behaviour,
) -> Option<Vec<anywasm::Extern<B>>> {
    use anywasm::{Error, Extern, ExternType, Func, Global, Memory, Table, TrapCode, Val, ValType};
    let mut items = Vec::new();
    for (i, import) in module.imports().iter().enumerate() {
        let item = match &import.ty {
            ExternType::Func(ty) => {
                let how = behaviour(i);
                let results: Vec<ValType> = ty.results().to_vec();
                Extern::Func(Func::new(
                    &mut *store,
                    ty.clone(),
                    move |_c, _p, r| match how {
                        Behaviour::Returns => Ok(()),
                        Behaviour::Fails => Err(Error::host_msg("a stub host function fails")),
                        Behaviour::Panics => panic!("{}", HOST_PANIC),
                        Behaviour::Traps => {
                            Err(Error::trap(B::NAME, TrapCode::Unreachable, "stub"))
                        }
                        Behaviour::WrongResults => {
                            for (slot, t) in r.iter_mut().zip(&results) {
                                *slot = if *t == ValType::I32 {
                                    Val::I64(1)
                                } else {
                                    Val::I32(1)
                                };
                            }
                            Ok(())
                        }
                    },
                ))
            }
            ExternType::Memory(ty) => Extern::Memory(Memory::new(&mut *store, *ty).ok()?),
            ExternType::Table(ty) => {
                Extern::Table(Table::new(&mut *store, *ty, Val::default_for(ty.element)).ok()?)
            }
            ExternType::Global(ty) => {
                Extern::Global(Global::new(&mut *store, *ty, Val::default_for(ty.content)).ok()?)
            }
            ExternType::Tag(ty) => Extern::Tag(anywasm::Tag::new(&mut *store, ty).ok()?),
        };
        items.push(item);
    }
    Some(items)
}

/// Calls every exported function of `instance` with `args_for(i)` (or zero
/// values), each under a fresh fuel budget and deadline. Planned panics of
/// stub host functions are caught; any other panic goes on.
pub fn call_exports<B: Backend, T: Send + 'static>(
    store: &mut anywasm::Store<B, T>,
    instance: &anywasm::Instance<B>,
    mut args_for: impl FnMut(&anywasm::FuncType) -> Vec<anywasm::Val<B>>,
) {
    let names: Vec<String> = instance.exports().iter().map(|e| e.name.clone()).collect();
    for name in names {
        let Ok(func) = instance.get_func(&mut *store, &name) else {
            continue;
        };
        let Ok(ty) = func.ty(&*store) else { continue };
        let args = args_for(&ty);
        let _ = store.set_fuel(FUEL);
        let _ = store.set_timeout(TIMEOUT);
        let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            func.invoke(&mut *store, &args)
        }));
        if let Err(payload) = call
            && !is_planned_panic(&*payload)
        {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Reads a fuzz input front to back; zero when it runs out.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
