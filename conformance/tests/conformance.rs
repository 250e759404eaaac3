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
/// the ones Cargo.lock builds for the backend crates. (The lock file may
/// hold a second wasmtime: the benches' opt-in Extism reference brings its
/// own, which is why the backend crate's own dependency line is read.)
#[test]
fn engine_versions_match_the_lock_file() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let locked = |backend_crate: &str, engine: &str| -> String {
        let block_start = lock
            .find(&format!("name = \"{backend_crate}\"\n"))
            .unwrap_or_else(|| panic!("{backend_crate} is not in Cargo.lock"));
        let block = &lock[block_start..];
        let block = &block[..block.find("[[package]]").unwrap_or(block.len())];
        let dep = block
            .lines()
            .map(|l| l.trim().trim_matches(|c| c == '"' || c == ','))
            .find(|l| *l == engine || l.starts_with(&format!("{engine} ")))
            .unwrap_or_else(|| panic!("{backend_crate} does not depend on {engine}"))
            .to_string();
        match dep.split_once(' ') {
            Some((_, version)) => version.to_string(),
            None => {
                // Only one version in the lock file: read it from its block.
                let header = format!("name = \"{engine}\"\nversion = \"");
                let i = lock.find(&header).unwrap() + header.len();
                lock[i..i + lock[i..].find('"').unwrap()].to_string()
            }
        }
    };
    use anywasm_core::BackendTypes;
    #[cfg(feature = "wasmtime")]
    assert_eq!(
        locked("anywasm-wasmtime", "wasmtime"),
        anywasm_wasmtime::Wasmtime::ENGINE_VERSION
    );
    #[cfg(feature = "wasmi")]
    assert_eq!(
        locked("anywasm-wasmi", "wasmi"),
        anywasm_wasmi::Wasmi::ENGINE_VERSION
    );
    #[cfg(feature = "wasmer")]
    assert_eq!(
        locked("anywasm-wasmer", "wasmer"),
        anywasm_wasmer::Wasmer::ENGINE_VERSION
    );
}
