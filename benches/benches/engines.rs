#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Every workload on every engine: `anywasm` (through the layer) and `raw`
//! (the engine's own API) side by side in each group, so the ratio is taken
//! from one run. Groups are named after the workload, benchmarks
//! `anywasm/<engine>` and `raw/<engine>`.
//!
//! The raw side must not get any engine feature the layer adds. Here the
//! raw engines are built with the workspace's features, which for wasmtime
//! and wasmer are a subset of the engines' defaults (a user who runs `cargo
//! add wasmtime` gets at least these), so their raw rows are measured here,
//! in the same process. For wasmi the layer adds `simd` (not a wasmi
//! default), so raw wasmi is measured by `benches/raw-wasmi`, a crate
//! outside the workspace built with wasmi's default features, right after
//! this run (`benches/run.sh`), into the same criterion directory.

use std::time::{Duration, Instant};

use anywasm::{Backend, Config, Engine, Func, Instance, Linker, Module, Store, Val};
use anywasm_benches::{
    ECHO_PLUGIN_WAT, FIB_N, HOST_CALLS, KERNEL_N, LONG_GROUP, SHORT_GROUP, bench_wasm, big_module,
};
use anywasm_plugin::{Format, Manifest, PluginRuntime};
use criterion::{
    BenchmarkGroup, Criterion, black_box, criterion_group, criterion_main, measurement::WallTime,
};
use serde::{Deserialize, Serialize};

struct Layer<B: Backend> {
    store: Store<B, ()>,
    instance: Instance<B>,
}

fn layer<B: Backend>(config: &Config) -> Layer<B> {
    let engine = Engine::<B>::new(config).unwrap();
    let module = Module::new(&engine, bench_wasm()).unwrap();
    let mut linker = Linker::<B, ()>::new();
    linker
        .func_new(
            "host",
            "inc",
            anywasm::FuncType::new([anywasm::ValType::I32], [anywasm::ValType::I32]),
            |_c, p, r| {
                r[0] = Val::I32(p[0].as_i32().unwrap_or(0) + 1);
                Ok(())
            },
        )
        .unwrap();
    let mut store = Store::new(&engine, ());
    if config.fuel_enabled() {
        store.set_fuel(u64::MAX).unwrap();
    }
    let instance = linker.instantiate(&mut store, &module).unwrap();
    Layer { store, instance }
}

/// Typed host function for the host round trip, so both sides use the
/// engine's typed host-function path.
fn layer_typed_host<B: Backend>() -> Layer<B>
where
    anywasm::SigOf<i32, i32>: anywasm::HostSig<B, Params = (i32,), Results = (i32,)>,
{
    let engine = Engine::<B>::new(&Config::new()).unwrap();
    let module = Module::new(&engine, bench_wasm()).unwrap();
    let mut linker = Linker::<B, ()>::new();
    linker.func_wrap("host", "inc", |x: i32| x + 1).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    Layer { store, instance }
}

