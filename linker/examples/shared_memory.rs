//! Three standalone position-independent modules in one memory, with a
//! shared heap after them: `common` creates an object, `a` reads it, `b`
//! doubles it (the npm `wasm-share-memory` example, done soundly: each
//! module's own relocation code fixes its pointers, including those stored
//! in data).
//!
//! ```text
//! cargo run -p anywasm-linker --example shared_memory
//! ```

use anywasm::{Backend, BackendKind, Engine, Linker, Store, Val};
use anywasm_linker::{DynamicLinker, Error, LinkerConfig, combine};

fn main() -> Result<(), Error> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let read = |name: &str| std::fs::read(format!("{dir}/{name}")).expect("fixture");
    let (common, a, b) = (read("common.so"), read("a.so"), read("b.so"));

    // The layout alone, without an engine: where each module goes and how
    // many pages the memory needs.
    let layout = combine(&LinkerConfig::new(), &[&common, &a, &b], 1 << 20)?;
    for (name, m) in ["common", "a", "b"].iter().zip(&layout.modules) {
        println!(
            "{name}: __memory_base = {:#x} ({} bytes)",
            m.memory_base, m.memory_size
        );
    }
    println!(
        "heap {:#x}..{:#x}, {} pages",
        layout.heap.start, layout.heap.end, layout.pages_needed
    );

    for kind in BackendKind::available() {
        anywasm::with_backend!(kind, B => run::<B>(&common, &a, &b))??;
    }
    Ok(())
}

fn run<B: Backend>(common: &[u8], a: &[u8], b: &[u8]) -> Result<(), Error> {
    let kind = B::NAME;
    let engine = Engine::<B>::default_config()?;
    let mut store = Store::new(&engine, ());
    let mut dl = DynamicLinker::new(&mut store, LinkerConfig::new(), Linker::new())?;
    let shared = dl.load_shared(
        &mut store,
        &[("common", common), ("a", a), ("b", b)],
        1 << 20,
    )?;
    let export = |dl: &DynamicLinker<B, ()>, store: &mut Store<B, ()>, i: usize, name: &str| {
        dl.library(shared.libraries[i])
            .expect("loaded")
            .instance()
            .get_func(store, name)
    };
    let object = export(&dl, &mut store, 0, "create_object")?
        .invoke(&mut store, &[Val::I64(1337)])?[0]
        .clone();
    let get_value = export(&dl, &mut store, 1, "get_value")?;
    let before = get_value.invoke(&mut store, std::slice::from_ref(&object))?[0].clone();
    export(&dl, &mut store, 2, "double")?.invoke(&mut store, std::slice::from_ref(&object))?;
    let after = get_value.invoke(&mut store, std::slice::from_ref(&object))?[0].clone();
    println!("{kind}: object at {object}: get_value = {before}, after double = {after}");
    Ok(())
}
