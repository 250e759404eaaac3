//! The PDKs carry the whole MessagePack and JSON data models: generated
//! values (nested maps and arrays, signed and float numbers, binary,
//! extensions, long strings and big maps) go through each PDK's reader and
//! writer inside a plugin and come back equal, as `rmp-serde`/`serde_json`
//! read them, on every backend. Tests are `<backend>::<case>`.

use std::time::Duration;

use anywasm::Backend;
use anywasm_plugin::{Format, Manifest, Plugin, PluginError, PluginRuntime};
use rmpv::Value as Mp;
use serde_json::Value as Json;

const C_PLUGIN: &[u8] = include_bytes!("../../plugins/pdk_values_c.wasm");
const RUST_PLUGIN: &[u8] = include_bytes!("../../plugins/pdk_values_rs.wasm");
const PLUGINS: [(&str, &[u8]); 2] = [("c", C_PLUGIN), ("rust", RUST_PLUGIN)];

fn load<B: Backend>(rt: &PluginRuntime<B>, name: &str, wasm: &[u8], format: Format) -> Plugin<B> {
    rt.load(
        Manifest::from_bytes(name, wasm.to_vec())
            .format(format)
            // Big values through wasmi take a while; the point here is data.
            .deadline(Duration::from_secs(60)),
    )
    .unwrap()
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Lengths around every MessagePack size boundary, mostly small.
    fn len(&mut self, big: bool) -> usize {
        const EDGES: [usize; 8] = [15, 16, 31, 32, 255, 256, 65535, 65536];
        match self.below(20) {
            0 if big => EDGES[self.below(8) as usize] + self.below(3) as usize,
            1 if big => 70_000,
            _ => self.below(6) as usize,
        }
    }

    fn string(&mut self, big: bool) -> String {
        const CHARS: [char; 12] = [
            'a', 'Z', ' ', '"', '\\', '\n', '\u{1}', '/', 'é', '€', '😀', '\u{7f}',
        ];
        let n = self.len(big);
        (0..n).map(|_| CHARS[self.below(12) as usize]).collect()
    }

    /// Integers of every width and sign.
    fn integer(&mut self) -> (u64, i64) {
        let bits = [7, 8, 15, 16, 31, 32, 63, 64][self.below(8) as usize];
        let u = if bits == 64 {
            self.next()
        } else {
            self.next() & ((1u64 << bits) - 1)
        };
        let i = -((u >> 1) as i64) - 1;
        (u, i)
    }

    fn f64(&mut self) -> f64 {
        match self.below(4) {
            0 => f64::from_bits(self.next()),
            1 => (self.next() % 100_000) as f64 / 100.0,
            2 => -((self.next() % 1000) as f64) * 1e-300,
            _ => [0.1, -0.0, 1e300, 5e-324, 2.2250738585072014e-308, f64::MAX]
                [self.below(6) as usize],
        }
    }

    fn mp(&mut self, depth: u32) -> Mp {
        let kinds = if depth >= 4 { 9 } else { 11 };
        match self.below(kinds) {
            0 => Mp::Nil,
            1 => Mp::Boolean(self.below(2) == 1),
            2 => Mp::from(self.integer().0),
            3 => Mp::from(self.integer().1),
            4 => {
                let x = self.f64();
                Mp::F64(if x.is_nan() { 1.5 } else { x })
            }
            5 => {
                let x = f32::from_bits(self.next() as u32);
                Mp::F32(if x.is_nan() { -2.5 } else { x })
            }
            6 => Mp::from(self.string(true)),
            7 => Mp::Binary((0..self.len(true)).map(|_| self.next() as u8).collect()),
            8 => {
                let n = [1, 2, 4, 8, 16, 0, 3, 300][self.below(8) as usize];
                Mp::Ext(
                    self.next() as i8,
                    (0..n).map(|_| self.next() as u8).collect(),
                )
            }
            9 => Mp::Array(
                (0..self.len(false) * 4)
                    .map(|_| self.mp(depth + 1))
                    .collect(),
            ),
            _ => Mp::Map(
                (0..self.len(false) * 4)
                    .map(|i| {
                        // Mostly string keys; MessagePack allows any.
                        let key = if self.below(4) == 0 {
                            self.mp(depth + 1)
                        } else {
                            Mp::from(format!("k{i}{}", self.string(false)))
                        };
                        (key, self.mp(depth + 1))
                    })
                    .collect(),
            ),
        }
    }

    fn json(&mut self, depth: u32) -> Json {
        let kinds = if depth >= 4 { 7 } else { 9 };
        match self.below(kinds) {
            0 => Json::Null,
            1 => Json::Bool(self.below(2) == 1),
            2 => Json::from(self.integer().0),
            3 => Json::from(self.integer().1),
            4 | 5 => {
                let x = self.f64();
                Json::from(if x.is_finite() { x } else { 0.5 })
            }
            6 => Json::from(self.string(true)),
            7 => Json::Array(
                (0..self.len(false) * 4)
                    .map(|_| self.json(depth + 1))
                    .collect(),
            ),
            _ => Json::Object(
                (0..self.len(false) * 4)
                    .map(|i| (format!("k{i}{}", self.string(false)), self.json(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// Generated values go through each PDK in MessagePack and come back equal.
pub fn msgpack_values_round_trip<B: Backend>() {
    let rt = PluginRuntime::<B>::new().unwrap();
    for (name, wasm) in PLUGINS {
        let plugin = load(&rt, name, wasm, Format::MsgPack);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..150 {
            let v = rng.mp(0);
            let back: Mp = plugin
                .call("transcode", &v)
                .unwrap_or_else(|e| panic!("{} {name} #{case}: {e}\n{v:?}", B::NAME));
            assert_eq!(back, v, "{} {name} #{case}", B::NAME);
        }
    }
}

/// Generated values go through each PDK in JSON and come back equal.
pub fn json_values_round_trip<B: Backend>() {
    let rt = PluginRuntime::<B>::new().unwrap();
    for (name, wasm) in PLUGINS {
        let plugin = load(&rt, name, wasm, Format::Json);
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..150 {
            let v = rng.json(0);
            let back: Json = plugin
                .call("transcode", &v)
                .unwrap_or_else(|e| panic!("{} {name} #{case}: {e}\n{v}", B::NAME));
            assert_eq!(back, v, "{} {name} #{case}", B::NAME);
        }
    }
}

/// Strings, arrays and maps past the 8- and 16-bit MessagePack sizes, and
/// JSON escapes of every kind.
pub fn long_strings_big_maps_and_escapes<B: Backend>() {
    let rt = PluginRuntime::<B>::new().unwrap();
    let long = "é\"x\\".repeat(20_000); // 100 000 bytes: str 32
    let big_map = Mp::Map(
        (0..70_000u64)
            .map(|i| (Mp::from(format!("key{i}")), Mp::from(i)))
            .collect(),
    );
    let big_array = Mp::Array((0..70_000i64).map(|i| Mp::from(-i)).collect());
    for (name, wasm) in PLUGINS {
        let mp = load(&rt, name, wasm, Format::MsgPack);
        let json = load(&rt, name, wasm, Format::Json);
        for v in [&big_map, &big_array, &Mp::from(long.as_str())] {
            let back: Mp = mp.call("transcode", v).unwrap();
            assert!(back == *v, "{} {name}: msgpack differs", B::NAME);
        }
        let back: String = json.call("transcode", &long).unwrap();
        assert_eq!(back, long, "{} {name}", B::NAME);
        let object: Json = (0..20_000)
            .map(|i| (format!("k{i}"), Json::from(i)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let back: Json = json.call("transcode", &object).unwrap();
        assert_eq!(back, object, "{} {name}", B::NAME);
        // Escapes serde_json would not write, and whitespace everywhere.
        let text = br#" { "a\u00e9\ud83d\ude00\/\b\f\n\r\t" : [ 1 , -2 , 3.5e-3 , true , null ] , "" : { } , "x" : [ ] } "#;
        let out = json.call_raw("transcode", text).unwrap();
        assert_eq!(
            serde_json::from_slice::<Json>(&out).unwrap(),
            serde_json::from_slice::<Json>(text).unwrap(),
            "{} {name}",
            B::NAME
        );
    }
}

/// Decimal text reads as the nearest double and doubles write as text that
/// reads back exactly (checked with Rust's own exact parser), at the edges
/// of the format.
pub fn json_floats_are_exact<B: Backend>() {
    const TEXTS: [&str; 17] = [
        "0.1",
        "1e-7",
        "2.2250738585072014e-308",
        "2.2250738585072011e-308",
        "4.9e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1.7976931348623157e308",
        "9007199254740993.0",
        "123456789012345678901234567890",
        "-18446744073709551616",
        "1e23",
        "8.98846567431158e307",
        "0.30000000000000004",
        "-0",
        "7.2057594037927933e16",
        "1e-400",
    ];
    let long = format!("0.{}", "1".repeat(900));
    let rt = PluginRuntime::<B>::new().unwrap();
    let mut rng = Rng(7);
    let mut inputs: Vec<String> = TEXTS.iter().map(|s| s.to_string()).collect();
    inputs.push(long);
    for _ in 0..300 {
        let x = f64::from_bits(rng.next());
        if x.is_finite() {
            inputs.push(format!("{x:e}"));
            inputs.push(format!("{x:.3e}"));
        }
    }
    for (name, wasm) in PLUGINS {
        let plugin = load(&rt, name, wasm, Format::Json);
        for text in &inputs {
            let out = plugin.call_raw("transcode", text.as_bytes()).unwrap();
            let out = String::from_utf8(out).unwrap();
            let want: f64 = text.parse().unwrap();
            let got: f64 = out.parse().unwrap();
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{} {name}: {text} came back as {out}",
                B::NAME
            );
        }
        // Past the largest double: out of range, as serde_json says.
        match plugin.call_raw("transcode", b"1e400") {
            Err(PluginError::Guest { message, .. }) => {
                assert!(message.contains("range"), "{message}")
            }
            other => panic!("{} {name}: {other:?}", B::NAME),
        }
    }
}

/// Typed calls reach PDK functions: a plain string in and out, a map read
/// field by field, and (Rust) a tuple out of `plugin_fn!`.
pub fn typed_calls<B: Backend>() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Fields {
        name: String,
        count: u64,
        delta: i64,
        ratio: f64,
        flag: bool,
    }
    let rt = PluginRuntime::<B>::new().unwrap();
    for format in [Format::MsgPack, Format::Json] {
        for (name, wasm) in PLUGINS {
            let plugin = load(&rt, name, wasm, format);
            let hello: String = plugin.call("greet", &"Ada").unwrap();
            assert_eq!(hello, "Hello, Ada!", "{} {name}", B::NAME);
            let fields = Fields {
                name: "n\"é".into(),
                count: u64::MAX,
                delta: i64::MIN,
                ratio: -0.1,
                flag: true,
            };
            let back: Fields = plugin.call("lookup", &fields).unwrap();
            assert_eq!(back, fields, "{} {name} {format:?}", B::NAME);
            // A field missing is the plugin's error, not a trap.
            match plugin.call::<_, Fields>("lookup", &serde_json::json!({"name": "x"})) {
                Err(PluginError::Guest { .. }) => {}
                other => panic!("{} {name}: {other:?}", B::NAME),
            }
        }
        let rust = load(&rt, "rust", RUST_PLUGIN, format);
        let stats: (usize, f64, Option<f64>) = rust.call("stats", &[1.5, -2.0, 4.0]).unwrap();
        assert_eq!(stats, (3, 3.5, Some(4.0)));
        let empty: (usize, f64, Option<f64>) = rust.call("stats", &Vec::<f64>::new()).unwrap();
        assert_eq!(empty, (0, 0.0, None));
        match rust.call::<_, String>("greet", &"") {
            Err(PluginError::Guest { message, .. }) => assert_eq!(message, "greet needs a name"),
            other => panic!("{}: {other:?}", B::NAME),
        }
        match rust.call::<_, String>("greet", &17) {
            Err(PluginError::Guest { message, .. }) => {
                assert!(message.contains("expected a string"), "{message}")
            }
            other => panic!("{}: {other:?}", B::NAME),
        }
    }
}

/// Bytes marked for serde (`ByteBuf`, `anywasm_plugin::serde_bytes`) cross
/// as MessagePack `bin` into both PDKs and back, at every size boundary;
/// in JSON they are arrays of numbers and come back the same.
pub fn bytes_travel_as_bin<B: Backend>() {
    use anywasm_plugin::ByteBuf;
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct File {
        name: String,
        #[serde(with = "anywasm_plugin::serde_bytes")]
        data: Vec<u8>,
    }
    let rt = PluginRuntime::<B>::new().unwrap();
    for (name, wasm) in PLUGINS {
        for format in [Format::MsgPack, Format::Json] {
            let plugin = load(&rt, name, wasm, format);
            for len in [0, 1, 255, 256, 65_535, 65_536, 1 << 20] {
                let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let back: ByteBuf = plugin
                    .call("transcode", &ByteBuf::from(bytes.clone()))
                    .unwrap();
                assert_eq!(
                    back.into_vec(),
                    bytes,
                    "{} {name} {format:?} {len}",
                    B::NAME
                );
                let file = File {
                    name: "a.png".into(),
                    data: bytes,
                };
                let back: File = plugin.call("transcode", &file).unwrap();
                assert_eq!(back, file, "{} {name} {format:?} {len}", B::NAME);
            }
            if format == Format::MsgPack {
                // The guest saw (and wrote back) bin, not an array.
                let v: Mp = plugin
                    .call("transcode", &ByteBuf::from(vec![1, 2, 3]))
                    .unwrap();
                assert_eq!(v, Mp::Binary(vec![1, 2, 3]), "{} {name}", B::NAME);
                let v: Mp = plugin
                    .call(
                        "transcode",
                        &File {
                            name: "x".into(),
                            data: vec![9],
                        },
                    )
                    .unwrap();
                assert_eq!(
                    v,
                    Mp::Map(vec![
                        (Mp::from("name"), Mp::from("x")),
                        (Mp::from("data"), Mp::Binary(vec![9]))
                    ]),
                    "{} {name}",
                    B::NAME
                );
            }
        }
    }
}

/// MessagePack is measured, then encoded straight into the guest: a
/// `Serialize` that writes something else the second time is an encode
/// error, not a corrupt input, and the plugin goes on serving.
pub fn a_value_that_changes_while_encoding_is_refused<B: Backend>() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Shifty(AtomicUsize);
    impl serde::Serialize for Shifty {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let n = self.0.fetch_add(1, Ordering::Relaxed);
            s.serialize_str(&"x".repeat(n * 100))
        }
    }
    let rt = PluginRuntime::<B>::new().unwrap();
    let plugin = load(&rt, "rust", RUST_PLUGIN, Format::MsgPack);
    match plugin.call::<_, String>("transcode", &Shifty(AtomicUsize::new(1))) {
        Err(PluginError::Encode { detail, .. }) => {
            assert!(detail.contains("not deterministic"), "{detail}")
        }
        other => panic!("{}: {other:?}", B::NAME),
    }
    let back: String = plugin.call("transcode", &"steady").unwrap();
    assert_eq!(back, "steady");
}

/// Malformed and hostile inputs are the plugin's error, never a trap or a
/// crash: nesting past the limit, counts the input cannot hold, truncation,
/// bad escapes; and a C writer that declares more than it writes says so.
pub fn hostile_inputs_are_guest_errors<B: Backend>() {
    let rt = PluginRuntime::<B>::new().unwrap();
    let mp_inputs: Vec<Vec<u8>> = vec![
        vec![0x91; 10_000],                    // arrays nested 10 000 deep
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],    // array of 4 billion
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],    // map of 4 billion
        vec![0xdb, 0xff, 0xff, 0xff, 0xff],    // string of 4 GiB
        vec![0xc6, 0x7f, 0xff, 0xff, 0xff, 1], // binary of 2 GiB
        vec![0xc1],
        vec![0xcb, 1, 2],
        vec![0x92, 0x01],
        vec![],
    ];
    let json_inputs: Vec<Vec<u8>> = vec![
        "[".repeat(10_000).into_bytes(),
        br#"{"a":1"#.to_vec(),
        br#"{"a" 1}"#.to_vec(),
        br#"[1,]"#.to_vec(),
        br#""\ud800""#.to_vec(),
        br#""\q""#.to_vec(),
        b"\"a\x01\"".to_vec(),
        b"01".to_vec(),
        b"[1] 2".to_vec(),
        b"".to_vec(),
    ];
    for (name, wasm) in PLUGINS {
        for (format, inputs) in [(Format::MsgPack, &mp_inputs), (Format::Json, &json_inputs)] {
            let plugin = load(&rt, name, wasm, format);
            for input in inputs {
                match plugin.call_raw("transcode", input) {
                    Err(PluginError::Guest { .. }) => {}
                    other => panic!(
                        "{} {name} {format:?} {:?}: {other:?}",
                        B::NAME,
                        String::from_utf8_lossy(&input[..input.len().min(16)])
                    ),
                }
            }
            // Still serving.
            let hello: String = plugin.call("greet", &"x").unwrap();
            assert_eq!(hello, "Hello, x!");
        }
    }
    let c = load(&rt, "c", C_PLUGIN, Format::MsgPack);
    match c.call_raw("short_output", b"") {
        Err(PluginError::Guest { message, .. }) => {
            assert!(message.contains("missing"), "{message}")
        }
        other => panic!("{}: {other:?}", B::NAME),
    }
}

macro_rules! pdk_tests {
    ($name:ident, $b:ty) => {
        mod $name {
            pdk_tests!(@cases $b; msgpack_values_round_trip, json_values_round_trip,
                long_strings_big_maps_and_escapes, json_floats_are_exact, typed_calls,
                hostile_inputs_are_guest_errors, bytes_travel_as_bin,
                a_value_that_changes_while_encoding_is_refused);
        }
    };
    (@cases $b:ty; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                super::$case::<$b>();
            }
        )*
    };
}

pdk_tests!(wasmtime, anywasm::Wasmtime);
pdk_tests!(wasmi, anywasm::Wasmi);
pdk_tests!(wasmer, anywasm::Wasmer);
