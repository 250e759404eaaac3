//! The waPC guest ABI: a guest exports `__guest_call(operation_len,
//! payload_len) -> i32` and imports from `wapc` the functions that move the
//! operation, payload, response and errors across, and `__host_call` to
//! call the application, which answers through
//! [`HostFunctions::wapc_handler`](crate::HostFunctions::wapc_handler).
//!
//! Every pointer and length from the guest is checked against its memory;
//! responses and errors the guest sets are bounded by the plugin's output
//! and message limits.

use anywasm::{Backend, Caller, Error, FuncType, Linker, Val, ValType};

use crate::host::{AbiFault, GuestLimit, HostFunctions, PluginState};

/// The module waPC guests import from.
pub(crate) const MODULE: &str = "wapc";
/// The export every waPC guest has.
pub(crate) const GUEST_CALL: &str = "__guest_call";
/// Exports a waPC host runs once per instance, when present.
pub(crate) const INIT_EXPORTS: [&str; 2] = ["_start", "wapc_init"];

/// What one waPC call has in flight.
#[derive(Debug, Default)]
pub(crate) struct WapcState {
    /// The operation and payload of the current call, for `__guest_request`.
    pub(crate) request: Option<(Vec<u8>, Vec<u8>)>,
    pub(crate) guest_response: Option<Vec<u8>>,
    pub(crate) guest_error: Option<String>,
    host_response: Option<Vec<u8>>,
    host_error: Option<String>,
}

impl WapcState {
    /// Clears everything and sets the request of a new call.
    pub(crate) fn start(&mut self, operation: &str, payload: Vec<u8>) {
        *self = WapcState {
            request: Some((operation.as_bytes().to_vec(), payload)),
            ..WapcState::default()
        };
    }
}

fn fault(msg: impl Into<String>) -> Error {
    Error::host(AbiFault(msg.into()))
}

fn arg(v: &Val<impl Backend>) -> u32 {
    v.as_i32().unwrap_or(0) as u32
}

fn memory<B: Backend>(c: &mut Caller<'_, B, PluginState>) -> Result<anywasm::Memory<B>, Error> {
    c.get_memory("memory")
        .ok_or_else(|| fault("the waPC guest exports no `memory`"))
}

/// `len` bytes at `ptr` of the guest's memory, refused past `max`.
fn read<B: Backend>(
    c: &mut Caller<'_, B, PluginState>,
    ptr: u32,
    len: u32,
    what: &'static str,
    max: Option<u64>,
) -> Result<Vec<u8>, Error> {
    if let Some(max) = max
        && u64::from(len) > max
    {
        return Err(Error::host(GuestLimit { what, limit: max }));
    }
    let mem = memory(c)?;
    mem.read_vec(&*c, u64::from(ptr), len as usize)
        .map_err(|_| fault(format!("{what} out of range ({len} bytes at {ptr:#x})")))
}

fn write<B: Backend>(
    c: &mut Caller<'_, B, PluginState>,
    ptr: u32,
    bytes: &[u8],
    what: &str,
) -> Result<(), Error> {
    let mem = memory(c)?;
    mem.write(&mut *c, u64::from(ptr), bytes).map_err(|_| {
        fault(format!(
            "{what} into an out-of-range buffer ({} bytes at {ptr:#x})",
            bytes.len()
        ))
    })
}

