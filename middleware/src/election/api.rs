//! The election as a service: an [`Election`] handle over a [`Driver`] of [`Bully`], in one
//! process or on a [`Node`](crate::net::Node) ([`Election::start`] with an [`At`]).
//!
//! The handle answers "who leads, in which term" without a round trip (a `tokio::sync::watch`
//! updated by the driver itself), offers `resign` / `campaign`, and two ways to observe:
//! [`Election::watch`] (the latest value, for "wait until …") and [`Election::subscribe`] (every
//! change, in order). Each leader a node recognises is also a `leader.elected` semantic event of
//! the driver's process in the causal log (with an `election` field naming the election on a
//! node), so `causal-log check` verifies one leader per term and that no member's recognised
//! term goes back, per election.
//!
//! Other services ask the election through a [`LeaderView`] (`Send + Sync + Clone`, no actix):
//! the Berkeley daemon polls clocks only while `view.is_leader()`, and a Suzuki–Kasami lock
//! started with
//! [`LockConfig::with_recovery_leader`](crate::mutex::LockConfig::with_recovery_leader)
//! regenerates a lost token only on the elected leader (see `docs/election.md`).
//!
//! ```
//! use actix_coord::driver::{At, LocalLinks};
//! use actix_coord::election::{BullyConfig, Election};
//! use std::time::Duration;
//!
//! # actix::System::new().block_on(async {
//! let links = LocalLinks::new();
//! let members = [1, 2, 3];
//! let nodes: Vec<Election> = members
//!     .iter()
//!     .map(|&id| Election::start(At::Local(&links, id), "election", &members, BullyConfig::default()).unwrap())
//!     .collect();
//! // Wait (with a deadline) until node 1 recognises node 3.
//! let mut w = nodes[0].watch();
//! tokio::time::timeout(Duration::from_secs(5), w.wait_for(|l| l.is_some_and(|(id, _)| id == 3)))
//!     .await
//!     .expect("a leader within 5 s")
//!     .unwrap();
//! assert!(nodes[2].is_leader());
//! // Node 3 resigns: node 2 takes over with a higher term.
//! let (_, t1) = nodes[2].leader().unwrap();
//! nodes[2].resign().await.unwrap();
//! let mut w = nodes[1].watch();
//! let now = tokio::time::timeout(
//!     Duration::from_secs(5),
//!     w.wait_for(|l| l.is_some_and(|(id, _)| id == 2)),
//! )
//! .await
//! .unwrap()
//! .unwrap()
//! .unwrap();
//! assert!(now.1 > t1);
//! # });
//! ```

use super::{Bully, BullyCommand, BullyConfig, BullyError, BullyEvent, Term};
use crate::driver::{At, Command, Driven, Driver, Member, Observer};
use crate::protocol::NodeId;
use actix::Addr;
use actix_coord_proto::schema::{field, kind};
use tokio::sync::{broadcast, watch};

/// One change of the leader recognised by a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaderChange {
    /// The new leader; `None` while there is none (lost, resigned, or an election is running).
    pub leader: Option<NodeId>,
    /// The new leader's term; for `None`, the term of the leader that was lost.
    pub term: Term,
}

pub use crate::driver::StartError;

/// Why a command ([`Election::resign`], [`Election::campaign`]) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    /// `resign` by a node that does not lead.
    #[error("this node is not the leader")]
    NotLeader,
    /// The election actor has stopped (its system or node is gone).
    #[error("the election actor has stopped")]
    Stopped,
}

impl From<BullyError> for ElectionError {
    fn from(e: BullyError) -> Self {
        match e {
            BullyError::NotLeader => ElectionError::NotLeader,
        }
    }
}

/// Why [`Changes::recv`] returned no change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscriber fell behind by this many changes (more than
    /// [`EVENT_BUFFER`](crate::driver::EVENT_BUFFER)); the next `recv` continues with the oldest
    /// change still kept. [`Election::leader`] has the current value.
    #[error("missed {0} leader changes")]
    Lagged(u64),
    /// The election actor has stopped.
    #[error("the election actor has stopped")]
    Stopped,
}

/// Every leader change seen by one node from the moment of [`Election::subscribe`].
///
/// Successive leaders come with strictly increasing terms (as seen by one incarnation of the
/// node); a leader lost and found again in the same term (a late heartbeat) reappears with the
/// same term.
#[derive(Debug)]
pub struct Changes(broadcast::Receiver<LeaderChange>);

