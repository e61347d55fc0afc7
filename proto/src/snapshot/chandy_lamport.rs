//! The Chandy–Lamport snapshot (Chandy & Lamport 1985, "Distributed snapshots: determining
//! global states of distributed systems") of an [`Application`] run inside the core.
//!
//! Sans-IO: no networking, no actix or tokio, no clock reads; `now` is unused. **Needs FIFO
//! channels** (the network's connections and `actix_coord::driver::LocalLinks` are):
//! a marker must not overtake the application messages sent before it.
//!
//! The application is a state machine too; the core passes its messages through and takes
//! snapshots of it. For a snapshot `id`, started by its initiator:
//! 1. The initiator records its application's state, then sends a **marker** on every outgoing
//!    channel before any other message, and starts recording every incoming channel.
//! 2. A member receiving the first marker of `id` on channel `c` records its state, sends
//!    markers on every outgoing channel, records `c` as empty, and records every other incoming
//!    channel.
//! 3. A later marker of `id` on channel `c` closes `c`: its recorded state is the application
//!    messages received on `c` between the recording of the state and that marker.
//! 4. When every incoming channel is closed, the member's part is complete: it sends its state
//!    and its channels to the initiator, which emits the [`GlobalSnapshot`] once it has every
//!    member's part.
//!
//! The result is a *consistent cut*: every message whose receipt it records was sent before the
//! cut, and every message sent before the cut and not yet received is in a recorded channel.
//! So a quantity the application conserves (money in transfers) has the same total in every
//! snapshot; the stateright check in `middleware/tests/model_snapshot.rs` verifies it for N = 3.
//!
//! Messages per snapshot: N(N−1) markers and N−1 reports. Several snapshots may run at once
//! (up to [`SnapshotConfig::max_active`] on a member); each has its own recordings.
//!
//! **Faults.** Chandy–Lamport assumes no failures: a member declared down never sends its
//! markers, so every snapshot under way is abandoned ([`SnapshotEvent::Aborted`] on its
//! initiator). A member that has [`SnapshotConfig::max_active`] snapshots under way refuses the
//! marker of a new one and tells its initiator (`Refused`), which abandons it everywhere
//! (`Abandon`: every member drops its recording) and emits [`SnapshotEvent::Refused`]; so a
//! snapshot completes or fails, and no member keeps a place for one that cannot complete. A marker or report of an unknown snapshot from a non-member is rejected; a
//! report for a snapshot this node did not start is ignored.

use crate::protocol::{ConfigError, EffectsOf, Membership, NoTimer, NodeId, PeerWire, Protocol};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

/// A sans-IO application whose global state can be snapshotted: its whole state is
/// [`Application::State`], and it talks to its peers only through [`Outbox`].
pub trait Application: Clone + Debug {
    /// What the application's members send each other.
    type Msg: Clone + Debug + Serialize + DeserializeOwned;
    /// What its local user asks it.
    type Command: Clone + Debug;
    /// Its recorded state.
    type State: Clone + Debug + Serialize + DeserializeOwned;

    /// A command from the local user.
    fn on_command(&mut self, cmd: Self::Command, out: &mut Outbox<Self::Msg>);
    /// A message from member `from`.
    fn on_message(&mut self, from: NodeId, msg: Self::Msg, out: &mut Outbox<Self::Msg>);
    /// The state to record.
    fn state(&self) -> Self::State;
}

/// Messages an [`Application`] sends while handling one input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Outbox<M> {
    sends: Vec<(NodeId, M)>,
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Self { sends: Vec::new() }
    }
}

impl<M> Outbox<M> {
    /// Sends `msg` to member `to`.
    pub fn send(&mut self, to: NodeId, msg: M) {
        self.sends.push((to, msg));
    }
}

/// A snapshot's identity: its initiator and the initiator's number for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SnapshotId {
    /// The member that started it.
    pub initiator: NodeId,
    /// The initiator's number for it (increasing).
    pub number: u64,
}

/// One member's part of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocalSnapshot<S, M> {
    /// The application's state when the member recorded it.
    pub state: S,
    /// The messages in flight towards this member at the cut, per sender.
    pub channels: BTreeMap<NodeId, Vec<M>>,
}

