//! A tokio server of plugin calls: many requests at once, each a plugin
//! call whose host function awaits I/O (a lookup over TCP, from a small
//! key/value service this program starts), while the executor serves the
//! others.
//!
//! ```text
//! cargo run -p anywasm-plugin --features async --example async_server [REQUESTS]
//! ```
//!
//! Each lookup takes the service 10 ms, so one request after another would
//! take `REQUESTS × 10 ms`; the program checks every answer and that the
//! requests overlapped.

use std::time::{Duration, Instant};

use anywasm_plugin::{Format, Manifest, PluginRuntime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The plugin: `profile` hands its input (a user name) to the async
/// `host.lookup` and answers what the lookup answered.
const PLUGIN: &str = r#"(module
  (import "host" "lookup" (func $lookup (param i32 i32) (result i64)))
  (import "anywasm" "take_result" (func $take (param i32)))
  (memory (export "memory") 2)
  (func (export "anywasm_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "profile") (param $p i32) (param $l i32) (result i64)
    (local $len i32)
    (local.set $len (i32.wrap_i64 (call $lookup (local.get $p) (local.get $l))))
    (call $take (i32.const 8192))
    (i64.or (i64.shl (i64.const 8192) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (@custom "anywasm.plugin" "{\"abi\":1,\"formats\":[\"raw\"]}"))"#;

/// The key/value service: one line in (a key), one line out, after 10 ms.
async fn serve_lookups(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(key)) = lines.next_line().await {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let answer = format!("{key} is user #{}\n", key.len());
                if write.write_all(answer.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The host function: a round trip to the service.
async fn lookup(addr: std::net::SocketAddr, key: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.write_all(&key).await.map_err(|e| e.to_string())?;
    stream.write_all(b"\n").await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    Ok(line.trim_end().as_bytes().to_vec())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve_lookups(listener));

    let runtime = PluginRuntime::<anywasm::DefaultBackend>::builder()
        .host(move |h| {
            h.register_bytes_async("lookup", move |_ctx, key| lookup(addr, key));
        })
        .build()?;
    let plugin = runtime.load(
        Manifest::from_bytes("profiles", wat::parse_str(PLUGIN)?)
            .format(Format::Raw)
            .allow("host.lookup")
            .max_instances(64),
    )?;

    let started = Instant::now();
    let calls: Vec<_> = (0..requests)
        .map(|i| {
            let plugin = plugin.clone();
            tokio::spawn(async move {
                let name = format!("user{i}");
                let answer = plugin.call_raw_async("profile", name.as_bytes()).await;
                (name, answer)
            })
        })
        .collect();
    for call in calls {
        let (name, answer) = call.await?;
        let answer = String::from_utf8(answer?)?;
        assert_eq!(answer, format!("{name} is user #{}", name.len()));
    }
    let took = started.elapsed();
    let one_by_one = Duration::from_millis(10) * requests as u32;
    println!(
        "{requests} requests in {took:?} ({} instances; one after another they would take at least {one_by_one:?})",
        plugin.stats().instances_created
    );
    assert!(took < one_by_one, "the requests did not overlap");
    Ok(())
}