impl Changes {
    /// The next change.
    ///
    /// # Errors
    /// [`RecvError::Lagged`] when changes were missed, [`RecvError::Stopped`] when the election
    /// is gone.
    pub async fn recv(&mut self) -> Result<LeaderChange, RecvError> {
        self.0.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Stopped,
        })
    }
}

/// A read-only view of one node's election: `Send + Sync + Clone`, no actix needed. This is
/// what other services hold to ask "who leads?" (the Berkeley master, Suzuki–Kasami token
/// regeneration).
#[derive(Clone, Debug)]
pub struct LeaderView {
    me: NodeId,
    state: watch::Receiver<Option<(NodeId, Term)>>,
}

impl LeaderView {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The leader this node recognises and its term, `None` while there is none.
    pub fn leader(&self) -> Option<(NodeId, Term)> {
        *self.state.borrow()
    }

    /// Whether this node leads (it recognises itself as the leader).
    pub fn is_leader(&self) -> bool {
        self.leader().is_some_and(|(l, _)| l == self.me)
    }

    /// The term this node leads in, if it leads: use it as an epoch or fencing token for what
    /// the leader does (a regenerated token, a clock correction round).
    pub fn leading_term(&self) -> Option<Term> {
        self.leader().and_then(|(l, t)| (l == self.me).then_some(t))
    }

    /// The latest value, for waiting on a condition (`wait_for`, `changed`). Intermediate
    /// values may be skipped; use [`Election::subscribe`] to see every change.
    pub fn watch(&self) -> watch::Receiver<Option<(NodeId, Term)>> {
        self.state.clone()
    }

    /// Feeds the leader changes this view shows to the core run by `driver`, as commands: at
    /// once `commands(None, current)`, then `commands(before, after)` at every change seen
    /// (intermediate values may be skipped), and `commands(last, None)` when the election stops
    /// (nobody leads any more). The one leader-following task of the services that need a
    /// leader: the Berkeley daemon's master ([`follow_election`](crate::timesync::daemon::follow_election))
    /// and the Suzuki–Kasami lock's regeneration leader. Whether a leader is recent enough to
    /// act on is the core's business, not this task's (the lock core's settle timer). Ends when
    /// the election stops, when the driver has stopped by the next change, or when `until`
    /// resolves. Call on an actix arbiter.
    pub fn follow<P, F>(
        &self,
        driver: Addr<Driver<P>>,
        mut commands: F,
        until: impl std::future::Future<Output = ()> + 'static,
    ) where
        P: Driven,
        F: FnMut(Option<(NodeId, Term)>, Option<(NodeId, Term)>) -> Vec<P::Command> + 'static,
    {
        let mut leader = self.watch();
        let target = driver.clone();
        let tell = move |cmds: Vec<P::Command>| {
            for cmd in cmds {
                driver.do_send(Command::<P::Command, P::Error>::new(cmd));
            }
        };
        let mut seen = *leader.borrow_and_update();
        tell(commands(None, seen));
        actix_rt::spawn(async move {
            tokio::pin!(until);
            loop {
                tokio::select! {
                    changed = leader.changed() => {
                        if !target.connected() {
                            break;
                        }
                        let now = match changed {
                            Ok(()) => *leader.borrow_and_update(),
                            Err(_) => None,
                        };
                        tell(commands(seen, now));
                        seen = now;
                        if changed.is_err() {
                            break;
                        }
                    }
                    () = &mut until => break,
                }
            }
        });
    }
}

/// A member of a bully election, running in a [`Driver`] actor. Cheap to clone.
#[derive(Clone)]
pub struct Election {
    view: LeaderView,
    member: Member<Bully>,
    changes: broadcast::Sender<LeaderChange>,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("id", &self.view.me)
            .field("leader", &self.leader())
            .finish()
    }
}

/// The `term` field of `leader.elected` events: the ballot `(round, leader)` as one number,
/// `round · 2³² + leader`, ordered like [`Term`] (rounds above `u32::MAX` saturate). Terms are
/// ballots, so two nodes claiming the same round (at start-up, or a node back from a crash) are
/// two terms, not a conflict; a conflict is two leaders named for the same ballot.
pub fn term_number(term: Term) -> u64 {
    (term.round.min(u64::from(u32::MAX)) << 32) | u64::from(term.leader)
}

