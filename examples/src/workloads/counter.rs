//! The lock-protected counter: `node --workload counter`.
//!
//! Every member acquires the distributed lock `counter` until `--iterations` of its writes were
//! accepted. Inside the critical section it reads the integer stored in `--resource FILE`,
//! writes it + 1 together with its fencing token and its id, and releases. The file holds one
//! line, `VALUE TOKEN WRITER`, replaced atomically (written to a temporary file, then renamed
//! over it). A write whose token is lower than the stored one, or equal to it from another
//! writer, is refused ([`FencedResource::write_by`] semantics, persisted in the file): the writer
//! has lost the lock (it was falsely suspected, say). A refused write is printed
//! (`refused I token T: WHY`) and the acquisition is made again. With mutual exclusion the final
//! value is the number of accepted writes, and sorting them by the value they wrote sorts their
//! tokens too.
//!
//! Each accepted write prints `acquired I token T value V`; after each release the node prints
//! `section I token T from A to B`, `A` and `B` the `CLOCK_MONOTONIC_RAW` nanoseconds read just
//! after the grant and just before the release (one clock for every process of a machine, so
//! sections of different processes can be compared); at the end the node prints a summary,
//! waits until every live peer is done (a node that leaves early would look crashed to the
//! others), stops its lock actor, waits until every live peer has stopped its own, and exits 0.
//! A peer declared down is not waited for, so the survivors of a killed peer finish; with
//! `--await-all` every member is waited for (a falsely suspected one comes back).
//!
//! With `--lock suzuki-kasami` the node also runs a member of a bully election (registered as
//! `election`, settings from the election workload's options: `--answer-ms`, `--quorum`, …) and
//! gives its [`LeaderView`](actix_coord::election::LeaderView) to the lock
//! ([`LockConfig::with_recovery_leader`]): a token lost with its holder is regenerated only by
//! the elected leader. It prints every leader it recognises, `leader L term R` (`leader none
//! term R` while there is none), and, on the node that regenerates a token,
//! `regenerated token round R by node L` (then the `lock.regenerate` event of its causal log has
//! the same `round` and `leader`); the summary counts its regenerations.
//!
//! Two test hooks: `--idle-after K` stops acquiring after K acquisitions and stays a (non-holder)
//! member until killed; `--hold-at K` stays inside the K-th critical section until killed
//! (printing `holding K token T since A` first).

use actix::prelude::*;
use actix_coord::clock::physical::{HardwareClock, SystemClock};
use actix_coord::driver::At;
use actix_coord::driver::Subscribe;
use actix_coord::election::{BullyConfig, Election};
use actix_coord::intercept::{CausalBuilder, CausalContext};
use actix_coord::mutex::{
    AnyLockEvent, DistributedLock, Fence, FencedResource, LockAlgorithm, LockConfig,
};
use actix_coord::net::{Node, RemoteAddr, RemoteError};
use actix_coord::{remote_actor, remote_message};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of the counter workload.
#[derive(clap::Args, Debug, Clone)]
pub struct CounterArgs {
    /// Lock algorithm (workload `counter`): lamport, ricart-agrawala or suzuki-kasami.
    #[arg(long, default_value = "ricart-agrawala")]
    pub lock: LockAlgorithm,
    /// Acquisitions per node (workload `counter`).
    #[arg(long, default_value_t = 10)]
    pub iterations: u32,
    /// The shared counter file (workload `counter`).
    #[arg(long)]
    pub resource: Option<PathBuf>,
    /// Test hook: stop acquiring after this many acquisitions and stay an idle member.
    #[arg(long)]
    pub idle_after: Option<u32>,
    /// Test hook: stay inside the critical section of this acquisition (1-based).
    #[arg(long)]
    pub hold_at: Option<u32>,
    /// Test hook: in this acquisition (1-based), stop the whole process (`SIGSTOP` to itself,
    /// through `kill`) after the counter's token check and before its commit, until a
    /// `SIGCONT`: a writer paused between the two.
    #[arg(long)]
    pub stop_before_commit: Option<u32>,
    /// At the end, wait for every member, also one declared down (a member falsely suspected
    /// comes back and finishes), up to the patience of 60 s; without it a member declared down
    /// is not waited for.
    #[arg(long)]
    pub await_all: bool,
}

