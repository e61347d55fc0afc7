//! NTP on-wire offset and delay, and the min-delay clock filter.
//!
//! A probe is one request–reply exchange carrying four timestamps: `T1` the client's send time,
//! `T2` the server's receive time, `T3` the server's send time, `T4` the client's receive time,
//! each read on its own node's clock. Then (RFC 5905, section 8)
//!
//! * offset `θ = ((T2 − T1) + (T3 − T4)) / 2`: how far the server's clock is ahead of the
//!   client's;
//! * delay `δ = (T4 − T1) − (T3 − T2)`: the round trip spent on the wire.
//!
//! `θ` is exact when the two one-way delays are equal; otherwise it is biased by half their
//! difference, `(d_out − d_back) / 2`, which two-way probes cannot see. Since the error is at most
//! `δ / 2`, the sample with the least delay is the most trustworthy: [`ClockFilter`] keeps the last
//! [`FILTER_LEN`] (8) samples and offers the one with the least delay, as NTP's clock filter does.
//!
//! ```
//! use actix_coord_proto::timesync::probe::{ClockFilter, Sample};
//!
//! // The server is 5 ms ahead; 100 µs out, 300 µs back.
//! let s = Sample::from_timestamps(1_000_000, 6_100_000, 6_100_000, 1_400_000).unwrap();
//! assert_eq!(s.offset_ns, 4_900_000); // biased by (100 − 300) / 2 = −100 µs
//! assert_eq!(s.delay_ns, 400_000);
//!
//! let mut filter = ClockFilter::new();
//! filter.push(s);
//! filter.push(Sample::from_timestamps(2_000_000, 7_100_000, 7_100_000, 2_200_000).unwrap());
//! assert_eq!(filter.best().unwrap().offset_ns, 5_000_000); // the 200 µs probe wins
//! ```
//!
//! Pure arithmetic: nothing here reads a clock.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many samples the clock filter keeps: 8, as NTP's.
pub const FILTER_LEN: usize = 8;

/// Why four timestamps do not make a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The reply arrived before the request left (`T4 < T1`): the local clock went back or the
    /// reply belongs to another probe.
    #[error("reply received at {t4} before request sent at {t1}")]
    ReplyBeforeRequest {
        /// Request send time.
        t1: u64,
        /// Reply receive time.
        t4: u64,
    },
    /// The server answered before it received the request (`T3 < T2`).
    #[error("server sent at {t3} before it received at {t2}")]
    ServerTimeReversed {
        /// Server receive time.
        t2: u64,
        /// Server send time.
        t3: u64,
    },
    /// The server held the request longer than the whole round trip: `δ < 0`.
    #[error("negative round-trip delay {delay_ns} ns")]
    NegativeDelay {
        /// The computed delay.
        delay_ns: i64,
    },
    /// A result does not fit in 64 bits (timestamps centuries apart).
    #[error("timestamps too far apart")]
    Overflow,
}

/// One probe's result: offset of the remote clock and round-trip delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sample {
    /// `θ`: how far the remote clock is ahead of the local one, in ns.
    pub offset_ns: i64,
    /// `δ`: round-trip delay on the wire, in ns (never negative).
    pub delay_ns: i64,
    /// `T4`: when the sample was taken, on the local clock.
    pub at_ns: u64,
}

impl Sample {
    /// The sample of one exchange from its four timestamps (ns).
    ///
    /// # Errors
    /// [`ProbeError`] when the timestamps are inconsistent; nothing is computed.
    pub fn from_timestamps(t1: u64, t2: u64, t3: u64, t4: u64) -> Result<Self, ProbeError> {
        if t4 < t1 {
            return Err(ProbeError::ReplyBeforeRequest { t1, t4 });
        }
        if t3 < t2 {
            return Err(ProbeError::ServerTimeReversed { t2, t3 });
        }
        let (t1, t2, t3, t4) = (t1 as i128, t2 as i128, t3 as i128, t4 as i128);
        let offset = ((t2 - t1) + (t3 - t4)) / 2;
        let delay = (t4 - t1) - (t3 - t2);
        let offset_ns = i64::try_from(offset).map_err(|_| ProbeError::Overflow)?;
        let delay_ns = i64::try_from(delay).map_err(|_| ProbeError::Overflow)?;
        if delay_ns < 0 {
            return Err(ProbeError::NegativeDelay { delay_ns });
        }
        Ok(Self {
            offset_ns,
            delay_ns,
            at_ns: t4 as u64,
        })
    }

