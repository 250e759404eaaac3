//! Instances and the items they export or import.

use crate::backend::BackendTypes;
use crate::backend::{Backend, TypedSig};
use crate::error::{Error, LinkErrorKind, Result};
use crate::func::{Func, TypedFunc};
use crate::global::Global;
use crate::memory::Memory;
use crate::module::Module;
use crate::store::{AsContext, AsContextMut, StoreContextMut, StoreId, check_store};
use crate::table::Table;
use crate::tag::Tag;
use crate::types::{ExportType, ExternType, MemoryType, TableType};
use crate::values::{SigOf, WasmTyList};

/// An item that can be imported or exported: a function, memory, table,
/// global or exception tag.
pub enum Extern<B: BackendTypes> {
    /// A function.
    Func(Func<B>),
    /// A linear memory.
    Memory(Memory<B>),
    /// A table.
    Table(Table<B>),
    /// A global.
    Global(Global<B>),
    /// An exception tag.
    Tag(Tag<B>),
}

impl<B: Backend> Clone for Extern<B> {
    fn clone(&self) -> Self {
        match self {
            Extern::Func(x) => Extern::Func(x.clone()),
            Extern::Memory(x) => Extern::Memory(x.clone()),
            Extern::Table(x) => Extern::Table(x.clone()),
            Extern::Global(x) => Extern::Global(x.clone()),
            Extern::Tag(x) => Extern::Tag(x.clone()),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Extern<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Extern::Func(x) => x.fmt(f),
            Extern::Memory(x) => x.fmt(f),
            Extern::Table(x) => x.fmt(f),
            Extern::Global(x) => x.fmt(f),
            Extern::Tag(x) => x.fmt(f),
        }
    }
}

impl<B: Backend> Extern<B> {
    /// The item's current type.
    pub fn ty(&self, ctx: impl AsContext<Backend = B>) -> Result<ExternType> {
        Ok(match self {
            Extern::Func(x) => ExternType::Func(x.ty(ctx)?),
            Extern::Memory(x) => ExternType::Memory(x.ty(ctx)?),
            Extern::Table(x) => ExternType::Table(x.ty(ctx)?),
            Extern::Global(x) => ExternType::Global(x.ty(ctx)?),
            Extern::Tag(x) => ExternType::Tag(x.ty(ctx)?),
        })
    }

    /// The store that owns the item.
    pub fn store_id(&self) -> StoreId {
        match self {
            Extern::Func(x) => x.store_id(),
            Extern::Memory(x) => x.store_id(),
            Extern::Table(x) => x.store_id(),
            Extern::Global(x) => x.store_id(),
            Extern::Tag(x) => x.store_id(),
        }
    }

    /// The function, if this is one.
    pub fn into_func(self) -> Option<Func<B>> {
        match self {
            Extern::Func(x) => Some(x),
            _ => None,
        }
    }

    /// The memory, if this is one.
    pub fn into_memory(self) -> Option<Memory<B>> {
        match self {
            Extern::Memory(x) => Some(x),
            _ => None,
        }
    }

    /// The table, if this is one.
    pub fn into_table(self) -> Option<Table<B>> {
        match self {
            Extern::Table(x) => Some(x),
            _ => None,
        }
    }

    /// The global, if this is one.
    pub fn into_global(self) -> Option<Global<B>> {
        match self {
            Extern::Global(x) => Some(x),
            _ => None,
        }
    }

    /// The tag, if this is one.
    pub fn into_tag(self) -> Option<Tag<B>> {
        match self {
            Extern::Tag(x) => Some(x),
            _ => None,
        }
    }
}

macro_rules! extern_from {
    ($($t:ident),*) => {$(
        impl<B: Backend> From<$t<B>> for Extern<B> {
            fn from(x: $t<B>) -> Self {
                Extern::$t(x)
            }
        }
    )*};
}
extern_from!(Func, Memory, Table, Global, Tag);

fn limits_match(
    found_min: u64,
    found_max: Option<u64>,
    want_min: u64,
    want_max: Option<u64>,
) -> bool {
    found_min >= want_min
        && match (found_max, want_max) {
            (_, None) => true,
            (Some(f), Some(w)) => f <= w,
            (None, Some(_)) => false,
        }
}

fn memory_matches(found: &MemoryType, want: &MemoryType) -> bool {
    found.memory64 == want.memory64
        && found.shared == want.shared
        && found.page_size_log2 == want.page_size_log2
        && limits_match(found.minimum, found.maximum, want.minimum, want.maximum)
}

fn table_matches(found: &TableType, want: &TableType) -> bool {
    found.element == want.element
        && found.table64 == want.table64
        && limits_match(found.minimum, found.maximum, want.minimum, want.maximum)
}

