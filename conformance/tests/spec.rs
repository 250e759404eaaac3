//! The official spec testsuite through the core API, one trial per
//! `<backend>/<suite>/<file>` (filter with e.g. `cargo test --test spec -- wasmi/wasm-v2/`).

use anywasm_conformance::spec::{ExpectedFailures, config_for, files, judge, run_wast, suites};
use anywasm_core::Backend;
use libtest_mimic::{Arguments, Failed, Trial};

fn trials<B: Backend>(expected_text: &'static str) -> Vec<Trial> {
    let expected = match ExpectedFailures::parse(expected_text) {
        Ok(e) => std::sync::Arc::new(e),
        Err(e) => panic!("{}: bad expected-failures file: {e}", B::NAME),
    };
    let mut out = Vec::new();
    for suite in suites::<B>() {
        // WebAssembly 1.0 and 2.0 once more with fuel and deadlines on:
        // they change the code the engines run (wasmtime's epoch checks,
        // wasmi's fuel slices, wasmer's rewritten modules and compiled-in
        // checks), and must not change what it computes.
        let limited = suite == "wasm-v1" || suite == "wasm-v2";
        for (name, text) in files(&suite) {
            for limits in [false, true] {
                if limits && !limited {
                    continue;
                }
                let file = format!("{suite}/{name}");
                let expected = expected.clone();
                let suite = suite.clone();
                let label = if limits { "+limits" } else { "" };
                out.push(Trial::test(
                    format!("{}{label}/{file}", B::NAME),
                    move || {
                        let mut config = config_for::<B>(&suite);
                        if limits {
                            config.consume_fuel(true).interruptible(true);
                        }
                        let outcome = run_wast::<B>(&config, text);
                        judge(&file, &outcome, &expected).map_err(Failed::from)
                    },
                ));
            }
        }
    }
    out
}

fn main() {
    let args = Arguments::from_args();
    let mut all = Vec::new();
    #[cfg(feature = "wasmtime")]
    all.extend(trials::<anywasm_wasmtime::Wasmtime>(
        anywasm_conformance::expected::WASMTIME,
    ));
    #[cfg(feature = "wasmi")]
    all.extend(trials::<anywasm_wasmi::Wasmi>(
        anywasm_conformance::expected::WASMI,
    ));
    #[cfg(feature = "wasmer")]
    all.extend(trials::<anywasm_wasmer::Wasmer>(
        anywasm_conformance::expected::WASMER,
    ));
    libtest_mimic::run(&args, all).exit();
}
