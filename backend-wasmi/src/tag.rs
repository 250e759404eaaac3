//! Exception tags: wasmi runs no exceptions, so no tag can exist.

use anywasm_core::{BackendTag, BackendTypes, Error, Exception, FuncType, Result, StoreId, Val};

use crate::Ctx;
use crate::CtxMut;
use crate::Wasmi;

/// The tag type of a backend without exceptions: it has no values.
#[derive(Debug, Clone, Copy)]
pub enum NoTag {}

/// The exception object type of a backend without exceptions: it has no
/// values.
#[derive(Debug, Clone, Copy)]
pub enum NoExnRef {}

impl BackendTag for Wasmi {
    fn tag_new<T: Send + 'static>(_: CtxMut<'_, T>, _: &FuncType) -> Result<NoTag> {
        Err(Error::unsupported(Wasmi::NAME, "exception tags"))
    }

    fn tag_ty<T: Send + 'static>(_: Ctx<'_, T>, tag: &NoTag) -> Result<FuncType> {
        match *tag {}
    }

    fn exnref_new<T: Send + 'static>(
        _: CtxMut<'_, T>,
        tag: &NoTag,
        _: &[Val<Wasmi>],
    ) -> Result<NoExnRef> {
        match *tag {}
    }

    fn exnref_exception<T: Send + 'static>(
        _: CtxMut<'_, T>,
        exn: &NoExnRef,
        _: StoreId,
    ) -> Result<Exception<Wasmi>> {
        match *exn {}
    }
}
