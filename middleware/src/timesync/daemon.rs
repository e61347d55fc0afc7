//! The Berkeley daemon: the pure [`Berkeley`] core driven by the generic [`Driver`] over the
//! network, disciplining this node's clock.
//!
//! [`Berkeley`] is a [`Protocol`](crate::protocol::Protocol) core like the others, so [`start`] runs it in a [`Driver`]
//! (on a node or in-process: it takes an [`At`], like every service). What is particular to
//! it is done by its [`Host`], a [`ClockHost`] over the [`DisciplinedClock`] it owns (an
//! [`AdjustedClock`] over the hardware clock): the core's `now` is read from that clock
//! ([`DisciplinedClock::sample_ns`], which does not expose it, so the first correction can still
//! be a step), and the clock corrections the core emits ([`BerkeleyEvent::Adjust`]) are
//! applied to it in order; a step the clock refuses goes back to the core as
//! [`BerkeleyCommand::StepRefused`], and the core slews instead.
//!
//! **The master** is named by [`BerkeleyCommand::SetMaster`]. [`start`]'s [`DaemonConfig`] takes
//! a [`MasterRule`]: [`follow_election`] names the leader of a bully
//! [`Election`](crate::election::Election) running on the same nodes (and no master while an
//! election is under way), so when the master dies the next leader takes over as soon as it is
//! elected; [`follow_highest_live`] names the highest live node id from the node's membership
//! events ([`HighestLive`], a pure rule) for groups that run no election.
//!
//! ```
//! use actix_coord::clock::physical::{AdjustedClock, SimulatedClock, SimulatedClockConfig,
//!     SystemClock};
//! use actix_coord::driver::{At, Command, LocalLinks};
//! use actix_coord::timesync::berkeley::{Berkeley, BerkeleyConfig};
//! use actix_coord::timesync::daemon::{self, BerkeleyCommand, DaemonConfig, MasterRule};
//! use std::sync::Arc;
//!
//! # actix::System::new().block_on(async {
//! let links = LocalLinks::<Berkeley>::new();
//! let members = [1, 2];
//! let config = BerkeleyConfig::default();
//! for id in members {
//!     let oscillator = SimulatedClock::new(SystemClock::realtime(),
//!         SimulatedClockConfig { offset_ns: i64::from(id) * 1_000_000, ..Default::default() })
//!         .unwrap();
//!     let clock = Arc::new(AdjustedClock::new(oscillator));
//!     let machine = Berkeley::new(config, id, members).unwrap();
//!     let at = At::Local(&links, id);
//!     let daemon = daemon::start(at, "time", &members,
//!         DaemonConfig::new(machine, clock, MasterRule::Manual)).unwrap();
//!     daemon.do_send(Command::new(BerkeleyCommand::SetMaster(Some(2))));
//! }
//! # });
//! ```

use crate::clock::physical::{AdjustedClock, HardwareClock, PhysicalClockError};
use crate::driver::{At, Command, Driver, Host, StartError};
use crate::election::{LeaderView, Term};
use crate::net::{Node, NodeEvent};
use crate::protocol::NodeId;
pub use crate::timesync::berkeley::BerkeleyCommand;
use crate::timesync::berkeley::{
    Berkeley, BerkeleyConfig, BerkeleyEvent, ClockAdjust, DEFAULT_INTERVAL_NS,
};
use actix::Addr;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The clock a Berkeley daemon disciplines: read without exposing, stepped, slewed, and its
/// frequency corrected. [`AdjustedClock`] is one; tests may use their own.
pub trait DisciplinedClock: Send + Sync {
    /// The time in ns, read for the daemon's own timestamps (does not expose the clock).
    fn sample_ns(&self) -> u64;
    /// Steps by `delta_ns`.
    ///
    /// # Errors
    /// [`PhysicalClockError::AlreadyRead`] when the clock may no longer be stepped.
    fn step(&self, delta_ns: i64) -> Result<(), PhysicalClockError>;
    /// Slews by `delta_ns` at `rate_ppm`, replacing any slew under way.
    ///
    /// # Errors
    /// A rate that is not finite.
    fn slew_at(&self, delta_ns: i64, rate_ppm: f64) -> Result<i64, PhysicalClockError>;
    /// Sets the frequency correction in ppm; returns the value applied.
    ///
    /// # Errors
    /// A value that is not finite.
    fn set_frequency_ppm(&self, ppm: f64) -> Result<f64, PhysicalClockError>;
}

