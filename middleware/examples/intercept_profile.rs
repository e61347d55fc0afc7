//! The `intercept` bench's pair of actors in a `main`, for instruction counts under callgrind.
//!
//! Actor A does `N` `send().await` round trips to actor B inside its `ResponseActFuture`, with
//! `plain` (`actix::Context`), `lamport`, `vector16` or `all16` clocks (as in
//! `benches/intercept.rs`), or `explicit` (both keep `actix::Context`; B merges `Stamped<Ping>`
//! through the explicit layer, all clocks; A's sends are the external process's).
//! Instructions per round trip are the difference between two runs with different `N`, divided
//! by the difference in `N`, so setup and teardown cancel out:
//!
//! ```text
//! cargo build --release -p actix-coord --example intercept_profile
//! for n in 2000 22000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.lamport.$n \
//!     target/release/examples/intercept_profile lamport $n
//! done
//! # (Ir(22000) - Ir(2000)) / 20000, Ir from the "summary:" line of each output file
//! ```
//!
//! `middleware/scripts/intercept_callgrind.sh` runs all four configurations that way.

use actix::prelude::*;
use actix_coord::clock::{ProcessId, VectorClock};
use actix_coord::intercept::{self, CausalBuilder, CausalContext, ClockSet, Stamp};
use std::hint::black_box;

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

/// The explicit layer: both actors keep `Context<Self>`; B merges `Stamped<Ping>` into its
/// `ExplicitProcess`, A's sends are stamped by the external process.
mod explicit {
    use super::*;
    use actix_coord::intercept::{ExplicitProcess, StampedAddrExt};
    #[derive(Default)]
    pub struct Answerer {
        process: ExplicitProcess,
    }
    impl Actor for Answerer {
        type Context = Context<Self>;
    }
    impl Handler<Ping> for Answerer {
        type Result = u64;
        fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 {
            m.0 + 1
        }
    }
    actix_coord::stamped_handlers!(Answerer, process; Ping);
    pub struct Asker {
        pub peer: Addr<Answerer>,
    }
    impl Actor for Asker {
        type Context = Context<Self>;
    }
    impl Handler<Go> for Asker {
        type Result = ResponseActFuture<Self, u64>;
        fn handle(&mut self, m: Go, _: &mut Self::Context) -> Self::Result {
            let peer = self.peer.clone();
            Box::pin(
                async move {
                    let mut x = 0;
                    for _ in 0..m.0 {
                        x = peer.send_stamped(Ping(x)).await.unwrap();
                    }
                    x
                }
                .into_actor(self),
            )
        }
    }
}

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

fn main() {
    let mut args = std::env::args().skip(1);
    let config = args.next().unwrap_or_else(|| "lamport".to_owned());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    if config == "explicit" {
        let sys = System::new();
        let x = sys.block_on(async move {
            let b = explicit::Answerer::default().start();
            let a = explicit::Asker { peer: b }.start();
            a.send(Go(n)).await.unwrap()
        });
        println!("{config} {}", black_box(x));
        return;
    }
    let clocks = match config.as_str() {
        "plain" => None,
        "lamport" => Some(ClockSet::LAMPORT_ONLY),
        "vector16" => Some(ClockSet {
            vector: true,
            hybrid: false,
        }),
        "all16" => Some(ClockSet::ALL),
        other => panic!("unknown configuration {other}: plain, lamport, vector16, all16, explicit"),
    };
    let sys = System::new();
    let x = sys.block_on(async move {
        match clocks {
            None => {
                let b = plain::Answerer.start();
                let a = plain::Asker { peer: b }.start();
                a.send(Go(n)).await.unwrap()
            }
            Some(clocks) => {
                let b = CausalBuilder::new().clocks(clocks).start(causal::Answerer);
                let a = CausalBuilder::new()
                    .clocks(clocks)
                    .start(causal::Asker { peer: b.clone() });
                if clocks.vector {
                    // Grow both clocks to 16 entries: 14 remote processes, A and B.
                    intercept::deliver(&a, Go(1), wide_stamp());
                    a.send(Go(1)).await.unwrap();
                }
                a.send(Go(n)).await.unwrap()
            }
        }
    });
    println!("{config} {}", black_box(x));
}
