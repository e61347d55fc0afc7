//! Two nodes on loopback against a raw tokio TCP + bincode baseline with the same framing
//! (`LengthDelimitedCodec`), in the same run:
//!
//! * `one-way`: batches of 1000 tells, timed until the receiver has counted them all (msgs/s);
//! * `request-reply`: one request at a time (mean per request), and p50/p99 over 5000 requests
//!   printed after the criterion groups.
//!
//! A counting allocator (switched on only while it counts, so the timings do not pay for it)
//! gives allocations per message and per round trip, raw and node, and the bytes of clock
//! state per process for 16 and 256 known processes, printed in the summary.
//!
//! The node path carries Lamport, vector (differential) and hybrid clocks, merges them in the
//! receiving causal actor, heartbeats and counts sequence numbers. It runs in both security
//! modes: the shared secret (Noise: every byte encrypted) against the raw TCP baseline, and
//! mutual TLS 1.3 against a raw TLS baseline (tokio-rustls, same certificates, same framing).
//! A third baseline delivers raw TLS into a plain actix actor, which also answers the requests:
//! the link and the actor hop without clocks, stamps or the node's framing.
//!
//! Run: `cargo bench -p actix-coord --bench net`.

use actix::prelude::*;
use actix_coord::intercept::{CausalBuilder, CausalContext};
use actix_coord::net::transport::BoxStream;
use actix_coord::net::wire;
use actix_coord::net::{DevCa, Node, NodeBuilder, RemoteAddr, RemoteError};
use actix_coord::{remote_actor, remote_message};
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const BATCH: u64 = 1000;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Bytes of clock state for a process that knows `n` processes: its vector clock (inline and
/// heap), and what one connection's differential encoder keeps for it after sending it once.
fn clock_state_bytes(n: u32) -> (usize, i64, i64) {
    use actix_coord::clock::{ProcessId, VectorClock};
    use actix_coord::intercept::{Clocks, Stamp};
    use actix_coord::net::wire::VectorEncoder;
    let entries = (1..=n).map(|i| (ProcessId::new(i, 0), u64::from(i)));
    let (v, _, heap) = counting::count(|| VectorClock::from_entries(entries).unwrap());
    let stamp = Stamp {
        from: ProcessId::new(1, 0),
        lamport: 1,
        vector: Some(Arc::new(v)),
        hlc: None,
    };
    let mut enc = VectorEncoder::new(false);
    let (w, _, enc_heap) = counting::count(|| enc.encode(&stamp, &|_| None));
    let (_, _, wire_heap) = counting::count(|| drop(w));
    (
        std::mem::size_of::<Clocks>(),
        heap,
        enc_heap + wire_heap, // the encoder's own state: what stays after the wire form goes
    )
}

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Note(u64);

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
struct Ping(u64);

remote_message!(Note, Ping);

struct Sink(Arc<AtomicU64>);
impl Actor for Sink {
    type Context = CausalContext<Self>;
}
impl Handler<Note> for Sink {
    type Result = ();
    fn handle(&mut self, _: Note, _: &mut Self::Context) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
impl Handler<Ping> for Sink {
    type Result = u64;
    fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
        m.0 + 1
    }
}
remote_actor!(Sink: Note, Ping);

async fn wait_count(n: &AtomicU64, target: u64) {
    while n.load(Ordering::Relaxed) < target {
        tokio::task::yield_now().await;
    }
}

struct NodePair {
    _n2: Node,
    n1: Node,
    count: Arc<AtomicU64>,
}

/// How the bench's nodes secure their link.
#[derive(Clone, Copy)]
enum Mode<'a> {
    Secret,
    Tls(&'a DevCa),
}

fn secured(b: NodeBuilder, id: u32, mode: Mode<'_>) -> NodeBuilder {
    match mode {
        Mode::Secret => b.secret("bench"),
        Mode::Tls(ca) => b.tls(ca.node_identity(id).unwrap()),
    }
}

async fn node_pair(mode: Mode<'_>) -> NodePair {
    let n2 = secured(Node::builder().id(2).member(1), 2, mode)
        .outbound_capacity(1 << 16)
        // The runtime only runs inside `block_on`: criterion's pauses between benchmarks must
        // not look like a dead peer.
        .failure_timeout(Duration::from_secs(3600))
        .heartbeat_interval(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    n2.register(
        "sink",
        CausalBuilder::default().node(2).start(Sink(count.clone())),
    )
    .unwrap();
    let n1 = secured(Node::builder().id(1), 1, mode)
        .peer(2, n2.local_addr())
        .outbound_capacity(1 << 16)
        // The runtime only runs inside `block_on`: criterion's pauses between benchmarks must
        // not look like a dead peer.
        .failure_timeout(Duration::from_secs(3600))
        .heartbeat_interval(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    while !n1.is_up(2) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    NodePair { _n2: n2, n1, count }
}

/// The baseline: one raw connection, bincode payloads behind a kind byte, same framing.
struct Raw {
    client: Framed<BoxStream, LengthDelimitedCodec>,
    count: Arc<AtomicU64>,
}

/// The rustls sides of the raw TLS baseline: the same CA and certificates as the nodes, TLS 1.3,
/// client certificates required.
fn raw_tls(ca: &DevCa) -> (tokio_rustls::TlsConnector, tokio_rustls::TlsAcceptor) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let roots = Arc::new(roots);
    let ident = |id: u32| {
        let c = ca.node_cert(id).unwrap();
        (
            vec![CertificateDer::from_pem_slice(c.cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(c.key.as_bytes()).unwrap(),
        )
    };
    let (cc, ck) = ident(1);
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(cc, ck)
        .unwrap();
    let (sc, sk) = ident(2);
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(sc, sk)
        .unwrap();
    (
        tokio_rustls::TlsConnector::from(Arc::new(client)),
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
    )
}

/// Where the raw baseline's receiver puts a tell.
#[derive(Clone, Copy, PartialEq)]
enum RawSink {
    /// It counts it.
    Count,
    /// It hands it to a plain actix actor (`actix::Context`, default mailbox), retrying while
    /// the mailbox is full, as the node's reader does: the link and the actor without clocks.
    /// A request is answered by the actor, as the node's are.
    Actor,
}

async fn raw_pair(tls: Option<&DevCa>, sink: RawSink) -> Raw {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let actor = (sink == RawSink::Actor).then(|| PlainSink(count.clone()).start());
    let sides = tls.map(raw_tls);
    let acceptor = sides.as_ref().map(|s| s.1.clone());
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let s: BoxStream = match acceptor {
            Some(a) => Box::new(a.accept(s).await.unwrap()),
            None => Box::new(s),
        };
        let mut f = Framed::new(s, LengthDelimitedCodec::new());
        while let Some(Ok(b)) = f.next().await {
            let (kind, rest) = b.split_first().unwrap();
            let v: u64 = wire::decode_payload(rest).unwrap();
            if *kind == 1 {
                // Into an actor, the actor answers (the node's responder is an actor too).
                let r = match &actor {
                    Some(a) => a.send(Ping(v)).await.unwrap(),
                    None => v + 1,
                };
                let reply = wire::encode_payload(&r).unwrap();
                f.send(Bytes::from(reply)).await.unwrap();
            } else if let Some(a) = &actor {
                let mut note = Note(v);
                loop {
                    match a.try_send(note) {
                        Ok(()) => break,
                        Err(SendError::Full(n)) => {
                            note = n;
                            tokio::task::yield_now().await;
                        }
                        Err(SendError::Closed(_)) => panic!("the sink stopped"),
                    }
                }
            } else {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let s: BoxStream = match sides {
        Some((connector, _)) => {
            let name = rustls::pki_types::ServerName::try_from(actix_coord::net::node_dns_name(2))
                .unwrap();
            Box::new(connector.connect(name, s).await.unwrap())
        }
        None => Box::new(s),
    };
    Raw {
        client: Framed::new(s, LengthDelimitedCodec::new()),
        count,
    }
}

fn raw_frame(kind: u8, v: u64) -> Bytes {
    let mut b = vec![kind];
    b.extend(wire::encode_payload(&v).unwrap());
    Bytes::from(b)
}

impl Raw {
    async fn one_way(&mut self, n: u64) {
        let target = self.count.load(Ordering::Relaxed) + n;
        for i in 0..n {
            self.client.feed(raw_frame(0, i)).await.unwrap();
        }
        SinkExt::<Bytes>::flush(&mut self.client).await.unwrap();
        wait_count(&self.count, target).await;
    }

    async fn request(&mut self, v: u64) -> u64 {
        self.client.send(raw_frame(1, v)).await.unwrap();
        let b = self.client.next().await.unwrap().unwrap();
        wire::decode_payload(&b).unwrap()
    }
}

impl NodePair {
    async fn one_way(&self, n: u64) {
        let to: RemoteAddr<Note> = RemoteAddr::new(&self.n1, 2, "sink");
        let target = self.count.load(Ordering::Relaxed) + n;
        for i in 0..n {
            loop {
                match to.do_send(Note(i)) {
                    Ok(()) => break,
                    Err(RemoteError::Overloaded) => tokio::task::yield_now().await,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        wait_count(&self.count, target).await;
    }

    async fn request(&self, v: u64) -> u64 {
        let to: RemoteAddr<Ping> = RemoteAddr::new(&self.n1, 2, "sink");
        to.send(Ping(v)).await.unwrap()
    }
}

/// Allocations made, and the change in live heap bytes, while `f` runs to completion (every
/// thread: the nodes' tasks are counted too, heartbeats included).
async fn count_async<T>(f: impl std::future::Future<Output = T>) -> (T, u64, i64) {
    let before = counting::start();
    let out = f.await;
    let (a, l) = counting::stop(before);
    (out, a, l)
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    // Clock state first, while no other thread allocates.
    let clock_state: Vec<_> = [16, 256].map(|n| (n, clock_state_bytes(n))).into();
    let sys = actix::System::new();
    let ca = DevCa::new().unwrap();
    let nodes = sys.block_on(node_pair(Mode::Secret));
    let tls_nodes = sys.block_on(node_pair(Mode::Tls(&ca)));
    let mut raw = sys.block_on(raw_pair(None, RawSink::Count));
    let mut raw_tls = sys.block_on(raw_pair(Some(&ca), RawSink::Count));
    let mut raw_tls_actor = sys.block_on(raw_pair(Some(&ca), RawSink::Actor));
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));

    let mut g = c.benchmark_group("one-way");
    g.throughput(Throughput::Elements(BATCH));
    for (name, r) in [
        ("raw tcp+bincode", &mut raw),
        ("raw tls+bincode", &mut raw_tls),
        ("raw tls+bincode into an actix actor", &mut raw_tls_actor),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        r.one_way(BATCH).await;
                    }
                    t.elapsed()
                })
            })
        });
    }
    for (name, n) in [
        ("node with clocks (secret: noise)", &nodes),
        ("node with clocks (mutual tls)", &tls_nodes),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        n.one_way(BATCH).await;
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("request-reply");
    for (name, r) in [
        ("raw tcp+bincode", &mut raw),
        ("raw tls+bincode", &mut raw_tls),
        ("raw tls+bincode into an actix actor", &mut raw_tls_actor),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let t = Instant::now();
                    for i in 0..iters {
                        assert_eq!(r.request(i).await, i + 1);
                    }
                    t.elapsed()
                })
            })
        });
    }
    for (name, n) in [
        ("node with clocks (secret: noise)", &nodes),
        ("node with clocks (mutual tls)", &tls_nodes),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let t = Instant::now();
                    for i in 0..iters {
                        assert_eq!(n.request(i).await, i + 1);
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();

    // `NET_BENCH_SUMMARY=0` skips the rest (e.g. to profile one benchmark alone).
    if std::env::var("NET_BENCH_SUMMARY").is_ok_and(|v| v == "0") {
        c.final_summary();
        return;
    }
    // Latency percentiles, and a direct throughput ratio measured back to back.
    println!("\nsummary (same run):");
    for (label, r, n) in [
        ("secret (noise) vs raw tcp", &mut raw, &nodes),
        ("mutual tls vs raw tls", &mut raw_tls, &tls_nodes),
        (
            "mutual tls vs raw tls into an actix actor",
            &mut raw_tls_actor,
            &tls_nodes,
        ),
    ] {
        let (raw_lat, node_lat, raw_rate, node_rate) = sys.block_on(async {
            let mut rl = Vec::with_capacity(5000);
            let mut nl = Vec::with_capacity(5000);
            for i in 0..5000 {
                let t = Instant::now();
                r.request(i).await;
                rl.push(t.elapsed());
                let t = Instant::now();
                n.request(i).await;
                nl.push(t.elapsed());
            }
            let msgs = 50 * BATCH;
            let t = Instant::now();
            for _ in 0..50 {
                r.one_way(BATCH).await;
            }
            let raw_rate = msgs as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..50 {
                n.one_way(BATCH).await;
            }
            let node_rate = msgs as f64 / t.elapsed().as_secs_f64();
            (percentiles(rl), percentiles(nl), raw_rate, node_rate)
        });
        println!("  {label}:");
        println!(
            "    one-way: raw {raw_rate:.0} msgs/s, node {node_rate:.0} msgs/s, ratio {:.2}",
            node_rate / raw_rate
        );
        println!(
            "    request-reply p50/p99: raw {:?}/{:?}, node {:?}/{:?} (ratios {:.2}/{:.2})",
            raw_lat.0,
            raw_lat.1,
            node_lat.0,
            node_lat.1,
            node_lat.0.as_secs_f64() / raw_lat.0.as_secs_f64(),
            node_lat.1.as_secs_f64() / raw_lat.1.as_secs_f64(),
        );
    }
    println!("  allocations (counting allocator, every thread):");
    for (label, r, n) in [
        ("secret (noise) vs raw tcp", &mut raw, &nodes),
        ("mutual tls vs raw tls", &mut raw_tls, &tls_nodes),
    ] {
        const TELLS: u64 = 20 * BATCH;
        const REQUESTS: u64 = 2000;
        let (raw_tell, node_tell, raw_rr, node_rr) = sys.block_on(async {
            let ((), raw_tell, _) = count_async(async {
                for _ in 0..TELLS / BATCH {
                    r.one_way(BATCH).await;
                }
            })
            .await;
            let ((), node_tell, _) = count_async(async {
                for _ in 0..TELLS / BATCH {
                    n.one_way(BATCH).await;
                }
            })
            .await;
            let ((), raw_rr, _) = count_async(async {
                for i in 0..REQUESTS {
                    r.request(i).await;
                }
            })
            .await;
            let ((), node_rr, _) = count_async(async {
                for i in 0..REQUESTS {
                    n.request(i).await;
                }
            })
            .await;
            (raw_tell, node_tell, raw_rr, node_rr)
        });
        let per = |a: u64, k: u64| a as f64 / k as f64;
        println!(
            "    {label}: per tell raw {:.2}, node {:.2}; per round trip raw {:.2}, node {:.2}",
            per(raw_tell, TELLS),
            per(node_tell, TELLS),
            per(raw_rr, REQUESTS),
            per(node_rr, REQUESTS)
        );
    }
    println!("  clock state per process (bytes):");
    for (n, (inline, vector, encoder)) in &clock_state {
        println!(
            "    {n} known processes: clocks {inline} inline + vector {vector} on the heap; one connection's encoder keeps {encoder} for it"
        );
    }
    let parts = sys.block_on(breakdown());
    println!("  per-message cost of the parts, measured alone (ns):");
    for (what, ns) in parts {
        println!("    {what:<58} {ns:>8.0}");
    }
    c.final_summary();
}

/// A plain actix actor, to price actor delivery without clocks.
struct PlainSink(Arc<AtomicU64>);
impl Actor for PlainSink {
    type Context = Context<Self>;
}
impl Handler<Note> for PlainSink {
    type Result = ();
    fn handle(&mut self, _: Note, _: &mut Self::Context) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
impl Handler<Ping> for PlainSink {
    type Result = u64;
    fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
        m.0 + 1
    }
}

/// Prices the parts of the node path one at a time.
async fn breakdown() -> Vec<(&'static str, f64)> {
    use actix_coord::intercept;
    use actix_coord::net::wire::{Body, Frame, VectorDecoder, VectorEncoder};
    const N: u64 = 200_000;
    let per = |t: Instant| t.elapsed().as_nanos() as f64 / N as f64;
    let mut out = Vec::new();

    let t = Instant::now();
    for _ in 0..N {
        let s = intercept::stamp_send("");
        std::hint::black_box(intercept::receive_stamp(&s, "")).ok();
    }
    out.push(("clocks: send stamp + merge at receive", per(t)));

    // The sending half alone (the receiving half is in the causal delivery below).
    let t = Instant::now();
    for _ in 0..N {
        std::hint::black_box(intercept::stamp_send(""));
    }
    out.push(("clocks: send stamp alone", per(t)));

    let mut enc = VectorEncoder::new(false);
    let mut dec = VectorDecoder::new();
    let stamp = intercept::stamp_send("");
    let t = Instant::now();
    for i in 0..N {
        let w = enc.encode(&stamp, &|_| Some(Arc::from("name")));
        let f = Frame {
            seq: i + 1,
            body: Body::Message {
                request: false,
                corr: 0,
                target: "sink".into(),
                tag: <Note as actix_coord::net::RemoteMessage>::TAG_ID,
                stamp: w,
                payload: Bytes::from(wire::encode_payload(&Note(i)).unwrap()),
            },
        };
        let b = Bytes::from(f.encode());
        if let Ok(Frame {
            body: Body::Message { stamp, payload, .. },
            ..
        }) = Frame::decode(&b)
        {
            std::hint::black_box(dec.decode(&stamp)).ok();
            std::hint::black_box(wire::decode_payload::<Note>(&payload)).ok();
        }
    }
    out.push(("wire: stamp + frame + payload, encode and decode", per(t)));

    // A hop to a waiting task, as a frame's hop to its connection's writer task: a bounded
    // channel's send, the task's wake-up and poll on the runtime, its receive. Between two
    // runtime tasks, and between the `block_on` future (where actix polls its actors) and a
    // task and back, which adds the runtime's non-blocking driver poll on the way back.
    let (tx1, mut rx1) = tokio::sync::mpsc::channel::<u64>(64);
    let (tx2, mut rx2) = tokio::sync::mpsc::channel::<u64>(64);
    let echo = tokio::spawn(async move {
        while let Some(i) = rx1.recv().await {
            if tx2.send(i).await.is_err() {
                break;
            }
        }
    });
    let ping = tokio::spawn(async move {
        let t = Instant::now();
        for i in 0..N {
            tx1.send(i).await.unwrap();
            std::hint::black_box(rx2.recv().await);
        }
        let hop = t.elapsed().as_nanos() as f64 / (2 * N) as f64;
        (hop, tx1, rx2)
    });
    let (hop, tx1, mut rx2) = ping.await.unwrap();
    out.push(("a task hop, between two runtime tasks", hop));
    let t = Instant::now();
    for i in 0..N {
        tx1.send(i).await.unwrap();
        std::hint::black_box(rx2.recv().await);
    }
    let hop = t.elapsed().as_nanos() as f64 / (2 * N) as f64;
    drop(tx1);
    let _ = echo.await;
    out.push(("a task hop, block_on future to a task and back (mean)", hop));

    let count = Arc::new(AtomicU64::new(0));
    let plain = PlainSink(count.clone()).start();
    let t = Instant::now();
    for i in 0..N {
        plain.do_send(Note(i));
        if i % 1000 == 999 {
            wait_count(&count, i + 1).await;
        }
    }
    wait_count(&count, N).await;
    out.push(("delivery to a plain actix actor (do_send)", per(t)));

    let count = Arc::new(AtomicU64::new(0));
    let causal = CausalContext::start(Sink(count.clone()));
    let t = Instant::now();
    for i in 0..N {
        intercept::deliver(&causal, Note(i), stamp.clone());
        if i % 1000 == 999 {
            wait_count(&count, i + 1).await;
        }
    }
    wait_count(&count, N).await;
    out.push((
        "delivery to a causal actor with a remote stamp (deliver)",
        per(t),
    ));
    out
}
