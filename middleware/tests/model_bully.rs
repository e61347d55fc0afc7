//! Exhaustive model checks (stateright) of the bully election core on the shared harness
//! (`support::harness`, the service in `support::election`), N = 3 and N = 4, with crashes,
//! restarts (a fresh core, a new incarnation), broken connections (what was in flight between
//! two members is lost) and partitions healed (false suspicion).
//!
//! Time is modelled as in a discrete-event simulation ([`Timers::Deadlines`]), under the
//! **synchrony assumption** the algorithm needs: messages take no time (they are delivered
//! before any timer fires) and timers expire in deadline order, each armed timer keeping the
//! time left before it expires (relative to now, so the state space stays finite although
//! heartbeats go on for ever). Failure-detector verdicts come at any moment, but before the
//! next heartbeat (a partition heals within a heartbeat period here; longer ones are in
//! `model_election`'s runs, with timers at any moment, and in its simulation). Without the
//! deadlines the checker reports runs no real schedule produces (a 300 ms timeout firing for
//! ever before a 150 ms one).
//!
//! Properties (see `support::election`): `one leader per term` and `terms increase` (always),
//! and **eventually one leader, the highest live id**, checked by the harness's liveness search
//! ([`harness::stabilises`]) because stateright's `eventually` ignores paths that end in a
//! cycle, and a bully system cycles for ever (heartbeats): no state is stuck unstable and no
//! cycle is made only of unstable states. Faults are bounded, so every infinite run eventually
//! runs fault-free, and then reaches a stable state.
//!
//! Run with `cargo test -p actix-coord --test model_bully -- --nocapture` for counts and times.

mod support;
use support::election::{self, Election, Seeded};
use support::harness::{self, Harness, Timers};

use actix_coord::election::BullyConfig;
use stateright::{Checker, Model};
use std::time::Instant;

fn model(n: usize, crashes: u8, restarts: u8, breaks: u8) -> Harness<Election> {
    Election::new(n, BullyConfig::default()).under(election::faults(
        crashes,
        restarts,
        breaks,
        0,
        Timers::Deadlines,
    ))
}

/// From the boot: every member started, the first election explored.
fn from_boot(mut h: Harness<Election>) -> Harness<Election> {
    h.faults.boot = false;
    h
}

fn quorum(mut h: Harness<Election>) -> Harness<Election> {
    h.service.cfg.quorum = true;
    h
}

/// Safety by stateright, then liveness by the harness's search over the same states.
fn run(name: &str, h: Harness<Election>) -> usize {
    let t = Instant::now();
    let service = h.service.clone();
    let faults = h.faults.clone();
    let c = harness::check(name, h);
    c.assert_properties();
    let checked = c.unique_state_count();
    let reachable =
        harness::stabilises(&service.under(faults), election::stable, election::summary);
    assert_eq!(
        checked, reachable,
        "stateright and the liveness search see the same states"
    );
    println!("{name}: safety and liveness {:.2?}", t.elapsed());
    checked
}

#[test]
fn bully_n3_from_boot_with_crash_restart_and_loss() {
    let n = run(
        "bully N=3 boot, 1 crash, 1 restart, 1 break",
        from_boot(model(3, 1, 1, 1)),
    );
    // 28 966 on the model before the harness (one lost message instead of a broken
    // connection, restarts only into a quiet cluster).
    assert_eq!(n, 126_524);
}

#[test]
fn bully_n3_settled_with_two_crashes_and_a_restart() {
    let n = run("bully N=3 settled, 2 crashes, 1 restart", model(3, 2, 1, 0));
    assert_eq!(n, 36_472);
}

/// A false suspicion: the link between two live members is cut, each declares the other
/// down, the link heals and each sees the other again; then a crash.
#[test]
fn bully_n3_settled_with_a_partition_healed_and_a_crash() {
    let mut h = model(3, 1, 0, 0);
    h.faults.cuts = 1;
    let n = run("bully N=3 settled, 1 cut healed, 1 crash", h);
    assert_eq!(n, 7_167);
}

/// Two partitions, one after the other or both at once.
#[test]
fn bully_n3_settled_with_two_partitions_healed() {
    let mut h = model(3, 0, 0, 0);
    h.faults.cuts = 2;
    let n = run("bully N=3 settled, 2 cuts healed", h);
    assert_eq!(n, 12_533);
}

