//! Cost of the causal context against plain actix, measured in the same run.
//!
//! `roundtrip/*`: actor A does 100 `send().await` round trips to actor B per iteration (A asks,
//! B answers, A awaits the answer), with
//! * `plain`: `actix::Context` (the baseline),
//! * `lamport`: `CausalContext` carrying the Lamport clock only,
//! * `vector16`: `CausalContext` carrying Lamport and a 16-entry vector clock,
//! * `all16`: Lamport, 16-entry vector and hybrid clocks.
//!
//! `clock/*`: encode, decode, merge and compare of 16-entry vector clocks.
//!
//! After each round-trip configuration, a counting allocator (switched on only while it counts)
//! prints its allocations per round trip: `(allocs(Go(3000)) - allocs(Go(1000))) / 2000`, so the
//! `Go` message's own cost cancels out.
//!
//! Run: `cargo bench -p actix-coord --bench intercept`; ratios in docs/benchmarks.md.

use actix::prelude::*;
use actix_coord::clock::encoding::{Decode, Encode};
use actix_coord::clock::{ProcessId, VectorClock};
use actix_coord::intercept::{self, CausalBuilder, CausalContext, ClockSet, Stamp};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const ROUND_TRIPS: u64 = 100;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Allocations per round trip of `asker`: the difference of two runs cancels `Go`'s own.
fn allocations_per_round_trip<A>(sys: &SystemRunner, asker: &Addr<A>) -> f64
where
    A: Actor + Handler<Go>,
    A::Context: actix::dev::ToEnvelope<A, Go>,
{
    let run = |n: u64| {
        let ((), allocs, _) = counting::count(|| {
            sys.block_on(asker.send(Go(n))).unwrap();
        });
        allocs
    };
    run(10); // warm
    let (a, b) = (run(1000), run(3000));
    (b as f64 - a as f64) / 2000.0
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);

#[derive(Message)]
#[rtype(result = "u64")]
struct Go(u64);

macro_rules! pair {
    ($mod:ident, $ctx:ty) => {
        mod $mod {
            use super::*;
            pub struct Answerer;
            impl Actor for Answerer {
                type Context = $ctx;
            }
            impl Handler<Ping> for Answerer {
                type Result = u64;
                fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
                    m.0 + 1
                }
            }
            pub struct Asker {
                pub peer: Addr<Answerer>,
            }
            impl Actor for Asker {
                type Context = $ctx;
            }
            impl Handler<Go> for Asker {
                type Result = ResponseActFuture<Self, u64>;
                fn handle(&mut self, m: Go, _: &mut Self::Context) -> Self::Result {
                    let peer = self.peer.clone();
                    Box::pin(
                        async move {
                            let mut x = 0;
                            for _ in 0..m.0 {
                                x = peer.send(Ping(x)).await.unwrap();
                            }
                            x
                        }
                        .into_actor(self),
                    )
                }
            }
        }
    };
}

pair!(plain, Context<Self>);
pair!(causal, CausalContext<Self>);

/// A stamp from 14 other processes, to grow the actors' vector clocks to 16 entries.
fn wide_stamp() -> Stamp {
    let entries = (1..=14).map(|i| (ProcessId::new(9, i), 3));
    Stamp {
        from: ProcessId::new(9, 1),
        lamport: 10,
        vector: Some(std::sync::Arc::new(
            VectorClock::from_entries(entries).unwrap(),
        )),
        hlc: None,
    }
}

fn roundtrip(c: &mut Criterion) {
    let sys = System::new();
    let mut g = c.benchmark_group("roundtrip");
    g.throughput(Throughput::Elements(ROUND_TRIPS));

    let plain_asker = sys.block_on(async {
        let b = plain::Answerer.start();
        plain::Asker { peer: b }.start()
    });
    g.bench_function("plain", |bench| {
        bench.iter(|| sys.block_on(plain_asker.send(Go(ROUND_TRIPS))).unwrap())
    });
    let mut allocations = vec![("plain", allocations_per_round_trip(&sys, &plain_asker))];

    for (name, clocks) in [
        ("lamport", ClockSet::LAMPORT_ONLY),
        (
            "vector16",
            ClockSet {
                vector: true,
                hybrid: false,
            },
        ),
        ("all16", ClockSet::ALL),
    ] {
        let asker = sys.block_on(async {
            let b = CausalBuilder::new().clocks(clocks).start(causal::Answerer);
            let a = CausalBuilder::new()
                .clocks(clocks)
                .start(causal::Asker { peer: b.clone() });
            if clocks.vector {
                // Grow both clocks to 16 entries: 14 remote processes, A and B.
                intercept::deliver(&a, Go(1), wide_stamp());
                a.send(Go(1)).await.unwrap();
                let n = a.send(Go(0)).await.map(|_| ()).ok();
                black_box(n);
            }
            a
        });
        g.bench_function(name, |bench| {
            bench.iter(|| sys.block_on(asker.send(Go(ROUND_TRIPS))).unwrap())
        });
        allocations.push((name, allocations_per_round_trip(&sys, &asker)));
    }
    g.finish();
    println!("allocations per round trip (counting allocator):");
    for (name, a) in allocations {
        println!("  {name:<10} {a:.2}");
    }
}

fn clock_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("clock");
    let a = VectorClock::from_entries((1..=16).map(|i| (ProcessId::new(1, i), u64::from(i) * 100)))
        .unwrap();
    let b = VectorClock::from_entries(
        (1..=16).map(|i| (ProcessId::new(1, i), 1700 - u64::from(i) * 100)),
    )
    .unwrap();
    let bytes = a.to_bytes();
    g.bench_function("encode16", |bench| bench.iter(|| black_box(&a).to_bytes()));
    g.bench_function("decode16", |bench| {
        bench.iter(|| VectorClock::from_bytes(black_box(&bytes)).unwrap())
    });
    g.bench_function("merge16", |bench| {
        bench.iter(|| {
            let mut m = black_box(&a).clone();
            m.merge(black_box(&b));
            m
        })
    });
    g.bench_function("compare16", |bench| {
        bench.iter(|| black_box(&a).compare(black_box(&b)))
    });
    g.finish();
}

criterion_group!(benches, roundtrip, clock_ops);
criterion_main!(benches);
