//! Hybrid logical clocks (Kulkarni, Demirbas, Madappa, Avva, Leone 2014).
//!
//! An HLC timestamp `(l, c)` tracks the largest physical time heard of (`l`) and a counter `c`
//! that orders events sharing that `l`. It stays within the clock skew of physical time, orders
//! events like a Lamport clock (`e → f ⇒ hlc(e) < hlc(f)`), and fits the usual 64 bits:
//! 48 bits of milliseconds since the Unix epoch and a 16-bit counter.
//!
//! Physical time is an argument (`pt`, milliseconds): this module reads no clock. Like
//! CockroachDB and uhlc, [`HybridClock::update`] refuses a remote timestamp more than the
//! maximum offset (default 500 ms) ahead of local physical time and leaves the clock unchanged,
//! so one runaway clock cannot drag the cluster into the future.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Default maximum offset of a remote timestamp ahead of local physical time: 500 ms.
pub const DEFAULT_MAX_OFFSET_MS: u64 = 500;

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
const MAX_PHYSICAL_MS: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

/// A 64-bit HLC timestamp: physical milliseconds in the high 48 bits, counter in the low 16.
///
/// Comparing the `u64`s compares timestamps.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct HlcTimestamp(u64);

impl HlcTimestamp {
    /// A timestamp from physical milliseconds (clamped to 48 bits) and a counter (low 16 bits kept).
    pub const fn new(physical_ms: u64, logical: u16) -> Self {
        let l = if physical_ms > MAX_PHYSICAL_MS {
            MAX_PHYSICAL_MS
        } else {
            physical_ms
        };
        Self((l << LOGICAL_BITS) | logical as u64)
    }

    /// A timestamp from its 64-bit representation.
    pub const fn from_u64(raw: u64) -> Self {
        Self(raw)
    }

    /// The 64-bit representation.
    pub const fn as_u64(&self) -> u64 {
        self.0
    }

    /// The physical part `l`, in milliseconds since the Unix epoch.
    pub const fn physical_ms(&self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter `c`.
    pub const fn logical(&self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }
}

impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// Errors of [`HybridClock::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    /// The remote timestamp is further ahead of local physical time than the maximum offset.
    #[error(
        "remote HLC {remote} is more than {max_offset_ms} ms ahead of local physical time {physical_ms} ms"
    )]
    TooFarAhead {
        /// The refused timestamp.
        remote: HlcTimestamp,
        /// Local physical time when it was refused, in ms.
        physical_ms: u64,
        /// The configured maximum offset, in ms.
        max_offset_ms: u64,
    },
}

/// A hybrid logical clock: the last timestamp issued and the maximum accepted offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HybridClock {
    last: HlcTimestamp,
    max_offset_ms: u64,
}

impl Default for HybridClock {
    fn default() -> Self {
        Self::new()
    }
}

impl HybridClock {
    /// A clock at 0 with the default maximum offset (500 ms).
    pub const fn new() -> Self {
        Self::with_max_offset(DEFAULT_MAX_OFFSET_MS)
    }

    /// A clock at 0 refusing remote timestamps more than `max_offset_ms` ahead.
    pub const fn with_max_offset(max_offset_ms: u64) -> Self {
        Self {
            last: HlcTimestamp(0),
            max_offset_ms,
        }
    }

    /// The configured maximum offset in ms.
    pub const fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// The last timestamp issued.
    pub const fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// A send or local event at physical time `pt_ms`: a timestamp strictly above every earlier one.
    ///
    /// `l' = max(l, pt)`; `c' = c + 1` if `l' = l`, else 0.
    pub fn now(&mut self, pt_ms: u64) -> HlcTimestamp {
        let (l, c) = (self.last.physical_ms(), self.last.logical() as u64);
        let pt = pt_ms.min(MAX_PHYSICAL_MS);
        self.last = if pt > l {
            Self::pack(pt, 0)
        } else {
            Self::pack(l, c + 1)
        };
        self.last
    }

