//! Issue 5, model checking of the bully core ([`Bully`], run unchanged), N = 3 and N = 4, on the
//! shared harness (`support::harness`, the service in `support::election`) with crashes,
//! restarts (a fresh core, a new incarnation), broken connections and partitions healed.
//!
//! **Safety (stateright), every run up to a depth (exhaustive runs are `#[ignore]`d).** Any
//! armed timer may fire at any moment ([`Timers::Any`]; with `synchronous`, only when no
//! message is in flight), which also models every false timeout and every timing; a partition
//! may last as long as the run. Terms are bounded (states whose known round exceeds a limit are
//! not expanded) so the space is finite.
//! * `one leader per term` (always): no two members ever lead in the same term, and the leader
//!   of a term is the member the term names;
//! * `terms increase` (always): the leader a member recognises changes only to a higher term
//!   (within one incarnation of the member);
//! * `stable` (sometimes): the model is not vacuous.
//!
//! **Liveness, by seeded simulation with time.** Liveness needs the synchrony the algorithm
//! assumes (timeouts longer than round trips), which an untimed model does not have (the timed
//! exhaustive check is `model_bully`). A discrete-event simulation (latency 1–5 ms, timers at
//! their deadlines) runs 2 s of random crashes, restarts and message loss, then no more faults:
//! within 3 s (plus the hold-down, with one) exactly one node leads, the highest live id, and
//! every live node recognises it with its term. Many seeds for N = 3 and 4, with and without
//! hold-down and quorum.
//!
//! Run with `cargo test -p actix-coord --test model_election -- --nocapture` for state counts
//! and times. The larger exhaustive runs are `#[ignore]`d:
//! `cargo test --release -p actix-coord --test model_election -- --ignored --nocapture`.

mod support;
use support::election::{self, Election, Seeded};
use support::harness::{self, Harness, Timers};

use actix_coord::election::{Bully, BullyConfig, BullyMsg, BullyTimer, Term};
use actix_coord::protocol::{Effect, EffectsOf, NodeId, Protocol};
use stateright::{Checker, Model};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Safety: every run to a depth.

/// `n` members with `cfg`: a crash, a restart, a broken connection and a partition, timers at
/// any moment once nothing is in flight, rounds up to 3, runs of up to `depth` steps.
fn model(n: usize, cfg: BullyConfig) -> Harness<Election> {
    let mut e = Election::new(n, cfg);
    e.max_round = 3;
    let mut h = e.under(election::faults(
        1,
        1,
        1,
        1,
        Timers::Any { synchronous: true },
    ));
    h.faults.boot = false;
    h
}

fn check_safety(name: &str, h: Harness<Election>, depth: usize) -> usize {
    let t = Instant::now();
    let checker = h.checker().target_max_depth(depth).spawn_bfs().join();
    println!(
        "{name}: {} states ({} unique) in {:.2} s",
        checker.state_count(),
        checker.unique_state_count(),
        t.elapsed().as_secs_f64()
    );
    checker.assert_properties();
    checker.unique_state_count()
}

/// Budgets from the environment, to explore sizes:
/// `MODEL_BUDGET=n,crashes,restarts,breaks,cuts,round,depth,synchronous cargo test --release --test model_election explore -- --ignored --nocapture`.
#[test]
#[ignore = "exploration"]
fn explore() {
    let v: Vec<u64> = std::env::var("MODEL_BUDGET")
        .unwrap_or_else(|_| "3,1,0,0,0,2,12,1".into())
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect();
    let mut e = Election::new(v[0] as usize, BullyConfig::default());
    e.max_round = v[5];
    let mut h = e.under(election::faults(
        v[1] as u8,
        v[2] as u8,
        v[3] as u8,
        v[4] as u8,
        Timers::Any {
            synchronous: v[7] == 1,
        },
    ));
    h.faults.boot = false;
    check_safety("explore", h, v[6] as usize);
}

#[test]
fn n3_one_leader_per_term_with_a_crash_a_restart_and_a_lost_message() {
    check_safety("N=3 (depth 13)", model(3, BullyConfig::default()), 13);
}

#[test]
fn n3_quorum_one_leader_per_term_with_a_crash_a_restart_and_a_lost_message() {
    let cfg = BullyConfig {
        quorum: true,
        ..BullyConfig::default()
    };
    check_safety("N=3 quorum (depth 11)", model(3, cfg), 11);
}

#[test]
fn n3_hold_down_one_leader_per_term_with_a_crash_a_restart_and_a_lost_message() {
    let cfg = BullyConfig {
        hold_down: Some(Duration::from_secs(1)),
        ..BullyConfig::default()
    };
    check_safety("N=3 hold-down (depth 13)", model(3, cfg), 13);
}

#[test]
fn n4_one_leader_per_term_with_a_crash_and_a_lost_message() {
    let mut h = model(4, BullyConfig::default());
    h.faults.restarts = 0;
    h.faults.cuts = 0;
    h.service.max_round = 2;
    check_safety("N=4 (depth 9)", h, 9);
}

/// Larger runs, in release (2026-12-07, 2 cores, 306 s in all): N=3 every run (6 688 991
/// unique states, 109 s), N=4 without restart or partition to depth 13 (4 572 194, 79 s), and
/// N=3 with timers firing at any moment, even with messages in flight, to depth 10 (6 422 856,
/// 109 s).
#[test]
#[ignore = "minutes: run with --release -- --ignored"]
fn n4_exhaustive_and_asynchronous_timers() {
    check_safety(
        "N=3 exhaustive",
        model(3, BullyConfig::default()),
        usize::MAX,
    );
    let mut h = model(4, BullyConfig::default());
    h.faults.restarts = 0;
    h.faults.cuts = 0;
    h.service.max_round = 2;
    check_safety("N=4 (depth 13)", h, 13);
    let mut a = model(3, BullyConfig::default());
    a.faults.timers = Timers::Any { synchronous: false };
    check_safety("N=3 asynchronous (depth 10)", a, 10);
}

/// Searches `h` (to `depth` steps) for a counterexample to `property`; returns its length.
fn counterexample(h: Harness<Election>, depth: usize, property: &'static str) -> usize {
    harness::search(h, property, Some(depth)).len()
}

/// The checks can fail: two members configured with one id lead one term.
#[test]
fn seeded_shared_id_gives_two_leaders_one_term() {
    let mut h = model(3, BullyConfig::default());
    h.service.seeded = Some(Seeded::SharedId);
    assert!(counterexample(h, 16, "one leader per term") > 0);
}

/// The checks can fail: a node that forgets its term on a stale leader message goes back.
#[test]
fn seeded_forgetting_the_term_on_a_stale_leader_message_goes_back_a_term() {
    let mut h = model(3, BullyConfig::default());
    h.service.seeded = Some(Seeded::ForgetsTermOnStaleLeader);
    assert!(counterexample(h, 16, "terms increase") > 0);
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
