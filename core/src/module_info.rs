//! What a module declares, read from its bytes once, the same way for every backend.

use std::ops::Range;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmparser::{CompositeInnerType, Parser, Payload, TypeRef};

use crate::error::{Error, Result};
use crate::types::{
    ExportType, ExternType, FuncType, GlobalType, ImportType, MemoryType, Mutability, TableType,
    ValType,
};

/// A module's content hash: SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lowercase hexadecimal form.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A custom section: its name and where its payload sits in the module bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomSection {
    /// The section name.
    pub name: String,
    /// Byte range of the payload (after the name) within the module.
    pub range: Range<usize>,
}

/// Imports, exports and custom sections of a module, parsed with `wasmparser`.
#[derive(Debug, Clone)]
pub struct ModuleInfo {
    bytes: Arc<[u8]>,
    /// Computed on first use: SHA-256 of a 1 MiB module costs about as much
    /// as wasmi's whole (lazy) compilation of it.
    hash: std::sync::OnceLock<ContentHash>,
    imports: Vec<ImportType>,
    exports: Vec<ExportType>,
    custom_sections: Vec<CustomSection>,
    start: Option<u32>,
}

fn unsupported_type(what: impl std::fmt::Display) -> Error {
    Error::unsupported(
        "anywasm",
        format!(
            "{what} in a module's imports or exports (only numbers, v128, funcref, externref and exnref are represented)"
        ),
    )
}

fn parse_err(e: wasmparser::BinaryReaderError) -> Error {
    Error::Compile {
        backend: "anywasm",
        message: e.to_string(),
    }
}

/// Conversions keep the reason as text so that an unrepresentable type is
/// only an error when an import or export actually uses it.
type Deferred<T> = std::result::Result<T, String>;

fn val_type(t: wasmparser::ValType) -> Deferred<ValType> {
    Ok(match t {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => ValType::V128,
        wasmparser::ValType::Ref(r) => ref_type(r)?,
    })
}

fn ref_type(r: wasmparser::RefType) -> Deferred<ValType> {
    if r == wasmparser::RefType::FUNCREF {
        Ok(ValType::FuncRef)
    } else if r == wasmparser::RefType::EXTERNREF {
        Ok(ValType::ExternRef)
    } else if r == wasmparser::RefType::EXNREF {
        Ok(ValType::ExnRef)
    } else {
        Err(format!("the reference type {r}"))
    }
}

fn memory_type(m: wasmparser::MemoryType) -> MemoryType {
    MemoryType {
        minimum: m.initial,
        maximum: m.maximum,
        memory64: m.memory64,
        shared: m.shared,
        page_size_log2: m.page_size_log2.map(|p| p as u8).unwrap_or(16),
    }
}

fn table_type(t: wasmparser::TableType) -> Deferred<TableType> {
    Ok(TableType {
        element: ref_type(t.element_type)?,
        minimum: t.initial,
        maximum: t.maximum,
        table64: t.table64,
    })
}

fn global_type(g: wasmparser::GlobalType) -> Deferred<GlobalType> {
    Ok(GlobalType {
        content: val_type(g.content_type)?,
        mutability: if g.mutable {
            Mutability::Var
        } else {
            Mutability::Const
        },
    })
}

impl ModuleInfo {
    /// Parses the bytes of a module. Only the structure needed for imports,
    /// exports and custom sections is read; full validation is the engine's job.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bytes: Arc<[u8]> = bytes.into();
        // Types may be unrepresentable (GC proposal); keep the error and only
        // report it if an import or export actually uses such a type.
        let mut types: Vec<Deferred<FuncType>> = Vec::new();
        let mut funcs: Vec<u32> = Vec::new();
        let mut tables: Vec<Deferred<TableType>> = Vec::new();
        let mut memories: Vec<MemoryType> = Vec::new();
        let mut globals: Vec<Deferred<GlobalType>> = Vec::new();
        let mut tags: Vec<u32> = Vec::new();
        let mut imports = Vec::new();
        let mut raw_exports = Vec::new();
        let mut custom_sections = Vec::new();
        let mut start = None;

