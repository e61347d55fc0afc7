//! The bully election (Garcia-Molina 1982, "Elections in a Distributed Computing System"), with
//! terms, heartbeats, hold-down and an optional quorum.
//!
//! Sans-IO: no networking, no actix or tokio, no clock reads (`Instant::now()`,
//! `SystemTime::now()`), no `thread_rng()`. Time enters as `now` and timers are data
//! ([`BullyTimer`]); the optional election jitter is drawn from a seeded [`SplitMix64`].
//!
//! # The algorithm
//! The live member with the highest id leads.
//! 1. A node that suspects the leader, or comes back, holds an **election**: it sends ELECTION
//!    to every live member with a higher id and waits `answer_timeout`.
//! 2. A node receiving ELECTION from a lower id answers OK and holds its own election (unless it
//!    already is in one). A leader receiving it answers OK and re-asserts itself with COORDINATOR
//!    to the sender alone.
//! 3. A candidate that gets no OK within `answer_timeout` wins and sends COORDINATOR to all.
//!    One that gets an OK waits `coordinator_timeout` for the COORDINATOR, and starts over
//!    without it.
//! 4. The leader sends a heartbeat every `heartbeat_every`; a follower that hears nothing from
//!    its leader for `leader_timeout` (or whose leader is declared down) holds an election.
//!
//! Best case (the highest live id starts): N−1 COORDINATOR messages. Worst case (the lowest id
//! starts): every node holds an election, O(N²) messages (`worst_case_is_quadratic` below).
//!
//! # Terms
//! A [`Term`] is a ballot `(round, leader)`, ordered by round then id, like a Paxos ballot. A new
//! leader takes `round = highest round it knows + 1`, so terms strictly increase from one leader
//! to the next, and two leaders can never share a term. Every leader message (COORDINATOR,
//! heartbeat) carries the term; a message from an older term than the receiver knows is ignored
//! and answered with STALE, which carries the newer term: a stale leader (back from a crash,
//! having lost its memory, or from the other side of a partition) learns it and steps down, then
//! (if it is the highest) wins again with a higher term.
//!
//! # Hold-down
//! With `hold_down`, a node that starts (comes back) does not compete for `hold_down`: it
//! answers no ELECTION and follows whichever leader it hears, and only then preempts a lower
//! leader. A crash-looping highest node thus changes leadership at most once per hold-down. If no
//! leader is heard within `leader_timeout`, it holds an election at once.
//!
//! # Quorum
//! Plain bully elects one leader per side of a partition (split brain; the terms make it
//! visible). With `quorum`, a winner first collects acknowledgments of its COORDINATOR from a
//! majority of the configured membership (itself included) and only then leads; followers
//! recognise a leader only on its heartbeat, which follows the majority. A leader that does not
//! get a majority of heartbeat acknowledgments within a heartbeat period steps down. The minority
//! side of a partition thus never has a leader; during a leader change, two leaders may overlap
//! for at most a heartbeat period, with different terms.

use crate::protocol::{ConfigError, EffectsOf, Membership, NodeId, PeerWire, Protocol, SplitMix64};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// A leadership term: a ballot `(round, leader)`, ordered by round, then leader id.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term {
    /// Strictly increasing from one leader to the next.
    pub round: u64,
    /// The leader of this term.
    pub leader: NodeId,
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.round, self.leader)
    }
}

/// Settings of a [`Bully`] node. All members of a group should use the same.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BullyConfig {
    /// How long a candidate waits for an OK before winning.
    pub answer_timeout: Duration,
    /// How long a candidate that got an OK waits for the COORDINATOR before starting over.
    pub coordinator_timeout: Duration,
    /// Leader heartbeat period.
    pub heartbeat_every: Duration,
    /// A follower that hears nothing from its leader for this long holds an election. Must
    /// exceed `heartbeat_every`.
    pub leader_timeout: Duration,
    /// After starting, do not compete for this long (see the module docs).
    pub hold_down: Option<Duration>,
    /// Lead only with a majority of the configured membership (see the module docs).
    pub quorum: bool,
    /// Delay an election triggered by a lost leader by a random duration up to this (zero: no
    /// delay), to spread simultaneous elections.
    pub election_jitter: Duration,
    /// Seed of the jitter.
    pub seed: u64,
}

impl Default for BullyConfig {
    /// 150 ms answer timeout, 300 ms coordinator timeout, 100 ms heartbeats, 350 ms leader
    /// timeout, no hold-down, no quorum, no jitter.
    fn default() -> Self {
        Self {
            answer_timeout: Duration::from_millis(150),
            coordinator_timeout: Duration::from_millis(300),
            heartbeat_every: Duration::from_millis(100),
            leader_timeout: Duration::from_millis(350),
            hold_down: None,
            quorum: false,
            election_jitter: Duration::ZERO,
            seed: 0,
        }
    }
}

