//! Exhaustive model checks (stateright) of the three lock cores of `actix_coord::mutex`, N = 3.
//!
//! The cores run unchanged inside a [`Model`]: the model owns the network (FIFO channels or an
//! unordered multiset of messages), lets every node `Acquire` a bounded number of times,
//! `Release` when it holds the lock, optionally `Cancel` a pending wait, and optionally crashes a
//! node, each survivor learning of the crash at its own moment (`on_peer_down`); each of the
//! crashed node's connections may break with messages still in it, lost (`Break`: a crash in the
//! middle of a broadcast). Links may be cut and healed (`Cut`, `Heal`): false suspicion.
//!
//! Properties:
//! * `mutual exclusion` (always): at most one live node holds the lock;
//! * `fences increase` (always): every grant's fence exceeds every earlier grant's;
//! * `no deadlock` (always): a state with nothing left to do has every request served, i.e.
//!   every request is eventually granted (the state graph is finite and acyclic, so this is
//!   exactly liveness on every complete path); also stated as stateright's `eventually`;
//! * with links cut and healed (`with_cuts`: false suspicion, partition): `mutual exclusion` and
//!   `fences increase` give way to `fences name one ownership` (always) and `two holders`
//!   (sometimes: the guarded case), liveness as above;
//! * Suzuki–Kasami with a crash: `one valid token` and `at most two regenerations` (always),
//!   `two regenerations` (sometimes); with the recovery decided by an elected leader (the
//!   highest live id, as bully elects, each survivor told of a new leader at its own moment)
//!   also `only the leader regenerates` (always). A regeneration is a token appearing at a node
//!   without a token message delivered there. (Until session 3 the model counted only tokens
//!   appearing when *no* message was delivered, missing the usual case — a recovery completed
//!   by its last probe reply — so its `at most one regeneration per crash` held vacuously.
//!   Counted properly, one crash can cost two: a token in flight between live nodes when the
//!   recovery probes is superseded by the regenerated one, or the regenerated token is passed to
//!   the crashed node by a survivor that has not detected the crash yet, and dies again.)
//!
//! The finding: Lamport's algorithm breaks exclusion on a non-FIFO network (the checker finds a
//! counterexample), Ricart–Agrawala does not.
//!
//! The model runs on the shared harness (`support/harness.rs`: network, crashes, partial
//! broadcasts, atomic restarts, cuts, the driver's implicit-up rule); moved onto it, every run
//! explores exactly the states it explored before (the same pinned counts).
//!
//! Run with `cargo test -p actix-coord --test model_mutex -- --nocapture` to see state counts and
//! times.

use actix_coord::mutex::{
    Fence, LamportMsg, LamportMutex, LockCommand, LockEvent, LockTimer, RaMsg, RicartAgrawala,
    SkMsg, SuzukiKasami,
};
use actix_coord::protocol::{Effect, EffectsOf, NodeId, Protocol};
use stateright::{Checker, Expectation, HasDiscoveries, Model, Property};
mod support;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;
use support::harness::{self, Faults, Harness, N, Service, Step, Timers, World, id, ix};

/// A lock core the model can drive.
trait Core:
    Protocol<
        Command = LockCommand,
        Event = LockEvent,
        Msg = <Self as Core>::M,
        Timer: Ord + Hash + Send + Sync,
    > + Clone
    + Debug
    + Eq
    + Hash
    + Send
    + Sync
    + 'static
{
    type M: Clone
        + Debug
        + Eq
        + Ord
        + Hash
        + Send
        + Sync
        + serde::Serialize
        + serde::de::DeserializeOwned;
    fn make(id: NodeId, members: &[NodeId]) -> Self;
    /// Sets the core's incarnation (a restarted member is a new one).
    fn incarnation(self, inc: u64) -> Self;
    /// A `State` message as a peer would send it to a newcomer that knew nothing: what the
    /// seeded bug "a restarted member takes part without catching up" feeds the newcomer.
    fn empty_state(from: NodeId) -> Self::M;
    /// Whether a message is a `State` (what the seeded bug "nobody answers a newcomer" drops).
    fn is_state(m: &Self::M) -> bool;
    /// The fence as a core that forgot its epoch would make it (seeded bug): Lamport and
    /// Ricart–Agrawala without the requester, Suzuki–Kasami the grant count only.
    fn without_epoch(fence: Fence) -> Fence {
        fence & !0xff00_0000
    }
    /// A core whose recovery is decided by an elected leader (Suzuki–Kasami only).
    fn make_elected(_id: NodeId, _members: &[NodeId]) -> Self {
        unimplemented!("no elected-leader variant")
    }
    /// The election's verdict reaches this core.
    fn tell_leader(&mut self, _leader: NodeId, _out: &mut EffectsOf<Self>) {}
    /// [`make_elected`](Self::make_elected) with a leader settle time: a member named leader
    /// leads when its settle timer fires.
    fn make_elected_settling(_id: NodeId, _members: &[NodeId]) -> Self {
        unimplemented!("no elected-leader variant")
    }
    /// Whether `timer` is the leader settle timer (the one timer a settling model fires).
    fn is_settle(_timer: &Self::Timer) -> bool {
        false
    }
    /// Whether the core holds a token (token-based cores).
    fn has_token(&self) -> bool {
        false
    }
    /// Whether the core believes it leads the election.
    fn leads(&self) -> bool {
        false
    }
    /// Whether a message carries a token (token-based cores).
    fn carries_token(_m: &Self::M) -> bool {
        false
    }
}

