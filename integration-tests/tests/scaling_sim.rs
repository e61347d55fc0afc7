//! The scaling bench's measurements at N = 3 and 5, held to the theory's message counts (the
//! bench, `cargo bench -p integration-tests --bench scaling`, runs N = 3…33 and draws them).
//!
//! Every link has a fixed one-way latency of 1 ms, so an acquisition of a lock that sits with
//! another member takes exactly two message delays (request out, permission or token back).

#[path = "../benches/scaling/sim.rs"]
mod sim;

use actix_coord::mutex::LockAlgorithm;
use sim::Loss;
use std::time::Duration;

#[test]
fn locks_send_the_theorys_messages_and_acquire_in_two_message_delays() {
    for algorithm in [
        LockAlgorithm::Lamport,
        LockAlgorithm::RicartAgrawala,
        LockAlgorithm::SuzukiKasami,
    ] {
        for n in [3, 5] {
            let r = sim::lock_run(1, algorithm, n, 2);
            assert_eq!(r.sections, u64::from(n) * 2, "{algorithm} N={n}");
            assert_eq!(
                r.messages_per_section,
                sim::lock_theory(algorithm, n) as f64,
                "{algorithm} N={n}: {r:?}"
            );
            assert_eq!(r.acquire_p50, sim::DELAY * 2, "{algorithm} N={n}: {r:?}");
            assert_eq!(r.acquire_max, sim::DELAY * 2, "{algorithm} N={n}: {r:?}");
            // Every message carries at least a header and a stamp.
            assert!(r.bytes_per_section > 30.0 * r.messages_per_section);
        }
    }
}

#[test]
fn the_election_after_the_leaders_loss_sends_the_theorys_messages() {
    for how in [Loss::Crash, Loss::Silent] {
        for n in [3, 5] {
            let e = sim::election_run(1, n, how);
            assert_eq!(e.leader, n - 1);
            assert_eq!(
                e.messages,
                sim::election_theory(n, how),
                "{how:?} N={n}: {e:?}"
            );
            let limit = match how {
                // The broken connections tell the survivors at once.
                Loss::Crash => Duration::from_millis(10),
                // The leader timeout (350 ms), then member N−1's answer timeout (150 ms).
                Loss::Silent => Duration::from_millis(510),
            };
            assert!(e.to_stable <= limit, "{how:?} N={n}: {e:?}");
        }
    }
}

#[test]
fn a_berkeley_round_sends_two_messages_per_probe_and_one_adjustment_per_member() {
    for n in [3, 5] {
        let b = sim::berkeley_run(1, n);
        // 8 probes and their replies, and one adjustment, per member; the last round may be
        // cut short by the end of the run.
        let theory = f64::from(17 * (n - 1));
        assert!(
            (b.messages_per_round - theory).abs() / theory < 0.05,
            "N={n}: {b:?}"
        );
        // Eight probes 10 ms apart, then the last replies.
        assert!(b.round >= Duration::from_millis(70), "N={n}: {b:?}");
        assert!(b.round < Duration::from_millis(200), "N={n}: {b:?}");
        assert!(b.precision < Duration::from_millis(1), "N={n}: {b:?}");
    }
}

#[test]
fn a_vector_stamp_grows_by_its_entries_and_a_difference_does_not() {
    let (full3, delta3, none3) = sim::stamp_bytes(3);
    let (full33, delta33, none33) = sim::stamp_bytes(33);
    assert!(full33 > full3 + 30 * 3, "{full3} {full33}");
    assert_eq!(delta3, delta33);
    assert_eq!(none3, none33);
    assert!(none3 < delta3 && delta3 < full3);
}
