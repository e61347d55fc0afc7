//! Deterministic simulations of Chandy–Lamport snapshots on three real nodes in turmoil: a bank
//! of three branches that keep paying each other while every branch, at seeded random moments,
//! takes snapshots of the whole bank.
//!
//! Every host runs a real `Node` over `TurmoilTransport` with a `Snapshots` member on it
//! (`At::Node`) running a small bank `Application`: each branch starts with 100.00 and
//! makes `PAYMENTS` payments of random amounts to random peers at random moments. Each branch
//! also initiates `SNAPSHOTS` snapshots at random moments without waiting for the previous one,
//! so snapshots of different initiators (and sometimes two of the same one) run concurrently.
//!
//! Faults: every message (payments, markers, reports) has a seeded latency between 1 and 20 ms,
//! so payments and markers cross on the wire in varied ways (FIFO per connection, as
//! Chandy–Lamport needs).
//!
//! Asserted:
//! * every snapshot started completes (none refused, none abandoned);
//! * every completed snapshot conserves the money: the recorded balances plus the payments
//!   recorded in flight on the channels add up to 300.00;
//! * some snapshot recorded money in flight (the check is not vacuous), and snapshots ran
//!   concurrently;
//! * after the run, the branches' balances add up to 300.00 as well;
//! * the same seed gives the same snapshots (`the_same_seed_gives_the_same_snapshots`).
//!
//! The conservation test runs seeds 1–5; `SNAPSHOT_SIM_SEED` runs that one seed instead (to
//! explore).

use actix_coord::driver::At;
use actix_coord::net::{Node, TurmoilTransport};
use actix_coord::protocol::{NodeId, SplitMix64};
use actix_coord::snapshot::{
    Application, ChandyLamport, GlobalSnapshot, Outbox, SnapshotConfig, Snapshots,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const N: u32 = 3;
/// Each branch's starting balance, in cents.
const START: u64 = 10_000;
const TOTAL: u64 = START * N as u64;
/// Payments per branch.
const PAYMENTS: u32 = 150;
/// Snapshots each branch initiates.
const SNAPSHOTS: u32 = 8;
/// The simulated time the run may take at most.
const DEADLINE: Duration = Duration::from_secs(60);

/// A branch: its balance in cents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Branch {
    balance: u64,
}

impl Application for Branch {
    /// A payment, in cents.
    type Msg = u64;
    /// Pay `cents` (at most the balance) to a branch.
    type Command = (NodeId, u64);
    /// The balance.
    type State = u64;
    fn on_command(&mut self, (to, cents): (NodeId, u64), out: &mut Outbox<u64>) {
        let cents = cents.min(self.balance);
        self.balance -= cents;
        out.send(to, cents);
    }
    fn on_message(&mut self, _from: NodeId, cents: u64, _out: &mut Outbox<u64>) {
        self.balance += cents;
    }
    fn state(&self) -> u64 {
        self.balance
    }
}

fn host(id: u32) -> String {
    format!("n{id}")
}

/// What one completed snapshot saw. The snapshot's number is left out: `Snapshots` numbers
/// from the wall clock, which the simulation does not control; `(initiator, k)` names it
/// instead (its initiator's `k`-th, from 0).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    initiator: u32,
    k: u32,
    started: Duration,
    completed: Duration,
    /// Each branch's recorded balance.
    balances: BTreeMap<u32, u64>,
    /// Cents recorded in flight, and how many payments.
    in_flight: u64,
    payments_in_flight: usize,
}

fn seen(initiator: u32, k: u32, started: Duration, g: &GlobalSnapshot<u64, u64>) -> Seen {
    let payments = || {
        g.members
            .values()
            .flat_map(|m| m.channels.values().flatten())
    };
    Seen {
        initiator,
        k,
        started,
        completed: turmoil::elapsed(),
        balances: g.members.iter().map(|(&id, m)| (id, m.state)).collect(),
        in_flight: payments().sum(),
        payments_in_flight: payments().count(),
    }
}