impl Core for LamportMutex {
    type M = actix_coord::mutex::LamportMsg;
    fn make(id: NodeId, members: &[NodeId]) -> Self {
        LamportMutex::new(id, members.iter().copied()).unwrap()
    }
    fn incarnation(self, inc: u64) -> Self {
        self.with_incarnation(inc)
    }
    fn empty_state(_: NodeId) -> Self::M {
        LamportMsg::State { time: 0 }
    }
    fn is_state(m: &Self::M) -> bool {
        matches!(m, LamportMsg::State { .. })
    }
}
impl Core for RicartAgrawala {
    type M = actix_coord::mutex::RaMsg;
    fn make(id: NodeId, members: &[NodeId]) -> Self {
        RicartAgrawala::new(id, members.iter().copied()).unwrap()
    }
    fn incarnation(self, inc: u64) -> Self {
        self.with_incarnation(inc)
    }
    fn empty_state(_: NodeId) -> Self::M {
        RaMsg::State { time: 0 }
    }
    fn is_state(m: &Self::M) -> bool {
        matches!(m, RaMsg::State { .. })
    }
}
impl Core for SuzukiKasami {
    type M = actix_coord::mutex::SkMsg;
    fn make(id: NodeId, members: &[NodeId]) -> Self {
        SuzukiKasami::new(id, members.iter().copied()).unwrap()
    }
    fn incarnation(self, inc: u64) -> Self {
        self.with_incarnation(inc)
    }
    fn empty_state(from: NodeId) -> Self::M {
        SkMsg::State {
            incarnation: 0,
            epoch: Default::default(),
            rn: vec![0; N],
            ln: None,
            known: vec![(from, 0)],
        }
    }
    fn is_state(m: &Self::M) -> bool {
        matches!(m, SkMsg::State { .. })
    }
    fn without_epoch(fence: Fence) -> Fence {
        fence & 0xff_ffff
    }
    fn make_elected(id: NodeId, members: &[NodeId]) -> Self {
        Self::make(id, members).with_external_leader()
    }
    fn tell_leader(&mut self, leader: NodeId, out: &mut EffectsOf<Self>) {
        self.set_leader(Some(leader), out);
    }
    fn make_elected_settling(id: NodeId, members: &[NodeId]) -> Self {
        Self::make_elected(id, members).with_leader_settle(Duration::from_millis(1))
    }
    fn is_settle(timer: &LockTimer) -> bool {
        *timer == LockTimer::LeaderSettle
    }
    fn has_token(&self) -> bool {
        self.token().is_some()
    }
    fn leads(&self) -> bool {
        self.leader() == Some(self.id())
    }
    fn carries_token(m: &Self::M) -> bool {
        matches!(m, actix_coord::mutex::SkMsg::Token(_))
    }
}

/// The history the properties read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct History {
    /// Requests each node may still make.
    left: Vec<u8>,
    waiting: Vec<bool>,
    /// The fence of the current ownership, per node.
    holding: Vec<Option<Fence>>,
    last_fence: Option<Fence>,
    fence_violation: bool,
    /// Elected-leader runs: leader changes not yet delivered, (observer, new leader).
    unelected: BTreeSet<(usize, NodeId)>,
    /// Tokens regenerated so far.
    regenerations: u8,
    /// Elected-leader runs: a node regenerated a token while it did not lead in its own view.
    regenerated_by_non_leader: bool,
    /// Every fence granted so far, and whether one was granted twice.
    fences: BTreeSet<Fence>,
    fence_reused: bool,
}

/// What a member's user (or, for `Elect`, the election beside the lock) does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Op {
    Acquire,
    Release,
    Cancel,
    /// The election's verdict reaches this member.
    Elect(NodeId),
}

/// A bug seeded on purpose, to show that the checker finds what it must find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Seeded {
    /// A restarted member takes part at once, as if every peer had answered that it knew
    /// nothing (the behaviour before issue 11: no catching up).
    NoCatchUp,
    /// Members never answer a newcomer (every `State` is lost): it never catches up.
    NoState,
    /// The shell hands a core a message from a member it has down without telling it first
    /// that the member is up (the driver before the fix: the `MemberUp` travels apart from
    /// the member's messages, so the core dropped what the member re-sent).
    NoImplicitUp,
    /// Fences without their epoch (Suzuki–Kasami's `seq` only, Lamport's time only): a
    /// regenerated token, or a member with a low clock, issues lower fences.
    FenceWithoutEpoch,
}

type W<P> = World<Lock<P>>;
type H<P> = Harness<Lock<P>>;
type Cond<P> = fn(&H<P>, &W<P>) -> bool;

/// A lock service in the harness: members acquire a bounded number of times, release when
/// they hold, and optionally cancel a pending wait.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lock<P: Core> {
    requests: u8,
    /// Only nodes `0..requesters` make requests; the others only answer.
    requesters: usize,
    cancel: bool,
    /// Recovery decided by an elected leader, the highest live id (as bully elects), each
    /// survivor learning of a new leader at its own moment.
    elected: bool,
    /// With `elected`: a member named leader leads only when its settle timer fires (at any
    /// moment, any verdict in between cancelling it).
    settling: bool,
    /// Links may be cut (the exclusion properties give way to the fence's).
    cuts: bool,
    seeded: Option<Seeded>,
    extra: Vec<(ExpectationKind, &'static str, Cond<P>)>,
    _core: std::marker::PhantomData<P>,
}

/// [`Expectation`] with `Eq + Hash`, for the service's derive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ExpectationKind {
    Always,
    Sometimes,
    Eventually,
}

impl<P: Core> Lock<P> {
    /// Live members inside a critical section.
    fn holders(w: &W<P>) -> usize {
        (0..N)
            .filter(|&i| w.alive[i] && w.obs.holding[i].is_some())
            .count()
    }

    fn all_done(w: &W<P>) -> bool {
        let h = &w.obs;
        (0..N).all(|i| !w.alive[i] || (h.left[i] == 0 && !h.waiting[i] && h.holding[i].is_none()))
    }
}

impl<P: Core> Service for Lock<P> {
    type P = P;
    type M = P::M;
    type Op = Op;
    type Obs = History;
    type Tag = ();

    fn core(&self, i: usize, inc: u8) -> P {
        let ids: Vec<NodeId> = (0..N).map(id).collect();
        if inc > 0 {
            return P::make(id(i), &ids).incarnation(u64::from(inc));
        }
        if self.elected {
            // Settled: every node recognises the highest id.
            let mut c = if self.settling {
                P::make_elected_settling(id(i), &ids)
            } else {
                P::make_elected(id(i), &ids)
            };
            let mut out = EffectsOf::<P>::new();
            c.tell_leader(id(N - 1), &mut out);
            for e in out.drain().collect::<Vec<_>>() {
                match e {
                    // The leader's settle time is over before the run starts.
                    Effect::SetTimer { timer, .. } if self.settling => {
                        c.on_timer(Duration::ZERO, timer, &mut out)
                    }
                    e => panic!("a settled verdict has no effect: {e:?}"),
                }
            }
            assert!(out.is_empty());
            c
        } else {
            P::make(id(i), &ids)
        }
    }

    fn obs(&self) -> History {
        History {
            left: (0..N)
                .map(|i| {
                    if i < self.requesters {
                        self.requests
                    } else {
                        0
                    }
                })
                .collect(),
            waiting: vec![false; N],
            holding: vec![None; N],
            last_fence: None,
            fence_violation: false,
            unelected: BTreeSet::new(),
            regenerations: 0,
            regenerated_by_non_leader: false,
            fences: BTreeSet::new(),
            fence_reused: false,
        }
    }

    fn ops(&self, w: &W<P>, i: usize, ops: &mut Vec<Op>) {
        let h = &w.obs;
        if h.left[i] > 0 && !h.waiting[i] && h.holding[i].is_none() {
            ops.push(Op::Acquire);
        }
        if h.holding[i].is_some() {
            ops.push(Op::Release);
        }
        if self.cancel && h.waiting[i] {
            ops.push(Op::Cancel);
        }
        for &(o, leader) in &h.unelected {
            if o == i {
                ops.push(Op::Elect(leader));
            }
        }
    }

