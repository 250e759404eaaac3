//! An application that extends itself with the example plugins (C and Rust),
//! calling each with a struct in MessagePack and in JSON.
//!
//! ```text
//! cargo run -p anywasm-plugin --example file_icons_app
//! ```

use anywasm_plugin::{Format, Manifest, PluginRuntime};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Event {
    kind: String,
    path: String,
    size: u64,
}

#[derive(Deserialize)]
struct Decision {
    icon: String,
    priority: u32,
}

fn main() -> Result<(), anywasm_plugin::PluginError> {
    let plugins = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins");
    let runtime = PluginRuntime::<anywasm::DefaultBackend>::new()?;
    for file in ["file_icons_c.wasm", "file_icons_rs.wasm"] {
        for format in [Format::MsgPack, Format::Json] {
            let plugin = runtime.load(
                Manifest::from_file("file_icons", format!("{plugins}/{file}"))
                    .format(format)
                    .fuel(10_000_000)
                    .config("theme", "dark")
                    .allow("anywasm.calc")
                    .allow("anywasm.echo"),
            )?;
            let event = Event {
                kind: "open".into(),
                path: "src/main.rs".into(),
                size: 1200,
            };
            let decision: Decision = plugin.call("handle_event", &event)?;
            println!(
                "{file} ({}): {} (priority {})",
                format.name(),
                decision.icon,
                decision.priority
            );
        }
    }
    Ok(())
}