macro_rules! layer_benches {
    ($g:expr, $name:literal, $b:ty, $workload:ident) => {{
        let g: &mut BenchmarkGroup<WallTime> = $g;
        let mut l = layer::<$b>(&Config::new());
        let id = format!("anywasm/{}", $name);
        match stringify!($workload) {
            "call_empty" => {
                let f = l
                    .instance
                    .get_typed_func::<(), ()>(&mut l.store, "empty")
                    .unwrap();
                g.bench_function(id, |b| b.iter(|| f.call(&mut l.store, ()).unwrap()));
            }
            "call_add" => {
                let f = l
                    .instance
                    .get_typed_func::<(i32, i32), i32>(&mut l.store, "add")
                    .unwrap();
                g.bench_function(id, |b| {
                    b.iter(|| f.call(&mut l.store, (black_box(1), black_box(2))).unwrap())
                });
            }
            "call_add_dynamic" => {
                let f: Func<$b> = l.instance.get_func(&mut l.store, "add").unwrap();
                let mut out = [Val::I32(0)];
                g.bench_function(id, |b| {
                    b.iter(|| {
                        f.call(
                            &mut l.store,
                            &[Val::I32(black_box(1)), Val::I32(2)],
                            &mut out,
                        )
                        .unwrap()
                    })
                });
            }
            "fib" => {
                let f = l
                    .instance
                    .get_typed_func::<i32, i32>(&mut l.store, "fib")
                    .unwrap();
                g.bench_function(id, |b| {
                    b.iter(|| f.call(&mut l.store, black_box(FIB_N)).unwrap())
                });
            }
            "kernel" => {
                let f = l
                    .instance
                    .get_typed_func::<i32, i32>(&mut l.store, "kernel")
                    .unwrap();
                g.bench_function(id, |b| {
                    b.iter(|| f.call(&mut l.store, black_box(KERNEL_N)).unwrap())
                });
            }
            "host_roundtrip" | "host_roundtrip_dynamic" => {
                // `layer` links `host.inc` with `Linker::func_new`; the
                // typed row uses `Func::wrap` instead.
                if stringify!($workload) == "host_roundtrip" {
                    l = layer_typed_host::<$b>();
                }
                let f = l
                    .instance
                    .get_typed_func::<i32, i32>(&mut l.store, "host_loop")
                    .unwrap();
                g.bench_function(id, |b| {
                    b.iter(|| f.call(&mut l.store, black_box(HOST_CALLS)).unwrap())
                });
            }
            "memory_1k" | "memory_1m" => {
                let len = if stringify!($workload) == "memory_1k" {
                    1 << 10
                } else {
                    1 << 20
                };
                let m = l.instance.get_memory(&mut l.store, "memory").unwrap();
                let data = vec![7u8; len];
                let mut back = vec![0u8; len];
                g.bench_function(id, |b| {
                    b.iter(|| {
                        m.write(&mut l.store, 64, &data).unwrap();
                        m.read(&l.store, 64, &mut back).unwrap();
                    })
                });
            }
            _ => unreachable!(),
        }
    }};
}

mod raw_wasmtime {
    use super::*;

    pub struct Raw {
        pub store: wasmtime::Store<()>,
        pub instance: wasmtime::Instance,
    }

    /// `dynamic`: `host.inc` is an untyped host function (`Func::new`).
    pub fn new(fuel: bool, dynamic: bool) -> Raw {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(fuel);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let module = wasmtime::Module::new(&engine, bench_wasm()).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        if fuel {
            store.set_fuel(u64::MAX).unwrap();
        }
        let inc = if dynamic {
            let i32 = wasmtime::ValType::I32;
            let ty = wasmtime::FuncType::new(&engine, [i32.clone()], [i32]);
            wasmtime::Func::new(&mut store, ty, |_, p, r| {
                r[0] = wasmtime::Val::I32(p[0].unwrap_i32() + 1);
                Ok(())
            })
        } else {
            wasmtime::Func::wrap(&mut store, |x: i32| x + 1)
        };
        let instance = wasmtime::Instance::new(&mut store, &module, &[inc.into()]).unwrap();
        Raw { store, instance }
    }
}

mod raw_wasmer {
    use super::*;

    pub struct Raw {
        pub store: wasmer::Store,
        pub instance: wasmer::Instance,
    }

    /// `dynamic`: `host.inc` is an untyped host function (`Function::new`).
    pub fn new(dynamic: bool) -> Raw {
        let engine: wasmer::Engine = wasmer::sys::EngineBuilder::new(wasmer::sys::Cranelift::new())
            .engine()
            .into();
        let mut store = wasmer::Store::new(engine);
        let module = wasmer::Module::new(&store, bench_wasm()).unwrap();
        let inc = if dynamic {
            let i32 = wasmer::Type::I32;
            let ty = wasmer::FunctionType::new([i32], [i32]);
            wasmer::Function::new(&mut store, ty, |p| {
                Ok(vec![wasmer::Value::I32(p[0].unwrap_i32() + 1)])
            })
        } else {
            wasmer::Function::new_typed(&mut store, |x: i32| x + 1)
        };
        let imports = wasmer::imports! { "host" => { "inc" => inc } };
        let instance = wasmer::Instance::new(&mut store, &module, &imports).unwrap();
        Raw { store, instance }
    }
}

