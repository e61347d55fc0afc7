//! Ricart–Agrawala mutual exclusion (Ricart & Agrawala 1981, "An Optimal Algorithm for Mutual
//! Exclusion in Computer Networks"): permission from everyone, the release folded into deferred
//! replies.
//!
//! Sans-IO: no networking, no actix or tokio, no clock reads (`Instant::now()`,
//! `SystemTime::now()`), no `thread_rng()`. Requests are ordered by a [`LamportClock`] and
//! [`LamportTimestamp`]s; `now` is unused.
//!
//! The algorithm, for node `i`:
//! 1. To enter, `i` stamps a request with its sequence number (Lamport time) and sends it to the
//!    N−1 others.
//! 2. When `j` receives a request it replies at once, unless it is in the critical section, or it
//!    is requesting and its own request precedes the received one in the total order
//!    `(time, node id)`: then it **defers** the reply.
//! 3. `i` enters when it has a reply from each of the others.
//! 4. On exit, `i` sends every deferred reply.
//!
//! Messages per critical section: N−1 requests + N−1 replies = 2(N−1). No FIFO needed: each
//! reply names the request it answers, so a late reply cannot count for a newer request, and the
//! model check `ricart_agrawala_is_safe_without_fifo` (in `middleware/tests/model_mutex.rs`)
//! finds no counterexample on an unordered network. Fairness: FIFO by `(time, node id)`.
//!
//! Fencing: conflicting requests are granted in timestamp order, and a request made after a
//! grant is stamped later (the granted request reached every node first), so the
//! [`Fence`](super::Fence) is the granted request's stamp ([`request_fence`]).
//!
//! Faults: a peer declared down is no longer waited for and its deferred reply is dropped. If it
//! had not replied to our pending request, it may be in the critical section: exclusion is lost
//! under false suspicion; its request precedes ours, so its fence is lower, and a
//! [`FencedResource`](super::FencedResource) that has seen ours refuses its late writes.

