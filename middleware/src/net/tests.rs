//! Node-level tests on loopback: connections, authentication, bad input, failure detection,
//! remote causality. Waits are deadlines on events, never fixed sleeps.

use super::secure::{self, Security};
use super::transport::BoxStream;
use super::wire::{self, Body, FailCode, Frame, Handshake, WireStamp, WireVector};
use super::*;
use crate::clock::{HlcTimestamp, ProcessId, VectorClock};
use crate::intercept::{CausalBuilder, CausalContext};
use crate::{remote_actor, remote_message};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const SECRET: &str = "test secret";
const DEADLINE: Duration = Duration::from_secs(5);

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "u64")]
struct Ping(u64);

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Note(u64);

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "(ProcessId, VectorClock)")]
struct GetClocks;

#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct NotAccepted;

remote_message!(Ping, Note, GetClocks, NotAccepted);

#[derive(Default)]
struct Echo {
    seen: Arc<AtomicU64>,
}
impl Actor for Echo {
    type Context = CausalContext<Self>;
}
impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
        self.seen.fetch_add(1, Ordering::SeqCst);
        m.0 + 1
    }
}
impl Handler<Note> for Echo {
    type Result = ();
    fn handle(&mut self, _: Note, _: &mut Self::Context) {
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}
impl Handler<GetClocks> for Echo {
    type Result = MessageResult<GetClocks>;
    fn handle(&mut self, _: GetClocks, ctx: &mut Self::Context) -> Self::Result {
        let c = ctx.clocks();
        MessageResult((c.process, c.vector))
    }
}
remote_actor!(Echo: Ping, Note, GetClocks);

/// A node of the tests' cluster: members 1..=9 (9 is the raw peer's id), the shared secret.
fn builder(id: NodeId, listen: &str) -> NodeBuilder {
    let mut b = Node::builder()
        .id(id)
        .listen(listen)
        .secret(SECRET)
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    for m in (1..=9).filter(|&m| m != id) {
        b = b.member(m);
    }
    b
}

async fn event(
    rx: &mut broadcast::Receiver<NodeEvent>,
    pred: impl Fn(&NodeEvent) -> bool,
) -> NodeEvent {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    })
    .await
    .expect("event within the deadline")
}

/// Polls `f` until it holds, failing after the deadline.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + DEADLINE;
    while !f() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn up(n: NodeId) -> impl Fn(&NodeEvent) -> bool {
    move |e| matches!(e, NodeEvent::MemberUp { node } if *node == n)
}

fn down(n: NodeId) -> impl Fn(&NodeEvent) -> bool {
    move |e| matches!(e, NodeEvent::MemberDown { node, .. } if *node == n)
}

/// Two connected nodes; node 2 hosts an `Echo` named "echo".
async fn pair() -> (Node, Node, Arc<AtomicU64>) {
    let n2 = builder(2, "127.0.0.1:0").start().await.unwrap();
    let mut ev2 = n2.subscribe();
    let n1 = builder(1, "127.0.0.1:0")
        .peer(2, n2.local_addr())
        .start()
        .await
        .unwrap();
    let echo = Echo::default();
    let seen = echo.seen.clone();
    n2.register("echo", CausalBuilder::default().node(2).start(echo))
        .unwrap();
    event(&mut ev2, up(1)).await;
    eventually("node 1 sees node 2", || n1.is_up(2)).await;
    (n1, n2, seen)
}

// ---------------------------------------------------------------------------------------------
// A raw peer speaking the protocol by hand, to send what a real node never would.

type Raw = Framed<BoxStream, LengthDelimitedCodec>;

/// Dials `addr` and runs the Noise handshake with `secret` as the initiator; `None` when the
/// node refused it.
async fn raw_secure(addr: &str, cap: usize, secret: &str) -> Option<Raw> {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let Security::Psk(psk) = Security::psk(secret.as_bytes()) else {
        unreachable!()
    };
    let stream: BoxStream = Box::new(secure::noise_dial(Box::new(s), &psk).await.ok()?);
    Some(Framed::new(
        stream,
        LengthDelimitedCodec::builder()
            .max_frame_length(cap)
            .new_codec(),
    ))
}

/// A raw connection secured with the cluster secret.
async fn raw_connect(addr: &str, cap: usize) -> Raw {
    raw_secure(addr, cap, SECRET)
        .await
        .expect("the node runs the Noise handshake")
}

/// Runs the dialer side of the node handshake as node `me`; returns whether the node welcomed
/// it.
async fn raw_handshake(raw: &mut Raw, me: NodeId) -> bool {
    let hello = Handshake::Hello {
        version: wire::PROTOCOL_VERSION,
        node: me,
        incarnation: 1,
    };
    if raw.send(Bytes::from(hello.encode())).await.is_err() {
        return false;
    }
    let Some(Ok(b)) = raw.next().await else {
        return false;
    };
    if !matches!(Handshake::decode(&b), Ok(Handshake::Hello { .. })) {
        return false;
    }
    matches!(
        raw.next().await,
        Some(Ok(b)) if Handshake::decode(&b) == Ok(Handshake::Welcome { accepted: true })
    )
}

fn raw_stamp(from: ProcessId, hlc_ms: u64) -> WireStamp {
    WireStamp {
        from,
        lamport: 1,
        vector: WireVector::Full(VectorClock::from_entries([(from, 1)]).unwrap()),
        hlc: Some(HlcTimestamp::new(hlc_ms, 0)),
        reset: false,
        names: vec![],
    }
}

