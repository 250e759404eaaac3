//! `anywasm demo`: the README's main job.

use std::time::Instant;

use anywasm::{BackendKind, Caller, Engine, Linker, Module, Store};

use crate::Failure;

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

pub fn run() -> Result<(), Failure> {
    println!(
        "fib(25) computed in wasm, logged through a host function, on every engine in this build:\n"
    );
    println!(
        "{:<10} {:>8} {:>12} {:>12} {:>12}",
        "engine", "result", "compile", "instantiate", "call"
    );
    for kind in BackendKind::available() {
        let (result, compile, instantiate, call, logged) = anywasm::with_backend!(kind, B => {
            let t = Instant::now();
            let engine = Engine::<B>::default_config()?;
            let module = Module::from_wat(&engine, WAT)?;
            let compile = t.elapsed();
            let mut linker = Linker::<B, Vec<i32>>::new();
            linker.func_wrap("host", "log", |mut caller: Caller<'_, B, Vec<i32>>, n: i32| {
                caller.data_mut().push(n);
            })?;
            let t = Instant::now();
            let mut store = Store::new(&engine, Vec::new());
            let instance = linker.instantiate(&mut store, &module)?;
            let run = instance.get_typed_func::<i32, i32>(&mut store, "run")?;
            let instantiate = t.elapsed();
            let t = Instant::now();
            let result = run.call(&mut store, 25)?;
            let call = t.elapsed();
            (result, compile, instantiate, call, store.into_data())
        })?;
        if logged != [25] {
            return Err(Failure::Error(format!(
                "{kind}: the host function was not called"
            )));
        }
        println!(
            "{:<10} {:>8} {:>12.2?} {:>12.2?} {:>12.2?}",
            kind.name(),
            result,
            compile,
            instantiate,
            call
        );
    }
    Ok(())
}
