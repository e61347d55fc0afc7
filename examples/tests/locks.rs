//! Multi-process tests of the distributed lock: `node --workload counter` processes on
//! 127.0.0.1 share one counter file under the lock, for each algorithm.
//!
//! Checked: the final value is the number of acquisitions; sorted by the value they wrote, the
//! acquisitions' fencing tokens strictly increase; no write was refused; and from the merged
//! JSON logs' vector clocks, no two critical sections (`lock.enter` … `lock.exit`) are
//! concurrent (`causal_log::Log::check`, plus an explicit pass here). With a member killed -9
//! mid-run the survivors finish; with the Suzuki–Kasami token holder killed exactly one token is
//! regenerated, by the elected leader (the nodes run a bully election for that), in a new epoch,
//! and no section after it uses an older token. All waits are deadlines on events (an output
//! line, a process exit).
//!
//! Size: the acceptance size, 5 processes × 200 acquisitions per algorithm (about 8 s each in a
//! debug build); the crash runs use [`KILL_ITERATIONS`] per node. Figures in `docs/mutex.md`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_node");
const NODES: u32 = 5;
/// Acquisitions per node (the acceptance size).
const ITERATIONS: u32 = 200;
/// Acquisitions per node in the crash runs.
const KILL_ITERATIONS: u32 = 100;

/// One cluster at a time: the machine has few cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

mod support;
use support::Members;

fn work_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("actix-coord-locks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running node process; its stdout lines arrive on a channel and are kept.
struct Proc {
    id: u32,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(
        id: u32,
        members: &mut Members,
        dir: &Path,
        algorithm: &str,
        iterations: u32,
        extra: &[&str],
    ) -> Proc {
        let mut cmd = Command::new(NODE);
        cmd.args(["--secret", "lock test secret"])
            .arg("--log-dir")
            .arg(dir)
            .args(["--workload", "counter", "--lock", algorithm])
            .args(["--iterations", &iterations.to_string()])
            .arg("--resource")
            .arg(dir.join("counter"))
            .args(extra);
        let (child, out) = members.spawn(id, &mut cmd);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            id,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing `what`.
    fn expect_line(&mut self, what: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => panic!("node {}: no line {what:?} within {within:?}", self.id),
            }
        }
    }

    /// Waits for the exit code, then collects every remaining output line.
    fn wait_exit(&mut self, within: Duration) -> i32 {
        let end = Instant::now() + within;
        let code = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "node {} did not exit within {within:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.drain();
        code
    }

    /// Kills the process (-9) and collects what it printed.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
        self.drain();
    }

    fn drain(&mut self) {
        // The pipe closes when the process is gone: the reader thread ends the channel.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(l);
        }
    }

    /// The leader this node recognised (its last `leader L term R` line) when it printed its
    /// summary: after the last acquisition, before any peer leaves (nobody leaves before every
    /// live member is done, and peers that leave change the leader).
    fn leader_when_done(&self) -> Option<u32> {
        let mut leader = None;
        for l in &self.seen {
            if l.contains(" acquisitions with ") {
                break;
            }
            if let ["leader", id, "term", _] = l.split_whitespace().collect::<Vec<_>>().as_slice() {
                leader = id.parse().ok();
            }
        }
        leader
    }

    /// Every `regenerated token round R by node L` line, with the leader this node recognised
    /// just before it.
    fn regenerations(&self) -> Vec<Printed> {
        let mut leader = None;
        let mut out = Vec::new();
        for l in &self.seen {
            match l.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["leader", id, "term", _] => leader = id.parse().ok(),
                ["regenerated", "token", "round", r, "by", "node", by] => out.push(Printed {
                    node: self.id,
                    round: r.parse().unwrap(),
                    by: by.parse().unwrap(),
                    leader_then: leader,
                }),
                _ => {}
            }
        }
        out
    }

    /// `(token, value)` of every acquisition printed.
    fn acquisitions(&self) -> Vec<(u64, u64)> {
        self.seen
            .iter()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w.as_slice() {
                    ["acquired", _, "token", t, "value", v] => {
                        Some((t.parse().ok()?, v.parse().ok()?))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

/// A `regenerated token round R by node L` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Printed {
    /// The node that printed it.
    node: u32,
    /// `R`.
    round: u64,
    /// `L`.
    by: u32,
    /// The leader the node recognised just before (its last `leader` line).
    leader_then: Option<u32>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run {
    dir: PathBuf,
    procs: Vec<Proc>,
}

fn start(name: &str, algorithm: &str, iterations: u32, hooks: &[(u32, &[&str])]) -> Run {
    let dir = work_dir(&format!("{name}-{algorithm}"));
    let mut members = Members::new(1..=NODES);
    let procs = (1..=NODES)
        .map(|i| {
            let extra = hooks
                .iter()
                .find(|(id, _)| *id == i)
                .map_or(&[][..], |(_, e)| *e);
            Proc::spawn(i, &mut members, &dir, algorithm, iterations, extra)
        })
        .collect();
    Run { dir, procs }
}

/// Checks what every acquisition wrote: values 1..=total once each, tokens strictly increasing
/// in value order, and the file holding the last of them.
fn check_counter(run: &Run, total: u64) {
    let mut acq: Vec<(u64, u64)> = run.procs.iter().flat_map(Proc::acquisitions).collect();
    acq.sort_by_key(|&(_, v)| v);
    let values: Vec<u64> = acq.iter().map(|&(_, v)| v).collect();
    assert_eq!(
        values,
        (1..=total).collect::<Vec<_>>(),
        "lost or repeated updates"
    );
    for w in acq.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "token {} wrote {} after token {} wrote {}",
            w[1].0,
            w[1].1,
            w[0].0,
            w[0].1
        );
    }
    let file = std::fs::read_to_string(run.dir.join("counter")).unwrap();
    let last = acq.last().unwrap();
    assert_eq!(file, format!("{} {}\n", last.1, last.0));
    for p in &run.procs {
        assert!(
            !p.seen.iter().any(|l| l.starts_with("refused")),
            "node {} had a write refused",
            p.id
        );
    }
}

/// A `lock.regenerate` event of the merged logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Regenerated {
    /// The node whose log holds it.
    node: u32,
    /// Its `round` field.
    round: u64,
    /// Its `leader` field.
    leader: u64,
}

