//! # anywasm-linker
//!
//! Run-time dynamic linking of WebAssembly shared libraries on every anywasm
//! backend: the tool-conventions `dylink.0` format that clang/wasm-ld
//! (`-fPIC`, `-shared`, `-pie`) and emscripten produce, with `dlopen` /
//! `dlsym` / `dlclose`, and the combination of several standalone
//! position-independent modules in one shared memory.
//!
//! Everything is written on the core API (host-created memory, a growable
//! funcref table, mutable globals, run-time-typed host functions), so it
//! behaves the same on wasmtime, wasmi and wasmer.
//!
//! ```
//! use anywasm_core::{Engine, Linker, Store};
//! use anywasm_linker::{DynamicLinker, LinkerConfig, Symbol};
//!
//! # fn main() -> Result<(), anywasm_linker::Error> {
//! let engine = Engine::<anywasm::Wasmi>::default_config()?;
//! let mut store = Store::new(&engine, ());
//! let mut dl = DynamicLinker::new(&mut store, LinkerConfig::new(), Linker::new())?;
//! // A library: `answer()` reads its own data at `__memory_base`.
//! let lib = wat::parse_str(r#"(module
//!     (@dylink.0 (mem-info (memory 4 2)))
//!     (import "env" "memory" (memory 0))
//!     (import "env" "__memory_base" (global $mb i32))
//!     (data (global.get $mb) "\2a\00\00\00")
//!     (func (export "answer") (result i32) (i32.load (global.get $mb))))"#).unwrap();
//! dl.add_library_bytes("libanswer.so", lib);
//!
//! let handle = dl.dlopen(&mut store, "libanswer.so")?;
//! let Symbol::Func { func, table_index } = dl.dlsym(&mut store, handle, "answer")? else { panic!() };
//! let answer = func.typed::<(), i32>(&store)?.call(&mut store, ())?;
//! assert_eq!(answer, 42);
//! assert!(table_index > 0); // its function pointer, the same in every module
//! # Ok(()) }
//! ```
//!
//! ## What the loader does
//! 1. Reads `dylink.0` ([`Dylink::parse`]) and refuses modules without it.
//! 2. Finds needed libraries in the configured search path (or among bytes
//!    given with [`DynamicLinker::add_library_bytes`]), each name once, and
//!    orders them dependencies first. Names with `/`, `..` or NUL are
//!    refused unless they resolve inside the search path.
//! 3. Lays the libraries out in the shared memory and table at their
//!    required alignment (after everything loaded before, after the heap,
//!    and after any memory the program grew since), then resolves every
//!    `GOT.mem.*` / `GOT.func.*`
//!    import and every `env.*` function **before instantiating anything**:
//!    an undefined symbol is an error naming it and the library that needs
//!    it, and nothing is loaded. Undefined weak symbols resolve to 0.
//! 4. Instantiates dependencies first. Because the GOT is already filled,
//!    LLVM's relocation code sees final addresses: the exported
//!    `__wasm_apply_data_relocs` is called after instantiation unless it is
//!    the start function (LLVM 14 runs it from there); then constructors
//!    run, dependencies first.
//!
//! Symbols resolve as in ELF: host functions first (they interpose, like a
//! preloaded library), then the linker's own symbols (`__heap_base`,
//! `__heap_end`, `__stack_low`, `__stack_high`), then the global
//! namespace — each load's root (the main program) before what it needs,
//! breadth first, earlier loads before later ones; the first definition
//! wins, so a main program can replace a library's `malloc`. Each function
//! gets exactly one table slot, so function pointers compare equal across
//! modules. Circular dependencies, and libraries calling a main program
//! instantiated after them, are bound through stubs that resolve on first
//! call and check the signature.
//!
//! The first load lays out the heap: `__heap_base` after the libraries,
//! `__heap_end` at the end of the memory's last page (what wasi-libc's
//! `malloc` reads); the program grows the memory beyond it. A file is one
//! library whatever name reaches it (by canonical path), and
//! [`DynamicLinker::dlopen_with`] takes the `RTLD_*` flags
//! ([`OpenFlags`]): `RTLD_LOCAL` libraries stay out of the global
//! namespace, each library has one counted handle, `dlopen(NULL)` is
//! [`Handle::GLOBAL`]. A module with a memory of its own is refused: every
//! module must import the shared `env.memory`.
//!
//! Side modules from clang/wasm-ld and from Emscripten (`emcc
//! -sSIDE_MODULE=1`, C and C++) are tested. Emscripten *main* modules are
//! not supported: they import `env._dlopen_js`/`env._dlsym_js`, the entry
//! points of Emscripten's JavaScript loader, which work on that loader's
//! own records in memory.
//!
//! Guests can load libraries themselves: [`DynamicLinker::with_guest_dl`]
//! gives them `dlopen`, `dlsym`, `dlclose` and `dlerror` as `env` imports
//! with the `<dlfcn.h>` signatures.
//!
//! Thread-local storage (`tls` symbols) and shared (threads) memories are
//! refused with [`Error::Unsupported`]. `dlclose` invalidates the handle but
//! keeps the code and data loaded: no engine here can unload part of a
//! store, and keeping it is what makes closing safe.

