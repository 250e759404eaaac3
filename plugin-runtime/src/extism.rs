//! The Extism guest ABI: the `extism:host/env` imports that Extism's PDKs
//! use, on a kernel memory the host keeps for each instance, so that
//! plugins written for Extism run unchanged on every backend.
//!
//! Extism's own host keeps this memory inside a small wasm module (its
//! "kernel"); here it is a byte vector in the store's data with the same
//! observable rules:
//! - `alloc(n)` gives the offset of `n` zeroed bytes, 0 for `n == 0` or
//!   when the memory limit would be passed; `free` makes a block reusable;
//!   `length`/`length_unsafe` give a live block's length, 0 for anything
//!   else.
//! - `load_*`/`store_*` reach any address inside the kernel memory; outside
//!   it loads give 0 and stores do nothing (Extism's bounds-checked kernel
//!   behaves the same).
//! - `config_get`, `var_get`, `var_set` and `log_*` take ownership of the
//!   handles they are given (they free them), as in Extism.
//! - Before each call the memory is cleared, the input is placed in a new
//!   block, and the error and output are unset.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use anywasm::{Backend, Caller, Error, FuncType, Linker, Val, ValType};

use crate::host::{AbiFault, HostFnFailed, HostFunctions, PluginState, lock_kv};
use crate::manifest::Manifest;

/// The module Extism's PDKs import the kernel and host API from.
pub(crate) const ENV: &str = "extism:host/env";
/// The module Extism's PDKs import the application's functions from.
pub(crate) const USER: &str = "extism:host/user";

/// Bytes charged against the limit for each block, besides its data, so
/// that many tiny blocks cannot use unbounded host memory.
const BLOCK_OVERHEAD: u64 = 32;
/// The lowest offset given out: 0 means "no block".
const BASE: u64 = 8;

#[derive(Debug, Clone, Copy)]
struct Block {
    size: u64,
    used: u64,
    live: bool,
}

/// The kernel memory of one instance.
#[derive(Debug)]
pub(crate) struct Kernel {
    bytes: Vec<u8>,
    blocks: HashMap<u64, Block>,
    /// Free blocks by (size, offset), for best-fit reuse.
    free: BTreeSet<(u64, u64)>,
    /// Bytes charged: data and per-block overhead.
    charged: u64,
    max: u64,
    input: (u64, u64),
    output: (u64, u64),
    error: u64,
}

impl Kernel {
    /// An empty kernel memory of at most `max` bytes.
    pub(crate) fn new(max: u64) -> Self {
        Self {
            bytes: vec![0; BASE as usize],
            blocks: HashMap::new(),
            free: BTreeSet::new(),
            charged: BASE,
            max,
            input: (0, 0),
            output: (0, 0),
            error: 0,
        }
    }

    /// Clears everything before a call and places `len` bytes of input,
    /// written by `write`; returns `None` when the input does not fit.
    pub(crate) fn start_call(
        &mut self,
        len: u64,
        write: impl FnOnce(&mut [u8]) -> Result<(), String>,
    ) -> Option<Result<(), String>> {
        self.bytes.truncate(BASE as usize);
        self.bytes.shrink_to(1 << 20);
        self.blocks.clear();
        self.free.clear();
        self.charged = BASE;
        self.output = (0, 0);
        self.error = 0;
        if len == 0 {
            self.input = (0, 0);
            return Some(Ok(()));
        }
        let h = self.alloc(len);
        if h == 0 {
            return None;
        }
        self.input = (h, len);
        let range = h as usize..(h + len) as usize;
        Some(write(&mut self.bytes[range]))
    }

    /// The output the guest set, if it is inside the memory.
    pub(crate) fn output(&self) -> &[u8] {
        self.slice(self.output.0, self.output.1).unwrap_or(&[])
    }

    /// The error message the guest set, if any.
    pub(crate) fn error(&self) -> Option<String> {
        if self.error == 0 {
            return None;
        }
        let len = self.length(self.error);
        let bytes = self.slice(self.error, len).unwrap_or(&[]);
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    fn slice(&self, at: u64, len: u64) -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        self.bytes
            .get(usize::try_from(at).ok()?..usize::try_from(end).ok()?)
    }

