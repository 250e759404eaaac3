//! `anywasm inspect`: what a module declares, without running it.

use std::path::PathBuf;

use anywasm::{Features, ModuleInfo};
use wasmparser::{Parser, Payload, Validator};

use crate::{Failure, read_module};

/// Which proposals the module needs: it fails to validate without them.
fn features_used(bytes: &[u8]) -> Result<Vec<&'static str>, String> {
    let all = Features::all();
    Validator::new_with_features(all.to_wasmparser())
        .validate_all(bytes)
        .map_err(|e| e.to_string())?;
    let mut used = Vec::new();
    for (name, _) in all.iter() {
        let mut f = all;
        match name {
            "mutable-global" => f.mutable_global = false,
            "sign-extension" => f.sign_extension = false,
            "saturating-float-to-int" => f.saturating_float_to_int = false,
            "multi-value" => f.multi_value = false,
            "bulk-memory" => f.bulk_memory = false,
            "reference-types" => {
                f.reference_types = false;
                f.function_references = false;
                f.gc = false;
            }
            "simd" => {
                f.simd = false;
                f.relaxed_simd = false;
            }
            "relaxed-simd" => f.relaxed_simd = false,
            "threads" => f.threads = false,
            "multi-memory" => f.multi_memory = false,
            "memory64" => f.memory64 = false,
            "tail-call" => f.tail_call = false,
            "extended-const" => f.extended_const = false,
            "exceptions" => f.exceptions = false,
            "legacy-exceptions" => f.legacy_exceptions = false,
            "function-references" => {
                f.function_references = false;
                f.gc = false;
            }
            "gc" => f.gc = false,
            "wide-arithmetic" => f.wide_arithmetic = false,
            "custom-page-sizes" => f.custom_page_sizes = false,
            _ => continue,
        }
        if Validator::new_with_features(f.to_wasmparser())
            .validate_all(bytes)
            .is_err()
        {
            used.push(name);
        }
    }
    Ok(used)
}

pub fn run(file: &PathBuf) -> Result<(), Failure> {
    let bytes = read_module(file)?;
    let info = ModuleInfo::parse(&bytes)
        .map_err(|e| Failure::Error(format!("{}: {e}", file.display())))?;
    println!("{} ({} bytes)", file.display(), bytes.len());
    println!("sha256: {}", info.hash());
    match features_used(&bytes) {
        Ok(used) if used.is_empty() => println!("proposals used: none beyond WebAssembly 1.0"),
        Ok(used) => println!("proposals used: {}", used.join(", ")),
        Err(e) => println!("not valid: {e}"),
    }
    println!("imports ({}):", info.imports().len());
    for i in info.imports() {
        println!("  {}.{}: {}", i.module, i.name, i.ty);
    }
    println!("exports ({}):", info.exports().len());
    for e in info.exports() {
        println!("  {}: {}", e.name, e.ty);
    }
    // Memories and tables defined inside the module, exported or not.
    let mut memories = Vec::new();
    let mut tables = Vec::new();
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.map_err(|e| Failure::Error(format!("{}: {e}", file.display())))? {
            Payload::MemorySection(r) => {
                for m in r.into_iter().flatten() {
                    let max = m
                        .maximum
                        .map_or("unbounded".to_string(), |x| format!("max {x}"));
                    let kind = if m.memory64 { "64-bit" } else { "32-bit" };
                    memories.push(format!(
                        "{kind}, min {} pages, {max}{}",
                        m.initial,
                        if m.shared { ", shared" } else { "" }
                    ));
                }
            }
            Payload::TableSection(r) => {
                for t in r.into_iter().flatten() {
                    let max =
                        t.ty.maximum
                            .map_or("unbounded".to_string(), |x| format!("max {x}"));
                    tables.push(format!(
                        "{}, min {}, {max}",
                        t.ty.element_type, t.ty.initial
                    ));
                }
            }
            _ => {}
        }
    }
    println!("memories defined ({}):", memories.len());
    for (i, m) in memories.iter().enumerate() {
        println!("  {i}: {m}");
    }
    println!("tables defined ({}):", tables.len());
    for (i, t) in tables.iter().enumerate() {
        println!("  {i}: {t}");
    }
    if let Some(start) = info.start_function() {
        println!("start function: {start}");
    }
    println!("custom sections ({}):", info.custom_sections().len());
    for s in info.custom_sections() {
        println!("  {} ({} bytes)", s.name, s.range.len());
    }
    if info.custom_sections().iter().any(|s| s.name == "dylink.0") {
        print_dylink(file, &bytes)?;
    }
    Ok(())
}

/// The `dylink.0` section of a dynamic library.
fn print_dylink(file: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    let name = file.display().to_string();
    let d =
        anywasm_linker::Dylink::parse(&name, bytes).map_err(|e| Failure::Error(e.to_string()))?;
    println!("dynamic library (dylink.0):");
    println!(
        "  memory: {} bytes, aligned to {}",
        d.memory_size,
        1u64 << d.memory_align_log2.min(63)
    );
    println!(
        "  table: {} slots, aligned to {}",
        d.table_size,
        1u64 << d.table_align_log2.min(63)
    );
    if d.needed.is_empty() {
        println!("  needed: none");
    } else {
        println!("  needed: {}", d.needed.join(", "));
    }
    for e in &d.export_info {
        println!(
            "  export {}{} (flags {:#x})",
            e.name,
            if e.tls { ", thread-local" } else { "" },
            e.flags
        );
    }
    for i in &d.import_info {
        println!(
            "  import {}.{}{} (flags {:#x})",
            i.module,
            i.field,
            if i.weak { ", weak" } else { "" },
            i.flags
        );
    }
    if !d.runtime_path.is_empty() {
        println!("  runtime path: {}", d.runtime_path.join(", "));
    }
    Ok(())
}
