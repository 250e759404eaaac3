//! Fuel and deadlines for wasmer, compiled into the code.
//!
//! wasmer has no fuel of its own and its only interruption (behind the
//! `experimental-host-interrupt` feature) is a signal, which disturbs
//! blocking system calls, replaces the process's SIGUSR1 handler and costs
//! a map insert per call. The backend compiles the checks in instead, as
//! wasmtime does with epochs:
//!
//! - Every module of an engine with fuel or deadlines is rewritten to import
//!   two globals from the store ([`FUEL`] and [`STATUS`], appended after its
//!   own imports by `anywasm_core::rewrite::append_global_imports`). Every
//!   instance of a store imports the same two, so fuel is one budget for the
//!   whole store, however calls cross instances.
//! - With fuel, each basic block subtracts its operator count from `fuel`,
//!   and when it would go below zero sets `status` to [`OUT_OF_FUEL`] and
//!   executes `unreachable`.
//! - With deadlines, each function entry and each loop header reads
//!   `status` and, if it is not zero, calls the store's [`STOP_FUNC`] (see
//!   `loop_barrier` for why every loop iteration also stores to a global).
//!   The layer's deadline timer, or an interrupt request, sets it to
//!   [`STOP`] from any thread through the global's address (see
//!   `store::StatusCell`); so does the timer when an async call should
//!   yield to its executor. The stop function (an import appended after
//!   the globals, `store::at_stop`) sets `status` back and then fails with
//!   the deadline's or the interrupt's trap, or yields, or (for a stop
//!   asked for before the call) goes on.
//!
//! After an `unreachable` trap, `status` tells a genuine trap from fuel
//! exhaustion.

use std::sync::Mutex;

use wasmer::LocalFunctionIndex;
use wasmer::sys::wasmparser::{BlockType, Operator};
use wasmer::sys::{FunctionMiddleware, MiddlewareError, MiddlewareReaderState, ModuleMiddleware};
use wasmer_types::ModuleInfo;

/// Import module of the control globals.
pub(crate) const MODULE: &str = "__anywasm";
/// The store's remaining fuel (`i64`, mutable).
pub(crate) const FUEL: &str = "fuel";
/// The store's status word (`i32`, mutable): see the constants below.
pub(crate) const STATUS: &str = "status";
/// The store's stop function (`[] -> []`), for engines with deadlines.
pub(crate) const STOP_FUNC: &str = "stop";

/// `status`: running normally.
pub(crate) const RUNNING: i32 = 0;
/// `status`: the code ran out of fuel.
pub(crate) const OUT_OF_FUEL: i32 = 1;
/// `status`: the host asked the code to stop (deadline or interrupt) or
/// to yield (an async call), at its next check.
pub(crate) const STOP: i32 = 2;

/// Where the control globals are in the module being compiled, and which
/// checks to emit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) fuel_global: u32,
    pub(crate) status_global: u32,
    pub(crate) meter_fuel: bool,
    /// The stop function's index, where the code checks for stops.
    pub(crate) stop_func: Option<u32>,
}

/// The middleware. The engine compiles one module at a time while it is in
/// use (the backend holds `Compiler::lock`), and the plan set just before
/// `wasmer::Module::new` belongs to the module being compiled; `None`
/// compiles a module as it is (the backend's own funcref thunks).
#[derive(Debug, Default)]
pub(crate) struct Control {
    plan: Mutex<Option<Plan>>,
}

impl Control {
    pub(crate) fn set_plan(&self, plan: Option<Plan>) {
        *self.plan.lock().unwrap_or_else(|p| p.into_inner()) = plan;
    }
}

impl ModuleMiddleware for Control {
    fn generate_function_middleware<'a>(
        &self,
        _: LocalFunctionIndex,
    ) -> Box<dyn FunctionMiddleware<'a> + 'a> {
        let plan = *self.plan.lock().unwrap_or_else(|p| p.into_inner());
        Box::new(FunctionControl {
            plan,
            accumulated: 0,
            entered: false,
        })
    }

    fn transform_module_info(&self, _: &mut ModuleInfo) -> Result<(), MiddlewareError> {
        Ok(())
    }
}

#[derive(Debug)]
struct FunctionControl {
    plan: Option<Plan>,
    accumulated: u64,
    entered: bool,
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

/// `if (status != 0) call stop`.
fn stop_check<'a>(plan: &Plan, stop_func: u32, state: &mut MiddlewareReaderState<'a>) {
    state.extend(&[
        Operator::GlobalGet {
            global_index: plan.status_global,
        },
        Operator::If {
            blockty: BlockType::Empty,
        },
        Operator::Call {
            function_index: stop_func,
        },
        Operator::End,
    ]);
}

/// A store to a global in every iteration of a loop, so the compiler reads
/// `status` again each time round. Cranelift's alias analysis puts all
/// globals in one memory region and reuses a load of it until a store or
/// call intervenes; a loop that neither stores nor calls (`loop br 0`)
/// would otherwise test the value read at function entry forever. With fuel
/// metered, charging fuel is that store already; without, the unused fuel
/// global counts iterations.
fn loop_barrier<'a>(plan: &Plan, state: &mut MiddlewareReaderState<'a>) {
    state.extend(&[
        Operator::GlobalGet {
            global_index: plan.fuel_global,
        },
        Operator::I64Const { value: 1 },
        Operator::I64Add,
        Operator::GlobalSet {
            global_index: plan.fuel_global,
        },
    ]);
}

/// Charges `cost` fuel, or sets `status` to `OUT_OF_FUEL` and traps.
fn charge<'a>(plan: &Plan, cost: i64, state: &mut MiddlewareReaderState<'a>) {
    state.extend(&[
        Operator::GlobalGet {
            global_index: plan.fuel_global,
        },
        Operator::I64Const { value: cost },
        Operator::I64LtU,
        Operator::If {
            blockty: BlockType::Empty,
        },
        Operator::I32Const { value: OUT_OF_FUEL },
        Operator::GlobalSet {
            global_index: plan.status_global,
        },
        Operator::Unreachable,
        Operator::End,
        Operator::GlobalGet {
            global_index: plan.fuel_global,
        },
        Operator::I64Const { value: cost },
        Operator::I64Sub,
        Operator::GlobalSet {
            global_index: plan.fuel_global,
        },
    ]);
}

impl<'a> FunctionMiddleware<'a> for FunctionControl {
    fn feed(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        let Some(plan) = self.plan else {
            state.push_operator(operator);
            return Ok(());
        };
        if !self.entered {
            self.entered = true;
            if let Some(stop) = plan.stop_func {
                stop_check(&plan, stop, state);
            }
        }
        if plan.meter_fuel {
            self.accumulated += 1;
            if ends_block(&operator) {
                charge(&plan, self.accumulated as i64, state);
                self.accumulated = 0;
            }
        }
        let is_loop = matches!(operator, Operator::Loop { .. });
        state.push_operator(operator);
        if is_loop && let Some(stop) = plan.stop_func {
            stop_check(&plan, stop, state);
            if !plan.meter_fuel {
                loop_barrier(&plan, state);
            }
        }
        Ok(())
    }
}
