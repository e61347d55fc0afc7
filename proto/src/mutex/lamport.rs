//! Lamport's mutual exclusion (Lamport 1978, "Time, Clocks, and the Ordering of Events in a
//! Distributed System", section on the mutual-exclusion problem).
//!
//! Sans-IO: no networking, no actix or tokio, no clock reads (`Instant::now()`,
//! `SystemTime::now()`), no `thread_rng()`. The core orders events with a
//! [`LamportClock`] and [`LamportTimestamp`]s, not with physical time; `now` is unused.
//!
//! The paper's rules, for process `P_i`:
//! 1. To request the resource, `P_i` sends `T_m:P_i requests resource` to every other process and
//!    puts it on its request queue.
//! 2. When `P_j` receives it, it puts it on its request queue and sends a (timestamped)
//!    acknowledgment to `P_i`.
//! 3. To release the resource, `P_i` removes its request from its queue and sends a timestamped
//!    `P_i releases resource` to every other process.
//! 4. When `P_j` receives the release, it removes `P_i`'s request from its queue.
//! 5. `P_i` is granted the resource when (i) its request is ordered before every other request in
//!    its queue by the total order `=>` (timestamp, then process id), and (ii) it has received a
//!    message from every other process timestamped later than its request.
//!
//! The algorithm **assumes FIFO channels**: a release overtaking its own request, or an
//! acknowledgment overtaking an earlier request, breaks exclusion. The stateright check
//! `lamport_breaks_exclusion_without_fifo` in `middleware/tests/model_mutex.rs` finds such a
//! counterexample; [`RicartAgrawala`](super::RicartAgrawala) has none.
//!
//! Messages per critical section: N−1 requests, N−1 acknowledgments, N−1 releases = 3(N−1).
//! Fairness: FIFO by `(timestamp, node id)` of the requests.
//!
//! Fencing: grants follow the total order of requests, so the [`Fence`](super::Fence) is the
//! granted request's stamp ([`request_fence`]). A cancelled wait is a release of a request that
//! was never granted.
//!
//! Faults: a peer declared down has its request removed and is no longer waited for in (ii). A
//! falsely suspected holder keeps writing; its request precedes ours, so its fence is lower and a
//! [`FencedResource`](super::FencedResource) that has seen ours refuses it.

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

/// Messages of [`LamportMutex`]. Every message is timestamped with the sender's Lamport clock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LamportMsg {
    /// Rule 1: the sender requests the resource; `time` is the request's timestamp.
    Request {
        /// Lamport time of the request.
        time: u64,
    },
    /// Rule 2: acknowledgment of a request.
    Ack {
        /// Lamport time of the acknowledgment (later than the request acknowledged).
        time: u64,
    },
    /// Rule 3: the sender releases the resource (or withdraws its pending request).
    Release {
        /// Lamport time of the release.
        time: u64,
        /// Lamport time of the request released: only that request (or an older one) is
        /// dropped, so a release delivered twice cannot withdraw the sender's next request.
        request: u64,
    },
    /// The sender (re)started with empty state, as incarnation `incarnation`, and is catching
    /// up: the receiver forgets a previous incarnation's request, re-sends its own outstanding
    /// request and answers with [`State`](Self::State).
    Hello {
        /// Lamport time of the sender.
        time: u64,
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// The answer to a `Hello`, also sent to a peer seen up again: the sender's clock (its
    /// outstanding request, if any, was re-sent just before). A member that has caught up and
    /// receives one re-sends its own outstanding request (the peer may have dropped it).
    State {
        /// Lamport time of the sender.
        time: u64,
    },
}

impl PeerWire for LamportMsg {
    const TAG: &'static str = "actix_coord.lamport_mutex.v3";
}

/// One member of Lamport's mutual exclusion for one resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LamportMutex {
    group: Membership,
    clock: LamportClock,
    /// The request queue, ordered by `=>`.
    queue: BTreeSet<LamportTimestamp>,
    /// Latest timestamp received from each peer (condition (ii)).
    last_heard: BTreeMap<NodeId, u64>,
    /// Our own pending or granted request.
    mine: Option<LamportTimestamp>,
    /// The newest request each peer released: a request that is not newer is a duplicate
    /// delivered late, and is dropped.
    released: BTreeMap<NodeId, u64>,
    state: LockState,
    join: Join,
}

