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
//! 5. a node applies a delta by **slewing** ([`Action::Slew`]); only its very first correction
//!    may be a step ([`Action::Step`]), meant for before its clock is first read;
//! 6. each node also estimates its **frequency** error from successive deltas and corrects it
//!    ([`Action::SetFrequency`]), so drift stops accumulating between rounds.
//!
//! The master is whoever the shell names with [`Berkeley::handle_leader`] (the elected leader);
//! when it dies, the shell names another one, which starts polling at once. A member applies a
//! master's correction only for a round above the last it applied from that master, remembered
//! across leader changes (a flap A → B → A does not reopen A's old rounds) and forgotten when
//! that master goes down ([`Berkeley::handle_member_down`]), since a restarted master numbers its
//! rounds from 1 again.
//!
//! # Sans-IO
//!
//! This module does no I/O and reads no clock: no actix, no tokio, no `Instant::now()`, no
//! `SystemTime::now()` and no randomness. Time comes in as `now` (nanoseconds on the node's
//! *adjusted* clock, the one being disciplined), messages and timer expiries come in through the
//! `handle_*` methods, and everything the machine wants done comes out as a list of [`Action`]s
//! — messages to send, timers to arm (as data: [`Timer`]), corrections to apply to the local
//! clock, and [`BerkeleyEvent`]s to report. The same machine runs in an actor, in the
//! simulator (`actix_coord::timesync::sim`) and in unit tests.
//!
//! # Driving it
//!
//! ```
//! use actix_coord_proto::timesync::berkeley::{Action, Berkeley, BerkeleyConfig, BerkeleyMsg};
//!
//! let config = BerkeleyConfig::default();
//! let mut master = Berkeley::new(config, 2, [1]).unwrap();
//! let mut member = Berkeley::new(config, 1, [2]).unwrap();
//! member.handle_leader(0, Some(2));
//!
//! // Node 2 is named master: it starts a round and probes node 1.
//! let actions = master.handle_leader(1_000_000_000, Some(2));
//! let probe = actions.iter().find_map(|a| match a {
//!     Action::Send { to: 1, msg } => Some(msg.clone()),
//!     _ => None,
//! });
//! // The member answers; its `now` is its own clock (here 3 ms ahead, 100 µs later).
//! let reply = member.handle_message(1_003_100_000, 2, probe.unwrap());
//! assert!(matches!(&reply[0], Action::Send { to: 2, msg: BerkeleyMsg::Reply { .. } }));
//! ```
//!
//! A shell performs the actions in order: [`Action::Send`] over the transport,
//! [`Action::SetTimer`] by (re)arming that timer and calling [`Berkeley::handle_timer`] when it
//! expires (a stale or spurious expiry is ignored), [`Action::Step`] with
//! [`AdjustedClock::step`](crate::clock::physical::AdjustedClock::step) — and if the clock refuses
//! because it was already read, [`Berkeley::handle_step_refused`] turns it into a slew —,
//! [`Action::Slew`] with
//! [`AdjustedClock::slew_at`](crate::clock::physical::AdjustedClock::slew_at),
//! [`Action::SetFrequency`] with
//! [`AdjustedClock::set_frequency_ppm`](crate::clock::physical::AdjustedClock::set_frequency_ppm).

use crate::timesync::NodeId;
use crate::timesync::probe::{ClockFilter, FILTER_LEN, Sample};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};

/// Nanoseconds in a second.
const SEC: u64 = 1_000_000_000;

/// Default round interval: 16 s (NTP's shortest poll, `minpoll 4`).
pub const DEFAULT_INTERVAL_NS: u64 = 16 * SEC;

/// Parameters of the Berkeley machine. Validate with [`BerkeleyConfig::validate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BerkeleyConfig {
    /// Time between rounds, in ns. Default 16 s: long enough that the measurement noise
    /// (~15 µs per offset on a 100 µs LAN) makes little frequency noise (~1 ppm per round),
    /// short enough that a 100 ppm drift accumulates at most 1.6 ms before the frequency loop
    /// has caught it (one round).
    pub interval_ns: u64,
    /// Probes per member per round, 1 to [`FILTER_LEN`] (default 8: the filter is refilled
    /// every round).
    pub probes_per_round: usize,
    /// Time between two probes to the same member, in ns (default 10 ms). The master probes one
    /// member at a time, so with `n` members a probe leaves every `probe_spacing_ns / n`.
    pub probe_spacing_ns: u64,
    /// How long after its start a round waits for replies, in ns (default 1 s). A round also
    /// ends as soon as every member answered every probe.
    pub collect_timeout_ns: u64,
    /// Smallest half-width of the band around the median inside which clocks count as
    /// truechimers, in ns (default 1 ms).
    pub min_band_ns: u64,
    /// Largest half-width of that band, in ns (default 500 ms, the maximum clock offset
    /// CockroachDB tolerates): a clock further from the median is always a falseticker.
    pub max_band_ns: u64,
    /// The band is this many median absolute deviations of the offsets, clamped to
    /// `[min_band_ns, max_band_ns]` (default 4).
    pub band_mads: f64,
    /// Whether a node's first correction may be a step (default true).
    pub initial_step: bool,
    /// Rate at which deltas are slewed, in ppm (default 500, Linux `adjtime`'s). Must not exceed
    /// the slew cap of the clock the shell adjusts, or the frequency estimate is biased.
    pub slew_rate_ppm: f64,
    /// Largest frequency correction, in ppm (default 500).
    pub max_freq_ppm: f64,
    /// Smallest gain of the frequency loop (default 1/8). The n-th frequency update uses gain
    /// `max(1/n, min_freq_gain)`: the first estimate is taken whole, later ones averaged.
    pub min_freq_gain: f64,
    /// Frequency is estimated over spans of at least this long, in ns (default 8 s, half the
    /// interval): the drift every correction reveals is summed from a reference correction
    /// until the span is reached, so the measurement noise (which telescopes in the sum) is
    /// divided by the span rather than by one interval. With the span at or below the
    /// interval, each correction is compared with the previous one.
    pub min_freq_interval_ns: u64,
    /// Delay gate (default 2; 0 turns it off): a member's round is *noisy* when its best
    /// sample's delay exceeds the least delay of its last rounds by more than `delay_gate` times
    /// the median such excess (and more than `min_gate_ns`). Its offset may then be off by half
    /// the excess, so it is not corrected that round (it still counts in the average).
    pub delay_gate: f64,
    /// Smallest excess delay the gate ever treats as noise, in ns (default 20 µs).
    pub min_gate_ns: u64,
    /// A member is deferred at most this many rounds in a row (default 2), so a path that is
    /// always jittery still gets corrected.
    pub max_deferrals: u32,
}

