//! The one error type of the layer, and the engine-neutral trap codes.

use std::fmt;

use crate::types::ExternType;

/// Shorthand for `Result<T, anywasm_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why WebAssembly execution stopped abnormally.
///
/// Every backend maps its own trap representation to these codes, so a host
/// can react to a trap the same way whatever engine ran the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrapCode {
    /// An `unreachable` instruction was executed.
    Unreachable,
    /// A load or store was outside the bounds of a linear memory.
    MemoryOutOfBounds,
    /// A table access or `call_indirect` index was outside the table.
    TableOutOfBounds,
    /// `call_indirect` found a function of another type.
    IndirectCallTypeMismatch,
    /// A null reference was called or dereferenced.
    NullReference,
    /// Signed integer division overflowed (`i32::MIN / -1`).
    IntegerOverflow,
    /// Integer division or remainder by zero.
    DivisionByZero,
    /// A float could not be converted to an integer (NaN or out of range).
    BadConversionToInteger,
    /// The wasm call stack was exhausted (too deep recursion).
    StackOverflow,
    /// The store ran out of fuel.
    OutOfFuel,
    /// The store's deadline passed while code was running.
    Deadline,
    /// The store was interrupted through an [`InterruptHandle`](crate::InterruptHandle).
    Interrupted,
    /// A misaligned atomic access (threads proposal).
    UnalignedAtomic,
    /// A thrown exception was not caught (exception-handling proposal).
    UncaughtException,
    /// Allocating memory or table space failed during execution.
    AllocationFailed,
    /// A trap the layer has no neutral code for; the message says what it was.
    Other,
}

impl TrapCode {
    /// A short, stable description of the trap.
    pub fn message(self) -> &'static str {
        match self {
            TrapCode::Unreachable => "unreachable executed",
            TrapCode::MemoryOutOfBounds => "out of bounds memory access",
            TrapCode::TableOutOfBounds => "out of bounds table access",
            TrapCode::IndirectCallTypeMismatch => "indirect call type mismatch",
            TrapCode::NullReference => "null reference",
            TrapCode::IntegerOverflow => "integer overflow",
            TrapCode::DivisionByZero => "integer divide by zero",
            TrapCode::BadConversionToInteger => "invalid conversion to integer",
            TrapCode::StackOverflow => "call stack exhausted",
            TrapCode::OutOfFuel => "all fuel consumed",
            TrapCode::Deadline => "deadline exceeded",
            TrapCode::Interrupted => "interrupted by the host",
            TrapCode::UnalignedAtomic => "unaligned atomic access",
            TrapCode::UncaughtException => "uncaught exception",
            TrapCode::AllocationFailed => "allocation failed",
            TrapCode::Other => "trap",
        }
    }
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// What went wrong while resolving one import.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkErrorKind {
    /// Nothing was defined under this module and name.
    Missing,
    /// Something was defined, but of an incompatible type.
    Incompatible {
        /// The definition that was found.
        found: ExternType,
    },
    /// The host refused this import (for example, not granted to a plugin).
    Denied,
}

