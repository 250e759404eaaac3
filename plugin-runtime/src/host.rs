//! Host functions plugins can import: the ABI's own, the built-ins, and the
//! application's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anywasm::{Backend, Caller, Error, FuncType, Linker, Memory, Val, ValType};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{STATUS_ERROR, STATUS_NOT_FOUND, STATUS_OK, pending};
use crate::manifest::{Format, Limits};

/// A number crossing a numeric host function (no serialisation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An `i32`.
    I32(i32),
    /// An `i64`.
    I64(i64),
    /// An `f32`.
    F32(f32),
    /// An `f64`.
    F64(f64),
}

impl Number {
    pub(crate) fn ty(self) -> ValType {
        match self {
            Number::I32(_) => ValType::I32,
            Number::I64(_) => ValType::I64,
            Number::F32(_) => ValType::F32,
            Number::F64(_) => ValType::F64,
        }
    }

    pub(crate) fn from_val<B: Backend>(v: &Val<B>) -> Option<Self> {
        Some(match v {
            Val::I32(x) => Number::I32(*x),
            Val::I64(x) => Number::I64(*x),
            Val::F32(x) => Number::F32(f32::from_bits(*x)),
            Val::F64(x) => Number::F64(f64::from_bits(*x)),
            _ => return None,
        })
    }

    /// Writes a numeric host function's results into `r`, checked against
    /// its type.
    pub(crate) fn write_results<B: Backend>(
        out: Vec<Number>,
        ty: &FuncType,
        r: &mut [Val<B>],
    ) -> Result<(), String> {
        if out.len() != r.len() || out.iter().zip(ty.results()).any(|(o, t)| o.ty() != *t) {
            return Err(format!("returned {out:?}, expected {:?}", ty.results()));
        }
        for (slot, v) in r.iter_mut().zip(out) {
            *slot = v.into_val();
        }
        Ok(())
    }

    pub(crate) fn into_val<B: Backend>(self) -> Val<B> {
        match self {
            Number::I32(x) => Val::I32(x),
            Number::I64(x) => Val::I64(x),
            Number::F32(x) => Val::f32(x),
            Number::F64(x) => Val::f64(x),
        }
    }
}

/// What a host function knows about the plugin that called it.
#[derive(Debug, Clone)]
pub struct HostContext {
    /// The plugin's id.
    pub plugin: Arc<str>,
    /// The plugin's configuration.
    pub config: Arc<BTreeMap<String, String>>,
}

