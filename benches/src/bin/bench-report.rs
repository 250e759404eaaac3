//! Turns criterion's results into `BENCHMARKS.md`.
//!
//! ```text
//! benches/run.sh                          # measure, then write BENCHMARKS.md
//! cargo run -p anywasm-benches --bin bench-report [-- OUTPUT]
//! ```
//!
//! `benches/run.sh` runs `cargo bench -p anywasm-benches`, then raw wasmi
//! from `benches/raw-wasmi` (outside the workspace), then this report. Raw
//! wasmi results older than the layer's are refused: they would come from
//! another run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn median_ns(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn human(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .map_or(String::new(), |kb| format!(", {} GiB", kb / (1 << 20)));
    format!("{cpu}, {cores} cores{mem}")
}

/// `(group, bench, engine) -> median ns`, from every
/// `target/criterion/<group>/<dir>/new/` (criterion replaces the `/` of a
/// function id such as `anywasm/wasmi` in directory names, so the ids are
/// read from `benchmark.json`).
fn collect(root: &Path) -> BTreeMap<(String, String, String), (f64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let Ok(groups) = std::fs::read_dir(root) else {
        return out;
    };
    for g in groups.flatten() {
        let Ok(benches) = std::fs::read_dir(g.path()) else {
            continue;
        };
        for b in benches.flatten() {
            let Ok(text) = std::fs::read_to_string(b.path().join("new/benchmark.json")) else {
                continue;
            };
            let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let (Some(group), Some(function)) =
                (meta["group_id"].as_str(), meta["function_id"].as_str())
            else {
                continue;
            };
            // `<bench>/<engine>`: the engine is the last segment.
            let Some((bench, engine)) = function.rsplit_once('/') else {
                continue;
            };
            let measured = std::fs::metadata(b.path().join("new/estimates.json"))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            if let Some(ns) = median_ns(&b.path()) {
                out.insert(
                    (group.to_string(), bench.to_string(), engine.to_string()),
                    (ns, measured),
                );
            }
        }
    }
    out
}

const ENGINES: [&str; 3] = ["wasmtime", "wasmi", "wasmer"];

/// What the layer does on a typed call besides the engine's own typed call,
/// per backend: the explanation printed for a backend that misses the
/// target. Kept next to the code that it describes (core `TypedFunc::call`,
/// each backend's `TypedSig::call`); update both together.
const TYPED_CALL_COST: [(&str, &str); 3] = [
    (
        "wasmtime",
        "Per typed call the layer counts the call in the store's statistics, checks the store's interrupt flag \
         (per-store deadlines; wasmtime's epochs are engine-wide) and, with fuel enabled, \
         reads the remaining fuel after the call. That is a few loads and one store \
         (about 1-2 ns), the level of this machine's run-to-run noise. Closing it: make \
         statistics and the per-store interrupt check opt-in per store.",
    ),
    (
        "wasmi",
        "Per typed call the layer counts the call, reads the fuel after it when fuel is on, and checks whether the \
         store runs with a deadline (wasmi cannot be interrupted, so a deadline runs the \
         call resumably in fuel slices); the store is reached through a small trait-object \
         view. wasmi's own call is 60-70 ns, so this is a few percent; the empty and `add` \
         rows do the same work, so a gap between them is noise. Closing it: a separate \
         store type for stores without deadlines, removing the check and the view.",
    ),
    (
        "wasmer",
        "wasmer gives a host function neither the calling instance nor a per-store stop \
         signal, so each call through the layer maintains them itself: on the outermost \
         call it resets the store's stop word (which the compiled code reads at loop heads \
         and calls, for per-store deadlines and interrupts) and looks at the interrupt \
         state, and on every call it keeps a depth counter, the instance it runs (so \
         `Caller::get_export` finds the caller) and a panic guard that undoes that \
         bookkeeping. That state is kept beside wasmer's store as well as in the \
         store's data (where host functions find it), so the typed path reaches it \
         without a lookup in wasmer's store; `perf` puts the rest of the difference in \
         that bookkeeping, the trait-object view of the store and the panic guard, a \
         few nanoseconds on a call that costs wasmer itself about 40 ns. What would \
         close it: wasmer exposing the calling instance to host functions and a \
         per-store interrupt; then the typed path would be the engine's call plus the \
         counter.",
    ),
];

