//! Deterministic simulations of the distributed locks (Lamport, Ricart–Agrawala, Suzuki–Kasami)
//! on real nodes in turmoil.
//!
//! Every host runs a real `Node` over `TurmoilTransport` with a `DistributedLock` on it
//! (`At::Node`). Each member acquires the lock `K` times; inside the critical section it
//! increments a shared counter (one `FencedResource` shared by the hosts, standing for the
//! protected resource) with its guard's fencing token, stays a seeded random moment, and
//! releases; between acquisitions it thinks a seeded random moment too.
//!
//! Faults: every message has a seeded latency between 1 and 20 ms (turmoil's jitter), so
//! requests, grants and releases of different members cross and arrive in varied orders. In the
//! crash variants member 3, once it has written `K / 2` times and while it is outside the
//! critical section, is crashed (turmoil breaks its connections; both survivors declare it down
//! within a few simulated ms). It may still have a request pending; with Suzuki–Kasami it may
//! keep the idle token, or have it in flight towards it, so the token dies with it and the lowest
//! live member regenerates it in a new epoch (the runs print how many tokens were regenerated).
//!
//! Asserted, per algorithm:
//! * every member finishes its `K` acquisitions (after a crash: every survivor), no acquisition
//!   waits more than 20 s (simulated);
//! * the counter ends at N·K (after a crash: 2·K plus the crashed member's writes, none of which
//!   is after the crash);
//! * no write was refused by the fenced resource;
//! * the fencing tokens are strictly increasing in the order of the writes;
//! * at no simulated moment are two members inside (a shared "inside" counter, incremented when
//!   `acquire` returns and decremented before `release`, never exceeds 1);
//! * the same seed gives the same trace (the sequence of (time, node, token))
//!   (`the_same_seed_gives_the_same_lock_trace`).
//!
//! A crash run replays exactly only within the same history of the test process: turmoil tears
//! down the crashed host's sockets (each sends a FIN or RST with a latency drawn from the seeded
//! RNG) in tokio's task order, and tokio's task ids are process-wide. The survivors' detection
//! times, and the trace after the crash, so depend on what ran before in the process; the
//! properties hold either way, and the traces before the crash, and of runs without a crash, are
//! the seed's alone.
//!
//! Each test runs seeds 1–5; `LOCKS_SIM_SEED` runs that one seed instead (to explore), and
//! `LOCKS_SIM_DUMP` prints the crash runs' writes.

use actix_coord::driver::At;
use actix_coord::mutex::{DistributedLock, Fence, FencedResource, LockAlgorithm};
use actix_coord::net::{Node, NodeEvent, TurmoilTransport};
use actix_coord::protocol::SplitMix64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Acquisitions per member.
const K: u64 = 20;
/// The simulated time the run may take at most.
const DEADLINE: Duration = Duration::from_secs(60);
/// How long a member waits for one acquisition before failing the run.
const PATIENCE: Duration = Duration::from_secs(20);

fn host(id: u32) -> String {
    format!("n{id}")
}

/// One write to the resource: when, by whom, with which token.
type Write = (Duration, u32, Fence);

/// What the hosts share: the protected resource and the observations.
struct World {
    resource: FencedResource<u64>,
    /// Members in the critical section now, and the most ever seen at once.
    inside: u32,
    max_inside: u32,
    /// Who is in the critical section now (for the crash variant: never crash a holder).
    holder: Option<u32>,
    /// Every accepted write, in order.
    writes: Vec<Write>,
    /// Every refused write: (node, token, why).
    refused: Vec<(u32, Fence, String)>,
    /// Members whose lock actor is registered.
    ready: u32,
    /// Members done with their `K` acquisitions.
    done: Vec<u32>,
    /// Members that gave up (acquisition failed): (node, why).
    failed: Vec<(u32, String)>,
    /// Every `MemberDown` seen: (time, observer, the member declared down).
    downs: Vec<(Duration, u32, u32)>,
    /// Suzuki–Kasami tokens regenerated, summed over the members that finished.
    regenerations: u64,
}

type Shared = Arc<Mutex<World>>;

struct Run {
    value: u64,
    max_inside: u32,
    writes: Vec<Write>,
    refused: Vec<(u32, Fence, String)>,
    failed: Vec<(u32, String)>,
    downs: Vec<(Duration, u32, u32)>,
    regenerations: u64,
    done: Vec<u32>,
    /// The simulated time the run took.
    took: Duration,
    /// (node, simulated time) of the crash, if any.
    crashed: Option<(u32, Duration)>,
}

