//! Deterministic simulations of the bully election on five real nodes in turmoil (issue 5,
//! partitions): the cluster elects node 5, then is partitioned 3|2 (`{1,2,3}` | `{4,5}`) for
//! 7 s, then healed.
//!
//! * With `quorum`, the minority side never has a new leader; its old leader steps down within
//!   two heartbeat periods (its acknowledgments stop) and its followers forget it a leader timeout
//!   later, after which the minority has no leader at all; the majority side elects node 3.
//! * Without it, both sides lead (3 and 5) in different terms: split brain, made visible by the
//!   terms.
//! * After the heal, exactly one leader (node 5), recognised by all.
//!
//! Every host runs a real `Node` over `TurmoilTransport` with an `Election` on it; time is
//! simulated and the run is seeded (`the_same_seed_gives_the_same_election_trace`).

use actix_coord::driver::At;
use actix_coord::election::{BullyConfig, Election, Term};
use actix_coord::net::{Node, TurmoilTransport};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const N: u32 = 5;
const PARTITION_AT: Duration = Duration::from_secs(3);
const HEAL_AT: Duration = Duration::from_secs(10);
const END: Duration = Duration::from_secs(20);
/// Time for the minority's old leader to notice it lacks a majority (quorum mode): its
/// heartbeat acknowledgments stop at once, it steps down at the end of the next heartbeat
/// period (at most two periods of 100 ms).
const STEP_DOWN_WITHIN: Duration = Duration::from_millis(250);
/// Time for its followers to stop recognising it: the step-down, then the leader timeout
/// (350 ms) without heartbeats.
const FORGOTTEN_WITHIN: Duration = Duration::from_millis(600);

fn host(id: u32) -> String {
    format!("n{id}")
}

/// What each node recognises now, and every change with its simulated time.
#[derive(Default)]
struct Seen {
    now: BTreeMap<u32, Option<(u32, Term)>>,
    changes: Vec<Observed>,
}

type Shared = Arc<Mutex<Seen>>;

/// At a simulated time, a node's view: the leader it recognises and its term.
type Observed = (Duration, u32, Option<(u32, Term)>);

struct Run {
    changes: Vec<Observed>,
    /// Per node, its view sampled just before the heal.
    before_heal: BTreeMap<u32, Option<(u32, Term)>>,
    /// Per node, its view at the end.
    at_end: BTreeMap<u32, Option<(u32, Term)>>,
    /// Minority views seen between `PARTITION_AT + STEP_DOWN_WITHIN` and the heal.
    minority_views: Vec<Observed>,
}

fn scenario(seed: u64, quorum: bool) -> Run {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(END + Duration::from_secs(5))
        .rng_seed(seed)
        // A LAN: in quorum mode a leader needs its acknowledgments back within a heartbeat
        // period (100 ms), so a round trip must stay below it (turmoil's default is up to
        // 100 ms each way, under which the quorum leader flaps).
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let seen: Shared = Arc::default();
    for id in 1..=N {
        let seen = seen.clone();
        sim.host(host(id), move || {
            let seen = seen.clone();
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
                let cfg = BullyConfig {
                    quorum,
                    seed,
                    ..BullyConfig::default()
                };
                let election = Election::start(At::Node(&node), "election", &members, cfg)?;
                let mut changes = election.subscribe();
                while let Ok(c) = changes.recv().await {
                    let view = c.leader.map(|l| (l, c.term));
                    let mut s = seen.lock().unwrap();
                    s.now.insert(id, view);
                    s.changes.push((turmoil::elapsed(), id, view));
                }
                drop((election, node));
                Ok(())
            }
        });
    }
    let majority: Vec<String> = (1..=3).map(host).collect();
    let minority: Vec<String> = (4..=5).map(host).collect();
    let (mut cut, mut healed) = (false, false);
    let mut before_heal = BTreeMap::new();
    let mut minority_views = Vec::new();
    while sim.elapsed() < END {
        sim.step().unwrap();
        let t = sim.elapsed();
        if !cut && t >= PARTITION_AT {
            for a in &majority {
                for b in &minority {
                    sim.partition(a.as_str(), b.as_str());
                }
            }
            cut = true;
        }
        if cut && !healed && t >= PARTITION_AT + STEP_DOWN_WITHIN {
            let s = seen.lock().unwrap();
            for id in 4..=5 {
                minority_views.push((t, id, s.now.get(&id).copied().flatten()));
            }
        }
        if cut && !healed && t >= HEAL_AT {
            before_heal = seen.lock().unwrap().now.clone();
            for a in &majority {
                for b in &minority {
                    sim.repair(a.as_str(), b.as_str());
                }
            }
            healed = true;
        }
    }
    let s = seen.lock().unwrap();
    Run {
        changes: s.changes.clone(),
        before_heal,
        at_end: s.now.clone(),
        minority_views,
    }
}

/// Before the partition, everyone followed node 5.
fn assert_5_led_before_the_partition(r: &Run) -> Term {
    let mut term = None;
    for id in 1..=N {
        let last = r
            .changes
            .iter()
            .rfind(|(t, n, _)| *n == id && *t < PARTITION_AT)
            .and_then(|c| c.2);
        let (l, t) = last.unwrap_or_else(|| panic!("node {id}: no leader before the partition"));
        assert_eq!(l, 5, "node {id}");
        assert!(term.is_none_or(|x| x == t));
        term = Some(t);
    }
    term.unwrap_or_default()
}

