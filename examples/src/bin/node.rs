//! One cluster member per process.
//!
//! Each node hosts a `pong` actor that answers `Ping`s and a `ping` actor that runs a workload
//! against the other members; every message carries Lamport, vector and hybrid clocks, and every
//! tick is written to `DIR/node<ID>.jsonl` and `DIR/node<ID>.log` (ShiViz). Merged, the logs of
//! all members form one vector-clock history.
//!
//! ```text
//! node --id 1 --listen 127.0.0.1:7101 --peer 2=127.0.0.1:7102 --peer 3=127.0.0.1:7103 \
//!      --secret S --log-dir DIR --workload ping
//! ```
//!
//! Security: `--secret S` (Noise keyed by a shared secret: quick starts) or mutual TLS 1.3 with
//! `--tls-cert node1.pem --tls-key node1-key.pem --tls-ca ca.pem` (recommended between machines).
//! `node gen-certs --out DIR --nodes 1..5` writes a development CA and the node certificates.
//!
//! The first line a node prints is `listening HOST:PORT`. With `--listen 127.0.0.1:0` (the
//! default) the system picks the port: start the members one after the other, each with the
//! addresses printed by those already running (`--peer ID=HOST:PORT`) and the bare ids of the
//! members still to come (`--peer ID`), which dial it when they start.
//!
//! Workloads:
//! * `ping`: waits for every peer, does `--count` request/replies with each, tells every peer it
//!   is done, waits until every peer is done too, prints a summary and exits 0 (1 on errors);
//! * `serve`: serves until killed, printing membership events (`event MemberUp 2`, …) and
//!   answering pings: used by the crash tests;
//! * `counter`: `--lock lamport|ricart-agrawala|suzuki-kasami --iterations K --resource FILE`,
//!   a lock-protected counter in a shared file (see `examples::workloads::counter`); with
//!   Suzuki–Kasami a bully election (the election options apply) decides who regenerates a lost
//!   token.
//! * `election`: a bully election member that prints each leader change as a JSON line
//!   `{"leader":5,"term":3,"at_ms":…}` until killed (`--hold-down-ms`, `--quorum`, timeouts:
//!   see `examples::workloads::election`).

use actix::prelude::*;
use actix_coord::intercept::{self, CausalBuilder, CausalContext, InProcessExt};
use actix_coord::net::{Node, NodeEvent, RemoteAddr, RemoteError};
use actix_coord::trace::CausalLayer;
use actix_coord::{remote_actor, remote_message};
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "One actix-coord cluster member")]
struct Args {
    /// This node's id.
    #[arg(long)]
    id: u32,
    /// Address to listen on. Port 0 (the default) lets the system pick a free port; the first
    /// line the node prints is `listening HOST:PORT`, the address it bound.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// A peer, as ID=HOST:PORT, or a bare ID for a member whose address is not known yet: it
    /// dials this node (repeat).
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(u32, Option<String>)>,
    /// The cluster secret (the shared-secret mode: Noise with a pre-shared key). Give either
    /// this or the three `--tls-*` files.
    #[arg(
        long,
        required_unless_present = "tls_cert",
        conflicts_with = "tls_cert"
    )]
    secret: Option<String>,
    /// This node's certificate (PEM), for mutual TLS 1.3; it must name the node as
    /// `node-<ID>.actix-coord` (`node gen-certs` makes such certificates).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The cluster CA's certificate (PEM): peers must present certificates it signed.
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Where to write `node<ID>.jsonl` and `node<ID>.log`.
    #[arg(long)]
    log_dir: PathBuf,
    /// Folder for this member's persisted state: its incarnation count. With it, a restarted
    /// member takes the next incarnation by itself, so its processes' ids and log names
    /// (`3~1.4`, `main@3~1`) never collide with its predecessor's and the logs of both
    /// check as one run. Held locked while the node runs: a second process with the same
    /// folder is refused. Without it every start is incarnation 0.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// What to do.
    #[arg(long, value_enum, default_value = "ping")]
    workload: Workload,
    /// Request/replies per peer (workload `ping`).
    #[arg(long, default_value_t = 20)]
    count: u32,
    /// Seconds to wait for peers before giving up.
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
    /// Options of the `counter` workload.
    #[command(flatten)]
    counter: examples::workloads::counter::CounterArgs,
    /// Options of the `berkeley` workload.
    #[command(flatten)]
    berkeley: examples::workloads::berkeley::BerkeleyArgs,
    /// Options of the workload `election` (and of the election a Suzuki–Kasami `counter` runs).
    #[command(flatten)]
    election: examples::workloads::election::ElectionArgs,
}

/// Workloads.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    /// Request/replies with every peer, then exit.
    Ping,
    /// Serve until killed.
    Serve,
    /// A lock-protected counter in a shared file (`examples::workloads::counter`).
    Counter,
    /// The Berkeley clock daemon over a simulated bad clock: one JSON line per round.
    Berkeley,
    /// A bully election member printing each leader change as a JSON line, until killed.
    Election,
}

