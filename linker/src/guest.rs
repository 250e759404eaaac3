//! `dlopen` / `dlsym` / `dlclose` / `dlerror` as host imports, so a C
//! program built against `<dlfcn.h>` declarations can load libraries itself.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use anywasm_core::{Backend, Caller, FuncType, Linker, Memory, Store, Val, ValType};

use crate::Error;
use crate::loader::{DynamicLinker, Handle, LinkerConfig, OpenFlags, Symbol};

/// A [`DynamicLinker`] shared between the host and the `dl*` functions its
/// guests call; see [`DynamicLinker::with_guest_dl`].
pub type SharedLinker<B, T> = Arc<Mutex<DynamicLinker<B, T>>>;

/// What the guest reads from `dlerror`: the error without the host's
/// directories (the search path is the guest's whole world, so where it is
/// on the host is none of its business).
fn guest_message(e: &Error) -> String {
    match e {
        Error::NotFound {
            library, needed_by, ..
        } => format!("library `{library}` needed by {needed_by} was not found"),
        Error::Io { path, source } => format!(
            "cannot read `{}`: {source}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        e => e.to_string(),
    }
}

/// The longest library or symbol name a guest may pass, NUL included.
const MAX_NAME: usize = 4096;
/// Bytes reserved in the shared memory for the message `dlerror` returns.
const ERROR_BUFFER: u32 = 256;

struct GuestDl<B: Backend, T: Send + 'static> {
    linker: OnceLock<Weak<Mutex<DynamicLinker<B, T>>>>,
    /// What `dlerror` returns next; cleared when read.
    error: Mutex<Option<String>>,
    /// Where `dlerror`'s message is written in the shared memory.
    error_buffer: OnceLock<u32>,
    memory: OnceLock<Memory<B>>,
}

impl<B: Backend, T: Send + 'static> GuestDl<B, T> {
    fn fail(&self, message: String) -> i32 {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
        0
    }

    /// Runs `f` with the linker; a failure, or a busy linker (a library's
    /// constructor calling `dlopen` while that library is being loaded),
    /// gives NULL and a `dlerror` message starting with `call`.
    fn with_linker(
        &self,
        call: &str,
        f: impl FnOnce(&mut DynamicLinker<B, T>) -> Result<i32, String>,
    ) -> i32 {
        let Some(shared) = self.linker.get().and_then(Weak::upgrade) else {
            return self.fail(format!("{call}: the dynamic linker is gone"));
        };
        let Ok(mut linker) = shared.try_lock() else {
            return self.fail(format!(
                "{call}: the dynamic linker is busy (called from a constructor of a library \
                 that is being loaded)"
            ));
        };
        match f(&mut linker) {
            Ok(v) => v,
            Err(message) => self.fail(format!("{call}: {message}")),
        }
    }

    /// `c_str`, with NULL allowed (`None`).
    fn c_str_or_null(
        &self,
        ctx: &mut Caller<'_, B, T>,
        ptr: i32,
    ) -> Result<Option<String>, String> {
        if ptr == 0 {
            return Ok(None);
        }
        self.c_str(ctx, ptr).map(Some)
    }

    /// A NUL-terminated string from the shared memory.
    fn c_str(&self, ctx: &mut Caller<'_, B, T>, ptr: i32) -> Result<String, String> {
        let memory = self.memory.get().ok_or("the shared memory is not set up")?;
        let start = ptr as u32 as usize;
        if start == 0 {
            return Err("NULL name".into());
        }
        let data = memory.data(ctx).map_err(|e| e.to_string())?;
        let end = data.len().min(start.saturating_add(MAX_NAME));
        let bytes = data
            .get(start..end)
            .ok_or_else(|| format!("name pointer {start:#x} is outside memory"))?;
        let len = bytes.iter().position(|b| *b == 0).ok_or_else(|| {
            format!("name at {start:#x} is not NUL-terminated within {MAX_NAME} bytes")
        })?;
        String::from_utf8(bytes[..len].to_vec())
            .map_err(|_| format!("name at {start:#x} is not UTF-8"))
    }
}

