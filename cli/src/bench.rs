//! `anywasm bench`: compile, instantiate and call timings per engine.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anywasm::{
    Backend, BackendKind, CodeCache, CodeCacheOutcome, Engine, Instance, Linker, Module, Store,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::call::parse_arg;
use crate::{CacheArgs, Failure, read_module};

/// Timings of one engine (medians).
struct Timing {
    backend: &'static str,
    compile: Duration,
    /// Loading the compiled code from the code cache, where the engine
    /// keeps compiled code and the cache is on.
    cached_load: Option<Duration>,
    instantiate: Duration,
    call: Option<Duration>,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn measure<B: Backend>(
    bytes: &[u8],
    func: Option<&str>,
    args: &[String],
    iterations: u32,
    bar: &ProgressBar,
    cache: Option<&CodeCache>,
) -> Result<Timing, Failure> {
    let engine = Engine::<B>::default_config()?;
    bar.set_message(format!("{}: compiling", B::NAME));
    let compile_runs = 5;
    let mut compiles = Vec::new();
    let mut module = None;
    for _ in 0..compile_runs {
        let t = Instant::now();
        module = Some(Module::new(&engine, bytes)?);
        compiles.push(t.elapsed());
    }
    let module = module.ok_or_else(|| Failure::Error("no module".into()))?;
    let mut cached_load = None;
    if let Some(cache) = cache.filter(|_| B::capabilities().precompiled_modules) {
        bar.set_message(format!("{}: loading from the code cache", B::NAME));
        cache.module(&engine, bytes)?;
        let mut loads = Vec::new();
        for _ in 0..compile_runs {
            let t = Instant::now();
            let (_, outcome) = cache.module(&engine, bytes)?;
            loads.push(t.elapsed());
            if outcome != CodeCacheOutcome::Loaded {
                loads.clear();
                break;
            }
        }
        cached_load = (!loads.is_empty()).then(|| median(loads));
    }
    bar.inc(1);
    bar.set_message(format!("{}: instantiating", B::NAME));
    let mut insts = Vec::new();
    let mut last: Option<(Store<B, ()>, Instance<B>)> = None;
    for _ in 0..20 {
        let t = Instant::now();
        let mut store = Store::new(&engine, ());
        let instance = Linker::new().instantiate(&mut store, &module)?;
        insts.push(t.elapsed());
        last = Some((store, instance));
    }
    bar.inc(1);
    let call = match (func, last) {
        (Some(name), Some((mut store, instance))) => {
            bar.set_message(format!("{}: calling {name}", B::NAME));
            let f = instance.get_func(&mut store, name)?;
            let ty = f.ty(&store)?;
            if args.len() != ty.params().len() {
                return Err(Failure::Error(format!(
                    "`{name}` has type {ty}: {} argument(s) given",
                    args.len()
                )));
            }
            let vals = args
                .iter()
                .zip(ty.params())
                .enumerate()
                .map(|(i, (a, t))| parse_arg::<B>(a, *t, i))
                .collect::<Result<Vec<_>, _>>()?;
            let mut results = vec![anywasm::Val::I32(0); ty.results().len()];
            for (slot, t) in results.iter_mut().zip(ty.results()) {
                *slot = anywasm::Val::default_for(*t);
            }
            let mut samples = Vec::new();
            for _ in 0..iterations.max(1) {
                let t = Instant::now();
                f.call(&mut store, &vals, &mut results)?;
                samples.push(t.elapsed());
            }
            Some(median(samples))
        }
        _ => None,
    };
    bar.inc(1);
    Ok(Timing {
        backend: B::NAME,
        compile: median(compiles),
        cached_load,
        instantiate: median(insts),
        call,
    })
}

fn backends(list: &str) -> Result<Vec<BackendKind>, Failure> {
    if list == "all" {
        return Ok(BackendKind::available());
    }
    list.split(',').map(crate::backend).collect()
}

pub fn run(
    file: &PathBuf,
    func: Option<&str>,
    args: &[String],
    list: &str,
    iterations: u32,
    json: bool,
    cache: &CacheArgs,
) -> Result<(), Failure> {
    let bytes = read_module(file)?;
    let cache = cache.open();
    let kinds = backends(list)?;
    let bar = ProgressBar::new(kinds.len() as u64 * 3);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut timings = Vec::new();
    for kind in kinds {
        let t = anywasm::with_backend!(kind, B => measure::<B>(&bytes, func, args, iterations, &bar, cache.as_ref()))??;
        timings.push(t);
    }
    bar.finish_and_clear();
    if json {
        let rows: Vec<serde_json::Value> = timings
            .iter()
            .map(|t| {
                serde_json::json!({
                    "backend": t.backend,
                    "compile_ns": t.compile.as_nanos() as u64,
                    "cached_load_ns": t.cached_load.map(|c| c.as_nanos() as u64),
                    "instantiate_ns": t.instantiate.as_nanos() as u64,
                    "call_ns": t.call.map(|c| c.as_nanos() as u64),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!(
            "{:<10} {:>12} {:>12} {:>12} {:>12}",
            "engine", "compile", "cached load", "instantiate", "call"
        );
        let or_dash = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{d:.2?}"));
        for t in timings {
            println!(
                "{:<10} {:>12.2?} {:>12} {:>12.2?} {:>12}",
                t.backend,
                t.compile,
                or_dash(t.cached_load),
                t.instantiate,
                or_dash(t.call)
            );
        }
    }
    Ok(())
}
