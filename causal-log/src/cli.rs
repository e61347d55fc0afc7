//! The `causal-log` command line, as a library function: [`run`] is what the binary runs, so
//! tests (and other tools) can run a command in-process and get its exit status and output.
//!
//! Exit status: 0 when all is well (warnings allowed: gaps, a torn last line, a crash gap),
//! 1 when `check` finds a violation (or `query --before` answers no), 2 when an input cannot be
//! read (the message names the file and line), an output cannot be written, or the command
//! line is wrong.
//!
//! ```
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let code = causal_log::cli::run(["causal-log", "--version"], &mut out, &mut err);
//! assert_eq!(code, 0);
//! assert!(String::from_utf8(out).unwrap().starts_with("causal-log "));
//! ```

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use crate::draw::DrawOptions;
use crate::{Log, ReadError};
use clap::{Parser, Subcommand, ValueEnum};

/// Exit status: all is well (warnings allowed).
pub const EXIT_OK: u8 = 0;
/// Exit status: `check` found a violation, or `query --before` answered no.
pub const EXIT_VIOLATION: u8 = 1;
/// Exit status: unreadable input, unwritable output or a bad command line.
pub const EXIT_BAD_INPUT: u8 = 2;

const EXIT_HELP: &str = "Exit status:
  0  all is well; warnings (gaps, a torn last line, a crash gap) do not change it
  1  check found a violation, or query --before answered no
  2  an input could not be read (the message gives file and line), an output could not be
     written, or the command line is wrong

A torn last line (a file ending mid-line, as a writer killed with kill -9 leaves it) is skipped
with a warning naming the file and line. Receives and clocks that refer to a host's events
beyond its last logged one are one crash-gap warning per host, naming the range lost.";

/// Merge, check, query and draw causal logs: actix-coord JSON lines (`*.jsonl`), ShiViz logs
/// (regex header) and GoVector logs, in any mix. Each file's format is recognised from its first
/// line.
#[derive(Parser, Debug)]
#[command(
    name = "causal-log",
    version,
    propagate_version = true,
    after_help = EXIT_HELP
)]
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
    /// Exits 0 when clean (warnings allowed), 1 on a violation (the report names the events
    /// and why), 2 on unreadable input. A torn last line is skipped with a warning; events that
    /// refer to a crashed host's lost tail are one `crash-gap` warning per host, and every
    /// other rule is still checked.
    ///
    /// Example: causal-log check node0.jsonl node1.jsonl
    #[command(after_help = EXIT_HELP)]
    Check {
        /// Input logs.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Treat gaps (missing events) as errors, as ShiViz does.
        #[arg(long)]
        strict: bool,
    },
    /// Ask about happened-before and concurrency. Events are named by id `host:k` (the host's
    /// k-th event), by `key=value` (every event whose field `key`, or whose `kind`, `host`,
    /// `msg` or `peer`, is `value`: `resource=printer`, `kind=lock.enter`) or by a text pattern
    /// (every event whose text or one of whose field values contains it).
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

/// Standard output and standard error of a command.
struct Io<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

/// Writes a line; a closed output (a pipe to `head`) is not an error worth a panic.
macro_rules! say {
    ($w:expr, $($t:tt)*) => {
        let _ = writeln!($w, $($t)*);
    };
}

fn read(io: &mut Io<'_>, logs: &[PathBuf]) -> Result<Log, u8> {
    Log::read_paths(logs).map_err(|e: ReadError| {
        say!(io.err, "error: {e}");
        EXIT_BAD_INPUT
    })
}

fn emit(io: &mut Io<'_>, output: Option<&PathBuf>, text: &str) -> u8 {
    let res = match output {
        Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display())),
        None => io.out.write_all(text.as_bytes()).map_err(|e| e.to_string()),
    };
    match res {
        Ok(()) => EXIT_OK,
        Err(e) => {
            say!(io.err, "error: cannot write {e}");
            EXIT_BAD_INPUT
        }
    }
}

