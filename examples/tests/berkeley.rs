//! Issue 6, multi-process acceptance: 5 `node --workload berkeley` processes on 127.0.0.1, their
//! oscillators ±1 s off the machine's real-time clock and ±200 ppm fast or slow, reach a precision
//! of 1 ms against that clock within 5 rounds; then the master is killed (`kill -9`) and the node
//! elected next takes over, adjusting within 3 of its rounds. The master is the leader of the
//! bully election each node runs beside its daemon (`--master elected`, the default): node 5,
//! then node 4; no other node ever sends a correction.
//!
//! Every process reads the same real-time clock under its simulated one, so the `offset_ns` each
//! prints (adjusted minus real) is comparable: a round's precision is the largest minus the
//! smallest offset the nodes printed for it (read within a millisecond of each other).
//! All waits are deadlines on output lines.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_node");
const MS: i64 = 1_000_000;
const INTERVAL_MS: u64 = 500;

mod support;
use support::Members;

/// A running node; its stdout lines (parsed JSON, with their arrival time) on a shared channel.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    id: u32,
    members: &mut Members,
    dir: &PathBuf,
    skew_ms: i64,
    drift_ppm: f64,
    tx: mpsc::Sender<(u32, Instant, Value)>,
) -> Proc {
    let mut cmd = Command::new(NODE);
    cmd.args(["--secret", "berkeley secret"])
        .arg("--log-dir")
        .arg(dir)
        .args(["--workload", "berkeley", "--hlc-adjusted"])
        .args(["--skew-ms", &skew_ms.to_string()])
        .args(["--drift-ppm", &drift_ppm.to_string()])
        .args(["--interval-ms", &INTERVAL_MS.to_string()]);
    let (child, out) = members.spawn(id, &mut cmd);
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&l) else {
                continue;
            };
            if tx.send((id, Instant::now(), v)).is_err() {
                break;
            }
        }
    });
    Proc { child }
}

/// Corrections seen: (master, round) → node → (offset_ns, arrival).
type Seen = BTreeMap<(u64, u64), BTreeMap<u32, (i64, Instant)>>;

/// Reads lines into `seen` until `done(seen)` or the deadline.
fn collect_until(
    rx: &mpsc::Receiver<(u32, Instant, Value)>,
    seen: &mut Seen,
    within: Duration,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    let end = Instant::now() + within;
    while !done(seen) {
        let left = end.saturating_duration_since(Instant::now());
        let (node, at, v) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{what}: not within {within:?}; seen {seen:?}"));
        if v.get("delta_ns").is_some() {
            let key = (v["master"].as_u64().unwrap(), v["round"].as_u64().unwrap());
            let offset = v["offset_ns"].as_i64().unwrap();
            seen.entry(key).or_default().insert(node, (offset, at));
        }
    }
}

/// Precision of a round among `nodes`, if every one of them reported it.
fn precision(seen: &Seen, key: (u64, u64), nodes: &[u32]) -> Option<i64> {
    let r = seen.get(&key)?;
    let offsets: Option<Vec<i64>> = nodes.iter().map(|n| r.get(n).map(|x| x.0)).collect();
    let o = offsets?;
    Some(o.iter().max()? - o.iter().min()?)
}

/// Precision of a round among the nodes that were corrected in it (the master defers a member
/// whose samples were unusually delayed), and how many they were; `None` below 3 nodes.
fn precision_of_reported(seen: &Seen, key: (u64, u64)) -> Option<(i64, usize)> {
    let r = seen.get(&key).filter(|r| r.len() >= 3)?;
    let max = r.values().map(|x| x.0).max()?;
    let min = r.values().map(|x| x.0).min()?;
    Some((max - min, r.len()))
}

/// After the first sync: the largest median precision of the later rounds allowed.
const STEADY_MEDIAN: i64 = MS;
/// After the first sync: the largest precision of any later round allowed.
const STEADY_MAX: i64 = 3 * MS;

