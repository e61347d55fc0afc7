//! Deterministic simulations of the network layer in turmoil: partition and heal, link loss,
//! crash and restart, and reproducibility (the same seed gives the same trace).
//!
//! Each host runs a real `Node` over `TurmoilTransport` with real causal actors; time is
//! simulated, so a 5 s partition costs milliseconds.

use actix::prelude::*;
use actix_coord::intercept::{CausalBuilder, CausalContext};
use actix_coord::net::{Node, RemoteAddr, TurmoilTransport};
use actix_coord::{remote_actor, remote_message};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Note(u64);

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
struct Ping(u64);

remote_message!(Note, Ping);

/// Records every `Note` it receives, in order.
struct Sink {
    got: Arc<Mutex<Vec<u64>>>,
    trace: Trace,
}
impl Actor for Sink {
    type Context = CausalContext<Self>;
}
impl Handler<Note> for Sink {
    type Result = ();
    fn handle(&mut self, m: Note, _: &mut Self::Context) {
        self.got.lock().unwrap().push(m.0);
        log(&self.trace, format!("n2 got {}", m.0));
    }
}
impl Handler<Ping> for Sink {
    type Result = u64;
    fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
        m.0 + 1
    }
}
remote_actor!(Sink: Note, Ping);

type Trace = Arc<Mutex<Vec<String>>>;

fn log(trace: &Trace, what: String) {
    trace
        .lock()
        .unwrap()
        .push(format!("{:>6} {what}", turmoil::elapsed().as_millis()));
}

fn node(id: u32, peer: (u32, &str), seed: u64) -> actix_coord::net::NodeBuilder {
    Node::builder()
        .id(id)
        .listen("0.0.0.0:7000")
        .peer(peer.0, format!("{}:7000", peer.1))
        .secret("sim secret")
        .transport(TurmoilTransport)
        .seed(seed)
}

/// Logs every membership event of `node` into the trace.
fn watch(node: &Node, name: &'static str, trace: Trace) {
    let mut ev = node.subscribe();
    tokio::spawn(async move {
        while let Ok(e) = ev.recv().await {
            log(&trace, format!("{name} {e:?}"));
        }
    });
}

/// What a scenario does to the network while node 1 streams notes to node 2.
#[derive(Clone, Copy)]
enum Fault {
    /// Partition n1–n2 from 2 s to 7 s.
    Partition,
    /// Random link loss from 2 s to 6 s.
    Loss,
    /// Crash n2 at 3 s, restart it at 5 s.
    Crash,
}

struct Outcome {
    trace: Vec<String>,
    got: Vec<u64>,
    pings_after_fault: u64,
}

