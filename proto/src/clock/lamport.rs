//! Lamport's scalar clock (Lamport 1978, "Time, Clocks, and the Ordering of Events").
//!
//! IR1: a process increments its clock between any two successive events.
//! IR2: a message carries the sender's clock; on receipt the receiver sets its clock past both.
//! Ties between equal times are broken by process id, giving the total order `=>` of the paper.

use super::{ClockError, MAX_COUNTER, ProcessId};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A Lamport clock: one counter per process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LamportClock {
    time: u64,
}

impl LamportClock {
    /// A clock at 0 (no events yet).
    pub const fn new() -> Self {
        Self { time: 0 }
    }

    /// A clock at `time`.
    pub const fn at(time: u64) -> Self {
        Self { time }
    }

    /// The current time (that of the last event).
    pub const fn time(&self) -> u64 {
        self.time
    }

    /// A local or send event: advance by one and return the new time (IR1).
    #[inline]
    pub fn tick(&mut self) -> u64 {
        self.time += 1;
        self.time
    }

    /// A receive event: `time = max(time, remote) + 1`, returning the new time (IR2).
    ///
    /// # Errors
    /// [`ClockError::Absurd`] when `remote` exceeds [`MAX_COUNTER`]; the clock is unchanged.
    #[inline]
    pub fn merge(&mut self, remote: u64) -> Result<u64, ClockError> {
        if remote > MAX_COUNTER {
            return Err(ClockError::Absurd { value: remote });
        }
        self.time = self.time.max(remote) + 1;
        Ok(self.time)
    }

    /// The timestamp of the last event at `process`, for the total order.
    pub const fn timestamp(&self, process: ProcessId) -> LamportTimestamp {
        LamportTimestamp {
            time: self.time,
            process,
        }
    }
}

/// A Lamport time with the process that produced it.
///
/// Ordered by `(time, process)`: a total order consistent with happened-before
/// (if `a → b` then `a < b`), as used to order requests in Lamport's mutual exclusion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LamportTimestamp {
    /// Lamport time of the event.
    pub time: u64,
    /// Process where the event happened.
    pub process: ProcessId,
}

impl LamportTimestamp {
    /// A timestamp from its parts.
    pub const fn new(time: u64, process: ProcessId) -> Self {
        Self { time, process }
    }
}

impl Ord for LamportTimestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.process).cmp(&(other.time, other.process))
    }
}

impl PartialOrd for LamportTimestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for LamportTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.time, self.process)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ir1_tick_increments() {
        let mut c = LamportClock::new();
        assert_eq!(c.tick(), 1);
        assert_eq!(c.tick(), 2);
    }

    #[test]
    fn ir2_receive_moves_past_both() {
        let mut c = LamportClock::at(3);
        assert_eq!(c.merge(10), Ok(11));
        assert_eq!(c.merge(2), Ok(12));
    }

    #[test]
    fn absurd_remote_is_refused_and_clock_unchanged() {
        let mut c = LamportClock::at(5);
        assert_eq!(
            c.merge(u64::MAX),
            Err(ClockError::Absurd { value: u64::MAX })
        );
        assert_eq!(c.time(), 5);
    }

    #[test]
    fn total_order_breaks_ties_by_process() {
        let a = LamportTimestamp::new(4, ProcessId::new(1, 2));
        let b = LamportTimestamp::new(4, ProcessId::new(2, 1));
        let c = LamportTimestamp::new(3, ProcessId::new(9, 9));
        assert!(c < a && a < b);
    }
}
