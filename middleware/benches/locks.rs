//! Distributed locks on loopback: N = 3 and 5 nodes (real TCP, authenticated, clocks on every
//! message) in one process, one [`DistributedLock`] per node, for each algorithm.
//!
//! * workload: every critical section is the shared counter's read-modify-write: read the
//!   counter, yield, write it + 1 (here the counter is in the process; the bench checks at the
//!   end that no increment was lost);
//! * `contended`: every member runs that loop at once; throughput is lock handoffs (critical
//!   sections) per second;
//! * summary after the criterion groups: uncontended acquire latency p50/p99, one member
//!   acquiring alone (for Suzuki–Kasami the token then stays: 0 messages) and the members taking
//!   turns one after the other (every acquisition moves the lock to another member);
//! * against the limit: after each cluster's group, a token passed round its members (each
//!   member's relay tells the next one's, 2000 hops, the best of three runs): the handoff rate
//!   of an ideal lock that needs one message per handoff, on the same links and threads; the
//!   summary prints the contended median against it, with the one-way delay of a frame between
//!   members 1 and 2 beside it (half the median round trip of 2000 requests to an actor that
//!   answers at once);
//! * one thread per node (`threads` groups): the same contended loop and the same limit with
//!   every node on an arbiter (OS thread) of its own, as nodes on separate machines are: a
//!   section's requests and replies are handled in parallel, and a frame between two members
//!   crosses threads through the kernel. The machine's cores bound it (N threads share them);
//!   the bench prints how many there are;
//! * etcd (`--features etcd`, which needs `protoc` to build, and an `etcd` binary on `PATH`):
//!   the same workload against a 3-member etcd cluster on loopback started by the bench, N
//!   clients through etcd's v3 lock API (`Lock` with a lease per client, then `Get` and `Put`
//!   of the counter key, then `Unlock`), measured the same way, in the same run. Without the
//!   feature or without `etcd` the comparison is skipped with a message. The members' data
//!   directories go under the system temp directory, or under `ETCD_BENCH_DATA_DIR` when set
//!   (e.g. `/dev/shm` for tmpfs).
//!
//! Run: `cargo bench -p actix-coord --bench locks`, or with the etcd comparison
//! `cargo bench -p actix-coord --bench locks --features etcd`.

use actix::prelude::*;
use actix_coord::driver::At;
use actix_coord::intercept::{CausalBuilder, CausalContext};
use actix_coord::mutex::{DistributedLock, LockAlgorithm};
use actix_coord::net::{Node, RemoteAddr};
use actix_coord::{remote_actor, remote_message};
use criterion::{Criterion, Throughput};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What measures the one-message-delay limit: a request answered at once by the peer.
#[derive(Message, serde::Serialize, serde::Deserialize)]
#[rtype(result = "u64")]
struct Ping(u64);

/// The ring's token: passed on to the next member's relay until no hops are left.
#[derive(Message, serde::Serialize, serde::Deserialize)]
#[rtype(result = "()")]
struct Token(u64);

remote_message!(Ping, Token);

/// A member's relay in the token ring: the handoff of an ideal lock, one tell to the next
/// member and nothing else.
struct Relay {
    next: RemoteAddr<Token>,
    done: std::sync::Arc<tokio::sync::Notify>,
}
impl Actor for Relay {
    type Context = CausalContext<Self>;
}
impl Handler<Token> for Relay {
    type Result = ();
    fn handle(&mut self, Token(left): Token, _: &mut Self::Context) {
        if left == 0 {
            self.done.notify_one();
        } else {
            self.next.do_send(Token(left - 1)).unwrap();
        }
    }
}
remote_actor!(Relay: Token);

/// Starts member `id`'s relay (of `n`), registered as `relay`; its token goes to the next
/// member (`id % n + 1`).
fn start_relay(node: &Node, n: u32, done: &std::sync::Arc<tokio::sync::Notify>) -> Addr<Relay> {
    let relay = Relay {
        next: RemoteAddr::new(node, node.id() % n + 1, "relay"),
        done: done.clone(),
    };
    let addr = CausalBuilder::default().node(node.id()).start(relay);
    node.register("relay", addr.clone()).unwrap();
    addr
}

