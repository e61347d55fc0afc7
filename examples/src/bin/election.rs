//! Leader election with the bully algorithm: five nodes elect node 5, node 5 is killed, node 4
//! takes over with a higher term.
//!
//! The live member with the highest id leads. A node that loses its leader sends ELECTION to
//! every higher member; one that hears no OK wins and announces itself with COORDINATOR. Every
//! leader has a term, a ballot `(round, leader)` strictly higher than its predecessor's, so a
//! message from a stale leader is recognised and refused. Each member runs a real node over TCP
//! on 127.0.0.1 on its own thread; killing the leader closes its sockets as `kill -9` would.
//!
//! Writes the causal log (`election.jsonl`, `election.log` for ShiViz) and every leader change
//! (`changes.jsonl`) into `--out` (default `target/election/`), then checks the log: one leader
//! per term.
//!
//! ```text
//! cargo run -p examples --bin election
//! ```

use actix_coord::trace::CausalLayer;
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use tracing_subscriber::prelude::*;

/// Runs the election example.
#[derive(Parser, Debug)]
#[command(about = "Five nodes elect a leader; the leader is killed; the next takes over")]
struct Args {
    /// Folder for the logs (created if missing).
    #[arg(long, default_value = "target/election")]
    out: PathBuf,
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    nodes: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let jsonl = args.out.join("election.jsonl");
    let (causal, guard) = CausalLayer::builder()
        .jsonl_path(&jsonl)
        .shiviz_path(args.out.join("election.log"))
        .build()?;
    tracing_subscriber::registry().with(causal).init();
    actix_coord::intercept::set_external_name("main");
    let report =
        actix::System::new().block_on(examples::election::five_nodes_failover(args.nodes))?;
    guard.close()?;
    println!("{}", report.summary());
    let changes = args.out.join("changes.jsonl");
    let mut f = std::fs::File::create(&changes)?;
    for l in &report.changes {
        writeln!(f, "{l}")?;
    }
    let log = causal_log::Log::read_paths(&[&jsonl])?;
    let elected = log
        .events()
        .iter()
        .filter(|e| e.kind == "leader.elected")
        .count();
    let report = log.check();
    let leader_errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == causal_log::Rule::Leader)
        .collect();
    println!(
        "causal log {}: {elected} leader.elected events, one leader per term: {}",
        jsonl.display(),
        if leader_errors.is_empty() {
            "holds"
        } else {
            "VIOLATED"
        }
    );
    for f in &leader_errors {
        println!("  {f}");
    }
    println!("every leader change: {}", changes.display());
    if leader_errors.is_empty() {
        Ok(())
    } else {
        Err("leader rule violated".into())
    }
}
