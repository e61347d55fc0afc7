//! Issue 6, point 4 — HLC on top: a causal actor's hybrid clock reads the `AdjustedClock` that a
//! Berkeley daemon disciplines.
//!
//! The time source is process-wide (`intercept::set_time_source`), so this test has a binary of
//! its own.

use actix::prelude::*;
use actix_coord::CausalContext;
use actix_coord::clock::physical::{
    AdjustedClock, PhysicalTime, SimulatedClock, SimulatedClockConfig, SystemClock,
};
use actix_coord::driver::{At, Command, LocalLinks, Subscribe};
use actix_coord::intercept::{self, Clocks};
use actix_coord::timesync::berkeley::{Berkeley, BerkeleyEvent};
use actix_coord::timesync::daemon::{
    self, BerkeleyCommand, DaemonConfig, MasterRule, config_for_interval,
};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const MS: i64 = 1_000_000;

#[derive(Message)]
#[rtype(result = "Clocks")]
struct GetClocks;

struct App;

impl Actor for App {
    type Context = CausalContext<Self>;
}

impl Handler<GetClocks> for App {
    type Result = MessageResult<GetClocks>;
    fn handle(&mut self, _: GetClocks, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(ctx.clocks())
    }
}

#[actix_rt::test]
async fn causal_actors_hlc_reads_the_berkeley_adjusted_clock() {
    // Three nodes whose clocks are all 0.6–1 s ahead of true time: the group agrees on ~+0.8 s.
    let members = [1u32, 2, 3];
    let offsets_ms = [600i64, 800, 1000];
    let links = LocalLinks::<Berkeley>::new();
    let mut clocks = Vec::new();
    let mut drivers = Vec::new();
    for (&id, &off) in members.iter().zip(&offsets_ms) {
        let osc = SimulatedClock::new(
            SystemClock::realtime(),
            SimulatedClockConfig {
                offset_ns: off * MS,
                ..Default::default()
            },
        )
        .unwrap();
        let clock = Arc::new(AdjustedClock::new(osc));
        let config = config_for_interval(Duration::from_millis(100));
        let machine = Berkeley::new(config, id, members).unwrap();
        let config = DaemonConfig::new(machine, clock.clone(), MasterRule::Manual);
        let d = daemon::start(At::Local(&links, id), "time", &members, config).unwrap();
        clocks.push(clock);
        drivers.push(d);
    }
    let mut rx = drivers[0].send(Subscribe::default()).await.unwrap();
    for d in &drivers {
        d.do_send(Command::<_, Infallible>::new(BerkeleyCommand::SetMaster(
            Some(3),
        )));
    }
    // Node 1's first correction (a step: nobody read its clock yet), then the HLC reads it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(BerkeleyEvent::Corrected { stepped, .. })) => {
                assert!(stepped);
                break;
            }
            Ok(Ok(_)) => {}
            other => panic!("no correction by the deadline: {other:?}"),
        }
    }
    let node1 = clocks[0].clone();
    intercept::set_time_source(move || node1.now_ms());
    let app = CausalContext::start(App);
    let before = app.send(GetClocks).await.unwrap().hlc;
    let truth_ms = SystemClock::realtime().now_ms() as i64;
    let adjusted_ms = clocks[0].now_ms() as i64;
    // The group's time is the mean, ~+800 ms; the HLC follows it, not the system clock.
    let hlc_ms = before.physical_ms() as i64;
    assert!(
        (adjusted_ms - truth_ms - 800).abs() < 50,
        "adjusted clock {} ms ahead of true time",
        adjusted_ms - truth_ms
    );
    assert!(
        (hlc_ms - adjusted_ms).abs() <= 5,
        "HLC {hlc_ms} vs adjusted {adjusted_ms}"
    );
    // It keeps following the (now slewed, never stepped) clock and stays monotonic.
    let mut last = before;
    for _ in 0..3 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(_)) => {}
            other => panic!("daemon stopped: {other:?}"),
        }
        let now = app.send(GetClocks).await.unwrap().hlc;
        assert!(now > last);
        let adjusted_ms = clocks[0].now_ms() as i64;
        assert!((now.physical_ms() as i64 - adjusted_ms).abs() <= 5);
        last = now;
    }
    // Now that the clock was read, a later correction could only be slewed.
    assert!(clocks[0].is_exposed());
}
