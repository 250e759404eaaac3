//! # anywasm — the command line
//!
//! ```text
//! anywasm demo                                   # a module on every engine
//! anywasm inspect module.wasm                    # imports, exports, sections, features
//! anywasm call module.wasm add 1 2 --backend wasmi
//! anywasm run program.wasm -- arg1 arg2          # a WASI command
//! anywasm run untrusted.wasm --fuel 1000000000 --timeout-ms 2000 --max-memory-mb 64
//! anywasm bench module.wasm fib 25 --backends all --json
//! anywasm conformance                            # the spec-suite matrix
//! ```
//!
//! Bad input (a missing file, bytes that are not wasm, an unknown export,
//! wrong arguments) gives a one-line `error:` message and exit status 1; a
//! trap gives exit status 3; a WASI program's own exit status is passed through.

mod bench;
mod call;
mod demo;
mod inspect;

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
    },
    /// Runs a WASI command module (`_start`); its exit status is passed through.
    Run {
        /// A .wasm file compiled for WASI.
        file: PathBuf,
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
    },
    /// Runs the WebAssembly spec testsuite on every engine and prints the matrix.
    Conformance,
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
        } => call::run(&file, &func, &args, &backend, limits),
        Command::Run {
            file,
            args,
            dirs,
            envs,
            backend,
            limits,
        } => call::run_wasi(&file, &args, &dirs, &envs, &backend, limits),
        Command::Bench {
            file,
            func,
            args,
            backends,
            iterations,
            json,
        } => bench::run(&file, func.as_deref(), &args, &backends, iterations, json),
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
