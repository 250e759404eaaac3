//! # anywasm — the command line
//!
//! ```text
//! anywasm demo                                   # a module on every engine
//! anywasm inspect module.wasm                    # imports, exports, sections, features
//! anywasm call module.wasm add 1 2 --backend wasmi
//! anywasm run program.wasm -- arg1 arg2          # a WASI command
//! anywasm run program.wasm --timings             # load / instantiate / run times
//! anywasm run untrusted.wasm --fuel 1000000000 --timeout-ms 2000 --max-memory-mb 64
//! anywasm bench module.wasm fib 25 --backends all --json
//! anywasm conformance                            # the spec-suite matrix
//! anywasm plugin call count_vowels.wasm count_vowels "Hello" "World"
//! anywasm plugin inspect count_vowels.wasm         # which ABI, what it imports
//! ```
//!
//! Bad input (a missing file, bytes that are not wasm, an unknown export,
//! wrong arguments) gives a one-line `error:` message and exit status 1; a
//! trap gives exit status 3; a WASI program's own exit status is passed through.
//!
//! `run`, `call` and `bench` keep compiled code in a cache on disk (see
//! `anywasm::CodeCache`): `anywasm` in the user's cache directory, or
//! `--cache-dir DIR` / `ANYWASM_CACHE_DIR`; `--no-cache` compiles every time.

mod bench;
mod call;
mod demo;
mod inspect;
mod plugin;

use std::path::PathBuf;
use std::process::ExitCode;

use anywasm::BackendKind;
use clap::{Args, Parser, Subcommand};

/// Limits for running an untrusted module; exceeding one ends the run with
/// a one-line error and a non-zero status.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct LimitArgs {
    /// Fuel limit (engine-specific units, about one per instruction).
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Time limit in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Limit of each linear memory, in MiB.
    #[arg(long)]
    pub max_memory_mb: Option<u64>,
}

/// Where compiled code is kept between runs (wasmtime and wasmer; wasmi
/// compiles lazily and has nothing to keep).
#[derive(Args, Debug, Clone, Default)]
pub struct CacheArgs {
    /// Compiles every time, without reading or writing the code cache.
    #[arg(long)]
    pub no_cache: bool,
    /// The code cache's directory (default: `anywasm` in the user's cache
    /// directory, e.g. ~/.cache/anywasm). It must be private to the user.
    #[arg(long, env = "ANYWASM_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// The cache to use, if any. A cache that cannot be opened is reported
    /// on stderr and the run goes on without it.
    pub fn open(&self) -> Option<anywasm::CodeCache> {
        if self.no_cache {
            return None;
        }
        let dir = self
            .cache_dir
            .clone()
            .or_else(|| dirs::cache_dir().map(|d| d.join("anywasm")))?;
        match anywasm::CodeCache::open(&dir) {
            Ok(cache) => Some(cache),
            Err(e) => {
                eprintln!("warning: compiling without the code cache: {e}");
                None
            }
        }
    }
}

/// Compiles `bytes`, or loads the code from `cache`; says which it did.
pub fn load_module<B: anywasm::Backend>(
    engine: &anywasm::Engine<B>,
    bytes: &[u8],
    cache: Option<&anywasm::CodeCache>,
) -> Result<(anywasm::Module<B>, &'static str), Failure> {
    use anywasm::CodeCacheOutcome as O;
    let Some(cache) = cache else {
        return Ok((anywasm::Module::new(engine, bytes)?, "compiled, cache off"));
    };
    let (module, outcome) = cache.module(engine, bytes)?;
    Ok((
        module,
        match outcome {
            O::Loaded => "loaded from the code cache",
            O::Stored => "compiled, stored in the code cache",
            O::Replaced(why) => {
                eprintln!("warning: a code cache entry was unusable and was replaced: {why}");
                "compiled, stored in the code cache"
            }
            O::NotStored(why) => {
                eprintln!("warning: {why}");
                "compiled, not stored"
            }
            O::Unsupported => "compiled (this engine keeps no compiled code)",
            _ => "compiled",
        },
    ))
}

