//! Deterministic simulations of the ordered broadcasts on four real nodes in turmoil.
//!
//! Every host runs a real `Node` over `TurmoilTransport` with a `Broadcaster` on it; time is
//! simulated and the run is seeded. Each member publishes `K` messages, sleeping a seeded random
//! 0–20 ms before each, so it publishes while the others' messages arrive: each publication
//! depends causally on everything its publisher had delivered when it published (recorded as the
//! ground truth, from the member's own delivery stream). Links take 1–30 ms per message, so
//! messages overtake each other across links (each link stays FIFO, as TCP).
//!
//! Properties asserted:
//! * **causal broadcast**: every member delivers every message exactly once, each publisher's in
//!   its order, and never before a message it depends on;
//! * **total order**: the same, and every member delivers the same sequence;
//! * **a member crashes** (host `n4`, right after its 6th of 12 publications, messages in flight): the
//!   survivors stay in causal order; with `relay` they deliver every survivor's message and the
//!   same set of the crashed member's; without it a survivor may wait for good for a crashed
//!   member's message that reached only others (printed, not a failure: it is why `relay`
//!   exists); with total order, they deliver every survivor's message and their common messages
//!   in the same order;
//! * the same seed gives the same trace (runs without a crash; see the test).
//!
//! Members publish as soon as their node is connected, so a broadcast may reach a node before
//! its member is registered there: the node holds it for the registration (its registration
//! grace) instead of dropping it, which would leave a gap in that publisher's order.
//!
//! Run with `cargo test -p integration-tests --test broadcast_sim -- --nocapture` for figures;
//! `BROADCAST_SIM_SEED=n` picks another seed.

use actix_coord::broadcast::{
    BroadcastCore, Broadcaster, CausalBroadcast, CausalConfig, RecvError, TotalConfig,
    TotalOrderBroadcast,
};
use actix_coord::driver::At;
use actix_coord::net::{Node, TurmoilTransport};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const N: u32 = 4;
/// Publications per member.
const K: u64 = 12;
/// The member that crashes in the crash scenarios, and when.
const VICTIM: u32 = 4;
/// The victim crashes right after publishing this many messages (of `K`).
const CRASH_AFTER: u64 = 6;
/// Simulated time by which everything must have been delivered.
const DEADLINE: Duration = Duration::from_secs(20);

/// A message: (publisher, its number among the publisher's messages).
type Id = (u32, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Causal { relay: bool },
    Total,
}

/// What the members did, in simulated time.
#[derive(Default, Debug)]
struct Trace {
    /// Per member, its deliveries in order.
    delivered: BTreeMap<u32, Vec<Id>>,
    /// Per message, what its publisher had delivered when it published it.
    deps: BTreeMap<Id, BTreeSet<Id>>,
    /// Every publication and delivery: (ms, member, message, published?).
    events: Vec<(u128, u32, Id, bool)>,
}

type Shared = Arc<Mutex<Trace>>;

/// A small deterministic generator (xorshift64*), one per member.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn host(id: u32) -> String {
    format!("n{id}")
}

/// Publishes `K` messages on `b`, recording deliveries and each publication's dependencies.
async fn member<P>(b: Broadcaster<P>, id: u32, seed: u64, trace: Shared)
where
    P: BroadcastCore<Payload = u64>,
{
    let mut deliveries = b.subscribe();
    let seen: Arc<Mutex<BTreeSet<Id>>> = Arc::default();
    let (t, s) = (trace.clone(), seen.clone());
    let recorder = tokio::task::spawn_local(async move {
        loop {
            match deliveries.recv().await {
                Ok(d) => {
                    let m = (d.from, d.seq);
                    s.lock().unwrap().insert(m);
                    let mut t = t.lock().unwrap();
                    t.delivered.entry(id).or_default().push(m);
                    t.events
                        .push((turmoil::elapsed().as_millis(), id, m, false));
                }
                Err(RecvError::Lagged(n)) => panic!("member {id} lagged by {n}"),
                Err(RecvError::Stopped) => break,
            }
        }
    });
    let mut rng = Rng(seed ^ (u64::from(id) << 32) | 1);
    for k in 1..=K {
        tokio::time::sleep(Duration::from_millis(rng.below(21))).await;
        {
            let mut t = trace.lock().unwrap();
            t.deps.insert((id, k), seen.lock().unwrap().clone());
            t.events
                .push((turmoil::elapsed().as_millis(), id, (id, k), true));
        }
        b.publish(k).await.expect("publish");
    }
    // Keep delivering until the simulation ends.
    let _ = recorder.await;
}

