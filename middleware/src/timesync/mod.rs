//! Physical clock synchronisation: NTP-style probes and the Berkeley algorithm.
//!
//! * [`probe`]: offset and delay from the four timestamps of a request–reply exchange, and the
//!   min-delay clock filter.
//! * [`berkeley`]: the Berkeley time daemon (Gusella & Zatti 1989) as a sans-IO state machine:
//!   the master polls, averages with falsetickers excluded, and sends each node a signed delta
//!   to slew by; each node also estimates its frequency error so drift stops accumulating.
//! * `sim` (feature `sim`): a virtual-time simulator of a cluster of Berkeley machines over
//!   simulated clocks, reporting precision, RMS offset, frequency error, time to sync and
//!   backward reads.
//! * [`daemon`]: the Berkeley daemon as an actor — the machine adapted to
//!   [`crate::protocol::Protocol`] and run by the generic [`crate::driver::Driver`] over the
//!   network, disciplining an [`AdjustedClock`](crate::clock::physical::AdjustedClock); the
//!   master is the elected leader ([`daemon::follow_election`]) or, without an election, the
//!   highest live node.
//!
//! The clocks these adjust are in [`crate::clock::physical`]; docs/timesync.md has the design,
//! the simulator's figures and the multi-process ones.

pub use actix_coord_proto::timesync::*;
pub mod daemon;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
