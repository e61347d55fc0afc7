//! How cost grows with the number of members, in seeded simulation: for N = 3, 5, 9, 17, 33,
//! each lock algorithm's messages and bytes per critical section and acquire latency, the bully
//! election's time and messages to a stable leader after the leader's crash, a Berkeley round's
//! duration, messages and precision, and the bytes of a vector-clock stamp on the wire.
//!
//! The nodes are real (`Node` over turmoil's simulated TCP, Noise-secured, clocks on every
//! message); every link has the same fixed one-way latency of 1 ms, so latencies read as
//! message delays. The Berkeley figures come from its virtual-time simulator (the same pure
//! machine the daemon runs; a turmoil host shares the process's clock, so it could not show a
//! precision).
//!
//! Run: `cargo bench -p integration-tests --bench scaling` (release; a few seconds). It prints
//! the Markdown tables of `docs/benchmarks.md` and writes the plot to `docs/scaling.svg`, or to
//! `$SCALING_SVG` when set. `SCALING_N=3,5` limits the sizes.

#[path = "scaling/sim.rs"]
mod sim;

use actix_coord::mutex::LockAlgorithm;
use plotters::prelude::*;
use sim::{BerkeleyFigures, ElectionFigures, LockFigures, Loss};
use std::time::Duration;

