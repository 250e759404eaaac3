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
