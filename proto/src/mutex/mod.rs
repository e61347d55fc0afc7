//! Distributed mutual exclusion: three sans-IO lock cores and a fenced resource.
//!
//! * [`LamportMutex`]: Lamport 1978, request / acknowledge / release, 3(N−1) messages per
//!   critical section; needs FIFO channels.
//! * [`RicartAgrawala`]: permission-based, the release folded into deferred replies, 2(N−1)
//!   messages; no FIFO needed.
//! * [`SuzukiKasami`]: token-based, N messages (0 when the token is already here); the token
//!   carries an epoch so that a token regenerated after its holder crashed supersedes the old one.
//! * [`FencedResource`]: the guard on the protected resource, refusing writes whose fencing token
//!   is lower than the highest it has seen.
//!
//! The three cores implement [`Protocol`](crate::protocol::Protocol) with the same
//! [`LockCommand`] / [`LockEvent`] / [`LockError`] vocabulary, so one actor shell drives any of
//! them (the algorithm is a configuration value). Like every core of this crate they perform no
//! I/O, read no clock and draw no randomness: no actix, tokio, `Instant::now()`,
//! `SystemTime::now()` or `thread_rng()` inside.
//!
//! # Fencing tokens
//! Every grant carries a [`Fence`] that is strictly greater than the fence of the previous owner
//! (Chubby sequencers, Kleppmann 2016), shown as `round.opener:seq` ([`fence_display`]).
//! Lamport and Ricart–Agrawala grant in the total order of request timestamps `(time, node)`, so
//! the fence *is* the granted request's timestamp `time.node:0` ([`request_fence`]): no extra
//! field on the wire, and it stays increasing when a holder crashes, since its successor's
//! request is later in that order. Suzuki–Kasami's fence is the token's epoch `(round, opener)`
//! and its grant count. The stateright checks verify `fences increase` for all three, with
//! crashes and restarts.
//!
//! # Crash-recovery
//! Every member starts catching up (cluster boot and restart alike): it takes part only once
//! every peer has answered its `Hello` with its state; peers treat a new incarnation as a new
//! member (see [`LockTimer`] and `docs/faults.md`).
//!
//! # Faults
//! On [`Protocol::on_peer_down`](crate::protocol::Protocol::on_peer_down) a core drops the
//! peer's pending requests and stops waiting for it. **A false suspicion can break mutual
//! exclusion**: the suspected peer may in fact hold the lock. The fencing token is the guard
//! against that: the next owner's token is higher, so a [`FencedResource`] that has seen it
//! refuses the old owner's late writes. See `docs/mutex.md`.

mod any;
mod fenced;
mod lamport;
mod ricart_agrawala;
mod suzuki_kasami;

pub use any::{AnyLock, AnyLockCommand, AnyLockEvent, AnyLockMsg, LockAlgorithm, UnknownAlgorithm};
pub use fenced::{FenceError, FencedResource};
pub use lamport::{LamportMsg, LamportMutex};
pub use ricart_agrawala::{RaMsg, RicartAgrawala};
pub use suzuki_kasami::{Epoch, SkMsg, SuzukiKasami, Token};

use crate::clock::{LamportTimestamp, ProcessId};
use crate::protocol::{ConfigError, NodeId};
use serde::{Deserialize, Serialize};

/// A fencing token: strictly increasing from one lock owner to the next, one value per
/// ownership.
///
/// A fence packs three parts, compared in this order (so the `u64` order is the fence order):
///
/// | bits | part | Lamport, Ricart–Agrawala | Suzuki–Kasami |
/// |---|---|---|---|
/// | 63..32 | `round` | the granted request's Lamport time | the token's epoch round |
/// | 31..24 | `opener` | the requesting member | the member that opened the epoch |
/// | 23..0 | `seq` | 0 | grants made with the token in its epoch |
///
/// `(round, opener)` is an epoch, totally ordered, opened by one member; `seq` counts the grants
/// in it. People see fences as `round.opener:seq` ([`FenceDisplay`], [`fence_display`]), for
/// instance `3.1:7`: the seventh grant of the epoch member 1 opened in round 3; logs carry the
/// number too (field `fence`) so that tools compare them. A part that does not fit saturates
/// (a Lamport time above 2³² − 1, more than 2²⁴ − 1 grants in one epoch): fences then stop
/// increasing; lock members must have ids of at most [`MAX_FENCED_MEMBER`] (checked when a lock
/// core is built).
pub type Fence = u64;