/// Defines the `wapc` imports in the runtime's linker.
pub(crate) fn define<B: Backend>(
    linker: &mut Linker<B, PluginState>,
    host: &HostFunctions,
) -> anywasm::Result<()> {
    use ValType::I32;
    let t = |p: &[ValType], r: &[ValType]| FuncType::new(p.iter().copied(), r.iter().copied());

    linker.func_new(
        MODULE,
        "__guest_request",
        t(&[I32, I32], &[]),
        |mut c, p, _| {
            let Some((op, payload)) = c.data_mut().wapc.request.take() else {
                return Err(fault("__guest_request outside a call (or twice in one)"));
            };
            write(&mut c, arg(&p[0]), &op, "__guest_request's operation")?;
            write(&mut c, arg(&p[1]), &payload, "__guest_request's payload")
        },
    )?;
    linker.func_new(
        MODULE,
        "__guest_response",
        t(&[I32, I32], &[]),
        |mut c, p, _| {
            let max = c.data().limits.max_output_bytes;
            let bytes = read(&mut c, arg(&p[0]), arg(&p[1]), "output size", max)?;
            c.data_mut().wapc.guest_response = Some(bytes);
            Ok(())
        },
    )?;
    linker.func_new(
        MODULE,
        "__guest_error",
        t(&[I32, I32], &[]),
        |mut c, p, _| {
            let max = c.data().limits.max_message_bytes;
            let bytes = read(&mut c, arg(&p[0]), arg(&p[1]), "message size", max)?;
            c.data_mut().wapc.guest_error = Some(String::from_utf8_lossy(&bytes).into_owned());
            Ok(())
        },
    )?;
    let handler = host.wapc.clone();
    linker.func_new(
        MODULE,
        "__host_call",
        t(&[I32, I32, I32, I32, I32, I32, I32, I32], &[I32]),
        move |mut c, p, r| {
            let max = c.data().limits.max_message_bytes;
            let name = |c: &mut Caller<'_, B, PluginState>, i: usize| {
                read(c, arg(&p[i]), arg(&p[i + 1]), "message size", max)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            };
            let binding = name(&mut c, 0)?;
            let namespace = name(&mut c, 2)?;
            let operation = name(&mut c, 4)?;
            let payload_max = c.data().limits.max_output_bytes;
            let payload = read(&mut c, arg(&p[6]), arg(&p[7]), "output size", payload_max)?;
            let answer = match &handler {
                Some(h) => {
                    let (ctx, _inside) = c.data().host_context();
                    h(&ctx, &binding, &namespace, &operation, &payload)
                }
                None => Err(format!(
                    "no waPC host handler: `{binding}`/`{namespace}`/`{operation}` is not served"
                )),
            };
            let w = &mut c.data_mut().wapc;
            (w.host_response, w.host_error) = (None, None);
            r[0] = Val::I32(match answer {
                Ok(bytes) => {
                    w.host_response = Some(bytes);
                    1
                }
                Err(message) => {
                    w.host_error = Some(message);
                    0
                }
            });
            Ok(())
        },
    )?;
    linker.func_new(
        MODULE,
        "__host_response_len",
        t(&[], &[I32]),
        |mut c, _, r| {
            let len = c.data_mut().wapc.host_response.as_ref().map_or(0, Vec::len);
            r[0] = Val::I32(len as i32);
            Ok(())
        },
    )?;
    linker.func_new(MODULE, "__host_response", t(&[I32], &[]), |mut c, p, _| {
        let bytes = c.data_mut().wapc.host_response.take().unwrap_or_default();
        write(&mut c, arg(&p[0]), &bytes, "__host_response")
    })?;
    linker.func_new(MODULE, "__host_error_len", t(&[], &[I32]), |mut c, _, r| {
        let len = c.data_mut().wapc.host_error.as_ref().map_or(0, String::len);
        r[0] = Val::I32(len as i32);
        Ok(())
    })?;
    linker.func_new(MODULE, "__host_error", t(&[I32], &[]), |mut c, p, _| {
        let message = c.data_mut().wapc.host_error.take().unwrap_or_default();
        write(&mut c, arg(&p[0]), message.as_bytes(), "__host_error")
    })?;
    let log = host.log.clone();
    linker.func_new(
        MODULE,
        "__console_log",
        t(&[I32, I32], &[]),
        move |mut c, p, _| {
            let max = c.data().limits.max_message_bytes;
            let line = read(&mut c, arg(&p[0]), arg(&p[1]), "message size", max)?;
            if let Some(log) = &log {
                // waPC's console has no levels: info.
                log(&c.data().ctx.plugin, 2, &String::from_utf8_lossy(&line));
            }
            Ok(())
        },
    )?;
    Ok(())
}
