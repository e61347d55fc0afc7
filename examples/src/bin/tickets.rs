//! The ticket office: five box offices sell the 100 seats of one concert under a distributed
//! lock, and no seat is ever sold twice.
//!
//! Each box office is a member of an in-process lock cluster (any of the three algorithms:
//! `--lock lamport|ricart-agrawala|suzuki-kasami`). A customer wants one to four seats; inside
//! the critical section the office picks the lowest free seats, lets the customer hesitate
//! (other offices run meanwhile) and books them with its fencing token. The lock makes the
//! pick-then-book atomic; the fencing token lets the seat map refuse a holder that lost the lock.
//!
//! The run writes its causal log (`tickets.jsonl`, `tickets.log` for ShiViz) into `--out` and
//! checks from the vector clocks that no two critical sections were concurrent.
//!
//! ```text
//! cargo run -p examples --bin tickets -- --lock suzuki-kasami
//! ```

use actix_coord::mutex::LockAlgorithm;
use actix_coord::trace::CausalLayer;
use clap::Parser;
use std::path::PathBuf;
use tracing_subscriber::prelude::*;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Five box offices sell 100 seats under a distributed lock")]
struct Args {
    /// Lock algorithm: lamport, ricart-agrawala or suzuki-kasami.
    #[arg(long, default_value = "ricart-agrawala")]
    lock: LockAlgorithm,
    /// Box offices.
    #[arg(long, default_value_t = 5)]
    offices: u32,
    /// Seats.
    #[arg(long, default_value_t = 100)]
    seats: u32,
    /// Folder for the causal log.
    #[arg(long, default_value = "target/tickets")]
    out: PathBuf,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.offices == 0 {
        return Err("--offices must be at least 1".into());
    }
    std::fs::create_dir_all(&args.out)?;
    let jsonl = args.out.join("tickets.jsonl");
    let (causal, guard) = CausalLayer::builder()
        .jsonl_path(&jsonl)
        .shiviz_path(args.out.join("tickets.log"))
        .build()?;
    tracing_subscriber::registry().with(causal).init();
    actix_coord::intercept::set_external_name("main");
    let report = actix::System::new().block_on(examples::tickets::sell(
        args.lock,
        args.offices,
        args.seats,
    ))?;
    guard.close()?;
    println!(
        "{} box offices, {} seats, {} lock: {} sold in {:.0} ms",
        args.offices,
        args.seats,
        args.lock,
        report.sold(),
        report.elapsed.as_secs_f64() * 1e3
    );
    for line in report.summary() {
        println!("  {line}");
    }
    let log = causal_log::Log::read_paths(&[&jsonl])?;
    let check = log.check();
    let sections = log
        .events()
        .iter()
        .filter(|e| e.kind == "lock.enter")
        .count();
    println!(
        "causal log {}: {} events, {sections} critical sections, {}",
        jsonl.display(),
        log.events().len(),
        if check.is_clean() {
            "none concurrent (checked from the vector clocks)"
        } else {
            "CHECK FAILED"
        }
    );
    if !check.is_clean() {
        return Err(format!("{check}").into());
    }
    Ok(())
}