/// Whether an item of type `found` satisfies an import of type `expected`,
/// following the WebAssembly import-matching rules (limits are subtyped using
/// the item's current size).
pub fn extern_type_matches(found: &ExternType, expected: &ExternType) -> bool {
    match (found, expected) {
        (ExternType::Func(f), ExternType::Func(w)) => f == w,
        (ExternType::Global(f), ExternType::Global(w)) => f == w,
        (ExternType::Memory(f), ExternType::Memory(w)) => memory_matches(f, w),
        (ExternType::Table(f), ExternType::Table(w)) => table_matches(f, w),
        // Tag types match exactly (their results are always empty).
        (ExternType::Tag(f), ExternType::Tag(w)) => f == w,
        _ => false,
    }
}

/// An instantiated module.
pub struct Instance<B: BackendTypes> {
    raw: B::Instance,
    module: Module<B>,
    store: StoreId,
}

impl<B: Backend> Clone for Instance<B> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            module: self.module.clone(),
            store: self.store,
        }
    }
}

impl<B: Backend> std::fmt::Debug for Instance<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Instance<B> {
    /// Instantiates `module` with `imports` given in the module's import
    /// order, and runs its start function. Use a [`Linker`](crate::Linker) to
    /// supply imports by name instead.
    ///
    /// The layer runs a module's start function itself, as an ordinary call
    /// right after the engine has instantiated the module, so fuel,
    /// deadlines, interrupts and host functions behave in it exactly as in
    /// any call, on every backend. An instantiation that fails (a link
    /// error, a limit, a trap in the start function) does not count against
    /// the store's instance limit or its statistics.
    pub fn new(
        mut ctx: impl AsContextMut<Backend = B>,
        module: &Module<B>,
        imports: &[Extern<B>],
    ) -> Result<Self> {
        let mut ctx = ctx.as_context_mut();
        let store = ctx.shared().id();
        Self::check_imports(&mut ctx, module, imports)?;
        ctx.shared().entry_check(B::NAME)?;
        // A refusal recorded before this instantiation must not be blamed on it.
        let _ = ctx.shared().take_limit_hit();
        let raw = B::instantiate(B::ctx_mut_reborrow(&mut ctx.raw), module.raw(), imports);
        let raw = Self::instantiated(&mut ctx, crate::error::resume_host_panic(raw))?;
        if let Some(func) = Self::start_func(&mut ctx, module, &raw)? {
            crate::func::run_start(&mut ctx, &func)?;
        }
        ctx.shared().instance_created();
        Ok(Self {
            raw,
            module: module.clone(),
            store,
        })
    }

