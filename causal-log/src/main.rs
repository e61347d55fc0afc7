//! `causal-log`: merge, check, query and draw causal logs.
//!
//! Exit status: 0 when all is well, 1 when `check` finds a violation (or `query --before`
//! answers no), 2 when an input cannot be read (the message names the file and line) or the
//! command line is wrong.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use causal_log::draw::DrawOptions;
use causal_log::{Log, ReadError};
use clap::{Parser, Subcommand, ValueEnum};

/// Merge, check, query and draw causal logs: actix-coord JSON lines (`*.jsonl`), ShiViz logs
/// (regex header) and GoVector logs, in any mix. Each file's format is recognised from its first
/// line.
#[derive(Parser, Debug)]
#[command(name = "causal-log", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Merge per-node logs into one history, ordered by a linear extension of happened-before
    /// (ties by Lamport time, then host name).
    ///
    /// Example: causal-log merge node0.jsonl node1.jsonl -o run.log
    Merge {
        /// Input logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Output format (default: shiviz if OUTPUT ends in .log, else jsonl).
        #[arg(long, value_enum)]
        format: Option<OutFormat>,
    },
    /// Check the logs: ShiViz's rules on vector clocks (gaps are warnings), critical sections
    /// never concurrent, fencing tokens increasing along happened-before, one leader per term
    /// and no term going back at a host (per election), broadcast deliveries in order (per
    /// publisher, and the same order on every member of a total-order group).
    ///
    /// Exits 0 when clean, 1 on a violation (the report names the events and why), 2 on
    /// unreadable input.
    ///
    /// Example: causal-log check node0.jsonl node1.jsonl
    Check {
        /// Input logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Treat gaps (missing events) as errors, as ShiViz does.
        #[arg(long)]
        strict: bool,
    },
    /// Ask about happened-before and concurrency. Events are named by id `host:k` (the host's
    /// k-th event) or by a text pattern (every event whose text contains it).
    ///
    /// `--before A B` exits 0 if every A happened before every B, else 1.
    ///
    /// Example: causal-log query run.jsonl --before 'Cook#1:3' 'Reader#1:1'
    Query {
        /// Input logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Did A happen before B?
        #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "concurrent_with")]
        before: Option<Vec<String>>,
        /// List the events concurrent with A.
        #[arg(long, value_name = "A")]
        concurrent_with: Option<String>,
    },
    /// Draw the space-time diagram: SVG, or a self-contained HTML page where clicking an event
    /// highlights its past, its future and what is concurrent with it.
    ///
    /// Example: causal-log draw node0.jsonl node1.jsonl -o run.html
    Draw {
        /// Input logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Output file: `.html` for the interactive page, anything else for SVG.
        #[arg(short, long)]
        output: PathBuf,
        /// Title of the diagram.
        #[arg(long, default_value = "causal log")]
        title: String,
        /// Collapse runs of at least this many local events into one box (0: never).
        #[arg(long, default_value_t = 4)]
        collapse: usize,
    },
    /// Events and messages per process, and the concurrency ratio (the share of event pairs
    /// that are concurrent).
    ///
    /// Example: causal-log stats run.jsonl
    Stats {
        /// Input logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OutFormat {
    /// actix-coord JSON lines.
    Jsonl,
    /// ShiViz log with the default regex header.
    Shiviz,
}

/// Pairs printed by `query --before` (all are judged for the exit status).
const MAX_PAIRS: usize = 200;

fn read(logs: &[PathBuf]) -> Result<Log, ExitCode> {
    Log::read_paths(logs).map_err(|e: ReadError| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn emit(output: Option<&PathBuf>, text: &str) -> ExitCode {
    let res = match output {
        Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display())),
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write {e}");
            ExitCode::from(2)
        }
    }
}

fn select(log: &Log, pattern: &str) -> Result<Vec<usize>, ExitCode> {
    let v = log.select(pattern);
    if v.is_empty() {
        eprintln!("error: no event has id or text `{pattern}`");
        return Err(ExitCode::from(2));
    }
    Ok(v)
}

fn run(cli: Cli) -> Result<ExitCode, ExitCode> {
    match cli.command {
        Cmd::Merge {
            logs,
            output,
            format,
        } => {
            let log = read(&logs)?;
            let shiviz = match format {
                Some(OutFormat::Shiviz) => true,
                Some(OutFormat::Jsonl) => false,
                None => output
                    .as_ref()
                    .and_then(|p| p.extension())
                    .is_some_and(|e| e == "log"),
            };
            let text = if shiviz {
                log.to_shiviz()
            } else {
                log.to_jsonl()
            };
            Ok(emit(output.as_ref(), &text))
        }
        Cmd::Check { logs, strict } => {
            let log = read(&logs)?;
            let report = log.check_with(causal_log::CheckOptions {
                tolerate_gaps: !strict,
                ..Default::default()
            });
            println!(
                "checked {} events of {} processes, {} message(s)",
                log.events().len(),
                log.hosts().len(),
                log.messages().len()
            );
            println!("{report}");
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Query {
            logs,
            before,
            concurrent_with,
        } => {
            let log = read(&logs)?;
            if let Some(ab) = before {
                let (a, b) = (select(&log, &ab[0])?, select(&log, &ab[1])?);
                let mut all = true;
                let mut shown = 0usize;
                for &x in &a {
                    for &y in &b {
                        let verdict = if x == y {
                            "is the same event as"
                        } else if log.happened_before(x, y) {
                            "happened before"
                        } else if log.happened_before(y, x) {
                            "happened after"
                        } else {
                            "is concurrent with"
                        };
                        all &= verdict == "happened before";
                        shown += 1;
                        if shown <= MAX_PAIRS {
                            println!("{} {verdict} {}", log.describe(x), log.describe(y));
                        }
                    }
                }
                if shown > MAX_PAIRS {
                    println!("... and {} more pair(s)", shown - MAX_PAIRS);
                }
                return Ok(if all {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            let Some(a) = concurrent_with else {
                eprintln!("error: give --before A B or --concurrent-with A");
                return Err(ExitCode::from(2));
            };
            for x in select(&log, &a)? {
                let conc: Vec<usize> = log
                    .order()
                    .iter()
                    .copied()
                    .filter(|&y| log.concurrent(x, y))
                    .collect();
                println!(
                    "{} is concurrent with {} event(s):",
                    log.describe(x),
                    conc.len()
                );
                for y in conc {
                    println!("  {}", log.describe(y));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Draw {
            logs,
            output,
            title,
            collapse,
        } => {
            let log = read(&logs)?;
            let opts = DrawOptions { title, collapse };
            if let Err(e) = log.write_diagram(&output, &opts) {
                eprintln!("error: cannot write {}: {e}", output.display());
                return Err(ExitCode::from(2));
            }
            println!(
                "wrote {} ({} processes, {} events)",
                output.display(),
                log.hosts().len(),
                log.events().len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stats { logs } => {
            let log = read(&logs)?;
            println!("{}", log.stats());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(c) | Err(c) => c,
    }
}