/// The highest member id a lock accepts: the `opener` part of a [`Fence`] has 8 bits.
pub const MAX_FENCED_MEMBER: NodeId = 255;

/// The largest `seq` part of a [`Fence`].
pub const MAX_FENCE_SEQ: u64 = (1 << 24) - 1;

/// The fence `round.opener:seq`, each part saturated to its width.
pub fn make_fence(round: u64, opener: NodeId, seq: u64) -> Fence {
    (round.min(u64::from(u32::MAX)) << 32)
        | (u64::from(opener.min(MAX_FENCED_MEMBER)) << 24)
        | seq.min(MAX_FENCE_SEQ)
}

/// The parts `(round, opener, seq)` of a fence.
pub fn fence_parts(fence: Fence) -> (u64, NodeId, u64) {
    (
        fence >> 32,
        // Eight bits: the cast cannot truncate.
        ((fence >> 24) & 0xff) as NodeId,
        fence & MAX_FENCE_SEQ,
    )
}

/// A [`Fence`] shown as people read it: `round.opener:seq`, e.g. `3.1:7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FenceDisplay(pub Fence);

/// The readable form of `fence` (`round.opener:seq`).
pub fn fence_display(fence: Fence) -> FenceDisplay {
    FenceDisplay(fence)
}

impl std::fmt::Display for FenceDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (round, opener, seq) = fence_parts(self.0);
        write!(f, "{round}.{opener}:{seq}")
    }
}

/// A fence that is neither `round.opener:seq` nor a plain number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a fence: {0:?} (expected round.opener:seq, e.g. 3.1:7, or a number)")]
pub struct BadFence(pub String);

/// Reads a fence written as `round.opener:seq` (as [`FenceDisplay`] shows it) or as its number.
///
/// # Errors
/// [`BadFence`] for anything else, or parts out of range.
pub fn parse_fence(s: &str) -> Result<Fence, BadFence> {
    let bad = || BadFence(s.to_owned());
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let (epoch, seq) = s.split_once(':').ok_or_else(bad)?;
    let (round, opener) = epoch.split_once('.').ok_or_else(bad)?;
    let round: u64 = round.parse().map_err(|_| bad())?;
    let opener: NodeId = opener.parse().map_err(|_| bad())?;
    let seq: u64 = seq.parse().map_err(|_| bad())?;
    if round > u64::from(u32::MAX) || opener > MAX_FENCED_MEMBER || seq > MAX_FENCE_SEQ {
        return Err(bad());
    }
    Ok(make_fence(round, opener, seq))
}

/// What the local user asks of a lock core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockCommand {
    /// Ask for the lock; [`LockEvent::Granted`] follows, now or later.
    Acquire,
    /// Leave the critical section; [`LockEvent::Released`] follows at once.
    Release,
    /// Withdraw a pending request (a cancelled or timed-out wait); [`LockEvent::Cancelled`]
    /// follows at once.
    Cancel,
}

/// What a lock core tells its local user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockEvent {
    /// The lock is held from now on; writes to the protected resource carry `fence`.
    Granted {
        /// The fencing token of this ownership.
        fence: Fence,
    },
    /// The lock was released by the local user.
    Released {
        /// The fencing token of the ownership that ended.
        fence: Fence,
    },
    /// A pending request was withdrawn.
    Cancelled,
    /// Ownership was lost without a release: the core learnt that its lock was superseded
    /// (Suzuki–Kasami: a newer token epoch while holding). Stop writing.
    Lost {
        /// The fencing token of the ownership that was lost.
        fence: Fence,
    },
}

/// Where a lock core stands, from its local user's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LockState {
    /// Neither holding nor asking.
    #[default]
    Idle,
    /// A request is pending.
    Waiting,
    /// In the critical section.
    Held {
        /// The fencing token of this ownership.
        fence: Fence,
    },
}

impl LockState {
    /// `Acquire`: from idle to waiting; refused while waiting or holding.
    pub(crate) fn wait(&mut self) -> Result<(), LockError> {
        match *self {
            LockState::Waiting => Err(LockError::AlreadyWaiting),
            LockState::Held { .. } => Err(LockError::AlreadyHeld),
            LockState::Idle => {
                *self = LockState::Waiting;
                Ok(())
            }
        }
    }

    /// `Release`: from holding to idle, giving the fence of the ownership that ends; refused
    /// when not holding.
    pub(crate) fn release(&mut self) -> Result<Fence, LockError> {
        let LockState::Held { fence } = *self else {
            return Err(LockError::NotHeld);
        };
        *self = LockState::Idle;
        Ok(fence)
    }

