//! The three distributed locks on real nodes over loopback, in one process, through the public
//! API only (three members, default options), under the faults of issue 11: cancelled waits
//! followed by new requests, and members that restart (a new `Node` with the same id and
//! address: a new incarnation with empty state).
//!
//! Every wait is an event with a deadline; nodes bind port 0 (a restarted node rebinds the
//! address its predecessor was given).

use actix_coord::driver::At;
use actix_coord::election::{BullyConfig, Election};
use actix_coord::mutex::{
    AcquireError, DistributedLock, Fence, FencedResource, LockAlgorithm, LockConfig, LockGuard,
    fence_display,
};
use actix_coord::net::Node;
use std::time::{Duration, Instant};
mod support;
use support::nodes::{DEADLINE, addr_of, connected, declared_down, restart_node, three_nodes};

fn lock(node: &Node, algorithm: LockAlgorithm) -> DistributedLock {
    DistributedLock::start(At::Node(node), "r", &[1, 2, 3], algorithm).unwrap()
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

/// Which member restarts, in the crash-recovery scenarios.
#[derive(Clone, Copy, Debug)]
enum Role {
    /// Member 1, the lowest id (the initial Suzuki–Kasami token holder), restarts while member 2
    /// holds the lock.
    Lowest,
    /// Member 3 dies inside its critical section; member 2, waiting, gets the lock; member 3
    /// restarts while member 2 holds.
    PreviousHolder,
    /// Member 3 dies while waiting for the lock member 1 holds, and restarts while member 1
    /// still holds.
    Waiter,
}

/// Waits until the lock has caught up with its peers.
async fn caught_up(l: &DistributedLock) {
    use actix_coord::driver::Inspect;
    use actix_coord::mutex::AnyLock;
    let end = Instant::now() + DEADLINE;
    loop {
        let active = l
            .actor()
            .send(Inspect(Box::new(|c: &AnyLock| c.is_active())))
            .await
            .unwrap();
        if active {
            return;
        }
        assert!(
            Instant::now() < end,
            "{} member {} catches up in time",
            l.algorithm(),
            l.id()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fenced write by `who` with `fence` (an equal fence from another owner is refused): no
/// write may be refused.
fn write(resource: &std::sync::Mutex<FencedResource<Vec<(u32, Fence)>>>, who: u32, fence: Fence) {
    let mut r = resource.lock().unwrap();
    r.write_by(who, fence, |v| v.push((who, fence)))
        .unwrap_or_else(|e| {
            panic!(
                "member {who}'s write with {} refused: {e}",
                fence_display(fence)
            )
        });
}

/// Issue 11, second and third reports, for each role: a restarted member never enters while
/// another member holds, and fences strictly increase across the run.
async fn restarted_member_waits_for_the_holder(algorithm: LockAlgorithm, role: Role) {
    let mut nodes = three_nodes().await;
    let mut locks: Vec<_> = nodes.iter().map(|n| lock(n, algorithm)).collect();
    let resource = std::sync::Arc::new(std::sync::Mutex::new(FencedResource::new(Vec::new())));
    let (victim, holder): (u32, u32) = match role {
        Role::Lowest => (1, 2),
        Role::PreviousHolder => (3, 2),
        Role::Waiter => (3, 1),
    };
    let vi = victim as usize - 1;
    let hi = holder as usize - 1;
    let guard = if let Role::PreviousHolder = role {
        // The victim holds, the holder-to-be waits; the victim dies inside.
        let g = acquire(&locks[vi], DEADLINE).await;
        write(&resource, victim, g.fencing_token());
        let before = g.fencing_token();
        let waiter = locks[hi].clone();
        let wait = actix_rt::spawn(async move { waiter.try_acquire(DEADLINE).await });
        std::mem::forget(g);
        locks[vi].stop();
        nodes[vi].shutdown();
        let g = wait.await.unwrap().unwrap_or_else(|e| {
            panic!("{algorithm}: member {holder} granted after the crash: {e}")
        });
        assert!(g.fencing_token() > before, "{algorithm}");
        g
    } else {
        let g = acquire(&locks[hi], DEADLINE).await;
        if let Role::Waiter = role {
            // The victim's request is out when it dies.
            let w = locks[vi].clone();
            let pending = actix_rt::spawn(async move { w.try_acquire(DEADLINE).await.is_ok() });
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!pending.is_finished(), "{algorithm}: member {victim} waits");
            pending.abort();
        }
        locks[vi].stop();
        nodes[vi].shutdown();
        g
    };
    let held = guard.fencing_token();
    write(&resource, holder, held);
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id() != victim).collect();
    declared_down(&survivors, victim).await;
    // The new incarnation: same id and address, empty state.
    let addr = addr_of(&nodes, victim);
    nodes[vi] = restart_node(victim, &addr, &nodes).await;
    locks[vi] = lock(&nodes[vi], algorithm);
    let others: Vec<u32> = (1..=3).filter(|&p| p != victim).collect();
    connected(&nodes[vi], &others).await;
    let fresh = locks[vi].clone();
    let wait = actix_rt::spawn(async move {
        let g = fresh.try_acquire(DEADLINE).await;
        (Instant::now(), g)
    });
    caught_up(&locks[vi]).await;
    // Give a wrong grant the time to show (the check is the order of events below).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !wait.is_finished(),
        "{algorithm} {role:?}: the restarted member {victim} entered while member {holder} holds {}",
        fence_display(held)
    );
    let released = Instant::now();
    guard.release().await.unwrap();
    let (granted, g) = wait.await.unwrap();
    let g = g.unwrap_or_else(|e| panic!("{algorithm} {role:?}: member {victim} not granted: {e}"));
    assert!(granted >= released, "{algorithm} {role:?}");
    let fence = g.fencing_token();
    write(&resource, victim, fence);
    assert!(
        fence > held,
        "{algorithm} {role:?}: {} after {}",
        fence_display(fence),
        fence_display(held)
    );
    let writes = resource.lock().unwrap().get().clone();
    println!(
        "{algorithm} {role:?}: fences {}; granted {:?} after the release",
        writes
            .iter()
            .map(|(w, f)| format!("n{w} {}", fence_display(*f)))
            .collect::<Vec<_>>()
            .join(" "),
        granted.saturating_duration_since(released)
    );
    for n in &nodes {
        n.shutdown();
    }
}

#[actix_rt::test]
async fn lamport_restarted_lowest_member_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::Lamport, Role::Lowest).await;
}

