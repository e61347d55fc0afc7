//! # causal-log
//!
//! Read, merge, check, query and draw causal logs: the JSON lines and ShiViz files written by
//! actix-coord's `trace` layer (see `docs/log-format.md`), plain ShiViz logs with any regex
//! header, and GoVector's two-line logs.
//!
//! A [`Log`] is a set of events, each on one *host* (a process) with the vector clock it had
//! after the event. Reading a log pairs every receive with its send (by message id when the log
//! has one, else from the vector clocks, as ShiViz does), orders each host's events by its own
//! counter and computes a linear extension of happened-before (ties broken by
//! `(lamport, host)`), which is the order [`Log::to_jsonl`] and [`Log::to_shiviz`] write.
//!
//! ## Reading and checking
//! ```
//! use causal_log::Log;
//!
//! let text = r#"{"host":"a","kind":"send","event":"ping","clock":{"a":1},"msg":"a:1"}
//! {"host":"b","kind":"receive","event":"got ping","clock":{"a":1,"b":1},"msg":"a:1","peer":"a"}
//! "#;
//! let log = Log::parse_str("run.jsonl", text)?;
//! // ShiViz's rules, held strictly (a gap is an error):
//! assert!(causal_log::check_shiviz_rules(&log).is_clean());
//! // ShiViz's rules with gaps as warnings, plus mutual exclusion, fencing and leader checks:
//! let report = log.check();
//! assert!(report.is_clean(), "{report}");
//! // Happened-before by event id (`host:k` is host's k-th event):
//! let (a1, b1) = (log.find("a:1").unwrap(), log.find("b:1").unwrap());
//! assert!(log.happened_before(a1, b1));
//! # Ok::<(), causal_log::ReadError>(())
//! ```
//! Files are read with [`Log::read_paths`] (any mix of formats; the format of each file is
//! recognised from its first line). An unreadable file gives a [`ReadError`] naming the file
//! and line.
//!
//! ## Drawing
//! [`draw::svg`] and [`draw::html`] render the space-time diagram; [`Log::write_diagram`] picks
//! one from the file extension.
#![warn(missing_docs)]

pub mod browser;
mod check;
pub mod cli;
pub mod draw;
mod model;
mod read;
mod stats;
pub mod synth;
mod write;

pub use check::{CheckOptions, Finding, Report, Rule, Severity, check_shiviz_rules};

/// A `term` field as people read it. actix-coord writes a leader's term as one number, the
/// ballot `round · 2³² + leader`; such a number is shown `round:leader`, the way the library
/// prints a `Term` (so `12884901893` is `3:5`). Smaller numbers (other tools' plain terms) are
/// shown as they are.
///
/// ```
/// assert_eq!(causal_log::show_term((3 << 32) | 5), "3:5");
/// assert_eq!(causal_log::show_term(7), "7");
/// ```
pub fn show_term(term: u64) -> String {
    if term >> 32 == 0 {
        term.to_string()
    } else {
        format!("{}:{}", term >> 32, term & 0xffff_ffff)
    }
}
pub use model::{CrashGap, Event, HostId, Log, LogBuilder, Source};
pub use read::{Format, ReadError};
pub use stats::{HostStats, Stats};
