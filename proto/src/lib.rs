//! # actix-coord-proto
//!
//! The sans-IO core of actix-coord: every algorithm as a pure state machine. Nothing here
//! performs I/O, reads a clock or draws entropy, and the crate depends on no runtime (no actix,
//! tokio or tokio-util; CI checks its `cargo tree`). Time enters as the `now` argument of every
//! input, randomness as a seeded [`SplitMix64`], so every core is `Clone + Hash + Eq` and is
//! model-checked directly. The runtime crate `actix-coord` re-exports all of it under the same
//! module paths and runs the cores as actors over the network.
//!
//! | module | what it holds |
//! |---|---|
//! | [`clock`] | Lamport, vector and hybrid logical clocks, process ids, their varint encoding |
//! | [`protocol`] | the [`Protocol`] trait a core implements, its [`Effect`]s, [`PeerWire`] tags, [`Membership`] |
//! | [`mutex`] | Lamport, Ricart–Agrawala and Suzuki–Kasami locks, [`AnyLock`](mutex::AnyLock) over them, fencing tokens and [`FencedResource`](mutex::FencedResource) |
//! | [`election`] | the bully election ([`Bully`](election::Bully)) |
//! | [`broadcast`] | causal and total-order broadcast |
//! | [`snapshot`] | Chandy–Lamport snapshots of an [`Application`](snapshot::Application) |
//! | [`timesync`] | NTP-style probes and the Berkeley machine ([`Berkeley`](timesync::berkeley::Berkeley), a core whose clock corrections are events) |
//! | `testing` (feature `testing`) | the in-memory networks of the cores' tests and model checks |
//! | [`schema`] | the causal log's event kinds and field names, shared by the services and `causal-log` |
//!
//! How a shell drives a core — the loop of inputs and effects — is in [`protocol`]'s docs.
#![warn(missing_docs)]

pub mod broadcast;
pub mod clock;
pub mod election;
pub mod mutex;
pub mod protocol;
pub mod schema;
pub mod snapshot;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timesync;

pub use protocol::{
    ConfigError, Effect, Effects, EffectsOf, Membership, NoTimer, NodeId, PeerWire, Protocol,
    SplitMix64,
};
