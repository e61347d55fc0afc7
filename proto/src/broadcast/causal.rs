//! Causal broadcast (Birman, Schiper & Stephenson 1991, "Lightweight causal and atomic group
//! multicast"): every member delivers every message after all the messages that causally
//! precede it.
//!
//! Sans-IO: no networking, no actix or tokio, no clock reads; `now` is unused.
//!
//! The algorithm, for member `i` of N:
//! 1. `i` keeps `delivered[k]`, how many broadcasts of member `k` it has delivered.
//! 2. To broadcast, `i` delivers the message to itself at once, then sends it to the N−1 others
//!    with the vector `deps = delivered` (so `deps[i]` is the message's own sequence number).
//! 3. Member `j` delivers a message from `i` carrying `deps` when it is the next from `i`
//!    (`deps[i] = delivered[i] + 1`) and `j` has delivered everything `i` had when it sent it
//!    (`deps[k] ≤ delivered[k]` for every `k ≠ i`); otherwise it holds the message back.
//!    Delivering may release held-back messages, which are tried again until none is ready.
//!
//! Messages per broadcast: N−1 (no acknowledgements; the channels need not be FIFO). With
//! [`CausalConfig::relay`], each member also forwards every message it receives for the first
//! time to the others: (N−1)² messages, but a message that reached any surviving member reaches
//! them all even if its sender crashed mid-broadcast (*reliable* causal broadcast).
//!
//! **Faults.** A duplicate (a sequence number already delivered or held) is dropped silently. A
//! message whose `deps` has the wrong length, or whose sender is not a member, is
//! [rejected](BroadcastEvent::Rejected). At most [`CausalConfig::max_held`] messages are held
//! back; beyond that a new arrival that is not ready is refused ([`Rejection::BufferFull`]) and
//! **asked for again**: every member keeps its last [`CausalConfig::resend_log`] broadcasts, and
//! a member that refused one sends its origin [`CausalWire::Resend`] with the first number it
//! lacks, at once and again after each delivery that follows (never twice without progress in
//! between, so a full buffer cannot make two members ping-pong). A ready message is never
//! refused, so the earliest missing one always gets through and the buffer drains. A member
//! that sees a peer up again (a broken connection healed, which may have lost messages in
//! flight) asks it the same way. What the origin's log no longer holds is answered with
//! [`CausalWire::Gone`], and both sides report it ([`BroadcastEvent::Unrecoverable`]): the
//! messages that depend on it stay held. Without `relay`, a message that a crashed sender
//! sent to some members only is delivered by those alone, and messages that depend on it are
//! held back by the others until a peer-down notice lets them go: on
//! [`on_peer_down`](Protocol::on_peer_down) of `k`, held messages waiting *only* for `k`'s
//! missing broadcasts are not released (that would break causality); they stay held and are
//! counted by [`CausalBroadcast::held`] so the loss is visible.
//!
//! **Restart.** A member starts *catching up* (at the cluster's boot as after a restart: the
//! two are told apart by the answers, not by a person): it sends [`CausalWire::Hello`] with its
//! incarnation to every peer, keeps its publications waiting (at most `max_held`, then
//! [`BroadcastError::Backlog`]), and takes part once every peer not declared down has answered
//! ([`CausalWire::State`]; a peer's own `Hello` counts as its answer). It then
//! - numbers its broadcasts after the highest number of its earlier incarnations that any peer
//!   that answered delivered or holds ([`CausalBroadcast::floor`]), so none is dropped as a
//!   duplicate, and tells the peers ([`CausalWire::Floor`]): what they lack below it was lost in
//!   the crash, is reported ([`BroadcastEvent::Unrecoverable`]) and no longer waited for;
//! - takes as delivered what every peer that had caught up already delivered (its start: a new
//!   member does not get the group's history), and asks each origin for the rest.
//!
//! A peer that meets a new incarnation drops the broadcasts of the one before still in flight
//! ([`CausalMsg::incarnation`]): what it accepted of them before answering is counted in the
//! newcomer's floor. Not covered: a member partitioned away during the whole catching-up that
//! took broadcasts of the earlier incarnation under numbers the new one uses again; it reports
//! the new ones it will not deliver (`Unrecoverable`) when it sees the newcomer's floor.

use super::{
    BroadcastCommand, BroadcastError, BroadcastEvent, BroadcastTimer, Delivery, JOIN_RETRY,
    Rejection,
};
use crate::protocol::CatchUp as _;
use crate::protocol::{
    ConfigError, EffectsOf, HelloKind, Join, Membership, NodeId, PeerWire, Protocol,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::time::Duration;

/// Settings of a [`CausalBroadcast`] member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CausalConfig {
    /// Forward every message received for the first time to the other members (reliable
    /// broadcast, (N−1)² messages per broadcast). Default off.
    pub relay: bool,
    /// Most messages held back at once (default 65 536).
    pub max_held: usize,
    /// How many of its own latest broadcasts a member keeps to send again to a member that
    /// refused them or lost them in flight (default 1 024; 0 keeps none: a refused message is
    /// then lost for good, and reported).
    pub resend_log: usize,
}

impl Default for CausalConfig {
    fn default() -> Self {
        Self {
            relay: false,
            max_held: 65_536,
            resend_log: 1_024,
        }
    }
}

/// Most broadcasts sent again for one [`CausalWire::Resend`]; the asker asks again for the rest
/// once it has made progress.
pub const MAX_RESEND_BATCH: usize = 256;

/// The message of [`CausalBroadcast`]: one broadcast.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CausalMsg<T> {
    /// The member that broadcast it (not always the one that sent it, with relaying).
    pub origin: NodeId,
    /// The origin's incarnation when it broadcast it: a broadcast of an incarnation its
    /// receiver knows was succeeded by another arrives too late, and is dropped.
    pub incarnation: u64,
    /// The origin's delivered-count vector when it broadcast, in member order (sorted ids);
    /// the origin's own entry is this message's sequence number.
    pub deps: Vec<u64>,
    /// The application's payload.
    pub payload: T,
}

