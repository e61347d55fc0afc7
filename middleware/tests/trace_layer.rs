//! The causal layer writes every tick whatever the console's filter, turns user events at its
//! own level into local events, and flushes on panic.
//!
//! Each test installs its own subscriber on its own thread (`set_default`) and runs a
//! single-threaded actix system there, so the tests do not see each other's events.

use actix::prelude::*;
use actix_coord::CausalContext;
use actix_coord::intercept::CausalBuilder;
use actix_coord::trace::{self, CausalLayer};
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::Level;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);
impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    fn events(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Speak;

struct Speaker;
impl Actor for Speaker {
    type Context = CausalContext<Self>;
}
impl Handler<Speak> for Speaker {
    type Result = ();
    fn handle(&mut self, _: Speak, _: &mut Self::Context) {
        tracing::error!(code = 7, "an error");
        tracing::info!(answer = 42u64, "an info");
        tracing::debug!("a debug");
        trace::event(
            "lock.enter",
            "enters",
            [("resource", "r".into()), ("fence", 3u64.into())],
        );
    }
}

fn run_speaker(name: &str) {
    actix::System::new().block_on(async {
        let s = CausalBuilder::new().name(name).start(Speaker);
        s.send(Speak).await.unwrap();
    });
}

#[test]
fn ticks_are_written_even_when_a_global_filter_hides_everything() {
    let buf = SharedBuf::default();
    let (layer, guard) = CausalLayer::builder()
        .jsonl_writer(buf.clone())
        .build()
        .unwrap();
    // A global OFF filter: every `tracing` callsite is disabled for every layer.
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::OFF)
        .with(layer);
    let _sub = tracing::subscriber::set_default(subscriber);
    run_speaker("muted");
    guard.flush();
    let events = buf.events();
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e["host"] == "muted")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // The receive tick and the semantic event are there; the user events were disabled
    // before any layer saw them, so they are not events at all (and tick nothing).
    assert_eq!(kinds, ["receive", "lock.enter"]);
    let clocks: Vec<u64> = events
        .iter()
        .filter(|e| e["host"] == "muted")
        .map(|e| e["clock"]["muted"].as_u64().unwrap())
        .collect();
    assert_eq!(clocks, [1, 2], "no gap in the process's own counter");
}

#[test]
fn ticks_reach_a_causal_layer_behind_a_per_layer_filter_and_in_a_box() {
    // Ticks find the log through the dispatcher (`downcast_ref`), through whatever wraps the
    // layer: here a per-layer filter inside a boxed layer.
    let buf = SharedBuf::default();
    let (layer, guard) = CausalLayer::builder()
        .jsonl_writer(buf.clone())
        .build()
        .unwrap();
    let boxed: Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync> =
        Box::new(layer.with_filter(LevelFilter::ERROR));
    let _sub = tracing::subscriber::set_default(tracing_subscriber::registry().with(boxed));
    run_speaker("wrapped");
    guard.flush();
    let kinds: Vec<String> = buf
        .events()
        .iter()
        .filter(|e| e["host"] == "wrapped")
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    // The receive tick and the semantic event come through the dispatcher; the error comes
    // through the filter, the info and the debug do not.
    assert_eq!(kinds, ["receive", "local", "lock.enter"]);
}

#[test]
fn user_events_at_the_layers_level_are_local_events_whatever_the_console_filter() {
    let buf = SharedBuf::default();
    let shiviz = SharedBuf::default();
    let (layer, guard) = CausalLayer::builder()
        .jsonl_writer(buf.clone())
        .shiviz_writer(shiviz.clone())
        .build()
        .unwrap();
    // The console shows errors only; the causal layer keeps its default (INFO).
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::sink)
        .with_filter(LevelFilter::ERROR);
    let _sub =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(layer).with(console));
    run_speaker("speaker");
    guard.flush();
    let events: Vec<Value> = buf
        .events()
        .into_iter()
        .filter(|e| e["host"] == "speaker")
        .collect();
    let texts: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "receive Speak from external",
            "an error",
            "an info",
            "enters"
        ]
    );
    assert_eq!(events[2]["kind"], "local");
    assert_eq!(events[2]["fields"]["answer"], 42);
    assert_eq!(events[3]["kind"], "lock.enter");
    assert_eq!(
        events[3]["fields"],
        serde_json::json!({"resource": "r", "fence": 3})
    );
    for (k, e) in events.iter().enumerate() {
        assert_eq!(e["clock"]["speaker"], k as u64 + 1);
    }
    // The ShiViz file opens with its regex and the empty delimiter line.
    let text = shiviz.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})")
    );
    assert_eq!(lines.next(), Some(""));
    assert!(text.contains("an info\nspeaker {"));
}

