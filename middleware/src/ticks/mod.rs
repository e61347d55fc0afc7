//! Where clock ticks go: the record of one tick, the table of process names, and the causal log
//! they are written to (a writer thread formatting JSON lines and ShiViz).
//!
//! This is the bottom of the tracing side. `intercept` hands every tick here, `net` reads and
//! learns process names here, and `trace` (the public face: the `tracing` layer that owns a
//! [`Sink`], user events turned into local ticks, semantic events) is built on both. A tick finds
//! the log of the current `tracing` dispatcher through `Dispatch::downcast_ref::<Sink>()`, which
//! the layer answers (`Layer::downcast_raw`), so nothing here names the layer.

mod writer;

use writer::{Msg, Writer};

use crate::clock::{HlcTimestamp, ProcessId, VectorClock};
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

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

/// Number of live causal logs; ticks build records only when it is non-zero.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Whether any causal log (a `trace::CausalLayer`) is alive (records are built only then).
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed) > 0
}

/// Hands `record` to the causal log of the current dispatcher, if it has one.
pub(crate) fn record(record: TickRecord) {
    let mut rec = Some(record);
    tracing::dispatcher::get_default(|d| {
        if let (Some(sink), Some(r)) = (d.downcast_ref::<Sink>(), rec.take()) {
            sink.write(r);
        }
    });
}

/// Tells the current dispatcher's causal log the name of a process, e.g. a remote one whose
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
        if let Some(sink) = d.downcast_ref::<Sink>() {
            sink.name(process, name.clone());
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

/// A causal log: the channel to its writer thread, and the thread. A `trace::CausalLayer` owns
/// one and lets ticks reach it through its dispatcher.
pub(crate) struct Sink {
    tx: Mutex<Option<SyncSender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<io::Result<()>>>>,
}

impl Sink {
    /// Starts the writer thread over the outputs, with room for `buffer` records before senders
    /// wait. The log counts as alive ([`active`]) until [`Sink::shutdown`], and is flushed when
    /// any thread panics.
    pub(crate) fn start(
        jsonl: Option<Box<dyn Write + Send>>,
        shiviz: Option<Box<dyn Write + Send>>,
        buffer: usize,
    ) -> io::Result<Arc<Self>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(buffer);
        let writer = Writer::new(jsonl, shiviz)?;
        let thread = std::thread::Builder::new()
            .name("causal-log".into())
            .spawn(move || writer.run(rx))?;
        let sink = Arc::new(Sink {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        });
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        register_for_panics(&sink);
        Ok(sink)
    }

    fn send(&self, msg: Msg) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match tx {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        }
    }

    /// Queues `record` for the writer (waits while the buffer is full: ticks are never dropped).
    pub(crate) fn write(&self, record: TickRecord) {
        self.send(Msg::Record(Box::new(record)));
    }

    /// Tells the writer the name of `process`.
    pub(crate) fn name(&self, process: ProcessId, name: Arc<str>) {
        self.send(Msg::Name(process, name));
    }

    /// Waits (up to `timeout`) until everything queued so far is written out.
    pub(crate) fn flush(&self, timeout: Duration) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if self.send(Msg::Flush(done_tx)) {
            let _ = done_rx.recv_timeout(timeout);
        }
    }

    /// Writes out what is queued, stops the writer thread, and returns its first I/O error.
    pub(crate) fn shutdown(&self) -> io::Result<()> {
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

/// Flushes live logs when any thread panics, then runs the previous hook.
fn register_for_panics(sink: &Arc<Sink>) {
    static LIVE: OnceLock<Mutex<Vec<Weak<Sink>>>> = OnceLock::new();
    let mut first = false;
    let live = LIVE.get_or_init(|| {
        first = true;
        Mutex::new(Vec::new())
    });
    {
        let mut v = live.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(sink));
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