    fn act(&self, w: &mut W<P>, i: usize, op: &Op) -> Option<LockCommand> {
        let h = &mut w.obs;
        match *op {
            Op::Acquire => {
                h.left[i] -= 1;
                h.waiting[i] = true;
                Some(LockCommand::Acquire)
            }
            Op::Release => Some(LockCommand::Release),
            Op::Cancel => Some(LockCommand::Cancel),
            Op::Elect(leader) => {
                h.unelected.remove(&(i, leader));
                let mut out = EffectsOf::<P>::new();
                w.nodes[i].tell_leader(leader, &mut out);
                harness::absorb(self, w, i, out);
                None
            }
        }
    }

    fn observe(&self, w: &mut W<P>, at: usize, ev: LockEvent) {
        let h = &mut w.obs;
        match ev {
            LockEvent::Granted { fence } => {
                let fence = match self.seeded {
                    Some(Seeded::FenceWithoutEpoch) => P::without_epoch(fence),
                    _ => fence,
                };
                if h.last_fence.is_some_and(|l| fence <= l) {
                    h.fence_violation = true;
                }
                if self.cuts {
                    h.fence_reused |= !h.fences.insert(fence);
                }
                h.last_fence = Some(fence);
                h.holding[at] = Some(fence);
                h.waiting[at] = false;
            }
            LockEvent::Released { .. } | LockEvent::Lost { .. } => h.holding[at] = None,
            LockEvent::Cancelled => h.waiting[at] = false,
        }
    }

    fn crashed(&self, w: &mut W<P>, i: usize) {
        w.obs.holding[i] = None;
        w.obs.waiting[i] = false;
        // Bully elects the highest live id; each survivor hears of it at its own moment.
        let highest = (0..N).rev().find(|&o| w.alive[o]);
        if let (true, Some(top)) = (self.elected, highest)
            && top < i
        {
            let leader = id(top);
            let alive = w.alive.clone();
            let h = &mut w.obs;
            h.unelected.retain(|&(o, _)| alive[o]);
            for o in (0..N).filter(|&o| alive[o]) {
                h.unelected.retain(|&(p, _)| p != o);
                h.unelected.insert((o, leader));
            }
        }
    }

    fn restarted(&self, w: &mut W<P>, i: usize) {
        let h = &mut w.obs;
        if h.waiting[i] || h.holding[i].is_some() {
            h.left[i] += 1; // its user asks again after the restart
        }
        h.holding[i] = None;
        h.waiting[i] = false;
        if self.seeded == Some(Seeded::NoCatchUp) {
            for o in (0..N).filter(|&o| o != i) {
                let mut out = EffectsOf::<P>::new();
                let m = P::empty_state(id(o));
                w.nodes[i].on_message(Duration::ZERO, id(o), m, &mut out);
                harness::absorb(self, w, i, out);
            }
            // ... and its user asks at once, with what it knows: nothing.
            if w.obs.left[i] > 0 {
                w.obs.left[i] -= 1;
                w.obs.waiting[i] = true;
                let mut out = EffectsOf::<P>::new();
                if w.nodes[i]
                    .on_command(Duration::ZERO, LockCommand::Acquire, &mut out)
                    .is_ok()
                {
                    harness::absorb(self, w, i, out);
                }
            }
        }
    }

    fn may_fire(&self, _w: &W<P>, _i: usize, timer: &P::Timer) -> bool {
        P::is_settle(timer)
    }

    fn stepped(&self, before: &W<P>, step: &harness::StepOf<Self>, w: &mut W<P>) {
        // A token that appears at a node without a token message delivered there was
        // regenerated (whatever message completed the recovery).
        let receiver = match step {
            Step::Deliver { dst, msg, .. } if P::carries_token(msg) => Some(*dst),
            _ => None,
        };
        for i in (0..N).filter(|&i| w.alive[i] && Some(i) != receiver) {
            if !before.nodes[i].has_token() && w.nodes[i].has_token() {
                w.obs.regenerations += 1;
                w.obs.regenerated_by_non_leader |= self.elected && !w.nodes[i].leads();
            }
        }
    }

    fn wire(&self, w: &W<P>, _: usize, _: usize, msg: P::M) -> Option<P::M> {
        if self.seeded == Some(Seeded::NoState) && P::is_state(&msg) && w.used.restarts > 0 {
            return None;
        }
        Some(msg)
    }

    fn properties(&self) -> Vec<Property<H<P>>> {
        let mut ps = if !self.cuts {
            vec![
                Property::always("mutual exclusion", |_: &H<P>, w: &W<P>| {
                    Self::holders(w) <= 1
                }),
                Property::always("fences increase", |_: &H<P>, w: &W<P>| {
                    !w.obs.fence_violation
                }),
            ]
        } else {
            // A member cut off may be inside while the others let a new owner in (no quorum
            // or leases): mutual exclusion is guarded by the fence, which must name one
            // ownership (the resource refuses the lower one, and an equal one from another).
            vec![
                Property::sometimes("two holders", |_: &H<P>, w: &W<P>| Self::holders(w) > 1),
                Property::always("fences name one ownership", |_: &H<P>, w: &W<P>| {
                    !w.obs.fence_reused
                }),
            ]
        };
        ps.extend([
            Property::always("no deadlock", |m: &H<P>, w: &W<P>| {
                !m.terminal(w) || Self::all_done(w)
            }),
            Property::eventually("every request granted", |_: &H<P>, w: &W<P>| {
                Self::all_done(w)
            }),
            Property::sometimes("a lock is granted", |_: &H<P>, w: &W<P>| {
                w.obs.holding.iter().any(Option::is_some)
            }),
        ]);
        for &(kind, name, condition) in &self.extra {
            let expectation = match kind {
                ExpectationKind::Always => Expectation::Always,
                ExpectationKind::Sometimes => Expectation::Sometimes,
                ExpectationKind::Eventually => Expectation::Eventually,
            };
            ps.push(Property {
                expectation,
                name,
                condition,
            });
        }
        ps
    }
}

/// A run's settings: the lock service's and the faults.
struct MutexModel<P: Core> {
    service: Lock<P>,
    faults: Faults,
}

