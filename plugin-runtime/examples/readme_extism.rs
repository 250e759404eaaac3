//! The README's Extism example, run by CI from the repository's root:
//! `cargo run -p anywasm-plugin --example readme_extism`.

use anywasm::Wasmi;
use anywasm_plugin::{Manifest, PluginRuntime};

fn main() -> Result<(), anywasm_plugin::PluginError> {
    // wasmi: an interpreter, so this runs where JIT is not allowed (iOS).
    let runtime = PluginRuntime::<Wasmi>::new()?;
    let path = "plugin-runtime/tests/fixtures/extism/guest_c.wasm"; // built with Extism's C PDK
    let plugin =
        runtime.load(Manifest::from_file("count_vowels", path).config("greeting", "Howdy"))?;
    for text in ["Hello, World!", "aeiou"] {
        let out = plugin.call_raw("count_vowels", text.as_bytes())?;
        println!("{}", String::from_utf8_lossy(&out)); // the Extism var `total` carries over
    }
    let greeting = plugin.call_raw("greet", b"anywasm")?;
    assert_eq!(greeting, b"Howdy, anywasm!");
    Ok(())
}
