//! End-to-end: the HTML diagram in headless Chromium. The page is opened with
//! `#selftest=<event>`, clicks that event itself, and Chromium dumps the DOM after the click;
//! the test checks one lane per process and that the highlighted past, future and concurrent
//! events match the vector clocks (and the library's happened-before). Screenshots are saved
//! under `target/tmp/causal-log-browser/`.
//!
//! Skipped, with a message, when Chromium is not installed (`apt-get install -y chromium`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use causal_log::Log;
use causal_log::browser::{self, DomView};
use causal_log::draw::{self, DrawOptions};

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("causal-log-browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn check_page(log: &Log, name: &str, event: &str, screenshot: bool) -> DomView {
    let chromium = browser::chromium().expect("checked by the caller");
    let dir = out_dir();
    let html = dir.join(format!("{name}.html"));
    let opts = DrawOptions {
        title: name.into(),
        ..DrawOptions::default()
    };
    std::fs::write(&html, draw::html(log, &opts)).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let dom =
        browser::click_and_dump(&chromium, &html, event, screenshot.then_some(&*png)).unwrap();
    assert!(
        !screenshot || png.exists(),
        "no screenshot at {}",
        png.display()
    );
    let view = browser::read_dom(&dom).unwrap();
    assert_eq!(view.lanes, log.hosts().len(), "one lane per process");
    assert_eq!(view.selected.as_deref(), Some(event));
    view.check_highlighting().unwrap();
    // The page's classes agree with the library's happened-before.
    let sel = log.find(event).unwrap();
    let shown: BTreeSet<String> = view.events.iter().map(|e| e.id.clone()).collect();
    let lib = |f: &dyn Fn(usize) -> bool| -> BTreeSet<String> {
        (0..log.events().len())
            .filter(|&i| f(i))
            .map(|i| log.event_id(i))
            .filter(|id| shown.contains(id))
            .collect()
    };
    assert_eq!(
        view.with_class("past"),
        lib(&|i| log.happened_before(i, sel))
    );
    assert_eq!(
        view.with_class("future"),
        lib(&|i| log.happened_before(sel, i))
    );
    assert_eq!(view.with_class("conc"), lib(&|i| log.concurrent(i, sel)));
    // The page's own report of the click says the same.
    let result = dom
        .split("<pre id=\"selftest-result\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .expect("selftest result in the DOM")
        .replace("&quot;", "\"");
    let json: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(json["selected"], event);
    assert_eq!(
        json["past"].as_array().unwrap().len(),
        view.with_class("past").len()
    );
    view
}

#[test]
fn clicked_event_highlights_past_future_and_concurrent() {
    if browser::chromium().is_none() {
        eprintln!("SKIPPED: no chromium (install Debian's `chromium` to run this test)");
        return;
    }
    let start = Instant::now();
    let dir = env!("CARGO_MANIFEST_DIR");
    let log = Log::read_paths(&[
        format!("{dir}/tests/fixtures/node0.jsonl"),
        format!("{dir}/tests/fixtures/node1.jsonl"),
    ])
    .unwrap();
    let view = check_page(&log, "clean", "A#1:5", true);
    assert_eq!(view.with_class("past").len(), 7);
    assert_eq!(view.with_class("future").len(), 8);

    // Readable at scale: 10 processes × 500 events.
    let big = Log::parse_str("synth.jsonl", &causal_log::synth::generate(10, 5000, 42)).unwrap();
    let mid = big.order()[2500..]
        .iter()
        .copied()
        .find(|&i| big.events()[i].kind == "send")
        .unwrap();
    check_page(&big, "synth-10x500", &big.event_id(mid), false);
    eprintln!("browser test took {:?}", start.elapsed());
}