/// Runs `n` members of `algorithm`; with `crash = Some(id)`, member `id` is crashed once it has
/// written `K / 2` times and is outside the critical section.
fn scenario(seed: u64, algorithm: LockAlgorithm, n: u32, crash: Option<u32>) -> Run {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(DEADLINE + Duration::from_secs(5))
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let world: Shared = Arc::new(Mutex::new(World {
        resource: FencedResource::new(0),
        inside: 0,
        max_inside: 0,
        holder: None,
        writes: Vec::new(),
        refused: Vec::new(),
        ready: 0,
        done: Vec::new(),
        failed: Vec::new(),
        downs: Vec::new(),
        regenerations: 0,
    }));
    for id in 1..=n {
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
                for p in (1..=n).filter(|&p| p != id) {
                    b = b.peer(p, format!("{}:7000", host(p)));
                }
                let node = b.start().await?;
                let mut events = node.subscribe();
                let w = world.clone();
                tokio::spawn(async move {
                    while let Ok(e) = events.recv().await {
                        if let NodeEvent::MemberDown { node: down, .. } = e {
                            w.lock().unwrap().downs.push((turmoil::elapsed(), id, down));
                        }
                    }
                });
                let members: Vec<u32> = (1..=n).collect();
                let lock = DistributedLock::start(At::Node(&node), "counter", &members, algorithm)?;
                world.lock().unwrap().ready += 1;
                // Start once every member's lock actor is registered and every peer is
                // connected: a request sent earlier would be lost, not delayed.
                while world.lock().unwrap().ready < n
                    || node.connected_peers().len() + 1 < n as usize
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let mut rng = SplitMix64::new(seed.wrapping_mul(31) ^ u64::from(id));
                for i in 1..=K {
                    let guard = match lock.try_acquire(PATIENCE).await {
                        Ok(g) => g,
                        Err(e) => {
                            let why = format!("acquisition {i}: {e}");
                            world.lock().unwrap().failed.push((id, why));
                            return Ok(());
                        }
                    };
                    let token = guard.fencing_token();
                    {
                        let mut w = world.lock().unwrap();
                        w.inside += 1;
                        w.max_inside = w.max_inside.max(w.inside);
                        w.holder = Some(id);
                        match w.resource.write(token, |v| *v += 1) {
                            Ok(()) => w.writes.push((turmoil::elapsed(), id, token)),
                            Err(e) => w.refused.push((id, token, e.to_string())),
                        }
                    }
                    // Stay inside a little while (simulated time): the others' requests pile up.
                    tokio::time::sleep(rng.duration_up_to(Duration::from_millis(5))).await;
                    {
                        let mut w = world.lock().unwrap();
                        w.inside -= 1;
                        if w.holder == Some(id) {
                            w.holder = None;
                        }
                    }
                    guard.release().await?;
                    tokio::time::sleep(rng.duration_up_to(Duration::from_millis(10))).await;
                }
                {
                    let mut w = world.lock().unwrap();
                    w.done.push(id);
                    w.regenerations += lock.regenerations();
                }
                // Stay a member: the others may still need this lock actor's answers.
                std::future::pending::<()>().await;
                drop((lock, node));
                Ok(())
            }
        });
    }
    let survivors = n - u32::from(crash.is_some());
    let mut crashed = None;
    loop {
        sim.step().unwrap();
        let t = sim.elapsed();
        let w = world.lock().unwrap();
        if w.done.len() as u32 >= survivors || !w.failed.is_empty() || t >= DEADLINE {
            break;
        }
        if let (Some(victim), None) = (crash, crashed) {
            let written = w.writes.iter().filter(|x| x.1 == victim).count() as u64;
            if written >= K / 2 && w.holder != Some(victim) {
                drop(w);
                sim.crash(host(victim));
                crashed = Some((victim, t));
            }
        }
    }
    let w = world.lock().unwrap();
    Run {
        value: *w.resource.get(),
        max_inside: w.max_inside,
        writes: w.writes.clone(),
        refused: w.refused.clone(),
        failed: w.failed.clone(),
        downs: w.downs.clone(),
        regenerations: w.regenerations,
        done: w.done.clone(),
        took: sim.elapsed(),
        crashed,
    }
}

/// How many times the holder changed from one write to the next.
fn handoffs(writes: &[Write]) -> usize {
    writes.windows(2).filter(|w| w[0].1 != w[1].1).count()
}

