//! Leader election: the bully algorithm as a sans-IO core.
//!
//! [`Bully`] implements [`Protocol`](crate::protocol::Protocol): like every core of this crate it
//! performs no I/O, reads no clock and draws no entropy (no actix, tokio, `Instant::now()`,
//! `SystemTime::now()` or `thread_rng()` inside); a shell feeds it messages, timer expiries and
//! failure-detector verdicts, and carries out its [`Effect`](crate::protocol::Effect)s. See
//! `docs/election.md` for the guarantees and their limits.
//!
//! ```
//! use actix_coord::election::{Bully, BullyConfig, BullyEvent, Term};
//! use actix_coord::protocol::{Effects, Protocol};
//! use std::time::Duration;
//!
//! // The highest id wins at once: it has nobody to ask.
//! let mut n3 = Bully::new(3, [1, 2, 3], BullyConfig::default()).unwrap();
//! let mut out = Effects::new();
//! n3.on_start(Duration::ZERO, &mut out);
//! assert_eq!(
//!     out.events().next(),
//!     Some(&BullyEvent::LeaderChanged { leader: Some(3), term: Term { round: 1, leader: 3 } })
//! );
//! ```

mod api;

pub use actix_coord_proto::election::*;
#[cfg(test)]
pub(crate) use api::start_local;
pub use api::{
    Changes, Election, ElectionError, LeaderChange, LeaderView, RecvError, StartError, term_number,
};