/// The name of the lock the workload uses.
pub const RESOURCE: &str = "counter";

/// How long to wait for peers, barriers and each acquisition before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

/// Refused writes after which the node gives up (exit 1): a lock that keeps losing is broken.
const MAX_REFUSED: u32 = 10_000;

/// "Member `from` has reached `phase`" (0 ready, 1 done, 2 lock stopped).
#[derive(Message, Serialize, Deserialize)]
#[rtype(result = "()")]
struct Phase {
    from: u32,
    phase: u8,
}

remote_message!(Phase = "examples.counter.phase");

/// Records the phases peers have reached.
struct Sync {
    seen: tokio::sync::watch::Sender<BTreeMap<u8, BTreeSet<u32>>>,
}

impl Actor for Sync {
    type Context = CausalContext<Self>;
}

impl Handler<Phase> for Sync {
    type Result = ();
    fn handle(&mut self, m: Phase, _: &mut Self::Context) {
        self.seen.send_modify(|s| {
            s.entry(m.phase).or_default().insert(m.from);
        });
    }
}

remote_actor!(Sync: Phase);

/// Why the counter file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CounterFileError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not hold `VALUE TOKEN`.
    #[error("{path}: malformed content {content:?}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
}

/// The counter as stored: its value, the highest token accepted and who wrote with it (none for
/// a new file; a file of the older form `VALUE TOKEN` names no writer).
///
/// Every accepted write is committed as `FILE.d/VALUE` (see [`write_counter`]), and `FILE` is a
/// copy of the newest for people to read. The copy is written after the commit, so it may lag:
/// the newest committed value is found from it by looking for the values after it.
pub fn read_counter(path: &Path) -> Result<FencedResource<u64>, CounterFileError> {
    let mut r = parse_counter(path, &read_text(path)?)?;
    let dir = committed_dir(path);
    let mut value = *r.get();
    let mut newest = None;
    loop {
        let next = dir.join(committed_name(value + 1));
        let text = read_text(&next)?;
        if text.is_empty() {
            break;
        }
        value += 1;
        newest = Some((next, text));
    }
    if let Some((file, text)) = newest {
        r = parse_counter(&file, &text)?;
    }
    Ok(r)
}

/// What `path` holds (empty when there is no such file).
fn read_text(path: &Path) -> Result<String, CounterFileError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(CounterFileError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Where the commits of the counter in `path` are kept: `FILE.d/`.
fn committed_dir(path: &Path) -> PathBuf {
    let mut d = path.as_os_str().to_owned();
    d.push(".d");
    PathBuf::from(d)
}

/// The commit of `value`'s name, sortable.
fn committed_name(value: u64) -> String {
    format!("{value:020}")
}

/// Reads `VALUE [TOKEN [WRITER]]`.
fn parse_counter(path: &Path, text: &str) -> Result<FencedResource<u64>, CounterFileError> {
    let malformed = || CounterFileError::Malformed {
        path: path.into(),
        content: text.to_owned(),
    };
    let mut parts = text.split_whitespace();
    let Some(v) = parts.next() else {
        return Ok(FencedResource::new(0));
    };
    let value: u64 = v.parse().map_err(|_| malformed())?;
    let mut r = FencedResource::new(value);
    if let Some(t) = parts.next() {
        let token: Fence = t.parse().map_err(|_| malformed())?;
        match parts.next() {
            Some(w) => {
                let writer: u32 = w.parse().map_err(|_| malformed())?;
                let _ = r.write_by(writer, token, |_| ());
            }
            None => {
                let _ = r.write(token, |_| ());
            }
        }
    }
    if parts.next().is_some() {
        return Err(malformed());
    }
    Ok(r)
}

/// Commits the counter `r` (read, checked and changed by `writer`): written to a temporary file
/// and linked as `FILE.d/VALUE`, which fails when that value is committed already; then written
/// again and renamed over `FILE`, the readable copy.
///
/// The link is a compare-and-swap: only one write of each value can commit, so a writer that
/// checked its token, then paused (stopped, descheduled) while newer writes went in, finds its
/// write refused when it resumes (`Ok(Err(why))`) instead of putting an old value back. A check
/// followed by a plain rename would let that late write undo every write made meanwhile.
pub fn write_counter(
    path: &Path,
    r: &FencedResource<u64>,
    writer: u32,
) -> Result<Result<(), String>, CounterFileError> {
    let io = |at: &Path| {
        let at = at.to_path_buf();
        move |source| CounterFileError::Io { path: at, source }
    };
    let tmp = path.with_extension(format!("tmp{writer}"));
    let line = match (r.highest(), r.owner()) {
        (Some(t), Some(w)) => format!("{} {t} {w}\n", r.get()),
        (Some(t), None) => format!("{} {t}\n", r.get()),
        (None, _) => format!("{}\n", r.get()),
    };
    let dir = committed_dir(path);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    // A fresh file: a temporary left by a writer killed after its link is a committed state.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&tmp)(e)),
        _ => {}
    }
    std::fs::write(&tmp, &line).map_err(io(&tmp))?;
    let commit = dir.join(committed_name(*r.get()));
    let linked = std::fs::hard_link(&tmp, &commit);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Ok(Err(format!(
                "value {} was committed meanwhile: a newer write went in after this one's check",
                r.get()
            )));
        }
        Err(e) => return Err(io(&commit)(e)),
    }
    // The readable copy, a file of its own (so that nothing written to it touches a commit).
    std::fs::write(&tmp, line).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(Ok(()))
}

