//! Golden-file tests of every `causal-log` command, run on hand-written fixtures.
//!
//! Outputs are compared with `tests/golden/<name>`; run with `UPDATE_GOLDEN=1` to rewrite them
//! after an intended change (and review the diff).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_causal-log");
const DIR: &str = env!("CARGO_MANIFEST_DIR");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(DIR)
        .output()
        .expect("the binary runs");
    let out = Out {
        code: o.status.code().expect("exited normally"),
        stdout: String::from_utf8(o.stdout).expect("utf-8"),
        stderr: String::from_utf8(o.stderr).expect("utf-8"),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "{args:?} panicked: {}",
        out.stderr
    );
    out
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(DIR).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        actual,
        want,
        "output differs from {} (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

fn fx(name: &str) -> String {
    format!("tests/fixtures/{name}")
}

fn tmp(name: &str) -> String {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("causal-log-cli");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).display().to_string()
}

#[test]
fn every_command_has_help() {
    for cmd in [
        &["--help"][..],
        &["merge", "--help"],
        &["check", "--help"],
        &["query", "--help"],
        &["draw", "--help"],
        &["stats", "--help"],
    ] {
        let o = run(cmd);
        assert_eq!(o.code, 0, "{cmd:?}");
        assert!(o.stdout.contains("Usage:"), "{cmd:?}: {}", o.stdout);
    }
    golden("help.txt", &run(&["--help"]).stdout);
    golden("check-help.txt", &run(&["check", "--help"]).stdout);
}

