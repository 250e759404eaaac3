//! Conversions between the layer's types and wasmtime's. The only place
//! where the two meet.

use anywasm_core::{
    Error, Exception, ExnRef, Extern, ExternRef, Func, FuncType, Global, GlobalType, Memory,
    MemoryType, Mutability, StoreId, Table, TableType, Tag, TrapCode, V128, Val, ValType,
};
use wasmtime::{AsContextMut, HeapType};

use crate::Wasmtime;

pub(crate) fn backend_err(e: wasmtime::Error) -> Error {
    Error::Backend {
        backend: "wasmtime",
        message: format!("{e:#}"),
    }
}

pub(crate) fn compile_err(e: wasmtime::Error) -> Error {
    Error::Compile {
        backend: "wasmtime",
        message: format!("{e:#}"),
    }
}

pub(crate) fn trap_code(t: wasmtime::Trap) -> TrapCode {
    use wasmtime::Trap as W;
    match t {
        W::StackOverflow => TrapCode::StackOverflow,
        W::MemoryOutOfBounds => TrapCode::MemoryOutOfBounds,
        W::HeapMisaligned => TrapCode::UnalignedAtomic,
        W::TableOutOfBounds => TrapCode::TableOutOfBounds,
        W::IndirectCallToNull | W::NullReference => TrapCode::NullReference,
        W::BadSignature => TrapCode::IndirectCallTypeMismatch,
        W::IntegerOverflow => TrapCode::IntegerOverflow,
        W::IntegerDivisionByZero => TrapCode::DivisionByZero,
        W::BadConversionToInteger => TrapCode::BadConversionToInteger,
        W::UnreachableCodeReached => TrapCode::Unreachable,
        W::Interrupt => TrapCode::Interrupted,
        W::OutOfFuel => TrapCode::OutOfFuel,
        W::AllocationTooLarge => TrapCode::AllocationFailed,
        _ => TrapCode::Other,
    }
}

/// Maps an error from running wasm code.
pub(crate) fn map_err(e: wasmtime::Error) -> Error {
    // A host function's own error comes back unchanged.
    let e = match e.downcast::<Error>() {
        Ok(ours) => return ours,
        Err(e) => e,
    };
    if let Some(stop) = e.downcast_ref::<crate::store::Stop>() {
        return Error::trap("wasmtime", stop.0, "");
    }
    if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
        let code = trap_code(*t);
        let message = if code == TrapCode::Other {
            t.to_string()
        } else {
            String::new()
        };
        return Error::trap("wasmtime", code, message);
    }
    if e.is::<wasmtime::ThrownException>() {
        return Error::trap("wasmtime", TrapCode::UncaughtException, "");
    }
    if e.is::<wasmtime::UnknownImportError>() {
        return Error::Backend {
            backend: "wasmtime",
            message: format!("{e:#}"),
        };
    }
    backend_err(e)
}

/// The tag and values of a wasmtime exception object; `Unsupported` for one
/// whose tag's type the layer cannot represent.
pub(crate) fn exception_from_wt(
    mut ctx: impl AsContextMut,
    exn: &wasmtime::Rooted<wasmtime::ExnRef>,
    store: StoreId,
) -> Result<Exception<Wasmtime>, Error> {
    let tag = exn.tag(&mut ctx).map_err(map_err)?;
    let n = func_type_from_wt(tag.ty(&ctx).ty())?.params().len();
    let mut payload = Vec::with_capacity(n);
    for i in 0..n {
        let v = exn.field(&mut ctx, i).map_err(map_err)?;
        payload.push(val_from_wt(&mut ctx, v, store));
    }
    Ok(Exception::new(Tag::from_raw(tag, store), payload))
}