/// What members of a [`CausalBroadcast`] group send each other.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CausalWire<T> {
    /// A broadcast, from its origin or relayed.
    Data(CausalMsg<T>),
    /// "Send me your broadcasts again from number `from` on": the sender refused one of them
    /// (its hold-back buffer was full) or may have lost some in flight.
    Resend {
        /// The first of the receiver's broadcasts the sender lacks.
        from: u64,
    },
    /// The answer to a [`Resend`](Self::Resend) that reaches below the log: the sender's
    /// broadcasts before `oldest` are gone.
    Gone {
        /// The oldest broadcast the sender still keeps (one past its last when it keeps none).
        oldest: u64,
    },
    /// A member catching up (it has just started: a new incarnation, or the cluster's boot)
    /// asks the receiver what it knows.
    Hello {
        /// The sender's incarnation (drawn anew at every start).
        incarnation: u64,
        /// What the sender knows (it is catching up: `active` is false).
        view: CausalView,
    },
    /// The answer to a [`Hello`](Self::Hello).
    State(CausalView),
    /// "My broadcasts numbered below `first` belong to an earlier incarnation of mine, and are
    /// gone": sent by a restarted member once it has caught up, and again to each member it
    /// sees up. The receiver stops waiting for them ([`BroadcastEvent::Unrecoverable`] tells
    /// which it never got).
    Floor {
        /// This incarnation's first broadcast.
        first: u64,
    },
}

impl<T: super::Payload> PeerWire for CausalWire<T> {
    const TAG: &'static str = "actix_coord.causal_broadcast.v3";
}

/// What a member tells one that is catching up ([`CausalWire::Hello`], [`CausalWire::State`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CausalView {
    /// Whether the sender has caught up itself; only such a view's `delivered` is adopted.
    pub active: bool,
    /// The sender's delivered-count vector, in member order.
    pub delivered: Vec<u64>,
    /// The highest number of the receiver's broadcasts (of any of its incarnations) the
    /// sender has delivered or holds.
    pub yours: u64,
}

/// Broadcasts of one origin a member refused and must get again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Missing {
    /// The highest number refused.
    upto: u64,
    /// This member's delivery count when it last asked (it asks again only after progress).
    asked_at: Option<u64>,
    /// The origin answered that it no longer keeps them: asking again is useless.
    gone: bool,
}

/// One member of a causal broadcast group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CausalBroadcast<T> {
    group: Membership,
    config: CausalConfig,
    delivered: Vec<u64>,
    /// Held back: (origin, sequence number) → message.
    held: BTreeMap<(NodeId, u64), CausalMsg<T>>,
    /// This member's latest broadcasts, oldest first, at most `config.resend_log`.
    log: VecDeque<CausalMsg<T>>,
    /// Per origin index: what this member refused and still lacks.
    missing: BTreeMap<usize, Missing>,
    /// Catching up: the incarnation, the peers met, the answers awaited.
    join: Join,
    /// While catching up: the views received.
    answers: BTreeMap<NodeId, CausalView>,
    /// While catching up: the publications waiting for it to end, at most `max_held`.
    pending: VecDeque<T>,
    /// The number of this member's broadcasts that belong to its earlier incarnations (0 at
    /// the cluster's boot): its own numbering goes on from there.
    floor: u64,
    /// Per origin index: the floor of its current incarnation, once applied.
    floors: BTreeMap<usize, u64>,
    /// Per member: its incarnations known to have been succeeded, latest last (at most
    /// [`MAX_SUPERSEDED`]): their broadcasts still in flight are dropped.
    superseded: BTreeMap<NodeId, Vec<u64>>,
}

/// How many succeeded incarnations of each member a broadcast member (causal or total order)
/// remembers, to drop their broadcasts still in flight.
pub const MAX_SUPERSEDED: usize = 16;

impl<T: Clone + Debug + Serialize + serde::de::DeserializeOwned> CausalBroadcast<T> {
    /// Member `me` of the group `members` (which must contain `me`, without duplicates).
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid membership or a zero `max_held`.
    pub fn new(
        me: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        config: CausalConfig,
    ) -> Result<Self, ConfigError> {
        let group = Membership::new(me, members)?;
        if config.max_held == 0 {
            return Err(ConfigError::Inconsistent("max_held must be positive"));
        }
        let peers: Vec<NodeId> = group.peers().collect();
        Ok(Self {
            delivered: vec![0; group.len()],
            group,
            config,
            held: BTreeMap::new(),
            log: VecDeque::new(),
            missing: BTreeMap::new(),
            join: Join::new(0, peers),
            answers: BTreeMap::new(),
            pending: VecDeque::new(),
            floor: 0,
            floors: BTreeMap::new(),
            superseded: BTreeMap::new(),
        })
    }

    /// This member's incarnation (a value the shell draws anew at every start; the default is
    /// 0): peers that met another incarnation of it take this one as a new member.
    pub fn with_incarnation(mut self, incarnation: u64) -> Self {
        self.join.inc = incarnation;
        self
    }

    /// Whether this member has caught up with its peers (see the [module docs](self)); until
    /// then its publications wait.
    pub fn is_active(&self) -> bool {
        self.join.active()
    }

    /// How many of this member's broadcast numbers its earlier incarnations used (0 after the
    /// cluster's boot): its first broadcast is numbered one more.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// How many broadcasts of each member (in member order) this member has delivered: its
    /// vector clock of the group's broadcasts.
    pub fn delivered(&self) -> &[u64] {
        &self.delivered
    }