#[actix_rt::test]
async fn lamport_restarted_previous_holder_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::Lamport, Role::PreviousHolder).await;
}

#[actix_rt::test]
async fn lamport_restarted_waiter_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::Lamport, Role::Waiter).await;
}

#[actix_rt::test]
async fn ricart_agrawala_restarted_lowest_member_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::RicartAgrawala, Role::Lowest).await;
}

#[actix_rt::test]
async fn ricart_agrawala_restarted_previous_holder_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::RicartAgrawala, Role::PreviousHolder)
        .await;
}

#[actix_rt::test]
async fn ricart_agrawala_restarted_waiter_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::RicartAgrawala, Role::Waiter).await;
}

#[actix_rt::test]
async fn suzuki_kasami_restarted_lowest_member_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::SuzukiKasami, Role::Lowest).await;
}

#[actix_rt::test]
async fn suzuki_kasami_restarted_previous_holder_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::SuzukiKasami, Role::PreviousHolder).await;
}

#[actix_rt::test]
async fn suzuki_kasami_restarted_waiter_waits_for_the_holder() {
    restarted_member_waits_for_the_holder(LockAlgorithm::SuzukiKasami, Role::Waiter).await;
}

/// Suzuki–Kasami with an elected recovery leader: this member's election and its lock, which
/// regenerates a lost token only where that election's leader is.
fn elected_lock(node: &Node) -> (Election, DistributedLock) {
    let members = [1, 2, 3];
    let e = Election::start(At::Node(node), "leader", &members, BullyConfig::default()).unwrap();
    let config = LockConfig::new(LockAlgorithm::SuzukiKasami).with_recovery_leader(e.view());
    let l = DistributedLock::start(At::Node(node), "r", &members, config).unwrap();
    (e, l)
}

/// Waits until every election of `members` recognises `leader`.
async fn leader_is(members: &[&(Election, DistributedLock)], leader: u32) {
    for (e, _) in members {
        let mut w = e.watch();
        tokio::time::timeout(
            DEADLINE,
            w.wait_for(|l| l.is_some_and(|(l, _)| l == leader)),
        )
        .await
        .unwrap_or_else(|_| panic!("leader {leader} recognised in time"))
        .unwrap();
    }
}

