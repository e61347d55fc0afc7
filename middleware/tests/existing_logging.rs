//! The causal layer in an application that already logs.
//!
//! Most actix applications call `env_logger::init()` first (actix itself logs through the `log`
//! crate); others forward `log` records to `tracing` with `tracing_log::LogTracer`. In both,
//! `tracing_subscriber`'s `.init()` would fail (it also claims the `log` logger, which is taken:
//! `SetLoggerError`), so the layer is installed with `tracing::subscriber::set_global_default`,
//! beside a console `fmt` layer. Checked: installing does not fail, the causal log gets every
//! tick and the handlers' `tracing` events, and the application's own lines (from `log` and
//! from `tracing`) still reach the console.
//!
//! Loggers are process-wide and set once, so each case runs in a child process: the test
//! re-runs this test binary with only that test selected and checks its real console output.

use actix::prelude::*;
use actix_coord::CausalContext;
use actix_coord::trace::CausalLayer;
use std::path::{Path, PathBuf};
use std::process::Command;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// Set in the child process to the name of the case it runs.
const CHILD: &str = "ACTIX_COORD_EXISTING_LOGGING_CASE";

#[derive(Message)]
#[rtype(result = "()")]
struct Hello;

struct Greeter;

impl Actor for Greeter {
    type Context = CausalContext<Self>;
}

impl Handler<Hello> for Greeter {
    type Result = ();
    fn handle(&mut self, _: Hello, _: &mut Self::Context) {
        log::info!("log line from a handler");
        tracing::info!("tracing line from a handler");
    }
}

/// Runs the case `name` in a child process: its exit status must be 0; returns what it
/// printed (standard output, then standard error).
fn run_child(name: &str) -> String {
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, name)
        .env("RUST_LOG", "info")
        .output()
        .expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "case {name} failed:\n{text}");
    assert!(!text.contains("panicked"), "case {name}:\n{text}");
    text
}

fn log_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("existing-logging")
        .join(format!("{name}.jsonl"))
}

/// Installs the causal layer and a console layer with `set_global_default`, runs one causal
/// actor, closes the log and returns its lines as JSON.
fn install_and_run(name: &str) -> Vec<serde_json::Value> {
    let path = log_path(name);
    let (layer, guard) = CausalLayer::builder()
        .jsonl_path(&path)
        .build()
        .expect("the log file");
    let console = tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(layer).with(console),
    )
    .expect("no other tracing subscriber is set");
    System::new().block_on(async {
        let greeter = CausalContext::start(Greeter);
        greeter.send(Hello).await.expect("the greeter answers");
    });
    guard.close().expect("the log is written");
    std::fs::read_to_string(&path)
        .expect("the log exists")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The events of the given kind and text in `log`.
fn count(log: &[serde_json::Value], kind: &str, text: &str) -> usize {
    log.iter()
        .filter(|e| e["kind"] == kind && e["event"].as_str().is_some_and(|t| t.contains(text)))
        .count()
}

#[test]
fn beside_env_logger() {
    const NAME: &str = "beside_env_logger";
    if std::env::var(CHILD).as_deref() != Ok(NAME) {
        let out = run_child(NAME);
        // env_logger still prints the application's `log` lines, before and inside actors...
        assert!(out.contains("app started"), "{out}");
        assert!(out.contains("log line from a handler"), "{out}");
        // ...and the console layer prints its `tracing` lines.
        assert!(out.contains("tracing line from a handler"), "{out}");
        return;
    }
    // The application's logging, set up first as actix's examples do.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    log::info!("app started");
    // `.init()` would now fail: the `log` logger is env_logger's.
    assert!(tracing_log::LogTracer::init().is_err());
    let log = install_and_run(NAME);
    assert_eq!(count(&log, "send", "Hello"), 1, "{log:?}");
    assert_eq!(count(&log, "receive", "Hello"), 1, "{log:?}");
    assert_eq!(
        count(&log, "local", "tracing line from a handler"),
        1,
        "{log:?}"
    );
    // `log` records go to env_logger, not through `tracing`: not in the causal log.
    assert_eq!(
        count(&log, "local", "log line from a handler"),
        0,
        "{log:?}"
    );
}

#[test]
fn beside_tracing_log() {
    const NAME: &str = "beside_tracing_log";
    if std::env::var(CHILD).as_deref() != Ok(NAME) {
        let out = run_child(NAME);
        // `log` records are forwarded to `tracing`: the console layer prints them.
        assert!(out.contains("log line from a handler"), "{out}");
        assert!(out.contains("tracing line from a handler"), "{out}");
        return;
    }
    // The application forwards `log` records to `tracing` itself.
    tracing_log::LogTracer::init().expect("the first `log` logger");
    let log = install_and_run(NAME);
    assert_eq!(count(&log, "send", "Hello"), 1, "{log:?}");
    assert_eq!(count(&log, "receive", "Hello"), 1, "{log:?}");
    // Both kinds of line in a handler are local events of the actor.
    assert_eq!(
        count(&log, "local", "tracing line from a handler"),
        1,
        "{log:?}"
    );
    assert_eq!(
        count(&log, "local", "log line from a handler"),
        1,
        "{log:?}"
    );
}