/// A consistent global state: every member's state and every channel's messages in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GlobalSnapshot<S, M> {
    /// Which snapshot.
    pub id: SnapshotId,
    /// Each member's part.
    pub members: BTreeMap<NodeId, LocalSnapshot<S, M>>,
}

impl<S, M> GlobalSnapshot<S, M> {
    /// The messages in flight from `from` to `to` at the cut.
    pub fn in_flight(&self, from: NodeId, to: NodeId) -> &[M] {
        self.members
            .get(&to)
            .and_then(|l| l.channels.get(&from))
            .map_or(&[], Vec::as_slice)
    }
}

/// Messages of [`ChandyLamport`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SnapshotMsg<M, S> {
    /// An application message.
    App(M),
    /// Steps 1–3: the sender recorded its state for `id` before sending anything after this.
    Marker(SnapshotId),
    /// Step 4: the sender's part of `id`, to the initiator.
    Report {
        /// Which snapshot.
        id: SnapshotId,
        /// The sender's recorded state.
        state: S,
        /// Its recorded incoming channels.
        channels: BTreeMap<NodeId, Vec<M>>,
    },
    /// To the initiator: the sender refused a marker of `id` (too many snapshots under way);
    /// `id` cannot complete.
    Refused(SnapshotId),
    /// From the initiator: `id` is abandoned; drop its recording.
    Abandon(SnapshotId),
}

impl<M, S> PeerWire for SnapshotMsg<M, S>
where
    M: Serialize + DeserializeOwned + Send + 'static,
    S: Serialize + DeserializeOwned + Send + 'static,
{
    const TAG: &'static str = "actix_coord.chandy_lamport.v1";
}

/// Commands of [`ChandyLamport`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotCommand<C> {
    /// A command for the application.
    App(C),
    /// Start snapshot number `number` with this member as initiator (numbers must increase).
    Start {
        /// The initiator's number for it.
        number: u64,
    },
    /// Give up snapshot number `number` started here (its waiter timed out): the members are
    /// told to drop their recordings, and no event follows.
    Abandon {
        /// The initiator's number for it.
        number: u64,
    },
}

/// What a [`ChandyLamport`] member tells its local user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotEvent<S, M> {
    /// This member recorded its state for `id`.
    Recorded(SnapshotId),
    /// On the initiator: every member's part is in.
    Complete(GlobalSnapshot<S, M>),
    /// On the initiator: the snapshot was abandoned (a member went down).
    Aborted {
        /// Which snapshot.
        id: SnapshotId,
        /// The member that went down.
        down: NodeId,
    },
    /// On the initiator: member `by` refused a marker of the snapshot (too many under way
    /// there), so it was abandoned everywhere.
    Refused {
        /// Which snapshot.
        id: SnapshotId,
        /// The member that refused it.
        by: NodeId,
    },
    /// A message from `from` was refused and dropped; nothing changed.
    Rejected {
        /// Its sender.
        from: NodeId,
        /// Why.
        reason: &'static str,
    },
}

/// Why a [`SnapshotCommand`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// `Start` with a number not above the last one.
    #[error("snapshot number {0} was already used")]
    Reused(u64),
    /// Too many snapshots under way on this member.
    #[error("{0} snapshots already under way")]
    Busy(usize),
    /// A member is down: no snapshot can complete.
    #[error("member {0} is down")]
    MemberDown(NodeId),
}

/// Settings of a [`ChandyLamport`] member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotConfig {
    /// Most snapshots under way at once on one member (default 8).
    pub max_active: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self { max_active: 8 }
    }
}

/// A member's recording of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Recording<S, M> {
    state: S,
    /// Incoming channels still recorded (no marker yet).
    open: BTreeSet<NodeId>,
    channels: BTreeMap<NodeId, Vec<M>>,
}

/// The parts of one snapshot the initiator has received, per member.
type Parts<A> = BTreeMap<NodeId, LocalSnapshot<<A as Application>::State, <A as Application>::Msg>>;

/// One member running an [`Application`] and taking Chandy–Lamport snapshots of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChandyLamport<A: Application> {
    group: Membership,
    config: SnapshotConfig,
    app: A,
    recordings: BTreeMap<SnapshotId, Recording<A::State, A::Msg>>,
    /// On the initiator: the parts received so far.
    collecting: BTreeMap<SnapshotId, Parts<A>>,
    /// Snapshots this member has finished its part of (markers of them are ignored); the
    /// newest [`DONE_MEMORY`] per member.
    done: BTreeSet<SnapshotId>,
    last_started: u64,
}

