//! Sans-IO protocol cores: the [`Protocol`] trait and its [`Effects`] buffer.
//!
//! Every coordination algorithm of this crate (the locks of [`crate::mutex`], the bully election
//! of [`crate::election`]) is a plain struct that takes inputs and writes effects. It has **no
//! networking code, no actix or tokio, and reads no clock or entropy**: no `Instant::now()`,
//! `SystemTime::now()` or `thread_rng()` anywhere in a core. Time comes in as the `now`
//! argument, randomness (where a core wants it) as a seeded [`SplitMix64`]. The same machine is
//! therefore driven, unchanged, by a generic actor shell in production, by unit tests, by the
//! stateright model checks of `middleware/tests/`, and by seeded simulation.
//!
//! # Time
//! `now` is a [`Duration`] since an arbitrary epoch chosen by the driver (a shell typically uses
//! the time elapsed since it started the machine; a simulation uses its virtual time). Cores only
//! compare and add such values; they never relate them to wall-clock time. Timers are data: a core
//! asks for one with [`Effect::SetTimer`] (`after` a delay from `now`) and is told with
//! [`Protocol::on_timer`]. Setting a timer that is already armed re-arms it; a timer that fires
//! after it stopped mattering is ignored by the core (a spurious timeout is a no-op).
//!
//! # Driving a core
//! The driver owns the transport, the timers and the membership view, and loops:
//!
//! ```
//! use actix_coord_proto::mutex::{LockCommand, LockEvent, RicartAgrawala};
//! use actix_coord_proto::protocol::{Effect, Effects, EffectsOf, Protocol};
//! use std::time::Duration;
//!
//! let now = Duration::ZERO;
//! let mut nodes = [
//!     RicartAgrawala::new(1, [1, 2]).unwrap(),
//!     RicartAgrawala::new(2, [1, 2]).unwrap(),
//! ];
//! // The driver's loop: carry every message to its destination, collect the events.
//! fn deliver(nodes: &mut [RicartAgrawala; 2], from: u32, out: EffectsOf<RicartAgrawala>) -> Vec<LockEvent> {
//!     let mut events = Vec::new();
//!     let mut queue: Vec<(u32, _)> = out.into_iter().map(|e| (from, e)).collect();
//!     while let Some((from, effect)) = queue.pop() {
//!         match effect {
//!             Effect::Send { msg, .. } | Effect::Broadcast(msg) => {
//!                 let to = 3 - from; // the other node
//!                 let mut next = Effects::new();
//!                 nodes[to as usize - 1].on_message(Duration::ZERO, from, msg, &mut next);
//!                 queue.extend(next.into_iter().map(|e| (to, e)));
//!             }
//!             Effect::Emit(ev) => events.push(ev),
//!             Effect::SetTimer { .. } | Effect::CancelTimer(_) => {} // no losses here
//!         }
//!     }
//!     events
//! }
//! // Each member first catches up with the other (`Hello`, `State`).
//! for id in [1, 2] {
//!     let mut out = Effects::new();
//!     nodes[id as usize - 1].on_start(now, &mut out);
//!     deliver(&mut nodes, id, out);
//! }
//! let mut out = Effects::new();
//! nodes[0].on_command(now, LockCommand::Acquire, &mut out).unwrap();
//! let events = deliver(&mut nodes, 1, out);
//! assert!(matches!(events.first(), Some(LockEvent::Granted { .. })));
//! ```
//!
//! A generic shell matches [`Effect`] exhaustively: `Send` goes to one peer, `Broadcast` to every
//! other configured member (the shell may skip members it knows to be down), `SetTimer` /
//! `CancelTimer` arm and disarm one deadline per timer value, and `Emit` reaches the local user.

mod membership;
pub use membership::Membership;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;

/// A cluster member's id: one node, and the `node` part of its processes'
/// [`ProcessId`](crate::clock::ProcessId)s. The one id type of both crates.
pub type NodeId = u32;

/// One output of a core.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect<M, T, E> {
    /// Send `msg` to the member `to`.
    Send {
        /// Destination member.
        to: NodeId,
        /// The message.
        msg: M,
    },
    /// Send `msg` to every other configured member.
    Broadcast(M),
    /// Arm `timer` to fire `after` from the `now` of the call that produced this effect
    /// (re-arming it if already armed).
    SetTimer {
        /// Which timer.
        timer: T,
        /// Delay from `now`.
        after: Duration,
    },
    /// Disarm `timer` if armed.
    CancelTimer(T),
    /// Tell the local user something happened.
    Emit(E),
}

/// An ordered buffer of [`Effect`]s, filled by a core and drained by its driver.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Effects<M, T, E> {
    items: Vec<Effect<M, T, E>>,
}

impl<M, T, E> Default for Effects<M, T, E> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<M, T, E> Effects<M, T, E> {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue a message to one member.
    pub fn send(&mut self, to: NodeId, msg: M) {
        self.items.push(Effect::Send { to, msg });
    }

    /// Queue a message to every other member.
    pub fn broadcast(&mut self, msg: M) {
        self.items.push(Effect::Broadcast(msg));
    }

