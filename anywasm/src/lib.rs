//! # anywasm
//!
//! One WebAssembly API over [wasmtime], [wasmi] and [wasmer]: pick the engine
//! per platform with a cargo feature, or per run by name, without changing
//! host code.
//!
//! [wasmtime]: https://wasmtime.dev
//! [wasmi]: https://github.com/wasmi-labs/wasmi
//! [wasmer]: https://wasmer.io
//!
//! ```
//! use anywasm::{DefaultBackend, Engine, Instance, Module, Store};
//!
//! let engine = Engine::<DefaultBackend>::default_config()?;
//! let module = Module::from_wat(&engine, r#"(module
//!     (func (export "add") (param i32 i32) (result i32)
//!         local.get 0 local.get 1 i32.add))"#)?;
//! let mut store = Store::new(&engine, ());
//! let instance = Instance::new(&mut store, &module, &[])?;
//! let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
//! assert_eq!(add.call(&mut store, (40, 2))?, 42);
//! # Ok::<(), anywasm::Error>(())
//! ```
//!
//! ## Choosing the engine at run time
//!
//! [`with_backend!`] runs a block of code with `B` bound to the backend named
//! at run time. The block is compiled once per backend in the build, so typed
//! calls inside it go straight to that engine — the choice costs one branch,
//! not a dynamic dispatch per call.
//!
//! ```
//! use anywasm::{BackendKind, Engine, Module, Store, Instance};
//!
//! for kind in BackendKind::available() {
//!     let answer = anywasm::with_backend!(kind, B => {
//!         let engine = Engine::<B>::default_config()?;
//!         let module = Module::from_wat(&engine, "(module (func (export \"f\") (result i32) i32.const 7))")?;
//!         let mut store = Store::new(&engine, ());
//!         let instance = Instance::new(&mut store, &module, &[])?;
//!         instance.get_typed_func::<(), i32>(&mut store, "f")?.call(&mut store, ())?
//!     })?;
//!     assert_eq!(answer, 7);
//! }
//! # Ok::<(), anywasm::Error>(())
//! ```
//!
//! ## Crate features
//!
//! | feature | what it adds |
//! |---|---|
//! | `default-backend` (default) | wasmtime and wasmi on desktop and server targets ([`DefaultBackend`] is wasmtime); wasmi only on Android and iOS |
//! | `wasmtime` | the wasmtime backend (`Wasmtime`), not on Android/iOS |
//! | `wasmi` | the wasmi backend (`Wasmi`) |
//! | `wasmer` | the wasmer backend (`Wasmer`), not on Android/iOS |

pub use anywasm_core::*;

/// The wasmer backend (JIT).
#[cfg(has_wasmer)]
pub use anywasm_wasmer::Wasmer;
/// The wasmi backend (interpreter).
#[cfg(has_wasmi)]
pub use anywasm_wasmi::Wasmi;
/// The wasmtime backend (JIT).
#[cfg(has_wasmtime)]
pub use anywasm_wasmtime::Wasmtime;

/// The backend this build uses unless told otherwise: the platform's natural
/// engine among those compiled in (wasmtime, then wasmer, then wasmi on
/// desktop; wasmi first on Android and iOS).
#[cfg(all(has_wasmi, any(target_os = "android", target_os = "ios")))]
pub type DefaultBackend = Wasmi;
/// The backend this build uses unless told otherwise.
#[cfg(all(
    has_wasmtime,
    not(all(has_wasmi, any(target_os = "android", target_os = "ios")))
))]
pub type DefaultBackend = Wasmtime;
/// The backend this build uses unless told otherwise.
#[cfg(all(
    has_wasmer,
    not(has_wasmtime),
    not(all(has_wasmi, any(target_os = "android", target_os = "ios")))
))]
pub type DefaultBackend = Wasmer;
/// The backend this build uses unless told otherwise.
#[cfg(all(
    has_wasmi,
    not(has_wasmtime),
    not(has_wasmer),
    not(any(target_os = "android", target_os = "ios"))
))]
pub type DefaultBackend = Wasmi;

/// A backend named at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// wasmtime: Cranelift JIT.
    Wasmtime,
    /// wasmi: interpreter.
    Wasmi,
    /// wasmer: Cranelift JIT.
    Wasmer,
}

impl BackendKind {
    /// All backends anywasm knows, compiled in or not.
    pub const ALL: [BackendKind; 3] = [
        BackendKind::Wasmtime,
        BackendKind::Wasmi,
        BackendKind::Wasmer,
    ];

