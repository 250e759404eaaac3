//! Conversions between the layer's types and wasmi's. The only place where
//! the two meet.

use anywasm_core::{
    Error, Extern, ExternRef, Func, FuncType, Global, GlobalType, Memory, MemoryType, Mutability,
    StoreId, Table, TableType, TrapCode, V128, Val, ValType,
};

use crate::{View, Wasmi};

/// Marks a wasmi error as "a host function failed; the error is in the store".
#[derive(Debug)]
pub(crate) struct HostErr;

impl std::fmt::Display for HostErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("host function failed")
    }
}

impl wasmi::errors::HostError for HostErr {}

/// Parks a host function's error in the store and returns wasmi's marker.
/// wasmi hands host errors back by reference in resumable calls, so the
/// layer keeps the error itself and passes a marker through wasmi.
pub(crate) fn host_err<T: Send + 'static>(caller: &dyn View<T>, e: Error) -> wasmi::Error {
    caller.data().shared.park_host_error(e);
    wasmi::Error::host(HostErr)
}

/// Maps the error of a call, taking back a parked host error.
pub(crate) fn call_err<T: Send + 'static>(ctx: &dyn View<T>, e: &wasmi::Error) -> Error {
    if e.downcast_ref::<HostErr>().is_some()
        && let Some(ours) = ctx.data().shared.take_host_error()
    {
        return ours;
    }
    map_err(e)
}

pub(crate) fn compile_err(e: wasmi::Error) -> Error {
    Error::Compile {
        backend: "wasmi",
        message: e.to_string(),
    }
}

pub(crate) fn trap_code(t: wasmi::TrapCode) -> TrapCode {
    use wasmi::TrapCode as W;
    match t {
        W::UnreachableCodeReached => TrapCode::Unreachable,
        W::MemoryOutOfBounds => TrapCode::MemoryOutOfBounds,
        W::TableOutOfBounds => TrapCode::TableOutOfBounds,
        W::IndirectCallToNull => TrapCode::NullReference,
        W::IntegerDivisionByZero => TrapCode::DivisionByZero,
        W::IntegerOverflow => TrapCode::IntegerOverflow,
        W::BadConversionToInteger => TrapCode::BadConversionToInteger,
        W::StackOverflow => TrapCode::StackOverflow,
        W::BadSignature => TrapCode::IndirectCallTypeMismatch,
        W::OutOfFuel => TrapCode::OutOfFuel,
        _ => TrapCode::Other,
    }
}

/// Maps an error from running wasm code (without access to the store).
pub(crate) fn map_err(e: &wasmi::Error) -> Error {
    if let Some(code) = e.as_trap_code() {
        let code = trap_code(code);
        let message = if code == TrapCode::Other {
            e.to_string()
        } else {
            String::new()
        };
        return Error::trap("wasmi", code, message);
    }
    use wasmi::errors::{ErrorKind, MemoryError, TableError};
    match e.kind() {
        ErrorKind::Fuel(_) => return Error::trap("wasmi", TrapCode::OutOfFuel, ""),
        // Element and data segments that do not fit trap during
        // instantiation in the spec; wasmi reports them as table and memory
        // errors.
        ErrorKind::Table(
            TableError::InitOutOfBounds
            | TableError::SetOutOfBounds
            | TableError::CopyOutOfBounds
            | TableError::FillOutOfBounds,
        ) => return Error::trap("wasmi", TrapCode::TableOutOfBounds, ""),
        ErrorKind::Memory(MemoryError::OutOfBoundsAccess) => {
            return Error::trap("wasmi", TrapCode::MemoryOutOfBounds, "");
        }
        ErrorKind::Instantiation(wasmi::errors::InstantiationError::ElementSegmentDoesNotFit {
            ..
        }) => {
            return Error::trap("wasmi", TrapCode::TableOutOfBounds, "");
        }
        _ => {}
    }
    Error::Backend {
        backend: "wasmi",
        message: e.to_string(),
    }
}