/// A new wasmtime exception object of `tag` carrying `values`.
pub(crate) fn exception_to_wt(
    mut ctx: impl AsContextMut,
    tag: &wasmtime::Tag,
    values: &[Val<Wasmtime>],
) -> Result<wasmtime::Rooted<wasmtime::ExnRef>, Error> {
    let ty = wasmtime::ExnType::from_tag_type(&tag.ty(&ctx)).map_err(map_err)?;
    let pre = wasmtime::ExnRefPre::new(&mut ctx, ty);
    let fields: Vec<wasmtime::Val> = values.iter().map(|v| val_to_wt(&mut ctx, v)).collect();
    wasmtime::ExnRef::new(&mut ctx, &pre, tag, &fields).map_err(map_err)
}

/// [`map_err`] for a call's error: an exception that escaped the call is
/// also taken off the store (wasmtime keeps it there, rooted, until taken).
pub(crate) fn call_err<T: Send + 'static>(
    ctx: &mut wasmtime::StoreContextMut<'_, crate::StoreData<T>>,
    e: wasmtime::Error,
) -> Error {
    if e.is::<wasmtime::ThrownException>() {
        let store = ctx.data().shared.id();
        // In a root scope, so that the exception's root goes with it.
        let mut scope = wasmtime::RootScope::new(&mut *ctx);
        // An exception carrying typed references (function references, GC)
        // is not described rather than described wrong.
        let exception = scope
            .as_context_mut()
            .take_pending_exception()
            .and_then(|exn| exception_from_wt(&mut scope, &exn, store).ok());
        drop(scope);
        ctx.data().shared.set_exception(exception);
    }
    map_err(e)
}

/// A wasmtime value type in the layer's terms; `Unsupported` for the typed
/// references (function references, GC) the layer does not represent.
pub(crate) fn val_type_from_wt(t: &wasmtime::ValType) -> Result<ValType, Error> {
    Ok(match t {
        wasmtime::ValType::I32 => ValType::I32,
        wasmtime::ValType::I64 => ValType::I64,
        wasmtime::ValType::F32 => ValType::F32,
        wasmtime::ValType::F64 => ValType::F64,
        wasmtime::ValType::V128 => ValType::V128,
        wasmtime::ValType::Ref(r) => ref_type_from_wt(r)?,
    })
}

fn ref_type_from_wt(r: &wasmtime::RefType) -> Result<ValType, Error> {
    match r.heap_type() {
        HeapType::Func if r.is_nullable() => Ok(ValType::FuncRef),
        HeapType::Extern if r.is_nullable() => Ok(ValType::ExternRef),
        HeapType::Exn if r.is_nullable() => Ok(ValType::ExnRef),
        _ => Err(Error::unsupported(
            "wasmtime",
            format!(
                "the reference type {r} in a function's or tag's type (only numbers, v128, \
                 funcref, externref and exnref are represented)"
            ),
        )),
    }
}

/// For the types of tables and globals, which reach the host only through
/// a module's imports and exports (checked when it is compiled) or from the
/// host itself, so are always representable.
fn interface_ref_type_from_wt(r: &wasmtime::RefType) -> ValType {
    match r.heap_type() {
        HeapType::Extern | HeapType::NoExtern => ValType::ExternRef,
        HeapType::Exn | HeapType::NoExn => ValType::ExnRef,
        _ => ValType::FuncRef,
    }
}

pub(crate) fn val_type_to_wt(t: ValType) -> wasmtime::ValType {
    match t {
        ValType::I32 => wasmtime::ValType::I32,
        ValType::I64 => wasmtime::ValType::I64,
        ValType::F32 => wasmtime::ValType::F32,
        ValType::F64 => wasmtime::ValType::F64,
        ValType::V128 => wasmtime::ValType::V128,
        ValType::FuncRef => wasmtime::ValType::FUNCREF,
        ValType::ExternRef => wasmtime::ValType::EXTERNREF,
        ValType::ExnRef => wasmtime::ValType::EXNREF,
    }
}

fn ref_type_to_wt(t: ValType) -> Result<wasmtime::RefType, Error> {
    match t {
        ValType::FuncRef => Ok(wasmtime::RefType::FUNCREF),
        ValType::ExternRef => Ok(wasmtime::RefType::EXTERNREF),
        ValType::ExnRef => Ok(wasmtime::RefType::EXNREF),
        other => Err(Error::InvalidArgument(format!(
            "{other} is not a reference type"
        ))),
    }
}