/// The properties every run must have; `expected` is the final counter value.
fn assert_safe_and_complete(label: &str, r: &Run, expected: u64) {
    assert!(r.failed.is_empty(), "{label}: {:?}", r.failed);
    assert!(r.refused.is_empty(), "{label}: refused {:?}", r.refused);
    assert_eq!(r.max_inside, 1, "{label}: two members inside at once");
    assert_eq!(r.value, expected, "{label}: final value");
    assert_eq!(r.writes.len() as u64, expected);
    for w in r.writes.windows(2) {
        assert!(
            w[0].2 < w[1].2,
            "{label}: tokens not strictly increasing: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

/// The seeds a test runs: `LOCKS_SIM_SEED` alone if set, else `SEEDS` seeds from `first`.
fn seeds(first: u64) -> Vec<u64> {
    match std::env::var("LOCKS_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (first..first + SEEDS).collect(),
    }
}

/// Seeds per test.
const SEEDS: u64 = 5;

fn run_and_check(algorithm: LockAlgorithm, n: u32) {
    for seed in seeds(1) {
        check_one(algorithm, n, seed);
    }
}

fn check_one(algorithm: LockAlgorithm, n: u32, seed: u64) {
    let label = format!("{algorithm} N={n} seed {seed}");
    let r = scenario(seed, algorithm, n, None);
    assert_eq!(
        r.done.len() as u32,
        n,
        "{label}: not all done: {:?}",
        r.done
    );
    assert!(r.downs.is_empty(), "{label}: {:?}", r.downs);
    assert_safe_and_complete(&label, &r, u64::from(n) * K);
    let first = r.writes.first().map(|w| w.2).unwrap_or_default();
    let last = r.writes.last().map(|w| w.2).unwrap_or_default();
    println!(
        "{label}: {} writes in {:?} simulated, {} handoffs, max inside {}, tokens {first:#x}..{last:#x}",
        r.writes.len(),
        r.took,
        handoffs(&r.writes),
        r.max_inside
    );
}

#[test]
fn lamport_three_nodes_under_jitter_are_exclusive_and_fenced() {
    run_and_check(LockAlgorithm::Lamport, 3);
}

#[test]
fn ricart_agrawala_three_nodes_under_jitter_are_exclusive_and_fenced() {
    run_and_check(LockAlgorithm::RicartAgrawala, 3);
}

#[test]
fn suzuki_kasami_three_nodes_under_jitter_are_exclusive_and_fenced() {
    run_and_check(LockAlgorithm::SuzukiKasami, 3);
}

#[test]
fn ricart_agrawala_five_nodes_under_jitter_are_exclusive_and_fenced() {
    run_and_check(LockAlgorithm::RicartAgrawala, 5);
}

#[test]
fn the_same_seed_gives_the_same_lock_trace() {
    for algorithm in [
        LockAlgorithm::Lamport,
        LockAlgorithm::RicartAgrawala,
        LockAlgorithm::SuzukiKasami,
    ] {
        let a = scenario(17, algorithm, 3, None);
        let b = scenario(17, algorithm, 3, None);
        assert_eq!(a.writes.len(), 3 * K as usize);
        assert_eq!(a.writes, b.writes, "{algorithm}");
        let c = scenario(18, algorithm, 3, None);
        println!(
            "{algorithm}: seed 17 twice gives the same {} writes; seed 18 {}",
            a.writes.len(),
            if c.writes == a.writes {
                "the same trace"
            } else {
                "another trace"
            }
        );
    }
}

fn crash_and_check(algorithm: LockAlgorithm) {
    for seed in seeds(1) {
        let label = format!("{algorithm} N=3, node 3 crashed, seed {seed}");
        let r = scenario(seed, algorithm, 3, Some(3));
        let (victim, at) = r.crashed.unwrap_or_else(|| panic!("{label}: no crash"));
        let by_victim = r.writes.iter().filter(|w| w.1 == victim).count() as u64;
        assert!(
            r.writes.iter().all(|w| w.1 != victim || w.0 <= at),
            "{label}: a write after the crash"
        );
        let mut done = r.done.clone();
        done.sort_unstable();
        assert_eq!(done, [1, 2], "{label}: the survivors finish");
        assert_safe_and_complete(&label, &r, 2 * K + by_victim);
        // Both survivors declared the victim down (and nobody else).
        let mut seen: Vec<u32> = r.downs.iter().map(|d| d.1).collect();
        seen.sort_unstable();
        assert_eq!(seen, [1, 2], "{label}: {:?}", r.downs);
        assert!(r.downs.iter().all(|d| d.2 == victim && d.0 >= at));
        let detected = r.downs.iter().map(|d| d.0 - at).max().unwrap_or_default();
        let after = r.writes.iter().filter(|w| w.0 > at).count();
        if std::env::var("LOCKS_SIM_DUMP").is_ok() {
            for w in &r.writes {
                println!("{:?} n{} {:#x}", w.0, w.1, w.2);
            }
            println!("{:?}", r.downs);
        }
        let regenerated = if algorithm == LockAlgorithm::SuzukiKasami {
            format!(", {} token regenerations", r.regenerations)
        } else {
            assert_eq!(r.regenerations, 0);
            String::new()
        };
        println!(
            "{label}: crashed at {at:?} after {by_victim} writes, declared down within \
             {detected:?}; survivors finished at {:?} ({after} writes after the crash, {} \
             handoffs{regenerated}), max inside {}",
            r.took,
            handoffs(&r.writes),
            r.max_inside
        );
    }
}

#[test]
fn lamport_survivors_finish_after_a_non_holder_crashes() {
    crash_and_check(LockAlgorithm::Lamport);
}

#[test]
fn ricart_agrawala_survivors_finish_after_a_non_holder_crashes() {
    crash_and_check(LockAlgorithm::RicartAgrawala);
}

#[test]
fn suzuki_kasami_survivors_finish_after_a_non_holder_crashes() {
    crash_and_check(LockAlgorithm::SuzukiKasami);
}