/// Reads the merged logs (a killed node's last line may be cut: it is dropped), checks them
/// with `causal_log`, checks the sections again here, and returns the `lock.regenerate`
/// events. Every section that begins after a regeneration (in happened-before) uses a token of
/// its round or later: no older token is accepted once a newer one exists.
fn check_log(run: &Run, sections: usize) -> Vec<Regenerated> {
    let mut paths = Vec::new();
    for i in 1..=NODES {
        let p = run.dir.join(format!("node{i}.jsonl"));
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        if whole.len() != text.len() {
            std::fs::write(&p, whole).unwrap();
        }
        if !whole.is_empty() {
            paths.push(p);
        }
    }
    let log = causal_log::Log::read_paths(&paths).unwrap();
    let report = log.check();
    assert!(report.is_clean(), "{report}");
    // Our own pass: each host's sections in order, then every section's exit happens before
    // the next section's enter, in the order of the enters.
    let evs = log.events();
    let mut secs: Vec<(usize, usize)> = Vec::new();
    for h in log.hosts_by_name() {
        let mut open = None;
        for &i in log.host_events(h) {
            match evs[i].kind.as_str() {
                "lock.enter" => {
                    assert!(open.is_none(), "{} enters twice", log.describe(i));
                    open = Some(i);
                }
                "lock.exit" => {
                    let e = open.take().expect("exit without enter");
                    assert_eq!(evs[e].field_u64("fence"), evs[i].field_u64("fence"));
                    secs.push((e, i));
                }
                _ => {}
            }
        }
    }
    secs.sort_by_key(|&(e, _)| log.rank(e));
    for w in secs.windows(2) {
        let ((e1, x1), (e2, _)) = (w[0], w[1]);
        assert!(
            log.happened_before(x1, e2),
            "sections {} and {} are concurrent",
            log.describe(e1),
            log.describe(e2)
        );
        assert!(evs[e1].field_u64("fence") < evs[e2].field_u64("fence"));
    }
    assert!(
        secs.len() >= sections,
        "{} sections logged, {sections} expected",
        secs.len()
    );
    let mut regenerated = Vec::new();
    for (r, e) in evs.iter().enumerate() {
        if e.kind != "lock.regenerate" {
            continue;
        }
        let file = e.source.file.rsplit('/').next().unwrap_or_default();
        let node = file
            .strip_prefix("node")
            .and_then(|f| f.strip_suffix(".jsonl"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{} in {file}", log.describe(r)));
        let round = e.field_u64("round").expect("round");
        let leader = e.field_u64("leader").expect("leader");
        for &(enter, _) in &secs {
            if log.happened_before(r, enter) {
                let fence = evs[enter].field_u64("fence").unwrap();
                assert!(
                    fence >> 32 >= round,
                    "{} uses token {fence:#x} of round {} after {} (round {round})",
                    log.describe(enter),
                    fence >> 32,
                    log.describe(r)
                );
            }
        }
        regenerated.push(Regenerated {
            node,
            round,
            leader,
        });
    }
    regenerated
}

fn full_run(algorithm: &str, iterations: u32) {
    let _one = serial();
    let t = Instant::now();
    let mut run = start("full", algorithm, iterations, &[]);
    for p in &mut run.procs {
        assert_eq!(p.wait_exit(Duration::from_secs(300)), 0, "node {}", p.id);
        let summary = p.seen.iter().find(|l| l.contains("acquisitions")).unwrap();
        assert!(
            summary.contains(&format!("{iterations} acquisitions")),
            "{summary}"
        );
    }
    let total = u64::from(NODES * iterations);
    check_counter(&run, total);
    assert_eq!(
        check_log(&run, total as usize),
        vec![],
        "no token regenerated"
    );
    eprintln!(
        "{algorithm}: {NODES} processes x {iterations} acquisitions in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&run.dir);
}

#[test]
fn lamport_five_processes_count_without_lost_updates() {
    full_run("lamport", ITERATIONS);
}

#[test]
fn ricart_agrawala_five_processes_count_without_lost_updates() {
    full_run("ricart-agrawala", ITERATIONS);
}

#[test]
fn suzuki_kasami_five_processes_count_without_lost_updates() {
    full_run("suzuki-kasami", ITERATIONS);
}

/// What a run with a killed node left behind.
struct Killed {
    /// The `lock.regenerate` events of the merged logs.
    regenerated: Vec<Regenerated>,
    /// The regenerations the survivors printed.
    printed: Vec<Printed>,
    /// Per survivor: the leader it recognised when it was done.
    leaders_when_done: Vec<(u32, Option<u32>)>,
    /// The highest token the victim used.
    victim_token: u64,
}

/// Kills node `victim` once it prints `line`, lets the others finish, and checks the counter
/// and the logs.
fn kill_run(algorithm: &str, victim: u32, hook: &[&str], line: &str) -> Killed {
    let _one = serial();
    let t = Instant::now();
    let mut run = start("kill", algorithm, KILL_ITERATIONS, &[(victim, hook)]);
    let v = (victim - 1) as usize;
    run.procs[v].expect_line(line, Duration::from_secs(120));
    run.procs[v].kill();
    let mut survivors_total = 0;
    for p in run.procs.iter_mut().filter(|p| p.id != victim) {
        assert_eq!(p.wait_exit(Duration::from_secs(120)), 0, "node {}", p.id);
        survivors_total += p.acquisitions().len();
        assert_eq!(
            p.acquisitions().len(),
            KILL_ITERATIONS as usize,
            "node {}",
            p.id
        );
    }
    let victim_total = run.procs[v].acquisitions().len();
    let total = (survivors_total + victim_total) as u64;
    check_counter(&run, total);
    let regenerated = check_log(&run, survivors_total);
    let survivors = || run.procs.iter().filter(|p| p.id != victim);
    let killed = Killed {
        printed: survivors().flat_map(Proc::regenerations).collect(),
        leaders_when_done: survivors().map(|p| (p.id, p.leader_when_done())).collect(),
        victim_token: run.procs[v]
            .acquisitions()
            .iter()
            .map(|&(t, _)| t)
            .max()
            .unwrap_or(0),
        regenerated,
    };
    eprintln!(
        "{algorithm}: node {victim} killed after {victim_total} acquisitions, value {total}, regenerated {:?}, {:.1} s",
        killed.regenerated,
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&run.dir);
    killed
}

/// Suzuki–Kasami after a kill: at most `max` tokens regenerated (exactly `max` when `exact`),
/// each by `leader`, the leader every survivor recognised when it was done (the highest live
/// id, as bully elects), and which recognised itself as leader when it regenerated; each in a
/// new epoch above the victim's tokens (the logs show that no section after it used an older
/// one, `check_log`).
fn assert_regenerated_by_the_leader(k: &Killed, leader: u32, max: usize, exact: bool) {
    for &(id, then) in &k.leaders_when_done {
        assert_eq!(then, Some(leader), "node {id}'s leader when it was done");
    }
    let n = k.regenerated.len();
    assert!(
        n <= max && (!exact || n == max),
        "{n} tokens regenerated: {:?}",
        k.regenerated
    );
    let printed = &k.printed;
    assert_eq!(
        printed.len(),
        n,
        "printed {printed:?}, logged {:?}",
        k.regenerated
    );
    for (r, p) in k.regenerated.iter().zip(printed) {
        assert_eq!(
            (r.node, r.leader, p.node, p.by, p.leader_then),
            (leader, u64::from(leader), leader, leader, Some(leader)),
            "regenerated by the elected leader: {r:?}, printed {printed:?}"
        );
        assert_eq!(r.round, p.round);
        assert!(r.round >= 1 && (r.round << 32) > k.victim_token, "{r:?}");
    }
}

#[test]
fn killed_non_holder_leaves_the_survivors_to_finish_each_algorithm() {
    for a in ["lamport", "ricart-agrawala", "suzuki-kasami"] {
        let k = kill_run(a, 4, &["--idle-after", "20"], "idle after 20");
        match a {
            // The idle victim may have kept the token: then the leader (node 5) regenerates it,
            // once.
            "suzuki-kasami" => assert_regenerated_by_the_leader(&k, 5, 1, false),
            _ => assert_eq!(k.regenerated, vec![]),
        }
    }
}

#[test]
fn suzuki_kasami_holder_killed_regenerates_exactly_one_token() {
    // Node 5 leads throughout: it regenerates, not the lowest live node (1).
    let k = kill_run("suzuki-kasami", 3, &["--hold-at", "10"], "holding 10");
    assert_regenerated_by_the_leader(&k, 5, 1, true);
}

#[test]
fn suzuki_kasami_leader_killed_holding_the_token_the_next_leader_regenerates_it() {
    // Node 5 leads and holds the token when it dies: node 4 is elected and regenerates.
    let k = kill_run("suzuki-kasami", 5, &["--hold-at", "10"], "holding 10");
    assert_regenerated_by_the_leader(&k, 4, 1, true);
}