    /// The members, sorted.
    pub fn members(&self) -> &[NodeId] {
        self.group.members()
    }

    /// How many messages are held back, waiting for one they depend on.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn ix(&self, id: NodeId) -> Option<usize> {
        self.group.ix(id)
    }

    /// How many broadcasts of other members this member lacks after refusing some: per origin
    /// it asked, from the first it has not delivered to the last it refused (held ones
    /// included). 0 once all arrived.
    pub fn missing(&self) -> u64 {
        self.missing
            .iter()
            .map(|(&o, m)| m.upto.saturating_sub(self.delivered[o]))
            .sum()
    }

    fn send_to_others(&self, except: NodeId, msg: &CausalMsg<T>, out: &mut EffectsOf<Self>) {
        for &p in self.group.members() {
            if p != self.group.me() && p != except {
                out.send(p, CausalWire::Data(msg.clone()));
            }
        }
    }

    /// Asks the origin of index `o` for what this member lacks of its broadcasts, unless it
    /// asked already and nothing was delivered since.
    fn ask(&mut self, o: usize, out: &mut EffectsOf<Self>) {
        let progress: u64 = self.delivered.iter().sum();
        let Some(m) = self.missing.get_mut(&o) else {
            return;
        };
        if m.gone || m.asked_at == Some(progress) {
            return;
        }
        m.asked_at = Some(progress);
        out.send(
            self.group.members()[o],
            CausalWire::Resend {
                from: self.delivered[o] + 1,
            },
        );
    }

    /// After deliveries: forgets what arrived, asks again for what is still missing.
    fn retry(&mut self, out: &mut EffectsOf<Self>) {
        let delivered = &self.delivered;
        self.missing.retain(|&o, m| delivered[o] < m.upto);
        let origins: Vec<usize> = self.missing.keys().copied().collect();
        for o in origins {
            self.ask(o, out);
        }
    }

    /// Refuses `msg` from origin index `o` (the buffer is full) and asks for it again.
    fn refuse_full(&mut self, from: NodeId, o: usize, seq: u64, out: &mut EffectsOf<Self>) {
        out.emit(BroadcastEvent::Rejected {
            from,
            reason: Rejection::BufferFull {
                held: self.held.len(),
            },
        });
        let m = self.missing.entry(o).or_insert(Missing {
            upto: seq,
            asked_at: None,
            gone: false,
        });
        m.upto = m.upto.max(seq);
        self.ask(o, out);
    }

    /// A member asks for this member's broadcasts from number `from` on.
    fn resend(&mut self, to: NodeId, from: u64, out: &mut EffectsOf<Self>) {
        let Some(me) = self.ix(self.group.me()) else {
            return;
        };
        let last = self.delivered[me];
        let from = from.max(1);
        if from > last {
            return; // it lacks nothing of ours
        }
        let oldest = self.log.front().map_or(last + 1, |m| m.deps[me]);
        if from < oldest {
            out.emit(BroadcastEvent::Unrecoverable {
                origin: self.group.me(),
                member: to,
                first: from,
                below: oldest,
            });
            out.send(to, CausalWire::Gone { oldest });
        }
        for m in self
            .log
            .iter()
            .filter(|m| m.deps[me] >= from)
            .take(MAX_RESEND_BATCH)
        {
            out.send(to, CausalWire::Data(m.clone()));
        }
    }

    /// What this member tells `peer`, which is catching up.
    fn view_for(&self, peer: NodeId) -> CausalView {
        let yours = self.ix(peer).map_or(0, |p| {
            let held = self
                .held
                .range((peer, 0)..=(peer, u64::MAX))
                .next_back()
                .map_or(0, |(&(_, seq), _)| seq);
            self.delivered[p].max(held)
        });
        CausalView {
            active: self.join.active(),
            delivered: self.delivered.clone(),
            yours,
        }
    }

    fn hello(&self, peer: NodeId, out: &mut EffectsOf<Self>) {
        out.send(
            peer,
            CausalWire::Hello {
                incarnation: self.join.inc,
                view: self.view_for(peer),
            },
        );
    }

    /// `from`'s view, while catching up.
    fn answer(&mut self, from: NodeId, view: CausalView, out: &mut EffectsOf<Self>) {
        if self.join.active() || !self.join.missing().contains(&from) {
            return;
        }
        if view.delivered.len() != self.group.members().len() {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::Malformed("view of the wrong length"),
            });
            return;
        }
        self.answers.insert(from, view);
        if self.join.answered(from) {
            self.activate(out);
        }
    }

    /// Caught up: adopts what the answers tell, announces the floor, fetches what is missing,
    /// sends what was published meanwhile.
    fn activate(&mut self, out: &mut EffectsOf<Self>) {
        out.cancel_timer(BroadcastTimer::JoinRetry);
        let answers = std::mem::take(&mut self.answers);
        let Some(me) = self.ix(self.group.me()) else {
            return;
        };
        // Own numbering goes on after every number an earlier incarnation used that anyone
        // delivered or holds.
        let used = answers.values().map(|v| v.yours).max().unwrap_or(0);
        self.delivered[me] = self.delivered[me].max(used);
        self.floor = self.delivered[me];
        // Of the others, what every member that has caught up already delivered: the rest is
        // asked for again. At the cluster's boot nobody has caught up, and nothing is adopted.
        let active: Vec<&CausalView> = answers.values().filter(|v| v.active).collect();
        if !active.is_empty() {
            for k in (0..self.group.members().len()).filter(|&k| k != me) {
                let common = active.iter().map(|v| v.delivered[k]).min().unwrap_or(0);
                self.delivered[k] = self.delivered[k].max(common);
            }
            let delivered = &self.delivered;
            let members = self.group.members();
            self.held.retain(|&(origin, seq), _| {
                members
                    .binary_search(&origin)
                    .is_ok_and(|o| seq > delivered[o])
            });
        }
        for k in 0..self.group.members().len() {
            let p = self.group.members()[k];
            if p == self.group.me() {
                continue;
            }
            if self.floor > 0 {
                out.send(
                    p,
                    CausalWire::Floor {
                        first: self.floor + 1,
                    },
                );
            }
            if !active.is_empty() {
                out.send(
                    p,
                    CausalWire::Resend {
                        from: self.delivered[k] + 1,
                    },
                );
            }
        }
        self.drain(out);
        while let Some(payload) = self.pending.pop_front() {
            self.publish(payload, out);
        }
    }

    /// `origin` (index `o`) restarted: its numbers below `first` are gone.
    fn apply_floor(&mut self, o: usize, first: u64, out: &mut EffectsOf<Self>) {
        if first == 0 || self.floors.get(&o) == Some(&first) {
            return;
        }
        self.floors.insert(o, first);
        let origin = self.group.members()[o];
        let have = self.delivered[o];
        if have + 1 < first {
            out.emit(BroadcastEvent::Unrecoverable {
                origin,
                member: self.group.me(),
                first: have + 1,
                below: first,
            });
            self.delivered[o] = first - 1;
            self.held
                .retain(|&(from, seq), _| from != origin || seq >= first);
            self.drain(out);
        } else if have >= first {
            // Partitioned away while it restarted, this member took broadcasts of its earlier
            // incarnation under numbers the new one uses again: those of the new one are
            // never delivered here.
            out.emit(BroadcastEvent::Unrecoverable {
                origin,
                member: self.group.me(),
                first,
                below: have + 1,
            });
        }
    }

    fn publish(&mut self, payload: T, out: &mut EffectsOf<Self>) {
        let Some(me) = self.ix(self.group.me()) else {
            return;
        };
        let mut deps = self.delivered.clone();
        deps[me] += 1;
        let msg = CausalMsg {
            origin: self.group.me(),
            incarnation: self.join.inc,
            deps,
            payload,
        };
        out.emit(BroadcastEvent::Published { seq: msg.deps[me] });
        self.send_to_others(self.group.me(), &msg, out);
        if self.config.resend_log > 0 {
            if self.log.len() == self.config.resend_log {
                self.log.pop_front();
            }
            self.log.push_back(msg.clone());
        }
        self.deliver(me, msg, out);
        self.drain(out);
    }

    /// Whether `msg` from member index `o` can be delivered now.
    fn ready(&self, o: usize, msg: &CausalMsg<T>) -> bool {
        msg.deps.iter().enumerate().all(|(k, &d)| {
            if k == o {
                d == self.delivered[k] + 1
            } else {
                d <= self.delivered[k]
            }
        })
    }

    fn deliver(&mut self, o: usize, msg: CausalMsg<T>, out: &mut EffectsOf<Self>) {
        self.delivered[o] += 1;
        out.emit(BroadcastEvent::Delivered(Delivery {
            from: msg.origin,
            seq: self.delivered[o],
            order: self.delivered.iter().sum(),
            payload: msg.payload,
        }));
    }

    /// Delivers every held message that has become ready, until none is.
    fn drain(&mut self, out: &mut EffectsOf<Self>) {
        loop {
            let next = self.held.iter().find_map(|(&(origin, _), m)| {
                let o = self.ix(origin)?;
                self.ready(o, m).then_some((origin, m.deps[o]))
            });
            let Some(key) = next else { break };
            if let Some(m) = self.held.remove(&key)
                && let Some(o) = self.ix(key.0)
            {
                self.deliver(o, m, out);
            }
        }
        if !self.missing.is_empty() {
            self.retry(out);
        }
    }

    fn on_data(&mut self, from: NodeId, msg: CausalMsg<T>, out: &mut EffectsOf<Self>) {
        let Some(o) = self.ix(msg.origin) else {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::NotAMember(msg.origin),
            });
            return;
        };
        if !self.config.relay && from != msg.origin {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::NotOrigin { origin: msg.origin },
            });
            return;
        }
        if msg.deps.len() != self.group.members().len() {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::Malformed("dependency vector of the wrong length"),
            });
            return;
        }
        if super::is_superseded(&self.superseded, msg.origin, msg.incarnation) {
            // From an incarnation that has since restarted: what its successor's peers
            // accepted of it before they answered its `Hello` is already counted in its floor,
            // so a late one must not be taken.
            return;
        }
        let seq = msg.deps[o];
        if msg.origin == self.group.me()
            || seq <= self.delivered[o]
            || self.held.contains_key(&(msg.origin, seq))
        {
            return; // a duplicate (or our own message relayed back)
        }
        if self.ready(o, &msg) {
            if self.config.relay {
                self.send_to_others(from, &msg, out);
            }
            self.deliver(o, msg, out);
            self.drain(out);
        } else if self.held.len() >= self.config.max_held {
            self.refuse_full(from, o, seq, out);
        } else {
            if self.config.relay {
                self.send_to_others(from, &msg, out);
            }
            self.held.insert((msg.origin, seq), msg);
        }
    }
}