#[test]
fn the_layers_level_decides_which_user_events_tick() {
    let buf = SharedBuf::default();
    let (layer, guard) = CausalLayer::builder()
        .jsonl_writer(buf.clone())
        .level(Level::DEBUG)
        .build()
        .unwrap();
    let _sub = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    run_speaker("chatty");
    guard.flush();
    let texts: Vec<String> = buf
        .events()
        .iter()
        .filter(|e| e["host"] == "chatty")
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(texts.contains(&"a debug".to_owned()), "{texts:?}");
}

#[test]
fn a_panic_flushes_the_log() {
    let dir = std::env::temp_dir().join(format!("actix-coord-panic-{}", std::process::id()));
    let path = dir.join("p.jsonl");
    let (layer, guard) = CausalLayer::builder().jsonl_path(&path).build().unwrap();
    let _sub = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    run_speaker("doomed");
    // Nothing forces a flush here but the panic hook.
    let r = std::panic::catch_unwind(|| panic!("boom"));
    assert!(r.is_err());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().any(|l| l.contains("\"doomed\"")),
        "flushed on panic: {text:?}"
    );
    drop(guard);
    let _ = std::fs::remove_dir_all(dir);
}

mod chat {
    #[derive(actix::Message, Debug)]
    #[rtype(result = "()")]
    pub struct Line(#[allow(dead_code)] pub String); // read through `Debug`
}
mod ws {
    #[derive(actix::Message, Debug)]
    #[rtype(result = "()")]
    pub struct Line(#[allow(dead_code)] pub String); // read through `Debug`
}

struct Sink;
impl Actor for Sink {
    type Context = CausalContext<Self>;
}
impl Handler<chat::Line> for Sink {
    type Result = ();
    fn handle(&mut self, _: chat::Line, _: &mut Self::Context) {}
}
impl Handler<ws::Line> for Sink {
    type Result = ();
    fn handle(&mut self, _: ws::Line, _: &mut Self::Context) {}
}

#[derive(Message)]
#[rtype(result = "()")]
struct Go(Addr<Sink>);

struct Talker;
impl Actor for Talker {
    type Context = CausalContext<Self>;
}
impl Handler<Go> for Talker {
    type Result = ();
    fn handle(&mut self, Go(sink): Go, _: &mut Self::Context) {
        sink.do_send(chat::Line("hi".into()));
        sink.do_send(ws::Line("secret".into()));
    }
}

#[test]
fn contents_of_opted_in_types_are_logged_and_colliding_names_stay_apart() {
    let buf = SharedBuf::default();
    let (layer, guard) = CausalLayer::builder()
        .jsonl_writer(buf.clone())
        .build()
        .unwrap();
    let _sub = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    actix_coord::intercept::log_contents::<chat::Line>();
    actix::System::new().block_on(async {
        let sink = CausalBuilder::new().name("line sink").start(Sink);
        let talker = CausalBuilder::new().name("line talker").start(Talker);
        talker.send(Go(sink.clone())).await.unwrap();
        // The sink has handled both once a request behind them is answered.
        sink.send(chat::Line(String::new())).await.unwrap();
    });
    guard.flush();
    let sends: Vec<String> = buf
        .events()
        .into_iter()
        .filter(|e| e["host"] == "line_talker" && e["kind"] == "send")
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sends,
        [r#"send Line to Sink: Line("hi")"#, "send ws::Line to Sink",],
        "the first type keeps the short label; only the opted-in one shows its contents"
    );
    let received: Vec<String> = buf
        .events()
        .into_iter()
        .filter(|e| e["host"] == "line_sink" && e["kind"] == "receive")
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert!(
        received.iter().any(|r| r.starts_with("receive ws::Line")),
        "{received:?}"
    );
}
