//! Loads the C main program built by `tests/fixtures/build.sh` (which needs
//! libmid.so, libbase.so and libutil.so), calls it, then `dlopen`s a plugin
//! library at run time and looks up a function and a variable — on every
//! backend in this build.
//!
//! ```text
//! cargo run -p anywasm-linker --example dlopen
//! ```

use anywasm::{Backend, BackendKind, Engine, Linker, Store, Val};
use anywasm_linker::{DynamicLinker, Error, LinkerConfig, Symbol};

fn main() -> Result<(), Error> {
    for kind in BackendKind::available() {
        anywasm::with_backend!(kind, B => run::<B>())??;
    }
    Ok(())
}

fn run<B: Backend>() -> Result<(), Error> {
    let libs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let kind = B::NAME;
    {
        {
            let engine = Engine::<B>::default_config()?;
            let mut store = Store::new(&engine, ());
            let mut dl = DynamicLinker::new(
                &mut store,
                LinkerConfig::new().search_dir(libs),
                Linker::new(),
            )?;
            dl.load(&mut store, "main.wasm")?;
            let loaded: Vec<String> = dl
                .libraries()
                .map(|(_, l)| format!("{}@{}", l.name(), l.memory_base()))
                .collect();
            let call_side = dl.func(&mut store, "call_side")?;
            let r = call_side.invoke(&mut store, &[])?;
            println!(
                "{kind}: loaded {}; call_side() = {}",
                loaded.join(" "),
                r[0]
            );

            let plugin = dl.dlopen(&mut store, "libplugin.so")?;
            if let Symbol::Func { func, table_index } =
                dl.dlsym(&mut store, plugin, "plugin_scale")?
            {
                let r = func.invoke(&mut store, &[Val::I32(6)])?;
                println!(
                    "{kind}: dlsym(plugin_scale) = table slot {table_index}; plugin_scale(6) = {}",
                    r[0]
                );
            }
            if let Symbol::Data { address } = dl.dlsym(&mut store, plugin, "plugin_counter")? {
                let value = dl.memory().read_i32(&store, address.into())?;
                println!("{kind}: dlsym(plugin_counter) = address {address:#x}, holding {value}");
            }
            dl.dlclose(plugin)?;
        }
    }
    Ok(())
}