fn raw_benches(g: &mut BenchmarkGroup<WallTime>, workload: &str) {
    // wasmtime
    {
        let dynamic = workload == "host_roundtrip_dynamic";
        let mut r = raw_wasmtime::new(false, dynamic);
        let id = "raw/wasmtime";
        let (s, i) = (&mut r.store, &r.instance);
        match workload {
            "call_empty" => {
                let f = i.get_typed_func::<(), ()>(&mut *s, "empty").unwrap();
                g.bench_function(id, |b| b.iter(|| f.call(&mut *s, ()).unwrap()));
            }
            "call_add" => {
                let f = i.get_typed_func::<(i32, i32), i32>(&mut *s, "add").unwrap();
                g.bench_function(id, |b| {
                    b.iter(|| f.call(&mut *s, (black_box(1), black_box(2))).unwrap())
                });
            }
            "call_add_dynamic" => {
                let f = i.get_func(&mut *s, "add").unwrap();
                let mut out = [wasmtime::Val::I32(0)];
                g.bench_function(id, |b| {
                    b.iter(|| {
                        f.call(
                            &mut *s,
                            &[wasmtime::Val::I32(black_box(1)), wasmtime::Val::I32(2)],
                            &mut out,
                        )
                        .unwrap()
                    })
                });
            }
            "fib" | "kernel" | "host_roundtrip" | "host_roundtrip_dynamic" => {
                let (name, n) = match workload {
                    "fib" => ("fib", FIB_N),
                    "kernel" => ("kernel", KERNEL_N),
                    _ => ("host_loop", HOST_CALLS),
                };
                let f = i.get_typed_func::<i32, i32>(&mut *s, name).unwrap();
                g.bench_function(id, |b| b.iter(|| f.call(&mut *s, black_box(n)).unwrap()));
            }
            "memory_1k" | "memory_1m" => {
                let len = if workload == "memory_1k" {
                    1 << 10
                } else {
                    1 << 20
                };
                let m = i.get_memory(&mut *s, "memory").unwrap();
                let data = vec![7u8; len];
                let mut back = vec![0u8; len];
                g.bench_function(id, |b| {
                    b.iter(|| {
                        m.write(&mut *s, 64, &data).unwrap();
                        m.read(&*s, 64, &mut back).unwrap();
                    })
                });
            }
            _ => {}
        }
    }
    // wasmer
    {
        let dynamic = workload == "host_roundtrip_dynamic";
        let mut r = raw_wasmer::new(dynamic);
        let id = "raw/wasmer";
        let (s, i) = (&mut r.store, &r.instance);
        match workload {
            "call_empty" => {
                let f = i
                    .exports
                    .get_typed_function::<(), ()>(&*s, "empty")
                    .unwrap();
                g.bench_function(id, |b| b.iter(|| f.call(&mut *s).unwrap()));
            }
            "call_add" => {
                let f = i
                    .exports
                    .get_typed_function::<(i32, i32), i32>(&*s, "add")
                    .unwrap();
                g.bench_function(id, |b| {
                    b.iter(|| f.call(&mut *s, black_box(1), black_box(2)).unwrap())
                });
            }
            "call_add_dynamic" => {
                let f = i.exports.get_function("add").unwrap().clone();
                g.bench_function(id, |b| {
                    b.iter(|| {
                        f.call(
                            &mut *s,
                            &[wasmer::Value::I32(black_box(1)), wasmer::Value::I32(2)],
                        )
                        .unwrap()
                    })
                });
            }
            "fib" | "kernel" | "host_roundtrip" | "host_roundtrip_dynamic" => {
                let (name, n) = match workload {
                    "fib" => ("fib", FIB_N),
                    "kernel" => ("kernel", KERNEL_N),
                    _ => ("host_loop", HOST_CALLS),
                };
                let f = i.exports.get_typed_function::<i32, i32>(&*s, name).unwrap();
                g.bench_function(id, |b| b.iter(|| f.call(&mut *s, black_box(n)).unwrap()));
            }
            "memory_1k" | "memory_1m" => {
                let len = if workload == "memory_1k" {
                    1 << 10
                } else {
                    1 << 20
                };
                let m = i.exports.get_memory("memory").unwrap().clone();
                let data = vec![7u8; len];
                let mut back = vec![0u8; len];
                g.bench_function(id, |b| {
                    b.iter(|| {
                        m.view(&*s).write(64, &data).unwrap();
                        m.view(&*s).read(64, &mut back).unwrap();
                    })
                });
            }
            _ => {}
        }
    }
}

