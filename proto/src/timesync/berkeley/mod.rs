//! The Berkeley time daemon as a sans-IO state machine.
//!
//! Gusella and Zatti's algorithm (TEMPO, 1989; BSD `timed`) keeps a group of clocks close to
//! *each other* — not to an outside reference:
//!
//! 1. every [`BerkeleyConfig::interval_ns`] the **master** starts a round and sends each member
//!    [`BerkeleyConfig::probes_per_round`] probes, spaced apart;
//! 2. each member answers at once with its receive and send times; the master turns each
//!    exchange into an NTP [`Sample`] (offset compensated for the round trip) and keeps, per
//!    member, the least-delayed one ([`ClockFilter`]);
//! 3. the master adds its own clock (offset 0) and takes a **fault-tolerant average**
//!    ([`fault_tolerant_average`]): the median of all offsets, a band around it, and the mean of
//!    the offsets inside the band. Clocks outside are *falsetickers* and do not count. When the
//!    band holds no majority of the group, nobody is adjusted;
//! 4. it sends each member the **signed delta** `average − offset` (not an absolute time, which
//!    would be stale on arrival), and corrects itself by `average` — except members whose best
//!    sample this round was unusually delayed (the *delay gate*, [`BerkeleyConfig::delay_gate`]):
//!    they wait for the next round;
//! 5. a node applies a delta by **slewing** ([`ClockAdjust::Slew`]); only its very first
//!    correction may be a step ([`ClockAdjust::Step`]), meant for before its clock is first read;
//! 6. each node also estimates its **frequency** error from successive deltas and corrects it
//!    ([`ClockAdjust::SetFrequency`]), so drift stops accumulating between rounds.
//!
//! The master is whoever the shell names with [`BerkeleyCommand::SetMaster`] (the elected
//! leader); when it dies, the shell names another one, which starts polling at once. A member
//! applies a master's correction only for a round above the last it applied from that master,
//! remembered across leader changes (a flap A → B → A does not reopen A's old rounds) and
//! forgotten when that master goes down ([`Protocol::on_peer_down`]), since a restarted master
//! numbers its rounds from 1 again.
//!
//! # Sans-IO
//!
//! [`Berkeley`] is a [`Protocol`] core like every other of this crate: it does no I/O and reads
//! no clock. Its `now` is the time on the node's *adjusted* clock (the one being disciplined),
//! as a `Duration` since that clock's epoch — the shell reads that clock and passes it in (in
//! `actix-coord`, the daemon's `ClockHost` tells the generic driver to). Messages, timers
//! ([`Timer`]) and membership verdicts come in through the [`Protocol`] methods; everything the
//! machine wants done comes out as [`Effect`](crate::protocol::Effect)s: messages, timers, and
//! [`BerkeleyEvent`]s, among them the clock corrections for the shell to apply
//! ([`BerkeleyEvent::Adjust`]). The same machine runs in an actor, in the simulator
//! (`actix_coord::timesync::sim`), in the model check and in unit tests.
//!
//! # Driving it
//!
//! ```
//! use actix_coord_proto::protocol::{Effect, Effects, Protocol};
//! use actix_coord_proto::timesync::berkeley::{Berkeley, BerkeleyCommand, BerkeleyConfig,
//!     BerkeleyMsg};
//! use std::time::Duration;
//!
//! let config = BerkeleyConfig::default();
//! let mut master = Berkeley::new(config, 2, [1]).unwrap();
//! let mut member = Berkeley::new(config, 1, [2]).unwrap();
//! let mut out = Effects::new();
//! member.on_command(Duration::ZERO, BerkeleyCommand::SetMaster(Some(2)), &mut out).unwrap();
//!
//! // Node 2 is named master: it starts a round and probes node 1.
//! let now = Duration::from_secs(1);
//! master.on_command(now, BerkeleyCommand::SetMaster(Some(2)), &mut out).unwrap();
//! let probe = out.drain().find_map(|e| match e {
//!     Effect::Send { to: 1, msg } => Some(msg),
//!     _ => None,
//! });
//! // The member answers; its `now` is its own clock (here 3 ms ahead, 100 µs later).
//! member.on_message(Duration::from_nanos(1_003_100_000), 2, probe.unwrap(), &mut out);
//! assert!(matches!(out.iter().next(), Some(Effect::Send { to: 2, msg: BerkeleyMsg::Reply { .. } })));
//! ```
//!
//! A shell performs the effects in order: `Send` over the transport, `SetTimer` by (re)arming
//! that timer and calling [`Protocol::on_timer`] when it expires (a stale or spurious expiry is
//! ignored), and each [`ClockAdjust`] on the clock before the next input:
//! [`ClockAdjust::Step`] with `actix_coord::clock::physical::AdjustedClock::step` — and if the
//! clock refuses because it was already read, [`BerkeleyCommand::StepRefused`] turns it into a
//! slew —, [`ClockAdjust::Slew`] with `AdjustedClock::slew_at`, [`ClockAdjust::SetFrequency`]
//! with `AdjustedClock::set_frequency_ppm`.