impl<P: Core> MutexModel<P> {
    fn new(fifo: bool, requests: u8) -> Self {
        let mut faults = Faults::none(fifo);
        // Every crash may cut a broadcast short; restarts are atomic, between exchanges.
        faults.partial = true;
        faults.atomic_restart = true;
        Self {
            service: Lock {
                requests,
                requesters: N,
                cancel: false,
                elected: false,
                settling: false,
                cuts: false,
                seeded: None,
                extra: vec![],
                _core: std::marker::PhantomData,
            },
            faults,
        }
    }
    fn with_restarts(mut self, k: u8) -> Self {
        self.faults.restarts = k;
        self
    }
    /// Only member `id` restarts (keeps the state space within the CI budget).
    fn restarting(mut self, member: NodeId) -> Self {
        self.faults.restarting = Some(ix(member));
        self
    }
    /// Up to `k` links cut and healed (false suspicion, partition of one link).
    fn with_cuts(mut self, k: u8) -> Self {
        self.faults.cuts = k;
        self.service.cuts = k > 0;
        self
    }
    /// Only the link between members `a` and `b` is cut (keeps the state space within the CI
    /// budget).
    fn cutting(mut self, a: NodeId, b: NodeId) -> Self {
        let (a, b) = (ix(a), ix(b));
        self.faults.cutting = Some((a.min(b), a.max(b)));
        self
    }
    fn with_seeded_bug(mut self, bug: Seeded) -> Self {
        self.service.seeded = Some(bug);
        if bug == Seeded::NoImplicitUp {
            self.faults.implicit_up = false;
        }
        self
    }
    fn with_elected_leader(mut self) -> Self {
        self.service.elected = true;
        self
    }
    /// [`with_elected_leader`](Self::with_elected_leader) with a settle time: the settle timer
    /// fires at any moment (the other timers never do).
    fn with_settling_leader(mut self) -> Self {
        self.service.elected = true;
        self.service.settling = true;
        self.faults.timers = Timers::Any { synchronous: false };
        self
    }
    fn with_requesters(mut self, k: usize) -> Self {
        self.service.requesters = k;
        self
    }
    fn with_cancel(mut self) -> Self {
        self.service.cancel = true;
        self
    }
    fn with_crashes(mut self, k: u8) -> Self {
        self.faults.crashes = k;
        self
    }
    /// Only member `id` crashes (keeps the state space within the CI budget).
    fn crashing(mut self, member: NodeId) -> Self {
        self.faults.crashing = Some(ix(member));
        self
    }
    /// Member `id` crashes and later restarts, once (not atomic: the survivors go on
    /// meanwhile; what the crashed incarnation had in flight is lost).
    fn crash_then_restart(mut self, member: NodeId) -> Self {
        self.faults.atomic_restart = false;
        self.faults.crashes = 1;
        self.faults.restarts = 1;
        self.faults.late_from_old = false;
        self.crashing(member).restarting(member)
    }
    /// Up to `k` messages in flight are duplicated.
    fn with_duplicates(mut self, k: u8) -> Self {
        self.faults.duplicates = k;
        self
    }
    fn with_property(mut self, e: Expectation, name: &'static str, c: Cond<P>) -> Self {
        let kind = match e {
            Expectation::Always => ExpectationKind::Always,
            Expectation::Sometimes => ExpectationKind::Sometimes,
            Expectation::Eventually => ExpectationKind::Eventually,
        };
        self.service.extra.push((kind, name, c));
        self
    }
    fn build(self) -> H<P> {
        Harness::new(self.service, self.faults)
    }
}

fn check<P: Core>(name: &str, model: MutexModel<P>) -> impl Checker<H<P>> {
    harness::check(name, model.build())
}

fn holds<P: Core>(name: &str, model: MutexModel<P>, states: Option<usize>) {
    harness::holds(name, model.build(), states)
}

fn one_valid_token(_: &H<SuzukiKasami>, s: &W<SuzukiKasami>) -> bool {
    // A token is valid if a live node holds it, or if it is in flight to a live node that would
    // accept it: its epoch is not older than the node's, and it is newer than the last token
    // the node received (copies of one token to one node count once).
    let held = (0..N)
        .filter(|&i| s.alive[i] && s.nodes[i].token().is_some())
        .count();
    let in_flight: BTreeSet<_> = s
        .net
        .iter()
        .filter(|(_, dst, _)| s.alive[*dst])
        .filter_map(|(_, dst, m)| match m {
            (SkMsg::Token(t), ())
                if t.epoch >= s.nodes[dst].epoch()
                    && (t.epoch, t.hop) > s.nodes[dst].last_token() =>
            {
                Some((dst, t.epoch, t.hop))
            }
            _ => None,
        })
        .collect();
    held + in_flight.len() <= 1
}

fn only_the_leader_regenerates(_: &H<SuzukiKasami>, s: &W<SuzukiKasami>) -> bool {
    !s.obs.regenerated_by_non_leader
}

// ---------------------------------------------------------------------------------------------
// Lamport 1978

#[test]
fn lamport_is_safe_and_live_on_fifo_channels() {
    // Two of the three nodes compete (the third only acknowledges); all three competing is the
    // ignored test below.
    holds(
        "lamport fifo, 2 requesters x1",
        MutexModel::<LamportMutex>::new(true, 1).with_requesters(2),
        Some(2183),
    );
}

#[test]
fn lamport_breaks_exclusion_without_fifo() {
    let c = MutexModel::<LamportMutex>::new(false, 1)
        .with_requesters(2)
        .build()
        .checker()
        .finish_when(HasDiscoveries::AnyOf(BTreeSet::from(["mutual exclusion"])))
        .spawn_bfs()
        .join();
    let path = c
        .discovery("mutual exclusion")
        .expect("a counterexample on a non-FIFO network");
    // The shortest one: an acknowledgment overtakes the request sent before it.
    let actions = path.into_actions();
    println!("lamport non-FIFO counterexample ({} steps):", actions.len());
    for a in &actions {
        println!("  {a:?}");
    }
    assert!(actions.len() <= 12, "{actions:?}");
}

#[test]
fn lamport_cancelled_waits_withdraw() {
    holds(
        "lamport fifo, 2 requesters x1 + cancel",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_cancel(),
        Some(55_990),
    );
}

#[test]
fn lamport_survives_a_detected_crash() {
    holds(
        "lamport fifo, 2 requesters x1, 1 crash",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_crashes(1),
        Some(49_685),
    );
}

