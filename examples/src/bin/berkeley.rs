//! The Berkeley algorithm (Gusella & Zatti 1989) on 5 in-process nodes.
//!
//! A master polls every node, estimates each clock's offset from round-trip probes (the
//! least-delayed of 8, NTP's clock filter), averages the clocks that agree with the median
//! (falsetickers excluded, its own clock included) and sends each node the signed delta to that
//! average. Nodes step their first correction and slew later ones at 500 ppm, so time never runs
//! backwards, and estimate their frequency error so drift stops accumulating. Here the clocks
//! start up to ±1 s apart and run up to ±200 ppm fast or slow.
//!
//! Prints each round's precision (largest minus smallest offset from the machine's real clock)
//! and writes `berkeley.svg` into `--out` (default `target/berkeley/`).
//!
//! ```text
//! cargo run -p examples --bin berkeley -- --rounds 12 --interval-ms 250
//! ```

use clap::Parser;
use examples::berkeley_demo::{self, DemoConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Berkeley clock synchronisation on 5 in-process nodes, with a plot")]
struct Args {
    /// Folder for `berkeley.svg` (created if missing).
    #[arg(long, default_value = "target/berkeley")]
    out: PathBuf,
    /// Rounds to run.
    #[arg(long, default_value_t = 12)]
    rounds: u32,
    /// Round interval in ms.
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    /// Seed of the clocks' skews and drifts.
    #[arg(long, default_value_t = 6)]
    seed: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = DemoConfig {
        rounds: args.rounds,
        interval: Duration::from_millis(args.interval_ms.max(1)),
        seed: args.seed,
        ..DemoConfig::default()
    };
    let result = actix::System::new().block_on(berkeley_demo::run(&config));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berkeley: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for (id, skew, drift) in &report.nodes {
        println!("node {id}: skew {skew:+} ms, drift {drift:+.1} ppm");
    }
    print!("{}", berkeley_demo::summary(&report));
    let path = args.out.join("berkeley.svg");
    match berkeley_demo::write_svg(&report, &path) {
        Ok(()) => {
            println!("plot: {}", path.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berkeley: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
