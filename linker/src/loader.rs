//! The loader: layout, symbol resolution, instantiation, `dlopen`/`dlsym`.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use anywasm_core::{
    AsContextMut, Backend, Engine, Extern, ExternType, Func, FuncType, Global, GlobalType,
    Instance, Linker, Memory, MemoryType, Module, Mutability, Store, Table, TableType, Tag, Val,
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

/// What [`DynamicLinker::dlopen`] returns: one handle per library, the
/// same every time that library is opened, or [`Handle::GLOBAL`] for the
/// global namespace (`dlopen(NULL)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(pub(crate) u32);

impl Handle {
    /// The global namespace: what `dlopen(NULL)` returns. `dlsym` through
    /// it searches like [`DynamicLinker::lookup`]; closing it does nothing.
    pub const GLOBAL: Handle = Handle(0);

    fn library(self) -> Option<usize> {
        (self.0 as usize).checked_sub(1)
    }
}

/// How [`DynamicLinker::dlopen_with`] opens a library: the meaning of the
/// `<dlfcn.h>` mode bits.
///
/// - **global** (`RTLD_GLOBAL`): the library's symbols, and those of what it
///   needs, join the global namespace, so libraries loaded later bind to
///   them. Without it (`RTLD_LOCAL`, the C default) they are reachable only
///   through the handle and from the libraries loaded with it. Opening a
///   local library again with `global` makes it global; nothing makes a
///   global one local again.
/// - **no_load** (`RTLD_NOLOAD`): only returns the handle of a library
///   already loaded; anything else is [`Error::NotLoaded`].
/// - **no_delete** (`RTLD_NODELETE`): accepted. Libraries are never
///   unloaded here (see [`DynamicLinker::dlclose`]), so every library
///   behaves as `RTLD_NODELETE` asks.
///
/// Binding is always immediate: `RTLD_LAZY` and `RTLD_NOW` both mean "every
/// symbol is resolved before the library runs".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenFlags {
    /// `RTLD_GLOBAL`.
    pub global: bool,
    /// `RTLD_NOLOAD`.
    pub no_load: bool,
    /// `RTLD_NODELETE`.
    pub no_delete: bool,
}

impl OpenFlags {
    /// `RTLD_LAZY` in wasi-libc, musl and emscripten.
    pub const RTLD_LAZY: i32 = 1;
    /// `RTLD_NOW`.
    pub const RTLD_NOW: i32 = 2;
    /// `RTLD_NOLOAD`.
    pub const RTLD_NOLOAD: i32 = 4;
    /// `RTLD_GLOBAL`.
    pub const RTLD_GLOBAL: i32 = 0x100;
    /// `RTLD_LOCAL` (no bit: the default).
    pub const RTLD_LOCAL: i32 = 0;
    /// `RTLD_NODELETE`.
    pub const RTLD_NODELETE: i32 = 0x1000;

    /// Symbols join the global namespace (what [`DynamicLinker::dlopen`]
    /// and [`DynamicLinker::load`] do).
    pub const fn global() -> Self {
        Self {
            global: true,
            no_load: false,
            no_delete: false,
        }
    }

    /// Symbols stay behind the handle (`RTLD_LOCAL`).
    pub const fn local() -> Self {
        Self {
            global: false,
            no_load: false,
            no_delete: false,
        }
    }

