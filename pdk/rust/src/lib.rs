//! # anywasm-pdk
//!
//! The guest side of the anywasm plugin ABI (version 1, `docs/ABI.md`) for
//! Rust plugins: the ABI exports (`anywasm_alloc`, `anywasm_set_format`),
//! the host imports, and small MessagePack and JSON codecs for flat maps of
//! strings and unsigned integers, so that a plugin needs no dependencies.
//!
//! ```
//! use anywasm_pdk::{Map, Value};
//! let mut m = Map::new();
//! m.insert("icon", Value::Str("rust".into()));
//! m.insert("priority", Value::U64(3));
//! for format in [anywasm_pdk::Format::MsgPack, anywasm_pdk::Format::Json] {
//!     let bytes = m.encode(format);
//!     assert_eq!(Map::decode(format, &bytes).unwrap(), m);
//! }
//! ```
//!
//! In a plugin (see `plugins/file_icons.rs`):
//!
//! ```ignore
//! #[path = "../pdk/rust/src/lib.rs"]
//! mod anywasm_pdk;
//! use anywasm_pdk::*;
//!
//! #[no_mangle]
//! pub extern "C" fn handle_event(ptr: i32, len: i32) -> i64 {
//!     let event = match Map::decode(format(), input(ptr, len)) {
//!         Ok(m) => m,
//!         Err(e) => return fail(&e),
//!     };
//!     let mut out = Map::new();
//!     out.insert("icon", Value::Str("file".into()));
//!     output(out.encode(format()))
//! }
//! ```
#![allow(dead_code)]

use std::cell::RefCell;

/// The serialisation format the host chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// No serialisation.
    Raw,
    /// MessagePack.
    MsgPack,
    /// JSON.
    Json,
}

thread_local! {
    static FORMAT: RefCell<Format> = const { RefCell::new(Format::MsgPack) };
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The format of this plugin's calls.
pub fn format() -> Format {
    FORMAT.with(|f| *f.borrow())
}

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "anywasm")]
    extern "C" {
        pub fn error(ptr: *const u8, len: i32);
        pub fn log(level: i32, ptr: *const u8, len: i32);
        pub fn config_get(key: *const u8, key_len: i32) -> i64;
        pub fn take_result(ptr: *mut u8);
        pub fn calc(a: i32, b: i32, op: i32) -> i32;
        pub fn echo(ptr: *const u8, len: i32) -> i64;
    }
}

/// ABI export: a buffer for the next input.
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub extern "C" fn anywasm_alloc(len: i32) -> i32 {
    INPUT.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        b.resize(len.max(0) as usize, 0);
        b.as_mut_ptr() as i32
    })
}

/// ABI export: the host's format choice.
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub extern "C" fn anywasm_set_format(code: i32) {
    let f = match code {
        1 => Format::MsgPack,
        2 => Format::Json,
        _ => Format::Raw,
    };
    FORMAT.with(|x| *x.borrow_mut() = f);
}

/// The input bytes of the current call.
pub fn input(ptr: i32, len: i32) -> &'static [u8] {
    if len <= 0 || ptr == 0 {
        return &[];
    }
    // SAFETY: the host wrote `len` bytes at `ptr`, inside the buffer that
    // `anywasm_alloc` returned, which stays untouched until the next call.
    unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
}

/// Returns `bytes` to the host (kept until the next call).
pub fn output(bytes: Vec<u8>) -> i64 {
    OUTPUT.with(|o| {
        let mut o = o.borrow_mut();
        *o = bytes;
        ((o.as_ptr() as usize as u64) << 32 | o.len() as u64) as i64
    })
}

