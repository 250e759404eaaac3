//! # anywasm-pdk
//!
//! The guest side of the anywasm plugin ABI (version 1, `docs/ABI.md`) for
//! Rust plugins: the ABI exports (`anywasm_alloc`, `anywasm_set_format`),
//! the host imports, the whole MessagePack and JSON data models ([`Value`]:
//! nil, booleans, signed and unsigned integers, floats, strings, binary,
//! arrays, maps, MessagePack extensions) with codecs that need no
//! dependencies, and [`plugin_fn!`] to write a plugin function as a plain
//! Rust function.
//!
//! ```
//! use anywasm_pdk::{Format, Value};
//! let v = Value::Map(vec![
//!     (Value::from("icon"), Value::from("rust")),
//!     (Value::from("sizes"), Value::Array(vec![Value::from(-1i64), Value::from(2.5)])),
//! ]);
//! for format in [Format::MsgPack, Format::Json] {
//!     let bytes = v.encode(format).unwrap();
//!     assert_eq!(Value::decode(format, &bytes).unwrap(), v);
//! }
//! ```
//!
//! A plugin (see `plugins/pdk_values.rs`; build it with `plugins/build.sh`,
//! which compiles this crate for wasm32 and passes it with `--extern`):
//!
//! ```ignore
//! use anywasm_pdk::{plugin_fn, Error};
//!
//! plugin_fn! {
//!     /// Called by the host as `plugin.call::<&str, String>("greet", &"Ada")`.
//!     pub fn greet(name: String) -> Result<String, Error> {
//!         if name.is_empty() {
//!             return Err(Error::from("no name"));
//!         }
//!         Ok(format!("Hello, {}!", name))
//!     }
//! }
//! ```
//!
//! The crate is plain Rust 2021 that Rust 1.63 builds, so that Debian's
//! toolchain with its wasm32 standard library can build plugins.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

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

/// How deeply arrays and maps may nest, decoding and encoding.
pub const MAX_DEPTH: usize = 128;

thread_local! {
    static FORMAT: RefCell<Format> = const { RefCell::new(Format::MsgPack) };
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The format of this plugin's calls.
pub fn format() -> Format {
    FORMAT.with(|f| *f.borrow())
}

/// An error of a plugin function, or of decoding or encoding a value; its
/// message reaches the host as the guest error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_string())
    }
}

fn err<T>(message: &str) -> Result<T, Error> {
    Err(Error(message.to_string()))
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
        *b = vec![0; len.max(0) as usize];
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

/// The input of the current call, given the `ptr` and `len` the host called
/// the plugin function with. The bytes are moved out of the buffer that
/// `anywasm_alloc` gave the host, so they stay valid whatever happens next;
/// a second call, or a `ptr`/`len` that is not that buffer, is an error.
pub fn input(ptr: i32, len: i32) -> Result<Vec<u8>, Error> {
    INPUT.with(|b| {
        let mut b = b.borrow_mut();
        if len == 0 {
            return Ok(Vec::new());
        }
        let ours = b.as_ptr() as usize == ptr as u32 as usize && b.len() == len as u32 as usize;
        if len < 0 || !ours {
            return err("the input was already taken, or ptr/len are not the host's input");
        }
        Ok(std::mem::take(&mut *b))
    })
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
    // SAFETY: `message` is a valid buffer of `len` bytes for the call.
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
    // SAFETY: `line` is a valid buffer for the call.
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
        // SAFETY: `key` is a valid buffer for the call.
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
        // SAFETY: `bytes` is a valid buffer for the call.
        let pending = unsafe { imports::echo(bytes.as_ptr(), bytes.len() as i32) };
        take(pending).map_err(|(_, m)| String::from_utf8_lossy(&m).into_owned())
    }
    #[cfg(not(target_arch = "wasm32"))]
    Ok(bytes.to_vec())
}

// ---- plugin functions ------------------------------------------------------

