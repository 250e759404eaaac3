//! One process-wide thread that advances the epoch of every interruptible
//! engine each millisecond. Each store decides in its own epoch callback
//! whether to stop, so a tick never interrupts anything by itself.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

static ENGINES: OnceLock<Mutex<Vec<wasmtime::EngineWeak>>> = OnceLock::new();

const TICK: Duration = Duration::from_millis(1);

pub(crate) fn register(engine: &wasmtime::Engine) {
    let mut started = false;
    let engines = ENGINES.get_or_init(|| {
        started = true;
        Mutex::new(Vec::new())
    });
    if let Ok(mut list) = engines.lock() {
        list.push(engine.weak());
    }
    if started {
        std::thread::Builder::new()
            .name("anywasm-wasmtime-epoch".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TICK);
                    let Some(engines) = ENGINES.get() else { return };
                    let Ok(mut list) = engines.lock() else { return };
                    list.retain(|weak| match weak.upgrade() {
                        Some(engine) => {
                            engine.increment_epoch();
                            true
                        }
                        None => false,
                    });
                }
            })
            .expect("spawning the epoch thread");
    }
}
