//! The causal log of a run in which a member is killed -9: three `node --workload counter`
//! processes (Ricart–Agrawala) on 127.0.0.1, one killed while the others still need its
//! replies. Its JSON-lines file is whatever its writer had flushed: usually a torn last line,
//! and a tail the survivors saw (they received replies it sent) but the file lacks.
//!
//! Checked with the `causal-log` command line (run in-process, `causal_log::cli::run`, the
//! function the binary runs): `check` exits 0, printing a `crash-gap` warning naming the killed
//! node's host and range (and a torn-line warning when the file ends mid-line); the same logs
//! with an injected critical section that is concurrent with the others make `check` exit 1
//! with the mutual-exclusion error. All waits are deadlines on output lines or process exits.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;
use support::Members;

const NODE: &str = env!("CARGO_BIN_EXE_node");
const NODES: u32 = 3;
const VICTIM: u32 = 3;
const ITERATIONS: u32 = 20;

/// A node process and its output lines.
struct Proc {
    id: u32,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(id: u32, members: &mut Members, dir: &Path) -> Proc {
        let mut cmd = Command::new(NODE);
        cmd.args(["--secret", "crash log secret"])
            .arg("--log-dir")
            .arg(dir)
            .args(["--workload", "counter", "--lock", "ricart-agrawala"])
            .args(["--iterations", &ITERATIONS.to_string()])
            .arg("--resource")
            .arg(dir.join("counter"));
        if id == VICTIM {
            cmd.args(["--idle-after", "3"]);
        }
        let (child, out) = members.spawn(id, &mut cmd);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc { id, child, lines }
    }

    /// Waits for an output line containing `what`.
    fn expect_line(&self, what: &str, within: Duration) {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return,
                Ok(_) => {}
                Err(_) => panic!("node {}: no line {what:?} within {within:?}", self.id),
            }
        }
    }

    fn wait_exit(&mut self, within: Duration) -> i32 {
        let end = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "node {} did not exit within {within:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `causal-log ARGS` in-process: (exit status, standard output, standard error).
fn causal_log(args: &[&Path], command: &str) -> (u8, String, String) {
    let mut argv: Vec<std::ffi::OsString> = vec!["causal-log".into(), command.into()];
    argv.extend(args.iter().map(|p| p.as_os_str().to_owned()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = causal_log::cli::run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn check_after_kill_9_warns_of_the_crash_gap_and_still_finds_an_overlap() {
    let t = Instant::now();
    let dir = std::env::temp_dir().join(format!("actix-coord-crash-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut members = Members::new(1..=NODES);
    let mut procs: Vec<Proc> = (1..=NODES)
        .map(|i| Proc::spawn(i, &mut members, &dir))
        .collect();
    // The victim stops acquiring but keeps replying; once a survivor has acquired several more
    // times (each acquisition needed the victim's reply), kill it mid-run.
    let v = (VICTIM - 1) as usize;
    procs[v].expect_line("idle after 3", Duration::from_secs(60));
    procs[0].expect_line("acquired 8 ", Duration::from_secs(60));
    procs[v].child.kill().unwrap();
    let _ = procs[v].child.wait();
    for p in procs.iter_mut().filter(|p| p.id != VICTIM) {
        assert_eq!(p.wait_exit(Duration::from_secs(60)), 0, "node {}", p.id);
    }

    let paths: Vec<PathBuf> = (1..=NODES)
        .map(|i| dir.join(format!("node{i}.jsonl")))
        .collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let victim_file = std::fs::read(&paths[v]).unwrap();
    // Torn: the file ends in the middle of a line. A cut that falls between a line's last
    // character and its newline (the writer's buffer flushed just before the `\n`) leaves a
    // whole line without its newline: that one is read, and nothing is torn.
    let tail = &victim_file[victim_file
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)..];
    let torn = !tail.is_empty() && serde_json::from_slice::<serde_json::Value>(tail).is_err();

    // What the killed node's file lacks, found independently through the library.
    let log = causal_log::Log::read_paths(&paths).unwrap();
    let gaps = log.crash_gaps();
    assert!(
        !gaps.is_empty(),
        "the survivors saw none of the victim's unflushed events"
    );
    let victim_name = paths[v].display().to_string();
    for g in &gaps {
        let last = log.find(&format!("{}:{}", log.host_name(g.host), g.last));
        let file = last.map(|i| log.events()[i].source.file.to_string());
        assert_eq!(file.as_deref(), Some(victim_name.as_str()), "{g:?}");
    }

    let (code, out, err) = causal_log(&refs, "check");
    eprintln!("{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    for g in &gaps {
        let h = log.host_name(g.host);
        let want = format!("warning[crash-gap]: {h}'s log ends at {h}:{}", g.last);
        assert!(out.contains(&want), "no {want:?} in\n{out}");
        assert!(out.contains(&format!("other hosts saw {h}:")), "{out}");
    }
    if torn {
        let want = format!("warning[input]: {victim_name}:");
        assert!(
            out.contains(&want) && out.contains("torn last line skipped"),
            "{out}"
        );
    }

    // The ShiViz files of the same run (written by their own buffers, so cut elsewhere): the
    // same verdict, with the clocks alone to pair messages.
    let shiviz: Vec<PathBuf> = paths.iter().map(|p| p.with_extension("log")).collect();
    let refs_shiviz: Vec<&Path> = shiviz.iter().map(PathBuf::as_path).collect();
    let (code, out, err) = causal_log(&refs_shiviz, "check");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("warning[crash-gap]: "), "{out}");

    // The same logs with a critical section no other one knows of: concurrent with all.
    let resource = log
        .events()
        .iter()
        .find(|e| e.kind == "lock.enter")
        .and_then(|e| e.field_str("resource"))
        .expect("the logs hold critical sections");
    let edited = dir.join("edited");
    std::fs::create_dir_all(&edited).unwrap();
    let mut edited_paths = Vec::new();
    for p in &paths {
        let to = edited.join(p.file_name().unwrap());
        std::fs::copy(p, &to).unwrap();
        edited_paths.push(to);
    }
    let mut first = std::fs::read_to_string(&edited_paths[0]).unwrap();
    for (k, kind) in [(1, "lock.enter"), (2, "lock.exit")] {
        first.push_str(&format!(
            "{{\"host\":\"intruder\",\"kind\":\"{kind}\",\"event\":\"{kind} {resource}\",\"clock\":{{\"intruder\":{k}}},\"fields\":{{\"resource\":\"{resource}\"}}}}\n"
        ));
    }
    std::fs::write(&edited_paths[0], first).unwrap();
    let refs: Vec<&Path> = edited_paths.iter().map(PathBuf::as_path).collect();
    let (code, out, err) = causal_log(&refs, "check");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "error[mutex]: critical sections of {resource} overlap"
        )) && out.contains("intruder:1"),
        "{out}"
    );
    assert!(out.contains("warning[crash-gap]"), "{out}");
    eprintln!("crash log test in {:.1} s", t.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}