    fn alloc(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        if let Some(&(size, at)) = self.free.range((n, 0)..).next() {
            self.free.remove(&(size, at));
            self.blocks.insert(
                at,
                Block {
                    size,
                    used: n,
                    live: true,
                },
            );
            self.bytes[at as usize..(at + size) as usize].fill(0);
            return at;
        }
        let at = self.bytes.len() as u64;
        let at = at.div_ceil(8) * 8;
        let Some(charged) = self
            .charged
            .checked_add(n)
            .and_then(|c| c.checked_add(BLOCK_OVERHEAD + (at - self.bytes.len() as u64)))
        else {
            return 0;
        };
        if charged > self.max {
            return 0;
        }
        let Ok(end) = usize::try_from(at + n) else {
            return 0;
        };
        self.bytes.resize(end, 0);
        self.charged = charged;
        self.blocks.insert(
            at,
            Block {
                size: n,
                used: n,
                live: true,
            },
        );
        at
    }

    fn free(&mut self, h: u64) {
        if let Some(b) = self.blocks.get_mut(&h)
            && b.live
        {
            b.live = false;
            self.free.insert((b.size, h));
            if h == self.input.0 {
                self.input.1 = 0;
            }
        }
    }

    fn length(&self, h: u64) -> u64 {
        match self.blocks.get(&h) {
            Some(b) if b.live => b.used,
            _ => 0,
        }
    }

    fn load<const N: usize>(&self, p: u64) -> [u8; N] {
        self.slice(p, N as u64)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; N])
    }

    fn store(&mut self, p: u64, x: &[u8]) {
        let Some(end) = p.checked_add(x.len() as u64) else {
            return;
        };
        if let (Ok(p), Ok(end)) = (usize::try_from(p), usize::try_from(end))
            && let Some(dst) = self.bytes.get_mut(p..end)
        {
            dst.copy_from_slice(x);
        }
    }

    fn input_load<const N: usize>(&self, offset: u64) -> [u8; N] {
        match offset.checked_add(N as u64) {
            Some(end) if end <= self.input.1 => self.load(self.input.0 + offset),
            _ => [0; N],
        }
    }

    fn in_bounds(&self, p: u64) -> bool {
        p < self.bytes.len() as u64
    }

    /// A block's bytes, taking ownership of the handle (freeing it), as
    /// Extism's `config_get`/`var_*`/`log_*` do. Handle 0 is empty.
    fn take(&mut self, h: u64, what: &str) -> Result<Vec<u8>, Error> {
        if h == 0 {
            return Ok(Vec::new());
        }
        let len = self.length(h);
        if len == 0 {
            return Err(fault(format!("invalid handle offset for {what}: {h}")));
        }
        let bytes = self.slice(h, len).unwrap_or(&[]).to_vec();
        self.free(h);
        Ok(bytes)
    }

    /// A new block holding `bytes`, or 0 when it does not fit.
    fn put(&mut self, bytes: &[u8]) -> u64 {
        let h = self.alloc(bytes.len() as u64);
        if h != 0 {
            self.bytes[h as usize..h as usize + bytes.len()].copy_from_slice(bytes);
        }
        h
    }
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

