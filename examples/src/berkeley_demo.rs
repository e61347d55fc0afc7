//! The Berkeley example in one process: 5 daemons over in-process links, their clocks up to ±1 s
//! off and ±200 ppm fast or slow, synchronised round by round; a plot of every node's offset.
//!
//! Each node is an [`AdjustedClock`] over a [`SimulatedClock`] over the machine's real-time
//! clock, disciplined by a [`Berkeley`] daemon ([`daemon::start`]). The nodes also run a bully
//! [`Election`] and each daemon follows it ([`follow_election`]): the master is the elected
//! leader, node 5 (the highest id). At the end of each of the master's rounds every node's offset from the real clock is
//! read at one instant, so a round's precision (largest minus smallest offset) is exact. The
//! first correction of each node is a step; later ones are slewed at 500 ppm, and each node
//! estimates its frequency error so drift stops accumulating.

use actix_coord::clock::physical::{
    AdjustedClock, HardwareClock, PhysicalClockError, SimulatedClock, SimulatedClockConfig,
    SystemClock,
};
use actix_coord::driver::At;
use actix_coord::driver::{Command, LocalLinks, Subscribe};
use actix_coord::election::{BullyConfig, Election, StartError};
use actix_coord::protocol::ConfigError;
use actix_coord::protocol::SplitMix64;
use actix_coord::timesync::berkeley::{Berkeley, BerkeleyConfig, BerkeleyEvent};
use actix_coord::timesync::daemon::{
    self, BerkeleyCommand, DaemonConfig, MasterRule, config_for_interval, follow_election,
};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Settings of a demo run.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Number of nodes (at least 2).
    pub nodes: u32,
    /// Largest initial offset from the real clock, in ms (offsets are spread over ±this).
    pub max_skew_ms: i64,
    /// Largest oscillator frequency error, in ppm (spread over ±this).
    pub max_drift_ppm: f64,
    /// Round interval.
    pub interval: Duration,
    /// Rounds to run.
    pub rounds: u32,
    /// Seed of the skews and drifts.
    pub seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            nodes: 5,
            max_skew_ms: 1000,
            max_drift_ppm: 200.0,
            interval: Duration::from_millis(250),
            rounds: 12,
            seed: 6,
        }
    }
}

/// What a demo run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoReport {
    /// Per node: id, initial skew (ms) and drift (ppm).
    pub nodes: Vec<(u32, i64, f64)>,
    /// Per sample: the master's round (0 = before the first), every node's offset from the
    /// real clock in ns (in node order).
    pub samples: Vec<(u64, Vec<i64>)>,
}

impl DemoReport {
    /// Precision (largest minus smallest offset) of each sample, in ns.
    pub fn precisions(&self) -> Vec<(u64, i64)> {
        self.samples
            .iter()
            .map(|(r, o)| {
                let max = o.iter().copied().max().unwrap_or(0);
                let min = o.iter().copied().min().unwrap_or(0);
                (*r, max - min)
            })
            .collect()
    }
}

/// Why a demo run failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The Berkeley configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A clock was refused.
    #[error(transparent)]
    Clock(#[from] PhysicalClockError),
    /// A daemon or the election could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Fewer than 2 nodes, or 0 rounds.
    #[error("the demo needs at least 2 nodes and 1 round")]
    TooSmall,
    /// The master stopped reporting rounds before the deadline.
    #[error("no round {0} before the deadline")]
    Timeout(u64),
    /// The master's actor is gone.
    #[error("the master's daemon stopped")]
    Stopped,
    /// Writing the plot failed.
    #[error("cannot write the plot {path}: {message}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn offsets(clocks: &[Arc<AdjustedClock<SimulatedClock<SystemClock>>>]) -> Vec<i64> {
    clocks
        .iter()
        .map(|c| c.sample_ns() as i64 - c.raw().inner().now_ns() as i64)
        .collect()
}

