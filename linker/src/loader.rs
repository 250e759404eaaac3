//! The loader: layout, symbol resolution, instantiation, `dlopen`/`dlsym`.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use anywasm_core::{
    AsContextMut, Backend, Engine, Extern, ExternType, Func, FuncType, Global, GlobalType,
    Instance, Linker, Memory, MemoryType, Module, Mutability, Store, Table, TableType, Val,
    ValType,
};

use crate::Error;
use crate::dylink::{Dylink, LibraryFacts};

const PAGE: u64 = 65536;
/// Addresses below this are never given out, so a null pointer never
/// points at a library's data.
pub(crate) const NULL_GUARD: u64 = 1024;

/// Where libraries are found and how much room they get.
#[derive(Debug, Clone)]
pub struct LinkerConfig {
    search_path: Vec<PathBuf>,
    stack_size: u32,
    max_memory_pages: u32,
    max_table_size: u32,
}

impl Default for LinkerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkerConfig {
    /// No search path, a 64 KiB stack, at most 1 GiB of memory and 2^20
    /// table slots.
    pub fn new() -> Self {
        Self {
            search_path: Vec::new(),
            stack_size: 64 * 1024,
            max_memory_pages: 16384,
            max_table_size: 1 << 20,
        }
    }

    /// Adds a directory to search for libraries, after those added before.
    pub fn search_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.search_path.push(dir.into());
        self
    }

    /// The size of the one stack all libraries share (`__stack_pointer`).
    pub fn stack_size(mut self, bytes: u32) -> Self {
        self.stack_size = bytes;
        self
    }

    /// The most memory loading may use, in 64 KiB pages.
    pub fn max_memory_pages(mut self, pages: u32) -> Self {
        self.max_memory_pages = pages;
        self
    }

    /// The most table slots (function pointers) loading may use.
    pub fn max_table_size(mut self, slots: u32) -> Self {
        self.max_table_size = slots;
        self
    }

    /// The first address after the null guard and the stack, where the
    /// first library goes.
    pub(crate) fn first_address(&self) -> u64 {
        align_up(NULL_GUARD + u64::from(self.stack_size), 16)
    }
}

/// A loaded library, by index in load order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LibraryId(pub usize);

/// What [`DynamicLinker::dlopen`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(pub(crate) u32);

/// What [`DynamicLinker::dlsym`] finds.
#[derive(Debug, Clone)]
pub enum Symbol<B: Backend> {
    /// A function, callable through the core API and, as `table_index`,
    /// through the shared table (its function pointer).
    Func {
        /// The function.
        func: Func<B>,
        /// Its slot in the shared table; the same value every module sees.
        table_index: u32,
    },
    /// A variable at this address in the shared memory.
    Data {
        /// The relocated address.
        address: u32,
    },
}

/// A library in the linker.
#[derive(Debug)]
pub struct Library<B: Backend> {
    name: String,
    path: Option<PathBuf>,
    memory_base: u32,
    table_base: u32,
    facts: LibraryFacts,
    instance: Instance<B>,
    needed: Vec<LibraryId>,
}

impl<B: Backend> Library<B> {
    /// Its name (as needed or opened).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The file it came from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    /// Where its data starts in the shared memory.
    pub fn memory_base(&self) -> u32 {
        self.memory_base
    }
    /// Where its table slots start.
    pub fn table_base(&self) -> u32 {
        self.table_base
    }
    /// Its `dylink.0` section.
    pub fn dylink(&self) -> &Dylink {
        &self.facts.dylink
    }
    /// Its instance, for calling its exports through the core API.
    pub fn instance(&self) -> &Instance<B> {
        &self.instance
    }
    /// The libraries it needs.
    pub fn needed(&self) -> &[LibraryId] {
        &self.needed
    }
}

/// Several standalone modules laid out in one memory by
/// [`DynamicLinker::load_shared`].
#[derive(Debug, Clone)]
pub struct SharedModules {
    /// The modules, in the order given.
    pub libraries: Vec<LibraryId>,
    /// The shared heap after them (`__heap_base`..`__heap_end`).
    pub heap: Range<u32>,
    /// Pages of memory in use after loading.
    pub pages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FuncDef {
    /// A host function in the user's linker, under `env`.
    Host(String),
    /// An export of a library.
    Lib {
        lib: usize,
        export: String,
        func_index: u32,
    },
}

/// How one import of a library is satisfied.
#[derive(Debug, Clone)]
enum ImportPlan {
    Memory,
    Table,
    StackPointer,
    Const(i32, Mutability),
    Got(i32),
    LibFunc {
        symbol: String,
        lib: usize,
        ty: FuncType,
    },
    HostFunc {
        module: String,
        name: String,
    },
    WeakStub(String, FuncType),
}

struct Pending<B: Backend> {
    name: String,
    path: Option<PathBuf>,
    module: Module<B>,
    facts: LibraryFacts,
    memory_base: u32,
    table_base: u32,
    imports: Vec<ImportPlan>,
}

/// Everything decided before the first instantiation.
struct Plan<B: Backend> {
    pending: Vec<Pending<B>>,
    data: HashMap<String, u32>,
    funcs: HashMap<String, FuncDef>,
    slots: HashMap<FuncDef, u32>,
    fills: Vec<(u32, FuncDef)>,
    mem_end: u64,
    table_end: u64,
}

type LiveFuncs<B> = Arc<RwLock<HashMap<String, Func<B>>>>;

/// Loads dynamic libraries into one store: one shared memory, one shared
/// table, one stack, one namespace. See the [crate docs](crate).
pub struct DynamicLinker<B: Backend, T: Send + 'static> {
    config: LinkerConfig,
    engine: Engine<B>,
    host: Linker<B, T>,
    in_memory: HashMap<String, Vec<u8>>,
    memory: Memory<B>,
    table: Table<B>,
    stack_pointer: Global<B>,
    libs: Vec<Library<B>>,
    by_name: HashMap<String, usize>,
    data: HashMap<String, u32>,
    funcs: HashMap<String, FuncDef>,
    slots: HashMap<FuncDef, u32>,
    live: LiveFuncs<B>,
    mem_end: u64,
    table_end: u64,
    handles: Vec<Option<Vec<usize>>>,
}