impl LamportMutex {
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
            queue: BTreeSet::new(),
            last_heard: BTreeMap::new(),
            released: BTreeMap::new(),
            mine: None,
            state: LockState::Idle,
            join: Join::new(0, peers),
        })
    }

    /// This member's incarnation (a value the shell draws anew at every start): peers that met
    /// another incarnation of it forget that one's request.
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

    /// The request queue, in the total order `=>`.
    pub fn queue(&self) -> impl Iterator<Item = &LamportTimestamp> {
        self.queue.iter()
    }

    /// The current Lamport time.
    pub fn time(&self) -> u64 {
        self.clock.time()
    }

    // Rule 1 (made once caught up: until then the wait only records the wish).
    fn request(&mut self, out: &mut EffectsOf<Self>) -> Result<(), LockError> {
        self.state.wait()?;
        if self.join.active() {
            self.send_request(out);
        }
        Ok(())
    }

    fn send_request(&mut self, out: &mut EffectsOf<Self>) {
        let time = self.clock.tick();
        let stamp = request_stamp(time, self.group.me());
        self.queue.insert(stamp);
        self.mine = Some(stamp);
        out.broadcast(LamportMsg::Request { time });
        self.try_enter(out);
    }

    /// Caught up: a wait recorded meanwhile becomes a request now.
    fn activated(&mut self, out: &mut EffectsOf<Self>) {
        out.cancel_timer(LockTimer::JoinRetry);
        if self.state == LockState::Waiting && self.mine.is_none() {
            self.send_request(out);
        }
    }

    /// Our outstanding (pending or granted) request, again, to `peer`.
    fn resend_mine(&self, peer: NodeId, out: &mut EffectsOf<Self>) {
        if let Some(mine) = self.mine {
            out.send(peer, LamportMsg::Request { time: mine.time });
        }
    }

    fn send_state(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.resend_mine(peer, out);
        let time = self.clock.tick();
        out.send(peer, LamportMsg::State { time });
    }

    // Rule 3 (also used to withdraw a pending request).
    fn release(&mut self, out: &mut EffectsOf<Self>) {
        let Some(stamp) = self.mine.take() else {
            return; // a wait recorded while catching up: nothing was sent
        };
        self.queue.remove(&stamp);
        let time = self.clock.tick();
        out.broadcast(LamportMsg::Release {
            time,
            request: stamp.time,
        });
    }

    // Rule 5.
    fn try_enter(&mut self, out: &mut EffectsOf<Self>) {
        let Some(mine) = self.mine else { return };
        if self.state != LockState::Waiting || self.queue.first() != Some(&mine) {
            return;
        }
        let heard_later = |p: NodeId| {
            self.last_heard
                .get(&p)
                .is_some_and(|&t| request_stamp(t, p) > mine)
        };
        if self.group.live_peers().all(heard_later) {
            let fence = request_fence(mine);
            self.state = LockState::Held { fence };
            out.emit(LockEvent::Granted { fence });
        }
    }

    fn drop_request_of(&mut self, p: NodeId) {
        self.queue.retain(|s| s.process.node != p);
    }
}

impl crate::protocol::CatchUp for LamportMutex {
    fn join(&self) -> &Join {
        &self.join
    }
    fn greet(&mut self, peer: NodeId, out: &mut EffectsOf<Self>) {
        let time = self.clock.time();
        out.send(
            peer,
            LamportMsg::Hello {
                time,
                incarnation: self.join.inc,
            },
        );
    }
}

