//! Causal tracing: every clock tick written as a causal log, in ShiViz and JSON-lines formats.
//!
//! Install a [`CausalLayer`] in your `tracing` subscriber *before* starting causal actors:
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! use actix_coord::trace::CausalLayer;
//!
//! let (layer, guard) = CausalLayer::builder()
//!     .jsonl_path("target/run.jsonl")
//!     .shiviz_path("target/run.log")
//!     .build()
//!     .expect("log files");
//! let console = tracing_subscriber::fmt::layer()
//!     .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
//! tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer).with(console))
//!     .expect("no other tracing subscriber");
//! // ... run the actors ...
//! drop(guard); // flushes both files
//! ```
//!
//! `tracing::subscriber::set_global_default` works beside an existing `log` logger
//! (`env_logger`, `tracing_log::LogTracer`); `tracing_subscriber`'s `.init()` also sets the
//! `log` logger and panics with `SetLoggerError` when one is set already. Keep a console layer
//! such as `fmt::layer()`: the causal layer writes only its files.
//!
//! What is written:
//! * every **send** and **receive** tick of every causal process (and of external processes),
//!   whatever level filter the console uses: ticks reach the layer through their own path, not
//!   through `tracing`'s filtering, because one missing tick makes ShiViz reject a log. They are
//!   also emitted as `TRACE` events with target `actix_coord::tick` for consoles that want them;
//! * every user `tracing` event emitted inside a causal actor at or above the layer's level
//!   (default `INFO`, set with [`CausalLayerBuilder::level`], independent of the console's
//!   filter): such an event is a **local event** and ticks its process's clocks. Keep console
//!   filters per-layer (`.with_filter(..)` on the console layer) so they do not hide these;
//! * **semantic events** logged with [`event`] (e.g. `lock.enter` with `resource` and `fence`).
//!
//! Records are formatted and written by a background thread (off the handler path), flushed
//! when the [`CausalLogGuard`] drops, on [`CausalLogGuard::flush`], and when a thread panics.
//! The formats are documented in `docs/log-format.md`.

mod layer;
mod writer;

pub use layer::{CausalLayer, CausalLayerBuilder, CausalLogGuard, DEFAULT_BUFFER};

use crate::clock::{HlcTimestamp, ProcessId, VectorClock};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a logged event is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A message left the process.
    Send,
    /// A message was merged into the process.
    Receive,
    /// A local event (a user `tracing` event).
    Local,
    /// A semantic local event with its kind, such as `lock.enter` or `leader.elected`.
    Semantic(Cow<'static, str>),
}

impl EventKind {
    /// The `kind` string written in logs.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Send => "send",
            EventKind::Receive => "receive",
            EventKind::Local => "local",
            EventKind::Semantic(s) => s,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field value of a logged event.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// Text.
    Str(String),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

macro_rules! field_from {
    ($($t:ty => $v:ident $(as $c:ty)?),*) => {$(
        impl From<$t> for FieldValue {
            fn from(x: $t) -> Self { FieldValue::$v(x $(as $c)?) }
        }
    )*};
}
field_from!(String => Str, i64 => I64, i32 => I64 as i64, u64 => U64, u32 => U64 as u64,
    usize => U64 as u64, f64 => F64, bool => Bool);

impl From<&str> for FieldValue {
    fn from(x: &str) -> Self {
        FieldValue::Str(x.to_owned())
    }
}

impl FieldValue {
    fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Str(s) => s.clone().into(),
            FieldValue::I64(v) => (*v).into(),
            FieldValue::U64(v) => (*v).into(),
            FieldValue::F64(v) => (*v).into(),
            FieldValue::Bool(v) => (*v).into(),
        }
    }
}

/// One tick of one process, as handed to the writer.
#[derive(Clone, Debug)]
pub struct TickRecord {
    /// The process that ticked.
    pub process: ProcessId,
    /// Its name (the log's host).
    pub host: Arc<str>,
    /// What kind of event.
    pub kind: EventKind,
    /// Text of the event.
    pub event: String,
    /// The process's event count after this event (its k).
    pub event_number: u64,
    /// Lamport time after the event.
    pub lamport: u64,
    /// Vector clock after the event (empty when the process keeps none).
    pub vector: std::sync::Arc<VectorClock>,
    /// HLC after the event.
    pub hlc: HlcTimestamp,
    /// For sends and receives: the message id (sender, sender's event number at the send).
    pub msg: Option<(ProcessId, u64)>,
    /// For receives: the sender.
    pub peer: Option<ProcessId>,
    /// Event fields.
    pub fields: Vec<(String, FieldValue)>,
}

/// Number of live causal layers; ticks build records only when it is non-zero.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether any [`CausalLayer`] is alive (records are built only then).
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed) > 0
}

/// Hands `record` to the causal layer of the current dispatcher, if it has one.
pub(crate) fn record(record: TickRecord) {
    let mut rec = Some(record);
    tracing::dispatcher::get_default(|d| {
        if let (Some(layer), Some(r)) = (d.downcast_ref::<CausalLayer>(), rec.take()) {
            layer.write(r);
        }
    });
}

/// Tells the current dispatcher's causal layer the name of a process, e.g. a remote one whose
/// events are logged on another node but which appears in local vector clocks.
///
/// The name is also kept in a process-wide table ([`process_name`]) that transports read to tell
/// peers the names of the processes in the clocks they send.
pub fn register_name(process: ProcessId, name: Arc<str>) {
    {
        let mut names = NAMES.write().unwrap_or_else(|e| e.into_inner());
        if names.len() < MAX_NAMES || names.contains_key(&process) {
            names.insert(process, name.clone());
        }
    }
    tracing::dispatcher::get_default(|d| {
        if let Some(layer) = d.downcast_ref::<CausalLayer>() {
            layer.name(process, name.clone());
        }
    });
}

/// Most names kept by [`register_name`] (later ones are not kept, only logged).
pub const MAX_NAMES: usize = 1 << 20;

static NAMES: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<ProcessId, Arc<str>>>,
> = std::sync::LazyLock::new(Default::default);

/// The name registered for `process` with [`register_name`] (local causal actors and external
/// processes register theirs when created; transports register remote ones).
pub fn process_name(process: ProcessId) -> Option<Arc<str>> {
    NAMES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&process)
        .cloned()
}

/// Logs a semantic event of the current process (the causal actor being run, or the external
/// process): a local event that ticks its clocks, with a `kind` that tools check.
///
/// ```
/// use actix_coord::trace;
/// trace::event("lock.enter", "enter the critical section", [
///     ("resource", trace::FieldValue::from("seats")),
///     ("fence", 7u64.into()),
/// ]);
/// ```
pub fn event<'a>(
    kind: &str,
    text: impl Into<String>,
    fields: impl IntoIterator<Item = (&'a str, FieldValue)>,
) {
    let kind = match kind {
        "local" => EventKind::Local,
        k => EventKind::Semantic(Cow::Owned(k.to_owned())),
    };
    let fields = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    crate::intercept::process::with_current(|p| p.local(kind, text.into(), fields));
}
