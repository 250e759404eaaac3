//! The README's WASI example, run by CI from the repository's root:
//! `cargo run -p anywasm-plugin --example readme_wasi`.

use anywasm::{DefaultBackend, Engine, Module};
use anywasm_wasi::{Captured, Output, WasiConfig, run_command};

fn main() -> anywasm::Result<()> {
    let engine = Engine::<DefaultBackend>::default_config()?;
    let module = Module::from_file(&engine, "wasi/tests/fixtures/args_env.wasm")?;
    let out = Captured::new();
    let config = WasiConfig::new()
        .args(["args_env", "--loud"])
        .env("GREETING", "hi") // nothing of the host leaks otherwise
        .preopen_dir_read_only("wasi/tests/fixtures", "/assets")
        .stdout(Output::Capture(out.clone()));
    let status = run_command(&engine, &module, config)?; // proc_exit(3) is Ok(3)
    println!("exit {status}: {}", out.text());
    Ok(())
}