/// The typed-call rows against the 1.05 target: which miss, by how much,
/// and why.
/// Why a backend's dynamic call costs more than 1.2 times the engine's own.
const DYNAMIC_CALL_COST: [(&str, &str); 3] = [
    (
        "wasmtime",
        "the layer checks each argument's type and store against the function's type \
         (asked of the engine once per handle, then cached), converts the values to \
         wasmtime's raw values in a stack buffer, calls `Func::call_unchecked`, and keeps \
         the call statistics; no allocation.",
    ),
    (
        "wasmi",
        "raw wasmi's dynamic call is only about 100 ns, so the layer's fixed work shows: it \
         checks each argument's type and store against the function's type (cached in \
         the handle), converts values to and from wasmi's in stack buffers (nothing is \
         allocated), keeps the call statistics, and reaches the store through a small \
         trait-object view. `perf` shows no single hotspot: 20-30 ns of plain work, \
         spread over those steps, while wasmi checks the same types again inside its call.",
    ),
    (
        "wasmer",
        "the same checks and conversions as on the other backends, plus the typed-call \
         bookkeeping described above; wasmer's own dynamic call returns its results in a \
         new boxed slice, in the raw row too.",
    ),
];

fn dynamic_call_target(md: &mut String, get: &dyn Fn(&str, &str, &str) -> Option<f64>) {
    let _ = writeln!(
        md,
        "\n### Dynamic calls against the target (anywasm / raw ≤ 1.2)\n"
    );
    let missed: Vec<(&str, f64, f64)> = ENGINES
        .iter()
        .filter_map(|e| {
            let (a, raw) = (
                get("call_add_dynamic", "anywasm", e)?,
                get("call_add_dynamic", "raw", e)?,
            );
            (raw > 0.0 && a / raw > 1.2).then_some((*e, a / raw, a - raw))
        })
        .collect();
    let _ = writeln!(
        md,
        "On wasmtime the layer's dynamic call is faster than wasmtime's own \
         `Func::call`: the layer checks the arguments against the function's type, \
         cached in the handle, and then calls `Func::call_unchecked` with raw values, \
         while `Func::call` looks the type up in the engine's registry and checks each \
         argument again on every call. wasmi and wasmer have no unchecked call in their \
         public API, so there the engine checks again after the layer.\n\n\
         The untyped host-function row (`host.inc` made with `Linker::func_new`, against \
         each engine's own `Func::new`) measures the same path the other way: the \
         layer's wrapper (a panic guard, a check of the results' types and stores) and \
         the backend's conversion of arguments and results, in stack buffers. On \
         wasmtime the backend makes the function with `Func::new_unchecked`, since the \
         layer's checks make wasmtime's conversion into its own values redundant; wasmi \
         and wasmer convert through their own values as in the raw row, and the layer's \
         work comes on top (a few tens of nanoseconds per call, no allocation).\n"
    );
    if missed.is_empty() {
        let _ = writeln!(md, "Every backend meets the target in this run.");
        return;
    }
    let _ = writeln!(md, "| engine | anywasm / raw | extra per call |");
    let _ = writeln!(md, "|---|---|---|");
    for (e, ratio, extra) in &missed {
        let _ = writeln!(md, "| {e} | {ratio:.2} | {extra:.1} ns |");
    }
    let _ = writeln!(md);
    for (engine, why) in DYNAMIC_CALL_COST {
        if missed.iter().any(|m| m.0 == engine) {
            let _ = writeln!(md, "- **{engine}**: {why}");
        }
    }
}

