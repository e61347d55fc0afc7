//! `node --workload berkeley`: the Berkeley daemon over a simulated bad clock on this machine.
//!
//! Each `node` process builds an oscillator that is `--skew-ms` off the machine's real-time
//! clock and runs `--drift-ppm` fast ([`SimulatedClock`] over [`SystemClock::realtime`]), an
//! [`AdjustedClock`] over it, and a Berkeley daemon ([`actix_coord::timesync::daemon`]) that
//! disciplines it. The master is the leader of a bully election the node runs beside it
//! (`--master elected`, the default, with the `election` workload's timing options), or the
//! highest live node (`--master highest-live`, no election). Since every process reads the same real
//! clock underneath, each can tell its true offset, which a single machine's test compares.
//!
//! One JSON line per round on stdout, for every correction this node applies:
//!
//! ```text
//! {"node":2,"master":5,"round":3,"delta_ns":-41233,"stepped":false,"freq_ppm":-151.2,
//!  "offset_ns":35120,"true_ns":1795000000123456789,"spread_ns":null}
//! ```
//!
//! * `delta_ns`: the correction applied (a step on the first one, else slewed at 500 ppm);
//! * `freq_ppm`: the frequency correction now in force;
//! * `offset_ns`: this node's adjusted clock minus the machine's real-time clock, read when the
//!   correction arrives (after a step, before a slew takes effect);
//! * `spread_ns`: on the master's lines, the estimated precision — the largest minus the smallest
//!   trusted offset it measured this round (with `trusted` and `excluded` node lists).
//!
//! A round without a majority prints `{"node":5,"master":5,"round":7,"no_majority":true,...}`.

use crate::workloads::election::ElectionArgs;
use actix_coord::clock::physical::{
    AdjustedClock, HardwareClock, PhysicalTime, SimulatedClock, SimulatedClockConfig, SystemClock,
};
use actix_coord::driver::At;
use actix_coord::election::Election;
use actix_coord::intercept;
use actix_coord::net::Node;
use actix_coord::timesync::berkeley::{Berkeley, BerkeleyConfig, BerkeleyEvent};
use actix_coord::timesync::daemon::{self, MasterRule, config_for_interval};
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Who names the Berkeley master.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MasterChoice {
    /// The leader of a bully election run beside the daemon (registered as `election`).
    #[default]
    Elected,
    /// The highest node id the failure detector sees up; no election.
    HighestLive,
}

/// Options of the `berkeley` workload.
#[derive(clap::Args, Debug, Clone)]
pub struct BerkeleyArgs {
    /// Initial offset of this node's oscillator from the real clock, in ms (may be negative).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub skew_ms: i64,
    /// Frequency error of this node's oscillator, in ppm (may be negative; |x| < 500 000).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub drift_ppm: f64,
    /// Round interval in ms (production would use 16 000).
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Largest half-width of the falseticker band, in ms. Berkeley's default, 500 ms, assumes
    /// clocks roughly set at boot; skews of ±1 s need more, or a majority may never agree
    /// (e.g. 3 clocks at −0.7, 0, +0.7 s).
    #[arg(long, default_value_t = 2000)]
    pub max_band_ms: u64,
    /// Exit 0 after this many corrections (0: run until killed).
    #[arg(long, default_value_t = 0)]
    pub rounds: u64,
    /// Once the clock is synchronised (first correction), make this process's hybrid logical
    /// clocks read it (`intercept::set_time_source`).
    #[arg(long)]
    pub hlc_adjusted: bool,
    /// Who is master: the elected leader, or the highest live node.
    #[arg(long, value_enum, default_value = "elected")]
    pub master: MasterChoice,
    /// Seconds to wait for every peer before starting anyway.
    #[arg(long, default_value_t = 20)]
    pub peer_wait_secs: u64,
}

/// The name the daemon is registered under on every node.
pub const DAEMON_NAME: &str = "berkeley";

/// The name of the election naming the master (with `--master elected`).
pub const ELECTION_NAME: &str = "election";

