//! Laws of the clocks, checked with proptest: merge is a join (commutative, associative,
//! idempotent); happened-before is a strict partial order; the clock condition holds on random
//! executions (and vector clocks characterise causality exactly); encodings round-trip; random
//! bytes decode to an error, never a panic.

use actix_coord::clock::encoding::{Decode, Encode};
use actix_coord::clock::{
    CausalOrder, HlcTimestamp, HybridClock, LamportClock, ProcessId, VectorClock,
};
use proptest::prelude::*;

fn pid() -> impl Strategy<Value = ProcessId> {
    (0u32..4, 0u32..6).prop_map(|(n, l)| ProcessId::new(n, l))
}

fn vclock() -> impl Strategy<Value = VectorClock> {
    prop::collection::vec((pid(), 0u64..20), 0..8)
        .prop_map(|e| VectorClock::from_entries(e).expect("small counters"))
}

fn wide_vclock() -> impl Strategy<Value = VectorClock> {
    prop::collection::vec(
        (
            (any::<u32>(), any::<u32>()).prop_map(|(n, l)| ProcessId::new(n, l)),
            1u64..=actix_coord::clock::MAX_ACCEPTED_COUNTER,
        ),
        0..40,
    )
    .prop_map(|e| VectorClock::from_entries(e).expect("in range"))
}

fn merged(a: &VectorClock, b: &VectorClock) -> VectorClock {
    let mut m = a.clone();
    m.merge(b);
    m
}

/// One step on a small set of clocks that merge, tick and are cloned among themselves.
#[derive(Clone, Debug)]
enum Op {
    Tick(usize, ProcessId),
    Merge { into: usize, from: usize },
    Clone { into: usize, from: usize },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        (0usize..3, pid()).prop_map(|(i, p)| Op::Tick(i, p)),
        (0usize..3, 0usize..3).prop_map(|(into, from)| Op::Merge { into, from }),
        (0usize..3, 0usize..3).prop_map(|(into, from)| Op::Clone { into, from }),
    ];
    prop::collection::vec(op, 0..60)
}

