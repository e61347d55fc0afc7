//! The scaling runs: N real nodes in seeded turmoil simulations, one scenario per service, and
//! the Berkeley daemon's machine in its virtual-time simulator.
//!
//! Shared by the `scaling` bench (the table and plot for N = 3…33) and the `scaling_sim` test
//! (N = 3 and 5 in CI, against the theory's message counts).
//!
//! Every simulated link has the same fixed one-way latency ([`DELAY`]), so times read directly
//! as message delays. Messages and bytes are the nodes' own counters
//! ([`NetStats::messages_out`](actix_coord::net::NetStats::messages_out) and
//! [`message_bytes_out`](actix_coord::net::NetStats::message_bytes_out)): every frame but the
//! nodes' link heartbeats, summed over the senders.

#![allow(dead_code)]

use actix_coord::driver::At;
use actix_coord::election::{BullyConfig, Election, Term};
use actix_coord::mutex::{DistributedLock, LockAlgorithm};
use actix_coord::net::{NetStats, Node, TurmoilTransport};
use actix_coord::timesync::sim::{SimConfig, Simulation};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The one-way latency of every simulated link.
pub const DELAY: Duration = Duration::from_millis(1);

fn host(id: u32) -> String {
    format!("n{id}")
}

fn sim(seed: u64, budget: Duration) -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .simulation_duration(budget)
        .rng_seed(seed)
        .min_message_latency(DELAY)
        .max_message_latency(DELAY)
        .build()
}

fn node_builder(id: u32, n: u32, seed: u64) -> actix_coord::net::NodeBuilder {
    let mut b = Node::builder()
        .id(id)
        .listen("0.0.0.0:7000")
        .secret("sim secret")
        .transport(TurmoilTransport)
        .seed(seed ^ u64::from(id));
    for p in (1..=n).filter(|&p| p != id) {
        b = b.peer(p, format!("{}:7000", host(p)));
    }
    b
}

/// Messages and bytes sent by `nodes`, summed.
fn traffic<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> (u64, u64) {
    nodes
        .into_iter()
        .map(Node::stats)
        .fold((0, 0), |(m, b), s: NetStats| {
            (m + s.messages_out, b + s.message_bytes_out)
        })
}

/// What one lock run measured.
#[derive(Debug, Clone)]
pub struct LockFigures {
    /// Members.
    pub n: u32,
    /// Critical sections run.
    pub sections: u64,
    /// Messages sent by all members during the sections, over the sections.
    pub messages_per_section: f64,
    /// Their bytes, over the sections.
    pub bytes_per_section: f64,
    /// Acquire latency (the call to the guard), median, in simulated time.
    pub acquire_p50: Duration,
    /// The largest acquire latency.
    pub acquire_max: Duration,
}

/// The theory's messages per critical section when the lock moves to another member every time.
pub fn lock_theory(algorithm: LockAlgorithm, n: u32) -> u64 {
    let n = u64::from(n);
    match algorithm {
        // REQUEST, REPLY and RELEASE between every pair.
        LockAlgorithm::Lamport => 3 * (n - 1),
        // REQUEST and REPLY between every pair.
        LockAlgorithm::RicartAgrawala => 2 * (n - 1),
        // The request broadcast, and the token.
        LockAlgorithm::SuzukiKasami => n,
    }
}

#[derive(Default)]
struct LockWorld {
    nodes: BTreeMap<u32, Node>,
    ready: u32,
    /// Whose turn it is (section number); member `turn % n + 1` acquires.
    turn: u64,
    started: bool,
    /// The traffic counters when the measured turns began.
    before: Option<(u64, u64)>,
    latencies: Vec<Duration>,
    failed: Vec<String>,
}

