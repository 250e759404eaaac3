//! Runtime values: the dynamic [`Val`] and the static [`WasmTy`] types used by
//! typed calls.

use std::fmt;

use crate::backend::Backend;
use crate::backend::BackendTypes;
use crate::error::Result;
use crate::externref::ExternRef;
use crate::func::Func;
use crate::store::{StoreId, check_store};
use crate::tag::ExnRef;
use crate::types::ValType;

/// A 128-bit SIMD vector, stored as its little-endian bit pattern.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct V128(pub u128);

impl V128 {
    /// The vector's 16 bytes in memory order.
    pub fn to_le_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// A vector from its 16 bytes in memory order.
    pub fn from_le_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_le_bytes(bytes))
    }
}

impl fmt::Debug for V128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V128({:#034x})", self.0)
    }
}

/// A WebAssembly value, for dynamic calls, globals and tables.
///
/// Floats are kept as their bit patterns so NaN payloads survive a round trip
/// through the host exactly (use [`Val::f32`] / [`Val::as_f32`] for `f32` values).
pub enum Val<B: BackendTypes> {
    /// An `i32`.
    I32(i32),
    /// An `i64`.
    I64(i64),
    /// An `f32`, as its IEEE bits.
    F32(u32),
    /// An `f64`, as its IEEE bits.
    F64(u64),
    /// A `v128`.
    V128(V128),
    /// A `funcref`; `None` is the null reference.
    FuncRef(Option<Func<B>>),
    /// An `externref`; `None` is the null reference.
    ExternRef(Option<ExternRef<B>>),
    /// An `exnref`; `None` is the null reference.
    ExnRef(Option<ExnRef<B>>),
}

impl<B: Backend> Clone for Val<B> {
    fn clone(&self) -> Self {
        match self {
            Val::I32(v) => Val::I32(*v),
            Val::I64(v) => Val::I64(*v),
            Val::F32(v) => Val::F32(*v),
            Val::F64(v) => Val::F64(*v),
            Val::V128(v) => Val::V128(*v),
            Val::FuncRef(v) => Val::FuncRef(v.clone()),
            Val::ExternRef(v) => Val::ExternRef(v.clone()),
            Val::ExnRef(v) => Val::ExnRef(v.clone()),
        }
    }
}

impl<B: Backend> fmt::Debug for Val<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::I32(v) => write!(f, "I32({v})"),
            Val::I64(v) => write!(f, "I64({v})"),
            Val::F32(v) => write!(f, "F32({})", f32::from_bits(*v)),
            Val::F64(v) => write!(f, "F64({})", f64::from_bits(*v)),
            Val::V128(v) => v.fmt(f),
            Val::FuncRef(None) => f.write_str("FuncRef(null)"),
            Val::FuncRef(Some(_)) => f.write_str("FuncRef(func)"),
            Val::ExternRef(None) => f.write_str("ExternRef(null)"),
            Val::ExternRef(Some(_)) => f.write_str("ExternRef(extern)"),
            Val::ExnRef(None) => f.write_str("ExnRef(null)"),
            Val::ExnRef(Some(_)) => f.write_str("ExnRef(exn)"),
        }
    }
}

impl<B: Backend> fmt::Display for Val<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::I32(v) => write!(f, "{v}"),
            Val::I64(v) => write!(f, "{v}"),
            Val::F32(v) => write!(f, "{}", f32::from_bits(*v)),
            Val::F64(v) => write!(f, "{}", f64::from_bits(*v)),
            Val::V128(v) => write!(f, "{:#034x}", v.0),
            Val::FuncRef(None) | Val::ExternRef(None) | Val::ExnRef(None) => f.write_str("null"),
            Val::FuncRef(Some(_)) => f.write_str("<funcref>"),
            Val::ExternRef(Some(_)) => f.write_str("<externref>"),
            Val::ExnRef(Some(_)) => f.write_str("<exnref>"),
        }
    }
}

