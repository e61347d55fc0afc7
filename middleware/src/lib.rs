//! # actix-coord
//!
//! Coordination and time for [actix](https://docs.rs/actix) actors.
//!
//! * [`broadcast`]: causal and total-order group broadcast.
//! * [`clock`]: Lamport, vector and hybrid logical clocks, with a compact encoding.
//! * [`intercept`]: a drop-in actor context that stamps every message with the sender's clocks and
//!   merges them before the handler runs, with no change to handlers.
//! * `ws` (feature `actix-web`): actix-web-actors' websocket sessions as causal processes.
//! * [`net`]: nodes and remote actors over authenticated TCP, with clocks on every message.
//! * [`schema`]: the causal log's event kinds and field names.
//! * [`trace`]: a `tracing` layer that writes every clock tick as a causal log (ShiViz and JSON
//!   lines).
//! * [`snapshot`]: Chandy–Lamport consistent snapshots of a sans-IO application.
//! * [`timesync`]: NTP-style probes and the Berkeley clock-synchronisation machine, over the
//!   physical clocks of [`clock::physical`].
#![warn(missing_docs)]

pub mod broadcast;
pub mod clock;
pub mod driver;
pub mod election;
pub mod intercept;
pub mod mutex;
pub mod net;
pub use actix_coord_proto::protocol;
pub use actix_coord_proto::schema;
pub mod snapshot;
pub mod timesync;
pub mod trace;

pub use intercept::CausalContext;
/// Websocket session actors of actix-web-actors as causal processes (feature `actix-web`).
#[cfg(feature = "actix-web")]
pub use intercept::ws;

/// The common imports: `use actix_coord::prelude::*;`.
pub mod prelude {
    pub use crate::clock::{CausalOrder, HlcTimestamp, LamportTimestamp, ProcessId, VectorClock};
    pub use crate::intercept::{
        CausalBuilder, CausalContext, CausalRecipient, ClockSet, Clocks, InProcessExt, Stamped,
        StampedAddrExt,
    };
}

/// The README's quick start, compiled as a doctest so it stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