#[test]
fn five_processes_with_one_second_skews_sync_within_a_millisecond_and_survive_the_master() {
    let dir = std::env::temp_dir().join(format!("actix-coord-berkeley-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _removed = support::RemovedOnSuccess(dir.clone());
    let skews_ms = [-1000i64, 600, -350, 1000, 250];
    let drifts_ppm = [200.0, -200.0, 120.0, -80.0, 150.0];
    let ids: Vec<u32> = (1..=5).collect();
    let mut members = Members::new(ids.iter().copied());
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let mut procs: Vec<Proc> = ids
        .iter()
        .map(|&i| {
            let k = (i - 1) as usize;
            spawn(
                i,
                &mut members,
                &dir,
                skews_ms[k],
                drifts_ppm[k],
                tx.clone(),
            )
        })
        .collect();
    let mut seen = Seen::new();
    // Master 5's rounds 1..=8 (its own line of round 9 comes after every member's of round 8).
    collect_until(&rx, &mut seen, Duration::from_secs(30), "9 rounds", |s| {
        s.get(&(5, 9)).is_some_and(|r| r.contains_key(&5))
    });
    // Acceptance: all five within 1 ms of each other at the end of some round ≤ 5.
    let mut first_sync = None;
    let mut after = Vec::new();
    for round in 1..=8 {
        let p = if first_sync.is_none() {
            precision(&seen, (5, round), &ids)
        } else {
            precision_of_reported(&seen, (5, round)).map(|(p, _)| p)
        };
        let offsets: Vec<(u32, i64)> = seen
            .get(&(5, round))
            .map(|r| r.iter().map(|(n, x)| (*n, x.0 / 1000)).collect())
            .unwrap_or_default();
        eprintln!("master 5, round {round}: precision {p:?} ns, offsets (node, µs) {offsets:?}");
        match (p, first_sync) {
            (Some(p), None) if p <= MS => first_sync = Some(round),
            (Some(p), Some(_)) => after.push(p),
            _ => {}
        }
    }
    let first_sync = first_sync.expect("never within 1 ms");
    assert!(first_sync <= 5, "within 1 ms only from round {first_sync}");
    // Afterwards it stays there, and nothing drifts away. The offsets are measured through the
    // schedulers of a shared machine (a stalled process delays a whole probe exchange), so a
    // single round may exceed 1 ms under load; the median may not. (With a core kept busy beside
    // the test, later rounds sat at 0.2–0.7 ms, median 0.27–0.30 ms.)
    after.sort_unstable();
    if let Some(&median) = after.get(after.len() / 2) {
        assert!(
            median <= STEADY_MEDIAN,
            "median precision {median} ns after sync: {after:?}"
        );
        assert!(after.iter().all(|&p| p <= STEADY_MAX), "{after:?}");
    }
    eprintln!(
        "within 1 ms from round {first_sync}; later rounds {after:?} ns; 8 rounds after {:?}",
        started.elapsed()
    );

    // Kill the master: node 4 takes over at once (the socket closes, MemberDown), and adjusts.
    let killed = Instant::now();
    let _ = procs[4].child.kill();
    let survivors = [1u32, 2, 3, 4];
    collect_until(&rx, &mut seen, Duration::from_secs(20), "failover", |s| {
        (1..=3).any(|r| precision(s, (4, r), &survivors).is_some())
    });
    let first = (1..=3)
        .find(|&r| precision(&seen, (4, r), &survivors).is_some())
        .unwrap();
    let at = seen[&(4, first)].values().map(|x| x.1).max().unwrap();
    eprintln!(
        "new master 4 adjusted every survivor in its round {first}, {:?} after the kill",
        at - killed
    );
    collect_until(
        &rx,
        &mut seen,
        Duration::from_secs(20),
        "master 4 round 5",
        |s| s.get(&(4, 5)).is_some_and(|r| r.contains_key(&4)),
    );
    let mut later: Vec<i64> = (1..=4)
        .filter_map(|r| precision_of_reported(&seen, (4, r)).map(|(p, _)| p))
        .collect();
    eprintln!("master 4, rounds 1–4: precision {later:?} ns");
    let masters: std::collections::BTreeSet<u64> = seen.keys().map(|k| k.0).collect();
    assert_eq!(
        masters,
        [4, 5].into(),
        "corrections only from the elected leaders"
    );
    later.sort_unstable();
    assert!(later[later.len() / 2] <= STEADY_MEDIAN, "{later:?}");
    assert!(later.iter().all(|&p| p <= STEADY_MAX), "{later:?}");
    drop(procs);
    eprintln!("total {:?}", started.elapsed());
}
