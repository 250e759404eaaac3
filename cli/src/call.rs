//! `anywasm call` and `anywasm run`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anywasm::{Backend, CodeCache, Config, Engine, Linker, Store, Val, ValType};
use anywasm_wasi::{WasiConfig, WasiCtx};

use crate::{CacheArgs, Failure, LimitArgs, backend, load_module, read_module};

/// An engine and a store with `limits` applied.
fn limited<B: Backend, T: Send + 'static>(
    limits: LimitArgs,
    data: impl FnOnce() -> Result<T, Failure>,
) -> Result<(Engine<B>, Store<B, T>), Failure> {
    let mut config = Config::new();
    let pages = match limits.max_memory_mb {
        Some(0) => return Err(Failure::Error("--max-memory-mb must be at least 1".into())),
        Some(mb) => Some(
            mb.checked_mul(16)
                .ok_or_else(|| Failure::Error(format!("--max-memory-mb {mb} is too large")))?,
        ),
        None => None,
    };
    config
        .consume_fuel(limits.fuel.is_some())
        .interruptible(limits.timeout_ms.is_some())
        .max_memory_pages(pages);
    let engine = Engine::<B>::new(&config)?;
    let mut store = Store::new(&engine, data()?);
    if let Some(f) = limits.fuel {
        store.set_fuel(f)?;
    }
    if let Some(ms) = limits.timeout_ms {
        store.set_timeout(Duration::from_millis(ms))?;
    }
    Ok((engine, store))
}

/// Parses one argument for a parameter of type `ty`.
pub fn parse_arg<B: Backend>(text: &str, ty: ValType, index: usize) -> Result<Val<B>, Failure> {
    let bad = || {
        Failure::Error(format!(
            "argument {} (`{text}`) is not a valid {ty}",
            index + 1
        ))
    };
    let t = text.trim();
    let int = |t: &str| -> Option<i128> {
        let (neg, digits) = t.strip_prefix('-').map_or((false, t), |d| (true, d));
        let v = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex) => i128::from_str_radix(hex, 16).ok()?,
            None => digits.parse::<i128>().ok()?,
        };
        Some(if neg { -v } else { v })
    };
    Ok(match ty {
        ValType::I32 => {
            let v = int(t)
                .filter(|v| *v >= i32::MIN as i128 && *v <= u32::MAX as i128)
                .ok_or_else(bad)?;
            Val::I32(v as i32)
        }
        ValType::I64 => {
            let v = int(t)
                .filter(|v| *v >= i64::MIN as i128 && *v <= u64::MAX as i128)
                .ok_or_else(bad)?;
            Val::I64(v as i64)
        }
        ValType::F32 => Val::f32(t.parse::<f32>().map_err(|_| bad())?),
        ValType::F64 => Val::f64(t.parse::<f64>().map_err(|_| bad())?),
        ValType::V128 => {
            let v = int(t).ok_or_else(bad)?;
            Val::V128(anywasm::V128(v as u128))
        }
        ValType::FuncRef if t == "null" => Val::FuncRef(None),
        ValType::ExternRef if t == "null" => Val::ExternRef(None),
        ValType::ExnRef if t == "null" => Val::ExnRef(None),
        _ => return Err(bad()),
    })
}

fn call_on<B: Backend>(
    bytes: &[u8],
    func: &str,
    args: &[String],
    limits: LimitArgs,
    cache: Option<&CodeCache>,
) -> Result<Vec<String>, Failure> {
    let (engine, mut store) = limited::<B, ()>(limits, || Ok(()))?;
    let (module, _) = load_module(&engine, bytes, cache)?;
    if let Some(i) = module.imports().first() {
        return Err(Failure::Error(format!(
            "the module imports `{}`.`{}` ({}); `call` runs modules without imports (use `run` for WASI programs)",
            i.module, i.name, i.ty
        )));
    }
    let instance = Linker::new().instantiate(&mut store, &module)?;
    let f = instance.get_func(&mut store, func)?;
    let ty = f.ty(&store)?;
    if args.len() != ty.params().len() {
        return Err(Failure::Error(format!(
            "`{func}` has type {ty}: it takes {} argument(s), {} given",
            ty.params().len(),
            args.len()
        )));
    }
    let vals = args
        .iter()
        .zip(ty.params())
        .enumerate()
        .map(|(i, (a, t))| parse_arg::<B>(a, *t, i))
        .collect::<Result<Vec<_>, _>>()?;
    let results = f.invoke(&mut store, &vals)?;
    Ok(results.iter().map(|v| v.to_string()).collect())
}