    /// A receive event of `remote` at physical time `pt_ms`.
    ///
    /// `l' = max(l, l_m, pt)`; `c'` is `max(c, c_m) + 1` when `l' = l = l_m`, `c + 1` when only
    /// `l' = l`, `c_m + 1` when only `l' = l_m`, else 0. The result is above both the previous
    /// timestamp and `remote`.
    ///
    /// # Errors
    /// [`HlcError::TooFarAhead`] when `remote` is more than the maximum offset ahead of `pt_ms`;
    /// the clock is unchanged.
    pub fn update(&mut self, remote: HlcTimestamp, pt_ms: u64) -> Result<HlcTimestamp, HlcError> {
        let pt = pt_ms.min(MAX_PHYSICAL_MS);
        let lm = remote.physical_ms();
        if lm > pt.saturating_add(self.max_offset_ms) {
            return Err(HlcError::TooFarAhead {
                remote,
                physical_ms: pt_ms,
                max_offset_ms: self.max_offset_ms,
            });
        }
        let (l, c) = (self.last.physical_ms(), self.last.logical() as u64);
        let cm = remote.logical() as u64;
        let l2 = l.max(lm).max(pt);
        let c2 = if l2 == l && l2 == lm {
            c.max(cm) + 1
        } else if l2 == l {
            c + 1
        } else if l2 == lm {
            cm + 1
        } else {
            0
        };
        self.last = Self::pack(l2, c2);
        Ok(self.last)
    }

    /// Packs `(l, c)`; a counter past 16 bits borrows one millisecond so order is kept.
    fn pack(l: u64, c: u64) -> HlcTimestamp {
        if c > LOGICAL_MASK {
            HlcTimestamp::new(l.saturating_add(1).min(MAX_PHYSICAL_MS), 0)
        } else {
            HlcTimestamp::new(l, c as u16)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_48_plus_16_bits() {
        let t = HlcTimestamp::new(1_700_000_000_000, 7);
        assert_eq!(t.physical_ms(), 1_700_000_000_000);
        assert_eq!(t.logical(), 7);
        assert_eq!(t.as_u64(), (1_700_000_000_000 << 16) | 7);
    }

    #[test]
    fn hundred_thousand_timestamps_strictly_increase() {
        // Physical time stalls, jumps and even runs backwards; timestamps must still increase.
        let mut clock = HybridClock::new();
        let mut prev = HlcTimestamp::default();
        let mut pt = 1_700_000_000_000u64;
        for i in 0..100_000u64 {
            if i % 1000 == 0 {
                pt += 1;
            }
            if i % 7919 == 0 {
                pt -= 3;
            }
            let t = clock.now(pt);
            assert!(t > prev, "step {i}: {t} !> {prev}");
            prev = t;
        }
    }

    #[test]
    fn counter_overflow_borrows_a_millisecond() {
        let mut clock = HybridClock::new();
        let mut prev = clock.now(10);
        for _ in 0..70_000 {
            let t = clock.now(10);
            assert!(t > prev);
            prev = t;
        }
        assert_eq!(prev.physical_ms(), 11);
    }

    #[test]
    fn remote_one_second_ahead_is_rejected_and_clock_unchanged() {
        let mut clock = HybridClock::with_max_offset(500);
        let pt = 1_700_000_000_000;
        let before = clock.now(pt);
        let remote = HlcTimestamp::new(pt + 1000, 0);
        let err = clock.update(remote, pt).unwrap_err();
        assert_eq!(
            err,
            HlcError::TooFarAhead {
                remote,
                physical_ms: pt,
                max_offset_ms: 500
            }
        );
        assert_eq!(clock.last(), before);
        // Within the offset it is accepted and the clock moves past it.
        let near = HlcTimestamp::new(pt + 400, 3);
        assert_eq!(clock.update(near, pt), Ok(HlcTimestamp::new(pt + 400, 4)));
    }

    #[test]
    fn receive_rules_of_the_paper() {
        let mut c = HybridClock::new();
        c.now(100); // (100, 0)
        // l' = l = l_m
        assert_eq!(
            c.update(HlcTimestamp::new(100, 5), 90),
            Ok(HlcTimestamp::new(100, 6))
        );
        // l' = l only
        assert_eq!(
            c.update(HlcTimestamp::new(50, 9), 90),
            Ok(HlcTimestamp::new(100, 7))
        );
        // l' = l_m only
        assert_eq!(
            c.update(HlcTimestamp::new(120, 2), 110),
            Ok(HlcTimestamp::new(120, 3))
        );
        // l' = pt
        assert_eq!(
            c.update(HlcTimestamp::new(10, 2), 200),
            Ok(HlcTimestamp::new(200, 0))
        );
    }
}