impl<B: Backend, T: Send + 'static> std::fmt::Debug for DynamicLinker<B, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicLinker")
            .field(
                "libraries",
                &self
                    .libs
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("memory_end", &self.mem_end)
            .field("table_end", &self.table_end)
            .finish_non_exhaustive()
    }
}

fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

/// The table slot a library function already has: the one its own element
/// segment gives it (LLVM puts address-taken functions there).
fn own_slot<'a>(def: &FuncDef, lib: impl FnOnce(usize) -> (&'a LibraryFacts, u32)) -> Option<u32> {
    match def {
        FuncDef::Lib {
            lib: index,
            func_index,
            ..
        } => {
            let (facts, table_base) = lib(*index);
            facts.table_offsets.get(func_index).map(|o| table_base + o)
        }
        FuncDef::Host(_) => None,
    }
}

fn host_name(needed_by: Option<&str>) -> String {
    needed_by.map_or_else(|| "the host".to_string(), |n| format!("`{n}`"))
}

impl<B: Backend, T: Send + 'static> DynamicLinker<B, T> {
    /// Creates the shared memory, table and stack in `store`. `host`
    /// supplies functions libraries import (under `env` they join the
    /// symbol namespace ahead of every library; other modules, e.g. WASI,
    /// are passed through).
    pub fn new(
        store: &mut Store<B, T>,
        config: LinkerConfig,
        host: Linker<B, T>,
    ) -> Result<Self, Error> {
        let engine = store.engine().clone();
        let first = config.first_address();
        let pages = first.div_ceil(PAGE);
        if pages > u64::from(config.max_memory_pages) {
            return Err(Error::Limit {
                what: "pages of memory",
                needed: pages,
                limit: config.max_memory_pages.into(),
            });
        }
        let memory = Memory::new(
            &mut *store,
            MemoryType::new(pages as u32, Some(config.max_memory_pages)),
        )?;
        let table = Table::new(
            &mut *store,
            TableType::new(ValType::FuncRef, 1, Some(config.max_table_size)),
            Val::FuncRef(None),
        )?;
        let stack_pointer = Global::new(
            &mut *store,
            GlobalType::new(ValType::I32, Mutability::Var),
            Val::I32(first as i32),
        )?;
        Ok(Self {
            config,
            engine,
            host,
            in_memory: HashMap::new(),
            memory,
            table,
            stack_pointer,
            libs: Vec::new(),
            by_name: HashMap::new(),
            data: HashMap::new(),
            funcs: HashMap::new(),
            slots: HashMap::new(),
            live: Arc::new(RwLock::new(HashMap::new())),
            mem_end: first,
            table_end: 1,
            handles: Vec::new(),
        })
    }

    /// Reserves `bytes` (16-aligned) of the shared memory for the host,
    /// after everything laid out so far.
    pub(crate) fn reserve(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        bytes: u32,
    ) -> Result<u32, Error> {
        let start = align_up(self.mem_end, 16);
        let end = start + u64::from(bytes);
        let pages = self.pages_for(end)?;
        self.grow_to(&mut ctx, pages)?;
        self.mem_end = end;
        Ok(start as u32)
    }

    /// The pages memory must have to end at `end`, within the limit.
    fn pages_for(&self, end: u64) -> Result<u64, Error> {
        let pages = end.div_ceil(PAGE);
        if pages > u64::from(self.config.max_memory_pages) || end > u64::from(u32::MAX) {
            return Err(Error::Limit {
                what: "pages of memory",
                needed: pages,
                limit: self.config.max_memory_pages.into(),
            });
        }
        Ok(pages)
    }

    /// Grows the shared memory to at least `pages`.
    fn grow_to(
        &self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        pages: u64,
    ) -> Result<(), Error> {
        let have = self.memory.size(&ctx)?;
        if pages > have {
            self.memory.grow(&mut ctx, pages - have)?;
        }
        Ok(())
    }

    /// Makes a library available by name without a file (consulted before
    /// the search path), e.g. bytes bundled in an app.
    pub fn add_library_bytes(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.in_memory.insert(name.into(), bytes.into());
    }

    /// The shared memory.
    pub fn memory(&self) -> &Memory<B> {
        &self.memory
    }

    /// The shared table of function pointers.
    pub fn table(&self) -> &Table<B> {
        &self.table
    }

    /// The shared `__stack_pointer`.
    pub fn stack_pointer(&self) -> &Global<B> {
        &self.stack_pointer
    }

    /// Every loaded library, in load order.
    pub fn libraries(&self) -> impl Iterator<Item = (LibraryId, &Library<B>)> {
        self.libs.iter().enumerate().map(|(i, l)| (LibraryId(i), l))
    }

    /// A loaded library.
    pub fn library(&self, id: LibraryId) -> Option<&Library<B>> {
        self.libs.get(id.0)
    }

    /// A loaded library by name.
    pub fn library_by_name(&self, name: &str) -> Option<LibraryId> {
        self.by_name.get(name).map(|i| LibraryId(*i))
    }

    /// The first address no library uses.
    pub fn memory_end(&self) -> u64 {
        self.mem_end
    }

    /// Loads a library (a main program or a side module) and everything it
    /// needs; returns its id. Loading the same name again returns the same
    /// library. On error nothing new is visible (memory already reserved
    /// stays reserved).
    pub fn load(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        name: &str,
    ) -> Result<LibraryId, Error> {
        if let Some(i) = self.by_name.get(name) {
            return Ok(LibraryId(*i));
        }
        let ids = self.load_roots(&mut ctx, &[name.to_string()], None, false)?;
        Ok(ids[0])
    }

    /// [`load`](Self::load) from bytes under `name`.
    pub fn load_bytes(
        &mut self,
        ctx: impl AsContextMut<Backend = B, Data = T>,
        name: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> Result<LibraryId, Error> {
        self.add_library_bytes(name, bytes);
        self.load(ctx, name)
    }

    /// Lays out several standalone position-independent modules one after
    /// another in the shared memory with a shared heap of `heap_bytes`
    /// after them, and loads them in the given order. Their relocations
    /// (including pointers stored inside data) are applied by each module's
    /// own relocation code, and `__heap_base`/`__heap_end` resolve to the
    /// heap. A module may need only modules in the list or already loaded.
    pub fn load_shared(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        modules: &[(&str, &[u8])],
        heap_bytes: u32,
    ) -> Result<SharedModules, Error> {
        for (name, bytes) in modules {
            self.add_library_bytes(*name, bytes.to_vec());
        }
        let names: Vec<String> = modules.iter().map(|(n, _)| n.to_string()).collect();
        let before = self.libs.len();
        let ids = self.load_roots(&mut ctx, &names, Some(heap_bytes), true)?;
        let heap_start = self.data.get("__heap_base").copied().unwrap_or(0);
        let heap_end = self.data.get("__heap_end").copied().unwrap_or(0);
        debug_assert!(self.libs.len() >= before);
        Ok(SharedModules {
            libraries: ids,
            heap: heap_start..heap_end,
            pages: self.memory.size(&ctx)?,
        })
    }

    /// Opens a library at run time (loading it and what it needs unless
    /// already loaded) and returns a handle for [`dlsym`](Self::dlsym).
    pub fn dlopen(
        &mut self,
        ctx: impl AsContextMut<Backend = B, Data = T>,
        name: &str,
    ) -> Result<Handle, Error> {
        let id = self.load(ctx, name)?;
        // The handle's scope: the library, then its dependencies, breadth first.
        let mut scope = vec![id.0];
        let mut i = 0;
        while i < scope.len() {
            for n in &self.libs[scope[i]].needed {
                if !scope.contains(&n.0) {
                    scope.push(n.0);
                }
            }
            i += 1;
        }
        self.handles.push(Some(scope));
        Ok(Handle(self.handles.len() as u32 - 1))
    }

    /// Looks `symbol` up in the library a handle opened and its
    /// dependencies. A function comes with its table index, which equals
    /// the function pointer any module holds for it.
    pub fn dlsym(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        handle: Handle,
        symbol: &str,
    ) -> Result<Symbol<B>, Error> {
        let scope = self
            .handles
            .get(handle.0 as usize)
            .cloned()
            .flatten()
            .ok_or(Error::InvalidHandle(handle.0))?;
        for lib in &scope {
            if let Some(s) = self.symbol_in(&mut ctx, *lib, symbol)? {
                return Ok(s);
            }
        }
        Err(Error::NoSuchSymbol {
            symbol: symbol.to_string(),
            scope: format!("`{}` and its dependencies", self.libs[scope[0]].name),
        })
    }

    /// Looks `symbol` up in the global namespace (what `dlsym(RTLD_DEFAULT)`
    /// does): host functions, then libraries in load order.
    pub fn lookup(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        symbol: &str,
    ) -> Result<Symbol<B>, Error> {
        if let Some(address) = self.data.get(symbol) {
            return Ok(Symbol::Data { address: *address });
        }
        let def = if self.host.is_defined("env", symbol) {
            Some(FuncDef::Host(symbol.to_string()))
        } else {
            self.funcs.get(symbol).cloned()
        };
        let Some(def) = def else {
            return Err(Error::NoSuchSymbol {
                symbol: symbol.to_string(),
                scope: "the global namespace".into(),
            });
        };
        self.func_symbol(&mut ctx, def)
    }

    /// Closes a handle. The library stays loaded (its code may be on the
    /// stack and its function pointers in other modules' data); the handle
    /// can no longer be used.
    pub fn dlclose(&mut self, handle: Handle) -> Result<(), Error> {
        match self.handles.get_mut(handle.0 as usize) {
            Some(h @ Some(_)) => {
                *h = None;
                Ok(())
            }
            _ => Err(Error::InvalidHandle(handle.0)),
        }
    }

    /// A function exported by any loaded library, found through the global
    /// namespace (convenience for calling a main program's exports).
    pub fn func(
        &mut self,
        ctx: impl AsContextMut<Backend = B, Data = T>,
        symbol: &str,
    ) -> Result<Func<B>, Error> {
        match self.lookup(ctx, symbol)? {
            Symbol::Func { func, .. } => Ok(func),
            Symbol::Data { .. } => Err(Error::NoSuchSymbol {
                symbol: symbol.to_string(),
                scope: "the functions of the namespace".into(),
            }),
        }
    }

    fn symbol_in(
        &mut self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        lib: usize,
        symbol: &str,
    ) -> Result<Option<Symbol<B>>, Error> {
        let l = &self.libs[lib];
        if let Some((_, rel)) = l.facts.data_exports.iter().find(|(n, _)| n == symbol) {
            return Ok(Some(Symbol::Data {
                address: l.memory_base.wrapping_add(*rel as u32),
            }));
        }
        let Some(func_index) = l.facts.func_exports.get(symbol).copied() else {
            return Ok(None);
        };
        let def = FuncDef::Lib {
            lib,
            export: symbol.to_string(),
            func_index,
        };
        self.func_symbol(ctx, def).map(Some)
    }

    /// A function and its one table slot, allocating the slot on first use.
    fn func_symbol(
        &mut self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        def: FuncDef,
    ) -> Result<Symbol<B>, Error> {
        let func = self.resolve_func(ctx, &def)?;
        let table_index = match self.slots.get(&def) {
            Some(s) => *s,
            None => {
                let l = |lib: usize| (&self.libs[lib].facts, self.libs[lib].table_base);
                let slot = match own_slot(&def, l) {
                    Some(s) => s,
                    None => {
                        self.check_table(self.table_end + 1)?;
                        let s = self
                            .table
                            .grow(&mut *ctx, 1, Val::FuncRef(Some(func.clone())))?;
                        self.table_end = s + 1;
                        s as u32
                    }
                };
                self.slots.insert(def, slot);
                slot
            }
        };
        Ok(Symbol::Func { func, table_index })
    }

    fn resolve_func(
        &self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        def: &FuncDef,
    ) -> Result<Func<B>, Error> {
        match def {
            FuncDef::Host(name) => match self.host.get(&mut *ctx, "env", name) {
                Some(Extern::Func(f)) => Ok(f),
                _ => Err(Error::NoSuchSymbol {
                    symbol: name.clone(),
                    scope: "the host functions".into(),
                }),
            },
            FuncDef::Lib { lib, export, .. } => {
                Ok(self.libs[*lib].instance.get_func(&mut *ctx, export)?)
            }
        }
    }

    fn check_table(&self, needed: u64) -> Result<(), Error> {
        if needed > u64::from(self.config.max_table_size) {
            return Err(Error::Limit {
                what: "table slots",
                needed,
                limit: self.config.max_table_size.into(),
            });
        }
        Ok(())
    }

    /// Finds a library's bytes: given bytes first, then the search path.
    fn find(
        &self,
        name: &str,
        needed_by: Option<&str>,
        origin: Option<&Path>,
        rpath: &[String],
    ) -> Result<(Vec<u8>, Option<PathBuf>), Error> {
        if name.contains('\0') {
            return Err(Error::RefusedName {
                name: name.escape_debug().to_string(),
                reason: "it contains NUL".into(),
            });
        }
        if let Some(b) = self.in_memory.get(name) {
            return Ok((b.clone(), None));
        }
        if name.is_empty() {
            return Err(Error::RefusedName {
                name: String::new(),
                reason: "it is empty".into(),
            });
        }
        let path_like = Path::new(name)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
            || name.contains('/');
        let roots: Vec<PathBuf> = self
            .config
            .search_path
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .collect();
        let inside = |p: &Path| roots.iter().any(|r| p.starts_with(r));
        // Directories to try: the search path, then the library's runtime
        // path where it stays inside the search path.
        let mut dirs: Vec<PathBuf> = roots.clone();
        for r in rpath {
            let dir = match (r.strip_prefix("$ORIGIN"), origin) {
                (Some(rest), Some(o)) => o.join(rest.trim_start_matches('/')),
                (Some(_), None) => continue,
                (None, _) => PathBuf::from(r),
            };
            if let Ok(c) = dir.canonicalize()
                && inside(&c)
                && !dirs.contains(&c)
            {
                dirs.push(c);
            }
        }
        for dir in &dirs {
            let candidate = dir.join(name);
            let Ok(canon) = candidate.canonicalize() else {
                continue;
            };
            if !inside(&canon) {
                return Err(Error::RefusedName {
                    name: name.to_string(),
                    reason: format!(
                        "it resolves to {}, outside the search path",
                        canon.display()
                    ),
                });
            }
            if canon.is_file() {
                let bytes = std::fs::read(&canon).map_err(|source| Error::Io {
                    path: canon.clone(),
                    source,
                })?;
                return Ok((bytes, Some(canon)));
            }
        }
        if path_like {
            return Err(Error::RefusedName {
                name: name.to_string(),
                reason: "a name with `/` or `..` must resolve to a file inside the search path"
                    .into(),
            });
        }
        Err(Error::NotFound {
            library: name.to_string(),
            needed_by: host_name(needed_by),
            searched: if dirs.is_empty() && self.in_memory.is_empty() {
                "no search path configured".into()
            } else {
                let mut s: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                if !self.in_memory.is_empty() {
                    s.insert(0, "the libraries given as bytes".into());
                }
                s.join(", ")
            },
        })
    }

    /// Reads, compiles and orders (dependencies first) every library of a
    /// subtree not loaded yet.
    fn collect(
        &self,
        name: &str,
        needed_by: Option<&str>,
        origin: Option<&Path>,
        rpath: &[String],
        visiting: &mut HashSet<String>,
        out: &mut Vec<Pending<B>>,
    ) -> Result<(), Error> {
        if self.by_name.contains_key(name) || !visiting.insert(name.to_string()) {
            return Ok(());
        }
        let p = self.read_library(name, needed_by, origin, rpath)?;
        let dir = p
            .path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        for n in &p.facts.dylink.needed {
            self.collect(
                n,
                Some(name),
                dir.as_deref(),
                &p.facts.dylink.runtime_path,
                visiting,
                out,
            )?;
        }
        out.push(p);
        Ok(())
    }

    /// Finds, reads and compiles one library, not yet laid out.
    fn read_library(
        &self,
        name: &str,
        needed_by: Option<&str>,
        origin: Option<&Path>,
        rpath: &[String],
    ) -> Result<Pending<B>, Error> {
        let (bytes, path) = self.find(name, needed_by, origin, rpath)?;
        let facts = LibraryFacts::read(name, &bytes)?;
        let module = Module::new(&self.engine, &bytes).map_err(|source| Error::Library {
            library: name.to_string(),
            source,
        })?;
        Ok(Pending {
            name: name.to_string(),
            path,
            module,
            facts,
            memory_base: 0,
            table_base: 0,
            imports: Vec::new(),
        })
    }

    fn load_roots(
        &mut self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        roots: &[String],
        heap: Option<u32>,
        keep_order: bool,
    ) -> Result<Vec<LibraryId>, Error> {
        let mut pending = Vec::new();
        let mut visiting = HashSet::new();
        if keep_order {
            // Standalone modules: exactly these, in this order.
            for r in roots {
                if self.by_name.contains_key(r) {
                    return Err(Error::RefusedName {
                        name: r.clone(),
                        reason: "a library of that name is already loaded".into(),
                    });
                }
                if !visiting.insert(r.clone()) {
                    return Err(Error::RefusedName {
                        name: r.clone(),
                        reason: "it is given twice".into(),
                    });
                }
                pending.push(self.read_library(r, None, None, &[])?);
            }
            for p in &pending {
                if let Some(n) = p
                    .facts
                    .dylink
                    .needed
                    .iter()
                    .find(|n| !roots.contains(n) && !self.by_name.contains_key(*n))
                {
                    return Err(Error::NotFound {
                        library: n.clone(),
                        needed_by: format!("`{}`", p.name),
                        searched: "the modules given and those already loaded".into(),
                    });
                }
            }
        } else {
            for r in roots {
                self.collect(r, None, None, &[], &mut visiting, &mut pending)?;
            }
        }
        let mut plan = self.plan(ctx, pending, heap)?;
        let root_names: Vec<String> = roots.to_vec();
        self.commit(ctx, &mut plan)?;
        Ok(root_names
            .iter()
            .map(|n| LibraryId(self.by_name[n]))
            .collect())
    }

    fn data_addr(&self, plan: &Plan<B>, symbol: &str) -> Option<u32> {
        self.data
            .get(symbol)
            .or_else(|| plan.data.get(symbol))
            .copied()
    }

    fn func_def(&self, plan: &Plan<B>, symbol: &str) -> Option<FuncDef> {
        if self.host.is_defined("env", symbol) {
            return Some(FuncDef::Host(symbol.to_string()));
        }
        self.funcs
            .get(symbol)
            .or_else(|| plan.funcs.get(symbol))
            .cloned()
    }

    fn lib_facts<'a>(
        &'a self,
        plan: &'a Plan<B>,
        lib: usize,
    ) -> (&'a LibraryFacts, u32, &'a Module<B>) {
        match self.libs.get(lib) {
            Some(l) => (&l.facts, l.table_base, l.instance.module()),
            None => {
                let p = &plan.pending[lib - self.libs.len()];
                (&p.facts, p.table_base, &p.module)
            }
        }
    }

    fn plan_slot(&self, plan: &mut Plan<B>, def: FuncDef) -> u32 {
        if let Some(s) = self.slots.get(&def).or_else(|| plan.slots.get(&def)) {
            return *s;
        }
        let own = own_slot(&def, |lib| {
            let (facts, table_base, _) = self.lib_facts(plan, lib);
            (facts, table_base)
        });
        let slot = own.unwrap_or_else(|| {
            let s = plan.table_end as u32;
            plan.table_end += 1;
            plan.fills.push((s, def.clone()));
            s
        });
        plan.slots.insert(def, slot);
        slot
    }

    /// Lays out, builds the namespace and resolves every import; changes
    /// nothing in `self`.
    fn plan(
        &self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        mut pending: Vec<Pending<B>>,
        heap: Option<u32>,
    ) -> Result<Plan<B>, Error> {
        // Layout.
        let mut mem_end = self.mem_end;
        let mut table_end = self.table_end;
        for p in &mut pending {
            let d = &p.facts.dylink;
            mem_end = align_up(mem_end, 1u64 << d.memory_align_log2.min(16));
            table_end = align_up(table_end, 1u64 << d.table_align_log2.min(16));
            if mem_end > u64::from(u32::MAX) || table_end > u64::from(u32::MAX) {
                return Err(Error::Limit {
                    what: "bytes of address space",
                    needed: mem_end,
                    limit: u32::MAX.into(),
                });
            }
            p.memory_base = mem_end as u32;
            p.table_base = table_end as u32;
            mem_end += u64::from(d.memory_size);
            table_end += u64::from(d.table_size);
        }
        let heap = heap.map(|bytes| {
            let start = align_up(mem_end, 16);
            mem_end = start + u64::from(bytes);
            start as u32..mem_end as u32
        });
        self.pages_for(mem_end)?;
        let mut plan = Plan {
            pending: Vec::new(),
            data: HashMap::new(),
            funcs: HashMap::new(),
            slots: HashMap::new(),
            fills: Vec::new(),
            mem_end,
            table_end,
        };
        // The namespace: earlier definitions win.
        let base = self.libs.len();
        for (i, p) in pending.iter().enumerate() {
            for (name, rel) in &p.facts.data_exports {
                if !self.data.contains_key(name) && !plan.data.contains_key(name) {
                    plan.data
                        .insert(name.clone(), p.memory_base.wrapping_add(*rel as u32));
                }
            }
            for (name, index) in &p.facts.func_exports {
                if !self.funcs.contains_key(name) && !plan.funcs.contains_key(name) {
                    plan.funcs.insert(
                        name.clone(),
                        FuncDef::Lib {
                            lib: base + i,
                            export: name.clone(),
                            func_index: *index,
                        },
                    );
                }
            }
        }
        if let Some(h) = &heap {
            for (sym, v) in [("__heap_base", h.start), ("__heap_end", h.end)] {
                if !self.data.contains_key(sym) {
                    plan.data.insert(sym.to_string(), v);
                }
            }
        }
        plan.pending = pending;
        // Resolve every import.
        for i in 0..plan.pending.len() {
            let imports = plan.pending[i].module.imports().to_vec();
            let lib_name = plan.pending[i].name.clone();
            let mut plans = Vec::with_capacity(imports.len());
            for imp in &imports {
                let weak = plan.pending[i].facts.dylink.is_weak(&imp.name);
                let undefined = || Error::UndefinedSymbol {
                    symbol: imp.name.clone(),
                    library: lib_name.clone(),
                };
                let unsupported = |feature: String| Error::Unsupported {
                    library: lib_name.clone(),
                    feature,
                };
                let p = match (imp.module.as_str(), imp.name.as_str(), &imp.ty) {
                    ("env", "memory", ExternType::Memory(m)) => {
                        if m.shared || m.memory64 {
                            return Err(unsupported("a shared or 64-bit memory".into()));
                        }
                        ImportPlan::Memory
                    }
                    ("env", "__indirect_function_table", ExternType::Table(_)) => ImportPlan::Table,
                    ("env", "__stack_pointer", ExternType::Global(_)) => ImportPlan::StackPointer,
                    ("env", "__memory_base", ExternType::Global(g)) => {
                        ImportPlan::Const(plan.pending[i].memory_base as i32, g.mutability)
                    }
                    ("env", "__table_base", ExternType::Global(g)) => {
                        ImportPlan::Const(plan.pending[i].table_base as i32, g.mutability)
                    }
                    ("GOT.mem", sym, ExternType::Global(_)) => match self.data_addr(&plan, sym) {
                        Some(a) => ImportPlan::Got(a as i32),
                        None if weak => ImportPlan::Got(0),
                        None => return Err(undefined()),
                    },
                    ("GOT.func", sym, ExternType::Global(_)) => match self.func_def(&plan, sym) {
                        Some(def) => ImportPlan::Got(self.plan_slot(&mut plan, def) as i32),
                        None if weak => ImportPlan::Got(0),
                        None => return Err(undefined()),
                    },
                    ("env", sym, ExternType::Func(ty)) => match self.func_def(&plan, sym) {
                        Some(FuncDef::Host(_)) => ImportPlan::HostFunc {
                            module: "env".into(),
                            name: sym.into(),
                        },
                        Some(FuncDef::Lib { lib, export, .. }) => {
                            let (_, _, module) = self.lib_facts(&plan, lib);
                            let found = module
                                .exports()
                                .iter()
                                .find(|e| e.name == export)
                                .and_then(|e| e.ty.func().cloned());
                            match found {
                                Some(f) if &f == ty => ImportPlan::LibFunc {
                                    symbol: sym.into(),
                                    lib,
                                    ty: ty.clone(),
                                },
                                found => {
                                    return Err(Error::SignatureMismatch {
                                        symbol: sym.into(),
                                        library: lib_name.clone(),
                                        expected: ty.to_string(),
                                        found: found.map_or_else(
                                            || "not a function".into(),
                                            |f| f.to_string(),
                                        ),
                                    });
                                }
                            }
                        }
                        None if weak => ImportPlan::WeakStub(sym.into(), ty.clone()),
                        None => return Err(undefined()),
                    },
                    ("env", sym, ExternType::Global(g))
                        if g.content == ValType::I32 && !g.is_mutable() =>
                    {
                        match self.data_addr(&plan, sym) {
                            Some(a) => ImportPlan::Const(a as i32, g.mutability),
                            None => return Err(undefined()),
                        }
                    }
                    (m, n, _) if self.host.is_defined(m, n) => ImportPlan::HostFunc {
                        module: m.into(),
                        name: n.into(),
                    },
                    (m, n, _) => {
                        return Err(Error::UndefinedSymbol {
                            symbol: format!("{m}.{n}"),
                            library: lib_name.clone(),
                        });
                    }
                };
                plans.push(p);
            }
            plan.pending[i].imports = plans;
        }
        // Host functions named by the GOT must exist as functions.
        for (_, def) in &plan.fills {
            if let FuncDef::Host(name) = def
                && !matches!(self.host.get(&mut *ctx, "env", name), Some(Extern::Func(_)))
            {
                return Err(Error::UndefinedSymbol {
                    symbol: name.clone(),
                    library: "the host".into(),
                });
            }
        }
        self.check_table(plan.table_end)?;
        Ok(plan)
    }

    fn build_import(
        &self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        lib_name: &str,
        p: &ImportPlan,
    ) -> Result<Extern<B>, Error> {
        Ok(match p {
            ImportPlan::Memory => Extern::Memory(self.memory.clone()),
            ImportPlan::Table => Extern::Table(self.table.clone()),
            ImportPlan::StackPointer => Extern::Global(self.stack_pointer.clone()),
            ImportPlan::Const(v, m) => Extern::Global(Global::new(
                &mut *ctx,
                GlobalType::new(ValType::I32, *m),
                Val::I32(*v),
            )?),
            ImportPlan::Got(v) => Extern::Global(Global::new(
                &mut *ctx,
                GlobalType::new(ValType::I32, Mutability::Var),
                Val::I32(*v),
            )?),
            ImportPlan::HostFunc { module, name } => self
                .host
                .get(&mut *ctx, module, name)
                .ok_or_else(|| Error::UndefinedSymbol {
                    symbol: format!("{module}.{name}"),
                    library: lib_name.to_string(),
                })?,
            ImportPlan::LibFunc { symbol, lib, ty } => {
                if *lib < self.libs.len() {
                    let export = match &self.funcs[symbol] {
                        FuncDef::Lib { export, .. } => export.clone(),
                        FuncDef::Host(n) => n.clone(),
                    };
                    Extern::Func(self.libs[*lib].instance.get_func(&mut *ctx, &export)?)
                } else {
                    // Defined by a library instantiated later (a cycle):
                    // bind on first call, checking the signature.
                    Extern::Func(lazy_stub(
                        ctx,
                        self.live.clone(),
                        symbol,
                        lib_name,
                        ty.clone(),
                    ))
                }
            }
            ImportPlan::WeakStub(symbol, ty) => {
                let msg = format!("`{lib_name}` called `{symbol}`, an undefined weak function");
                Extern::Func(Func::new(&mut *ctx, ty.clone(), move |_, _, _| {
                    Err(anywasm_core::Error::host_msg(msg.clone()))
                }))
            }
        })
    }

    /// Instantiates a plan, or leaves `self` as it was.
    fn commit(
        &mut self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        plan: &mut Plan<B>,
    ) -> Result<(), Error> {
        let snapshot = (
            self.data.clone(),
            self.funcs.clone(),
            self.slots.clone(),
            self.by_name.clone(),
            self.libs.len(),
        );
        let result = self.commit_inner(ctx, plan);
        if result.is_err() {
            let (data, funcs, slots, by_name, n) = snapshot;
            self.data = data;
            self.funcs = funcs;
            self.slots = slots;
            self.by_name = by_name;
            self.libs.truncate(n);
            let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
            live.retain(|name, _| self.funcs.contains_key(name));
        }
        result
    }

    fn commit_inner(
        &mut self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        plan: &mut Plan<B>,
    ) -> Result<(), Error> {
        // Room first.
        self.grow_to(&mut *ctx, plan.mem_end.div_ceil(PAGE))?;
        let slots = self.table.size(&*ctx)?;
        if plan.table_end > slots {
            self.table
                .grow(&mut *ctx, plan.table_end - slots, Val::FuncRef(None))?;
        }
        self.mem_end = plan.mem_end;
        self.table_end = plan.table_end;
        self.data.extend(plan.data.drain());
        self.funcs.extend(plan.funcs.drain());
        self.slots.extend(plan.slots.drain());
        // Host functions that got a slot.
        for (slot, def) in &plan.fills {
            if let FuncDef::Host(_) = def {
                let f = self.resolve_func(ctx, def)?;
                self.table
                    .set(&mut *ctx, u64::from(*slot), Val::FuncRef(Some(f)))?;
            }
        }
        let first = self.libs.len();
        for p in std::mem::take(&mut plan.pending) {
            let mut imports = Vec::with_capacity(p.imports.len());
            for ip in &p.imports {
                imports.push(self.build_import(ctx, &p.name, ip)?);
            }
            let instance =
                Instance::new(&mut *ctx, &p.module, &imports).map_err(|source| Error::Library {
                    library: p.name.clone(),
                    source,
                })?;
            let id = self.libs.len();
            let needed = p
                .facts
                .dylink
                .needed
                .iter()
                .filter_map(|n| self.by_name.get(n).map(|i| LibraryId(*i)))
                .collect();
            self.by_name.insert(p.name.clone(), id);
            self.libs.push(Library {
                name: p.name,
                path: p.path,
                memory_base: p.memory_base,
                table_base: p.table_base,
                facts: p.facts,
                instance,
                needed,
            });
            // Publish its functions for stubs and fill the slots it owns.
            let mine: Vec<(String, String)> = self
                .funcs
                .iter()
                .filter_map(|(sym, d)| match d {
                    FuncDef::Lib { lib, export, .. } if *lib == id => {
                        Some((sym.clone(), export.clone()))
                    }
                    _ => None,
                })
                .collect();
            for (sym, export) in mine {
                let f = self.libs[id].instance.get_func(&mut *ctx, &export)?;
                self.live
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(sym, f);
            }
            for (slot, def) in &plan.fills {
                if let FuncDef::Lib { lib, .. } = def
                    && *lib == id
                {
                    let f = self.resolve_func(ctx, def)?;
                    self.table
                        .set(&mut *ctx, u64::from(*slot), Val::FuncRef(Some(f)))?;
                }
            }
        }
        // A cycle's libraries were ordered before all their dependencies
        // existed; fix up `needed` now that every id is known.
        for id in first..self.libs.len() {
            let needed = self.libs[id]
                .facts
                .dylink
                .needed
                .iter()
                .filter_map(|n| self.by_name.get(n).map(|i| LibraryId(*i)))
                .collect();
            self.libs[id].needed = needed;
        }
        // Relocations (where no start function applied them), then
        // constructors, dependencies first.
        for id in first..self.libs.len() {
            if !self.libs[id].facts.has_start {
                self.call_if_exported(ctx, id, "__wasm_apply_data_relocs")?;
            }
        }
        for id in first..self.libs.len() {
            if !self.call_if_exported(ctx, id, "__wasm_call_ctors")? {
                self.call_if_exported(ctx, id, "_initialize")?;
            }
        }
        Ok(())
    }

    fn call_if_exported(
        &self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        id: usize,
        name: &str,
    ) -> Result<bool, Error> {
        let lib = &self.libs[id];
        if !lib.instance.exports().iter().any(|e| e.name == name) {
            return Ok(false);
        }
        let wrap = |source| Error::Library {
            library: lib.name.clone(),
            source,
        };
        let f = lib.instance.get_func(&mut *ctx, name).map_err(wrap)?;
        f.call(&mut *ctx, &[], &mut []).map_err(wrap)?;
        Ok(true)
    }
}

fn lazy_stub<B: Backend, T: Send + 'static>(
    ctx: &mut impl AsContextMut<Backend = B, Data = T>,
    live: LiveFuncs<B>,
    symbol: &str,
    lib_name: &str,
    ty: FuncType,
) -> Func<B> {
    let bound: Arc<OnceLock<Func<B>>> = Arc::new(OnceLock::new());
    let (symbol, lib_name, expected) = (symbol.to_string(), lib_name.to_string(), ty.clone());
    Func::new(&mut *ctx, ty, move |mut caller, params, results| {
        let f = match bound.get() {
            Some(f) => f.clone(),
            None => {
                let f = live
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&symbol)
                    .cloned()
                    .ok_or_else(|| {
                        anywasm_core::Error::host_msg(format!(
                            "symbol `{symbol}` needed by `{lib_name}` is not loaded"
                        ))
                    })?;
                let found = f.ty(&caller)?;
                if found != expected {
                    return Err(anywasm_core::Error::host_msg(format!(
                        "symbol `{symbol}` needed by `{lib_name}` as {expected} is defined as {found}"
                    )));
                }
                let _ = bound.set(f.clone());
                f
            }
        };
        f.call(&mut caller, params, results)
    })
}