impl<T: Clone + Debug + Serialize + serde::de::DeserializeOwned> crate::protocol::CatchUp
    for CausalBroadcast<T>
{
    fn join(&self) -> &Join {
        &self.join
    }
    fn greet(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.hello(peer, out);
    }
}

impl<T: Clone + Debug + Serialize + serde::de::DeserializeOwned> Protocol for CausalBroadcast<T> {
    type Msg = CausalWire<T>;
    type Event = BroadcastEvent<T>;
    type Timer = BroadcastTimer;
    type Command = BroadcastCommand<T>;
    type Error = BroadcastError;

    fn id(&self) -> NodeId {
        self.group.me()
    }

    fn on_start(&mut self, _now: Duration, out: &mut EffectsOf<Self>) {
        self.greet_missing(BroadcastTimer::JoinRetry, JOIN_RETRY, out);
    }

    fn on_command(
        &mut self,
        _now: Duration,
        cmd: BroadcastCommand<T>,
        out: &mut EffectsOf<Self>,
    ) -> Result<(), BroadcastError> {
        let BroadcastCommand::Publish(payload) = cmd;
        if !self.join.active() {
            return super::keep_waiting(&mut self.pending, self.config.max_held, payload);
        }
        self.publish(payload, out);
        Ok(())
    }