pub(crate) fn val_type_from_wi(t: wasmi::ValType) -> ValType {
    match t {
        wasmi::ValType::I32 => ValType::I32,
        wasmi::ValType::I64 => ValType::I64,
        wasmi::ValType::F32 => ValType::F32,
        wasmi::ValType::F64 => ValType::F64,
        wasmi::ValType::V128 => ValType::V128,
        wasmi::ValType::FuncRef => ValType::FuncRef,
        wasmi::ValType::ExternRef => ValType::ExternRef,
    }
}

pub(crate) fn val_type_to_wi(t: ValType) -> wasmi::ValType {
    match t {
        ValType::I32 => wasmi::ValType::I32,
        ValType::I64 => wasmi::ValType::I64,
        ValType::F32 => wasmi::ValType::F32,
        ValType::F64 => wasmi::ValType::F64,
        ValType::V128 => wasmi::ValType::V128,
        ValType::FuncRef => wasmi::ValType::FuncRef,
        ValType::ExternRef => wasmi::ValType::ExternRef,
        // wasmi has no exnref, and no module it runs has one. A host
        // function declared with one gets externref in the engine, keeps its
        // declared type in the layer and refuses every call (`Func::new`).
        ValType::ExnRef => wasmi::ValType::ExternRef,
    }
}

fn ref_type_to_wi(t: ValType) -> Result<wasmi::RefType, Error> {
    match t {
        ValType::FuncRef => Ok(wasmi::RefType::Func),
        ValType::ExternRef => Ok(wasmi::RefType::Extern),
        other => Err(Error::InvalidArgument(format!(
            "{other} is not a reference type"
        ))),
    }
}

fn ref_type_from_wi(t: wasmi::RefType) -> ValType {
    match t {
        wasmi::RefType::Func => ValType::FuncRef,
        wasmi::RefType::Extern => ValType::ExternRef,
    }
}

pub(crate) fn func_type_from_wi(t: &wasmi::FuncType) -> FuncType {
    FuncType::new(
        t.params().iter().map(|p| val_type_from_wi(*p)),
        t.results().iter().map(|r| val_type_from_wi(*r)),
    )
}

pub(crate) fn func_type_to_wi(t: &FuncType) -> wasmi::FuncType {
    wasmi::FuncType::new(
        t.params().iter().map(|p| val_type_to_wi(*p)),
        t.results().iter().map(|r| val_type_to_wi(*r)),
    )
}

pub(crate) fn memory_type_to_wi(t: &MemoryType) -> Result<wasmi::MemoryType, Error> {
    let mut b = wasmi::MemoryType::builder();
    b.min(t.minimum)
        .max(t.maximum)
        .memory64(t.memory64)
        .page_size_log2(t.page_size_log2);
    b.build()
        .map_err(|e| Error::InvalidArgument(format!("invalid memory type {t}: {e}")))
}

pub(crate) fn table_type_from_wi(t: &wasmi::TableType) -> TableType {
    TableType {
        element: ref_type_from_wi(t.element()),
        minimum: t.minimum(),
        maximum: t.maximum(),
        table64: t.is_64(),
    }
}

pub(crate) fn table_type_to_wi(t: &TableType) -> Result<wasmi::TableType, Error> {
    let elem = ref_type_to_wi(t.element)?;
    if t.table64 {
        Ok(wasmi::TableType::new64(elem, t.minimum, t.maximum))
    } else {
        let (min, max) = t.limits32()?;
        Ok(wasmi::TableType::new(elem, min, max))
    }
}

pub(crate) fn mutability_to_wi(m: Mutability) -> wasmi::Mutability {
    match m {
        Mutability::Const => wasmi::Mutability::Const,
        Mutability::Var => wasmi::Mutability::Var,
    }
}

pub(crate) fn global_type_from_wi(t: &wasmi::GlobalType) -> GlobalType {
    GlobalType {
        content: val_type_from_wi(t.content()),
        mutability: match t.mutability() {
            wasmi::Mutability::Const => Mutability::Const,
            wasmi::Mutability::Var => Mutability::Var,
        },
    }
}