fn typed_call_target(md: &mut String, get: &dyn Fn(&str, &str, &str) -> Option<f64>) {
    let _ = writeln!(
        md,
        "\n### Typed calls against the target (anywasm / raw ≤ 1.05)\n"
    );
    let mut missed = Vec::new();
    for e in ENGINES {
        for (g, what) in [
            ("call_empty", "empty function"),
            ("call_add", "`add(i32, i32)`"),
        ] {
            if let (Some(a), Some(raw)) = (get(g, "anywasm", e), get(g, "raw", e))
                && raw > 0.0
                && a / raw > 1.05
            {
                missed.push((e, what, a / raw, a - raw));
            }
        }
    }
    if missed.is_empty() {
        let _ = writeln!(md, "Every backend meets it in this run.");
        return;
    }
    let _ = writeln!(
        md,
        "| engine | typed call of | anywasm / raw | extra per call |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    for (e, what, ratio, extra) in &missed {
        let _ = writeln!(md, "| {e} | {what} | {ratio:.2} | {extra:.1} ns |");
    }
    let _ = writeln!(md);
    for (engine, why) in TYPED_CALL_COST {
        if missed.iter().any(|m| m.0 == engine) {
            let _ = writeln!(md, "- **{engine}**: {why}");
        }
    }
}

