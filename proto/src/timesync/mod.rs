//! Physical clock synchronisation as sans-IO machines: NTP-style probes and the Berkeley
//! algorithm.
//!
//! * [`probe`]: offset and delay from the four timestamps of a request–reply exchange, and the
//!   min-delay clock filter.
//! * [`berkeley`]: the Berkeley time daemon (Gusella & Zatti 1989): the master polls, averages
//!   with falsetickers excluded, and sends each node a signed delta to slew by; each node also
//!   estimates its frequency error so drift stops accumulating.
//!
//! Neither reads a clock: the shell passes every timestamp in. The runtime crate `actix-coord`
//! runs the machine over the local hardware clock (`actix_coord::timesync::daemon`).

pub mod berkeley;
pub mod probe;

pub use crate::protocol::NodeId;