    fn on_message(
        &mut self,
        _now: Duration,
        from: NodeId,
        msg: CausalWire<T>,
        out: &mut EffectsOf<Self>,
    ) {
        let Some(f) = self.ix(from).filter(|_| from != self.group.me()) else {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::NotAMember(from),
            });
            return;
        };
        match msg {
            CausalWire::Data(m) => self.on_data(from, m, out),
            CausalWire::Resend { from: first } => self.resend(from, first, out),
            CausalWire::Hello { incarnation, view } => {
                let previous = self.join.known.get(&from).copied();
                if self.join.hello(from, incarnation) == HelloKind::New {
                    if let Some(old) = previous {
                        super::supersede(&mut self.superseded, from, old, incarnation);
                    }
                    // A new incarnation keeps none of its predecessor's broadcasts: asking it
                    // again is allowed (its answer, or its floor, settles what is missing).
                    if let Some(m) = self.missing.get_mut(&f) {
                        m.asked_at = None;
                    }
                }
                let answer = self.view_for(from);
                self.answer(from, view, out);
                out.send(from, CausalWire::State(answer));
            }
            CausalWire::State(view) => self.answer(from, view, out),
            CausalWire::Floor { first } => self.apply_floor(f, first, out),
            CausalWire::Gone { oldest } => {
                let first = self.delivered[f] + 1;
                if oldest > first {
                    out.emit(BroadcastEvent::Unrecoverable {
                        origin: from,
                        member: self.group.me(),
                        first,
                        below: oldest,
                    });
                    // Asking again would get the same answer.
                    if let Some(m) = self.missing.get_mut(&f) {
                        m.gone = true;
                    }
                }
            }
        }
    }

    fn on_timer(&mut self, now: Duration, timer: BroadcastTimer, out: &mut EffectsOf<Self>) {
        match timer {
            BroadcastTimer::JoinRetry => self.on_start(now, out),
        }
    }

    fn on_peer_down(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        // Nothing to release: a held message still depends on what it depends on. A member
        // catching up stops waiting for that peer's answer.
        if peer != self.group.me() && self.join.answered(peer) {
            self.activate(out);
        }
    }

    fn on_peer_up(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        let Some(p) = self.ix(peer).filter(|_| peer != self.group.me()) else {
            return;
        };
        if !self.join.active() {
            if self.join.await_again(peer) {
                self.hello(peer, out);
            }
            return;
        }
        // The connection may have broken with broadcasts of `peer` in flight: ask for what we
        // lack (the answer is empty when nothing is missing). It may also have missed our
        // floor.
        out.send(
            peer,
            CausalWire::Resend {
                from: self.delivered[p] + 1,
            },
        );
        if self.floor > 0 {
            out.send(
                peer,
                CausalWire::Floor {
                    first: self.floor + 1,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Effect;
    use crate::testing::Net;

    type Cb = CausalBroadcast<String>;

    /// `core`, caught up with peers that know nothing yet (the cluster's boot).
    fn booted(mut core: Cb) -> Cb {
        let n = core.members().len();
        let me = core.id();
        for p in core.members().to_vec().into_iter().filter(|&p| p != me) {
            let view = CausalView {
                active: false,
                delivered: vec![0; n],
                yours: 0,
            };
            let mut out = EffectsOf::<Cb>::new();
            core.on_message(Duration::ZERO, p, CausalWire::State(view), &mut out);
        }
        assert!(core.is_active());
        core
    }

    fn group(n: u32, relay: bool) -> Vec<Cb> {
        let ids: Vec<u32> = (1..=n).collect();
        ids.iter()
            .map(|&i| {
                booted(
                    Cb::new(
                        i,
                        ids.clone(),
                        CausalConfig {
                            relay,
                            ..CausalConfig::default()
                        },
                    )
                    .unwrap(),
                )
            })
            .collect()
    }

    type Sends = Vec<(NodeId, CausalMsg<String>)>;
    type Wires = Vec<(NodeId, CausalWire<String>)>;

    /// Every send and event of one step.
    fn split_all(mut out: EffectsOf<Cb>) -> (Wires, Vec<BroadcastEvent<String>>) {
        let (mut sends, mut events) = (Vec::new(), Vec::new());
        for e in out.drain() {
            match e {
                Effect::Send { to, msg } => sends.push((to, msg)),
                Effect::Emit(ev) => events.push(ev),
                other => panic!("unexpected {other:?}"),
            }
        }
        (sends, events)
    }

    /// The broadcasts sent and the events of one step (no control message may be sent).
    fn split(out: EffectsOf<Cb>) -> (Sends, Vec<BroadcastEvent<String>>) {
        let (sends, events) = split_all(out);
        let data = sends
            .into_iter()
            .map(|(to, w)| match w {
                CausalWire::Data(m) => (to, m),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        (data, events)
    }

    fn delivered_payloads(events: &[BroadcastEvent<String>]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                BroadcastEvent::Delivered(d) => Some(d.payload.clone()),
                _ => None,
            })
            .collect()
    }

    fn publish(node: &mut Cb, s: &str) -> Vec<(NodeId, CausalMsg<String>)> {
        let mut out = EffectsOf::<Cb>::new();
        node.on_command(
            Duration::ZERO,
            BroadcastCommand::Publish(s.into()),
            &mut out,
        )
        .unwrap();
        split(out).0
    }

    fn receive(node: &mut Cb, from: NodeId, msg: CausalMsg<String>) -> Vec<String> {
        let mut out = EffectsOf::<Cb>::new();
        node.on_message(Duration::ZERO, from, CausalWire::Data(msg), &mut out);
        delivered_payloads(&split_all(out).1)
    }

    #[test]
    fn a_reply_is_held_back_until_the_message_it_answers_is_delivered() {
        let mut g = group(3, false);
        let question = publish(&mut g[0], "question");
        // Node 2 gets the question and answers; node 3 gets the answer first.
        let to2 = question.iter().find(|s| s.0 == 2).unwrap().1.clone();
        assert_eq!(receive(&mut g[1], 1, to2), ["question"]);
        let answer = publish(&mut g[1], "answer");
        let to3 = answer.iter().find(|s| s.0 == 3).unwrap().1.clone();
        assert!(receive(&mut g[2], 2, to3).is_empty(), "held back");
        assert_eq!(g[2].held(), 1);
        let q3 = question.iter().find(|s| s.0 == 3).unwrap().1.clone();
        assert_eq!(receive(&mut g[2], 1, q3), ["question", "answer"]);
        assert_eq!(g[2].held(), 0);
        assert_eq!(g[2].delivered(), [1, 1, 0]);
    }

    #[test]
    fn one_broadcast_costs_n_minus_one_messages_or_n_minus_one_squared_with_relay() {
        for n in [3u32, 5] {
            let mut g = group(n, false);
            let sent = publish(&mut g[0], "m");
            assert_eq!(sent.len() as u32, n - 1);
            let mut g = group(n, true);
            let first = publish(&mut g[0], "m");
            let mut total = first.len();
            for (to, msg) in first {
                let mut out = EffectsOf::<Cb>::new();
                g[to as usize - 1].on_message(Duration::ZERO, 1, CausalWire::Data(msg), &mut out);
                total += split(out).0.len();
            }
            assert_eq!(total as u32, (n - 1) * (n - 1), "n = {n}");
        }
    }

    #[test]
    fn duplicates_are_dropped_and_bad_messages_rejected() {
        let mut g = group(3, false);
        let m = publish(&mut g[0], "x")[0].1.clone();
        assert_eq!(receive(&mut g[1], 1, m.clone()), ["x"]);
        assert!(receive(&mut g[1], 1, m.clone()).is_empty());
        let mut out = EffectsOf::<Cb>::new();
        let bad = CausalMsg {
            deps: vec![1],
            ..m.clone()
        };
        g[2].on_message(Duration::ZERO, 1, CausalWire::Data(bad), &mut out);
        let stranger = CausalMsg { origin: 9, ..m };
        g[2].on_message(Duration::ZERO, 9, CausalWire::Data(stranger), &mut out);
        let (_, events) = split(out);
        assert!(matches!(
            events[0],
            BroadcastEvent::Rejected {
                reason: Rejection::Malformed(_),
                ..
            }
        ));
        assert!(matches!(
            events[1],
            BroadcastEvent::Rejected {
                reason: Rejection::NotAMember(9),
                ..
            }
        ));
        assert_eq!(g[2].delivered(), [0, 0, 0]);
    }

    #[test]
    fn the_hold_back_buffer_is_bounded() {
        let ids = [1, 2];
        let mut a = booted(Cb::new(1, ids, CausalConfig::default()).unwrap());
        let mut b = booted(
            Cb::new(
                2,
                ids,
                CausalConfig {
                    max_held: 2,
                    ..CausalConfig::default()
                },
            )
            .unwrap(),
        );
        let msgs: Vec<_> = (0..4)
            .map(|i| publish(&mut a, &i.to_string())[0].1.clone())
            .collect();
        // 2, 3 are held; 4 is refused (and asked for again); 1 releases 2 and 3.
        assert!(receive(&mut b, 1, msgs[1].clone()).is_empty());
        assert!(receive(&mut b, 1, msgs[2].clone()).is_empty());
        let mut out = EffectsOf::<Cb>::new();
        b.on_message(
            Duration::ZERO,
            1,
            CausalWire::Data(msgs[3].clone()),
            &mut out,
        );
        let (sends, events) = split_all(out);
        assert!(matches!(
            events[..],
            [BroadcastEvent::Rejected {
                reason: Rejection::BufferFull { held: 2 },
                ..
            }]
        ));
        assert_eq!(sends, [(1, CausalWire::Resend { from: 1 })]);
        assert_eq!(b.missing(), 4);
        assert_eq!(receive(&mut b, 1, msgs[0].clone()), ["0", "1", "2"]);
        assert_eq!(b.missing(), 1);
        assert_eq!(receive(&mut b, 1, msgs[3].clone()), ["3"]);
        assert_eq!(b.missing(), 0);
    }

    /// Two members, the second holding at most `max_held`; the first keeps `log` broadcasts.
    fn pair(max_held: usize, log: usize) -> (Cb, Cb) {
        let cfg = |max_held, resend_log| CausalConfig {
            max_held,
            resend_log,
            ..CausalConfig::default()
        };
        (
            booted(Cb::new(1, [1, 2], cfg(65_536, log)).unwrap()),
            booted(Cb::new(2, [1, 2], cfg(max_held, 1_024)).unwrap()),
        )
    }

    /// Delivers `msgs` from `from` to `to`, and whatever they answer, until nothing is in
    /// flight; returns `to`'s deliveries and both sides' other events.
    fn exchange(
        a: &mut Cb,
        b: &mut Cb,
        first: Vec<(NodeId, NodeId, CausalWire<String>)>,
    ) -> (Vec<String>, Vec<BroadcastEvent<String>>, usize) {
        let mut queue: VecDeque<_> = first.into();
        let (mut got, mut other, mut resends) = (Vec::new(), Vec::new(), 0);
        while let Some((from, to, msg)) = queue.pop_front() {
            resends += usize::from(matches!(msg, CausalWire::Resend { .. }));
            let node = if to == 1 { &mut *a } else { &mut *b };
            let mut out = EffectsOf::<Cb>::new();
            node.on_message(Duration::ZERO, from, msg, &mut out);
            let (sends, events) = split_all(out);
            if to == 2 {
                got.extend(delivered_payloads(&events));
            }
            other.extend(
                events
                    .into_iter()
                    .filter(|e| !matches!(e, BroadcastEvent::Delivered(_))),
            );
            queue.extend(sends.into_iter().map(|(dst, m)| (to, dst, m)));
        }
        (got, other, resends)
    }

    #[test]
    fn a_broadcast_refused_for_a_full_buffer_is_sent_again() {
        // Issue 11, Why 7: before, a refused broadcast was never sent again and everything
        // after it waited for ever.
        let (mut a, mut b) = pair(2, 1_024);
        let msgs: Vec<_> = (0..6)
            .map(|i| publish(&mut a, &i.to_string())[0].1.clone())
            .collect();
        // The first one is late: 2..=3 are held, 4..=6 refused.
        let late: Vec<_> = msgs[1..]
            .iter()
            .map(|m| (1, 2, CausalWire::Data(m.clone())))
            .chain([(1, 2, CausalWire::Data(msgs[0].clone()))])
            .collect();
        let (got, events, resends) = exchange(&mut a, &mut b, late);
        assert_eq!(got, ["0", "1", "2", "3", "4", "5"]);
        assert_eq!(b.delivered(), [6, 0]);
        assert_eq!((b.held(), b.missing()), (0, 0));
        assert!(
            events.iter().all(|e| matches!(
                e,
                BroadcastEvent::Rejected {
                    reason: Rejection::BufferFull { .. },
                    ..
                }
            )),
            "{events:?}"
        );
        assert!(resends <= 6, "at most one ask per delivery, {resends}");
    }

    #[test]
    fn refusals_without_progress_ask_once() {
        let (mut a, mut b) = pair(1, 1_024);
        let msgs: Vec<_> = (0..5)
            .map(|i| publish(&mut a, &i.to_string())[0].1.clone())
            .collect();
        let mut asks = 0;
        for m in &msgs[1..] {
            let mut out = EffectsOf::<Cb>::new();
            b.on_message(Duration::ZERO, 1, CausalWire::Data(m.clone()), &mut out);
            asks += split_all(out)
                .0
                .iter()
                .filter(|(_, w)| matches!(w, CausalWire::Resend { .. }))
                .count();
        }
        assert_eq!(asks, 1, "three refusals, nothing delivered in between");
    }

    #[test]
    fn what_the_log_no_longer_keeps_is_reported_on_both_sides() {
        let (mut a, mut b) = pair(1, 2);
        let msgs: Vec<_> = (0..5)
            .map(|i| publish(&mut a, &i.to_string())[0].1.clone())
            .collect();
        // 2 held, 3 refused: the log keeps only 4 and 5.
        let first = vec![
            (1, 2, CausalWire::Data(msgs[1].clone())),
            (1, 2, CausalWire::Data(msgs[2].clone())),
        ];
        let (got, events, _) = exchange(&mut a, &mut b, first);
        assert!(got.is_empty());
        let lost: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                BroadcastEvent::Unrecoverable {
                    origin,
                    member,
                    first,
                    below,
                } => Some((*origin, *member, *first, *below)),
                _ => None,
            })
            .collect();
        assert_eq!(
            lost,
            [(1, 2, 1, 4), (1, 2, 1, 4)],
            "origin and member both report"
        );
        assert_eq!(b.missing(), 5, "1..=5 lacking, never to come");
    }

    #[test]
    fn a_peer_seen_up_again_is_asked_for_what_was_lost_in_flight() {
        let (mut a, mut b) = pair(65_536, 1_024);
        let msgs: Vec<_> = (0..3)
            .map(|i| publish(&mut a, &i.to_string())[0].1.clone())
            .collect();
        assert_eq!(receive(&mut b, 1, msgs[0].clone()), ["0"]);
        // The connection broke with 2 and 3 in flight; it is back.
        let mut out = EffectsOf::<Cb>::new();
        b.on_peer_up(Duration::ZERO, 1, &mut out);
        let (sends, _) = split_all(out);
        assert_eq!(sends, [(1, CausalWire::Resend { from: 2 })]);
        let first = vec![(2, 1, CausalWire::Resend { from: 2 })];
        let (got, events, _) = exchange(&mut a, &mut b, first);
        assert_eq!(got, ["1", "2"]);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn with_relay_a_message_from_a_crashed_origin_still_reaches_everyone() {
        let mut g = group(3, true);
        let sent = publish(&mut g[0], "last words");
        // Node 1 crashes after reaching node 2 only; node 2 relays to node 3.
        let to2 = sent.iter().find(|s| s.0 == 2).unwrap().1.clone();
        let mut out = EffectsOf::<Cb>::new();
        g[1].on_message(Duration::ZERO, 1, CausalWire::Data(to2), &mut out);
        let (relayed, _) = split(out);
        assert_eq!(relayed.len(), 1);
        assert_eq!(relayed[0].0, 3);
        assert_eq!(receive(&mut g[2], 2, relayed[0].1.clone()), ["last words"]);
    }

    /// A started three-member group on the generic test network.
    fn net(n: u32) -> Net<Cb> {
        Net::new(
            (1..=n)
                .map(|i| Cb::new(i, 1..=n, CausalConfig::default()).unwrap())
                .collect(),
        )
    }

    fn publish_in(net: &mut Net<Cb>, id: NodeId, s: &str) {
        net.command(id, BroadcastCommand::Publish(s.into()))
            .unwrap();
    }

    /// Node `id` restarts with fresh state (a new incarnation): its peers saw it down, then
    /// see it up again.
    fn restart(net: &mut Net<Cb>, id: NodeId, n: u32) {
        net.crash(id);
        net.run();
        net.down.retain(|&d| d != id);
        net.nodes[id as usize - 1] = Cb::new(id, 1..=n, CausalConfig::default())
            .unwrap()
            .with_incarnation(u64::from(id) + 100);
        net.start(id);
        for p in (1..=n).filter(|&p| p != id) {
            let mut out = EffectsOf::<Cb>::new();
            net.nodes[p as usize - 1].on_peer_up(Duration::ZERO, id, &mut out);
            net.absorb(p, out);
        }
        net.run();
    }

    fn deliveries(events: &[(NodeId, BroadcastEvent<String>)], at: NodeId) -> Vec<(NodeId, u64)> {
        events
            .iter()
            .filter_map(|(n, e)| match e {
                BroadcastEvent::Delivered(d) if *n == at => Some((d.from, d.seq)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_restarted_member_numbers_its_broadcasts_after_its_earlier_incarnation() {
        // Issue 11: before, a restarted member numbered from 1 again and its peers dropped
        // everything it sent as duplicates.
        let mut net = net(3);
        for m in ["a", "b", "c"] {
            publish_in(&mut net, 1, m);
        }
        net.run();
        publish_in(&mut net, 2, "d");
        net.run();
        net.take_events();
        restart(&mut net, 1, 3);
        assert!(net.nodes[0].is_active());
        assert_eq!(net.nodes[0].floor(), 3);
        // It adopted what everyone had delivered: nothing old is delivered again.
        assert_eq!(net.nodes[0].delivered(), [3, 1, 0]);
        publish_in(&mut net, 1, "after");
        net.run();
        let events = net.take_events();
        for at in [2, 3] {
            assert_eq!(deliveries(&events, at), [(1, 4)], "at {at}");
        }
        assert!(
            !events
                .iter()
                .any(|(_, e)| matches!(e, BroadcastEvent::Unrecoverable { .. })),
            "{events:?}"
        );
    }

    #[test]
    fn publications_made_while_catching_up_wait_and_then_go_out() {
        let mut net = Net::unstarted(
            (1..=3)
                .map(|i| Cb::new(i, 1..=3, CausalConfig::default()).unwrap())
                .collect(),
        );
        publish_in(&mut net, 1, "early");
        assert!(net.queue.is_empty(), "nothing sent before catching up");
        for id in 1..=3 {
            net.start(id);
        }
        net.run();
        let events = net.take_events();
        for at in 1..=3 {
            assert_eq!(deliveries(&events, at), [(1, 1)], "at {at}");
        }
        // The waiting room is bounded.
        let mut lone = Cb::new(
            1,
            [1, 2],
            CausalConfig {
                max_held: 1,
                ..CausalConfig::default()
            },
        )
        .unwrap();
        let mut out = EffectsOf::<Cb>::new();
        lone.on_command(
            Duration::ZERO,
            BroadcastCommand::Publish("x".into()),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            lone.on_command(
                Duration::ZERO,
                BroadcastCommand::Publish("y".into()),
                &mut out
            ),
            Err(BroadcastError::Backlog { queued: 1 })
        );
    }

    #[test]
    fn a_restarted_member_gets_what_it_missed_and_peers_skip_what_its_crash_lost() {
        let mut net = net(3);
        publish_in(&mut net, 1, "a");
        net.run();
        // Node 1's second broadcast reaches node 2 only: it crashes mid-broadcast.
        publish_in(&mut net, 1, "b");
        net.queue.retain(|(_, to, _)| *to == 2);
        net.run();
        // Node 3 broadcasts while node 1 is gone; its copy to node 2 is lost in flight.
        net.crash(1);
        net.run();
        publish_in(&mut net, 3, "c");
        net.queue.clear();
        net.take_events();
        restart(&mut net, 1, 3);
        let events = net.take_events();
        // Its numbering goes on after "b", which node 2 delivered; node 3 stops waiting for
        // it, and says so.
        assert_eq!(net.nodes[0].floor(), 2);
        assert!(
            events.iter().any(|(n, e)| *n == 3
                && *e
                    == BroadcastEvent::Unrecoverable {
                        origin: 1,
                        member: 3,
                        first: 2,
                        below: 3,
                    }),
            "{events:?}"
        );
        // The newcomer takes what every member that answered had delivered as its start, and
        // asks for the rest: "c", which node 2 lacks too.
        assert_eq!(deliveries(&events, 1), [(3, 1)]);
        publish_in(&mut net, 1, "d");
        net.run();
        let events = net.take_events();
        assert_eq!(deliveries(&events, 3), [(1, 3)]);
        // Node 2 holds "d" back: it follows "c", which node 2 lost in flight. Once node 2
        // sees node 3 up again, it asks for "c", and delivers both.
        assert!(deliveries(&events, 2).is_empty());
        let mut out = EffectsOf::<Cb>::new();
        net.nodes[1].on_peer_up(Duration::ZERO, 3, &mut out);
        net.absorb(2, out);
        net.run();
        assert_eq!(deliveries(&net.take_events(), 2), [(3, 1), (1, 3)]);
    }
}
