//! Reading a dynamic library without an engine: its `dylink.0` section and
//! the facts about its imports, exports, globals and table segments that
//! the loader needs before instantiating anything.

use std::collections::HashMap;

use wasmparser::{
    Dylink0Subsection, ElementItems, ElementKind, ExternalKind, KnownCustom, Operator, Parser,
    Payload, SymbolFlags, TypeRef,
};

use crate::Error;

/// The contents of a `dylink.0` custom section (tool-conventions
/// `DynamicLinking.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dylink {
    /// Bytes of linear memory the library needs, from `__memory_base`.
    pub memory_size: u32,
    /// Required alignment of its memory area, as a power of two.
    pub memory_align_log2: u32,
    /// Table slots the library needs, from `__table_base`.
    pub table_size: u32,
    /// Required alignment of its table area, as a power of two.
    pub table_align_log2: u32,
    /// Libraries it needs, by name, in the order given.
    pub needed: Vec<String>,
    /// Exported symbols with flags (e.g. thread-local).
    pub export_info: Vec<SymbolInfo>,
    /// Imported symbols with flags (e.g. weak).
    pub import_info: Vec<ImportInfo>,
    /// Extra directories to search for needed libraries (`$ORIGIN` is the
    /// library's own directory).
    pub runtime_path: Vec<String>,
}

/// An `export-info` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolInfo {
    /// The symbol.
    pub name: String,
    /// Whether it is thread-local.
    pub tls: bool,
    /// The raw flags.
    pub flags: u32,
}

/// An `import-info` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportInfo {
    /// The import's module (usually `env`).
    pub module: String,
    /// The symbol.
    pub field: String,
    /// Whether an undefined symbol is allowed (it resolves to 0).
    pub weak: bool,
    /// The raw flags.
    pub flags: u32,
}

impl Dylink {
    /// Reads the `dylink.0` section of a module. A module without one is
    /// not a dynamic library: [`Error::NotALibrary`].
    ///
    /// ```
    /// let wasm = wat::parse_str(r#"(module (@dylink.0 (mem-info (memory 16 2)) (needed "libc.so")))"#).unwrap();
    /// let d = anywasm_linker::Dylink::parse("libx.so", &wasm).unwrap();
    /// assert_eq!((d.memory_size, d.memory_align_log2), (16, 2));
    /// assert_eq!(d.needed, ["libc.so"]);
    /// ```
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Self, Error> {
        let bad = |e: wasmparser::BinaryReaderError| Error::Malformed {
            library: name.to_string(),
            message: e.message().to_string(),
        };
        let mut found = None;
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(bad)?;
            if let Payload::CustomSection(c) = &payload
                && let Some(d) = Self::from_custom(name, c)?
            {
                found = Some(d);
                break;
            }
            // Sections after the first few cannot hold it; stop early on big modules.
            if matches!(payload, Payload::CodeSectionStart { .. }) {
                break;
            }
        }
        found.ok_or_else(|| Error::NotALibrary {
            library: name.to_string(),
        })
    }

    /// The `dylink.0` section, if `c` is one; the old `dylink` is refused.
    fn from_custom(
        name: &str,
        c: &wasmparser::CustomSectionReader<'_>,
    ) -> Result<Option<Self>, Error> {
        if c.name() == "dylink" {
            return Err(Error::Malformed {
                library: name.to_string(),
                message: "it has the old `dylink` section; rebuild it with LLVM 13 or later for `dylink.0`"
                    .into(),
            });
        }
        match c.as_known() {
            KnownCustom::Dylink0(reader) => {
                read_dylink0(reader)
                    .map(Some)
                    .map_err(|e| Error::Malformed {
                        library: name.to_string(),
                        message: e.message().to_string(),
                    })
            }
            _ => Ok(None),
        }
    }

    /// Whether the import `module.field` is declared weak.
    pub fn is_weak(&self, field: &str) -> bool {
        self.import_info.iter().any(|i| i.weak && i.field == field)
    }
}

