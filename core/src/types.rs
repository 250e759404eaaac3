//! Engine-neutral descriptions of WebAssembly types.

use std::fmt;
use std::sync::Arc;

/// The type of a WebAssembly value.
///
/// The layer represents the value types of WebAssembly 2.0 (numbers, `v128`
/// and the two nullable reference types) and `exnref`. Modules that use the
/// typed references of the function-references or GC proposals in their
/// imports or exports are rejected with
/// [`Error::Unsupported`](crate::Error::Unsupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 128-bit vector (SIMD proposal).
    V128,
    /// Nullable reference to a function.
    FuncRef,
    /// Nullable reference to a host value.
    ExternRef,
    /// Nullable reference to an exception (exception handling).
    ExnRef,
}

impl ValType {
    /// Whether this is a reference type.
    pub fn is_ref(self) -> bool {
        matches!(
            self,
            ValType::FuncRef | ValType::ExternRef | ValType::ExnRef
        )
    }

    /// Whether this is a number type (`i32`, `i64`, `f32`, `f64`).
    pub fn is_num(self) -> bool {
        matches!(
            self,
            ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64
        )
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
            ValType::ExnRef => "exnref",
        })
    }
}

/// The signature of a function: parameter and result types.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FuncType {
    params_results: Arc<[ValType]>,
    len_params: usize,
}

impl FuncType {
    /// Creates a function type from its parameter and result types.
    pub fn new(
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
    ) -> Self {
        let mut all: Vec<ValType> = params.into_iter().collect();
        let len_params = all.len();
        all.extend(results);
        Self {
            params_results: all.into(),
            len_params,
        }
    }

    /// The parameter types.
    pub fn params(&self) -> &[ValType] {
        &self.params_results[..self.len_params]
    }

    /// The result types.
    pub fn results(&self) -> &[ValType] {
        &self.params_results[self.len_params..]
    }
}

impl fmt::Debug for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(func")?;
        if !self.params().is_empty() {
            f.write_str(" (param")?;
            for p in self.params() {
                write!(f, " {p}")?;
            }
            f.write_str(")")?;
        }
        if !self.results().is_empty() {
            f.write_str(" (result")?;
            for r in self.results() {
                write!(f, " {r}")?;
            }
            f.write_str(")")?;
        }
        f.write_str(")")
    }
}

/// The type of a linear memory.
///
/// Sizes are counted in pages of `2^page_size_log2` bytes (64 KiB unless the
/// custom-page-sizes proposal is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemoryType {
    /// Initial size in pages.
    pub minimum: u64,
    /// Maximum size in pages, if bounded.
    pub maximum: Option<u64>,
    /// Whether the memory is indexed with 64-bit addresses (memory64).
    pub memory64: bool,
    /// Whether the memory is shared between threads (threads proposal).
    pub shared: bool,
    /// Log2 of the page size; 16 for the standard 64 KiB page.
    pub page_size_log2: u8,
}

impl MemoryType {
    /// A 32-bit, unshared memory with 64 KiB pages.
    pub fn new(minimum: u32, maximum: Option<u32>) -> Self {
        Self {
            minimum: minimum.into(),
            maximum: maximum.map(Into::into),
            memory64: false,
            shared: false,
            page_size_log2: 16,
        }
    }

    /// Size of one page in bytes.
    pub fn page_size(&self) -> u64 {
        1u64 << self.page_size_log2
    }

    /// The most pages a memory of this kind can ever have: the address
    /// space divided by the page size (2^32 bytes for 32-bit memories).
    pub fn absolute_max_pages(&self) -> u64 {
        let address_bits = if self.memory64 { 64 } else { 32 };
        if self.page_size_log2 >= address_bits {
            1
        } else {
            1u64 << (address_bits - self.page_size_log2)
        }
    }
}

impl fmt::Display for MemoryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(memory")?;
        if self.memory64 {
            f.write_str(" i64")?;
        }
        write!(f, " {}", self.minimum)?;
        if let Some(max) = self.maximum {
            write!(f, " {max}")?;
        }
        if self.shared {
            f.write_str(" shared")?;
        }
        if self.page_size_log2 != 16 {
            write!(f, " (pagesize {})", 1u64 << self.page_size_log2)?;
        }
        f.write_str(")")
    }
}

/// The type of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableType {
    /// The element type; always a reference type.
    pub element: ValType,
    /// Initial number of elements.
    pub minimum: u64,
    /// Maximum number of elements, if bounded.
    pub maximum: Option<u64>,
    /// Whether the table is indexed with 64-bit indices (memory64 proposal).
    pub table64: bool,
}