use crate::protocol::{ConfigError, EffectsOf, NodeId, Protocol};
use crate::timesync::probe::{ClockFilter, FILTER_LEN, Sample};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// The machine's effects buffer.
type Out = EffectsOf<Berkeley>;

mod average;
mod config;
#[cfg(test)]
mod tests;

pub use average::*;
pub use config::*;

/// Nanoseconds in a second.
const SEC: u64 = 1_000_000_000;

/// What Berkeley nodes send each other. Times are ns on the sender's adjusted clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BerkeleyMsg {
    /// Master → member: "what time is it?".
    Probe {
        /// The master's round number.
        round: u64,
        /// Index of the probe within the round.
        seq: u32,
        /// `T1`: the master's send time.
        t1: u64,
    },
    /// Member → master: the answer to a probe.
    Reply {
        /// Echoed round.
        round: u64,
        /// Echoed probe index.
        seq: u32,
        /// Echoed `T1`.
        t1: u64,
        /// `T2`: the member's receive time.
        t2: u64,
        /// `T3`: the member's send time.
        t3: u64,
    },
    /// Master → member: "slew your clock by this much".
    Adjust {
        /// The round the correction was computed in.
        round: u64,
        /// Signed correction in ns: positive means the member's clock is behind.
        delta_ns: i64,
    },
}

impl crate::protocol::PeerWire for BerkeleyMsg {
    const TAG: &'static str = "actix_coord.berkeley.v1";
}

/// The machine's timers. Each is either armed or not; arming one again replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Master: start the next round.
    Poll,
    /// Master: send the next probe of the round.
    Probe,
    /// Master: stop waiting for replies and compute the round.
    Collect,
}

impl Timer {
    /// Every timer, in a fixed order.
    pub const ALL: [Timer; 3] = [Timer::Poll, Timer::Probe, Timer::Collect];

    fn index(self) -> usize {
        match self {
            Timer::Poll => 0,
            Timer::Probe => 1,
            Timer::Collect => 2,
        }
    }
}

/// A correction of the local clock, for the shell to apply to the clock it disciplines (in
/// `actix-coord`, the daemon's `ClockHost` over an `AdjustedClock`), in order, before the
/// machine's next input. It reaches the shell as [`BerkeleyEvent::Adjust`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClockAdjust {
    /// Step the local clock by `delta_ns`. If the clock refuses (it was read already), tell the
    /// machine [`BerkeleyCommand::StepRefused`] with the same delta: it slews instead.
    Step {
        /// Signed step in ns.
        delta_ns: i64,
    },
    /// Slew the local clock by `delta_ns` at `rate_ppm`, replacing any slew under way.
    Slew {
        /// Signed correction in ns.
        delta_ns: i64,
        /// Slew rate in ppm.
        rate_ppm: f64,
    },
    /// Set the local clock's frequency correction to `ppm`.
    SetFrequency {
        /// The new absolute frequency correction, in ppm.
        ppm: f64,
    },
}