impl Default for BerkeleyConfig {
    fn default() -> Self {
        Self {
            interval_ns: DEFAULT_INTERVAL_NS,
            probes_per_round: FILTER_LEN,
            probe_spacing_ns: 10_000_000,
            collect_timeout_ns: SEC,
            min_band_ns: 1_000_000,
            max_band_ns: 500_000_000,
            band_mads: 4.0,
            initial_step: true,
            slew_rate_ppm: 500.0,
            max_freq_ppm: 500.0,
            min_freq_gain: 0.125,
            min_freq_interval_ns: DEFAULT_INTERVAL_NS / 2,
            delay_gate: 2.0,
            min_gate_ns: 20_000,
            max_deferrals: 2,
        }
    }
}

/// Why a [`BerkeleyConfig`] is refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The interval is 0.
    #[error("the round interval must be positive")]
    ZeroInterval,
    /// `probes_per_round` is 0 or more than the filter holds.
    #[error("probes_per_round = {0} is outside 1..={max}", max = FILTER_LEN)]
    Probes(usize),
    /// The probes do not fit in the collect timeout, or the collect timeout not in the interval.
    #[error(
        "probes ({probes_ns} ns) < collect timeout ({collect_ns} ns) < interval ({interval_ns} ns) does not hold"
    )]
    RoundTooLong {
        /// Time to send every probe, at most: `probes_per_round × probe_spacing_ns`.
        probes_ns: u64,
        /// The collect timeout.
        collect_ns: u64,
        /// The interval.
        interval_ns: u64,
    },
    /// `min_band_ns > max_band_ns`.
    #[error("min_band_ns {min} > max_band_ns {max}")]
    Band {
        /// The smallest band.
        min: u64,
        /// The largest band.
        max: u64,
    },
    /// A floating-point parameter is NaN, infinite or out of its range.
    #[error("{what} = {value} is outside {range}")]
    OutOfRange {
        /// Which parameter.
        what: &'static str,
        /// The value given.
        value: f64,
        /// The accepted range.
        range: &'static str,
    },
}

impl BerkeleyConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_ns == 0 {
            return Err(ConfigError::ZeroInterval);
        }
        if self.probes_per_round == 0 || self.probes_per_round > FILTER_LEN {
            return Err(ConfigError::Probes(self.probes_per_round));
        }
        // Probes go to one member at a time, `probe_spacing_ns / n` apart for `n` members: the
        // last leaves before `probes_per_round × probe_spacing_ns`.
        let probes_ns = (self.probes_per_round as u64).saturating_mul(self.probe_spacing_ns);
        if probes_ns >= self.collect_timeout_ns || self.collect_timeout_ns >= self.interval_ns {
            return Err(ConfigError::RoundTooLong {
                probes_ns,
                collect_ns: self.collect_timeout_ns,
                interval_ns: self.interval_ns,
            });
        }
        if self.min_band_ns > self.max_band_ns {
            return Err(ConfigError::Band {
                min: self.min_band_ns,
                max: self.max_band_ns,
            });
        }
        let ranges: [(&'static str, f64, &'static str, bool); 5] = [
            (
                "delay_gate",
                self.delay_gate,
                "[0, 1000]",
                (0.0..=1000.0).contains(&self.delay_gate),
            ),
            (
                "band_mads",
                self.band_mads,
                "[0, 1000]",
                (0.0..=1000.0).contains(&self.band_mads),
            ),
            (
                "slew_rate_ppm",
                self.slew_rate_ppm,
                "(0, 250000)",
                self.slew_rate_ppm > 0.0 && self.slew_rate_ppm < 250_000.0,
            ),
            (
                "max_freq_ppm",
                self.max_freq_ppm,
                "[0, 250000)",
                (0.0..250_000.0).contains(&self.max_freq_ppm),
            ),
            (
                "min_freq_gain",
                self.min_freq_gain,
                "(0, 1]",
                self.min_freq_gain > 0.0 && self.min_freq_gain <= 1.0,
            ),
        ];
        for (what, value, range, ok) in ranges {
            // NaN fails every comparison, so `ok` is false for it.
            if !ok {
                return Err(ConfigError::OutOfRange { what, value, range });
            }
        }
        Ok(())
    }
}