fn select(io: &mut Io<'_>, log: &Log, pattern: &str) -> Result<Vec<usize>, u8> {
    let v = log.select(pattern);
    if v.is_empty() {
        say!(io.err, "error: no event has id, field or text `{pattern}`");
        return Err(EXIT_BAD_INPUT);
    }
    Ok(v)
}

/// Runs one command line (`args[0]` is the program name), writing what the binary would
/// print to `out` and `err`; returns the exit status ([`EXIT_OK`], [`EXIT_VIOLATION`],
/// [`EXIT_BAD_INPUT`]). `--help` and `--version` go to `out` with status 0.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let text = e.render().to_string();
            return if e.use_stderr() {
                let _ = err.write_all(text.as_bytes());
                EXIT_BAD_INPUT
            } else {
                let _ = out.write_all(text.as_bytes());
                EXIT_OK
            };
        }
    };
    let mut io = Io { out, err };
    match command(&mut io, cli) {
        Ok(c) | Err(c) => c,
    }
}

fn command(io: &mut Io<'_>, cli: Cli) -> Result<u8, u8> {
    match cli.command {
        Cmd::Merge {
            logs,
            output,
            format,
        } => {
            let log = read(io, &logs)?;
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
            Ok(emit(io, output.as_ref(), &text))
        }
        Cmd::Check { logs, strict } => {
            let log = read(io, &logs)?;
            let report = log.check_with(crate::CheckOptions {
                tolerate_gaps: !strict,
                ..Default::default()
            });
            say!(
                io.out,
                "checked {} events of {} processes, {} message(s)",
                log.events().len(),
                log.hosts().len(),
                log.messages().len()
            );
            say!(io.out, "{report}");
            Ok(if report.is_clean() {
                EXIT_OK
            } else {
                EXIT_VIOLATION
            })
        }
        Cmd::Query {
            logs,
            before,
            concurrent_with,
        } => {
            let log = read(io, &logs)?;
            if let Some(ab) = before {
                let (a, b) = (select(io, &log, &ab[0])?, select(io, &log, &ab[1])?);
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
                            say!(io.out, "{} {verdict} {}", log.describe(x), log.describe(y));
                        }
                    }
                }
                if shown > MAX_PAIRS {
                    say!(io.out, "... and {} more pair(s)", shown - MAX_PAIRS);
                }
                return Ok(if all { EXIT_OK } else { EXIT_VIOLATION });
            }
            let Some(a) = concurrent_with else {
                say!(io.err, "error: give --before A B or --concurrent-with A");
                return Err(EXIT_BAD_INPUT);
            };
            for x in select(io, &log, &a)? {
                let conc: Vec<usize> = log
                    .order()
                    .iter()
                    .copied()
                    .filter(|&y| log.concurrent(x, y))
                    .collect();
                say!(
                    io.out,
                    "{} is concurrent with {} event(s):",
                    log.describe(x),
                    conc.len()
                );
                for y in conc {
                    say!(io.out, "  {}", log.describe(y));
                }
            }
            Ok(EXIT_OK)
        }
        Cmd::Draw {
            logs,
            output,
            title,
            collapse,
        } => {
            let log = read(io, &logs)?;
            let opts = DrawOptions { title, collapse };
            if let Err(e) = log.write_diagram(&output, &opts) {
                say!(io.err, "error: cannot write {}: {e}", output.display());
                return Err(EXIT_BAD_INPUT);
            }
            say!(
                io.out,
                "wrote {} ({} processes, {} events)",
                output.display(),
                log.hosts().len(),
                log.events().len()
            );
            Ok(EXIT_OK)
        }
        Cmd::Stats { logs } => {
            let log = read(io, &logs)?;
            say!(io.out, "{}", log.stats());
            Ok(EXIT_OK)
        }
    }
}