/// What the local user (or the master rule, or the shell) tells the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BerkeleyCommand {
    /// The master is now this node (`None`: there is none). If it is this node, it starts a
    /// round at once and polls every interval; if this node was master and no longer is, it
    /// stops.
    SetMaster(Option<NodeId>),
    /// The shell could not apply [`ClockAdjust::Step`] of `delta_ns` (the clock had been read):
    /// the machine slews the same delta instead.
    StepRefused {
        /// The refused step, as asked.
        delta_ns: i64,
    },
}

/// What happened, for logs and metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum BerkeleyEvent {
    /// Master: a round ended and corrections were sent.
    RoundComplete {
        /// Round number.
        round: u64,
        /// The fault-tolerant average, relative to the master's clock, in ns.
        average_ns: i64,
        /// Largest minus smallest trusted offset before correction, in ns: an estimate of the
        /// precision the group had.
        spread_ns: u64,
        /// Nodes whose clocks were averaged (the master included).
        trusted: Vec<NodeId>,
        /// Falsetickers: nodes outside the band, not averaged (still sent their delta).
        excluded: Vec<NodeId>,
        /// Members that answered no probe.
        missing: Vec<NodeId>,
        /// Members whose best sample was too delayed this round: averaged, but not corrected.
        deferred: Vec<NodeId>,
    },
    /// Master: no majority of the group agreed; nobody was adjusted.
    NoMajority {
        /// Round number.
        round: u64,
        /// Size of the largest agreeing set found.
        agreeing: usize,
        /// How many were needed.
        needed: usize,
    },
    /// Apply this to the local clock (an instruction to the shell; see [`ClockAdjust`]).
    Adjust(ClockAdjust),
    /// This node corrected its clock.
    Corrected {
        /// The master that asked.
        master: NodeId,
        /// The master's round.
        round: u64,
        /// The correction, in ns.
        delta_ns: i64,
        /// Whether it is applied as a step (else as a slew).
        stepped: bool,
        /// The frequency correction now in force, in ppm.
        frequency_ppm: f64,
    },
}

/// The master's state during one round.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Round {
    number: u64,
    /// The member probed last: the next probe goes to the member after it (in id order, round
    /// robin) among those that have had the fewest.
    last_probed: Option<NodeId>,
    /// Per member: its exchanges this round.
    members: BTreeMap<NodeId, Probed>,
}

/// One member's exchanges in a round.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct Probed {
    /// `T1` of each probe sent to it, by probe number.
    sent: Vec<u64>,
    /// A bit per probe answered.
    answered: u64,
    /// Its samples.
    filter: ClockFilter,
}

/// The last correction this node applied.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LastCorrection {
    at: u64,
    delta_ns: i64,
    stepped: bool,
    rate_ppm: f64,
}

impl LastCorrection {
    /// How much of it is not applied yet at `now` (signed like the delta).
    fn remaining_at(&self, now: u64) -> f64 {
        if self.stepped {
            return 0.0;
        }
        let elapsed = now.saturating_sub(self.at) as f64;
        let done = self.rate_ppm * 1e-6 * elapsed;
        let left = (self.delta_ns.unsigned_abs() as f64 - done).max(0.0);
        left * self.delta_ns.signum() as f64
    }
}

