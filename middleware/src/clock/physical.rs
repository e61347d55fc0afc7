//! Physical clocks: reading hardware time, simulating bad clocks, and slewing in user space.
//!
//! * [`HardwareClock`]: anything that reads nanoseconds since an epoch (`Send + Sync`, `&self`).
//! * [`SystemClock`]: the OS clocks, `CLOCK_REALTIME` (Unix epoch, may be stepped by the OS) and
//!   `CLOCK_MONOTONIC_RAW` (never slewed nor stepped; Linux only, `CLOCK_MONOTONIC` elsewhere).
//! * [`VirtualClock`]: a manual clock for tests and simulation; clones share one time.
//! * [`SimulatedClock`]: a bad clock over another one: a fixed offset, a frequency error (drift,
//!   in ppm) and a random-walk wander of the frequency, seeded so runs repeat.
//! * [`AdjustedClock`]: user-space slewing over a raw clock. Its time is piecewise linear in the
//!   raw time, each segment `(t0_raw, t0_adj, rate)` with `rate = 1 + freq + s`, where `freq` is a
//!   frequency correction and `|s| ≤ cap` the slew (default cap 500 ppm, as Linux `adjtime`).
//!   It never runs backwards, also across threads, and steps only before its first read or when
//!   explicitly forced.
//! * [`PhysicalTime`] and [`HybridClockExt`]: how the hybrid logical clock reads any of these.
//!
//! ```
//! use actix_coord::clock::physical::{AdjustedClock, HardwareClock, VirtualClock};
//!
//! let raw = VirtualClock::new(1_000_000_000); // 1 s
//! let clock = AdjustedClock::new(raw.clone());
//! clock.step(5_000_000).unwrap(); // allowed: nobody has read the clock yet
//! assert_eq!(clock.now_ns(), 1_005_000_000);
//! assert!(clock.step(1).is_err()); // read once: from now on only slewing
//!
//! clock.slew(-1_000_000).unwrap(); // take 1 ms back, at 500 ppm: over 2 s
//! raw.advance(1_000_000_000);
//! assert_eq!(clock.now_ns(), 2_004_500_000); // 1 s later, 0.5 ms of the 1 ms is absorbed
//! raw.advance(10_000_000_000);
//! assert_eq!(clock.now_ns(), 12_004_000_000); // done: the clock runs at rate 1 again
//! ```

use crate::clock::{HlcError, HlcTimestamp, HybridClock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Nanoseconds in a second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Default slew cap of [`AdjustedClock`]: 500 ppm, the most Linux `adjtime` slews.
pub const DEFAULT_MAX_SLEW_PPM: f64 = 500.0;

/// Default bound of the frequency correction of [`AdjustedClock`]: 500 ppm (chrony's `maxdrift`
/// default is of the same order; quartz is within ±100 ppm).
pub const DEFAULT_MAX_FREQ_PPM: f64 = 500.0;

/// A clock that reads nanoseconds since an epoch.
///
/// Implementations are shared between threads and read through `&self`. What the epoch is and
/// whether readings can go back depends on the clock: [`AdjustedClock`] never goes back,
/// `CLOCK_REALTIME` may.
pub trait HardwareClock: Send + Sync {
    /// Nanoseconds since this clock's epoch.
    fn now_ns(&self) -> u64;
}

impl<C: HardwareClock + ?Sized> HardwareClock for &C {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

impl<C: HardwareClock + ?Sized> HardwareClock for Arc<C> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

impl<C: HardwareClock + ?Sized> HardwareClock for Box<C> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

/// Which OS clock a [`SystemClock`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemClockId {
    /// `CLOCK_REALTIME`: wall-clock time since the Unix epoch; the OS may slew and step it.
    Realtime,
    /// `CLOCK_MONOTONIC_RAW` on Linux and Android (never slewed nor stepped, epoch unspecified);
    /// `CLOCK_MONOTONIC` on other Unix systems.
    MonotonicRaw,
}

/// An OS clock read with `clock_gettime(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SystemClock {
    id: SystemClockId,
}

impl SystemClock {
    /// `CLOCK_REALTIME`: nanoseconds since the Unix epoch. The one to feed a hybrid clock.
    pub const fn realtime() -> Self {
        Self {
            id: SystemClockId::Realtime,
        }
    }

    /// `CLOCK_MONOTONIC_RAW`: the undisciplined oscillator, the raw clock to slew over.
    pub const fn monotonic_raw() -> Self {
        Self {
            id: SystemClockId::MonotonicRaw,
        }
    }

    /// Which OS clock this reads.
    pub const fn id(&self) -> SystemClockId {
        self.id
    }