/// After the heal: exactly one leader (5), recognised by all, in a term above `above`.
fn assert_one_leader_after_heal(r: &Run, above: Term) -> Term {
    let views: Vec<_> = (1..=N)
        .map(|id| r.at_end.get(&id).copied().flatten())
        .collect();
    let leaders: Vec<u32> = (1..=N)
        .filter(|&id| views[id as usize - 1].is_some_and(|(l, _)| l == id))
        .collect();
    assert_eq!(leaders, vec![5], "nodes that lead: {views:?}");
    let t = views[0].map(|v| v.1).unwrap_or_default();
    assert!(
        views.iter().all(|v| *v == Some((5, t))),
        "not all follow 5: {views:?}"
    );
    assert!(t > above, "{t} > {above}");
    t
}

/// Each node's successive leaders have increasing terms.
fn assert_terms_increase(r: &Run) {
    for id in 1..=N {
        let terms: Vec<Term> = r
            .changes
            .iter()
            .filter(|c| c.1 == id)
            .filter_map(|c| c.2.map(|v| v.1))
            .collect();
        assert!(
            terms.windows(2).all(|w| w[0] <= w[1]),
            "node {id}: {terms:?}"
        );
    }
}

/// The seed: `ELECTION_SIM_SEED` if set (to explore), else `default`.
fn seed(default: u64) -> u64 {
    std::env::var("ELECTION_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn with_quorum_the_minority_side_never_has_a_leader_and_after_heal_one_leads() {
    let r = scenario(seed(5), true);
    let t0 = assert_5_led_before_the_partition(&r);
    let lost = |id: u32| {
        r.changes
            .iter()
            .find(|c| c.1 == id && c.0 >= PARTITION_AT && c.2.is_none())
            .map(|c| c.0 - PARTITION_AT)
    };
    println!(
        "quorum: after the partition node 5 stepped down after {:?}, node 4 forgot it after {:?}",
        lost(5),
        lost(4)
    );
    // No new leader on the minority side while partitioned...
    let new_on_minority: Vec<_> = r
        .changes
        .iter()
        .filter(|(t, n, v)| {
            *n >= 4 && *t >= PARTITION_AT && *t < HEAL_AT && v.is_some_and(|(_, term)| term != t0)
        })
        .collect();
    assert!(
        new_on_minority.is_empty(),
        "minority elected: {new_on_minority:?}"
    );
    // ...the old leader steps down once it notices it lost its majority...
    assert!(!r.minority_views.is_empty());
    let leads: Vec<_> = r
        .minority_views
        .iter()
        .filter(|v| v.2.is_some_and(|(l, _)| l == v.1))
        .collect();
    assert!(leads.is_empty(), "minority node leads: {:?}", leads.first());
    // ...and its follower forgets it a leader timeout later.
    let led: Vec<_> = r
        .minority_views
        .iter()
        .filter(|v| v.0 >= PARTITION_AT + FORGOTTEN_WITHIN && v.2.is_some())
        .collect();
    assert!(led.is_empty(), "minority had a leader: {:?}", led.first());
    // The majority elected node 3.
    if std::env::var("ELECTION_SIM_DUMP").is_ok() {
        for c in &r.changes {
            println!("{:?} n{} {:?}", c.0, c.1, c.2);
        }
    }
    let t3 = r.before_heal.get(&1).copied().flatten();
    for id in 1..=3 {
        let v = r.before_heal.get(&id).copied().flatten();
        assert_eq!(v.map(|v| v.0), Some(3), "node {id}");
        assert_eq!(v, t3);
    }
    let t_end = assert_one_leader_after_heal(&r, t3.map(|v| v.1).unwrap_or_default());
    assert_terms_increase(&r);
    println!(
        "quorum: 5 led in {t0}; partition 3|2: majority elected 3 in {}, minority no leader; \
         heal: 5 leads in {t_end}",
        t3.map(|v| v.1).unwrap_or_default()
    );
}

#[test]
fn without_quorum_both_sides_lead_in_different_terms_and_after_heal_one_leads() {
    let r = scenario(seed(5), false);
    let t0 = assert_5_led_before_the_partition(&r);
    let view = |id: u32| r.before_heal.get(&id).copied().flatten();
    let majority = view(1);
    let minority = view(4);
    for id in 1..=3 {
        assert_eq!(view(id), majority, "node {id}");
    }
    assert_eq!(view(5), minority);
    let (l3, t3) = majority.expect("majority leader");
    let (l5, t5) = minority.expect("minority leader");
    assert_eq!((l3, l5), (3, 5));
    assert_ne!(t3, t5, "split brain shows in the terms");
    let t_end = assert_one_leader_after_heal(&r, t3.max(t5));
    assert_terms_increase(&r);
    println!(
        "no quorum: 5 led in {t0}; partition 3|2: 3 leads in {t3}, 5 in {t5}; heal: 5 leads in \
         {t_end}"
    );
}

#[test]
fn the_same_seed_gives_the_same_election_trace() {
    let a = scenario(9, true);
    let b = scenario(9, true);
    assert_eq!(a.changes, b.changes);
}
