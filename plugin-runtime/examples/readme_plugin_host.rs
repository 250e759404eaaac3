//! The README's plugin host, run by CI from the repository's root:
//! `cargo run -p anywasm-plugin --example readme_plugin_host`.

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
    let runtime = PluginRuntime::<anywasm::DefaultBackend>::new()?;
    let plugin = runtime.load(
        Manifest::from_file("file_icons", "plugins/file_icons_c.wasm")
            .format(Format::MsgPack) // or Format::Json
            .fuel(10_000_000)
            .deadline(std::time::Duration::from_millis(50))
            .config("theme", "dark")
            .allow("anywasm.calc")
            .allow("anywasm.echo"),
    )?;
    let event = Event {
        kind: "open".into(),
        path: "src/main.rs".into(),
        size: 1200,
    };
    let decision: Decision = plugin.call("handle_event", &event)?; // Send + Sync: share it
    println!("{} {}", decision.icon, decision.priority);
    Ok(())
}