#[test]
fn bully_n4_settled_with_a_crash() {
    let n = run("bully N=4 settled, 1 crash", model(4, 1, 0, 0));
    assert_eq!(n, 22_392);
}

#[test]
fn bully_quorum_n3_settled_with_crash_and_loss() {
    let n = run(
        "bully quorum N=3 settled, 1 crash, 1 break",
        quorum(model(3, 1, 0, 1)),
    );
    assert_eq!(n, 10_390);
}

/// 538 389 states, about 75 s in debug:
/// `cargo test -p actix-coord --test model_bully -- --ignored bully_n3_settled_with_two_crashes_restart_and_loss`.
#[test]
#[ignore = "long: about 75 s in debug"]
fn bully_n3_settled_with_two_crashes_restart_and_loss() {
    let n = run(
        "bully N=3 settled, 2 crashes, 1 restart, 1 break",
        model(3, 2, 1, 1),
    );
    assert_eq!(n, 538_389);
}

/// 442 598 states, about 80 s in debug:
/// `cargo test -p actix-coord --test model_bully -- --ignored bully_n4_settled_with_crash_and_loss`.
#[test]
#[ignore = "long: about 80 s in debug"]
fn bully_n4_settled_with_crash_and_loss() {
    let n = run("bully N=4 settled, 1 crash, 1 break", model(4, 1, 0, 1));
    assert_eq!(n, 442_598);
}

/// 207 209 states, 5 s in release:
/// `cargo test --release -p actix-coord --test model_bully -- --ignored bully_quorum_n3_from_boot`.
#[test]
#[ignore = "long: about a minute in debug"]
fn bully_quorum_n3_from_boot_with_crash_and_loss() {
    let n = run(
        "bully quorum N=3 boot, 1 crash, 1 break",
        quorum(from_boot(model(3, 1, 0, 1))),
    );
    assert_eq!(n, 207_209);
}

/// Explore one configuration from the environment, e.g.
/// `N=4 CRASH=1 BREAK=1 CUT=0 BOOT=1 QUORUM=1 LIVE=1 cargo test -p actix-coord --test model_bully -- --ignored explore --nocapture`.
#[test]
#[ignore = "exploration helper"]
fn explore() {
    let env = |k: &str, d: u64| std::env::var(k).map_or(d, |v| v.parse().unwrap());
    let mut h = model(
        env("N", 3) as usize,
        env("CRASH", 0) as u8,
        env("RESTART", 0) as u8,
        env("BREAK", 0) as u8,
    );
    h.faults.cuts = env("CUT", 0) as u8;
    h.service.max_round = env("ROUND", 8);
    h.faults.boot = std::env::var("BOOT").is_err();
    h.service.cfg.quorum = std::env::var("QUORUM").is_ok();
    let (service, faults) = (h.service.clone(), h.faults.clone());
    let t = Instant::now();
    let c = h
        .checker()
        .target_state_count(env("LIMIT", 2_000_000) as usize)
        .spawn_bfs()
        .join();
    println!(
        "{} unique, depth {}, {:.2?}, disc {:?}",
        c.unique_state_count(),
        c.max_depth(),
        t.elapsed(),
        c.discoveries().keys().collect::<Vec<_>>()
    );
    if std::env::var("LIVE").is_ok() {
        let reachable =
            harness::stabilises(&service.under(faults), election::stable, election::summary);
        println!("reachable {reachable}");
    }
}

// ---------------------------------------------------------------------------------------------
// Seeded bugs: each property's check can fail.

fn seeded(bug: Seeded, crashes: u8, restarts: u8, breaks: u8) -> Harness<Election> {
    let mut h = model(3, crashes, restarts, breaks);
    h.service.seeded = Some(bug);
    h
}

#[test]
fn seeded_shared_id_gives_two_leaders_one_term() {
    let h = from_boot(seeded(Seeded::SharedId, 0, 0, 0));
    assert!(harness::counterexample(h, "one leader per term") > 0);
}

#[test]
fn seeded_forgetting_the_term_on_a_stale_leader_message_goes_back_a_term() {
    let h = seeded(Seeded::ForgetsTermOnStaleLeader, 1, 1, 1);
    assert!(harness::counterexample(h, "terms increase") > 0);
}

#[test]
#[should_panic(expected = "unstable")]
fn seeded_deaf_member_never_stabilises() {
    let h = from_boot(seeded(Seeded::DeafMember1, 0, 0, 0));
    harness::stabilises(&h, election::stable, election::summary);
}
