//! The fault-tolerant average (Gusella & Zatti): the largest set of clocks that agree, its mean.

use super::*;

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

pub(super) fn median_sorted(v: &[i64]) -> i64 {
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => ((v[n / 2 - 1] as i128 + v[n / 2] as i128) / 2) as i64,
    }
}