/// Runs the demo (call it on an actix system) and returns what it measured.
///
/// # Errors
/// See [`DemoError`].
pub async fn run(config: &DemoConfig) -> Result<DemoReport, DemoError> {
    if config.nodes < 2 || config.rounds == 0 {
        return Err(DemoError::TooSmall);
    }
    let mut rng = SplitMix64::new(config.seed);
    let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let ids: Vec<u32> = (1..=config.nodes).collect();
    let mut nodes = Vec::new();
    let mut clocks = Vec::new();
    for &id in &ids {
        // The first node gets the largest skew, so the plot always spans ±max_skew_ms.
        let skew = if id == 1 {
            -config.max_skew_ms
        } else {
            (unit() * config.max_skew_ms as f64).round() as i64
        };
        let drift = (unit() * config.max_drift_ppm * 10.0).round() / 10.0;
        let osc = SimulatedClock::new(
            SystemClock::realtime(),
            SimulatedClockConfig {
                offset_ns: skew.saturating_mul(1_000_000),
                drift_ppm: drift,
                ..Default::default()
            },
        )?;
        nodes.push((id, skew, drift));
        clocks.push(Arc::new(AdjustedClock::new(osc)));
    }
    let berkeley = BerkeleyConfig {
        // Clocks start up to 2 s apart: let them all count at start-up.
        max_band_ns: 2 * config.max_skew_ms.unsigned_abs() * 1_000_000 + 500_000_000,
        ..config_for_interval(config.interval)
    };
    let links = LocalLinks::<Berkeley>::new();
    let mut drivers = Vec::new();
    for (&id, clock) in ids.iter().zip(&clocks) {
        let machine = Berkeley::new(berkeley, id, ids.iter().copied())?;
        let config = DaemonConfig::new(machine, clock.clone(), MasterRule::Manual);
        drivers.push(daemon::start(At::Local(&links, id), "time", &ids, config)?);
    }
    // Bully elects the highest id, node 5: its daemon reports the rounds.
    let mut events = drivers[drivers.len() - 1]
        .send(Subscribe::default())
        .await
        .map_err(|_| DemoError::Stopped)?;
    let mut samples = vec![(0, offsets(&clocks))];
    let election_links = LocalLinks::new();
    let mut elections = Vec::new();
    for (&id, d) in ids.iter().zip(&drivers) {
        let e = Election::start(
            At::Local(&election_links, id),
            "election",
            &ids,
            BullyConfig::default(),
        )?;
        follow_election(e.view(), d.clone());
        elections.push(e);
    }
    let deadline = tokio::time::Instant::now()
        + config.interval * (config.rounds + 4)
        + Duration::from_secs(5);
    let mut last = 0;
    while last < u64::from(config.rounds) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(BerkeleyEvent::RoundComplete { round, .. })) => {
                last = round;
                samples.push((round, offsets(&clocks)));
            }
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) => return Err(DemoError::Stopped),
            Err(_) => return Err(DemoError::Timeout(last + 1)),
        }
    }
    for e in &elections {
        e.stop();
    }
    for d in &drivers {
        d.do_send(Command::<_, Infallible>::new(BerkeleyCommand::SetMaster(
            None,
        )));
    }
    Ok(DemoReport { nodes, samples })
}