fn raw_request(
    seq: u64,
    corr: u64,
    target: &str,
    tag: u64,
    payload: Vec<u8>,
    hlc_ms: u64,
) -> Bytes {
    Bytes::from(
        Frame {
            seq,
            body: Body::Message {
                request: true,
                corr,
                target: target.into(),
                tag,
                stamp: raw_stamp(ProcessId::new(9, 1), hlc_ms),
                payload: Bytes::from(payload),
            },
        }
        .encode(),
    )
}

/// Reads frames until a fail (or reply) for `corr`; heartbeats are skipped.
async fn raw_answer(raw: &mut Raw, corr: u64) -> Body {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let b = raw.next().await.expect("open").expect("frame");
            let f = Frame::decode(&b.freeze()).unwrap();
            match f.body {
                Body::Fail { corr: c, .. } | Body::Reply { corr: c, .. } if c == corr => {
                    return f.body;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("answer within the deadline")
}

/// Whether the node closed the raw connection (within the deadline).
async fn raw_closed(raw: &mut Raw) -> bool {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match raw.next().await {
                None | Some(Err(_)) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

async fn still_serves(n1: &Node) {
    let r: RemoteAddr<Ping> = RemoteAddr::new(n1, 2, "echo");
    assert_eq!(r.send(Ping(1)).await, Ok(2));
}

// ---------------------------------------------------------------------------------------------

/// A tell that reaches a node before its target actor is registered waits for it during the
/// registration grace (the peer started first); with the grace off it is dropped and counted.
#[actix_rt::test]
async fn tells_wait_for_a_late_registration_within_the_grace() {
    for grace in [DEFAULT_REGISTRATION_GRACE, Duration::ZERO] {
        let n2 = builder(2, "127.0.0.1:0")
            .registration_grace(grace)
            .start()
            .await
            .unwrap();
        let n1 = builder(1, "127.0.0.1:0")
            .peer(2, n2.local_addr())
            .start()
            .await
            .unwrap();
        eventually("connected", || n1.is_up(2) && n2.is_up(1)).await;
        let late: RemoteAddr<Note> = RemoteAddr::new(&n1, 2, "late");
        for i in 0..3 {
            late.do_send(Note(i)).unwrap();
        }
        // A request sent after the tells is read after them (one connection, in order).
        let echo = Echo::default();
        let seen = echo.seen.clone();
        if grace.is_zero() {
            eventually("tells dropped", || n2.stats().unknown_actor == 3).await;
            n2.register("late", CausalBuilder::default().node(2).start(echo))
                .unwrap();
            let r: RemoteAddr<Ping> = RemoteAddr::new(&n1, 2, "late");
            assert_eq!(r.send(Ping(1)).await, Ok(2));
            assert_eq!(seen.load(Ordering::SeqCst), 1, "only the request");
        } else {
            eventually("the first tell waits", || {
                n2.stats().registration_waits == 1
            })
            .await;
            n2.register("late", CausalBuilder::default().node(2).start(echo))
                .unwrap();
            let r: RemoteAddr<Ping> = RemoteAddr::new(&n1, 2, "late");
            assert_eq!(r.send(Ping(1)).await, Ok(2));
            assert_eq!(seen.load(Ordering::SeqCst), 4, "3 tells, then the request");
            assert_eq!(n2.stats().unknown_actor, 0);
        }
        n1.shutdown();
        n2.shutdown();
    }
}

#[actix_rt::test]
async fn request_reply_and_tell_between_two_nodes() {
    let (n1, n2, seen) = pair().await;
    let r: RemoteAddr<Ping> = RemoteAddr::new(&n1, 2, "echo");
    for i in 0..20 {
        assert_eq!(r.send(Ping(i)).await, Ok(i + 1));
    }
    let t: RemoteAddr<Note> = RemoteAddr::new(&n1, 2, "echo");
    t.do_send(Note(1)).unwrap();
    eventually("tell delivered", || seen.load(Ordering::SeqCst) == 21).await;
    // Typed errors for unknown actors and types.
    let nobody: RemoteAddr<Ping> = RemoteAddr::new(&n1, 2, "nobody");
    assert_eq!(
        nobody.send(Ping(0)).await,
        Err(RemoteError::UnknownActor("nobody".into()))
    );
    let wrong: RemoteAddr<NotAccepted> = RemoteAddr::new(&n1, 2, "echo");
    assert_eq!(wrong.send(NotAccepted).await, Err(RemoteError::UnknownType));
    assert_eq!(n2.stats().unknown_actor, 1);
    assert_eq!(n2.stats().unknown_type, 1);
    // A peer nobody knows: fails fast.
    let ghost: RemoteAddr<Ping> = RemoteAddr::new(&n1, 77, "echo");
    assert_eq!(ghost.send(Ping(0)).await, Err(RemoteError::PeerDown(77)));
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn full_clocks_and_differences_interoperate() {
    let n2 = builder(2, "127.0.0.1:0").start().await.unwrap();
    n2.register(
        "echo",
        CausalBuilder::default().node(2).start(Echo::default()),
    )
    .unwrap();
    let n1 = builder(1, "127.0.0.1:0")
        .peer(2, n2.local_addr())
        .full_clocks(true)
        .start()
        .await
        .unwrap();
    eventually("up", || n1.is_up(2)).await;
    let r: RemoteAddr<GetClocks> = RemoteAddr::new(&n1, 2, "echo");
    let mut last = 0;
    for _ in 0..5 {
        let (me, v) = r.send(GetClocks).await.unwrap();
        // The responder ticks at each receive and reply.
        assert!(v.get(me) > last);
        last = v.get(me);
        assert!(v.len() >= 2, "the sender's entries travel: {v}");
    }
    n1.shutdown();
    n2.shutdown();
}

/// A mailbox of one and a handler that holds it 1 ms per message: tells from a fast sender
/// wait at the connection (backpressure), arrive all and in order, and the mailbox stays bounded.
#[actix_rt::test]
async fn tells_to_a_full_mailbox_hold_the_connection_instead_of_growing_it() {
    #[derive(Message, Serialize, Deserialize)]
    #[rtype(result = "()")]
    struct Item(u64);
    remote_message!(Item);
    struct Slow(Arc<std::sync::Mutex<Vec<u64>>>);
    impl Actor for Slow {
        type Context = CausalContext<Self>;
    }
    impl Handler<Item> for Slow {
        type Result = ();
        fn handle(&mut self, m: Item, ctx: &mut Self::Context) {
            self.0.lock().unwrap().push(m.0);
            ctx.wait(actix::fut::wrap_future(tokio::time::sleep(
                Duration::from_millis(1),
            )));
        }
    }
    remote_actor!(Slow: Item);
    let (n1, n2, _) = pair().await;
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let slow = CausalBuilder::default()
        .mailbox_capacity(1)
        .start(Slow(got.clone()));
    n2.register("slow", slow).unwrap();
    let r: RemoteAddr<Item> = RemoteAddr::new(&n1, 2, "slow");
    for i in 0..200 {
        r.do_send(Item(i)).unwrap();
    }
    eventually("all delivered", || got.lock().unwrap().len() == 200).await;
    assert_eq!(*got.lock().unwrap(), (0..200).collect::<Vec<_>>());
    assert!(n2.stats().backpressure_waits > 0);
    still_serves(&n1).await;
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn both_dialing_leaves_one_connection_that_both_agree_on() {
    let n1 = builder(1, "127.0.0.1:0").start().await.unwrap();
    let n2 = builder(2, "127.0.0.1:0")
        .peer(1, n1.local_addr())
        .start()
        .await
        .unwrap();
    n1.add_peer(2, n2.local_addr());
    n2.register(
        "echo",
        CausalBuilder::default().node(2).start(Echo::default()),
    )
    .unwrap();
    eventually("both up", || n1.is_up(2) && n2.is_up(1)).await;
    // Both sides keep the same connection: dialed by node 1 (the lower id), or the only one.
    let d1 = n1.link_dialer(2);
    eventually("same link on both sides", || n2.link_dialer(1) == d1).await;
    still_serves(&n1).await;
    assert_eq!(n1.link_dialer(2), n2.link_dialer(1));
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn a_peer_with_the_wrong_secret_is_refused_and_reaches_no_actor() {
    let (n1, n2, seen) = pair().await;
    // A whole node with the wrong secret.
    let bad = Node::builder()
        .id(3)
        .secret("wrong")
        .peer(2, n2.local_addr())
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    eventually("refused twice", || n2.stats().auth_failures >= 2).await;
    assert!(!n2.is_up(3) && !bad.is_up(2));
    // By hand: the Noise handshake with the wrong key is refused.
    let before = n2.stats().auth_failures;
    assert!(
        raw_secure(n2.local_addr(), 1 << 20, "wrong")
            .await
            .is_none()
    );
    eventually("counted", || n2.stats().auth_failures > before).await;
    still_serves(&n1).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1, "only the good peer's ping");
    bad.shutdown();
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn garbage_and_truncated_handshakes_are_counted_and_the_node_serves_others() {
    let (n1, n2, _) = pair().await;
    use tokio::io::AsyncWriteExt;
    // Garbage bytes (a length prefix far above the handshake cap).
    let mut s = tokio::net::TcpStream::connect(n2.local_addr())
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    eventually("garbage counted", || n2.stats().handshake_failures >= 1).await;
    // A truncated frame: a length of 40, then 3 bytes, then close.
    let mut s = tokio::net::TcpStream::connect(n2.local_addr())
        .await
        .unwrap();
    s.write_all(&[0, 0, 0, 40, 1, 2, 3]).await.unwrap();
    drop(s);
    eventually("truncated counted", || n2.stats().handshake_failures >= 2).await;
    // A well-framed but undecodable hello, inside a secured connection.
    let mut raw = raw_connect(n2.local_addr(), 1024).await;
    raw.send(Bytes::from_static(b"\x01NOPE")).await.unwrap();
    assert!(raw_closed(&mut raw).await);
    eventually("bad hello counted", || n2.stats().handshake_failures >= 3).await;
    // Another protocol version is refused.
    let failures = n2.stats().handshake_failures;
    let mut raw = raw_connect(n2.local_addr(), 1024).await;
    let hello = Handshake::Hello {
        version: wire::PROTOCOL_VERSION + 1,
        node: 9,
        incarnation: 1,
    };
    raw.send(Bytes::from(hello.encode())).await.unwrap();
    assert!(raw_closed(&mut raw).await);
    eventually("version counted", || {
        n2.stats().handshake_failures > failures
    })
    .await;
    still_serves(&n1).await;
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn a_request_without_reply_times_out_with_a_typed_error() {
    #[derive(Message, Serialize, Deserialize)]
    #[rtype(result = "u64")]
    struct Never;
    remote_message!(Never);
    struct Mute;
    impl Actor for Mute {
        type Context = CausalContext<Self>;
    }
    impl Handler<Never> for Mute {
        type Result = ResponseFuture<u64>;
        fn handle(&mut self, _: Never, _: &mut Self::Context) -> Self::Result {
            Box::pin(std::future::pending())
        }
    }
    remote_actor!(Mute: Never);
    let (n1, n2, _) = pair().await;
    n2.register("mute", CausalContext::start(Mute)).unwrap();
    let r: RemoteAddr<Never> =
        RemoteAddr::new(&n1, 2, "mute").with_timeout(Duration::from_millis(100));
    let t0 = std::time::Instant::now();
    assert_eq!(r.send(Never).await, Err(RemoteError::Timeout));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    still_serves(&n1).await;
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn a_request_its_actor_drops_unanswered_fails_at_once_with_a_typed_error() {
    #[derive(Message, Serialize, Deserialize)]
    #[rtype(result = "u64")]
    struct Quit;
    remote_message!(Quit);
    struct Quitter;
    impl Actor for Quitter {
        type Context = CausalContext<Self>;
    }
    impl Handler<Quit> for Quitter {
        type Result = ResponseActFuture<Self, u64>;
        fn handle(&mut self, _: Quit, ctx: &mut Self::Context) -> Self::Result {
            // The actor stops with the response pending: the response is dropped unanswered.
            ctx.stop();
            Box::pin(actix::fut::wrap_future(std::future::pending()))
        }
    }
    remote_actor!(Quitter: Quit);
    let (n1, n2, _) = pair().await;
    n2.register("quitter", CausalContext::start(Quitter))
        .unwrap();
    let r: RemoteAddr<Quit> = RemoteAddr::new(&n1, 2, "quitter").with_timeout(DEADLINE);
    let t0 = std::time::Instant::now();
    // The requester learns at once (not at its timeout) that the request went unanswered.
    assert_eq!(r.send(Quit).await, Err(RemoteError::Mailbox));
    assert!(t0.elapsed() < DEADLINE);
    still_serves(&n1).await;
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn bad_frames_after_authentication_are_typed_counted_and_dropped() {
    let (n1, n2, seen) = pair().await;
    let mut raw = raw_connect(n2.local_addr(), 16 << 20).await;
    assert!(raw_handshake(&mut raw, 9).await);
    let now = crate::intercept::physical_now_ms();
    let tag = <Ping as RemoteMessage>::TAG_ID;
    let good = wire::encode_payload(&Ping(1)).unwrap();
    // Unknown tag.
    raw.send(raw_request(1, 1, "echo", 12345, good.clone(), now))
        .await
        .unwrap();
    assert_eq!(
        raw_answer(&mut raw, 1).await,
        Body::Fail {
            corr: 1,
            code: FailCode::UnknownType
        }
    );
    // Unknown actor.
    raw.send(raw_request(2, 2, "ghost", tag, good.clone(), now))
        .await
        .unwrap();
    assert_eq!(
        raw_answer(&mut raw, 2).await,
        Body::Fail {
            corr: 2,
            code: FailCode::UnknownActor
        }
    );
    // Undecodable payload.
    raw.send(raw_request(3, 3, "echo", tag, vec![0xff; 3], now))
        .await
        .unwrap();
    assert_eq!(
        raw_answer(&mut raw, 3).await,
        Body::Fail {
            corr: 3,
            code: FailCode::Decode
        }
    );
    // HLC an hour ahead: served, with the HLC ignored (the local HLC does not jump an hour;
    // the message, which may be a lock release or a clock correction, is not lost).
    let seen_before = seen.load(Ordering::SeqCst);
    raw.send(raw_request(
        4,
        4,
        "echo",
        tag,
        good.clone(),
        now + 3_600_000,
    ))
    .await
    .unwrap();
    match raw_answer(&mut raw, 4).await {
        Body::Reply { corr: 4, stamp, .. } => {
            let hlc = stamp.hlc.expect("the echo keeps an HLC");
            assert!(
                hlc.physical_ms() < now + 60_000,
                "the reply's HLC jumped: {hlc:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), seen_before + 1, "delivered");
    // A good one still works on the same connection.
    raw.send(raw_request(5, 5, "echo", tag, good.clone(), now))
        .await
        .unwrap();
    assert!(matches!(
        raw_answer(&mut raw, 5).await,
        Body::Reply { corr: 5, .. }
    ));
    let s = n2.stats();
    assert_eq!(
        (s.unknown_type, s.unknown_actor, s.clock_rejected),
        (1, 1, 1)
    );
    assert!(s.decode_errors >= 1);
    // The far-ahead one and the good one.
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    // A frame of cap + 1 bytes closes the connection.
    let cap = wire::DEFAULT_MAX_FRAME;
    // (The node may close before the whole frame is written.)
    let _ = raw.send(Bytes::from(vec![0u8; cap + 1])).await;
    assert!(raw_closed(&mut raw).await);
    eventually("oversized counted", || n2.stats().oversized_frames == 1).await;

    // An undecodable frame header closes the connection too.
    let mut raw = raw_connect(n2.local_addr(), 1 << 20).await;
    assert!(raw_handshake(&mut raw, 9).await);
    raw.send(Bytes::from_static(&[42, 1])).await.unwrap();
    assert!(raw_closed(&mut raw).await);

    // An absurd Lamport time: a decode error, counted, and the connection closed.
    let mut raw = raw_connect(n2.local_addr(), 1 << 20).await;
    assert!(raw_handshake(&mut raw, 9).await);
    let errors = n2.stats().decode_errors;
    let mut f = Frame::decode(&raw_request(1, 1, "echo", tag, good.clone(), now)).unwrap();
    if let Body::Message { stamp, .. } = &mut f.body {
        stamp.lamport = crate::clock::MAX_COUNTER + 1;
    }
    raw.send(Bytes::from(f.encode())).await.unwrap();
    assert!(raw_closed(&mut raw).await);
    eventually("absurd counter counted", || {
        n2.stats().decode_errors > errors
    })
    .await;

    // A truncated frame after authentication: the connection ends, nothing is delivered.
    let mut raw = raw_connect(n2.local_addr(), 1 << 20).await;
    assert!(raw_handshake(&mut raw, 9).await);
    let mut inner = raw.into_inner();
    use tokio::io::AsyncWriteExt;
    inner.write_all(&[0, 0, 1, 0, 2, 1]).await.unwrap();
    drop(inner);
    still_serves(&n1).await;
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn a_sequence_gap_is_handled_as_a_restart() {
    let (n1, n2, _) = pair().await;
    let mut ev = n2.subscribe();
    let mut raw = raw_connect(n2.local_addr(), 1 << 20).await;
    assert!(raw_handshake(&mut raw, 9).await);
    event(&mut ev, up(9)).await;
    let hb = |seq| {
        Bytes::from(
            Frame {
                seq,
                body: Body::Heartbeat,
            }
            .encode(),
        )
    };
    raw.send(hb(1)).await.unwrap();
    raw.send(hb(3)).await.unwrap();
    let e = event(&mut ev, down(9)).await;
    assert_eq!(
        e,
        NodeEvent::MemberDown {
            node: 9,
            reason: DownReason::SequenceGap
        }
    );
    assert_eq!(n2.stats().sequence_gaps, 1);
    still_serves(&n1).await;
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn a_silent_peer_is_declared_down_within_the_timeout() {
    let (n1, n2, _) = pair().await;
    let mut ev = n2.subscribe();
    let mut raw = raw_connect(n2.local_addr(), 1 << 20).await;
    assert!(raw_handshake(&mut raw, 9).await);
    event(&mut ev, up(9)).await;
    let t0 = tokio::time::Instant::now();
    // The raw peer never sends a heartbeat.
    let e = event(&mut ev, down(9)).await;
    let took = t0.elapsed();
    assert_eq!(
        e,
        NodeEvent::MemberDown {
            node: 9,
            reason: DownReason::Timeout
        }
    );
    // The timeout is 1 s after the last frame; allow scheduling slack on a loaded machine.
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    let to9: RemoteAddr<Ping> = RemoteAddr::new(&n2, 9, "x");
    assert_eq!(to9.send(Ping(0)).await, Err(RemoteError::PeerDown(9)));
    drop(raw);
    n1.shutdown();
    n2.shutdown();
}

#[actix_rt::test]
async fn crash_fails_fast_and_restart_brings_member_up_and_traffic_back() {
    let n2 = builder(2, "127.0.0.1:0").start().await.unwrap();
    n2.register(
        "echo",
        CausalBuilder::default().node(2).start(Echo::default()),
    )
    .unwrap();
    let n1 = builder(1, "127.0.0.1:0")
        .peer(2, n2.local_addr())
        .start()
        .await
        .unwrap();
    let mut ev = n1.subscribe();
    event(&mut ev, up(2)).await;
    still_serves(&n1).await;
    // A request in flight when the peer dies fails with PeerDown, not a timeout.
    n2.unregister("echo");
    n2.shutdown();
    event(&mut ev, down(2)).await;
    let r: RemoteAddr<Ping> = RemoteAddr::new(&n1, 2, "echo");
    let t0 = std::time::Instant::now();
    assert_eq!(r.send(Ping(0)).await, Err(RemoteError::PeerDown(2)));
    assert_eq!(r.clone().do_send(Ping(0)), Err(RemoteError::PeerDown(2)));
    assert!(t0.elapsed() < Duration::from_millis(50));
    // Restart on a new port (a new incarnation, so MemberUp again): it dials node 1.
    let n2b = builder(2, "127.0.0.1:0")
        .peer(1, n1.local_addr())
        .start()
        .await
        .unwrap();
    n2b.register(
        "echo",
        CausalBuilder::default().node(2).start(Echo::default()),
    )
    .unwrap();
    event(&mut ev, up(2)).await;
    still_serves(&n1).await;
    n1.shutdown();
    n2b.shutdown();
}

/// A on node 1 asks B on node 2; B replies; A then sends to C (node 1): B's reply event
/// happened before C's receive — remote causality is the same as local.
#[actix_rt::test]
async fn remote_reply_carries_the_responders_clock_to_the_requester() {
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Go;

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Record;

    struct A {
        b: RemoteAddr<GetClocks>,
        c: Addr<C>,
        b_seen: Arc<std::sync::Mutex<Option<(ProcessId, VectorClock)>>>,
    }
    impl Actor for A {
        type Context = CausalContext<Self>;
    }
    impl Handler<Go> for A {
        type Result = ResponseActFuture<Self, ()>;
        fn handle(&mut self, _: Go, _: &mut Self::Context) -> Self::Result {
            let f = self.b.send(GetClocks);
            Box::pin(actix::fut::wrap_future(f).map(|r, act: &mut A, _| {
                *act.b_seen.lock().unwrap() = Some(r.unwrap());
                act.c.do_send(Record);
            }))
        }
    }
    struct C {
        at: Arc<std::sync::Mutex<Option<VectorClock>>>,
    }
    impl Actor for C {
        type Context = CausalContext<Self>;
    }
    impl Handler<Record> for C {
        type Result = ();
        fn handle(&mut self, _: Record, ctx: &mut Self::Context) {
            *self.at.lock().unwrap() = Some(ctx.clocks().vector);
        }
    }

    let (n1, _n2, _) = pair().await;
    let b_seen = Arc::new(std::sync::Mutex::new(None));
    let c_at = Arc::new(std::sync::Mutex::new(None));
    let c = CausalBuilder::default()
        .node(1)
        .start(C { at: c_at.clone() });
    let a = CausalBuilder::default().node(1).start(A {
        b: RemoteAddr::new(&n1, 2, "echo"),
        c,
        b_seen: b_seen.clone(),
    });
    a.send(Go).await.unwrap();
    eventually("C received", || c_at.lock().unwrap().is_some()).await;
    let (b_id, b_at_handler) = b_seen.lock().unwrap().clone().unwrap();
    let c_vec = c_at.lock().unwrap().clone().unwrap();
    // B's reply is its next event after the handler ran.
    let b_reply_event = b_at_handler.get(b_id) + 1;
    assert!(
        c_vec.get(b_id) >= b_reply_event,
        "C's receive must know B's reply: {c_vec} vs {b_id}:{b_reply_event}"
    );
    assert!(b_at_handler.happened_before(&c_vec));
    n1.shutdown();
}

// ---------------------------------------------------------------------------------------------
// The transport's security (mutual TLS, Noise), identity on every frame, bounds.

/// Which security mode a test runs in.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Secret,
    Tls,
}

/// A node of the security tests: members 1..=3, in `mode` (TLS identities from `ca`).
fn secured(id: NodeId, mode: Mode, ca: &super::DevCa) -> NodeBuilder {
    let mut b = Node::builder()
        .id(id)
        .listen("127.0.0.1:0")
        .backoff(Duration::from_millis(20), Duration::from_millis(100));
    b = match mode {
        Mode::Secret => b.secret(SECRET),
        Mode::Tls => b.tls(ca.node_identity(id).unwrap()),
    };
    for m in (1..=3).filter(|&m| m != id) {
        b = b.member(m);
    }
    b
}

/// Both sides of a relay's connections forward each other's bytes: a program that knows no
/// secret and holds no certificate opens one connection to each node and wires them together.
/// Both nodes are acceptors on those connections (the TLS server, the Noise responder), so each
/// waits for the other to begin: neither authenticates, both count a failed handshake, and no
/// link forms. (The hand-made HMAC handshake this replaced was symmetric and let such a relay
/// in: both nodes printed `MemberUp`.)
#[actix_rt::test]
async fn a_relay_between_two_nodes_is_refused_in_both_modes() {
    let ca = super::DevCa::new().unwrap();
    for mode in [Mode::Secret, Mode::Tls] {
        let n1 = secured(1, mode, &ca).start().await.unwrap();
        let n2 = secured(2, mode, &ca).start().await.unwrap();
        let (mut e1, mut e2) = (n1.subscribe(), n2.subscribe());
        let mut a = tokio::net::TcpStream::connect(n1.local_addr())
            .await
            .unwrap();
        let mut b = tokio::net::TcpStream::connect(n2.local_addr())
            .await
            .unwrap();
        let relay = tokio::spawn(async move {
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        eventually("both handshakes fail", || {
            n1.stats().handshake_failures >= 1 && n2.stats().handshake_failures >= 1
        })
        .await;
        assert!(
            !n1.is_up(2) && !n2.is_up(1),
            "{mode:?}: a relayed link formed"
        );
        assert!(
            e1.try_recv().is_err() && e2.try_recv().is_err(),
            "{mode:?}: an event"
        );
        relay.abort();
        n1.shutdown();
        n2.shutdown();
    }
}

/// Mutual TLS: members with certificates from the cluster CA connect and talk; a node whose
/// certificate comes from another CA is refused both ways and reaches no actor.
#[actix_rt::test]
async fn tls_members_connect_and_a_certificate_from_another_ca_is_refused() {
    let ca = super::DevCa::new().unwrap();
    let n2 = secured(2, Mode::Tls, &ca).start().await.unwrap();
    let echo = Echo::default();
    let seen = echo.seen.clone();
    n2.register("echo", CausalBuilder::default().node(2).start(echo))
        .unwrap();
    let n1 = secured(1, Mode::Tls, &ca)
        .peer(2, n2.local_addr())
        .start()
        .await
        .unwrap();
    eventually("TLS link up", || n1.is_up(2) && n2.is_up(1)).await;
    still_serves(&n1).await;
    // Node 3 with a certificate from a foreign CA (its own CA trusts only itself).
    let foreign = super::DevCa::new().unwrap();
    let bad = secured(3, Mode::Tls, &foreign)
        .peer(2, n2.local_addr())
        .start()
        .await
        .unwrap();
    eventually("refused", || n2.stats().auth_failures >= 2).await;
    assert!(!n2.is_up(3) && !bad.is_up(2));
    assert_eq!(seen.load(Ordering::SeqCst), 1, "only node 1's ping");
    bad.shutdown();
    n1.shutdown();
    n2.shutdown();
}

/// A peer with a valid certificate for node 2 that claims to be node 3 is refused: the id in
/// its `Hello` is not the one its certificate names. The other way round, a dialer that means
/// to reach node 1 refuses an acceptor whose certificate names another node.
#[actix_rt::test]
async fn a_certificate_for_node_2_cannot_claim_node_3() {
    let ca = super::DevCa::new().unwrap();
    let n1 = secured(1, Mode::Tls, &ca).start().await.unwrap();
    let impostor = Node::builder()
        .id(3)
        .listen("127.0.0.1:0")
        .tls(ca.node_identity(2).unwrap())
        .member(1)
        .peer(1, n1.local_addr())
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    eventually("identity refused", || n1.stats().identity_refused >= 1).await;
    assert!(!n1.is_up(3) && !n1.is_up(2) && !impostor.is_up(1));
    // A node 2 that dials "node 1" at the impostor's address: the impostor's certificate names
    // node 2, not node 1, so the dialer's TLS refuses it.
    let n2 = secured(2, Mode::Tls, &ca)
        .peer(1, impostor.local_addr())
        .start()
        .await
        .unwrap();
    eventually("dialer refuses", || n2.stats().auth_failures >= 1).await;
    assert!(!n2.is_up(1));
    impostor.shutdown();
    n1.shutdown();
    n2.shutdown();
}

/// An authenticated peer whose id is not a configured member is refused, unless allowed.
#[actix_rt::test]
async fn ids_that_are_not_members_are_refused_unless_allowed() {
    for allow in [false, true] {
        let n1 = Node::builder()
            .id(1)
            .secret(SECRET)
            .member(2)
            .allow_unknown_members(allow)
            .start()
            .await
            .unwrap();
        let n7 = builder(7, "127.0.0.1:0")
            .peer(1, n1.local_addr())
            .start()
            .await
            .unwrap();
        if allow {
            eventually("let in", || n1.is_up(7)).await;
        } else {
            eventually("refused", || n1.stats().not_members_refused >= 1).await;
            assert!(!n1.is_up(7));
        }
        n7.shutdown();
        n1.shutdown();
    }
}

/// A frame whose sender process is on another node than the authenticated peer is refused,
/// counted, and answered `Forbidden`; the actor never sees it, and the connection goes on.
#[actix_rt::test]
async fn a_frame_with_a_spoofed_sender_is_refused() {
    let (n1, n2, seen) = pair().await;
    let mut raw = raw_connect(n2.local_addr(), 1 << 20).await;
    assert!(raw_handshake(&mut raw, 9).await);
    let now = crate::intercept::physical_now_ms();
    let payload = wire::encode_payload(&Ping(1)).unwrap();
    let spoofed = Frame {
        seq: 1,
        body: Body::Message {
            request: true,
            corr: 1,
            target: "echo".into(),
            tag: <Ping as RemoteMessage>::TAG_ID,
            // Speaks for a process of node 1.
            stamp: raw_stamp(ProcessId::new(1, 1), now),
            payload: Bytes::from(payload.clone()),
        },
    };
    raw.send(Bytes::from(spoofed.encode())).await.unwrap();
    assert_eq!(
        raw_answer(&mut raw, 1).await,
        Body::Fail {
            corr: 1,
            code: FailCode::Forbidden
        }
    );
    assert_eq!(n2.stats().spoofed_frames, 1);
    // The same connection still serves an honest request (sender on node 9).
    raw.send(raw_request(
        2,
        2,
        "echo",
        <Ping as RemoteMessage>::TAG_ID,
        payload,
        now,
    ))
    .await
    .unwrap();
    assert!(matches!(
        raw_answer(&mut raw, 2).await,
        Body::Reply { corr: 2, .. }
    ));
    assert_eq!(seen.load(Ordering::SeqCst), 1, "only the honest ping");
    n1.shutdown();
    n2.shutdown();
}

/// A peer sends a Lamport time of 2^62 (and a vector entry of 2^62): each frame is refused at
/// decoding (a typed error, counted) and nothing is merged, so the actor keeps talking to node 1
/// with its own clocks. Before, 2^62 was accepted, merged to 2^62 + 1, and every later send of
/// the actor was refused by its peers.
#[actix_rt::test]
async fn a_huge_counter_does_not_cut_an_actor_off() {
    #[derive(Message, Serialize, Deserialize)]
    #[rtype(result = "u64")]
    struct Lamport;
    remote_message!(Lamport);
    #[derive(Default)]
    struct Clocked;
    impl Actor for Clocked {
        type Context = CausalContext<Self>;
    }
    impl Handler<Ping> for Clocked {
        type Result = u64;
        fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
            m.0 + 1
        }
    }
    impl Handler<Lamport> for Clocked {
        type Result = u64;
        fn handle(&mut self, _: Lamport, ctx: &mut Self::Context) -> u64 {
            ctx.clocks().lamport
        }
    }
    remote_actor!(Clocked: Ping, Lamport);
    let (n1, n2, _) = pair().await;
    n2.register("clocked", CausalBuilder::default().node(2).start(Clocked))
        .unwrap();
    let now = crate::intercept::physical_now_ms();
    let tag = <Ping as RemoteMessage>::TAG_ID;
    let payload = wire::encode_payload(&Ping(1)).unwrap();
    let frame = |lamport: u64, entry: u64| {
        let mut stamp = raw_stamp(ProcessId::new(9, 1), now);
        stamp.lamport = lamport;
        stamp.vector = WireVector::Full(VectorClock::from_entries([(stamp.from, entry)]).unwrap());
        Bytes::from(
            Frame {
                seq: 1,
                body: Body::Message {
                    request: false,
                    corr: 0,
                    target: "clocked".into(),
                    tag,
                    stamp,
                    payload: Bytes::from(payload.clone()),
                },
            }
            .encode(),
        )
    };
    let huge = crate::clock::MAX_COUNTER;
    for (lamport, entry) in [(huge, 1), (1, huge)] {
        let mut raw = raw_connect(n2.local_addr(), 1 << 20).await;
        assert!(raw_handshake(&mut raw, 9).await);
        let errors = n2.stats().decode_errors;
        raw.send(frame(lamport, entry)).await.unwrap();
        assert!(raw_closed(&mut raw).await);
        assert!(n2.stats().decode_errors > errors);
    }
    // The actor's clock is its own, and it keeps talking to node 1.
    let r: RemoteAddr<Lamport> = RemoteAddr::new(&n1, 2, "clocked");
    let lamport = r.send(Lamport).await.unwrap();
    assert!(lamport < 1000, "{lamport}");
    let p: RemoteAddr<Ping> = RemoteAddr::new(&n1, 2, "clocked");
    for i in 0..3 {
        assert_eq!(p.send(Ping(i)).await, Ok(i + 1));
    }
    n1.shutdown();
    n2.shutdown();
}

/// 500 idle connections (they never send a byte) do not keep a configured peer out: the flood
/// guard closes the oldest idle ones to make room, and the peer's link forms within 1 s.
#[actix_rt::test]
async fn five_hundred_idle_connections_do_not_keep_a_peer_out() {
    let n2 = builder(2, "127.0.0.1:0").start().await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(
            tokio::net::TcpStream::connect(n2.local_addr())
                .await
                .unwrap(),
        );
    }
    eventually("the guard evicted idle connections", || {
        n2.stats().handshakes_evicted > 0
    })
    .await;
    let t0 = std::time::Instant::now();
    let n1 = builder(1, "127.0.0.1:0")
        .peer(2, n2.local_addr())
        .start()
        .await
        .unwrap();
    eventually("link up", || n1.is_up(2) && n2.is_up(1)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    still_serves_echo_free(&n1).await;
    drop(idle);
    n1.shutdown();
    n2.shutdown();
}

/// A request to a peer without the target actor: answered, so the link carries traffic.
async fn still_serves_echo_free(n1: &Node) {
    let r: RemoteAddr<Ping> = RemoteAddr::new(n1, 2, "nobody");
    assert_eq!(
        r.send(Ping(0)).await,
        Err(RemoteError::UnknownActor("nobody".into()))
    );
}

/// A message larger than the frame cap is `TooLarge` to its sender, not a timeout.
#[actix_rt::test]
async fn an_oversized_message_is_too_large_to_its_sender() {
    #[derive(Message, Serialize, Deserialize)]
    #[rtype(result = "()")]
    struct Blob(Vec<u8>);
    remote_message!(Blob);
    let n2 = builder(2, "127.0.0.1:0").start().await.unwrap();
    let n1 = builder(1, "127.0.0.1:0")
        .peer(2, n2.local_addr())
        .max_frame_len(4096)
        .start()
        .await
        .unwrap();
    eventually("up", || n1.is_up(2)).await;
    let r: RemoteAddr<Blob> = RemoteAddr::new(&n1, 2, "any");
    assert!(matches!(
        r.send(Blob(vec![7; 10_000])).await,
        Err(RemoteError::TooLarge { cap: 4096, .. })
    ));
    assert!(matches!(
        r.do_send(Blob(vec![7; 10_000])),
        Err(RemoteError::TooLarge { cap: 4096, .. })
    ));
    n1.shutdown();
    n2.shutdown();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever bytes a stranger sends as the first Noise message, the responder refuses them
    /// with an error and never panics.
    #[test]
    fn random_first_noise_messages_are_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let Security::Psk(psk) = Security::psk(SECRET.as_bytes()) else { unreachable!() };
        let r = rt.block_on(async move {
            let (a, mut b) = tokio::io::duplex(1 << 16);
            use tokio::io::AsyncWriteExt;
            let len = (bytes.len() as u16).to_be_bytes();
            b.write_all(&len).await.unwrap();
            b.write_all(&bytes).await.unwrap();
            drop(b);
            secure::noise_accept(Box::new(a), &psk).await.is_ok()
        });
        proptest::prop_assert!(!r);
    }
}

/// Tells that `do_send` accepted but that were still queued when the connection died are not
/// lost silently: they are counted and reported as `TellsLost` to the sender's subscribers.
#[actix_rt::test]
async fn tells_queued_when_the_connection_dies_are_reported_lost() {
    #[derive(Message, Serialize, Deserialize)]
    #[rtype(result = "()")]
    struct Big(Vec<u8>);
    remote_message!(Big);
    struct Stuck;
    impl Actor for Stuck {
        type Context = CausalContext<Self>;
    }
    impl Handler<Big> for Stuck {
        type Result = ();
        fn handle(&mut self, _: Big, ctx: &mut Self::Context) {
            // Holds its mailbox of one for a long time: the connection backs up.
            ctx.wait(actix::fut::wrap_future(tokio::time::sleep(
                Duration::from_secs(30),
            )));
        }
    }
    remote_actor!(Stuck: Big);
    let (n1, n2, _) = pair().await;
    n2.register(
        "stuck",
        CausalBuilder::default()
            .node(2)
            .mailbox_capacity(1)
            .start(Stuck),
    )
    .unwrap();
    let mut ev = n1.subscribe();
    let r: RemoteAddr<Big> = RemoteAddr::new(&n1, 2, "stuck");
    // 64 KiB tells until the queue is full: far more than the socket buffers hold.
    let mut accepted = 0u64;
    while accepted < 4096 {
        match r.do_send(Big(vec![1; 64 * 1024])) {
            Ok(()) => accepted += 1,
            Err(RemoteError::Overloaded) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(accepted > 100, "{accepted}");
    n2.shutdown();
    let lost = event(&mut ev, |e| {
        matches!(e, NodeEvent::TellsLost { node: 2, .. })
    })
    .await;
    let NodeEvent::TellsLost { count, .. } = lost else {
        unreachable!()
    };
    assert!(count > 0 && count <= accepted, "{count} of {accepted}");
    assert_eq!(n1.stats().tells_lost, count);
    n1.shutdown();
}