/// Runs a plugin function: decodes the input in the host's format into `I`,
/// calls `f`, and encodes its `Ok` value or reports its `Err` as the guest
/// error. With the raw format, the input is [`Value::Bin`] and the output
/// must be bytes or a string. [`plugin_fn!`] writes the call.
pub fn run<I: FromValue, O: IntoValue, E: fmt::Display>(
    ptr: i32,
    len: i32,
    f: fn(I) -> Result<O, E>,
) -> i64 {
    let bytes = match input(ptr, len) {
        Ok(b) => b,
        Err(e) => return fail(&e.0),
    };
    let format = format();
    let value = if format == Format::Raw {
        Value::Bin(bytes)
    } else {
        match Value::decode(format, &bytes) {
            Ok(v) => v,
            Err(e) => return fail(&format!("the input does not decode: {}", e)),
        }
    };
    let arg = match I::from_value(value) {
        Ok(a) => a,
        Err(e) => return fail(&format!("unexpected input: {}", e)),
    };
    let out = match f(arg) {
        Ok(out) => out.into_value(),
        Err(e) => return fail(&e.to_string()),
    };
    if format == Format::Raw {
        return match out {
            Value::Bin(b) => output(b),
            Value::Str(s) => output(s.into_bytes()),
            _ => fail("with the raw format a plugin function returns bytes or a string"),
        };
    }
    match out.encode(format) {
        Ok(b) => output(b),
        Err(e) => fail(&format!("the output does not encode: {}", e)),
    }
}

/// Declares a plugin function as a plain Rust function of one argument
/// ([`FromValue`]) returning `Result<T, E>` (`T:` [`IntoValue`],
/// `E: Display`): the export the host calls, with the input decoded and the
/// output encoded in the host's format.
///
/// ```ignore
/// anywasm_pdk::plugin_fn! {
///     pub fn add(pair: (i64, i64)) -> Result<i64, anywasm_pdk::Error> {
///         pair.0.checked_add(pair.1).ok_or_else(|| "overflow".into())
///     }
/// }
/// ```
#[macro_export]
macro_rules! plugin_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($arg:ident : $in:ty) -> $out:ty $body:block) => {
        $(#[$meta])*
        #[no_mangle]
        $vis extern "C" fn $name(ptr: i32, len: i32) -> i64 {
            fn inner($arg: $in) -> $out $body
            $crate::run(ptr, len, inner)
        }
    };
}

// ---- the data model --------------------------------------------------------

/// One value of the MessagePack or JSON data model. Integers decode as
/// [`Value::U64`] when non-negative and [`Value::I64`] when negative (as
/// `rmpv` and `serde_json` do); JSON numbers with a fraction or exponent
/// decode as [`Value::F64`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// MessagePack nil, JSON null.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A non-negative integer.
    U64(u64),
    /// A negative integer (a non-negative one is normalised to `U64` by
    /// [`Value::from`]).
    I64(i64),
    /// A MessagePack float 32 (written as a number in JSON).
    F32(f32),
    /// A double.
    F64(f64),
    /// A UTF-8 string.
    Str(String),
    /// Bytes (MessagePack bin; in JSON an array of numbers, as serde does).
    Bin(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, in document order (JSON keys must be strings).
    Map(Vec<(Value, Value)>),
    /// A MessagePack extension: type and data (not representable in JSON).
    Ext(i8, Vec<u8>),
}

impl Value {
    /// The value under string key `key`, if this is a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one that fits in a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(n) => Some(n),
            Value::I64(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    /// The integer, if this is one that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U64(n) => i64::try_from(n).ok(),
            Value::I64(n) => Some(n),
            _ => None,
        }
    }

    /// The number as a double (integers converted).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::U64(n) => Some(n as f64),
            Value::I64(n) => Some(n as f64),
            Value::F32(x) => Some(f64::from(x)),
            Value::F64(x) => Some(x),
            _ => None,
        }
    }

    /// Encodes in `format` (raw is treated as JSON).
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        if format == Format::MsgPack {
            mp_write(&mut out, self, 0)?;
        } else {
            json_write(&mut out, self, 0)?;
        }
        Ok(out)
    }

    /// Decodes one value in `format` (raw is treated as JSON); trailing
    /// bytes are an error.
    pub fn decode(format: Format, bytes: &[u8]) -> Result<Value, Error> {
        let mut c = Cursor { b: bytes, i: 0 };
        let v = if format == Format::MsgPack {
            mp_read(&mut c, 0)?
        } else {
            let v = json_read(&mut c, 0)?;
            c.ws();
            v
        };
        if c.i != bytes.len() {
            return err("trailing bytes after the value");
        }
        Ok(v)
    }
}

