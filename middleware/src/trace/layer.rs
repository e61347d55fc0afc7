//! The `tracing` layer and its guard.

use super::{EventKind, FieldValue};
use crate::intercept::process;
use crate::ticks::Sink;
use std::any::TypeId;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Records buffered between the actors and the writer thread before senders wait.
pub const DEFAULT_BUFFER: usize = 1 << 16;

/// A `tracing_subscriber::Layer` writing the causal log. Build it with [`CausalLayer::builder`].
pub struct CausalLayer {
    sink: Arc<Sink>,
    level: Level,
}

/// Flushes and closes the causal log when dropped (like `tracing_appender`'s guard).
#[must_use = "dropping the guard closes the causal log"]
pub struct CausalLogGuard {
    sink: Arc<Sink>,
}

impl CausalLogGuard {
    /// Writes out everything recorded so far and waits (up to 10 s) until it is on disk.
    pub fn flush(&self) {
        self.sink.flush(Duration::from_secs(10));
    }

    /// Flushes and closes the log, reporting a write error if one happened.
    ///
    /// # Errors
    /// The first I/O error the writer met.
    pub fn close(self) -> io::Result<()> {
        self.sink.shutdown()
    }
}

impl Drop for CausalLogGuard {
    fn drop(&mut self) {
        let _ = self.sink.shutdown();
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
        let sink = Sink::start(jsonl, shiviz, self.buffer)?;
        Ok((
            CausalLayer {
                sink: sink.clone(),
                level: self.level,
            },
            CausalLogGuard { sink },
        ))
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
            self.sink.write(r);
        }
    }

    /// The layer itself, and its log for the ticks that look for it through the dispatcher
    /// (`Dispatch::downcast_ref::<Sink>()`).
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else if id == TypeId::of::<Sink>() {
            Some(Arc::as_ptr(&self.sink) as *const ())
        } else {
            None
        }
    }
}