const ALGORITHMS: [LockAlgorithm; 3] = [
    LockAlgorithm::Lamport,
    LockAlgorithm::RicartAgrawala,
    LockAlgorithm::SuzukiKasami,
];

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<u32> = match std::env::var("SCALING_N") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => vec![3, 5, 9, 17, 33],
    };
    let started = std::time::Instant::now();
    let mut locks: Vec<(LockAlgorithm, Vec<LockFigures>)> = Vec::new();
    for a in ALGORITHMS {
        let runs = sizes.iter().map(|&n| sim::lock_run(1, a, n, 2)).collect();
        locks.push((a, runs));
    }
    let elections: Vec<(Loss, ElectionFigures)> = [Loss::Crash, Loss::Silent]
        .into_iter()
        .flat_map(|how| {
            sizes
                .iter()
                .map(move |&n| (how, sim::election_run(1, n, how)))
        })
        .collect();
    let berkeley: Vec<BerkeleyFigures> = sizes.iter().map(|&n| sim::berkeley_run(1, n)).collect();
    let stamps: Vec<(u32, (usize, usize, usize))> =
        sizes.iter().map(|&n| (n, sim::stamp_bytes(n))).collect();

    println!("### Locks: the lock moving to the next member every time, 2 turns each\n");
    println!(
        "| N | algorithm | messages per section (theory) | bytes per section | bytes per message | acquire p50 / max |"
    );
    println!("|---|---|---|---|---|---|");
    for (a, runs) in &locks {
        for r in runs {
            println!(
                "| {} | {a} | {:.2} ({}) | {:.0} | {:.0} | {} / {} |",
                r.n,
                r.messages_per_section,
                sim::lock_theory(*a, r.n),
                r.bytes_per_section,
                r.bytes_per_section / r.messages_per_section,
                ms(r.acquire_p50),
                ms(r.acquire_max)
            );
        }
    }
    println!("\n### Bully election: the leader (node N) is lost\n");
    println!("| N | how | new leader | time to a stable leader | messages (theory) |");
    println!("|---|---|---|---|---|");
    for (how, e) in &elections {
        println!(
            "| {} | {how:?} | {} | {} | {} ({}) |",
            e.n,
            e.leader,
            ms(e.to_stable),
            e.messages,
            sim::election_theory(e.n, *how),
        );
    }
    println!("\n### Berkeley rounds (virtual-time simulator, 40 rounds)\n");
    println!(
        "| N | round duration (mean) | messages per round ((2p+1)(N−1), p = 8 probes) | steady precision |"
    );
    println!("|---|---|---|---|");
    for b in &berkeley {
        println!(
            "| {} | {} | {:.1} ({}) | {} |",
            b.n,
            us(b.round),
            b.messages_per_round,
            17 * (b.n - 1),
            us(b.precision)
        );
    }
    println!("\n### Vector-clock stamp on the wire (one tell with an 8-byte payload)\n");
    println!("| N | frame, whole clock | frame, one entry changed | frame, no vector |");
    println!("|---|---|---|---|");
    for (n, (full, delta, none)) in &stamps {
        println!("| {n} | {full} B | {delta} B | {none} B |");
    }

    let path = std::env::var("SCALING_SVG").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/scaling.svg").to_string()
    });
    plot(&path, &sizes, &locks, &elections, &berkeley, &stamps)?;
    println!(
        "\nplot written to {path}; took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

type Series = (String, Vec<(f64, f64)>, RGBColor);

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    sizes: &[u32],
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let x_max = f64::from(*sizes.iter().max().unwrap_or(&33)) + 1.0;
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("members N")
        .y_desc(y_label)
        .label_style(("sans-serif", 12))
        .draw()?;
    for (name, points, color) in series {
        let c = *color;
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

fn plot(
    path: &str,
    sizes: &[u32],
    locks: &[(LockAlgorithm, Vec<LockFigures>)],
    elections: &[(Loss, ElectionFigures)],
    berkeley: &[BerkeleyFigures],
    stamps: &[(u32, (usize, usize, usize))],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((2, 2));
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN];
    let x = |n: u32| f64::from(n);
    let mut msgs: Vec<Series> = locks
        .iter()
        .zip(colors)
        .map(|((a, runs), c)| {
            let pts = runs
                .iter()
                .map(|r| (x(r.n), r.messages_per_section))
                .collect();
            (format!("{a}"), pts, c)
        })
        .collect();
    msgs.push((
        "Berkeley round".to_string(),
        berkeley
            .iter()
            .map(|b| (x(b.n), b.messages_per_round))
            .collect(),
        colors[3],
    ));
    panel(
        &areas[0],
        "Messages per critical section / per Berkeley round",
        "messages",
        sizes,
        &msgs,
    )?;
    let bytes: Vec<Series> = locks
        .iter()
        .zip(colors)
        .map(|((a, runs), c)| {
            let pts = runs.iter().map(|r| (x(r.n), r.bytes_per_section)).collect();
            (format!("{a}"), pts, c)
        })
        .collect();
    panel(
        &areas[1],
        "Bytes per critical section (acquire: 2 message delays at every N)",
        "bytes",
        sizes,
        &bytes,
    )?;
    let of = |how: Loss| {
        elections
            .iter()
            .filter(move |(h, _)| *h == how)
            .map(|(_, e)| e)
    };
    let election: Vec<Series> = vec![
        (
            "after a crash".to_string(),
            of(Loss::Crash)
                .map(|e| (x(e.n), e.messages as f64))
                .collect(),
            colors[0],
        ),
        (
            "after a silent loss".to_string(),
            of(Loss::Silent)
                .map(|e| (x(e.n), e.messages as f64))
                .collect(),
            colors[1],
        ),
        (
            "theory, crash (N−2)(N+1)".to_string(),
            of(Loss::Crash)
                .map(|e| (x(e.n), sim::election_theory(e.n, Loss::Crash) as f64))
                .collect(),
            colors[4],
        ),
    ];
    panel(
        &areas[2],
        "Bully election after the leader's crash",
        "messages",
        sizes,
        &election,
    )?;
    let wire: Vec<Series> = vec![
        (
            "whole clock".to_string(),
            stamps.iter().map(|(n, s)| (x(*n), s.0 as f64)).collect(),
            colors[0],
        ),
        (
            "one entry changed".to_string(),
            stamps.iter().map(|(n, s)| (x(*n), s.1 as f64)).collect(),
            colors[1],
        ),
    ];
    panel(
        &areas[3],
        "Frame bytes of a tell with a vector stamp",
        "bytes",
        sizes,
        &wire,
    )?;
    root.present()?;
    Ok(())
}
