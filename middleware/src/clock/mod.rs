//! Logical and hybrid clocks, usable with or without actix, and the physical clocks the hybrid
//! clock and the time daemon read.
//!
//! The logical clocks are plain data from `actix_coord_proto::clock`, re-exported here:
//! [`LamportClock`], [`VectorClock`], [`HybridClock`] and their encoding. [`physical`] adds the
//! time sources: the system clock, a slewed [`AdjustedClock`](physical::AdjustedClock), and
//! simulated clocks for tests.
//!
//! ```
//! use actix_coord::clock::{CausalOrder, ProcessId, VectorClock};
//!
//! let (a, b) = (ProcessId::new(1, 1), ProcessId::new(1, 2));
//! let mut va = VectorClock::new();
//! va.tick(a);
//! let mut vb = VectorClock::new();
//! vb.tick(b);
//! assert_eq!(va.compare(&vb), CausalOrder::Concurrent);
//! ```

pub use actix_coord_proto::clock::*;
pub mod physical;