/// Reports a guest error; return the result from the plugin function.
pub fn fail(message: &str) -> i64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a valid buffer of `len` bytes.
    unsafe {
        imports::error(message.as_ptr(), message.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = message;
    0
}

/// Writes a log line through the host.
pub fn log(level: i32, line: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a valid buffer.
    unsafe {
        imports::log(level, line.as_ptr(), line.len() as i32)
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, line);
}

/// Receives a pending result: `Ok(bytes)` for status 0, `Err(status, bytes)` otherwise.
pub fn take(pending: i64) -> Result<Vec<u8>, (u32, Vec<u8>)> {
    let status = ((pending as u64) >> 32) as u32;
    let len = pending as u32 as usize;
    let mut buf = vec![0u8; len.max(1)];
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the buffer has room for the `len` bytes the host copies.
    unsafe {
        imports::take_result(buf.as_mut_ptr())
    }
    buf.truncate(len);
    if status == 0 {
        Ok(buf)
    } else {
        Err((status, buf))
    }
}

/// A configuration value from the plugin's manifest.
pub fn config(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: a valid buffer.
        let pending = unsafe { imports::config_get(key.as_ptr(), key.len() as i32) };
        take(pending)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        None
    }
}

/// The host's numeric `calc` built-in: 0 add, 1 sub, 2 mul, 3 div.
pub fn calc(a: u32, b: u32, op: u32) -> u32 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain numeric call.
    unsafe {
        imports::calc(a as i32, b as i32, op as i32) as u32
    }
    #[cfg(not(target_arch = "wasm32"))]
    match op {
        0 => a.wrapping_add(b),
        1 => a.wrapping_sub(b),
        2 => a.wrapping_mul(b),
        _ => a.checked_div(b).unwrap_or(0),
    }
}

/// The host's `echo` built-in.
pub fn echo(bytes: &[u8]) -> Result<Vec<u8>, String> {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: a valid buffer.
        let pending = unsafe { imports::echo(bytes.as_ptr(), bytes.len() as i32) };
        take(pending).map_err(|(_, m)| String::from_utf8_lossy(&m).into_owned())
    }
    #[cfg(not(target_arch = "wasm32"))]
    Ok(bytes.to_vec())
}

/// A value of a flat map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An unsigned integer.
    U64(u64),
}

/// A flat map of strings and unsigned integers, in insertion order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Map(pub Vec<(String, Value)>);

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Map(Vec::new())
    }

    /// Adds or replaces `key`.
    pub fn insert(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// The string under `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                Value::Str(s) => Some(s.as_str()),
                Value::U64(_) => None,
            })
    }

    /// The number under `key`.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                Value::U64(n) => Some(*n),
                Value::Str(_) => None,
            })
    }

    /// Encodes in `format` (raw is treated as JSON).
    pub fn encode(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        if format == Format::MsgPack {
            let n = self.0.len();
            if n < 16 {
                out.push(0x80 | n as u8);
            } else {
                out.push(0xde);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            for (k, v) in &self.0 {
                mp_str(&mut out, k);
                match v {
                    Value::Str(s) => mp_str(&mut out, s),
                    Value::U64(n) => mp_u64(&mut out, *n),
                }
            }
        } else {
            out.push(b'{');
            for (i, (k, v)) in self.0.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_str(&mut out, k);
                out.push(b':');
                match v {
                    Value::Str(s) => json_str(&mut out, s),
                    Value::U64(n) => out.extend_from_slice(n.to_string().as_bytes()),
                }
            }
            out.push(b'}');
        }
        out
    }

    /// Decodes a flat map in `format` (raw is treated as JSON).
    pub fn decode(format: Format, bytes: &[u8]) -> Result<Self, String> {
        if format == Format::MsgPack {
            mp_decode(bytes)
        } else {
            json_decode(bytes)
        }
    }
}

fn mp_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 256 {
        out.push(0xd9);
        out.push(n as u8);
    } else if n < 65536 {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn mp_u64(out: &mut Vec<u8>, n: u64) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.push(0xcc);
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.b.get(self.i).ok_or("unexpected end of input")?;
        self.i += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .i
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or("unexpected end of input")?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    }
}

fn mp_value(c: &mut Cursor) -> Result<Value, String> {
    let b = c.byte()?;
    let strlen = match b {
        0x00..=0x7f => return Ok(Value::U64(u64::from(b))),
        0xcc => return Ok(Value::U64(c.be(1)?)),
        0xcd => return Ok(Value::U64(c.be(2)?)),
        0xce => return Ok(Value::U64(c.be(4)?)),
        0xcf => return Ok(Value::U64(c.be(8)?)),
        0xa0..=0xbf => usize::from(b & 0x1f),
        0xd9 => c.be(1)? as usize,
        0xda => c.be(2)? as usize,
        0xdb => c.be(4)? as usize,
        other => return Err(format!("unsupported MessagePack byte {other:#x}")),
    };
    let s = c.take(strlen)?;
    String::from_utf8(s.to_vec())
        .map(Value::Str)
        .map_err(|_| "a string is not UTF-8".to_string())
}