impl<B: Backend> Val<B> {
    /// An `f32` value.
    pub fn f32(v: f32) -> Self {
        Val::F32(v.to_bits())
    }

    /// An `f64` value.
    pub fn f64(v: f64) -> Self {
        Val::F64(v.to_bits())
    }

    /// The zero / null value of a type.
    pub fn default_for(ty: ValType) -> Self {
        match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::V128 => Val::V128(V128(0)),
            ValType::FuncRef => Val::FuncRef(None),
            ValType::ExternRef => Val::ExternRef(None),
            ValType::ExnRef => Val::ExnRef(None),
        }
    }

    /// The value's type.
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::V128(_) => ValType::V128,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
            Val::ExnRef(_) => ValType::ExnRef,
        }
    }

    /// The `i32`, if this is one.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Val::I32(v) => Some(*v),
            _ => None,
        }
    }

    /// The `i64`, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// The `f32`, if this is one.
    pub fn as_f32(&self) -> Option<f32> {
        match self {
            Val::F32(v) => Some(f32::from_bits(*v)),
            _ => None,
        }
    }

    /// The `f64`, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::F64(v) => Some(f64::from_bits(*v)),
            _ => None,
        }
    }

    /// The `v128`, if this is one.
    pub fn as_v128(&self) -> Option<V128> {
        match self {
            Val::V128(v) => Some(*v),
            _ => None,
        }
    }

    /// The function reference, if this is a `funcref` (the inner `None` is null).
    pub fn as_funcref(&self) -> Option<Option<&Func<B>>> {
        match self {
            Val::FuncRef(v) => Some(v.as_ref()),
            _ => None,
        }
    }

    /// The extern reference, if this is an `externref` (the inner `None` is null).
    pub fn as_externref(&self) -> Option<Option<&ExternRef<B>>> {
        match self {
            Val::ExternRef(v) => Some(v.as_ref()),
            _ => None,
        }
    }

    /// The exception reference, if this is an `exnref` (the inner `None` is null).
    pub fn as_exnref(&self) -> Option<Option<&ExnRef<B>>> {
        match self {
            Val::ExnRef(v) => Some(v.as_ref()),
            _ => None,
        }
    }

    /// Whether this is a null reference.
    pub fn is_null(&self) -> bool {
        matches!(
            self,
            Val::FuncRef(None) | Val::ExternRef(None) | Val::ExnRef(None)
        )
    }

    /// Refuses a reference owned by another store than `store`.
    pub(crate) fn check_store(&self, store: StoreId, item: impl FnOnce() -> String) -> Result<()> {
        let owner = match self {
            Val::FuncRef(Some(f)) => f.store_id(),
            Val::ExternRef(Some(r)) => r.store_id(),
            Val::ExnRef(Some(r)) => r.store_id(),
            _ => return Ok(()),
        };
        check_store(owner, store, item)
    }
}

macro_rules! val_from {
    ($($t:ty => $variant:ident $(. $conv:ident ())? ),*) => {$(
        impl<B: Backend> From<$t> for Val<B> {
            fn from(v: $t) -> Self {
                Val::$variant(v $(. $conv())?)
            }
        }
    )*};
}
val_from!(i32 => I32, i64 => I64, f32 => F32.to_bits(), f64 => F64.to_bits(), V128 => V128);

impl<B: Backend> From<u32> for Val<B> {
    fn from(v: u32) -> Self {
        Val::I32(v as i32)
    }
}

impl<B: Backend> From<u64> for Val<B> {
    fn from(v: u64) -> Self {
        Val::I64(v as i64)
    }
}

