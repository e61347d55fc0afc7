//! Five nodes elect a leader with the bully algorithm, the leader is killed, the next highest
//! takes over with a higher term.
//!
//! The bully election (Garcia-Molina 1982): the live member with the highest id leads. A node
//! that loses its leader asks every higher member (ELECTION); one that hears no answer (OK)
//! wins and tells everyone (COORDINATOR). Each leader has a term, a ballot `(round, leader)`
//! that strictly increases from one leader to the next, so a stale leader is recognisable.
//!
//! Each member runs on its own actix arbiter (its own thread) with a real [`Node`] over TCP on
//! 127.0.0.1; killing a member stops its arbiter, which drops its sockets the way `kill -9` does,
//! so the others learn it at once (`MemberDown{Closed}`).

use actix::Arbiter;
use actix_coord::driver::At;
use actix_coord::election::{BullyConfig, Changes, Election, StartError, Term};
use actix_coord::net::{Node, NodeError};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why the demonstration failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A node could not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// An election could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Writing the changes failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Something expected did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A member's arbiter stopped before it reported.
    #[error("member {0} did not start")]
    Lost(u32),
}

/// What the demonstration saw.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// The first leader every member agreed on, and its term.
    pub first: (u32, Term),
    /// Time from start to that agreement.
    pub elected_after: Duration,
    /// The leader after the first one was killed, and its term.
    pub after_kill: (u32, Term),
    /// From the kill to the new leader leading (its own view).
    pub failover: Duration,
    /// From the kill to every survivor recognising it.
    pub all_agree: Duration,
    /// Every change seen by every member: `{"node":..,"leader":..,"term":..,"at_ms":..}`, with
    /// `at_ms` from the start of the demonstration.
    pub changes: Vec<String>,
}

struct Member {
    arbiter: Arbiter,
    election: Election,
    addr: String,
}

async fn start_member(
    id: u32,
    peers: &[(u32, String)],
    members: &[u32],
    cfg: BullyConfig,
) -> Result<(Member, Changes), DemoError> {
    // The subscription is made on the member's arbiter right after its election starts, before
    // the election's driver can run there: no change of the member is missed.
    let arbiter = Arbiter::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (peers, members) = (peers.to_vec(), members.to_vec());
    arbiter.spawn(async move {
        let started = async {
            let mut b = Node::builder()
                .id(id)
                .listen("127.0.0.1:0")
                .secret("election demo");
            for (p, a) in &peers {
                b = b.peer(*p, a);
            }
            // The members still to come dial this one.
            for &m in &members {
                if m != id && !peers.iter().any(|(p, _)| *p == m) {
                    b = b.member(m);
                }
            }
            let node = b.start().await?;
            let e = Election::start(At::Node(&node), "election", &members, cfg)?;
            let changes = e.subscribe();
            Ok::<_, DemoError>((node, e, changes))
        }
        .await;
        match started {
            Ok((node, e, changes)) => {
                let _ = tx.send(Ok((e, node.local_addr().to_owned(), changes)));
                // The node lives as long as its arbiter.
                std::future::pending::<()>().await;
                drop(node);
            }
            Err(err) => {
                let _ = tx.send(Err(err));
            }
        }
    });
    let (election, addr, changes) = rx.await.map_err(|_| DemoError::Lost(id))??;
    Ok((
        Member {
            arbiter,
            election,
            addr,
        },
        changes,
    ))
}

/// One leader change seen by one member, as recorded by the demonstration.
#[derive(Clone, Debug)]
struct Seen {
    node: u32,
    leader: Option<u32>,
    term: Term,
    line: String,
}

/// Waits until member `id`'s recorded changes say `want` leads, and returns its term. It waits
/// on the record (not on the election's own view), so every change the demonstration reports
/// is in the record it returns.
async fn wait_leader(
    log: &tokio::sync::watch::Sender<Vec<Seen>>,
    id: u32,
    want: u32,
    within: Duration,
) -> Result<Term, DemoError> {
    let mut w = log.subscribe();
    let found = tokio::time::timeout(
        within,
        w.wait_for(|seen| {
            seen.iter()
                .rev()
                .find(|s| s.node == id)
                .is_some_and(|s| s.leader == Some(want))
        }),
    )
    .await;
    match found {
        Ok(Ok(seen)) => Ok(seen
            .iter()
            .rev()
            .find(|s| s.node == id)
            .map(|s| s.term)
            .unwrap_or_default()),
        Ok(Err(_)) => Err(DemoError::Lost(id)),
        Err(_) => Err(DemoError::Timeout(format!(
            "node {id} did not recognise leader {want} within {within:?}"
        ))),
    }
}