/// Runs the workload on `node` with the other members `peers`; returns the exit code. With
/// `--master elected`, the election runs with `election`'s settings.
pub async fn run(node: &Node, peers: &[u32], args: &BerkeleyArgs, election: &ElectionArgs) -> i32 {
    let me = node.id();
    let oscillator = match SimulatedClock::new(
        SystemClock::realtime(),
        SimulatedClockConfig {
            offset_ns: args.skew_ms.saturating_mul(1_000_000),
            drift_ppm: args.drift_ppm,
            ..Default::default()
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("node{me}: bad clock options: {e}");
            return 2;
        }
    };
    let clock = Arc::new(AdjustedClock::new(oscillator));
    let config = BerkeleyConfig {
        max_band_ns: args.max_band_ms.saturating_mul(1_000_000),
        ..config_for_interval(Duration::from_millis(args.interval_ms.max(1)))
    };
    let members: Vec<u32> = peers.iter().copied().chain([me]).collect();
    let machine = match Berkeley::new(config, me, members.iter().copied()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("node{me}: bad configuration: {e}");
            return 2;
        }
    };
    // Start together: wait (with a deadline) until every peer is connected.
    let mut events = node.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.peer_wait_secs);
    while !peers.iter().all(|p| node.is_up(*p)) {
        if tokio::time::timeout_at(deadline, events.recv())
            .await
            .is_err()
        {
            eprintln!(
                "node{me}: peers not all up after {} s; starting anyway",
                args.peer_wait_secs
            );
            break;
        }
    }
    drop(events);
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(0u64);
    let observer = {
        let clock = clock.clone();
        let hlc = args.hlc_adjusted;
        let mut installed = false;
        let mut last_round: Option<serde_json::Value> = None;
        let mut count = 0u64;
        Box::new(move |e: &BerkeleyEvent| {
            let truth = SystemClock::realtime().now_ns();
            let offset = clock.sample_ns() as i128 - truth as i128;
            let line = match e {
                // Applied to the clock by the daemon; the `Corrected` that follows reports it.
                BerkeleyEvent::Adjust(_) => return,
                BerkeleyEvent::RoundComplete {
                    spread_ns,
                    trusted,
                    excluded,
                    ..
                } => {
                    // Printed with the master's own correction, which follows at once.
                    last_round = Some(json!({
                        "spread_ns": spread_ns, "trusted": trusted, "excluded": excluded,
                    }));
                    return;
                }
                BerkeleyEvent::NoMajority {
                    round,
                    agreeing,
                    needed,
                } => json!({
                    "node": me, "master": me, "round": round, "no_majority": true,
                    "agreeing": agreeing, "needed": needed, "offset_ns": offset as i64,
                    "true_ns": truth,
                }),
                BerkeleyEvent::Corrected {
                    master,
                    round,
                    delta_ns,
                    stepped,
                    frequency_ppm,
                } => {
                    let mut l = json!({
                        "node": me, "master": master, "round": round, "delta_ns": delta_ns,
                        "stepped": stepped, "freq_ppm": frequency_ppm,
                        "offset_ns": offset as i64, "true_ns": truth, "spread_ns": null,
                    });
                    if let (true, Some(o), Some(serde_json::Value::Object(r))) =
                        (*master == me, l.as_object_mut(), last_round.take())
                    {
                        o.extend(r);
                    }
                    if hlc && !installed {
                        installed = true;
                        let c = clock.clone();
                        intercept::set_time_source(move || c.now_ms());
                    }
                    count += 1;
                    l
                }
            };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            let _ = done_tx.send(count);
        }) as actix_coord::driver::Observer<BerkeleyEvent>
    };
    // The election actor lives with the node; its view is all the daemon needs.
    let rule = match args.master {
        MasterChoice::HighestLive => MasterRule::HighestLive,
        MasterChoice::Elected => {
            match Election::start(At::Node(node), ELECTION_NAME, &members, election.config()) {
                Ok(e) => MasterRule::Elected(e.view()),
                Err(e) => {
                    eprintln!("node{me}: election: {e}");
                    return 2;
                }
            }
        }
    };
    let config = daemon::DaemonConfig::new(machine, clock.clone(), rule).with_observer(observer);
    if let Err(e) = daemon::start(At::Node(node), DAEMON_NAME, &members, config) {
        eprintln!("node{me}: {e}");
        return 2;
    }
    eprintln!(
        "node{me}: berkeley daemon started (skew {} ms, drift {} ppm, interval {} ms, master {:?})",
        args.skew_ms, args.drift_ppm, args.interval_ms, args.master
    );
    if args.rounds == 0 {
        std::future::pending::<()>().await;
    }
    let rounds = args.rounds;
    match done_rx.wait_for(|&n| n >= rounds).await {
        Ok(_) => 0,
        Err(_) => 1,
    }
}