impl Protocol for LamportMutex {
    type Msg = LamportMsg;
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
                self.release(out);
                out.emit(LockEvent::Released { fence });
                Ok(())
            }
            LockCommand::Cancel => {
                self.state.cancel()?;
                self.release(out);
                out.emit(LockEvent::Cancelled);
                Ok(())
            }
        }
    }

    fn on_message(
        &mut self,
        _now: Duration,
        from: NodeId,
        msg: LamportMsg,
        out: &mut EffectsOf<Self>,
    ) {
        if !self.group.is_live_peer(from) {
            return; // unknown, self, or declared down: dropped
        }
        let time = match msg {
            LamportMsg::Request { time }
            | LamportMsg::Ack { time }
            | LamportMsg::Release { time, .. }
            | LamportMsg::Hello { time, .. }
            | LamportMsg::State { time } => time,
        };
        if self.clock.merge(time).is_err() {
            return; // absurd timestamp: dropped, clock unchanged
        }
        if let LamportMsg::Hello { incarnation, .. } = msg
            && self.join.hello(from, incarnation) != HelloKind::Retry
        {
            // A new member under an old id: its predecessor's request is void.
            self.drop_request_of(from);
            self.last_heard.remove(&from);
            self.released.remove(&from);
        }
        let heard = self.last_heard.entry(from).or_insert(0);
        *heard = (*heard).max(time);
        match msg {
            LamportMsg::Hello { .. } => self.send_state(from, out),
            LamportMsg::State { .. } => {
                if self.join.answered(from) {
                    self.activated(out);
                } else if self.join.active() {
                    // The peer was seen up again: it may have dropped our request.
                    self.resend_mine(from, out);
                }
            }
            // Rule 2.
            LamportMsg::Request { time } => {
                if self.released.get(&from).is_some_and(|&r| time <= r) {
                    // A duplicate of a request already released, delivered late: dropped.
                } else {
                    self.drop_request_of(from); // one request per process
                    self.queue.insert(request_stamp(time, from));
                    let ack = self.clock.tick();
                    out.send(from, LamportMsg::Ack { time: ack });
                }
            }
            LamportMsg::Ack { .. } => {}
            // Rule 4.
            LamportMsg::Release { request, .. } => {
                self.queue
                    .retain(|s| s.process.node != from || s.time > request);
                let r = self.released.entry(from).or_insert(0);
                *r = (*r).max(request);
            }
        }
        self.try_enter(out);
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
        self.last_heard.remove(&peer);
        self.drop_request_of(peer);
        if self.join.answered(peer) {
            self.activated(out);
        }
        self.try_enter(out);
    }

    fn on_peer_up(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        // A returning peer starts afresh (it may be a new incarnation): it must hear our
        // outstanding request, pending or granted, and our clock.
        if !self.group.set_up(peer) {
            return;
        }
        self.last_heard.remove(&peer);
        self.drop_request_of(peer);
        if self.join.await_again(peer) {
            crate::protocol::CatchUp::greet(self, peer, out);
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

    fn net(n: u32) -> Net<LamportMutex> {
        test_support::net(n, LamportMutex::new)
    }

    #[test]
    fn a_request_delivered_again_after_its_release_is_dropped() {
        // Found by the model check with duplication: before, the late copy put the released
        // request back in the queue, ahead of the next waiter, which waited for ever.
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        let request = net.queue.iter().find(|(_, to, _)| *to == 2).cloned();
        net.run();
        net.command(2, LockCommand::Acquire).unwrap();
        net.command(1, LockCommand::Release).unwrap();
        // Node 2's requests and node 1's releases arrive; the acknowledgements to node 2 are
        // still in flight when a copy of node 1's (released) request reaches node 2.
        for _ in 0..4 {
            net.step();
        }
        assert!(
            net.queue
                .iter()
                .all(|(_, to, m)| *to == 2 && matches!(m, LamportMsg::Ack { .. })),
            "{:?}",
            net.queue
        );
        net.queue
            .push_front(request.expect("node 1's request to node 2"));
        net.run();
        let g = granted(&net.take_events());
        assert!(g.iter().any(|&(n, _)| n == 2), "{g:?}");
    }

    #[test]
    fn a_release_delivered_again_after_the_next_request_keeps_that_request() {
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        net.command(1, LockCommand::Release).unwrap();
        let release = net.queue.iter().find(|(_, to, _)| *to == 2).cloned();
        net.run();
        // Node 1 asks again; a copy of its first release reaches node 2 after the new request.
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        net.queue.push_back(release.expect("the release to node 2"));
        net.run();
        assert!(
            net.nodes[1].queue.iter().any(|s| s.process.node == 1),
            "node 1's new request is still queued at node 2"
        );
    }

    #[test]
    fn rule5_grants_only_after_hearing_later_from_everyone() {
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.step(); // request reaches 2; 2's ack is queued
        assert!(net.take_events().is_empty());
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(1, f(1, 1))]);
    }

    #[test]
    fn requests_are_granted_in_timestamp_order() {
        let mut net = net(3);
        // 3 then 2 request before hearing anything: equal timestamps, broken by node id.
        net.command(3, LockCommand::Acquire).unwrap();
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(2, f(1, 2))]);
        net.command(2, LockCommand::Release).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(3, f(1, 3))]);
    }

    #[test]
    fn three_n_minus_one_messages_per_critical_section() {
        for n in [3u32, 5] {
            let mut net = net(n);
            net.command(1, LockCommand::Acquire).unwrap();
            net.run();
            net.command(1, LockCommand::Release).unwrap();
            net.run();
            assert_eq!(net.sent, 3 * (n as usize - 1), "N={n}");
        }
    }

    #[test]
    fn cancel_withdraws_the_request_and_unblocks_others() {
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(1, f(1, 1))]);
        net.command(3, LockCommand::Acquire).unwrap();
        net.command(3, LockCommand::Cancel).unwrap();
        net.command(1, LockCommand::Release).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(2, f(1, 2))]);
        assert!(
            net.nodes
                .iter()
                .all(|n| n.queue().all(|s| s.process.node == 2))
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
    fn peer_down_drops_its_request_and_the_successor_fence_is_higher() {
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        net.command(2, LockCommand::Acquire).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(1, f(1, 1))]);
        net.crash(1); // the holder dies without releasing
        net.run();
        // 2 enters, with a fence above the dead holder's.
        let g = granted(&net.take_events());
        assert!(
            matches!(g.as_slice(), &[(2, fence)] if fence > f(1, 1)),
            "{g:?}"
        );
    }

    #[test]
    fn a_returning_peer_is_counted_again() {
        let mut net = net(3);
        net.crash(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        assert_eq!(granted(&net.take_events()), vec![(1, f(1, 1))]); // without 3
        net.command(1, LockCommand::Release).unwrap();
        net.run();
        net.take_events();
        // 3 comes back with fresh state; 2's next request waits for 3's acknowledgment.
        net.down.clear();
        net.nodes[2] = LamportMutex::new(3, 1..=3).unwrap();
        for id in [1, 2] {
            let mut out = EffectsOf::<LamportMutex>::new();
            net.nodes[id as usize - 1].on_peer_up(Duration::ZERO, 3, &mut out);
            net.absorb(id, out);
        }
        net.command(2, LockCommand::Acquire).unwrap();
        net.step();
        net.step(); // requests reach 1 and 3, nothing acknowledged yet
        assert!(net.take_events().is_empty());
        net.run();
        assert_eq!(granted(&net.take_events()).len(), 1);
    }

    #[test]
    fn a_restarted_member_with_a_low_clock_waits_for_the_holder() {
        // Issue 11, second report: member 1 holds; member 3 restarts with a fresh clock and
        // asks: it must not enter before member 1 releases, and its fence is higher.
        let mut net = net(3);
        net.command(1, LockCommand::Acquire).unwrap();
        net.run();
        let held = granted(&net.take_events());
        net.crash(3);
        net.down.clear();
        net.nodes[2] = LamportMutex::new(3, 1..=3).unwrap().with_incarnation(1);
        net.start(3);
        for id in [1, 2] {
            let mut out = EffectsOf::<LamportMutex>::new();
            net.nodes[id as usize - 1].on_peer_up(Duration::ZERO, 3, &mut out);
            net.absorb(id, out);
        }
        net.command(3, LockCommand::Acquire).unwrap();
        net.run();
        assert!(net.nodes[2].is_active());
        assert!(
            granted(&net.take_events()).is_empty(),
            "member 1 still holds"
        );
        net.command(1, LockCommand::Release).unwrap();
        net.run();
        let g = granted(&net.take_events());
        assert!(
            matches!(g.as_slice(), &[(3, f)] if f > held[0].1),
            "{g:?} after {held:?}"
        );
    }

    #[test]
    fn misuse_is_refused_and_stale_input_dropped() {
        let mut m = LamportMutex::new(1, [1, 2]).unwrap();
        let mut out = EffectsOf::<LamportMutex>::new();
        assert_eq!(
            m.on_command(Duration::ZERO, LockCommand::Release, &mut out),
            Err(LockError::NotHeld)
        );
        assert_eq!(
            m.on_command(Duration::ZERO, LockCommand::Cancel, &mut out),
            Err(LockError::NotWaiting)
        );
        m.on_command(Duration::ZERO, LockCommand::Acquire, &mut out)
            .unwrap();
        assert_eq!(
            m.on_command(Duration::ZERO, LockCommand::Acquire, &mut out),
            Err(LockError::AlreadyWaiting)
        );
        out.clear();
        m.on_message(Duration::ZERO, 9, LamportMsg::Request { time: 1 }, &mut out); // not a member
        m.on_message(
            Duration::ZERO,
            2,
            LamportMsg::Ack { time: u64::MAX },
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(m.state(), LockState::Waiting);
        assert!(LamportMutex::new(3, [1, 2]).is_err());
    }
}