fn short(g: &mut BenchmarkGroup<WallTime>) {
    settings(g, SHORT_GROUP);
}

/// Applies `(warm-up ms, measurement ms, samples)` (`SHORT_GROUP`, `LONG_GROUP`).
fn settings(g: &mut BenchmarkGroup<WallTime>, (warm_up, measure, samples): (u64, u64, usize)) {
    g.warm_up_time(Duration::from_millis(warm_up));
    g.measurement_time(Duration::from_millis(measure));
    g.sample_size(samples);
}

fn calls_and_compute(c: &mut Criterion) {
    for workload in [
        "call_empty",
        "call_add",
        "call_add_dynamic",
        "fib",
        "kernel",
        "host_roundtrip",
        "host_roundtrip_dynamic",
        "memory_1k",
        "memory_1m",
    ] {
        let mut g = c.benchmark_group(workload);
        short(&mut g);
        macro_rules! each {
            ($w:ident) => {{
                layer_benches!(&mut g, "wasmtime", anywasm::Wasmtime, $w);
                layer_benches!(&mut g, "wasmi", anywasm::Wasmi, $w);
                layer_benches!(&mut g, "wasmer", anywasm::Wasmer, $w);
            }};
        }
        match workload {
            "call_empty" => each!(call_empty),
            "call_add" => each!(call_add),
            "call_add_dynamic" => each!(call_add_dynamic),
            "fib" => each!(fib),
            "kernel" => each!(kernel),
            "host_roundtrip" => each!(host_roundtrip),
            "host_roundtrip_dynamic" => each!(host_roundtrip_dynamic),
            "memory_1k" => each!(memory_1k),
            _ => each!(memory_1m),
        }
        raw_benches(&mut g, workload);
        g.finish();
    }
}

fn fuel<B: Backend>(g: &mut BenchmarkGroup<WallTime>)
where
    anywasm::SigOf<i32, i32>: anywasm::TypedSig<B, Params = (i32,), Results = (i32,)>,
{
    // Plain, with fuel metered, and with deadline checks (an interruptible
    // engine, no deadline set: the cost of being able to stop).
    for (name, fuel, interruptible) in [
        ("fuel_off", false, false),
        ("fuel_on", true, false),
        ("deadlines_on", false, true),
    ] {
        let mut config = Config::new();
        config.consume_fuel(fuel).interruptible(interruptible);
        let mut l = layer::<B>(&config);
        let f = l
            .instance
            .get_typed_func::<i32, i32>(&mut l.store, "fib")
            .unwrap();
        g.bench_function(format!("{name}/{}", B::NAME), |b| {
            b.iter(|| f.call(&mut l.store, black_box(FIB_N)).unwrap())
        });
    }
}

fn fuel_metering(c: &mut Criterion) {
    let mut g = c.benchmark_group("fuel");
    short(&mut g);
    fuel::<anywasm::Wasmtime>(&mut g);
    fuel::<anywasm::Wasmi>(&mut g);
    fuel::<anywasm::Wasmer>(&mut g);
    g.finish();
}