use super::{
    HelloKind, JOIN_RETRY, Join, LockCommand, LockError, LockEvent, LockState, LockTimer,
    check_fenced_members, request_fence, request_stamp,
};
use crate::clock::{LamportClock, LamportTimestamp};
use crate::protocol::CatchUp as _;
use crate::protocol::{ConfigError, EffectsOf, Membership, NodeId, PeerWire, Protocol};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Messages of [`RicartAgrawala`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RaMsg {
    /// Step 1: the sender asks permission; `time` is the request's Lamport timestamp.
    Request {
        /// Lamport time of the request.
        time: u64,
    },
    /// Steps 2 and 4: permission granted for the request stamped `request`.
    Reply {
        /// Lamport time of the request this answers.
        request: u64,
    },
    /// The sender (re)started with empty state, as incarnation `incarnation`, and is catching
    /// up: the receiver forgets a previous incarnation (its deferred request, its reply to
    /// ours), re-sends its own pending request and answers with [`State`](Self::State).
    Hello {
        /// Lamport time of the sender.
        time: u64,
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// The answer to a `Hello`, also sent to a peer seen up again: the sender's clock, above
    /// the stamp of every request it granted or deferred, so the newcomer's requests (and
    /// fences) come after them. A member that has caught up and receives one re-sends its
    /// pending request.
    State {
        /// Lamport time of the sender.
        time: u64,
    },
}

impl PeerWire for RaMsg {
    const TAG: &'static str = "actix_coord.ricart_agrawala.v2";
}

/// One member of Ricart–Agrawala mutual exclusion for one resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RicartAgrawala {
    group: Membership,
    clock: LamportClock,
    /// Our pending or granted request.
    mine: Option<LamportTimestamp>,
    /// Peers that replied to `mine`.
    replied: BTreeSet<NodeId>,
    /// Deferred replies: peer -> time of its request.
    deferred: BTreeMap<NodeId, u64>,
    state: LockState,
    join: Join,
}

impl RicartAgrawala {
    /// Member `me` of the group `members` (which must contain `me`, without duplicates).
    ///
    /// # Errors
    /// [`ConfigError`] when the membership is invalid.
    ///
    /// The member starts catching up (see [`LockTimer`]): it takes part once every peer has
    /// answered its `Hello` (sent by [`Protocol::on_start`]) or been declared down. Its
    /// incarnation is 0; [`with_incarnation`](Self::with_incarnation) sets another.
    pub fn new(me: NodeId, members: impl IntoIterator<Item = NodeId>) -> Result<Self, ConfigError> {
        let group = Membership::new(me, members)?;
        check_fenced_members(group.members())?;
        let peers: Vec<NodeId> = group.peers().collect();
        Ok(Self {
            group,
            clock: LamportClock::new(),
            mine: None,
            replied: BTreeSet::new(),
            deferred: BTreeMap::new(),
            state: LockState::Idle,
            join: Join::new(0, peers),
        })
    }

    /// This member's incarnation (a value the shell draws anew at every start): peers that met
    /// another incarnation of it forget that one.
    pub fn with_incarnation(mut self, incarnation: u64) -> Self {
        self.join.inc = incarnation;
        self
    }

    /// Whether this member has caught up with its peers and takes part in the algorithm.
    pub fn is_active(&self) -> bool {
        self.join.active()
    }

    /// Where the local user stands.
    pub fn state(&self) -> LockState {
        self.state
    }

    /// Whether the local user holds the lock.
    pub fn is_held(&self) -> bool {
        matches!(self.state, LockState::Held { .. })
    }

    /// Peers whose reply is deferred until we leave the critical section.
    pub fn deferred(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.deferred.keys().copied()
    }

    // Step 1 (made once caught up: until then the wait only records the wish).
    fn request(&mut self, out: &mut EffectsOf<Self>) -> Result<(), LockError> {
        self.state.wait()?;
        if self.join.active() {
            self.send_request(out);
        }
        Ok(())
    }

    fn send_request(&mut self, out: &mut EffectsOf<Self>) {
        let time = self.clock.tick();
        self.mine = Some(request_stamp(time, self.group.me()));
        self.replied.clear();
        out.broadcast(RaMsg::Request { time });
        self.try_enter(out);
    }

    /// Caught up: a wait recorded meanwhile becomes a request now.
    fn activated(&mut self, out: &mut EffectsOf<Self>) {
        out.cancel_timer(LockTimer::JoinRetry);
        if self.state == LockState::Waiting && self.mine.is_none() {
            self.send_request(out);
        }
    }

    /// Our pending request, again, to `peer`, whose reply (if any) no longer counts.
    fn resend_mine(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        if let (Some(mine), LockState::Waiting) = (self.mine, self.state) {
            self.replied.remove(&peer);
            out.send(peer, RaMsg::Request { time: mine.time });
        }
    }

    fn send_state(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.resend_mine(peer, out);
        let time = self.clock.tick();
        out.send(peer, RaMsg::State { time });
    }

    fn hello(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        let time = self.clock.time();
        out.send(
            peer,
            RaMsg::Hello {
                time,
                incarnation: self.join.inc,
            },
        );
    }

    // Step 3.
    fn try_enter(&mut self, out: &mut EffectsOf<Self>) {
        if self.state != LockState::Waiting || !self.join.active() {
            return;
        }
        let everyone = self.group.live_peers().all(|p| self.replied.contains(&p));
        if let (true, Some(mine)) = (everyone, self.mine) {
            let fence = request_fence(mine);
            self.state = LockState::Held { fence };
            out.emit(LockEvent::Granted { fence });
        }
    }

    // Step 4 (also on a cancelled wait).
    fn send_deferred(&mut self, out: &mut EffectsOf<Self>) {
        for (peer, request) in std::mem::take(&mut self.deferred) {
            out.send(peer, RaMsg::Reply { request });
        }
        self.mine = None;
        self.replied.clear();
    }
}

impl crate::protocol::CatchUp for RicartAgrawala {
    fn join(&self) -> &Join {
        &self.join
    }
    fn greet(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.hello(peer, out);
    }
}

impl Protocol for RicartAgrawala {
    type Msg = RaMsg;
    type Event = LockEvent;
    type Timer = LockTimer;
    type Command = LockCommand;
    type Error = LockError;

    fn id(&self) -> NodeId {
        self.group.me()
    }

    fn on_start(&mut self, _now: Duration, out: &mut EffectsOf<Self>) {
        self.greet_missing(LockTimer::JoinRetry, JOIN_RETRY, out);
    }

    fn on_command(
        &mut self,
        _now: Duration,
        cmd: LockCommand,
        out: &mut EffectsOf<Self>,
    ) -> Result<(), LockError> {
        match cmd {
            LockCommand::Acquire => self.request(out),
            LockCommand::Release => {
                let fence = self.state.release()?;
                self.send_deferred(out);
                out.emit(LockEvent::Released { fence });
                Ok(())
            }
            LockCommand::Cancel => {
                self.state.cancel()?;
                // Peers that replied keep no state about us; those still deferring us will
                // reply later, and that reply names a request we no longer have: dropped.
                self.send_deferred(out);
                out.emit(LockEvent::Cancelled);
                Ok(())
            }
        }
    }

    fn on_message(&mut self, _now: Duration, from: NodeId, msg: RaMsg, out: &mut EffectsOf<Self>) {
        if !self.group.is_live_peer(from) {
            return;
        }
        match msg {
            RaMsg::Hello { time, incarnation } => {
                if self.clock.merge(time).is_err() {
                    return;
                }
                if self.join.hello(from, incarnation) != HelloKind::Retry {
                    // A new member under an old id: its predecessor's deferred request and its
                    // reply to ours are void.
                    self.deferred.remove(&from);
                    self.replied.remove(&from);
                }
                self.send_state(from, out);
            }
            RaMsg::State { time } => {
                if self.clock.merge(time).is_err() {
                    return;
                }
                if self.join.answered(from) {
                    self.activated(out);
                } else if self.join.active() {
                    // The peer was seen up again: it may have dropped our request.
                    self.resend_mine(from, out);
                }
            }
            // Step 2.
            RaMsg::Request { time } => {
                if self.clock.merge(time).is_err() {
                    return;
                }
                let theirs = request_stamp(time, from);
                let defer = match self.state {
                    LockState::Held { .. } => true,
                    LockState::Waiting => self.mine.is_some_and(|mine| mine < theirs),
                    LockState::Idle => false,
                };
                if defer {
                    // Keep the newest request of `from`: a stale one (sent before a cancel,
                    // overtaken on an unordered network) must not replace it, or the deferred
                    // reply would answer a request its sender no longer has.
                    let newest = self.deferred.entry(from).or_insert(time);
                    *newest = (*newest).max(time);
                } else {
                    out.send(from, RaMsg::Reply { request: time });
                }
            }
            RaMsg::Reply { request } => {
                let current = self.state == LockState::Waiting
                    && self.mine.is_some_and(|m| m.time == request);
                if current {
                    self.replied.insert(from);
                    self.try_enter(out);
                }
            }
        }
    }

    fn on_timer(&mut self, now: Duration, timer: LockTimer, out: &mut EffectsOf<Self>) {
        match timer {
            LockTimer::JoinRetry => self.on_start(now, out),
            LockTimer::LeaderSettle => {} // never armed here
        }
    }

    fn on_peer_down(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        if !self.group.set_down(peer) {
            return;
        }
        self.deferred.remove(&peer);
        self.replied.remove(&peer);
        if self.join.answered(peer) {
            self.activated(out);
        }
        self.try_enter(out);
    }

    fn on_peer_up(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        // A returning peer starts afresh (it may be a new incarnation): it must hear our
        // pending request and our clock.
        if !self.group.set_up(peer) {
            return;
        }
        self.deferred.remove(&peer);
        if self.join.await_again(peer) {
            self.hello(peer, out);
        }
        self.send_state(peer, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutex::Fence;
    use crate::mutex::test_support::{self, granted};
    use crate::testing::Net;

    /// The fence of a request made at Lamport time `time` after the start: in a settled
    /// three-node net every clock reads 6 once the members have caught up (two `Hello`s and two
    /// `State`s each way).
    fn f(time: u64, node: NodeId) -> Fence {
        request_fence(request_stamp(time + 6, node))
    }

    fn net(n: u32) -> Net<RicartAgrawala> {
        test_support::net(n, RicartAgrawala::new)
    }

    #[test]
    fn two_n_minus_one_messages_per_critical_section() {
        for n in [3u32, 5] {
            let mut net = net(n);
            net.command(2, LockCommand::Acquire).unwrap();
            net.run();
            net.command(2, LockCommand::Release).unwrap();
            net.run();
            assert_eq!(net.sent, 2 * (n as usize - 1), "N={n}");
        }
    }

    #[test]
    fn earlier_request_wins_and_later_is_deferred() {
        let mut net = net(3);
        net.command(3, LockCommand::Acquire).unwrap();
        net.command(1, LockCommand::Acquire).unwrap(); // same time, lower id: first
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(1, f(1, 1))]);
        assert_eq!(net.nodes[0].deferred().collect::<Vec<_>>(), vec![3]);
        net.command(1, LockCommand::Release).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(3, f(1, 3))]);
    }

    #[test]
    fn a_reply_for_a_cancelled_request_does_not_count() {
        let mut net = net(2);
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        net.take_events();
        net.command(2, LockCommand::Acquire).unwrap();
        net.run(); // 1 defers 2
        net.command(2, LockCommand::Cancel).unwrap();
        net.command(1, LockCommand::Release).unwrap();
        net.run(); // 1's deferred reply reaches 2, idle: dropped
        net.command(2, LockCommand::Acquire).unwrap();
        assert_eq!(net.nodes[1].state(), LockState::Waiting);
        net.run();
        let g = granted(&net.take_events());
        assert!(
            matches!(g.as_slice(), &[(2, fence)] if fence > f(1, 1)),
            "{g:?}"
        );
    }

    #[test]
    fn a_stale_request_does_not_overwrite_the_deferred_newer_one() {
        // Issue 11, Why 1: node 2 requests, cancels and requests again while node 1 holds;
        // on an unordered network the newer request reaches node 1 first.
        let mut net = net(2);
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        let held = granted(&net.take_events());
        net.command(2, LockCommand::Acquire).unwrap();
        net.command(2, LockCommand::Cancel).unwrap();
        net.command(2, LockCommand::Acquire).unwrap();
        let requests: Vec<_> = net.queue.drain(..).collect();
        assert_eq!(requests.len(), 2, "{requests:?}");
        net.queue.extend(requests.into_iter().rev()); // the stale request arrives last
        net.run();
        net.command(1, LockCommand::Release).unwrap();
        net.run();
        let g = granted(&net.take_events());
        assert!(
            matches!(g.as_slice(), &[(2, fence)] if fence > held[0].1),
            "the newer request is answered: {g:?}"
        );
    }

    #[test]
    fn three_cancelled_waits_then_granted_after_release() {
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        net.take_events();
        for _ in 0..3 {
            net.command(2, LockCommand::Acquire).unwrap();
            net.run();
            net.command(2, LockCommand::Cancel).unwrap();
            net.run();
        }
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.command(1, LockCommand::Release).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()).first().map(|g| g.0), Some(2));
    }

    #[test]
    fn peer_down_stops_waiting_for_it_and_the_successor_fence_is_higher() {
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        net.take_events();
        net.crash(1); // the holder (fence 1) dies before replying to 2
        net.run();
        let g = granted(&net.take_events());
        assert!(
            matches!(g.as_slice(), &[(2, fence)] if fence > f(1, 1)),
            "{g:?}"
        );
    }

    #[test]
    fn malformed_or_stale_input_is_dropped() {
        let mut m = RicartAgrawala::new(1, [1, 2]).unwrap();
        let mut out = EffectsOf::<RicartAgrawala>::new();
        m.on_message(Duration::ZERO, 2, RaMsg::Reply { request: 7 }, &mut out);
        m.on_message(Duration::ZERO, 5, RaMsg::Request { time: 1 }, &mut out);
        m.on_message(
            Duration::ZERO,
            2,
            RaMsg::Request { time: u64::MAX },
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(m.state(), LockState::Idle);
    }
}