pub fn run(
    file: &PathBuf,
    func: &str,
    args: &[String],
    backend_name: &str,
    limits: LimitArgs,
    cache: &CacheArgs,
) -> Result<(), Failure> {
    let kind = backend(backend_name)?;
    let bytes = read_module(file)?;
    let cache = cache.open();
    let results = anywasm::with_backend!(kind, B => call_on::<B>(&bytes, func, args, limits, cache.as_ref()))??;
    for r in results {
        println!("{r}");
    }
    Ok(())
}

/// Parses `--dir HOST[::GUEST][:ro]` into (host, guest, read-only).
pub fn parse_dir(spec: &str) -> Result<(PathBuf, String, bool), Failure> {
    let (spec, read_only) = match spec.strip_suffix(":ro") {
        Some(rest) => (rest, true),
        None => (spec, false),
    };
    let (host, guest) = match spec.split_once("::") {
        Some((h, g)) => (h, g.to_string()),
        None => (spec, spec.to_string()),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(Failure::Error(format!(
            "--dir `{spec}`: expected HOST, HOST::GUEST or either with `:ro`"
        )));
    }
    let host = PathBuf::from(host);
    if !host.is_dir() {
        return Err(Failure::Error(format!(
            "--dir: {} is not a directory",
            host.display()
        )));
    }
    Ok((host, guest, read_only))
}

/// Parses `--env NAME=VALUE`, or `--env NAME` to pass the host's value on.
pub fn parse_env(spec: &str) -> Result<(String, String), Failure> {
    match spec.split_once('=') {
        Some(("", _)) => Err(Failure::Error(format!("--env `{spec}`: the name is empty"))),
        Some((k, v)) => Ok((k.to_string(), v.to_string())),
        None => std::env::var(spec)
            .map(|v| (spec.to_string(), v))
            .map_err(|_| {
                Failure::Error(format!(
                    "--env `{spec}`: not set on the host (use NAME=VALUE)"
                ))
            }),
    }
}

fn run_wasi_on<B: Backend>(
    bytes: &[u8],
    config: WasiConfig,
    limits: LimitArgs,
    cache: Option<&CodeCache>,
    timings: bool,
) -> Result<i32, Failure> {
    let (engine, mut store) = limited::<B, WasiCtx>(limits, || Ok(config.build()?))?;
    let start = Instant::now();
    let (module, how) = load_module(&engine, bytes, cache)?;
    let loaded = start.elapsed();
    if module.exports().iter().all(|e| e.name != "_start") {
        return Err(Failure::Error(
            "the module has no `_start` export; `run` takes WASI command modules (use `call` for others)".into(),
        ));
    }
    let start = Instant::now();
    let result = anywasm_wasi::run_command_in(&mut store, &module);
    if timings {
        eprintln!(
            "timings ({}): load {:.2?} ({how}), instantiate and run {:.2?}",
            B::NAME,
            loaded,
            start.elapsed()
        );
    }
    Ok(result?)
}

fn program_name(file: &std::path::Path) -> String {
    file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A dynamically linked program and where its libraries are.
struct Linked<'a> {
    name: String,
    bytes: &'a [u8],
    lib_paths: &'a [PathBuf],
}

