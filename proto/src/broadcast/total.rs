//! Total-order broadcast by Lamport timestamps (Lamport 1978, "Time, clocks, and the ordering
//! of events in a distributed system", the same queue as his mutual exclusion): every member
//! delivers the same messages in the same order, `(timestamp, origin id)`.
//!
//! Sans-IO: no networking, no actix or tokio, no clock reads; `now` is unused. **Needs FIFO
//! channels** (the network layer's connections are; `actix_coord::driver::LocalLinks`
//! are).
//!
//! The algorithm, for member `i` of N, with a Lamport clock `C`:
//! 1. To broadcast, `i` ticks `C`, queues the message stamped `(C, i)` and sends it to the N−1
//!    others.
//! 2. On receiving a message stamped `(t, j)`, a member sets `C = max(C, t) + 1`, queues it, and
//!    sends an acknowledgement stamped with its new `C` to the N−1 others; an acknowledgement
//!    only advances `C` and the sender's *last heard* time.
//! 3. A member delivers the head `(t, j)` of its queue once it has heard, from every other live
//!    member, something stamped `t` or later. Channels are FIFO and clocks increase, so nothing
//!    stamped below `(t, j)` can still arrive: the queue's head is final, and every member
//!    delivers in the same order.
//!
//! Messages per broadcast: N−1 data + (N−1)² acknowledgements = N(N−1). Latency: one data hop
//! plus one acknowledgement hop.
//!
//! **Faults.** A member declared down is no longer waited for. Uniform agreement is *not*
//! guaranteed: a crashed origin's last message may have reached some survivors and not others,
//! and then only those deliver it (in the same order relative to everything else); total order
//! with crashes needs consensus. A message stamped no later than one already delivered (a
//! non-FIFO link) would break the order: it is [rejected](Rejection::Late).
//!
//! **Restart.** A member starts *catching up* (at the boot as after a restart): it sends
//! [`TotalMsg::Hello`] with its incarnation, clock and count to every peer, keeps its
//! publications waiting (at most `max_queued`, then [`BroadcastError::Backlog`]), and takes
//! part once every peer not declared down has answered ([`TotalMsg::State`], or its own
//! `Hello`). It adopts the highest clock it heard, so everything it stamps comes after what any
//! peer delivered before answering, and takes each peer's stream from the broadcast after the
//! count in its answer (what a peer sent it before answering is dropped). It then announces its
//! clock (an `Ack`), so nobody waits for it below that. A peer that meets a new incarnation
//! takes it as a new member: its numbering starts again from what the `Hello` says, its
//! earlier stream's refusal (`Cut`) is forgotten, and a broadcast of the earlier incarnation
//! still in flight is dropped (each carries its origin's incarnation). A timestamp more than [`TotalConfig::max_clock_jump`] ahead of
//! the local clock is rejected as [`Rejection::AbsurdClock`] (it would otherwise drag every clock
//! along). The queue holds at most [`TotalConfig::max_queued`] messages; beyond that a new one is
//! rejected ([`Rejection::BufferFull`]).

use super::{
    BroadcastCommand, BroadcastError, BroadcastEvent, BroadcastTimer, Delivery, JOIN_RETRY,
    Rejection,
};
use crate::protocol::CatchUp as _;
use crate::protocol::{
    ConfigError, EffectsOf, HelloKind, Join, Membership, NodeId, PeerWire, Protocol,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::time::Duration;

/// Settings of a [`TotalOrderBroadcast`] member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TotalConfig {
    /// Most messages queued and not yet delivered (default 65 536).
    pub max_queued: usize,
    /// Largest accepted lead of a received timestamp over the local clock (default 2³²).
    pub max_clock_jump: u64,
}

impl Default for TotalConfig {
    fn default() -> Self {
        Self {
            max_queued: 65_536,
            max_clock_jump: 1 << 32,
        }
    }
}

