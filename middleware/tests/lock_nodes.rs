//! The three distributed locks on real nodes over loopback, in one process, through the public
//! API only (three members, default options), under the faults of issue 11: cancelled waits
//! followed by new requests, and members that restart (a new `Node` with the same id and
//! address: a new incarnation with empty state).
//!
//! Every wait is an event with a deadline; nodes bind port 0 (a restarted node rebinds the
//! address its predecessor was given).

use actix_coord::mutex::{AcquireError, DistributedLock, LockAlgorithm, LockGuard};
use actix_coord::net::Node;
use std::time::{Duration, Instant};

const SECRET: &str = "lock-nodes";
/// Generous bound on anything that should happen "soon" on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until `node` is connected to every id of `peers`.
async fn connected(node: &Node, peers: &[u32]) {
    let end = tokio::time::Instant::now() + DEADLINE;
    let mut events = node.subscribe();
    while !peers.iter().all(|&p| node.is_up(p)) {
        tokio::time::timeout_at(end, events.recv())
            .await
            .unwrap_or_else(|_| panic!("node {} connected to {peers:?} in time", node.id()))
            .ok();
    }
}

/// Three nodes 1..=3 on ephemeral ports: 1 first (its later members by id), then 2 (dials 1),
/// then 3 (dials 1 and 2). Every pair connected.
async fn three_nodes() -> Vec<Node> {
    let n1 = Node::builder()
        .id(1)
        .listen("127.0.0.1:0")
        .member(2)
        .member(3)
        .secret(SECRET)
        .start()
        .await
        .unwrap();
    let n2 = Node::builder()
        .id(2)
        .listen("127.0.0.1:0")
        .peer(1, n1.local_addr())
        .member(3)
        .secret(SECRET)
        .start()
        .await
        .unwrap();
    let n3 = Node::builder()
        .id(3)
        .listen("127.0.0.1:0")
        .peer(1, n1.local_addr())
        .peer(2, n2.local_addr())
        .secret(SECRET)
        .start()
        .await
        .unwrap();
    let nodes = vec![n1, n2, n3];
    for n in &nodes {
        let others: Vec<u32> = (1..=3).filter(|&p| p != n.id()).collect();
        connected(n, &others).await;
    }
    nodes
}

fn lock(node: &Node, algorithm: LockAlgorithm) -> DistributedLock {
    DistributedLock::start_on_node(node, algorithm, "r", &[1, 2, 3]).unwrap()
}

async fn acquire(l: &DistributedLock, within: Duration) -> LockGuard {
    match l.try_acquire(within).await {
        Ok(g) => g,
        Err(e) => panic!(
            "{} member {}: not granted within {within:?}: {e}",
            l.algorithm(),
            l.id()
        ),
    }
}

/// Issue 11, first report: a member whose `try_acquire` timed out three times in a row, while
/// another member held the lock, gets it within 1 s of the holder's release.
async fn cancelled_waits_then_granted(algorithm: LockAlgorithm) {
    let nodes = three_nodes().await;
    let locks: Vec<_> = nodes.iter().map(|n| lock(n, algorithm)).collect();
    let held = acquire(&locks[0], DEADLINE).await;
    let first = held.fencing_token();
    for attempt in 1..=3 {
        assert_eq!(
            locks[1].try_acquire(Duration::from_millis(100)).await.err(),
            Some(AcquireError::Timeout),
            "{algorithm}: attempt {attempt} times out while member 1 holds"
        );
    }
    let waiter = locks[1].clone();
    let wait = actix_rt::spawn(async move {
        let g = waiter.try_acquire(Duration::from_secs(5)).await;
        (Instant::now(), g.map(|g| g.fencing_token()))
    });
    // Let the fourth request reach the others (part of the scenario, not of the check).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released = Instant::now();
    held.release().await.unwrap();
    let (granted, fence) = wait.await.unwrap();
    let fence = fence.unwrap_or_else(|e| panic!("{algorithm}: the fourth wait failed: {e}"));
    let after = granted.saturating_duration_since(released);
    assert!(
        after <= Duration::from_secs(1),
        "{algorithm}: granted {after:?} after the release"
    );
    assert!(fence > first, "{algorithm}: fence {fence} after {first}");
    println!("{algorithm}: granted {after:?} after the release");
    for n in &nodes {
        n.shutdown();
    }
}

#[actix_rt::test]
async fn lamport_three_timeouts_then_granted_after_release() {
    cancelled_waits_then_granted(LockAlgorithm::Lamport).await;
}

#[actix_rt::test]
async fn ricart_agrawala_three_timeouts_then_granted_after_release() {
    cancelled_waits_then_granted(LockAlgorithm::RicartAgrawala).await;
}

#[actix_rt::test]
async fn suzuki_kasami_three_timeouts_then_granted_after_release() {
    cancelled_waits_then_granted(LockAlgorithm::SuzukiKasami).await;
}