/// The observer that keeps the handle's state and logs `leader.elected` (with the election's
/// name as its `election` field when it has one, so `causal-log check` keeps elections apart).
fn observer(
    state: watch::Sender<Option<(NodeId, Term)>>,
    changes: broadcast::Sender<LeaderChange>,
    election: Option<String>,
) -> Observer<BullyEvent> {
    Box::new(move |e: &BullyEvent| {
        let BullyEvent::LeaderChanged { leader, term } = *e;
        if let Some(l) = leader {
            let mut fields = vec![
                (field::LEADER, l.to_string().into()),
                (field::TERM, term_number(term).into()),
                (field::ROUND, term.round.into()),
            ];
            if let Some(name) = &election {
                fields.push((field::ELECTION, name.clone().into()));
            }
            crate::trace::event(
                kind::LEADER_ELECTED,
                format!("leader {l} elected, term {term}"),
                fields,
            );
        }
        state.send_replace(leader.map(|l| (l, term)));
        let _ = changes.send(LeaderChange { leader, term });
    })
}

impl Election {
    fn parts(
        me: NodeId,
        election: Option<&str>,
    ) -> (
        Observer<BullyEvent>,
        LeaderView,
        broadcast::Sender<LeaderChange>,
    ) {
        let (tx, rx) = watch::channel(None);
        let (changes, _) = broadcast::channel(crate::driver::EVENT_BUFFER);
        let view = LeaderView { me, state: rx };
        (
            observer(tx, changes.clone(), election.map(str::to_owned)),
            view,
            changes,
        )
    }