    fn libc_id(&self) -> libc::clockid_t {
        match self.id {
            SystemClockId::Realtime => libc::CLOCK_REALTIME,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            SystemClockId::MonotonicRaw => libc::CLOCK_MONOTONIC_RAW,
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            SystemClockId::MonotonicRaw => libc::CLOCK_MONOTONIC,
        }
    }
}

impl HardwareClock for SystemClock {
    /// Nanoseconds from `clock_gettime`; 0 if the call fails (it cannot for these clock ids) or
    /// the time is before the epoch.
    fn now_ns(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant the platform
        // defines; clock_gettime writes only into `ts`.
        let rc = unsafe { libc::clock_gettime(self.libc_id(), &mut ts) };
        if rc != 0 || ts.tv_sec < 0 {
            return 0;
        }
        (ts.tv_sec as u64)
            .saturating_mul(NANOS_PER_SEC)
            .saturating_add(ts.tv_nsec.max(0) as u64)
    }
}

/// A clock that moves only when told to: for tests and virtual-time simulation.
///
/// Clones share the same time, so a simulator keeps one handle and gives clones to the clocks
/// it builds on top.
#[derive(Clone, Debug, Default)]
pub struct VirtualClock {
    ns: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A clock reading `start_ns`.
    pub fn new(start_ns: u64) -> Self {
        Self {
            ns: Arc::new(AtomicU64::new(start_ns)),
        }
    }

    /// Sets the time; it may go back (a real clock's step can too).
    pub fn set(&self, ns: u64) {
        self.ns.store(ns, Ordering::SeqCst);
    }

    /// Moves the time forward by `ns` (saturating).
    pub fn advance(&self, ns: u64) {
        let _ = self
            .ns
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ns))
            });
    }
}

impl HardwareClock for VirtualClock {
    fn now_ns(&self) -> u64 {
        self.ns.load(Ordering::SeqCst)
    }
}

/// Errors of the clock constructors and adjustments in this module.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PhysicalClockError {
    /// A rate or frequency argument was NaN or infinite.
    #[error("{what} must be finite, got {value}")]
    NotFinite {
        /// Which argument.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// A configured bound is out of range (negative, or so large the clock could stop).
    #[error("{what} = {value} ppm is out of range [0, {max}]")]
    OutOfRange {
        /// Which argument.
        what: &'static str,
        /// The value given, in ppm.
        value: f64,
        /// The largest accepted value, in ppm.
        max: f64,
    },
    /// [`AdjustedClock::step`] after the clock was first read: only slewing is allowed now.
    #[error("the clock has already been read: it may only be slewed (or stepped with force_step)")]
    AlreadyRead,
}

/// Parameters of a [`SimulatedClock`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimulatedClockConfig {
    /// Offset added to the underlying clock, in ns (may be negative).
    pub offset_ns: i64,
    /// Frequency error in ppm: +100 runs 100 µs per second fast. Must be within ±500 000.
    pub drift_ppm: f64,
    /// Random-walk wander of the frequency: the standard deviation of its change over one
    /// second, in ppm (0 for none). Real quartz: around 0.001–0.01 ppm/√s.
    pub wander_ppm_per_sqrt_s: f64,
    /// Seed of the wander's random walk.
    pub seed: u64,
}

impl Default for SimulatedClockConfig {
    fn default() -> Self {
        Self {
            offset_ns: 0,
            drift_ppm: 0.0,
            wander_ppm_per_sqrt_s: 0.0,
            seed: 0,
        }
    }
}

#[derive(Debug)]
struct SimState {
    last_base: u64,
    /// Accumulated frequency error since `origin`, in ns.
    phase_ns: f64,
    wander_ppm: f64,
    rng: ChaCha8Rng,
}

/// A bad clock over another one: `inner + offset + ∫ (drift + wander(t)) dt`.
///
/// The frequency error is integrated from the first reading of `inner` (taken at construction);
/// the wander is a random walk of the frequency, advanced at each reading, so a seeded run read at
/// the same instants repeats exactly. If `inner` goes back, no frequency error accrues meanwhile.
#[derive(Debug)]
pub struct SimulatedClock<C> {
    inner: C,
    config: SimulatedClockConfig,
    state: Mutex<SimState>,
}