/// The error type of every fallible operation in the layer.
///
/// Variants carry the backend that failed where it matters, so an error from a
/// multi-engine program says which engine produced it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid WebAssembly module (malformed or invalid), or the
    /// engine could not compile it.
    #[error("invalid module ({backend}): {message}")]
    Compile {
        /// The backend that rejected the module, or `"anywasm"` for checks done by the layer.
        backend: &'static str,
        /// The engine's explanation.
        message: String,
    },

    /// WebAssembly text could not be parsed.
    #[error("invalid WebAssembly text: {message}")]
    Wat {
        /// The parser's explanation, with line and column.
        message: String,
    },

    /// An import could not be satisfied.
    #[error("{0}")]
    Link(Box<LinkError>),

    /// WebAssembly code trapped.
    #[error("wasm trap ({backend}): {code}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Trap {
        /// The neutral trap code.
        code: TrapCode,
        /// The backend that ran the code.
        backend: &'static str,
        /// Extra detail from the engine (may be empty).
        message: String,
    },

    /// A host function returned an error; it is passed through unchanged.
    #[error("host function failed: {0}")]
    Host(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// The backend cannot do what was asked.
    #[error("{backend} does not support {feature}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// What is not supported.
        feature: String,
    },

    /// A feature the backend has was not switched on in the engine's
    /// [`Config`](crate::Config) (for example fuel without `consume_fuel`).
    #[error("{feature} is not enabled in this engine's Config (use Config::{setter})")]
    NotEnabled {
        /// What was asked for.
        feature: &'static str,
        /// The `Config` setter that enables it.
        setter: &'static str,
    },

    /// A named item does not exist (an export, a function, a global...).
    #[error("no {kind} named `{name}`")]
    NotFound {
        /// What kind of item was looked up.
        kind: &'static str,
        /// The name that was looked up.
        name: String,
    },

    /// A value or item had another type than required.
    #[error("type mismatch in {context}: expected {expected}, found {found}")]
    TypeMismatch {
        /// Where the mismatch happened (e.g. "argument 2 of `add`").
        context: String,
        /// What was required.
        expected: String,
        /// What was given.
        found: String,
    },

    /// A host access to linear memory fell outside the memory.
    #[error(
        "memory access out of bounds: {len} bytes at offset {offset} in a memory of {size} bytes"
    )]
    MemoryOutOfBounds {
        /// Start of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// Size of the memory in bytes.
        size: u64,
    },

    /// What a host function returns to throw a wasm exception (made by
    /// [`Caller::throw`](crate::Caller::throw), which parks the exception
    /// in the store); the call that ran the host function never sees it.
    #[error("a host function threw a wasm exception")]
    Thrown,

    /// A limit configured on the store or engine was reached (memory, table,
    /// instances), outside of running code.
    #[error("limit reached: {0}")]
    Limit(String),

    /// The on-disk code cache could not be used (see [`CodeCache`](crate::CodeCache)).
    #[error("code cache {path}: {message}")]
    CodeCache {
        /// The cache directory or entry.
        path: String,
        /// What was wrong.
        message: String,
    },

    /// A precompiled module blob was rejected.
    #[error("incompatible precompiled module: {0}")]
    Precompiled(String),

    /// A value of a wrong kind was passed to an operation (an out-of-range
    /// offset, a store mismatch, an index past the end).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A handle was used with a store other than the one that created it.
    /// Handles (functions, memories, tables, globals, instances,
    /// `externref`s) are valid only with their own store.
    #[error(
        "{item} belongs to another store; a handle is valid only with the store that created it"
    )]
    StoreMismatch {
        /// What was misused, e.g. "the function" or "argument 2".
        item: String,
    },

    /// A module was used with a store of another engine.
    #[error("{item} was compiled by another engine; a store runs only modules of its own engine")]
    EngineMismatch {
        /// What was misused.
        item: String,
    },

    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The guest asked to exit the process (WASI `proc_exit`). Not a failure
    /// of the host: the exit code is the program's result.
    #[error("guest exited with code {0}")]
    Exit(i32),

    /// Any other engine failure, with the backend's message.
    #[error("{backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The engine's message.
        message: String,
    },
}

/// Why one import could not be satisfied: which one, what it needs, what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    /// Import module name.
    pub module: String,
    /// Import field name.
    pub name: String,
    /// The type the module requires.
    pub expected: ExternType,
    /// What was wrong.
    pub kind: LinkErrorKind,
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&link_message(
            &self.module,
            &self.name,
            &self.expected,
            &self.kind,
        ))
    }
}

impl std::error::Error for LinkError {}

fn link_message(module: &str, name: &str, expected: &ExternType, kind: &LinkErrorKind) -> String {
    match kind {
        LinkErrorKind::Missing => {
            format!("unknown import `{module}`.`{name}`: nothing defined with type {expected}")
        }
        LinkErrorKind::Incompatible { found } => format!(
            "incompatible import type for `{module}`.`{name}`: expected {expected}, found {found}"
        ),
        LinkErrorKind::Denied => {
            format!("import `{module}`.`{name}` with type {expected} is not permitted")
        }
    }
}

