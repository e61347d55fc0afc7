//! Behaviour of the causal context beyond the basic chain: spawned work, intervals, replies to
//! async handlers, the explicit layer, remote delivery, and plain futures bound to a process.

use actix::prelude::*;
use actix_coord::clock::{CausalOrder, ProcessId, VectorClock};
use actix_coord::intercept::{
    self, CausalContext, Clocks, ExplicitProcess, InProcessExt, Stamp, StampedAddrExt,
};
use std::time::Duration;

#[derive(Message)]
#[rtype(result = "Clocks")]
struct GetClocks;

#[derive(Message)]
#[rtype(result = "u32")]
struct SlowAsk;

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

/// Answers after a timer, from an actor future; counts interval ticks.
#[derive(Default)]
struct Worker {
    ticks: u32,
    interval: Option<SpawnHandle>,
    peer: Option<Addr<Worker>>,
}

impl Actor for Worker {
    type Context = CausalContext<Self>;
}

impl Handler<GetClocks> for Worker {
    type Result = MessageResult<GetClocks>;
    fn handle(&mut self, _: GetClocks, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(ctx.clocks())
    }
}

impl Handler<SlowAsk> for Worker {
    type Result = ResponseActFuture<Self, u32>;
    fn handle(&mut self, _: SlowAsk, _: &mut Self::Context) -> Self::Result {
        Box::pin(
            actix::fut::wrap_future::<_, Self>(actix_rt::time::sleep(Duration::from_millis(5)))
                .map(|_, _, _| 42),
        )
    }
}