/// Bytes that travel as MessagePack bin (like `serde_bytes`); a `Vec<u8>`
/// travels as an array of numbers, as serde writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

/// Conversion from a decoded [`Value`] (a plugin function's argument).
pub trait FromValue: Sized {
    /// Converts, or says what did not match.
    fn from_value(v: Value) -> Result<Self, Error>;
}

/// Conversion into a [`Value`] (a plugin function's result).
pub trait IntoValue {
    /// Converts.
    fn into_value(self) -> Value;
}

macro_rules! from_impls {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                v.into_value()
            }
        }
    )*};
}

from_impls!(
    (),
    bool,
    String,
    &str,
    u8,
    u16,
    u32,
    u64,
    usize,
    i8,
    i16,
    i32,
    i64,
    isize,
    f32,
    f64,
    Bytes,
    Map
);

impl<T: IntoValue> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        v.into_value()
    }
}

impl<T: IntoValue> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.into_value()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Bool(_) => "a boolean",
        Value::U64(_) | Value::I64(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::Str(_) => "a string",
        Value::Bin(_) => "binary",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an extension value",
    }
}

fn expected<T>(what: &str, got: &Value) -> Result<T, Error> {
    Err(Error(format!("expected {}, found {}", what, kind(got))))
}

impl FromValue for Value {
    fn from_value(v: Value) -> Result<Self, Error> {
        Ok(v)
    }
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

impl FromValue for () {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Nil => Ok(()),
            other => expected("nil", &other),
        }
    }
}

impl IntoValue for () {
    fn into_value(self) -> Value {
        Value::Nil
    }
}

impl FromValue for bool {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Bool(b) => Ok(b),
            other => expected("a boolean", &other),
        }
    }
}

impl IntoValue for bool {
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}

impl FromValue for String {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Str(s) => Ok(s),
            other => expected("a string", &other),
        }
    }
}

impl IntoValue for String {
    fn into_value(self) -> Value {
        Value::Str(self)
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Value {
        Value::Str(self.to_string())
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: Value) -> Result<Self, Error> {
                let fits = match v {
                    Value::U64(n) => <$t>::try_from(n).ok(),
                    Value::I64(n) => <$t>::try_from(n).ok(),
                    other => return expected("an integer", &other),
                };
                fits.ok_or_else(|| Error(format!("integer out of range for {}", stringify!($t))))
            }
        }

        impl IntoValue for $t {
            fn into_value(self) -> Value {
                if (self as i128) >= 0 {
                    Value::U64(self as u64)
                } else {
                    Value::I64(self as i64)
                }
            }
        }
    )*};
}

integers!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl FromValue for f64 {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v.as_f64() {
            Some(x) => Ok(x),
            None => expected("a number", &v),
        }
    }
}

impl IntoValue for f64 {
    fn into_value(self) -> Value {
        Value::F64(self)
    }
}

impl FromValue for f32 {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::F32(x) => Ok(x),
            other => match other.as_f64() {
                Some(x) => Ok(x as f32),
                None => expected("a number", &other),
            },
        }
    }
}

impl IntoValue for f32 {
    fn into_value(self) -> Value {
        Value::F32(self)
    }
}

impl FromValue for Bytes {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Bin(b) => Ok(Bytes(b)),
            Value::Str(s) => Ok(Bytes(s.into_bytes())),
            Value::Array(items) => items
                .into_iter()
                .map(u8::from_value)
                .collect::<Result<Vec<u8>, Error>>()
                .map(Bytes),
            other => expected("binary", &other),
        }
    }
}