impl TableType {
    /// The limits of a 32-bit table as `u32`s, for engines that take them
    /// so; a minimum or maximum beyond `u32` is an invalid argument.
    pub fn limits32(&self) -> crate::Result<(u32, Option<u32>)> {
        let too_large = |what: &str, v: u64| {
            crate::Error::InvalidArgument(format!("a table {what} of {v} elements is too large"))
        };
        let min = u32::try_from(self.minimum).map_err(|_| too_large("minimum", self.minimum))?;
        let max = match self.maximum {
            Some(m) => Some(u32::try_from(m).map_err(|_| too_large("maximum", m))?),
            None => None,
        };
        Ok((min, max))
    }

    /// The most elements a table of this kind can have.
    pub fn absolute_max_elements(&self) -> u64 {
        if self.table64 {
            u64::MAX
        } else {
            u32::MAX as u64
        }
    }

    /// A 32-bit table of `element` references.
    pub fn new(element: ValType, minimum: u32, maximum: Option<u32>) -> Self {
        Self {
            element,
            minimum: minimum.into(),
            maximum: maximum.map(Into::into),
            table64: false,
        }
    }
}

impl fmt::Display for TableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(table ")?;
        if self.table64 {
            f.write_str("i64 ")?;
        }
        write!(f, "{}", self.minimum)?;
        if let Some(max) = self.maximum {
            write!(f, " {max}")?;
        }
        write!(f, " {})", self.element)
    }
}

/// Whether a global can be written after instantiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutability {
    /// Immutable (`const`).
    Const,
    /// Mutable (`var`).
    Var,
}

/// The type of a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlobalType {
    /// Type of the stored value.
    pub content: ValType,
    /// Whether the global is mutable.
    pub mutability: Mutability,
}

impl GlobalType {
    /// Creates a global type.
    pub fn new(content: ValType, mutability: Mutability) -> Self {
        Self {
            content,
            mutability,
        }
    }

    /// Whether the global is mutable.
    pub fn is_mutable(&self) -> bool {
        self.mutability == Mutability::Var
    }
}

impl fmt::Display for GlobalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mutability {
            Mutability::Const => write!(f, "(global {})", self.content),
            Mutability::Var => write!(f, "(global (mut {}))", self.content),
        }
    }
}

/// The type of an import or export.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExternType {
    /// A function.
    Func(FuncType),
    /// A linear memory.
    Memory(MemoryType),
    /// A table.
    Table(TableType),
    /// A global.
    Global(GlobalType),
    /// An exception tag (exception-handling proposal). The layer can describe
    /// tags but not create or import them.
    Tag(FuncType),
}

impl ExternType {
    /// A short word for the kind of item: `func`, `memory`, `table`, `global`, `tag`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExternType::Func(_) => "func",
            ExternType::Memory(_) => "memory",
            ExternType::Table(_) => "table",
            ExternType::Global(_) => "global",
            ExternType::Tag(_) => "tag",
        }
    }

    /// The function type, if this is a function.
    pub fn func(&self) -> Option<&FuncType> {
        match self {
            ExternType::Func(f) => Some(f),
            _ => None,
        }
    }

    /// The memory type, if this is a memory.
    pub fn memory(&self) -> Option<&MemoryType> {
        match self {
            ExternType::Memory(m) => Some(m),
            _ => None,
        }
    }

    /// The table type, if this is a table.
    pub fn table(&self) -> Option<&TableType> {
        match self {
            ExternType::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The global type, if this is a global.
    pub fn global(&self) -> Option<&GlobalType> {
        match self {
            ExternType::Global(g) => Some(g),
            _ => None,
        }
    }
}

impl fmt::Display for ExternType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternType::Func(t) => t.fmt(f),
            ExternType::Memory(t) => t.fmt(f),
            ExternType::Table(t) => t.fmt(f),
            ExternType::Global(t) => t.fmt(f),
            ExternType::Tag(t) => write!(f, "(tag {t})"),
        }
    }
}

/// An import of a module: where it comes from and what type it must have.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImportType {
    /// The module name (first part of the import).
    pub module: String,
    /// The field name (second part of the import).
    pub name: String,
    /// The required type.
    pub ty: ExternType,
}

/// An export of a module: its name and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExportType {
    /// The export name.
    pub name: String,
    /// The exported item's type.
    pub ty: ExternType,
}
