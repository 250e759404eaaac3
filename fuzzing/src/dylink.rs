//! Target (e): the dynamic linker's input. The bytes are parsed as a
//! module's `dylink.0` section, then loaded as a library: as they are, and
//! as the `dylink.0` section of a small side module that needs a second
//! library made of the rest of the input. Every failure must be an error.

use anywasm::{Backend, Linker, Store};
use anywasm_linker::{Dylink, DynamicLinker, LinkerConfig};
use wasm_encoder::{
    CustomSection, EntityType, GlobalType, ImportSection, MemoryType, Module, ValType,
};

/// A side module: `env.memory`, `env.__memory_base`, `env.__table_base`
/// imports and `section` as its `dylink.0` section.
fn side_module(section: &[u8]) -> Vec<u8> {
    let mut m = Module::new();
    m.section(&CustomSection {
        name: "dylink.0".into(),
        data: section.into(),
    });
    let mut imports = ImportSection::new();
    imports.import(
        "env",
        "memory",
        EntityType::Memory(MemoryType {
            minimum: 0,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        }),
    );
    for base in ["__memory_base", "__table_base"] {
        imports.import(
            "env",
            base,
            EntityType::Global(GlobalType {
                val_type: ValType::I32,
                mutable: false,
                shared: false,
            }),
        );
    }
    m.section(&imports);
    m.finish()
}

/// Runs the input on every backend.
pub fn run(data: &[u8]) {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (section, rest) = data.split_at(split);
    let wrapped = side_module(section);
    let _ = Dylink::parse("raw.so", data);
    let _ = Dylink::parse("wrapped.so", &wrapped);
    on::<anywasm::Wasmtime>(data, &wrapped, rest);
    on::<anywasm::Wasmi>(data, &wrapped, rest);
    on::<anywasm::Wasmer>(data, &wrapped, rest);
}

fn on<B: Backend>(raw: &[u8], wrapped: &[u8], rest: &[u8]) {
    let engine = crate::engine::<B>();
    let mut store = Store::new(&engine, ());
    let _ = store.set_fuel(crate::FUEL);
    let _ = store.set_timeout(crate::TIMEOUT);
    let config = LinkerConfig::new()
        .max_memory_pages(256)
        .max_table_size(4096);
    let Ok(mut dl) = DynamicLinker::new(&mut store, config, Linker::new()) else {
        panic!("{}: the dynamic linker cannot start", B::NAME);
    };
    dl.add_library_bytes("raw.so", raw.to_vec());
    dl.add_library_bytes("wrapped.so", wrapped.to_vec());
    // Whatever `needed` names, the rest of the input answers to a few names.
    for name in ["libc.so", "a", "lib.so", ""] {
        dl.add_library_bytes(name, rest.to_vec());
    }
    for name in ["raw.so", "wrapped.so"] {
        if let Ok(handle) = dl.dlopen(&mut store, name) {
            let _ = dl.dlsym(&mut store, handle, "f");
            let _ = dl.dlclose(handle);
        }
    }
}
