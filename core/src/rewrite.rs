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
    defer_start_of(bytes, &ModuleInfo::parse(bytes)?)
}

/// The export name [`defer_start`] gives the start function of the module
/// described by `info`, if it has one.
pub fn start_export_name(info: &ModuleInfo) -> Option<String> {
    info.start_function()?;
    let mut export = format!("{}start", crate::func::RESERVED_EXPORT_PREFIX);
    while info.export(&export).is_some() {
        export.push('_');
    }
    Some(export)
}

/// [`defer_start`] for a module already parsed into `info`.
pub fn defer_start_of(bytes: &[u8], info: &ModuleInfo) -> Result<Option<DeferredStart>> {
    let (Some(start), Some(export)) = (info.start_function(), start_export_name(info)) else {
        return Ok(None);
    };

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

/// A global a backend adds to a module as an import (see
/// [`append_imports`]).
#[derive(Debug, Clone, Copy)]
pub struct GlobalImport<'a> {
    /// Import module name.
    pub module: &'a str,
    /// Import field name.
    pub name: &'a str,
    /// The global's type: `i32` or `i64`.
    pub ty: crate::ValType,
    /// Whether the global is mutable.
    pub mutable: bool,
}

/// A function a backend adds to a module as an import (see
/// [`append_imports`]): its type is `[] -> []`.
#[derive(Debug, Clone, Copy)]
pub struct FuncImport<'a> {
    /// Import module name.
    pub module: &'a str,
    /// Import field name.
    pub name: &'a str,
}

/// A module with imports appended by [`append_imports`].
#[derive(Debug, Clone)]
pub struct AppendedImports {
    /// The rewritten module.
    pub bytes: Vec<u8>,
    /// The global index of the first appended global; the others follow.
    pub first_global: u32,
    /// The function index of the first appended function; the others
    /// follow.
    pub first_func: u32,
}