impl Handler<Tick> for Worker {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        // A timer that sends: the send must be this actor's.
        // A burst of missed ticks runs the closure several times in one poll, even after a
        // cancel or a stop (actix's interval loop): count, and send three times only.
        self.interval = Some(ctx.run_interval(Duration::from_millis(1), |act, ctx| {
            if act.ticks == 3 {
                return;
            }
            act.ticks += 1;
            if let Some(p) = &act.peer {
                p.do_send(Ping);
            }
            if act.ticks == 3
                && let Some(h) = act.interval.take()
            {
                ctx.cancel_future(h);
            }
        }));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Ping;

impl Handler<Ping> for Worker {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {
        self.ticks += 1;
    }
}

#[actix_rt::test]
async fn async_reply_carries_responders_clock() {
    let a = CausalContext::start(Worker::default());
    let b = CausalContext::start(Worker::default());
    // A plain future bound to a process is not needed here: ask from inside A via a spawn.
    #[derive(Message)]
    #[rtype(result = "(u32, Clocks)")]
    struct AskPeer(Addr<Worker>);
    impl Handler<AskPeer> for Worker {
        type Result = ResponseActFuture<Self, (u32, Clocks)>;
        fn handle(&mut self, m: AskPeer, _: &mut Self::Context) -> Self::Result {
            Box::pin(
                m.0.send(SlowAsk)
                    .into_actor(self)
                    .map(|r, _, ctx| (r.unwrap(), ctx.clocks())),
            )
        }
    }
    let (answer, a_after) = a.send(AskPeer(b.clone())).await.unwrap();
    assert_eq!(answer, 42);
    let b_now = b.send(GetClocks).await.unwrap();
    // B: receive SlowAsk (1), reply (2), receive GetClocks (3). A saw B's reply event.
    assert_eq!(a_after.vector.get(b_now.process), 2);
    assert_eq!(b_now.vector.get(b_now.process), 3);
}

/// A synchronous handler's reply (its `type Result` is the message's result) is stamped when
/// the handler returns, so it comes after everything the handler did: here a tell to a third
/// actor. The requester, a causal actor, sees the reply event, and through it the tell.
#[actix_rt::test]
async fn a_synchronous_reply_comes_after_what_its_handler_sent() {
    #[derive(Message)]
    #[rtype(result = "u32")]
    struct Forward(u32);
    #[derive(Message)]
    #[rtype(result = "(u32, Clocks)")]
    struct AskVia(Addr<Relay>, u32);
    struct Relay {
        sink: Addr<Worker>,
    }
    impl Actor for Relay {
        type Context = CausalContext<Self>;
    }
    impl Handler<Forward> for Relay {
        type Result = u32;
        fn handle(&mut self, m: Forward, _: &mut Self::Context) -> u32 {
            self.sink.do_send(Ping);
            m.0 * 2
        }
    }
    impl Handler<GetClocks> for Relay {
        type Result = MessageResult<GetClocks>;
        fn handle(&mut self, _: GetClocks, ctx: &mut Self::Context) -> Self::Result {
            MessageResult(ctx.clocks())
        }
    }
    impl Handler<AskVia> for Worker {
        type Result = ResponseActFuture<Self, (u32, Clocks)>;
        fn handle(&mut self, m: AskVia, _: &mut Self::Context) -> Self::Result {
            Box::pin(
                m.0.send(Forward(m.1))
                    .into_actor(self)
                    .map(|r, _, ctx| (r.unwrap(), ctx.clocks())),
            )
        }
    }
    let sink = CausalContext::start(Worker::default());
    let relay = CausalContext::start(Relay { sink: sink.clone() });
    let asker = CausalContext::start(Worker::default());
    let (doubled, seen) = asker.send(AskVia(relay.clone(), 21)).await.unwrap();
    assert_eq!(doubled, 42);
    // The relay: receive Forward (1), send Ping (2), reply (3). The asker merged the reply.
    let sink_clocks = sink.send(GetClocks).await.unwrap();
    let relay_id = relay.send(GetClocks).await.unwrap().process;
    assert_eq!(seen.vector.get(relay_id), 3, "{seen:?}");
    // The tell reached the sink as the relay's second event.
    assert_eq!(sink_clocks.vector.get(relay_id), 2, "{sink_clocks:?}");
}

#[actix_rt::test]
async fn interval_sends_are_the_actors_sends() {
    let sink = CausalContext::start(Worker::default());
    let ticker = CausalContext::create(|_| Worker {
        peer: Some(sink.clone()),
        ..Worker::default()
    });
    let ticker_id = ticker.send(GetClocks).await.unwrap().process;
    ticker.do_send(Tick);
    // Wait (with a deadline) until the sink has seen the three pings.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = sink.send(GetClocks).await.unwrap();
        if c.vector.get(ticker_id) >= 5 {
            // ticker: receive GetClocks, receive Tick, then three sends from the interval.
            assert_eq!(c.vector.get(ticker_id), 5, "{c:?} ticker {ticker_id}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pings never arrived: {c:?}"
        );
        actix_rt::task::yield_now().await;
    }
}

#[derive(Message)]
#[rtype(result = "u32")]
struct Lookup(u32);

#[derive(Default)]
struct Directory {
    process: ExplicitProcess,
}
impl Actor for Directory {
    type Context = Context<Self>;
}
impl Handler<Lookup> for Directory {
    type Result = u32;
    fn handle(&mut self, m: Lookup, _: &mut Context<Self>) -> u32 {
        m.0 + 1
    }
}
actix_coord::stamped_handlers!(Directory, process; Lookup);

#[derive(Message)]
#[rtype(result = "Clocks")]
struct DirClocks;
impl Handler<DirClocks> for Directory {
    type Result = MessageResult<DirClocks>;
    fn handle(&mut self, _: DirClocks, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.process.clocks())
    }
}

#[actix_rt::test]
async fn explicit_layer_merges_stamps_into_plain_context_actors() {
    let dir = Directory::default().start();
    let before = intercept::current_clocks();
    assert_eq!(dir.send_stamped(Lookup(1)).await.unwrap(), 2);
    let after = dir.send(DirClocks).await.unwrap();
    // The directory's receive happened after the external send that stamped it.
    let sender = before.process;
    assert!(after.vector.get(sender) > before.vector.get(sender));
    assert_eq!(after.vector.get(after.process), 1);
}