/// One simulation at a time: parallel simulations in one process share process-wide state
/// (the interception layer's external process per node id), which perturbs each other's traces.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs one scenario and returns its trace, the members that survived, and the time by which
/// every survivor had delivered every survivor's messages (`None`: not by the deadline).
fn scenario(seed: u64, kind: Kind, crash: bool) -> (Trace, Vec<u32>, Option<Duration>) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut sim = turmoil::Builder::new()
        .simulation_duration(DEADLINE + Duration::from_secs(5))
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(30))
        .build();
    let trace: Shared = Arc::default();
    let members: Vec<u32> = (1..=N).collect();
    for id in 1..=N {
        let (trace, members) = (trace.clone(), members.clone());
        sim.host(host(id), move || {
            let (trace, members) = (trace.clone(), members.clone());
            async move {
                let mut b = Node::builder()
                    .id(id)
                    .listen("0.0.0.0:7000")
                    .secret("sim secret")
                    .transport(TurmoilTransport)
                    .seed(seed ^ u64::from(id));
                for p in members.iter().copied().filter(|&p| p != id) {
                    b = b.peer(p, format!("{}:7000", host(p)));
                }
                let node = b.start().await?;
                // Every member up before anyone publishes (a message to a member not yet
                // connected would be lost: the groups have fixed membership).
                while node.connected_peers().len() + 1 < members.len() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                match kind {
                    Kind::Causal { relay } => {
                        let cfg = CausalConfig {
                            relay,
                            ..CausalConfig::default()
                        };
                        let core = CausalBroadcast::<u64>::new(id, members.clone(), cfg)?;
                        let b = Broadcaster::start(At::Node(&node), "causal", &members, core)?;
                        member(b, id, seed, trace).await;
                    }
                    Kind::Total => {
                        let core = TotalOrderBroadcast::<u64>::new(
                            id,
                            members.clone(),
                            TotalConfig::default(),
                        )?;
                        let b = Broadcaster::start(At::Node(&node), "total", &members, core)?;
                        member(b, id, seed, trace).await;
                    }
                }
                drop(node);
                Ok(())
            }
        });
    }
    let survivors: Vec<u32> = (1..=N).filter(|&id| !crash || id != VICTIM).collect();
    let (mut crashed, mut done_at) = (false, None);
    while sim.elapsed() < DEADLINE {
        sim.step().unwrap();
        let t = sim.elapsed();
        let victim_published = || {
            trace
                .lock()
                .unwrap()
                .events
                .iter()
                .filter(|e| e.1 == VICTIM && e.3)
                .count() as u64
        };
        if crash && !crashed && victim_published() >= CRASH_AFTER {
            sim.crash(host(VICTIM));
            crashed = true;
        }
        let all = {
            let tr = trace.lock().unwrap();
            survivors.iter().all(|m| {
                let got = tr.delivered.get(m).map_or(0, |d| {
                    d.iter()
                        .filter(|(from, _)| survivors.contains(from))
                        .count()
                });
                got == survivors.len() * K as usize
            })
        };
        if all && crashed == crash && done_at.is_none() {
            done_at = Some(t);
        }
        // Then a simulated second more, for messages still in flight (relays of a crashed
        // member's broadcasts) to land: agreement is eventual.
        if done_at.is_some_and(|d| t >= d + Duration::from_secs(1)) {
            break;
        }
    }
    let trace = std::mem::take(&mut *trace.lock().unwrap());
    (trace, survivors, done_at)
}

/// Each member of `who` delivers each message at most once, each publisher's in its order, and
/// every message only after the messages it depends on that this member delivers at all.
fn assert_causal(t: &Trace, who: &[u32]) {
    for m in who {
        let seq = &t.delivered[m];
        let mut at: BTreeMap<Id, usize> = BTreeMap::new();
        for (i, id) in seq.iter().enumerate() {
            assert!(
                at.insert(*id, i).is_none(),
                "member {m} delivers {id:?} twice"
            );
        }
        let mut last: BTreeMap<u32, u64> = BTreeMap::new();
        for &(from, s) in seq {
            let prev = last.insert(from, s).unwrap_or(0);
            assert_eq!(s, prev + 1, "member {m}: {from}'s messages out of order");
        }
        for (i, id) in seq.iter().enumerate() {
            for dep in &t.deps[id] {
                if let Some(&j) = at.get(dep) {
                    assert!(
                        j < i,
                        "member {m} delivers {id:?} before {dep:?}, which it follows; \
                         deliveries {:?}",
                        t.delivered
                    );
                }
            }
        }
    }
}

/// The crashed member's messages that `m` delivered.
fn from_victim(t: &Trace, m: u32) -> BTreeSet<Id> {
    t.delivered[&m]
        .iter()
        .filter(|(from, _)| *from == VICTIM)
        .copied()
        .collect()
}

/// How many (message, dependency) pairs the run had across publishers: the causal check is not
/// vacuous when many messages depend on other members' messages.
fn cross_dependencies(t: &Trace) -> usize {
    t.deps
        .iter()
        .map(|((p, _), d)| d.iter().filter(|(from, _)| from != p).count())
        .sum()
}

/// When everything was delivered, or a panic naming what was not.
fn delivered_by(t: &Trace, at: Option<Duration>, what: &str) -> Duration {
    at.unwrap_or_else(|| {
        let counts: Vec<(u32, usize)> = t.delivered.iter().map(|(m, d)| (*m, d.len())).collect();
        panic!("{what}: not everything delivered by {DEADLINE:?}: (member, deliveries) {counts:?}")
    })
}

