//! Conversions between the layer's types and wasmer's. The only place where
//! the two meet.

use anywasm_core::{
    Error, ExnRef, Extern, ExternRef, Func, FuncType, Global, GlobalType, Memory, MemoryType,
    Mutability, StoreId, Table, TableType, Tag, TrapCode, V128, Val, ValType,
};

use crate::{Wasmer, WrFunc};

pub(crate) fn compile_err(e: wasmer::CompileError) -> Error {
    Error::Compile {
        backend: "wasmer",
        message: e.to_string(),
    }
}

pub(crate) fn trap_code(t: wasmer::sys::vm::TrapCode) -> TrapCode {
    use wasmer::sys::vm::TrapCode as W;
    match t {
        W::StackOverflow => TrapCode::StackOverflow,
        W::HeapAccessOutOfBounds => TrapCode::MemoryOutOfBounds,
        W::HeapMisaligned | W::UnalignedAtomic => TrapCode::UnalignedAtomic,
        W::TableAccessOutOfBounds => TrapCode::TableOutOfBounds,
        W::IndirectCallToNull => TrapCode::NullReference,
        W::BadSignature => TrapCode::IndirectCallTypeMismatch,
        W::IntegerOverflow => TrapCode::IntegerOverflow,
        W::IntegerDivisionByZero => TrapCode::DivisionByZero,
        W::BadConversionToInteger => TrapCode::BadConversionToInteger,
        W::UnreachableCodeReached => TrapCode::Unreachable,
        W::UncaughtException => TrapCode::UncaughtException,
        // `throw_ref` of a null exnref.
        W::UninitializedExnRef => TrapCode::NullReference,
        W::HostInterrupt => TrapCode::Interrupted,
        _ => TrapCode::Other,
    }
}

pub(crate) fn map_runtime_err(e: wasmer::RuntimeError) -> Error {
    let message = e.message();
    match e.to_trap() {
        Some(t) => {
            let code = trap_code(t);
            let message = if code == TrapCode::Other {
                message
            } else {
                String::new()
            };
            Error::trap("wasmer", code, message)
        }
        None => Error::Backend {
            backend: "wasmer",
            message,
        },
    }
}

pub(crate) fn instantiation_err(e: wasmer::InstantiationError) -> Error {
    match e {
        wasmer::InstantiationError::Start(r) => map_runtime_err(r),
        other => Error::Backend {
            backend: "wasmer",
            message: other.to_string(),
        },
    }
}

pub(crate) fn val_type_from_wr(t: wasmer::Type) -> ValType {
    match t {
        wasmer::Type::I32 => ValType::I32,
        wasmer::Type::I64 => ValType::I64,
        wasmer::Type::F32 => ValType::F32,
        wasmer::Type::F64 => ValType::F64,
        wasmer::Type::V128 => ValType::V128,
        wasmer::Type::ExternRef => ValType::ExternRef,
        wasmer::Type::ExceptionRef => ValType::ExnRef,
        _ => ValType::FuncRef,
    }
}

pub(crate) fn val_type_to_wr(t: ValType) -> wasmer::Type {
    match t {
        ValType::I32 => wasmer::Type::I32,
        ValType::I64 => wasmer::Type::I64,
        ValType::F32 => wasmer::Type::F32,
        ValType::F64 => wasmer::Type::F64,
        ValType::V128 => wasmer::Type::V128,
        ValType::FuncRef => wasmer::Type::FuncRef,
        ValType::ExternRef => wasmer::Type::ExternRef,
        ValType::ExnRef => wasmer::Type::ExceptionRef,
    }
}

pub(crate) fn func_type_from_wr(t: &wasmer::FunctionType) -> FuncType {
    FuncType::new(
        t.params().iter().map(|p| val_type_from_wr(*p)),
        t.results().iter().map(|r| val_type_from_wr(*r)),
    )
}

pub(crate) fn func_type_to_wr(t: &FuncType) -> wasmer::FunctionType {
    wasmer::FunctionType::new(
        t.params()
            .iter()
            .map(|p| val_type_to_wr(*p))
            .collect::<Vec<_>>(),
        t.results()
            .iter()
            .map(|r| val_type_to_wr(*r))
            .collect::<Vec<_>>(),
    )
}

pub(crate) fn memory_type_from_wr(t: &wasmer::MemoryType) -> MemoryType {
    MemoryType {
        minimum: t.minimum.0 as u64,
        maximum: t.maximum.map(|p| p.0 as u64),
        memory64: false,
        shared: t.shared,
        page_size_log2: 16,
    }
}