impl BullyConfig {
    /// Check the settings.
    ///
    /// # Errors
    /// [`ConfigError::ZeroDuration`] for a zero timeout or period, [`ConfigError::Inconsistent`]
    /// when `leader_timeout` does not exceed `heartbeat_every`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (d, name) in [
            (self.answer_timeout, "answer_timeout"),
            (self.coordinator_timeout, "coordinator_timeout"),
            (self.heartbeat_every, "heartbeat_every"),
            (self.leader_timeout, "leader_timeout"),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.hold_down.is_some_and(|h| h.is_zero()) {
            return Err(ConfigError::ZeroDuration("hold_down"));
        }
        if self.leader_timeout <= self.heartbeat_every {
            return Err(ConfigError::Inconsistent(
                "leader_timeout must exceed heartbeat_every",
            ));
        }
        Ok(())
    }
}

/// Messages of [`Bully`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BullyMsg {
    /// Step 1: the sender holds an election (sent to higher ids only).
    Election,
    /// Step 2: OK, a higher node is alive and takes over.
    Answer,
    /// Step 3: the sender leads from `term` on (`term.leader` is the sender).
    Coordinator {
        /// The new term.
        term: Term,
    },
    /// Step 4: the leader of `term` is alive.
    Heartbeat {
        /// The leader's term.
        term: Term,
    },
    /// Quorum mode: the sender accepts the leader of `term` (answer to COORDINATOR or heartbeat).
    Ack {
        /// The term accepted.
        term: Term,
    },
    /// Your leader message is from an older term than `term`, the newest the sender knows.
    Stale {
        /// The newer term.
        term: Term,
    },
    /// The leader of `term` resigns.
    Resign {
        /// The term ended.
        term: Term,
    },
}

impl PeerWire for BullyMsg {
    const TAG: &'static str = "actix_coord.bully.v1";
}

/// Timers of [`Bully`]. A timer that fires when it no longer matters is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BullyTimer {
    /// Candidate: no OK came, so win.
    Answer,
    /// OK came, but no COORDINATOR: start over.
    Coordinator,
    /// Leader: send a heartbeat (quorum mode: and check the acknowledgments).
    Heartbeat,
    /// Follower: the leader has been silent too long.
    LeaderLost,
    /// End of the hold-down after a start.
    HoldDown,
    /// Quorum mode: the COORDINATOR did not collect a majority in time.
    Claim,
    /// End of the election jitter: start the election.
    Jitter,
}

/// What a [`Bully`] node tells its local user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BullyEvent {
    /// The leader this node recognises changed.
    LeaderChanged {
        /// The new leader, `None` while there is none.
        leader: Option<NodeId>,
        /// The new leader's term (for `None`: the term of the leader that was lost).
        term: Term,
    },
}

/// Commands of a [`Bully`] node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BullyCommand {
    /// Compete (again): end any hold-down or resignation and hold an election now.
    Campaign,
    /// Stop leading and stop competing until the next `Campaign`.
    Resign,
}

/// A refused [`BullyCommand`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BullyError {
    /// `Resign` by a node that does not lead.
    #[error("this node is not the leader")]
    NotLeader,
}

/// Where a node stands in the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Following the recognised leader (or none).
    Follower,
    /// Sent ELECTION, waiting for an OK.
    Candidate,
    /// Got an OK, waiting for the COORDINATOR.
    AwaitingCoordinator,
    /// Quorum mode: announced `term`, collecting acknowledgments.
    Claiming {
        /// The announced term.
        term: Term,
        /// Members that acknowledged (self included).
        acks: BTreeSet<NodeId>,
    },
    /// Leading in `term`.
    Leader {
        /// The term led.
        term: Term,
        /// Quorum mode: members that acknowledged a heartbeat this period.
        acks: BTreeSet<NodeId>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Passive {
    No,
    HoldDown,
    Resigned,
}

/// One member of a bully election.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bully {
    group: Membership,
    cfg: BullyConfig,
    role: Role,
    /// The recognised leader and its term.
    leader: Option<(NodeId, Term)>,
    /// The highest term heard of.
    known: Term,
    passive: Passive,
    rng: SplitMix64,
}

