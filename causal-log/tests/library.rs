//! The library API as other crates use it, and robustness on corrupted input.

use causal_log::{CheckOptions, Log, ReadError, Rule, check_shiviz_rules};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn fixture(name: &str) -> String {
    format!("{DIR}/tests/fixtures/{name}")
}

fn text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

#[test]
fn read_paths_and_check() {
    let log = Log::read_paths(&[fixture("node0.jsonl"), fixture("node1.jsonl")]).unwrap();
    assert_eq!(log.hosts().len(), 4);
    assert_eq!(log.events().len(), 24);
    assert!(check_shiviz_rules(&log).is_clean());
    assert!(log.check().is_clean(), "{}", log.check());
    // Every send comes before its receive, and host order is kept, in the merged order.
    for (s, r) in log.messages() {
        assert!(log.rank(s) < log.rank(r));
        assert!(log.happened_before(s, r));
    }
    for h in log.hosts_by_name() {
        let seq = log.host_events(h);
        assert!(seq.windows(2).all(|w| log.rank(w[0]) < log.rank(w[1])));
    }
}

#[test]
fn shiviz_inference_finds_the_logged_messages() {
    // Write the JSON lines as ShiViz (no kinds, no message ids), read back: pairing inferred
    // from the clocks must find the same messages and the same happened-before.
    let rich = Log::parse_str("clean.jsonl", &text("clean.jsonl")).unwrap();
    let plain = Log::parse_str("clean.log", &rich.to_shiviz()).unwrap();
    let ids = |log: &Log| {
        let mut v: Vec<(String, String)> = log
            .messages()
            .into_iter()
            .map(|(s, r)| (log.event_id(s), log.event_id(r)))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&rich), ids(&plain));
    for a in 0..plain.events().len() {
        for b in 0..plain.events().len() {
            let (ia, ib) = (
                rich.find(&plain.event_id(a)).unwrap(),
                rich.find(&plain.event_id(b)).unwrap(),
            );
            assert_eq!(plain.happened_before(a, b), rich.happened_before(ia, ib));
        }
    }
}

#[test]
fn reading_both_formats_of_one_run_merges_duplicates() {
    let rich = Log::parse_str("clean.jsonl", &text("clean.jsonl")).unwrap();
    let mut b = causal_log::LogBuilder::new();
    b.add_str("clean.jsonl", &text("clean.jsonl")).unwrap();
    b.add_str("clean.log", &rich.to_shiviz()).unwrap();
    let both = b.finish();
    assert_eq!(both.events().len(), 24);
    assert!(both.events().iter().all(|e| e.rich));
    assert!(both.check().is_clean());
}

#[test]
fn strict_recompute_rule_catches_a_clock_without_a_message() {
    // b:2 learns a:2 without receiving anything: ShiViz's "impermissible vector clock".
    let log = Log::parse_str(
        "x.log",
        "a {\"a\":1}\none\na {\"a\":2}\ntwo\nb {\"b\":1}\nb one\nb {\"a\":2,\"b\":2,\"c\":1}\nb two\n",
    )
    .unwrap();
    let report = check_shiviz_rules(&log);
    assert!(report.has(Rule::Entry) || report.has(Rule::Gap), "{report}");
    let log = Log::parse_str(
        "y.jsonl",
        r#"{"host":"a","kind":"local","event":"one","clock":{"a":1}}
{"host":"b","kind":"local","event":"peeks","clock":{"a":1,"b":1}}
"#,
    )
    .unwrap();
    let report = check_shiviz_rules(&log);
    assert!(report.has(Rule::Recompute), "{report}");
    assert!(!log.check().is_clean());
}