impl<C: HardwareClock> DisciplinedClock for AdjustedClock<C> {
    fn sample_ns(&self) -> u64 {
        AdjustedClock::sample_ns(self)
    }
    fn step(&self, delta_ns: i64) -> Result<(), PhysicalClockError> {
        AdjustedClock::step(self, delta_ns)
    }
    fn slew_at(&self, delta_ns: i64, rate_ppm: f64) -> Result<i64, PhysicalClockError> {
        AdjustedClock::slew_at(self, delta_ns, rate_ppm)
    }
    fn set_frequency_ppm(&self, ppm: f64) -> Result<f64, PhysicalClockError> {
        AdjustedClock::set_frequency_ppm(self, ppm)
    }
}

/// The default [`BerkeleyConfig`] with a different round interval, for demos and tests (the
/// default 16 s is for production): the collect timeout becomes half the interval, the
/// shortest span of a frequency estimate 8 intervals but at most the default's 8 s (and at least
/// half the interval), and probes are spaced `min(10 ms, interval / 40)` apart so a round's 8
/// probes take under a fifth of it. (Over one short interval the measurement noise swamps the
/// frequency: 0.3 ms over 500 ms is 600 ppm.)
pub fn config_for_interval(interval: Duration) -> BerkeleyConfig {
    let interval_ns = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(40);
    BerkeleyConfig {
        interval_ns,
        probe_spacing_ns: (interval_ns / 40).min(10_000_000),
        collect_timeout_ns: interval_ns / 2,
        min_freq_interval_ns: interval_ns
            .saturating_mul(8)
            .min(DEFAULT_INTERVAL_NS / 2)
            .max(interval_ns / 2),
        ..BerkeleyConfig::default()
    }
}

/// The [`Host`] of a Berkeley daemon: gives the core the time on `clock` as its `now`, and
/// applies the core's clock corrections to it.
pub struct ClockHost {
    clock: Arc<dyn DisciplinedClock>,
}

impl ClockHost {
    /// A host over `clock`.
    pub fn new(clock: Arc<dyn DisciplinedClock>) -> Self {
        Self { clock }
    }

    /// The clock it disciplines.
    pub fn clock(&self) -> &Arc<dyn DisciplinedClock> {
        &self.clock
    }
}

impl Host<Berkeley> for ClockHost {
    fn now(&self, _since_start: Duration) -> Duration {
        Duration::from_nanos(self.clock.sample_ns())
    }

    fn act(&mut self, event: &BerkeleyEvent) -> Option<BerkeleyCommand> {
        let BerkeleyEvent::Adjust(adjust) = *event else {
            return None;
        };
        match adjust {
            ClockAdjust::Step { delta_ns } => {
                if self.clock.step(delta_ns).is_err() {
                    return Some(BerkeleyCommand::StepRefused { delta_ns });
                }
            }
            ClockAdjust::Slew { delta_ns, rate_ppm } => {
                if let Err(e) = self.clock.slew_at(delta_ns, rate_ppm) {
                    tracing::warn!(target: "actix_coord::timesync", error = %e, "slew refused");
                }
            }
            ClockAdjust::SetFrequency { ppm } => {
                if let Err(e) = self.clock.set_frequency_ppm(ppm) {
                    tracing::warn!(target: "actix_coord::timesync", error = %e, "frequency refused");
                }
            }
        }
        None
    }
}

/// A master rule without an election: the highest id among this node and the peers its failure
/// detector sees up. Pure; deterministic for a given event sequence. Unlike the elected leader,
/// it gives each side of a partition its own master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HighestLive {
    me: NodeId,
    live: BTreeSet<NodeId>,
}