impl Bully {
    /// Member `me` of the group `members`. Call [`Protocol::on_start`] to begin.
    ///
    /// # Errors
    /// [`ConfigError`] when the membership or the settings are invalid.
    pub fn new(
        me: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        cfg: BullyConfig,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self {
            group: Membership::new(me, members)?,
            rng: SplitMix64::new(cfg.seed ^ u64::from(me)),
            cfg,
            role: Role::Follower,
            leader: None,
            known: Term::default(),
            passive: Passive::No,
        })
    }

    /// Start knowing `term` (the highest term this node heard of before a restart, if the shell
    /// persists it): a returning node then never claims a term older than the current one.
    /// Without it, a returning node may briefly lead in a stale term until a STALE answer
    /// corrects it (see the module docs).
    pub fn with_known_term(mut self, term: Term) -> Self {
        self.known = self.known.max(term);
        self
    }

    /// The recognised leader and its term.
    pub fn leader(&self) -> Option<(NodeId, Term)> {
        self.leader
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// Where this node stands.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The highest term heard of.
    pub fn known_term(&self) -> Term {
        self.known
    }

    fn majority(&self) -> usize {
        self.group.members().len() / 2 + 1
    }

    fn set_leader(&mut self, leader: Option<(NodeId, Term)>, out: &mut EffectsOf<Self>) {
        if self.leader == leader {
            return;
        }
        let term = leader.map_or(self.leader.map_or(self.known, |(_, t)| t), |(_, t)| t);
        self.leader = leader;
        out.emit(BullyEvent::LeaderChanged {
            leader: leader.map(|(l, _)| l),
            term,
        });
    }

    fn in_election(&self) -> bool {
        matches!(
            self.role,
            Role::Candidate | Role::AwaitingCoordinator | Role::Claiming { .. }
        )
    }

    /// An election because the leader is gone, after the configured jitter.
    fn elect_soon(&mut self, now: Duration, out: &mut EffectsOf<Self>) {
        if self.cfg.election_jitter.is_zero() {
            self.start_election(now, out);
        } else {
            let after = self.rng.duration_up_to(self.cfg.election_jitter);
            out.set_timer(BullyTimer::Jitter, after);
        }
    }

    // Step 1.
    fn start_election(&mut self, now: Duration, out: &mut EffectsOf<Self>) {
        self.role = Role::Candidate;
        out.cancel_timer(BullyTimer::Coordinator);
        out.cancel_timer(BullyTimer::LeaderLost);
        let me = self.group.me();
        let higher: Vec<NodeId> = self.group.live_peers().filter(|&p| p > me).collect();
        if higher.is_empty() {
            self.win(now, out);
            return;
        }
        for p in higher {
            out.send(p, BullyMsg::Election);
        }
        out.set_timer(BullyTimer::Answer, self.cfg.answer_timeout);
    }

    // Step 3, winner's side.
    fn win(&mut self, now: Duration, out: &mut EffectsOf<Self>) {
        let term = Term {
            round: self.known.round + 1,
            leader: self.group.me(),
        };
        self.known = term;
        out.cancel_timer(BullyTimer::Answer);
        if self.cfg.quorum {
            self.role = Role::Claiming {
                term,
                acks: BTreeSet::from([self.group.me()]),
            };
            out.broadcast(BullyMsg::Coordinator { term });
            out.set_timer(BullyTimer::Claim, self.cfg.answer_timeout);
            self.check_claim(now, out);
        } else {
            out.broadcast(BullyMsg::Coordinator { term });
            self.lead(term, out);
        }
    }

    fn lead(&mut self, term: Term, out: &mut EffectsOf<Self>) {
        self.role = Role::Leader {
            term,
            acks: BTreeSet::new(),
        };
        out.cancel_timer(BullyTimer::Claim);
        out.cancel_timer(BullyTimer::LeaderLost);
        out.set_timer(BullyTimer::Heartbeat, self.cfg.heartbeat_every);
        self.set_leader(Some((self.group.me(), term)), out);
    }

    fn check_claim(&mut self, _now: Duration, out: &mut EffectsOf<Self>) {
        let Role::Claiming { term, acks } = &self.role else {
            return;
        };
        if acks.len() >= self.majority() {
            let term = *term;
            // Followers recognise a quorum leader on its first heartbeat.
            out.broadcast(BullyMsg::Heartbeat { term });
            self.lead(term, out);
        }
    }

    fn step_down(&mut self, out: &mut EffectsOf<Self>) {
        self.role = Role::Follower;
        out.cancel_timer(BullyTimer::Heartbeat);
        out.cancel_timer(BullyTimer::Claim);
        self.set_leader(None, out);
        out.set_timer(BullyTimer::LeaderLost, self.cfg.leader_timeout);
    }

    fn follow(&mut self, leader: NodeId, term: Term, recognise: bool, out: &mut EffectsOf<Self>) {
        self.known = self.known.max(term);
        self.role = Role::Follower;
        for t in [
            BullyTimer::Answer,
            BullyTimer::Coordinator,
            BullyTimer::Claim,
            BullyTimer::Heartbeat,
        ] {
            out.cancel_timer(t);
        }
        out.set_timer(BullyTimer::LeaderLost, self.cfg.leader_timeout);
        if recognise {
            self.set_leader(Some((leader, term)), out);
        } else if self.leader != Some((leader, term)) {
            self.set_leader(None, out); // a new leader is proposed; the old one is over
        }
        if self.cfg.quorum {
            out.send(leader, BullyMsg::Ack { term });
        }
    }

    /// A leader message (COORDINATOR or heartbeat) of `term` from `from`.
    fn on_leader_msg(
        &mut self,
        now: Duration,
        from: NodeId,
        term: Term,
        heartbeat: bool,
        out: &mut EffectsOf<Self>,
    ) {
        if term.leader != from {
            return; // malformed
        }
        if term < self.known {
            out.send(from, BullyMsg::Stale { term: self.known });
            return;
        }
        if from < self.group.me()
            && self.passive != Passive::HoldDown
            && self.passive != Passive::Resigned
        {
            // A lower node leads: bully it, with a higher term. Its term is at least the newest
            // known, so a leader here is superseded: it steps down first, so that its view
            // (which other services follow) never says "me" while it campaigns.
            self.known = self.known.max(term);
            if self.is_leader() {
                self.step_down(out);
            }
            if !self.in_election() {
                self.start_election(now, out);
            }
            return;
        }
        // In quorum mode a COORDINATOR is only a proposal: acknowledge, recognise on heartbeat.
        let recognise = heartbeat || !self.cfg.quorum;
        self.follow(from, term, recognise, out);
    }

    fn stop_competing(&mut self, out: &mut EffectsOf<Self>) {
        if self.is_leader() {
            self.step_down(out);
        }
    }
}

