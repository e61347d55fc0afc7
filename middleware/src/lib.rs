//! # actix-coord
//!
//! Coordination and time for [actix](https://docs.rs/actix) actors. The pure machines are the
//! crate `actix-coord-proto`, re-exported here under the same paths; this crate runs them.
//!
//! | module | what a user reaches for |
//! |---|---|
//! | [`intercept`] | [`CausalContext`] (drop-in `Context` that stamps and merges clocks), `CausalBuilder`, `ClockSet`, `StampedAddrExt`, `InProcessExt`, the explicit layer |
//! | `ws` (feature `actix-web`) | actix-web-actors' websocket sessions as causal processes |
//! | [`trace`] | `CausalLayer` (every tick as ShiViz and JSON lines), `event` for semantic events |
//! | [`net`] | `Node`, `NodeBuilder` (mutual TLS or Noise), `RemoteAddr`, `RemoteActor`, `NetStats` |
//! | [`driver`] | `At` (where a service member runs), `StartError`, `Driver<P>` (the one shell of every core) and its `Host`, `LocalLinks` |
//! | [`mutex`] | `DistributedLock::start`, `LockConfig`, `LockGuard`, `FencedResource`, the lock cores |
//! | [`election`] | `Election::start`, `LeaderView`, `Bully` |
//! | [`broadcast`] | `Broadcaster::start` over `CausalBroadcast` or `TotalOrderBroadcast` |
//! | [`snapshot`] | `Snapshots::start` over `ChandyLamport` of an `Application` |
//! | [`timesync`] | `daemon::start` (Berkeley over the hardware clock, through `daemon::ClockHost`), `probe`, `berkeley`; `sim` (feature `sim`) |
//! | [`clock`] | Lamport, vector and hybrid clocks, `ProcessId`; `physical`: hardware and slewed clocks |
//! | [`protocol`], [`schema`] | the `Protocol` trait and its effects; the causal log's kinds and fields |
//!
//! Every service starts the same way: `start(at, name, members, config)`, `at` being
//! [`driver::At::Node`] or [`driver::At::Local`].
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
mod ticks;
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
