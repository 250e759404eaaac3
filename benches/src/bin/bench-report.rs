//! Turns criterion's results into `BENCHMARKS.md`.
//!
//! ```text
//! cargo bench -p anywasm-benches          # measure (writes target/criterion)
//! cargo run -p anywasm-benches --bin bench-report [-- OUTPUT]
//! ```

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

/// `(group, bench, engine) -> median ns` from `target/criterion/<group>/<bench>/<engine>`.
fn collect(root: &Path) -> BTreeMap<(String, String, String), f64> {
    let mut out = BTreeMap::new();
    let Ok(groups) = std::fs::read_dir(root) else {
        return out;
    };
    for g in groups.flatten() {
        let gname = g.file_name().to_string_lossy().into_owned();
        let Ok(benches) = std::fs::read_dir(g.path()) else {
            continue;
        };
        for b in benches.flatten() {
            let bname = b.file_name().to_string_lossy().into_owned();
            if bname == "report" {
                continue;
            }
            let Ok(engines) = std::fs::read_dir(b.path()) else {
                continue;
            };
            for e in engines.flatten() {
                let ename = e.file_name().to_string_lossy().into_owned();
                if let Some(ns) = median_ns(&e.path()) {
                    out.insert((gname.clone(), bname.clone(), ename), ns);
                }
            }
        }
    }
    out
}

const ENGINES: [&str; 3] = ["wasmtime", "wasmi", "wasmer"];

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
    let get = |g: &str, b: &str, e: &str| {
        r.get(&(g.to_string(), b.to_string(), e.to_string()))
            .copied()
    };
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Medians from one `cargo bench -p anywasm-benches` run on {} (rustc {}), \
         turned into this file by `cargo run -p anywasm-benches --bin bench-report`. \
         *anywasm* calls through the layer, *raw* through the engine's own API, \
         in the same criterion group of the same run; the ratio is anywasm / raw. \
         The machine is shared and noisy: compare ratios and orders of magnitude, \
         not single digits.\n",
        machine(),
        option_env!("RUSTC_VERSION").unwrap_or("1.95")
    );
    let layer_rows = [
        ("call_empty", "typed call of an empty function"),
        ("call_add", "typed call of `add(i32, i32)`"),
        ("call_add_dynamic", "dynamic call of `add` with `Val`s"),
        ("fib", "recursive `fib(20)`"),
        ("kernel", "loop kernel (100 000 iterations)"),
        ("host_roundtrip", "1 000 guest → host → guest calls"),
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
    let _ = writeln!(md, "\n## Fuel metering (anywasm, `fib(20)`)\n");
    let _ = writeln!(md, "| engine | fuel off | fuel on | on / off |");
    let _ = writeln!(md, "|---|---|---|---|");
    for e in ENGINES {
        let (off, on) = (get("fuel", "fuel_off", e), get("fuel", "fuel_on", e));
        let ratio = match (off, on) {
            (Some(a), Some(b)) => format!("{:.2}", b / a),
            _ => "—".into(),
        };
        let f = |v: Option<f64>| v.map_or("—".into(), human);
        let _ = writeln!(md, "| {e} | {} | {} | {ratio} |", f(off), f(on));
    }
    let _ = writeln!(md, "\n## Plugin round trip (echo plugin, per call)\n");
    let _ = writeln!(
        md,
        "| engine | empty, raw bytes | small struct, MessagePack | small struct, JSON | 64 KiB, raw bytes | 64 KiB, MessagePack | 64 KiB, JSON |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for e in ENGINES {
        let f = |b: &str| get("plugin", b, e).map_or("—".into(), human);
        let _ = writeln!(
            md,
            "| {e} | {} | {} | {} | {} | {} | {} |",
            f("empty_raw"),
            f("small_msgpack"),
            f("small_json"),
            f("64k_raw"),
            f("64k_msgpack"),
            f("64k_json")
        );
    }
    if let Err(e) = std::fs::write(&output, md) {
        eprintln!("error: cannot write {output}: {e}");
        std::process::exit(1);
    }
    eprintln!("wrote {output}");
}
