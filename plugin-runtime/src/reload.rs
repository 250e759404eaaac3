//! Hot reload: watch a plugin's file and swap in new code when it changes.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anywasm::Backend;
use notify::{RecursiveMode, Watcher};

use crate::error::{PluginError, Result};
use crate::manifest::WasmSource;
use crate::plugin::Plugin;

/// What happened when the watched file changed.
#[derive(Debug)]
pub enum ReloadEvent {
    /// The new code serves new calls.
    Reloaded {
        /// The new generation number.
        generation: u64,
    },
    /// The new code was refused; the old code keeps serving.
    Failed {
        /// Why.
        error: PluginError,
    },
}

/// Watches a plugin's file while it is alive; dropping it stops watching.
pub struct ReloadWatcher {
    _watcher: notify::RecommendedWatcher,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ReloadWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadWatcher").finish_non_exhaustive()
    }
}

impl Drop for ReloadWatcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Editors and build tools write a file in several steps; changes closer
/// together than this are reloaded once.
const SETTLE: Duration = Duration::from_millis(100);

impl<B: Backend> Plugin<B> {
    /// Watches the plugin's file (its manifest must name a file) and reloads
    /// it on every change, telling `on_event` how it went. A file that does
    /// not compile, link or initialise leaves the old code serving.
    pub fn watch(&self, on_event: impl Fn(ReloadEvent) + Send + 'static) -> Result<ReloadWatcher> {
        let WasmSource::File(path) = self.manifest().source().clone() else {
            return Err(PluginError::Manifest(
                "only plugins loaded from a file can be watched".into(),
            ));
        };
        let path = path.canonicalize().unwrap_or(path);
        let dir: PathBuf = path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| ".".into());
        let (tx, rx) = mpsc::channel::<()>();
        let target = path.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !event.kind.is_access()
                    && event
                        .paths
                        .iter()
                        .any(|p| p.file_name() == target.file_name())
                {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| PluginError::Manifest(format!("cannot watch {}: {e}", dir.display())))?;
        // Watch the directory: editors often replace the file.
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| PluginError::Manifest(format!("cannot watch {}: {e}", dir.display())))?;
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let plugin = self.clone();
        let thread = std::thread::Builder::new()
            .name(format!("anywasm-reload-{}", self.id()))
            .spawn(move || {
                loop {
                    match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(()) => {
                            // Let the writes settle.
                            while rx.recv_timeout(SETTLE).is_ok() {}
                            let event = match plugin.reload_from_source() {
                                Ok(generation) => ReloadEvent::Reloaded { generation },
                                Err(error) => ReloadEvent::Failed { error },
                            };
                            on_event(event);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    if !matches!(stop_rx.try_recv(), Err(mpsc::TryRecvError::Empty)) {
                        return;
                    }
                }
            })
            .map_err(|e| PluginError::Manifest(format!("cannot start the reload thread: {e}")))?;
        Ok(ReloadWatcher {
            _watcher: watcher,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}