type Effects<A> = EffectsOf<ChandyLamport<A>>;

/// How many finished snapshots a member remembers, so that a late marker of one does not start
/// it again. A marker older than that many snapshots would start a recording that never
/// completes (it holds one of the [`SnapshotConfig::max_active`] places until a member goes
/// down).
pub const DONE_MEMORY: usize = 4096;

impl<A: Application> ChandyLamport<A>
where
    A::Msg: Eq + Hash,
    A::State: Eq + Hash,
{
    /// Member `me` of `members`, running `app`.
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid membership or a zero `max_active`.
    pub fn new(
        me: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        app: A,
        config: SnapshotConfig,
    ) -> Result<Self, ConfigError> {
        if config.max_active == 0 {
            return Err(ConfigError::Inconsistent("max_active must be positive"));
        }
        Ok(Self {
            group: Membership::new(me, members)?,
            config,
            app,
            recordings: BTreeMap::new(),
            collecting: BTreeMap::new(),
            done: BTreeSet::new(),
            last_started: 0,
        })
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// Snapshots this member is recording.
    pub fn recording(&self) -> usize {
        self.recordings.len()
    }

    /// Snapshots under way here: recorded, or started here and not yet complete.
    fn active(&self) -> usize {
        let own_done_recording = self
            .collecting
            .keys()
            .filter(|id| !self.recordings.contains_key(id))
            .count();
        self.recordings.len() + own_done_recording
    }

    fn flush(&self, outbox: Outbox<A::Msg>, out: &mut Effects<A>) {
        for (to, msg) in outbox.sends {
            if self.group.is_peer(to) {
                out.send(to, SnapshotMsg::App(msg));
            }
        }
    }

    /// Steps 1 and 2: record the state, send the markers, record the incoming channels
    /// (`except` is the channel the first marker came on: empty).
    fn record(&mut self, id: SnapshotId, except: Option<NodeId>, out: &mut Effects<A>) {
        let open: BTreeSet<NodeId> = self.group.peers().filter(|&p| Some(p) != except).collect();
        let channels = self.group.peers().map(|p| (p, Vec::new())).collect();
        self.recordings.insert(
            id,
            Recording {
                state: self.app.state(),
                open,
                channels,
            },
        );
        out.emit(SnapshotEvent::Recorded(id));
        for p in self.group.peers().collect::<Vec<_>>() {
            out.send(p, SnapshotMsg::Marker(id));
        }
        self.maybe_finish(id, out);
    }

    /// Step 4: when no channel is open, report (or, on the initiator, keep) this part.
    fn maybe_finish(&mut self, id: SnapshotId, out: &mut Effects<A>) {
        if !self.recordings.get(&id).is_some_and(|r| r.open.is_empty()) {
            return;
        }
        let Some(r) = self.recordings.remove(&id) else {
            return;
        };
        self.finished(id);
        if id.initiator == self.group.me() {
            self.collect(
                id,
                self.group.me(),
                LocalSnapshot {
                    state: r.state,
                    channels: r.channels,
                },
                out,
            );
        } else {
            out.send(
                id.initiator,
                SnapshotMsg::Report {
                    id,
                    state: r.state,
                    channels: r.channels,
                },
            );
        }
    }

    /// Drops every trace of `id` here and, on its initiator, tells the peers to do the same.
    fn abandon(&mut self, id: SnapshotId, out: &mut Effects<A>) {
        self.recordings.remove(&id);
        self.finished(id);
        if id.initiator == self.group.me() && self.collecting.remove(&id).is_some() {
            for p in self.group.peers().collect::<Vec<_>>() {
                out.send(p, SnapshotMsg::Abandon(id));
            }
        }
    }

    fn finished(&mut self, id: SnapshotId) {
        self.done.insert(id);
        while self.done.len() > DONE_MEMORY {
            let oldest = self.done.iter().min_by_key(|d| d.number).copied();
            if let Some(o) = oldest {
                self.done.remove(&o);
            }
        }
    }

    fn collect(
        &mut self,
        id: SnapshotId,
        from: NodeId,
        part: LocalSnapshot<A::State, A::Msg>,
        out: &mut Effects<A>,
    ) {
        let Some(parts) = self.collecting.get_mut(&id) else {
            return;
        };
        parts.insert(from, part);
        if parts.len() == self.group.members().len()
            && let Some(members) = self.collecting.remove(&id)
        {
            out.emit(SnapshotEvent::Complete(GlobalSnapshot { id, members }));
        }
    }
}

impl<A: Application> Protocol for ChandyLamport<A>
where
    A::Msg: Eq + Hash,
    A::State: Eq + Hash,
{
    type Msg = SnapshotMsg<A::Msg, A::State>;
    type Event = SnapshotEvent<A::State, A::Msg>;
    type Timer = NoTimer;
    type Command = SnapshotCommand<A::Command>;
    type Error = SnapshotError;

    fn id(&self) -> NodeId {
        self.group.me()
    }

    fn on_command(
        &mut self,
        _now: Duration,
        cmd: Self::Command,
        out: &mut Effects<A>,
    ) -> Result<(), SnapshotError> {
        match cmd {
            SnapshotCommand::App(c) => {
                let mut outbox = Outbox::default();
                self.app.on_command(c, &mut outbox);
                self.flush(outbox, out);
            }
            SnapshotCommand::Start { number } => {
                if number <= self.last_started {
                    return Err(SnapshotError::Reused(number));
                }
                if let Some(&d) = self.group.down().first() {
                    return Err(SnapshotError::MemberDown(d));
                }
                if self.active() >= self.config.max_active {
                    return Err(SnapshotError::Busy(self.config.max_active));
                }
                self.last_started = number;
                let id = SnapshotId {
                    initiator: self.group.me(),
                    number,
                };
                self.collecting.insert(id, BTreeMap::new());
                self.record(id, None, out);
            }
            SnapshotCommand::Abandon { number } => {
                let id = SnapshotId {
                    initiator: self.group.me(),
                    number,
                };
                self.abandon(id, out);
            }
        }
        Ok(())
    }

    fn on_message(&mut self, _now: Duration, from: NodeId, msg: Self::Msg, out: &mut Effects<A>) {
        if !self.group.is_peer(from) {
            out.emit(SnapshotEvent::Rejected {
                from,
                reason: "not a member",
            });
            return;
        }
        match msg {
            SnapshotMsg::App(m) => {
                for r in self.recordings.values_mut() {
                    if r.open.contains(&from)
                        && let Some(ch) = r.channels.get_mut(&from)
                    {
                        ch.push(m.clone());
                    }
                }
                let mut outbox = Outbox::default();
                self.app.on_message(from, m, &mut outbox);
                self.flush(outbox, out);
            }
            SnapshotMsg::Marker(id) => {
                if !self.group.is_peer(id.initiator) && id.initiator != self.group.me() {
                    out.emit(SnapshotEvent::Rejected {
                        from,
                        reason: "marker of a snapshot started by a non-member",
                    });
                    return;
                }
                if self.done.contains(&id) {
                    return;
                }
                if let Some(r) = self.recordings.get_mut(&id) {
                    r.open.remove(&from);
                    self.maybe_finish(id, out);
                } else if self.active() >= self.config.max_active {
                    // Refused: the snapshot cannot complete, so its initiator is told (it
                    // abandons it everywhere) instead of waiting forever, and a later marker of
                    // it is ignored.
                    out.emit(SnapshotEvent::Rejected {
                        from,
                        reason: "too many snapshots under way",
                    });
                    self.finished(id);
                    if id.initiator == self.group.me() {
                        self.abandon(id, out);
                    } else {
                        out.send(id.initiator, SnapshotMsg::Refused(id));
                    }
                } else {
                    self.record(id, Some(from), out);
                }
            }
            SnapshotMsg::Report {
                id,
                state,
                channels,
            } => {
                if id.initiator != self.group.me() {
                    return;
                }
                let part = LocalSnapshot { state, channels };
                self.collect(id, from, part, out);
            }
            SnapshotMsg::Refused(id) => {
                if id.initiator == self.group.me() && self.collecting.contains_key(&id) {
                    self.abandon(id, out);
                    out.emit(SnapshotEvent::Refused { id, by: from });
                }
            }
            SnapshotMsg::Abandon(id) => {
                if id.initiator == from {
                    self.recordings.remove(&id);
                    self.finished(id);
                }
            }
        }
    }

    fn on_timer(&mut self, _now: Duration, timer: NoTimer, _out: &mut Effects<A>) {
        match timer {}
    }

    fn on_peer_down(&mut self, _now: Duration, peer: NodeId, out: &mut Effects<A>) {
        if !self.group.is_peer(peer) {
            return;
        }
        self.group.set_down(peer);
        for id in std::mem::take(&mut self.collecting).into_keys() {
            out.emit(SnapshotEvent::Aborted { id, down: peer });
        }
        for id in std::mem::take(&mut self.recordings).into_keys() {
            self.finished(id);
        }
    }

    fn on_peer_up(&mut self, _now: Duration, peer: NodeId, _out: &mut Effects<A>) {
        self.group.set_up(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Net;

    /// Members hold money and send some of it to each other.
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    struct Bank {
        balance: u64,
    }

    impl Application for Bank {
        type Msg = u64;
        type Command = (NodeId, u64);
        type State = u64;
        fn on_command(&mut self, (to, amount): (NodeId, u64), out: &mut Outbox<u64>) {
            let amount = amount.min(self.balance);
            self.balance -= amount;
            out.send(to, amount);
        }
        fn on_message(&mut self, _from: NodeId, amount: u64, _out: &mut Outbox<u64>) {
            self.balance += amount;
        }
        fn state(&self) -> u64 {
            self.balance
        }
    }

    type Core = ChandyLamport<Bank>;

    /// `n` members with 100 each, on FIFO channels (pick a channel with `step_pick`), counting
    /// the snapshot's own messages only.
    fn net(n: u32) -> Net<Core> {
        let ids: Vec<u32> = (1..=n).collect();
        let cores = ids
            .iter()
            .map(|&i| {
                Core::new(
                    i,
                    ids.clone(),
                    Bank { balance: 100 },
                    SnapshotConfig::default(),
                )
                .unwrap()
            })
            .collect();
        Net::unstarted(cores)
            .counting(|m| matches!(m, SnapshotMsg::Marker(_) | SnapshotMsg::Report { .. }))
    }

    /// The snapshots completed so far.
    fn completed(net: &Net<Core>) -> Vec<GlobalSnapshot<u64, u64>> {
        net.events
            .iter()
            .filter_map(|(_, e)| match e {
                SnapshotEvent::Complete(g) => Some(g.clone()),
                _ => None,
            })
            .collect()
    }

    /// The snapshots refused so far.
    fn refused_ids(net: &Net<Core>) -> Vec<SnapshotId> {
        net.events
            .iter()
            .filter_map(|(_, e)| match e {
                SnapshotEvent::Refused { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    fn total(g: &GlobalSnapshot<u64, u64>) -> u64 {
        g.members
            .values()
            .map(|l| l.state + l.channels.values().flatten().sum::<u64>())
            .sum()
    }

    /// With one place per member, concurrent initiators refuse each other's markers: every
    /// snapshot still ends, complete or refused (its initiator told, never left waiting), and no
    /// member keeps a recording. Before, a refused marker was dropped: that snapshot never
    /// completed, its waiter hung, and its places leaked.
    #[test]
    fn a_refused_marker_ends_its_snapshot_everywhere() {
        let mut rng = crate::protocol::SplitMix64::new(5);
        let mut refused = 0;
        for _ in 0..200 {
            let mut net = net(3);
            for n in &mut net.nodes {
                n.config.max_active = 1;
            }
            let mut started = 0;
            for at in 1..=3u32 {
                if net
                    .command(at, SnapshotCommand::Start { number: 1 })
                    .is_ok()
                {
                    started += 1;
                }
            }
            while net.step_pick(rng.next_u64() as usize) {}
            assert_eq!(
                completed(&net).len() + refused_ids(&net).len(),
                started,
                "every snapshot ends: {} complete, {:?} refused",
                completed(&net).len(),
                refused_ids(&net)
            );
            for n in &net.nodes {
                assert_eq!(n.recording(), 0, "node {} still records", n.group.me());
                assert!(
                    n.collecting.is_empty(),
                    "node {} still collects",
                    n.group.me()
                );
            }
            refused += refused_ids(&net).len();
        }
        assert!(refused > 0, "the schedules made some refusals");
    }

    #[test]
    fn every_snapshot_conserves_the_money_under_random_fifo_schedules() {
        let mut rng = crate::protocol::SplitMix64::new(11);
        let mut snapshots = 0;
        for _ in 0..300 {
            let mut net = net(3);
            let mut number = 0;
            for _ in 0..40 {
                let at = (rng.next_u64() % 3) as u32 + 1;
                match rng.next_u64() % 6 {
                    0 => {
                        number += 1;
                        match net.command(at, SnapshotCommand::Start { number }) {
                            Ok(()) | Err(SnapshotError::Busy(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    1 | 2 => {
                        let to = at % 3 + 1;
                        net.command(at, SnapshotCommand::App((to, rng.next_u64() % 30)))
                            .unwrap();
                    }
                    _ => {
                        net.step_pick(rng.next_u64() as usize);
                    }
                }
            }
            while net.step_pick(rng.next_u64() as usize) {}
            for g in &completed(&net) {
                assert_eq!(total(g), 300, "{g:?}");
            }
            snapshots += completed(&net).len();
        }
        assert!(snapshots > 300, "{snapshots} snapshots completed");
    }

    #[test]
    fn a_snapshot_costs_n_times_n_minus_one_markers_and_n_minus_one_reports() {
        for n in [3u32, 5] {
            let mut net = net(n);
            net.command(1, SnapshotCommand::Start { number: 1 })
                .unwrap();
            while net.step_pick(0) {}
            assert_eq!(net.sent as u32, n * (n - 1) + (n - 1), "n = {n}");
            assert_eq!(completed(&net).len(), 1);
            assert_eq!(total(&completed(&net)[0]), u64::from(n) * 100);
        }
    }

    #[test]
    fn money_in_flight_is_recorded_in_its_channel() {
        let mut net = net(2);
        net.command(1, SnapshotCommand::App((2, 30))).unwrap();
        net.command(1, SnapshotCommand::Start { number: 1 })
            .unwrap();
        // Node 2 records its state on its own: it starts the same snapshot's part when the
        // marker comes, after the 30 (FIFO), so the 30 is in node 2's state, not in flight.
        while net.step_pick(0) {}
        let g = &completed(&net)[0];
        assert_eq!(g.members[&1].state, 70);
        assert_eq!(g.members[&2].state, 130);
        // Now the other way: node 2 sends 50 while node 1's snapshot is under way.
        net.command(1, SnapshotCommand::Start { number: 2 })
            .unwrap();
        net.command(2, SnapshotCommand::App((1, 50))).unwrap();
        while net.step_pick(0) {}
        let g = &completed(&net)[1];
        assert_eq!(g.in_flight(2, 1), [50]);
        assert_eq!(total(g), 200);
    }

    #[test]
    fn reused_numbers_busy_members_and_strangers_are_refused() {
        let ids = [1, 2, 3];
        let mut a = Core::new(
            1,
            ids,
            Bank { balance: 1 },
            SnapshotConfig { max_active: 1 },
        )
        .unwrap();
        let mut out = EffectsOf::<Core>::new();
        a.on_command(
            Duration::ZERO,
            SnapshotCommand::Start { number: 5 },
            &mut out,
        )
        .unwrap();
        assert_eq!(
            a.on_command(
                Duration::ZERO,
                SnapshotCommand::Start { number: 5 },
                &mut out
            ),
            Err(SnapshotError::Reused(5))
        );
        assert_eq!(
            a.on_command(
                Duration::ZERO,
                SnapshotCommand::Start { number: 6 },
                &mut out
            ),
            Err(SnapshotError::Busy(1))
        );
        out.clear();
        a.on_message(Duration::ZERO, 9, SnapshotMsg::App(1), &mut out);
        assert!(matches!(
            out.events().next(),
            Some(SnapshotEvent::Rejected { from: 9, .. })
        ));
        assert_eq!(a.app().balance, 1);
        // A member goes down: the snapshot is abandoned, and no new one starts.
        out.clear();
        a.on_peer_down(Duration::ZERO, 3, &mut out);
        assert!(matches!(
            out.events().next(),
            Some(SnapshotEvent::Aborted { down: 3, .. })
        ));
        assert_eq!(
            a.on_command(
                Duration::ZERO,
                SnapshotCommand::Start { number: 7 },
                &mut out
            ),
            Err(SnapshotError::MemberDown(3))
        );
    }
}