impl Protocol for Bully {
    type Msg = BullyMsg;
    type Event = BullyEvent;
    type Timer = BullyTimer;
    type Command = BullyCommand;
    type Error = BullyError;

    fn id(&self) -> NodeId {
        self.group.me()
    }

    /// A node that (re)starts holds an election, or with a hold-down listens first.
    fn on_start(&mut self, now: Duration, out: &mut EffectsOf<Self>) {
        match self.cfg.hold_down {
            Some(h) => {
                self.passive = Passive::HoldDown;
                out.set_timer(BullyTimer::HoldDown, h);
                out.set_timer(BullyTimer::LeaderLost, self.cfg.leader_timeout);
            }
            None => self.start_election(now, out),
        }
    }

    fn on_command(
        &mut self,
        now: Duration,
        cmd: BullyCommand,
        out: &mut EffectsOf<Self>,
    ) -> Result<(), BullyError> {
        match cmd {
            BullyCommand::Campaign => {
                self.passive = Passive::No;
                out.cancel_timer(BullyTimer::HoldDown);
                if !self.is_leader() {
                    self.start_election(now, out);
                }
                Ok(())
            }
            BullyCommand::Resign => {
                let Role::Leader { term, .. } = self.role else {
                    return Err(BullyError::NotLeader);
                };
                self.passive = Passive::Resigned;
                out.broadcast(BullyMsg::Resign { term });
                self.stop_competing(out);
                Ok(())
            }
        }
    }

    fn on_message(
        &mut self,
        now: Duration,
        from: NodeId,
        msg: BullyMsg,
        out: &mut EffectsOf<Self>,
    ) {
        if !self.group.is_peer(from) {
            return;
        }
        // Hearing from a node proves it is up, whatever the failure detector said last: a node
        // that thinks a returned higher node is still down would otherwise keep winning
        // elections against it, each with a higher term.
        self.group.set_up(from);
        match msg {
            // Step 2.
            BullyMsg::Election => {
                if from > self.group.me() || self.passive != Passive::No {
                    return; // elections go upwards; a passive node does not compete
                }
                out.send(from, BullyMsg::Answer);
                match self.role {
                    Role::Leader { term, .. } => out.send(from, BullyMsg::Coordinator { term }),
                    Role::Follower => self.start_election(now, out),
                    Role::Candidate | Role::AwaitingCoordinator | Role::Claiming { .. } => {}
                }
            }
            BullyMsg::Answer => {
                if from > self.group.me() && self.role == Role::Candidate {
                    self.role = Role::AwaitingCoordinator;
                    out.cancel_timer(BullyTimer::Answer);
                    out.set_timer(BullyTimer::Coordinator, self.cfg.coordinator_timeout);
                }
            }
            BullyMsg::Coordinator { term } => self.on_leader_msg(now, from, term, false, out),
            BullyMsg::Heartbeat { term } => self.on_leader_msg(now, from, term, true, out),
            BullyMsg::Ack { term } => match &mut self.role {
                Role::Claiming { term: t, acks } if *t == term => {
                    acks.insert(from);
                    self.check_claim(now, out);
                }
                Role::Leader { term: t, acks } if *t == term => {
                    acks.insert(from);
                }
                _ => {}
            },
            BullyMsg::Stale { term } => {
                let leading = self.is_leader() || matches!(self.role, Role::Claiming { .. });
                if term <= self.known || !leading || !self.group.is_member(term.leader) {
                    return;
                }
                self.known = term;
                if term.leader > self.group.me() {
                    // A higher node led more recently than us: it is the rightful leader (a
                    // node believing it down would otherwise out-bid it, term after term).
                    self.group.set_up(term.leader);
                    self.follow(term.leader, term, !self.cfg.quorum, out);
                } else {
                    // A lower node, or our own previous incarnation (we restarted and forgot).
                    self.step_down(out);
                    if self.passive == Passive::No {
                        self.start_election(now, out);
                    }
                }
            }
            BullyMsg::Resign { term } => {
                if self.leader == Some((from, term)) {
                    self.set_leader(None, out);
                    if self.passive != Passive::Resigned {
                        self.elect_soon(now, out);
                    }
                }
            }
        }
    }

