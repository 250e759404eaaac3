//! Works out which backends this build contains, as `cfg`s the code can test.
//! The JIT backends exist only off Android and iOS (see Cargo.toml).

fn main() {
    let feature = |name: &str| std::env::var_os(format!("CARGO_FEATURE_{name}")).is_some();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let mobile = os == "android" || os == "ios";
    let default = feature("DEFAULT_BACKEND");

    for name in ["has_wasmtime", "has_wasmi", "has_wasmer"] {
        println!("cargo::rustc-check-cfg=cfg({name})");
    }
    if (feature("WASMTIME") || default) && !mobile {
        println!("cargo::rustc-cfg=has_wasmtime");
    }
    if feature("WASMI") || default {
        println!("cargo::rustc-cfg=has_wasmi");
    }
    if feature("WASMER") && !mobile {
        println!("cargo::rustc-cfg=has_wasmer");
    }
}
