//! Real nodes over loopback in one process, for the tests that run services on them: start,
//! connect, stop and restart (a new `Node` with the same id and address). Every wait is an
//! event with a deadline; nodes bind port 0.

use actix_coord::net::Node;
use std::time::{Duration, Instant};

/// The cluster's shared secret.
pub const SECRET: &str = "test-nodes";
/// Generous bound on anything that should happen "soon" on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until `node` is connected to every id of `peers`.
pub async fn connected(node: &Node, peers: &[u32]) {
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
pub async fn three_nodes() -> Vec<Node> {
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

pub fn addr_of(nodes: &[Node], id: u32) -> String {
    nodes[id as usize - 1].local_addr().to_owned()
}

/// A new node `id` on `addr` (the address its predecessor had), dialing every other member.
pub async fn restart_node(id: u32, addr: &str, nodes: &[Node]) -> Node {
    let end = Instant::now() + DEADLINE;
    loop {
        let mut b = Node::builder().id(id).listen(addr).secret(SECRET);
        for n in nodes.iter().filter(|n| n.id() != id) {
            b = b.peer(n.id(), n.local_addr());
        }
        match b.start().await {
            Ok(n) => return n,
            Err(e) => {
                assert!(Instant::now() < end, "node {id} rebinds {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Waits until every node of `observers` no longer sees `id` up.
pub async fn declared_down(observers: &[&Node], id: u32) {
    for n in observers {
        let end = tokio::time::Instant::now() + DEADLINE;
        let mut events = n.subscribe();
        while n.is_up(id) {
            tokio::time::timeout_at(end, events.recv())
                .await
                .unwrap_or_else(|_| panic!("node {} declares {id} down in time", n.id()))
                .ok();
        }
    }
}
