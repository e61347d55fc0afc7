//! Issue 5, model checking of the bully core ([`Bully`], run unchanged), N = 3 and N = 4, with
//! crashes, restarts (with no memory) and message loss.
//!
//! **Safety (stateright), every run up to a depth (16 steps for N = 3, 12 with quorum, 10 for
//! N = 4; exhaustive runs are `#[ignore]`d).** The network is an unordered set of messages in flight
//! (a duplicate of a message already in flight merges with it: one more way to lose messages);
//! the checker may drop any message up to a budget, crash and restart nodes up to a budget
//! (survivors are told at once through `on_peer_down` / `on_peer_up`), and fire any armed timer at
//! any moment, which also models every false suspicion and every timing. Terms are bounded
//! (states whose known round exceeds a limit are not expanded) so the space is finite.
//! * `one leader per term` (always): no two nodes ever lead in the same term, and the leader of
//!   a term is the node the term names;
//! * `terms increase` (always): the leader a node recognises changes only to a higher term
//!   (within one incarnation of the node);
//! * `elected` (sometimes): a leader is elected (the model is not vacuous).
//!
//! **Liveness, by seeded simulation with time.** Liveness needs the synchrony the algorithm
//! assumes (timeouts longer than round trips), which an untimed model does not have. A
//! discrete-event simulation (latency 1–5 ms, timers at their deadlines) runs 2 s of random
//! crashes, restarts and message loss, then no more faults: within 3 s (plus the hold-down,
//! with one) exactly one node leads, the highest live id, and every live node recognises it
//! with its term. Many seeds for N = 3 and 4, with and without hold-down and quorum.
//!
//! Run with `cargo test -p actix-coord --test model_election -- --nocapture` for state counts
//! and times. The larger exhaustive runs are `#[ignore]`d:
//! `cargo test --release -p actix-coord --test model_election -- --ignored --nocapture`.

mod support;
use support::harness;

use actix_coord::election::{Bully, BullyConfig, BullyEvent, BullyMsg, BullyTimer, Role, Term};
use actix_coord::protocol::{Effect, EffectsOf, NodeId, Protocol};
use stateright::{Checker, Model, Property};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Safety: exhaustive.

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    /// `None` while crashed.
    nodes: Vec<Option<Bully>>,
    timers: Vec<BTreeSet<BullyTimer>>,
    net: BTreeSet<(usize, usize, BullyMsg)>,
    crashes: u8,
    restarts: u8,
    drops: u8,
    /// Ghost: every (term, node) that ever led.
    led: BTreeSet<(Term, NodeId)>,
    /// Ghost: per node (this incarnation), the last recognised leader.
    last_seen: Vec<Option<(NodeId, Term)>>,
    /// Ghost: a recognised leader went to a lower term.
    went_back: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Deliver(usize, usize, BullyMsg),
    Drop(usize, usize, BullyMsg),
    Fire(usize, BullyTimer),
    Crash(usize),
    Restart(usize),
}

#[derive(Clone)]
struct BullyModel {
    n: usize,
    cfg: BullyConfig,
    max_crashes: u8,
    max_restarts: u8,
    max_drops: u8,
    max_round: u64,
    /// Explore runs of at most this many steps.
    max_depth: usize,
    /// Timers fire only when no message is in flight.
    synchronous: bool,
    /// A bug put in on purpose, to show that a property's check can fail.
    seeded: Option<Seeded>,
}

/// Bugs put in on purpose: each breaks one property, and its test shows the check finding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seeded {
    /// Members 2 and 3 are both configured as id 3.
    SharedId,
    /// A node that gets a leader message of a term older than the one it knows forgets its
    /// state (a fresh core) before taking it.
    ForgetsTermOnStaleLeader,
}

impl BullyModel {
    fn id(i: usize) -> NodeId {
        i as NodeId + 1
    }

    fn members(&self) -> Vec<NodeId> {
        (0..self.n).map(Self::id).collect()
    }

    fn fresh(&self, i: usize) -> Bully {
        let id = match self.seeded {
            Some(Seeded::SharedId) if i + 2 == self.n => Self::id(i + 1),
            _ => Self::id(i),
        };
        Bully::new(id, self.members(), self.cfg.clone()).expect("valid config")
    }

