//! Group broadcast with ordering guarantees, as sans-IO cores: causal ([`CausalBroadcast`]) and
//! total ([`TotalOrderBroadcast`]).
//!
//! Both are [`Protocol`](crate::protocol::Protocol) cores with one interface: the command
//! [`BroadcastCommand::Publish`] and the events [`BroadcastEvent`] (every [`Delivery`] in the
//! group's order). The runtime crate `actix-coord` runs them as actors, in one process or across
//! nodes (`actix_coord::broadcast::Broadcaster`).
//!
//! | | causal | total |
//! |---|---|---|
//! | guarantee | a message is delivered after every message that causally precedes it | every member delivers the same messages in the same order |
//! | messages per broadcast | N−1 ((N−1)² with relay) | N(N−1) |
//! | latency | one hop | two hops (data, then acknowledgements) |
//! | channels | any order | FIFO |

pub mod causal;
pub mod total;

pub use causal::{
    CausalBroadcast, CausalConfig, CausalMsg, CausalView, CausalWire, MAX_RESEND_BATCH,
    MAX_SUPERSEDED,
};
pub use total::{TotalConfig, TotalMsg, TotalOrderBroadcast};

use crate::protocol::NodeId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// What a group can broadcast: anything serde can carry between nodes.
pub trait Payload: Clone + Debug + Serialize + DeserializeOwned + Send + Unpin + 'static {}

impl<T> Payload for T where T: Clone + Debug + Serialize + DeserializeOwned + Send + Unpin + 'static {}

/// The one timer of the broadcast cores: while a member is catching up (it has just started),
/// it asks again, every [`JOIN_RETRY`], the peers that have not answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BroadcastTimer {
    /// Re-send `Hello` to the peers whose answer has not arrived.
    JoinRetry,
}

/// How often a catching-up broadcast member asks again ([`BroadcastTimer::JoinRetry`]).
pub const JOIN_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a broadcast member refused a publication (nothing was sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The member is still catching up with its peers and already keeps as many publications
    /// waiting as it may hold (`max_held`, `max_queued`): try again once it has caught up.
    #[error("still catching up, {queued} publications already waiting")]
    Backlog {
        /// Publications waiting.
        queued: usize,
    },
}

/// A publication made while the member catches up waits in `pending`, at most `cap` of them.
pub(crate) fn keep_waiting<T>(
    pending: &mut std::collections::VecDeque<T>,
    cap: usize,
    payload: T,
) -> Result<(), BroadcastError> {
    if pending.len() >= cap {
        return Err(BroadcastError::Backlog {
            queued: pending.len(),
        });
    }
    pending.push_back(payload);
    Ok(())
}

/// `from`'s incarnation `old` was succeeded: remember it (at most [`MAX_SUPERSEDED`] per
/// member, the oldest forgotten first), so its broadcasts still in flight can be dropped.
pub(crate) fn supersede(
    superseded: &mut std::collections::BTreeMap<NodeId, Vec<u64>>,
    from: NodeId,
    old: u64,
    new: u64,
) {
    let list = superseded.entry(from).or_default();
    list.retain(|&i| i != new && i != old);
    list.push(old);
    if list.len() > MAX_SUPERSEDED {
        list.remove(0);
    }
}

/// Whether `incarnation` of `from` is known to have been succeeded.
pub(crate) fn is_superseded(
    superseded: &std::collections::BTreeMap<NodeId, Vec<u64>>,
    from: NodeId,
    incarnation: u64,
) -> bool {
    superseded
        .get(&from)
        .is_some_and(|old| old.contains(&incarnation))
}

/// What the local user asks a broadcast member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BroadcastCommand<T> {
    /// Broadcast `T` to the group (this member included).
    Publish(T),
}

/// One message delivered to this member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Delivery<T> {
    /// The member that published it.
    pub from: NodeId,
    /// Its number among `from`'s publications (1, 2, ...).
    pub seq: u64,
    /// Its position among this member's deliveries (1, 2, ...): with total order, the same on
    /// every member.
    pub order: u64,
    /// The payload.
    pub payload: T,
}

/// What a broadcast member tells its local user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BroadcastEvent<T> {
    /// This member published its `seq`-th message (emitted before the message is delivered
    /// anywhere).
    Published {
        /// Its number among this member's publications.
        seq: u64,
    },
    /// A message is delivered, in the group's order.
    Delivered(Delivery<T>),
    /// A message from `from` was refused and dropped; nothing changed.
    Rejected {
        /// The peer that sent it.
        from: NodeId,
        /// Why.
        reason: Rejection,
    },
    /// Broadcasts `first..below` of `origin` will never be delivered by `member`: it refused
    /// them or lost them in flight, and `origin` no longer keeps them to send again (causal
    /// broadcast, [`CausalConfig::resend_log`]). Reported on both sides; what depends on them
    /// stays held back at `member`.
    Unrecoverable {
        /// The member that broadcast them.
        origin: NodeId,
        /// The member that lacks them.
        member: NodeId,
        /// The first one lacking.
        first: u64,
        /// One past the last one lacking.
        below: u64,
    },
}

/// Why a broadcast message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The sender (or the origin it names) is not a member of the group.
    #[error("node {0} is not a member")]
    NotAMember(NodeId),
    /// A message forwarded by someone other than its origin, while relaying is off.
    #[error("relayed message from origin {origin}, but relaying is off")]
    NotOrigin {
        /// The origin it names.
        origin: NodeId,
    },
    /// The message is malformed.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// The hold-back buffer is full.
    #[error("hold-back buffer full ({held} messages)")]
    BufferFull {
        /// Messages already held.
        held: usize,
    },
    /// Stamped before something already delivered or heard from that peer (a restarted peer,
    /// or a reordering link): delivering it would break the order.
    #[error("message stamped {time} arrived after later ones")]
    Late {
        /// Its stamp.
        time: u64,
    },
    /// An earlier broadcast of this origin was refused, so this one would follow a gap in the
    /// origin's order (and in its numbering): from then on the origin's broadcasts are refused
    /// by this member (total order).
    #[error("an earlier broadcast of node {origin} was refused: its later ones are too")]
    Cut {
        /// The origin.
        origin: NodeId,
    },
    /// A broadcast numbered past the next one expected from its origin: one was lost before
    /// it reached this member (e.g. sent before the member was registered on its node).
    /// Delivering it would skip that one, so the origin's stream is cut (total order).
    #[error("broadcast {got} of node {origin} arrived where {expected} was expected")]
    Gap {
        /// The origin.
        origin: NodeId,
        /// The number expected next.
        expected: u64,
        /// The number it carries.
        got: u64,
    },
    /// A timestamp implausibly far ahead of the local clock.
    #[error("timestamp {time} is implausibly far ahead of the local clock {local}")]
    AbsurdClock {
        /// Its stamp.
        time: u64,
        /// The local clock.
        local: u64,
    },
}