        let func_type_at = |types: &Vec<Deferred<FuncType>>, idx: u32| -> Result<FuncType> {
            match types.get(idx as usize) {
                Some(Ok(t)) => Ok(t.clone()),
                Some(Err(e)) => Err(unsupported_type(e)),
                None => Err(Error::Compile {
                    backend: "anywasm",
                    message: format!("type index {idx} out of bounds"),
                }),
            }
        };

        for payload in Parser::new(0).parse_all(&bytes) {
            match payload.map_err(parse_err)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group.map_err(parse_err)?.into_types() {
                            types.push(match &sub.composite_type.inner {
                                CompositeInnerType::Func(f) if !sub.composite_type.shared => {
                                    let params: Deferred<Vec<_>> =
                                        f.params().iter().map(|t| val_type(*t)).collect();
                                    let results: Deferred<Vec<_>> =
                                        f.results().iter().map(|t| val_type(*t)).collect();
                                    match (params, results) {
                                        (Ok(p), Ok(r)) => Ok(FuncType::new(p, r)),
                                        (Err(e), _) | (_, Err(e)) => Err(e),
                                    }
                                }
                                _ => Err("a GC struct or array type".to_string()),
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(parse_err)?;
                        let ty = match import.ty {
                            TypeRef::Func(idx) | TypeRef::FuncExact(idx) => {
                                funcs.push(idx);
                                ExternType::Func(func_type_at(&types, idx)?)
                            }
                            TypeRef::Table(t) => {
                                let t = table_type(t);
                                tables.push(t.clone());
                                ExternType::Table(t.map_err(unsupported_type)?)
                            }
                            TypeRef::Memory(m) => {
                                memories.push(memory_type(m));
                                ExternType::Memory(memory_type(m))
                            }
                            TypeRef::Global(g) => {
                                let g = global_type(g);
                                globals.push(g.clone());
                                ExternType::Global(g.map_err(unsupported_type)?)
                            }
                            TypeRef::Tag(t) => {
                                tags.push(t.func_type_idx);
                                ExternType::Tag(func_type_at(&types, t.func_type_idx)?)
                            }
                        };
                        imports.push(ImportType {
                            module: import.module.to_string(),
                            name: import.name.to_string(),
                            ty,
                        });
                    }
                }
                Payload::FunctionSection(reader) => {
                    for f in reader {
                        funcs.push(f.map_err(parse_err)?);
                    }
                }
                Payload::TableSection(reader) => {
                    for t in reader {
                        tables.push(table_type(t.map_err(parse_err)?.ty));
                    }
                }
                Payload::MemorySection(reader) => {
                    for m in reader {
                        memories.push(memory_type(m.map_err(parse_err)?));
                    }
                }
                Payload::GlobalSection(reader) => {
                    for g in reader {
                        globals.push(global_type(g.map_err(parse_err)?.ty));
                    }
                }
                Payload::TagSection(reader) => {
                    for t in reader {
                        tags.push(t.map_err(parse_err)?.func_type_idx);
                    }
                }
                Payload::ExportSection(reader) => {
                    for e in reader {
                        let e = e.map_err(parse_err)?;
                        raw_exports.push((e.name.to_string(), e.kind, e.index));
                    }
                }
                Payload::StartSection { func, .. } => start = Some(func),
                Payload::CustomSection(reader) => {
                    let offset = reader.data_offset() as usize;
                    custom_sections.push(CustomSection {
                        name: reader.name().to_string(),
                        range: offset..offset + reader.data().len(),
                    });
                }
                _ => {}
            }
        }