#[actix_rt::test]
async fn remote_delivery_merges_the_remote_stamp_and_returns_the_reply_stamp() {
    let w = CausalContext::start(Worker::default());
    let remote = ProcessId::new(77, 5);
    let stamp = Stamp {
        from: remote,
        lamport: 40,
        vector: Some(std::sync::Arc::new(
            VectorClock::from_entries([(remote, 9)]).unwrap(),
        )),
        hlc: None,
    };
    let (clocks, reply) = intercept::deliver_request(&w, GetClocks, stamp.clone())
        .await
        .unwrap();
    assert_eq!(clocks.vector.get(remote), 9);
    assert_eq!(clocks.lamport, 41);
    assert_eq!(reply.from, clocks.process);
    assert_eq!(reply.lamport, 42);
    let sent = stamp.vector.unwrap();
    assert_eq!(
        sent.compare(reply.vector.as_ref().unwrap()),
        CausalOrder::Before
    );
}

#[actix_rt::test]
async fn plain_futures_bound_with_in_current_process_send_as_the_actor() {
    #[derive(Message)]
    #[rtype(result = "()")]
    struct SpawnPlain(Addr<Worker>);
    impl Handler<SpawnPlain> for Worker {
        type Result = ResponseFuture<()>;
        fn handle(&mut self, m: SpawnPlain, _: &mut Self::Context) -> Self::Result {
            Box::pin(async move { m.0.do_send(Ping) }.in_current_process())
        }
    }
    let a = CausalContext::start(Worker::default());
    let b = CausalContext::start(Worker::default());
    let a_id = a.send(GetClocks).await.unwrap().process;
    a.send(SpawnPlain(b.clone())).await.unwrap();
    let b_clocks = b.send(GetClocks).await.unwrap();
    // A: receive GetClocks (1), receive SpawnPlain (2), send Ping (3).
    assert_eq!(b_clocks.vector.get(a_id), 3);
}

/// Two actors of one OS process with clocks of their own (`CausalBuilder::time_source`): each
/// HLC reads its own clock, and a receiver's `max_offset_ms` decides whether a timestamp from a
/// clock an hour ahead is taken (the receiver's HLC jumps) or refused (it ticks on its own
/// clock; the Lamport and vector clocks still merge).
#[actix_rt::test]
async fn each_actor_may_keep_its_own_physical_clock_and_maximum_offset() {
    const HOUR: u64 = 3_600_000;
    #[derive(Message)]
    #[rtype(result = "Clocks")]
    struct AskClocks(Addr<Worker>);
    impl Handler<AskClocks> for Worker {
        type Result = ResponseActFuture<Self, Clocks>;
        fn handle(&mut self, m: AskClocks, _: &mut Self::Context) -> Self::Result {
            Box::pin(
                m.0.send(GetClocks)
                    .into_actor(self)
                    .map(|_, _, ctx| ctx.clocks()),
            )
        }
    }
    let ahead = || intercept::physical_now_ms() + HOUR;
    let late = intercept::CausalBuilder::new()
        .time_source(ahead)
        .start(Worker::default());
    let strict = CausalContext::start(Worker::default());
    let lenient = intercept::CausalBuilder::new()
        .max_offset_ms(2 * HOUR as u32)
        .start(Worker::default());
    let real = intercept::physical_now_ms();
    // The clock an hour ahead answers both: its reply's timestamp is an hour ahead.
    let strict_seen = strict.send(AskClocks(late.clone())).await.unwrap();
    let lenient_seen = lenient.send(AskClocks(late.clone())).await.unwrap();
    let late_clocks = late.send(GetClocks).await.unwrap();
    assert!(
        late_clocks.hlc.physical_ms() >= real + HOUR,
        "{late_clocks:?}"
    );
    assert!(
        strict_seen.hlc.physical_ms() < real + HOUR / 2,
        "refused: {strict_seen:?}"
    );
    assert!(
        strict_seen.vector.get(late_clocks.process) >= 2,
        "merged: {strict_seen:?}"
    );
    assert!(
        lenient_seen.hlc.physical_ms() >= real + HOUR,
        "taken: {lenient_seen:?}"
    );
}
