//! The Extism guest ABI: the `extism:host/env` imports that Extism's PDKs
//! use, on a kernel memory of each instance, so that plugins written for
//! Extism run unchanged on every backend.
//!
//! As in Extism's own host, the kernel memory is the memory of a small wasm
//! module instantiated beside the guest (`extism_kernel.wat`). The calls a
//! guest makes per byte or per word (`load_*`, `store_*`, `input_*`) are
//! bound to that module's exports, so they run as wasm-to-wasm calls; the
//! rest (allocation, handles, output, errors, config, vars, logs, HTTP) is
//! the host's, with the same observable rules as Extism:
//! - `alloc(n)` gives the offset of `n` zeroed bytes, 0 for `n == 0` or
//!   when the memory limit would be passed; `free` makes a block reusable;
//!   `length`/`length_unsafe` give a live block's length, 0 for anything
//!   else.
//! - `load_*`/`store_*` reach any address below the end of the blocks
//!   handed out; beyond it loads give 0 and stores do nothing (Extism's
//!   bounds-checked kernel behaves the same).
//! - `config_get`, `var_get`, `var_set` and `log_*` take ownership of the
//!   handles they are given (they free them), as in Extism.
//! - Before each call the blocks are forgotten, the input is placed in a
//!   new block, and the error and output are unset.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read as _;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anywasm::{
    AsContextMut, Backend, Caller, Engine, Error, Extern, FuncType, Global, Instance, Linker,
    Memory, Module, Val, ValType,
};

use crate::host::{
    AbiFault, HostContext, HostFnFailed, HostFunctions, Number, PluginState, lock_kv,
};
use crate::manifest::Manifest;

/// The module Extism's PDKs import the kernel and host API from.
pub(crate) const ENV: &str = "extism:host/env";
/// The module Extism's PDKs import the application's functions from.
pub(crate) const USER: &str = "extism:host/user";

/// Bytes charged against the limit for each block, besides its data, so
/// that many tiny blocks cannot use unbounded memory.
const BLOCK_OVERHEAD: u64 = 32;
/// The lowest offset given out: 0 means "no block".
const BASE: u64 = 8;
/// The kernel memory is a 32-bit memory.
const KERNEL_MAX: u64 = 1 << 32;
const PAGE: u64 = 65536;

/// The functions of `extism:host/env` that the kernel module exports.
const KERNEL_FUNCS: [&str; 8] = [
    "load_u8",
    "load_u64",
    "store_u8",
    "store_u64",
    "input_length",
    "input_offset",
    "input_load_u8",
    "input_load_u64",
];

static KERNEL_WASM: LazyLock<Result<Vec<u8>, String>> =
    LazyLock::new(|| wat::parse_str(include_str!("extism_kernel.wat")).map_err(|e| e.to_string()));

/// Whether `extism:host/env`.`name` is one the kernel module provides.
pub(crate) fn kernel_provides(module: &str, name: &str) -> bool {
    module == ENV && KERNEL_FUNCS.contains(&name)
}

/// Compiles the kernel module for `engine` (the guest's own engine: a
/// store holds instances of one engine only).
pub(crate) fn compile_kernel<B: Backend>(engine: &Engine<B>) -> anywasm::Result<Module<B>> {
    let wasm = KERNEL_WASM.as_ref().map_err(|message| Error::Wat {
        message: message.clone(),
    })?;
    Module::new(engine, wasm)
}

/// Instantiates the kernel module in `store`, binds the kernel memory to
/// the store's data and instantiates the guest with its kernel imports
/// bound to the kernel's exports, everything else from `linker`.
pub(crate) async fn instantiate<B: Backend>(
    mode: crate::plugin::Mode,
    linker: &Linker<B, PluginState>,
    mut store: &mut anywasm::Store<B, PluginState>,
    kernel: &Module<B>,
    guest: &Module<B>,
) -> anywasm::Result<Instance<B>> {
    // The store is new: it has no async host function yet (the guest's
    // imports make them), so the kernel (no imports, no start function)
    // is instantiated synchronously in either mode.
    let instance = Instance::new(&mut *store, kernel, &[])?;
    let bound = Bound::<B> {
        memory: instance.get_memory(&mut *store, "memory")?,
        end: instance.get_global(&mut store, "end")?,
        input_at: instance.get_global(&mut store, "input_at")?,
        input_len: instance.get_global(&mut store, "input_len")?,
    };
    store.data_mut().kernel.bound = Some(Box::new(bound));
    let mut linker = linker.clone();
    linker.allow_shadowing(true);
    for name in KERNEL_FUNCS {
        let f = instance.get_func(&mut store, name)?;
        linker.define(ENV, name, Extern::Func(f))?;
    }
    crate::plugin::instantiate(mode, &linker, store, guest).await
}

