//! The tour's causal log: its ShiViz file obeys ShiViz's rules (every host in its own clock,
//! a host's k-th event has clock[host] = k, every clock equals the one recomputed from the
//! messages), and its HTML diagram, opened in headless Chromium, shows one lane per process and
//! highlights a clicked event's past exactly as the vector clocks say.

use causal_log::{Log, browser};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Runs the tour once for all tests of this file; returns its output folder.
fn tour_out() -> &'static PathBuf {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tour");
        let _ = std::fs::remove_dir_all(&out);
        let status = Command::new(env!("CARGO_BIN_EXE_tour"))
            .arg("--out")
            .arg(&out)
            .status()
            .expect("the tour runs");
        assert!(status.success(), "the tour failed");
        out
    })
}

#[test]
fn tour_shiviz_log_obeys_shiviz_rules() {
    let out = tour_out();
    // The ShiViz file alone (its regex header is read from its first line).
    let text = std::fs::read_to_string(out.join("tour.log")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})")
    );
    assert_eq!(lines.next(), Some(""));
    let shiviz = Log::read_paths(&[out.join("tour.log")]).unwrap();
    let report = causal_log::check_shiviz_rules(&shiviz);
    assert!(report.is_clean(), "{report}");
    // The same events in JSON lines, where messages are named: the strict rule (every clock
    // equals the one recomputed from its predecessor and the matched send) holds there too.
    let jsonl = Log::read_paths(&[out.join("tour.jsonl")]).unwrap();
    let report = causal_log::check_shiviz_rules(&jsonl);
    assert!(report.is_clean(), "{report}");
    assert_eq!(shiviz.events().len(), jsonl.events().len());
    // Part 1: main, cook, reader, library, gardener; part 2: clerk@n1, archive@n2, registry@n3;
    // part 3: five lock drivers of the box offices.
    for host in [
        "main",
        "cook",
        "reader",
        "library",
        "gardener",
        "clerk@n1",
        "archive@n2",
        "registry@n3",
    ] {
        assert!(
            jsonl.host_id(host).is_some(),
            "{host} missing from {:?}",
            jsonl.hosts()
        );
    }
    assert!(jsonl.hosts().len() >= 13, "{:?}", jsonl.hosts());
    // The lock's critical sections are in the log, and never concurrent.
    assert!(
        jsonl
            .events()
            .iter()
            .filter(|e| e.kind == "lock.enter")
            .count()
            >= 30
    );
    let semantic = jsonl.check();
    assert!(semantic.is_clean(), "{semantic}");
    assert!(jsonl.events().len() >= 25);
    // Replies are messages too.
    assert!(jsonl.events().iter().any(|e| e.text.starts_with("reply")));
    // Across the network: the archive's reply (node 2) happened before the registry's receipt
    // (node 3), though the two never exchanged a message.
    let find = |host: &str, text: &str| {
        jsonl
            .events()
            .iter()
            .position(|e| jsonl.host_name(e.host) == host && e.text.starts_with(text))
            .unwrap()
    };
    let reply = find("archive@n2", "reply");
    let filed = find("registry@n3", "files the note");
    assert!(jsonl.happened_before(reply, filed));
    // Part 6: the account's 9 operations delivered by each of its 3 replicas (the check above
    // verified they agree on the order); Ann's question happened before Cat reads Bob's answer.
    let deliveries = |group: &str| {
        jsonl
            .events()
            .iter()
            .filter(|e| {
                e.kind == "broadcast.deliver" && e.field_str("group").as_deref() == Some(group)
            })
            .count()
    };
    assert_eq!(deliveries("account"), 27);
    assert_eq!(deliveries("chat"), 6);
    let question = find("chat@n1", "publish chat#1");
    let answer_at_cat = find("chat@n3", "deliver chat n2#1");
    assert!(jsonl.happened_before(question, answer_at_cat));
}

#[test]
fn tour_html_highlights_the_clicked_events_past_in_chromium() {
    let Some(chromium) = browser::chromium() else {
        println!("SKIPPED: no Chromium (apt-get install chromium)");
        return;
    };
    let out = tour_out();
    let log = Log::read_paths(&[out.join("tour.jsonl")]).unwrap();
    // Click the reader's reading of the cookbook: its past holds the cook's dinner.
    let event = log
        .events()
        .iter()
        .position(|e| log.host_name(e.host) == "reader" && e.text == "reads the cookbook")
        .map(|i| log.event_id(i))
        .expect("the reader reads the cookbook");
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tour-diagram.png");
    let dom =
        browser::click_and_dump(&chromium, &out.join("tour.html"), &event, Some(&png)).unwrap();
    assert!(png.exists(), "screenshot saved at {}", png.display());
    let view = browser::read_dom(&dom).unwrap();
    assert_eq!(view.lanes, log.hosts().len(), "one lane per process");
    assert_eq!(view.selected.as_deref(), Some(event.as_str()));
    view.check_highlighting().unwrap();
    let sel = log.find(&event).unwrap();
    let past: std::collections::BTreeSet<String> = (0..log.events().len())
        .filter(|&i| log.happened_before(i, sel))
        .map(|i| log.event_id(i))
        .collect();
    assert_eq!(
        view.with_class("past"),
        past,
        "the highlighted past is the clocks' past"
    );
    let dinner = log
        .events()
        .iter()
        .position(|e| e.text == "dinner is served")
        .map(|i| log.event_id(i))
        .unwrap();
    assert!(past.contains(&dinner));
}