fn scenario(seed: u64, fault: Fault) -> Outcome {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(60))
        .rng_seed(seed)
        .build();
    let trace: Trace = Arc::default();
    let got: Arc<Mutex<Vec<u64>>> = Arc::default();
    let boots = Arc::new(AtomicU64::new(0));
    {
        let (trace, got, boots) = (trace.clone(), got.clone(), boots.clone());
        sim.host("n2", move || {
            let (trace, got) = (trace.clone(), got.clone());
            // A restarted host is a new incarnation: a new seed.
            let boot = boots.fetch_add(1, Ordering::SeqCst);
            async move {
                let n2 = node(2, (1, "n1"), seed ^ (0x22 + boot)).start().await?;
                watch(&n2, "n2", trace.clone());
                let sink = CausalBuilder::default()
                    .node(2)
                    .name("sink")
                    .start(Sink { got, trace });
                n2.register("sink", sink)?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    let pings_after = Rc::new(RefCell::new(0u64));
    {
        let (trace, pings_after) = (trace.clone(), pings_after.clone());
        sim.client("n1", async move {
            let n1 = node(1, (2, "n2"), seed ^ 0x11).start().await?;
            watch(&n1, "n1", trace.clone());
            let notes: RemoteAddr<Note> = RemoteAddr::new(&n1, 2, "sink");
            let pings: RemoteAddr<Ping> =
                RemoteAddr::new(&n1, 2, "sink").with_timeout(Duration::from_millis(500));
            let mut i = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut next_ping = Duration::ZERO;
            let end = Duration::from_secs(14);
            let (mut cut, mut healed) = (false, false);
            while turmoil::elapsed() < end {
                tick.tick().await;
                let t = turmoil::elapsed();
                if let Fault::Partition = fault {
                    if !cut && t >= Duration::from_secs(2) {
                        log(&trace, "partition".into());
                        turmoil::partition("n1", "n2");
                        cut = true;
                    } else if cut && !healed && t >= Duration::from_secs(7) {
                        log(&trace, "heal".into());
                        turmoil::repair("n1", "n2");
                        healed = true;
                    }
                }
                if notes.do_send(Note(i)).is_ok() {
                    i += 1;
                }
                if t >= next_ping {
                    next_ping = t + Duration::from_millis(100);
                    let r = pings.send(Ping(i)).await;
                    log(&trace, format!("n1 ping {i} {r:?}"));
                    if r == Ok(i + 1) && t > Duration::from_secs(8) {
                        *pings_after.borrow_mut() += 1;
                    }
                }
            }
            n1.shutdown();
            Ok(())
        });
    }
    let (mut crashed, mut bounced, mut lossy, mut healed) = (false, false, false, false);
    loop {
        let done = sim.step().unwrap();
        let t = sim.elapsed();
        match fault {
            Fault::Crash if !crashed && t >= Duration::from_secs(3) => {
                trace
                    .lock()
                    .unwrap()
                    .push(format!("{:>6} crash n2", t.as_millis()));
                sim.crash("n2");
                crashed = true;
            }
            Fault::Crash if crashed && !bounced && t >= Duration::from_secs(5) => {
                trace
                    .lock()
                    .unwrap()
                    .push(format!("{:>6} restart n2", t.as_millis()));
                sim.bounce("n2");
                bounced = true;
            }
            Fault::Loss if !lossy && t >= Duration::from_secs(2) => {
                sim.set_link_fail_rate("n1", "n2", 0.05);
                lossy = true;
            }
            Fault::Loss if lossy && !healed && t >= Duration::from_secs(6) => {
                sim.set_link_fail_rate("n1", "n2", 0.0);
                sim.repair("n1", "n2");
                healed = true;
            }
            _ => {}
        }
        if done {
            break;
        }
    }
    let trace = trace.lock().unwrap().clone();
    let got = got.lock().unwrap().clone();
    let pings_after_fault = *pings_after.borrow();
    Outcome {
        trace,
        got,
        pings_after_fault,
    }
}

/// Within one incarnation of the receiver, notes arrive strictly increasing: never twice, never
/// out of order (gaps are notes lost with a dead connection, which the sender was told about
/// by `MemberDown`).
fn assert_fifo_no_duplicates(got: &[u64]) {
    for w in got.windows(2) {
        assert!(
            w[0] < w[1],
            "out of order or duplicated: {} then {}",
            w[0],
            w[1]
        );
    }
}

/// The first difference between two traces, for a readable failure.
fn first_difference(a: &[String], b: &[String]) -> Option<(usize, String, String)> {
    let n = a.len().max(b.len());
    (0..n).find_map(|i| {
        let (x, y) = (
            a.get(i).cloned().unwrap_or_default(),
            b.get(i).cloned().unwrap_or_default(),
        );
        (x != y).then_some((i, x, y))
    })
}

fn has(trace: &[String], what: &str) -> bool {
    trace.iter().any(|l| l.contains(what))
}

#[test]
fn partition_of_5s_then_heal_delivers_nothing_twice_or_out_of_order() {
    let o = scenario(7, Fault::Partition);
    assert_fifo_no_duplicates(&o.got);
    assert!(
        has(&o.trace, "n1 MemberDown { node: 2, reason: Timeout }"),
        "{:#?}",
        o.trace
    );
    assert!(has(&o.trace, "n2 MemberDown { node: 1, reason: Timeout }"));
    assert!(
        has(&o.trace, "n1 Reconnected { node: 2 }"),
        "{:#?}",
        o.trace
    );
    assert!(o.pings_after_fault > 10, "traffic resumes after the heal");
    assert!(o.got.len() > 500);
}

#[test]
fn link_loss_is_detected_and_the_connection_recovers() {
    let o = scenario(11, Fault::Loss);
    assert_fifo_no_duplicates(&o.got);
    assert!(has(&o.trace, "n1 MemberDown { node: 2"), "{:#?}", o.trace);
    assert!(
        o.pings_after_fault > 10,
        "traffic resumes after the loss stops"
    );
}

#[test]
fn crash_and_restart_gives_member_down_then_member_up_and_traffic_resumes() {
    let o = scenario(3, Fault::Crash);
    let down = o
        .trace
        .iter()
        .position(|l| l.contains("n1 MemberDown { node: 2"))
        .expect("MemberDown");
    let up_again = o
        .trace
        .iter()
        .skip(down)
        .position(|l| l.contains("n1 MemberUp { node: 2 }"))
        .expect("MemberUp after the restart");
    assert!(up_again > 0);
    assert!(o.pings_after_fault > 10);
    // The restarted sink starts its own sequence: check each incarnation's part.
    let cut = o.got.windows(2).position(|w| w[0] >= w[1]);
    match cut {
        Some(c) => {
            assert_fifo_no_duplicates(&o.got[..=c]);
            assert_fifo_no_duplicates(&o.got[c + 1..]);
        }
        None => assert_fifo_no_duplicates(&o.got),
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let a = scenario(42, Fault::Partition);
    let b = scenario(42, Fault::Partition);
    assert_eq!(first_difference(&a.trace, &b.trace), None);
    assert_eq!(a.got, b.got);
    let c = scenario(42, Fault::Loss);
    let d = scenario(42, Fault::Loss);
    assert_eq!(first_difference(&c.trace, &d.trace), None);
}

/// Both nodes list each other and start at once, so both dial: two connections race and one is
/// kept. Node 1 streams tells from its very first moment; every tell `do_send` accepted must
/// arrive, once and in order, whichever connection won (over 20 seeds).
#[test]
fn both_nodes_dialing_at_once_lose_no_accepted_tell() {
    let mut sums = (0usize, 0usize);
    let refused = Arc::new(AtomicU64::new(0));
    for seed in 0..20u64 {
        let mut sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(30))
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(20))
            .rng_seed(seed)
            .build();
        let trace: Trace = Arc::default();
        let got: Arc<Mutex<Vec<u64>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        {
            let (trace, got) = (trace.clone(), got.clone());
            sim.host("n2", move || {
                let (trace, got) = (trace.clone(), got.clone());
                async move {
                    let n2 = node(2, (1, "n1"), seed ^ 0x22).start().await?;
                    let sink = CausalBuilder::default()
                        .node(2)
                        .name("sink")
                        .start(Sink { got, trace });
                    n2.register("sink", sink)?;
                    std::future::pending::<()>().await;
                    Ok(())
                }
            });
        }
        {
            let (accepted, refused) = (accepted.clone(), refused.clone());
            sim.client("n1", async move {
                let n1 = node(1, (2, "n2"), seed ^ 0x11).start().await?;
                let notes: RemoteAddr<Note> = RemoteAddr::new(&n1, 2, "sink");
                let mut i = 0u64;
                while i < 200 && turmoil::elapsed() < Duration::from_secs(5) {
                    if notes.do_send(Note(i)).is_ok() {
                        i += 1;
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                accepted.store(i, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(3)).await;
                refused.fetch_add(n1.stats().duplicates_refused, Ordering::SeqCst);
                n1.shutdown();
                Ok(())
            });
        }
        sim.run().unwrap();
        let n = accepted.load(Ordering::SeqCst);
        let got = got.lock().unwrap().clone();
        assert_eq!(
            got,
            (0..n).collect::<Vec<_>>(),
            "seed {seed}: {} of {n} accepted tells arrived",
            got.len()
        );
        sums.0 += n as usize;
        sums.1 += got.len();
    }
    println!(
        "20 seeds: {} tells accepted, {} arrived in order; node 1 refused {} duplicate \
         connections",
        sums.0,
        sums.1,
        refused.load(Ordering::SeqCst)
    );
}