pub(crate) fn nullable<T>(o: Option<T>) -> wasmi::Nullable<T> {
    match o {
        Some(v) => wasmi::Nullable::Val(v),
        None => wasmi::Nullable::Null,
    }
}

pub(crate) fn val_to_wi(v: &Val<Wasmi>) -> wasmi::Val {
    match v {
        Val::I32(x) => wasmi::Val::I32(*x),
        Val::I64(x) => wasmi::Val::I64(*x),
        Val::F32(x) => wasmi::Val::F32(wasmi::F32::from_bits(*x)),
        Val::F64(x) => wasmi::Val::F64(wasmi::F64::from_bits(*x)),
        Val::V128(x) => wasmi::Val::V128(x.0.into()),
        Val::FuncRef(f) => wasmi::Val::FuncRef(nullable(f.as_ref().map(|f| *f.raw()))),
        Val::ExternRef(r) => wasmi::Val::ExternRef(nullable(r.as_ref().map(|r| *r.raw()))),
        // See `val_type_to_wi`: only a null exnref can exist here.
        Val::ExnRef(r) => match r.as_ref().map(|r| *r.raw()) {
            None => wasmi::Val::ExternRef(nullable(None)),
            Some(never) => match never {},
        },
    }
}

pub(crate) fn val_from_wi(v: &wasmi::Val, store: StoreId) -> Val<Wasmi> {
    match v {
        wasmi::Val::I32(x) => Val::I32(*x),
        wasmi::Val::I64(x) => Val::I64(*x),
        wasmi::Val::F32(x) => Val::F32(x.to_bits()),
        wasmi::Val::F64(x) => Val::F64(x.to_bits()),
        wasmi::Val::V128(x) => Val::V128(V128(x.as_u128())),
        wasmi::Val::FuncRef(f) => Val::FuncRef(f.val().map(|f| Func::from_raw(*f, store))),
        wasmi::Val::ExternRef(r) => Val::ExternRef(r.val().map(|r| ExternRef::from_raw(*r, store))),
    }
}

pub(crate) fn ref_to_wi(v: &Val<Wasmi>) -> Result<wasmi::Ref, Error> {
    match v {
        Val::FuncRef(f) => Ok(wasmi::Ref::Func(nullable(f.as_ref().map(|f| *f.raw())))),
        Val::ExternRef(r) => Ok(wasmi::Ref::Extern(nullable(r.as_ref().map(|r| *r.raw())))),
        other => Err(Error::InvalidArgument(format!(
            "{} is not a reference",
            other.ty()
        ))),
    }
}

pub(crate) fn ref_from_wi(r: &wasmi::Ref, store: StoreId) -> Val<Wasmi> {
    match r {
        wasmi::Ref::Func(f) => Val::FuncRef(f.val().map(|f| Func::from_raw(*f, store))),
        wasmi::Ref::Extern(e) => Val::ExternRef(e.val().map(|e| ExternRef::from_raw(*e, store))),
    }
}

pub(crate) fn extern_to_wi(e: &Extern<Wasmi>) -> wasmi::Extern {
    match e {
        Extern::Func(f) => wasmi::Extern::Func(*f.raw()),
        Extern::Memory(m) => wasmi::Extern::Memory(*m.raw()),
        Extern::Table(t) => wasmi::Extern::Table(*t.raw()),
        Extern::Global(g) => wasmi::Extern::Global(*g.raw()),
        Extern::Tag(t) => match *t.raw() {},
    }
}

pub(crate) fn extern_from_wi(e: wasmi::Extern, store: StoreId) -> Option<Extern<Wasmi>> {
    Some(match e {
        wasmi::Extern::Func(f) => Extern::Func(Func::from_raw(f, store)),
        wasmi::Extern::Memory(m) => Extern::Memory(Memory::from_raw(m, store)),
        wasmi::Extern::Table(t) => Extern::Table(Table::from_raw(t, store)),
        wasmi::Extern::Global(g) => Extern::Global(Global::from_raw(g, store)),
    })
}