    /// Starts member [`at.me()`](At::me) of the election `name` (the same name on every
    /// member) among `members`: on a node, whose failure detector's verdicts reach the core, or
    /// in this process ([`At::Local`]). Call on an actix arbiter.
    ///
    /// # Errors
    /// [`StartError::EmptyName`], [`StartError::Config`] for an invalid membership or settings,
    /// [`StartError::Register`] when `name` is taken on the node.
    pub fn start(
        at: At<'_, Bully>,
        name: &str,
        members: &[NodeId],
        cfg: BullyConfig,
    ) -> Result<Self, StartError> {
        let me = at.me();
        let core = Bully::new(me, members.iter().copied(), cfg)?;
        let (obs, view, changes) = Self::parts(me, Some(name));
        let member = at.start(name, core, members, Some(obs))?;
        Ok(Self {
            view,
            member,
            changes,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.view.me
    }

    /// Leaves the election: this member's actor stops and is unregistered; its views and
    /// subscribers get no more changes. The other members notice as they would a crash (their
    /// failure detector, or the leader timeout) and elect among themselves.
    pub fn stop(&self) {
        self.member.stop();
    }

    /// The leader this node recognises and its term, `None` while there is none. No round trip:
    /// the driver updates it as the change happens.
    pub fn leader(&self) -> Option<(NodeId, Term)> {
        self.view.leader()
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.view.is_leader()
    }

    /// Stop leading and stop competing until [`campaign`](Self::campaign); the others elect the
    /// next highest with a higher term.
    ///
    /// # Errors
    /// [`ElectionError::NotLeader`] when this node does not lead, [`ElectionError::Stopped`].
    pub async fn resign(&self) -> Result<(), ElectionError> {
        self.command(BullyCommand::Resign).await
    }

    /// Compete (again): end a resignation or hold-down and hold an election now.
    ///
    /// # Errors
    /// [`ElectionError::Stopped`] when the election actor is gone.
    pub async fn campaign(&self) -> Result<(), ElectionError> {
        self.command(BullyCommand::Campaign).await
    }

    async fn command(&self, cmd: BullyCommand) -> Result<(), ElectionError> {
        let r = self
            .member
            .addr
            .send(Command::<BullyCommand, BullyError>::new(cmd))
            .await
            .map_err(|_| ElectionError::Stopped)?;
        Ok(r?)
    }

    /// The latest leader and term, for waiting on a condition:
    /// `watch().wait_for(|l| l.is_some())`. Intermediate values may be skipped.
    pub fn watch(&self) -> watch::Receiver<Option<(NodeId, Term)>> {
        self.view.watch()
    }

    /// Every change from now on, in order.
    pub fn subscribe(&self) -> Changes {
        Changes(self.changes.subscribe())
    }

    /// A read-only, `Send + Sync` view for other services.
    pub fn view(&self) -> LeaderView {
        self.view.clone()
    }

    /// The driver actor, for [`Inspect`](crate::driver::Inspect) and the like.
    pub fn driver(&self) -> &Addr<Driver<Bully>> {
        &self.member.addr
    }

    /// Where the core stands (for diagnostics).
    ///
    /// # Errors
    /// [`ElectionError::Stopped`] when the election actor is gone.
    pub async fn role(&self) -> Result<super::Role, ElectionError> {
        self.member
            .addr
            .send(crate::driver::Inspect(Box::new(|b: &Bully| {
                b.role().clone()
            })))
            .await
            .map_err(|_| ElectionError::Stopped)
    }
}

/// An election of `members` in this process over `links`, the default configuration: one
/// handle per member, in their order.
#[cfg(test)]
pub(crate) fn start_local(
    links: &crate::driver::LocalLinks<crate::election::Bully>,
    members: &[NodeId],
) -> Vec<Election> {
    members
        .iter()
        .map(|&id| {
            Election::start(
                At::Local(links, id),
                "election",
                members,
                BullyConfig::default(),
            )
            .expect("a valid membership")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::LocalLinks;
    use std::time::Duration;

    fn members(n: u32) -> Vec<NodeId> {
        (1..=n).collect()
    }

    async fn wait_leader(e: &Election, want: NodeId, within: Duration) -> Term {
        let mut w = e.watch();
        let r = tokio::time::timeout(within, w.wait_for(|l| l.is_some_and(|(l, _)| l == want)))
            .await
            .unwrap_or_else(|_| panic!("node {}: no leader {want} within {within:?}", e.id()))
            .expect("election alive");
        r.map(|(_, t)| t).unwrap_or_default()
    }

    #[actix_rt::test]
    async fn a_stopped_leader_is_replaced_after_the_leader_timeout() {
        let links = LocalLinks::new();
        let m = members(3);
        let es = start_local(&links, &m);
        wait_leader(&es[0], 3, Duration::from_secs(5)).await;
        es[2].stop();
        // No failure detector in process: the heartbeats stop, the leader timeout fires.
        wait_leader(&es[0], 2, Duration::from_secs(5)).await;
        wait_leader(&es[1], 2, Duration::from_secs(5)).await;
        assert!(links.unregister(3).is_none(), "stop unregistered it");
    }

    #[actix_rt::test]
    async fn handle_reports_leader_changes_with_increasing_terms() {
        let links = LocalLinks::new();
        let m = members(4);
        let es = start_local(&links, &m);
        let mut changes = es[0].subscribe();
        let t1 = wait_leader(&es[0], 4, Duration::from_secs(5)).await;
        assert!(es[3].is_leader() && !es[0].is_leader());
        assert_eq!(es[0].resign().await, Err(ElectionError::NotLeader));
        // Node 4 goes away: its links are cut, the others are told it is down.
        links.unregister(4);
        for e in &es[..3] {
            e.driver().do_send(crate::driver::PeerStatus::Down(4));
        }
        let t2 = wait_leader(&es[0], 3, Duration::from_secs(5)).await;
        assert!(t2 > t1, "{t2} > {t1}");
        es[2].resign().await.unwrap();
        let t3 = wait_leader(&es[0], 2, Duration::from_secs(5)).await;
        assert!(t3 > t2);
        // Node 3 campaigns again and takes over.
        es[2].campaign().await.unwrap();
        let t4 = wait_leader(&es[0], 3, Duration::from_secs(5)).await;
        assert!(t4 > t3);
        // The stream saw every leader, in order, with increasing terms.
        let mut seen: Vec<(NodeId, Term)> = Vec::new();
        while seen.last().map(|l| l.0) != Some(3) || seen.len() < 3 {
            let c = tokio::time::timeout(Duration::from_secs(5), changes.recv())
                .await
                .expect("a change within 5 s")
                .unwrap();
            if let Some(l) = c.leader
                && seen.last() != Some(&(l, c.term))
            {
                seen.push((l, c.term));
            }
        }
        assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "{seen:?}");
        let leaders: Vec<NodeId> = seen.iter().map(|l| l.0).collect();
        assert!(leaders.ends_with(&[3, 2, 3]), "{leaders:?}");
    }

    #[test]
    fn bad_membership_is_a_typed_error() {
        let sys = actix::System::new();
        sys.block_on(async {
            let links = LocalLinks::new();
            let r = Election::start(
                At::Local(&links, 9),
                "election",
                &[1, 2],
                BullyConfig::default(),
            );
            assert!(matches!(r, Err(StartError::Config(_))), "{r:?}");
        });
    }

    #[test]
    fn term_numbers_order_like_terms() {
        let a = Term {
            round: 2,
            leader: 5,
        };
        let b = Term {
            round: 3,
            leader: 1,
        };
        assert!(term_number(a) < term_number(b));
        assert_ne!(
            term_number(a),
            term_number(Term {
                round: 2,
                leader: 4
            })
        );
    }
}