mod combine;
mod dylink;
mod guest;
mod loader;

use std::path::PathBuf;

pub use combine::{Layout, ModuleLayout, combine};
pub use dylink::{Dylink, ImportInfo, SymbolInfo};
pub use guest::SharedLinker;
pub use loader::{
    DynamicLinker, Handle, Library, LibraryId, LinkerConfig, OpenFlags, SharedModules, Symbol,
};

/// What can go wrong while loading and linking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The module has no `dylink.0` section.
    #[error(
        "`{library}` is not a dynamic library: it has no `dylink.0` section (build it with -fPIC and -shared or -pie)"
    )]
    NotALibrary {
        /// The library's name.
        library: String,
    },
    /// The module or its `dylink.0` section cannot be read.
    #[error("`{library}` is malformed: {message}")]
    Malformed {
        /// The library's name.
        library: String,
        /// What is wrong.
        message: String,
    },
    /// A needed library is in none of the searched places.
    #[error("library `{library}` needed by {needed_by} was not found (searched: {searched})")]
    NotFound {
        /// The library's name.
        library: String,
        /// Who needs it (`the host` for a direct load).
        needed_by: String,
        /// Where it was looked for.
        searched: String,
    },
    /// A library name that could reach outside the search path.
    #[error("library name `{name}` is refused: {reason}")]
    RefusedName {
        /// The name as given.
        name: String,
        /// Why.
        reason: String,
    },
    /// A symbol no library or host function defines, and not weak.
    #[error("undefined symbol `{symbol}` needed by `{library}`")]
    UndefinedSymbol {
        /// The symbol.
        symbol: String,
        /// The library that needs it.
        library: String,
    },
    /// A function symbol whose definition has another signature.
    #[error("symbol `{symbol}` needed by `{library}` as {expected} is defined as {found}")]
    SignatureMismatch {
        /// The symbol.
        symbol: String,
        /// The library that needs it.
        library: String,
        /// The signature the library imports.
        expected: String,
        /// The signature of the definition.
        found: String,
    },
    /// A feature of the library the linker does not support.
    #[error("`{library}` uses {feature}, which anywasm-linker does not support")]
    Unsupported {
        /// The library's name.
        library: String,
        /// The feature.
        feature: String,
    },
    /// The layout needs more memory or table space than allowed.
    #[error("loading needs {needed} {what}, more than the limit of {limit}")]
    Limit {
        /// `pages of memory` or `table slots`.
        what: &'static str,
        /// What the layout needs.
        needed: u64,
        /// The configured limit.
        limit: u64,
    },
    /// `RTLD_NOLOAD`: the library is not loaded.
    #[error("library `{library}` is not loaded (RTLD_NOLOAD)")]
    NotLoaded {
        /// The library's name.
        library: String,
    },
    /// A handle that was closed or never returned by `dlopen`.
    #[error("invalid library handle {0}: closed or never opened")]
    InvalidHandle(u32),
    /// `dlsym` found nothing under that name.
    #[error("no symbol `{symbol}` in {scope}")]
    NoSuchSymbol {
        /// The symbol.
        symbol: String,
        /// Where it was looked for.
        scope: String,
    },
    /// A library file that cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The engine refused a library (compile, link, trap in a constructor).
    #[error("`{library}`: {source}")]
    Library {
        /// The library's name.
        library: String,
        /// The engine's error.
        #[source]
        source: anywasm_core::Error,
    },
    /// An engine error outside any one library.
    #[error(transparent)]
    Core(#[from] anywasm_core::Error),
}
