//! Supplying imports by name.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, LinkErrorKind, Result};
use crate::func::{Caller, Func, IntoFunc};
use crate::instance::{Extern, Instance, extern_type_matches};
use crate::module::Module;
use crate::store::{AsContextMut, StoreContextMut};
use crate::types::{ExternType, FuncType};
use crate::values::Val;

/// Makes a host function in a store (async ones may be refused there).
pub(crate) type MakeFunc<B, T> =
    Arc<dyn Fn(StoreContextMut<'_, B, T>) -> Result<Func<B>> + Send + Sync>;

enum Definition<B: Backend, T: Send + 'static> {
    /// An item that already lives in a store.
    Extern(Extern<B>),
    /// A host function, created anew in each store that instantiates.
    Host { ty: FuncType, make: MakeFunc<B, T> },
}

impl<B: Backend, T: Send + 'static> Clone for Definition<B, T> {
    fn clone(&self) -> Self {
        match self {
            Definition::Extern(e) => Definition::Extern(e.clone()),
            Definition::Host { ty, make } => Definition::Host {
                ty: ty.clone(),
                make: make.clone(),
            },
        }
    }
}

/// Imports by `module`/`name`, resolved when a module is instantiated.
///
/// Host functions defined here are store-independent: one linker serves
/// many stores (and threads, as it is `Send + Sync`). Memories, tables and
/// globals defined here belong to the store they were created in.
///
/// ```
/// # fn demo<B: anywasm_core::Backend>() -> anywasm_core::Result<()>
/// # where anywasm_core::SigOf<(i32, i32), i32>: anywasm_core::HostSig<B, Params = (i32, i32), Results = (i32,)> {
/// use anywasm_core::{Engine, Linker, Module, Store, Val};
/// let engine = Engine::<B>::default_config()?;
/// let module = Module::from_wat(&engine, r#"(module
///     (import "host" "add" (func $add (param i32 i32) (result i32)))
///     (func (export "run") (result i32) i32.const 40 i32.const 2 call $add))"#)?;
/// let mut linker = Linker::<B, ()>::new();
/// linker.func_wrap("host", "add", |a: i32, b: i32| a + b)?;
/// let mut store = Store::new(&engine, ());
/// let instance = linker.instantiate(&mut store, &module)?;
/// let run = instance.get_func(&mut store, "run")?;
/// assert_eq!(run.invoke(&mut store, &[])?[0].as_i32(), Some(42));
/// # Ok(()) }
/// ```
pub struct Linker<B: Backend, T: Send + 'static> {
    defs: HashMap<(String, String), Definition<B, T>>,
    allow_shadowing: bool,
    _data: PhantomData<fn() -> T>,
}

impl<B: Backend, T: Send + 'static> Clone for Linker<B, T> {
    fn clone(&self) -> Self {
        Self {
            defs: self.defs.clone(),
            allow_shadowing: self.allow_shadowing,
            _data: PhantomData,
        }
    }
}

impl<B: Backend, T: Send + 'static> Default for Linker<B, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend, T: Send + 'static> std::fmt::Debug for Linker<B, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<String> = self.defs.keys().map(|(m, n)| format!("{m}.{n}")).collect();
        names.sort();
        f.debug_struct("Linker")
            .field("definitions", &names)
            .finish()
    }
}