/// Messages of [`TotalOrderBroadcast`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TotalMsg<T> {
    /// Step 1: a broadcast stamped `time` (with the sender's id, its place in the order).
    Data {
        /// Lamport time of the broadcast.
        time: u64,
        /// Its number among the origin's broadcasts (1, 2, ...): a receiver that finds one
        /// missing refuses the rest ([`Rejection::Gap`]).
        seq: u64,
        /// The origin's incarnation: a broadcast of an incarnation its receiver knows was
        /// succeeded by another arrives too late, and is dropped.
        incarnation: u64,
        /// The application's payload.
        payload: T,
    },
    /// Step 2: the sender's clock has passed `time`.
    Ack {
        /// The sender's Lamport time after receiving a broadcast.
        time: u64,
    },
    /// A member catching up (it has just started) asks the receiver for its clock and count.
    Hello {
        /// The sender's incarnation (drawn anew at every start).
        incarnation: u64,
        /// The sender's Lamport time.
        time: u64,
        /// How many broadcasts the sender has made in this incarnation.
        seq: u64,
    },
    /// The answer to a [`Hello`](Self::Hello): the sender's clock, and how many broadcasts it
    /// has made (the newcomer takes its stream from the next one on).
    State {
        /// The sender's Lamport time.
        time: u64,
        /// How many broadcasts the sender has made.
        seq: u64,
    },
}

impl<T: super::Payload> PeerWire for TotalMsg<T> {
    const TAG: &'static str = "actix_coord.total_order_broadcast.v3";
}

/// One member of a total-order broadcast group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TotalOrderBroadcast<T> {
    group: Membership,
    config: TotalConfig,
    clock: u64,
    /// Not yet delivered, in delivery order: (time, origin) → (payload, origin's sequence).
    queue: BTreeMap<(u64, NodeId), (T, u64)>,
    /// The latest time heard from each peer.
    heard: BTreeMap<NodeId, u64>,
    /// Broadcasts received (or sent) per member, numbering each origin's messages.
    seqs: BTreeMap<NodeId, u64>,
    /// Origins one of whose broadcasts this member refused: their later ones are refused too
    /// (they would follow a gap), and they are no longer waited for.
    cut: BTreeSet<NodeId>,
    /// The stamp of the last delivered message.
    last: Option<(u64, NodeId)>,
    delivered: u64,
    /// Catching up: the incarnation, the peers met, the answers awaited.
    join: Join,
    /// While catching up: the publications waiting for it to end, at most `max_queued`.
    pending: VecDeque<T>,
    /// Per member: its incarnations known to have been succeeded, latest last (at most
    /// [`MAX_SUPERSEDED`](super::MAX_SUPERSEDED)).
    superseded: BTreeMap<NodeId, Vec<u64>>,
}