impl<B: Backend> From<Func<B>> for Val<B> {
    fn from(f: Func<B>) -> Self {
        Val::FuncRef(Some(f))
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that is exactly one WebAssembly value type: `i32`, `u32`
/// (as `i32`), `i64`, `u64` (as `i64`), `f32`, `f64`, [`V128`],
/// `Option<Func<B>>` (`funcref`) and `Option<ExternRef<B>>` (`externref`).
///
/// These are the types a [`TypedFunc`](crate::TypedFunc) and a typed host
/// function ([`Func::wrap`]) can take and return. A reference of another
/// store passed to a typed call, or returned by a typed host function, is
/// an [`Error::StoreMismatch`](crate::Error::StoreMismatch) before the
/// engine sees it. `exnref` ([`ExnRef`]) goes through the dynamic
/// [`Func::call`](crate::Func::call) and [`Func::new`](crate::Func::new):
/// wasmer has no typed form for it.
pub trait WasmTy: sealed::Sealed + Send + 'static {
    /// The WebAssembly type this Rust type stands for.
    const TYPE: ValType;
    /// Checks that a reference belongs to `store` (numbers always do).
    #[inline(always)]
    fn check_store(&self, _store: StoreId) -> Result<()> {
        Ok(())
    }
}

/// A [`WasmTy`] of backend `B` as a dynamic [`Val`].
pub trait ValTy<B: Backend>: WasmTy + Sized {
    /// Converts to a dynamic value.
    fn into_val(self) -> Val<B>;
    /// Converts from a dynamic value of the right type.
    fn from_val(val: &Val<B>) -> Option<Self>;
}

macro_rules! wasm_ty {
    ($($t:ty => $vt:ident, $variant:ident, |$x:ident| $to:expr, |$y:ident| $from:expr;)*) => {$(
        impl sealed::Sealed for $t {}
        impl WasmTy for $t {
            const TYPE: ValType = ValType::$vt;
        }
        impl<B: Backend> ValTy<B> for $t {
            #[inline]
            fn into_val(self) -> Val<B> {
                let $x = self;
                Val::$variant($to)
            }
            #[inline]
            fn from_val(val: &Val<B>) -> Option<Self> {
                match val {
                    Val::$variant($y) => Some($from),
                    _ => None,
                }
            }
        }
    )*};
}

wasm_ty! {
    i32 => I32, I32, |x| x, |y| *y;
    u32 => I32, I32, |x| x as i32, |y| *y as u32;
    i64 => I64, I64, |x| x, |y| *y;
    u64 => I64, I64, |x| x as i64, |y| *y as u64;
    f32 => F32, F32, |x| x.to_bits(), |y| f32::from_bits(*y);
    f64 => F64, F64, |x| x.to_bits(), |y| f64::from_bits(*y);
    V128 => V128, V128, |x| x, |y| *y;
}

macro_rules! ref_ty {
    ($($t:ident => $vt:ident, $what:literal;)*) => {$(
        impl<B: Backend> sealed::Sealed for Option<$t<B>> {}
        impl<B: Backend> WasmTy for Option<$t<B>> {
            const TYPE: ValType = ValType::$vt;
            #[inline]
            fn check_store(&self, store: StoreId) -> Result<()> {
                match self {
                    Some(r) => check_store(r.store_id(), store, || $what.into()),
                    None => Ok(()),
                }
            }
        }
        impl<B: Backend> ValTy<B> for Option<$t<B>> {
            #[inline]
            fn into_val(self) -> Val<B> {
                Val::$vt(self)
            }
            #[inline]
            fn from_val(val: &Val<B>) -> Option<Self> {
                match val {
                    Val::$vt(r) => Some(r.clone()),
                    _ => None,
                }
            }
        }
    )*};
}

ref_ty! {
    Func => FuncRef, "a funcref value";
    ExternRef => ExternRef, "an externref value";
}

/// A fixed list of [`WasmTy`] values: `()`, a single value, or a tuple of up
/// to 16 values. Parameters and results of typed functions are such lists.
pub trait WasmTyList: Sized + Send + 'static {
    /// The same values as a tuple: `()` stays `()`, a single `A` becomes `(A,)`,
    /// tuples stay as they are. Backends implement their typed calls for this
    /// one canonical form (see [`SigOf`]).
    type Tuple: WasmTyList;
    /// Number of values.
    const LEN: usize;
    /// Converts into the canonical tuple form.
    fn into_tuple(self) -> Self::Tuple;
    /// Converts from the canonical tuple form.
    fn from_tuple(t: Self::Tuple) -> Self;
    /// The WebAssembly types of the values, in order.
    fn types() -> Vec<ValType>;
    /// Checks that every reference among the values belongs to `store`.
    fn check_store(&self, store: StoreId) -> Result<()>;
}

