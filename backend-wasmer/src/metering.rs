//! Fuel for wasmer: a compiler middleware that counts operators.
//!
//! Modelled on `wasmer-middlewares`' `Metering`, with two differences that
//! the layer needs: one middleware serves every module an engine compiles
//! (wasmer's panics on the second module), and the counters carry names of
//! the layer's own. Each function's basic blocks subtract their operator
//! count from a per-instance `i64` global, and trap when it would go below
//! zero after setting an "exhausted" flag global.

use std::sync::Mutex;

use wasmer::sys::wasmparser::{BlockType, Operator};
use wasmer::sys::{FunctionMiddleware, MiddlewareError, MiddlewareReaderState, ModuleMiddleware};
use wasmer::{ExportIndex, GlobalInit, GlobalType, LocalFunctionIndex, Mutability, Type};
use wasmer_types::{GlobalIndex, ModuleInfo};

/// Export name of the remaining-fuel global the middleware adds.
pub(crate) const FUEL_GLOBAL: &str = "__anywasm_fuel";
/// Export name of the exhausted-flag global the middleware adds.
pub(crate) const EXHAUSTED_GLOBAL: &str = "__anywasm_fuel_exhausted";

#[derive(Debug, Clone, Copy)]
struct Indexes {
    remaining: GlobalIndex,
    exhausted: GlobalIndex,
}

/// The middleware. The engine compiles one module at a time while it is in
/// use (the backend holds a lock), so the indexes set by
/// `transform_module_info` belong to the module being compiled.
#[derive(Debug, Default)]
pub(crate) struct FuelMetering {
    indexes: Mutex<Option<Indexes>>,
}

impl ModuleMiddleware for FuelMetering {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        let indexes = self
            .indexes
            .lock()
            .ok()
            .and_then(|g| *g)
            .expect("transform_module_info runs before functions are compiled");
        Box::new(FunctionMetering {
            indexes,
            accumulated: 0,
        })
    }

    fn transform_module_info(&self, info: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        let remaining = info
            .globals
            .push(GlobalType::new(Type::I64, Mutability::Var));
        info.global_initializers.push(GlobalInit::I64Const(0));
        info.exports
            .insert(FUEL_GLOBAL.to_string(), ExportIndex::Global(remaining));
        let exhausted = info
            .globals
            .push(GlobalType::new(Type::I32, Mutability::Var));
        info.global_initializers.push(GlobalInit::I32Const(0));
        info.exports
            .insert(EXHAUSTED_GLOBAL.to_string(), ExportIndex::Global(exhausted));
        if let Ok(mut slot) = self.indexes.lock() {
            *slot = Some(Indexes {
                remaining,
                exhausted,
            });
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FunctionMetering {
    indexes: Indexes,
    accumulated: u64,
}

/// Operators that end a basic block: the cost so far is charged before them.
fn ends_block(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Loop { .. }
            | Operator::End
            | Operator::If { .. }
            | Operator::Else
            | Operator::Br { .. }
            | Operator::BrTable { .. }
            | Operator::BrIf { .. }
            | Operator::Call { .. }
            | Operator::CallIndirect { .. }
            | Operator::Return
            | Operator::Throw { .. }
            | Operator::ThrowRef
            | Operator::Rethrow { .. }
            | Operator::Delegate { .. }
            | Operator::Catch { .. }
            | Operator::TryTable { .. }
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::BrOnCast { .. }
            | Operator::BrOnCastFail { .. }
            | Operator::CallRef { .. }
            | Operator::ReturnCallRef { .. }
            | Operator::BrOnNull { .. }
            | Operator::BrOnNonNull { .. }
    )
}

impl<'a> FunctionMiddleware<'a> for FunctionMetering {
    fn feed(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        self.accumulated += 1;
        if ends_block(&operator) && self.accumulated > 0 {
            let remaining = self.indexes.remaining.as_u32();
            let exhausted = self.indexes.exhausted.as_u32();
            let cost = self.accumulated as i64;
            state.extend(&[
                Operator::GlobalGet {
                    global_index: remaining,
                },
                Operator::I64Const { value: cost },
                Operator::I64LtU,
                Operator::If {
                    blockty: BlockType::Empty,
                },
                Operator::I32Const { value: 1 },
                Operator::GlobalSet {
                    global_index: exhausted,
                },
                Operator::Unreachable,
                Operator::End,
                Operator::GlobalGet {
                    global_index: remaining,
                },
                Operator::I64Const { value: cost },
                Operator::I64Sub,
                Operator::GlobalSet {
                    global_index: remaining,
                },
            ]);
            self.accumulated = 0;
        }
        state.push_operator(operator);
        Ok(())
    }
}
