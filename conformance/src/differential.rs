//! Differential testing: random valid modules (`wasm-smith`) run on every
//! backend with the same inputs; results, traps, globals and memories must
//! agree.
//!
//! Modules use what every backend of a [`Profile`] runs, have NaNs
//! canonicalised (so float results are deterministic) and are instrumented
//! to terminate (`ensure_termination`: a fuel global decremented at each
//! loop head and call, trapping when empty, which also bounds recursion
//! depth). [`Profile::Common`] is WebAssembly 2.0, on every backend;
//! [`Profile::Exceptions`] adds exception handling, on the backends that
//! claim it.

use std::fmt::Write as _;

use anywasm_core::{
    Backend, Config, Engine, Error, Extern, Features, Instance, Linker, Module, Store, TrapCode,
    Val, ValType,
};
use sha2::Digest as _;

/// A value, compared by bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bits {
    /// An `i32`.
    I32(i32),
    /// An `i64`.
    I64(i64),
    /// An `f32`'s bits.
    F32(u32),
    /// An `f64`'s bits.
    F64(u64),
    /// A `v128`.
    V128(u128),
    /// A null reference.
    Null,
    /// A non-null function reference.
    Func,
    /// A non-null extern reference.
    Extern,
    /// A non-null exception reference.
    Exn,
}

fn bits<B: Backend>(v: &Val<B>) -> Bits {
    match v {
        Val::I32(x) => Bits::I32(*x),
        Val::I64(x) => Bits::I64(*x),
        Val::F32(x) => Bits::F32(*x),
        Val::F64(x) => Bits::F64(*x),
        Val::V128(x) => Bits::V128(x.0),
        Val::FuncRef(None) | Val::ExternRef(None) | Val::ExnRef(None) => Bits::Null,
        Val::FuncRef(Some(_)) => Bits::Func,
        Val::ExternRef(Some(_)) => Bits::Extern,
        Val::ExnRef(Some(_)) => Bits::Exn,
    }
}

/// What one call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// It returned these values.
    Returned(Vec<Bits>),
    /// It trapped.
    Trapped(TrapCode),
    /// A wasm exception escaped it, carrying these values
    /// ([`Store::take_exception`]; exceptions of more than one value are
    /// recorded without their values, which wasmer 7.3 cannot read).
    Uncaught(Option<Vec<Bits>>),
    /// It failed otherwise (message).
    Failed(String),
}

/// Everything observed running one module on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The backend refused the module.
    CompileError(String),
    /// Instantiation failed.
    InstantiateError(CallOutcome),
    /// The module ran.
    Ran {
        /// One outcome per call, in order.
        calls: Vec<(String, CallOutcome)>,
        /// Exported globals at the end.
        globals: Vec<(String, Bits)>,
        /// Exported memories at the end: size in bytes and SHA-256.
        memories: Vec<(String, usize, String)>,
        /// Exported tables at the end: size.
        tables: Vec<(String, u64)>,
    },
}

/// A small deterministic generator (SplitMix64) for module bytes and inputs.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Which proposals the generated modules use, and so which backends run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// WebAssembly 2.0: every backend.
    Common,
    /// WebAssembly 2.0 plus exception handling (tags, `throw`,
    /// `try_table`): the backends that claim exceptions.
    Exceptions,
}

impl Profile {
    /// The engine features the modules need.
    pub fn features(self) -> Features {
        let mut f = Features::wasm2();
        f.exceptions = self == Profile::Exceptions;
        f
    }

    /// Whether backend `B` claims every feature the modules need.
    pub fn runs_on<B: Backend>(self) -> bool {
        let (need, have) = (self.features(), B::capabilities().features);
        need.iter()
            .zip(have.iter())
            .all(|((_, needed), (_, claimed))| !needed || claimed)
    }

    /// The wasm-smith configuration.
    pub fn smith_config(self) -> wasm_smith::Config {
        wasm_smith::Config {
            exceptions_enabled: self == Profile::Exceptions,
            ..smith_config()
        }
    }
}

