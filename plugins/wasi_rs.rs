//! Test plugin for WASI in plugins (plugin-runtime/tests/wasi.rs), in Rust
//! with the standard library over WASI: the same functions as `wasi_c.c`
//! that a Rust plugin needs (files, environment, printing).
//!
//! Built by `plugins/build.sh` with Debian's rustc (1.63) for wasm32-wasi,
//! against the PDK compiled for that target.

use anywasm_pdk::{plugin_fn, Error};

#[link_section = "anywasm.plugin"]
#[used]
static METADATA: [u8; 73] = *br#"{"abi":1,"name":"wasi-rs","version":"1.0.0","formats":["msgpack","json"]}"#;

plugin_fn! {
    pub fn read_file(path: String) -> Result<String, Error> {
        std::fs::read_to_string(&path).map_err(|e| Error(e.to_string()))
    }
}

plugin_fn! {
    pub fn write_file(args: (String, String)) -> Result<usize, Error> {
        std::fs::write(&args.0, args.1.as_bytes()).map_err(|e| Error(e.to_string()))?;
        Ok(args.1.len())
    }
}

plugin_fn! {
    pub fn env(name: String) -> Result<Option<String>, Error> {
        Ok(std::env::var(&name).ok())
    }
}

plugin_fn! {
    pub fn say(text: String) -> Result<(), Error> {
        println!("{}", text);
        eprintln!("warning: {}", text);
        Ok(())
    }
}

plugin_fn! {
    pub fn nap(ms: u64) -> Result<(), Error> {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(())
    }
}

plugin_fn! {
    pub fn quit(status: i32) -> Result<(), Error> {
        std::process::exit(status)
    }
}