    /// Reads a C `mode` argument. Bits other than the six above are refused,
    /// naming them.
    ///
    /// ```
    /// use anywasm_linker::OpenFlags;
    /// let f = OpenFlags::from_mode(OpenFlags::RTLD_NOW | OpenFlags::RTLD_GLOBAL).unwrap();
    /// assert!(f.global && !f.no_load);
    /// assert!(OpenFlags::from_mode(0x8).is_err());
    /// ```
    pub fn from_mode(mode: i32) -> Result<Self, String> {
        let known = Self::RTLD_LAZY
            | Self::RTLD_NOW
            | Self::RTLD_NOLOAD
            | Self::RTLD_GLOBAL
            | Self::RTLD_NODELETE;
        if mode & !known != 0 {
            return Err(format!(
                "unknown mode bits {:#x} (known: RTLD_LAZY, RTLD_NOW, RTLD_NOLOAD, RTLD_GLOBAL, \
                 RTLD_LOCAL, RTLD_NODELETE)",
                mode & !known
            ));
        }
        Ok(Self {
            global: mode & Self::RTLD_GLOBAL != 0,
            no_load: mode & Self::RTLD_NOLOAD != 0,
            no_delete: mode & Self::RTLD_NODELETE != 0,
        })
    }
}

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
    /// Whether its symbols are in the global namespace.
    global: bool,
    /// Open `dlopen` handles to it (its handle is valid while > 0).
    opens: u32,
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
    /// Whether its symbols are in the global namespace (everything
    /// [`load`](DynamicLinker::load)ed, and what was opened with
    /// [`OpenFlags::global`]).
    pub fn is_global(&self) -> bool {
        self.global
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
        export: String,
        ty: FuncType,
    },
    HostFunc {
        module: String,
        name: String,
    },
    WeakStub(String, FuncType),
    /// An exception tag from `env`, one per name for every module.
    Tag(String, FuncType),
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
    /// The symbols of the loaded tree (and of local libraries it needs)
    /// that the global namespace lacks, first definition in ELF order.
    data: HashMap<String, u32>,
    funcs: HashMap<String, FuncDef>,
    /// Libraries already loaded as local that the tree needs.
    local_deps: Vec<usize>,
    /// Other names of libraries, by the name they are loaded under: the
    /// same file reached by another path.
    aliases: Vec<(String, String)>,
    slots: HashMap<FuncDef, u32>,
    fills: Vec<(u32, FuncDef)>,
    mem_end: u64,
    table_end: u64,
}

/// Instances by library index, for stubs that bind on first call.
type LiveInstances<B> = Arc<RwLock<HashMap<usize, Instance<B>>>>;

/// What a library walk found so far.
#[derive(Default)]
struct Walk {
    names: HashSet<String>,
    /// Files being loaded, by canonical path, with their name.
    paths: HashMap<PathBuf, String>,
    aliases: Vec<(String, String)>,
}