    /// `Cancel`: from waiting to idle; refused when no request is pending.
    pub(crate) fn cancel(&mut self) -> Result<(), LockError> {
        if *self != LockState::Waiting {
            return Err(LockError::NotWaiting);
        }
        *self = LockState::Idle;
        Ok(())
    }
}

/// A lock command refused in the current state (nothing changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// `Acquire` while a request is already pending.
    #[error("a request is already pending")]
    AlreadyWaiting,
    /// `Acquire` while already holding the lock (the cores are not re-entrant).
    #[error("the lock is already held")]
    AlreadyHeld,
    /// `Release` while not holding the lock.
    #[error("the lock is not held")]
    NotHeld,
    /// `Cancel` while no request is pending.
    #[error("no request is pending")]
    NotWaiting,
}

/// The local index of the lock process within its node, for [`LamportTimestamp`]s.
///
/// Local index 0 is the node's external process (see [`ProcessId::external`]); the lock core is
/// the one process of its node taking part in the algorithm, so requests are ordered by
/// `(time, node)` exactly as in the paper's `(T_m, P_i)`.
pub const LOCK_PROCESS: u32 = 1;

/// The total-order stamp of a request made at Lamport time `time` by member `node`.
pub fn request_stamp(time: u64, node: NodeId) -> LamportTimestamp {
    LamportTimestamp::new(time, ProcessId::new(node, LOCK_PROCESS))
}

/// The fence of a grant to the request stamped `stamp` (Lamport, Ricart–Agrawala):
/// `time.node:0`, ordered exactly like the stamps while Lamport time stays below 2^32
/// (beyond, the time saturates and fences stop increasing: 4 billion events on one lock).
pub fn request_fence(stamp: LamportTimestamp) -> Fence {
    make_fence(stamp.time, stamp.process.node, 0)
}

/// The lock cores' timers: while a core is catching up, it asks again every [`JOIN_RETRY`] the
/// peers that have not answered; a Suzuki–Kasami member named leader by an election waits out
/// its settle time before it acts as leader ([`LockTimer::LeaderSettle`]).
///
/// A core starts **catching up**: it sends `Hello { incarnation }` to every peer and takes no
/// part in the algorithm (it answers requests as an idle member, but makes none, grants itself
/// nothing and passes no token) until every peer not declared down has answered with its state
/// (`State`). A peer that receives a `Hello` of an incarnation it has not met treats the sender
/// as a new member: the old incarnation's requests are dropped (as on a crash), and its own
/// outstanding request and state are re-sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockTimer {
    /// Re-send `Hello` to the peers whose state has not arrived.
    JoinRetry,
    /// Suzuki–Kasami with an elected leader: this member has been named leader and nothing has
    /// changed for its settle time ([`SuzukiKasami::with_leader_settle`]); it leads now.
    LeaderSettle,
}

/// How often a catching-up lock core asks again ([`LockTimer::JoinRetry`]).
pub const JOIN_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) use crate::protocol::{HelloKind, Join};

/// Lock members must fit the fence's `opener` part.
pub(crate) fn check_fenced_members(members: &[NodeId]) -> Result<(), ConfigError> {
    if members.iter().any(|&m| m > MAX_FENCED_MEMBER) {
        return Err(ConfigError::Inconsistent(
            "lock member ids must be at most 255 (the fence's opener part)",
        ));
    }
    Ok(())
}

/// What the lock cores' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Fence, LockEvent};
    use crate::protocol::{ConfigError, NodeId, Protocol};
    use crate::testing::Net;
    use std::ops::RangeInclusive;

    /// `n` members `1..=n`, each made by `make(id, members)`, on one in-memory network.
    pub(crate) fn net<P: Protocol>(
        n: u32,
        make: impl Fn(NodeId, RangeInclusive<NodeId>) -> Result<P, ConfigError>,
    ) -> Net<P> {
        Net::new(
            (1..=n)
                .map(|i| make(i, 1..=n).expect("a valid membership"))
                .collect(),
        )
    }

    /// The grants among `events`, in order: (member, fence).
    pub(crate) fn granted(events: &[(NodeId, LockEvent)]) -> Vec<(NodeId, Fence)> {
        events
            .iter()
            .filter_map(|(n, e)| match e {
                LockEvent::Granted { fence } => Some((*n, *fence)),
                _ => None,
            })
            .collect()
    }
}