impl<C: HardwareClock> SimulatedClock<C> {
    /// A simulated clock over `inner`.
    ///
    /// # Errors
    /// [`PhysicalClockError::NotFinite`] for a NaN or infinite rate, and
    /// [`PhysicalClockError::OutOfRange`] for a drift of ±500 000 ppm or more, or a negative
    /// wander.
    pub fn new(inner: C, config: SimulatedClockConfig) -> Result<Self, PhysicalClockError> {
        finite("drift_ppm", config.drift_ppm)?;
        finite("wander_ppm_per_sqrt_s", config.wander_ppm_per_sqrt_s)?;
        if config.drift_ppm.abs() >= 500_000.0 {
            return Err(PhysicalClockError::OutOfRange {
                what: "|drift_ppm|",
                value: config.drift_ppm,
                max: 500_000.0,
            });
        }
        if config.wander_ppm_per_sqrt_s < 0.0 {
            return Err(PhysicalClockError::OutOfRange {
                what: "wander_ppm_per_sqrt_s",
                value: config.wander_ppm_per_sqrt_s,
                max: f64::MAX,
            });
        }
        let origin = inner.now_ns();
        let state = SimState {
            last_base: origin,
            phase_ns: 0.0,
            wander_ppm: 0.0,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
        };
        Ok(Self {
            inner,
            config,
            state: Mutex::new(state),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SimulatedClockConfig {
        &self.config
    }

    /// The underlying clock.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The current frequency error in ppm: drift plus the wander so far.
    pub fn frequency_error_ppm(&self) -> f64 {
        self.config.drift_ppm + lock(&self.state).wander_ppm
    }

    /// Shifts the offset by `delta_ns`: a fault injected by a test (a step of the hardware clock).
    pub fn jump(&self, delta_ns: i64) {
        lock(&self.state).phase_ns += delta_ns as f64;
    }
}

impl<C: HardwareClock> HardwareClock for SimulatedClock<C> {
    fn now_ns(&self) -> u64 {
        let base = self.inner.now_ns();
        let mut s = lock(&self.state);
        if base > s.last_base {
            let dt = (base - s.last_base) as f64;
            let ppm = self.config.drift_ppm + s.wander_ppm;
            s.phase_ns += ppm * 1e-6 * dt;
            if self.config.wander_ppm_per_sqrt_s > 0.0 {
                let sigma = self.config.wander_ppm_per_sqrt_s * (dt / NANOS_PER_SEC as f64).sqrt();
                let z = standard_normal(&mut s.rng);
                s.wander_ppm += sigma * z;
                // Keep the clock running forwards whatever the walk does.
                s.wander_ppm = s.wander_ppm.clamp(-100_000.0, 100_000.0);
            }
            s.last_base = base;
        }
        let v = base as i128 + self.config.offset_ns as i128 + s.phase_ns.round() as i128;
        v.clamp(0, u64::MAX as i128) as u64
    }
}

/// A standard normal deviate (Box–Muller).
pub(crate) fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Bounds of an [`AdjustedClock`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdjustConfig {
    /// Largest slew rate `|s|` in ppm (default 500, Linux `adjtime`'s).
    pub max_slew_ppm: f64,
    /// Largest frequency correction `|freq|` in ppm (default 500).
    pub max_freq_ppm: f64,
}

impl Default for AdjustConfig {
    fn default() -> Self {
        Self {
            max_slew_ppm: DEFAULT_MAX_SLEW_PPM,
            max_freq_ppm: DEFAULT_MAX_FREQ_PPM,
        }
    }
}

impl AdjustConfig {
    /// Checks the bounds: finite, non-negative, and `max_slew + max_freq < 500 000 ppm`, so the
    /// rate `1 + freq + s` stays at least 0.5.
    ///
    /// # Errors
    /// [`PhysicalClockError::NotFinite`] or [`PhysicalClockError::OutOfRange`].
    pub fn validate(&self) -> Result<(), PhysicalClockError> {
        finite("max_slew_ppm", self.max_slew_ppm)?;
        finite("max_freq_ppm", self.max_freq_ppm)?;
        for (what, v) in [
            ("max_slew_ppm", self.max_slew_ppm),
            ("max_freq_ppm", self.max_freq_ppm),
        ] {
            if !(0.0..250_000.0).contains(&v) {
                return Err(PhysicalClockError::OutOfRange {
                    what,
                    value: v,
                    max: 250_000.0,
                });
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct AdjState {
    /// Raw time at the start of the current segment.
    seg_raw: u64,
    /// Adjusted time at the start of the current segment.
    seg_adj: i128,
    /// Frequency correction, as a fraction (ppm × 10⁻⁶).
    freq: f64,
    /// Slew, as a fraction, `|slew| ≤ cap`; 0 when no slew is under way.
    slew: f64,
    /// Raw time at which the slew ends (meaningful when `slew != 0`).
    slew_end_raw: u64,
    /// Largest value handed out by an exposed read.
    last: u64,
    /// Whether the clock has been read through [`HardwareClock::now_ns`].
    exposed: bool,
}

impl AdjState {
    /// The adjusted time at `raw`, before the monotonic clamp.
    fn value_at(&self, raw: u64) -> i128 {
        let raw = raw.max(self.seg_raw);
        if self.slew != 0.0 && raw > self.slew_end_raw {
            let end = self.seg_adj + lin(self.slew_end_raw - self.seg_raw, self.freq + self.slew);
            end + lin(raw - self.slew_end_raw, self.freq)
        } else {
            self.seg_adj + lin(raw - self.seg_raw, self.freq + self.slew)
        }
    }

    /// Starts a new segment at `raw` (continuous with the current one) and ends a finished slew.
    fn reanchor(&mut self, raw: u64) {
        let raw = raw.max(self.seg_raw);
        let v = self.value_at(raw).max(self.last as i128);
        if self.slew != 0.0 && raw >= self.slew_end_raw {
            self.slew = 0.0;
        }
        self.seg_raw = raw;
        self.seg_adj = v;
    }

    fn slew_remaining(&self, raw: u64) -> i64 {
        if self.slew == 0.0 {
            return 0;
        }
        let raw = raw.max(self.seg_raw);
        if raw >= self.slew_end_raw {
            return 0;
        }
        ((self.slew_end_raw - raw) as f64 * self.slew).round() as i64
    }

    fn clamp_out(v: i128) -> u64 {
        v.clamp(0, u64::MAX as i128) as u64
    }
}

/// `d × (1 + frac)` in ns, with the small `d × frac` part in floating point.
fn lin(d: u64, frac: f64) -> i128 {
    d as i128 + (d as f64 * frac).round() as i128
}

/// A user-space slewed clock over a raw clock: never backwards, slews capped, steps only before
/// first read.
///
/// The adjusted time is piecewise linear in the raw time: a segment starts at `(t0_raw, t0_adj)`
/// and runs at `rate = 1 + freq + s`; [`AdjustedClock::slew`] sets `s = ±cap` until the requested
/// correction is absorbed, then `s = 0`; [`AdjustedClock::set_frequency_ppm`] sets `freq`. Every
/// change starts a new segment where the old one stands, so time is continuous; with the bounds
/// of [`AdjustConfig`] the rate stays above 0.5, so it is increasing.
///
/// Reads go through one mutex that also covers the raw read, and every exposed read is clamped to
/// the largest value handed out before: a read that starts after another one ended never returns
/// less, whichever threads make them — even if the raw clock itself goes back (then time stands
/// still until the raw clock catches up).
///
/// [`HardwareClock::now_ns`] *exposes* the clock: from then on [`AdjustedClock::step`] is refused.
/// A synchronisation daemon takes its own probe timestamps with [`AdjustedClock::sample_ns`],
/// which does not expose, so a node can still step its initial offset once when it joins.
#[derive(Debug)]
pub struct AdjustedClock<C> {
    raw: C,
    config: AdjustConfig,
    state: Mutex<AdjState>,
}

impl<C: HardwareClock> AdjustedClock<C> {
    /// An adjusted clock equal to `raw` now, with the default bounds (500 ppm slew, 500 ppm
    /// frequency).
    pub fn new(raw: C) -> Self {
        let now = raw.now_ns();
        Self::build(raw, AdjustConfig::default(), now)
    }

    /// An adjusted clock with the given bounds.
    ///
    /// # Errors
    /// The errors of [`AdjustConfig::validate`].
    pub fn with_config(raw: C, config: AdjustConfig) -> Result<Self, PhysicalClockError> {
        config.validate()?;
        let now = raw.now_ns();
        Ok(Self::build(raw, config, now))
    }

    fn build(raw: C, config: AdjustConfig, now: u64) -> Self {
        let state = AdjState {
            seg_raw: now,
            seg_adj: now as i128,
            freq: 0.0,
            slew: 0.0,
            slew_end_raw: now,
            last: 0,
            exposed: false,
        };
        Self {
            raw,
            config,
            state: Mutex::new(state),
        }
    }

    /// The bounds.
    pub fn config(&self) -> &AdjustConfig {
        &self.config
    }

    /// The raw clock underneath.
    pub fn raw(&self) -> &C {
        &self.raw
    }

    /// Reads the raw and the adjusted clock together, exposing the adjusted one: `(raw, adjusted)`.
    pub fn now_ns_with_raw(&self) -> (u64, u64) {
        let mut s = lock(&self.state);
        let raw = self.raw.now_ns();
        let v = AdjState::clamp_out(s.value_at(raw)).max(s.last);
        s.last = v;
        s.exposed = true;
        (raw, v)
    }

    /// Reads the clock without exposing it: for a synchronisation daemon's own timestamps.
    ///
    /// Before the first exposed read this value may later be stepped away from; after it, it is
    /// the same monotonic time [`HardwareClock::now_ns`] reads.
    pub fn sample_ns(&self) -> u64 {
        let mut s = lock(&self.state);
        let raw = self.raw.now_ns();
        let v = AdjState::clamp_out(s.value_at(raw));
        if s.exposed {
            let v = v.max(s.last);
            s.last = v;
            v
        } else {
            v
        }
    }

    /// Whether the clock has been read through [`HardwareClock::now_ns`] (then no more steps).
    pub fn is_exposed(&self) -> bool {
        lock(&self.state).exposed
    }

    /// Steps the clock by `delta_ns`, allowed only before its first exposed read.
    ///
    /// # Errors
    /// [`PhysicalClockError::AlreadyRead`] once the clock has been read; nothing changes.
    pub fn step(&self, delta_ns: i64) -> Result<(), PhysicalClockError> {
        let mut s = lock(&self.state);
        if s.exposed {
            return Err(PhysicalClockError::AlreadyRead);
        }
        s.seg_adj += delta_ns as i128;
        Ok(())
    }

    /// Steps the clock by `delta_ns` even after it was read: for an operator who asks for it.
    ///
    /// A forward step jumps. A backward step does not make readings go back: they stand still
    /// until the clock catches up with the largest value handed out. Slewing is the gentle way.
    pub fn force_step(&self, delta_ns: i64) {
        let mut s = lock(&self.state);
        let raw = self.raw.now_ns();
        let v = s.value_at(raw);
        s.reanchor(raw);
        s.seg_adj = v + delta_ns as i128;
    }

    /// Slews by `delta_ns` at the largest rate, replacing any slew under way (like `adjtime`).
    /// Returns the part of the previous slew that had not been applied.
    ///
    /// # Errors
    /// None at the default rate; see [`AdjustedClock::slew_at`].
    pub fn slew(&self, delta_ns: i64) -> Result<i64, PhysicalClockError> {
        self.slew_at(delta_ns, self.config.max_slew_ppm)
    }

    /// Slews by `delta_ns` at `rate_ppm` (clamped to the cap), replacing any slew under way.
    /// Returns the part of the previous slew that had not been applied.
    ///
    /// With a rate of 0 (or a cap of 0) the correction is dropped.
    ///
    /// # Errors
    /// [`PhysicalClockError::NotFinite`] for a NaN or infinite rate; nothing changes.
    pub fn slew_at(&self, delta_ns: i64, rate_ppm: f64) -> Result<i64, PhysicalClockError> {
        finite("rate_ppm", rate_ppm)?;
        let rate = rate_ppm.abs().min(self.config.max_slew_ppm) * 1e-6;
        let mut s = lock(&self.state);
        let raw = self.raw.now_ns();
        let previous = s.slew_remaining(raw);
        s.reanchor(raw);
        let raw = s.seg_raw;
        if delta_ns == 0 || rate == 0.0 {
            s.slew = 0.0;
            return Ok(previous);
        }
        let duration = (delta_ns.unsigned_abs() as f64 / rate).ceil();
        if duration < 1.0 {
            // Less than a nanosecond of slewing: nothing to do.
            s.slew = 0.0;
            return Ok(previous);
        }
        let duration = duration.min((u64::MAX - raw) as f64) as u64;
        // The rate that absorbs delta over a whole number of nanoseconds; rounding the duration
        // up keeps it at or below the cap.
        s.slew = delta_ns as f64 / duration as f64;
        s.slew_end_raw = raw + duration;
        Ok(previous)
    }

    /// The part of the current slew not yet applied, in ns (signed like the slew).
    pub fn slew_remaining_ns(&self) -> i64 {
        let s = lock(&self.state);
        s.slew_remaining(self.raw.now_ns())
    }

    /// The slew rate now in effect, in ppm (signed; 0 when no slew is under way).
    pub fn slew_rate_ppm(&self) -> f64 {
        let s = lock(&self.state);
        if s.slew != 0.0 && self.raw.now_ns() < s.slew_end_raw {
            s.slew * 1e6
        } else {
            0.0
        }
    }

    /// Sets the frequency correction, clamped to `±max_freq_ppm`; returns the value applied.
    ///
    /// # Errors
    /// [`PhysicalClockError::NotFinite`] for NaN or infinity; nothing changes.
    pub fn set_frequency_ppm(&self, ppm: f64) -> Result<f64, PhysicalClockError> {
        finite("frequency ppm", ppm)?;
        let ppm = ppm.clamp(-self.config.max_freq_ppm, self.config.max_freq_ppm);
        let mut s = lock(&self.state);
        let raw = self.raw.now_ns();
        // Keep the end of a running slew where it is in raw time: re-anchoring keeps `slew`.
        s.reanchor(raw);
        s.freq = ppm * 1e-6;
        Ok(ppm)
    }

    /// The frequency correction in ppm.
    pub fn frequency_ppm(&self) -> f64 {
        lock(&self.state).freq * 1e6
    }
}

impl<C: HardwareClock> HardwareClock for AdjustedClock<C> {
    /// The adjusted time; exposes the clock (no more steps) and never returns less than any
    /// earlier call did.
    fn now_ns(&self) -> u64 {
        self.now_ns_with_raw().1
    }
}

/// Physical time in milliseconds since the Unix epoch, as the hybrid clock wants it.
///
/// Every [`HardwareClock`] is one (nanoseconds divided by 10⁶), so an [`AdjustedClock`] over
/// [`SystemClock::realtime`] can feed a [`HybridClock`]: issue 6, point 4.
pub trait PhysicalTime {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

impl<C: HardwareClock + ?Sized> PhysicalTime for C {
    fn now_ms(&self) -> u64 {
        self.now_ns() / 1_000_000
    }
}

/// Reads physical time for a [`HybridClock`] from a clock instead of taking it as a number.
///
/// ```
/// use actix_coord::clock::HybridClock;
/// use actix_coord::clock::physical::{AdjustedClock, HybridClockExt, SystemClock};
///
/// let clock = AdjustedClock::new(SystemClock::realtime());
/// let mut hlc = HybridClock::new();
/// let a = hlc.now_from(&clock);
/// let b = hlc.now_from(&clock);
/// assert!(b > a);
/// ```
pub trait HybridClockExt {
    /// [`HybridClock::now`] at `clock`'s time.
    fn now_from<P: PhysicalTime + ?Sized>(&mut self, clock: &P) -> HlcTimestamp;
    /// [`HybridClock::update`] at `clock`'s time.
    ///
    /// # Errors
    /// As [`HybridClock::update`].
    fn update_from<P: PhysicalTime + ?Sized>(
        &mut self,
        remote: HlcTimestamp,
        clock: &P,
    ) -> Result<HlcTimestamp, HlcError>;
}

impl HybridClockExt for HybridClock {
    fn now_from<P: PhysicalTime + ?Sized>(&mut self, clock: &P) -> HlcTimestamp {
        self.now(clock.now_ms())
    }

    fn update_from<P: PhysicalTime + ?Sized>(
        &mut self,
        remote: HlcTimestamp,
        clock: &P,
    ) -> Result<HlcTimestamp, HlcError> {
        self.update(remote, clock.now_ms())
    }
}

fn finite(what: &'static str, value: f64) -> Result<(), PhysicalClockError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(PhysicalClockError::NotFinite { what, value })
    }
}

/// Locks, ignoring poisoning: the state is plain numbers, consistent after every statement.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    const S: u64 = NANOS_PER_SEC;

    #[test]
    fn system_clocks_read_sensible_values() {
        let rt = SystemClock::realtime().now_ns();
        assert!(rt > 1_600_000_000 * S, "realtime {rt} is before 2020");
        let raw = SystemClock::monotonic_raw();
        let a = raw.now_ns();
        let b = raw.now_ns();
        assert!(b >= a);
        assert_eq!(raw.id(), SystemClockId::MonotonicRaw);
    }

    #[test]
    fn virtual_clock_clones_share_time() {
        let c = VirtualClock::new(5);
        let d = c.clone();
        c.advance(10);
        assert_eq!(d.now_ns(), 15);
        d.set(3);
        assert_eq!(c.now_ns(), 3);
    }

    #[test]
    fn simulated_clock_offset_and_drift() {
        let base = VirtualClock::new(1000 * S);
        let cfg = SimulatedClockConfig {
            offset_ns: -5_000_000,
            drift_ppm: 100.0,
            ..Default::default()
        };
        let sim = SimulatedClock::new(base.clone(), cfg).unwrap();
        assert_eq!(sim.now_ns(), 1000 * S - 5_000_000);
        base.advance(10 * S);
        // 10 s at +100 ppm gains 1 ms.
        assert_eq!(sim.now_ns(), 1010 * S - 5_000_000 + 1_000_000);
        assert_eq!(sim.frequency_error_ppm(), 100.0);
    }

    #[test]
    fn simulated_clock_wander_is_seeded_and_bounded_in_practice() {
        let run = |seed| {
            let base = VirtualClock::new(0);
            let cfg = SimulatedClockConfig {
                wander_ppm_per_sqrt_s: 0.01,
                seed,
                ..Default::default()
            };
            let sim = SimulatedClock::new(base.clone(), cfg).unwrap();
            let mut prev = 0;
            for _ in 0..10_000 {
                base.advance(S);
                let v = sim.now_ns();
                assert!(v > prev);
                prev = v;
            }
            (prev, sim.frequency_error_ppm())
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        // After 10⁴ s the walk's standard deviation is 0.01 × 100 = 1 ppm.
        assert!(run(7).1.abs() < 10.0);
    }

    #[test]
    fn simulated_clock_rejects_bad_parameters() {
        let bad = SimulatedClockConfig {
            drift_ppm: f64::NAN,
            ..Default::default()
        };
        assert!(matches!(
            SimulatedClock::new(VirtualClock::new(0), bad),
            Err(PhysicalClockError::NotFinite { .. })
        ));
        let stop = SimulatedClockConfig {
            drift_ppm: -1e6,
            ..Default::default()
        };
        assert!(matches!(
            SimulatedClock::new(VirtualClock::new(0), stop),
            Err(PhysicalClockError::OutOfRange { .. })
        ));
    }

    #[test]
    fn step_only_before_first_read() {
        let raw = VirtualClock::new(100 * S);
        let c = AdjustedClock::new(raw.clone());
        c.step(-50 * S as i64).unwrap();
        assert_eq!(c.sample_ns(), 50 * S); // sampling does not expose
        c.step(S as i64).unwrap();
        assert_eq!(c.now_ns(), 51 * S);
        assert_eq!(c.step(1), Err(PhysicalClockError::AlreadyRead));
        assert_eq!(c.now_ns(), 51 * S);
    }

    #[test]
    fn slew_is_capped_and_absorbs_exactly() {
        let raw = VirtualClock::new(0);
        let c = AdjustedClock::new(raw.clone());
        assert_eq!(c.now_ns(), 0);
        c.slew(-100_000_000).unwrap(); // −100 ms: 200 s at 500 ppm
        assert!((c.slew_rate_ppm() + 500.0).abs() < 1e-9);
        raw.advance(100 * S);
        assert_eq!(c.now_ns(), 100 * S - 50_000_000);
        assert_eq!(c.slew_remaining_ns(), -50_000_000);
        raw.advance(100 * S);
        assert_eq!(c.now_ns(), 200 * S - 100_000_000);
        assert_eq!(c.slew_remaining_ns(), 0);
        assert_eq!(c.slew_rate_ppm(), 0.0);
        raw.advance(S);
        assert_eq!(c.now_ns(), 201 * S - 100_000_000);
    }

    #[test]
    fn slew_replaces_and_returns_the_unapplied_part() {
        let raw = VirtualClock::new(0);
        let c = AdjustedClock::new(raw.clone());
        c.slew(1_000_000).unwrap(); // 1 ms over 2 s
        raw.advance(S);
        assert_eq!(c.slew(0).unwrap(), 500_000);
        raw.advance(S);
        assert_eq!(c.now_ns(), 2 * S + 500_000);
    }

    #[test]
    fn frequency_correction_changes_rate_and_is_clamped() {
        let raw = VirtualClock::new(0);
        let c = AdjustedClock::new(raw.clone());
        assert_eq!(c.set_frequency_ppm(-100.0).unwrap(), -100.0);
        raw.advance(10 * S);
        assert_eq!(c.now_ns(), 10 * S - 1_000_000);
        assert_eq!(c.set_frequency_ppm(1e9).unwrap(), DEFAULT_MAX_FREQ_PPM);
        assert!(matches!(
            c.set_frequency_ppm(f64::INFINITY),
            Err(PhysicalClockError::NotFinite { .. })
        ));
        assert_eq!(c.frequency_ppm(), DEFAULT_MAX_FREQ_PPM);
    }

    #[test]
    fn frequency_change_during_slew_keeps_slew_end() {
        let raw = VirtualClock::new(0);
        let c = AdjustedClock::new(raw.clone());
        c.slew(1_000_000).unwrap(); // ends at raw 2 s
        raw.advance(S);
        c.set_frequency_ppm(10.0).unwrap();
        raw.advance(3 * S);
        // 1 ms slewed in all, plus 10 ppm over the last 3 s.
        assert_eq!(c.now_ns(), 4 * S + 1_000_000 + 30_000);
    }

    #[test]
    fn config_is_validated() {
        let bad = AdjustConfig {
            max_slew_ppm: -1.0,
            ..Default::default()
        };
        assert!(AdjustedClock::with_config(VirtualClock::new(0), bad).is_err());
        let nan = AdjustConfig {
            max_freq_ppm: f64::NAN,
            ..Default::default()
        };
        assert!(AdjustedClock::with_config(VirtualClock::new(0), nan).is_err());
        assert!(AdjustedClock::with_config(VirtualClock::new(0), AdjustConfig::default()).is_ok());
        assert!(
            AdjustedClock::new(VirtualClock::new(0))
                .slew_at(5, f64::NAN)
                .is_err()
        );
    }

    #[test]
    fn never_backwards_when_raw_goes_back_or_forced_back() {
        let raw = VirtualClock::new(10 * S);
        let c = AdjustedClock::new(raw.clone());
        let a = c.now_ns();
        raw.set(5 * S);
        assert_eq!(c.now_ns(), a);
        raw.set(11 * S);
        assert_eq!(c.now_ns(), 11 * S);
        c.force_step(-(S as i64));
        raw.set(11 * S + 500_000_000);
        assert_eq!(c.now_ns(), 11 * S); // standing still, not going back
        raw.set(13 * S);
        assert_eq!(c.now_ns(), 12 * S);
        c.force_step(S as i64);
        assert_eq!(c.now_ns(), 13 * S);
    }

    #[test]
    fn never_backwards_across_threads_while_slewing() {
        // Readers check that a read started after another ended never returns less: each one
        // reads the global maximum first, then the clock.
        let clock = Arc::new(AdjustedClock::new(SystemClock::monotonic_raw()));
        let max_seen = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..2 {
            let (clock, max_seen, stop) = (clock.clone(), max_seen.clone(), stop.clone());
            readers.push(std::thread::spawn(move || {
                let (mut reads, mut backwards, mut prev) = (0u64, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) || reads < 10_000 {
                    let floor = max_seen.load(Ordering::SeqCst);
                    let v = clock.now_ns();
                    if v < floor || v < prev {
                        backwards += 1;
                    }
                    prev = v;
                    max_seen.fetch_max(v, Ordering::SeqCst);
                    reads += 1;
                }
                backwards
            }));
        }
        for i in 0..500i64 {
            // Alternate large negative and positive corrections and frequency changes.
            let delta = if i % 2 == 0 { -100_000_000 } else { 50_000_000 };
            clock.slew(delta).unwrap();
            clock
                .set_frequency_ppm(((i % 7) - 3) as f64 * 100.0)
                .unwrap();
            if i % 100 == 0 {
                clock.force_step(-1_000_000);
            }
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert_eq!(r.join().unwrap(), 0);
        }
    }

    proptest::proptest! {
        /// Whatever sequence of corrections is applied, reads never go back and the slew never
        /// exceeds the cap.
        #[test]
        fn random_corrections_never_make_time_go_back(
            ops in proptest::collection::vec((0u8..5, -200_000_000i64..200_000_000, 0u64..3_000_000_000), 1..200)
        ) {
            let raw = VirtualClock::new(1_000 * S);
            let c = AdjustedClock::new(raw.clone());
            let mut prev = c.now_ns();
            for (op, x, dt) in ops {
                match op {
                    0 => { c.slew(x).unwrap(); }
                    1 => { c.slew_at(x, (dt % 700) as f64).unwrap(); }
                    2 => { c.set_frequency_ppm(x as f64 / 100_000.0).unwrap(); }
                    3 => { let _ = c.step(x); }
                    _ => raw.advance(dt),
                }
                proptest::prop_assert!(c.slew_rate_ppm().abs() <= DEFAULT_MAX_SLEW_PPM);
                let now = c.now_ns();
                proptest::prop_assert!(now >= prev, "{} < {}", now, prev);
                prev = now;
            }
        }
    }

    #[test]
    fn hybrid_clock_reads_an_adjusted_clock() {
        let raw = VirtualClock::new(1_700_000_000 * S);
        let clock = AdjustedClock::new(raw.clone());
        let mut hlc = HybridClock::new();
        let t = hlc.now_from(&clock);
        assert_eq!(t.physical_ms(), 1_700_000_000_000);
        clock.slew(-100_000_000).unwrap();
        let mut prev = t;
        for _ in 0..1000 {
            raw.advance(1_000_000);
            let t = hlc.now_from(&clock);
            assert!(t > prev);
            prev = t;
        }
        let remote = HlcTimestamp::new(prev.physical_ms() + 10, 0);
        assert!(hlc.update_from(remote, &clock).unwrap() > remote);
        assert_eq!(clock.now_ms(), clock.now_ns() / 1_000_000);
    }
}