/// `run` for a dynamically linked program: the main program and the
/// libraries it needs in one shared memory, WASI on that memory, the same
/// limits as any program. Libraries are compiled on each run (the code
/// cache covers single modules).
fn run_linked_on<B: Backend>(
    program: Linked<'_>,
    config: WasiConfig,
    limits: LimitArgs,
    timings: bool,
) -> Result<i32, Failure> {
    use anywasm_linker::{DynamicLinker, LinkerConfig};
    let max_pages = limits.max_memory_mb.map(|mb| mb.saturating_mul(16));
    let (_engine, mut store) = limited::<B, WasiCtx>(limits, || Ok(config.build()?))?;
    let start = Instant::now();
    let mut host = Linker::<B, WasiCtx>::new();
    anywasm_wasi::add_to_linker(&mut host, |c| c)?;
    let mut lc = LinkerConfig::new();
    for dir in program.lib_paths {
        if !dir.is_dir() {
            return Err(Failure::Error(format!(
                "--lib-path {}: not a directory",
                dir.display()
            )));
        }
        lc = lc.search_dir(dir);
    }
    if let Some(pages) = max_pages {
        lc = lc.max_memory_pages(u32::try_from(pages).unwrap_or(u32::MAX));
    }
    let linker_error = |e: anywasm_linker::Error| Failure::Error(e.to_string());
    let mut dl = DynamicLinker::new(&mut store, lc, host).map_err(linker_error)?;
    dl.add_library_bytes(&program.name, program.bytes.to_vec());
    let main = dl.load(&mut store, &program.name).map_err(linker_error)?;
    let loaded = start.elapsed();
    store.data_mut().set_memory(dl.memory().clone());
    let start = Instant::now();
    let status = dl.run_start(&mut store, main).map_err(|e| match e {
        anywasm_linker::Error::NoSuchSymbol { .. } => Failure::Error(
            "the program has no `_start` export; `run` takes WASI command modules".into(),
        ),
        e => linker_error(e),
    });
    if timings {
        eprintln!(
            "timings ({}): load and link {} libraries {:.2?}, run {:.2?}",
            B::NAME,
            dl.libraries().count(),
            loaded,
            start.elapsed()
        );
    }
    status
}

/// `anywasm run`: stdio inherited, only the given directories and
/// variables visible; the program's exit status becomes ours.
#[allow(clippy::too_many_arguments)] // one per command-line option
pub fn run_wasi(
    file: &PathBuf,
    lib_paths: &[PathBuf],
    args: &[String],
    dirs: &[String],
    envs: &[String],
    backend_name: &str,
    limits: LimitArgs,
    cache: &CacheArgs,
    timings: bool,
) -> Result<(), Failure> {
    let kind = backend(backend_name)?;
    let bytes = read_module(file)?;
    let cache = cache.open();
    let mut config = WasiConfig::new()
        .inherit_stdio()
        .arg(program_name(file))
        .args(args.iter().cloned());
    for d in dirs {
        let (host, guest, read_only) = parse_dir(d)?;
        config = if read_only {
            config.preopen_dir_read_only(host, guest)
        } else {
            config.preopen_dir(host, guest)
        };
    }
    for e in envs {
        let (k, v) = parse_env(e)?;
        config = config.env(k, v);
    }
    let status = if anywasm_linker::Dylink::parse("", &bytes).is_ok() {
        let mut dirs = lib_paths.to_vec();
        if dirs.is_empty() {
            dirs.push(match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            });
        }
        let linked = Linked {
            name: program_name(file),
            bytes: &bytes,
            lib_paths: &dirs,
        };
        anywasm::with_backend!(kind, B => run_linked_on::<B>(linked, config, limits, timings))??
    } else {
        if !lib_paths.is_empty() {
            return Err(Failure::Error(
                "--lib-path is for dynamically linked programs, and this one has no `dylink.0` section".into(),
            ));
        }
        anywasm::with_backend!(kind, B => run_wasi_on::<B>(&bytes, config, limits, cache.as_ref(), timings))??
    };
    match status {
        0 => Ok(()),
        code => Err(Failure::Exit(code)),
    }
}