proptest! {
    #[test]
    fn merge_is_commutative(a in vclock(), b in vclock()) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in vclock(), b in vclock(), c in vclock()) {
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    /// Clocks that merged before pair their entries by position (they share a tag for their
    /// ids); whatever ticks, merges and clones come between, every merge equals the pointwise
    /// maximum computed from the entries alone.
    #[test]
    fn merges_after_merges_are_pointwise_maxima(start in prop::collection::vec(vclock(), 3), ops in ops()) {
        let mut clocks = start;
        for op in ops {
            match op {
                Op::Tick(i, p) => {
                    clocks[i].tick(p);
                }
                Op::Merge { into, from } => {
                    let other = clocks[from].clone();
                    let expected = VectorClock::from_entries(
                        clocks[into].iter().chain(other.iter()).collect::<Vec<_>>(),
                    )
                    .unwrap();
                    clocks[into].merge(&other);
                    prop_assert_eq!(&clocks[into], &expected);
                }
                Op::Clone { into, from } => clocks[into] = clocks[from].clone(),
            }
        }
    }

    /// The difference a stamp carries is exactly the entries that grew, whatever the reused
    /// clock it is written into held before.
    #[test]
    fn a_difference_is_the_grown_entries(a in vclock(), since in vclock(), dirty in vclock()) {
        let mut out = dirty;
        a.changed_since_into(&since, &mut out);
        prop_assert_eq!(&out, &a.changed_since(&since));
        for (p, c) in a.iter() {
            prop_assert_eq!(out.get(p), if c > since.get(p) { c } else { 0 });
        }
        prop_assert!(out.iter().all(|(p, _)| a.get(p) > since.get(p)));
        let mut rebuilt = since.clone();
        rebuilt.merge(&out);
        if a.dominates(&since) {
            prop_assert_eq!(rebuilt, a);
        }
    }

    #[test]
    fn merge_is_idempotent_and_an_upper_bound(a in vclock(), b in vclock()) {
        prop_assert_eq!(merged(&a, &a), a.clone());
        let m = merged(&a, &b);
        prop_assert!(m.dominates(&a) && m.dominates(&b));
        for (p, c) in m.iter() {
            prop_assert_eq!(c, a.get(p).max(b.get(p)));
        }
    }

    #[test]
    fn happened_before_is_a_strict_partial_order(a in vclock(), b in vclock(), c in vclock()) {
        prop_assert!(!a.happened_before(&a), "irreflexive");
        if a.happened_before(&b) {
            prop_assert!(!b.happened_before(&a), "asymmetric");
            prop_assert_eq!(b.compare(&a), CausalOrder::After);
        }
        if a.happened_before(&b) && b.happened_before(&c) {
            prop_assert!(a.happened_before(&c), "transitive");
        }
        prop_assert_eq!(a.concurrent_with(&b), b.concurrent_with(&a));
    }

    #[test]
    fn vector_clock_encoding_round_trips(v in wide_vclock()) {
        let bytes = v.to_bytes();
        prop_assert_eq!(VectorClock::from_bytes(&bytes), Ok(v));
    }

    #[test]
    fn varint_round_trips_within_nine_bytes(x in any::<u64>()) {
        let b = x.to_bytes();
        prop_assert!(b.len() <= 9);
        prop_assert_eq!(u64::from_bytes(&b), Ok(x));
        let t = HlcTimestamp::from_u64(x);
        prop_assert_eq!(HlcTimestamp::from_bytes(&t.to_bytes()), Ok(t));
    }

    #[test]
    fn random_bytes_decode_to_an_error_or_a_canonical_value(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        // Never a panic; when it decodes, re-encoding gives the same bytes (one encoding per value).
        if let Ok(v) = VectorClock::from_bytes(&bytes) {
            prop_assert_eq!(v.to_bytes(), bytes.clone());
        }
        if let Ok(x) = u64::from_bytes(&bytes) {
            prop_assert_eq!(x.to_bytes(), bytes.clone());
        }
        let _ = ProcessId::from_bytes(&bytes);
        let _ = HlcTimestamp::from_bytes(&bytes);
    }

    /// Random executions of 4 processes: every event records its clocks; true causality is the
    /// transitive closure of program order and message edges. Then for all pairs:
    /// `a → b ⇔ V(a) < V(b)`, and `a → b ⇒ L(a) < L(b)` and `H(a) < H(b)` (the clock condition).
    #[test]
    fn clock_condition_on_random_executions(
        steps in prop::collection::vec((0usize..4, 0u8..3, 0usize..4, 0u64..3), 1..60)
    ) {
        const N: usize = 4;
        struct P { l: LamportClock, v: VectorClock, h: HybridClock, last: Option<usize> }
        let ids: Vec<ProcessId> = (0..N as u32).map(|i| ProcessId::new(0, i + 1)).collect();
        let mut procs: Vec<P> = (0..N).map(|_| P { l: LamportClock::new(), v: VectorClock::new(), h: HybridClock::new(), last: None }).collect();
        // Events: (lamport, vector, hlc); preds: direct predecessors.
        let mut events: Vec<(u64, VectorClock, HlcTimestamp)> = Vec::new();
        let mut preds: Vec<Vec<usize>> = Vec::new();
        let mut in_flight: Vec<(usize, usize, u64, VectorClock, HlcTimestamp)> = Vec::new(); // (to, send event, l, v, h)
        let mut pt = 1_000u64;
        for (p, op, q, dt) in steps {
            pt += dt;
            let phys = pt + (p as u64) * 7; // skewed physical clocks
            let mut pred: Vec<usize> = procs[p].last.into_iter().collect();
            match op {
                0 => { procs[p].l.tick(); procs[p].v.tick(ids[p]); procs[p].h.now(phys); }
                1 => {
                    procs[p].l.tick(); procs[p].v.tick(ids[p]); procs[p].h.now(phys);
                    in_flight.push((q, events.len(), procs[p].l.time(), procs[p].v.clone(), procs[p].h.last()));
                }
                _ => {
                    let Some(i) = in_flight.iter().position(|m| m.0 == p) else { continue };
                    let (_, from, l, v, h) = in_flight.remove(i);
                    procs[p].l.merge(l).unwrap();
                    procs[p].v.merge(&v);
                    procs[p].v.tick(ids[p]);
                    procs[p].h.update(h, phys.max(h.physical_ms())).unwrap();
                    pred.push(from);
                }
            }
            procs[p].last = Some(events.len());
            events.push((procs[p].l.time(), procs[p].v.clone(), procs[p].h.last()));
            preds.push(pred);
        }
        // Transitive closure (events are in a causal order already).
        let n = events.len();
        let mut before = vec![vec![false; n]; n];
        for b in 0..n {
            for &a in &preds[b] {
                before[a][b] = true;
                for row in before.iter_mut() {
                    if row[a] {
                        row[b] = true;
                    }
                }
            }
        }
        for a in 0..n {
            for b in 0..n {
                let (la, va, ha) = &events[a];
                let (lb, vb, hb) = &events[b];
                prop_assert_eq!(before[a][b], va.happened_before(vb), "vector clocks characterise causality");
                if before[a][b] {
                    prop_assert!(la < lb, "Lamport clock condition");
                    prop_assert!(ha < hb, "HLC clock condition");
                }
            }
        }
    }
}
