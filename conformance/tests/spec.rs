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
        for (name, text) in files(&suite) {
            let file = format!("{suite}/{name}");
            let expected = expected.clone();
            let suite = suite.clone();
            out.push(Trial::test(format!("{}/{file}", B::NAME), move || {
                let outcome = run_wast::<B>(&config_for::<B>(&suite), text);
                judge(&file, &outcome, &expected).map_err(Failed::from)
            }));
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