/// Sends a request the grant allows; the response body, bounded.
fn http_send(
    grant: &HttpGrant,
    req: &HttpRequest,
    body: Option<Vec<u8>>,
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
        Some(b) => send(builder.body(b).map_err(bad)?, grant.timeout),
        None => send(builder.body(()).map_err(bad)?, grant.timeout),
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
        r[0] = Val::I64(kernel(&mut c).alloc(arg(&p[0])) as i64);
        Ok(())
    })?;
    linker.func_new(ENV, "free", t(&[I64], &[]), |mut c, p, _| {
        kernel(&mut c).free(arg(&p[0]));
        Ok(())
    })?;
    for name in ["length", "length_unsafe"] {
        linker.func_new(ENV, name, t(&[I64], &[I64]), |mut c, p, r| {
            r[0] = Val::I64(kernel(&mut c).length(arg(&p[0])) as i64);
            Ok(())
        })?;
    }
    linker.func_new(ENV, "load_u8", t(&[I64], &[I32]), |mut c, p, r| {
        r[0] = Val::I32(i32::from(kernel(&mut c).load::<1>(arg(&p[0]))[0]));
        Ok(())
    })?;
    linker.func_new(ENV, "load_u64", t(&[I64], &[I64]), |mut c, p, r| {
        r[0] = Val::I64(i64::from_le_bytes(kernel(&mut c).load::<8>(arg(&p[0]))));
        Ok(())
    })?;
    linker.func_new(ENV, "store_u8", t(&[I64, I32], &[]), |mut c, p, _| {
        let x = p[1].as_i32().unwrap_or(0) as u8;
        kernel(&mut c).store(arg(&p[0]), &[x]);
        Ok(())
    })?;
    linker.func_new(ENV, "store_u64", t(&[I64, I64], &[]), |mut c, p, _| {
        let x = p[1].as_i64().unwrap_or(0).to_le_bytes();
        kernel(&mut c).store(arg(&p[0]), &x);
        Ok(())
    })?;
    linker.func_new(ENV, "input_length", t(&[], &[I64]), |mut c, _, r| {
        r[0] = Val::I64(kernel(&mut c).input.1 as i64);
        Ok(())
    })?;
    linker.func_new(ENV, "input_offset", t(&[], &[I64]), |mut c, _, r| {
        r[0] = Val::I64(kernel(&mut c).input.0 as i64);
        Ok(())
    })?;
    linker.func_new(ENV, "input_load_u8", t(&[I64], &[I32]), |mut c, p, r| {
        r[0] = Val::I32(i32::from(kernel(&mut c).input_load::<1>(arg(&p[0]))[0]));
        Ok(())
    })?;
    linker.func_new(ENV, "input_load_u64", t(&[I64], &[I64]), |mut c, p, r| {
        let k = kernel(&mut c);
        r[0] = Val::I64(i64::from_le_bytes(k.input_load::<8>(arg(&p[0]))));
        Ok(())
    })?;
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
        let key = kernel(&mut c).take(arg(&p[0]), "config key")?;
        let key = String::from_utf8_lossy(&key).into_owned();
        let value = c.data().ctx.config.get(&key).cloned();
        let k = kernel(&mut c);
        r[0] = Val::I64(value.map_or(0, |v| k.put(v.as_bytes())) as i64);
        Ok(())
    })?;
    // Vars are the plugin's key/value store (shared by its instances, kept
    // across calls and bounded by `max_store_bytes`/`max_store_keys`), the
    // same store the anywasm ABI's `kv_*` functions use.
    linker.func_new(ENV, "var_get", t(&[I64], &[I64]), |mut c, p, r| {
        let key = kernel(&mut c).take(arg(&p[0]), "var key")?;
        let kv = c.data().kv.clone();
        let value = lock_kv(&kv)?.get_named(&key).cloned();
        let k = kernel(&mut c);
        r[0] = Val::I64(value.map_or(0, |v| k.put(&v)) as i64);
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
        let key = k.take(key_h, "var key")?;
        let value = (value_h != 0)
            .then(|| k.take(value_h, "var value"))
            .transpose()?;
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
            let line = kernel(&mut c).take(arg(&p[0]), "log message")?;
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
        |mut c, p, r| {
            let k = kernel(&mut c);
            let req = k.take(arg(&p[0]), "http request")?;
            let req: HttpRequest = serde_json::from_slice(&req)
                .map_err(|e| http_failed(format!("the request is not Extism's JSON: {e}")))?;
            let body = match arg(&p[1]) {
                0 => None,
                h => Some(k.take(h, "http request body")?),
            };
            c.data_mut().http_last = HttpLast::default();
            let grant = c.data().http.clone();
            let (last, bytes) = http_send(&grant, &req, body)?;
            c.data_mut().http_last = last;
            let k = kernel(&mut c);
            let h = k.put(&bytes);
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
        r[0] = Val::I64(kernel(&mut c).put(&json) as i64);
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Kernel;

    #[test]
    fn blocks_are_checked_reused_and_bounded() {
        let mut k = Kernel::new(4096);
        assert_eq!(k.alloc(0), 0);
        let a = k.alloc(10);
        assert!(a >= super::BASE && a.is_multiple_of(8));
        assert_eq!(k.length(a), 10);
        assert_eq!(k.length(a + 1), 0, "inside a block is not a handle");
        k.store(a, &[1, 2, 3]);
        assert_eq!(k.load::<1>(a + 2), [3]);
        k.free(a);
        assert_eq!(k.length(a), 0);
        let b = k.alloc(4);
        assert_eq!(b, a, "a freed block is reused");
        assert_eq!(k.load::<4>(b), [0; 4], "and zeroed");
        // Out of bounds: zero, ignored, never a panic.
        assert_eq!(k.load::<8>(u64::MAX - 3), [0; 8]);
        k.store(u64::MAX, &[1; 8]);
        // The limit counts data and per-block overhead.
        assert_eq!(k.alloc(1 << 40), 0);
        let mut n = 0;
        while k.alloc(1) != 0 {
            n += 1;
        }
        assert!(n < 4096 / 32, "{n} blocks of 1 byte in 4 KiB");
        // A call starts from nothing.
        assert_eq!(
            k.start_call(3, |b| {
                b.copy_from_slice(b"abc");
                Ok(())
            }),
            Some(Ok(()))
        );
        assert_eq!(k.input_load::<1>(2), [b'c']);
        assert_eq!(k.input_load::<8>(0), [0; 8], "past the input");
        assert!(k.start_call(1 << 20, |_| Ok(())).is_none());
    }
}
