//! [`BerkeleyConfig`]: the machine's parameters and their validation.

use super::*;
use crate::protocol::ConfigError;

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

// The range named in `validate`'s error for `probes_per_round`.
const _: () = assert!(FILTER_LEN == 8);

impl BerkeleyConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// The first problem found, as the crates' one [`ConfigError`]: `ZeroDuration` for a zero
    /// interval, `OutOfRange` for `probes_per_round` outside 1 to [`FILTER_LEN`] or a
    /// floating-point parameter that is NaN, infinite or out of its range, `Inconsistent` when
    /// the probes do not fit in the collect timeout or the collect timeout not in the interval,
    /// or when `min_band_ns > max_band_ns`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_ns == 0 {
            return Err(ConfigError::ZeroDuration("interval_ns"));
        }
        if self.probes_per_round == 0 || self.probes_per_round > FILTER_LEN {
            return Err(ConfigError::OutOfRange {
                what: "probes_per_round",
                value: self.probes_per_round.to_string(),
                range: "1..=8",
            });
        }
        // Probes go to one member at a time, `probe_spacing_ns / n` apart for `n` members: the
        // last leaves before `probes_per_round × probe_spacing_ns`.
        let probes_ns = (self.probes_per_round as u64).saturating_mul(self.probe_spacing_ns);
        if probes_ns >= self.collect_timeout_ns || self.collect_timeout_ns >= self.interval_ns {
            return Err(ConfigError::Inconsistent(
                "probes_per_round × probe_spacing_ns < collect_timeout_ns < interval_ns must hold",
            ));
        }
        if self.min_band_ns > self.max_band_ns {
            return Err(ConfigError::Inconsistent(
                "min_band_ns must not exceed max_band_ns",
            ));
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
                return Err(ConfigError::OutOfRange {
                    what,
                    value: value.to_string(),
                    range,
                });
            }
        }
        Ok(())
    }
}
