//! Runs one module on every backend in this build and prints what each
//! returned and how long compiling, instantiating and calling took.
//!
//! ```text
//! cargo run --release -p anywasm --example demo --features wasmi,wasmer
//! ```

use std::time::Instant;

use anywasm::{BackendKind, Engine, Instance, Linker, Module, Store};

const WAT: &str = r#"(module
  (import "host" "log" (func $log (param i32)))
  (func $fib (export "fib") (param i32) (result i32)
    local.get 0 i32.const 2 i32.lt_u
    if (result i32) local.get 0
    else
      local.get 0 i32.const 1 i32.sub call $fib
      local.get 0 i32.const 2 i32.sub call $fib
      i32.add
    end)
  (func (export "run") (param i32) (result i32)
    local.get 0 call $fib
    local.get 0 call $log))
"#;

fn main() -> anywasm::Result<()> {
    println!(
        "{:<10} {:>10} {:>12} {:>10} {:>10}",
        "backend", "result", "compile", "instantiate", "call"
    );
    for kind in BackendKind::available() {
        anywasm::with_backend!(kind, B => {
            let t = Instant::now();
            let engine = Engine::<B>::default_config()?;
            let module = Module::from_wat(&engine, WAT)?;
            let compile = t.elapsed();

            let mut linker = Linker::<B, Vec<i32>>::new();
            linker.func_wrap("host", "log", |mut caller: anywasm::Caller<'_, B, Vec<i32>>, n: i32| {
                caller.data_mut().push(n);
            })?;
            let t = Instant::now();
            let mut store = Store::new(&engine, Vec::new());
            let instance: Instance<B> = linker.instantiate(&mut store, &module)?;
            let run = instance.get_typed_func::<i32, i32>(&mut store, "run")?;
            let instantiate = t.elapsed();

            let t = Instant::now();
            let result = run.call(&mut store, 25)?;
            let call = t.elapsed();
            assert_eq!(store.data(), &[25]);
            println!(
                "{:<10} {:>10} {:>12.2?} {:>10.2?} {:>10.2?}",
                kind.name(), result, compile, instantiate, call
            );
        })?;
    }
    Ok(())
}
