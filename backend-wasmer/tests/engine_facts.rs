//! Limitations of wasmer itself, shown with wasmer's own API. The conformance
//! suite lists the spec tests they break as expected failures; when wasmer
//! lifts a limitation, its test here fails, and the expected failure can go.

fn engine() -> wasmer::Engine {
    wasmer::sys::EngineBuilder::new(wasmer::sys::Cranelift::new())
        .engine()
        .into()
}

fn engine_with_exceptions() -> wasmer::Engine {
    let mut features = wasmer::sys::Features::new();
    features.exceptions(true);
    wasmer::sys::EngineBuilder::new(wasmer::sys::Cranelift::new())
        .set_features(Some(features))
        .engine()
        .into()
}

/// `global.get` in an element segment's offset or items (allowed since
/// WebAssembly 2.0; `wasm-v2/elem.wast:683`).
#[test]
fn element_segments_with_global_get_do_not_compile() {
    let wasm = wat::parse_str(
        r#"(module
            (import "m" "g" (global $g funcref))
            (table 1 funcref)
            (elem (i32.const 0) funcref (global.get $g)))"#,
    )
    .unwrap();
    let err = wasmer::Module::new(&engine(), &wasm).unwrap_err();
    assert!(
        err.to_string()
            .contains("unsupported init expr in element section"),
        "{err}"
    );
}

/// A table whose declared maximum is 2^32-1 (`wasm-v2/table.wast:9`).
#[test]
fn tables_with_a_large_maximum_do_not_instantiate() {
    let wasm = wat::parse_str("(module (table 0 0xffffffff funcref))").unwrap();
    let mut store = wasmer::Store::new(engine());
    let module = wasmer::Module::new(&store, &wasm).unwrap();
    let err = wasmer::Instance::new(&mut store, &module, &wasmer::imports! {}).unwrap_err();
    assert!(
        err.to_string().contains("larger than maximum allowed size"),
        "{err}"
    );
}

/// An element segment of `exnref`s (valid with exception handling; found
/// by differential testing, `conformance/tests/differential.rs`).
#[test]
fn exnref_element_segments_do_not_compile() {
    let wasm = wat::parse_str(
        r#"(module
            (table 1 exnref)
            (elem (table 0) (i32.const 0) exnref (ref.null exn)))"#,
    )
    .unwrap();
    let engine = engine_with_exceptions();
    let err = wasmer::Module::new(&engine, &wasm).unwrap_err();
    assert!(
        err.to_string()
            .contains("unsupported element type in element section: exnref"),
        "{err}"
    );
}

/// A table of exception references, made by the host (valid with
/// exception handling; the layer refuses it as `Unsupported`).
#[test]
fn exnref_tables_cannot_be_made() {
    let engine = engine_with_exceptions();
    let mut store = wasmer::Store::new(engine);
    let ty = wasmer::TableType::new(wasmer::Type::ExceptionRef, 1, None);
    let err = wasmer::Table::new(&mut store, ty, wasmer::Value::ExceptionRef(None)).unwrap_err();
    assert!(err.to_string().contains("val is not reference"), "{err}");
}

/// A module with a table of exception references does not instantiate
/// (found by differential testing).
#[test]
fn modules_with_exnref_tables_do_not_instantiate() {
    let wasm = wat::parse_str("(module (table 1 exnref))").unwrap();
    let engine = engine_with_exceptions();
    let mut store = wasmer::Store::new(engine);
    let module = wasmer::Module::new(&store, &wasm).unwrap();
    let err = wasmer::Instance::new(&mut store, &module, &wasmer::imports! {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("tables of types other than funcref or externref"),
        "{err}"
    );
}