impl HighestLive {
    /// The rule on node `me`, which knows of no live peer yet (so names itself).
    pub fn new(me: NodeId) -> Self {
        Self {
            me,
            live: BTreeSet::from([me]),
        }
    }

    /// The master now.
    pub fn master(&self) -> NodeId {
        self.live.last().copied().unwrap_or(self.me)
    }

    /// `peer` is up; returns the new master if it changed.
    pub fn up(&mut self, peer: NodeId) -> Option<NodeId> {
        let before = self.master();
        self.live.insert(peer);
        (self.master() != before).then(|| self.master())
    }

    /// `peer` is down (this node never is, for itself); returns the new master if it changed.
    pub fn down(&mut self, peer: NodeId) -> Option<NodeId> {
        let before = self.master();
        if peer != self.me {
            self.live.remove(&peer);
        }
        (self.master() != before).then(|| self.master())
    }
}

/// Names the Berkeley master on `daemon` by [`HighestLive`] from `node`'s membership events,
/// now and whenever they change. The task ends with the node's event stream or the daemon.
///
/// [`follow_election`] is the alternative that follows the elected leader.
pub fn follow_highest_live(node: &Node, daemon: Addr<Driver<Berkeley>>) {
    let mut events = node.subscribe();
    let mut rule = HighestLive::new(node.id());
    for peer in node.connected_peers() {
        rule.up(peer);
    }
    let set = |d: &Addr<Driver<Berkeley>>, m: NodeId| {
        d.do_send(Command::<BerkeleyCommand, Infallible>::new(
            BerkeleyCommand::SetMaster(Some(m)),
        ));
    };
    set(&daemon, rule.master());
    actix_rt::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let change = match events.recv().await {
                Ok(NodeEvent::MemberDown { node, .. }) => rule.down(node),
                Ok(NodeEvent::MemberUp { node }) | Ok(NodeEvent::Reconnected { node }) => {
                    rule.up(node)
                }
                Ok(NodeEvent::TellsLost { .. }) => continue,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            };
            if !daemon.connected() {
                break;
            }
            if let Some(m) = change {
                set(&daemon, m);
            }
        }
    });
}

/// What to tell a Berkeley daemon when the recognised leader goes from `before` to `after`: the
/// [`BerkeleyCommand::SetMaster`] values to send, in order. A new leader is named; no leader
/// names none; the *same* leader in a new term (it restarted, or was re-elected) is named again
/// after a `None`, so that its daemon closes any round of the old term and starts afresh. (A
/// member keeps the last round it applied per master across such changes; it forgets them when
/// that master goes down, so a restarted master, numbering from 1 again, is heard.) Pure.
pub fn master_changes(
    before: Option<(NodeId, Term)>,
    after: Option<(NodeId, Term)>,
) -> Vec<Option<NodeId>> {
    match (before, after) {
        (Some((b, bt)), Some((a, at))) if a == b => {
            if at == bt {
                vec![]
            } else {
                vec![None, Some(a)]
            }
        }
        (None, None) => vec![],
        (_, a) => vec![a.map(|(id, _)| id)],
    }
}

/// Names the Berkeley master on `daemon` by the elected leader seen through `view`: now, and
/// on every change of leader (by [`master_changes`]). While there is no leader (an election
/// under way, or the election stopped), the daemon is told there is no master, so no round runs
/// and no correction from an old master is applied; the new leader's daemon starts a round the
/// moment it is elected. Runs on [`LeaderView::follow`]; the task ends when the election stops
/// or, at the next change, when the daemon has.
pub fn follow_election(view: LeaderView, daemon: Addr<Driver<Berkeley>>) {
    view.follow(
        daemon,
        |before, after| {
            master_changes(before, after)
                .into_iter()
                .map(BerkeleyCommand::SetMaster)
                .collect()
        },
        std::future::pending(),
    );
}