/// Writes the plot of `report` to `path` (SVG): every node's offset from the real clock over the
/// rounds (top, ms), and from the group's mean once the first corrections are in (bottom, µs).
///
/// # Errors
/// [`DemoError::Plot`] when drawing or writing fails.
pub fn write_svg(report: &DemoReport, path: &Path) -> Result<(), DemoError> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| DemoError::Plot {
        path: path.to_owned(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    }
    let root = SVGBackend::new(path, (900, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(400);
    let last_round = report.samples.last().map_or(1, |s| s.0).max(1);
    let n = report.nodes.len();
    let series = |f: &dyn Fn(&[i64], usize) -> f64, from: u64| -> Vec<Vec<(u64, f64)>> {
        (0..n)
            .map(|k| {
                report
                    .samples
                    .iter()
                    .filter(|(r, _)| *r >= from)
                    .map(|(r, o)| (*r, f(o, k)))
                    .collect()
            })
            .collect()
    };
    let ms = series(&|o, k| o[k] as f64 / 1e6, 0);
    let mean = |o: &[i64]| o.iter().map(|&x| x as f64).sum::<f64>() / o.len().max(1) as f64;
    let us = series(&|o, k| (o[k] as f64 - mean(o)) / 1e3, 2);
    let bounds = |s: &[Vec<(u64, f64)>]| {
        let (lo, hi) = s
            .iter()
            .flatten()
            .fold((f64::MAX, f64::MIN), |(lo, hi), p| {
                (lo.min(p.1), hi.max(p.1))
            });
        if lo > hi {
            (-1.0, 1.0)
        } else {
            // Headroom above the data for the legend (upper right), so it covers no line.
            let pad = ((hi - lo) * 0.08).max(1e-3);
            (lo - pad, hi + (hi - lo) * 0.45 + pad)
        }
    };
    let panels = [
        (&top, &ms, "Berkeley: offset from the real clock (ms)", 0u64),
        (
            &bottom,
            &us,
            "offset from the group's mean (µs), from round 2",
            2u64,
        ),
    ];
    for (area, data, title, from) in panels {
        let (lo, hi) = bounds(data);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(from..last_round, lo..hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("round")
            .draw()
            .map_err(|e| err(&e))?;
        for (k, points) in data.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let (id, skew, drift) = report.nodes[k];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(format!("node {id}: {skew:+} ms, {drift:+.0} ppm"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// One line per sample: `round  precision  offsets…`.
pub fn summary(report: &DemoReport) -> String {
    let mut s = String::new();
    for ((round, p), (_, o)) in report.precisions().iter().zip(&report.samples) {
        let offsets: Vec<String> = o
            .iter()
            .map(|x| format!("{:+.3}", *x as f64 / 1e6))
            .collect();
        s.push_str(&format!(
            "round {round:>2}: precision {:>12.3} µs   offsets (ms) {}\n",
            *p as f64 / 1e3,
            offsets.join(" ")
        ));
    }
    s
}

/// The tour's part: a few rounds (under ~3 s), the plot written to `out_dir/berkeley.svg`, and a
/// short text summary returned.
///
/// # Errors
/// See [`DemoError`].
pub async fn tour_demo(out_dir: &Path) -> Result<String, DemoError> {
    let config = DemoConfig {
        interval: Duration::from_millis(200),
        rounds: 8,
        ..DemoConfig::default()
    };
    let report = run(&config).await?;
    let path = out_dir.join("berkeley.svg");
    write_svg(&report, &path)?;
    let p = report.precisions();
    let first = p.first().map_or(0, |x| x.1);
    let end = p.last().map_or(0, |x| x.1);
    let synced = p.iter().find(|x| x.0 > 0 && x.1 <= 1_000_000).map(|x| x.0);
    Ok(format!(
        "Berkeley: {} clocks up to ±{} ms and ±{} ppm apart, the master elected by bully (node {}); precision {:.1} ms before, {:.0} µs after {} rounds of {} ms{}; plot {}",
        config.nodes,
        config.max_skew_ms,
        config.max_drift_ppm,
        config.nodes,
        first as f64 / 1e6,
        end as f64 / 1e3,
        config.rounds,
        config.interval.as_millis(),
        synced.map_or(String::new(), |r| format!(" (within 1 ms from round {r})")),
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn tour_demo_syncs_within_a_millisecond_and_writes_the_plot() {
        let dir = std::env::temp_dir().join(format!("berkeley-demo-{}", std::process::id()));
        let t = std::time::Instant::now();
        let text = tour_demo(&dir).await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(text.contains("within 1 ms from round"), "{text}");
        let svg = std::fs::read_to_string(dir.join("berkeley.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("node 5"),
            "{}",
            &svg[..100]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[actix_rt::test]
    async fn bad_settings_are_refused() {
        let c = DemoConfig {
            nodes: 1,
            ..DemoConfig::default()
        };
        assert!(matches!(run(&c).await, Err(DemoError::TooSmall)));
    }
}
