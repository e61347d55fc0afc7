//! The tour's ShiViz log obeys ShiViz's rules, and its clocks are exactly those recomputed from
//! its messages.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::process::Command;

type Clock = BTreeMap<String, u64>;

fn parse_clock(s: &str) -> Clock {
    let v: Value = serde_json::from_str(s).unwrap_or_else(|e| panic!("bad clock {s:?}: {e}"));
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| (k.clone(), c.as_u64().unwrap()))
        .collect()
}

#[test]
fn tour_log_obeys_shiviz_rules_and_recomputes_from_messages() {
    let out = std::env::temp_dir().join(format!("actix-coord-tour-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_tour"))
        .arg("--out")
        .arg(&out)
        .status()
        .expect("tour runs");
    assert!(status.success());

    // The ShiViz file: regex line, empty delimiter line, then (event, "host clock") pairs.
    let text = std::fs::read_to_string(out.join("tour.log")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})")
    );
    assert_eq!(lines.next(), Some(""));
    let rest: Vec<&str> = lines.collect();
    assert!(
        rest.len().is_multiple_of(2) && rest.len() >= 40,
        "{} lines",
        rest.len()
    );
    let mut shiviz: Vec<(String, Clock)> = Vec::new();
    for pair in rest.chunks(2) {
        let (host, clock) = pair[1].split_once(' ').expect("host and clock");
        assert!(!host.is_empty() && !host.contains(char::is_whitespace));
        assert!(
            clock.ends_with('}'),
            "trailing characters after the clock: {:?}",
            pair[1]
        );
        shiviz.push((host.to_owned(), parse_clock(clock)));
    }

    // Rule 1 and 2: every host is in its own clock, and its k-th event has clock[host] = k.
    let mut count: HashMap<&str, u64> = HashMap::new();
    for (host, clock) in &shiviz {
        let k = count.entry(host).or_insert(0);
        *k += 1;
        assert_eq!(
            clock.get(host),
            Some(&*k),
            "{host}'s event #{k} has clock {clock:?}"
        );
    }
    // Rule 3: every entry names a host with events, and no more than its count.
    for (host, clock) in &shiviz {
        for (h, c) in clock {
            let n = count
                .get(h.as_str())
                .unwrap_or_else(|| panic!("{host}'s clock names {h}, which has no events"));
            assert!(c <= n, "{host}'s clock says {h}={c} but {h} has {n} events");
        }
    }

    // The stricter rule: recompute every clock from the messages of the JSON-lines log.
    let jsonl = std::fs::read_to_string(out.join("tour.jsonl")).unwrap();
    let events: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), shiviz.len(), "both logs hold the same events");
    let mut sends: HashMap<String, Clock> = HashMap::new();
    let mut current: HashMap<String, Clock> = HashMap::new();
    // Line order is a valid causal order: each send is written before its receive.
    for (e, (host, logged)) in events.iter().zip(&shiviz) {
        assert_eq!(e["host"].as_str(), Some(host.as_str()));
        let mut clock = current.get(host).cloned().unwrap_or_default();
        if e["kind"] == "receive" {
            let id = e["msg"].as_str().expect("a receive names its message");
            let sent = sends
                .get(id)
                .unwrap_or_else(|| panic!("receive of unknown message {id}"));
            for (h, c) in sent {
                let mine = clock.entry(h.clone()).or_insert(0);
                *mine = (*mine).max(*c);
            }
        }
        *clock.entry(host.clone()).or_insert(0) += 1;
        assert_eq!(
            &clock, logged,
            "{host}: logged clock differs from the recomputed one at {e}"
        );
        if e["kind"] == "send" {
            let id = e["msg"]
                .as_str()
                .expect("a send names its message")
                .to_owned();
            assert!(
                sends.insert(id, clock.clone()).is_none(),
                "message ids are unique"
            );
        }
        current.insert(host.clone(), clock);
    }
    // All five processes took part, and replies were recorded as messages.
    assert_eq!(count.len(), 5, "{count:?}");
    assert!(
        events
            .iter()
            .any(|e| e["event"].as_str().unwrap().starts_with("reply"))
    );
    let _ = std::fs::remove_dir_all(&out);
}