fn parse_peer(s: &str) -> Result<(u32, Option<String>), String> {
    let (id, addr) = match s.split_once('=') {
        Some((id, addr)) => (id, Some(addr.to_owned())),
        None => (s, None),
    };
    let id = id
        .parse()
        .map_err(|e| format!("bad id {id:?} (expected ID=HOST:PORT or ID): {e}"))?;
    Ok((id, addr))
}

/// A request for a number one higher.
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
struct Ping(u64);

/// "I have finished my workload."
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Done(u32);

remote_message!(Ping, Done);

/// Answers pings and counts the peers that are done.
struct Pong {
    done: tokio::sync::watch::Sender<HashSet<u32>>,
}

impl Actor for Pong {
    type Context = CausalContext<Self>;
}

impl Handler<Ping> for Pong {
    type Result = u64;
    fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
        m.0 + 1
    }
}

impl Handler<Done> for Pong {
    type Result = ();
    fn handle(&mut self, m: Done, _: &mut Self::Context) {
        self.done.send_modify(|s| {
            s.insert(m.0);
        });
    }
}

remote_actor!(Pong: Ping, Done);

/// Runs the ping workload as a causal process.
struct Pinger {
    node: Node,
    me: u32,
    peers: Vec<u32>,
    count: u32,
}

impl Actor for Pinger {
    type Context = CausalContext<Self>;
}

/// Result of the workload: latencies in µs, and errors.
#[derive(Message)]
#[rtype(result = "(Vec<u64>, Vec<String>)")]
struct Run;

impl Handler<Run> for Pinger {
    type Result = ResponseFuture<(Vec<u64>, Vec<String>)>;
    fn handle(&mut self, _: Run, _: &mut Self::Context) -> Self::Result {
        let (node, me, peers, count) = (self.node.clone(), self.me, self.peers.clone(), self.count);
        Box::pin(
            async move {
                let mut lat = Vec::new();
                let mut errors = Vec::new();
                for i in 0..count {
                    for &p in &peers {
                        let r: RemoteAddr<Ping> = RemoteAddr::new(&node, p, "pong");
                        let t = Instant::now();
                        match r.send(Ping(u64::from(i))).await {
                            Ok(v) if v == u64::from(i) + 1 => {
                                lat.push(t.elapsed().as_micros() as u64)
                            }
                            Ok(v) => errors.push(format!("peer {p}: wrong answer {v}")),
                            Err(e) => errors.push(format!("peer {p}: {e}")),
                        }
                    }
                }
                for &p in &peers {
                    let r: RemoteAddr<Done> = RemoteAddr::new(&node, p, "pong");
                    match r.send(Done(me)).await {
                        Ok(()) => {}
                        // The peer finished and left after hearing from us.
                        Err(RemoteError::PeerDown(_)) => {}
                        Err(e) => errors.push(format!("done to {p}: {e}")),
                    }
                }
                (lat, errors)
            }
            .in_current_process(),
        )
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `node gen-certs`: a development CA and node certificates.
#[derive(Parser, Debug)]
#[command(
    name = "node gen-certs",
    about = "Writes a development CA (ca.pem, ca-key.pem) and, per node, node<ID>.pem and \
             node<ID>-key.pem, for --tls-cert/--tls-key/--tls-ca"
)]
struct GenCerts {
    /// Folder to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Node ids: a range `1..5` (inclusive) or a list `1,2,7`.
    #[arg(long)]
    nodes: String,
}

fn parse_ids(s: &str) -> Result<Vec<u32>, String> {
    let bad = |e: std::num::ParseIntError| format!("bad id in {s:?}: {e}");
    if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u32, u32) = (
            a.parse().map_err(bad)?,
            b.trim_start_matches('=').parse().map_err(bad)?,
        );
        if a > b || b - a > 10_000 {
            return Err(format!("bad range {s:?}"));
        }
        return Ok((a..=b).collect());
    }
    s.split(',')
        .map(|x| x.trim().parse().map_err(bad))
        .collect()
}

fn gen_certs() -> i32 {
    let args = GenCerts::parse_from(std::env::args().skip(1));
    let ids = match parse_ids(&args.nodes) {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("gen-certs: {e}");
            return 2;
        }
    };
    let written = actix_coord::net::DevCa::new().and_then(|ca| ca.write(&args.out, ids));
    match written {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            0
        }
        Err(e) => {
            eprintln!("gen-certs: {e}");
            2
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("gen-certs") {
        std::process::exit(gen_certs());
    }
    let args = Args::parse();
    let name = format!("node{}", args.id);
    // First thing, before any process exists: their ids carry the incarnation.
    let _incarnation = match &args.state_dir {
        None => None,
        Some(dir) => match intercept::Incarnation::claim(dir, args.id) {
            Ok(inc) => {
                intercept::set_incarnation(inc.number());
                Some(inc)
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(2);
            }
        },
    };
    let (layer, guard) = match CausalLayer::builder()
        .jsonl_path(args.log_dir.join(format!("{name}.jsonl")))
        .shiviz_path(args.log_dir.join(format!("{name}.log")))
        .build()
    {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "{name}: cannot open logs in {}: {e}",
                args.log_dir.display()
            );
            std::process::exit(2);
        }
    };
    let subscriber = tracing_subscriber::registry().with(layer).with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::EnvFilter::from_default_env()),
    );
    let _ = tracing::subscriber::set_global_default(subscriber);
    intercept::set_default_node(args.id);
    intercept::set_external_name("main");
    let code = actix::System::new().block_on(run(args, name));
    if let Err(e) = guard.close() {
        eprintln!("log write error: {e}");
    }
    std::process::exit(code);
}