    /// The checks before an instantiation: engine, imports (number, store,
    /// type) and the store's instance limit.
    pub(crate) fn check_imports<T: Send + 'static>(
        ctx: &mut StoreContextMut<'_, B, T>,
        module: &Module<B>,
        imports: &[Extern<B>],
    ) -> Result<()> {
        let store = ctx.shared().id();
        if !ctx.shared().same_engine(module.engine().shared()) {
            return Err(Error::EngineMismatch {
                item: "the module".into(),
            });
        }
        let wanted = module.imports();
        if wanted.len() != imports.len() {
            return Err(Error::InvalidArgument(format!(
                "the module has {} import(s) but {} were given",
                wanted.len(),
                imports.len()
            )));
        }
        for (want, item) in wanted.iter().zip(imports) {
            check_store(item.store_id(), store, || {
                format!(
                    "the item given for import `{}`.`{}`",
                    want.module, want.name
                )
            })?;
            let found = item.ty(&*ctx)?;
            if !extern_type_matches(&found, &want.ty) {
                return Err(Error::link(
                    &want.module,
                    &want.name,
                    want.ty.clone(),
                    LinkErrorKind::Incompatible { found },
                ));
            }
        }
        ctx.shared().check_instance_limit()
    }

    /// The engine's instantiation result, with a refusal of the store's
    /// limits named as [`Error::Limit`].
    pub(crate) fn instantiated<T: Send + 'static>(
        ctx: &mut StoreContextMut<'_, B, T>,
        raw: Result<B::Instance>,
    ) -> Result<B::Instance> {
        raw.map_err(|e| match ctx.shared().take_limit_hit() {
            Some(what) if e.trap_code().is_none() => Error::Limit(what),
            _ => e,
        })
    }

    /// The module's start function (which the layer runs itself), if any.
    pub(crate) fn start_func<T: Send + 'static>(
        ctx: &mut StoreContextMut<'_, B, T>,
        module: &Module<B>,
        raw: &B::Instance,
    ) -> Result<Option<Func<B>>> {
        let Some(start) = module.start_export() else {
            return Ok(None);
        };
        match B::instance_export(B::ctx_mut_reborrow(&mut ctx.raw), raw, start) {
            Some(Extern::Func(func)) => Ok(Some(func)),
            _ => Err(Error::Backend {
                backend: B::NAME,
                message: "the deferred start function is missing".into(),
            }),
        }
    }

    /// Wraps an engine instance of `module` owned by the store `store` (for
    /// backends and tools).
    pub fn from_raw(raw: B::Instance, module: Module<B>, store: StoreId) -> Self {
        Self { raw, module, store }
    }

    /// The engine's instance.
    pub fn raw(&self) -> &B::Instance {
        &self.raw
    }

    /// The module this instance was created from.
    pub fn module(&self) -> &Module<B> {
        &self.module
    }

    /// The store that owns this instance.
    pub fn store_id(&self) -> StoreId {
        self.store
    }

    /// The exports with their declared types.
    pub fn exports(&self) -> &[ExportType] {
        self.module.exports()
    }

    /// The export called `name`, or `None` if the module has none.
    pub fn get_export(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        name: &str,
    ) -> Result<Option<Extern<B>>> {
        let ctx = ctx.as_context_mut();
        check_store(self.store, ctx.shared().id(), || "the instance".into())?;
        // Only names the module declares: engines and the layer may add
        // private exports.
        if self.module.info().export(name).is_none() {
            return Ok(None);
        }
        Ok(B::instance_export(ctx.raw, &self.raw, name))
    }

    fn get_kind(
        &self,
        ctx: impl AsContextMut<Backend = B>,
        name: &str,
        kind: &'static str,
    ) -> Result<Extern<B>> {
        self.get_export(ctx, name)?.ok_or_else(|| Error::NotFound {
            kind,
            name: name.to_string(),
        })
    }

    fn wrong_kind(name: &str, kind: &'static str, found: &Extern<B>) -> Error {
        let found = match found {
            Extern::Func(_) => "func",
            Extern::Memory(_) => "memory",
            Extern::Table(_) => "table",
            Extern::Global(_) => "global",
            Extern::Tag(_) => "tag",
        };
        Error::TypeMismatch {
            context: format!("export `{name}`"),
            expected: kind.to_string(),
            found: found.to_string(),
        }
    }

    /// The exported function `name`.
    pub fn get_func(&self, ctx: impl AsContextMut<Backend = B>, name: &str) -> Result<Func<B>> {
        match self.get_kind(ctx, name, "exported function")? {
            Extern::Func(f) => Ok(f),
            other => Err(Self::wrong_kind(name, "func", &other)),
        }
    }

    /// The exported memory `name`.
    pub fn get_memory(&self, ctx: impl AsContextMut<Backend = B>, name: &str) -> Result<Memory<B>> {
        match self.get_kind(ctx, name, "exported memory")? {
            Extern::Memory(m) => Ok(m),
            other => Err(Self::wrong_kind(name, "memory", &other)),
        }
    }

    /// The exported table `name`.
    pub fn get_table(&self, ctx: impl AsContextMut<Backend = B>, name: &str) -> Result<Table<B>> {
        match self.get_kind(ctx, name, "exported table")? {
            Extern::Table(t) => Ok(t),
            other => Err(Self::wrong_kind(name, "table", &other)),
        }
    }

    /// The exported global `name`.
    pub fn get_global(&self, ctx: impl AsContextMut<Backend = B>, name: &str) -> Result<Global<B>> {
        match self.get_kind(ctx, name, "exported global")? {
            Extern::Global(g) => Ok(g),
            other => Err(Self::wrong_kind(name, "global", &other)),
        }
    }

    /// The exported tag `name`.
    pub fn get_tag(&self, ctx: impl AsContextMut<Backend = B>, name: &str) -> Result<Tag<B>> {
        match self.get_kind(ctx, name, "exported tag")? {
            Extern::Tag(t) => Ok(t),
            other => Err(Self::wrong_kind(name, "tag", &other)),
        }
    }

    /// The exported function `name` with a typed signature.
    pub fn get_typed_func<P: WasmTyList, R: WasmTyList>(
        &self,
        mut ctx: impl AsContextMut<Backend = B>,
        name: &str,
    ) -> Result<TypedFunc<B, P, R>>
    where
        SigOf<P, R>: TypedSig<B, Params = P::Tuple, Results = R::Tuple>,
    {
        let func = self.get_func(&mut ctx, name)?;
        func.typed(&ctx).map_err(|e| match e {
            Error::TypeMismatch {
                expected, found, ..
            } => Error::TypeMismatch {
                context: format!("typed function `{name}`"),
                expected,
                found,
            },
            e => e,
        })
    }
}