/// Appends `globals`, then `funcs`, to the module's imports, after every
/// existing import (and the functions' type `[] -> []` to its types), and
/// renumbers the module's own globals and functions (which follow the
/// imported ones in their index spaces) in every instruction, initialiser,
/// segment, export and name, so the module computes exactly what it did. A
/// backend uses this to give every instance of a store one shared counter
/// (such as fuel) that its compiled code reads and writes, and functions of
/// the store that code calls (such as where it stops or yields).
pub fn append_imports(
    bytes: &[u8],
    globals: &[GlobalImport<'_>],
    funcs: &[FuncImport<'_>],
) -> Result<AppendedImports> {
    use wasm_encoder::reencode::Reencode;
    let info = ModuleInfo::parse(bytes)?;
    let imported = |f: fn(&crate::ExternType) -> bool| {
        info.imports().iter().filter(|i| f(&i.ty)).count() as u32
    };
    let globals_imported = imported(|t| matches!(t, crate::ExternType::Global(_)));
    let funcs_imported = imported(|t| matches!(t, crate::ExternType::Func(_)));

    struct Appender<'a> {
        globals_imported: u32,
        funcs_imported: u32,
        globals: &'a [GlobalImport<'a>],
        funcs: &'a [FuncImport<'a>],
        /// The type index of `[] -> []`, once appended.
        unit_type: Option<u32>,
        imports_done: bool,
    }

    impl Appender<'_> {
        fn append_type(&mut self, types: &mut wasm_encoder::TypeSection, index: u32) {
            if !self.funcs.is_empty() {
                types.ty().function([], []);
                self.unit_type = Some(index);
            }
        }

        fn append_imports(&mut self, section: &mut wasm_encoder::ImportSection) {
            for g in self.globals {
                let val_type = match g.ty {
                    crate::ValType::I64 => wasm_encoder::ValType::I64,
                    crate::ValType::F32 => wasm_encoder::ValType::F32,
                    crate::ValType::F64 => wasm_encoder::ValType::F64,
                    _ => wasm_encoder::ValType::I32,
                };
                section.import(
                    g.module,
                    g.name,
                    wasm_encoder::GlobalType {
                        val_type,
                        mutable: g.mutable,
                        shared: false,
                    },
                );
            }
            if let Some(ty) = self.unit_type {
                for f in self.funcs {
                    section.import(f.module, f.name, wasm_encoder::EntityType::Function(ty));
                }
            }
            self.imports_done = true;
        }
    }

    type E = wasm_encoder::reencode::Error<std::convert::Infallible>;

    impl Reencode for Appender<'_> {
        type Error = std::convert::Infallible;

        fn global_index(&mut self, global: u32) -> std::result::Result<u32, E> {
            Ok(if global >= self.globals_imported {
                global + self.globals.len() as u32
            } else {
                global
            })
        }

        fn function_index(&mut self, func: u32) -> std::result::Result<u32, E> {
            Ok(if func >= self.funcs_imported {
                func + self.funcs.len() as u32
            } else {
                func
            })
        }

        fn parse_type_section(
            &mut self,
            types: &mut wasm_encoder::TypeSection,
            section: wasmparser::TypeSectionReader<'_>,
        ) -> std::result::Result<(), E> {
            let mut count = 0u32;
            for group in section.clone() {
                count += group?.types().len() as u32;
            }
            wasm_encoder::reencode::utils::parse_type_section(self, types, section)?;
            self.append_type(types, count);
            Ok(())
        }

        fn parse_import_section(
            &mut self,
            imports: &mut wasm_encoder::ImportSection,
            section: wasmparser::ImportSectionReader<'_>,
        ) -> std::result::Result<(), E> {
            wasm_encoder::reencode::utils::parse_import_section(self, imports, section)?;
            self.append_imports(imports);
            Ok(())
        }

        fn intersperse_section_hook(
            &mut self,
            module: &mut wasm_encoder::Module,
            _after: Option<wasm_encoder::SectionId>,
            before: Option<wasm_encoder::SectionId>,
        ) -> std::result::Result<(), E> {
            use wasm_encoder::SectionId::{Import, Type};
            // A module without a type (or import) section gets one before
            // its first section that must follow types (or imports).
            if self.unit_type.is_none() && !self.funcs.is_empty() && !matches!(before, Some(Type)) {
                let mut types = wasm_encoder::TypeSection::new();
                self.append_type(&mut types, 0);
                module.section(&types);
            }
            if !self.imports_done && !matches!(before, Some(Type) | Some(Import)) {
                let mut imports = wasm_encoder::ImportSection::new();
                self.append_imports(&mut imports);
                module.section(&imports);
            }
            Ok(())
        }
    }

    let mut appender = Appender {
        globals_imported,
        funcs_imported,
        globals,
        funcs,
        unit_type: None,
        imports_done: false,
    };
    let mut out = wasm_encoder::Module::new();
    appender
        .parse_core_module(&mut out, Parser::new(0), bytes)
        .map_err(|e| Error::Compile {
            backend: "anywasm",
            message: format!("cannot rewrite the module: {e}"),
        })?;
    Ok(AppendedImports {
        bytes: out.finish(),
        first_global: globals_imported,
        first_func: funcs_imported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends the backend's usual imports (two globals, a function) to
    /// `bytes` and checks what every such rewrite must keep: a valid module
    /// (under every feature), the same imports first and then the new ones,
    /// the same exports. Returns the module before, and the rewrite.
    fn appended(bytes: &[u8]) -> (ModuleInfo, AppendedImports) {
        let before = ModuleInfo::parse(bytes).unwrap();
        let out = append_imports(
            bytes,
            &[
                GlobalImport {
                    module: "__anywasm",
                    name: "fuel",
                    ty: crate::ValType::I64,
                    mutable: true,
                },
                GlobalImport {
                    module: "__anywasm",
                    name: "status",
                    ty: crate::ValType::I32,
                    mutable: true,
                },
            ],
            &[FuncImport {
                module: "__anywasm",
                name: "stop",
            }],
        )
        .unwrap();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out.bytes)
            .unwrap_or_else(|e| panic!("rewritten module invalid: {e}"));
        let after = ModuleInfo::parse(&out.bytes).unwrap();
        let n = before.imports().len();
        assert_eq!(after.imports().len(), n + 3);
        assert_eq!(&after.imports()[..n], before.imports());
        assert_eq!(after.imports()[n].name, "fuel");
        assert_eq!(after.imports()[n + 2].name, "stop");
        assert_eq!(
            after.imports()[n + 2].ty,
            crate::ExternType::Func(crate::FuncType::new([], []))
        );
        assert_eq!(after.exports(), before.exports());
        (before, out)
    }

    #[test]
    fn appended_imports_follow_the_imports_and_the_module_still_computes_the_same() {
        for wat in [
            // Imports of every kind, own globals and functions used in code,
            // initialisers, segments, exports and names. (A call not
            // renumbered would reach a function of another type: invalid.)
            r#"(module
                (import "env" "g0" (global $g0 i32))
                (import "env" "f" (func $f (param i32) (result i32)))
                (import "env" "g1" (global $g1 (mut i64)))
                (global $own (export "own") (mut i32) (global.get $g0))
                (global $k i32 (i32.const 7))
                (global $fr funcref (ref.func $run))
                (memory 1)
                (table 2 funcref)
                (elem (i32.const 0) $run $f)
                (data (global.get $k) "x")
                (func $run (export "run") (result i32)
                    global.get $own global.get $k i32.add call $f
                    global.set $own i32.const 1 call $helper)
                (func $helper (param i32) (result i32)
                    global.get $own local.get 0 i32.add))"#,
            // Only global imports: no type section before the imports.
            r#"(module (import "env" "g" (global i32)))"#,
            // No import section at all.
            r#"(module (global $a (mut i32) (i32.const 1))
                (func (export "get") (result i32) global.get $a))"#,
            "(module)",
        ] {
            let (before, out) = appended(&wat::parse_str(wat).unwrap());
            let count = |f: fn(&crate::ExternType) -> bool| {
                before.imports().iter().filter(|i| f(&i.ty)).count() as u32
            };
            assert_eq!(
                out.first_global,
                count(|t| matches!(t, crate::ExternType::Global(_)))
            );
            assert_eq!(
                out.first_func,
                count(|t| matches!(t, crate::ExternType::Func(_)))
            );
        }
    }

    /// `wasm-smith` modules of every proposal it generates (GC types in
    /// recursion groups, exceptions, tail calls, memory64, ...), rewritten
    /// (see `appended`).
    #[test]
    fn generated_modules_stay_valid_when_imports_are_appended() {
        let mut state = 0x5eed_u64;
        let mut rewritten = 0;
        for _ in 0..400 {
            let raw: Vec<u8> = (0..2048)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 33) as u8
                })
                .collect();
            let mut u = arbitrary::Unstructured::new(&raw);
            let config = wasm_smith::Config {
                generate_custom_sections: true,
                ..wasm_smith::Config::default()
            };
            let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
                continue;
            };
            let bytes = module.to_bytes();
            if ModuleInfo::parse(&bytes).is_err() {
                continue; // A module the layer does not take (it says so).
            }
            appended(&bytes);
            rewritten += 1;
        }
        assert!(rewritten > 100, "only {rewritten} modules were generated");
    }

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
