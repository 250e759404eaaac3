#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anywasm_fuzzing::guest_abis::run(data));