    fn on_timer(&mut self, now: Duration, timer: BullyTimer, out: &mut EffectsOf<Self>) {
        match timer {
            BullyTimer::Answer => {
                if self.role == Role::Candidate {
                    self.win(now, out);
                }
            }
            BullyTimer::Coordinator => {
                if self.role == Role::AwaitingCoordinator {
                    self.start_election(now, out);
                }
            }
            BullyTimer::Claim => {
                if matches!(self.role, Role::Claiming { .. }) {
                    self.step_down(out); // no majority: retry after leader_timeout
                }
            }
            BullyTimer::Heartbeat => {
                let majority = self.majority();
                let Role::Leader { term, acks } = &mut self.role else {
                    return;
                };
                let term = *term;
                if self.cfg.quorum && acks.len() + 1 < majority {
                    self.step_down(out);
                    return;
                }
                acks.clear();
                out.broadcast(BullyMsg::Heartbeat { term });
                out.set_timer(BullyTimer::Heartbeat, self.cfg.heartbeat_every);
            }
            BullyTimer::LeaderLost => {
                if self.role != Role::Follower {
                    return;
                }
                self.set_leader(None, out);
                match self.passive {
                    Passive::Resigned => {}
                    Passive::HoldDown => {
                        // No leader at all: nothing to flap, elect now.
                        self.passive = Passive::No;
                        out.cancel_timer(BullyTimer::HoldDown);
                        self.start_election(now, out);
                    }
                    Passive::No => self.elect_soon(now, out),
                }
            }
            BullyTimer::HoldDown => {
                if self.passive != Passive::HoldDown {
                    return;
                }
                self.passive = Passive::No;
                let lower_or_none = self.leader.is_none_or(|(l, _)| l < self.group.me());
                if lower_or_none && !self.in_election() {
                    self.start_election(now, out);
                }
            }
            BullyTimer::Jitter => {
                if self.role == Role::Follower
                    && self.leader.is_none()
                    && self.passive == Passive::No
                {
                    self.start_election(now, out);
                }
            }
        }
    }

    fn on_peer_down(&mut self, now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        if !self.group.is_peer(peer) {
            return;
        }
        self.group.set_down(peer);
        if self.leader.is_some_and(|(l, _)| l == peer) && self.role == Role::Follower {
            self.set_leader(None, out);
            if self.passive != Passive::Resigned {
                self.elect_soon(now, out);
            }
        }
    }

    fn on_peer_up(&mut self, _now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        if !self.group.set_up(peer) {
            return;
        }
        if let Role::Leader { term, .. } = self.role {
            out.send(peer, BullyMsg::Coordinator { term });
        }
    }
}

#[cfg(test)]
mod tests {
    //! Claims of the bully paper and of this module's docs, checked on a deterministic in-memory
    //! network with virtual time (1 ms per message, timers in the same clock).
    use super::*;
    use crate::protocol::Effect;
    use std::collections::BTreeMap;

    const MS: Duration = Duration::from_millis(1);

    struct Sim {
        cfg: BullyConfig,
        members: Vec<NodeId>,
        nodes: BTreeMap<NodeId, Bully>,
        now: Duration,
        /// (deliver at, seq, from, to, msg)
        flight: Vec<(Duration, u64, NodeId, NodeId, BullyMsg)>,
        timers: BTreeMap<(NodeId, BullyTimer), Duration>,
        seq: u64,
        sent: BTreeMap<&'static str, usize>,
        events: Vec<(NodeId, BullyEvent)>,
        /// Links cut in both directions.
        cut: BTreeSet<(NodeId, NodeId)>,
    }

