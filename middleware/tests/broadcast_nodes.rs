//! The two broadcasts on real nodes over loopback, in one process, through the public API only:
//! a member whose node stops and restarts (a new `Node` with the same id and address, a new
//! incarnation with empty state) rejoins its group, and what it publishes afterwards reaches
//! everyone (issue 11: before, its peers dropped it as duplicates or as late).
//!
//! Every wait is an event with a deadline; nodes bind port 0.

use actix_coord::broadcast::{
    BroadcastCore, Broadcaster, CausalBroadcast, CausalConfig, Deliveries, Delivery, TotalConfig,
    TotalOrderBroadcast,
};
use actix_coord::driver::At;
use actix_coord::driver::Inspect;
use actix_coord::net::Node;
use std::time::Instant;
mod support;
use support::nodes::{DEADLINE, addr_of, connected, declared_down, restart_node, three_nodes};

const MEMBERS: [u32; 3] = [1, 2, 3];

/// The next `n` deliveries of `d`.
async fn take(d: &mut Deliveries<String>, n: usize) -> Vec<Delivery<String>> {
    let mut v = Vec::new();
    while v.len() < n {
        let next = tokio::time::timeout(DEADLINE, d.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} deliveries in time", v.len()))
            .expect("delivery");
        v.push(next);
    }
    v
}

/// Waits until the member has caught up with its peers.
async fn caught_up<P>(b: &Broadcaster<P>, active: fn(&P) -> bool)
where
    P: BroadcastCore + 'static,
{
    let end = Instant::now() + DEADLINE;
    loop {
        let ok = b
            .driver()
            .send(Inspect(Box::new(move |c: &P| active(c))))
            .await
            .unwrap();
        if ok {
            return;
        }
        assert!(Instant::now() < end, "member {} caught up in time", b.id());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Member 3's node stops after the group exchanged a few broadcasts, and starts again; then
/// every member publishes once more. Returns each member's deliveries after the restart.
async fn restart_scenario<P>(
    make: impl Fn(u32) -> P,
    active: fn(&P) -> bool,
) -> Vec<Vec<Delivery<String>>>
where
    P: BroadcastCore<Payload = String> + 'static,
{
    let mut nodes = three_nodes().await;
    let mut group: Vec<Broadcaster<P>> = nodes
        .iter()
        .map(|n| Broadcaster::start(At::Node(n), "g", &MEMBERS, make(n.id())).unwrap())
        .collect();
    for b in &group {
        caught_up(b, active).await;
    }
    let mut subs: Vec<_> = group.iter().map(|b| b.subscribe()).collect();
    for (i, b) in group.iter().enumerate() {
        b.publish(format!("before from {}", i + 1)).await.unwrap();
    }
    group[2]
        .publish("before from 3, again".into())
        .await
        .unwrap();
    for s in &mut subs {
        take(s, 4).await;
    }
    // Member 3 goes away and comes back with empty state.
    let addr = addr_of(&nodes, 3);
    nodes[2].shutdown();
    let survivors: Vec<&Node> = nodes.iter().take(2).collect();
    declared_down(&survivors, 3).await;
    nodes[2] = restart_node(3, &addr, &nodes).await;
    connected(&nodes[2], &[1, 2]).await;
    group[2] = Broadcaster::start(At::Node(&nodes[2]), "g", &MEMBERS, make(3)).unwrap();
    subs[2] = group[2].subscribe();
    caught_up(&group[2], active).await;
    for (i, b) in group.iter().enumerate() {
        b.publish(format!("after from {}", i + 1)).await.unwrap();
    }
    let mut after = Vec::new();
    for s in &mut subs {
        after.push(take(s, 3).await);
    }
    for n in &nodes {
        n.shutdown();
    }
    after
}

#[actix_rt::test]
async fn causal_broadcast_member_restarted_on_a_new_node_is_heard_again() {
    let after = restart_scenario(
        |id| CausalBroadcast::new(id, MEMBERS, CausalConfig::default()).unwrap(),
        CausalBroadcast::is_active,
    )
    .await;
    for (i, got) in after.iter().enumerate() {
        let from_3: Vec<_> = got.iter().filter(|d| d.from == 3).collect();
        // Its numbering goes on after its earlier incarnation's two broadcasts.
        assert_eq!(from_3.len(), 1, "member {}: {got:?}", i + 1);
        assert_eq!(
            (from_3[0].seq, from_3[0].payload.as_str()),
            (3, "after from 3"),
            "member {}",
            i + 1
        );
        let mut payloads: Vec<&str> = got.iter().map(|d| d.payload.as_str()).collect();
        payloads.sort_unstable();
        assert_eq!(payloads, ["after from 1", "after from 2", "after from 3"]);
    }
}

#[actix_rt::test]
async fn total_order_member_restarted_on_a_new_node_is_heard_again() {
    let after = restart_scenario(
        |id| TotalOrderBroadcast::new(id, MEMBERS, TotalConfig::default()).unwrap(),
        TotalOrderBroadcast::is_active,
    )
    .await;
    let order = |got: &[Delivery<String>]| -> Vec<String> {
        got.iter().map(|d| d.payload.clone()).collect()
    };
    for got in &after {
        assert_eq!(order(got), order(&after[0]), "the same order everywhere");
        assert!(
            got.iter()
                .any(|d| d.from == 3 && d.payload == "after from 3"),
            "{got:?}"
        );
    }
}