/// The local clock discipline: what every node (master included) keeps about its corrections.
#[derive(Clone, Debug, Default, PartialEq)]
struct Discipline {
    corrections: u64,
    freq_ppm: f64,
    freq_updates: u64,
    last: Option<LastCorrection>,
    /// The frequency estimate under way: when its span began (the correction it starts from)
    /// and the drift the corrections since have revealed, in ns.
    freq_span: Option<(u64, f64)>,
    /// Per master, the last round whose correction was applied. Kept across master changes (a
    /// master numbers its rounds upwards for as long as it runs, so a leader flap A → B → A
    /// cannot reopen A's old rounds); forgotten when that master goes down, so a restarted one,
    /// numbering from 1 again, is heard. At most one entry per group member.
    last_from: BTreeMap<NodeId, u64>,
}

/// The Berkeley machine of one node: master when named so, member otherwise.
///
/// See the [module documentation](self) for the algorithm and how to drive it.
#[derive(Clone, Debug, PartialEq)]
pub struct Berkeley {
    config: BerkeleyConfig,
    id: NodeId,
    members: BTreeSet<NodeId>,
    master: Option<NodeId>,
    armed: [bool; 3],
    rounds_started: u64,
    round: Option<Round>,
    paths: BTreeMap<NodeId, PathStats>,
    discipline: Discipline,
}

/// Hashes a float consistently with `==`: `0.0` and `-0.0` alike. (The machine holds no NaN.)
fn hash_f64<H: Hasher>(x: f64, state: &mut H) {
    let bits = if x == 0.0 { 0 } else { x.to_bits() };
    bits.hash(state);
}

impl Hash for LastCorrection {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.at.hash(state);
        self.delta_ns.hash(state);
        self.stepped.hash(state);
        hash_f64(self.rate_ppm, state);
    }
}

impl Hash for Discipline {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.corrections.hash(state);
        hash_f64(self.freq_ppm, state);
        self.freq_updates.hash(state);
        self.last.hash(state);
        if let Some((at, drift)) = self.freq_span {
            at.hash(state);
            hash_f64(drift, state);
        }
        self.last_from.hash(state);
    }
}

/// `==` is an equivalence: the machine's floats are never NaN (the configuration is validated,
/// the frequency kept finite), so a model checker can store its states.
impl Eq for Berkeley {}

/// Hashes the changing state, consistently with `==` (the configuration, fixed at construction,
/// is left out). Floats are hashed by their bits, `0.0` and `-0.0` alike.
impl Hash for Berkeley {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.members.hash(state);
        self.master.hash(state);
        self.armed.hash(state);
        self.rounds_started.hash(state);
        self.round.hash(state);
        self.paths.hash(state);
        self.discipline.hash(state);
    }
}

/// How many rounds of best delays the delay gate remembers per member.
const DELAY_HISTORY: usize = 8;

/// What the master remembers of one member's path across rounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct PathStats {
    /// Best delay of each of the last rounds, oldest first.
    delays: VecDeque<i64>,
    /// Rounds deferred in a row.
    deferred: u32,
}

impl PathStats {
    /// Whether `delay` is noisy for this path under the gate; then remembers it.
    fn judge(&mut self, delay: i64, config: &BerkeleyConfig) -> bool {
        let floor = self
            .delays
            .iter()
            .copied()
            .chain([delay])
            .min()
            .unwrap_or(delay);
        let mut excess: Vec<i64> = self.delays.iter().map(|d| d - floor).collect();
        excess.sort_unstable();
        let gate =
            (median_sorted(&excess) as f64 * config.delay_gate).max(config.min_gate_ns as f64);
        let noisy = config.delay_gate > 0.0
            && excess.len() >= 3
            && self.deferred < config.max_deferrals
            && (delay - floor) as f64 > gate;
        if self.delays.len() == DELAY_HISTORY {
            self.delays.pop_front();
        }
        self.delays.push_back(delay);
        self.deferred = if noisy { self.deferred + 1 } else { 0 };
        noisy
    }
}