impl<B: Backend, T: Send + 'static> DynamicLinker<B, T> {
    /// Like [`new`](Self::new), and also gives the libraries and main
    /// programs it loads `dlopen`, `dlsym`, `dlclose` and `dlerror` as
    /// imports from `env`, with the C signatures of `<dlfcn.h>` on wasm32:
    ///
    /// - `void *dlopen(const char *file, int mode)`: loads `file` (and what
    ///   it needs) like [`dlopen_with`](Self::dlopen_with), with the mode's
    ///   meaning given at [`OpenFlags`] (`RTLD_LOCAL` unless `RTLD_GLOBAL`,
    ///   as in C; binding is always immediate). `dlopen(NULL, mode)` is the
    ///   global namespace. The same library gives the same handle. NULL on
    ///   failure.
    /// - `void *dlsym(void *handle, const char *name)`: a function pointer
    ///   (the same table index every module holds for the function) or a
    ///   data address; `RTLD_DEFAULT` (NULL) searches the global namespace.
    ///   NULL when not found.
    /// - `int dlclose(void *handle)`: 0, or non-zero for a bad handle.
    /// - `char *dlerror(void)`: the last failure's message (in a buffer the
    ///   linker reserves in the shared memory), or NULL; reading clears it.
    ///   Messages name libraries as the program asked for them, never the
    ///   host directories of the search path.
    ///
    /// The linker is returned shared, because the guest's calls need it
    /// while the host holds it too. Do not keep it locked while calling
    /// into the guest: a guest `dlopen` would then fail with "busy".
    ///
    /// ```
    /// # use anywasm_core::{Backend, Linker, Store};
    /// # use anywasm_linker::{DynamicLinker, LinkerConfig};
    /// # fn demo<B: Backend>(store: &mut Store<B, ()>) -> Result<(), anywasm_linker::Error> {
    /// let dl = DynamicLinker::with_guest_dl(store, LinkerConfig::new().search_dir("libs"), Linker::new())?;
    /// // Load the main program (locks, then unlocks at the end of the statement)...
    /// let main = dl.lock().unwrap().func(&mut *store, "main");
    /// // ...and call it without holding the lock, so it may dlopen.
    /// # let _ = main; Ok(()) }
    /// ```
    pub fn with_guest_dl(
        store: &mut Store<B, T>,
        config: LinkerConfig,
        mut host: Linker<B, T>,
    ) -> Result<SharedLinker<B, T>, Error> {
        let state = Arc::new(GuestDl::<B, T> {
            linker: OnceLock::new(),
            error: Mutex::new(None),
            error_buffer: OnceLock::new(),
            memory: OnceLock::new(),
        });
        let ptr = || ValType::I32;
        let s = state.clone();
        host.func_new(
            "env",
            "dlopen",
            FuncType::new([ptr(), ValType::I32], [ptr()]),
            move |mut caller, args, results| {
                results[0] = Val::I32(s.with_linker("dlopen", |dl| {
                    let name = s.c_str_or_null(&mut caller, args[0].as_i32().unwrap_or(0))?;
                    let flags = OpenFlags::from_mode(args[1].as_i32().unwrap_or(0))?;
                    let h = dl
                        .dlopen_with(&mut caller, name.as_deref(), flags)
                        .map_err(|e| guest_message(&e))?;
                    Ok(h.0 as i32 + 1)
                }));
                Ok(())
            },
        )?;
        let s = state.clone();
        host.func_new(
            "env",
            "dlsym",
            FuncType::new([ptr(), ptr()], [ptr()]),
            move |mut caller, args, results| {
                let handle = args[0].as_i32().unwrap_or(0);
                results[0] = Val::I32(s.with_linker("dlsym", |dl| {
                    let name = s.c_str(&mut caller, args[1].as_i32().unwrap_or(0))?;
                    let found = if handle == 0 {
                        dl.lookup(&mut caller, &name)
                    } else {
                        dl.dlsym(&mut caller, Handle(handle as u32 - 1), &name)
                    };
                    match found.map_err(|e| guest_message(&e))? {
                        Symbol::Func { table_index, .. } => Ok(table_index as i32),
                        Symbol::Data { address } => Ok(address as i32),
                    }
                }));
                Ok(())
            },
        )?;
        let s = state.clone();
        host.func_new(
            "env",
            "dlclose",
            FuncType::new([ptr()], [ValType::I32]),
            move |_caller, args, results| {
                let handle = args[0].as_i32().unwrap_or(0);
                // `with_linker` gives 0 for a failure; dlclose's C result is
                // 0 for success.
                let closed = s.with_linker("dlclose", |dl| {
                    if handle == 0 {
                        return Err("NULL handle".into());
                    }
                    dl.dlclose(Handle(handle as u32 - 1))
                        .map(|()| 1)
                        .map_err(|e| guest_message(&e))
                });
                results[0] = Val::I32(if closed == 1 { 0 } else { -1 });
                Ok(())
            },
        )?;
        let s = state.clone();
        host.func_new(
            "env",
            "dlerror",
            FuncType::new([], [ptr()]),
            move |mut caller, _args, results| {
                let message = s.error.lock().unwrap_or_else(|e| e.into_inner()).take();
                results[0] = Val::I32(0);
                let (Some(message), Some(buffer), Some(memory)) =
                    (message, s.error_buffer.get(), s.memory.get())
                else {
                    return Ok(());
                };
                // Truncated on a character boundary to fit, NUL-terminated.
                let mut end = message.len().min(ERROR_BUFFER as usize - 1);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                let mut bytes = message.as_bytes()[..end].to_vec();
                bytes.push(0);
                memory.write(&mut caller, u64::from(*buffer), &bytes)?;
                results[0] = Val::I32(*buffer as i32);
                Ok(())
            },
        )?;
        let mut linker = DynamicLinker::new(store, config, host)?;
        let buffer = linker.reserve(&mut *store, ERROR_BUFFER)?;
        let _ = state.error_buffer.set(buffer);
        let _ = state.memory.set(linker.memory().clone());
        let shared = Arc::new(Mutex::new(linker));
        let _ = state.linker.set(Arc::downgrade(&shared));
        Ok(shared)
    }
}
