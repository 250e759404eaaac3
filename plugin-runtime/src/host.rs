//! Host functions plugins can import: the ABI's own, the built-ins, and the
//! application's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anywasm::{Backend, Caller, Error, FuncType, Linker, Memory, Val, ValType};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{STATUS_ERROR, STATUS_NOT_FOUND, STATUS_OK, pending};
use crate::manifest::Format;

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
    fn ty(self) -> ValType {
        match self {
            Number::I32(_) => ValType::I32,
            Number::I64(_) => ValType::I64,
            Number::F32(_) => ValType::F32,
            Number::F64(_) => ValType::F64,
        }
    }

    fn from_val<B: Backend>(v: &Val<B>) -> Option<Self> {
        Some(match v {
            Val::I32(x) => Number::I32(*x),
            Val::I64(x) => Number::I64(*x),
            Val::F32(x) => Number::F32(f32::from_bits(*x)),
            Val::F64(x) => Number::F64(f64::from_bits(*x)),
            _ => return None,
        })
    }

    fn into_val<B: Backend>(self) -> Val<B> {
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
type NumericFn = Arc<dyn Fn(&HostContext, &[Number]) -> Result<Vec<Number>, String> + Send + Sync>;
type JsonHandler =
    Arc<dyn Fn(&HostContext, serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync>;
/// Receives the plugins' log lines: plugin id, level (0 error … 4 trace), text.
pub type LogFn = Arc<dyn Fn(&str, u32, &str) + Send + Sync>;

/// The application's host functions, registered once on the runtime
/// (see [`PluginRuntimeBuilder`](crate::PluginRuntimeBuilder)).
#[derive(Clone, Default)]
pub struct HostFunctions {
    pub(crate) bytes: HashMap<String, BytesFn>,
    pub(crate) numeric: HashMap<String, (FuncType, NumericFn)>,
    pub(crate) json: HashMap<String, JsonHandler>,
    pub(crate) log: Option<LogFn>,
}

impl std::fmt::Debug for HostFunctions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFunctions")
            .field("bytes", &self.bytes.keys().collect::<Vec<_>>())
            .field("numeric", &self.numeric.keys().collect::<Vec<_>>())
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

    /// Receives `anywasm.log` lines.
    pub fn logger<F>(&mut self, f: F)
    where
        F: Fn(&str, u32, &str) + Send + Sync + 'static,
    {
        self.log = Some(Arc::new(f));
    }
}

/// A plugin's own key/value store (`anywasm.store_put` / `store_get`),
/// shared by all its instances.
#[derive(Debug, Default)]
pub struct KvStore {
    next: i64,
    docs: HashMap<i64, Vec<u8>>,
}

/// The data of each plugin instance's store.
pub struct PluginState {
    pub(crate) ctx: HostContext,
    pub(crate) format: Format,
    pub(crate) pending: Option<(i64, Vec<u8>)>,
    pub(crate) guest_error: Option<String>,
    pub(crate) kv: Arc<Mutex<KvStore>>,
}

impl PluginState {
    pub(crate) fn new(ctx: HostContext, format: Format, kv: Arc<Mutex<KvStore>>) -> Self {
        Self {
            ctx,
            format,
            pending: None,
            guest_error: None,
            kv,
        }
    }
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
    let r = pending(status, bytes.len());
    caller.data_mut().pending = Some((status, bytes));
    Val::I64(r)
}

fn result_of<B: Backend>(
    caller: &mut Caller<'_, B, PluginState>,
    r: Result<Vec<u8>, String>,
) -> Val<B> {
    match r {
        Ok(bytes) => set_pending(caller, STATUS_OK, bytes),
        Err(msg) => set_pending(caller, STATUS_ERROR, msg.into_bytes()),
    }
}

/// Adds every import a plugin may use to `linker`: the ABI's, the built-ins
/// and the application's. Which of them a plugin may actually import is
/// decided per plugin from its manifest before it is instantiated.
pub(crate) fn define_all<B: Backend>(
    linker: &mut Linker<B, PluginState>,
    host: &HostFunctions,
) -> anywasm::Result<()> {
    use ValType::{I32, I64};
    let t = |p: &[ValType], r: &[ValType]| FuncType::new(p.iter().copied(), r.iter().copied());

    linker.func_new("anywasm", "error", t(&[I32, I32], &[]), |mut c, p, _| {
        let msg = read_guest(&mut c, &p[0], &p[1])?;
        c.data_mut().guest_error = Some(String::from_utf8_lossy(&msg).into_owned());
        Ok(())
    })?;
    let log = host.log.clone();
    linker.func_new(
        "anywasm",
        "log",
        t(&[I32, I32, I32], &[]),
        move |mut c, p, _| {
            let line = read_guest(&mut c, &p[1], &p[2])?;
            if let Some(log) = &log {
                log(
                    &c.data().ctx.plugin,
                    arg_u32(&p[0]),
                    &String::from_utf8_lossy(&line),
                );
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
            let ctx = c.data().ctx.clone();
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
            let doc = read_guest(&mut c, &p[0], &p[1])?;
            if serde_json::from_slice::<serde_json::Value>(&doc).is_err() {
                r[0] = Val::I64(-1);
                return Ok(());
            }
            let kv = c.data().kv.clone();
            let mut kv = kv
                .lock()
                .map_err(|_| Error::host_msg("the plugin's store is poisoned"))?;
            let id = kv.next;
            kv.next += 1;
            kv.docs.insert(id, doc);
            r[0] = Val::I64(id);
            Ok(())
        },
    )?;
    linker.func_new("anywasm", "store_get", t(&[I64], &[I64]), |mut c, p, r| {
        let id = p[0].as_i64().unwrap_or(-1);
        let doc = {
            let kv = c.data().kv.clone();
            let kv = kv
                .lock()
                .map_err(|_| Error::host_msg("the plugin's store is poisoned"))?;
            kv.docs.get(&id).cloned()
        };
        r[0] = match doc {
            Some(d) => set_pending(&mut c, STATUS_OK, d),
            None => set_pending(&mut c, STATUS_NOT_FOUND, Vec::new()),
        };
        Ok(())
    })?;

    // The application's functions.
    for (name, f) in &host.bytes {
        let f = f.clone();
        linker.func_new("host", name, t(&[I32, I32], &[I64]), move |mut c, p, r| {
            let input = read_guest(&mut c, &p[0], &p[1])?;
            let (ctx, format) = (c.data().ctx.clone(), c.data().format);
            let result = f(&ctx, &input, format);
            r[0] = result_of(&mut c, result);
            Ok(())
        })?;
    }
    for (name, (ty, f)) in &host.numeric {
        let f = f.clone();
        let want = ty.clone();
        linker.func_new("host", name, ty.clone(), move |c, p, r| {
            let args: Vec<Number> = p.iter().filter_map(Number::from_val).collect();
            let ctx = c.data().ctx.clone();
            let out = f(&ctx, &args).map_err(Error::host_msg)?;
            if out.len() != r.len() || out.iter().zip(want.results()).any(|(o, t)| o.ty() != *t) {
                return Err(Error::host_msg(format!(
                    "numeric host function returned {out:?}, expected {:?}",
                    want.results()
                )));
            }
            for (slot, v) in r.iter_mut().zip(out) {
                *slot = v.into_val();
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// The ABI imports every plugin may use without a grant.
pub(crate) fn always_allowed(module: &str, name: &str) -> bool {
    module == "anywasm" && matches!(name, "error" | "log" | "config_get" | "take_result")
}