type BytesFn = Arc<dyn Fn(&HostContext, &[u8], Format) -> Result<Vec<u8>, String> + Send + Sync>;
/// An async host function's future: the bytes for the guest, or its error.
#[cfg(feature = "async")]
pub(crate) type BytesFuture = anywasm::BoxFuture<'static, Result<Vec<u8>, String>>;
#[cfg(feature = "async")]
type AsyncBytesFn = Arc<dyn Fn(HostContext, Vec<u8>, Format) -> BytesFuture + Send + Sync>;
type NumericFn = Arc<dyn Fn(&HostContext, &[Number]) -> Result<Vec<Number>, String> + Send + Sync>;
pub(crate) type ExtismFn = Arc<
    dyn Fn(&mut crate::extism::ExtismCurrent<'_>, &[Number]) -> Result<Vec<Number>, String>
        + Send
        + Sync,
>;
type JsonHandler =
    Arc<dyn Fn(&HostContext, serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync>;
/// Receives the plugins' log lines: plugin id, level (0 error … 4 trace), text.
pub type LogFn = Arc<dyn Fn(&str, u32, &str) + Send + Sync>;
/// Answers a waPC guest's `__host_call`: context, binding, namespace,
/// operation, payload.
pub(crate) type WapcFn =
    Arc<dyn Fn(&HostContext, &str, &str, &str, &[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// The application's host functions, registered once on the runtime
/// (see [`PluginRuntimeBuilder`](crate::PluginRuntimeBuilder)).
#[derive(Clone, Default)]
pub struct HostFunctions {
    pub(crate) bytes: HashMap<String, BytesFn>,
    #[cfg(feature = "async")]
    pub(crate) bytes_async: HashMap<String, AsyncBytesFn>,
    pub(crate) numeric: HashMap<String, (FuncType, NumericFn)>,
    pub(crate) extism: HashMap<String, (FuncType, ExtismFn)>,
    pub(crate) json: HashMap<String, JsonHandler>,
    pub(crate) log: Option<LogFn>,
    pub(crate) wapc: Option<WapcFn>,
}

impl std::fmt::Debug for HostFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFunctions")
            .field("bytes", &self.bytes.keys().collect::<Vec<_>>())
            .field("numeric", &self.numeric.keys().collect::<Vec<_>>())
            .field("extism", &self.extism.keys().collect::<Vec<_>>())
            .field("json", &self.json.keys().collect::<Vec<_>>())
            .finish()
    }
}

pub(crate) fn encode<T: Serialize>(format: Format, value: &T) -> Result<Vec<u8>, String> {
    match format.resolve() {
        Format::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        Format::MsgPack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        _ => Err("the plugin uses raw bytes; use call_raw".into()),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, String> {
    match format.resolve() {
        Format::Json => serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}")),
        Format::MsgPack => {
            rmp_serde::from_slice(bytes).map_err(|e| format!("invalid MessagePack: {e}"))
        }
        _ => Err("the plugin uses raw bytes; use call_raw".into()),
    }
}

impl HostFunctions {
    /// Registers `host.<name>` taking and returning serde types in the
    /// plugin's format. An `Err` reaches the guest as an error value.
    pub fn register<In, Out, F>(&mut self, name: &str, f: F)
    where
        In: DeserializeOwned,
        Out: Serialize,
        F: Fn(&HostContext, In) -> Result<Out, String> + Send + Sync + 'static,
    {
        let wrapped: BytesFn = Arc::new(move |ctx, input, format| {
            let input: In = decode(format, input)?;
            let out = f(ctx, input)?;
            encode(format, &out)
        });
        self.bytes.insert(name.to_string(), wrapped);
    }

    /// Registers an async `host.<name>` taking and returning serde types in
    /// the plugin's format (feature `async`): `f` receives the plugin's
    /// context and the decoded input and returns a future, which may wait
    /// (on I/O, a timer) without blocking the executor. A plugin that
    /// imports one runs only in async calls
    /// ([`Plugin::call_async`](crate::Plugin::call_async); a synchronous
    /// call is [`PluginError::AsyncOnly`](crate::PluginError::AsyncOnly)),
    /// and only on backends with async calls (wasmtime, wasmi: building the
    /// runtime on wasmer is `Unsupported`). An `Err` reaches the guest as
    /// an error value.
    #[cfg(feature = "async")]
    pub fn register_async<In, Out, F, Fut>(&mut self, name: &str, f: F)
    where
        In: DeserializeOwned,
        Out: Serialize,
        F: Fn(HostContext, In) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Out, String>> + Send + 'static,
    {
        let wrapped: AsyncBytesFn = Arc::new(move |ctx, input, format| {
            let input: Result<In, String> = decode(format, &input);
            let future = input.map(|input| f(ctx, input));
            Box::pin(async move {
                let out = future?.await?;
                encode(format, &out)
            })
        });
        self.bytes_async.insert(name.to_string(), wrapped);
    }

    /// Registers an async `host.<name>` taking and returning raw bytes (see
    /// [`register_async`](Self::register_async)).
    #[cfg(feature = "async")]
    pub fn register_bytes_async<F, Fut>(&mut self, name: &str, f: F)
    where
        F: Fn(HostContext, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'static,
    {
        self.bytes_async.insert(
            name.to_string(),
            Arc::new(move |ctx, input, _| Box::pin(f(ctx, input))),
        );
    }

    /// Registers `host.<name>` taking and returning raw bytes.
    pub fn register_bytes<F>(&mut self, name: &str, f: F)
    where
        F: Fn(&HostContext, &[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    {
        self.bytes.insert(
            name.to_string(),
            Arc::new(move |ctx, input, _| f(ctx, input)),
        );
    }

    /// Registers a numeric `host.<name>` with the given parameter and result
    /// types (numbers only): a fast path without serialisation.
    pub fn register_numeric<F>(&mut self, name: &str, params: &[ValType], results: &[ValType], f: F)
    where
        F: Fn(&HostContext, &[Number]) -> Result<Vec<Number>, String> + Send + Sync + 'static,
    {
        let ty = FuncType::new(params.iter().copied(), results.iter().copied());
        self.numeric.insert(name.to_string(), (ty, Arc::new(f)));
    }

    /// Registers `extism:host/user.<name>` for Extism guests (what Extism's
    /// hosts call a host function), with the given parameter and result
    /// types (numbers; Extism's PDKs pass blocks of the kernel memory as
    /// `i64` handles). The function reads the blocks it is handed and
    /// gives the guest new ones through [`ExtismCurrent`]. An `Err` ends
    /// the guest's call with [`PluginError::Host`](crate::PluginError::Host),
    /// as a failing host function does on Extism's host.
    ///
    /// ```
    /// use anywasm::ValType::I64;
    /// use anywasm_plugin::{Number, PluginRuntime};
    /// let runtime = PluginRuntime::<anywasm::DefaultBackend>::builder()
    ///     .host(|h| {
    ///         // A guest's `EXTISM_IMPORT_USER("shout") ExtismHandle shout(ExtismHandle);`
    ///         h.extism_function("shout", &[I64], &[I64], |plugin, args| {
    ///             let Some(Number::I64(handle)) = args.first() else {
    ///                 return Err("shout takes a handle".into());
    ///             };
    ///             let text = plugin.memory_string(*handle as u64)?;
    ///             let answer = plugin.memory_new((text.to_uppercase() + "!").as_bytes())?;
    ///             Ok(vec![Number::I64(answer as i64)])
    ///         })
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(runtime);
    /// ```
    pub fn extism_function<F>(&mut self, name: &str, params: &[ValType], results: &[ValType], f: F)
    where
        F: Fn(&mut crate::extism::ExtismCurrent<'_>, &[Number]) -> Result<Vec<Number>, String>
            + Send
            + Sync
            + 'static,
    {
        let ty = FuncType::new(params.iter().copied(), results.iter().copied());
        self.extism.insert(name.to_string(), (ty, Arc::new(f)));
    }

    /// Registers a handler for `anywasm.json_execute` requests named `name`.
    pub fn json_handler<F>(&mut self, name: &str, f: F)
    where
        F: Fn(&HostContext, serde_json::Value) -> Result<serde_json::Value, String>
            + Send
            + Sync
            + 'static,
    {
        self.json.insert(name.to_string(), Arc::new(f));
    }

    /// Receives `anywasm.log` lines (and Extism's `log_*`, waPC's
    /// `__console_log`).
    pub fn logger<F>(&mut self, f: F)
    where
        F: Fn(&str, u32, &str) + Send + Sync + 'static,
    {
        self.log = Some(Arc::new(f));
    }

    /// Answers waPC guests' host calls: `(context, binding, namespace,
    /// operation, payload)` gives the response bytes or an error message,
    /// which the guest receives through `__host_error`. Without a handler
    /// every host call of a waPC guest fails with a message saying so.
    ///
    /// ```
    /// use anywasm_plugin::PluginRuntime;
    /// let runtime = PluginRuntime::<anywasm::DefaultBackend>::builder()
    ///     .host(|h| {
    ///         h.wapc_handler(|_ctx, binding, namespace, operation, payload| {
    ///             match (binding, namespace, operation) {
    ///                 ("app", "text", "upper") => Ok(payload.to_ascii_uppercase()),
    ///                 _ => Err(format!("no {binding}/{namespace}/{operation}")),
    ///             }
    ///         })
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(runtime);
    /// ```
    pub fn wapc_handler<F>(&mut self, f: F)
    where
        F: Fn(&HostContext, &str, &str, &str, &[u8]) -> Result<Vec<u8>, String>
            + Send
            + Sync
            + 'static,
    {
        self.wapc = Some(Arc::new(f));
    }
}

/// A plugin's own key/value store, shared by all its instances and kept
/// across reloads: documents by number (`anywasm.store_put` / `store_get`)
/// and values by name (`anywasm.kv_set` / `kv_get` / `kv_delete`), within
/// the manifest's quota of bytes and keys.
#[derive(Debug, Default)]
pub struct KvStore {
    next: i64,
    docs: HashMap<i64, Vec<u8>>,
    named: BTreeMap<Vec<u8>, Vec<u8>>,
    bytes: u64,
}

impl KvStore {
    fn keys(&self) -> u64 {
        (self.docs.len() + self.named.len()) as u64
    }

    /// Whether `add` more bytes and `new_keys` more keys fit the quota.
    fn fits(&self, limits: &Limits, add: u64, new_keys: u64) -> bool {
        limits
            .max_store_bytes
            .is_none_or(|max| self.bytes.saturating_add(add) <= max)
            && limits
                .max_store_keys
                .is_none_or(|max| self.keys() + new_keys <= max)
    }

    /// A value by name.
    pub(crate) fn get_named(&self, key: &[u8]) -> Option<&Vec<u8>> {
        self.named.get(key)
    }

    /// Sets a value by name, replacing any; `false` (and nothing changed)
    /// when it would pass the quota.
    pub(crate) fn set_named(&mut self, limits: &Limits, key: Vec<u8>, value: Vec<u8>) -> bool {
        let old = self
            .named
            .get(&key)
            .map_or(0, |v| (key.len() + v.len()) as u64);
        let new_keys = u64::from(!self.named.contains_key(&key));
        let add = (key.len() + value.len()) as u64;
        if !self.fits(limits, add.saturating_sub(old), new_keys) {
            return false;
        }
        self.bytes = self.bytes - old + add;
        self.named.insert(key, value);
        true
    }

    /// Removes a value by name.
    pub(crate) fn remove_named(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.named.remove(key)?;
        self.bytes -= (key.len() + v.len()) as u64;
        Some(v)
    }
}

/// The data of each plugin instance's store.
pub struct PluginState {
    pub(crate) ctx: HostContext,
    pub(crate) format: Format,
    pub(crate) pending: Option<(i64, Vec<u8>)>,
    pub(crate) guest_error: Option<String>,
    pub(crate) kv: Arc<Mutex<KvStore>>,
    pub(crate) limits: Limits,
    /// The instance's WASI state (empty unless the manifest grants WASI).
    pub(crate) wasi: anywasm_wasi::WasiCtx,
    /// The kernel memory of an Extism guest (unused by others).
    pub(crate) kernel: crate::extism::Kernel,
    /// The call in flight of a waPC guest (unused by others).
    pub(crate) wapc: crate::wapc::WapcState,
    /// What an Extism guest's `http_request` may reach.
    pub(crate) http: Arc<crate::extism::HttpGrant>,
    /// The last HTTP response of an Extism guest.
    pub(crate) http_last: crate::extism::HttpLast,
    /// The plugin, as its reentrancy key (see `host_context`).
    pub(crate) plugin_key: usize,
}

impl PluginState {
    pub(crate) fn new(
        ctx: HostContext,
        format: Format,
        kv: Arc<Mutex<KvStore>>,
        limits: Limits,
        wasi: anywasm_wasi::WasiCtx,
    ) -> Self {
        Self {
            ctx,
            format,
            pending: None,
            guest_error: None,
            kv,
            limits,
            wasi,
            kernel: crate::extism::Kernel::new(
                limits
                    .max_memory_pages
                    .map_or(u64::MAX, |p| p.saturating_mul(65536)),
            ),
            wapc: crate::wapc::WapcState::default(),
            http: crate::extism::HttpGrant::none(),
            http_last: crate::extism::HttpLast::default(),
            plugin_key: 0,
        }
    }

    /// The context for one of the application's host functions, and the
    /// mark that this thread is inside a call of the plugin while it runs,
    /// so that a call back into the plugin is `Reentrant` on whichever
    /// thread the backend runs host functions (the wasmer backend runs an
    /// async call's on a worker thread, not the thread that polls it).
    pub(crate) fn host_context(&self) -> (HostContext, Option<crate::plugin::Inside>) {
        (
            self.ctx.clone(),
            crate::plugin::Inside::enter(self.plugin_key),
        )
    }
}

/// One of the application's host functions returned an error; the call
/// fails with [`PluginError::Host`](crate::PluginError::Host).
#[derive(Debug)]
pub(crate) struct HostFnFailed {
    pub(crate) function: String,
    pub(crate) message: String,
}

impl std::fmt::Display for HostFnFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host function `{}` failed: {}",
            self.function, self.message
        )
    }
}

impl std::error::Error for HostFnFailed {}

/// A guest passed more than a manifest limit allows (a message too long);
/// the call fails with [`PluginError::LimitExceeded`](crate::PluginError::LimitExceeded).
#[derive(Debug)]
pub(crate) struct GuestLimit {
    pub(crate) what: &'static str,
    pub(crate) limit: u64,
}

impl std::fmt::Display for GuestLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} limit of {} was exceeded", self.what, self.limit)
    }
}

impl std::error::Error for GuestLimit {}

/// A message of `len` bytes, or the message-size limit's error.
fn read_message<B: Backend>(
    caller: &mut Caller<'_, B, PluginState>,
    ptr: &Val<B>,
    len: &Val<B>,
) -> Result<String, Error> {
    if let Some(max) = caller.data().limits.max_message_bytes
        && u64::from(arg_u32(len)) > max
    {
        return Err(Error::host(GuestLimit {
            what: "message size",
            limit: max,
        }));
    }
    let bytes = read_guest(caller, ptr, len)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A guest gave the host an unusable pointer or length; fails the call as
/// an ABI violation.
#[derive(Debug)]
pub struct AbiFault(pub String);

impl std::fmt::Display for AbiFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AbiFault {}

fn fault(msg: impl Into<String>) -> Error {
    Error::host(AbiFault(msg.into()))
}

fn memory<B: Backend>(caller: &mut Caller<'_, B, PluginState>) -> Result<Memory<B>, Error> {
    caller
        .get_memory("memory")
        .ok_or_else(|| fault("the plugin exports no `memory`"))
}

fn arg_u32<B: Backend>(v: &Val<B>) -> u32 {
    v.as_i32().unwrap_or(0) as u32
}

fn read_guest<B: Backend>(
    caller: &mut Caller<'_, B, PluginState>,
    ptr: &Val<B>,
    len: &Val<B>,
) -> Result<Vec<u8>, Error> {
    let (ptr, len) = (arg_u32(ptr), arg_u32(len));
    let mem = memory(caller)?;
    mem.read_vec(&*caller, u64::from(ptr), len as usize)
        .map_err(|_| {
            fault(format!(
                "host call with an out-of-range buffer ({len} bytes at {ptr:#x})"
            ))
        })
}

fn set_pending<B: Backend>(
    caller: &mut Caller<'_, B, PluginState>,
    status: i64,
    bytes: Vec<u8>,
) -> Val<B> {
    set_pending_in(caller.data_mut(), status, bytes)
}

fn set_pending_in<B: Backend>(state: &mut PluginState, status: i64, bytes: Vec<u8>) -> Val<B> {
    let r = pending(status, bytes.len());
    state.pending = Some((status, bytes));
    Val::I64(r)
}

fn result_of<B: Backend>(
    caller: &mut Caller<'_, B, PluginState>,
    r: Result<Vec<u8>, String>,
) -> Val<B> {
    result_in(caller.data_mut(), r)
}

fn result_in<B: Backend>(state: &mut PluginState, r: Result<Vec<u8>, String>) -> Val<B> {
    match r {
        Ok(bytes) => set_pending_in(state, STATUS_OK, bytes),
        Err(msg) => set_pending_in(state, STATUS_ERROR, msg.into_bytes()),
    }
}

/// Adds every import a plugin may use to `linker`: the ABI's, the built-ins
/// and the application's. Which of them a plugin may actually import is
/// decided per plugin from its manifest before it is instantiated.
pub(crate) fn define_all<B: Backend>(
    linker: &mut Linker<B, PluginState>,
    host: &HostFunctions,
    async_wasi: bool,
) -> anywasm::Result<()> {
    use ValType::{I32, I64};
    let t = |p: &[ValType], r: &[ValType]| FuncType::new(p.iter().copied(), r.iter().copied());
    // Only plugins whose manifest grants WASI may import it.
    fn wasi(s: &mut PluginState) -> &mut anywasm_wasi::WasiCtx {
        &mut s.wasi
    }
    if async_wasi {
        #[cfg(feature = "async")]
        anywasm_wasi::add_to_linker_async(linker, wasi)?;
    } else {
        anywasm_wasi::add_to_linker(linker, wasi)?;
    }
    crate::extism::define(linker, host)?;
    crate::wapc::define(linker, host)?;

    linker.func_new("anywasm", "error", t(&[I32, I32], &[]), |mut c, p, _| {
        let msg = read_message(&mut c, &p[0], &p[1])?;
        c.data_mut().guest_error = Some(msg);
        Ok(())
    })?;
    let log = host.log.clone();
    linker.func_new(
        "anywasm",
        "log",
        t(&[I32, I32, I32], &[]),
        move |mut c, p, _| {
            let line = read_message(&mut c, &p[1], &p[2])?;
            if let Some(log) = &log {
                log(&c.data().ctx.plugin, arg_u32(&p[0]), &line);
            }
            Ok(())
        },
    )?;
    linker.func_new(
        "anywasm",
        "config_get",
        t(&[I32, I32], &[I64]),
        |mut c, p, r| {
            let key = read_guest(&mut c, &p[0], &p[1])?;
            let key = String::from_utf8_lossy(&key);
            let value = c.data().ctx.config.get(key.as_ref()).cloned();
            r[0] = match value {
                Some(v) => set_pending(&mut c, STATUS_OK, v.into_bytes()),
                None => set_pending(&mut c, STATUS_NOT_FOUND, Vec::new()),
            };
            Ok(())
        },
    )?;
    linker.func_new("anywasm", "take_result", t(&[I32], &[]), |mut c, p, _| {
        let ptr = arg_u32(&p[0]);
        let Some((_, bytes)) = c.data_mut().pending.take() else {
            return Err(fault("take_result without a pending result"));
        };
        let mem = memory(&mut c)?;
        mem.write(&mut c, u64::from(ptr), &bytes).map_err(|_| {
            fault(format!(
                "take_result into an out-of-range buffer ({} bytes at {ptr:#x})",
                bytes.len()
            ))
        })
    })?;

    // Built-ins.
    linker.func_new("anywasm", "echo", t(&[I32, I32], &[I64]), |mut c, p, r| {
        let bytes = read_guest(&mut c, &p[0], &p[1])?;
        r[0] = set_pending(&mut c, STATUS_OK, bytes);
        Ok(())
    })?;
    linker.func_new(
        "anywasm",
        "calc",
        t(&[I32, I32, I32], &[I32]),
        |_c, p, r| {
            let (a, b) = (arg_u32(&p[0]), arg_u32(&p[1]));
            let v = match arg_u32(&p[2]) {
                0 => a.wrapping_add(b),
                1 => a.wrapping_sub(b),
                2 => a.wrapping_mul(b),
                3 => a.checked_div(b).unwrap_or(0),
                _ => 0,
            };
            r[0] = Val::I32(v as i32);
            Ok(())
        },
    )?;
    let json = host.json.clone();
    linker.func_new(
        "anywasm",
        "json_execute",
        t(&[I32, I32], &[I64]),
        move |mut c, p, r| {
            let req = read_guest(&mut c, &p[0], &p[1])?;
            let (ctx, _inside) = c.data().host_context();
            let result = (|| {
                let req: serde_json::Value = serde_json::from_slice(&req)
                    .map_err(|e| format!("invalid JSON request: {e}"))?;
                let name = req
                    .get("name")
                    .and_then(|n| n.as_str())
                    .ok_or("the request has no \"name\"")?;
                let handler = json
                    .get(name)
                    .ok_or_else(|| format!("no JSON handler named `{name}`"))?;
                let params = req
                    .get("params")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                let resp = handler(&ctx, params)?;
                serde_json::to_vec(&resp).map_err(|e| e.to_string())
            })();
            r[0] = result_of(&mut c, result);
            Ok(())
        },
    )?;
    linker.func_new(
        "anywasm",
        "store_put",
        t(&[I32, I32], &[I64]),
        |mut c, p, r| {
            let limits = c.data().limits;
            let kv = c.data().kv.clone();
            // The quota before the document is read: its length is known.
            if !lock_kv(&kv)?.fits(&limits, u64::from(arg_u32(&p[1])), 1) {
                r[0] = Val::I64(-2);
                return Ok(());
            }
            let doc = read_guest(&mut c, &p[0], &p[1])?;
            if serde_json::from_slice::<serde_json::Value>(&doc).is_err() {
                r[0] = Val::I64(-1);
                return Ok(());
            }
            let mut kv = lock_kv(&kv)?;
            if !kv.fits(&limits, doc.len() as u64, 1) {
                r[0] = Val::I64(-2);
                return Ok(());
            }
            let id = kv.next;
            kv.next += 1;
            kv.bytes += doc.len() as u64;
            kv.docs.insert(id, doc);
            r[0] = Val::I64(id);
            Ok(())
        },
    )?;
    linker.func_new("anywasm", "store_get", t(&[I64], &[I64]), |mut c, p, r| {
        let id = p[0].as_i64().unwrap_or(-1);
        let doc = {
            let kv = c.data().kv.clone();
            let kv = lock_kv(&kv)?;
            kv.docs.get(&id).cloned()
        };
        r[0] = match doc {
            Some(d) => set_pending(&mut c, STATUS_OK, d),
            None => set_pending(&mut c, STATUS_NOT_FOUND, Vec::new()),
        };
        Ok(())
    })?;

    // Values by name: always available (the store is the plugin's own and
    // bounded by its quota).
    linker.func_new(
        "anywasm",
        "kv_set",
        t(&[I32, I32, I32, I32], &[I32]),
        |mut c, p, r| {
            let limits = c.data().limits;
            let kv = c.data().kv.clone();
            let (klen, vlen) = (u64::from(arg_u32(&p[1])), u64::from(arg_u32(&p[3])));
            if !lock_kv(&kv)?.fits(&limits, klen + vlen, 0) {
                r[0] = Val::I32(KV_QUOTA);
                return Ok(());
            }
            let key = read_guest(&mut c, &p[0], &p[1])?;
            let value = read_guest(&mut c, &p[2], &p[3])?;
            let stored = lock_kv(&kv)?.set_named(&limits, key, value);
            r[0] = Val::I32(if stored { 0 } else { KV_QUOTA });
            Ok(())
        },
    )?;
    linker.func_new(
        "anywasm",
        "kv_get",
        t(&[I32, I32], &[I64]),
        |mut c, p, r| {
            let key = read_guest(&mut c, &p[0], &p[1])?;
            let value = lock_kv(&c.data().kv.clone())?.get_named(&key).cloned();
            r[0] = match value {
                Some(v) => set_pending(&mut c, STATUS_OK, v),
                None => set_pending(&mut c, STATUS_NOT_FOUND, Vec::new()),
            };
            Ok(())
        },
    )?;
    linker.func_new(
        "anywasm",
        "kv_delete",
        t(&[I32, I32], &[I32]),
        |mut c, p, r| {
            let key = read_guest(&mut c, &p[0], &p[1])?;
            let kv = c.data().kv.clone();
            let mut kv = lock_kv(&kv)?;
            r[0] = Val::I32(match kv.remove_named(&key) {
                Some(_) => 0,
                None => STATUS_NOT_FOUND as i32,
            });
            Ok(())
        },
    )?;

    // The application's functions.
    for (name, f) in &host.bytes {
        let f = f.clone();
        linker.func_new("host", name, t(&[I32, I32], &[I64]), move |mut c, p, r| {
            let input = read_guest(&mut c, &p[0], &p[1])?;
            let ((ctx, _inside), format) = (c.data().host_context(), c.data().format);
            let result = f(&ctx, &input, format);
            r[0] = result_of(&mut c, result);
            Ok(())
        })?;
    }
    #[cfg(feature = "async")]
    for (name, f) in &host.bytes_async {
        let f = f.clone();
        let ty = t(&[I32, I32], &[I64]);
        linker.func_new_async("host", name, ty, move |mut c, p| {
            // The prologue reads the input; the guest's buffer is not
            // touched again until the result waits in the store's data.
            let input = read_guest(&mut c, &p[0], &p[1])?;
            let ((ctx, _inside), format) = (c.data().host_context(), c.data().format);
            let future = f(ctx, input, format);
            Ok(Box::pin(async move {
                let result = future.await;
                Ok(anywasm::AsyncReturn::with_store(move |mut store, r| {
                    r[0] = result_in(store.data_mut(), result);
                    Ok(())
                }))
            }) as anywasm::HostFuture<B, PluginState>)
        })?;
    }
    for (name, (ty, f)) in &host.numeric {
        let f = f.clone();
        let want = ty.clone();
        let function = name.clone();
        linker.func_new("host", name, ty.clone(), move |c, p, r| {
            let args: Vec<Number> = p.iter().filter_map(Number::from_val).collect();
            let (ctx, _inside) = c.data().host_context();
            let failed = |message: String| {
                Error::host(HostFnFailed {
                    function: function.clone(),
                    message,
                })
            };
            // A numeric function has no way to hand the guest an error: its
            // failure ends the call with `PluginError::Host`.
            let out = f(&ctx, &args).map_err(failed)?;
            Number::write_results(out, &want, r).map_err(failed)
        })?;
    }
    Ok(())
}

/// `kv_set`'s answer when the quota would be exceeded.
const KV_QUOTA: i32 = 3;

pub(crate) fn lock_kv(kv: &Mutex<KvStore>) -> Result<std::sync::MutexGuard<'_, KvStore>, Error> {
    kv.lock()
        .map_err(|_| Error::host_msg("the plugin's store is poisoned"))
}

/// The ABI imports every plugin may use without a grant.
pub(crate) fn always_allowed(module: &str, name: &str) -> bool {
    module == "anywasm"
        && matches!(
            name,
            "error" | "log" | "config_get" | "take_result" | "kv_set" | "kv_get" | "kv_delete"
        )
}