    fn kind(m: &BullyMsg) -> &'static str {
        match m {
            BullyMsg::Election => "election",
            BullyMsg::Answer => "answer",
            BullyMsg::Coordinator { .. } => "coordinator",
            BullyMsg::Heartbeat { .. } => "heartbeat",
            BullyMsg::Ack { .. } => "ack",
            BullyMsg::Stale { .. } => "stale",
            BullyMsg::Resign { .. } => "resign",
        }
    }

    impl Sim {
        fn new(n: u32, cfg: BullyConfig) -> Self {
            let members: Vec<NodeId> = (1..=n).collect();
            let nodes = members
                .iter()
                .map(|&i| (i, Bully::new(i, members.clone(), cfg.clone()).unwrap()))
                .collect();
            Self {
                cfg,
                members,
                nodes,
                now: Duration::ZERO,
                flight: vec![],
                timers: BTreeMap::new(),
                seq: 0,
                sent: BTreeMap::new(),
                events: vec![],
                cut: BTreeSet::new(),
            }
        }

        fn absorb(&mut self, from: NodeId, out: EffectsOf<Bully>) {
            for e in out {
                match e {
                    Effect::Send { to, msg } => self.push(from, to, msg),
                    Effect::Broadcast(msg) => {
                        for to in self.members.clone().into_iter().filter(|&t| t != from) {
                            self.push(from, to, msg.clone());
                        }
                    }
                    Effect::SetTimer { timer, after } => {
                        self.timers.insert((from, timer), self.now + after);
                    }
                    Effect::CancelTimer(timer) => {
                        self.timers.remove(&(from, timer));
                    }
                    Effect::Emit(ev) => self.events.push((from, ev)),
                }
            }
        }

        fn push(&mut self, from: NodeId, to: NodeId, msg: BullyMsg) {
            *self.sent.entry(kind(&msg)).or_default() += 1;
            self.seq += 1;
            self.flight.push((self.now + MS, self.seq, from, to, msg));
        }

        fn with(
            &mut self,
            id: NodeId,
            f: impl FnOnce(&mut Bully, Duration, &mut EffectsOf<Bully>),
        ) {
            let mut out = EffectsOf::<Bully>::new();
            if let Some(n) = self.nodes.get_mut(&id) {
                f(n, self.now, &mut out);
            }
            self.absorb(id, out);
        }

        fn start(&mut self, id: NodeId) {
            self.with(id, |n, now, out| n.on_start(now, out));
        }

        fn start_all(&mut self) {
            for id in self.members.clone() {
                self.start(id);
            }
        }

        /// Run until virtual time `until`, delivering messages and firing timers in time order.
        fn run_until(&mut self, until: Duration) {
            loop {
                let next_msg = self
                    .flight
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, m)| (m.0, m.1));
                let next_timer = self
                    .timers
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, t)| (*k, *t));
                let msg_at = next_msg.map(|(_, m)| m.0);
                let timer_at = next_timer.map(|(_, t)| t);
                let at = match (msg_at, timer_at) {
                    (None, None) => break,
                    (Some(a), None) | (None, Some(a)) => a,
                    (Some(a), Some(b)) => a.min(b),
                };
                if at > until {
                    break;
                }
                self.now = at;
                if msg_at == Some(at) {
                    let i = next_msg.map(|(i, _)| i).unwrap_or(0);
                    let (_, _, from, to, msg) = self.flight.remove(i);
                    let cut = self.cut.contains(&(from, to)) || self.cut.contains(&(to, from));
                    if !cut {
                        self.with(to, |n, now, out| n.on_message(now, from, msg, out));
                    }
                } else if let Some(((id, timer), _)) = next_timer {
                    self.timers.remove(&(id, timer));
                    self.with(id, |n, now, out| n.on_timer(now, timer, out));
                }
            }
            self.now = self.now.max(until);
        }

        fn crash(&mut self, id: NodeId) {
            self.nodes.remove(&id);
            self.timers.retain(|(n, _), _| *n != id);
            self.flight.retain(|m| m.3 != id);
            for o in self.nodes.keys().copied().collect::<Vec<_>>() {
                self.with(o, |n, now, out| n.on_peer_down(now, id, out));
            }
        }

        fn restart(&mut self, id: NodeId) {
            self.nodes.insert(
                id,
                Bully::new(id, self.members.clone(), self.cfg.clone()).unwrap(),
            );
            for o in self
                .nodes
                .keys()
                .copied()
                .filter(|&o| o != id)
                .collect::<Vec<_>>()
            {
                self.with(o, |n, now, out| n.on_peer_up(now, id, out));
            }
            self.start(id);
        }

        fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
            for &x in a {
                for &y in b {
                    self.cut.insert((x, y));
                }
            }
        }

        fn leaders(&self) -> Vec<(NodeId, Term)> {
            self.nodes
                .values()
                .filter_map(|n| match n.role() {
                    Role::Leader { term, .. } => Some((n.id(), *term)),
                    _ => None,
                })
                .collect()
        }

        /// The leader every live node recognises, if they all agree.
        fn agreed(&self) -> Option<(NodeId, Term)> {
            let mut views = self.nodes.values().map(|n| n.leader());
            let first = views.next()?;
            views.all(|v| v == first).then_some(first).flatten()
        }

        fn total(&self) -> usize {
            self.sent.values().sum()
        }
    }

    #[test]
    fn best_case_highest_id_sends_n_minus_one_coordinators() {
        for n in [3u32, 5] {
            let mut sim = Sim::new(n, BullyConfig::default());
            sim.start(n);
            sim.run_until(50 * MS);
            assert_eq!(sim.total(), n as usize - 1, "N={n}: {:?}", sim.sent);
            assert_eq!(sim.sent.get("coordinator"), Some(&(n as usize - 1)));
            assert_eq!(
                sim.agreed(),
                Some((
                    n,
                    Term {
                        round: 1,
                        leader: n
                    }
                ))
            );
        }
    }

    #[test]
    fn worst_case_is_quadratic_when_the_lowest_id_starts() {
        for n in [3u32, 5] {
            let mut sim = Sim::new(n, BullyConfig::default());
            sim.with(1, |b, now, out| {
                b.on_command(now, BullyCommand::Campaign, out).unwrap()
            });
            sim.run_until(50 * MS); // before the first heartbeat
            let (n_, total) = (n as usize, sim.total());
            // Every node holds an election: sum_{i=1}^{N-1} (N - i) ELECTIONs and as many OKs,
            // N-1 COORDINATORs, plus the leader's re-assertions to late candidates.
            let elections = n_ * (n_ - 1) / 2;
            assert_eq!(
                sim.sent.get("election"),
                Some(&elections),
                "N={n}: {:?}",
                sim.sent
            );
            assert_eq!(
                sim.sent.get("answer"),
                Some(&elections),
                "N={n}: {:?}",
                sim.sent
            );
            assert!(
                total <= n_ * n_ + n_,
                "N={n}: {total} messages {:?}",
                sim.sent
            );
            assert_eq!(
                sim.agreed(),
                Some((
                    n,
                    Term {
                        round: 1,
                        leader: n
                    }
                ))
            );
        }
    }

    #[test]
    fn leader_crash_next_highest_leads_with_a_higher_term() {
        let mut sim = Sim::new(5, BullyConfig::default());
        sim.start_all();
        sim.run_until(500 * MS);
        let (l, t1) = sim.agreed().unwrap();
        assert_eq!(l, 5);
        sim.crash(5);
        sim.run_until(1000 * MS);
        let (l2, t2) = sim.agreed().unwrap();
        assert_eq!(l2, 4);
        assert!(t2 > t1);
        assert_eq!(sim.leaders(), vec![(4, t2)]);
    }

    #[test]
    fn silent_leader_is_detected_by_the_leader_timeout() {
        let mut sim = Sim::new(3, BullyConfig::default());
        sim.start_all();
        sim.run_until(500 * MS);
        // 3 dies but nobody is told: heartbeats stop.
        sim.nodes.remove(&3);
        sim.timers.retain(|(n, _), _| *n != 3);
        sim.run_until(1500 * MS);
        let (l, t) = sim.agreed().unwrap();
        assert_eq!(l, 2);
        assert!(t.round >= 2);
    }

    #[test]
    fn returning_highest_node_preempts_with_a_newer_term_after_learning_it() {
        let mut sim = Sim::new(3, BullyConfig::default());
        sim.start_all();
        sim.run_until(500 * MS);
        sim.crash(3);
        sim.run_until(1000 * MS);
        let (_, t2) = sim.agreed().unwrap();
        // 3 comes back with no memory: it claims round 1, is told STALE, and wins above t2.
        sim.restart(3);
        sim.run_until(1500 * MS);
        let (l, t3) = sim.agreed().unwrap();
        assert_eq!(l, 3);
        assert!(t3 > t2, "{t3} > {t2}");
        assert!(sim.sent.contains_key("stale"));
    }

    #[test]
    fn hold_down_keeps_the_current_leader_until_it_expires() {
        let cfg = BullyConfig {
            hold_down: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let mut sim = Sim::new(3, cfg);
        sim.start_all();
        sim.run_until(1000 * MS); // nobody leads before the leader timeout, then 3 wins
        assert_eq!(sim.agreed().map(|(l, _)| l), Some(3));
        sim.crash(3);
        sim.run_until(1500 * MS);
        assert_eq!(sim.agreed().map(|(l, _)| l), Some(2));
        sim.restart(3);
        sim.run_until(3000 * MS); // within the hold-down: 3 follows 2
        assert_eq!(sim.agreed().map(|(l, _)| l), Some(2));
        sim.run_until(4000 * MS); // hold-down over: 3 preempts
        assert_eq!(sim.agreed().map(|(l, _)| l), Some(3));
    }

    #[test]
    fn without_quorum_each_side_of_a_partition_elects_with_different_terms() {
        let mut sim = Sim::new(5, BullyConfig::default());
        sim.start_all();
        sim.run_until(500 * MS);
        sim.partition(&[1, 2, 3], &[4, 5]);
        sim.run_until(2000 * MS);
        let leaders = sim.leaders();
        assert_eq!(
            leaders.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![3, 5]
        );
        assert_ne!(leaders[0].1, leaders[1].1);
    }

    #[test]
    fn quorum_minority_side_never_has_a_leader() {
        let cfg = BullyConfig {
            quorum: true,
            ..Default::default()
        };
        let mut sim = Sim::new(5, cfg);
        sim.start_all();
        sim.run_until(500 * MS);
        assert_eq!(sim.agreed().map(|(l, _)| l), Some(5));
        sim.partition(&[1, 2, 3], &[4, 5]);
        for step in 1..=30 {
            sim.run_until((500 + 100 * step) * MS);
            for id in [4, 5] {
                let n = &sim.nodes[&id];
                if step > 5 {
                    assert!(
                        !n.is_leader() && n.leader().is_none(),
                        "t={:?} node {id}",
                        sim.now
                    );
                }
            }
        }
        assert_eq!(
            sim.leaders().iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![3]
        );
        // Heal: exactly one leader again, the highest.
        sim.cut.clear();
        sim.run_until(5000 * MS);
        assert_eq!(
            sim.leaders().iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![5]
        );
        assert_eq!(sim.agreed().map(|(l, _)| l), Some(5));
    }

    #[test]
    fn a_persisted_term_makes_a_returning_leader_claim_a_newer_one() {
        let old = Term {
            round: 7,
            leader: 2,
        };
        let mut b = Bully::new(3, [1, 2, 3], BullyConfig::default())
            .unwrap()
            .with_known_term(old);
        let mut out = EffectsOf::<Bully>::new();
        b.on_start(Duration::ZERO, &mut out);
        assert_eq!(
            b.leader(),
            Some((
                3,
                Term {
                    round: 8,
                    leader: 3
                }
            ))
        );
    }

    /// A leader that hears a newer term from a lower node steps down before it campaigns: its
    /// view says "no leader" (not "me") until it wins again with a higher term. Before, the
    /// view kept saying "me" during the campaign, and Suzuki–Kasami's recovery follows it.
    #[test]
    fn a_leader_told_a_newer_term_by_a_lower_node_steps_down_before_campaigning() {
        let mut b = Bully::new(3, [1, 2, 3], BullyConfig::default()).unwrap();
        let mut out = EffectsOf::<Bully>::new();
        b.on_start(Duration::ZERO, &mut out);
        assert!(b.is_leader());
        let mine = b.leader().unwrap().1;
        out.clear();
        let newer = Term {
            round: mine.round + 5,
            leader: 1,
        };
        b.on_message(
            Duration::ZERO,
            1,
            BullyMsg::Coordinator { term: newer },
            &mut out,
        );
        let views: Vec<Option<NodeId>> = out
            .iter()
            .filter_map(|e| match e {
                Effect::Emit(BullyEvent::LeaderChanged { leader, .. }) => Some(*leader),
                _ => None,
            })
            .collect();
        // No higher member: it wins at once, but only after saying it no longer leads.
        assert_eq!(views, vec![None, Some(3)], "{out:?}");
        let (l, t) = b.leader().unwrap();
        assert_eq!(l, 3);
        assert!(t > newer, "{t:?} not above {newer:?}");
    }

    #[test]
    fn messages_of_an_older_term_are_ignored() {
        let mut b = Bully::new(1, [1, 2, 3], BullyConfig::default()).unwrap();
        let mut out = EffectsOf::<Bully>::new();
        let new = Term {
            round: 4,
            leader: 3,
        };
        b.on_message(
            Duration::ZERO,
            3,
            BullyMsg::Coordinator { term: new },
            &mut out,
        );
        assert_eq!(b.leader(), Some((3, new)));
        out.clear();
        let old = Term {
            round: 2,
            leader: 2,
        };
        b.on_message(
            Duration::ZERO,
            2,
            BullyMsg::Heartbeat { term: old },
            &mut out,
        );
        assert_eq!(b.leader(), Some((3, new)));
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            vec![&Effect::Send {
                to: 2,
                msg: BullyMsg::Stale { term: new }
            }]
        );
        // Malformed: a term naming another leader than the sender, or an unknown sender.
        out.clear();
        b.on_message(
            Duration::ZERO,
            2,
            BullyMsg::Coordinator {
                term: Term {
                    round: 9,
                    leader: 3,
                },
            },
            &mut out,
        );
        b.on_message(Duration::ZERO, 7, BullyMsg::Election, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn resign_hands_leadership_to_the_next_highest() {
        let mut sim = Sim::new(3, BullyConfig::default());
        sim.start_all();
        sim.run_until(500 * MS);
        sim.with(3, |b, now, out| {
            b.on_command(now, BullyCommand::Resign, out).unwrap()
        });
        sim.run_until(1000 * MS);
        assert_eq!(sim.agreed().map(|(l, _)| l), Some(2));
        let mut out = EffectsOf::<Bully>::new();
        let err =
            sim.nodes
                .get_mut(&1)
                .unwrap()
                .on_command(sim.now, BullyCommand::Resign, &mut out);
        assert_eq!(err, Err(BullyError::NotLeader));
    }

    #[test]
    fn config_is_validated() {
        let bad = BullyConfig {
            leader_timeout: Duration::from_millis(50),
            ..Default::default()
        };
        assert!(matches!(
            Bully::new(1, [1, 2], bad),
            Err(ConfigError::Inconsistent(_))
        ));
        let zero = BullyConfig {
            answer_timeout: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            Bully::new(1, [1, 2], zero).err(),
            Some(ConfigError::ZeroDuration("answer_timeout"))
        );
    }

    #[test]
    fn jitter_is_seeded_and_deterministic() {
        let cfg = BullyConfig {
            election_jitter: 50 * MS,
            seed: 42,
            ..Default::default()
        };
        let run = || {
            let mut sim = Sim::new(4, cfg.clone());
            sim.start_all();
            sim.run_until(500 * MS);
            sim.crash(4);
            sim.run_until(1500 * MS);
            (sim.agreed(), sim.total())
        };
        let a = run();
        assert_eq!(a, run());
        assert_eq!(a.0.map(|(l, _)| l), Some(3));
    }
}