pub(crate) fn func_type_from_wt(t: &wasmtime::FuncType) -> Result<FuncType, Error> {
    let params: Result<Vec<_>, _> = t.params().map(|p| val_type_from_wt(&p)).collect();
    let results: Result<Vec<_>, _> = t.results().map(|r| val_type_from_wt(&r)).collect();
    Ok(FuncType::new(params?, results?))
}

pub(crate) fn func_type_to_wt(engine: &wasmtime::Engine, t: &FuncType) -> wasmtime::FuncType {
    wasmtime::FuncType::new(
        engine,
        t.params().iter().map(|p| val_type_to_wt(*p)),
        t.results().iter().map(|r| val_type_to_wt(*r)),
    )
}

pub(crate) fn memory_type_from_wt(t: &wasmtime::MemoryType) -> MemoryType {
    MemoryType {
        minimum: t.minimum(),
        maximum: t.maximum(),
        memory64: t.is_64(),
        shared: t.is_shared(),
        page_size_log2: t.page_size_log2(),
    }
}

pub(crate) fn memory_type_to_wt(t: &MemoryType) -> Result<wasmtime::MemoryType, Error> {
    let mut b = wasmtime::MemoryTypeBuilder::new();
    b.min(t.minimum)
        .max(t.maximum)
        .memory64(t.memory64)
        .shared(t.shared)
        .page_size_log2(t.page_size_log2);
    b.build()
        .map_err(|e| Error::InvalidArgument(format!("invalid memory type {t}: {e}")))
}

pub(crate) fn table_type_from_wt(t: &wasmtime::TableType) -> TableType {
    TableType {
        element: interface_ref_type_from_wt(t.element()),
        minimum: t.minimum(),
        maximum: t.maximum(),
        table64: t.is_64(),
    }
}

pub(crate) fn table_type_to_wt(t: &TableType) -> Result<wasmtime::TableType, Error> {
    let elem = ref_type_to_wt(t.element)?;
    if t.table64 {
        Ok(wasmtime::TableType::new64(elem, t.minimum, t.maximum))
    } else {
        let (min, max) = t.limits32()?;
        Ok(wasmtime::TableType::new(elem, min, max))
    }
}

pub(crate) fn global_type_from_wt(t: &wasmtime::GlobalType) -> GlobalType {
    GlobalType {
        content: match t.content() {
            wasmtime::ValType::Ref(r) => interface_ref_type_from_wt(r),
            // Numbers and vectors always convert.
            other => val_type_from_wt(other).unwrap_or(ValType::I32),
        },
        mutability: match t.mutability() {
            wasmtime::Mutability::Const => Mutability::Const,
            wasmtime::Mutability::Var => Mutability::Var,
        },
    }
}

pub(crate) fn global_type_to_wt(t: &GlobalType) -> wasmtime::GlobalType {
    wasmtime::GlobalType::new(
        val_type_to_wt(t.content),
        match t.mutability {
            Mutability::Const => wasmtime::Mutability::Const,
            Mutability::Var => wasmtime::Mutability::Var,
        },
    )
}

pub(crate) fn val_to_wt(mut ctx: impl AsContextMut, v: &Val<Wasmtime>) -> wasmtime::Val {
    match v {
        Val::I32(x) => wasmtime::Val::I32(*x),
        Val::I64(x) => wasmtime::Val::I64(*x),
        Val::F32(x) => wasmtime::Val::F32(*x),
        Val::F64(x) => wasmtime::Val::F64(*x),
        Val::V128(x) => wasmtime::Val::V128(x.0.into()),
        Val::FuncRef(f) => wasmtime::Val::FuncRef(f.as_ref().map(|f| *f.raw())),
        Val::ExternRef(r) => {
            wasmtime::Val::ExternRef(r.as_ref().map(|r| r.raw().to_rooted(&mut ctx)))
        }
        Val::ExnRef(r) => wasmtime::Val::ExnRef(r.as_ref().map(|r| r.raw().to_rooted(&mut ctx))),
    }
}