    /// Arm (or re-arm) a timer.
    pub fn set_timer(&mut self, timer: T, after: Duration) {
        self.items.push(Effect::SetTimer { timer, after });
    }

    /// Disarm a timer.
    pub fn cancel_timer(&mut self, timer: T) {
        self.items.push(Effect::CancelTimer(timer));
    }

    /// Tell the local user.
    pub fn emit(&mut self, event: E) {
        self.items.push(Effect::Emit(event));
    }

    /// Remove and yield every queued effect, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Effect<M, T, E>> {
        self.items.drain(..)
    }

    /// The queued effects, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Effect<M, T, E>> {
        self.items.iter()
    }

    /// The queued events ([`Effect::Emit`]), in order.
    pub fn events(&self) -> impl Iterator<Item = &E> {
        self.items.iter().filter_map(|e| match e {
            Effect::Emit(ev) => Some(ev),
            _ => None,
        })
    }

    /// How many effects are queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drop every queued effect.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

impl<M, T, E> IntoIterator for Effects<M, T, E> {
    type Item = Effect<M, T, E>;
    type IntoIter = std::vec::IntoIter<Effect<M, T, E>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// The effects buffer of protocol `P`.
pub type EffectsOf<P> =
    Effects<<P as Protocol>::Msg, <P as Protocol>::Timer, <P as Protocol>::Event>;

/// A timer type for cores that set no timers (no value exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoTimer {}

/// A sans-IO protocol core: inputs in, [`Effects`] out.
///
/// Every input takes `now` (see the [module docs](self) on time). Malformed or stale input from
/// the network produces no effects; it never panics and never returns an error, since the
/// sender, not the local user, is at fault.
pub trait Protocol {
    /// What peers exchange. The shell encodes it with serde.
    type Msg: Serialize + DeserializeOwned + Clone + Debug;
    /// What the local user is told.
    type Event: Clone + Debug;
    /// The timers the core may arm; one deadline per value.
    type Timer: Clone + Debug + Eq;
    /// What the local user asks (acquire, release, resign, ...).
    type Command: Clone + Debug;
    /// Why a command was refused (a local usage error, nothing changed).
    type Error: std::error::Error;

    /// This member's id.
    fn id(&self) -> NodeId;

    /// Called once when the driver starts the machine; returns its first effects.
    fn on_start(&mut self, now: Duration, out: &mut EffectsOf<Self>) {
        let _ = (now, out);
    }

    /// A command from the local user.
    ///
    /// # Errors
    /// A command that makes no sense in the current state is refused and changes nothing.
    fn on_command(
        &mut self,
        now: Duration,
        cmd: Self::Command,
        out: &mut EffectsOf<Self>,
    ) -> Result<(), Self::Error>;

    /// A message from peer `from` (the transport authenticates `from`).
    fn on_message(
        &mut self,
        now: Duration,
        from: NodeId,
        msg: Self::Msg,
        out: &mut EffectsOf<Self>,
    );

    /// An armed timer fired.
    fn on_timer(&mut self, now: Duration, timer: Self::Timer, out: &mut EffectsOf<Self>);

    /// The failure detector declares `peer` down (it may be wrong: see each core's caveats).
    fn on_peer_down(&mut self, now: Duration, peer: NodeId, out: &mut EffectsOf<Self>);

    /// The failure detector sees `peer` (back) up, possibly with fresh state.
    fn on_peer_up(&mut self, now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        let _ = (now, peer, out);
    }
}

/// A small seeded pseudo-random source (SplitMix64) for cores that want jitter.
///
/// Deterministic for a given seed, `Clone + Eq + Hash` so it is part of a model-checked state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A source from its seed.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration drawn in `[0, max]`, at nanosecond resolution (with a negligible modulo bias).
    pub fn duration_up_to(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % nanos.saturating_add(1).max(1))
    }
}

/// Why a core refuses its configuration (its membership or its settings): the one
/// configuration error of every core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The member's own id is not in the membership list.
    #[error("node {0} is not in the membership")]
    NotAMember(NodeId),
    /// An id appears twice in the membership list.
    #[error("node {0} appears twice in the membership")]
    Duplicate(NodeId),
    /// A timeout or period is zero.
    #[error("{0} must be positive")]
    ZeroDuration(&'static str),
    /// Two settings contradict each other.
    #[error("inconsistent configuration: {0}")]
    Inconsistent(&'static str),
    /// A setting is outside the values it accepts (or, for a float, NaN or infinite).
    #[error("{what} = {value} is outside {range}")]
    OutOfRange {
        /// Which setting.
        what: &'static str,
        /// The value given, as written by `Display`.
        value: String,
        /// The values accepted.
        range: &'static str,
    },
}

/// A core's peer message as it crosses the network, under a fixed wire tag: a shell's
/// envelope of it is a remote message, and drivers of the core accept it from other nodes.
///
/// The tag is the same on every node and different for every protocol; a new encoding of the
/// message takes a new version suffix (`….v2`), so that nodes of two versions refuse each
/// other's frames instead of misreading them.
pub trait PeerWire: Serialize + DeserializeOwned + Send + 'static {
    /// The wire tag, e.g. `actix_coord.bully.v1`.
    const TAG: &'static str;
}