/// Who names the Berkeley master, for [`start`].
#[derive(Clone, Debug)]
pub enum MasterRule {
    /// The elected leader ([`follow_election`]): the issue's rule, and the one to use whenever
    /// the nodes run an [`Election`](crate::election::Election).
    Elected(LeaderView),
    /// The highest live node id from the node's membership events ([`follow_highest_live`]):
    /// no election needed, but two sides of a partition each have a master.
    HighestLive,
    /// Nobody: the caller sends [`BerkeleyCommand::SetMaster`] itself.
    Manual,
}

/// How a Berkeley daemon runs, for [`start`]: its core, the clock it disciplines, who names its
/// master, and what sees its events.
#[non_exhaustive]
pub struct DaemonConfig {
    /// This member's machine.
    pub core: Berkeley,
    /// The clock the machine disciplines (its `now`, and where its corrections go).
    pub clock: Arc<dyn DisciplinedClock>,
    /// Who names the master.
    pub master: MasterRule,
    /// Sees every event inside the driver (before subscribers), so it misses none.
    pub observer: Option<crate::driver::Observer<BerkeleyEvent>>,
}

impl DaemonConfig {
    /// `core` over `clock`, its master named by `master`, no observer.
    pub fn new(core: Berkeley, clock: Arc<dyn DisciplinedClock>, master: MasterRule) -> Self {
        Self {
            core,
            clock,
            master,
            observer: None,
        }
    }

    /// Sets [`observer`](Self::observer).
    pub fn with_observer(mut self, observer: crate::driver::Observer<BerkeleyEvent>) -> Self {
        self.observer = Some(observer);
        self
    }
}