fn main() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/criterion"));
    let output = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md").to_string());
    let r = collect(&root);
    if r.is_empty() {
        eprintln!(
            "error: no criterion results under {}; run `cargo bench -p anywasm-benches` first",
            root.display()
        );
        std::process::exit(1);
    }
    // Raw wasmi is measured after the layer, by benches/raw-wasmi.
    let key = |g: &str, b: &str, e: &str| (g.to_string(), b.to_string(), e.to_string());
    for ((g, b, e), (_, layer_at)) in &r {
        if b == "anywasm" && e == "wasmi" {
            match r.get(&key(g, "raw", "wasmi")) {
                Some((_, raw_at)) if raw_at >= layer_at => {}
                _ => {
                    eprintln!(
                        "error: no raw wasmi result for `{g}` newer than the layer's; \
                         run benches/run.sh (raw wasmi is measured by benches/raw-wasmi)"
                    );
                    std::process::exit(1);
                }
            }
        }
    }
    let get = |g: &str, b: &str, e: &str| r.get(&key(g, b, e)).map(|v| v.0);
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Medians from one `benches/run.sh` run on {} (rustc {}), turned into this \
         file by `cargo run -p anywasm-benches --bin bench-report`. *anywasm* calls \
         through the layer, *raw* through the engine's own API, built the way a user \
         of that engine builds it: no engine feature that only the layer needs. \
         wasmtime's and wasmer's raw rows run in the same process as the layer's \
         (the layer enables a subset of those engines' default features, so the \
         workspace's build of them is one a user could have); raw wasmi runs right \
         after, from `benches/raw-wasmi`, a crate outside the workspace with wasmi's \
         default features, because the layer adds `simd`, which wasmi's defaults \
         lack. The ratio is anywasm / raw. The machine is shared and noisy: compare \
         ratios and orders of magnitude, not single digits.\n",
        machine(),
        option_env!("RUSTC_VERSION").unwrap_or("1.95")
    );
    let layer_rows = [
        ("call_empty", "typed call of an empty function"),
        ("call_add", "typed call of `add(i32, i32)`"),
        ("call_add_dynamic", "dynamic call of `add` with `Val`s"),
        ("fib", "recursive `fib(20)`"),
        ("kernel", "loop kernel (100 000 iterations)"),
        (
            "host_roundtrip",
            "1 000 guest → host → guest calls, typed host function",
        ),
        (
            "host_roundtrip_dynamic",
            "1 000 guest → host → guest calls, untyped host function",
        ),
        ("memory_1k", "host writes then reads 1 KiB"),
        ("memory_1m", "host writes then reads 1 MiB"),
        ("compile_1mb", "compile a generated 1 MiB module"),
    ];
    let _ = writeln!(md, "## The layer against the raw engines\n");
    let _ = writeln!(md, "| workload | engine | anywasm | raw | anywasm / raw |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (g, what) in layer_rows {
        for e in ENGINES {
            let (a, raw) = (get(g, "anywasm", e), get(g, "raw", e));
            let ratio = match (a, raw) {
                (Some(a), Some(raw)) if raw > 0.0 => format!("{:.2}", a / raw),
                _ => "—".into(),
            };
            let fmt = |v: Option<f64>| v.map_or("—".into(), human);
            let _ = writeln!(md, "| {what} | {e} | {} | {} | {ratio} |", fmt(a), fmt(raw));
        }
    }
    typed_call_target(&mut md, &get);
    dynamic_call_target(&mut md, &get);
    let _ = writeln!(md, "\n## Instantiation (anywasm)\n");
    let _ = writeln!(
        md,
        "| engine | cold (compile + instantiate) | from a compiled module | from a precompiled blob |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    for e in ENGINES {
        let f = |b: &str| get("instantiate", b, e).map_or("— (unsupported)".to_string(), human);
        let _ = writeln!(
            md,
            "| {e} | {} | {} | {} |",
            f("cold"),
            f("cached"),
            f("precompiled")
        );
    }
    let _ = writeln!(
        md,
        "\n## A real program: compiled code from the cache on disk\n"
    );
    let _ = writeln!(
        md,
        "`cli/tests/fixtures/zstd/zstd.wasm`: the zstd 1.5.7 library as a WASI command (850 KB of \
         WebAssembly, built by the fixture's `build.sh`). *Cold* compiles it; *warm* loads its \
         compiled code from an `anywasm::CodeCache` directory (what the second `anywasm run` of \
         a program does: read, check, deserialize); *instantiate* creates an instance with WASI \
         from the loaded module. Target: a warm load costs at most 5% of a cold one.\n"
    );
    let _ = writeln!(
        md,
        "| engine | cold load | warm load | warm / cold | instantiate |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for e in ENGINES {
        let (cold, warm) = (
            get("real_program", "cold", e),
            get("real_program", "warm", e),
        );
        let ratio = match (cold, warm) {
            (Some(c), Some(w)) if c > 0.0 => format!("{:.1}%", 100.0 * w / c),
            _ => "—".into(),
        };
        let f = |v: Option<f64>| v.map_or("— (keeps no compiled code)".into(), human);
        let _ = writeln!(
            md,
            "| {e} | {} | {} | {ratio} | {} |",
            f(cold),
            f(warm),
            f(get("real_program", "instantiate", e))
        );
    }
    let _ = writeln!(
        md,
        "\nThe first anywasm prototype's headline figures, for comparison: a 1 MB module loaded in \
         about 15 ms on wasmtime and 50 ms on wasmi, instantiated in about 5 ms, called in about \
         0.1 ms."
    );
    let _ = writeln!(md, "\n## Dynamic linking (anywasm-linker)\n");
    let _ = writeln!(
        md,
        "Loading `main.wasm` and the three libraries it needs from files into a fresh store: \
         read, compile, lay out, resolve symbols, instantiate, relocate, run constructors. \
         Then, into that running program, one `dlopen` of a small library (libplugin.so, \
         which needs the loaded libbase.so) and one `dlsym`.\n"
    );
    let _ = writeln!(md, "| engine | main + 3 libraries | dlopen + dlsym |");
    let _ = writeln!(md, "|---|---|---|");
    for e in ENGINES {
        let v = |id: &str| get("dynamic_link", id, e).map_or("—".into(), human);
        let _ = writeln!(
            md,
            "| {e} | {} | {} |",
            v("main_and_3_libs"),
            v("dlopen_dlsym")
        );
    }
    let _ = writeln!(
        md,
        "\n## Fuel metering and deadline checks (anywasm, `fib(20)`)\n"
    );
    let _ = writeln!(
        md,
        "*Deadlines on* is an interruptible engine (`Config::interruptible(true)`) with no \
         deadline set: what being able to stop a call costs. wasmtime checks its epoch at \
         function entries and loop heads; wasmi runs calls in fuel slices; wasmer reads the \
         store's status word at function entries and loop heads (and calls the store's stop \
         function only when it is set).\n"
    );
    let _ = writeln!(
        md,
        "| engine | plain | fuel on | fuel / plain | deadlines on | deadlines / plain |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for e in ENGINES {
        let off = get("fuel", "fuel_off", e);
        let (fuel, deadlines) = (get("fuel", "fuel_on", e), get("fuel", "deadlines_on", e));
        let ratio = |on: Option<f64>| match (off, on) {
            (Some(a), Some(b)) => format!("{:.2}", b / a),
            _ => "—".into(),
        };
        let f = |v: Option<f64>| v.map_or("—".into(), human);
        let _ = writeln!(
            md,
            "| {e} | {} | {} | {} | {} | {} |",
            f(off),
            f(fuel),
            ratio(fuel),
            f(deadlines),
            ratio(deadlines)
        );
    }
    let _ = writeln!(md, "\n## Async calls against synchronous ones (anywasm)\n");
    let _ = writeln!(
        md,
        "The same call made synchronously and with `call_async` (polled to its end on the calling \
         thread, so no executor is measured): a typed call of an empty function, and a plugin's \
         empty raw call (`call_raw` / `call_raw_async`). wasmtime runs an async call on a fiber \
         of its own, switched to and back per call; wasmi runs it as a resumable call through \
         the layer's dynamic call path; wasmer runs it on a worker thread of the layer's, \
         handed the call and handing back the result (two thread switches per call). A plugin \
         call is two wasm calls (allocation, then the function).\n"
    );
    let _ = writeln!(
        md,
        "| engine | call, sync | call, async | async / sync | plugin call, sync | plugin call, async | async / sync |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for e in ENGINES {
        let f = |v: Option<f64>| v.map_or("—".into(), human);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", b / a),
            _ => "—".into(),
        };
        let (cs, ca) = (get("async", "call_sync", e), get("async", "call_async", e));
        let (ps, pa) = (
            get("async", "plugin_sync", e),
            get("async", "plugin_async", e),
        );
        let _ = writeln!(
            md,
            "| {e} | {} | {} | {} | {} | {} | {} |",
            f(cs),
            f(ca),
            ratio(cs, ca),
            f(ps),
            f(pa),
            ratio(ps, pa)
        );
    }
    let _ = writeln!(md, "\n## Plugin round trip (echo plugin, per call)\n");
    let _ = writeln!(
        md,
        "| engine | empty, raw bytes | small struct, MessagePack | small struct, JSON | 64 KiB, raw bytes | 64 KiB, MessagePack | 64 KiB, JSON | 1 MiB, raw bytes | 1 MiB, MessagePack |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let extism = get("plugin", "empty_raw", "extism").is_some();
    for e in ENGINES.iter().copied().chain(extism.then_some("extism")) {
        let f = |b: &str| get("plugin", b, e).map_or("—".into(), human);
        let _ = writeln!(
            md,
            "| {e} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f("empty_raw"),
            f("small_msgpack"),
            f("small_json"),
            f("64k_raw"),
            f("64k_msgpack"),
            f("64k_json"),
            f("1m_raw"),
            f("1m_msgpack")
        );
    }
    let _ = writeln!(
        md,
        "\nByte payloads (a struct with one `#[serde(with = \"anywasm_plugin::serde_bytes\")]` field, \
         MessagePack `bin`) against the same bytes raw; target: at most 1.5.\n"
    );
    let _ = writeln!(
        md,
        "| engine | 64 KiB MessagePack / raw | 1 MiB MessagePack / raw |"
    );
    let _ = writeln!(md, "|---|---|---|");
    for e in ENGINES {
        let ratio = |size: &str| match (
            get("plugin", &format!("{size}_msgpack"), e),
            get("plugin", &format!("{size}_raw"), e),
        ) {
            (Some(m), Some(r)) if r > 0.0 => format!("{:.2}", m / r),
            _ => "—".into(),
        };
        let _ = writeln!(md, "| {e} | {} | {} |", ratio("64k"), ratio("1m"));
    }
    if extism {
        let _ = writeln!(
            md,
            "\n*extism* is the Extism 1.30 host (wasmtime 43) running `benches/fixtures/extism_echo.wat`, \
             an echo that moves the bytes the way Extism's PDKs do (one host call per 8 bytes each way); \
             measured with `cargo bench -p anywasm-benches --features extism`."
        );
    } else {
        let _ = writeln!(
            md,
            "\nThe Extism reference row is measured with `cargo bench -p anywasm-benches --features extism` \
             (opt-in: it builds a second wasmtime); it was not part of this run."
        );
    }
    let _ = writeln!(md, "\n## Extism guests (per call)\n");
    let _ = writeln!(
        md,
        "The same Extism guest (`benches/fixtures/extism_echo.wat`, moving its bytes as Extism's \
         PDKs do) through anywasm's Extism ABI on each engine and on Extism's own host.\n"
    );
    let _ = writeln!(md, "| host | 16 B | 64 KiB | 64 KiB / Extism's |");
    let _ = writeln!(md, "|---|---|---|---|");
    let theirs = get("extism_guest", "64k", "extism");
    for e in ENGINES
        .iter()
        .copied()
        .chain(theirs.is_some().then_some("extism"))
    {
        let f = |size: &str| get("extism_guest", size, e).map_or("—".into(), human);
        let ratio = match (get("extism_guest", "64k", e), theirs) {
            (Some(a), Some(t)) if t > 0.0 => format!("{:.2}", a / t),
            _ => "—".into(),
        };
        let host = if e == "extism" {
            "Extism 1.30 (wasmtime 43)".to_string()
        } else {
            format!("anywasm on {e}")
        };
        let _ = writeln!(md, "| {host} | {} | {} | {ratio} |", f("16b"), f("64k"));
    }
    let _ = writeln!(
        md,
        "\nAs in Extism, an Extism guest's kernel memory is the memory of a small wasm module \
         instantiated beside it (`plugin-runtime/src/extism_kernel.wat`): the guest's \
         `input_load_u64` and `store_u64`, made 8 bytes at a time, are calls from wasm to wasm; \
         allocation, output and errors are host calls. The 64 KiB column is bytes moved 8 at a \
         time; on wasmi each of those calls is interpreted."
    );
    if theirs.is_none() {
        let _ = writeln!(
            md,
            "\nExtism's own host is measured with `cargo bench -p anywasm-benches --features extism`; \
             it was not part of this run."
        );
    }
    // Resident memory under hot reloads: not a criterion measurement, so it
    // comes from the example's own table when it was run.
    let _ = writeln!(md, "\n## Hot reload: resident memory\n");
    let reload = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/reload-memory.md");
    match std::fs::read_to_string(reload) {
        Ok(table) => {
            let _ = writeln!(
                md,
                "One plugin reloaded with new code again and again (default limits and module \
                 cache), each reload followed by a call; measured by \
                 `cargo run --release -p anywasm-plugin --example reload_memory -- 1000 target/reload-memory.md`.\n"
            );
            let _ = write!(md, "{table}");
        }
        Err(_) => {
            let _ = writeln!(
                md,
                "Measured by `cargo run --release -p anywasm-plugin --example reload_memory -- 1000 \
                 target/reload-memory.md`, which was not part of this run."
            );
        }
    }
    if let Err(e) = std::fs::write(&output, md) {
        eprintln!("error: cannot write {output}: {e}");
        std::process::exit(1);
    }
    eprintln!("wrote {output}");
}
