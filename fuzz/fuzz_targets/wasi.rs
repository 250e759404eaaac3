#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anywasm_fuzzing::wasi::run(data));