fn seed(default: u64) -> u64 {
    std::env::var("BROADCAST_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn causal_broadcast_delivers_everything_in_causal_order() {
    let (t, all, at) = scenario(seed(1), Kind::Causal { relay: false }, false);
    let at = delivered_by(&t, at, "causal");
    assert_causal(&t, &all);
    for m in &all {
        assert_eq!(
            t.delivered[m].len(),
            (N as usize) * K as usize,
            "member {m}"
        );
    }
    let cross = cross_dependencies(&t);
    assert!(cross > 100, "only {cross} cross-member dependencies");
    println!(
        "causal: {N} members x {K} messages, all delivered in causal order by {at:?} \
         (simulated), {cross} cross-member dependencies checked"
    );
}

#[test]
fn total_order_broadcast_delivers_the_same_sequence_everywhere() {
    let (t, all, at) = scenario(seed(2), Kind::Total, false);
    let at = delivered_by(&t, at, "total");
    assert_causal(&t, &all);
    let first = &t.delivered[&1];
    assert_eq!(first.len(), (N as usize) * K as usize);
    for m in &all {
        assert_eq!(&t.delivered[m], first, "member {m}'s sequence differs");
    }
    // The order interleaves the publishers (it is not one publisher after the other).
    let switches = first.windows(2).filter(|w| w[0].0 != w[1].0).count();
    assert!(switches > K as usize, "{switches} switches");
    println!(
        "total: {N} members x {K} messages, one sequence ({switches} publisher switches) by \
         {at:?} (simulated)"
    );
}

#[test]
fn with_relay_the_survivors_of_a_crash_deliver_the_same_messages_in_causal_order() {
    let (t, survivors, at) = scenario(seed(3), Kind::Causal { relay: true }, true);
    let at = delivered_by(&t, at, "causal with relay, crash");
    assert_causal(&t, &survivors);
    let sets: Vec<BTreeSet<Id>> = survivors.iter().map(|m| from_victim(&t, *m)).collect();
    println!(
        "causal, relay: n{VICTIM} crashed after {CRASH_AFTER} publications; survivors delivered {:?} of its \
         messages; done by {at:?}",
        sets.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );
    assert!(!sets[0].is_empty(), "the victim published nothing");
    assert!(
        sets.windows(2).all(|w| w[0] == w[1]),
        "survivors disagree on the victim's messages: {sets:?}"
    );
}

/// Without relaying, a crashed member's broadcast may have reached only some survivors; what
/// they publish afterwards depends on it, so the others hold it back for good (causal broadcast
/// needs reliable broadcast for liveness: that is what `relay` is for). Order is never broken.
#[test]
fn without_relay_the_survivors_of_a_crash_stay_in_causal_order() {
    let mut blocked = 0;
    for s in 0..4 {
        let (t, survivors, at) = scenario(seed(3) + s, Kind::Causal { relay: false }, true);
        assert_causal(&t, &survivors);
        let got: Vec<usize> = survivors
            .iter()
            .map(|m| from_victim(&t, *m).len())
            .collect();
        println!(
            "causal, no relay, seed {}: survivors delivered {got:?} of n{VICTIM}'s messages; {}",
            seed(3) + s,
            at.map_or(
                "some survivors wait for one of them for good".to_string(),
                |at| { format!("everything else delivered by {at:?}") }
            )
        );
        blocked += usize::from(at.is_none());
    }
    println!("{blocked} of 4 runs left a survivor waiting");
}

#[test]
fn total_order_survivors_of_a_crash_deliver_their_common_messages_in_one_order() {
    let (t, survivors, at) = scenario(seed(4), Kind::Total, true);
    let at = delivered_by(&t, at, "total, crash");
    assert_causal(&t, &survivors);
    for a in &survivors {
        for b in &survivors {
            let common: BTreeSet<Id> = t.delivered[a]
                .iter()
                .filter(|m| t.delivered[b].contains(m))
                .copied()
                .collect();
            let order = |m: &u32| -> Vec<Id> {
                t.delivered[m]
                    .iter()
                    .filter(|x| common.contains(x))
                    .copied()
                    .collect()
            };
            assert_eq!(order(a), order(b), "members {a} and {b}");
        }
    }
    println!(
        "total: n{VICTIM} crashed after {CRASH_AFTER} publications; survivors delivered {:?} messages in one \
         order by {at:?}",
        survivors
            .iter()
            .map(|m| t.delivered[m].len())
            .collect::<Vec<_>>()
    );
}

/// Runs without a crash replay exactly. (After `sim.crash`, turmoil drops the host's sockets in
/// tokio's task order, and tokio numbers tasks across the whole process, so a crash run's trace
/// can depend on what ran before it in the same test process.)
#[test]
fn the_same_seed_gives_the_same_broadcast_trace() {
    let (a, _, _) = scenario(7, Kind::Total, false);
    let (b, _, _) = scenario(7, Kind::Total, false);
    assert_eq!(a.events, b.events);
    let (c, _, _) = scenario(7, Kind::Causal { relay: true }, false);
    let (d, _, _) = scenario(7, Kind::Causal { relay: true }, false);
    assert_eq!(c.events, d.events);
}