/// `n` members take the lock in turns (one acquisition at a time, every one by the next member,
/// so the lock moves every time), `rounds` turns each, after one turn each not measured (the
/// lock actors' first contact: their `Hello`s, and the registration grace of a request that
/// reaches a lock actor not registered yet).
pub fn lock_run(seed: u64, algorithm: LockAlgorithm, n: u32, rounds: u64) -> LockFigures {
    let warm_up = u64::from(n);
    let total = warm_up + u64::from(n) * rounds;
    let budget = Duration::from_secs(600);
    let mut sim = sim(seed, budget);
    let world: Arc<Mutex<LockWorld>> = Arc::default();
    for id in 1..=n {
        let world = world.clone();
        sim.host(host(id), move || {
            let world = world.clone();
            async move {
                let node = node_builder(id, n, seed).start().await?;
                let members: Vec<u32> = (1..=n).collect();
                let lock = DistributedLock::start(At::Node(&node), "scaling", &members, algorithm)?;
                {
                    let mut w = world.lock().unwrap();
                    w.nodes.insert(id, node.clone());
                    w.ready += 1;
                }
                loop {
                    let go = {
                        let w = world.lock().unwrap();
                        w.started && w.turn < total && w.turn % u64::from(n) + 1 == u64::from(id)
                    };
                    if go {
                        if world.lock().unwrap().turn == warm_up {
                            // Let the warm-up's last messages leave, then start counting.
                            tokio::time::sleep(DELAY * 20).await;
                            let mut w = world.lock().unwrap();
                            let t = traffic(w.nodes.values());
                            w.before = Some(t);
                        }
                        let t0 = turmoil::elapsed();
                        match lock.try_acquire(Duration::from_secs(30)).await {
                            Ok(guard) => {
                                let waited = turmoil::elapsed() - t0;
                                guard.release().await?;
                                let mut w = world.lock().unwrap();
                                if w.turn >= warm_up {
                                    w.latencies.push(waited);
                                }
                                w.turn += 1;
                            }
                            Err(e) => {
                                world.lock().unwrap().failed.push(format!("{id}: {e}"));
                                break;
                            }
                        }
                    } else {
                        tokio::time::sleep(Duration::from_micros(100)).await;
                    }
                }
                std::future::pending::<()>().await;
                drop((lock, node));
                Ok(())
            }
        });
    }
    // Start once every member is registered and connected to every other.
    loop {
        sim.step().unwrap();
        let mut w = world.lock().unwrap();
        assert!(w.failed.is_empty(), "{algorithm} N={n}: {:?}", w.failed);
        if !w.started {
            let connected = w.ready == n
                && w.nodes
                    .values()
                    .all(|node| node.connected_peers().len() + 1 == n as usize);
            if connected {
                w.started = true;
            }
        } else if w.turn >= total {
            break;
        }
    }
    // The last release's messages are on their way: let them go out before counting.
    let until = sim.elapsed() + DELAY * 20;
    while sim.elapsed() < until {
        sim.step().unwrap();
    }
    let w = world.lock().unwrap();
    let after = traffic(w.nodes.values());
    let before = w.before.expect("the measured turns began");
    let mut lat = w.latencies.clone();
    lat.sort();
    let sections = lat.len() as u64;
    LockFigures {
        n,
        sections,
        messages_per_section: (after.0 - before.0) as f64 / sections as f64,
        bytes_per_section: (after.1 - before.1) as f64 / sections as f64,
        acquire_p50: lat[lat.len() / 2],
        acquire_max: *lat.last().unwrap(),
    }
}

/// What one election run measured.
#[derive(Debug, Clone)]
pub struct ElectionFigures {
    /// Members.
    pub n: u32,
    /// From the leader's crash until every survivor recognises the same new leader.
    pub to_stable: Duration,
    /// Messages the survivors sent in that time.
    pub messages: u64,
    /// The new leader.
    pub leader: u32,
}

#[derive(Default)]
struct ElectionWorld {
    nodes: BTreeMap<u32, Node>,
    now: BTreeMap<u32, Option<(u32, Term)>>,
}

/// The theory's messages from the leader's loss to a stable leader, every survivor noticing the
/// loss at once.
///
/// * [`Loss::Crash`]: the survivors know the leader is down. Each sends ELECTION to every live
///   member above it and gets an ANSWER from each, (N−1)(N−2) in all; member N−1 has nobody
///   above, wins at once and broadcasts COORDINATOR (N−2), and answers each of the N−2
///   ELECTIONs that reach it after its win with a COORDINATOR too (N−2 more): (N−2)(N+1).
/// * [`Loss::Silent`]: the old leader's link is still up, so every survivor's ELECTION goes to
///   it too, N(N−1)/2 in all, with (N−1)(N−2)/2 ANSWERs; member N−1 waits out its answer
///   timeout (the lower ELECTIONs reach it while it is still a candidate: no COORDINATOR
///   replies), then broadcasts COORDINATOR to the N−1 others, the silent one included: N(N−1).
pub fn election_theory(n: u32, how: Loss) -> u64 {
    let n = u64::from(n);
    match how {
        Loss::Crash => (n - 2) * (n + 1),
        Loss::Silent => n * (n - 1),
    }
}

/// How the leader is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The process dies: its connections break, and the survivors' nodes see them close.
    Crash,
    /// The leader is cut off without a word (a partition): the survivors notice when its
    /// heartbeats stop (the election's leader timeout, 350 ms by default).
    Silent,
}