#[derive(Default)]
struct World {
    /// Members whose snapshot actor is registered.
    ready: u32,
    /// Snapshots started: (initiator, k, time).
    started: Vec<(u32, u32, Duration)>,
    completed: Vec<Seen>,
    /// Snapshots that failed: (initiator, k, why).
    failed: Vec<(u32, u32, String)>,
    /// Branches done paying.
    paid: u32,
    /// Commands refused: (branch, why).
    errors: Vec<(u32, String)>,
    /// Each branch's balance once every branch is done and the payments have arrived.
    final_balances: BTreeMap<u32, u64>,
}

type Shared = Arc<Mutex<World>>;

struct Run {
    world: World,
    took: Duration,
}

fn scenario(seed: u64) -> Run {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(DEADLINE + Duration::from_secs(5))
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let world: Shared = Arc::default();
    for id in 1..=N {
        let world = world.clone();
        sim.host(host(id), move || {
            let world = world.clone();
            async move {
                let mut b = Node::builder()
                    .id(id)
                    .listen("0.0.0.0:7000")
                    .secret("sim secret")
                    .transport(TurmoilTransport)
                    .seed(seed ^ u64::from(id));
                for p in (1..=N).filter(|&p| p != id) {
                    b = b.peer(p, format!("{}:7000", host(p)));
                }
                let node = b.start().await?;
                let members: Vec<u32> = (1..=N).collect();
                let core = ChandyLamport::new(
                    id,
                    members.iter().copied(),
                    Branch { balance: START },
                    SnapshotConfig::default(),
                )?;
                let bank = Snapshots::start(At::Node(&node), "bank", &members, core)?;
                world.lock().unwrap().ready += 1;
                // Start once every member is registered and every peer connected: a payment
                // sent earlier would be lost, not delayed.
                while world.lock().unwrap().ready < N
                    || node.connected_peers().len() + 1 < N as usize
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // The snapshots: started at random moments, each awaited in its own task.
                let mut rng = SplitMix64::new(seed.wrapping_mul(0x9e37) ^ u64::from(id));
                let mut snap_rng = SplitMix64::new(rng.next_u64());
                let (w, snapper) = (world.clone(), bank.clone());
                let snapshots = tokio::task::spawn_local(async move {
                    let mut takes = Vec::new();
                    for k in 0..SNAPSHOTS {
                        let pause = Duration::from_millis(30)
                            + snap_rng.duration_up_to(Duration::from_millis(150));
                        tokio::time::sleep(pause).await;
                        let started = turmoil::elapsed();
                        w.lock().unwrap().started.push((id, k, started));
                        let (w, snapper) = (w.clone(), snapper.clone());
                        takes.push(tokio::task::spawn_local(async move {
                            let r = snapper.take().await;
                            let mut w = w.lock().unwrap();
                            match r {
                                Ok(g) => w.completed.push(seen(id, k, started, &g)),
                                Err(e) => w.failed.push((id, k, e.to_string())),
                            }
                        }));
                    }
                    for t in takes {
                        let _ = t.await;
                    }
                });
                // The payments.
                let peers: Vec<u32> = members.iter().copied().filter(|&p| p != id).collect();
                for _ in 0..PAYMENTS {
                    tokio::time::sleep(rng.duration_up_to(Duration::from_millis(12))).await;
                    let to = peers[(rng.next_u64() % peers.len() as u64) as usize];
                    let cents = rng.next_u64() % 3_000;
                    if let Err(e) = bank.command((to, cents)).await {
                        world.lock().unwrap().errors.push((id, e.to_string()));
                    }
                }
                let _ = snapshots.await;
                world.lock().unwrap().paid += 1;
                // Once everyone is done, wait out the payments still on the wire (at most the
                // maximum latency) and report the balance.
                while world.lock().unwrap().paid < N {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let balance = bank.read(|b| b.balance).await?;
                world.lock().unwrap().final_balances.insert(id, balance);
                // Stay a member.
                std::future::pending::<()>().await;
                drop((bank, node));
                Ok(())
            }
        });
    }
    loop {
        sim.step().unwrap();
        let w = world.lock().unwrap();
        if w.final_balances.len() as u32 == N || sim.elapsed() >= DEADLINE {
            break;
        }
    }
    let took = sim.elapsed();
    let world = std::mem::take(&mut *world.lock().unwrap());
    Run { world, took }
}

/// The seeds a test runs: `SNAPSHOT_SIM_SEED` alone if set, else `SEEDS` seeds from `first`.
fn seeds(first: u64) -> Vec<u64> {
    match std::env::var("SNAPSHOT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (first..first + SEEDS).collect(),
    }
}

/// Seeds per test.
const SEEDS: u64 = 5;

/// Pairs of snapshots whose runs overlapped in simulated time.
fn overlapping(s: &[Seen]) -> usize {
    let mut n = 0;
    for (i, a) in s.iter().enumerate() {
        for b in &s[i + 1..] {
            if a.started < b.completed && b.started < a.completed {
                n += 1;
            }
        }
    }
    n
}

fn cents(c: u64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

#[test]
fn every_snapshot_completes_and_conserves_the_money() {
    let (mut all, mut with_flight, mut concurrent) = (0, 0, 0);
    for seed in seeds(1) {
        let r = scenario(seed);
        let w = &r.world;
        assert!(w.errors.is_empty(), "seed {seed}: {:?}", w.errors);
        assert!(w.failed.is_empty(), "seed {seed}: {:?}", w.failed);
        assert_eq!(w.started.len() as u32, N * SNAPSHOTS, "seed {seed}");
        assert_eq!(
            w.completed.len(),
            w.started.len(),
            "seed {seed}: every snapshot started completes"
        );
        for s in &w.completed {
            assert_eq!(s.balances.len() as u32, N, "seed {seed}: {s:?}");
            let total = s.balances.values().sum::<u64>() + s.in_flight;
            assert_eq!(total, TOTAL, "seed {seed}: not conserved: {s:?}");
        }
        assert_eq!(
            w.final_balances.values().sum::<u64>(),
            TOTAL,
            "seed {seed}: {:?}",
            w.final_balances
        );
        let flight: Vec<&Seen> = w.completed.iter().filter(|s| s.in_flight > 0).collect();
        assert!(!flight.is_empty(), "seed {seed}: no money ever in flight");
        let overlaps = overlapping(&w.completed);
        assert!(overlaps > 0, "seed {seed}: no concurrent snapshots");
        let most = w.completed.iter().max_by_key(|s| s.in_flight).unwrap();
        let slowest = w
            .completed
            .iter()
            .map(|s| s.completed - s.started)
            .max()
            .unwrap_or_default();
        println!(
            "seed {seed}: {} snapshots in {:?} simulated, all hold {}; {} with money in flight \
             (most: {} in {} payments, snapshot {}#{}), {overlaps} overlapping pairs, slowest \
             {slowest:?}",
            w.completed.len(),
            r.took,
            cents(TOTAL),
            flight.len(),
            cents(most.in_flight),
            most.payments_in_flight,
            most.initiator,
            most.k,
        );
        all += w.completed.len();
        with_flight += flight.len();
        concurrent += overlaps;
    }
    println!(
        "in all: {all} snapshots conserved the money, {with_flight} with money in flight, \
         {concurrent} overlapping pairs"
    );
}

#[test]
fn the_same_seed_gives_the_same_snapshots() {
    let a = scenario(23);
    let b = scenario(23);
    assert_eq!(a.world.completed.len() as u32, N * SNAPSHOTS);
    assert_eq!(a.world.completed, b.world.completed);
    assert_eq!(a.world.final_balances, b.world.final_balances);
    let c = scenario(24);
    assert_ne!(
        a.world.completed, c.world.completed,
        "another seed, another run"
    );
    println!(
        "seed 23 twice: the same {} snapshots; seed 24: different ones",
        a.world.completed.len()
    );
}
