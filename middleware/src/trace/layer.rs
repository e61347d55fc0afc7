//! The `tracing` layer and its guard.

use super::writer::{Msg, Writer};
use super::{ACTIVE, EventKind, FieldValue, TickRecord};
use crate::clock::ProcessId;
use crate::intercept::process;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Records buffered between the actors and the writer thread before senders wait.
pub const DEFAULT_BUFFER: usize = 1 << 16;

/// A `tracing_subscriber::Layer` writing the causal log. Build it with [`CausalLayer::builder`].
pub struct CausalLayer {
    inner: Arc<Shared>,
    level: Level,
}

struct Shared {
    tx: Mutex<Option<SyncSender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<io::Result<()>>>>,
}

impl Shared {
    fn send(&self, msg: Msg) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match tx {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        }
    }

    fn flush(&self, timeout: Duration) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if self.send(Msg::Flush(done_tx)) {
            let _ = done_rx.recv_timeout(timeout);
        }
    }

    fn shutdown(&self) -> io::Result<()> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(Msg::Shutdown);
            ACTIVE.fetch_sub(1, Ordering::Relaxed);
        }
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        match handle.map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("causal log writer panicked")),
            None => Ok(()),
        }
    }
}

/// Flushes and closes the causal log when dropped (like `tracing_appender`'s guard).
#[must_use = "dropping the guard closes the causal log"]
pub struct CausalLogGuard {
    inner: Arc<Shared>,
}

impl CausalLogGuard {
    /// Writes out everything recorded so far and waits (up to 10 s) until it is on disk.
    pub fn flush(&self) {
        self.inner.flush(Duration::from_secs(10));
    }

    /// Flushes and closes the log, reporting a write error if one happened.
    ///
    /// # Errors
    /// The first I/O error the writer met.
    pub fn close(self) -> io::Result<()> {
        self.inner.shutdown()
    }
}

impl Drop for CausalLogGuard {
    fn drop(&mut self) {
        let _ = self.inner.shutdown();
    }
}

/// Builder of a [`CausalLayer`].
pub struct CausalLayerBuilder {
    jsonl: Option<Box<dyn Write + Send>>,
    shiviz: Option<Box<dyn Write + Send>>,
    jsonl_path: Option<PathBuf>,
    shiviz_path: Option<PathBuf>,
    level: Level,
    buffer: usize,
}

impl CausalLayer {
    /// A builder with no outputs, level `INFO`, buffer [`DEFAULT_BUFFER`].
    pub fn builder() -> CausalLayerBuilder {
        CausalLayerBuilder {
            jsonl: None,
            shiviz: None,
            jsonl_path: None,
            shiviz_path: None,
            level: Level::INFO,
            buffer: DEFAULT_BUFFER,
        }
    }

    pub(crate) fn write(&self, record: TickRecord) {
        self.inner.send(Msg::Record(Box::new(record)));
    }

    pub(crate) fn name(&self, process: ProcessId, name: Arc<str>) {
        self.inner.send(Msg::Name(process, name));
    }
}

impl CausalLayerBuilder {
    /// Writes JSON lines to the file at `path` (created or truncated; parent folders created).
    pub fn jsonl_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.jsonl_path = Some(path.into());
        self
    }

    /// Writes the ShiViz log to the file at `path` (created or truncated; parent folders created).
    pub fn shiviz_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.shiviz_path = Some(path.into());
        self
    }

    /// Writes JSON lines to `w`.
    pub fn jsonl_writer(mut self, w: impl Write + Send + 'static) -> Self {
        self.jsonl = Some(Box::new(w));
        self
    }

    /// Writes the ShiViz log to `w`.
    pub fn shiviz_writer(mut self, w: impl Write + Send + 'static) -> Self {
        self.shiviz = Some(Box::new(w));
        self
    }

    /// The least severe level of user events that become local events (default `INFO`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Records buffered before senders wait for the writer (default [`DEFAULT_BUFFER`]). Ticks
    /// are never dropped: a full buffer slows senders down instead.
    pub fn buffer(mut self, records: usize) -> Self {
        self.buffer = records.max(1);
        self
    }

    /// Opens the outputs and starts the writer thread.
    ///
    /// # Errors
    /// An output file could not be created.
    pub fn build(self) -> io::Result<(CausalLayer, CausalLogGuard)> {
        fn open(path: &PathBuf) -> io::Result<Box<dyn Write + Send>> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Ok(Box::new(std::fs::File::create(path)?))
        }
        let jsonl = match (&self.jsonl_path, self.jsonl) {
            (Some(p), _) => Some(open(p)?),
            (None, w) => w,
        };
        let shiviz = match (&self.shiviz_path, self.shiviz) {
            (Some(p), _) => Some(open(p)?),
            (None, w) => w,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(self.buffer);
        let writer = Writer::new(jsonl, shiviz)?;
        let thread = std::thread::Builder::new()
            .name("causal-log".into())
            .spawn(move || writer.run(rx))?;
        let inner = Arc::new(Shared {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        });
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        register_for_panics(&inner);
        Ok((
            CausalLayer {
                inner: inner.clone(),
                level: self.level,
            },
            CausalLogGuard { inner },
        ))
    }
}

/// Flushes live logs when any thread panics, then runs the previous hook.
fn register_for_panics(shared: &Arc<Shared>) {
    static LIVE: OnceLock<Mutex<Vec<Weak<Shared>>>> = OnceLock::new();
    let mut first = false;
    let live = LIVE.get_or_init(|| {
        first = true;
        Mutex::new(Vec::new())
    });
    {
        let mut v = live.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(shared));
    }
    if first {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(live) = LIVE.get() {
                let v: Vec<_> = live.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for s in v.iter().filter_map(Weak::upgrade) {
                    s.flush(Duration::from_secs(2));
                }
            }
            prev(info);
        }));
    }
}

/// Collects a `tracing` event's fields.
#[derive(Default)]
struct FieldCollector {
    message: Option<String>,
    fields: Vec<(String, FieldValue)>,
}

impl Visit for FieldCollector {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields
                .push((field.name().to_owned(), FieldValue::Str(text)));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields.push((field.name().to_owned(), value.into()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name().to_owned(), value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name().to_owned(), value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name().to_owned(), value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name().to_owned(), value.into()));
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for CausalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target().starts_with("actix_coord::tick") || *meta.level() > self.level {
            return;
        }
        let Some(p) = process::current_shared() else {
            return;
        };
        let mut collected = FieldCollector::default();
        event.record(&mut collected);
        let text = collected.message.unwrap_or_else(|| meta.name().to_owned());
        // Events emitted while the process's own clock code runs are skipped, not deadlocked.
        let record = match p.state.try_borrow_mut() {
            Ok(mut state) => state.local_record(EventKind::Local, text, collected.fields),
            Err(_) => None,
        };
        // Written here directly: inside `on_event` the dispatcher is busy and would not be found.
        if let Some(r) = record {
            self.write(r);
        }
    }
}