fn compile_and_instantiate<B: Backend>(c: &mut Criterion, big: &[u8]) {
    let engine = Engine::<B>::new(&Config::new()).unwrap();
    let mut g = c.benchmark_group("compile_1mb");
    settings(&mut g, LONG_GROUP);
    g.bench_function(format!("anywasm/{}", B::NAME), |b| {
        b.iter(|| Module::new(&engine, big).unwrap())
    });
    g.finish();

    let small = bench_wasm();
    let module = Module::new(&engine, &small).unwrap();
    let mut linker = Linker::<B, ()>::new();
    linker
        .func_new(
            "host",
            "inc",
            anywasm::FuncType::new([anywasm::ValType::I32], [anywasm::ValType::I32]),
            |_c, _p, r| {
                r[0] = Val::I32(0);
                Ok(())
            },
        )
        .unwrap();
    let mut g = c.benchmark_group("instantiate");
    short(&mut g);
    // Cold and precompiled loads run on a fresh engine every CHUNK
    // iterations, outside the timed region: wasmer keeps the code memory of
    // every module it ever compiled or deserialized until its engine drops,
    // and tens of thousands of loads exhaust the process's mappings
    // (ENOMEM). Timing covers only the load and the instantiation.
    const CHUNK: u64 = 1_000;
    g.bench_function(format!("cold/{}", B::NAME), |b| {
        b.iter_custom(|iters| {
            chunked(iters, CHUNK, |engine, n| {
                let start = Instant::now();
                for _ in 0..n {
                    let m = Module::new(engine, &small).unwrap();
                    let mut store = Store::new(engine, ());
                    black_box(linker.instantiate(&mut store, &m).unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function(format!("cached/{}", B::NAME), |b| {
        b.iter(|| {
            let mut store = Store::new(&engine, ());
            linker.instantiate(&mut store, &module).unwrap()
        })
    });
    if let Ok(blob) = module.serialize() {
        g.bench_function(format!("precompiled/{}", B::NAME), |b| {
            b.iter_custom(|iters| {
                chunked(iters, CHUNK, |engine, n| {
                    let start = Instant::now();
                    for _ in 0..n {
                        // SAFETY: made above by an engine of the same
                        // configuration on this machine.
                        let m = unsafe { Module::deserialize(engine, &blob) }.unwrap();
                        let mut store = Store::new(engine, ());
                        black_box(linker.instantiate(&mut store, &m).unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// Runs `iters` iterations of `timed` in chunks of at most `chunk`, each on
/// a fresh engine made outside the timed region; sums the timed durations.
fn chunked<B: Backend>(
    iters: u64,
    chunk: u64,
    mut timed: impl FnMut(&Engine<B>, u64) -> Duration,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        let engine = Engine::<B>::new(&Config::new()).unwrap();
        total += timed(&engine, n);
        left -= n;
    }
    total
}

/// A real program (the zstd library as a WASI command, 850 KB): loading it
/// cold (compiling) and warm (from the code cache on disk), and creating an
/// instance with WASI from the loaded module.
fn real_program<B: Backend>(c: &mut Criterion, wasm: &[u8], cache: &anywasm::CodeCache) {
    let engine = Engine::<B>::new(&Config::new()).unwrap();
    let mut g = c.benchmark_group("real_program");
    settings(&mut g, LONG_GROUP);
    g.bench_function(format!("cold/{}", B::NAME), |b| {
        b.iter(|| Module::new(&engine, wasm).unwrap())
    });
    let (module, _) = cache.module(&engine, wasm).unwrap();
    if B::capabilities().precompiled_modules {
        g.bench_function(format!("warm/{}", B::NAME), |b| {
            b.iter(|| {
                let (m, how) = cache.module(&engine, wasm).unwrap();
                assert_eq!(how, anywasm::CodeCacheOutcome::Loaded);
                m
            })
        });
    }
    let mut linker = Linker::<B, anywasm_wasi::WasiCtx>::new();
    anywasm_wasi::add_to_linker(&mut linker, |c| c).unwrap();
    g.bench_function(format!("instantiate/{}", B::NAME), |b| {
        b.iter(|| {
            let mut store = Store::new(&engine, anywasm_wasi::WasiConfig::new().build().unwrap());
            black_box(linker.instantiate(&mut store, &module).unwrap());
        })
    });
    g.finish();
}

fn real_programs(c: &mut Criterion) {
    let wasm = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cli/tests/fixtures/zstd/zstd.wasm"
    ))
    .unwrap();
    let dir = std::env::temp_dir().join(format!("anywasm-bench-cache-{}", std::process::id()));
    let cache = anywasm::CodeCache::open(&dir).unwrap();
    real_program::<anywasm::Wasmtime>(c, &wasm, &cache);
    real_program::<anywasm::Wasmi>(c, &wasm, &cache);
    real_program::<anywasm::Wasmer>(c, &wasm, &cache);
    let _ = std::fs::remove_dir_all(dir);
}

fn compiling(c: &mut Criterion) {
    let big = big_module(1 << 20);
    compile_and_instantiate::<anywasm::Wasmtime>(c, &big);
    compile_and_instantiate::<anywasm::Wasmi>(c, &big);
    compile_and_instantiate::<anywasm::Wasmer>(c, &big);
    // The raw engines compiling the same bytes.
    let mut g = c.benchmark_group("compile_1mb");
    settings(&mut g, LONG_GROUP);
    let wt = wasmtime::Engine::default();
    g.bench_function("raw/wasmtime", |b| {
        b.iter(|| wasmtime::Module::new(&wt, &big).unwrap())
    });
    let wr: wasmer::Engine = wasmer::sys::EngineBuilder::new(wasmer::sys::Cranelift::new())
        .engine()
        .into();
    g.bench_function("raw/wasmer", |b| {
        b.iter(|| wasmer::Module::new(&wr, &big).unwrap())
    });
    g.finish();
}

#[derive(Serialize, Deserialize, Clone)]
struct Small {
    id: u64,
    name: String,
    tags: Vec<String>,
}

/// Bytes as the plugin runtime documents them: MessagePack bin.
#[derive(Serialize, Deserialize, Clone)]
struct Payload {
    #[serde(with = "anywasm_plugin::serde_bytes")]
    bytes: Vec<u8>,
}

/// The plugin rows' inputs: a small struct, a 64 KiB and a 1 MiB payload.
fn plugin_inputs() -> (Small, Payload, Payload) {
    let small = Small {
        id: 42,
        name: "file_icons".into(),
        tags: vec!["a".into(), "b".into()],
    };
    let payload = |n| Payload {
        bytes: (0..n).map(|i| (i * 31) as u8).collect(),
    };
    (small, payload(64 << 10), payload(1 << 20))
}

fn plugin<B: Backend>(c: &mut Criterion) {
    let runtime = PluginRuntime::<B>::new().unwrap();
    let (small, payload, big) = plugin_inputs();
    let mut g = c.benchmark_group("plugin");
    short(&mut g);
    for format in [Format::MsgPack, Format::Json] {
        let p = runtime
            .load(Manifest::from_bytes("echo", ECHO_PLUGIN_WAT).format(format))
            .unwrap();
        g.bench_function(format!("small_{}/{}", format.name(), B::NAME), |b| {
            b.iter(|| p.call::<Small, Small>("echo", &small).unwrap())
        });
        g.bench_function(format!("64k_{}/{}", format.name(), B::NAME), |b| {
            b.iter(|| p.call::<Payload, Payload>("echo", &payload).unwrap())
        });
        if format == Format::MsgPack {
            g.bench_function(format!("1m_{}/{}", format.name(), B::NAME), |b| {
                b.iter(|| p.call::<Payload, Payload>("echo", &big).unwrap())
            });
        }
    }
    let raw = runtime
        .load(Manifest::from_bytes("echo-raw", ECHO_PLUGIN_WAT).format(Format::Raw))
        .unwrap();
    g.bench_function(format!("empty_raw/{}", B::NAME), |b| {
        b.iter(|| raw.call_raw("echo", b"").unwrap())
    });
    g.bench_function(format!("64k_raw/{}", B::NAME), |b| {
        b.iter(|| raw.call_raw("echo", &payload.bytes).unwrap())
    });
    g.bench_function(format!("1m_raw/{}", B::NAME), |b| {
        b.iter(|| raw.call_raw("echo", &big.bytes).unwrap())
    });
    g.finish();
}

fn plugins(c: &mut Criterion) {
    plugin::<anywasm::Wasmtime>(c);
    plugin::<anywasm::Wasmi>(c);
    plugin::<anywasm::Wasmer>(c);
}

/// The inputs of the Extism-guest rows: 16 bytes and 64 KiB.
fn extism_guest_inputs() -> [(&'static str, Vec<u8>); 2] {
    let bytes = |n: usize| (0..n).map(|i| (i * 31) as u8).collect();
    [("16b", bytes(16)), ("64k", bytes(64 << 10))]
}

/// An Extism guest (`fixtures/extism_echo.wat`, which moves its input and
/// output as Extism's PDKs do) through anywasm's Extism ABI; the same
/// guest on Extism's own host is in `extism_reference`.
fn extism_guest<B: Backend>(g: &mut BenchmarkGroup<WallTime>) {
    let wasm = wat::parse_str(include_str!("../fixtures/extism_echo.wat")).unwrap();
    let runtime = PluginRuntime::<B>::new().unwrap();
    let p = runtime
        .load(Manifest::from_bytes("extism_echo", wasm))
        .unwrap();
    for (size, input) in extism_guest_inputs() {
        g.bench_function(format!("{size}/{}", B::NAME), |b| {
            b.iter(|| {
                let out = p.call_raw("echo", &input).unwrap();
                debug_assert_eq!(out, input);
                out
            })
        });
    }
}

fn extism_guests(c: &mut Criterion) {
    let mut g = c.benchmark_group("extism_guest");
    short(&mut g);
    extism_guest::<anywasm::Wasmtime>(&mut g);
    extism_guest::<anywasm::Wasmi>(&mut g);
    extism_guest::<anywasm::Wasmer>(&mut g);
    g.finish();
}

/// Loads main.wasm and the three libraries it needs (the linker's C
/// fixtures) into a fresh store, from files: read, compile, lay out,
/// resolve, instantiate, relocate, run constructors.
fn link_main_and_three_libs<B: Backend>(g: &mut BenchmarkGroup<WallTime>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../linker/tests/fixtures");
    g.bench_function(format!("main_and_3_libs/{}", B::NAME), |b| {
        b.iter_custom(|iters| {
            // A fresh engine per chunk: see `compile_and_instantiate`.
            chunked::<B>(iters, 200, |engine, n| {
                let start = Instant::now();
                for _ in 0..n {
                    let mut store = Store::new(engine, ());
                    let config = anywasm_linker::LinkerConfig::new().search_dir(dir);
                    let mut dl =
                        anywasm_linker::DynamicLinker::new(&mut store, config, Linker::new())
                            .unwrap();
                    black_box(dl.load(&mut store, "main.wasm").unwrap());
                }
                start.elapsed()
            })
        })
    });
}

/// One `dlopen` + `dlsym` of a small library (libplugin.so, which needs
/// the already loaded libbase.so) into a running program (main.wasm and
/// its libraries, loaded untimed into a fresh store each time, because a
/// library is loaded once per store): read, compile, lay out, resolve,
/// instantiate, relocate, then look one function up.
fn dlopen_into_running_program<B: Backend>(g: &mut BenchmarkGroup<WallTime>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../linker/tests/fixtures");
    g.bench_function(format!("dlopen_dlsym/{}", B::NAME), |b| {
        b.iter_custom(|iters| {
            chunked::<B>(iters, 200, |engine, n| {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let mut store = Store::new(engine, ());
                    let config = anywasm_linker::LinkerConfig::new().search_dir(dir);
                    let mut dl =
                        anywasm_linker::DynamicLinker::new(&mut store, config, Linker::new())
                            .unwrap();
                    dl.load(&mut store, "main.wasm").unwrap();
                    let start = Instant::now();
                    let h = dl.dlopen(&mut store, "libplugin.so").unwrap();
                    black_box(dl.dlsym(&mut store, h, "plugin_scale").unwrap());
                    total += start.elapsed();
                }
                total
            })
        })
    });
}

fn dynamic_linking(c: &mut Criterion) {
    let mut g = c.benchmark_group("dynamic_link");
    short(&mut g);
    link_main_and_three_libs::<anywasm::Wasmtime>(&mut g);
    link_main_and_three_libs::<anywasm::Wasmi>(&mut g);
    link_main_and_three_libs::<anywasm::Wasmer>(&mut g);
    dlopen_into_running_program::<anywasm::Wasmtime>(&mut g);
    dlopen_into_running_program::<anywasm::Wasmi>(&mut g);
    dlopen_into_running_program::<anywasm::Wasmer>(&mut g);
    g.finish();
}

/// The external reference: Extism running an echo of the same bytes, in
/// the same `plugin` group and with the same encodings.
#[cfg(feature = "extism")]
fn extism_reference(c: &mut Criterion) {
    let wasm = wat::parse_str(include_str!("../fixtures/extism_echo.wat")).unwrap();
    let mut plugin = extism::Plugin::new(&wasm, [], false).unwrap();
    let (small, payload, _) = plugin_inputs();
    let mut g = c.benchmark_group("plugin");
    short(&mut g);
    g.bench_function("empty_raw/extism", |b| {
        b.iter(|| plugin.call::<&[u8], Vec<u8>>("echo", &b""[..]).unwrap())
    });
    g.bench_function("64k_raw/extism", |b| {
        b.iter(|| {
            plugin
                .call::<&[u8], Vec<u8>>("echo", &payload.bytes[..])
                .unwrap()
        })
    });
    for (format, json) in [("msgpack", false), ("json", true)] {
        g.bench_function(format!("small_{format}/extism"), |b| {
            b.iter(|| extism_echo(&mut plugin, &small, json))
        });
        g.bench_function(format!("64k_{format}/extism"), |b| {
            b.iter(|| extism_echo(&mut plugin, &payload, json))
        });
    }
    g.finish();
    // The Extism-guest rows: the same guest and inputs as `extism_guest`.
    let mut g = c.benchmark_group("extism_guest");
    short(&mut g);
    for (size, input) in extism_guest_inputs() {
        g.bench_function(format!("{size}/extism"), |b| {
            b.iter(|| plugin.call::<&[u8], Vec<u8>>("echo", &input[..]).unwrap())
        });
    }
    g.finish();
}

/// One Extism echo call with a serde value, encoded and decoded as the
/// anywasm plugin rows do it.
#[cfg(feature = "extism")]
fn extism_echo<V: Serialize + serde::de::DeserializeOwned>(
    plugin: &mut extism::Plugin,
    value: &V,
    json: bool,
) -> V {
    let input = if json {
        serde_json::to_vec(value).unwrap()
    } else {
        rmp_serde::to_vec_named(value).unwrap()
    };
    let out: &[u8] = plugin.call("echo", &input[..]).unwrap();
    if json {
        serde_json::from_slice(out).unwrap()
    } else {
        rmp_serde::from_slice(out).unwrap()
    }
}

#[cfg(not(feature = "extism"))]
fn extism_reference(_: &mut Criterion) {}

/// Polls a future on this thread until it completes, with a waker that
/// does nothing: a call that never waits completes in its first poll, so
/// this measures the async call itself, not an executor.
fn poll_to_end<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The same call synchronously and asynchronously, per backend: a typed
/// call of the empty function, and a plugin's empty raw call.
fn async_overhead<B: Backend>(g: &mut BenchmarkGroup<WallTime>)
where
    anywasm::SigOf<(), ()>: anywasm::TypedSig<B, Params = (), Results = ()>,
{
    let mut l = layer::<B>(&Config::new());
    let f = l
        .instance
        .get_typed_func::<(), ()>(&mut l.store, "empty")
        .unwrap();
    if !B::capabilities().async_calls {
        return;
    }
    g.bench_function(format!("call_sync/{}", B::NAME), |b| {
        b.iter(|| f.call(&mut l.store, ()).unwrap())
    });
    g.bench_function(format!("call_async/{}", B::NAME), |b| {
        b.iter(|| poll_to_end(f.call_async(&mut l.store, ())).unwrap())
    });
    let runtime = PluginRuntime::<B>::new().unwrap();
    let raw = runtime
        .load(Manifest::from_bytes("echo-raw", ECHO_PLUGIN_WAT).format(Format::Raw))
        .unwrap();
    g.bench_function(format!("plugin_sync/{}", B::NAME), |b| {
        b.iter(|| raw.call_raw("echo", b"").unwrap())
    });
    g.bench_function(format!("plugin_async/{}", B::NAME), |b| {
        b.iter(|| poll_to_end(raw.call_raw_async("echo", b"")).unwrap())
    });
}

fn async_calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("async");
    short(&mut g);
    async_overhead::<anywasm::Wasmtime>(&mut g);
    async_overhead::<anywasm::Wasmi>(&mut g);
    async_overhead::<anywasm::Wasmer>(&mut g);
    g.finish();
}

criterion_group!(
    benches,
    async_calls,
    calls_and_compute,
    fuel_metering,
    compiling,
    real_programs,
    plugins,
    extism_guests,
    extism_reference,
    dynamic_linking
);
criterion_main!(benches);