/// The wasm-smith configuration of [`Profile::Common`]: only features every
/// backend supports.
pub fn smith_config() -> wasm_smith::Config {
    wasm_smith::Config {
        max_imports: 0,
        min_funcs: 1,
        max_funcs: 20,
        export_everything: true,
        canonicalize_nans: true,
        max_memories: 1,
        // Small memories: a bulk-memory instruction in a loop touches all of
        // it each iteration.
        max_memory32_bytes: 256 << 10,
        memory64_enabled: false,
        max_tables: 2,
        max_table_elements: 1_000,
        // Without declared maxima, `table.grow`/`memory.grow` by billions
        // makes engines try huge allocations (seeds 2784 and 2967).
        table_max_size_required: true,
        memory_max_size_required: true,
        bulk_memory_enabled: true,
        reference_types_enabled: true,
        simd_enabled: true,
        multi_value_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        relaxed_simd_enabled: false,
        exceptions_enabled: false,
        threads_enabled: false,
        tail_call_enabled: false,
        gc_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        extended_const_enabled: false,
        ..wasm_smith::Config::default()
    }
}

/// The module of `profile` for `seed`, or `None` if wasm-smith could not
/// make one.
pub fn module_for_seed(profile: Profile, seed: u64) -> Option<Vec<u8>> {
    let mut rng = SplitMix(seed);
    let len = 256 + (rng.next_u64() % 8192) as usize;
    let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    let mut u = arbitrary::Unstructured::new(&bytes);
    let mut module = wasm_smith::Module::new(profile.smith_config(), &mut u).ok()?;
    // Fuel for loop heads and calls; it also bounds recursion depth below
    // every backend's stack limit.
    module.ensure_termination(1_000).ok()?;
    Some(module.to_bytes())
}