impl<T: Clone + Debug + Serialize + serde::de::DeserializeOwned> TotalOrderBroadcast<T> {
    /// Member `me` of the group `members` (which must contain `me`, without duplicates).
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid membership or a zero bound.
    pub fn new(
        me: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        config: TotalConfig,
    ) -> Result<Self, ConfigError> {
        let group = Membership::new(me, members)?;
        if config.max_queued == 0 || config.max_clock_jump == 0 {
            return Err(ConfigError::Inconsistent(
                "max_queued and max_clock_jump must be positive",
            ));
        }
        let peers: Vec<NodeId> = group.peers().collect();
        Ok(Self {
            heard: group.peers().map(|p| (p, 0)).collect(),
            group,
            config,
            clock: 0,
            queue: BTreeMap::new(),
            seqs: BTreeMap::new(),
            cut: BTreeSet::new(),
            last: None,
            delivered: 0,
            join: Join::new(0, peers),
            pending: VecDeque::new(),
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

    fn own_seq(&self) -> u64 {
        self.seqs.get(&self.group.me()).copied().unwrap_or(0)
    }

    fn hello(&self, peer: NodeId, out: &mut EffectsOf<Self>) {
        out.send(
            peer,
            TotalMsg::Hello {
                incarnation: self.join.inc,
                time: self.clock,
                seq: self.own_seq(),
            },
        );
    }

    /// `from`'s clock and count, while catching up: its stream is taken from the next
    /// broadcast on.
    fn answer(&mut self, from: NodeId, time: u64, seq: u64, out: &mut EffectsOf<Self>) {
        if self.join.active() || !self.join.missing().contains(&from) {
            return;
        }
        self.clock = self.clock.max(time);
        let heard = self.heard.entry(from).or_insert(0);
        *heard = (*heard).max(time);
        self.seqs.insert(from, seq);
        self.cut.remove(&from);
        if self.join.answered(from) {
            self.activate(out);
        }
    }

    /// Caught up: tells everyone the clock (so nobody waits for this member below it), then
    /// sends what was published meanwhile.
    fn activate(&mut self, out: &mut EffectsOf<Self>) {
        out.cancel_timer(BroadcastTimer::JoinRetry);
        let time = self.clock;
        for p in self.group.peers().collect::<Vec<_>>() {
            out.send(p, TotalMsg::Ack { time });
        }
        while let Some(payload) = self.pending.pop_front() {
            self.publish(payload, out);
        }
        self.drain(out);
    }

    fn publish(&mut self, payload: T, out: &mut EffectsOf<Self>) {
        self.clock = self.clock.saturating_add(1);
        let time = self.clock;
        let seq = self.next_seq(self.group.me());
        out.emit(BroadcastEvent::Published { seq });
        for p in self.group.peers().collect::<Vec<_>>() {
            out.send(
                p,
                TotalMsg::Data {
                    time,
                    seq,
                    incarnation: self.join.inc,
                    payload: payload.clone(),
                },
            );
        }
        self.queue.insert((time, self.group.me()), (payload, seq));
        self.drain(out);
    }

    /// The Lamport clock.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Messages queued, not yet delivered.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    fn next_seq(&mut self, origin: NodeId) -> u64 {
        let s = self.seqs.entry(origin).or_insert(0);
        *s += 1;
        *s
    }

    /// Delivers the queue's head while every live peer has been heard from at its time or
    /// later.
    fn drain(&mut self, out: &mut EffectsOf<Self>) {
        while let Some((&(time, _), _)) = self.queue.first_key_value() {
            let stable = self
                .heard
                .iter()
                .all(|(p, &h)| self.group.is_down(*p) || self.cut.contains(p) || h >= time);
            if !stable {
                break;
            }
            let Some(((time, origin), (payload, seq))) = self.queue.pop_first() else {
                break;
            };
            self.last = Some((time, origin));
            self.delivered += 1;
            out.emit(BroadcastEvent::Delivered(Delivery {
                from: origin,
                seq,
                order: self.delivered,
                payload,
            }));
        }
    }

    /// Refuses a message from `from`. A refused broadcast (`data`) cuts its origin's stream
    /// here: delivering a later one would skip it (its place in the order, its number, and
    /// what it causally precedes), so the origin's later broadcasts are refused too and it is
    /// no longer waited for — which may let the queue's head go.
    fn refuse(&mut self, from: NodeId, data: bool, reason: Rejection, out: &mut EffectsOf<Self>) {
        out.emit(BroadcastEvent::Rejected { from, reason });
        if data && self.cut.insert(from) {
            self.drain(out);
        }
    }

    /// A `Hello` from `from`: a member catching up. A new incarnation is a new member: its
    /// stream starts again after `seq`, and nothing it sends can be stamped below `time`.
    fn on_hello(&mut self, from: NodeId, inc: u64, time: u64, seq: u64, out: &mut EffectsOf<Self>) {
        if time > self.clock.saturating_add(self.config.max_clock_jump) {
            let local = self.clock;
            self.refuse(from, false, Rejection::AbsurdClock { time, local }, out);
            return;
        }
        let previous = self.join.known.get(&from).copied();
        let kind = self.join.hello(from, inc);
        if let (HelloKind::New, Some(old)) = (kind, previous) {
            super::supersede(&mut self.superseded, from, old, inc);
        }
        if kind == HelloKind::Retry {
            let s = self.seqs.entry(from).or_insert(0);
            *s = (*s).max(seq);
        } else {
            self.seqs.insert(from, seq);
            self.cut.remove(&from);
            self.heard.insert(from, time);
        }
        self.clock = self.clock.max(time);
        // Our answer first: while catching up, its Hello also answers ours.
        out.send(
            from,
            TotalMsg::State {
                time: self.clock,
                seq: self.own_seq(),
            },
        );
        self.answer(from, time, seq, out);
    }

    /// Checks a received stamp; `Some(reason)` to reject it.
    fn check_time(&self, time: u64, from: NodeId) -> Option<Rejection> {
        if time > self.clock.saturating_add(self.config.max_clock_jump) {
            return Some(Rejection::AbsurdClock {
                time,
                local: self.clock,
            });
        }
        if self.heard.get(&from).is_some_and(|&h| time < h) {
            return Some(Rejection::Late { time });
        }
        None
    }
}

impl<T: Clone + Debug + Serialize + serde::de::DeserializeOwned> crate::protocol::CatchUp
    for TotalOrderBroadcast<T>
{
    fn join(&self) -> &Join {
        &self.join
    }
    fn greet(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.hello(peer, out);
    }
}

impl<T: Clone + Debug + Serialize + serde::de::DeserializeOwned> Protocol
    for TotalOrderBroadcast<T>
{
    type Msg = TotalMsg<T>;
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
            return super::keep_waiting(&mut self.pending, self.config.max_queued, payload);
        }
        self.publish(payload, out);
        Ok(())
    }

