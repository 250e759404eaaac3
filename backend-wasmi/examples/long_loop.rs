//! Runs a wasm loop of 20 million iterations on wasmi. `.ci/run` builds it
//! with wasmi at opt-level 0 (as in an application's debug build), where a
//! tail-call dispatch would overflow the native stack.

use anywasm_core::{Config, Engine, Linker, Module, Store, Val};
use anywasm_wasmi::Wasmi;

fn main() -> anywasm_core::Result<()> {
    let engine = Engine::<Wasmi>::new(&Config::new())?;
    let module = Module::from_wat(
        &engine,
        r#"(module (func (export "count") (param i32) (result i32) (local i32)
            (loop $l (local.set 1 (i32.add (local.get 1) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
            (local.get 1)))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let instance = Linker::new().instantiate(&mut store, &module)?;
    let count = instance.get_func(&mut store, "count")?;
    let out = count.invoke(&mut store, &[Val::I32(20_000_000)])?;
    match out.as_slice() {
        [Val::I32(n)] if *n == 20_000_000 => {
            println!("counted to {n}");
            Ok(())
        }
        other => Err(anywasm_core::Error::InvalidArgument(format!(
            "unexpected result {other:?}"
        ))),
    }
}