    /// Runs `f` on live node `i` and applies its effects.
    fn with(&self, s: &mut State, i: usize, f: impl FnOnce(&mut Bully, &mut EffectsOf<Bully>)) {
        let mut out = EffectsOf::<Bully>::new();
        let Some(node) = s.nodes[i].as_mut() else {
            return;
        };
        f(node, &mut out);
        // The leader is the member slot, not the id it was configured with: two slots with
        // one id leading one term are two leaders.
        if let Role::Leader { term, .. } = node.role() {
            s.led.insert((*term, Self::id(i)));
        }
        for e in out {
            match e {
                Effect::Send { to, msg } => {
                    let j = to as usize - 1;
                    if s.nodes[j].is_some() {
                        s.net.insert((i, j, msg));
                    }
                }
                Effect::Broadcast(msg) => {
                    for j in (0..self.n).filter(|&j| j != i && s.nodes[j].is_some()) {
                        s.net.insert((i, j, msg.clone()));
                    }
                }
                Effect::SetTimer { timer, .. } => {
                    s.timers[i].insert(timer);
                }
                Effect::CancelTimer(timer) => {
                    s.timers[i].remove(&timer);
                }
                Effect::Emit(BullyEvent::LeaderChanged { leader, term }) => {
                    if let Some(l) = leader {
                        if let Some((_, old)) = s.last_seen[i]
                            && term < old
                        {
                            s.went_back = true;
                        }
                        s.last_seen[i] = Some((l, term));
                    }
                }
            }
        }
    }
}

const ZERO: Duration = Duration::ZERO;

impl Model for BullyModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut s = State {
            nodes: (0..self.n).map(|i| Some(self.fresh(i))).collect(),
            timers: vec![BTreeSet::new(); self.n],
            net: BTreeSet::new(),
            crashes: 0,
            restarts: 0,
            drops: 0,
            led: BTreeSet::new(),
            last_seen: vec![None; self.n],
            went_back: false,
        };
        for i in 0..self.n {
            self.with(&mut s, i, |b, out| b.on_start(ZERO, out));
        }
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (src, dst, msg) in &s.net {
            actions.push(Action::Deliver(*src, *dst, msg.clone()));
            if s.drops < self.max_drops {
                actions.push(Action::Drop(*src, *dst, msg.clone()));
            }
        }
        for (i, ts) in s.timers.iter().enumerate() {
            for t in ts {
                // Synchrony, as the algorithm assumes: a message is delivered (or lost) before
                // any timeout expires, so timers fire only when nothing is in flight; in which
                // order they fire is left open. A false suspicion is still possible: a
                // follower's leader timeout may fire between two heartbeats.
                if self.synchronous && !s.net.is_empty() {
                    continue;
                }
                actions.push(Action::Fire(i, *t));
            }
        }
        for i in 0..self.n {
            match s.nodes[i] {
                Some(_) if s.crashes < self.max_crashes => actions.push(Action::Crash(i)),
                None if s.restarts < self.max_restarts => actions.push(Action::Restart(i)),
                _ => {}
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Deliver(src, dst, msg) => {
                s.net.remove(&(src, dst, msg.clone()));
                if let (
                    Some(Seeded::ForgetsTermOnStaleLeader),
                    BullyMsg::Coordinator { term } | BullyMsg::Heartbeat { term },
                ) = (self.seeded, &msg)
                    && s.nodes[dst].as_ref()?.known_term() > *term
                {
                    s.nodes[dst] = Some(self.fresh(dst));
                    s.timers[dst].clear();
                }
                let from = Self::id(src);
                self.with(&mut s, dst, |b, out| b.on_message(ZERO, from, msg, out));
            }
            Action::Drop(src, dst, msg) => {
                s.net.remove(&(src, dst, msg));
                s.drops += 1;
            }
            Action::Fire(i, t) => {
                s.timers[i].remove(&t);
                self.with(&mut s, i, |b, out| b.on_timer(ZERO, t, out));
            }
            Action::Crash(i) => {
                s.nodes[i] = None;
                s.timers[i].clear();
                s.net.retain(|(_, d, _)| *d != i);
                s.last_seen[i] = None;
                s.crashes += 1;
                let id = Self::id(i);
                for j in 0..self.n {
                    self.with(&mut s, j, |b, out| b.on_peer_down(ZERO, id, out));
                }
            }
            Action::Restart(i) => {
                s.nodes[i] = Some(self.fresh(i));
                s.restarts += 1;
                let id = Self::id(i);
                for j in (0..self.n).filter(|&j| j != i) {
                    self.with(&mut s, j, |b, out| b.on_peer_up(ZERO, id, out));
                }
                self.with(&mut s, i, |b, out| b.on_start(ZERO, out));
            }
        }
        Some(s)
    }

    fn within_boundary(&self, s: &State) -> bool {
        s.nodes
            .iter()
            .flatten()
            .all(|b| b.known_term().round <= self.max_round)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("one leader per term", |_, s: &State| {
                let mut by_term: BTreeMap<Term, NodeId> = BTreeMap::new();
                s.led.iter().all(|&(t, l)| {
                    t.leader == l && by_term.insert(t, l).is_none_or(|other| other == l)
                })
            }),
            Property::always("terms increase", |_, s: &State| !s.went_back),
            Property::sometimes("elected", |_, s: &State| !s.led.is_empty()),
        ]
    }
}