pub(crate) fn val_from_wt(
    mut ctx: impl AsContextMut,
    v: wasmtime::Val,
    store: StoreId,
) -> Val<Wasmtime> {
    match v {
        wasmtime::Val::I32(x) => Val::I32(x),
        wasmtime::Val::I64(x) => Val::I64(x),
        wasmtime::Val::F32(x) => Val::F32(x),
        wasmtime::Val::F64(x) => Val::F64(x),
        wasmtime::Val::V128(x) => Val::V128(V128(x.as_u128())),
        wasmtime::Val::FuncRef(f) => Val::FuncRef(f.map(|f| Func::from_raw(f, store))),
        wasmtime::Val::ExternRef(r) => Val::ExternRef(
            r.and_then(|r| r.to_owned_rooted(&mut ctx).ok())
                .map(|r| ExternRef::from_raw(r, store)),
        ),
        wasmtime::Val::ExnRef(r) => Val::ExnRef(
            r.and_then(|r| r.to_owned_rooted(&mut ctx).ok())
                .map(|r| ExnRef::from_raw(r, store)),
        ),
        // Unreachable through the layer: modules using GC references in their
        // interface are refused when they are loaded.
        _ => Val::ExternRef(None),
    }
}

pub(crate) fn ref_to_wt(
    mut ctx: impl AsContextMut,
    v: &Val<Wasmtime>,
) -> Result<wasmtime::Ref, Error> {
    match v {
        Val::FuncRef(f) => Ok(wasmtime::Ref::Func(f.as_ref().map(|f| *f.raw()))),
        Val::ExternRef(r) => Ok(wasmtime::Ref::Extern(
            r.as_ref().map(|r| r.raw().to_rooted(&mut ctx)),
        )),
        Val::ExnRef(r) => Ok(wasmtime::Ref::Exn(
            r.as_ref().map(|r| r.raw().to_rooted(&mut ctx)),
        )),
        other => Err(Error::InvalidArgument(format!(
            "{} is not a reference",
            other.ty()
        ))),
    }
}

pub(crate) fn ref_from_wt(
    mut ctx: impl AsContextMut,
    r: wasmtime::Ref,
    store: StoreId,
) -> Val<Wasmtime> {
    match r {
        wasmtime::Ref::Func(f) => Val::FuncRef(f.map(|f| Func::from_raw(f, store))),
        wasmtime::Ref::Extern(r) => Val::ExternRef(
            r.and_then(|r| r.to_owned_rooted(&mut ctx).ok())
                .map(|r| ExternRef::from_raw(r, store)),
        ),
        wasmtime::Ref::Exn(r) => Val::ExnRef(
            r.and_then(|r| r.to_owned_rooted(&mut ctx).ok())
                .map(|r| ExnRef::from_raw(r, store)),
        ),
        _ => Val::ExternRef(None),
    }
}

pub(crate) fn extern_to_wt(e: &Extern<Wasmtime>) -> wasmtime::Extern {
    match e {
        Extern::Func(f) => wasmtime::Extern::Func(*f.raw()),
        Extern::Memory(m) => wasmtime::Extern::Memory(*m.raw()),
        Extern::Table(t) => wasmtime::Extern::Table(*t.raw()),
        Extern::Global(g) => wasmtime::Extern::Global(*g.raw()),
        Extern::Tag(t) => wasmtime::Extern::Tag(*t.raw()),
    }
}

pub(crate) fn extern_from_wt(e: wasmtime::Extern, store: StoreId) -> Option<Extern<Wasmtime>> {
    Some(match e {
        wasmtime::Extern::Func(f) => Extern::Func(Func::from_raw(f, store)),
        wasmtime::Extern::Memory(m) => Extern::Memory(Memory::from_raw(m, store)),
        wasmtime::Extern::Table(t) => Extern::Table(Table::from_raw(t, store)),
        wasmtime::Extern::Global(g) => Extern::Global(Global::from_raw(g, store)),
        wasmtime::Extern::Tag(t) => Extern::Tag(Tag::from_raw(t, store)),
        _ => return None,
    })
}