/// What Berkeley nodes send each other. Times are ns on the sender's adjusted clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// What the machine asks its shell to do. Perform them in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send `msg` to node `to`.
    Send {
        /// Destination.
        to: NodeId,
        /// The message.
        msg: BerkeleyMsg,
    },
    /// Arm `timer` to expire `after_ns` from now, replacing it if armed; on expiry call
    /// [`Berkeley::handle_timer`].
    SetTimer {
        /// Which timer.
        timer: Timer,
        /// Delay in ns.
        after_ns: u64,
    },
    /// Disarm `timer` (an expiry that still arrives is ignored anyway).
    CancelTimer {
        /// Which timer.
        timer: Timer,
    },
    /// Step the local clock by `delta_ns`; if it refuses (it was already read), call
    /// [`Berkeley::handle_step_refused`].
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
    /// Report an event to the user (logs, metrics).
    Emit(BerkeleyEvent),
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

/// One clock's offset estimate, relative to the master's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Estimate {
    /// Whose clock.
    pub node: NodeId,
    /// How far it is ahead of the master's, in ns.
    pub offset_ns: i64,
    /// Round-trip delay of the sample it comes from, in ns (0 for the master itself).
    pub delay_ns: i64,
    /// The sample's delay is well above this path's usual minimum, so its offset may be off by
    /// up to half the excess: it still counts towards agreement and the average (where its error
    /// is diluted, and leaving it out would move the average by its whole offset), but the node
    /// is not corrected this round.
    pub noisy: bool,
}

/// The outcome of [`fault_tolerant_average`] when a majority agrees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// Mean offset of the trusted clocks, in ns.
    pub average_ns: i64,
    /// Median of all offsets, in ns.
    pub median_ns: i64,
    /// Half-width of the band used, in ns.
    pub band_ns: u64,
    /// Trusted clocks (within the band), in id order.
    pub trusted: Vec<NodeId>,
    /// Falsetickers, in id order.
    pub excluded: Vec<NodeId>,
    /// Trusted but noisy clocks, not to be corrected this round, in id order.
    pub deferred: Vec<NodeId>,
    /// Largest minus smallest trusted offset, in ns.
    pub spread_ns: u64,
}

/// [`fault_tolerant_average`] found no majority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no majority agrees: {agreeing} clocks within the band, {needed} needed")]
pub struct NoMajority {
    /// Clocks within the band around the median.
    pub agreeing: usize,
    /// A majority of the group.
    pub needed: usize,
}

/// The falseticker rule: median, band, majority, mean.
///
/// After FreeBSD `timed` (median of the deltas, then the values within a band of it), with an
/// adaptive band:
///
/// 1. `m` = median of the offsets (the mean of the two middle ones for an even count);
/// 2. `band = clamp(band_mads × MAD, min_band_ns, max_band_ns)`, MAD the median absolute
///    deviation from `m`: wide while the clocks are still far apart (at start-up), narrow once
///    they agree, so a clock that drifts away is caught within a round;
/// 3. a clock is trusted when `|offset − m| ≤ band + delay / 2` (its sample's own error bound);
/// 4. if fewer than a majority of `group_size` (`group_size / 2 + 1`) are trusted, there is no
///    agreement: nobody should be adjusted;
/// 5. else the result is the mean of the trusted offsets; trusted ones marked
///    [`Estimate::noisy`] are listed in [`Agreement::deferred`].
///
/// A faulty majority that agrees with itself wins: no rule can tell it from a correct one.
///
/// # Errors
/// [`NoMajority`] when step 4 fails (also for no estimates at all).
pub fn fault_tolerant_average(
    estimates: &[Estimate],
    group_size: usize,
    config: &BerkeleyConfig,
) -> Result<Agreement, NoMajority> {
    let needed = group_size.max(estimates.len()) / 2 + 1;
    if estimates.is_empty() {
        return Err(NoMajority {
            agreeing: 0,
            needed,
        });
    }
    let mut offsets: Vec<i64> = estimates.iter().map(|e| e.offset_ns).collect();
    offsets.sort_unstable();
    let median = median_sorted(&offsets);
    let mut deviations: Vec<i64> = offsets
        .iter()
        .map(|&o| {
            (o as i128 - median as i128)
                .unsigned_abs()
                .min(i64::MAX as u128) as i64
        })
        .collect();
    deviations.sort_unstable();
    let mad = median_sorted(&deviations).max(0) as f64;
    let band = (config.band_mads * mad).clamp(config.min_band_ns as f64, config.max_band_ns as f64);
    let band = band as u64;
    let mut trusted = Vec::new();
    let mut excluded = Vec::new();
    let mut deferred = Vec::new();
    let mut sum = 0i128;
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for e in estimates {
        let dev = (e.offset_ns as i128 - median as i128).unsigned_abs();
        let allowance = band as u128 + (e.delay_ns.max(0) as u128) / 2;
        if dev <= allowance {
            trusted.push(e.node);
            sum += e.offset_ns as i128;
            if e.noisy {
                deferred.push(e.node);
            }
            lo = lo.min(e.offset_ns);
            hi = hi.max(e.offset_ns);
        } else {
            excluded.push(e.node);
        }
    }
    if trusted.len() < needed {
        return Err(NoMajority {
            agreeing: trusted.len(),
            needed,
        });
    }
    trusted.sort_unstable();
    excluded.sort_unstable();
    deferred.sort_unstable();
    let average_ns = (sum / trusted.len() as i128) as i64;
    let spread_ns = (hi as i128 - lo as i128).unsigned_abs() as u64;
    Ok(Agreement {
        average_ns,
        median_ns: median,
        band_ns: band,
        trusted,
        excluded,
        deferred,
        spread_ns,
    })
}