/// The kernel instance's memory and globals, in the store's data.
struct Bound<B: Backend> {
    memory: Memory<B>,
    end: Global<B>,
    input_at: Global<B>,
    input_len: Global<B>,
}

impl<B: Backend> Clone for Bound<B> {
    fn clone(&self) -> Self {
        Self {
            memory: self.memory.clone(),
            end: self.end.clone(),
            input_at: self.input_at.clone(),
            input_len: self.input_len.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Block {
    size: u64,
    used: u64,
    live: bool,
}

/// Where a new block goes: a free block reused, or fresh bytes at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    at: u64,
    size: u64,
    /// For fresh bytes: the new end and the new charge.
    fresh: Option<(u64, u64)>,
}

/// The bookkeeping of one instance's kernel memory (the bytes are in the
/// kernel instance's memory).
#[derive(Debug)]
pub(crate) struct Kernel {
    blocks: HashMap<u64, Block>,
    /// Free blocks by (size, offset), for best-fit reuse.
    free: BTreeSet<(u64, u64)>,
    /// Bytes charged: data and per-block overhead.
    charged: u64,
    /// The end of the bytes handed out.
    end: u64,
    max: u64,
    input: (u64, u64),
    output: (u64, u64),
    error: u64,
    /// The kernel instance (a `Bound<B>`; the store's data is not generic).
    bound: Option<Box<dyn Any + Send + Sync>>,
}

impl Kernel {
    /// An empty kernel memory of at most `max` bytes.
    pub(crate) fn new(max: u64) -> Self {
        Self {
            blocks: HashMap::new(),
            free: BTreeSet::new(),
            charged: BASE,
            end: BASE,
            max: max.min(KERNEL_MAX),
            input: (0, 0),
            output: (0, 0),
            error: 0,
            bound: None,
        }
    }

    fn reset(&mut self) {
        self.blocks.clear();
        self.free.clear();
        self.charged = BASE;
        self.end = BASE;
        self.input = (0, 0);
        self.output = (0, 0);
        self.error = 0;
    }

    /// Where `n` bytes would go, or `None` (0 bytes, or past the limit).
    fn place(&self, n: u64) -> Option<Place> {
        if n == 0 {
            return None;
        }
        if let Some(&(size, at)) = self.free.range((n, 0)..).next() {
            return Some(Place {
                at,
                size,
                fresh: None,
            });
        }
        let at = self.end.div_ceil(8) * 8;
        let charged = self
            .charged
            .checked_add(n)?
            .checked_add(BLOCK_OVERHEAD + (at - self.end))?;
        let end = at.checked_add(n)?;
        (charged <= self.max && end <= KERNEL_MAX).then_some(Place {
            at,
            size: n,
            fresh: Some((end, charged)),
        })
    }

    fn commit(&mut self, place: Place, n: u64) {
        match place.fresh {
            None => {
                self.free.remove(&(place.size, place.at));
            }
            Some((end, charged)) => {
                self.end = end;
                self.charged = charged;
            }
        }
        self.blocks.insert(
            place.at,
            Block {
                size: place.size,
                used: n,
                live: true,
            },
        );
    }

    /// Frees a live block; true when it was the input.
    fn free(&mut self, h: u64) -> bool {
        if let Some(b) = self.blocks.get_mut(&h)
            && b.live
        {
            b.live = false;
            self.free.insert((b.size, h));
            if h == self.input.0 && self.input.1 != 0 {
                self.input.1 = 0;
                return true;
            }
        }
        false
    }

    fn length(&self, h: u64) -> u64 {
        match self.blocks.get(&h) {
            Some(b) if b.live => b.used,
            _ => 0,
        }
    }

    fn in_bounds(&self, p: u64) -> bool {
        p < self.end
    }

    fn bound<B: Backend>(&self) -> anywasm::Result<Bound<B>> {
        self.bound
            .as_ref()
            .and_then(|b| b.downcast_ref::<Bound<B>>())
            .cloned()
            .ok_or_else(|| fault("the Extism kernel memory is missing"))
    }
}

type Ctx<'a, B> = anywasm::StoreContextMut<'a, B, PluginState>;

/// Allocates `n` zeroed bytes in the kernel memory, growing it as needed;
/// 0 when `n` is 0 or the bytes do not fit.
fn alloc<B: Backend>(ctx: &mut Ctx<'_, B>, n: u64) -> anywasm::Result<u64> {
    let k = &ctx.data().kernel;
    let Some(place) = k.place(n) else {
        return Ok(0);
    };
    let b = k.bound::<B>()?;
    let have = b.memory.data_size(&*ctx)? as u64;
    let needed = place.fresh.map_or(0, |(end, _)| end);
    if needed > have
        && b.memory
            .grow(&mut *ctx, (needed - have).div_ceil(PAGE))
            .is_err()
    {
        return Ok(0);
    }
    b.memory.fill(&mut *ctx, place.at, 0, place.size as usize)?;
    let k = &mut ctx.data_mut().kernel;
    k.commit(place, n);
    let end = k.end as i64;
    b.end.set(&mut *ctx, Val::I64(end))?;
    Ok(place.at)
}

fn free<B: Backend>(ctx: &mut Ctx<'_, B>, h: u64) -> anywasm::Result<()> {
    let k = &mut ctx.data_mut().kernel;
    if k.free(h) {
        let b = k.bound::<B>()?;
        b.input_len.set(&mut *ctx, Val::I64(0))?;
    }
    Ok(())
}

/// A live block's bytes; handle 0 is empty, anything else is an error
/// naming `what`.
fn read_block<B: Backend>(ctx: &Ctx<'_, B>, h: u64, what: &str) -> anywasm::Result<Vec<u8>> {
    if h == 0 {
        return Ok(Vec::new());
    }
    let k = &ctx.data().kernel;
    let len = k.length(h);
    if len == 0 {
        return Err(fault(format!("invalid handle offset for {what}: {h}")));
    }
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    k.bound::<B>()?.memory.read_vec(ctx, h, len)
}

/// A block's bytes, taking ownership of the handle (freeing it), as
/// Extism's `config_get`/`var_*`/`log_*` do. Handle 0 is empty.
fn take<B: Backend>(ctx: &mut Ctx<'_, B>, h: u64, what: &str) -> anywasm::Result<Vec<u8>> {
    let bytes = read_block(ctx, h, what)?;
    free(ctx, h)?;
    Ok(bytes)
}

/// A new block holding `bytes`, or 0 when it does not fit.
fn put<B: Backend>(ctx: &mut Ctx<'_, B>, bytes: &[u8]) -> anywasm::Result<u64> {
    let h = alloc(ctx, bytes.len() as u64)?;
    if h != 0 {
        let b = ctx.data().kernel.bound::<B>()?;
        b.memory.write(&mut *ctx, h, bytes)?;
    }
    Ok(h)
}

/// What an Extism host function ([`HostFunctions::extism_function`]) can do
/// with the plugin that called it: read the blocks of the kernel memory it
/// is handed (Extism's PDKs pass them as `i64` handles) and give it new
/// ones, within the plugin's memory limit. Every handle is checked.
pub struct ExtismCurrent<'a> {
    kernel: &'a mut dyn KernelAccess,
    context: HostContext,
}

/// The kernel memory of the calling instance, whatever its backend.
trait KernelAccess {
    fn read(&self, h: u64) -> anywasm::Result<Vec<u8>>;
    fn put(&mut self, bytes: &[u8]) -> anywasm::Result<u64>;
    fn free(&mut self, h: u64) -> anywasm::Result<()>;
    fn length(&self, h: u64) -> u64;
}

impl<B: Backend> KernelAccess for Ctx<'_, B> {
    fn read(&self, h: u64) -> anywasm::Result<Vec<u8>> {
        read_block(self, h, "host function argument")
    }
    fn put(&mut self, bytes: &[u8]) -> anywasm::Result<u64> {
        put(self, bytes)
    }
    fn free(&mut self, h: u64) -> anywasm::Result<()> {
        free(self, h)
    }
    fn length(&self, h: u64) -> u64 {
        self.data().kernel.length(h)
    }
}

