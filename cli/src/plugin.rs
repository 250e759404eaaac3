//! `anywasm plugin`: call a plugin (anywasm's ABI, Extism's or waPC's)
//! from the shell, and tell what ABI a module speaks.

use std::io::Write;
use std::path::PathBuf;

use anywasm_plugin::{Abi, AnyPluginRuntime, Format, Manifest, PluginError};

use crate::{Failure, backend, read_module};

/// `anywasm plugin call`: one plugin, `function` called once per input in
/// order (so state such as Extism vars carries over), each output on its
/// own line. A failed call prints `error: …` and ends the command with
/// status 1 after the outputs so far.
pub struct CallArgs<'a> {
    pub file: &'a PathBuf,
    pub function: &'a str,
    pub inputs: &'a [String],
    pub backend: &'a str,
    pub abi: &'a str,
    pub config: &'a [String],
    pub allow: &'a [String],
}

pub fn call(args: CallArgs<'_>) -> Result<(), Failure> {
    let kind = backend(args.backend)?;
    let abi: Abi = args.abi.parse().map_err(plugin_failure)?;
    let bytes = read_module(args.file)?;
    let id = args
        .file
        .file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
    // Inputs travel as given: JSON text for a plugin of anywasm's ABI,
    // bytes for an Extism plugin.
    let mut manifest = Manifest::from_bytes(id, bytes)
        .abi(abi)
        .format(Format::Json)
        .max_instances(1);
    for kv in args.config {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Failure::Error(format!("--config `{kv}` is not KEY=VALUE")))?;
        manifest = manifest.config(k, v);
    }
    for name in args.allow {
        manifest = manifest.allow(name.as_str());
    }
    let runtime = AnyPluginRuntime::builder(kind)
        .host(|h| {
            h.logger(|plugin, level, line| {
                let level = ["error", "warn", "info", "debug", "trace"]
                    .get(level as usize)
                    .copied()
                    .unwrap_or("log");
                eprintln!("{plugin} [{level}] {line}");
            })
        })
        .build()
        .map_err(plugin_failure)?;
    let plugin = runtime.load(manifest).map_err(plugin_failure)?;
    let mut out = std::io::stdout().lock();
    for input in args.inputs {
        let output = plugin
            .call_raw(args.function, input.as_bytes())
            .map_err(plugin_failure)?;
        let written = out
            .write_all(&output)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        written.map_err(|e| Failure::Error(format!("cannot write the output: {e}")))?;
    }
    Ok(())
}

fn plugin_failure(e: PluginError) -> Failure {
    Failure::Error(e.to_string())
}

/// `anywasm plugin inspect`: the ABI a module speaks, its functions and
/// its imports by module.
pub fn inspect(file: &PathBuf) -> Result<(), Failure> {
    let bytes = read_module(file)?;
    let mut imports: Vec<(String, String)> = Vec::new();
    let mut exports: Vec<String> = Vec::new();
    let mut metadata = None;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        let payload =
            payload.map_err(|e| Failure::Error(format!("{}: {}", file.display(), e.message())))?;
        match payload {
            wasmparser::Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    let imp = imp.map_err(|e| {
                        Failure::Error(format!("{}: {}", file.display(), e.message()))
                    })?;
                    imports.push((imp.module.to_string(), imp.name.to_string()));
                }
            }
            wasmparser::Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(|e| {
                        Failure::Error(format!("{}: {}", file.display(), e.message()))
                    })?;
                    if e.kind == wasmparser::ExternalKind::Func {
                        exports.push(e.name.to_string());
                    }
                }
            }
            wasmparser::Payload::CustomSection(c)
                if c.name() == anywasm_plugin::METADATA_SECTION =>
            {
                metadata = Some(
                    String::from_utf8_lossy(c.data())
                        .trim_end_matches('\0')
                        .to_string(),
                );
            }
            _ => {}
        }
    }
    let abi = if imports.iter().any(|(m, _)| m.starts_with("extism:host/")) {
        "extism (imports from extism:host/env)".to_string()
    } else if let Some(m) = &metadata {
        format!("anywasm (metadata: {m})")
    } else if exports.iter().any(|e| e == "__guest_call") {
        "wapc (exports __guest_call)".to_string()
    } else {
        "none: not a plugin (no anywasm metadata, no Extism imports, no waPC export)".to_string()
    };
    println!("abi: {abi}");
    println!("functions: {}", exports.join(", "));
    let mut modules: Vec<&str> = imports.iter().map(|(m, _)| m.as_str()).collect();
    modules.dedup();
    println!("imports:");
    for m in modules {
        let names: Vec<&str> = imports
            .iter()
            .filter(|(mm, _)| mm == m)
            .map(|(_, n)| n.as_str())
            .collect();
        println!("  {m}: {}", names.join(", "));
    }
    Ok(())
}