impl IntoValue for Bytes {
    fn into_value(self) -> Value {
        Value::Bin(self.0)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Nil => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Value {
        match self {
            Some(v) => v.into_value(),
            None => Value::Nil,
        }
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(v: Value) -> Result<Self, Error> {
        match v {
            Value::Array(items) => items.into_iter().map(T::from_value).collect(),
            other => expected("an array", &other),
        }
    }
}

impl<T: IntoValue> IntoValue for Vec<T> {
    fn into_value(self) -> Value {
        Value::Array(self.into_iter().map(IntoValue::into_value).collect())
    }
}

fn string_map<T: FromValue>(v: Value) -> Result<Vec<(String, T)>, Error> {
    match v {
        Value::Map(entries) => entries
            .into_iter()
            .map(|(k, v)| Ok((String::from_value(k)?, T::from_value(v)?)))
            .collect(),
        other => expected("a map", &other),
    }
}

impl<T: FromValue> FromValue for BTreeMap<String, T> {
    fn from_value(v: Value) -> Result<Self, Error> {
        string_map(v).map(|e| e.into_iter().collect())
    }
}

impl<T: IntoValue> IntoValue for BTreeMap<String, T> {
    fn into_value(self) -> Value {
        Value::Map(
            self.into_iter()
                .map(|(k, v)| (Value::Str(k), v.into_value()))
                .collect(),
        )
    }
}

impl<T: FromValue> FromValue for HashMap<String, T> {
    fn from_value(v: Value) -> Result<Self, Error> {
        string_map(v).map(|e| e.into_iter().collect())
    }
}

impl<T: IntoValue> IntoValue for HashMap<String, T> {
    fn into_value(self) -> Value {
        Value::Map(
            self.into_iter()
                .map(|(k, v)| (Value::Str(k), v.into_value()))
                .collect(),
        )
    }
}

macro_rules! tuples {
    ($(($n:expr; $($t:ident $i:tt),+)),*) => {$(
        impl<$($t: FromValue),+> FromValue for ($($t,)+) {
            fn from_value(v: Value) -> Result<Self, Error> {
                match v {
                    Value::Array(items) if items.len() == $n => {
                        let mut items = items.into_iter();
                        Ok(($($t::from_value(items.next().unwrap_or(Value::Nil))?,)+))
                    }
                    other => expected(concat!("an array of ", stringify!($n)), &other),
                }
            }
        }

        impl<$($t: IntoValue),+> IntoValue for ($($t,)+) {
            fn into_value(self) -> Value {
                Value::Array(vec![$(self.$i.into_value()),+])
            }
        }
    )*};
}

tuples!((1; A 0), (2; A 0, B 1), (3; A 0, B 1, C 2), (4; A 0, B 1, C 2, D 3));

/// A map with string keys, in insertion order: the shape of most plugin
/// inputs and outputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map(pub Vec<(String, Value)>);

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Map(Vec::new())
    }