fn check_safety(name: &str, model: BullyModel) -> usize {
    let t = Instant::now();
    let depth = model.max_depth;
    let checker = model.checker().target_max_depth(depth).spawn_bfs().join();
    println!(
        "{name}: {} states ({} unique) in {:.2} s",
        checker.state_count(),
        checker.unique_state_count(),
        t.elapsed().as_secs_f64()
    );
    checker.assert_properties();
    checker.unique_state_count()
}

fn model(n: usize, cfg: BullyConfig) -> BullyModel {
    BullyModel {
        n,
        cfg,
        max_crashes: 1,
        max_restarts: 1,
        max_drops: 1,
        max_round: 3,
        max_depth: 16,
        synchronous: true,
        seeded: None,
    }
}

/// Budgets from the environment, to explore sizes:
/// `MODEL_BUDGET=n,crashes,restarts,drops,round cargo test --release --test model_election explore -- --ignored --nocapture`.
#[test]
#[ignore = "exploration"]
fn explore() {
    let v: Vec<u64> = std::env::var("MODEL_BUDGET")
        .unwrap_or_else(|_| "3,1,0,0,2,12,1".into())
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect();
    let m = BullyModel {
        n: v[0] as usize,
        cfg: BullyConfig::default(),
        max_crashes: v[1] as u8,
        max_restarts: v[2] as u8,
        max_drops: v[3] as u8,
        max_round: v[4],
        max_depth: v[5] as usize,
        synchronous: v[6] == 1,
        seeded: None,
    };
    check_safety("explore", m);
}

#[test]
fn n3_one_leader_per_term_with_a_crash_a_restart_and_a_lost_message() {
    check_safety("N=3", model(3, BullyConfig::default()));
}

#[test]
fn n3_quorum_one_leader_per_term_with_a_crash_a_restart_and_a_lost_message() {
    let cfg = BullyConfig {
        quorum: true,
        ..BullyConfig::default()
    };
    check_safety(
        "N=3 quorum (depth 12)",
        BullyModel {
            max_depth: 12,
            ..model(3, cfg)
        },
    );
}

#[test]
fn n3_hold_down_one_leader_per_term_with_a_crash_a_restart_and_a_lost_message() {
    let cfg = BullyConfig {
        hold_down: Some(Duration::from_secs(1)),
        ..BullyConfig::default()
    };
    check_safety("N=3 hold-down", model(3, cfg));
}

#[test]
fn n4_one_leader_per_term_with_a_crash_and_a_lost_message() {
    let m = BullyModel {
        max_restarts: 0,
        max_round: 2,
        max_depth: 10,
        ..model(4, BullyConfig::default())
    };
    check_safety("N=4 (depth 10)", m);
}