fn read_dylink0(reader: wasmparser::Dylink0SectionReader<'_>) -> wasmparser::Result<Dylink> {
    let mut d = Dylink::default();
    for sub in reader {
        match sub? {
            Dylink0Subsection::MemInfo(m) => {
                d.memory_size = m.memory_size;
                d.memory_align_log2 = m.memory_alignment;
                d.table_size = m.table_size;
                d.table_align_log2 = m.table_alignment;
            }
            Dylink0Subsection::Needed(n) => d.needed.extend(n.into_iter().map(String::from)),
            Dylink0Subsection::ExportInfo(list) => {
                d.export_info.extend(list.into_iter().map(|e| SymbolInfo {
                    name: e.name.to_string(),
                    tls: e.flags.contains(SymbolFlags::TLS),
                    flags: e.flags.bits(),
                }))
            }
            Dylink0Subsection::ImportInfo(list) => {
                d.import_info.extend(list.into_iter().map(|i| ImportInfo {
                    module: i.module.to_string(),
                    field: i.field.to_string(),
                    weak: i.flags.contains(SymbolFlags::BINDING_WEAK),
                    flags: i.flags.bits(),
                }))
            }
            Dylink0Subsection::RuntimePath(p) => {
                d.runtime_path.extend(p.into_iter().map(String::from))
            }
            Dylink0Subsection::TargetArch(_) | Dylink0Subsection::Unknown { .. } => {}
        }
    }
    Ok(d)
}

/// What the loader needs to know about a library before instantiating it.
#[derive(Debug, Clone)]
pub(crate) struct LibraryFacts {
    pub dylink: Dylink,
    /// Exported functions: name → function index.
    pub func_exports: HashMap<String, u32>,
    /// Exported immutable i32 globals with a constant value: name → value
    /// (data symbols, relative to `__memory_base`).
    pub data_exports: Vec<(String, i32)>,
    /// Function index → offset from `__table_base` where the library's own
    /// element segments put it.
    pub table_offsets: HashMap<u32, u32>,
    /// Whether the start function is the exported
    /// `__wasm_apply_data_relocs` (LLVM 14 runs the relocations from the
    /// start section and exports the same function), so instantiating
    /// already applied them and calling the export again would add
    /// `__memory_base` twice.
    pub relocs_run_by_start: bool,
    /// Whether it exports `_start` as a function: a command, whose
    /// `_start` runs the constructors itself.
    pub func_exports_start: bool,
    /// The first exception tag it imports (`module.name`), if any.
    pub imported_tag: Option<String>,
}

/// Exports the loader keeps out of the shared namespace: each library's own
/// relocation and constructor entry points.
pub(crate) fn is_internal_export(name: &str) -> bool {
    matches!(
        name,
        "__wasm_call_ctors"
            | "__wasm_apply_data_relocs"
            | "__wasm_apply_global_relocs"
            | "__wasm_apply_tls_relocs"
            | "__wasm_start"
            | "_initialize"
            | "_start"
            | "__dso_handle"
            | "__data_end"
            | "__heap_base"
            | "__heap_end"
            | "__stack_low"
            | "__stack_high"
            | "__global_base"
            | "__tls_base"
            | "__tls_size"
            | "__tls_align"
    )
}

