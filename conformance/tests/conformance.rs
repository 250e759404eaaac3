//! The conformance suite, once per backend: tests are named `<backend>::<case>`.

#[cfg(feature = "wasmtime")]
mod wasmtime {
    anywasm_conformance::conformance_tests!(anywasm_wasmtime::Wasmtime);
}

#[cfg(feature = "wasmi")]
mod wasmi {
    anywasm_conformance::conformance_tests!(anywasm_wasmi::Wasmi);
}

#[cfg(feature = "wasmer")]
mod wasmer {
    anywasm_conformance::conformance_tests!(anywasm_wasmer::Wasmer);
}

/// Checks that need two backends at once.
#[cfg(all(feature = "wasmtime", feature = "wasmer"))]
mod cross_backend {
    use anywasm_core::{Config, Engine, Error, Module};

    /// A blob made by one engine is refused by another with a clear error.
    #[test]
    fn precompiled_blob_from_another_backend_is_rejected() {
        let wt = Engine::<anywasm_wasmtime::Wasmtime>::new(&Config::new()).unwrap();
        let wr = Engine::<anywasm_wasmer::Wasmer>::new(&Config::new()).unwrap();
        let wat = "(module (func (export \"f\")))";
        let from_wt = Module::from_wat(&wt, wat).unwrap().serialize().unwrap();
        let from_wr = Module::from_wat(&wr, wat).unwrap().serialize().unwrap();
        // SAFETY: both are rejected by the layer's checks.
        match unsafe { Module::deserialize(&wr, &from_wt) } {
            Err(Error::Precompiled(msg)) => {
                assert!(msg.contains("wasmtime") && msg.contains("wasmer"), "{msg}")
            }
            other => panic!("expected a precompiled error, got {other:?}"),
        }
        // SAFETY: as above.
        assert!(matches!(
            unsafe { Module::deserialize(&wt, &from_wr) },
            Err(Error::Precompiled(_))
        ));
    }
}

/// The engine versions the backends report (and CONFORMANCE.md shows) are
/// the ones Cargo.lock builds.
#[test]
fn engine_versions_match_the_lock_file() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let locked = |name: &str| -> Vec<String> {
        let header = format!("name = \"{name}\"\nversion = \"");
        lock.match_indices(&header)
            .map(|(i, _)| {
                let rest = &lock[i + header.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect()
    };
    use anywasm_core::Backend;
    #[cfg(feature = "wasmtime")]
    assert_eq!(
        locked("wasmtime"),
        [anywasm_wasmtime::Wasmtime::ENGINE_VERSION]
    );
    #[cfg(feature = "wasmi")]
    assert_eq!(locked("wasmi"), [anywasm_wasmi::Wasmi::ENGINE_VERSION]);
    #[cfg(feature = "wasmer")]
    assert_eq!(locked("wasmer"), [anywasm_wasmer::Wasmer::ENGINE_VERSION]);
}