/// Adds one to the counter in `path` with fencing token `token` held by `writer`: the new value,
/// or the refusal (a lower token, an equal one another writer used, or a newer write committed
/// between this one's check and its commit).
pub fn increment(
    path: &Path,
    token: Fence,
    writer: u32,
) -> Result<Result<u64, String>, CounterFileError> {
    increment_pausing(path, token, writer, || ())
}

/// [`increment`], calling `between` after the token's check and before the commit.
fn increment_pausing(
    path: &Path,
    token: Fence,
    writer: u32,
    between: impl FnOnce(),
) -> Result<Result<u64, String>, CounterFileError> {
    let mut r = read_counter(path)?;
    match r.write_by(writer, token, |v| {
        *v += 1;
        *v
    }) {
        Ok(v) => {
            between();
            Ok(write_counter(path, &r, writer)?.map(|()| v))
        }
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Stops this process (`kill -STOP`, as a test sends it) until it gets a `SIGCONT`.
fn stop_self() {
    let pid = std::process::id().to_string();
    if let Err(e) = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
    {
        eprintln!("kill -STOP {pid}: {e}");
    }
}

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

/// Tells every peer that this member reached `phase`, retrying while a peer has not registered
/// its sync actor yet. A peer that is down is skipped once it has shown itself alive (it
/// announced phase 0 to us): it started and died. Before that, "down" may mean "not started
/// yet", so phase 0 keeps retrying until `deadline`.
async fn announce(
    node: &Node,
    me: u32,
    peers: &[u32],
    phase: u8,
    seen: &tokio::sync::watch::Receiver<BTreeMap<u8, BTreeSet<u32>>>,
    (deadline, await_all): (Instant, bool),
) -> Result<(), String> {
    for &p in peers {
        let to: RemoteAddr<Phase> = RemoteAddr::new(node, p, "counter-sync");
        loop {
            match to.send(Phase { from: me, phase }).await {
                Ok(()) => break,
                Err(RemoteError::PeerDown(_))
                    if !await_all
                        && (phase > 0 || seen.borrow().get(&0).is_some_and(|s| s.contains(&p))) =>
                {
                    break;
                }
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(format!("phase {phase} to node {p}: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    Ok(())
}

/// Waits until every peer that is up (every peer, with `await_all`) has reached `phase`.
async fn await_phase(
    node: &Node,
    peers: &[u32],
    seen: &mut tokio::sync::watch::Receiver<BTreeMap<u8, BTreeSet<u32>>>,
    phase: u8,
    (deadline, await_all): (Instant, bool),
) -> Result<(), String> {
    loop {
        let missing: Vec<u32> = {
            let s = seen.borrow_and_update();
            peers
                .iter()
                .copied()
                .filter(|p| {
                    (await_all || node.is_up(*p)) && !s.get(&phase).is_some_and(|x| x.contains(p))
                })
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("peers {missing:?} did not reach phase {phase}"));
        }
        // Woken by a phase message, or re-checked for peers that went down.
        let _ = tokio::time::timeout(Duration::from_millis(50), seen.changed()).await;
    }
}

/// The name of the election a Suzuki–Kasami counter runs.
pub const ELECTION: &str = "election";

/// One output line for a leader change: `leader L term R`, or `leader none term R`.
pub fn leader_line(leader: Option<u32>, round: u64) -> String {
    match leader {
        Some(l) => format!("leader {l} term {round}"),
        None => format!("leader none term {round}"),
    }
}

/// One output line for a token regenerated here: `regenerated token round R by node L`.
pub fn regenerated_line(round: u32, by: u32) -> String {
    format!("regenerated token round {round} by node {by}")
}

/// Starts this node's election member and prints every leader it recognises, until the
/// election stops.
fn start_election(node: &Node, members: &[u32], cfg: BullyConfig) -> Result<Election, String> {
    let election = Election::start(At::Node(node), ELECTION, members, cfg)
        .map_err(|e| format!("election: {e}"))?;
    let mut changes = election.subscribe();
    let now = election.clone();
    actix_rt::spawn(async move {
        use actix_coord::election::RecvError;
        let mut last = None;
        let mut show = |line: String| {
            if last.as_ref() != Some(&line) {
                say(&line);
                last = Some(line);
            }
        };
        if let Some((l, t)) = now.leader() {
            show(leader_line(Some(l), t.round));
        }
        loop {
            match changes.recv().await {
                Ok(c) => show(leader_line(c.leader, c.term.round)),
                Err(RecvError::Lagged(_)) => {
                    let (l, round) = now.leader().map_or((None, 0), |(l, t)| (Some(l), t.round));
                    show(leader_line(l, round));
                }
                Err(RecvError::Stopped) => break,
            }
        }
    });
    Ok(election)
}

/// Prints each token the lock actor regenerates, until it stops.
async fn print_regenerations(lock: &DistributedLock) {
    let Ok(mut events) = lock
        .actor()
        .send(Subscribe::<AnyLockEvent>::default())
        .await
    else {
        return;
    };
    actix_rt::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(AnyLockEvent::Regenerated { epoch }) => {
                    say(regenerated_line(epoch.round, epoch.leader));
                }
                Ok(AnyLockEvent::Lock(_)) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Runs the counter workload on `node` with `peers`; returns the exit code. With
/// Suzuki–Kasami, token regeneration is decided by a bully election run with `election`.
pub async fn run(node: &Node, peers: &[u32], args: &CounterArgs, election: BullyConfig) -> i32 {
    let me = node.id();
    let name = format!("node{me}");
    let Some(path) = args.resource.clone() else {
        eprintln!("{name}: --resource FILE is required by the counter workload");
        return 2;
    };
    let (seen_tx, mut seen) = tokio::sync::watch::channel(BTreeMap::new());
    let sync = CausalBuilder::default()
        .node(me)
        .name(format!("sync{me}"))
        .start(Sync { seen: seen_tx });
    let mut members: Vec<u32> = peers.to_vec();
    members.push(me);
    // The election (Suzuki–Kasami only) and the lock actor first, then the sync actor: a peer
    // that reaches our sync actor reaches our lock actor too.
    let mut config = LockConfig::new(args.lock);
    let _election = if args.lock == LockAlgorithm::SuzukiKasami {
        match start_election(node, &members, election) {
            Ok(e) => {
                config = config.with_recovery_leader(e.view());
                Some(e)
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                return 2;
            }
        }
    } else {
        None
    };
    let lock = match DistributedLock::start(At::Node(node), RESOURCE, &members, config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 2;
        }
    };
    print_regenerations(&lock).await;
    if let Err(e) = node.register("counter-sync", sync) {
        eprintln!("{name}: {e}");
        return 2;
    }
    let deadline = Instant::now() + PATIENCE;
    if let Err(e) = announce(node, me, peers, 0, &seen, (deadline, false)).await {
        eprintln!("{name}: {e}");
        return 1;
    }
    say(format!("ready {me} {}", args.lock));
    let started = Instant::now();
    let mut tokens = Vec::new();
    let mut refused = 0u32;
    let clock = SystemClock::monotonic_raw();
    let mut i = 1;
    let mut stopped_once = false;
    while i <= args.iterations {
        let guard = match lock.try_acquire(PATIENCE).await {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{name}: acquisition {i}: {e}");
                return 1;
            }
        };
        let from = clock.now_ns();
        let token = guard.fencing_token();
        let pause = || {
            if args.stop_before_commit == Some(i) && !stopped_once {
                stopped_once = true;
                say(format!("stopping before commit {i} token {token}"));
                stop_self();
            }
        };
        let accepted = match increment_pausing(&path, token, me, pause) {
            Ok(Ok(value)) => {
                tokens.push(token);
                say(format!("acquired {i} token {token} value {value}"));
                true
            }
            Ok(Err(why)) => {
                refused += 1;
                say(format!("refused {i} token {token}: {why}"));
                false
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                return 1;
            }
        };
        if accepted && args.hold_at == Some(i) {
            say(format!("holding {i} token {token} since {from}"));
            std::future::pending::<()>().await;
        }
        let to = clock.now_ns();
        if let Err(e) = guard.release().await {
            eprintln!("{name}: release {i}: {e}");
        }
        say(format!("section {i} token {token} from {from} to {to}"));
        if !accepted {
            if refused >= MAX_REFUSED {
                eprintln!("{name}: {refused} writes refused, giving up");
                return 1;
            }
            continue; // the lock was lost: acquire again for the same write
        }
        if args.idle_after == Some(i) {
            say(format!("idle after {i}"));
            std::future::pending::<()>().await;
        }
        i += 1;
    }
    let elapsed = started.elapsed();
    say(format!(
        "{name}: {} acquisitions with {} in {:.1} ms, {refused} refused, regenerated {}, tokens {}",
        tokens.len(),
        args.lock,
        elapsed.as_secs_f64() * 1e3,
        lock.regenerations(),
        tokens
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ));
    // Leave only when nobody needs our lock actor any more.
    let until = (Instant::now() + PATIENCE, args.await_all);
    let barrier = async {
        announce(node, me, peers, 1, &seen, until).await?;
        await_phase(node, peers, &mut seen, 1, until).await?;
        lock.stop();
        announce(node, me, peers, 2, &seen, until).await?;
        await_phase(node, peers, &mut seen, 2, until).await
    };
    if let Err(e) = barrier.await {
        eprintln!("{name}: {e}");
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_keeps_the_value_and_refuses_lower_tokens() {
        let dir = std::env::temp_dir().join(format!("counter-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("counter");
        assert_eq!(increment(&f, 5, 1).unwrap(), Ok(1));
        assert_eq!(increment(&f, 7, 2).unwrap(), Ok(2));
        assert!(increment(&f, 6, 1).unwrap().is_err());
        // An equal token from another writer is refused; from its writer it is accepted.
        assert!(increment(&f, 7, 1).unwrap().is_err());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "2 7 2\n");
        assert_eq!(increment(&f, 7, 2).unwrap(), Ok(3));
        // The older form without a writer still reads.
        std::fs::write(&f, "3 7\n").unwrap();
        assert_eq!(increment(&f, 8, 1).unwrap(), Ok(4));
        // A writer that checked its token, then paused while a newer write went in, is refused
        // when its write lands; the newer write stays.
        let stale = {
            let mut r = read_counter(&f).unwrap();
            r.write_by(3, 9, |v| *v += 1).unwrap();
            r
        };
        assert_eq!(increment(&f, 10, 2).unwrap(), Ok(5));
        assert!(write_counter(&f, &stale, 3).unwrap().is_err());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "5 10 2\n");
        assert_eq!(*read_counter(&f).unwrap().get(), 5);
        // The readable copy may lag its commits (a writer paused between the two): the newest
        // commit is read.
        std::fs::write(&f, "4 8 1\n").unwrap();
        assert_eq!(*read_counter(&f).unwrap().get(), 5);
        assert_eq!(increment(&f, 11, 1).unwrap(), Ok(6));
        std::fs::write(&f, "two 7\n").unwrap();
        assert!(matches!(
            read_counter(&f),
            Err(CounterFileError::Malformed { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
