//! `node --workload election`: this node's member of a bully election over the cluster.
//!
//! Runs until killed and prints every leader change this node sees as one JSON line on stdout:
//! `{"leader":5,"term":3,"at_ms":1732239123456}`, where `leader` is `null` while there is none,
//! `term` is the round of the term (strictly increasing from one leader to the next; the term
//! itself is the ballot `(term, leader)`), and `at_ms` the wall-clock time of the change in
//! milliseconds since the Unix epoch (so changes on different processes of one machine compare).
//! Each recognised leader is also a `leader.elected` event in the node's causal log.

use actix_coord::driver::At;
use actix_coord::election::{BullyConfig, Election};
use actix_coord::net::Node;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Options of the election workload.
#[derive(clap::Args, Debug, Clone)]
pub struct ElectionArgs {
    /// After a (re)start, do not compete for this long (ms): a crash-looping highest node then
    /// changes leadership at most once per hold-down.
    #[arg(long)]
    pub hold_down_ms: Option<u64>,
    /// Lead only with a majority of the configured membership (no leader on a minority side).
    #[arg(long)]
    pub quorum: bool,
    /// How long a candidate waits for an OK before winning (ms).
    #[arg(long, default_value_t = 150)]
    pub answer_ms: u64,
    /// How long a candidate that got an OK waits for the COORDINATOR (ms).
    #[arg(long, default_value_t = 300)]
    pub coordinator_ms: u64,
    /// Leader heartbeat period (ms).
    #[arg(long, default_value_t = 100)]
    pub heartbeat_ms: u64,
    /// A follower that hears nothing from its leader this long holds an election (ms).
    #[arg(long, default_value_t = 350)]
    pub leader_timeout_ms: u64,
    /// Also stop (exit 0, logs flushed) when standard input reaches its end: lets a test end a
    /// node cleanly by closing a pipe. Off by default (a node started with `< /dev/null` would
    /// stop at once).
    #[arg(long)]
    pub until_stdin_closes: bool,
}

impl ElectionArgs {
    /// The core's settings.
    pub fn config(&self) -> BullyConfig {
        BullyConfig {
            answer_timeout: Duration::from_millis(self.answer_ms),
            coordinator_timeout: Duration::from_millis(self.coordinator_ms),
            heartbeat_every: Duration::from_millis(self.heartbeat_ms),
            leader_timeout: Duration::from_millis(self.leader_timeout_ms),
            hold_down: self.hold_down_ms.map(Duration::from_millis),
            quorum: self.quorum,
            ..BullyConfig::default()
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One output line.
pub fn line(leader: Option<u32>, round: u64, at_ms: u64) -> String {
    serde_json::json!({ "leader": leader, "term": round, "at_ms": at_ms }).to_string()
}

/// Runs this node's member of the election `"election"` among itself and `peers` until the
/// process is killed (or the election stops: exit code 1; or, with `--until-stdin-closes`,
/// standard input ends: exit code 0). Exit code 2 for bad settings.
pub async fn run(node: &Node, peers: &[u32], args: &ElectionArgs) -> i32 {
    let mut members: Vec<u32> = peers.to_vec();
    members.push(node.id());
    let election = match Election::start(At::Node(node), "election", &members, args.config()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("node{}: election: {e}", node.id());
            return 2;
        }
    };
    let mut changes = election.subscribe();
    let (eof_tx, mut eof) = tokio::sync::oneshot::channel::<()>();
    if args.until_stdin_closes {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = eof_tx.send(());
        });
    }
    let mut out = std::io::stdout();
    loop {
        let change = tokio::select! {
            c = changes.recv() => c,
            Ok(()) = &mut eof => {
                node.shutdown();
                return 0;
            }
        };
        let (leader, round) = match change {
            Ok(c) => (c.leader, c.term.round),
            // Missed some: print where we stand now.
            Err(actix_coord::election::RecvError::Lagged(_)) => match election.leader() {
                Some((l, t)) => (Some(l), t.round),
                None => (None, 0),
            },
            Err(actix_coord::election::RecvError::Stopped) => return 1,
        };
        let _ = writeln!(out, "{}", line(leader, round, unix_ms()));
        let _ = out.flush();
    }
}
