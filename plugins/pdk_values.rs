//! Test plugin for the Rust PDK's data model (plugin-runtime/tests/pdk.rs),
//! written with `plugin_fn!`.
//!
//! Built by `plugins/build.sh` with Debian's rustc (1.63) for
//! wasm32-unknown-unknown, against the PDK compiled as a library.

use anywasm_pdk::{plugin_fn, Error, Map, Value};

#[link_section = "anywasm.plugin"]
#[used]
static METADATA: [u8; 79] =
    *br#"{"abi":1,"name":"pdk-values-rs","version":"1.0.0","formats":["msgpack","json"]}"#;

plugin_fn! {
    /// Any value in, the same value out: decoded into a `Value` and
    /// encoded again.
    pub fn transcode(v: Value) -> Result<Value, Error> {
        Ok(v)
    }
}

plugin_fn! {
    /// `call::<&str, String>("greet", &"Ada")` from the host.
    pub fn greet(name: String) -> Result<String, Error> {
        if name.is_empty() {
            return Err(Error::from("greet needs a name"));
        }
        Ok(format!("Hello, {}!", name))
    }
}

plugin_fn! {
    /// Count, sum and largest of a list of numbers.
    pub fn stats(xs: Vec<f64>) -> Result<(usize, f64, Option<f64>), Error> {
        let max = xs.iter().cloned().fold(None, |m: Option<f64>, x| match m {
            Some(m) if m >= x => Some(m),
            _ => Some(x),
        });
        Ok((xs.len(), xs.iter().sum(), max))
    }
}

plugin_fn! {
    /// The fields of a map, read one by one.
    pub fn lookup(m: Map) -> Result<Map, Error> {
        let mut out = Map::new();
        out.insert("name", m.str("name").ok_or("no name")?);
        out.insert("count", m.u64("count").ok_or("no count")?);
        out.insert("delta", m.i64("delta").ok_or("no delta")?);
        out.insert("ratio", m.f64("ratio").ok_or("no ratio")?);
        out.insert("flag", m.get("flag").cloned().ok_or("no flag")?);
        Ok(out)
    }
}