/// `n` members elect `n`; `n` is lost (`how`); the survivors elect `n − 1`.
pub fn election_run(seed: u64, n: u32, how: Loss) -> ElectionFigures {
    let mut sim = sim(seed, Duration::from_secs(120));
    let world: Arc<Mutex<ElectionWorld>> = Arc::default();
    for id in 1..=n {
        let world = world.clone();
        sim.host(host(id), move || {
            let world = world.clone();
            async move {
                let node = node_builder(id, n, seed).start().await?;
                let members: Vec<u32> = (1..=n).collect();
                let cfg = BullyConfig {
                    seed,
                    ..BullyConfig::default()
                };
                let election = Election::start(At::Node(&node), "election", &members, cfg)?;
                world.lock().unwrap().nodes.insert(id, node.clone());
                let mut changes = election.subscribe();
                while let Ok(c) = changes.recv().await {
                    let view = c.leader.map(|l| (l, c.term));
                    world.lock().unwrap().now.insert(id, view);
                }
                drop((election, node));
                Ok(())
            }
        });
    }
    let all_follow = |w: &ElectionWorld, ids: std::ops::RangeInclusive<u32>, leader: u32| {
        let views: Vec<_> = ids.map(|i| w.now.get(&i).copied().flatten()).collect();
        views.iter().all(|v| v.is_some_and(|(l, _)| l == leader))
            && views.windows(2).all(|p| p[0] == p[1])
    };
    let survivors = |w: &ElectionWorld| -> (u64, u64) {
        traffic(
            w.nodes
                .iter()
                .filter(|(id, _)| **id != n)
                .map(|(_, node)| node),
        )
    };
    // Stable under `n`, then one second to let the start's traffic end. (A follower sends
    // nothing while it hears its leader, without quorum: the survivors' steady traffic is zero.)
    while !all_follow(&world.lock().unwrap(), 1..=n, n) {
        sim.step().unwrap();
    }
    let settle = sim.elapsed() + Duration::from_secs(1);
    while sim.elapsed() < settle {
        sim.step().unwrap();
    }
    match how {
        Loss::Crash => sim.crash(host(n)),
        Loss::Silent => {
            for i in 1..n {
                sim.partition(host(n), host(i));
            }
        }
    }
    let crashed_at = sim.elapsed();
    let before = survivors(&world.lock().unwrap());
    while !all_follow(&world.lock().unwrap(), 1..=n - 1, n - 1) {
        sim.step().unwrap();
        assert!(
            sim.elapsed() < crashed_at + Duration::from_secs(30),
            "N={n}: no stable leader 30 s after the crash"
        );
    }
    let to_stable = sim.elapsed() - crashed_at;
    let after = survivors(&world.lock().unwrap());
    ElectionFigures {
        n,
        to_stable,
        messages: after.0 - before.0,
        // What member 1 recognises (all survivors agree, `all_follow` above).
        leader: world.lock().unwrap().now[&1].map_or(0, |(l, _)| l),
    }
}

/// What one Berkeley simulation measured.
#[derive(Debug, Clone)]
pub struct BerkeleyFigures {
    /// Nodes.
    pub n: u32,
    /// Mean round duration (first probe to the round's end).
    pub round: Duration,
    /// Messages per round.
    pub messages_per_round: f64,
    /// Largest pairwise offset after the settling rounds.
    pub precision: Duration,
}

/// `n` nodes of the Berkeley machine in the virtual-time simulator (its defaults: ±100 ppm,
/// ±100 ms, 100 µs + Exp(100 µs) one-way), 40 rounds.
pub fn berkeley_run(seed: u64, n: u32) -> BerkeleyFigures {
    let mut s = Simulation::new(SimConfig {
        nodes: n as usize,
        seed,
        ..SimConfig::default()
    })
    .expect("valid configuration");
    s.run_rounds(40);
    let r = s.report();
    BerkeleyFigures {
        n,
        round: Duration::from_nanos(r.mean_round_ns.round() as u64),
        messages_per_round: r.messages as f64 / r.rounds.max(1) as f64,
        precision: Duration::from_nanos(r.steady_max_precision_ns),
    }
}

/// Bytes of a vector-clock stamp on the wire, for `n` processes: (whole clock, a difference of
/// one entry, no vector), measured as frame sizes of the same message.
pub fn stamp_bytes(n: u32) -> (usize, usize, usize) {
    use actix_coord::clock::{ProcessId, VectorClock};
    use actix_coord::intercept::Stamp;
    use actix_coord::net::wire::{Body, Frame, VectorEncoder};
    let entries = |bump: u64| {
        (1..=n).map(move |i| {
            let p = ProcessId::new(i, 0);
            (p, u64::from(i) * 1000 + if i == 1 { bump } else { 0 })
        })
    };
    let stamp = |vector: Option<VectorClock>| Stamp {
        from: ProcessId::new(1, 0),
        lamport: 12_345,
        vector: vector.map(Arc::new),
        hlc: None,
    };
    let frame_len = |enc: &mut VectorEncoder, s: &Stamp| {
        let f = Frame {
            seq: 1000,
            body: Body::Message {
                request: false,
                corr: 0,
                target: Arc::from("scaling"),
                tag: 7,
                stamp: enc.encode(s, &|_| None),
                payload: bytes::Bytes::from_static(&[0; 8]),
            },
        };
        f.encode().len()
    };
    let mut enc = VectorEncoder::new(false);
    let full = frame_len(
        &mut enc,
        &stamp(Some(VectorClock::from_entries(entries(0)).unwrap())),
    );
    let delta = frame_len(
        &mut enc,
        &stamp(Some(VectorClock::from_entries(entries(1)).unwrap())),
    );
    let none = frame_len(&mut VectorEncoder::new(false), &stamp(None));
    (full, delta, none)
}
