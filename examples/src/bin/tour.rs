//! The tour of actix-coord: an in-process cluster that shows every capability built so far and
//! writes its causal log.
//!
//! Seven chapters: (1) clocks on every message in one process, (2) the same across three nodes
//! on loopback ports, (3) a distributed lock (the ticket office), (4) Berkeley clock
//! synchronisation, (5) a bully election and its failover, (6) total-order and causal
//! broadcast, (7) a Chandy–Lamport snapshot of bank branches paying each other. Every chapter's actors are causal, so one causal log holds them all; the tour
//! checks it (ShiViz's rules, critical sections never concurrent, fences increasing, at most one
//! leader per term, broadcast deliveries in one order) and draws it.
//!
//! Part 1, clocks on every message: a story of Lamport's kind. The cook borrows the cookbook
//! from the library (a request and its reply), cooks dinner from the recipe, writes a letter to
//! the reader suggesting the cookbook and returns it. The reader, once the letter has arrived,
//! borrows the cookbook and reads it. Meanwhile the gardener waters the garden, an unrelated
//! and therefore concurrent history. None of the actors' handlers mention clocks: their context
//! line says `CausalContext<Self>`, and that is all.
//!
//! Writes `tour.log` (ShiViz), `tour.jsonl` and the space-time diagram `tour.svg` /
//! `tour.html` into `--out` (default `target/tour/`), and the chapters' other outputs (the seat
//! map, the Berkeley plot, the leader changes) into `--out/outputs/`; checks the log against ShiViz's rules, and
//! prints which events happened before which and which were concurrent, as decided by vector
//! clocks.

use actix_coord::trace::CausalLayer;
use clap::Parser;
use examples::{post, story};
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::prelude::*;

/// Runs the tour and writes its causal log.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Folder for the logs (created if missing).
    #[arg(long, default_value = "target/tour")]
    out: PathBuf,
    /// Console log filter (e.g. `info`, `debug`); the causal log records every tick regardless.
    #[arg(long, default_value = "warn")]
    console: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let jsonl = args.out.join("tour.jsonl");
    let shiviz = args.out.join("tour.log");
    let (causal, guard) = CausalLayer::builder()
        .jsonl_path(&jsonl)
        .shiviz_path(&shiviz)
        .build()?;
    let console = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_filter(tracing_subscriber::EnvFilter::new(&args.console));
    tracing_subscriber::registry()
        .with(causal)
        .with(console)
        .init();
    actix_coord::intercept::set_external_name("main");

    println!("actix-coord tour\n");
    println!("1. Clocks on every message: the cook, the letter and the cookbook");
    actix::System::new()
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), story::run()).await })??;
    println!("   the cook, the reader, the library and the gardener are done.");

    println!("\n2. Across the network: three nodes on loopback ports, one process");
    let record = actix::System::new()
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), post::run()).await })??;
    println!("   the clerk (node 1) read \"{record}\" from the archive (node 2)");
    println!("   and filed a note with the registry (node 3); the links were mutual TLS 1.3,");
    println!("   and every message carried Lamport, vector and hybrid clocks.");

    // Outputs that are not causal logs go in their own folder, so that
    // `causal-log check target/tour/*.jsonl` reads the causal log alone.
    let outputs = args.out.join("outputs");

    println!("\n3. A distributed lock: the ticket office");
    let tickets = actix::System::new().block_on(examples::tickets::tour_demo(&outputs))?;
    for line in tickets.lines() {
        println!("   {line}");
    }

    println!("\n4. Clock synchronisation: the Berkeley daemon");
    let berkeley = actix::System::new().block_on(examples::berkeley_demo::tour_demo(&outputs))?;
    for line in berkeley.lines() {
        println!("   {line}");
    }

    println!("\n5. Leader election: the bully algorithm with terms");
    let election = actix::System::new().block_on(examples::election::tour_demo(&outputs))?;
    for line in election.lines() {
        println!("   {line}");
    }

    println!("\n6. Ordered broadcast: a replicated account and a conversation");
    let broadcast = actix::System::new().block_on(examples::broadcast_demo::tour_demo())?;
    for line in broadcast.lines() {
        println!("   {line}");
    }

    println!("\n7. A consistent snapshot: three bank branches, Chandy–Lamport");
    let snapshot = actix::System::new().block_on(examples::snapshot_demo::tour_demo())?;
    for line in snapshot.lines() {
        println!("   {line}");
    }
    guard.close()?;

    println!("\nThe causal log");

    let log = causal_log::Log::read_paths(&[&jsonl])?;
    let report = causal_log::check_shiviz_rules(&log);
    // The semantic checks too: critical sections never concurrent, fences increasing.
    let semantic = log.check();
    let svg = args.out.join("tour.svg");
    let html = args.out.join("tour.html");
    let draw = causal_log::draw::DrawOptions::default();
    log.write_diagram(&svg, &draw)?;
    log.write_diagram(&html, &draw)?;
    println!(
        "   {} events by {} processes; logs written:",
        log.events().len(),
        log.hosts().len()
    );
    println!("   - {} (open it in ShiViz)", shiviz.display());
    println!("   - {}", jsonl.display());
    println!(
        "   - {} and {} (space-time diagram; click an event in the HTML)",
        svg.display(),
        html.display()
    );
    println!(
        "   ShiViz rules: {}",
        if report.is_clean() {
            "all hold"
        } else {
            "VIOLATED"
        }
    );
    let verdict = if semantic.is_clean() {
        "yes"
    } else {
        "VIOLATED"
    };
    println!(
        "   critical sections never concurrent, fences increasing, one leader per term,\n   \
         broadcasts delivered in order: {verdict}"
    );
    println!("\n   Causality, from the vector clocks:");
    for line in story::summarize(&log)? {
        println!("   {line}");
    }
    if !report.is_clean() {
        return Err(format!("the tour's log breaks ShiViz's rules:\n{report}").into());
    }
    if !semantic.is_clean() {
        return Err(format!("the tour's log fails its checks:\n{semantic}").into());
    }
    Ok(())
}