/// Starts member [`at.me()`](At::me)'s Berkeley daemon `name` among `members`: on a node it is
/// registered as `name` and the node's membership reaches it; the master is named by
/// `config.master`. Call on an actix arbiter.
///
/// # Errors
/// [`StartError::EmptyName`]; [`StartError::WrongMember`] when the core is another member
/// than `at`'s; [`StartError::Config`] for [`MasterRule::HighestLive`] in one process (it
/// reads a node's membership); [`StartError::Register`] when `name` is taken on the node.
pub fn start(
    at: At<'_, Berkeley>,
    name: &str,
    members: &[NodeId],
    config: DaemonConfig,
) -> Result<Addr<Driver<Berkeley>>, StartError> {
    if let (MasterRule::HighestLive, At::Local(..)) = (&config.master, at) {
        return Err(StartError::Config(
            crate::protocol::ConfigError::Inconsistent(
                "the highest-live master rule reads a node's membership: start the daemon on a node",
            ),
        ));
    }
    let host: Box<dyn Host<Berkeley>> = Box::new(ClockHost::new(config.clock));
    let member = at.start_hosted(name, config.core, members, config.observer, Some(host))?;
    let addr = member.addr;
    match (config.master, at) {
        (MasterRule::Elected(view), _) => follow_election(view, addr.clone()),
        (MasterRule::HighestLive, At::Node(node)) => follow_highest_live(node, addr.clone()),
        (MasterRule::HighestLive, At::Local(..)) | (MasterRule::Manual, _) => {}
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::physical::{SimulatedClock, SimulatedClockConfig, SystemClock};
    use crate::driver::{Inspect, LocalLinks, Subscribe};

    const MS: u64 = 1_000_000;

    fn config(interval_ms: u64) -> BerkeleyConfig {
        config_for_interval(Duration::from_millis(interval_ms))
    }

    #[test]
    fn short_interval_configs_are_valid() {
        for ms in [1, 10, 100, 250, 500, 16_000] {
            assert_eq!(config(ms).validate(), Ok(()), "{ms} ms");
        }
        assert_eq!(config(16_000).probe_spacing_ns, 10 * MS);
    }

    type Clock = AdjustedClock<SimulatedClock<SystemClock>>;

    fn clock(offset_ms: i64, drift_ppm: f64) -> Arc<Clock> {
        let osc = SimulatedClock::new(
            SystemClock::realtime(),
            SimulatedClockConfig {
                offset_ns: offset_ms * MS as i64,
                drift_ppm,
                ..Default::default()
            },
        )
        .unwrap();
        Arc::new(AdjustedClock::new(osc))
    }

    /// Offset of each clock to the true (system) clock, read back to back.
    fn offsets(clocks: &[Arc<Clock>]) -> Vec<i64> {
        clocks
            .iter()
            .map(|c| c.sample_ns() as i64 - c.raw().inner().now_ns() as i64)
            .collect()
    }

    fn spread(v: &[i64]) -> u64 {
        (v.iter().max().unwrap() - v.iter().min().unwrap()) as u64
    }

    #[test]
    fn a_new_term_of_the_same_leader_renames_it_after_none() {
        let t = |round, leader| Term { round, leader };
        assert_eq!(master_changes(None, Some((3, t(1, 3)))), [Some(3)]);
        assert!(master_changes(Some((3, t(1, 3))), Some((3, t(1, 3)))).is_empty());
        assert_eq!(master_changes(Some((3, t(1, 3))), None), [None]);
        assert_eq!(
            master_changes(Some((3, t(1, 3))), Some((2, t(2, 2)))),
            [Some(2)]
        );
        // Node 3 restarted and won again: members must forget its old rounds.
        assert_eq!(
            master_changes(Some((3, t(1, 3))), Some((3, t(2, 3)))),
            [None, Some(3)]
        );
        assert!(master_changes(None, None).is_empty());
    }

    #[test]
    fn highest_live_names_the_highest_id_and_fails_over() {
        let mut r = HighestLive::new(2);
        assert_eq!(r.master(), 2);
        assert_eq!(r.up(1), None);
        assert_eq!(r.up(3), Some(3));
        assert_eq!(r.up(3), None);
        assert_eq!(r.down(1), None);
        assert_eq!(r.down(3), Some(2));
        assert_eq!(r.down(2), None, "a node never declares itself down");
        assert_eq!(r.master(), 2);
    }

    #[actix_rt::test]
    async fn three_local_daemons_step_then_slew_to_within_a_millisecond() {
        let links = LocalLinks::<Berkeley>::new();
        let members = [1, 2, 3];
        let setup = [(-300, 150.0), (200, -150.0), (50, 0.0)];
        let clocks: Vec<_> = setup.iter().map(|&(o, d)| clock(o, d)).collect();
        let mut drivers = Vec::new();
        for (id, c) in members.iter().zip(&clocks) {
            let m = Berkeley::new(config(100), *id, members).unwrap();
            let config = DaemonConfig::new(m, c.clone(), MasterRule::Manual);
            let d = start(At::Local(&links, *id), "time", &members, config).unwrap();
            drivers.push(d);
        }
        let mut rx = drivers[2].send(Subscribe::default()).await.unwrap();
        for d in &drivers {
            d.do_send(Command::<_, Infallible>::new(BerkeleyCommand::SetMaster(
                Some(3),
            )));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut rounds = 0;
        while rounds < 4 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(BerkeleyEvent::RoundComplete { .. })) => rounds += 1,
                Ok(Ok(_)) => {}
                other => panic!("no round by the deadline: {other:?}"),
            }
        }
        let o = offsets(&clocks);
        assert!(spread(&o) <= MS, "offsets {o:?}");
        for d in &drivers {
            let corrections = d
                .send(Inspect(Box::new(|c: &Berkeley| c.corrections())))
                .await
                .unwrap();
            assert!(corrections >= 3, "{corrections} corrections");
        }
    }

    #[actix_rt::test]
    async fn a_refused_step_becomes_a_slew() {
        let links = LocalLinks::<Berkeley>::new();
        let members = [1, 2];
        let clocks = [clock(0, 0.0), clock(40, 0.0)];
        // Node 1's clock has been read: its first correction cannot be a step.
        let _ = clocks[0].now_ns();
        let mut drivers = Vec::new();
        for (id, c) in members.iter().zip(&clocks) {
            let m = Berkeley::new(config(100), *id, members).unwrap();
            let config = DaemonConfig::new(m, c.clone(), MasterRule::Manual);
            drivers.push(start(At::Local(&links, *id), "time", &members, config).unwrap());
        }
        let mut rx = drivers[0].send(Subscribe::default()).await.unwrap();
        for d in &drivers {
            d.do_send(Command::<_, Infallible>::new(BerkeleyCommand::SetMaster(
                Some(2),
            )));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(BerkeleyEvent::Corrected { delta_ns, .. })) => {
                    assert!(
                        (delta_ns - 20 * MS as i64).abs() < MS as i64 / 2,
                        "{delta_ns}"
                    );
                    break;
                }
                Ok(Ok(_)) => {}
                other => panic!("no correction by the deadline: {other:?}"),
            }
        }
        // Node 1 slews (500 ppm: 20 ms take 40 s), so it is still far from node 2.
        assert!(clocks[0].slew_remaining_ns() > 15 * MS as i64);
    }

    /// Four daemons on loopback nodes, clocks up to 1 s apart: node 4 masters and only it
    /// corrects node 1; after node 4 goes away node 3 corrects node 1 within 3 of its rounds, and
    /// the group is within 1 ms each time. With `elected`, a bully election names the master.
    async fn four_daemons_sync_and_fail_over(elected: bool) {
        use crate::election::{BullyConfig, Election};
        let setup = [(-400, 100.0), (0, -100.0), (300, 50.0), (600, 0.0)];
        let nodes = crate::net::loopback_cluster(setup.len()).await;
        let members: Vec<NodeId> = nodes.iter().map(|n| n.id()).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let clocks: Vec<_> = setup.iter().map(|&(o, d)| clock(o, d)).collect();
        let mut subs = Vec::new();
        let mut elections = Vec::new();
        for (n, c) in nodes.iter().zip(&clocks) {
            let rule = if elected {
                let e = Election::start(At::Node(n), "election", &members, BullyConfig::default())
                    .unwrap();
                let view = e.view();
                elections.push(e);
                MasterRule::Elected(view)
            } else {
                MasterRule::HighestLive
            };
            let m = Berkeley::new(config(200), n.id(), members.iter().copied()).unwrap();
            let d = start(
                At::Node(n),
                "berkeley",
                &members,
                DaemonConfig::new(m, c.clone(), rule),
            )
            .unwrap();
            subs.push(d.send(Subscribe::default()).await.unwrap());
        }
        let mut corrections = 0;
        while corrections < 3 {
            match tokio::time::timeout_at(deadline, subs[0].recv()).await {
                Ok(Ok(BerkeleyEvent::Corrected { master, .. })) => {
                    assert_eq!(master, 4, "only the master corrects");
                    corrections += 1;
                }
                Ok(Ok(_)) => {}
                other => panic!("no correction by the deadline: {other:?}"),
            }
        }
        if elected {
            assert_eq!(elections[0].leader().map(|(l, _)| l), Some(4));
        }
        let o = offsets(&clocks);
        assert!(spread(&o) <= MS, "offsets {o:?}");
        nodes[3].shutdown();
        loop {
            match tokio::time::timeout_at(deadline, subs[0].recv()).await {
                Ok(Ok(BerkeleyEvent::Corrected {
                    master: 3, round, ..
                })) => {
                    assert!(
                        round <= 3,
                        "first correction by the new master in round {round}"
                    );
                    break;
                }
                Ok(Ok(BerkeleyEvent::Corrected { master, .. })) => {
                    assert_eq!(master, 4, "a correction from a node that was never master");
                }
                Ok(Ok(_)) => {}
                other => panic!("no correction from node 3 by the deadline: {other:?}"),
            }
        }
        if elected {
            assert_eq!(elections[0].leader().map(|(l, _)| l), Some(3));
        }
        let o = offsets(&clocks[..3]);
        assert!(spread(&o) <= MS, "offsets {o:?}");
    }

    #[actix_rt::test]
    async fn daemons_on_loopback_nodes_sync_and_a_new_master_takes_over() {
        four_daemons_sync_and_fail_over(false).await;
    }

    #[actix_rt::test]
    async fn the_elected_leader_is_master_and_its_successor_adjusts_within_three_rounds() {
        four_daemons_sync_and_fail_over(true).await;
    }
}
