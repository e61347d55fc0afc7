//! Distributed locks on loopback: N = 3 and 5 nodes (real TCP, authenticated, clocks on every
//! message) in one process, one [`DistributedLock`] per node, for each algorithm.
//!
//! * `contended`: every member acquires and releases in a loop at once; throughput is lock
//!   handoffs (critical sections) per second;
//! * summary after the criterion groups: uncontended acquire latency p50/p99, one member
//!   acquiring alone (for Suzuki–Kasami the token then stays: 0 messages) and the members taking
//!   turns one after the other (every acquisition moves the lock to another member);
//! * etcd: the same contended loop against a 3-member etcd cluster needs an `etcd` binary on
//!   `PATH`; without one the comparison is skipped with a message.
//!
//! Run: `cargo bench -p actix-coord --bench locks`.

use actix_coord::mutex::{DistributedLock, LockAlgorithm};
use actix_coord::net::Node;
use criterion::{Criterion, Throughput};
use std::time::{Duration, Instant};

struct Cluster {
    nodes: Vec<Node>,
    locks: Vec<DistributedLock>,
}

async fn cluster(algorithm: LockAlgorithm, n: u32) -> Cluster {
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=n {
        let mut b = Node::builder()
            .id(id)
            .listen("127.0.0.1:0")
            .secret("bench")
            // The runtime only runs inside `block_on`: criterion's pauses must not look like
            // dead peers.
            .failure_timeout(Duration::from_secs(3600))
            .heartbeat_interval(Duration::from_secs(1));
        for p in &nodes {
            b = b.peer(p.id(), p.local_addr());
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
    let members: Vec<u32> = (1..=n).collect();
    let resource = format!("bench-{algorithm}");
    let locks = nodes
        .iter()
        .map(|node| DistributedLock::start_on_node(node, algorithm, &resource, &members).unwrap())
        .collect();
    // Let the lock actors register everywhere before the first request.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Cluster { nodes, locks }
}

impl Cluster {
    /// `total` critical sections shared among all members running at once.
    async fn contended(&self, total: u64) {
        let n = self.locks.len() as u64;
        let mut tasks = Vec::new();
        for (i, l) in self.locks.iter().enumerate() {
            let share = total / n + u64::from((i as u64) < total % n);
            let l = l.clone();
            tasks.push(actix_rt::spawn(async move {
                for _ in 0..share {
                    let g = l.acquire().await.unwrap();
                    g.release().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
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

fn etcd_on_path() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

fn main() {
    let sys = actix::System::new();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    let mut summary = Vec::new();
    for n in [3u32, 5] {
        for a in LockAlgorithm::ALL {
            let cl = sys.block_on(cluster(a, n));
            let mut g = c.benchmark_group(format!("contended/N={n}"));
            g.throughput(Throughput::Elements(1));
            g.bench_function(a.name(), |b| {
                b.iter_custom(|iters| {
                    sys.block_on(async {
                        let t = Instant::now();
                        cl.contended(iters).await;
                        t.elapsed()
                    })
                })
            });
            g.finish();
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
            summary.push((n, a, rate, alone, turns));
            cl.shutdown();
        }
    }
    println!("\nsummary (same run, loopback, one process):");
    println!(
        "  {:<3} {:<16} {:>14} {:>26} {:>26}",
        "N", "algorithm", "handoffs/s", "alone p50/p99", "taking turns p50/p99"
    );
    for (n, a, rate, alone, turns) in summary {
        println!(
            "  {n:<3} {:<16} {rate:>14.0} {:>26} {:>26}",
            a.name(),
            format!("{:?}/{:?}", alone.0, alone.1),
            format!("{:?}/{:?}", turns.0, turns.1)
        );
    }
    match etcd_on_path() {
        Some(p) => println!(
            "  etcd found at {}: the etcd comparison is not implemented yet (see docs/benchmarks.md)",
            p.display()
        ),
        None => println!("  etcd comparison skipped: no `etcd` binary on PATH"),
    }
    c.final_summary();
}
