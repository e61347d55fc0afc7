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

pub use layer::{CausalLayer, CausalLayerBuilder, CausalLogGuard, DEFAULT_BUFFER};

pub use crate::ticks::{
    EventKind, FieldValue, MAX_NAMES, TickRecord, active, process_name, register_name,
};

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
    let fields = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    crate::intercept::process::event(kind, text.into(), fields);
}