    fn on_message(
        &mut self,
        _now: Duration,
        from: NodeId,
        msg: TotalMsg<T>,
        out: &mut EffectsOf<Self>,
    ) {
        if from == self.group.me() || !self.group.is_member(from) {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::NotAMember(from),
            });
            return;
        }
        let (time, data) = match msg {
            TotalMsg::Data {
                time, incarnation, ..
            } => {
                if super::is_superseded(&self.superseded, from, incarnation) {
                    // From an incarnation that has since restarted, delivered late (what we
                    // took of it before its successor's `Hello` is counted in our answer).
                    return;
                }
                (time, true)
            }
            TotalMsg::Ack { time } => (time, false),
            TotalMsg::Hello {
                incarnation,
                time,
                seq,
            } => {
                self.on_hello(from, incarnation, time, seq, out);
                return;
            }
            TotalMsg::State { time, seq } => {
                if time > self.clock.saturating_add(self.config.max_clock_jump) {
                    let local = self.clock;
                    self.refuse(from, false, Rejection::AbsurdClock { time, local }, out);
                    return;
                }
                self.answer(from, time, seq, out);
                return;
            }
        };
        if !self.join.active() && self.join.missing().contains(&from) {
            // Sent before `from` answered our `Hello`: its answer takes its stream from the
            // broadcast after these on, and its clock past them.
            return;
        }
        if data && self.cut.contains(&from) {
            self.refuse(from, data, Rejection::Cut { origin: from }, out);
            return;
        }
        if let Some(reason) = self.check_time(time, from) {
            self.refuse(from, data, reason, out);
            return;
        }
        match msg {
            TotalMsg::Data {
                time, seq, payload, ..
            } => {
                let expected = self.seqs.get(&from).copied().unwrap_or(0) + 1;
                if seq < expected {
                    // A repeat of one already received: dropped, the stream goes on.
                    out.emit(BroadcastEvent::Rejected {
                        from,
                        reason: Rejection::Late { time },
                    });
                    return;
                }
                if seq > expected {
                    let gap = Rejection::Gap {
                        origin: from,
                        expected,
                        got: seq,
                    };
                    self.refuse(from, data, gap, out);
                    return;
                }
                if self.last.is_some_and(|l| (time, from) <= l) {
                    self.refuse(from, data, Rejection::Late { time }, out);
                    return;
                }
                if self.queue.len() >= self.config.max_queued {
                    let held = self.queue.len();
                    self.refuse(from, data, Rejection::BufferFull { held }, out);
                    return;
                }
                self.clock = self.clock.max(time).saturating_add(1);
                self.heard.insert(from, time);
                let seq = self.next_seq(from);
                self.queue.insert((time, from), (payload, seq));
                let ack = self.clock;
                for p in self.group.peers().collect::<Vec<_>>() {
                    out.send(p, TotalMsg::Ack { time: ack });
                }
            }
            TotalMsg::Ack { time } => {
                self.clock = self.clock.max(time);
                self.heard.insert(from, time);
            }
            TotalMsg::Hello { .. } | TotalMsg::State { .. } => {}
        }
        self.drain(out);
    }

    fn on_timer(&mut self, now: Duration, timer: BroadcastTimer, out: &mut EffectsOf<Self>) {
        match timer {
            BroadcastTimer::JoinRetry => self.on_start(now, out),
        }
    }

    fn on_peer_down(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        if self.group.is_peer(peer) {
            self.group.set_down(peer);
            if self.join.answered(peer) {
                self.activate(out);
            }
            self.drain(out);
        }
    }

    fn on_peer_up(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        if !self.group.set_up(peer) {
            return;
        }
        if self.join.await_again(peer) {
            self.hello(peer, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Net;

    type Tob = TotalOrderBroadcast<u32>;

    /// `core`, caught up with peers that know nothing yet (the cluster's boot).
    fn booted(mut core: Tob) -> Tob {
        for p in core.group.peers().collect::<Vec<_>>() {
            let mut out = EffectsOf::<Tob>::new();
            core.on_message(
                Duration::ZERO,
                p,
                TotalMsg::State { time: 0, seq: 0 },
                &mut out,
            );
        }
        assert!(core.is_active());
        core
    }

    /// `n` booted members on FIFO channels (pick a channel with `step_pick`).
    fn fifo_net(n: u32) -> Net<Tob> {
        let ids: Vec<u32> = (1..=n).collect();
        Net::unstarted(
            ids.iter()
                .map(|&i| booted(Tob::new(i, ids.clone(), TotalConfig::default()).unwrap()))
                .collect(),
        )
    }

    /// Each member's deliveries so far, `(from, payload)`, in member order.
    fn delivered(net: &Net<Tob>) -> Vec<Vec<(NodeId, u32)>> {
        let mut out = vec![Vec::new(); net.nodes.len()];
        for (at, e) in &net.events {
            if let BroadcastEvent::Delivered(d) = e {
                out[*at as usize - 1].push((d.from, d.payload));
            }
        }
        out
    }

    fn publish(net: &mut Net<Tob>, at: NodeId, v: u32) {
        net.command(at, BroadcastCommand::Publish(v)).unwrap();
    }

    #[test]
    fn every_member_delivers_the_same_sequence_under_any_fifo_interleaving() {
        let mut rng = crate::protocol::SplitMix64::new(7);
        for _ in 0..200 {
            let mut net = fifo_net(3);
            let mut next = 0;
            // Publishes interleaved with deliveries, at random.
            while next < 6 || net.step_pick(rng.next_u64() as usize) {
                let publish_now =
                    rng.next_u64().is_multiple_of(3) || !net.step_pick(rng.next_u64() as usize);
                if next < 6 && publish_now {
                    publish(&mut net, (next % 3) + 1, next);
                    next += 1;
                }
            }
            assert_eq!(delivered(&net)[0].len(), 6);
            assert_eq!(delivered(&net)[0], delivered(&net)[1]);
            assert_eq!(delivered(&net)[0], delivered(&net)[2]);
        }
    }

    #[test]
    fn one_broadcast_costs_n_times_n_minus_one_messages() {
        for n in [3u32, 5] {
            let mut net = fifo_net(n);
            publish(&mut net, 1, 42);
            while net.step_pick(0) {}
            assert_eq!(net.sent as u32, n * (n - 1), "n = {n}");
            assert!(delivered(&net).iter().all(|d| d == &[(1, 42)]));
        }
    }

    #[test]
    fn a_dead_member_is_not_waited_for() {
        let mut net = fifo_net(3);
        publish(&mut net, 1, 1);
        // Node 3 never answers: drop everything to and from it.
        loop {
            net.cut_off(3);
            if !net.step_pick(0) {
                break;
            }
        }
        assert!(delivered(&net)[0].is_empty(), "still waiting for node 3");
        for at in [1u32, 2] {
            let mut out = EffectsOf::<Tob>::new();
            net.nodes[at as usize - 1].on_peer_down(Duration::ZERO, 3, &mut out);
            net.absorb(at, out);
        }
        assert_eq!(delivered(&net)[0], [(1, 1)]);
        assert_eq!(delivered(&net)[1], [(1, 1)]);
    }

    #[test]
    fn absurd_late_and_foreign_stamps_are_rejected_and_change_nothing() {
        let ids = [1, 2, 3];
        let mut a = booted(Tob::new(1, ids, TotalConfig::default()).unwrap());
        let before = a.clone();
        let mut out = EffectsOf::<Tob>::new();
        a.on_message(
            Duration::ZERO,
            3,
            TotalMsg::Data {
                incarnation: 0,
                time: u64::MAX,
                seq: 1,
                payload: 0,
            },
            &mut out,
        );
        a.on_message(Duration::ZERO, 9, TotalMsg::Ack { time: 1 }, &mut out);
        a.on_message(Duration::ZERO, 2, TotalMsg::Ack { time: 5 }, &mut out);
        a.on_message(
            Duration::ZERO,
            2,
            TotalMsg::Data {
                incarnation: 0,
                time: 3,
                seq: 1,
                payload: 0,
            },
            &mut out,
        );
        // Node 2's stream is cut at its refused broadcast: a later one would follow a gap.
        a.on_message(
            Duration::ZERO,
            2,
            TotalMsg::Data {
                incarnation: 0,
                time: 6,
                seq: 2,
                payload: 0,
            },
            &mut out,
        );
        let reasons: Vec<_> = out
            .events()
            .filter_map(|e| match e {
                BroadcastEvent::Rejected { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect();
        assert!(matches!(
            reasons[..],
            [
                Rejection::AbsurdClock { .. },
                Rejection::NotAMember(9),
                Rejection::Late { time: 3 },
                Rejection::Cut { origin: 2 }
            ]
        ));
        assert_eq!(a.queued(), before.queued());
        assert_eq!(a.clock(), 5);
    }

    #[test]
    fn a_missing_broadcast_cuts_its_origin_instead_of_being_skipped() {
        // Node 2's first broadcast never reached node 1 (node 1 was not registered yet): its
        // second is refused, not delivered as "the first", and so is everything after it.
        let mut a = booted(Tob::new(1, [1, 2], TotalConfig::default()).unwrap());
        let mut out = EffectsOf::<Tob>::new();
        for (time, seq) in [(2, 2), (3, 3)] {
            a.on_message(
                Duration::ZERO,
                2,
                TotalMsg::Data {
                    incarnation: 0,
                    time,
                    seq,
                    payload: 7,
                },
                &mut out,
            );
        }
        let events: Vec<_> = out.events().cloned().collect();
        assert!(matches!(
            events[..],
            [
                BroadcastEvent::Rejected {
                    from: 2,
                    reason: Rejection::Gap {
                        origin: 2,
                        expected: 1,
                        got: 2
                    }
                },
                BroadcastEvent::Rejected {
                    from: 2,
                    reason: Rejection::Cut { origin: 2 }
                }
            ]
        ));
        assert_eq!((a.queued(), a.delivered()), (0, 0));
    }

    #[test]
    fn a_repeated_broadcast_is_dropped_without_cutting_its_origin() {
        let mut a = booted(Tob::new(1, [1, 2], TotalConfig::default()).unwrap());
        let mut out = EffectsOf::<Tob>::new();
        let data = |time, seq| TotalMsg::Data {
            incarnation: 0,
            time,
            seq,
            payload: 7,
        };
        a.on_message(Duration::ZERO, 2, data(1, 1), &mut out);
        a.on_message(Duration::ZERO, 2, data(1, 1), &mut out);
        a.on_message(Duration::ZERO, 2, data(2, 2), &mut out);
        a.on_message(Duration::ZERO, 2, TotalMsg::Ack { time: 5 }, &mut out);
        let rejected = out
            .events()
            .filter(|e| matches!(e, BroadcastEvent::Rejected { .. }))
            .count();
        assert_eq!(rejected, 1, "the repeat only");
        assert_eq!(a.delivered(), 2, "both broadcasts, once each");
    }

    /// Member `i` of a group of three, incarnation `inc`.
    fn fresh_member(i: NodeId, inc: u64) -> Tob {
        Tob::new(i, [1, 2, 3], TotalConfig::default())
            .unwrap()
            .with_incarnation(inc)
    }

    /// Member 1 crashes (everyone notices) and `newcomer` starts in its place; the others see
    /// it up, and the catching-up runs to its end.
    fn restart_node_1(net: &mut crate::testing::Net<Tob>, newcomer: Tob) {
        net.crash(1);
        net.run();
        net.down.clear();
        net.nodes[0] = newcomer;
        net.start(1);
        for p in [2, 3] {
            let mut out = EffectsOf::<Tob>::new();
            net.nodes[p as usize - 1].on_peer_up(Duration::ZERO, 1, &mut out);
            net.absorb(p, out);
        }
        net.run();
    }

    #[test]
    fn a_restarted_member_is_a_new_member_not_a_late_one() {
        // Issue 11: before, a restarted member's clock and numbering started again from 0 and
        // its peers rejected everything it sent as late.
        let fresh = fresh_member;
        let mut net = Net::new((1..=3).map(|i| fresh(i, 0)).collect());
        for v in [1, 2] {
            net.command(1, BroadcastCommand::Publish(v)).unwrap();
        }
        net.command(2, BroadcastCommand::Publish(3)).unwrap();
        net.run();
        restart_node_1(&mut net, fresh(1, 7));
        assert!(net.nodes[0].is_active());
        net.take_events();
        net.command(1, BroadcastCommand::Publish(4)).unwrap();
        net.command(3, BroadcastCommand::Publish(5)).unwrap();
        net.run();
        let events = net.take_events();
        assert!(
            !events
                .iter()
                .any(|(_, e)| matches!(e, BroadcastEvent::Rejected { .. })),
            "{events:?}"
        );
        let order = |at: NodeId| -> Vec<(NodeId, u64, u32)> {
            events
                .iter()
                .filter_map(|(n, e)| match e {
                    BroadcastEvent::Delivered(d) if *n == at => Some((d.from, d.seq, d.payload)),
                    _ => None,
                })
                .collect()
        };
        // The newcomer numbers from 1 again (a new member), and everyone delivers the same.
        assert_eq!(order(1).len(), 2);
        assert!(order(1).contains(&(1, 1, 4)));
        assert_eq!(order(1), order(2));
        assert_eq!(order(2), order(3));
    }

    #[test]
    fn a_broadcast_of_a_succeeded_incarnation_delivered_late_is_dropped() {
        // Found by the model check with a restart and a duplicate: a copy of the crashed
        // incarnation's broadcast, arriving after its successor's `Hello`, was taken as the
        // successor's first, whose real first was then refused as a repeat.
        let fresh = fresh_member;
        let mut net = Net::new((1..=3).map(|i| fresh(i, 0)).collect());
        net.command(1, BroadcastCommand::Publish(1)).unwrap();
        let late = net
            .queue
            .iter()
            .find(|(_, to, m)| *to == 3 && matches!(m, TotalMsg::Data { .. }))
            .cloned()
            .expect("node 1's broadcast to node 3");
        net.run();
        restart_node_1(&mut net, fresh(1, 7));
        net.queue.push_back(late);
        net.run();
        net.take_events();
        net.command(1, BroadcastCommand::Publish(2)).unwrap();
        net.run();
        let at_3: Vec<_> = net
            .take_events()
            .into_iter()
            .filter_map(|(n, e)| match e {
                BroadcastEvent::Delivered(d) if n == 3 => Some(d.payload),
                _ => None,
            })
            .collect();
        assert_eq!(at_3, [2]);
    }
}
