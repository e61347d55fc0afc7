//! An actor written for plain actix opts in to causal clocks by changing its context line and
//! its start call; the clocks it then carries match the happened-before relation worked out by
//! hand, on a 3-actor chain and on a request/reply.
//!
//! One test function only: the external process is shared by the whole test binary, so its
//! counter is deterministic only when nothing else runs beside it.

#[path = "wrap/causal_relay.rs"]
mod causal;
#[path = "wrap/plain_relay.rs"]
mod plain;

use actix_coord::trace::CausalLayer;
use serde_json::Value;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);
impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits for `done` to reach `n`, yielding to the actors, with a deadline.
async fn wait_for(done: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while done.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} deliveries"
        );
        tokio::task::yield_now().await;
    }
}

fn clock(pairs: &[(&str, u64)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect(),
    )
}

/// The events of `host` with their kind and clock, in order.
fn events_of(log: &[Value], host: &str) -> Vec<(String, Value)> {
    log.iter()
        .filter(|e| e["host"] == host)
        .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["clock"].clone()))
        .collect()
}

#[test]
fn only_the_context_line_and_the_start_call_change() {
    let plain = include_str!("wrap/plain_relay.rs")
        .lines()
        .collect::<Vec<_>>();
    let causal = include_str!("wrap/causal_relay.rs")
        .lines()
        .collect::<Vec<_>>();
    assert_eq!(plain.len(), causal.len());
    let changed: Vec<_> = plain.iter().zip(&causal).filter(|(a, b)| a != b).collect();
    assert_eq!(changed.len(), 2, "{changed:#?}");
    assert!(changed[0].0.contains("type Context") && changed[0].1.contains("CausalContext"));
    assert!(changed[1].0.contains(".start()") && changed[1].1.contains("CausalContext::start"));
}

#[test]
fn clocks_are_stamped_and_merged_as_worked_out_by_hand() {
    let buf = SharedBuf::default();
    let (layer, guard) = CausalLayer::builder()
        .jsonl_writer(buf.clone())
        .build()
        .unwrap();
    let _sub = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    actix_coord::intercept::set_external_name("main");

    actix::System::new().block_on(async {
        // The same scenario with the plain actor first: it works unchanged.
        let done = Arc::new(AtomicUsize::new(0));
        let c = plain::start(None, None, done.clone());
        let b = plain::start(Some(c.clone()), None, done.clone());
        let a = plain::start(Some(b.clone()), Some(c.clone()), done.clone());
        a.do_send(plain::Forward { hops: 2 });
        wait_for(&done, 1).await;
        a.do_send(plain::Kick);
        wait_for(&done, 2).await;

        // The causal actor: C = Relay#1, B = Relay#2, A = Relay#3.
        let done = Arc::new(AtomicUsize::new(0));
        let c = causal::start(None, None, done.clone());
        let b = causal::start(Some(c.clone()), None, done.clone());
        let a = causal::start(Some(b.clone()), Some(c.clone()), done.clone());
        a.do_send(causal::Forward { hops: 2 });
        wait_for(&done, 1).await;
        a.do_send(causal::Kick);
        wait_for(&done, 2).await;
    });
    guard.flush();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let log: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (a, b, c, m) = ("Relay#3", "Relay#2", "Relay#1", "main");

    // Chain: main → A → B → C.
    //   main send      {main:1}
    //   A recv, send   {main:1,A:1}, {main:1,A:2}
    //   B recv, send   {main:1,A:2,B:1}, {main:1,A:2,B:2}
    //   C recv         {main:1,A:2,B:2,C:1}
    // Request/reply: main → A (Kick); A asks B; B replies; A then notes C.
    //   main send      {main:2}
    //   A recv, ask    {main:2,A:3}, {main:2,A:4}
    //   B recv, reply  {main:2,A:4,B:3}, {main:2,A:4,B:4}
    //   A gets reply   {main:2,A:5,B:4}; A sends note {main:2,A:6,B:4}
    //   C recv note    {main:2,A:6,B:4,C:2}  — B's reply happened before C's receive.
    assert_eq!(
        events_of(&log, m),
        vec![
            ("send".into(), clock(&[(m, 1)])),
            ("send".into(), clock(&[(m, 2)]))
        ]
    );
    assert_eq!(
        events_of(&log, a),
        vec![
            ("receive".into(), clock(&[(m, 1), (a, 1)])),
            ("send".into(), clock(&[(m, 1), (a, 2)])),
            ("receive".into(), clock(&[(m, 2), (a, 3)])),
            ("send".into(), clock(&[(m, 2), (a, 4)])),
            ("receive".into(), clock(&[(m, 2), (a, 5), (b, 4)])),
            ("send".into(), clock(&[(m, 2), (a, 6), (b, 4)])),
        ]
    );
    assert_eq!(
        events_of(&log, b),
        vec![
            ("receive".into(), clock(&[(m, 1), (a, 2), (b, 1)])),
            ("send".into(), clock(&[(m, 1), (a, 2), (b, 2)])),
            ("receive".into(), clock(&[(m, 2), (a, 4), (b, 3)])),
            ("send".into(), clock(&[(m, 2), (a, 4), (b, 4)])),
        ]
    );
    assert_eq!(
        events_of(&log, c),
        vec![
            ("receive".into(), clock(&[(m, 1), (a, 2), (b, 2), (c, 1)])),
            ("receive".into(), clock(&[(m, 2), (a, 6), (b, 4), (c, 2)])),
        ]
    );
    // Lamport clocks: the receive of the note is after the reply was sent.
    let lamport = |host: &str, k: usize| {
        log.iter().filter(|e| e["host"] == host).nth(k).unwrap()["lamport"]
            .as_u64()
            .unwrap()
    };
    assert!(lamport(b, 3) < lamport(c, 1));
    // Every receive names the send it merged.
    let reply_send = log.iter().filter(|e| e["host"] == b).nth(3).unwrap();
    let reply_recv = log.iter().filter(|e| e["host"] == a).nth(4).unwrap();
    assert_eq!(reply_send["msg"], reply_recv["msg"]);
    assert_eq!(reply_recv["peer"], b);
}
