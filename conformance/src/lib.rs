//! # anywasm-conformance
//!
//! The behaviour every anywasm backend must show, written once as public
//! functions over the core API (`cases`), and instantiated for each backend
//! with [`conformance_tests!`] so that every test is named
//! `<backend>::<case>`:
//!
//! ```ignore
//! mod wasmtime {
//!     anywasm_conformance::conformance_tests!(anywasm_wasmtime::Wasmtime);
//! }
//! ```
//!
//! Cases read what a backend supports from its
//! [`Capabilities`](anywasm_core::Capabilities) and assert
//! [`Error::Unsupported`](anywasm_core::Error::Unsupported) where a capability
//! is missing, so a backend cannot pass by ignoring a request.
//!
//! Adding a backend means one more line in `tests/conformance.rs`.

pub mod cases;
pub mod differential;
pub mod fixtures;
pub mod matrix;
pub mod spec;

pub use cases::*;

/// The expected-failure lists, per backend.
pub mod expected {
    /// wasmtime's list.
    pub const WASMTIME: &str = include_str!("../expected-failures/wasmtime.txt");
    /// wasmi's list.
    pub const WASMI: &str = include_str!("../expected-failures/wasmi.txt");
    /// wasmer's list.
    pub const WASMER: &str = include_str!("../expected-failures/wasmer.txt");
}

/// Expands to one `#[test]` per conformance case for backend `$b`.
#[macro_export]
macro_rules! conformance_tests {
    ($b:ty) => {
        $crate::conformance_tests!(@cases $b;
            arithmetic_i32, arithmetic_i64, arithmetic_f32, arithmetic_f64,
            float_bits_survive_round_trips, multi_value, many_params, typed_v128,
            wrong_signatures_are_errors, every_trap_code, store_usable_after_trap,
            typed_host_functions, dynamic_host_functions, dynamic_host_functions_carry_references,
            host_errors_pass_through,
            host_panic_unwinds_and_store_survives,
            host_reads_and_writes_guest_memory, store_data_from_host_functions,
            host_memory_shared_by_instances, exported_memory_access,
            memory_access_out_of_bounds_is_an_error, globals_imported_and_exported,
            host_table_with_other_instances_functions, host_functions_as_funcrefs, externref_round_trip,
            typed_references, typed_references_inside_modules,
            exception_tags, legacy_exception_encoding, exnref_values,
            fuel_exhaustion_then_refuel, fuel_not_enabled_is_an_error,
            deadline_stops_one_store_only, interrupt_handle_stops_running_call,
            interrupt_before_call_stops_next_call, deadlines_not_enabled_is_an_error,
            memory_limit_per_store, memory_limit_per_engine, table_limit_per_store,
            deep_recursion_traps,
            stack_limit, precompiled_round_trip, precompiled_blob_checks,
            unsupported_proposals, malformed_modules, link_errors, module_metadata,
            start_function, statistics, wat_errors, stores_move_between_threads,
            instance_limit, handles_of_another_store_are_refused,
            modules_of_another_engine_are_refused, timeout_overflow_is_no_deadline,
            failed_instantiation_is_not_counted, table_growth_limits,
            reserved_exports_are_invisible, caller_is_the_importing_instance,
            fuel_is_one_budget_across_instances, deadline_stops_a_loop_without_stores,
            waiting_host_function_ends_with_the_deadline,
            deadlines_do_not_interrupt_system_calls, caller_through_a_funcref,
            an_interrupt_as_a_call_returns_stops_the_next, memory_budget_across_stores,
            first_calls_under_a_deadline, failed_growth_gives_back_its_budget,
            code_cache_on_disk, async_host_function_awaits_a_timer,
            async_errors_and_panics_cross_the_await, dropping_an_async_call_cancels_it,
            deadlines_and_fuel_stop_async_calls, long_async_calls_yield_to_other_tasks
        );
    };
    (@cases $b:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::cases::$case::<$b>();
            }
        )*
    };
}