/// Run, inspect and compare WebAssembly modules on wasmtime, wasmi and wasmer.
#[derive(Parser)]
#[command(name = "anywasm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs an embedded module on every engine in this build, with timings.
    Demo,
    /// Shows a module's imports, exports, memories, tables, custom sections,
    /// the proposals it uses and its content hash.
    Inspect {
        /// A .wasm or .wat file.
        file: PathBuf,
    },
    /// Calls an exported function; arguments are parsed from its signature.
    Call {
        /// A .wasm or .wat file.
        file: PathBuf,
        /// The export to call.
        func: String,
        /// Arguments, one per parameter (numbers; `null` for references).
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
        /// The engine.
        #[arg(long, short, default_value = "wasmtime")]
        backend: String,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Runs a WASI command module (`_start`); its exit status is passed through.
    /// A dynamically linked program (a `dylink.0` PIE) is loaded with the
    /// libraries it needs from `--lib-path`.
    Run {
        /// A .wasm file compiled for WASI.
        file: PathBuf,
        /// Where a dynamically linked program's libraries are (repeatable;
        /// default: the program's directory). Libraries are found only here.
        #[arg(long = "lib-path", value_name = "DIR")]
        lib_paths: Vec<PathBuf>,
        /// Arguments for the program.
        #[arg(last = true)]
        args: Vec<String>,
        /// A directory the program may use: `HOST` or `HOST::GUEST`
        /// (append `:ro` for read-only).
        #[arg(long = "dir")]
        dirs: Vec<String>,
        /// An environment variable for the program: `NAME=VALUE`.
        #[arg(long = "env")]
        envs: Vec<String>,
        /// The engine.
        #[arg(long, short, default_value = "wasmtime")]
        backend: String,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        cache: CacheArgs,
        /// Prints on stderr how long loading (compiling or reading the code
        /// cache), instantiating and running took.
        #[arg(long)]
        timings: bool,
    },
    /// Times compiling, instantiating and calling on each engine.
    Bench {
        /// A .wasm or .wat file.
        file: PathBuf,
        /// An export to call (optional).
        func: Option<String>,
        /// Its arguments.
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
        /// `all` or a comma-separated list of engines.
        #[arg(long, default_value = "all")]
        backends: String,
        /// Calls per measurement.
        #[arg(long, default_value_t = 1000)]
        iterations: u32,
        /// Prints JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Runs the WebAssembly spec testsuite on every engine and prints the matrix.
    Conformance,
    /// Calls plugins (anywasm's ABI, Extism's or waPC's) and tells which ABI a module speaks.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// `anywasm plugin …`.
#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Loads one plugin and calls FUNCTION once per INPUT, in order, on the
    /// same plugin (state such as Extism vars carries over), printing each
    /// output on its own line. A failed call prints `error: <message>` and
    /// ends with status 1 after the outputs so far. Plugins get the
    /// runtime's default limits (1 s per call, 64 MiB of memory).
    Call {
        /// The plugin (.wasm or .wat).
        file: PathBuf,
        /// The function to call.
        function: String,
        /// Inputs, one call each (bytes for Extism and waPC plugins, where
        /// FUNCTION is the waPC operation; JSON text for anywasm's).
        inputs: Vec<String>,
        /// The engine.
        #[arg(long, short, default_value = "wasmtime")]
        backend: String,
        /// The plugin's ABI: auto, anywasm, extism or wapc.
        #[arg(long, default_value = "auto")]
        abi: String,
        /// A configuration value for the plugin: KEY=VALUE.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// A host function the plugin may import (`module.name`).
        #[arg(long = "allow", value_name = "NAME")]
        allow: Vec<String>,
    },
    /// Tells which ABI a module speaks, its functions and its imports.
    Inspect {
        /// The module.
        file: PathBuf,
    },
}

/// A failure of the command, with the exit status it deserves.
pub enum Failure {
    /// Bad input or an engine error: status 1.
    Error(String),
    /// The guest trapped: status 3.
    Trap(String),
    /// A WASI program exited with this status.
    Exit(i32),
}

impl From<anywasm::Error> for Failure {
    fn from(e: anywasm::Error) -> Self {
        match e {
            anywasm::Error::Trap { .. } => Failure::Trap(e.to_string()),
            anywasm::Error::Exit(code) => Failure::Exit(code),
            e => Failure::Error(e.to_string()),
        }
    }
}

/// Reads a module file, binary or text, with a clear error.
pub fn read_module(file: &PathBuf) -> Result<Vec<u8>, Failure> {
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::Error(format!("cannot read {}: {e}", file.display())))?;
    let bytes = wat::parse_bytes(&bytes)
        .map_err(|e| {
            // wat's message spans several lines; keep the reason and the position.
            let text = e.to_string();
            let reason = text.lines().next().unwrap_or("invalid");
            let at = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("--> <anon>:"))
                .map(|pos| format!(" at {pos}"))
                .unwrap_or_default();
            Failure::Error(format!(
                "{} is neither WebAssembly nor valid WebAssembly text: {reason}{at}",
                file.display()
            ))
        })?
        .into_owned();
    if !bytes.starts_with(b"\0asm") {
        return Err(Failure::Error(format!(
            "{} is not a WebAssembly module",
            file.display()
        )));
    }
    Ok(bytes)
}