pub(crate) fn memory_type_to_wr(t: &MemoryType) -> Result<wasmer::MemoryType, Error> {
    if t.memory64 {
        return Err(Error::unsupported("wasmer", "64-bit memories"));
    }
    if t.page_size_log2 != 16 {
        return Err(Error::unsupported("wasmer", "custom page sizes"));
    }
    let pages = |p: u64| {
        u32::try_from(p)
            .ok()
            .filter(|p| *p <= 65536)
            .ok_or_else(|| Error::InvalidArgument(format!("memory of {p} pages is too large")))
    };
    Ok(wasmer::MemoryType::new(
        pages(t.minimum)?,
        t.maximum.map(pages).transpose()?,
        t.shared,
    ))
}

pub(crate) fn table_type_from_wr(t: &wasmer::TableType) -> TableType {
    TableType {
        element: val_type_from_wr(t.ty),
        minimum: t.minimum as u64,
        maximum: t.maximum.map(u64::from),
        table64: false,
    }
}

pub(crate) fn table_type_to_wr(t: &TableType) -> Result<wasmer::TableType, Error> {
    if t.table64 {
        return Err(Error::unsupported("wasmer", "64-bit tables"));
    }
    if t.element == ValType::ExnRef {
        // wasmer 7.3 keeps no exception references in tables
        // (`engine_facts.rs`).
        return Err(Error::unsupported("wasmer", "tables of exnref"));
    }
    let (min, max) = t.limits32()?;
    Ok(wasmer::TableType::new(val_type_to_wr(t.element), min, max))
}

pub(crate) fn global_type_from_wr(t: &wasmer::GlobalType) -> GlobalType {
    GlobalType {
        content: val_type_from_wr(t.ty),
        mutability: match t.mutability {
            wasmer::Mutability::Const => Mutability::Const,
            wasmer::Mutability::Var => Mutability::Var,
        },
    }
}

pub(crate) fn val_to_wr(v: &Val<Wasmer>) -> wasmer::Value {
    match v {
        Val::I32(x) => wasmer::Value::I32(*x),
        Val::I64(x) => wasmer::Value::I64(*x),
        Val::F32(x) => wasmer::Value::F32(f32::from_bits(*x)),
        Val::F64(x) => wasmer::Value::F64(f64::from_bits(*x)),
        Val::V128(x) => wasmer::Value::V128(x.0),
        Val::FuncRef(f) => wasmer::Value::FuncRef(f.as_ref().map(|f| f.raw().func.clone())),
        Val::ExternRef(r) => wasmer::Value::ExternRef(r.as_ref().map(|r| r.raw().clone())),
        Val::ExnRef(r) => wasmer::Value::ExceptionRef(r.as_ref().map(|r| r.raw().clone())),
    }
}

pub(crate) fn val_from_wr(v: &wasmer::Value, store: StoreId) -> Val<Wasmer> {
    match v {
        wasmer::Value::I32(x) => Val::I32(*x),
        wasmer::Value::I64(x) => Val::I64(*x),
        wasmer::Value::F32(x) => Val::F32(x.to_bits()),
        wasmer::Value::F64(x) => Val::F64(x.to_bits()),
        wasmer::Value::V128(x) => Val::V128(V128(*x)),
        wasmer::Value::FuncRef(f) => Val::FuncRef(
            f.as_ref()
                .map(|f| Func::from_raw(WrFunc::plain(f.clone(), None), store)),
        ),
        wasmer::Value::ExternRef(r) => {
            Val::ExternRef(r.as_ref().map(|r| ExternRef::from_raw(r.clone(), store)))
        }
        wasmer::Value::ExceptionRef(r) => {
            Val::ExnRef(r.as_ref().map(|r| ExnRef::from_raw(r.clone(), store)))
        }
    }
}

pub(crate) fn extern_to_wr(e: &Extern<Wasmer>) -> wasmer::Extern {
    match e {
        Extern::Func(f) => wasmer::Extern::Function(f.raw().func.clone()),
        Extern::Memory(m) => wasmer::Extern::Memory(m.raw().clone()),
        Extern::Table(t) => wasmer::Extern::Table(t.raw().clone()),
        Extern::Global(g) => wasmer::Extern::Global(g.raw().clone()),
        Extern::Tag(t) => wasmer::Extern::Tag(t.raw().clone()),
    }
}

pub(crate) fn extern_from_wr(
    e: wasmer::Extern,
    owner: Option<&crate::WrInstance>,
    store: StoreId,
) -> Option<Extern<Wasmer>> {
    Some(match e {
        wasmer::Extern::Function(f) => {
            Extern::Func(Func::from_raw(WrFunc::plain(f, owner.cloned()), store))
        }
        wasmer::Extern::Memory(m) => Extern::Memory(Memory::from_raw(m, store)),
        wasmer::Extern::Table(t) => Extern::Table(Table::from_raw(t, store)),
        wasmer::Extern::Global(g) => Extern::Global(Global::from_raw(g, store)),
        wasmer::Extern::Tag(t) => Extern::Tag(Tag::from_raw(t, store)),
    })
}