    /// Adds or replaces `key`.
    pub fn insert(&mut self, key: &str, value: impl IntoValue) {
        let value = value.into_value();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The string under `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The non-negative integer under `key`.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// The integer under `key`.
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// The number under `key`, as a double.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// Encodes in `format`.
    pub fn encode(&self, format: Format) -> Result<Vec<u8>, Error> {
        self.clone().into_value().encode(format)
    }

    /// Decodes a map with string keys in `format`.
    pub fn decode(format: Format, bytes: &[u8]) -> Result<Self, Error> {
        Map::from_value(Value::decode(format, bytes)?)
    }
}

impl FromValue for Map {
    fn from_value(v: Value) -> Result<Self, Error> {
        string_map(v).map(Map)
    }
}

impl IntoValue for Map {
    fn into_value(self) -> Value {
        Value::Map(
            self.0
                .into_iter()
                .map(|(k, v)| (Value::Str(k), v))
                .collect(),
        )
    }
}

// ---- codecs ----------------------------------------------------------------

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, Error> {
        match self.b.get(self.i) {
            Some(b) => {
                self.i += 1;
                Ok(*b)
            }
            None => err("unexpected end of input"),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Error> {
        let left = (self.b.len() - self.i) as u64;
        if n > left {
            return err("unexpected end of input");
        }
        let s = &self.b[self.i..self.i + n as usize];
        self.i += n as usize;
        Ok(s)
    }

    fn be(&mut self, n: u64) -> Result<u64, Error> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    }

    fn left(&self) -> u64 {
        (self.b.len() - self.i) as u64
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }
}

fn deeper(depth: usize) -> Result<usize, Error> {
    if depth >= MAX_DEPTH {
        return Err(Error(format!("nested deeper than {} levels", MAX_DEPTH)));
    }
    Ok(depth + 1)
}

fn mp_len(
    out: &mut Vec<u8>,
    n: usize,
    small: Option<(u8, usize)>,
    tags: [u8; 3],
) -> Result<(), Error> {
    match small {
        Some((base, limit)) if n < limit => out.push(base | n as u8),
        _ if n <= 0xff && tags[0] != 0 => {
            out.push(tags[0]);
            out.push(n as u8);
        }
        _ if n <= 0xffff => {
            out.push(tags[1]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            let n = u32::try_from(n).map_err(|_| Error::from("longer than 2^32 - 1"))?;
            out.push(tags[2]);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    Ok(())
}

fn mp_write(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), Error> {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::U64(n) => mp_u64(out, *n),
        Value::I64(n) if *n >= 0 => mp_u64(out, *n as u64),
        Value::I64(n) => {
            let n = *n;
            if n >= -32 {
                out.push(n as u8);
            } else if n >= -128 {
                out.push(0xd0);
                out.push(n as u8);
            } else if n >= -32768 {
                out.push(0xd1);
                out.extend_from_slice(&(n as i16).to_be_bytes());
            } else if n >= -2147483648 {
                out.push(0xd2);
                out.extend_from_slice(&(n as i32).to_be_bytes());
            } else {
                out.push(0xd3);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::F32(x) => {
            out.push(0xca);
            out.extend_from_slice(&x.to_bits().to_be_bytes());
        }
        Value::F64(x) => {
            out.push(0xcb);
            out.extend_from_slice(&x.to_bits().to_be_bytes());
        }
        Value::Str(s) => {
            mp_len(out, s.len(), Some((0xa0, 32)), [0xd9, 0xda, 0xdb])?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bin(b) => {
            mp_len(out, b.len(), None, [0xc4, 0xc5, 0xc6])?;
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            let depth = deeper(depth)?;
            mp_len(out, items.len(), Some((0x90, 16)), [0, 0xdc, 0xdd])?;
            for item in items {
                mp_write(out, item, depth)?;
            }
        }
        Value::Map(entries) => {
            let depth = deeper(depth)?;
            mp_len(out, entries.len(), Some((0x80, 16)), [0, 0xde, 0xdf])?;
            for (k, v) in entries {
                mp_write(out, k, depth)?;
                mp_write(out, v, depth)?;
            }
        }
        Value::Ext(ty, data) => {
            match data.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                n => mp_len(out, n, None, [0xc7, 0xc8, 0xc9])?,
            }
            out.push(*ty as u8);
            out.extend_from_slice(data);
        }
    }
    Ok(())
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

fn mp_int(n: i64) -> Value {
    if n >= 0 {
        Value::U64(n as u64)
    } else {
        Value::I64(n)
    }
}

fn mp_read(c: &mut Cursor, depth: usize) -> Result<Value, Error> {
    let b = c.byte()?;
    let (str_len, bin_len, arr_len, map_len, ext_len) = match b {
        0x00..=0x7f => return Ok(Value::U64(u64::from(b))),
        0xe0..=0xff => return Ok(Value::I64(i64::from(b as i8))),
        0x80..=0x8f => (None, None, None, Some(u64::from(b & 0x0f)), None),
        0x90..=0x9f => (None, None, Some(u64::from(b & 0x0f)), None, None),
        0xa0..=0xbf => (Some(u64::from(b & 0x1f)), None, None, None, None),
        0xc0 => return Ok(Value::Nil),
        0xc2 => return Ok(Value::Bool(false)),
        0xc3 => return Ok(Value::Bool(true)),
        0xc4 => (None, Some(c.be(1)?), None, None, None),
        0xc5 => (None, Some(c.be(2)?), None, None, None),
        0xc6 => (None, Some(c.be(4)?), None, None, None),
        0xc7 => (None, None, None, None, Some(c.be(1)?)),
        0xc8 => (None, None, None, None, Some(c.be(2)?)),
        0xc9 => (None, None, None, None, Some(c.be(4)?)),
        0xca => return Ok(Value::F32(f32::from_bits(c.be(4)? as u32))),
        0xcb => return Ok(Value::F64(f64::from_bits(c.be(8)?))),
        0xcc => return Ok(Value::U64(c.be(1)?)),
        0xcd => return Ok(Value::U64(c.be(2)?)),
        0xce => return Ok(Value::U64(c.be(4)?)),
        0xcf => return Ok(Value::U64(c.be(8)?)),
        0xd0 => return Ok(mp_int(i64::from(c.be(1)? as u8 as i8))),
        0xd1 => return Ok(mp_int(i64::from(c.be(2)? as u16 as i16))),
        0xd2 => return Ok(mp_int(i64::from(c.be(4)? as u32 as i32))),
        0xd3 => return Ok(mp_int(c.be(8)? as i64)),
        0xd4 => (None, None, None, None, Some(1)),
        0xd5 => (None, None, None, None, Some(2)),
        0xd6 => (None, None, None, None, Some(4)),
        0xd7 => (None, None, None, None, Some(8)),
        0xd8 => (None, None, None, None, Some(16)),
        0xd9 => (Some(c.be(1)?), None, None, None, None),
        0xda => (Some(c.be(2)?), None, None, None, None),
        0xdb => (Some(c.be(4)?), None, None, None, None),
        0xdc => (None, None, Some(c.be(2)?), None, None),
        0xdd => (None, None, Some(c.be(4)?), None, None),
        0xde => (None, None, None, Some(c.be(2)?), None),
        0xdf => (None, None, None, Some(c.be(4)?), None),
        _ => return err("0xc1 starts no MessagePack value"),
    };
    if let Some(n) = str_len {
        let bytes = c.take(n)?;
        return String::from_utf8(bytes.to_vec())
            .map(Value::Str)
            .map_err(|_| Error::from("a string is not UTF-8"));
    }
    if let Some(n) = bin_len {
        return Ok(Value::Bin(c.take(n)?.to_vec()));
    }
    if let Some(n) = ext_len {
        let ty = c.byte()? as i8;
        return Ok(Value::Ext(ty, c.take(n)?.to_vec()));
    }
    let depth = deeper(depth)?;
    if let Some(n) = arr_len {
        // Every element takes a byte: a count the input cannot hold is
        // refused before anything is allocated for it.
        if n > c.left() {
            return err("an array claims more elements than the input holds");
        }
        let mut items = Vec::with_capacity(n as usize);
        for _ in 0..n {
            items.push(mp_read(c, depth)?);
        }
        return Ok(Value::Array(items));
    }
    let n = map_len.unwrap_or(0);
    if n.saturating_mul(2) > c.left() {
        return err("a map claims more entries than the input holds");
    }
    let mut entries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let k = mp_read(c, depth)?;
        let v = mp_read(c, depth)?;
        entries.push((k, v));
    }
    Ok(Value::Map(entries))
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
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

/// Floats as serde_json writes them: the shortest text that reads back,
/// always with a fraction or an exponent; null for NaN and infinities.
fn json_float(out: &mut Vec<u8>, text: String, finite: bool) {
    if !finite {
        out.extend_from_slice(b"null");
        return;
    }
    out.extend_from_slice(text.as_bytes());
    if !text.contains(['.', 'e', 'E']) {
        out.extend_from_slice(b".0");
    }
}

fn json_write(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), Error> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::U64(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::I64(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::F32(x) => json_float(out, format!("{:?}", x), x.is_finite()),
        Value::F64(x) => json_float(out, format!("{:?}", x), x.is_finite()),
        Value::Str(s) => json_str(out, s),
        Value::Bin(b) => {
            deeper(depth)?;
            out.push(b'[');
            for (i, byte) in b.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(byte.to_string().as_bytes());
            }
            out.push(b']');
        }
        Value::Array(items) => {
            let depth = deeper(depth)?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_write(out, item, depth)?;
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            let depth = deeper(depth)?;
            out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Value::Str(s) => json_str(out, s),
                    other => {
                        return Err(Error(format!(
                            "a JSON object key must be a string, not {}",
                            kind(other)
                        )))
                    }
                }
                out.push(b':');
                json_write(out, v, depth)?;
            }
            out.push(b'}');
        }
        Value::Ext(..) => return err("JSON has no extension types"),
    }
    Ok(())
}

fn hex4(c: &mut Cursor) -> Result<u32, Error> {
    let digits = c.take(4)?;
    let text = std::str::from_utf8(digits).map_err(|_| Error::from("bad \\u escape"))?;
    u32::from_str_radix(text, 16).map_err(|_| Error::from("bad \\u escape"))
}

fn json_string(c: &mut Cursor) -> Result<String, Error> {
    if c.byte()? != b'"' {
        return err("expected a JSON string");
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
                    let mut code = hex4(c)?;
                    if (0xdc00..0xe000).contains(&code) {
                        return err("a lone low surrogate in a JSON string");
                    }
                    if (0xd800..0xdc00).contains(&code) {
                        if c.byte()? != b'\\' || c.byte()? != b'u' {
                            return err("a lone high surrogate in a JSON string");
                        }
                        let low = hex4(c)?;
                        if !(0xdc00..0xe000).contains(&low) {
                            return err("a lone high surrogate in a JSON string");
                        }
                        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                    }
                    let ch = char::from_u32(code).ok_or_else(|| Error::from("bad \\u escape"))?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => return err("a bad escape in a JSON string"),
            },
            b if b < 0x20 => return err("a control character in a JSON string"),
            b => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| Error::from("a string is not UTF-8"))
}

/// A JSON number as serde_json reads it: integers as `U64`/`I64` when they
/// fit (`-0` and integers below -2^63 as floats), everything else as `F64`;
/// out-of-range floats are an error.
fn json_number(c: &mut Cursor) -> Result<Value, Error> {
    let start = c.i;
    let mut integer = true;
    if c.peek() == Some(b'-') {
        c.i += 1;
    }
    match c.peek() {
        Some(b'0') => c.i += 1,
        Some(b'1'..=b'9') => {
            while let Some(b'0'..=b'9') = c.peek() {
                c.i += 1;
            }
        }
        _ => return err("a malformed JSON number"),
    }
    if c.peek() == Some(b'.') {
        integer = false;
        c.i += 1;
        if !matches!(c.peek(), Some(b'0'..=b'9')) {
            return err("a malformed JSON number");
        }
        while let Some(b'0'..=b'9') = c.peek() {
            c.i += 1;
        }
    }
    if let Some(b'e' | b'E') = c.peek() {
        integer = false;
        c.i += 1;
        if let Some(b'+' | b'-') = c.peek() {
            c.i += 1;
        }
        if !matches!(c.peek(), Some(b'0'..=b'9')) {
            return err("a malformed JSON number");
        }
        while let Some(b'0'..=b'9') = c.peek() {
            c.i += 1;
        }
    }
    let text = std::str::from_utf8(&c.b[start..c.i]).map_err(|_| Error::from("bad number"))?;
    if integer {
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Value::U64(n));
        }
        if let Ok(n) = text.parse::<i64>() {
            if n != 0 {
                return Ok(Value::I64(n));
            }
        }
    }
    let x: f64 = text
        .parse()
        .map_err(|_| Error::from("a malformed JSON number"))?;
    if !x.is_finite() {
        return err("a JSON number out of range");
    }
    Ok(Value::F64(x))
}

fn json_read(c: &mut Cursor, depth: usize) -> Result<Value, Error> {
    c.ws();
    match c.peek() {
        None => err("unexpected end of JSON input"),
        Some(b'"') => json_string(c).map(Value::Str),
        Some(b'n') => json_word(c, b"null", Value::Nil),
        Some(b't') => json_word(c, b"true", Value::Bool(true)),
        Some(b'f') => json_word(c, b"false", Value::Bool(false)),
        Some(b'-' | b'0'..=b'9') => json_number(c),
        Some(b'[') => {
            let depth = deeper(depth)?;
            c.i += 1;
            let mut items = Vec::new();
            c.ws();
            if c.peek() == Some(b']') {
                c.i += 1;
                return Ok(Value::Array(items));
            }
            loop {
                items.push(json_read(c, depth)?);
                c.ws();
                match c.byte()? {
                    b',' => continue,
                    b']' => return Ok(Value::Array(items)),
                    _ => return err("expected `,` or `]` in a JSON array"),
                }
            }
        }
        Some(b'{') => {
            let depth = deeper(depth)?;
            c.i += 1;
            let mut entries = Vec::new();
            c.ws();
            if c.peek() == Some(b'}') {
                c.i += 1;
                return Ok(Value::Map(entries));
            }
            loop {
                c.ws();
                let key = json_string(c)?;
                c.ws();
                if c.byte()? != b':' {
                    return err("expected `:` in a JSON object");
                }
                let v = json_read(c, depth)?;
                entries.push((Value::Str(key), v));
                c.ws();
                match c.byte()? {
                    b',' => continue,
                    b'}' => return Ok(Value::Map(entries)),
                    _ => return err("expected `,` or `}` in a JSON object"),
                }
            }
        }
        Some(_) => err("unexpected character in JSON input"),
    }
}

fn json_word(c: &mut Cursor, word: &[u8], v: Value) -> Result<Value, Error> {
    if c.take(word.len() as u64).ok() != Some(word) {
        return err("unexpected word in JSON input");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip_and_refuse_garbage() {
        let mut m = Map::new();
        m.insert("path", "a \"quoted\" name\n");
        m.insert("size", u64::MAX);
        m.insert("small", 7u8);
        m.insert("neg", -70000i64);
        m.insert("long", "x".repeat(300));
        m.insert("f", 0.1f64);
        for f in [Format::MsgPack, Format::Json] {
            assert_eq!(Map::decode(f, &m.encode(f).unwrap()).unwrap(), m);
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

    #[test]
    fn hostile_inputs_are_errors() {
        // Deep nesting.
        let deep = vec![0x91u8; 10_000];
        assert!(Value::decode(Format::MsgPack, &deep).is_err());
        let deep = "[".repeat(10_000);
        assert!(Value::decode(Format::Json, deep.as_bytes()).is_err());
        // Counts the input cannot hold.
        assert!(Value::decode(Format::MsgPack, &[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Value::decode(Format::MsgPack, &[0xdf, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Value::decode(Format::MsgPack, &[0xdb, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Value::decode(Format::Json, br#""\ud800""#).is_err());
        assert!(Value::decode(Format::Json, b"1e400").is_err());
        assert!(Value::decode(Format::Json, b"01").is_err());
    }

    #[test]
    fn typed_conversions() {
        let v = (String::from("a"), -3i32, Some(2.5f64)).into_value();
        let back: (String, i32, Option<f64>) = FromValue::from_value(v).unwrap();
        assert_eq!(back, ("a".to_string(), -3, Some(2.5)));
        assert!(u8::from_value(Value::U64(300)).is_err());
        assert!(String::from_value(Value::U64(1)).is_err());
    }
}
