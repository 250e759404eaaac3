//! Host functions with a run-time signature as funcrefs.
//!
//! wasmer cannot put a function made with `Function::new_with_env` (a
//! "dynamic" function, which is what `Func::new` needs for a signature known
//! only at run time) into a table, a global or a funcref argument: it
//! panics with "dynamic functions cannot be used in tables or as funcrefs".
//! The backend gives such a function a wasm body instead: a one-function
//! module that imports it and exports a function calling it. That export is
//! an ordinary wasm function, valid anywhere a funcref is; it is made once
//! per host function, on first use as a funcref.

use anywasm_core::{Error, FuncType, ValType};
use wasm_encoder::{
    CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection,
    Instruction, Module, TypeSection, ValType as EncType,
};

fn enc(t: ValType) -> EncType {
    match t {
        ValType::I32 => EncType::I32,
        ValType::I64 => EncType::I64,
        ValType::F32 => EncType::F32,
        ValType::F64 => EncType::F64,
        ValType::V128 => EncType::V128,
        ValType::FuncRef => EncType::FUNCREF,
        ValType::ExternRef => EncType::EXTERNREF,
        ValType::ExnRef => EncType::EXNREF,
    }
}

/// `(module (import "" "f" (func $f T)) (func (export "f") T local.get… call $f))`.
pub(crate) fn thunk_module(ty: &FuncType) -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function(
        ty.params().iter().map(|t| enc(*t)),
        ty.results().iter().map(|t| enc(*t)),
    );
    let mut imports = ImportSection::new();
    imports.import("", "f", EntityType::Function(0));
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    let mut exports = ExportSection::new();
    exports.export("f", ExportKind::Func, 1);
    let mut body = Function::new([]);
    for i in 0..ty.params().len() {
        body.instruction(&Instruction::LocalGet(i as u32));
    }
    body.instruction(&Instruction::Call(0));
    body.instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&body);
    let mut m = Module::new();
    m.section(&types)
        .section(&imports)
        .section(&funcs)
        .section(&exports)
        .section(&code);
    m.finish()
}

pub(crate) fn thunk_error(e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: crate::NAME,
        message: format!("cannot make a funcref of a host function: {e}"),
    }
}