/// 1 005 268 states, about 40 s in debug (more with other tests running):
/// `cargo test -p actix-coord --test model_mutex -- --ignored lamport_three`.
#[test]
#[ignore = "long: about 40 s in debug"]
fn lamport_three_requesters_fifo() {
    holds(
        "lamport fifo, 3 requesters x1",
        MutexModel::<LamportMutex>::new(true, 1),
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// Ricart–Agrawala

#[test]
fn ricart_agrawala_is_safe_and_live_without_fifo() {
    holds(
        "ricart-agrawala unordered, 3 requesters x1",
        MutexModel::<RicartAgrawala>::new(false, 1),
        Some(7850),
    );
    holds(
        "ricart-agrawala unordered, 2 requesters x2",
        MutexModel::<RicartAgrawala>::new(false, 2).with_requesters(2),
        Some(2114),
    );
}

#[test]
fn ricart_agrawala_cancelled_waits_withdraw() {
    holds(
        "ricart-agrawala unordered, 3 requesters x1 + cancel",
        MutexModel::<RicartAgrawala>::new(false, 1).with_cancel(),
        Some(102_540),
    );
}

#[test]
fn ricart_agrawala_survives_a_detected_crash() {
    holds(
        "ricart-agrawala unordered, 3 requesters x1, 1 crash",
        MutexModel::<RicartAgrawala>::new(false, 1).with_crashes(1),
        Some(178_270),
    );
}

/// 723 522 states, about 1 min in debug:
/// `cargo test -p actix-coord --test model_mutex -- --ignored ricart_agrawala_three`.
#[test]
#[ignore = "long: about 1 min in debug"]
fn ricart_agrawala_three_requesters_twice() {
    holds(
        "ricart-agrawala unordered, 3 requesters x2",
        MutexModel::<RicartAgrawala>::new(false, 2),
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// Suzuki–Kasami

#[test]
fn suzuki_kasami_is_safe_and_live_without_fifo() {
    holds(
        "suzuki-kasami unordered, 3 requesters x2",
        MutexModel::<SuzukiKasami>::new(false, 2).with_property(
            Expectation::Always,
            "one valid token",
            one_valid_token,
        ),
        Some(67719),
    );
}

/// Recovery decided by the lowest live node: one valid token at all times, and a crash costs at
/// most two regenerations (see the module docs for how two happen).
#[test]
fn suzuki_kasami_never_two_valid_tokens_with_a_crash() {
    holds(
        "suzuki-kasami unordered, 3 requesters x1, 1 crash",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_crashes(1)
            .with_property(Expectation::Always, "one valid token", one_valid_token)
            .with_property(Expectation::Always, "at most two regenerations", |_, s| {
                s.obs.regenerations <= 2
            })
            .with_property(Expectation::Sometimes, "two regenerations", |_, s| {
                s.obs.regenerations == 2
            }),
        Some(71_977),
    );
}

/// Recovery decided by the elected leader (`with_external_leader` + `set_leader`), the leader
/// being the highest live id as bully elects it: a crash of the leader names the next one, and
/// each survivor learns of the new leader and of the crash in either order.
#[test]
fn suzuki_kasami_elected_leader_never_two_valid_tokens_with_a_crash() {
    holds(
        "suzuki-kasami elected leader, unordered, 3 requesters x1, 1 crash",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_crashes(1)
            .with_elected_leader()
            .with_property(Expectation::Always, "one valid token", one_valid_token)
            .with_property(
                Expectation::Always,
                "only the leader regenerates",
                only_the_leader_regenerates,
            )
            .with_property(Expectation::Always, "at most two regenerations", |_, s| {
                s.obs.regenerations <= 2
            })
            .with_property(Expectation::Sometimes, "two regenerations", |_, s| {
                s.obs.regenerations == 2
            })
            .with_property(Expectation::Sometimes, "a token is regenerated", |_, s| {
                s.obs.regenerations > 0
            }),
        Some(200_844),
    );
}

/// The same with the leader's settle time in the core ([`LockTimer::LeaderSettle`]): a survivor
/// named leader leads only when its settle timer fires, at any moment relative to the other
/// steps, and a verdict that comes first cancels it.
#[test]
fn suzuki_kasami_settling_leader_never_two_valid_tokens_with_a_crash() {
    holds(
        "suzuki-kasami settling leader, unordered, 3 requesters x1, 1 crash",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_crashes(1)
            .with_settling_leader()
            .with_property(Expectation::Always, "one valid token", one_valid_token)
            .with_property(
                Expectation::Always,
                "only the leader regenerates",
                only_the_leader_regenerates,
            )
            .with_property(Expectation::Sometimes, "a token is regenerated", |_, s| {
                s.obs.regenerations > 0
            }),
        Some(214_088),
    );
}

#[test]
fn suzuki_kasami_cancelled_waits_pass_the_token_on() {
    holds(
        "suzuki-kasami unordered, 3 requesters x1 + cancel",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_cancel()
            .with_property(Expectation::Always, "one valid token", one_valid_token),
        Some(3381),
    );
}

/// 11 820 105 states, 2 min 12 s in release (about 25 min in debug; passed on 2026-11-22):
/// `cargo test --release -p actix-coord --test model_mutex -- --ignored suzuki_kasami_crash_twice`.
#[test]
#[ignore = "very long: about 2 min in release, 25 min in debug"]
fn suzuki_kasami_crash_twice_each() {
    holds(
        "suzuki-kasami unordered, 3 requesters x2, 1 crash",
        MutexModel::<SuzukiKasami>::new(false, 2)
            .with_crashes(1)
            .with_property(Expectation::Always, "one valid token", one_valid_token),
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// Duplication: a message delivered twice (a retransmission below the cores, a replayed frame).

/// A duplicated request arriving after its release (or a duplicated release after the next
/// request) must not resurrect (or withdraw) a request.
#[test]
fn lamport_survives_duplicated_messages() {
    holds(
        "lamport fifo, 2 requesters x1, 1 duplicate",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_duplicates(1),
        Some(LAMPORT_DUPLICATE),
    );
}

#[test]
fn ricart_agrawala_survives_duplicated_messages() {
    holds(
        "ricart-agrawala unordered, 2 requesters x1 + cancel, 1 duplicate",
        MutexModel::<RicartAgrawala>::new(false, 1)
            .with_requesters(2)
            .with_cancel()
            .with_duplicates(1),
        Some(RA_DUPLICATE),
    );
}

#[test]
fn suzuki_kasami_survives_duplicated_messages() {
    holds(
        "suzuki-kasami unordered, 3 requesters x1 + cancel, 1 duplicate",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_cancel()
            .with_duplicates(1)
            .with_property(Expectation::Always, "one valid token", one_valid_token),
        Some(SK_DUPLICATE),
    );
}

const LAMPORT_DUPLICATE: usize = 66_488;
const RA_DUPLICATE: usize = 11_605;
const SK_DUPLICATE: usize = 31_447;

// ---------------------------------------------------------------------------------------------
// Crash-recovery (issue 11): a member restarts with empty state as a new incarnation, what was
// in flight to and from it is lost; cancelled waits followed by new requests. Each property
// has a seeded-bug test below showing that the checker finds its counterexample.

/// Finds a counterexample to `property` in `model`, and prints it.
fn counterexample<P: Core>(name: &str, property: &'static str, model: MutexModel<P>) -> usize {
    println!("{name}:");
    harness::counterexample(model.build(), property)
}

#[test]
fn lamport_a_restarted_member_catches_up_before_it_requests() {
    holds(
        "lamport fifo, 2 requesters x1, 1 restart",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_restarts(1),
        Some(LAMPORT_RESTART),
    );
}

#[test]
fn ricart_agrawala_restart_and_cancelled_waits() {
    holds(
        "ricart-agrawala unordered, 2 requesters x1 + cancel, 1 restart",
        MutexModel::<RicartAgrawala>::new(false, 1)
            .with_requesters(2)
            .with_cancel()
            .with_restarts(1),
        Some(RA_RESTART),
    );
}

#[test]
fn suzuki_kasami_restart_keeps_one_valid_token() {
    holds(
        "suzuki-kasami unordered, 2 requesters x1, 1 restart",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_restarts(1)
            .with_property(Expectation::Always, "one valid token", one_valid_token),
        Some(SK_RESTART),
    );
}

/// Cancel and re-request, two requests per member (issue 11, first report).
#[test]
fn suzuki_kasami_cancel_then_request_again() {
    holds(
        "suzuki-kasami unordered, 2 requesters x2 + cancel",
        MutexModel::<SuzukiKasami>::new(false, 2)
            .with_requesters(2)
            .with_cancel()
            .with_property(Expectation::Always, "one valid token", one_valid_token),
        Some(SK_CANCEL_TWICE),
    );
}

/// Cancel and re-request, two requests per member, on an unordered network (issue 11, Why 1):
/// 1 524 823 states, about 3.5 min in debug on a loaded machine.
#[test]
#[ignore = "long: about 3.5 min in debug"]
fn ricart_agrawala_cancel_then_request_again() {
    holds(
        "ricart-agrawala unordered, 2 requesters x2 + cancel",
        MutexModel::<RicartAgrawala>::new(false, 2)
            .with_requesters(2)
            .with_cancel(),
        Some(RA_CANCEL_TWICE),
    );
}

const LAMPORT_RESTART: usize = 22_826;
const RA_RESTART: usize = 6_783;
const SK_RESTART: usize = 2_123;
const SK_CANCEL_TWICE: usize = 9_299;
const RA_CANCEL_TWICE: usize = 1_524_823;

/// Seeded bug: a restarted member that takes part without catching up (as before issue 11)
/// enters while another member holds.
#[test]
fn seeded_no_catch_up_breaks_mutual_exclusion() {
    counterexample(
        "lamport, no catch-up",
        "mutual exclusion",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_restarts(1)
            .with_seeded_bug(Seeded::NoCatchUp),
    );
    counterexample(
        "suzuki-kasami, no catch-up",
        "mutual exclusion",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_restarts(1)
            .with_seeded_bug(Seeded::NoCatchUp),
    );
}

/// Seeded bug: a member that restarts with a low clock and takes part at once is granted a
/// fence below the previous owner's (issue 11, Why 4).
#[test]
fn seeded_no_catch_up_breaks_increasing_fences() {
    counterexample(
        "ricart-agrawala, no catch-up",
        "fences increase",
        MutexModel::<RicartAgrawala>::new(false, 1)
            .with_requesters(2)
            .with_restarts(1)
            .with_seeded_bug(Seeded::NoCatchUp),
    );
}

/// Seeded bug: fences without their epoch go back after a regeneration (Suzuki–Kasami) or
/// repeat between requesters (Lamport).
#[test]
fn seeded_fence_without_epoch_breaks_increasing_fences() {
    counterexample(
        "suzuki-kasami, fence = seq",
        "fences increase",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_restarts(1)
            .with_seeded_bug(Seeded::FenceWithoutEpoch),
    );
    counterexample(
        "lamport, fence = time",
        "fences increase",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_seeded_bug(Seeded::FenceWithoutEpoch),
    );
}

/// Seeded bug: members that never answer a newcomer leave it waiting for ever.
#[test]
fn seeded_unanswered_newcomer_breaks_liveness() {
    for property in ["no deadlock", "every request granted"] {
        counterexample(
            "ricart-agrawala, newcomer unanswered",
            property,
            MutexModel::<RicartAgrawala>::new(false, 1)
                .with_requesters(2)
                .with_restarts(1)
                .with_seeded_bug(Seeded::NoState),
        );
    }
}

/// Seeded bug: a restarted lowest member that keeps its initial token makes two valid tokens.
#[test]
fn seeded_no_catch_up_breaks_one_valid_token() {
    counterexample(
        "suzuki-kasami, no catch-up",
        "one valid token",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_restarts(1)
            .with_seeded_bug(Seeded::NoCatchUp)
            .with_property(Expectation::Always, "one valid token", one_valid_token),
    );
}

/// Restart with cancelled waits, two requests per member: 352 692 states, about 50 s in debug.
#[test]
#[ignore = "long: about 50 s in debug"]
fn suzuki_kasami_restart_cancel_twice() {
    holds(
        "suzuki-kasami unordered, 2 requesters x2 + cancel, 1 restart",
        MutexModel::<SuzukiKasami>::new(false, 2)
            .with_requesters(2)
            .with_cancel()
            .with_restarts(1)
            .with_property(Expectation::Always, "one valid token", one_valid_token),
        None,
    );
}

/// Restart with cancelled waits: 396 797 states, about 30 s in debug.
#[test]
#[ignore = "long: about 30 s in debug"]
fn lamport_restart_and_cancelled_waits() {
    holds(
        "lamport fifo, 2 requesters x1 + cancel, 1 restart",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_cancel()
            .with_restarts(1),
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// False suspicion and partition (issue 11): a link between two live members breaks, each side
// declares the other down, then the link heals and each sees the other up at its own moment
// (or through the other's first message: the driver's rule). What was in flight is lost, and so
// is what they send each other meanwhile. Mutual exclusion is then guarded by the fence (the
// checker finds two holders, `sometimes`); what must hold: every fence names one ownership, and
// every request is granted once the link has healed.

#[test]
fn lamport_false_suspicion_then_heal() {
    holds(
        "lamport fifo, 2 requesters x1, link 1-2 cut and healed",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_cuts(1)
            .cutting(1, 2),
        Some(LAMPORT_CUT),
    );
}

/// Any link cut: 2 719 179 states (before the release named its request), about 90 s in debug.
#[test]
#[ignore = "long: about 90 s in debug"]
fn lamport_false_suspicion_of_any_link_then_heal() {
    holds(
        "lamport fifo, 2 requesters x1, any link cut and healed",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(2)
            .with_cuts(1),
        None,
    );
}

#[test]
fn ricart_agrawala_false_suspicion_then_heal() {
    holds(
        "ricart-agrawala unordered, 2 requesters x1, any link cut and healed",
        MutexModel::<RicartAgrawala>::new(false, 1)
            .with_requesters(2)
            .with_cuts(1),
        Some(RA_CUT),
    );
}

/// Found the starvation fixed by `SuzukiKasami::ask_again` (21 steps): a regeneration on one
/// side of the cut counted the other side's wait as served, and the waiter, having opened a
/// higher epoch of its own, re-sent its old request number, ignored for ever.
///
/// In the suite: the links 1–3 and 2–3 (one side keeps deciding). The link 1–2 (each side
/// decides: two recoveries race, in rising epochs, through member 3) is 809 183 states since
/// the fixes of the cut-and-crash run (13 s in release, about a minute in debug): ignored,
/// with any link (833 978 states), in `suzuki_kasami_false_suspicion_of_any_link_then_heal`.
#[test]
fn suzuki_kasami_false_suspicion_then_heal() {
    for ((a, b), count) in [((1, 3), SK_CUT_13), ((2, 3), SK_CUT_23)] {
        let name = format!("suzuki-kasami unordered, 2 requesters x1, link {a}-{b} cut and healed");
        let c = check(
            &name,
            MutexModel::<SuzukiKasami>::new(false, 1)
                .with_requesters(2)
                .with_cuts(1)
                .cutting(a, b),
        );
        for p in [
            "fences name one ownership",
            "no deadlock",
            "every request granted",
        ] {
            assert!(c.discovery(p).is_none(), "{name}: {p}");
        }
        assert_eq!(c.unique_state_count(), count, "{name}");
    }
}

#[test]
#[ignore = "long: cargo test --release -p actix-coord --test model_mutex -- --ignored suzuki_kasami_false_suspicion_of_any"]
fn suzuki_kasami_false_suspicion_of_any_link_then_heal() {
    holds(
        "suzuki-kasami unordered, 2 requesters x1, any link cut and healed",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_cuts(1),
        Some(SK_CUT),
    );
}

const LAMPORT_CUT: usize = 1_389_831;
const RA_CUT: usize = 114_650;
const SK_CUT: usize = 833_978;
const SK_CUT_13: usize = 23_153;
const SK_CUT_23: usize = 2_135;

/// Seeded bug: a shell that hands over a message from a member it has down without telling the
/// core it is up first (the driver before the fix) starves a waiter after the heal.
/// A cut and a crash in one run. Found two Suzuki–Kasami bugs, both fixed:
/// * fence reuse: after a heal the holder took the probe's epoch for its token, entered and died
///   before its answer arrived; the prober regenerated in that same epoch and issued the dead
///   holder's fence again (`a_holder_that_took_the_probes_epoch_and_died_inside_…`). A
///   regenerated token now has an epoch of its own;
/// * deadlock: a member that adopted a newer epoch ignored an older recovery's probe, whose
///   leader waited for ever; it now answers with its epoch, and the decider starts over above
///   it when that epoch's leader is gone (`a_probe_of_an_older_epoch_is_answered_…`).
///
/// Link 1–2 cut, member 1 (the first holder) crashing: 3 566 667 states, 68 s in release; any
/// link and any member: 18 972 043 states, 472 s in release. Too large for the suite: the two
/// unit tests named above keep the fixes in CI.
#[test]
#[ignore = "long: cargo test --release -p actix-coord --test model_mutex -- --ignored suzuki_kasami_false_suspicion_and"]
fn suzuki_kasami_false_suspicion_and_a_crash() {
    check(
        "suzuki-kasami unordered, 2 requesters x1, link 1-2 cut and healed, member 1 crashes",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_cuts(1)
            .cutting(1, 2)
            .with_crashes(1)
            .crashing(1),
    )
    .assert_properties();
    check(
        "suzuki-kasami unordered, 2 requesters x1, any link cut and healed, 1 crash",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_cuts(1)
            .with_crashes(1),
    )
    .assert_properties();
}

/// Ricart–Agrawala with a cut and a crash: 1 517 201 states, 14 s in release.
#[test]
#[ignore = "long: cargo test --release -p actix-coord --test model_mutex -- --ignored ricart_agrawala_false_suspicion_and"]
fn ricart_agrawala_false_suspicion_and_a_crash() {
    check(
        "ricart-agrawala unordered, 2 requesters x1, any link cut and healed, 1 crash",
        MutexModel::<RicartAgrawala>::new(false, 1)
            .with_requesters(2)
            .with_cuts(1)
            .with_crashes(1),
    )
    .assert_properties();
}

#[test]
fn seeded_no_implicit_up_breaks_liveness_after_a_heal() {
    counterexample(
        "suzuki-kasami, no implicit up",
        "no deadlock",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_cuts(1)
            .cutting(1, 2)
            .with_seeded_bug(Seeded::NoImplicitUp),
    );
}

/// Seeded bug: fences without their epoch are issued twice when both sides of a cut go on.
#[test]
fn seeded_fence_without_epoch_breaks_one_ownership_per_fence() {
    counterexample(
        "suzuki-kasami, fence = seq, a cut",
        "fences name one ownership",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .with_cuts(1)
            .with_seeded_bug(Seeded::FenceWithoutEpoch),
    );
    counterexample(
        "ricart-agrawala, fence = time, a cut",
        "fences name one ownership",
        MutexModel::<RicartAgrawala>::new(false, 1)
            .with_requesters(2)
            .with_cuts(1)
            .with_seeded_bug(Seeded::FenceWithoutEpoch),
    );
}

/// Explore one configuration from the environment, e.g.
/// `ALG=sk REQ=2 CRASH=1 cargo test -p actix-coord --test model_mutex -- --ignored explore --nocapture`
/// (`ALG` = `l` | `ra` | `sk`; `FIFO`, `CANCEL` set or not; `REQ` requests per node; `REQS`
/// requesters; `CRASH` crashes; `CUT` links cut and healed (`PAIR=1,2` only that one); `SEED` = `up` | `epoch` a seeded bug;
/// `CTR=3` member 3 crashes then restarts while the others go on; `SHOW` a property whose discovery to print).
#[test]
#[ignore = "exploration helper"]
fn explore() {
    let env = |k: &str| std::env::var(k).ok();
    let alg = env("ALG").unwrap_or_else(|| "ra".into());
    let fifo = env("FIFO").is_some();
    let cancel = env("CANCEL").is_some();
    let req: u8 = env("REQ").map_or(1, |v| v.parse().unwrap());
    let reqs: usize = env("REQS").map_or(N, |v| v.parse().unwrap());
    let crash: u8 = env("CRASH").map_or(0, |v| v.parse().unwrap());
    let show = env("SHOW").unwrap_or_default();
    let restarts: u8 = env("RESTART").map_or(0, |v| v.parse().unwrap());
    let who: Option<NodeId> = env("WHO").map(|v| v.parse().unwrap());
    let cuts: u8 = env("CUT").map_or(0, |v| v.parse().unwrap());
    let seeded = match env("SEED").as_deref() {
        Some("up") => Some(Seeded::NoImplicitUp),
        Some("epoch") => Some(Seeded::FenceWithoutEpoch),
        _ => None,
    };
    macro_rules! go {
        ($t:ty) => {{
            let mut m = MutexModel::<$t>::new(fifo, req)
                .with_crashes(crash)
                .with_restarts(restarts)
                .with_cuts(cuts)
                .with_requesters(reqs);
            if let Some((a, b)) = env("PAIR").and_then(|v| {
                let (a, b) = v.split_once(',')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            }) {
                m = m.cutting(a, b);
            }
            if let Some(b) = seeded {
                m = m.with_seeded_bug(b);
            }
            if cancel {
                m = m.with_cancel();
            }
            if let Some(w) = who {
                m = m.restarting(w);
            }
            if let Some(w) = env("CTR").map(|v| v.parse().unwrap()) {
                m = m.crash_then_restart(w);
            }
            let c = check(&alg, m);
            if let Some(p) = c.discoveries().get(show.as_str()) {
                for a in p.clone().into_actions() {
                    println!("  {a:?}");
                }
                println!("  last: {:?}", p.last_state());
            }
            println!(
                "discoveries: {:?}",
                c.discoveries().keys().collect::<Vec<_>>()
            );
        }};
    }
    match alg.as_str() {
        "l" => go!(LamportMutex),
        "sk" => go!(SuzukiKasami),
        _ => go!(RicartAgrawala),
    }
}

// ---------------------------------------------------------------------------------------------
// A crash, then a restart while the others go on (not atomic: the newcomer's catching-up
// interleaves with the survivors' requests, grants and releases). With a link cut on top the
// state space outgrows 16 GiB at N = 3; see docs/faults.md.

/// Ricart–Agrawala: member 3 crashes and restarts while members 1 and 2 each take the lock.
#[test]
#[ignore = "long: about 30 s in release"]
fn ricart_agrawala_crash_then_restart_while_others_go_on() {
    holds(
        "ricart-agrawala unordered, 2 requesters x1, member 3 crashes then restarts",
        MutexModel::<RicartAgrawala>::new(false, 1)
            .with_requesters(2)
            .crash_then_restart(3),
        None,
    );
}

/// Lamport: the same, FIFO, with member 1 alone taking the lock (two requesters outgrow
/// 16 GiB).
#[test]
fn lamport_crash_then_restart_while_others_go_on() {
    holds(
        "lamport fifo, 1 requester x1, member 3 crashes then restarts",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(1)
            .crash_then_restart(3),
        Some(40_469),
    );
}

/// Suzuki–Kasami: the same, with its token property.
#[test]
#[ignore = "very long: about 6 min in release, 14 GiB"]
fn suzuki_kasami_crash_then_restart_while_others_go_on() {
    holds(
        "suzuki-kasami unordered, 2 requesters x1, member 3 crashes then restarts",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(2)
            .crash_then_restart(3)
            .with_property(Expectation::Always, "one valid token", one_valid_token),
        None,
    );
}

/// Ricart–Agrawala and Suzuki–Kasami, in CI: member 3 crashes and restarts while member 1
/// takes the lock.
#[test]
fn ra_and_sk_crash_then_restart_while_one_member_takes_the_lock() {
    let ra = check(
        "ricart-agrawala unordered, 1 requester x1, member 3 crashes then restarts",
        MutexModel::<RicartAgrawala>::new(false, 1)
            .with_requesters(1)
            .crash_then_restart(3),
    );
    ra.assert_properties();
    assert_eq!(ra.unique_state_count(), 17_310);
    let sk = check(
        "suzuki-kasami unordered, 1 requester x1, member 3 crashes then restarts",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(1)
            .crash_then_restart(3)
            .with_property(Expectation::Always, "one valid token", one_valid_token),
    );
    sk.assert_properties();
    assert_eq!(sk.unique_state_count(), 171);
}

// ---------------------------------------------------------------------------------------------
// A cut overlapping a restart: member 3 crashes and restarts while member 1 takes the lock, and
// one link may be cut and healed at any moment of that (during the newcomer's catching-up
// included). Link 1–3 is the newcomer's own; link 1–2 is between the survivors.

/// Every property holds except `two holders`, which one requester cannot reach (the guarded
/// case needs two).
fn assert_holds_with_one_requester<P: Core>(c: &impl Checker<H<P>>) {
    for p in c.model().properties() {
        match p.expectation {
            Expectation::Always | Expectation::Eventually => c.assert_no_discovery(p.name),
            Expectation::Sometimes if p.name != "two holders" => {
                c.assert_any_discovery(p.name);
            }
            Expectation::Sometimes => {}
        }
    }
}

/// Suzuki–Kasami, link 1–3: small enough for CI.
#[test]
fn suzuki_kasami_cut_overlapping_a_restart() {
    let c = check(
        "suzuki-kasami unordered, 1 requester x1, member 3 crashes then restarts, link 1-3 cut",
        MutexModel::<SuzukiKasami>::new(false, 1)
            .with_requesters(1)
            .crash_then_restart(3)
            .with_cuts(1)
            .cutting(1, 3)
            .with_property(Expectation::Always, "one valid token", one_valid_token),
    );
    assert_holds_with_one_requester(&c);
    assert_eq!(c.unique_state_count(), 2_043);
}

/// Ricart–Agrawala, link 1–3 then link 1–2: 783 985 and 4 043 089 states, 9 s and 52 s in
/// release: `cargo test --release -p actix-coord --test model_mutex -- --ignored ricart_agrawala_cut_overlapping`.
#[test]
#[ignore = "long: about a minute in release"]
fn ricart_agrawala_cut_overlapping_a_restart() {
    for ((a, b), states) in [((1, 3), 783_985), ((1, 2), 4_043_089)] {
        let name = format!(
            "ricart-agrawala unordered, 1 requester x1, member 3 crashes then restarts, link {a}-{b} cut"
        );
        let c = check(
            &name,
            MutexModel::<RicartAgrawala>::new(false, 1)
                .with_requesters(1)
                .crash_then_restart(3)
                .with_cuts(1)
                .cutting(a, b),
        );
        assert_holds_with_one_requester(&c);
        assert_eq!(c.unique_state_count(), states);
    }
}

/// Lamport, FIFO, link 1–3: 1 868 590 states, 17 s in release (link 1–2 outgrows 5 minutes):
/// `cargo test --release -p actix-coord --test model_mutex -- --ignored lamport_cut_overlapping`.
#[test]
#[ignore = "long: about 20 s in release"]
fn lamport_cut_overlapping_a_restart() {
    let c = check(
        "lamport fifo, 1 requester x1, member 3 crashes then restarts, link 1-3 cut",
        MutexModel::<LamportMutex>::new(true, 1)
            .with_requesters(1)
            .crash_then_restart(3)
            .with_cuts(1)
            .cutting(1, 3),
    );
    assert_holds_with_one_requester(&c);
    assert_eq!(c.unique_state_count(), 1_868_590);
}