use tracing_subscriber::Layer as _;

async fn run(args: Args, name: String) -> i32 {
    let mut b = Node::builder().id(args.id).listen(&args.listen);
    b = match (&args.secret, &args.tls_cert, &args.tls_key, &args.tls_ca) {
        (Some(secret), ..) => b.secret(secret),
        (None, Some(cert), Some(key), Some(ca)) => {
            match actix_coord::net::TlsIdentity::from_pem_files(cert, key, ca) {
                Ok(identity) => b.tls(identity),
                Err(e) => {
                    eprintln!("{name}: {e}");
                    return 2;
                }
            }
        }
        _ => {
            eprintln!("{name}: give --secret or --tls-cert, --tls-key and --tls-ca");
            return 2;
        }
    };
    for (id, addr) in &args.peers {
        b = match addr {
            Some(addr) => b.peer(*id, addr),
            None => b.member(*id),
        };
    }
    let node = match b.start().await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 2;
        }
    };
    // The first line: the bound address (the listen port may have been 0).
    println!("listening {}", node.local_addr());
    let _ = std::io::stdout().flush();
    let mut events = node.subscribe();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(HashSet::new());
    let pong = CausalBuilder::default()
        .node(args.id)
        .name(format!("pong{}", args.id))
        .start(Pong { done: done_tx });
    if let Err(e) = node.register("pong", pong) {
        eprintln!("{name}: {e}");
        return 2;
    }
    let peers: Vec<u32> = args.peers.iter().map(|p| p.0).collect();
    if let Workload::Counter = args.workload {
        let code =
            examples::workloads::counter::run(&node, &peers, &args.counter, args.election.config())
                .await;
        node.shutdown();
        return code;
    }
    if let Workload::Berkeley = args.workload {
        return examples::workloads::berkeley::run(&node, &peers, &args.berkeley, &args.election)
            .await;
    }
    if let Workload::Election = args.workload {
        return examples::workloads::election::run(&node, &peers, &args.election).await;
    }
    if let Workload::Serve = args.workload {
        println!("ready {}", args.id);
        let _ = std::io::stdout().flush();
        loop {
            match events.recv().await {
                Ok(e) => {
                    let line = match e {
                        NodeEvent::MemberUp { node } => format!("event MemberUp {node}"),
                        NodeEvent::MemberDown { node, reason } => {
                            format!("event MemberDown {node} {reason:?}")
                        }
                        NodeEvent::Reconnected { node } => format!("event Reconnected {node}"),
                        NodeEvent::TellsLost { node, count } => {
                            format!("event TellsLost {node} {count}")
                        }
                    };
                    println!("{line}");
                    let _ = std::io::stdout().flush();
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return 0,
            }
        }
    }
    // Wait until every peer is connected.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait_secs);
    while !peers.iter().all(|p| node.is_up(*p)) {
        if tokio::time::timeout_at(deadline, events.recv())
            .await
            .is_err()
        {
            eprintln!("{name}: peers not all up after {} s", args.wait_secs);
            return 1;
        }
    }
    let pinger = CausalBuilder::default()
        .node(args.id)
        .name(format!("ping{}", args.id))
        .start(Pinger {
            node: node.clone(),
            me: args.id,
            peers: peers.clone(),
            count: args.count,
        });
    let started = Instant::now();
    let (mut lat, errors) = match pinger.send(Run).await {
        Ok(r) => r,
        Err(e) => (Vec::new(), vec![format!("pinger: {e}")]),
    };
    let elapsed = started.elapsed();
    // Stay until every peer has finished with us.
    let all_done = tokio::time::timeout_at(
        deadline + Duration::from_secs(args.wait_secs),
        done_rx.wait_for(|s| peers.iter().all(|p| s.contains(p))),
    )
    .await;
    lat.sort_unstable();
    println!(
        "{name}: {} request/replies with {} peers in {:.1} ms, p50 {} us, p99 {} us, {} errors{}",
        lat.len(),
        peers.len(),
        elapsed.as_secs_f64() * 1e3,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        errors.len(),
        if all_done.is_ok() {
            ""
        } else {
            ", peers not all done"
        },
    );
    for e in &errors {
        eprintln!("{name}: {e}");
    }
    let stats = node.stats();
    eprintln!("{name}: {stats:?}");
    node.shutdown();
    if errors.is_empty() && all_done.is_ok() {
        0
    } else {
        1
    }
}