impl ExtismCurrent<'_> {
    /// The calling plugin's id and configuration.
    pub fn context(&self) -> &HostContext {
        &self.context
    }

    /// The bytes of the block `handle` (empty for handle 0); an error for
    /// anything that is not a live block.
    pub fn memory_get(&self, handle: u64) -> Result<Vec<u8>, String> {
        self.kernel.read(handle).map_err(|e| e.to_string())
    }

    /// The block `handle` as UTF-8 text; an error if it is not a live block
    /// or not UTF-8.
    pub fn memory_string(&self, handle: u64) -> Result<String, String> {
        String::from_utf8(self.memory_get(handle)?)
            .map_err(|e| format!("block {handle} is not UTF-8: {e}"))
    }

    /// A new block holding `bytes`, for the guest (which then owns it); an
    /// error when it does not fit the plugin's memory limit. Empty bytes
    /// give handle 0, as in Extism.
    pub fn memory_new(&mut self, bytes: &[u8]) -> Result<u64, String> {
        match self.kernel.put(bytes) {
            Ok(0) if !bytes.is_empty() => Err(format!(
                "a block of {} bytes does not fit the plugin's kernel memory",
                bytes.len()
            )),
            Ok(h) => Ok(h),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Frees the block `handle` (nothing for anything else).
    pub fn memory_free(&mut self, handle: u64) -> Result<(), String> {
        self.kernel.free(handle).map_err(|e| e.to_string())
    }

    /// The length of the block `handle`, 0 for anything that is not a live
    /// block.
    pub fn memory_length(&self, handle: u64) -> u64 {
        self.kernel.length(handle)
    }
}

/// Forgets every block before a call and places `len` bytes of input,
/// written by `write`; `Ok(None)` when the input does not fit.
pub(crate) fn start_call<B: Backend>(
    mut ctx: impl AsContextMut<Backend = B, Data = PluginState>,
    len: u64,
    write: impl FnOnce(&mut [u8]) -> Result<(), String>,
) -> anywasm::Result<Option<Result<(), String>>> {
    let mut ctx = ctx.as_context_mut();
    ctx.data_mut().kernel.reset();
    let b = ctx.data().kernel.bound::<B>()?;
    let h = alloc(&mut ctx, len)?;
    if h == 0 && len != 0 {
        return Ok(None);
    }
    ctx.data_mut().kernel.input = (h, len);
    if h == 0 {
        // No input block: `alloc` did not set the end back to the start.
        b.end.set(&mut ctx, Val::I64(BASE as i64))?;
    }
    b.input_at.set(&mut ctx, Val::I64(h as i64))?;
    b.input_len.set(&mut ctx, Val::I64(len as i64))?;
    let buf = b.memory.slice_mut(&mut ctx, h, len)?;
    Ok(Some(write(buf)))
}

/// The output the guest set (empty when it is not inside the memory).
pub(crate) fn output<B: Backend>(store: &anywasm::Store<B, PluginState>) -> anywasm::Result<&[u8]> {
    let k = &store.data().kernel;
    let (at, len) = k.output;
    Ok(k.bound::<B>()?
        .memory
        .slice(store, at, len)
        .unwrap_or_default())
}

/// The error message the guest set, if any.
pub(crate) fn error<B: Backend>(
    store: &anywasm::Store<B, PluginState>,
) -> anywasm::Result<Option<String>> {
    let k = &store.data().kernel;
    if k.error == 0 {
        return Ok(None);
    }
    let len = k.length(k.error);
    let bytes = k.bound::<B>()?.memory.read_vec(
        store,
        k.error,
        usize::try_from(len).unwrap_or(usize::MAX),
    )?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// What a plugin's `http_request` may do: the hosts its manifest allows
/// and the largest response; shared by the plugin's instances.
#[derive(Debug)]
pub(crate) struct HttpGrant {
    hosts: Vec<glob::Pattern>,
    max_response: u64,
    timeout: Duration,
}

impl HttpGrant {
    /// The grant of a manifest (its patterns were checked when it was made).
    pub(crate) fn of(m: &Manifest) -> Arc<Self> {
        Arc::new(Self {
            hosts: m
                .http_hosts
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
            max_response: m.max_http_response_bytes,
            timeout: m.limits.deadline.unwrap_or(Duration::from_secs(30)),
        })
    }

    /// Nothing allowed.
    pub(crate) fn none() -> Arc<Self> {
        Arc::new(Self {
            hosts: Vec::new(),
            max_response: 0,
            timeout: Duration::ZERO,
        })
    }
}

/// The last HTTP response of an instance, for `http_status_code` and
/// `http_headers`.
#[derive(Debug, Default)]
pub(crate) struct HttpLast {
    status: u16,
    headers: BTreeMap<String, String>,
}

/// An Extism guest's request, as its PDKs write it.
#[derive(serde::Deserialize)]
struct HttpRequest {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    method: Option<String>,
}

fn http_failed(message: String) -> Error {
    Error::host(HostFnFailed {
        function: "http_request".into(),
        message,
    })
}

/// How long a request may take: the manifest's deadline, and no longer
/// than the call has left (plus a millisecond, so that a request cut short
/// ends after the call's deadline, which then ends the call).
fn request_timeout(manifest: Duration, call_deadline: Option<Instant>) -> Duration {
    match call_deadline {
        Some(d) => {
            manifest.min(d.saturating_duration_since(Instant::now()) + Duration::from_millis(1))
        }
        None => manifest,
    }
}

/// Sends a request the grant allows within `timeout`; the response body,
/// bounded.
fn http_send(
    grant: &HttpGrant,
    req: &HttpRequest,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(HttpLast, Vec<u8>), Error> {
    let uri: ureq::http::Uri = req
        .url
        .parse()
        .map_err(|e| http_failed(format!("Invalid URL: {e}")))?;
    let host = uri.host().unwrap_or_default();
    if !grant.hosts.iter().any(|p| p.matches(host)) {
        return Err(http_failed(format!(
            "HTTP request to {} is not allowed",
            req.url
        )));
    }
    let method = req.method.as_deref().unwrap_or("GET").to_uppercase();
    let mut builder = ureq::http::Request::builder()
        .method(method.as_str())
        .uri(uri);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let bad = |e: ureq::http::Error| http_failed(e.to_string());
    let sent = match body {
        Some(b) => send(builder.body(b).map_err(bad)?, timeout),
        None => send(builder.body(()).map_err(bad)?, timeout),
    };
    let res = sent.map_err(|e| http_failed(e.to_string()))?;
    let mut last = HttpLast {
        status: res.status().as_u16(),
        headers: BTreeMap::new(),
    };
    for (name, value) in res.headers() {
        if let Ok(v) = value.to_str() {
            last.headers
                .insert(name.as_str().to_string(), v.to_string());
        }
    }
    let mut buf = Vec::new();
    res.into_body()
        .into_reader()
        .take(grant.max_response.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| http_failed(e.to_string()))?;
    if buf.len() as u64 > grant.max_response {
        return Err(http_failed(format!(
            "HTTP response exceeds the configured maximum number of bytes: {}",
            grant.max_response
        )));
    }
    Ok((last, buf))
}

/// Runs a request within `timeout`; a status of 400 or more is a response,
/// not an error (the guest reads it with `http_status_code`).
fn send(
    request: ureq::http::Request<impl ureq::AsSendBody>,
    timeout: Duration,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let agent = ureq::Agent::new_with_defaults();
    let request = agent
        .configure_request(request)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build();
    agent.run(request)
}

fn fault(msg: impl Into<String>) -> Error {
    Error::host(AbiFault(msg.into()))
}

fn arg<B: Backend>(v: &Val<B>) -> u64 {
    v.as_i64().map_or(0, |x| x as u64)
}

fn kernel<'a, B: Backend>(c: &'a mut Caller<'_, B, PluginState>) -> &'a mut Kernel {
    &mut c.data_mut().kernel
}

/// Defines `extism:host/env` in the runtime's linker.
pub(crate) fn define<B: Backend>(
    linker: &mut Linker<B, PluginState>,
    host: &HostFunctions,
) -> anywasm::Result<()> {
    use ValType::{I32, I64};
    let t = |p: &[ValType], r: &[ValType]| FuncType::new(p.iter().copied(), r.iter().copied());

    linker.func_new(ENV, "alloc", t(&[I64], &[I64]), |mut c, p, r| {
        r[0] = Val::I64(alloc(&mut c.as_context_mut(), arg(&p[0]))? as i64);
        Ok(())
    })?;
    linker.func_new(ENV, "free", t(&[I64], &[]), |mut c, p, _| {
        free(&mut c.as_context_mut(), arg(&p[0]))
    })?;
    for name in ["length", "length_unsafe"] {
        linker.func_new(ENV, name, t(&[I64], &[I64]), |mut c, p, r| {
            r[0] = Val::I64(kernel(&mut c).length(arg(&p[0])) as i64);
            Ok(())
        })?;
    }
    // `load_*`, `store_*` and `input_*` are the kernel module's (see
    // `instantiate`).
    linker.func_new(ENV, "output_set", t(&[I64, I64], &[]), |mut c, p, _| {
        let k = kernel(&mut c);
        let (at, len) = (arg(&p[0]), arg(&p[1]));
        // Extism ignores an output outside the memory.
        if len == 0 || (k.in_bounds(at) && at.checked_add(len - 1).is_some_and(|e| k.in_bounds(e)))
        {
            k.output = (at, len);
        }
        Ok(())
    })?;
    linker.func_new(ENV, "error_set", t(&[I64], &[]), |mut c, p, _| {
        let k = kernel(&mut c);
        let h = arg(&p[0]);
        if h == 0 || k.in_bounds(h) {
            k.error = h;
        }
        Ok(())
    })?;
    linker.func_new(ENV, "error_get", t(&[], &[I64]), |mut c, _, r| {
        r[0] = Val::I64(kernel(&mut c).error as i64);
        Ok(())
    })?;
    linker.func_new(ENV, "config_get", t(&[I64], &[I64]), |mut c, p, r| {
        let mut c = c.as_context_mut();
        let key = take(&mut c, arg(&p[0]), "config key")?;
        let key = String::from_utf8_lossy(&key).into_owned();
        let value = c.data().ctx.config.get(&key).cloned();
        r[0] = Val::I64(match value {
            Some(v) => put(&mut c, v.as_bytes())? as i64,
            None => 0,
        });
        Ok(())
    })?;
    // Vars are the plugin's key/value store (shared by its instances, kept
    // across calls and bounded by `max_store_bytes`/`max_store_keys`), the
    // same store the anywasm ABI's `kv_*` functions use.
    linker.func_new(ENV, "var_get", t(&[I64], &[I64]), |mut c, p, r| {
        let mut c = c.as_context_mut();
        let key = take(&mut c, arg(&p[0]), "var key")?;
        let kv = c.data().kv.clone();
        let value = lock_kv(&kv)?.get_named(&key).cloned();
        r[0] = Val::I64(match value {
            Some(v) => put(&mut c, &v)? as i64,
            None => 0,
        });
        Ok(())
    })?;
    linker.func_new(ENV, "var_set", t(&[I64, I64], &[]), |mut c, p, _| {
        let limits = c.data().limits;
        if limits.max_store_bytes == Some(0) {
            return Err(fault("Vars are disabled by this host"));
        }
        let (key_h, value_h) = (arg(&p[0]), arg(&p[1]));
        let k = kernel(&mut c);
        if key_h != 0 && k.length(key_h) == 0 {
            return Err(fault(format!("invalid handle offset for var key: {key_h}")));
        }
        if value_h != 0 && k.length(value_h) == 0 {
            return Err(fault(format!(
                "invalid handle offset for var value: {value_h}"
            )));
        }
        let mut c = c.as_context_mut();
        let key = take(&mut c, key_h, "var key")?;
        let value = match value_h {
            0 => None,
            h => Some(take(&mut c, h, "var value")?),
        };
        let kv = c.data().kv.clone();
        let mut kv = lock_kv(&kv)?;
        match value {
            None => {
                kv.remove_named(&key);
            }
            Some(value) => {
                if !kv.set_named(&limits, key, value) {
                    return Err(fault("Variable store is full"));
                }
            }
        }
        Ok(())
    })?;
    // Extism's numbering: trace 0, debug 1, info 2, warn 3, error 4; ours
    // is error 0 … trace 4.
    for (name, ours) in [
        ("log_trace", 4u32),
        ("log_debug", 3),
        ("log_info", 2),
        ("log_warn", 1),
        ("log_error", 0),
    ] {
        let log = host.log.clone();
        linker.func_new(ENV, name, t(&[I64], &[]), move |mut c, p, _| {
            let line = take(&mut c.as_context_mut(), arg(&p[0]), "log message")?;
            if let Some(log) = &log {
                log(&c.data().ctx.plugin, ours, &String::from_utf8_lossy(&line));
            }
            Ok(())
        })?;
    }
    let logging = host.log.is_some();
    linker.func_new(ENV, "get_log_level", t(&[], &[I32]), move |_, _, r| {
        // Every level reaches the application's log, which filters; with
        // no log, nothing is wanted (Extism's "off").
        r[0] = Val::I32(if logging { 0 } else { i32::MAX });
        Ok(())
    })?;
    linker.func_new(
        ENV,
        "http_request",
        t(&[I64, I64], &[I64]),
        |mut caller, p, r| {
            caller.check_interrupt()?;
            let deadline = caller.deadline();
            let (req, body, grant) = {
                let mut c = caller.as_context_mut();
                let req = take(&mut c, arg(&p[0]), "http request")?;
                let req: HttpRequest = serde_json::from_slice(&req)
                    .map_err(|e| http_failed(format!("the request is not Extism's JSON: {e}")))?;
                let body = match arg(&p[1]) {
                    0 => None,
                    h => Some(take(&mut c, h, "http request body")?),
                };
                c.data_mut().http_last = HttpLast::default();
                (req, body, c.data().http.clone())
            };
            let sent = http_send(&grant, &req, body, request_timeout(grant.timeout, deadline));
            // A request cut short by the call's deadline ends the call as the
            // deadline does, not as a failed request.
            if sent.is_err() {
                caller.check_interrupt()?;
            }
            let (last, bytes) = sent?;
            let mut c = caller.as_context_mut();
            c.data_mut().http_last = last;
            let h = put(&mut c, &bytes)?;
            if h == 0 && !bytes.is_empty() {
                return Err(http_failed(format!(
                    "the response of {} bytes does not fit the kernel memory",
                    bytes.len()
                )));
            }
            r[0] = Val::I64(h as i64);
            Ok(())
        },
    )?;
    linker.func_new(ENV, "http_status_code", t(&[], &[I32]), |c, _, r| {
        r[0] = Val::I32(i32::from(c.data().http_last.status));
        Ok(())
    })?;
    linker.func_new(ENV, "http_headers", t(&[], &[I64]), |mut c, _, r| {
        let json = serde_json::to_vec(&c.data().http_last.headers).unwrap_or_default();
        r[0] = Val::I64(put(&mut c.as_context_mut(), &json)? as i64);
        Ok(())
    })?;
    for (name, (ty, f)) in &host.extism {
        let f = f.clone();
        let want = ty.clone();
        let function = name.clone();
        linker.func_new(USER, name, ty.clone(), move |mut c, p, r| {
            let failed = |message: String| {
                Error::host(HostFnFailed {
                    function: function.clone(),
                    message,
                })
            };
            let args: Vec<Number> = p.iter().filter_map(Number::from_val).collect();
            let (context, _inside) = c.data().host_context();
            let mut ctx = c.as_context_mut();
            let mut current = ExtismCurrent {
                kernel: &mut ctx,
                context,
            };
            let out = f(&mut current, &args).map_err(failed)?;
            Number::write_results(out, &want, r).map_err(failed)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Kernel;

    #[test]
    fn blocks_are_checked_reused_and_bounded() {
        let mut k = Kernel::new(4096);
        let alloc = |k: &mut Kernel, n| match k.place(n) {
            Some(p) => {
                k.commit(p, n);
                p.at
            }
            None => 0,
        };
        assert_eq!(alloc(&mut k, 0), 0);
        let a = alloc(&mut k, 10);
        assert!(a >= super::BASE && a.is_multiple_of(8));
        assert_eq!(k.length(a), 10);
        assert_eq!(k.length(a + 1), 0, "inside a block is not a handle");
        assert!(k.in_bounds(a + 9) && !k.in_bounds(a + 10));
        k.free(a);
        assert_eq!(k.length(a), 0);
        let b = alloc(&mut k, 4);
        assert_eq!(b, a, "a freed block is reused");
        assert_eq!(k.length(b), 4);
        // The limit counts data and per-block overhead.
        assert_eq!(alloc(&mut k, 1 << 40), 0);
        assert_eq!(alloc(&mut k, u64::MAX), 0);
        let mut n = 0;
        while alloc(&mut k, 1) != 0 {
            n += 1;
        }
        assert!(n < 4096 / 32, "{n} blocks of 1 byte in 4 KiB");
        // A call starts from nothing.
        k.reset();
        assert_eq!(k.length(b), 0);
        assert_eq!(alloc(&mut k, 8), a);
        // The memory is 32-bit whatever the limit.
        let k = Kernel::new(u64::MAX);
        assert!(k.place(1 << 32).is_none());
    }
}