/// Half the median round trip of `k` sequential requests from `node` to member 2's echo (each
/// answered at once): the one-way delay of a frame on that link, printed beside the ring's
/// limit.
async fn half_round_trip(node: &Node, k: usize) -> Duration {
    let to: RemoteAddr<Ping> = RemoteAddr::new(node, 2, "echo");
    let mut v = Vec::with_capacity(k);
    for i in 0..k {
        let t = Instant::now();
        let r = to.send(Ping(i as u64)).await.unwrap();
        v.push(t.elapsed());
        assert_eq!(r, i as u64);
    }
    percentiles(v).0 / 2
}

/// The best of three runs of `hops` hops round the ring, in hops per second: the handoff rate
/// of a lock that needs one message per handoff, on these links and threads. Best, because a
/// limit should not be lowered by a slow run.
async fn ring_rate(hops: u64, start: impl Fn(u64), done: &tokio::sync::Notify) -> f64 {
    let mut best = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        start(hops);
        done.notified().await;
        best = best.max(hops as f64 / t.elapsed().as_secs_f64());
    }
    best
}

struct Echo;
impl Actor for Echo {
    type Context = CausalContext<Self>;
}
impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
        m.0
    }
}
remote_actor!(Echo: Ping);

struct Cluster {
    nodes: Vec<Node>,
    locks: Vec<DistributedLock>,
    /// Member 1's relay, and the ring's end.
    relay: Addr<Relay>,
    ring_done: std::sync::Arc<tokio::sync::Notify>,
    /// The counter the critical sections increment.
    counter: Rc<Cell<u64>>,
}