impl<B: Backend, T: Send + 'static> Linker<B, T> {
    /// An empty linker.
    pub fn new() -> Self {
        Self {
            defs: HashMap::new(),
            allow_shadowing: false,
            _data: PhantomData,
        }
    }

    /// Whether a later definition may replace an earlier one with the same
    /// name (off by default: redefinition is an error).
    pub fn allow_shadowing(&mut self, allow: bool) -> &mut Self {
        self.allow_shadowing = allow;
        self
    }

    fn insert(&mut self, module: &str, name: &str, def: Definition<B, T>) -> Result<&mut Self> {
        let key = (module.to_string(), name.to_string());
        if !self.allow_shadowing && self.defs.contains_key(&key) {
            return Err(Error::InvalidArgument(format!(
                "`{module}`.`{name}` is already defined (see Linker::allow_shadowing)"
            )));
        }
        self.defs.insert(key, def);
        Ok(self)
    }

    /// Defines an item that lives in a store (memory, table, global or function).
    pub fn define(
        &mut self,
        module: &str,
        name: &str,
        item: impl Into<Extern<B>>,
    ) -> Result<&mut Self> {
        self.insert(module, name, Definition::Extern(item.into()))
    }

    /// Defines a typed host function (see [`Func::wrap`]).
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        func: impl IntoFunc<B, T, Params, Results>,
    ) -> Result<&mut Self> {
        fn make<B: Backend, T: Send + 'static, P, R, F: IntoFunc<B, T, P, R>>(
            f: F,
        ) -> MakeFunc<B, T> {
            let f = Arc::new(f);
            Arc::new(move |ctx| Ok(F::into_func_shared(f.clone(), ctx)))
        }
        let ty = func_type_of(&func);
        self.insert(
            module,
            name,
            Definition::Host {
                ty,
                make: make(func),
            },
        )
    }

    /// Defines a host function whose type is known only at run time.
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        func: impl Fn(Caller<'_, B, T>, &[Val<B>], &mut [Val<B>]) -> Result<()> + Send + Sync + 'static,
    ) -> Result<&mut Self> {
        let func = Arc::new(func);
        let ty2 = ty.clone();
        let make: MakeFunc<B, T> = Arc::new(move |ctx| {
            let func = func.clone();
            Ok(Func::new(ctx, ty2.clone(), move |c, p, r| func(c, p, r)))
        });
        self.define_host(module, name, ty, make)
    }

    /// Defines a host function made anew in each store.
    pub(crate) fn define_host(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        make: MakeFunc<B, T>,
    ) -> Result<&mut Self> {
        self.insert(module, name, Definition::Host { ty, make })
    }

    /// Defines every export of `instance` under the module name `module`
    /// (what the spec test suite calls `register`).
    pub fn define_instance(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        module: &str,
        instance: &Instance<B>,
    ) -> Result<&mut Self> {
        let names: Vec<String> = instance.exports().iter().map(|e| e.name.clone()).collect();
        for name in names {
            if let Some(item) = instance.get_export(&mut ctx, &name)? {
                self.define(module, &name, item)?;
            }
        }
        Ok(self)
    }

    /// Whether something is defined under `module`/`name`.
    pub fn is_defined(&self, module: &str, name: &str) -> bool {
        self.defs
            .contains_key(&(module.to_string(), name.to_string()))
    }

    /// The definition of `module`/`name` as an item of the store, creating
    /// the host function in the store if needed.
    pub fn get(
        &self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        module: &str,
        name: &str,
    ) -> Option<Extern<B>> {
        match self.defs.get(&(module.to_string(), name.to_string()))? {
            Definition::Extern(e) => Some(e.clone()),
            // A host function the store refuses (an async one on a backend
            // without async calls) is not defined there.
            Definition::Host { make, .. } => make(ctx.as_context_mut()).ok().map(Extern::Func),
        }
    }

    /// Resolves the module's imports against this linker and instantiates it.
    ///
    /// A missing import or one of the wrong type is an [`Error::Link`] naming
    /// the module, field and expected type.
    pub fn instantiate(
        &self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        module: &Module<B>,
    ) -> Result<Instance<B>> {
        let mut ctx = ctx.as_context_mut();
        let imports = self.resolve(&mut ctx, module)?;
        Instance::new(ctx, module, &imports)
    }

    /// The linker's items for the module's imports, in import order.
    pub(crate) fn resolve(
        &self,
        ctx: &mut StoreContextMut<'_, B, T>,
        module: &Module<B>,
    ) -> Result<Vec<Extern<B>>> {
        let mut imports = Vec::with_capacity(module.imports().len());
        for import in module.imports() {
            let key = (import.module.clone(), import.name.clone());
            let link_err =
                |kind| Error::link(&import.module, &import.name, import.ty.clone(), kind);
            let item = match self.defs.get(&key) {
                None => return Err(link_err(LinkErrorKind::Missing)),
                Some(Definition::Host { ty, make }) => {
                    let found = ExternType::Func(ty.clone());
                    if !extern_type_matches(&found, &import.ty) {
                        return Err(link_err(LinkErrorKind::Incompatible { found }));
                    }
                    Extern::Func(make(ctx.as_context_mut())?)
                }
                Some(Definition::Extern(e)) => {
                    let found = e.ty(&*ctx).map_err(|err| match err {
                        Error::StoreMismatch { .. } => Error::StoreMismatch {
                            item: format!(
                                "the linker's definition of `{}`.`{}`",
                                import.module, import.name
                            ),
                        },
                        other => other,
                    })?;
                    if !extern_type_matches(&found, &import.ty) {
                        return Err(link_err(LinkErrorKind::Incompatible { found }));
                    }
                    e.clone()
                }
            };
            imports.push(item);
        }
        Ok(imports)
    }
}

fn func_type_of<B: Backend, T: Send + 'static, P, R, F: IntoFunc<B, T, P, R>>(_: &F) -> FuncType {
    F::func_type()
}