fn median_sorted(v: &[i64]) -> i64 {
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => ((v[n / 2 - 1] as i128 + v[n / 2] as i128) / 2) as i64,
    }
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
    /// Nothing happens until [`Berkeley::handle_leader`] names a master, so there are no first
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

    /// The elected leader changed (or became known): `Some(id)` names the master, `None` means
    /// there is none. If it is this node, it starts a round at once and polls every interval;
    /// if this node was master and no longer is, it stops.
    pub fn handle_leader(&mut self, now: u64, leader: Option<NodeId>) -> Vec<Action> {
        let mut out = Vec::new();
        if leader == self.master {
            return out;
        }
        let was_master = self.is_master();
        self.master = leader;
        if was_master {
            self.round = None;
            for timer in Timer::ALL {
                self.disarm(timer, &mut out);
            }
        }
        if self.is_master() {
            self.start_round(now, &mut out);
        }
        out
    }

    /// A member joined the group (the failure detector's `MemberUp`).
    pub fn handle_member_up(&mut self, _now: u64, peer: NodeId) -> Vec<Action> {
        if peer != self.id {
            self.members.insert(peer);
        }
        Vec::new()
    }

    /// A member left or died (the failure detector's `MemberDown`). A round waiting only for it
    /// ends now.
    pub fn handle_member_down(&mut self, now: u64, peer: NodeId) -> Vec<Action> {
        let mut out = Vec::new();
        self.members.remove(&peer);
        self.paths.remove(&peer);
        // Its next incarnation numbers its rounds from 1 again.
        self.discipline.last_from.remove(&peer);
        if let Some(round) = &mut self.round {
            round.members.remove(&peer);
        }
        if self.round_answered() {
            self.finish_round(now, &mut out);
        }
        out
    }

    /// A timer expired. An expiry of a timer that is not armed is ignored.
    pub fn handle_timer(&mut self, now: u64, timer: Timer) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.armed[timer.index()] {
            return out;
        }
        self.armed[timer.index()] = false;
        if !self.is_master() {
            return out;
        }
        match timer {
            Timer::Poll => self.start_round(now, &mut out),
            Timer::Probe => self.send_probes(now, &mut out),
            Timer::Collect => self.finish_round(now, &mut out),
        }
        out
    }

    /// A message from `from` arrived at `now`. Stale, unexpected or inconsistent messages are
    /// dropped (logged at debug level) and produce no actions.
    pub fn handle_message(&mut self, now: u64, from: NodeId, msg: BerkeleyMsg) -> Vec<Action> {
        let mut out = Vec::new();
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
                out.push(Action::Send {
                    to: from,
                    msg: reply,
                });
            }
            BerkeleyMsg::Reply {
                round,
                seq,
                t1,
                t2,
                t3,
            } => {
                self.on_reply(now, from, round, seq, [t1, t2, t3], &mut out);
            }
            BerkeleyMsg::Adjust { round, delta_ns } => {
                let fresh = self
                    .discipline
                    .last_from
                    .get(&from)
                    .is_none_or(|&last| round > last);
                if self.master == Some(from) && from != self.id && fresh {
                    self.correct(now, from, round, delta_ns, &mut out);
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
        out
    }

    /// The shell could not step the clock (it had been read already): slew the same delta.
    pub fn handle_step_refused(&mut self, now: u64, delta_ns: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(last) = &mut self.discipline.last
            && last.stepped
            && last.delta_ns == delta_ns
        {
            last.stepped = false;
            last.at = now;
            last.rate_ppm = self.config.slew_rate_ppm;
            out.push(Action::Slew {
                delta_ns,
                rate_ppm: self.config.slew_rate_ppm,
            });
        }
        out
    }

    fn arm(&mut self, timer: Timer, after_ns: u64, out: &mut Vec<Action>) {
        self.armed[timer.index()] = true;
        out.push(Action::SetTimer { timer, after_ns });
    }

    fn disarm(&mut self, timer: Timer, out: &mut Vec<Action>) {
        if self.armed[timer.index()] {
            self.armed[timer.index()] = false;
            out.push(Action::CancelTimer { timer });
        }
    }

    fn start_round(&mut self, now: u64, out: &mut Vec<Action>) {
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

    fn send_probes(&mut self, now: u64, out: &mut Vec<Action>) {
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
        out.push(Action::Send {
            to,
            msg: BerkeleyMsg::Probe {
                round: round.number,
                seq,
                t1: now,
            },
        });
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
        out: &mut Vec<Action>,
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

    fn finish_round(&mut self, now: u64, out: &mut Vec<Action>) {
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
                    out.push(Action::Send {
                        to: e.node,
                        msg: BerkeleyMsg::Adjust {
                            round: round.number,
                            delta_ns,
                        },
                    });
                }
                out.push(Action::Emit(BerkeleyEvent::RoundComplete {
                    round: round.number,
                    average_ns: agreement.average_ns,
                    spread_ns: agreement.spread_ns,
                    trusted: agreement.trusted,
                    excluded: agreement.excluded,
                    missing,
                    deferred: agreement.deferred,
                }));
                if compared {
                    let id = self.id;
                    self.correct(now, id, round.number, agreement.average_ns, out);
                }
            }
            Err(NoMajority { agreeing, needed }) => {
                out.push(Action::Emit(BerkeleyEvent::NoMajority {
                    round: round.number,
                    agreeing,
                    needed,
                }));
            }
        }
    }

    /// Applies a correction to the local clock: a step the first time (if allowed), else a slew,
    /// with a frequency update when the previous correction is far enough back.
    fn correct(
        &mut self,
        now: u64,
        master: NodeId,
        round: u64,
        delta_ns: i64,
        out: &mut Vec<Action>,
    ) {
        let cfg = self.config;
        let d = &mut self.discipline;
        d.last_from.insert(master, round);
        let stepped = cfg.initial_step && d.corrections == 0;
        d.corrections += 1;
        if stepped {
            out.push(Action::Step { delta_ns });
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
                    out.push(Action::SetFrequency { ppm: d.freq_ppm });
                }
            }
            out.push(Action::Slew {
                delta_ns,
                rate_ppm: cfg.slew_rate_ppm,
            });
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
        out.push(Action::Emit(BerkeleyEvent::Corrected {
            master,
            round,
            delta_ns,
            stepped,
            frequency_ppm: d.freq_ppm,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn est(node: NodeId, offset_ns: i64) -> Estimate {
        Estimate {
            node,
            offset_ns,
            delay_ns: 200_000,
            noisy: false,
        }
    }

    fn sends(actions: &[Action]) -> Vec<(NodeId, BerkeleyMsg)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, msg } => Some((*to, *msg)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_are_refused() {
        BerkeleyConfig::default().validate().unwrap();
        let c = BerkeleyConfig::default();
        assert_eq!(
            BerkeleyConfig {
                interval_ns: 0,
                ..c
            }
            .validate(),
            Err(ConfigError::ZeroInterval)
        );
        assert_eq!(
            BerkeleyConfig {
                probes_per_round: 9,
                ..c
            }
            .validate(),
            Err(ConfigError::Probes(9))
        );
        assert!(matches!(
            BerkeleyConfig {
                collect_timeout_ns: c.interval_ns,
                ..c
            }
            .validate(),
            Err(ConfigError::RoundTooLong { .. })
        ));
        assert!(matches!(
            BerkeleyConfig {
                min_band_ns: 10,
                max_band_ns: 5,
                ..c
            }
            .validate(),
            Err(ConfigError::Band { .. })
        ));
        assert!(matches!(
            BerkeleyConfig {
                slew_rate_ppm: f64::NAN,
                ..c
            }
            .validate(),
            Err(ConfigError::OutOfRange {
                what: "slew_rate_ppm",
                ..
            })
        ));
        assert!(
            Berkeley::new(
                BerkeleyConfig {
                    min_freq_gain: 0.0,
                    ..c
                },
                1,
                []
            )
            .is_err()
        );
    }

    #[test]
    fn average_includes_everyone_when_all_agree() {
        let c = BerkeleyConfig::default();
        let e = [
            est(0, 0),
            est(1, 30 * MS),
            est(2, -60 * MS),
            est(3, 90 * MS),
        ];
        let a = fault_tolerant_average(&e, 4, &c).unwrap();
        assert_eq!(a.trusted, vec![0, 1, 2, 3]);
        assert!(a.excluded.is_empty());
        assert_eq!(a.average_ns, 15 * MS);
        assert_eq!(a.spread_ns, 150 * MS as u64);
    }

    #[test]
    fn falsetickers_far_from_the_median_are_excluded() {
        let c = BerkeleyConfig::default();
        let e = [
            est(0, 0),
            est(1, 10_000),
            est(2, -20_000),
            est(3, 1_000 * MS), // +1 s
            est(4, 5_000),
            est(5, -160 * MS), // drifted 160 ms in one round
        ];
        let a = fault_tolerant_average(&e, 6, &c).unwrap();
        assert_eq!(a.excluded, vec![3, 5]);
        assert_eq!(a.average_ns, (10_000 - 20_000 + 5_000) / 4);
        assert_eq!(a.band_ns, c.min_band_ns);
    }

    #[test]
    fn no_majority_means_no_agreement() {
        let c = BerkeleyConfig::default();
        // Three good clocks, five scattered bad ones: the band around the median holds 3 < 5.
        let e = [
            est(0, 0),
            est(1, 1_000),
            est(2, -1_000),
            est(3, 1_000 * MS),
            est(4, 2_000 * MS),
            est(5, 3_000 * MS),
            est(6, -1_000 * MS),
            est(7, -2_000 * MS),
        ];
        assert_eq!(
            fault_tolerant_average(&e, 8, &c),
            Err(NoMajority {
                agreeing: 3,
                needed: 5
            })
        );
        // Missing members count against the majority too.
        assert!(fault_tolerant_average(&e[..3], 8, &c).is_err());
        assert!(fault_tolerant_average(&[], 0, &c).is_err());
    }

    #[test]
    fn extreme_offsets_do_not_overflow() {
        let c = BerkeleyConfig::default();
        let e = [est(0, i64::MIN), est(1, i64::MAX), est(2, 0)];
        let _ = fault_tolerant_average(&e, 3, &c);
        let mut m = Berkeley::new(c, 1, [2]).unwrap();
        m.handle_leader(0, Some(2));
        let a = m.handle_message(
            5,
            2,
            BerkeleyMsg::Adjust {
                round: 1,
                delta_ns: i64::MIN,
            },
        );
        assert!(a.contains(&Action::Step { delta_ns: i64::MIN }));
        let a = m.handle_message(
            u64::MAX,
            2,
            BerkeleyMsg::Adjust {
                round: 2,
                delta_ns: i64::MAX,
            },
        );
        assert!(a.iter().any(|a| matches!(a, Action::Slew { .. })));
    }

    /// Runs one round between a master (id 9) and members whose clocks are `offsets` ahead, with
    /// a symmetric 100 µs path; returns the master's actions and the members' machines.
    fn one_round(offsets: &[(NodeId, i64)]) -> (Vec<Action>, Vec<Berkeley>) {
        let c = BerkeleyConfig::default();
        let ids: Vec<NodeId> = offsets.iter().map(|o| o.0).collect();
        let mut master = Berkeley::new(c, 9, ids.clone()).unwrap();
        let mut members: Vec<Berkeley> = ids
            .iter()
            .map(|&i| Berkeley::new(c, i, [9]).unwrap())
            .collect();
        for m in &mut members {
            m.handle_leader(0, Some(9));
        }
        let base = 1_000 * SEC;
        let mut all = Vec::new();
        let mut pending = master.handle_leader(base, Some(9));
        let mut now = base;
        let mut member_actions = Vec::new();
        while !pending.is_empty() {
            let mut next = Vec::new();
            for a in pending.drain(..) {
                match &a {
                    Action::Send { to, msg } if *to != 9 => {
                        let k = ids.iter().position(|i| i == to).unwrap();
                        let local = (now as i64 + 100_000 + offsets[k].1) as u64;
                        for r in members[k].handle_message(local, 9, *msg) {
                            if let Action::Send { msg, .. } = r {
                                next.extend(master.handle_message(now + 200_000, *to, msg));
                            } else {
                                member_actions.push(r);
                            }
                        }
                    }
                    Action::SetTimer {
                        timer: Timer::Probe,
                        after_ns,
                    } => {
                        now += after_ns;
                        next.extend(master.handle_timer(now, Timer::Probe));
                    }
                    _ => {}
                }
                all.push(a);
            }
            pending = next;
        }
        all.extend(member_actions);
        (all, members)
    }

    #[test]
    fn master_sends_each_member_the_signed_delta_to_the_average() {
        let (actions, members) = one_round(&[(1, 40 * MS), (2, -20 * MS), (3, 0)]);
        let adjusts: Vec<_> = sends(&actions)
            .into_iter()
            .filter_map(|(to, m)| match m {
                BerkeleyMsg::Adjust { delta_ns, .. } => Some((to, delta_ns)),
                _ => None,
            })
            .collect();
        // Offsets 0 (master), 40, −20, 0 ms: average 5 ms.
        assert_eq!(adjusts, vec![(1, -35 * MS), (2, 25 * MS), (3, 5 * MS)]);
        assert!(
            actions.contains(&Action::Step { delta_ns: 5 * MS }),
            "the master corrects itself"
        );
        let probes = sends(&actions)
            .iter()
            .filter(|(_, m)| matches!(m, BerkeleyMsg::Probe { .. }))
            .count();
        assert_eq!(probes, 3 * FILTER_LEN);
        assert!(members.iter().all(|m| m.corrections() == 1));
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Emit(BerkeleyEvent::RoundComplete { round: 1, .. })
        )));
    }

    #[test]
    fn first_correction_steps_later_ones_slew_and_estimate_frequency() {
        let c = BerkeleyConfig::default();
        let mut m = Berkeley::new(c, 1, [2]).unwrap();
        m.handle_leader(0, Some(2));
        let t0 = 100 * SEC;
        let a = m.handle_message(
            t0,
            2,
            BerkeleyMsg::Adjust {
                round: 1,
                delta_ns: -80 * MS,
            },
        );
        assert_eq!(a[0], Action::Step { delta_ns: -80 * MS });
        // 16 s later the clock is 1.6 ms ahead again: it runs 100 ppm fast.
        let t1 = t0 + 16 * SEC;
        let a = m.handle_message(
            t1,
            2,
            BerkeleyMsg::Adjust {
                round: 2,
                delta_ns: -1_600_000,
            },
        );
        assert_eq!(a[0], Action::SetFrequency { ppm: -100.0 });
        assert_eq!(
            a[1],
            Action::Slew {
                delta_ns: -1_600_000,
                rate_ppm: 500.0
            }
        );
        // A stale or repeated round is ignored; so is a non-master.
        assert!(
            m.handle_message(
                t1,
                2,
                BerkeleyMsg::Adjust {
                    round: 2,
                    delta_ns: 5
                }
            )
            .is_empty()
        );
        assert!(
            m.handle_message(
                t1,
                3,
                BerkeleyMsg::Adjust {
                    round: 3,
                    delta_ns: 5
                }
            )
            .is_empty()
        );
        // A slew still under way is not mistaken for drift: 1 s later, 1.1 ms of it is left.
        let a = m.handle_message(
            t1 + SEC,
            2,
            BerkeleyMsg::Adjust {
                round: 3,
                delta_ns: -1_100_000,
            },
        );
        assert!(
            !a.iter().any(|a| matches!(a, Action::SetFrequency { .. })),
            "too soon to estimate"
        );
        let t3 = t1 + SEC + 16 * SEC;
        let a = m.handle_message(
            t3,
            2,
            BerkeleyMsg::Adjust {
                round: 4,
                delta_ns: 0,
            },
        );
        assert_eq!(a[0], Action::SetFrequency { ppm: -100.0 });
    }

    #[test]
    fn refused_step_becomes_a_slew() {
        let mut m = Berkeley::new(BerkeleyConfig::default(), 1, [2]).unwrap();
        m.handle_leader(0, Some(2));
        let a = m.handle_message(
            SEC,
            2,
            BerkeleyMsg::Adjust {
                round: 1,
                delta_ns: -100 * MS,
            },
        );
        assert_eq!(
            a[0],
            Action::Step {
                delta_ns: -100 * MS
            }
        );
        let a = m.handle_step_refused(SEC, -100 * MS);
        assert_eq!(
            a,
            vec![Action::Slew {
                delta_ns: -100 * MS,
                rate_ppm: 500.0
            }]
        );
        // 16 s later 92 ms of the 100 ms slew are left: a delta of −92 ms means no drift.
        let a = m.handle_message(
            17 * SEC,
            2,
            BerkeleyMsg::Adjust {
                round: 2,
                delta_ns: -92 * MS,
            },
        );
        assert_eq!(a[0], Action::SetFrequency { ppm: 0.0 });
    }

    /// A master with no members yet finishes its rounds without correcting itself: before, it
    /// emitted `Step{0}` and used up its one step, so a later member far off could only be
    /// met by slewing.
    #[test]
    fn a_master_with_no_members_yet_keeps_its_step() {
        let mut m = Berkeley::new(BerkeleyConfig::default(), 9, []).unwrap();
        let mut acts = m.handle_leader(SEC, Some(9));
        for k in 1..4u64 {
            acts.extend(m.handle_timer(k * 20 * SEC, Timer::Collect));
            acts.extend(m.handle_timer(k * 20 * SEC + 1, Timer::Poll));
        }
        assert!(
            !acts
                .iter()
                .any(|x| matches!(x, Action::Step { .. } | Action::Slew { .. })),
            "{acts:?}"
        );
        assert_eq!(m.discipline.corrections, 0);
    }

    #[test]
    fn spurious_timers_and_bad_replies_are_ignored() {
        let mut m = Berkeley::new(BerkeleyConfig::default(), 9, [1]).unwrap();
        assert!(m.handle_timer(0, Timer::Collect).is_empty());
        let start = m.handle_leader(SEC, Some(9));
        assert!(m.is_armed(Timer::Poll) && m.is_armed(Timer::Collect) && m.is_armed(Timer::Probe));
        assert_eq!(m.current_round(), Some(1));
        let t1 = match sends(&start)[0].1 {
            BerkeleyMsg::Probe { t1, .. } => t1,
            _ => unreachable!(),
        };
        // Wrong T1, wrong round, a reply before the request, an unknown node: all dropped.
        let bad = [
            (
                1,
                BerkeleyMsg::Reply {
                    round: 1,
                    seq: 0,
                    t1: t1 + 1,
                    t2: 0,
                    t3: 0,
                },
            ),
            (
                1,
                BerkeleyMsg::Reply {
                    round: 7,
                    seq: 0,
                    t1,
                    t2: 0,
                    t3: 0,
                },
            ),
            (
                1,
                BerkeleyMsg::Reply {
                    round: 1,
                    seq: 99,
                    t1,
                    t2: 0,
                    t3: 0,
                },
            ),
            (
                5,
                BerkeleyMsg::Reply {
                    round: 1,
                    seq: 0,
                    t1,
                    t2: 0,
                    t3: 0,
                },
            ),
        ];
        for (from, msg) in bad {
            assert!(m.handle_message(SEC + 10, from, msg).is_empty());
        }
        assert!(
            m.handle_message(
                t1 - 1,
                1,
                BerkeleyMsg::Reply {
                    round: 1,
                    seq: 0,
                    t1,
                    t2: 0,
                    t3: 0
                }
            )
            .is_empty()
        );
        // The collect timer closes the round with no answer: 1 of 2 is not a majority.
        let a = m.handle_timer(2 * SEC, Timer::Collect);
        assert!(a.contains(&Action::Emit(BerkeleyEvent::NoMajority {
            round: 1,
            agreeing: 1,
            needed: 2
        })));
        assert!(!m.is_armed(Timer::Probe));
        assert_eq!(m.current_round(), None);
        // The member dies: the master alone is the group; a round of its own clock alone
        // corrects nothing and keeps the step for when there is someone to compare with.
        m.handle_member_down(3 * SEC, 1);
        let a = m.handle_timer(17 * SEC, Timer::Poll);
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::Step { .. } | Action::Slew { .. })),
            "{a:?}"
        );
        assert_eq!(m.discipline.corrections, 0, "the step is still there");
    }

    #[test]
    fn delay_gate_defers_a_late_sample_at_most_twice_in_a_row() {
        let c = BerkeleyConfig::default();
        let mut path = PathStats::default();
        // Three rounds to learn the path: nothing is judged noisy before.
        for d in [230_000, 200_000, 260_000] {
            assert!(!path.judge(d, &c));
        }
        // Typical excess 30 µs, gate max(2 × 30, 20) = 60 µs above the 200 µs floor.
        assert!(!path.judge(250_000, &c));
        assert!(path.judge(400_000, &c));
        assert!(path.judge(400_000, &c));
        assert!(
            !path.judge(400_000, &c),
            "a third deferral in a row is refused"
        );
        assert!(
            path.judge(900_000, &c),
            "the count restarts after a correction"
        );
        let off = BerkeleyConfig {
            delay_gate: 0.0,
            ..c
        };
        let mut path = PathStats::default();
        for d in [200_000, 200_000, 200_000, 200_000, 900_000] {
            assert!(!path.judge(d, &off));
        }
    }

    #[test]
    fn noisy_estimates_count_in_the_average_and_are_reported_deferred() {
        let c = BerkeleyConfig::default();
        let mut e = [est(0, 0), est(1, 10_000), est(2, 20_000), est(3, 30_000)];
        e[2].noisy = true;
        let a = fault_tolerant_average(&e, 4, &c).unwrap();
        assert_eq!(a.average_ns, 15_000);
        assert_eq!(a.deferred, vec![2]);
        assert_eq!(a.trusted, vec![0, 1, 2, 3]);
    }

    #[test]
    fn messages_round_trip_through_serde() {
        let msgs = [
            BerkeleyMsg::Probe {
                round: 1,
                seq: 2,
                t1: 3,
            },
            BerkeleyMsg::Reply {
                round: 1,
                seq: 2,
                t1: 3,
                t2: 4,
                t3: 5,
            },
            BerkeleyMsg::Adjust {
                round: 7,
                delta_ns: -100 * MS,
            },
        ];
        for m in msgs {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<BerkeleyMsg>(&json).unwrap(), m);
        }
        assert!(serde_json::from_str::<BerkeleyMsg>(r#"{"Adjust":{"round":"x"}}"#).is_err());
    }

    #[test]
    fn equal_states_hash_alike() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |b: &Berkeley| {
            let mut h = DefaultHasher::new();
            b.hash(&mut h);
            h.finish()
        };
        let mut m = Berkeley::new(BerkeleyConfig::default(), 1, [2]).unwrap();
        m.handle_leader(0, Some(2));
        let before = m.clone();
        m.handle_message(
            SEC,
            2,
            BerkeleyMsg::Adjust {
                round: 1,
                delta_ns: -MS,
            },
        );
        m.handle_message(
            17 * SEC,
            2,
            BerkeleyMsg::Adjust {
                round: 2,
                delta_ns: 0,
            },
        );
        assert_ne!(m, before);
        assert_eq!(m, m.clone());
        assert_eq!(hash(&m), hash(&m.clone()));
        // 0.0 == -0.0, so they must hash alike.
        let (mut a, mut b) = (m.clone(), m);
        a.discipline.freq_ppm = 0.0;
        b.discipline.freq_ppm = -0.0;
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn a_deposed_master_stops_polling() {
        let mut m = Berkeley::new(BerkeleyConfig::default(), 9, [1, 2]).unwrap();
        m.handle_leader(0, Some(9));
        let a = m.handle_leader(5, Some(2));
        assert!(a.contains(&Action::CancelTimer { timer: Timer::Poll }));
        assert!(!m.is_master());
        assert!(m.handle_timer(16 * SEC, Timer::Poll).is_empty());
    }

    #[test]
    fn a_leader_flap_does_not_reopen_old_rounds_but_a_restart_does() {
        let mut m = Berkeley::new(BerkeleyConfig::default(), 1, [2, 3]).unwrap();
        let adjust = |round| BerkeleyMsg::Adjust {
            round,
            delta_ns: -MS,
        };
        m.handle_leader(0, Some(3));
        assert!(!m.handle_message(SEC, 3, adjust(4)).is_empty());
        // 3 → 2 → 3: a duplicate of round 4, or an older round, is still stale.
        m.handle_leader(2 * SEC, Some(2));
        m.handle_leader(3 * SEC, Some(3));
        assert!(m.handle_message(4 * SEC, 3, adjust(4)).is_empty());
        assert!(m.handle_message(4 * SEC, 3, adjust(3)).is_empty());
        assert!(!m.handle_message(5 * SEC, 3, adjust(5)).is_empty());
        // Node 3 goes down and comes back: its new incarnation's round 1 is heard.
        m.handle_member_down(6 * SEC, 3);
        m.handle_member_up(7 * SEC, 3);
        assert!(!m.handle_message(8 * SEC, 3, adjust(1)).is_empty());
        assert_eq!(m.corrections(), 3);
    }

    #[test]
    fn probes_go_to_one_member_at_a_time_in_turn_and_a_leaver_is_skipped() {
        let c = BerkeleyConfig::default();
        let mut m = Berkeley::new(c, 9, [1, 2, 3]).unwrap();
        let probe_to = |a: &[Action]| -> Vec<(NodeId, u32)> {
            sends(a)
                .into_iter()
                .filter_map(|(to, msg)| match msg {
                    BerkeleyMsg::Probe { seq, .. } => Some((to, seq)),
                    _ => None,
                })
                .collect()
        };
        let gap = c.probe_spacing_ns / 3;
        let mut a = m.handle_leader(0, Some(9));
        let mut got = probe_to(&a);
        let mut now = 0;
        for _ in 0..4 {
            assert!(a.contains(&Action::SetTimer {
                timer: Timer::Probe,
                after_ns: gap
            }));
            now += gap;
            a = m.handle_timer(now, Timer::Probe);
            got.extend(probe_to(&a));
        }
        assert_eq!(got, [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1)]);
        // Node 2 leaves: the others take turns; the round needs only their probes.
        m.handle_member_down(now, 2);
        let mut rest = Vec::new();
        while m.is_armed(Timer::Probe) {
            now += gap;
            rest.extend(probe_to(&m.handle_timer(now, Timer::Probe)));
        }
        assert_eq!(&rest[..3], [(3, 1), (1, 2), (3, 2)]);
        let count = |id| got.iter().chain(&rest).filter(|(to, _)| *to == id).count();
        assert_eq!((count(1), count(3)), (FILTER_LEN, FILTER_LEN));
    }

    #[test]
    fn frequency_is_estimated_over_a_span_of_several_corrections() {
        // Rounds every 500 ms, frequency spans of 2 s: the error measured over 4 rounds.
        let c = BerkeleyConfig {
            min_freq_interval_ns: 2 * SEC,
            ..BerkeleyConfig::default()
        };
        let mut m = Berkeley::new(c, 1, [2]).unwrap();
        m.handle_leader(0, Some(2));
        let adjust = |round, delta_ns| BerkeleyMsg::Adjust { round, delta_ns };
        m.handle_message(SEC, 2, adjust(1, -80 * MS));
        // 100 ppm fast: 50 µs per 500 ms, measured with ±20 µs of noise that cancels over the span.
        let deltas = [-70_000, -30_000, -60_000, -40_000];
        let mut freq = Vec::new();
        for (k, d) in deltas.iter().enumerate() {
            let now = SEC + (k as u64 + 1) * SEC / 2;
            let a = m.handle_message(now, 2, adjust(k as u64 + 2, *d));
            freq.extend(a.iter().filter_map(|a| match a {
                Action::SetFrequency { ppm } => Some(*ppm),
                _ => None,
            }));
        }
        // One update, at the end of the span, from the sum of what each slew left undone.
        assert_eq!(freq.len(), 1, "{freq:?}");
        assert!((freq[0] - -100.0).abs() < 1.0, "{freq:?}");
    }
}