/// Crash-recovery bookkeeping shared by the lock and broadcast cores.
///
/// A core starts **catching up**: it sends `Hello { incarnation }` to every peer and takes no
/// part in the algorithm (it answers requests as an idle member, but makes none, grants itself
/// nothing and passes no token) until every peer not declared down has answered with its state
/// (`State`): its clock (so the newcomer's requests, hence its fences, come after every request
/// it can compete with), its own outstanding request (re-sent just before), and for
/// Suzuki–Kasami the token epoch, request numbers and the incarnations it has met. A peer that
/// receives a `Hello` of an incarnation it has not met treats the sender as a **new member**:
/// the old incarnation's requests are dropped (as on a crash), and its own outstanding request
/// and state are re-sent. A `Hello` of the incarnation it already met (a retry) is only
/// answered. Cluster boot is the same exchange: every member starts catching up, and the
/// initial Suzuki–Kasami token is kept only if no peer has met an earlier incarnation of its
/// holder (see `SuzukiKasami`).
///
/// Incarnations are chosen by the shell (random per start in the lock API); they are only
/// compared for equality.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Join {
    /// This member's incarnation.
    pub inc: u64,
    /// The incarnation last met of each peer.
    pub known: BTreeMap<NodeId, u64>,
    /// While catching up: the peers whose state has not arrived.
    pub awaiting: Option<BTreeSet<NodeId>>,
}

/// A core that catches up through a [`Join`]: the retry of its `Hello`s, written once.
pub(crate) trait CatchUp: Protocol {
    /// The core's catch-up bookkeeping.
    fn join(&self) -> &Join;

    /// Sends `peer` this member's `Hello`.
    fn greet(&mut self, peer: NodeId, out: &mut EffectsOf<Self>);

    /// While catching up: greets every peer whose state has not arrived and arms `retry` to
    /// ask again after `every`. Nothing once caught up. (The cores' `on_start` and retry timer.)
    fn greet_missing(&mut self, retry: Self::Timer, every: Duration, out: &mut EffectsOf<Self>) {
        if self.join().active() {
            return;
        }
        for p in self.join().missing() {
            self.greet(p, out);
        }
        out.set_timer(retry, every);
    }
}

/// What a `Hello` means to its receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HelloKind {
    /// A retry of the incarnation already met: answer only.
    Retry,
    /// The first incarnation of that member this one meets: nothing to forget.
    First,
    /// A new incarnation after another one was met: forget the previous one (as on a crash).
    New,
}

impl Join {
    /// Catching up with `peers`.
    pub fn new(inc: u64, peers: impl IntoIterator<Item = NodeId>) -> Self {
        let peers: BTreeSet<NodeId> = peers.into_iter().collect();
        Self {
            inc,
            known: BTreeMap::new(),
            awaiting: (!peers.is_empty()).then_some(peers),
        }
    }

    /// Whether the core has caught up and takes part.
    pub fn active(&self) -> bool {
        self.awaiting.is_none()
    }

    /// Records a `Hello` of incarnation `inc` from `from`.
    pub fn hello(&mut self, from: NodeId, inc: u64) -> HelloKind {
        match self.known.insert(from, inc) {
            Some(old) if old == inc => HelloKind::Retry,
            Some(_) => HelloKind::New,
            None => HelloKind::First,
        }
    }

    /// `from`'s state arrived (or `from` is declared down): true when this completes catching up.
    pub fn answered(&mut self, from: NodeId) -> bool {
        let Some(awaiting) = self.awaiting.as_mut() else {
            return false;
        };
        awaiting.remove(&from);
        if awaiting.is_empty() {
            self.awaiting = None;
            return true;
        }
        false
    }

    /// `peer` is up again while catching up: its state is needed too.
    pub fn await_again(&mut self, peer: NodeId) -> bool {
        match self.awaiting.as_mut() {
            Some(a) => {
                a.insert(peer);
                true
            }
            None => false,
        }
    }

    /// The peers still awaited (empty when active).
    pub fn missing(&self) -> Vec<NodeId> {
        self.awaiting
            .as_ref()
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_bounded() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        for _ in 0..100 {
            assert!(a.duration_up_to(Duration::from_millis(5)) <= Duration::from_millis(5));
        }
        assert_eq!(a.duration_up_to(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn effects_keep_order_and_filter_events() {
        let mut fx: Effects<u8, NoTimer, &str> = Effects::new();
        fx.send(2, 1);
        fx.emit("a");
        fx.broadcast(3);
        fx.emit("b");
        assert_eq!(fx.len(), 4);
        assert_eq!(fx.events().copied().collect::<Vec<_>>(), vec!["a", "b"]);
        let all: Vec<_> = fx.drain().collect();
        assert_eq!(all[0], Effect::Send { to: 2, msg: 1 });
        assert!(fx.is_empty());
    }
}