    /// The largest error of the offset due to path asymmetry: `δ / 2`.
    pub fn max_error_ns(&self) -> i64 {
        self.delay_ns / 2
    }
}

/// NTP's clock filter: the last [`FILTER_LEN`] samples, of which the least-delayed is the best.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClockFilter {
    samples: VecDeque<Sample>,
}

impl ClockFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self {
            samples: VecDeque::with_capacity(FILTER_LEN),
        }
    }

    /// Adds a sample, dropping the oldest when [`FILTER_LEN`] are held.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == FILTER_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The sample with the least delay (the latest of equals), if any.
    pub fn best(&self) -> Option<Sample> {
        self.samples
            .iter()
            .rev()
            .min_by_key(|s| s.delay_ns)
            .copied()
    }

    /// Forgets every sample (after the clock was corrected, old offsets are stale).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_paths_give_the_exact_offset() {
        // Server 1 s behind, 250 µs each way, 50 µs of processing.
        let t1 = 10_000_000_000;
        let t2 = t1 - 1_000_000_000 + 250_000;
        let t3 = t2 + 50_000;
        let t4 = t1 + 550_000;
        let s = Sample::from_timestamps(t1, t2, t3, t4).unwrap();
        assert_eq!(s.offset_ns, -1_000_000_000);
        assert_eq!(s.delay_ns, 500_000);
        assert_eq!(s.at_ns, t4);
        assert_eq!(s.max_error_ns(), 250_000);
    }

    #[test]
    fn asymmetry_biases_offset_by_half_the_difference() {
        // True offset 0; 700 µs out, 100 µs back: θ = (700 − 100) / 2 = 300 µs too high.
        let s = Sample::from_timestamps(0, 700_000, 700_000, 800_000).unwrap();
        assert_eq!(s.offset_ns, 300_000);
        assert!(s.offset_ns.abs() <= s.max_error_ns());
    }

    #[test]
    fn inconsistent_timestamps_are_errors_not_panics() {
        assert_eq!(
            Sample::from_timestamps(10, 0, 0, 5),
            Err(ProbeError::ReplyBeforeRequest { t1: 10, t4: 5 })
        );
        assert_eq!(
            Sample::from_timestamps(0, 10, 5, 20),
            Err(ProbeError::ServerTimeReversed { t2: 10, t3: 5 })
        );
        assert_eq!(
            Sample::from_timestamps(0, 0, 30, 20),
            Err(ProbeError::NegativeDelay { delay_ns: -10 })
        );
        assert_eq!(
            Sample::from_timestamps(0, u64::MAX, u64::MAX, 0),
            Err(ProbeError::Overflow)
        );
    }

    #[test]
    fn filter_keeps_last_eight_and_picks_least_delay() {
        let mut f = ClockFilter::new();
        assert!(f.best().is_none());
        for i in 0..12i64 {
            // Delay 100 for the first sample, later ones 200+; the first is pushed out.
            let delay = if i == 0 { 100 } else { 200 + (i * 37) % 50 };
            f.push(Sample {
                offset_ns: i,
                delay_ns: delay,
                at_ns: i as u64,
            });
        }
        assert_eq!(f.len(), FILTER_LEN);
        let best = f.best().unwrap();
        assert_eq!(best.delay_ns, f.iter().map(|s| s.delay_ns).min().unwrap());
        assert!(best.offset_ns >= 4, "the oldest samples were dropped");
        f.clear();
        assert!(f.is_empty());
    }
}
