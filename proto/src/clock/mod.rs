//! Logical and hybrid clocks, usable with or without actix.
//!
//! * [`LamportClock`] and [`LamportTimestamp`]: Lamport's scalar clock (1978) and the total order
//!   on `(time, process)` that his mutual-exclusion algorithm relies on.
//! * [`VectorClock`]: a sparse vector clock keyed by [`ProcessId`] (a missing entry is 0) with
//!   [`VectorClock::compare`] returning a [`CausalOrder`].
//! * [`HybridClock`] and [`HlcTimestamp`]: the hybrid logical clock of Kulkarni et al. (2014) in
//!   the usual 64-bit layout, refusing remote timestamps too far ahead of physical time.
//! * [`encoding`]: the compact varint encoding used on the wire and in tests of size.
//!
//! Every type here is plain data: no I/O, no clock reads. Physical time enters the hybrid clock as
//! an argument, so the same code runs in tests, in simulation and in production.
//!
//! ```
//! use actix_coord_proto::clock::{CausalOrder, ProcessId, VectorClock};
//!
//! let (a, b) = (ProcessId::new(1, 1), ProcessId::new(1, 2));
//! let mut va = VectorClock::new();
//! va.tick(a); // a local event at a
//! let mut vb = VectorClock::new();
//! vb.tick(b); // an unrelated event at b
//! assert_eq!(va.compare(&vb), CausalOrder::Concurrent);
//!
//! vb.merge(&va); // b receives a message sent after a's event
//! vb.tick(b);
//! assert!(va.happened_before(&vb));
//! ```

pub mod encoding;
mod hybrid;
mod lamport;
mod vector;

pub use encoding::DecodeError;
pub use hybrid::{DEFAULT_MAX_OFFSET_MS, HlcError, HlcTimestamp, HybridClock};
pub use lamport::{LamportClock, LamportTimestamp};
pub use vector::{CausalOrder, VectorClock};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identity of one process in Lamport's sense: one causal actor instance.
///
/// `node` names the cluster member, `incarnation` the OS process's life as that member (0 for
/// its first start, 1 after its first restart, …), `local` the actor within it. A restarted
/// member is a new process in Lamport's sense: with its incarnation in every id, its vector-clock
/// entries and log names never collide with its predecessor's (see
/// `actix_coord::intercept::set_incarnation`).
///
/// Ids are ordered by `(node, incarnation, local)`; that order breaks ties in
/// [`LamportTimestamp`]. `local == 0` is reserved for a node's *external* process, which stamps
/// messages sent from outside any actor.
///
/// Shown as `node.local` in the first incarnation and `node~incarnation.local` after a restart:
///
/// ```
/// use actix_coord_proto::clock::ProcessId;
///
/// assert_eq!(ProcessId::new(3, 1).to_string(), "3.1");
/// assert_eq!(ProcessId::of(3, 2, 1).to_string(), "3~2.1");
/// assert!(ProcessId::new(3, 9) < ProcessId::of(3, 1, 1));
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ProcessId {
    /// Cluster member (node) id.
    pub node: u32,
    /// The member's incarnation: 0 at its first start, one more at each restart.
    pub incarnation: u32,
    /// Index of the process within its node's incarnation.
    pub local: u32,
}

impl ProcessId {
    /// A process id of a node's first incarnation from its node and local index.
    pub const fn new(node: u32, local: u32) -> Self {
        Self::of(node, 0, local)
    }

    /// A process id from its node, the node's incarnation and the local index.
    pub const fn of(node: u32, incarnation: u32, local: u32) -> Self {
        Self {
            node,
            incarnation,
            local,
        }
    }

    /// The external process of `node`'s first incarnation: the one that stamps sends made
    /// outside any actor.
    pub const fn external(node: u32) -> Self {
        Self::of(node, 0, 0)
    }

    /// Whether this is a node's external process.
    pub const fn is_external(&self) -> bool {
        self.local == 0
    }

    /// Incarnation and local index in one integer, as the wire carries them:
    /// `incarnation << 32 | local`. Increasing with the id's order within a node.
    pub const fn wire_local(&self) -> u64 {
        ((self.incarnation as u64) << 32) | self.local as u64
    }

    /// The id of `node` whose [`wire_local`](Self::wire_local) is `wire_local`.
    pub const fn from_wire(node: u32, wire_local: u64) -> Self {
        Self::of(node, (wire_local >> 32) as u32, wire_local as u32)
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.incarnation == 0 {
            write!(f, "{}.{}", self.node, self.local)
        } else {
            write!(f, "{}~{}.{}", self.node, self.incarnation, self.local)
        }
    }
}

/// Largest logical counter (Lamport time or vector entry) a clock accepts from elsewhere: 2^62.
///
/// Real clocks never come near it (2^62 events at a billion per second take 146 years); a larger
/// value comes from a bug or a hostile peer, and merging it would leave too little room below
/// `u64::MAX` to keep ticking. [`LamportClock::merge`] and [`VectorClock::try_merge`] refuse it.
pub const MAX_COUNTER: u64 = 1 << 62;

/// Largest logical counter the wire decoders accept from a peer: 2^61, half of
/// [`MAX_COUNTER`].
///
/// What a node accepts must stay strictly below what it can still send: a clock merged with an
/// accepted counter keeps 2^61 ticks of room before it reaches [`MAX_COUNTER`], so no peer can
/// make a local clock unsendable (before, one frame carrying exactly 2^62 merged to 2^62 + 1 and
/// every later send of that actor was refused by its peers). Counters above this bound are a
/// typed decode error and the frame is dropped.
pub const MAX_ACCEPTED_COUNTER: u64 = 1 << 61;

/// Errors of logical clock arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// A remote counter is above [`MAX_COUNTER`]; nothing was merged.
    #[error("absurd logical clock value {value} (limit {limit})", limit = MAX_COUNTER)]
    Absurd {
        /// The offending counter.
        value: u64,
    },
}