#[test]
fn errors_name_file_and_line() {
    let err = Log::parse_str(
        "f.jsonl",
        "{\"host\":\"a\",\"clock\":{\"a\":1}}\n\n{\"host\":\"a\"}\n",
    )
    .unwrap_err();
    match err {
        ReadError::Syntax { file, line, reason } => {
            assert_eq!((file.as_str(), line), ("f.jsonl", 3));
            assert!(reason.contains("clock"), "{reason}");
        }
        e => panic!("{e}"),
    }
    let err = Log::read_paths(&["/nonexistent/x.jsonl"]).unwrap_err();
    assert!(matches!(err, ReadError::Io { .. }));
    let err = Log::parse_str("r.log", "(?<host>[) (?<clock>{.*})\n\n").unwrap_err();
    assert!(matches!(err, ReadError::Regex { .. }), "{err}");
    let err = Log::parse_str("u.log", "a {\"a\":1}\n\u{0}\n").map(|_| ());
    assert!(err.is_ok());
}

/// Deterministic pseudo-random corruptions of every fixture: reading may fail, but nothing
/// panics, and whatever reads can be checked, merged, counted and drawn.
#[test]
fn corrupted_input_never_panics() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let names = [
        "clean.jsonl",
        "shiviz.log",
        "govector.log",
        "custom_regex.log",
        "overlap.jsonl",
        "fence_leader.jsonl",
        "terms.jsonl",
    ];
    let mut read_ok = 0;
    for name in names {
        let orig = text(name).into_bytes();
        let rounds: usize = std::env::var("CORRUPT_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(150);
        for round in 0..rounds {
            let mut t = orig.clone();
            let edits = 1 + round % 4;
            for _ in 0..edits {
                let len = t.len().max(1);
                let p = (next() as usize) % len;
                match next() % 5 {
                    0 => t.truncate(p),
                    1 if !t.is_empty() => {
                        t.remove(p.min(t.len() - 1));
                    }
                    2 if !t.is_empty() => {
                        let q = p.min(t.len() - 1);
                        t[q] = b"0123456789{}\":,\n x"[(next() % 18) as usize];
                    }
                    3 => {
                        let s = (next() as usize) % orig.len();
                        let line: Vec<u8> = orig[s..].iter().copied().take(60).collect();
                        let q = p.min(t.len());
                        t.splice(q..q, line);
                    }
                    _ => t.insert(p.min(t.len()), b'9'),
                }
            }
            let mut b = causal_log::LogBuilder::new();
            let Ok(s) = std::str::from_utf8(&t) else {
                continue;
            };
            if b.add_str(name, s).is_err() {
                continue;
            }
            read_ok += 1;
            let log = b.finish();
            let _ = log.check_with(CheckOptions::default()).to_string();
            let _ = check_shiviz_rules(&log);
            let _ = log.to_jsonl();
            let _ = log.to_shiviz();
            let _ = log.stats().to_string();
            let _ = causal_log::draw::html(&log, &Default::default());
            for i in 0..log.events().len().min(20) {
                let _ = log.select(&log.event_id(i));
            }
        }
    }
    assert!(read_ok > 100, "only {read_ok} corrupted logs were readable");
}

/// Large files are parsed in parallel chunks: the result and error lines must not change.
#[test]
fn large_files_parse_in_chunks_with_exact_lines() {
    let text = causal_log::synth::generate(5, 30_000, 3);
    assert!(text.len() > 1 << 22, "large enough to be cut into chunks");
    let log = Log::parse_str("big.jsonl", &text).unwrap();
    assert_eq!(log.events().len(), 30_000);
    assert!(check_shiviz_rules(&log).is_clean());
    // Every event's source line is its line in the file, in every chunk.
    let lines: Vec<&str> = text.lines().collect();
    for &i in log.order().iter().step_by(997) {
        let e = &log.events()[i];
        let l: serde_json::Value = serde_json::from_str(lines[e.source.line - 1]).unwrap();
        let host = log.host_name(e.host);
        assert_eq!(l["host"], host);
        assert_eq!(l["clock"][host], log.own(i));
    }
    let mut lines: Vec<&str> = text.lines().collect();
    lines[29_000] = "{\"host\":\"P1#1\",\"clock\":{\"P1#1\":-1}}";
    let bad = lines.join("\n");
    match Log::parse_str("big.jsonl", &bad).unwrap_err() {
        ReadError::Syntax { line, .. } => assert_eq!(line, 29_001),
        e => panic!("{e}"),
    }
}