impl LibraryFacts {
    /// One walk over the sections before the code: `dylink.0`, imports,
    /// globals, exports, start and element segments.
    pub(crate) fn read(name: &str, bytes: &[u8]) -> Result<Self, Error> {
        let mut dylink = None;
        let bad = |message: String| Error::Malformed {
            library: name.to_string(),
            message,
        };
        let mut imported_funcs = 0u32;
        let mut imported_globals = 0u32;
        let mut table_base_global = None;
        let mut global_consts: HashMap<u32, Option<i32>> = HashMap::new();
        let mut exports = Vec::new();
        let mut table_offsets = HashMap::new();
        let mut start = None;
        let mut defines_memory = false;
        let mut imported_tag = None;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(|e| bad(e.message().to_string()))? {
                Payload::ImportSection(r) => {
                    for imp in r.into_imports() {
                        let imp = imp.map_err(|e| bad(e.message().to_string()))?;
                        match imp.ty {
                            TypeRef::Func(_) => imported_funcs += 1,
                            TypeRef::Tag(_) if imported_tag.is_none() => {
                                imported_tag = Some(format!("{}.{}", imp.module, imp.name));
                            }
                            TypeRef::Global(_) => {
                                if imp.module == "env" && imp.name == "__table_base" {
                                    table_base_global = Some(imported_globals);
                                }
                                imported_globals += 1;
                            }
                            _ => {}
                        }
                    }
                }
                Payload::GlobalSection(r) => {
                    for (i, g) in r.into_iter().enumerate() {
                        let g = g.map_err(|e| bad(e.message().to_string()))?;
                        let mut ops = g.init_expr.get_operators_reader();
                        let value = match (ops.read(), ops.read()) {
                            (Ok(Operator::I32Const { value }), Ok(Operator::End))
                                if !g.ty.mutable =>
                            {
                                Some(value)
                            }
                            _ => None,
                        };
                        global_consts.insert(imported_globals + i as u32, value);
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.map_err(|e| bad(e.message().to_string()))?;
                        exports.push((e.name.to_string(), e.kind, e.index));
                    }
                }
                Payload::CustomSection(c) => {
                    if let Some(d) = Dylink::from_custom(name, &c)? {
                        dylink = Some(d);
                    }
                }
                Payload::StartSection { func, .. } => start = Some(func),
                Payload::MemorySection(r) => defines_memory |= r.count() > 0,
                // Nothing the loader reads comes after the code.
                Payload::CodeSectionStart { .. } => break,
                Payload::ElementSection(r) => {
                    for seg in r {
                        let seg = seg.map_err(|e| bad(e.message().to_string()))?;
                        let ElementKind::Active {
                            table_index,
                            offset_expr,
                        } = seg.kind
                        else {
                            continue;
                        };
                        if table_index.unwrap_or(0) != 0 {
                            continue;
                        }
                        // PIC segments start at `global.get __table_base`,
                        // possibly plus a constant.
                        let mut ops = offset_expr.get_operators_reader();
                        let mut ops_list = Vec::new();
                        while let Ok(op) = ops.read() {
                            ops_list.push(op);
                        }
                        let base = match ops_list.as_slice() {
                            [Operator::GlobalGet { global_index }, Operator::End]
                                if Some(*global_index) == table_base_global =>
                            {
                                0
                            }
                            [
                                Operator::GlobalGet { global_index },
                                Operator::I32Const { value },
                                Operator::I32Add,
                                Operator::End,
                            ] if Some(*global_index) == table_base_global => *value as u32,
                            _ => continue,
                        };
                        let mut push = |k: u32, f: u32| {
                            table_offsets.entry(f).or_insert(base + k);
                        };
                        match seg.items {
                            ElementItems::Functions(fs) => {
                                for (k, f) in fs.into_iter().enumerate() {
                                    push(k as u32, f.map_err(|e| bad(e.message().to_string()))?);
                                }
                            }
                            ElementItems::Expressions(_, es) => {
                                for (k, e) in es.into_iter().enumerate() {
                                    let e = e.map_err(|e| bad(e.message().to_string()))?;
                                    if let Ok(Operator::RefFunc { function_index }) =
                                        e.get_operators_reader().read()
                                    {
                                        push(k as u32, function_index);
                                    }
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let dylink = dylink.ok_or_else(|| Error::NotALibrary {
            library: name.to_string(),
        })?;
        if defines_memory {
            return Err(Error::Unsupported {
                library: name.to_string(),
                feature: "a memory of its own (a dynamically linked module shares the \
                          linker's memory: link it with --import-memory so it imports `env.memory`)"
                    .into(),
            });
        }
        let relocs_run_by_start = start.is_some()
            && exports.iter().any(|(n, k, i)| {
                n == "__wasm_apply_data_relocs" && *k == ExternalKind::Func && Some(*i) == start
            });
        let func_exports_start = exports
            .iter()
            .any(|(n, k, _)| n == "_start" && *k == ExternalKind::Func);
        let mut func_exports = HashMap::new();
        let mut data_exports = Vec::new();
        for (export, kind, index) in exports {
            if is_internal_export(&export) {
                continue;
            }
            match kind {
                // A re-exported import is defined elsewhere.
                ExternalKind::Func if index >= imported_funcs => {
                    func_exports.insert(export, index);
                }
                ExternalKind::Global => {
                    if let Some(Some(v)) = global_consts.get(&index) {
                        data_exports.push((export, *v));
                    }
                }
                _ => {}
            }
        }
        if let Some(tls) = dylink.export_info.iter().find(|e| e.tls) {
            return Err(Error::Unsupported {
                library: name.to_string(),
                feature: format!(
                    "thread-local symbol `{}` (TLS needs the threads proposal)",
                    tls.name
                ),
            });
        }
        Ok(Self {
            dylink,
            func_exports,
            data_exports,
            table_offsets,
            relocs_run_by_start,
            func_exports_start,
            imported_tag,
        })
    }
}
