//! The README's Extism example, run by CI from the repository's root:
//! `cargo run -p anywasm-plugin --example readme_extism`.

use anywasm::{ValType::I64, Wasmi};
use anywasm_plugin::{Manifest, Number, PluginRuntime};

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

    // Host functions in Extism's form, for a guest that imports them
    // (`EXTISM_IMPORT_USER("shout") ExtismHandle shout(ExtismHandle);`).
    let runtime = PluginRuntime::<Wasmi>::builder()
        .host(|h| {
            h.extism_function("shout", &[I64], &[I64], |plugin, args| {
                let [Number::I64(handle)] = args else {
                    return Err("expected a handle".into());
                };
                let text = plugin.memory_string(*handle as u64)?.to_uppercase() + "!";
                Ok(vec![
                    Number::I64(plugin.memory_new(text.as_bytes())? as i64),
                ])
            });
            h.extism_function("add_numbers", &[I64, I64], &[I64], |_, args| match args {
                [Number::I64(a), Number::I64(b)] => Ok(vec![Number::I64(a.wrapping_add(*b))]),
                _ => Err("expected two numbers".into()),
            });
            h.extism_function("fail_with", &[I64], &[], |plugin, args| match args {
                [Number::I64(handle)] => Err(plugin.memory_string(*handle as u64)?),
                _ => Err("expected a handle".into()),
            });
        })
        .build()?;
    let path = "plugin-runtime/tests/fixtures/extism/guest_host_c.wasm";
    let plugin = runtime.load(Manifest::from_file("shouter", path))?;
    assert_eq!(plugin.call_raw("call_shout", b"hello")?, b"HELLO!");
    assert_eq!(plugin.call_raw("sum", b"12345")?, b"45"); // 5 bytes + 40
    Ok(())
}