fn mp_decode(bytes: &[u8]) -> Result<Map, String> {
    let mut c = Cursor { b: bytes, i: 0 };
    let b = c.byte()?;
    let n = match b {
        0x80..=0x8f => usize::from(b & 0x0f),
        0xde => c.be(2)? as usize,
        0xdf => c.be(4)? as usize,
        _ => return Err("expected a MessagePack map".into()),
    };
    let mut m = Map::new();
    for _ in 0..n {
        let key = match mp_value(&mut c)? {
            Value::Str(k) => k,
            Value::U64(_) => return Err("map keys must be strings".into()),
        };
        let v = mp_value(&mut c)?;
        m.0.push((key, v));
    }
    Ok(m)
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn json_ws(c: &mut Cursor) {
    while c.i < c.b.len() && matches!(c.b[c.i], b' ' | b'\n' | b'\r' | b'\t') {
        c.i += 1;
    }
}

fn json_string(c: &mut Cursor) -> Result<String, String> {
    if c.byte()? != b'"' {
        return Err("expected a JSON string".into());
    }
    let mut out = Vec::new();
    loop {
        match c.byte()? {
            b'"' => break,
            b'\\' => match c.byte()? {
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'/' => out.push(b'/'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'u' => {
                    let hex = std::str::from_utf8(c.take(4)?).map_err(|_| "bad \\u escape")?;
                    let code = u32::from_str_radix(hex, 16).map_err(|_| "bad \\u escape")?;
                    let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => return Err("bad escape in a JSON string".into()),
            },
            b => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| "a string is not UTF-8".to_string())
}

fn json_decode(bytes: &[u8]) -> Result<Map, String> {
    let mut c = Cursor { b: bytes, i: 0 };
    let mut m = Map::new();
    json_ws(&mut c);
    if c.byte()? != b'{' {
        return Err("expected a JSON object".into());
    }
    json_ws(&mut c);
    if c.b.get(c.i) == Some(&b'}') {
        return Ok(m);
    }
    loop {
        json_ws(&mut c);
        let key = json_string(&mut c)?;
        json_ws(&mut c);
        if c.byte()? != b':' {
            return Err("expected `:` in a JSON object".into());
        }
        json_ws(&mut c);
        let v = if c.b.get(c.i) == Some(&b'"') {
            Value::Str(json_string(&mut c)?)
        } else {
            let start = c.i;
            while c.i < c.b.len() && c.b[c.i].is_ascii_digit() {
                c.i += 1;
            }
            let digits = std::str::from_utf8(&c.b[start..c.i]).unwrap_or("");
            Value::U64(
                digits
                    .parse()
                    .map_err(|_| "expected a string or an unsigned integer")?,
            )
        };
        m.0.push((key, v));
        json_ws(&mut c);
        match c.byte()? {
            b',' => continue,
            b'}' => return Ok(m),
            _ => return Err("expected `,` or `}` in a JSON object".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip_and_refuse_garbage() {
        let mut m = Map::new();
        m.insert("path", Value::Str("a \"quoted\" name\n".into()));
        m.insert("size", Value::U64(u64::MAX));
        m.insert("small", Value::U64(7));
        m.insert("long", Value::Str("x".repeat(300)));
        for f in [Format::MsgPack, Format::Json] {
            assert_eq!(Map::decode(f, &m.encode(f)).unwrap(), m);
            assert!(Map::decode(f, b"").is_err());
            assert!(Map::decode(f, &[0xc1, 0xff]).is_err());
        }
        assert_eq!(
            Map::decode(Format::Json, br#" { "a" : 1 , "b":"x" } "#)
                .unwrap()
                .u64("a"),
            Some(1)
        );
    }
}