/// Where a library's bytes are.
enum Source<'a> {
    Bytes(&'a [u8]),
    File(PathBuf),
}

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
    by_path: HashMap<PathBuf, usize>,
    /// The global namespace: data symbols (including the linker's own,
    /// `__heap_base` and the stack bounds) and functions.
    data: HashMap<String, u32>,
    funcs: HashMap<String, FuncDef>,
    slots: HashMap<FuncDef, u32>,
    /// Exception tags imported from `env` (`__c_longjmp`,
    /// `__cpp_exception`, …): made by the linker on the first import of
    /// each name and given to every module that imports it, so modules
    /// catch each other's exceptions.
    tags: HashMap<String, Tag<B>>,
    live: LiveInstances<B>,
    /// The first address neither a library nor the heap owns.
    mem_end: u64,
    /// The memory's size in pages after the linker last grew it; a larger
    /// size means the program grew it (its heap), and the pages beyond are
    /// the program's.
    pages: u64,
    table_end: u64,
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
        // The stack grows down from `first` to `first - stack_size`.
        let data = HashMap::from([
            (
                "__stack_low".to_string(),
                (first - u64::from(config.stack_size)) as u32,
            ),
            ("__stack_high".to_string(), first as u32),
        ]);
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
            by_path: HashMap::new(),
            data,
            funcs: HashMap::new(),
            slots: HashMap::new(),
            tags: HashMap::new(),
            live: Arc::new(RwLock::new(HashMap::new())),
            mem_end: first,
            pages,
            table_end: 1,
        })
    }

    /// Reserves `bytes` (16-aligned) of the shared memory for the host,
    /// after everything laid out so far.
    pub(crate) fn reserve(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        bytes: u32,
    ) -> Result<u32, Error> {
        let start = align_up(self.next_free(&ctx)?, 16);
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
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        pages: u64,
    ) -> Result<(), Error> {
        let have = self.memory.size(&ctx)?;
        if pages > have {
            self.memory.grow(&mut ctx, pages - have)?;
        }
        self.pages = pages.max(have);
        Ok(())
    }

    /// Where the next library can go: after everything the linker laid
    /// out and, if the program grew the memory since (its heap), after the
    /// memory's current end.
    fn next_free(&self, ctx: &impl AsContextMut<Backend = B, Data = T>) -> Result<u64, Error> {
        let size = self.memory.size(ctx)?;
        Ok(if size > self.pages {
            self.mem_end.max(size * PAGE)
        } else {
            self.mem_end
        })
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

    /// The first address no library and no heap the linker set up uses.
    pub fn memory_end(&self) -> u64 {
        self.mem_end
    }

    /// The heap the linker provides (`__heap_base`..`__heap_end`), once a
    /// load has laid it out.
    pub fn heap(&self) -> Option<Range<u32>> {
        Some(*self.data.get("__heap_base")?..*self.data.get("__heap_end")?)
    }

    /// Loads a library (a main program or a side module) and everything it
    /// needs into the global namespace; returns its id. Loading the same
    /// name, or another name of the same file, again returns the same
    /// library. On error nothing new is visible (memory already reserved
    /// stays reserved).
    ///
    /// The first load also lays out the heap: `__heap_base` is the first
    /// 16-aligned address after the libraries, `__heap_end` the end of the
    /// memory's last page. Libraries loaded later go after the heap and
    /// after any memory the program has grown since.
    pub fn load(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        name: &str,
    ) -> Result<LibraryId, Error> {
        self.load_with(&mut ctx, name, true)
    }

    fn load_with(
        &mut self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        name: &str,
        global: bool,
    ) -> Result<LibraryId, Error> {
        if let Some(i) = self.by_name.get(name) {
            return Ok(LibraryId(*i));
        }
        let ids = self.load_roots(ctx, &[name.to_string()], None, false, global)?;
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
    /// The heap is laid out once: after an earlier load made one, this is
    /// [`Error::Unsupported`].
    pub fn load_shared(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        modules: &[(&str, &[u8])],
        heap_bytes: u32,
    ) -> Result<SharedModules, Error> {
        if self.heap().is_some() {
            return Err(Error::Unsupported {
                library: modules.first().map_or("", |m| m.0).to_string(),
                feature: "a second shared heap (an earlier load laid out `__heap_base`)".into(),
            });
        }
        for (name, bytes) in modules {
            self.add_library_bytes(*name, bytes.to_vec());
        }
        let names: Vec<String> = modules.iter().map(|(n, _)| n.to_string()).collect();
        let ids = self.load_roots(&mut ctx, &names, Some(heap_bytes), true, true)?;
        Ok(SharedModules {
            libraries: ids,
            heap: self.heap().unwrap_or(0..0),
            pages: self.memory.size(&ctx)?,
        })
    }

    /// Opens a library at run time (loading it and what it needs unless
    /// already loaded) with its symbols in the global namespace, and
    /// returns its handle for [`dlsym`](Self::dlsym): what
    /// [`dlopen_with`](Self::dlopen_with) does with `Some(name)` and
    /// [`OpenFlags::global`].
    pub fn dlopen(
        &mut self,
        ctx: impl AsContextMut<Backend = B, Data = T>,
        name: &str,
    ) -> Result<Handle, Error> {
        self.dlopen_with(ctx, Some(name), OpenFlags::global())
    }

    /// `dlopen(file, mode)`: `None` is the global namespace
    /// ([`Handle::GLOBAL`]); a name opens that library as `flags` say.
    /// Every open of a library returns its one handle and counts; the
    /// handle stays valid until it is closed as often as it was opened.
    pub fn dlopen_with(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        name: Option<&str>,
        flags: OpenFlags,
    ) -> Result<Handle, Error> {
        let Some(name) = name else {
            return Ok(Handle::GLOBAL);
        };
        let id = if flags.no_load {
            self.loaded(name).ok_or_else(|| Error::NotLoaded {
                library: name.to_string(),
            })?
        } else {
            self.load_with(&mut ctx, name, flags.global)?.0
        };
        if flags.global && !self.libs[id].global {
            self.make_global(id);
        }
        let lib = &mut self.libs[id];
        lib.opens = lib.opens.saturating_add(1);
        Ok(Handle(id as u32 + 1))
    }

    /// A loaded library by name or by the file a name leads to.
    fn loaded(&self, name: &str) -> Option<usize> {
        if let Some(id) = self.by_name.get(name) {
            return Some(*id);
        }
        match self.locate(name, None, None, &[]).ok()? {
            Source::File(path) => self.by_path.get(&path).copied(),
            Source::Bytes(_) => None,
        }
    }

    /// A library and what it needs, breadth first: the scope of its handle.
    fn scope(&self, id: usize) -> Vec<usize> {
        let mut scope = vec![id];
        let mut i = 0;
        while i < scope.len() {
            for n in &self.libs[scope[i]].needed {
                if !scope.contains(&n.0) {
                    scope.push(n.0);
                }
            }
            i += 1;
        }
        scope
    }

    /// Adds a local library and what it needs to the global namespace,
    /// after everything already there.
    fn make_global(&mut self, id: usize) {
        for lib in self.scope(id) {
            let l = &mut self.libs[lib];
            l.global = true;
            for (name, rel) in &l.facts.data_exports {
                self.data
                    .entry(name.clone())
                    .or_insert_with(|| l.memory_base.wrapping_add(*rel as u32));
            }
            for (name, index) in &l.facts.func_exports {
                self.funcs
                    .entry(name.clone())
                    .or_insert_with(|| FuncDef::Lib {
                        lib,
                        export: name.clone(),
                        func_index: *index,
                    });
            }
        }
    }

    /// Looks `symbol` up in the library a handle opened and its
    /// dependencies, breadth first ([`Handle::GLOBAL`]: the global
    /// namespace). A function comes with its table index, which equals the
    /// function pointer any module holds for it.
    pub fn dlsym(
        &mut self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        handle: Handle,
        symbol: &str,
    ) -> Result<Symbol<B>, Error> {
        let Some(id) = handle.library() else {
            return self.lookup(ctx, symbol);
        };
        if self.libs.get(id).is_none_or(|l| l.opens == 0) {
            return Err(Error::InvalidHandle(handle.0));
        }
        let scope = self.scope(id);
        for lib in &scope {
            if let Some(s) = self.symbol_in(&mut ctx, *lib, symbol)? {
                return Ok(s);
            }
        }
        Err(Error::NoSuchSymbol {
            symbol: symbol.to_string(),
            scope: format!("`{}` and its dependencies", self.libs[id].name),
        })
    }

    /// Looks `symbol` up in the global namespace (what `dlsym(RTLD_DEFAULT)`
    /// does): host functions, the linker's symbols (`__heap_base`,
    /// `__heap_end`, `__stack_low`, `__stack_high`), then global libraries
    /// in ELF order — each load's root first, then what it needs, breadth
    /// first; earlier loads before later ones.
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

    /// Closes a handle once. After as many closes as opens the handle can
    /// no longer be used, but the library stays loaded (its code may be on
    /// the stack and its function pointers in other modules' data).
    /// Closing [`Handle::GLOBAL`] does nothing.
    pub fn dlclose(&mut self, handle: Handle) -> Result<(), Error> {
        let Some(id) = handle.library() else {
            return Ok(());
        };
        match self.libs.get_mut(id) {
            Some(l) if l.opens > 0 => {
                l.opens -= 1;
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

    /// Finds a library: given bytes first, then the search path, then the
    /// runtime path of the library that needs it (inside the search path).
    /// A file is named by its canonical path. Error messages name only what
    /// the program asked for and where it may look, never where the search
    /// path is on the host (except [`Error::NotFound`]'s `searched`, which
    /// the guest-facing `dlerror` leaves out).
    fn locate(
        &self,
        name: &str,
        needed_by: Option<&str>,
        origin: Option<&Path>,
        rpath: &[String],
    ) -> Result<Source<'_>, Error> {
        if name.contains('\0') {
            return Err(Error::RefusedName {
                name: name.escape_debug().to_string(),
                reason: "it contains NUL".into(),
            });
        }
        if let Some(b) = self.in_memory.get(name) {
            return Ok(Source::Bytes(b));
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
                    reason: "it resolves outside the search path".into(),
                });
            }
            if canon.is_file() {
                return Ok(Source::File(canon));
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
    /// subtree not loaded yet. A name that leads to a file already loaded,
    /// or already in this walk, becomes another name of that library.
    fn collect(
        &self,
        name: &str,
        needed_by: Option<&str>,
        origin: Option<&Path>,
        rpath: &[String],
        walk: &mut Walk,
        out: &mut Vec<Pending<B>>,
    ) -> Result<(), Error> {
        if self.by_name.contains_key(name) || !walk.names.insert(name.to_string()) {
            return Ok(());
        }
        let source = self.locate(name, needed_by, origin, rpath)?;
        if let Source::File(path) = &source {
            let known = match self.by_path.get(path) {
                Some(id) => Some(self.libs[*id].name.clone()),
                None => walk.paths.get(path).cloned(),
            };
            if let Some(canonical) = known {
                walk.aliases.push((name.to_string(), canonical));
                return Ok(());
            }
            walk.paths.insert(path.clone(), name.to_string());
        }
        let p = self.read_library(name, source)?;
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
                walk,
                out,
            )?;
        }
        out.push(p);
        Ok(())
    }

    /// Reads and compiles one library, not yet laid out.
    fn read_library(&self, name: &str, source: Source<'_>) -> Result<Pending<B>, Error> {
        let (bytes, path) = match source {
            Source::Bytes(b) => (std::borrow::Cow::Borrowed(b), None),
            Source::File(path) => {
                let bytes = std::fs::read(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                (std::borrow::Cow::Owned(bytes), Some(path))
            }
        };
        let facts = LibraryFacts::read(name, &bytes)?;
        // Said before compiling, where the engine's error would only say
        // that exceptions are not enabled.
        if let Some(tag) = &facts.imported_tag {
            let why = if !B::capabilities().features.exceptions {
                Some(format!("{} runs no exceptions", B::NAME))
            } else if !self.engine.config().get_features().exceptions {
                Some("the engine's configuration does not enable exceptions".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::Unsupported {
                    library: name.to_string(),
                    feature: format!("the exception tag `{tag}` ({why})"),
                });
            }
        }
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
        global: bool,
    ) -> Result<Vec<LibraryId>, Error> {
        let mut pending = Vec::new();
        let mut walk = Walk::default();
        if keep_order {
            // Standalone modules: exactly these, in this order.
            for r in roots {
                if self.by_name.contains_key(r) {
                    return Err(Error::RefusedName {
                        name: r.clone(),
                        reason: "a library of that name is already loaded".into(),
                    });
                }
                if !walk.names.insert(r.clone()) {
                    return Err(Error::RefusedName {
                        name: r.clone(),
                        reason: "it is given twice".into(),
                    });
                }
                let source = self.locate(r, None, None, &[])?;
                pending.push(self.read_library(r, source)?);
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
                self.collect(r, None, None, &[], &mut walk, &mut pending)?;
            }
        }
        let mut plan = self.plan(ctx, pending, roots, walk.aliases, heap)?;
        self.commit(ctx, &mut plan, global)?;
        Ok(roots.iter().map(|n| LibraryId(self.by_name[n])).collect())
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
        roots: &[String],
        aliases: Vec<(String, String)>,
        heap: Option<u32>,
    ) -> Result<Plan<B>, Error> {
        // Layout: after everything laid out so far and after memory the
        // program has grown.
        let mut mem_end = self.next_free(ctx)?;
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
        // The heap, laid out once: a given size, or the rest of the last page.
        let heap = match (self.heap(), heap) {
            (Some(_), _) => None,
            (None, bytes) => {
                let start = align_up(mem_end, 16);
                mem_end = match bytes {
                    Some(b) => start + u64::from(b),
                    None => start.div_ceil(PAGE) * PAGE,
                };
                Some((start, mem_end))
            }
        };
        self.pages_for(mem_end)?;
        let mut plan = Plan {
            pending: Vec::new(),
            data: HashMap::new(),
            funcs: HashMap::new(),
            local_deps: Vec::new(),
            aliases,
            slots: HashMap::new(),
            fills: Vec::new(),
            mem_end,
            table_end,
        };
        if let Some((start, end)) = heap {
            plan.data.insert("__heap_base".into(), start as u32);
            plan.data.insert("__heap_end".into(), end as u32);
        }
        // The namespace in ELF order: the global namespace first, then the
        // roots, then what they need, breadth first; earlier definitions win.
        let base = self.libs.len();
        let pending_index = |name: &str| {
            let name = plan
                .aliases
                .iter()
                .find(|(alias, _)| alias == name)
                .map_or(name, |(_, canonical)| canonical.as_str());
            pending.iter().position(|p| p.name == name)
        };
        let mut queue: Vec<String> = roots.to_vec();
        let mut seen: HashSet<usize> = HashSet::new();
        let mut order: Vec<(usize, u32, &LibraryFacts)> = Vec::new();
        let mut local_deps = Vec::new();
        let mut k = 0;
        while k < queue.len() {
            let name = queue[k].clone();
            k += 1;
            let (lib, memory_base, facts) = if let Some(i) = pending_index(&name) {
                (base + i, pending[i].memory_base, &pending[i].facts)
            } else if let Some(&id) = self.by_name.get(&name) {
                let l = &self.libs[id];
                if !l.global && !local_deps.contains(&id) {
                    local_deps.push(id);
                }
                (id, l.memory_base, &l.facts)
            } else {
                continue;
            };
            if !seen.insert(lib) {
                continue;
            }
            queue.extend(facts.dylink.needed.iter().cloned());
            order.push((lib, memory_base, facts));
        }
        for (lib, memory_base, facts) in order {
            if lib < base && self.libs[lib].global {
                continue;
            }
            for (name, rel) in &facts.data_exports {
                if !self.data.contains_key(name) && !plan.data.contains_key(name) {
                    plan.data
                        .insert(name.clone(), memory_base.wrapping_add(*rel as u32));
                }
            }
            for (name, index) in &facts.func_exports {
                if !self.funcs.contains_key(name) && !plan.funcs.contains_key(name) {
                    plan.funcs.insert(
                        name.clone(),
                        FuncDef::Lib {
                            lib,
                            export: name.clone(),
                            func_index: *index,
                        },
                    );
                }
            }
        }
        plan.local_deps = local_deps;
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
                                    export,
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
                    // (A backend or engine without exceptions refused the
                    // module before compiling it.)
                    ("env", sym, ExternType::Tag(ty)) if !self.host.is_defined("env", sym) => {
                        match self.tags.get(sym).map(|t| t.ty(&*ctx)).transpose()? {
                            Some(found) if &found != ty => {
                                return Err(Error::SignatureMismatch {
                                    symbol: sym.into(),
                                    library: lib_name.clone(),
                                    expected: ty.to_string(),
                                    found: found.to_string(),
                                });
                            }
                            _ => ImportPlan::Tag(sym.into(), ty.clone()),
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
            ImportPlan::LibFunc {
                symbol,
                lib,
                export,
                ty,
            } => {
                if *lib < self.libs.len() {
                    Extern::Func(self.libs[*lib].instance.get_func(&mut *ctx, export)?)
                } else {
                    // Defined by a library instantiated later (a cycle, or
                    // the main program overriding a library's function):
                    // bind on first call, checking the signature.
                    Extern::Func(lazy_stub(
                        ctx,
                        self.live.clone(),
                        Target {
                            lib: *lib,
                            export: export.clone(),
                            symbol: symbol.clone(),
                            needed_by: lib_name.to_string(),
                        },
                        ty.clone(),
                    ))
                }
            }
            ImportPlan::Tag(name, _) => match self.tags.get(name) {
                Some(t) => Extern::Tag(t.clone()),
                None => {
                    return Err(Error::UndefinedSymbol {
                        symbol: format!("env.{name}"),
                        library: lib_name.to_string(),
                    });
                }
            },
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
        global: bool,
    ) -> Result<(), Error> {
        let snapshot = (
            self.data.clone(),
            self.funcs.clone(),
            self.slots.clone(),
            self.by_name.clone(),
            self.by_path.clone(),
            self.tags.clone(),
            self.libs.len(),
        );
        let globals: Vec<bool> = plan
            .local_deps
            .iter()
            .map(|id| self.libs[*id].global)
            .collect();
        let result = self.commit_inner(ctx, plan, global);
        if result.is_err() {
            let (data, funcs, slots, by_name, by_path, tags, n) = snapshot;
            self.data = data;
            self.funcs = funcs;
            self.slots = slots;
            self.by_name = by_name;
            self.by_path = by_path;
            self.tags = tags;
            self.libs.truncate(n);
            for (id, g) in plan.local_deps.iter().zip(globals) {
                self.libs[*id].global = g;
            }
            let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
            live.retain(|id, _| *id < n);
        }
        result
    }

    fn commit_inner(
        &mut self,
        ctx: &mut impl AsContextMut<Backend = B, Data = T>,
        plan: &mut Plan<B>,
        global: bool,
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
        // The heap is the linker's whatever the load's flags say.
        for sym in ["__heap_base", "__heap_end"] {
            if let Some(v) = plan.data.remove(sym) {
                self.data.insert(sym.into(), v);
            }
        }
        if global {
            self.data.extend(plan.data.drain());
            self.funcs.extend(plan.funcs.drain());
            for id in &plan.local_deps {
                self.libs[*id].global = true;
            }
        }
        self.slots.extend(plan.slots.drain());
        // Host functions that got a slot.
        for (slot, def) in &plan.fills {
            if let FuncDef::Host(_) = def {
                let f = self.resolve_func(ctx, def)?;
                self.table
                    .set(&mut *ctx, u64::from(*slot), Val::FuncRef(Some(f)))?;
            }
        }
        // Tags imported for the first time (two modules of one load that
        // import a name with different types: the second does not link).
        for p in &plan.pending {
            for ip in &p.imports {
                if let ImportPlan::Tag(name, ty) = ip
                    && !self.tags.contains_key(name)
                {
                    let tag = Tag::new(&mut *ctx, ty).map_err(|source| Error::Library {
                        library: p.name.clone(),
                        source,
                    })?;
                    self.tags.insert(name.clone(), tag);
                }
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
            if let Some(path) = &p.path {
                self.by_path.insert(path.clone(), id);
            }
            // Publish its instance for stubs and fill the slots it owns.
            self.live
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, instance.clone());
            self.libs.push(Library {
                name: p.name,
                path: p.path,
                memory_base: p.memory_base,
                table_base: p.table_base,
                facts: p.facts,
                instance,
                needed,
                global,
                opens: 0,
            });
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
        // Other names of the same files.
        for (alias, canonical) in std::mem::take(&mut plan.aliases) {
            if let Some(id) = self.by_name.get(&canonical).copied() {
                self.by_name.insert(alias, id);
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
        // Relocations (unless the start function was the relocation
        // function itself), then constructors, dependencies first.
        for id in first..self.libs.len() {
            if !self.libs[id].facts.relocs_run_by_start {
                self.call_if_exported(ctx, id, "__wasm_apply_data_relocs")?;
            }
        }
        // A command's `_start` runs its own constructors (the WASI
        // application ABI; wasi-libc's crt1 calls `__wasm_call_ctors`), so
        // they are not run here too.
        for id in first..self.libs.len() {
            if self.libs[id].facts.func_exports_start {
                continue;
            }
            if !self.call_if_exported(ctx, id, "__wasm_call_ctors")? {
                self.call_if_exported(ctx, id, "_initialize")?;
            }
        }
        Ok(())
    }

    /// Runs a loaded command's `_start` (a dynamically linked WASI program,
    /// say) and gives its exit status: 0 when `_start` returns, the code of
    /// `proc_exit` ([`anywasm_core::Error::Exit`]) otherwise. A WASI host
    /// must first point WASI at the shared memory, which the program
    /// imports instead of exporting (`WasiCtx::set_memory(dl.memory().clone())`).
    pub fn run_start(
        &self,
        mut ctx: impl AsContextMut<Backend = B, Data = T>,
        program: LibraryId,
    ) -> Result<i32, Error> {
        let lib = self
            .libs
            .get(program.0)
            .ok_or_else(|| Error::NoSuchSymbol {
                symbol: "_start".into(),
                scope: format!("library {}, which is not loaded", program.0),
            })?;
        let wrap = |source| Error::Library {
            library: lib.name.clone(),
            source,
        };
        if !lib.facts.func_exports_start {
            return Err(Error::NoSuchSymbol {
                symbol: "_start".into(),
                scope: format!("`{}` (not a command)", lib.name),
            });
        }
        let start = lib.instance.get_func(&mut ctx, "_start").map_err(wrap)?;
        match start.call(&mut ctx, &[], &mut []) {
            Ok(()) => Ok(0),
            Err(anywasm_core::Error::Exit(code)) => Ok(code),
            Err(e) => Err(wrap(e)),
        }
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

/// What a stub binds to on first call.
struct Target {
    lib: usize,
    export: String,
    symbol: String,
    needed_by: String,
}

fn lazy_stub<B: Backend, T: Send + 'static>(
    ctx: &mut impl AsContextMut<Backend = B, Data = T>,
    live: LiveInstances<B>,
    target: Target,
    ty: FuncType,
) -> Func<B> {
    let bound: Arc<OnceLock<Func<B>>> = Arc::new(OnceLock::new());
    let expected = ty.clone();
    Func::new(&mut *ctx, ty, move |mut caller, params, results| {
        let f = match bound.get() {
            Some(f) => f.clone(),
            None => {
                let Target {
                    lib,
                    export,
                    symbol,
                    needed_by,
                } = &target;
                let instance = live
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(lib)
                    .cloned()
                    .ok_or_else(|| {
                        anywasm_core::Error::host_msg(format!(
                            "symbol `{symbol}` needed by `{needed_by}` is not loaded yet"
                        ))
                    })?;
                let f = instance.get_func(&mut caller, export)?;
                let found = f.ty(&caller)?;
                if found != expected {
                    return Err(anywasm_core::Error::host_msg(format!(
                        "symbol `{symbol}` needed by `{needed_by}` as {expected} is defined as {found}"
                    )));
                }
                let _ = bound.set(f.clone());
                f
            }
        };
        f.call(&mut caller, params, results)
    })
}
