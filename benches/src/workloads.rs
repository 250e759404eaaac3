//! The workloads, shared by the benchmarks of the layer (`anywasm-benches`)
//! and of raw wasmi built with its default features (`benches/raw-wasmi`,
//! outside the workspace, which includes this file by path). Depends on
//! nothing but `wasm-encoder` and `wat`.

/// `fib(FIB_N)` in the `fib` rows.
pub const FIB_N: i32 = 20;
/// Iterations of the loop kernel.
pub const KERNEL_N: i32 = 100_000;
/// Guest → host → guest calls per `host_roundtrip` iteration.
pub const HOST_CALLS: i32 = 1_000;
/// Criterion settings of the short groups: warm-up and measurement time
/// (milliseconds) and sample count.
pub const SHORT_GROUP: (u64, u64, usize) = (500, 2_000, 30);
/// Criterion settings of the slow groups (compiling 1 MB, real programs),
/// as `SHORT_GROUP`.
pub const LONG_GROUP: (u64, u64, usize) = (100, 5_000, 10);

use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, Module,
    TypeSection, ValType,
};

/// The workload module (WAT).
pub const BENCH_WAT: &str = include_str!("../fixtures/bench.wat");
/// The echo plugin (WAT).
pub const ECHO_PLUGIN_WAT: &str = include_str!("../fixtures/echo_plugin.wat");

/// The workload module's bytes.
pub fn bench_wasm() -> Vec<u8> {
    wat::parse_str(BENCH_WAT).expect("the bench fixture is valid")
}

/// A deterministic module of about `target` bytes: many functions doing
/// integer arithmetic with locals, calls and branches, for compile timings.
pub fn big_module(target: usize) -> Vec<u8> {
    let mut types = TypeSection::new();
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I32]);
    let mut funcs = FunctionSection::new();
    let mut code = CodeSection::new();
    let mut exports = ExportSection::new();
    let mut size = 0usize;
    let mut n = 0u32;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    while size < target {
        funcs.function(0);
        let mut f = Function::new([(4, ValType::I32)]);
        for k in 0..40 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let c = (seed % 1000) as i32;
            f.instruction(&Instruction::LocalGet(k % 2));
            f.instruction(&Instruction::I32Const(c));
            f.instruction(&match seed % 4 {
                0 => Instruction::I32Add,
                1 => Instruction::I32Mul,
                2 => Instruction::I32Xor,
                _ => Instruction::I32Sub,
            });
            f.instruction(&Instruction::LocalTee(2 + k % 4));
            f.instruction(&Instruction::LocalGet(2 + (k + 1) % 4));
            f.instruction(&Instruction::I32Add);
            f.instruction(&Instruction::LocalSet(2 + (k + 2) % 4));
            if n > 0 && k % 10 == 9 {
                f.instruction(&Instruction::LocalGet(2));
                f.instruction(&Instruction::LocalGet(3));
                f.instruction(&Instruction::Call((seed % u64::from(n)) as u32));
                f.instruction(&Instruction::LocalSet(4));
            }
        }
        f.instruction(&Instruction::LocalGet(2));
        f.instruction(&Instruction::LocalGet(5));
        f.instruction(&Instruction::I32Add);
        f.instruction(&Instruction::End);
        size += f.byte_len() + 2;
        code.function(&f);
        if n.is_multiple_of(100) {
            exports.export(&format!("f{n}"), ExportKind::Func, n);
        }
        n += 1;
    }
    let mut m = Module::new();
    m.section(&types)
        .section(&funcs)
        .section(&exports)
        .section(&code);
    m.finish()
}