/// A [`WasmTyList`] of backend `B` as dynamic [`Val`]s.
pub trait ValList<B: Backend>: WasmTyList {
    /// Appends the values to `out`.
    fn push_vals(self, out: &mut Vec<Val<B>>);
    /// Reads the values from a slice of exactly [`WasmTyList::LEN`] values
    /// of the right types.
    fn from_vals(vals: &[Val<B>]) -> Option<Self>;
}

impl WasmTyList for () {
    type Tuple = ();
    const LEN: usize = 0;
    #[inline]
    fn into_tuple(self) -> Self::Tuple {}
    #[inline]
    fn from_tuple(_: Self::Tuple) -> Self {}
    fn types() -> Vec<ValType> {
        Vec::new()
    }
    #[inline(always)]
    fn check_store(&self, _store: StoreId) -> Result<()> {
        Ok(())
    }
}

impl<B: Backend> ValList<B> for () {
    fn push_vals(self, _out: &mut Vec<Val<B>>) {}
    fn from_vals(vals: &[Val<B>]) -> Option<Self> {
        vals.is_empty().then_some(())
    }
}

impl<A: WasmTy> WasmTyList for A {
    type Tuple = (A,);
    const LEN: usize = 1;
    #[inline]
    fn into_tuple(self) -> Self::Tuple {
        (self,)
    }
    #[inline]
    fn from_tuple(t: Self::Tuple) -> Self {
        t.0
    }
    fn types() -> Vec<ValType> {
        vec![A::TYPE]
    }
    #[inline(always)]
    fn check_store(&self, store: StoreId) -> Result<()> {
        WasmTy::check_store(self, store)
    }
}

impl<B: Backend, A: ValTy<B>> ValList<B> for A {
    fn push_vals(self, out: &mut Vec<Val<B>>) {
        out.push(self.into_val());
    }
    fn from_vals(vals: &[Val<B>]) -> Option<Self> {
        match vals {
            [v] => A::from_val(v),
            _ => None,
        }
    }
}

macro_rules! wasm_ty_list_tuple {
    ($n:expr; $($t:ident $i:tt),+) => {
        impl<$($t: WasmTy),+> WasmTyList for ($($t,)+) {
            type Tuple = Self;
            const LEN: usize = $n;
            #[inline]
            fn into_tuple(self) -> Self {
                self
            }
            #[inline]
            fn from_tuple(t: Self) -> Self {
                t
            }
            fn types() -> Vec<ValType> {
                vec![$($t::TYPE),+]
            }
            #[inline(always)]
            fn check_store(&self, store: StoreId) -> Result<()> {
                $(self.$i.check_store(store)?;)+
                Ok(())
            }
        }

        impl<B: Backend, $($t: ValTy<B>),+> ValList<B> for ($($t,)+) {
            fn push_vals(self, out: &mut Vec<Val<B>>) {
                $(out.push(self.$i.into_val());)+
            }
            fn from_vals(vals: &[Val<B>]) -> Option<Self> {
                if vals.len() != $n {
                    return None;
                }
                Some(($($t::from_val(&vals[$i])?,)+))
            }
        }
    };
}

/// Invokes `$m!` once per tuple arity from 1 to 16 with `(n; T0 0, T1 1, ...)`.
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_tuple {
    ($m:ident) => {
        $m!(1; A0 0);
        $m!(2; A0 0, A1 1);
        $m!(3; A0 0, A1 1, A2 2);
        $m!(4; A0 0, A1 1, A2 2, A3 3);
        $m!(5; A0 0, A1 1, A2 2, A3 3, A4 4);
        $m!(6; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5);
        $m!(7; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6);
        $m!(8; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7);
        $m!(9; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8);
        $m!(10; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9);
        $m!(11; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10);
        $m!(12; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11);
        $m!(13; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12);
        $m!(14; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13);
        $m!(15; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13, A14 14);
        $m!(16; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9, A10 10, A11 11, A12 12, A13 13, A14 14, A15 15);
    };
}

