//! The WAT fixtures of the suite, from `conformance/fixtures/`.

/// Arithmetic and multiple results.
pub const ARITH: &str = include_str!("../fixtures/arith.wat");
/// One function per trap.
pub const TRAPS: &str = include_str!("../fixtures/traps.wat");
/// Calls to host functions.
pub const HOST: &str = include_str!("../fixtures/host.wat");
/// Imported memory, globals and table.
pub const SHARED_ITEMS: &str = include_str!("../fixtures/shared_items.wat");
/// Functions for a shared table.
pub const PROVIDER: &str = include_str!("../fixtures/provider.wat");
/// Infinite and long loops.
pub const LOOPS: &str = include_str!("../fixtures/loops.wat");
/// Recursion of a chosen depth.
pub const RECURSION: &str = include_str!("../fixtures/recursion.wat");
/// A growable memory.
pub const GROW: &str = include_str!("../fixtures/grow.wat");
/// A start function.
pub const START: &str = include_str!("../fixtures/start.wat");
/// `externref` through wasm.
pub const EXTERNREF: &str = include_str!("../fixtures/externref.wat");