    /// The backend's name, as accepted by [`str::parse`].
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Wasmtime => "wasmtime",
            BackendKind::Wasmi => "wasmi",
            BackendKind::Wasmer => "wasmer",
        }
    }

    /// Whether this build contains the backend.
    pub fn is_available(self) -> bool {
        match self {
            BackendKind::Wasmtime => cfg!(has_wasmtime),
            BackendKind::Wasmi => cfg!(has_wasmi),
            BackendKind::Wasmer => cfg!(has_wasmer),
        }
    }

    /// The backends in this build.
    pub fn available() -> Vec<BackendKind> {
        Self::ALL.into_iter().filter(|k| k.is_available()).collect()
    }

    /// The error for a backend that is not in this build.
    pub fn not_available(self) -> Error {
        Error::unsupported(
            self.name(),
            format!(
                "running here: this build does not include it (enable the `{}` feature of `anywasm`)",
                self.name()
            ),
        )
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown backend `{s}` (expected one of: wasmtime, wasmi, wasmer)"
                ))
            })
    }
}

#[doc(hidden)]
pub mod __private {
    #[cfg(has_wasmtime)]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __if_wasmtime { ($($t:tt)*) => { $($t)* }; }
    #[cfg(not(has_wasmtime))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __if_wasmtime {
        ($($t:tt)*) => {};
    }

    #[cfg(has_wasmi)]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __if_wasmi { ($($t:tt)*) => { $($t)* }; }
    #[cfg(not(has_wasmi))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __if_wasmi {
        ($($t:tt)*) => {};
    }

    #[cfg(has_wasmer)]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __if_wasmer { ($($t:tt)*) => { $($t)* }; }
    #[cfg(not(has_wasmer))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __if_wasmer {
        ($($t:tt)*) => {};
    }
}

/// Runs a block with a type alias bound to the backend named at run time.
///
/// `with_backend!(kind, B => expr)` evaluates to `Ok(expr)` with `B` being
/// [`Wasmtime`], [`Wasmi`] or [`Wasmer`] as `kind` says, or to an
/// [`Error::Unsupported`] if that backend is not in this build. Inside the
/// block, `?` returns from the block with an `anywasm::Error`.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, $B:ident => $body:expr) => {{
        let __kind: $crate::BackendKind = $kind;
        'dispatch: {
            $crate::__if_wasmtime! {
                if __kind == $crate::BackendKind::Wasmtime {
                    #[allow(dead_code)]
                    type $B = $crate::Wasmtime;
                    // A closure so that `?` in the body returns from the body.
                    #[allow(clippy::redundant_closure_call)]
                    let __result = (|| -> $crate::Result<_> { Ok($body) })();
                    break 'dispatch __result;
                }
            }
            $crate::__if_wasmi! {
                if __kind == $crate::BackendKind::Wasmi {
                    #[allow(dead_code)]
                    type $B = $crate::Wasmi;
                    // A closure so that `?` in the body returns from the body.
                    #[allow(clippy::redundant_closure_call)]
                    let __result = (|| -> $crate::Result<_> { Ok($body) })();
                    break 'dispatch __result;
                }
            }
            $crate::__if_wasmer! {
                if __kind == $crate::BackendKind::Wasmer {
                    #[allow(dead_code)]
                    type $B = $crate::Wasmer;
                    // A closure so that `?` in the body returns from the body.
                    #[allow(clippy::redundant_closure_call)]
                    let __result = (|| -> $crate::Result<_> { Ok($body) })();
                    break 'dispatch __result;
                }
            }
            Err(__kind.not_available())
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for k in BackendKind::ALL {
            assert_eq!(k.name().parse::<BackendKind>().unwrap(), k);
            assert_eq!(k.name().to_uppercase().parse::<BackendKind>().unwrap(), k);
        }
        assert!(matches!(
            "v8".parse::<BackendKind>(),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn unavailable_backends_are_unsupported_not_a_panic() {
        for k in BackendKind::ALL {
            let r = with_backend!(k, B => B::NAME);
            match r {
                Ok(name) => {
                    assert!(k.is_available());
                    assert_eq!(name, k.name());
                }
                Err(e) => {
                    assert!(!k.is_available());
                    assert!(e.is_unsupported());
                }
            }
        }
    }
}