/// Whether a module's code throws or catches (`throw`, `throw_ref`,
/// `try_table`): how the exception profile checks that it exercises them.
pub fn uses_exceptions(wasm: &[u8]) -> bool {
    use wasmparser::{Operator, Payload};
    wasmparser::Parser::new(0).parse_all(wasm).any(|p| {
        let Ok(Payload::CodeSectionEntry(body)) = p else {
            return false;
        };
        let Ok(mut ops) = body.get_operators_reader() else {
            return false;
        };
        while !ops.eof() {
            match ops.read() {
                Ok(Operator::Throw { .. } | Operator::ThrowRef | Operator::TryTable { .. }) => {
                    return true;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    })
}

/// Arguments for a function type, from the generator.
pub fn inputs<B: Backend>(params: &[ValType], rng: &mut SplitMix) -> Vec<Val<B>> {
    params
        .iter()
        .map(|t| {
            let r = rng.next_u64();
            // Mostly small numbers, sometimes any bits.
            let small = !r.is_multiple_of(4);
            match t {
                ValType::I32 => Val::I32(if small {
                    (r >> 8) as i32 % 100
                } else {
                    (r >> 8) as i32
                }),
                ValType::I64 => Val::I64(if small {
                    (r >> 8) as i64 % 100
                } else {
                    r as i64
                }),
                ValType::F32 => Val::f32(if small {
                    ((r >> 8) % 100) as f32 * 0.5
                } else {
                    f32::from_bits(r as u32)
                }),
                ValType::F64 => Val::f64(if small {
                    ((r >> 8) % 100) as f64 * 0.25
                } else {
                    f64::from_bits(r)
                }),
                ValType::V128 => Val::V128(anywasm_core::V128(
                    u128::from(r) << 64 | u128::from(rng.next_u64()),
                )),
                ValType::FuncRef => Val::FuncRef(None),
                ValType::ExternRef => Val::ExternRef(None),
                ValType::ExnRef => Val::ExnRef(None),
            }
        })
        .collect()
}

fn outcome<B: Backend, T>(
    store: &mut Store<B, ()>,
    r: Result<T, Error>,
    f: impl FnOnce(T) -> Vec<Bits>,
) -> CallOutcome {
    match r {
        Ok(v) => CallOutcome::Returned(f(v)),
        Err(Error::Trap {
            code: TrapCode::UncaughtException,
            ..
        }) => CallOutcome::Uncaught(
            store
                .take_exception()
                .map(|e| e.payload().iter().map(bits).collect::<Vec<_>>())
                .filter(|values| values.len() <= 1),
        ),
        Err(Error::Trap { code, .. }) => CallOutcome::Trapped(code),
        Err(e) => CallOutcome::Failed(e.to_string()),
    }
}

/// Runs `wasm` on backend `B` with the features of `profile`: instantiates
/// it, calls every exported function twice with inputs from `seed`, then
/// reads the exports.
pub fn observe<B: Backend>(profile: Profile, wasm: &[u8], seed: u64) -> Observation {
    let engine = match Engine::<B>::new(Config::new().features(profile.features())) {
        Ok(e) => e,
        Err(e) => return Observation::CompileError(e.to_string()),
    };
    let module = match Module::new(&engine, wasm) {
        Ok(m) => m,
        Err(e) => return Observation::CompileError(e.to_string()),
    };
    let mut store = Store::new(&engine, ());
    let instance: Instance<B> = match Linker::new().instantiate(&mut store, &module) {
        Ok(i) => i,
        Err(e) => {
            return Observation::InstantiateError(outcome::<B, ()>(&mut store, Err(e), |_| {
                Vec::new()
            }));
        }
    };
    let mut rng = SplitMix(seed ^ 0xd1ff_e4e7);
    let mut calls = Vec::new();
    let names: Vec<String> = module.exports().iter().map(|e| e.name.clone()).collect();
    for round in 0..2 {
        for name in &names {
            let Ok(func) = instance.get_func(&mut store, name) else {
                continue;
            };
            let Ok(ty) = func.ty(&store) else { continue };
            let args = inputs::<B>(ty.params(), &mut rng);
            let r = func.invoke(&mut store, &args);
            calls.push((
                format!("{name}#{round}"),
                outcome(&mut store, r, |v| v.iter().map(bits).collect()),
            ));
        }
    }
    let mut globals = Vec::new();
    let mut memories = Vec::new();
    let mut tables = Vec::new();
    for name in &names {
        // Handles of the instance's own store: these cannot fail.
        match instance.get_export(&mut store, name).ok().flatten() {
            Some(Extern::Global(g)) => {
                if let Ok(v) = g.get(&mut store) {
                    globals.push((name.clone(), bits(&v)));
                }
            }
            Some(Extern::Memory(m)) => {
                let data = m.data(&store).unwrap_or_default();
                let hash = sha2::Sha256::digest(data);
                let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
                memories.push((name.clone(), data.len(), hex));
            }
            Some(Extern::Table(t)) => {
                if let Ok(size) = t.size(&store) {
                    tables.push((name.clone(), size));
                }
            }
            _ => {}
        }
    }
    Observation::Ran {
        calls,
        globals,
        memories,
        tables,
    }
}

/// Engine limitations that make a backend refuse a valid module; such a
/// module is skipped (and counted) rather than reported as a disagreement.
/// Each is shown with the engine's own API in the backend's `engine_facts` tests.
pub const KNOWN_REFUSALS: &[(&str, &str)] = &[
    (
        "unsupported init expr in element section",
        "wasmer rejects global.get in element segments",
    ),
    (
        "larger than maximum allowed size",
        "wasmer refuses tables with a maximum above 2^27",
    ),
    (
        "unsupported element type in element section: exnref",
        "wasmer rejects element segments of exnrefs",
    ),
    (
        "tables of types other than funcref or externref",
        "wasmer keeps no exnrefs in tables",
    ),
];

/// Whether a backend ran out of native stack somewhere; engines have
/// different stack sizes, so such a run is not compared.
fn overflowed(o: &Observation) -> bool {
    match o {
        Observation::Ran { calls, .. } => calls
            .iter()
            .any(|(_, c)| *c == CallOutcome::Trapped(TrapCode::StackOverflow)),
        Observation::InstantiateError(c) => *c == CallOutcome::Trapped(TrapCode::StackOverflow),
        Observation::CompileError(_) => false,
    }
}

/// The verdict for one seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// All backends agree.
    Agree,
    /// wasm-smith made no module from this seed.
    NoModule,
    /// A backend refused the module for a known engine limitation.
    KnownRefusal(&'static str),
    /// The backends disagree; the text says how.
    Disagree(String),
}

/// Compares the observations of several backends, `(name, observation)`.
pub fn compare(observations: &[(&str, Observation)]) -> Verdict {
    for (_, o) in observations {
        let msg = match o {
            Observation::CompileError(m) => Some(m),
            Observation::InstantiateError(CallOutcome::Failed(m)) => Some(m),
            _ => None,
        };
        if let Some(m) = msg
            && let Some((_, why)) = KNOWN_REFUSALS.iter().find(|(pat, _)| m.contains(pat))
        {
            return Verdict::KnownRefusal(why);
        }
    }
    if observations.iter().any(|(_, o)| overflowed(o)) {
        return Verdict::KnownRefusal(
            "a backend exhausted its stack; stack sizes differ between engines",
        );
    }
    let Some((first_name, first)) = observations.first() else {
        return Verdict::Agree;
    };
    let mut report = String::new();
    for (name, o) in &observations[1..] {
        if o == first {
            continue;
        }
        // Say where they first differ.
        match (first, o) {
            (
                Observation::Ran {
                    calls: a,
                    globals: ga,
                    memories: ma,
                    tables: ta,
                },
                Observation::Ran {
                    calls: b,
                    globals: gb,
                    memories: mb,
                    tables: tb,
                },
            ) => {
                for ((fa, ra), (_, rb)) in a.iter().zip(b) {
                    if ra != rb {
                        let _ = writeln!(report, "call {fa}: {first_name} {ra:?} vs {name} {rb:?}");
                        break;
                    }
                }
                if ga != gb {
                    let _ = writeln!(report, "globals: {first_name} {ga:?} vs {name} {gb:?}");
                }
                if ma != mb {
                    let _ = writeln!(report, "memories: {first_name} {ma:?} vs {name} {mb:?}");
                }
                if ta != tb {
                    let _ = writeln!(report, "tables: {first_name} {ta:?} vs {name} {tb:?}");
                }
            }
            _ => {
                let _ = writeln!(report, "{first_name}: {first:?}\n{name}: {o:?}");
            }
        }
    }
    if report.is_empty() {
        Verdict::Agree
    } else {
        Verdict::Disagree(report)
    }
}

/// Writes a reproducer for a disagreement: the module and the report.
pub fn write_reproducer(
    dir: &std::path::Path,
    seed: u64,
    wasm: &[u8],
    report: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("seed-{seed}.wasm")), wasm)?;
    std::fs::write(
        dir.join(format!("seed-{seed}.txt")),
        format!(
            "seed {seed}: inputs come from SplitMix({seed} ^ 0xd1ffe4e7) in call order\n\
             (see anywasm_conformance::differential::observe)\n\n{report}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_notices_a_difference() {
        let a = Observation::Ran {
            calls: vec![("f#0".into(), CallOutcome::Returned(vec![Bits::I32(1)]))],
            globals: vec![],
            memories: vec![],
            tables: vec![],
        };
        let mut b = a.clone();
        assert_eq!(
            compare(&[("x", a.clone()), ("y", b.clone())]),
            Verdict::Agree
        );
        if let Observation::Ran { calls, .. } = &mut b {
            calls[0].1 = CallOutcome::Trapped(TrapCode::Unreachable);
        }
        match compare(&[("x", a), ("y", b)]) {
            Verdict::Disagree(r) => assert!(r.contains("call f#0"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seeds_make_the_same_module_every_time() {
        let a = (0..20)
            .find_map(|s| module_for_seed(Profile::Common, s))
            .expect("some seed makes a module");
        let b = (0..20)
            .find_map(|s| module_for_seed(Profile::Common, s))
            .unwrap();
        assert_eq!(a, b);
        wasmparser::Validator::new().validate_all(&a).unwrap();
    }
}