        let oob = |what: &str, idx: u32| Error::Compile {
            backend: "anywasm",
            message: format!("export refers to {what} index {idx}, which does not exist"),
        };
        let mut exports = Vec::with_capacity(raw_exports.len());
        for (name, kind, index) in raw_exports {
            let i = index as usize;
            let ty = match kind {
                wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => {
                    let ty_idx = *funcs.get(i).ok_or_else(|| oob("function", index))?;
                    ExternType::Func(func_type_at(&types, ty_idx)?)
                }
                wasmparser::ExternalKind::Table => ExternType::Table(
                    tables
                        .get(i)
                        .ok_or_else(|| oob("table", index))?
                        .clone()
                        .map_err(unsupported_type)?,
                ),
                wasmparser::ExternalKind::Memory => {
                    ExternType::Memory(*memories.get(i).ok_or_else(|| oob("memory", index))?)
                }
                wasmparser::ExternalKind::Global => ExternType::Global(
                    globals
                        .get(i)
                        .ok_or_else(|| oob("global", index))?
                        .clone()
                        .map_err(unsupported_type)?,
                ),
                wasmparser::ExternalKind::Tag => {
                    let ty_idx = *tags.get(i).ok_or_else(|| oob("tag", index))?;
                    ExternType::Tag(func_type_at(&types, ty_idx)?)
                }
            };
            exports.push(ExportType { name, ty });
        }

        Ok(Self {
            bytes,
            hash: std::sync::OnceLock::new(),
            imports,
            exports,
            custom_sections,
            start,
        })
    }

    /// The module's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the bytes.
    pub fn hash(&self) -> ContentHash {
        *self.hash.get_or_init(|| ContentHash::of(&self.bytes))
    }

    /// Imports in declaration order.
    pub fn imports(&self) -> &[ImportType] {
        &self.imports
    }

    /// Exports in declaration order.
    pub fn exports(&self) -> &[ExportType] {
        &self.exports
    }

    /// The export with this name.
    pub fn export(&self, name: &str) -> Option<&ExportType> {
        self.exports.iter().find(|e| e.name == name)
    }

    /// All custom sections, in order.
    pub fn custom_sections(&self) -> &[CustomSection] {
        &self.custom_sections
    }

    /// Payloads of the custom sections with this name, in order.
    pub fn custom_section(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.custom_sections
            .iter()
            .filter(move |s| s.name == name)
            .map(|s| &self.bytes[s.range.clone()])
    }

    /// Index of the start function, if the module has one.
    pub fn start_function(&self) -> Option<u32> {
        self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_imports_exports_and_custom_sections() {
        let wasm = wat::parse_str(
            r#"(module
                (import "env" "f" (func (param i32) (result i64)))
                (import "env" "m" (memory 1 2))
                (import "env" "g" (global (mut f32)))
                (import "env" "t" (table 3 funcref))
                (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
                (global (export "c") i64 (i64.const 7))
                (@custom "meta" "hello")
            )"#,
        )
        .unwrap();
        let info = ModuleInfo::parse(&wasm).unwrap();
        let imports: Vec<String> = info
            .imports()
            .iter()
            .map(|i| format!("{}.{} {}", i.module, i.name, i.ty))
            .collect();
        assert_eq!(
            imports,
            [
                "env.f (func (param i32) (result i64))",
                "env.m (memory 1 2)",
                "env.g (global (mut f32))",
                "env.t (table 3 funcref)",
            ]
        );
        assert_eq!(
            info.export("add").unwrap().ty.to_string(),
            "(func (param i32 i32) (result i32))"
        );
        assert_eq!(info.export("c").unwrap().ty.to_string(), "(global i64)");
        assert_eq!(info.custom_section("meta").collect::<Vec<_>>(), [b"hello"]);
        assert_eq!(info.hash(), ContentHash::of(&wasm));
        assert_ne!(info.hash(), ContentHash::of(b"\0asm\x01\0\0\0"));
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\0asm",
            b"\0asm\x01\0\0\0\x01\xff",
            b"not wasm at all",
        ] {
            match ModuleInfo::parse(bad) {
                Err(Error::Compile { .. }) => {}
                other => panic!("{bad:?}: expected a compile error, got {other:?}"),
            }
        }
    }

    #[test]
    fn typed_references_in_exports_are_unsupported() {
        let wasm =
            wat::parse_str(r#"(module (type $t (func)) (func (export "f") (param (ref $t))))"#)
                .unwrap();
        assert!(ModuleInfo::parse(&wasm).unwrap_err().is_unsupported());
    }
}