#[test]
fn merge_per_node_files_into_one_history() {
    let o = run(&["merge", &fx("node1.jsonl"), &fx("node0.jsonl")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    golden("merge-nodes.jsonl", &o.stdout);
    // The same history as merging the single-file log.
    let whole = run(&["merge", &fx("clean.jsonl")]);
    assert_eq!(o.stdout, whole.stdout);
}

#[test]
fn merge_to_shiviz_reads_back_clean() {
    let o = run(&[
        "merge",
        &fx("node0.jsonl"),
        &fx("node1.jsonl"),
        "--format",
        "shiviz",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    golden("merge-nodes.log", &o.stdout);
    let out = tmp("merged.log");
    let o = run(&["merge", &fx("node0.jsonl"), &fx("node1.jsonl"), "-o", &out]);
    assert_eq!(o.code, 0);
    let back = causal_log::Log::read_paths(&[&out]).unwrap();
    let report = causal_log::check_shiviz_rules(&back);
    assert!(report.is_clean(), "{report}");
    assert_eq!(back.messages().len(), 6);
}

#[test]
fn merge_govector_and_shiviz_inputs() {
    let o = run(&["merge", &fx("govector.log")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    golden("merge-govector.jsonl", &o.stdout);
    let o = run(&["merge", &fx("shiviz.log"), "--format", "jsonl"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    golden("merge-shiviz.jsonl", &o.stdout);
}

#[test]
fn check_clean_logs_exit_0() {
    for (f, g) in [
        ("clean.jsonl", "check-clean.txt"),
        ("govector.log", "check-govector.txt"),
        ("shiviz.log", "check-shiviz.txt"),
        ("custom_regex.log", "check-custom-regex.txt"),
    ] {
        let o = run(&["check", &fx(f)]);
        assert_eq!(o.code, 0, "{f}: {}", o.stdout);
        golden(g, &o.stdout);
    }
}

#[test]
fn check_tolerates_gaps_as_warnings_unless_strict() {
    let o = run(&["check", &fx("gap.jsonl")]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.stdout.contains("warning[gap]"));
    golden("check-gap.txt", &o.stdout);
    let o = run(&["check", "--strict", &fx("gap.jsonl")]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    golden("check-gap-strict.txt", &o.stdout);
}

/// What a `kill -9` leaves: B#1's file ends in a torn line, and A#1 received a message whose
/// send (B#1:4) was in B#1's unflushed tail. Both are warnings; the other rules still run.
#[test]
fn check_skips_a_torn_line_and_reports_a_crash_gap() {
    let (a, b) = (fx("crash_a.jsonl"), fx("crash_b.jsonl"));
    let o = run(&["check", &a, &b]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains("warning[input]: tests/fixtures/crash_b.jsonl:3: torn last line skipped"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(
            "warning[crash-gap]: B#1's log ends at B#1:2 (tests/fixtures/crash_b.jsonl:2), but other hosts saw B#1:3..B#1:4"
        ),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("warning[gap]"), "{}", o.stdout);
    golden("check-crash.txt", &o.stdout);
    // --strict: the crash gap is an error, as every gap is.
    let o = run(&["check", "--strict", &a, &b]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.contains("error[crash-gap]"), "{}", o.stdout);
    // The same logs with a critical section concurrent with A#1's: found.
    let intruder = tmp("crash_intruder.jsonl");
    std::fs::write(
        &intruder,
        concat!(
            r#"{"host":"C#1","kind":"lock.enter","event":"lock.enter printer","clock":{"C#1":1},"fields":{"resource":"printer","fence":2}}"#,
            "\n",
            r#"{"host":"C#1","kind":"lock.exit","event":"lock.exit printer","clock":{"C#1":2},"fields":{"resource":"printer","fence":2}}"#,
            "\n"
        ),
    )
    .unwrap();
    let o = run(&["check", &a, &b, &intruder]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("error[mutex]: critical sections of printer overlap"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("warning[crash-gap]"), "{}", o.stdout);
    // As ShiViz (messages paired from the clocks alone): the receive of the lost send is not
    // paired with a logged one, and is part of the crash gap.
    let merged = tmp("crash.log");
    let o = run(&["merge", &a, &b, "-o", &merged]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = run(&["check", &merged]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("warning[crash-gap]: B#1's log ends at B#1:2")
            && o.stdout.contains("other hosts saw B#1:3..B#1:4"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("error["), "{}", o.stdout);
    // The library runs the same command in-process.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = causal_log::cli::run(["causal-log", "check", &a, &b], &mut out, &mut err);
    assert_eq!(code, 0);
    let stdout = String::from_utf8(out).unwrap();
    assert!(stdout.contains("warning[crash-gap]"), "{stdout}");
}

#[test]
fn check_finds_overlapping_critical_sections() {
    let o = run(&["check", &fx("overlap.jsonl")]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.contains("error[mutex]"));
    assert!(o.stdout.contains("A#1:1") && o.stdout.contains("B#1:1"));
    golden("check-overlap.txt", &o.stdout);
    // Subtler, typed by hand in shuffled line order: A grants the lock while still inside, so
    // A's enter happened before B's, but A's exit did not.
    let o = run(&["check", &fx("overlap_grant.jsonl")]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.contains("error[mutex]"));
    assert!(o.stdout.contains("A#1:3") && o.stdout.contains("B#1:2"));
    golden("check-overlap-grant.txt", &o.stdout);
}

/// Terms are kept per `election`: two elections may name different leaders for the same term
/// number, but a host's recognised term may not go back within one.
#[test]
fn check_keeps_elections_apart_and_finds_a_term_going_back() {
    let o = run(&["check", &fx("terms.jsonl")]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.contains("term of election locks goes back"));
    assert!(!o.stdout.contains("two leaders"), "{}", o.stdout);
    assert!(o.stdout.contains("1 error(s)"), "{}", o.stdout);
    golden("check-terms.txt", &o.stdout);
}

#[test]
fn check_finds_fence_and_leader_violations() {
    let o = run(&["check", &fx("fence_leader.jsonl")]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.contains("error[fence]") && o.stdout.contains("error[leader]"));
    golden("check-fence-leader.txt", &o.stdout);
}

#[test]
fn check_finds_broadcast_order_violations() {
    let o = run(&["check", &fx("broadcast.jsonl")]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout.contains("total order broken in group log"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("message 2 of group chat, expected 1"),
        "{}",
        o.stdout
    );
    golden("check-broadcast.txt", &o.stdout);
}

#[test]
fn malformed_input_exits_2_with_file_and_line() {
    for (f, want) in [
        ("bad_json.jsonl", "tests/fixtures/bad_json.jsonl:3: "),
        ("bad_clock.log", "tests/fixtures/bad_clock.log:6: "),
        ("unknown.txt", "tests/fixtures/unknown.txt:1: "),
    ] {
        for cmd in ["check", "merge", "stats"] {
            let o = run(&[cmd, &fx("clean.jsonl"), &fx(f)]);
            assert_eq!(o.code, 2, "{cmd} {f}");
            assert!(o.stderr.contains(want), "{cmd} {f}: {}", o.stderr);
        }
    }
    let o = run(&["check", &fx("missing.jsonl")]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("tests/fixtures/missing.jsonl"));
    let mut all = String::new();
    for f in ["bad_json.jsonl", "bad_clock.log", "unknown.txt"] {
        all.push_str(&run(&["check", &fx(f)]).stderr);
    }
    golden("malformed.txt", &all);
}

#[test]
fn query_before_and_concurrent() {
    let clean = fx("clean.jsonl");
    let o = run(&["query", &clean, "--before", "external:1", "B#1:6"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    let mut all = o.stdout;
    let o = run(&["query", &clean, "--before", "C#1:1", "A#1:1"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.contains("is concurrent with"));
    all.push_str(&o.stdout);
    // By text pattern: every lock.enter against the leader's announcement.
    let o = run(&[
        "query",
        &clean,
        "--before",
        "lock.enter",
        "leader.elected C#1",
    ]);
    all.push_str(&o.stdout);
    let o = run(&["query", &clean, "--concurrent-with", "C#1:6"]);
    assert_eq!(o.code, 0);
    all.push_str(&o.stdout);
    golden("query.txt", &all);
    let o = run(&["query", &clean, "--concurrent-with", "no such event"]);
    assert_eq!(o.code, 2);
}

/// Patterns search fields: `key=value` exactly, plain text in field values too.
#[test]
fn query_patterns_search_fields() {
    let clean = fx("clean.jsonl");
    // Every critical section on the printer, by field, before the leader's announcement.
    let by_field = run(&["query", &clean, "--before", "resource=printer", "C#1:1"]);
    let by_kind = run(&["query", &clean, "--before", "kind=lock.enter", "C#1:1"]);
    assert!(
        by_field.stdout.contains("A#1:4 \"lock.enter printer\""),
        "{}",
        by_field.stdout
    );
    assert!(
        by_field.stdout.contains("A#1:6 \"lock.exit printer\""),
        "{}",
        by_field.stdout
    );
    assert_eq!(by_kind.stdout.lines().count(), 2, "{}", by_kind.stdout);
    // `term=1` selects the leader announcements by their field.
    let o = run(&["query", &clean, "--concurrent-with", "term=1"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("\"leader.elected C#1 term 1\""),
        "{}",
        o.stdout
    );
    // A key no event has: the pattern is text.
    let o = run(&["query", &clean, "--concurrent-with", "nokey=1"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("no event has id, field or text `nokey=1`"),
        "{}",
        o.stderr
    );
}

#[test]
fn stats_per_process() {
    let mut all = String::new();
    for f in ["clean.jsonl", "shiviz.log", "govector.log"] {
        let o = run(&["stats", &fx(f)]);
        assert_eq!(o.code, 0);
        all.push_str(&o.stdout);
    }
    golden("stats.txt", &all);
}

#[test]
fn draw_svg_and_html() {
    let svg = tmp("shiviz.svg");
    let o = run(&["draw", &fx("shiviz.log"), "-o", &svg, "--title", "shiviz"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    golden("draw-shiviz.svg", &std::fs::read_to_string(&svg).unwrap());
    let html = tmp("clean.html");
    let o = run(&["draw", &fx("clean.jsonl"), "-o", &html]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    golden("draw-clean.html", &page);
    assert_eq!(page.matches("class=\"lane\"").count(), 4);
    assert!(!page.contains("http://") || !page.contains("<script src"));
    assert!(
        page.contains("class=\"section\""),
        "critical sections shaded"
    );
    assert!(page.contains("term 1 (C#1)"), "leader term marked");
    assert!(page.contains("class=\"run\""), "C#1's ticks collapsed");
}