impl Berkeley {
    /// The machine of node `id` in a group with `peers` (its own id is ignored among them).
    ///
    /// Nothing happens until [`BerkeleyCommand::SetMaster`] names a master, so there are no first
    /// actions.
    ///
    /// # Errors
    /// The errors of [`BerkeleyConfig::validate`].
    pub fn new(
        config: BerkeleyConfig,
        id: NodeId,
        peers: impl IntoIterator<Item = NodeId>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let members = peers.into_iter().filter(|&p| p != id).collect();
        Ok(Self {
            config,
            id,
            members,
            master: None,
            armed: [false; 3],
            rounds_started: 0,
            round: None,
            paths: BTreeMap::new(),
            discipline: Discipline::default(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &BerkeleyConfig {
        &self.config
    }

    /// The current master, if one was named.
    pub fn master(&self) -> Option<NodeId> {
        self.master
    }

    /// Whether this node is the master.
    pub fn is_master(&self) -> bool {
        self.master == Some(self.id)
    }

    /// The other members of the group as this node knows them.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().copied()
    }

    /// Rounds this node has started as master.
    pub fn rounds_started(&self) -> u64 {
        self.rounds_started
    }

    /// The round this node is collecting replies for, as master, if one is open.
    pub fn current_round(&self) -> Option<u64> {
        self.round.as_ref().map(|r| r.number)
    }

    /// Corrections this node has applied to its own clock.
    pub fn corrections(&self) -> u64 {
        self.discipline.corrections
    }

    /// The frequency correction this node has asked for, in ppm.
    pub fn frequency_ppm(&self) -> f64 {
        self.discipline.freq_ppm
    }

    /// Whether `timer` is armed.
    pub fn is_armed(&self, timer: Timer) -> bool {
        self.armed[timer.index()]
    }

    fn set_master(&mut self, now: u64, leader: Option<NodeId>, out: &mut Out) {
        if leader == self.master {
            return;
        }
        let was_master = self.is_master();
        self.master = leader;
        if was_master {
            self.round = None;
            for timer in Timer::ALL {
                self.disarm(timer, out);
            }
        }
        if self.is_master() {
            self.start_round(now, out);
        }
    }

    fn member_down(&mut self, now: u64, peer: NodeId, out: &mut Out) {
        self.members.remove(&peer);
        self.paths.remove(&peer);
        // Its next incarnation numbers its rounds from 1 again.
        self.discipline.last_from.remove(&peer);
        if let Some(round) = &mut self.round {
            round.members.remove(&peer);
        }
        if self.round_answered() {
            self.finish_round(now, out);
        }
    }

    fn timer(&mut self, now: u64, timer: Timer, out: &mut Out) {
        if !self.armed[timer.index()] {
            return;
        }
        self.armed[timer.index()] = false;
        if !self.is_master() {
            return;
        }
        match timer {
            Timer::Poll => self.start_round(now, out),
            Timer::Probe => self.send_probes(now, out),
            Timer::Collect => self.finish_round(now, out),
        }
    }

    fn message(&mut self, now: u64, from: NodeId, msg: BerkeleyMsg, out: &mut Out) {
        match msg {
            BerkeleyMsg::Probe { round, seq, t1 } => {
                // Answer at once: T2 = T3 = now.
                let reply = BerkeleyMsg::Reply {
                    round,
                    seq,
                    t1,
                    t2: now,
                    t3: now,
                };
                out.send(from, reply);
            }
            BerkeleyMsg::Reply {
                round,
                seq,
                t1,
                t2,
                t3,
            } => {
                self.on_reply(now, from, round, seq, [t1, t2, t3], out);
            }
            BerkeleyMsg::Adjust { round, delta_ns } => {
                let fresh = self
                    .discipline
                    .last_from
                    .get(&from)
                    .is_none_or(|&last| round > last);
                if self.master == Some(from) && from != self.id && fresh {
                    self.correct(now, from, round, delta_ns, out);
                } else {
                    tracing::debug!(
                        node = self.id,
                        from,
                        round,
                        "stale or foreign Adjust dropped"
                    );
                }
            }
        }
    }

    /// The shell could not step the clock (it had been read already): slew the same delta.
    fn step_refused(&mut self, now: u64, delta_ns: i64, out: &mut Out) {
        if let Some(last) = &mut self.discipline.last
            && last.stepped
            && last.delta_ns == delta_ns
        {
            last.stepped = false;
            last.at = now;
            last.rate_ppm = self.config.slew_rate_ppm;
            out.emit(BerkeleyEvent::Adjust(ClockAdjust::Slew {
                delta_ns,
                rate_ppm: self.config.slew_rate_ppm,
            }));
        }
    }

    fn arm(&mut self, timer: Timer, after_ns: u64, out: &mut Out) {
        self.armed[timer.index()] = true;
        out.set_timer(timer, Duration::from_nanos(after_ns));
    }

    fn disarm(&mut self, timer: Timer, out: &mut Out) {
        if self.armed[timer.index()] {
            self.armed[timer.index()] = false;
            out.cancel_timer(timer);
        }
    }

    fn start_round(&mut self, now: u64, out: &mut Out) {
        if self.round.is_some() {
            // The previous round is still open (the collect timer was lost): close it first.
            self.finish_round(now, out);
        }
        self.rounds_started += 1;
        let members = self
            .members
            .iter()
            .map(|&m| (m, Probed::default()))
            .collect::<BTreeMap<_, _>>();
        self.round = Some(Round {
            number: self.rounds_started,
            last_probed: None,
            members,
        });
        self.arm(Timer::Poll, self.config.interval_ns, out);
        if self.members.is_empty() {
            self.finish_round(now, out);
            return;
        }
        self.arm(Timer::Collect, self.config.collect_timeout_ns, out);
        self.send_probes(now, out);
    }

    fn send_probes(&mut self, now: u64, out: &mut Out) {
        let per_member = self.config.probes_per_round;
        let Some(round) = &mut self.round else { return };
        let n = round.members.len() as u64;
        // One member at a time, `probe_spacing / n` apart: each exchange meets a master that is
        // not busy with the others' probes and replies, so the two directions of every
        // exchange see the same kind of wait (a burst to every member at once made the replies
        // queue at the master and biased the members' offsets between processes). Members
        // take turns in id order; one that left mid-round is simply skipped.
        let Some(fewest) = round.members.values().map(|p| p.sent.len()).min() else {
            return;
        };
        if fewest >= per_member {
            return;
        }
        let after = round.last_probed;
        let turn = || {
            round
                .members
                .iter()
                .filter(|(_, p)| p.sent.len() == fewest)
                .map(|(id, _)| *id)
        };
        let Some(to) = turn()
            .find(|id| after.is_some_and(|a| *id > a))
            .or_else(|| turn().next())
        else {
            return;
        };
        let Some(probed) = round.members.get_mut(&to) else {
            return;
        };
        let seq = probed.sent.len() as u32;
        probed.sent.push(now);
        round.last_probed = Some(to);
        out.send(
            to,
            BerkeleyMsg::Probe {
                round: round.number,
                seq,
                t1: now,
            },
        );
        let more = round.members.values().any(|p| p.sent.len() < per_member);
        if more {
            let gap = (self.config.probe_spacing_ns / n).max(1);
            self.arm(Timer::Probe, gap, out);
        }
    }

    fn on_reply(
        &mut self,
        now: u64,
        from: NodeId,
        number: u64,
        seq: u32,
        [t1, t2, t3]: [u64; 3],
        out: &mut Out,
    ) {
        let (id, is_master) = (self.id, self.is_master());
        let Some(round) = &mut self.round else {
            tracing::debug!(node = id, from, number, "reply outside a round dropped");
            return;
        };
        if round.number != number || !is_master {
            tracing::debug!(node = id, from, number, "reply to another round dropped");
            return;
        }
        let Some(probed) = round.members.get_mut(&from) else {
            tracing::debug!(node = id, from, number, "reply from a non-member dropped");
            return;
        };
        let bit = 1u64.checked_shl(seq).unwrap_or(0);
        if probed.sent.get(seq as usize) != Some(&t1) || bit == 0 || probed.answered & bit != 0 {
            tracing::debug!(
                node = id,
                from,
                seq,
                "unexpected or duplicate reply dropped"
            );
            return;
        }
        match Sample::from_timestamps(t1, t2, t3, now) {
            Ok(sample) => {
                probed.answered |= bit;
                probed.filter.push(sample);
            }
            Err(e) => {
                tracing::debug!(node = id, from, seq, error = %e, "bad probe reply dropped");
                return;
            }
        }
        if self.round_answered() {
            self.finish_round(now, out);
        }
    }

    /// Whether the open round has every probe sent and answered.
    fn round_answered(&self) -> bool {
        let Some(round) = &self.round else {
            return false;
        };
        let all = if self.config.probes_per_round >= 64 {
            u64::MAX
        } else {
            (1u64 << self.config.probes_per_round) - 1
        };
        round
            .members
            .values()
            .all(|p| p.sent.len() == self.config.probes_per_round && p.answered == all)
    }

    fn finish_round(&mut self, now: u64, out: &mut Out) {
        let Some(round) = self.round.take() else {
            return;
        };
        self.disarm(Timer::Collect, out);
        self.disarm(Timer::Probe, out);
        let mut estimates = vec![Estimate {
            node: self.id,
            offset_ns: 0,
            delay_ns: 0,
            noisy: false,
        }];
        let mut missing = Vec::new();
        for (&node, probed) in &round.members {
            match probed.filter.best() {
                Some(s) => {
                    let noisy = self
                        .paths
                        .entry(node)
                        .or_default()
                        .judge(s.delay_ns, &self.config);
                    estimates.push(Estimate {
                        node,
                        offset_ns: s.offset_ns,
                        delay_ns: s.delay_ns,
                        noisy,
                    })
                }
                None => missing.push(node),
            }
        }
        let group = 1 + self.members.len();
        match fault_tolerant_average(&estimates, group, &self.config) {
            Ok(agreement) => {
                // A correction needs someone to compare with: a round whose agreement holds
                // only the master's own clock (no members yet, or none answered) corrects
                // nothing — in particular it must not use up the master's one step on 0.
                let compared = agreement.trusted.iter().any(|&n| n != self.id);
                for e in estimates.iter().filter(|e| e.node != self.id && !e.noisy) {
                    let delta = agreement.average_ns as i128 - e.offset_ns as i128;
                    let delta_ns = delta.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
                    out.send(
                        e.node,
                        BerkeleyMsg::Adjust {
                            round: round.number,
                            delta_ns,
                        },
                    );
                }
                out.emit(BerkeleyEvent::RoundComplete {
                    round: round.number,
                    average_ns: agreement.average_ns,
                    spread_ns: agreement.spread_ns,
                    trusted: agreement.trusted,
                    excluded: agreement.excluded,
                    missing,
                    deferred: agreement.deferred,
                });
                if compared {
                    let id = self.id;
                    self.correct(now, id, round.number, agreement.average_ns, out);
                }
            }
            Err(NoMajority { agreeing, needed }) => {
                out.emit(BerkeleyEvent::NoMajority {
                    round: round.number,
                    agreeing,
                    needed,
                });
            }
        }
    }

    /// Applies a correction to the local clock: a step the first time (if allowed), else a slew,
    /// with a frequency update when the previous correction is far enough back.
    fn correct(&mut self, now: u64, master: NodeId, round: u64, delta_ns: i64, out: &mut Out) {
        let cfg = self.config;
        let d = &mut self.discipline;
        d.last_from.insert(master, round);
        let stepped = cfg.initial_step && d.corrections == 0;
        d.corrections += 1;
        if stepped {
            out.emit(BerkeleyEvent::Adjust(ClockAdjust::Step { delta_ns }));
        } else {
            if let (Some(prev), Some((since, acc))) = (d.last, d.freq_span) {
                // The delta is what the previous slew left undone plus what the frequency
                // error added since: delta = remaining − error × elapsed (+ the difference of
                // two measurement errors, which cancels along a span).
                let drift = acc + (delta_ns as f64 - prev.remaining_at(now));
                let elapsed = now.saturating_sub(since);
                d.freq_span = Some((since, drift));
                if elapsed >= cfg.min_freq_interval_ns && elapsed > 0 {
                    d.freq_span = Some((now, 0.0));
                    let estimate_ppm = drift / elapsed as f64 * 1e6;
                    d.freq_updates += 1;
                    let gain = (1.0 / d.freq_updates as f64).max(cfg.min_freq_gain);
                    let f = d.freq_ppm + gain * estimate_ppm;
                    d.freq_ppm = if f.is_finite() {
                        f.clamp(-cfg.max_freq_ppm, cfg.max_freq_ppm)
                    } else {
                        d.freq_ppm
                    };
                    out.emit(BerkeleyEvent::Adjust(ClockAdjust::SetFrequency {
                        ppm: d.freq_ppm,
                    }));
                }
            }
            out.emit(BerkeleyEvent::Adjust(ClockAdjust::Slew {
                delta_ns,
                rate_ppm: cfg.slew_rate_ppm,
            }));
        }
        if d.freq_span.is_none() {
            d.freq_span = Some((now, 0.0));
        }
        d.last = Some(LastCorrection {
            at: now,
            delta_ns,
            stepped,
            rate_ppm: cfg.slew_rate_ppm,
        });
        out.emit(BerkeleyEvent::Corrected {
            master,
            round,
            delta_ns,
            stepped,
            frequency_ppm: d.freq_ppm,
        });
    }
}

/// The machine's `now`: ns on the adjusted clock (a `Duration` since that clock's epoch).
fn ns(now: Duration) -> u64 {
    u64::try_from(now.as_nanos()).unwrap_or(u64::MAX)
}

/// The Berkeley machine as a sans-IO core. Its `now` is **the time on the clock it
/// disciplines** (ns since that clock's epoch), not the driver's epoch: the probes' timestamps
/// are that clock's readings. Clock corrections come out as [`BerkeleyEvent::Adjust`]; a step
/// the clock refuses goes back in as [`BerkeleyCommand::StepRefused`].
impl Protocol for Berkeley {
    type Msg = BerkeleyMsg;
    type Event = BerkeleyEvent;
    type Timer = Timer;
    type Command = BerkeleyCommand;
    type Error = Infallible;

    fn id(&self) -> NodeId {
        self.id
    }

    fn on_command(
        &mut self,
        now: Duration,
        cmd: BerkeleyCommand,
        out: &mut Out,
    ) -> Result<(), Infallible> {
        match cmd {
            BerkeleyCommand::SetMaster(m) => self.set_master(ns(now), m, out),
            BerkeleyCommand::StepRefused { delta_ns } => self.step_refused(ns(now), delta_ns, out),
        }
        Ok(())
    }

    fn on_message(&mut self, now: Duration, from: NodeId, msg: BerkeleyMsg, out: &mut Out) {
        self.message(ns(now), from, msg, out);
    }

    fn on_timer(&mut self, now: Duration, timer: Timer, out: &mut Out) {
        self.timer(ns(now), timer, out);
    }

    /// A member left or died (the failure detector's verdict). A round waiting only for it
    /// ends now.
    fn on_peer_down(&mut self, now: Duration, peer: NodeId, out: &mut Out) {
        self.member_down(ns(now), peer, out);
    }

    /// A member joined the group.
    fn on_peer_up(&mut self, _now: Duration, peer: NodeId, _out: &mut Out) {
        if peer != self.id {
            self.members.insert(peer);
        }
    }
}
