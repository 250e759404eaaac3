//! Small, exact rewrites of module bytes that backends need.

use wasmparser::{Parser, Payload};

use crate::error::{Error, Result};
use crate::module_info::ModuleInfo;

/// A module whose start function was turned into an export.
#[derive(Debug, Clone)]
pub struct DeferredStart {
    /// The rewritten module: no start section, one extra export.
    pub bytes: Vec<u8>,
    /// The name of the export that is the former start function.
    pub export: String,
}

fn parse_err(e: wasmparser::BinaryReaderError) -> Error {
    Error::Compile {
        backend: "anywasm",
        message: e.to_string(),
    }
}

/// Removes the start section of a module and exports the start function
/// instead, so a backend can instantiate first and run the start function
/// itself (to bind host functions to the instance, or to run it under the
/// same fuel slicing and deadlines as any call). Returns `None` if the
/// module has no start function. Everything else is copied byte for byte.
pub fn defer_start(bytes: &[u8]) -> Result<Option<DeferredStart>> {
    let info = ModuleInfo::parse(bytes)?;
    let Some(start) = info.start_function() else {
        return Ok(None);
    };
    let mut export = "__anywasm_start".to_string();
    while info.export(&export).is_some() {
        export.push('_');
    }

    let mut out = wasm_encoder::Module::new();
    let mut exports_written = false;
    let extra_exports = |section: &mut wasm_encoder::ExportSection| {
        section.export(&export, wasm_encoder::ExportKind::Func, start);
    };
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(parse_err)?;
        match &payload {
            Payload::ExportSection(reader) => {
                let mut section = wasm_encoder::ExportSection::new();
                for e in reader.clone() {
                    let e = e.map_err(parse_err)?;
                    let kind = match e.kind {
                        wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => {
                            wasm_encoder::ExportKind::Func
                        }
                        wasmparser::ExternalKind::Table => wasm_encoder::ExportKind::Table,
                        wasmparser::ExternalKind::Memory => wasm_encoder::ExportKind::Memory,
                        wasmparser::ExternalKind::Global => wasm_encoder::ExportKind::Global,
                        wasmparser::ExternalKind::Tag => wasm_encoder::ExportKind::Tag,
                    };
                    section.export(e.name, kind, e.index);
                }
                extra_exports(&mut section);
                out.section(&section);
                exports_written = true;
            }
            Payload::StartSection { .. } => {
                // The export section, if the module has none, goes where the
                // start section was: the two are adjacent in section order.
                if !exports_written {
                    let mut section = wasm_encoder::ExportSection::new();
                    extra_exports(&mut section);
                    out.section(&section);
                    exports_written = true;
                }
            }
            Payload::Version { .. } | Payload::End(_) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&wasm_encoder::RawSection {
                        id,
                        data: &bytes[range.start as usize..range.end as usize],
                    });
                }
            }
        }
    }
    Ok(Some(DeferredStart {
        bytes: out.finish(),
        export,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_becomes_an_export_and_nothing_else_changes() {
        let wasm = wat::parse_str(
            r#"(module
                (global $g (export "g") (mut i32) (i32.const 0))
                (func $init global.get $g i32.const 1 i32.add global.set $g)
                (start $init)
                (@custom "keep" "me"))"#,
        )
        .unwrap();
        let d = defer_start(&wasm).unwrap().unwrap();
        let info = ModuleInfo::parse(&d.bytes).unwrap();
        assert_eq!(info.start_function(), None);
        let names: Vec<&str> = info.exports().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["g", "__anywasm_start"]);
        assert_eq!(info.custom_section("keep").collect::<Vec<_>>(), [b"me"]);
        wasmparser::Validator::new().validate_all(&d.bytes).unwrap();
    }

    #[test]
    fn works_without_an_export_section_and_avoids_name_clashes() {
        let wasm = wat::parse_str(r#"(module (func $s) (start $s))"#).unwrap();
        let d = defer_start(&wasm).unwrap().unwrap();
        wasmparser::Validator::new().validate_all(&d.bytes).unwrap();
        assert_eq!(d.export, "__anywasm_start");

        let wasm =
            wat::parse_str(r#"(module (func $s) (start $s) (func (export "__anywasm_start")))"#)
                .unwrap();
        let d = defer_start(&wasm).unwrap().unwrap();
        assert_eq!(d.export, "__anywasm_start_");
        wasmparser::Validator::new().validate_all(&d.bytes).unwrap();
    }

    #[test]
    fn modules_without_start_are_left_alone() {
        let wasm = wat::parse_str(r#"(module (func (export "f")))"#).unwrap();
        assert!(defer_start(&wasm).unwrap().is_none());
    }
}