/// Issue 11, the leader's role (its Why, item 2), on real nodes: Suzuki–Kasami with the elected
/// recovery leader. The leader (member 3, the highest id) dies inside its critical section and
/// restarts at once, with empty state, so it wins the election again, possibly within
/// `leader_settle`. The token it held is recovered in a new epoch, and serves member 1 (waiting
/// since before the crash) and the restarted leader (asking as soon as it is back) one after
/// the other: neither enters while the other holds, each is granted, and fences strictly
/// increase. Every fence goes through a `FencedResource` (`write_by`), so none may be refused.
#[actix_rt::test]
async fn suzuki_kasami_restarted_leader_waits_for_the_holder() {
    let mut nodes = three_nodes().await;
    let mut members: Vec<_> = nodes.iter().map(elected_lock).collect();
    leader_is(&members.iter().collect::<Vec<_>>(), 3).await;
    let resource = std::sync::Arc::new(std::sync::Mutex::new(FencedResource::new(Vec::new())));
    let g = acquire(&members[2].1, DEADLINE).await;
    let old = g.fencing_token();
    write(&resource, 3, old);
    let waiter = members[0].1.clone();
    let wait = actix_rt::spawn(async move {
        let g = waiter.try_acquire(DEADLINE).await;
        (Instant::now(), g)
    });
    std::mem::forget(g); // member 3 dies inside its critical section
    members[2].1.stop();
    members[2].0.stop();
    nodes[2].shutdown();
    declared_down(&[&nodes[0], &nodes[1]], 3).await;
    let addr = addr_of(&nodes, 3);
    nodes[2] = restart_node(3, &addr, &nodes).await;
    members[2] = elected_lock(&nodes[2]);
    connected(&nodes[2], &[1, 2]).await;
    let fresh = members[2].1.clone();
    let fresh_wait = actix_rt::spawn(async move {
        let g = fresh.try_acquire(DEADLINE).await;
        (Instant::now(), g)
    });
    // The recovered token serves member 1 and the restarted leader in either order (the
    // regenerating leader serves its own request first): whoever is first holds, and the other
    // must not enter until it releases.
    let waits = [(1u32, wait), (3u32, fresh_wait)];
    let end = Instant::now() + DEADLINE;
    let first = loop {
        if let Some(k) = waits.iter().position(|(_, w)| w.is_finished()) {
            break k;
        }
        assert!(
            Instant::now() < end,
            "someone granted the recovered token in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let [(a, wait_a), (b, wait_b)] = waits;
    let ((first_id, first_wait), (second_id, second_wait)) = if first == 0 {
        ((a, wait_a), (b, wait_b))
    } else {
        ((b, wait_b), (a, wait_a))
    };
    let (_, g1) = first_wait.await.unwrap();
    let g1 = g1.unwrap_or_else(|e| panic!("member {first_id} granted the recovered token: {e}"));
    let fence1 = g1.fencing_token();
    write(&resource, first_id, fence1);
    assert!(
        fence1 > old,
        "{} after {}",
        fence_display(fence1),
        fence_display(old)
    );
    // Give a wrong grant the time to show (the check is the order of events below).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second_wait.is_finished(),
        "member {second_id} entered while member {first_id} holds {}",
        fence_display(fence1)
    );
    let released = Instant::now();
    g1.release().await.unwrap();
    let (granted, g2) = second_wait.await.unwrap();
    let g2 = g2.unwrap_or_else(|e| panic!("member {second_id} granted after the release: {e}"));
    assert!(granted >= released);
    let fence2 = g2.fencing_token();
    write(&resource, second_id, fence2);
    assert!(fence2 > fence1);
    leader_is(&members.iter().collect::<Vec<_>>(), 3).await;
    let regenerations: Vec<u64> = members.iter().map(|(_, l)| l.regenerations()).collect();
    println!(
        "suzuki-kasami restarted leader: fences n3 {} n{first_id} {} n{second_id} {}; regenerations {regenerations:?}; granted {:?} after the release",
        fence_display(old),
        fence_display(fence1),
        fence_display(fence2),
        granted.saturating_duration_since(released)
    );
    for n in &nodes {
        n.shutdown();
    }
}
