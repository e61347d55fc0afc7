//! # actix-coord
//!
//! Coordination and time for [actix](https://docs.rs/actix) actors.
//!
//! * [`clock`]: Lamport, vector and hybrid logical clocks, with a compact encoding.
//! * [`intercept`]: a drop-in actor context that stamps every message with the sender's clocks and
//!   merges them before the handler runs, with no change to handlers.
//! * [`trace`]: a `tracing` layer that writes every clock tick as a causal log (ShiViz and JSON
//!   lines), and a reader that checks such logs.
#![warn(missing_docs)]

pub mod clock;
pub mod timesync;
