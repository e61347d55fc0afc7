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
    /// Starts member `id`; its logs go to `logs`, the counter file is `dir/counter`.
    fn spawn(
        id: u32,
        members: &mut Members,
        (dir, logs): (&Path, &Path),
        algorithm: &str,
        iterations: u32,
        extra: &[&str],
    ) -> Proc {
        std::fs::create_dir_all(logs).unwrap();
        let mut cmd = Command::new(NODE);
        cmd.args(["--secret", "lock test secret"])
            .arg("--log-dir")
            .arg(logs)
            .arg("--state-dir")
            .arg(dir.join(format!("state{id}")))
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

    /// Kills the process (-9) and collects what it printed. Returns the time on the clock
    /// sections are timed with ([`monotonic_now`]) read just before the signal: the process was
    /// alive then and dies within the `kill` call, and its peers can only act on its death (its
    /// sockets close) after that. A section of another member that began before this time began
    /// while the process was still alive; the clock read after reaping it can be far later
    /// (the test thread may wait for a core), which would flag a handover right after the
    /// death as an overlap.
    fn kill(&mut self) -> u64 {
        let alive = monotonic_now();
        self.child.kill().unwrap();
        let _ = self.child.wait();
        self.drain();
        alive
    }

    /// Takes the lines printed so far without waiting.
    fn pump(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// Sends a signal with `kill(1)` (`STOP`, `CONT`).
    /// Waits until the process is stopped (state `T` in `/proc/PID/stat`).
    fn wait_stopped(&self, within: Duration) {
        let end = Instant::now() + within;
        let stat = format!("/proc/{}/stat", self.child.id());
        loop {
            let s = std::fs::read_to_string(&stat).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            if s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            {
                return;
            }
            assert!(
                Instant::now() < end,
                "node {} not stopped within {within:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} node {}", self.id);
    }

    /// Every critical section printed: `section I token T from A to B`, and an open one
    /// (`holding I token T since A`) ending at `end` (when the process was killed).
    fn sections(&self, incarnation: u32, end: u64) -> Vec<Section> {
        let refused: Vec<u64> = self
            .seen
            .iter()
            .filter_map(
                |l| match l.split_whitespace().collect::<Vec<_>>().as_slice() {
                    ["refused", _, "token", t, ..] => t.trim_end_matches(':').parse().ok(),
                    _ => None,
                },
            )
            .collect();
        let mut out = Vec::new();
        for l in &self.seen {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (token, from, to) = match w.as_slice() {
                ["section", _, "token", t, "from", a, "to", b] => {
                    (t.parse().unwrap(), a.parse().unwrap(), b.parse().unwrap())
                }
                ["holding", _, "token", t, "since", a] => {
                    (t.parse().unwrap(), a.parse().unwrap(), end)
                }
                _ => continue,
            };
            out.push(Section {
                node: self.id,
                incarnation,
                token,
                from,
                to,
                refused: refused.contains(&token),
            });
        }
        out
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

/// One critical section as its process timed it (`CLOCK_MONOTONIC_RAW`, shared by every
/// process of the machine): from just after the grant to just before the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Section {
    node: u32,
    /// 1 for the first process of `node`, 2 for its restart.
    incarnation: u32,
    token: u64,
    from: u64,
    to: u64,
    /// Whether its write was refused.
    refused: bool,
}

/// Now on the clock the nodes time their sections with.
fn monotonic_now() -> u64 {
    use actix_coord::clock::physical::{HardwareClock, SystemClock};
    SystemClock::monotonic_raw().now_ns()
}

/// The pairs of sections that overlap in real time. Each pair must involve `suspected` (a node
/// falsely suspected on purpose, whose mutual exclusion is only guarded by the fence), and in
/// each such pair the suspected node's write, if it made one after the overlap began, was
/// refused. Returns the overlapping pairs.
fn overlaps(sections: &[Section], suspected: Option<u32>) -> Vec<(Section, Section)> {
    let mut s = sections.to_vec();
    s.sort_by_key(|x| x.from);
    let mut pairs = Vec::new();
    for (k, a) in s.iter().enumerate() {
        for b in &s[k + 1..] {
            if b.from >= a.to {
                break;
            }
            pairs.push((*a, *b));
        }
    }
    for (a, b) in &pairs {
        assert!(
            suspected.is_some_and(|v| a.node == v || b.node == v),
            "concurrent critical sections {a:?} and {b:?}"
        );
        // The later of the two entered while the other was inside: if it is the suspected
        // node's, the resource must have refused it (its fence is stale).
        if Some(b.node) == suspected && b.node != a.node {
            assert!(
                b.refused || b.token > a.token,
                "{b:?} entered inside {a:?} and was not refused"
            );
        }
    }
    pairs
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
    members: Members,
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
            Proc::spawn(i, &mut members, (&dir, &dir), algorithm, iterations, extra)
        })
        .collect();
    Run {
        dir,
        procs,
        members,
    }
}

/// Checks what every accepted write wrote: values 1..=total once each, tokens strictly
/// increasing in value order (no lower and no equal token accepted), the file holding the last
/// of them, and no refused write except by `may_be_refused`.
fn check_counter(run: &Run, total: u64) {
    check_counter_of(&run.dir, &run.procs, total, None);
}

fn check_counter_of(dir: &Path, procs: &[Proc], total: u64, may_be_refused: Option<u32>) {
    let mut acq: Vec<(u64, u64)> = procs.iter().flat_map(Proc::acquisitions).collect();
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
    let last = acq.last().unwrap();
    let writer = procs
        .iter()
        .find(|p| p.acquisitions().contains(last))
        .unwrap()
        .id;
    let stored = examples::workloads::counter::read_counter(&dir.join("counter")).unwrap();
    assert_eq!(
        (*stored.get(), stored.highest(), stored.owner()),
        (last.1, Some(last.0), Some(writer)),
        "the counter's newest commit is the last accepted write"
    );
    for p in procs.iter().filter(|p| Some(p.id) != may_be_refused) {
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
    check_log_with(&run.dir, sections, None).0
}

/// The merged logs of a run (a killed node's last line may be cut: it is dropped). A restarted
/// member's second log is in `restarted/`; with its `--state-dir`, its processes are of a new
/// incarnation, with ids and names of their own.
fn read_logs(dir: &Path) -> causal_log::Log {
    let mut paths = Vec::new();
    let files = (1..=NODES).flat_map(|i| {
        [
            dir.join(format!("node{i}.jsonl")),
            dir.join("restarted").join(format!("node{i}.jsonl")),
        ]
    });
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        if whole.len() != text.len() {
            std::fs::write(&p, whole).unwrap();
        }
        if !whole.is_empty() {
            paths.push(p);
        }
    }
    causal_log::Log::read_paths(&paths).unwrap()
}

/// [`check_log`] with `suspected` a node falsely suspected on purpose: sections concurrent with
/// one of its own are counted (the fence, not the lock, guards the resource then) instead of
/// failing the check; any other two concurrent sections still fail it. Returns the
/// regenerations and the number of concurrent pairs.
fn check_log_with(
    dir: &Path,
    sections: usize,
    suspected: Option<u32>,
) -> (Vec<Regenerated>, usize) {
    let log = read_logs(dir);
    let report = log.check();
    let guarded = |f: &&causal_log::Finding| {
        suspected.is_some()
            && matches!(f.rule, causal_log::Rule::Mutex | causal_log::Rule::Fence)
            && f.message
                .contains(&format!("node{}.jsonl", suspected.unwrap()))
    };
    let errors: Vec<_> = report.errors().filter(|f| !guarded(f)).collect();
    assert!(errors.is_empty(), "{report}");
    let node_of = |i: usize| -> u32 {
        let file = evs_file(&log, i);
        file.strip_prefix("node")
            .and_then(|f| f.strip_suffix(".jsonl"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let mut concurrent = 0;
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
        let involved = suspected.is_some_and(|v| node_of(e1) == v || node_of(e2) == v);
        if involved && !log.happened_before(x1, e2) {
            concurrent += 1;
            continue;
        }
        assert!(
            log.happened_before(x1, e2),
            "sections {} and {} are concurrent",
            log.describe(e1),
            log.describe(e2)
        );
        if !involved {
            assert!(evs[e1].field_u64("fence") < evs[e2].field_u64("fence"));
        }
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
    (regenerated, concurrent)
}

/// The file name (no directory) of event `i`'s log.
fn evs_file(log: &causal_log::Log, i: usize) -> String {
    let f = &log.events()[i].source.file;
    f.rsplit('/').next().unwrap_or_default().to_owned()
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

/// Waits until every member but `victim` exits 0 with all its iterations; their acquisitions.
fn survivors_finish(run: &mut Run, victim: u32) -> usize {
    let mut total = 0;
    for p in run.procs.iter_mut().filter(|p| p.id != victim) {
        assert_eq!(p.wait_exit(Duration::from_secs(120)), 0, "node {}", p.id);
        total += p.acquisitions().len();
        assert_eq!(
            p.acquisitions().len(),
            KILL_ITERATIONS as usize,
            "node {}",
            p.id
        );
    }
    total
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
    let survivors_total = survivors_finish(&mut run, victim);
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

/// Acquisitions of a restarted member.
const RESTART_ITERATIONS: u32 = 20;

/// How long a member stays stopped (`SIGSTOP`) in the false-suspicion runs: three failure
/// timeouts of the node (1 s), so every peer declares it down.
const STOPPED: Duration = Duration::from_secs(3);

/// kill -9 of node 3 while it holds the lock (its 10th section), then its restart: a new
/// process with the same id on a new port, which catches up and makes its own
/// [`RESTART_ITERATIONS`] acquisitions while the others finish theirs. Checked: every process
/// exits 0, the counter is the number of accepted writes, the tokens strictly increase in value
/// order, no write was refused, and no two sections (both incarnations included) overlap in
/// real time.
///
/// With `keep_state`, the restart finds its predecessor's `--state-dir` and is incarnation 1,
/// and the merged logs of both incarnations must check as one run. Without it (the folder is
/// lost before the restart), the restart is incarnation 0 again, its processes reuse their
/// predecessor's ids and names, and the log check must find the collision: the check of the
/// first case can fail.
fn restart_run(algorithm: &str, keep_state: bool) {
    let _one = serial();
    let t = Instant::now();
    let victim = 3;
    let mut run = start(
        "restart",
        algorithm,
        KILL_ITERATIONS,
        &[(victim, &["--hold-at", "10"])],
    );
    let v = (victim - 1) as usize;
    run.procs[v].expect_line("holding 10", Duration::from_secs(120));
    let killed_at = run.procs[v].kill();
    if !keep_state {
        std::fs::remove_dir_all(run.dir.join(format!("state{victim}"))).unwrap();
    }
    let restarted_logs = run.dir.join("restarted");
    let mut second = Proc::spawn(
        victim,
        &mut run.members,
        (&run.dir, &restarted_logs),
        algorithm,
        RESTART_ITERATIONS,
        &[],
    );
    assert_eq!(
        second.wait_exit(Duration::from_secs(120)),
        0,
        "restarted node"
    );
    assert_eq!(second.acquisitions().len(), RESTART_ITERATIONS as usize);
    survivors_finish(&mut run, victim);
    let first = run.procs[v].acquisitions().len();
    assert_eq!(first, 10, "the killed process's accepted writes");
    let mut sections: Vec<Section> = run
        .procs
        .iter()
        .flat_map(|p| p.sections(1, killed_at))
        .collect();
    sections.extend(second.sections(2, 0));
    assert_eq!(overlaps(&sections, None), vec![]);
    let survivors = u64::from((NODES - 1) * KILL_ITERATIONS);
    let total = survivors + first as u64 + u64::from(RESTART_ITERATIONS);
    let mut all: Vec<Proc> = std::mem::take(&mut run.procs);
    all.push(second);
    check_counter_of(&run.dir, &all, total, None);
    // The merged causal logs of both incarnations, checked as one run: the restarted process
    // is incarnation 1 (its `--state-dir` says so), so its ids and names are its own. The
    // killed process's last lines may be lost: only the others' sections are counted.
    let restarted_log =
        std::fs::read_to_string(restarted_logs.join(format!("node{victim}.jsonl"))).unwrap();
    if !keep_state {
        assert!(!restarted_log.contains(&format!("\"process\":\"{victim}~")));
        let report = read_logs(&run.dir).check();
        let first = report.errors().next().map(ToString::to_string);
        assert!(
            first.is_some(),
            "two incarnations with the same ids, and the merged logs check"
        );
        eprintln!(
            "{algorithm}: restart without its state folder: the log check finds {} errors, first: {}",
            report.errors().count(),
            first.unwrap_or_default()
        );
        let _ = std::fs::remove_dir_all(&run.dir);
        return;
    }
    let logged = survivors + u64::from(RESTART_ITERATIONS);
    let (_, concurrent) = check_log_with(&run.dir, logged as usize, None);
    assert_eq!(concurrent, 0);
    assert!(
        restarted_log.contains(&format!("\"process\":\"{victim}~1.")),
        "the restarted process's ids carry its incarnation"
    );
    eprintln!(
        "{algorithm}: node {victim} killed holding its 10th section and restarted: {total} accepted writes, {} sections timed, none overlapping, merged logs of both incarnations check, {:.1} s",
        sections.len(),
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&run.dir);
}

/// A false suspicion made on purpose: node 3 is stopped (`SIGSTOP`) just after its 20th write,
/// wherever that leaves it (inside its section, releasing, or waiting for the next), for
/// [`STOPPED`], so that every peer declares it down and goes on; then `SIGCONT`. Checked: every
/// process finishes its acquisitions and exits 0; the counter equals the accepted writes; the
/// accepted tokens strictly increase in value order (no lower or foreign-equal token accepted);
/// only node 3 had writes refused; sections overlap in real time, and are concurrent in the
/// merged logs, only where node 3 is one of the two (mutual exclusion is guarded by the fence
/// there, `docs/faults.md`), and a section of node 3 that entered inside another was refused.
/// With Suzuki–Kasami every node runs its election with `--quorum` (only a majority's leader
/// regenerates a token).
fn stop_run(algorithm: &str) {
    stop_run_at(algorithm, Pause::AfterWrite);
}

/// Where the paused member is stopped.
#[derive(Clone, Copy, PartialEq)]
enum Pause {
    /// By the test, just after its 20th write (wherever that leaves it).
    AfterWrite,
    /// By itself, inside its 21st section, between the counter's token check and its commit
    /// (`--stop-before-commit 21`): when it resumes, newer writes have gone in, and its write
    /// must be refused, not put the old value back.
    BeforeCommit,
}

fn stop_run_at(algorithm: &str, pause: Pause) {
    let _one = serial();
    let t = Instant::now();
    let victim = 3;
    let quorum: &[&str] = if algorithm == "suzuki-kasami" {
        &["--await-all", "--quorum"]
    } else {
        &["--await-all"]
    };
    let stopping: Vec<&str> = quorum
        .iter()
        .copied()
        .chain(["--stop-before-commit", "21"])
        .collect();
    let hooks: Vec<(u32, &[&str])> = (1..=NODES)
        .map(|i| match pause {
            Pause::BeforeCommit if i == victim => (i, &stopping[..]),
            _ => (i, quorum),
        })
        .collect();
    let mut run = start("stop", algorithm, KILL_ITERATIONS, &hooks);
    let v = (victim - 1) as usize;
    match pause {
        Pause::AfterWrite => {
            run.procs[v].expect_line("acquired 20 ", Duration::from_secs(120));
            run.procs[v].signal("STOP");
        }
        Pause::BeforeCommit => {
            run.procs[v].expect_line("stopping before commit 21 ", Duration::from_secs(120));
            // The stop's duration runs from the stop itself, not from the line before it.
            run.procs[v].wait_stopped(Duration::from_secs(10));
        }
    }
    let before: usize = run
        .procs
        .iter_mut()
        .map(|p| {
            p.pump();
            p.acquisitions().len()
        })
        .sum();
    // The fault's duration (not a wait for an outcome): the peers' failure timeout is 1 s.
    std::thread::sleep(STOPPED);
    let during: usize = run
        .procs
        .iter_mut()
        .map(|p| {
            p.pump();
            p.acquisitions().len()
        })
        .sum::<usize>()
        - before;
    run.procs[v].signal("CONT");
    for p in &mut run.procs {
        let code = p.wait_exit(Duration::from_secs(120));
        let tail = p.seen[p.seen.len().saturating_sub(12)..].join("\n");
        assert_eq!(code, 0, "node {}, last lines:\n{tail}", p.id);
        assert_eq!(
            p.acquisitions().len(),
            KILL_ITERATIONS as usize,
            "node {}, last lines:\n{tail}",
            p.id
        );
    }
    let total = u64::from(NODES * KILL_ITERATIONS);
    check_counter_of(&run.dir, &run.procs, total, Some(victim));
    let sections: Vec<Section> = run.procs.iter().flat_map(|p| p.sections(1, 0)).collect();
    let pairs = overlaps(&sections, Some(victim));
    let refused = sections.iter().filter(|s| s.refused).count();
    let (regenerated, concurrent) = check_log_with(&run.dir, total as usize, Some(victim));
    if algorithm != "suzuki-kasami" {
        // Progress while node 3 was stopped proves the peers suspected it: Lamport and
        // Ricart–Agrawala need every live member's answer.
        assert!(during > 0, "no acquisition while node {victim} was stopped");
    }
    if pause == Pause::BeforeCommit {
        assert!(
            run.procs[v]
                .seen
                .iter()
                .any(|l| l.starts_with("refused 21 ")),
            "node {victim}'s write checked before its stop was not refused"
        );
    }
    let at = match pause {
        Pause::AfterWrite => "after its 20th write",
        Pause::BeforeCommit => "between its check and its commit",
    };
    eprintln!(
        "{algorithm}: node {victim} stopped {STOPPED:?} {at}: {during} writes by the others meanwhile, {total} accepted writes, {refused} of node {victim}'s refused, {} overlapping pairs in real time, {concurrent} concurrent in the logs, regenerated {regenerated:?}, {:.1} s",
        pairs.len(),
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&run.dir);
}

#[test]
fn lamport_holder_killed_then_restarted() {
    restart_run("lamport", true);
}

#[test]
fn ricart_agrawala_holder_killed_then_restarted() {
    restart_run("ricart-agrawala", true);
}

#[test]
fn suzuki_kasami_holder_killed_then_restarted() {
    restart_run("suzuki-kasami", true);
}

/// The seeded case of the restart runs: a restart that lost its state folder reuses its
/// predecessor's process ids, and the merged logs' check finds it.
#[test]
fn a_restart_without_its_state_folder_makes_the_merged_logs_fail_their_check() {
    restart_run("ricart-agrawala", false);
}

#[test]
fn lamport_member_stopped_longer_than_the_failure_timeout() {
    stop_run("lamport");
}

#[test]
fn ricart_agrawala_member_stopped_longer_than_the_failure_timeout() {
    stop_run("ricart-agrawala");
}

#[test]
fn suzuki_kasami_member_stopped_longer_than_the_failure_timeout() {
    stop_run("suzuki-kasami");
}

/// Node 3 stops itself between its token check and its commit, inside its 21st section, for
/// longer than the failure timeout: the others go on and commit newer values, and node 3's
/// write, landing when it resumes, is refused (a check followed by a plain rename put the old
/// value back, and every write made meanwhile was lost: seen once in CI as 80 repeated values).
#[test]
fn ricart_agrawala_member_stopped_between_its_check_and_its_commit() {
    stop_run_at("ricart-agrawala", Pause::BeforeCommit);
}