/// Parses `--backend`.
pub fn backend(name: &str) -> Result<BackendKind, Failure> {
    let kind: BackendKind = name
        .parse()
        .map_err(|e: anywasm::Error| Failure::Error(e.to_string()))?;
    if !kind.is_available() {
        return Err(Failure::Error(format!(
            "the {kind} engine is not in this build"
        )));
    }
    Ok(kind)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Demo => demo::run(),
        Command::Inspect { file } => inspect::run(&file),
        Command::Call {
            file,
            func,
            args,
            backend,
            limits,
            cache,
        } => call::run(&file, &func, &args, &backend, limits, &cache),
        Command::Run {
            file,
            lib_paths,
            args,
            dirs,
            envs,
            backend,
            limits,
            cache,
            timings,
        } => call::run_wasi(
            &file, &lib_paths, &args, &dirs, &envs, &backend, limits, &cache, timings,
        ),
        Command::Bench {
            file,
            func,
            args,
            backends,
            iterations,
            json,
            cache,
        } => bench::run(
            &file,
            func.as_deref(),
            &args,
            &backends,
            iterations,
            json,
            &cache,
        ),
        Command::Plugin(PluginCommand::Call {
            file,
            function,
            inputs,
            backend,
            abi,
            config,
            allow,
        }) => plugin::call(plugin::CallArgs {
            file: &file,
            function: &function,
            inputs: &inputs,
            backend: &backend,
            abi: &abi,
            config: &config,
            allow: &allow,
        }),
        Command::Plugin(PluginCommand::Inspect { file }) => plugin::inspect(&file),
        Command::Conformance => {
            print!(
                "{}",
                anywasm_conformance::matrix::render(
                    &conformance_columns(),
                    &anywasm_conformance::matrix::today()
                )
            );
            Ok(())
        }
    }
}

/// One matrix column per engine in this build.
#[allow(unused_mut, clippy::vec_init_then_push)]
fn conformance_columns() -> Vec<anywasm_conformance::matrix::Column> {
    use anywasm_conformance::{expected, matrix::column};
    let mut columns = Vec::new();
    #[cfg(feature = "wasmtime")]
    columns.push(column::<anywasm::Wasmtime>(expected::WASMTIME));
    #[cfg(feature = "wasmi")]
    columns.push(column::<anywasm::Wasmi>(expected::WASMI));
    #[cfg(feature = "wasmer")]
    columns.push(column::<anywasm::Wasmer>(expected::WASMER));
    columns
}

fn main() -> ExitCode {
    // A bug should still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error: {info}");
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Trap(msg)) => {
            eprintln!("trap: {msg}");
            ExitCode::from(3)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code.clamp(0, 255) as u8),
    }
}
