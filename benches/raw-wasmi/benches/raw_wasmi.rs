#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! The `raw/wasmi` rows of the layer benchmarks (same groups, same
//! workloads, same criterion settings), with wasmi built as its users build
//! it. See `benches/benches/engines.rs`.

use std::time::Duration;

use anywasm_raw_wasmi_bench::workloads::{
    FIB_N, HOST_CALLS, KERNEL_N, LONG_GROUP, SHORT_GROUP, bench_wasm, big_module,
};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

struct Raw {
    store: wasmi::Store<()>,
    instance: wasmi::Instance,
}

/// `dynamic`: `host.inc` is an untyped host function (`Func::new`).
fn raw(dynamic: bool) -> Raw {
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, bench_wasm()).unwrap();
    let mut store = wasmi::Store::new(&engine, ());
    let inc = if dynamic {
        let ty = wasmi::FuncType::new([wasmi::ValType::I32], [wasmi::ValType::I32]);
        wasmi::Func::new(&mut store, ty, |_, p, r| {
            r[0] = wasmi::Val::I32(p[0].i32().unwrap_or(0) + 1);
            Ok(())
        })
    } else {
        wasmi::Func::wrap(&mut store, |x: i32| x + 1)
    };
    let instance = wasmi::Instance::new(&mut store, &module, &[inc.into()]).unwrap();
    Raw { store, instance }
}

fn calls_and_compute(c: &mut Criterion) {
    let id = "raw/wasmi";
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
        let (warm_up, measure, samples) = SHORT_GROUP;
        g.warm_up_time(Duration::from_millis(warm_up));
        g.measurement_time(Duration::from_millis(measure));
        g.sample_size(samples);
        let mut r = raw(workload == "host_roundtrip_dynamic");
        let (s, i) = (&mut r.store, &r.instance);
        match workload {
            "call_empty" => {
                let f = i.get_typed_func::<(), ()>(&*s, "empty").unwrap();
                g.bench_function(id, |b| b.iter(|| f.call(&mut *s, ()).unwrap()));
            }
            "call_add" => {
                let f = i.get_typed_func::<(i32, i32), i32>(&*s, "add").unwrap();
                g.bench_function(id, |b| {
                    b.iter(|| f.call(&mut *s, (black_box(1), black_box(2))).unwrap())
                });
            }
            "call_add_dynamic" => {
                let f = i.get_func(&*s, "add").unwrap();
                let mut out = [wasmi::Val::I32(0)];
                g.bench_function(id, |b| {
                    b.iter(|| {
                        f.call(
                            &mut *s,
                            &[wasmi::Val::I32(black_box(1)), wasmi::Val::I32(2)],
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
                let f = i.get_typed_func::<i32, i32>(&*s, name).unwrap();
                g.bench_function(id, |b| b.iter(|| f.call(&mut *s, black_box(n)).unwrap()));
            }
            _ => {
                let len = if workload == "memory_1k" {
                    1 << 10
                } else {
                    1 << 20
                };
                let m = i.get_memory(&*s, "memory").unwrap();
                let data = vec![7u8; len];
                let mut back = vec![0u8; len];
                g.bench_function(id, |b| {
                    b.iter(|| {
                        m.write(&mut *s, 64, &data).unwrap();
                        m.read(&*s, 64, &mut back).unwrap();
                    })
                });
            }
        }
        g.finish();
    }
}

fn compiling(c: &mut Criterion) {
    let big = big_module(1 << 20);
    let mut g = c.benchmark_group("compile_1mb");
    let (warm_up, measure, samples) = LONG_GROUP;
    g.warm_up_time(Duration::from_millis(warm_up));
    g.measurement_time(Duration::from_millis(measure));
    g.sample_size(samples);
    let engine = wasmi::Engine::default();
    g.bench_function("raw/wasmi", |b| {
        b.iter(|| wasmi::Module::new(&engine, &big).unwrap())
    });
    g.finish();
}

criterion_group!(benches, calls_and_compute, compiling);
criterion_main!(benches);
