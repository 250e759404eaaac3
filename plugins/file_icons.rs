//! Example plugin in Rust: the same behaviour as `file_icons.c`.
//!
//! Built by `plugins/build.sh` with Debian's rustc (1.63) for
//! wasm32-unknown-unknown, against the PDK compiled as a library.

use anywasm_pdk::*;
use std::cell::Cell;

#[link_section = "anywasm.plugin"]
#[used]
static METADATA: [u8; 79] =
    *br#"{"abi":1,"name":"file-icons-rs","version":"1.0.0","formats":["msgpack","json"]}"#;

thread_local! {
    static CALLS: Cell<u64> = Cell::new(0);
    static INITIALIZED: Cell<u64> = Cell::new(0);
}

fn icon_for(path: &str) -> &'static str {
    if path.ends_with(".rs") {
        "rust"
    } else if path.ends_with(".c") || path.ends_with(".h") {
        "c"
    } else if path.ends_with(".md") {
        "markdown"
    } else if path.ends_with(".wasm") {
        "webassembly"
    } else {
        "file"
    }
}

#[no_mangle]
pub extern "C" fn initialize(_ptr: i32, _len: i32) -> i64 {
    INITIALIZED.with(|n| n.set(n.get() + 1));
    0
}

#[no_mangle]
pub extern "C" fn handle_event(ptr: i32, len: i32) -> i64 {
    let event = match input(ptr, len).and_then(|bytes| Map::decode(format(), &bytes)) {
        Ok(m) => m,
        Err(_) => return fail("handle_event expects {kind, path, size}"),
    };
    let (kind, path, size) = match (event.str("kind"), event.str("path"), event.u64("size")) {
        (Some(k), Some(p), Some(s)) => (k, p, s),
        _ => return fail("handle_event expects {kind, path, size}"),
    };
    if path.is_empty() {
        return fail("empty path");
    }
    CALLS.with(|n| n.set(n.get() + 1));
    let icon = match config("theme") {
        Some(theme) if !theme.is_empty() => format!("{}/{}", theme, icon_for(path)),
        _ => icon_for(path).to_string(),
    };
    let megabytes = calc((size & 0x7fff_ffff) as u32, 1_000_000, 3);
    let mut priority = if megabytes >= 9 { 1 } else { calc(10, megabytes, 1) };
    if kind == "delete" {
        priority = 0;
    }
    let mut out = Map::new();
    out.insert("icon", Value::Str(icon));
    out.insert("priority", Value::U64(u64::from(priority)));
    match out.encode(format()) {
        Ok(bytes) => output(bytes),
        Err(e) => fail(&e.0),
    }
}

#[no_mangle]
pub extern "C" fn stats(_ptr: i32, _len: i32) -> i64 {
    let mut out = Map::new();
    out.insert("calls", Value::U64(CALLS.with(|n| n.get())));
    out.insert("initialized", Value::U64(INITIALIZED.with(|n| n.get())));
    match out.encode(format()) {
        Ok(bytes) => output(bytes),
        Err(e) => fail(&e.0),
    }
}

#[no_mangle]
pub extern "C" fn echo_via_host(ptr: i32, len: i32) -> i64 {
    let bytes = match input(ptr, len) {
        Ok(b) => b,
        Err(e) => return fail(&e.0),
    };
    match echo(&bytes) {
        Ok(bytes) => output(bytes),
        Err(e) => fail(&e),
    }
}