impl Error {
    /// Wraps any error as a host error.
    pub fn host(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Host(Box::new(err))
    }

    /// A host error carrying only a message.
    pub fn host_msg(msg: impl Into<String>) -> Self {
        Error::Host(msg.into().into())
    }

    /// Shorthand for [`Error::Backend`], with the engine's message.
    pub fn backend(backend: &'static str, message: impl std::fmt::Display) -> Self {
        Error::Backend {
            backend,
            message: message.to_string(),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(backend: &'static str, feature: impl Into<String>) -> Self {
        Error::Unsupported {
            backend,
            feature: feature.into(),
        }
    }

    /// Shorthand for [`Error::Link`].
    pub fn link(module: &str, name: &str, expected: ExternType, kind: LinkErrorKind) -> Self {
        Error::Link(Box::new(LinkError {
            module: module.to_string(),
            name: name.to_string(),
            expected,
            kind,
        }))
    }

    /// Shorthand for [`Error::Trap`].
    pub fn trap(backend: &'static str, code: TrapCode, message: impl Into<String>) -> Self {
        Error::Trap {
            code,
            backend,
            message: message.into(),
        }
    }

    /// The trap code, if this error is a trap.
    pub fn trap_code(&self) -> Option<TrapCode> {
        match self {
            Error::Trap { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is an [`Error::Unsupported`].
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported { .. })
    }

    /// The host error this error carries, if it is one, downcast to `E`.
    pub fn downcast_host<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::Host(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }
}

/// What a backend passes through its engine in place of a host function's
/// error, for engines that cannot carry an arbitrary error across their
/// frames: the error itself waits in the store
/// ([`StoreShared::park_host_error`](crate::StoreShared::park_host_error)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostErrorMarker;

impl fmt::Display for HostErrorMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a host function failed; the store holds its error")
    }
}

impl std::error::Error for HostErrorMarker {}

/// A host function panicked; carried as an [`Error::Host`] from the host
/// function, across the engine's frames, to the layer's call boundary.
///
/// Unwinding through an engine's frames is not something every engine
/// allows (wasmi 2 aborts the process with "panic in a function that cannot
/// unwind"), so the layer catches a host function's panic where the host
/// function returns, lets the guest see an ordinary host error, and resumes
/// the panic with its original payload when the call returns to the code
/// that called into wasm ([`Func::call`](crate::Func::call),
/// [`TypedFunc::call`](crate::TypedFunc::call), instantiation). The host's
/// caller therefore sees the same panic on every backend, and the store
/// stays usable.
pub struct HostPanic {
    message: String,
    payload: std::sync::Mutex<Option<Box<dyn std::any::Any + Send + 'static>>>,
}

impl HostPanic {
    /// The panic message (see [`panic_message`]), or "a non-string
    /// payload" for a payload of another type.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn take_payload(&self) -> Option<Box<dyn std::any::Any + Send + 'static>> {
        self.payload.lock().ok()?.take()
    }
}

impl std::fmt::Debug for HostPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPanic")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for HostPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host function panicked: {}", self.message)
    }
}

impl std::error::Error for HostPanic {}

/// The message of a panic payload: the `&str` or `String` that `panic!`
/// carries, or `None` for any other payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Runs a host function, turning a panic into an [`Error::Host`] holding a
/// [`HostPanic`] (see there).
#[inline]
pub(crate) fn catch_host_panic<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = panic_message(&*payload)
                .unwrap_or("a non-string payload")
                .to_string();
            Err(Error::Host(Box::new(HostPanic {
                message,
                payload: std::sync::Mutex::new(Some(payload)),
            })))
        }
    }
}

/// At a call boundary: resumes a host function's panic that crossed the
/// guest as an error; any other result passes through.
#[inline]
pub(crate) fn resume_host_panic<R>(r: Result<R>) -> Result<R> {
    if let Err(Error::Host(e)) = &r
        && let Some(panic) = e.downcast_ref::<HostPanic>()
        && let Some(payload) = panic.take_payload()
    {
        std::panic::resume_unwind(payload);
    }
    r
}