/// Runs the demonstration: `n` members (at least 2) elect the highest, it is killed, the next
/// highest takes over. Call on an actix system.
///
/// # Errors
/// [`DemoError`] when a node cannot start or a leader is not agreed within 5 s.
pub async fn five_nodes_failover(n: u32) -> Result<DemoReport, DemoError> {
    let n = n.max(2);
    let ids: Vec<u32> = (1..=n).collect();
    let cfg = BullyConfig::default();
    let t0 = Instant::now();
    let (changes, _) = tokio::sync::watch::channel(Vec::<Seen>::new());
    let mut members: Vec<Member> = Vec::new();
    for &id in &ids {
        let peers: Vec<(u32, String)> = members
            .iter()
            .map(|m| (m.election.id(), m.addr.clone()))
            .collect();
        let (m, mut sub) = start_member(id, &peers, &ids, cfg.clone()).await?;
        let log = changes.clone();
        actix::spawn(async move {
            while let Ok(c) = sub.recv().await {
                let line = serde_json::json!({
                    "node": id,
                    "leader": c.leader,
                    "term": c.term.round,
                    "at_ms": t0.elapsed().as_millis() as u64,
                });
                log.send_modify(|v| {
                    v.push(Seen {
                        node: id,
                        leader: c.leader,
                        term: c.term,
                        line: line.to_string(),
                    })
                });
            }
        });
        members.push(m);
    }
    let within = Duration::from_secs(5);
    let mut first = Term::default();
    for m in &members {
        first = wait_leader(&changes, m.election.id(), n, within).await?;
    }
    let elected_after = t0.elapsed();

    // Kill the leader: its arbiter stops, its sockets close.
    let killed = Instant::now();
    if let Some(leader) = members.pop() {
        leader.arbiter.stop();
    }
    let next = n - 1;
    let mut after = Term::default();
    let mut failover = Duration::ZERO;
    for m in members.iter().rev() {
        after = wait_leader(&changes, m.election.id(), next, within).await?;
        if m.election.id() == next {
            failover = killed.elapsed();
        }
    }
    let all_agree = killed.elapsed();
    for m in members {
        m.arbiter.stop();
    }
    let changes = changes.borrow().iter().map(|s| s.line.clone()).collect();
    Ok(DemoReport {
        first: (n, first),
        elected_after,
        after_kill: (next, after),
        failover,
        all_agree,
        changes,
    })
}

impl DemoReport {
    /// A few lines for people.
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "{n} nodes elect node {l} in term {t} ({e:.0} ms after start)\n\
             node {l} is killed: node {l2} leads in term {t2} after {f:.1} ms, \
             all survivors agree after {a:.1} ms\n\
             the term went up ({t} -> {t2}): a stale message from node {l} would be refused",
            n = self.first.0,
            l = self.first.0,
            t = self.first.1,
            e = ms(self.elected_after),
            l2 = self.after_kill.0,
            t2 = self.after_kill.1,
            f = ms(self.failover),
            a = ms(self.all_agree),
        )
    }
}

/// The tour's part on elections: five members elect node 5, node 5 is killed, node 4 takes over
/// with a higher term (about a second in all). Writes every change seen by every member to
/// `out_dir/leader-changes.jsonl` (complete: the demonstration waits for each change it
/// reports to be recorded) and returns a few lines to print. The `leader.elected` events go to
/// the causal log installed by the caller. Call on an actix system.
///
/// # Errors
/// [`DemoError`] when a node cannot start, a leader is not agreed in time, or the file cannot be
/// written.
pub async fn tour_demo(out_dir: &Path) -> Result<String, DemoError> {
    let report = five_nodes_failover(5).await?;
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join("leader-changes.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for l in &report.changes {
        writeln!(f, "{l}")?;
    }
    f.flush()?;
    Ok(format!(
        "{}\nevery leader change: {}",
        report.summary(),
        path.display()
    ))
}