async fn cluster(algorithm: LockAlgorithm, n: u32) -> Cluster {
    // Mutual TLS 1.3, as between machines.
    let ca = actix_coord::net::DevCa::new().unwrap();
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=n {
        let mut b = Node::builder()
            .id(id)
            .listen("127.0.0.1:0")
            .tls(ca.node_identity(id).unwrap())
            // The runtime only runs inside `block_on`: criterion's pauses must not look like
            // dead peers.
            .failure_timeout(Duration::from_secs(3600))
            .heartbeat_interval(Duration::from_secs(1));
        for p in &nodes {
            b = b.peer(p.id(), p.local_addr());
        }
        for later in id + 1..=n {
            b = b.member(later);
        }
        nodes.push(b.start().await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !nodes
        .iter()
        .all(|a| nodes.iter().all(|b| a.id() == b.id() || a.is_up(b.id())))
    {
        assert!(Instant::now() < deadline, "cluster did not connect");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for node in &nodes {
        node.register("echo", CausalBuilder::default().node(node.id()).start(Echo))
            .unwrap();
    }
    let ring_done = std::sync::Arc::new(tokio::sync::Notify::new());
    let relays: Vec<_> = nodes
        .iter()
        .map(|node| start_relay(node, n, &ring_done))
        .collect();
    let relay = relays[0].clone();
    let members: Vec<u32> = (1..=n).collect();
    let resource = format!("bench-{algorithm}");
    let locks = nodes
        .iter()
        .map(|node| DistributedLock::start(At::Node(node), &resource, &members, algorithm).unwrap())
        .collect();
    // Let the lock actors register everywhere before the first request.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Cluster {
        nodes,
        locks,
        relay,
        ring_done,
        counter: Rc::new(Cell::new(0)),
    }
}

impl Cluster {
    /// `total` critical sections shared among all members running at once.
    async fn contended(&self, total: u64) {
        let n = self.locks.len() as u64;
        let before = self.counter.get();
        let mut tasks = Vec::new();
        for (i, l) in self.locks.iter().enumerate() {
            let share = total / n + u64::from((i as u64) < total % n);
            let l = l.clone();
            let counter = self.counter.clone();
            tasks.push(actix_rt::spawn(async move {
                for _ in 0..share {
                    let g = l.acquire().await.unwrap();
                    let v = counter.get();
                    // Let the other members' tasks run inside the critical section.
                    tokio::task::yield_now().await;
                    counter.set(v + 1);
                    g.release().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(self.counter.get(), before + total, "lost increments");
    }

    /// The one-way delay of a frame between members 1 and 2 (see [`half_round_trip`]).
    async fn one_way(&self, k: usize) -> Duration {
        half_round_trip(&self.nodes[0], k).await
    }

    /// The token ring's rate over the same nodes and thread (see [`ring_rate`]).
    async fn ring(&self, hops: u64) -> f64 {
        ring_rate(hops, |k| self.relay.do_send(Token(k)), &self.ring_done).await
    }

    /// Acquire latencies of `k` sequential acquisitions by `who(i)`.
    async fn uncontended(&self, k: usize, who: impl Fn(usize) -> usize) -> Vec<Duration> {
        let mut v = Vec::with_capacity(k);
        for i in 0..k {
            let l = &self.locks[who(i)];
            let t = Instant::now();
            let g = l.acquire().await.unwrap();
            v.push(t.elapsed());
            g.release().await.unwrap();
        }
        v
    }

    fn shutdown(self) {
        for l in &self.locks {
            l.stop();
        }
        for n in &self.nodes {
            n.shutdown();
        }
    }
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

/// One line of the summary.
struct Row {
    n: u32,
    name: &'static str,
    /// Handoffs per second, `total` critical sections with all members contending.
    rate: f64,
    /// The criterion median of the same, handoffs per second.
    median_rate: f64,
    alone: (Duration, Duration),
    turns: (Duration, Duration),
}

fn print_rows(rows: &[Row]) {
    println!(
        "  {:<3} {:<16} {:>22} {:>26} {:>26}",
        "N", "algorithm", "handoffs/s median/run", "alone p50/p99", "taking turns p50/p99"
    );
    for r in rows {
        println!(
            "  {:<3} {:<16} {:>22} {:>26} {:>26}",
            r.n,
            r.name,
            format!("{:.0}/{:.0}", r.median_rate, r.rate),
            format!("{:?}/{:?}", r.alone.0, r.alone.1),
            format!("{:?}/{:?}", r.turns.0, r.turns.1)
        );
    }
}

/// A contended rate against the one-message-delay limit of the same cluster.
struct Limit {
    n: u32,
    name: &'static str,
    /// Criterion's median, handoffs per second.
    median_rate: f64,
    /// One-way frame delay between members 1 and 2, measured right after (half a request's
    /// median round trip).
    one_way: Duration,
    /// The token ring's rate on the same members, hops per second: the limit.
    ring: f64,
}

/// The contended handoff rate against the one-message-delay limit of the same cluster.
fn print_limits(rows: &[Limit]) {
    println!(
        "\n  {:<3} {:<16} {:>18} {:>14} {:>16} {:>12} {:>10} {:>14}",
        "N",
        "algorithm",
        "handoffs/s (median)",
        "ring limit/s",
        "one-way delay",
        "1/one-way",
        "ratio",
        "per handoff"
    );
    for r in rows {
        println!(
            "  {:<3} {:<16} {:>18.0} {:>14.0} {:>16?} {:>12.0} {:>10.3} {:>14?}",
            r.n,
            r.name,
            r.median_rate,
            r.ring,
            r.one_way,
            1.0 / r.one_way.as_secs_f64(),
            r.median_rate / r.ring,
            Duration::from_secs_f64(1.0 / r.median_rate),
        );
    }
}

/// Measures each algorithm's contended handoffs at N = 3 and 5 in criterion group
/// `{group}/N={n}`, then its limit on the same cluster; `more` adds the rest of a cluster's
/// summary.
#[allow(clippy::too_many_arguments)]
fn limits<C>(
    sys: &actix::SystemRunner,
    c: &mut Criterion,
    group: &str,
    start: impl AsyncFn(LockAlgorithm, u32) -> C,
    contended: impl AsyncFn(&C, u64),
    limit: impl AsyncFn(&C) -> (Duration, f64),
    mut more: impl FnMut(&C, &Limit),
    stop: impl AsyncFn(C),
) -> Vec<Limit> {
    let mut rows = Vec::new();
    for n in [3u32, 5] {
        for a in LockAlgorithm::ALL {
            let cl = sys.block_on(start(a, n));
            let mut g = c.benchmark_group(format!("{group}/N={n}"));
            g.throughput(Throughput::Elements(1));
            g.bench_function(a.name(), |b| {
                b.iter_custom(|iters| {
                    sys.block_on(async {
                        let t = Instant::now();
                        contended(&cl, iters).await;
                        t.elapsed()
                    })
                })
            });
            g.finish();
            let (one_way, ring) = sys.block_on(limit(&cl));
            let median_rate = criterion_median_rate(&format!("{group}_N={n}"), a.name());
            let row = Limit {
                n,
                name: a.name(),
                // Without criterion's figures (`--test`): one timed run.
                median_rate: median_rate.unwrap_or_else(|| {
                    sys.block_on(async {
                        let t = Instant::now();
                        contended(&cl, 2000).await;
                        2000.0 / t.elapsed().as_secs_f64()
                    })
                }),
                one_way,
                ring,
            };
            more(&cl, &row);
            rows.push(row);
            sys.block_on(stop(cl));
        }
    }
    rows
}

fn main() {
    // When this run started (criterion's files from before it are not its own).
    let _ = criterion_median_rate("", "");
    let sys = actix::System::new();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    let mut summary = Vec::new();
    let one_thread = limits(
        &sys,
        &mut c,
        "contended",
        cluster,
        Cluster::contended,
        async |cl| (cl.one_way(2000).await, cl.ring(2000).await),
        |cl, row| {
            let (rate, alone, turns) = sys.block_on(async {
                let total = 2000;
                let t = Instant::now();
                cl.contended(total).await;
                let rate = total as f64 / t.elapsed().as_secs_f64();
                let alone = percentiles(cl.uncontended(2000, |_| 1).await);
                let n = cl.locks.len();
                let turns = percentiles(cl.uncontended(2000, |i| i % n).await);
                (rate, alone, turns)
            });
            summary.push(Row {
                n: row.n,
                name: row.name,
                rate,
                median_rate: row.median_rate,
                alone,
                turns,
            });
        },
        async |cl| cl.shutdown(),
    );
    let threads = limits(
        &sys,
        &mut c,
        "threads",
        threaded::Cluster::start,
        threaded::Cluster::contended,
        async |cl| {
            // A thread wakes more slowly from idle, and how idle varies: the smallest of three
            // medians, the strictest limit.
            let mut best = Duration::MAX;
            for _ in 0..3 {
                best = best.min(cl.one_way(2000).await);
            }
            (best, cl.ring(2000).await)
        },
        |_, _| {},
        threaded::Cluster::shutdown,
    );
    println!("\nsummary (same run, loopback, one process):");
    print_rows(&summary);
    println!(
        "\nagainst the one-message-delay limit (same cluster, measured after each group; the \
         limit is a token passed round the members, one tell per hop):"
    );
    print_limits(&one_thread);
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    println!(
        "\none thread per node ({cores} cores for N threads), against the limit on the same threads:"
    );
    print_limits(&threads);
    etcd::compare(&sys, &mut c, &summary);
    c.final_summary();
}

/// Criterion's median for `{group}/{name}` (the group's directory name, `/` written `_`) in
/// handoffs per second, from its estimates file (`None` when criterion wrote none, e.g. under
/// `--test`; a file older than this process is an earlier run's).
fn criterion_median_rate(group: &str, name: &str) -> Option<f64> {
    static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();
    let started = *STARTED.get_or_init(std::time::SystemTime::now);
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
    let path = format!("{dir}/criterion/{group}/{name}/new/estimates.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified < started {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let ns = v["median"]["point_estimate"].as_f64()?;
    Some(1e9 / ns)
}

/// The same clusters with every node on an arbiter (an OS thread) of its own. A node's lock
/// handle is not `Send`, so it stays on its thread, and the bench drives it by commands.
mod threaded {
    use super::{Echo, Relay, Token, half_round_trip, ring_rate, start_relay};
    use actix::Addr;
    use actix_coord::driver::At;
    use actix_coord::intercept::CausalBuilder;
    use actix_coord::mutex::{DistributedLock, LockAlgorithm};
    use actix_coord::net::{DevCa, Node, TlsIdentity};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    use tokio::sync::Notify;
    use tokio::sync::{mpsc, oneshot};

    #[derive(Debug)]
    enum Cmd {
        /// Run this many critical sections, contending with the other members.
        Sections(u64, oneshot::Sender<()>),
        /// Half the median round trip of this many requests to member 2's echo.
        OneWay(usize, oneshot::Sender<Duration>),
        /// Stop the lock and the node.
        Stop(oneshot::Sender<()>),
    }

    /// What one member's thread is started with.
    struct Member {
        id: u32,
        n: u32,
        algorithm: LockAlgorithm,
        identity: TlsIdentity,
        peers: Vec<(u32, String)>,
        counter: Arc<AtomicU64>,
        bound: oneshot::Sender<String>,
        /// Sent its relay once everything is started.
        ready: oneshot::Sender<Addr<Relay>>,
        ring_done: Arc<Notify>,
        cmds: mpsc::UnboundedReceiver<Cmd>,
    }

    pub struct Cluster {
        arbiters: Vec<actix::Arbiter>,
        cmds: Vec<mpsc::UnboundedSender<Cmd>>,
        /// The counter the critical sections increment (a load and a store apart, across
        /// threads: a second holder would lose increments).
        counter: Arc<AtomicU64>,
        /// Member 1's relay, and the ring's end.
        relay: Addr<Relay>,
        ring_done: Arc<Notify>,
    }

    impl Cluster {
        pub async fn start(algorithm: LockAlgorithm, n: u32) -> Cluster {
            let ca = DevCa::new().unwrap();
            let counter = Arc::new(AtomicU64::new(0));
            let ring_done = Arc::new(Notify::new());
            let mut peers: Vec<(u32, String)> = Vec::new();
            let (mut arbiters, mut cmds, mut ready) = (Vec::new(), Vec::new(), Vec::new());
            for id in 1..=n {
                let arbiter = actix::Arbiter::new();
                let (bound, bound_rx) = oneshot::channel();
                let (ready_tx, ready_rx) = oneshot::channel();
                let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
                let m = Member {
                    id,
                    n,
                    algorithm,
                    identity: ca.node_identity(id).unwrap(),
                    peers: peers.clone(),
                    counter: counter.clone(),
                    bound,
                    ready: ready_tx,
                    ring_done: ring_done.clone(),
                    cmds: cmd_rx,
                };
                arbiter.spawn_fn(move || {
                    actix::spawn(m.run());
                });
                peers.push((id, bound_rx.await.expect("member thread died")));
                arbiters.push(arbiter);
                cmds.push(cmd_tx);
                ready.push(ready_rx);
            }
            let mut relays = Vec::new();
            for r in ready {
                relays.push(r.await.expect("member thread died"));
            }
            // Let the lock actors register everywhere before the first request.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Cluster {
                arbiters,
                cmds,
                counter,
                relay: relays.swap_remove(0),
                ring_done,
            }
        }

        /// `total` critical sections shared among all members running at once.
        pub async fn contended(&self, total: u64) {
            let n = self.cmds.len() as u64;
            let before = self.counter.load(Ordering::SeqCst);
            let mut done = Vec::new();
            for (i, c) in self.cmds.iter().enumerate() {
                let share = total / n + u64::from((i as u64) < total % n);
                let (tx, rx) = oneshot::channel();
                c.send(Cmd::Sections(share, tx))
                    .expect("member thread died");
                done.push(rx);
            }
            for d in done {
                d.await.expect("member thread died");
            }
            assert_eq!(
                self.counter.load(Ordering::SeqCst),
                before + total,
                "lost increments"
            );
        }

        /// The one-way frame delay from member 1's thread to member 2's.
        pub async fn one_way(&self, k: usize) -> Duration {
            let (tx, rx) = oneshot::channel();
            self.cmds[0]
                .send(Cmd::OneWay(k, tx))
                .expect("member thread died");
            rx.await.expect("member thread died")
        }

        /// The token ring's rate over the same nodes and threads (see [`ring_rate`]).
        pub async fn ring(&self, hops: u64) -> f64 {
            ring_rate(hops, |k| self.relay.do_send(Token(k)), &self.ring_done).await
        }

        pub async fn shutdown(self) {
            for c in &self.cmds {
                let (tx, rx) = oneshot::channel();
                if c.send(Cmd::Stop(tx)).is_ok() {
                    let _ = rx.await;
                }
            }
            for a in self.arbiters {
                a.stop();
                a.join().unwrap();
            }
        }
    }

    impl Member {
        async fn run(mut self) {
            let id = self.id;
            let mut b = Node::builder()
                .id(id)
                .listen("127.0.0.1:0")
                .tls(self.identity)
                .failure_timeout(Duration::from_secs(3600))
                .heartbeat_interval(Duration::from_secs(1));
            for (p, a) in self.peers {
                b = b.peer(p, a);
            }
            for later in id + 1..=self.n {
                b = b.member(later);
            }
            let node = b.start().await.unwrap();
            let _ = self.bound.send(node.local_addr().to_string());
            let deadline = Instant::now() + Duration::from_secs(20);
            while !(1..=self.n).all(|p| p == id || node.is_up(p)) {
                assert!(Instant::now() < deadline, "cluster did not connect");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            node.register("echo", CausalBuilder::default().node(id).start(Echo))
                .unwrap();
            let members: Vec<u32> = (1..=self.n).collect();
            let resource = format!("bench-{}", self.algorithm);
            let lock = DistributedLock::start(At::Node(&node), &resource, &members, self.algorithm)
                .unwrap();
            let relay = start_relay(&node, self.n, &self.ring_done);
            let _ = self.ready.send(relay);
            while let Some(cmd) = self.cmds.recv().await {
                match cmd {
                    Cmd::Sections(k, done) => {
                        for _ in 0..k {
                            let g = lock.acquire().await.unwrap();
                            let v = self.counter.load(Ordering::SeqCst);
                            // Let the other tasks of this thread run inside the section.
                            tokio::task::yield_now().await;
                            self.counter.store(v + 1, Ordering::SeqCst);
                            g.release().await.unwrap();
                        }
                        let _ = done.send(());
                    }
                    Cmd::OneWay(k, done) => {
                        let _ = done.send(half_round_trip(&node, k).await);
                    }
                    Cmd::Stop(done) => {
                        lock.stop();
                        node.shutdown();
                        let _ = done.send(());
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(not(feature = "etcd"))]
mod etcd {
    pub fn compare(_: &actix::SystemRunner, _: &mut criterion::Criterion, _: &[super::Row]) {
        println!("\netcd comparison skipped: built without --features etcd");
    }
}

#[cfg(feature = "etcd")]
mod etcd {
    use super::{Row, percentiles, print_rows};
    use criterion::{Criterion, Throughput};
    use etcd_client::{Client, ConnectOptions, LockOptions};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// How long the members get to elect a leader and answer on every endpoint.
    const START_DEADLINE: Duration = Duration::from_secs(30);
    /// One lease per client, granted once and long enough for the whole run, so no keep-alive
    /// traffic runs during the measurements (etcd's own sessions keep a 60 s lease alive).
    const LEASE_TTL_S: i64 = 3600;
    /// Critical sections and acquisitions for the summary (etcd is slower than our locks).
    const SUMMARY_SECTIONS: u64 = 1000;
    const SUMMARY_ACQUISITIONS: usize = 1000;

    pub fn compare(sys: &actix::SystemRunner, c: &mut Criterion, ours: &[Row]) {
        let Some(bin) = etcd_on_path() else {
            println!("\netcd comparison skipped: no `etcd` on PATH");
            return;
        };
        // Dropped at the end of this function, or while a panic unwinds: the members are
        // killed and their data directories removed.
        let etcd = match sys.block_on(EtcdCluster::start(&bin)) {
            Ok(e) => e,
            Err(e) => panic!("etcd comparison failed: could not start the etcd cluster: {e}"),
        };
        println!(
            "\netcd {} at {}: 3 members on loopback, data directories in {}",
            etcd.version,
            bin.display(),
            etcd.dir.display()
        );
        let mut rows = Vec::new();
        let mut lock_only = Vec::new();
        for n in [3u32, 5] {
            let cl = sys.block_on(EtcdClients::connect(&etcd, n));
            let mut g = c.benchmark_group(format!("contended/N={n}"));
            g.throughput(Throughput::Elements(1));
            g.bench_function("etcd", |b| {
                b.iter_custom(|iters| {
                    sys.block_on(async {
                        let t = Instant::now();
                        cl.contended(iters, true).await;
                        t.elapsed()
                    })
                })
            });
            g.finish();
            let (rate, rate_lock_only, alone, turns) = sys.block_on(async {
                let total = SUMMARY_SECTIONS;
                let t = Instant::now();
                cl.contended(total, true).await;
                let rate = total as f64 / t.elapsed().as_secs_f64();
                let t = Instant::now();
                cl.contended(total, false).await;
                let rate_lock_only = total as f64 / t.elapsed().as_secs_f64();
                let k = SUMMARY_ACQUISITIONS;
                let alone = percentiles(cl.uncontended(k, |_| 1).await);
                let n = cl.clients.len();
                let turns = percentiles(cl.uncontended(k, |i| i % n).await);
                (rate, rate_lock_only, alone, turns)
            });
            rows.push(Row {
                n,
                name: "etcd",
                rate,
                median_rate: rate,
                alone,
                turns,
            });
            lock_only.push((n, rate_lock_only));
            sys.block_on(cl.close());
        }
        drop(etcd);

        println!(
            "\netcd summary (same run; {SUMMARY_SECTIONS} contended sections, \
             {SUMMARY_ACQUISITIONS} uncontended acquisitions):"
        );
        print_rows(&rows);
        for (n, r) in &lock_only {
            println!(
                "  {n:<3} {:<16} {r:>14.0}   (lock + unlock only, no counter)",
                "etcd"
            );
        }
        println!("\nratios to etcd (ours / etcd for handoffs/s, etcd / ours for p50 latency):");
        println!(
            "  {:<3} {:<16} {:>14} {:>16} {:>16}",
            "N", "algorithm", "handoffs/s", "alone p50", "turns p50"
        );
        for r in ours {
            let Some(e) = rows.iter().find(|e| e.n == r.n) else {
                continue;
            };
            println!(
                "  {:<3} {:<16} {:>13.1}× {:>15.1}× {:>15.1}×",
                r.n,
                r.name,
                r.median_rate / e.median_rate,
                e.alone.0.as_secs_f64() / r.alone.0.as_secs_f64(),
                e.turns.0.as_secs_f64() / r.turns.0.as_secs_f64(),
            );
        }
    }

    fn etcd_on_path() -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    }

    /// `k` distinct free loopback ports (all held at once, released just before etcd binds).
    fn free_ports(k: usize) -> std::io::Result<Vec<u16>> {
        let held = (0..k)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        held.iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect()
    }

    /// A 3-member etcd cluster on loopback, one process per member. Dropping it (also while a
    /// panic unwinds) kills the members and removes their data directories; the members are
    /// also told to die with this process (`PR_SET_PDEATHSIG`), e.g. on Ctrl-C.
    struct EtcdCluster {
        children: Vec<Child>,
        dir: PathBuf,
        endpoints: Vec<String>,
        version: String,
    }

    impl Drop for EtcdCluster {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl EtcdCluster {
        async fn start(bin: &Path) -> Result<Self, String> {
            let parent = std::env::var_os("ETCD_BENCH_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = parent.join(format!(
                "actix-coord-etcd-bench-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // From here on an early return drops the guard: members killed, directory removed.
            let mut cluster = EtcdCluster {
                children: Vec::new(),
                dir,
                endpoints: Vec::new(),
                version: String::new(),
            };
            let ports = free_ports(6).map_err(|e| format!("free ports: {e}"))?;
            let url = |port: u16| format!("http://127.0.0.1:{port}");
            let initial_cluster = (0..3)
                .map(|i| format!("m{i}={}", url(ports[2 * i + 1])))
                .collect::<Vec<_>>()
                .join(",");
            for i in 0..3 {
                let (client, peer) = (url(ports[2 * i]), url(ports[2 * i + 1]));
                let log = cluster.dir.join(format!("m{i}.log"));
                let log = std::fs::File::create(&log).map_err(|e| format!("{e}"))?;
                let log2 = log.try_clone().map_err(|e| format!("{e}"))?;
                let mut cmd = Command::new(bin);
                cmd.arg(format!("--name=m{i}"))
                    .arg(format!(
                        "--data-dir={}",
                        cluster.dir.join(format!("m{i}")).display()
                    ))
                    .arg(format!("--listen-client-urls={client}"))
                    .arg(format!("--advertise-client-urls={client}"))
                    .arg(format!("--listen-peer-urls={peer}"))
                    .arg(format!("--initial-advertise-peer-urls={peer}"))
                    .arg(format!("--initial-cluster={initial_cluster}"))
                    .arg("--initial-cluster-state=new")
                    .arg(format!(
                        "--initial-cluster-token=bench-{}",
                        std::process::id()
                    ))
                    .arg("--logger=zap")
                    .arg("--log-level=warn")
                    .stdin(Stdio::null())
                    .stdout(log)
                    .stderr(log2);
                #[cfg(target_os = "linux")]
                {
                    use std::os::unix::process::CommandExt;
                    // SAFETY: `prctl` is async-signal-safe and the closure allocates nothing.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                }
                let child = cmd
                    .spawn()
                    .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
                cluster.children.push(child);
                cluster.endpoints.push(client);
            }
            match cluster.wait_healthy().await {
                Ok(version) => {
                    cluster.version = version;
                    Ok(cluster)
                }
                Err(e) => Err(format!("{e}\n{}", cluster.log_tails())),
            }
        }

        /// Until every member answers a linearizable read (so a leader is elected and each
        /// member follows it), or the deadline. Returns the members' version.
        async fn wait_healthy(&mut self) -> Result<String, String> {
            let deadline = Instant::now() + START_DEADLINE;
            let mut version = String::new();
            for ep in self.endpoints.clone() {
                let last_error = loop {
                    let err = match probe(&ep).await {
                        Ok(v) => {
                            version = v;
                            break None;
                        }
                        Err(e) => e,
                    };
                    for (i, c) in self.children.iter_mut().enumerate() {
                        if let Ok(Some(status)) = c.try_wait() {
                            return Err(format!("etcd member m{i} exited: {status}"));
                        }
                    }
                    if Instant::now() >= deadline {
                        break Some(err);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                if let Some(e) = last_error {
                    return Err(format!(
                        "etcd cluster not healthy after {START_DEADLINE:?}: {ep}: {e}"
                    ));
                }
            }
            Ok(version)
        }

        fn log_tails(&self) -> String {
            let mut s = String::new();
            for i in 0..self.children.len() {
                let log =
                    std::fs::read_to_string(self.dir.join(format!("m{i}.log"))).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                s += &format!("--- m{i}.log (last lines)\n");
                for l in &lines[lines.len().saturating_sub(10)..] {
                    s += l;
                    s.push('\n');
                }
            }
            s
        }
    }

    async fn probe(endpoint: &str) -> Result<String, etcd_client::Error> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        let mut c = Client::connect([endpoint], Some(opts)).await?;
        c.get("actix-coord-bench-health", None).await?;
        Ok(c.status().await?.version().to_string())
    }

    /// N clients with a lease each, client `i` connected to member `i mod 3`, contending for
    /// one named lock and incrementing one counter key.
    struct EtcdClients {
        clients: Vec<(Client, i64)>,
        lock: String,
        counter: String,
    }

    impl EtcdClients {
        async fn connect(etcd: &EtcdCluster, n: u32) -> Self {
            let mut clients = Vec::new();
            for i in 0..n as usize {
                let ep = &etcd.endpoints[i % etcd.endpoints.len()];
                let mut c = Client::connect([ep], None).await.unwrap();
                let lease = c.lease_grant(LEASE_TTL_S, None).await.unwrap().id();
                clients.push((c, lease));
            }
            let (lock, counter) = (format!("bench-lock-{n}"), format!("bench-counter-{n}"));
            clients[0].0.put(counter.as_str(), "0", None).await.unwrap();
            EtcdClients {
                clients,
                lock,
                counter,
            }
        }

        async fn read_counter(c: &mut Client, key: &str) -> u64 {
            let r = c.get(key, None).await.unwrap();
            let v = r.kvs().first().expect("counter key").value();
            std::str::from_utf8(v).unwrap().parse().unwrap()
        }

        /// `total` critical sections shared among all clients running at once; each one
        /// increments the counter key when `counter`, else only locks and unlocks.
        async fn contended(&self, total: u64, counter: bool) {
            let n = self.clients.len() as u64;
            let before = Self::read_counter(&mut self.clients[0].0.clone(), &self.counter).await;
            let mut tasks = Vec::new();
            for (i, (c, lease)) in self.clients.iter().enumerate() {
                let share = total / n + u64::from((i as u64) < total % n);
                let (mut c, lease) = (c.clone(), *lease);
                let (lock, key) = (self.lock.clone(), self.counter.clone());
                tasks.push(actix_rt::spawn(async move {
                    for _ in 0..share {
                        let opts = LockOptions::new().with_lease(lease);
                        let owned = c.lock(lock.as_str(), Some(opts)).await.unwrap();
                        if counter {
                            let v = Self::read_counter(&mut c, &key).await;
                            c.put(key.as_str(), (v + 1).to_string(), None)
                                .await
                                .unwrap();
                        }
                        c.unlock(owned.key()).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let after = Self::read_counter(&mut self.clients[0].0.clone(), &self.counter).await;
            let expected = before + if counter { total } else { 0 };
            assert_eq!(after, expected, "etcd: lost increments");
        }

        /// Acquire latencies (`Lock` until it returns) of `k` sequential acquisitions by
        /// client `who(i)`.
        async fn uncontended(&self, k: usize, who: impl Fn(usize) -> usize) -> Vec<Duration> {
            let mut v = Vec::with_capacity(k);
            for i in 0..k {
                let (c, lease) = &self.clients[who(i)];
                let mut c = c.clone();
                let opts = LockOptions::new().with_lease(*lease);
                let t = Instant::now();
                let owned = c.lock(self.lock.as_str(), Some(opts)).await.unwrap();
                v.push(t.elapsed());
                c.unlock(owned.key()).await.unwrap();
            }
            v
        }

        async fn close(self) {
            for (mut c, lease) in self.clients {
                let _ = c.lease_revoke(lease).await;
            }
        }
    }
}