#[test]
#[ignore = "minutes: run with --release -- --ignored"]
fn n4_exhaustive_and_asynchronous_timers() {
    // N=4, a crash, a lost message, rounds up to 2, every run (about 1.1 M unique states, 20 s
    // in release).
    check_safety(
        "N=3 exhaustive",
        BullyModel {
            max_depth: usize::MAX,
            ..model(3, BullyConfig::default())
        },
    );
    let m = BullyModel {
        max_restarts: 0,
        max_round: 2,
        max_depth: usize::MAX,
        ..model(4, BullyConfig::default())
    };
    check_safety("N=4 exhaustive", m);
    let q = BullyConfig {
        quorum: true,
        ..BullyConfig::default()
    };
    check_safety(
        "N=4 quorum (depth 20)",
        BullyModel {
            max_restarts: 0,
            max_round: 2,
            max_depth: 20,
            ..model(4, q)
        },
    );
    // N=3 with timers firing at any moment, even with messages in flight (no synchrony): runs
    // of up to 10 steps (about 4.3 M unique states).
    check_safety(
        "N=3 asynchronous (depth 10)",
        BullyModel {
            max_depth: 10,
            synchronous: false,
            ..model(3, BullyConfig::default())
        },
    );
}

/// Searches `m` (to its depth) for a counterexample to `property`; returns its length.
fn counterexample(m: BullyModel, property: &'static str) -> usize {
    let depth = m.max_depth;
    harness::search(m, property, Some(depth)).len()
}

/// The checks can fail: two members configured with one id lead one term.
#[test]
fn seeded_shared_id_gives_two_leaders_one_term() {
    let m = BullyModel {
        seeded: Some(Seeded::SharedId),
        ..model(3, BullyConfig::default())
    };
    assert!(counterexample(m, "one leader per term") > 0);
}

/// The checks can fail: a node that forgets its term on a stale leader message goes back.
#[test]
fn seeded_forgetting_the_term_on_a_stale_leader_message_goes_back_a_term() {
    let m = BullyModel {
        seeded: Some(Seeded::ForgetsTermOnStaleLeader),
        ..model(3, BullyConfig::default())
    };
    assert!(counterexample(m, "terms increase") > 0);
}

// ---------------------------------------------------------------------------------------------
// Liveness: seeded simulation with time.

const MS: Duration = Duration::from_millis(1);

/// A small deterministic generator (SplitMix64) for the simulation's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

enum Ev {
    Msg(usize, usize, BullyMsg),
    Timer(usize, BullyTimer, u64),
    Down(usize, NodeId),
    Up(usize, NodeId),
}

struct Sim {
    n: usize,
    cfg: BullyConfig,
    nodes: Vec<Option<Bully>>,
    now: Duration,
    /// (at, seq) -> event
    queue: BTreeMap<(Duration, u64), Ev>,
    /// Armed timers: (node, timer) -> generation (a re-armed or cancelled timer's old event is
    /// ignored).
    armed: BTreeMap<(usize, BullyTimer), u64>,
    seq: u64,
    rng: Rng,
    loss_per_mille: u64,
    /// Seeded bug: this member drops every `Coordinator` and `Heartbeat` it gets.
    deaf: Option<usize>,
}

impl Sim {
    fn new(n: usize, cfg: BullyConfig, seed: u64) -> Self {
        let mut s = Sim {
            n,
            cfg,
            nodes: vec![None; n],
            now: Duration::ZERO,
            queue: BTreeMap::new(),
            armed: BTreeMap::new(),
            seq: 0,
            rng: Rng(seed),
            loss_per_mille: 0,
            deaf: None,
        };
        for i in 0..n {
            s.boot(i);
        }
        s
    }