for_each_tuple!(wasm_ty_list_tuple);

/// A [`WasmTy`] in backend `B`'s engine's own typed form (for backends).
///
/// Numbers are themselves on every backend; a backend implements this for
/// [`V128`] and the two reference types with its engine's types. Typed calls
/// and typed host functions convert through it, which compiles to nothing
/// for numbers. The layer has checked the store of references going in
/// ([`WasmTy::check_store`]); references coming out are of `store`. Going
/// in, a backend may need the store (wasmer gives a host function with a
/// run-time signature a wasm thunk) and may fail.
pub trait NativeTy<B: Backend>: ValTy<B> {
    /// The engine's type.
    type Native;
    /// Into the engine's form.
    fn into_native<T: Send + 'static>(self, ctx: &mut B::CtxMut<'_, T>) -> Result<Self::Native>;
    /// From the engine's form, made in `store`.
    fn from_native(native: Self::Native, store: StoreId) -> Self;
}

macro_rules! native_ty_identity {
    ($($t:ty),*) => {$(
        impl<B: Backend> NativeTy<B> for $t {
            type Native = $t;
            #[inline(always)]
            fn into_native<T: Send + 'static>(self, _: &mut B::CtxMut<'_, T>) -> Result<$t> {
                Ok(self)
            }
            #[inline(always)]
            fn from_native(native: $t, _store: StoreId) -> $t {
                native
            }
        }
    )*};
}

native_ty_identity!(i32, u32, i64, u64, f32, f64);

/// A [`WasmTyList`] in tuple form, element by element in backend `B`'s
/// engine's typed form (see [`NativeTy`]; for backends).
pub trait NativeList<B: Backend>: ValList<B> {
    /// The engine's tuple.
    type Native;
    /// Into the engine's form.
    fn into_native<T: Send + 'static>(self, ctx: &mut B::CtxMut<'_, T>) -> Result<Self::Native>;
    /// From the engine's form, made in `store`.
    fn from_native(native: Self::Native, store: StoreId) -> Self;
}

impl<B: Backend> NativeList<B> for () {
    type Native = ();
    #[inline(always)]
    fn into_native<T: Send + 'static>(self, _: &mut B::CtxMut<'_, T>) -> Result<()> {
        Ok(())
    }
    #[inline(always)]
    fn from_native(_: (), _store: StoreId) {}
}

macro_rules! native_list_tuple {
    ($n:expr; $($t:ident $i:tt),+) => {
        impl<B: Backend, $($t: NativeTy<B>),+> NativeList<B> for ($($t,)+) {
            type Native = ($($t::Native,)+);
            #[inline(always)]
            fn into_native<T: Send + 'static>(
                self,
                ctx: &mut B::CtxMut<'_, T>,
            ) -> Result<Self::Native> {
                Ok(($(self.$i.into_native(ctx)?,)+))
            }
            #[inline(always)]
            fn from_native(native: Self::Native, store: StoreId) -> Self {
                ($($t::from_native(native.$i, store),)+)
            }
        }
    };
}

for_each_tuple!(native_list_tuple);

/// The canonical signature key of a typed function with parameters `P` and
/// results `R`: both lists in tuple form.
///
/// Generic code that makes typed calls on any backend `B` states what it needs
/// with this alias:
///
/// ```
/// use anywasm_core::{Backend, SigOf, TypedSig};
/// fn needs_add<B: Backend>()
/// where
///     SigOf<(i32, i32), i32>: TypedSig<B>,
/// {
/// }
/// ```
pub type SigOf<P, R> = (<P as WasmTyList>::Tuple, <R as WasmTyList>::Tuple);