    fn push(&mut self, after: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), ev);
    }

    fn send(&mut self, i: usize, j: usize, msg: BullyMsg) {
        if self.rng.chance(self.loss_per_mille) {
            return;
        }
        let latency = MS * (1 + self.rng.below(5) as u32);
        self.push(latency, Ev::Msg(i, j, msg));
    }

    fn with(&mut self, i: usize, f: impl FnOnce(&mut Bully, Duration, &mut EffectsOf<Bully>)) {
        let mut out = EffectsOf::<Bully>::new();
        let now = self.now;
        let Some(b) = self.nodes[i].as_mut() else {
            return;
        };
        f(b, now, &mut out);
        for e in out {
            match e {
                Effect::Send { to, msg } => self.send(i, to as usize - 1, msg),
                Effect::Broadcast(msg) => {
                    for j in (0..self.n).filter(|&j| j != i) {
                        self.send(i, j, msg.clone());
                    }
                }
                Effect::SetTimer { timer, after } => {
                    self.seq += 1;
                    let g = self.seq;
                    self.armed.insert((i, timer), g);
                    self.push(after, Ev::Timer(i, timer, g));
                }
                Effect::CancelTimer(timer) => {
                    self.armed.remove(&(i, timer));
                }
                Effect::Emit(_) => {}
            }
        }
    }

    fn boot(&mut self, i: usize) {
        let members: Vec<NodeId> = (1..=self.n as NodeId).collect();
        self.nodes[i] = Some(Bully::new(i as NodeId + 1, members, self.cfg.clone()).unwrap());
        self.with(i, |b, now, out| b.on_start(now, out));
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.armed.retain(|(n, _), _| *n != i);
        for j in (0..self.n).filter(|&j| j != i) {
            let d = MS * self.rng.below(50) as u32;
            self.push(d, Ev::Down(j, i as NodeId + 1));
        }
    }

    fn restart(&mut self, i: usize) {
        self.boot(i);
        for j in (0..self.n).filter(|&j| j != i) {
            let d = MS * self.rng.below(50) as u32;
            self.push(d, Ev::Up(j, i as NodeId + 1));
        }
    }

    fn step(&mut self) -> bool {
        let Some(((at, _), ev)) = self.queue.pop_first() else {
            return false;
        };
        self.now = at;
        match ev {
            Ev::Msg(_, j, BullyMsg::Coordinator { .. } | BullyMsg::Heartbeat { .. })
                if self.deaf == Some(j) => {}
            Ev::Msg(i, j, msg) => {
                let from = i as NodeId + 1;
                self.with(j, |b, now, out| b.on_message(now, from, msg, out));
            }
            Ev::Timer(i, t, g) => {
                if self.armed.get(&(i, t)) == Some(&g) {
                    self.armed.remove(&(i, t));
                    self.with(i, |b, now, out| b.on_timer(now, t, out));
                }
            }
            Ev::Down(j, p) => self.with(j, |b, now, out| b.on_peer_down(now, p, out)),
            Ev::Up(j, p) => self.with(j, |b, now, out| b.on_peer_up(now, p, out)),
        }
        true
    }

    fn run_until(&mut self, until: Duration) {
        while self
            .queue
            .first_key_value()
            .is_some_and(|((at, _), _)| *at <= until)
        {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Stable: exactly one node leads, the highest live id, and every live node recognises it
    /// with its term.
    fn stable(&self) -> Option<(NodeId, Term)> {
        let live: Vec<&Bully> = self.nodes.iter().flatten().collect();
        let highest = live.iter().map(|b| b.id()).max()?;
        let leaders: Vec<&&Bully> = live.iter().filter(|b| b.is_leader()).collect();
        if leaders.len() != 1 || leaders[0].id() != highest {
            return None;
        }
        let view = leaders[0].leader()?;
        live.iter()
            .all(|b| b.leader() == Some(view))
            .then_some(view)
    }
}

/// 2 s of random faults, then none: the system must be stable within `settle`, and stay so.
fn faults_then_stable(n: usize, cfg: BullyConfig, seed: u64, settle: Duration) {
    faults_then_stable_deaf(n, cfg, seed, settle, None);
}

/// [`faults_then_stable`] with member `deaf` (a seeded bug) deaf to leader messages.
fn faults_then_stable_deaf(
    n: usize,
    cfg: BullyConfig,
    seed: u64,
    settle: Duration,
    deaf: Option<usize>,
) {
    let mut sim = Sim::new(n, cfg, seed);
    sim.deaf = deaf;
    let mut t = Duration::ZERO;
    let fault_end = Duration::from_secs(2);
    while t < fault_end {
        t += MS * 50;
        sim.loss_per_mille = if sim.rng.chance(300) { 200 } else { 0 };
        let i = sim.rng.below(n as u64) as usize;
        if sim.rng.chance(100) {
            if sim.nodes[i].is_some() {
                // Keep at least one node alive.
                if sim.nodes.iter().flatten().count() > 1 {
                    sim.crash(i);
                }
            } else {
                sim.restart(i);
            }
        }
        sim.run_until(t);
    }
    sim.loss_per_mille = 0;
    let deadline = fault_end + settle;
    let mut stable_at = None;
    while sim.now < deadline {
        sim.run_until(sim.now + MS * 10);
        if let Some(v) = sim.stable() {
            stable_at = Some((sim.now, v));
            break;
        }
    }
    let (at, view) = stable_at.unwrap_or_else(|| {
        let views: Vec<_> = sim
            .nodes
            .iter()
            .map(|b| b.as_ref().map(|b| (b.id(), b.role().clone(), b.leader())))
            .collect();
        panic!("N={n} seed {seed}: not stable {settle:?} after the faults: {views:?}")
    });
    // And it stays stable (no further change) for another second.
    sim.run_until(at + Duration::from_secs(1));
    assert_eq!(
        sim.stable(),
        Some(view),
        "N={n} seed {seed}: changed after stabilising"
    );
}

/// The liveness check can fail: with member 1 deaf to leader messages (a seeded bug) the
/// cluster never stabilises, and the check says so.
#[test]
#[should_panic(expected = "not stable")]
fn seeded_deaf_member_is_never_stable() {
    faults_then_stable_deaf(
        3,
        BullyConfig::default(),
        0,
        Duration::from_secs(3),
        Some(0),
    );
}

#[test]
fn eventually_one_leader_the_highest_live_id_once_faults_stop() {
    let t = Instant::now();
    let settle = Duration::from_secs(3);
    for n in [3, 4] {
        for seed in 0..150 {
            faults_then_stable(n, BullyConfig::default(), seed, settle);
            let q = BullyConfig {
                quorum: true,
                ..BullyConfig::default()
            };
            // With quorum, a majority must be live for anyone to lead.
            faults_then_stable_if_majority(n, q, seed, settle);
        }
    }
    println!(
        "liveness: 2 × 2 × 150 seeded runs in {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

/// As [`faults_then_stable`], for quorum mode: restarts every crashed node once faults stop,
/// so that a majority is live.
fn faults_then_stable_if_majority(n: usize, cfg: BullyConfig, seed: u64, settle: Duration) {
    let mut sim = Sim::new(n, cfg, seed);
    let mut t = Duration::ZERO;
    while t < Duration::from_secs(2) {
        t += MS * 50;
        sim.loss_per_mille = if sim.rng.chance(300) { 200 } else { 0 };
        let i = sim.rng.below(n as u64) as usize;
        if sim.rng.chance(100) {
            if sim.nodes[i].is_some() {
                sim.crash(i);
            } else {
                sim.restart(i);
            }
        }
        sim.run_until(t);
    }
    sim.loss_per_mille = 0;
    for i in 0..n {
        if sim.nodes[i].is_none() {
            sim.restart(i);
        }
    }
    let deadline = sim.now + settle;
    while sim.now < deadline && sim.stable().is_none() {
        sim.run_until(sim.now + MS * 10);
    }
    assert!(
        sim.stable().is_some_and(|(l, _)| l == n as NodeId),
        "N={n} quorum seed {seed}: not stable: {:?}",
        sim.nodes
            .iter()
            .map(|b| b.as_ref().map(|b| (b.role().clone(), b.leader())))
            .collect::<Vec<_>>()
    );
}

#[test]
fn with_hold_down_eventually_the_highest_once_the_hold_down_ends() {
    let hold = Duration::from_secs(1);
    let cfg = BullyConfig {
        hold_down: Some(hold),
        ..BullyConfig::default()
    };
    for n in [3, 4] {
        for seed in 0..100 {
            faults_then_stable(n, cfg.clone(), seed, Duration::from_secs(3) + hold);
        }
    }
}
