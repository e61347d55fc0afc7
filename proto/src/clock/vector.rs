//! Sparse vector clocks (Fidge 1988, Mattern 1989).
//!
//! A vector clock maps each process to the number of events it has seen from that process.
//! Entries are kept sorted by [`ProcessId`] with no zero counters: a missing entry is 0, so a
//! clock costs only the processes it has heard of. Comparing two clocks decides happened-before
//! exactly (Charron-Bost 1991: that needs one entry per process).

use super::{ClockError, MAX_COUNTER, ProcessId};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// How two events (or their vector clocks) are related.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CausalOrder {
    /// The left event happened before the right one (`left → right`).
    Before,
    /// The right event happened before the left one.
    After,
    /// The same clock: the same event (or two events that saw exactly the same history).
    Equal,
    /// Neither happened before the other.
    Concurrent,
}

/// A sparse vector clock: sorted `(process, counter)` entries, counters never 0.
///
/// Equality, hashing and the serialised form are those of the entries alone.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<(ProcessId, u64)>", into = "Vec<(ProcessId, u64)>")]
pub struct VectorClock {
    entries: Vec<(ProcessId, u64)>,
    /// A name for the set of ids in `entries`, so that a merge of two clocks over the same
    /// processes (the steady state of a group that talks among itself) pairs their entries by
    /// position without comparing ids. [`NO_IDS_TAG`]: not named (compare the ids). Two clocks
    /// with the same non-zero tag have the same ids: a tag is drawn fresh (never reused), is
    /// handed only to a clock whose ids were found equal to those of the clock that has it, and
    /// is cleared whenever a clock's ids change.
    #[serde(skip)]
    ids_tag: u64,
}

/// The tag of a clock whose set of ids has no name yet.
const NO_IDS_TAG: u64 = 0;

/// A tag never handed out before (see [`VectorClock::ids_tag`]).
fn fresh_ids_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, AtomicOrdering::Relaxed)
}

impl PartialEq for VectorClock {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for VectorClock {}

impl Hash for VectorClock {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
    }
}

impl VectorClock {
    /// The empty clock (every entry 0).
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
            ids_tag: NO_IDS_TAG,
        }
    }

    /// A clock over `entries` (sorted, no zeros), its ids not named yet.
    fn of_entries(entries: Vec<(ProcessId, u64)>) -> Self {
        Self {
            entries,
            ids_tag: NO_IDS_TAG,
        }
    }

    /// A clock from entries in any order. Zero counters are dropped; for a process listed twice
    /// the larger counter is kept.
    ///
    /// # Errors
    /// [`ClockError::Absurd`] if a counter exceeds [`MAX_COUNTER`].
    pub fn from_entries<I: IntoIterator<Item = (ProcessId, u64)>>(
        entries: I,
    ) -> Result<Self, ClockError> {
        let mut v: Vec<(ProcessId, u64)> = entries.into_iter().filter(|e| e.1 != 0).collect();
        if let Some(&(_, value)) = v.iter().find(|e| e.1 > MAX_COUNTER) {
            return Err(ClockError::Absurd { value });
        }
        v.sort_unstable();
        // Sorted by (id, counter): for duplicates keep the last (largest).
        v.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = later.1;
                true
            } else {
                false
            }
        });
        Ok(Self::of_entries(v))
    }

    /// Builds from entries already sorted by id, without zeros or duplicates.
    pub(crate) fn from_sorted_unchecked(entries: Vec<(ProcessId, u64)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        debug_assert!(entries.iter().all(|e| e.1 != 0));
        Self::of_entries(entries)
    }

    /// The counter of `process` (0 when absent).
    pub fn get(&self, process: ProcessId) -> u64 {
        match self.entries.binary_search_by_key(&process, |e| e.0) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// A local or send event at `process`: increment its own entry, returning the new value.
    pub fn tick(&mut self, process: ProcessId) -> u64 {
        match self.entries.binary_search_by_key(&process, |e| e.0) {
            Ok(i) => {
                self.entries[i].1 += 1;
                self.entries[i].1
            }
            Err(i) => {
                self.entries.insert(i, (process, 1));
                self.ids_tag = NO_IDS_TAG;
                1
            }
        }
    }

    /// [`tick`](Self::tick) with a remembered position of `process`'s entry, checked first:
    /// O(1) for a process ticking its own entry again and again.
    #[inline]
    pub fn tick_hinted(&mut self, process: ProcessId, hint: &mut usize) -> u64 {
        if let Some(e) = self.entries.get_mut(*hint)
            && e.0 == process
        {
            e.1 += 1;
            return e.1;
        }
        let v = self.tick(process);
        if let Ok(i) = self.entries.binary_search_by_key(&process, |e| e.0) {
            *hint = i;
        }
        v
    }

    /// Pointwise maximum with `other` (the merge on receive, before the receiver's tick).
    ///
    /// Counters above [`MAX_COUNTER`] cannot occur in a clock built by this crate; for clocks
    /// from untrusted input use [`try_merge`](Self::try_merge).
    #[inline]
    pub fn merge(&mut self, other: &VectorClock) {
        // Fastest path: ids known to be the same (the same tag): counters paired by position.
        if self.ids_tag != NO_IDS_TAG && self.ids_tag == other.ids_tag {
            debug_assert_eq!(self.entries.len(), other.entries.len());
            // Most counters are equal in the steady state: a store only where `other` is ahead.
            for (a, b) in self.entries.iter_mut().zip(&other.entries) {
                debug_assert_eq!(a.0, b.0);
                if b.1 > a.1 {
                    a.1 = b.1;
                }
            }
            return;
        }
        self.merge_other_ids(other);
    }

    /// [`merge`](Self::merge) when the ids are not known to be the same.
    #[inline(never)]
    fn merge_other_ids(&mut self, other: &VectorClock) {
        // Next: the same processes on both sides, found by comparing them in one pass in
        // lockstep; then the two sets share a tag, so the next merge between them is the path
        // above.
        if self.entries.len() == other.entries.len() {
            let mut same = true;
            for (a, b) in self.entries.iter_mut().zip(&other.entries) {
                if a.0 != b.0 {
                    same = false;
                    break;
                }
                a.1 = a.1.max(b.1);
            }
            if same {
                self.ids_tag = match (other.ids_tag, self.ids_tag) {
                    (NO_IDS_TAG, NO_IDS_TAG) => fresh_ids_tag(),
                    (NO_IDS_TAG, own) => own,
                    (theirs, _) => theirs,
                };
                return;
            }
        }
        // Fast path: every id of `other` is already here.
        let mut i = 0;
        let mut all_present = true;
        for &(p, c) in &other.entries {
            while i < self.entries.len() && self.entries[i].0 < p {
                i += 1;
            }
            if i < self.entries.len() && self.entries[i].0 == p {
                if c > self.entries[i].1 {
                    self.entries[i].1 = c;
                }
                i += 1;
            } else {
                all_present = false;
            }
        }
        if all_present {
            return;
        }
        let mut out = Vec::with_capacity(self.entries.len() + other.entries.len());
        let (mut a, mut b) = (
            self.entries.iter().peekable(),
            other.entries.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) => match x.0.cmp(&y.0) {
                    Ordering::Less => {
                        out.push(x);
                        a.next();
                    }
                    Ordering::Greater => {
                        out.push(y);
                        b.next();
                    }
                    Ordering::Equal => {
                        out.push((x.0, x.1.max(y.1)));
                        a.next();
                        b.next();
                    }
                },
                (Some(&&x), None) => {
                    out.push(x);
                    a.next();
                }
                (None, Some(&&y)) => {
                    out.push(y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        // New ids: the merged set is `other`'s when it has no more entries (it holds all of them).
        self.ids_tag = if out.len() == other.entries.len() {
            other.ids_tag
        } else {
            NO_IDS_TAG
        };
        self.entries = out;
    }

    /// [`merge`](Self::merge) for a clock from untrusted input.
    ///
    /// # Errors
    /// [`ClockError::Absurd`] if `other` holds a counter above [`MAX_COUNTER`]; `self` is unchanged.
    pub fn try_merge(&mut self, other: &VectorClock) -> Result<(), ClockError> {
        if let Some(value) = other.max_counter().filter(|&v| v > MAX_COUNTER) {
            return Err(ClockError::Absurd { value });
        }
        self.merge(other);
        Ok(())
    }

    /// The largest counter, if any.
    pub fn max_counter(&self) -> Option<u64> {
        self.entries.iter().map(|e| e.1).max()
    }

    /// How `self` relates to `other`: [`CausalOrder::Before`] when `self → other`.
    pub fn compare(&self, other: &VectorClock) -> CausalOrder {
        let (mut less, mut greater) = (false, false);
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &other.entries);
        while i < a.len() || j < b.len() {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => Ordering::Less,
                (None, _) => Ordering::Greater,
            };
            match ord {
                // Entry only in self (other has 0 there): self is greater there.
                Ordering::Less => {
                    greater = true;
                    i += 1;
                }
                Ordering::Greater => {
                    less = true;
                    j += 1;
                }
                Ordering::Equal => {
                    match a[i].1.cmp(&b[j].1) {
                        Ordering::Less => less = true,
                        Ordering::Greater => greater = true,
                        Ordering::Equal => {}
                    }
                    i += 1;
                    j += 1;
                }
            }
            if less && greater {
                return CausalOrder::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => CausalOrder::Equal,
            (true, false) => CausalOrder::Before,
            (false, true) => CausalOrder::After,
            (true, true) => CausalOrder::Concurrent,
        }
    }

    /// Whether `self → other` (strictly).
    pub fn happened_before(&self, other: &VectorClock) -> bool {
        self.compare(other) == CausalOrder::Before
    }

    /// Whether neither clock happened before the other and they differ.
    pub fn concurrent_with(&self, other: &VectorClock) -> bool {
        self.compare(other) == CausalOrder::Concurrent
    }

    /// Whether every entry of `self` is at least that of `other` (`other ≤ self`).
    pub fn dominates(&self, other: &VectorClock) -> bool {
        matches!(self.compare(other), CausalOrder::After | CausalOrder::Equal)
    }

    /// The non-zero entries, sorted by process id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (ProcessId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// The non-zero entries as a slice, sorted by process id.
    pub fn as_slice(&self) -> &[(ProcessId, u64)] {
        &self.entries
    }

    /// Number of non-zero entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether every entry is 0.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of all counters: the number of events in the causal past (including the event itself).
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.1).sum()
    }

    /// Entries of `self` that are larger than in `since`: what a peer that last saw `since`
    /// needs to rebuild `self` (Singhal–Kshemkalyani differential encoding).
    pub fn changed_since(&self, since: &VectorClock) -> VectorClock {
        let mut out = VectorClock::new();
        self.changed_since_into(since, &mut out);
        out
    }

    /// [`changed_since`](Self::changed_since) into `out` (its previous entries replaced, its
    /// room reused): one pass over both clocks in step.
    pub fn changed_since_into(&self, since: &VectorClock, out: &mut VectorClock) {
        out.entries.clear();
        out.ids_tag = NO_IDS_TAG;
        let mut j = 0;
        for &(p, c) in &self.entries {
            while j < since.entries.len() && since.entries[j].0 < p {
                j += 1;
            }
            let seen = match since.entries.get(j) {
                Some(&(q, d)) if q == p => d,
                _ => 0,
            };
            if seen < c {
                out.entries.push((p, c));
            }
        }
    }
}

impl TryFrom<Vec<(ProcessId, u64)>> for VectorClock {
    type Error = ClockError;
    fn try_from(v: Vec<(ProcessId, u64)>) -> Result<Self, ClockError> {
        Self::from_entries(v)
    }
}

impl From<VectorClock> for Vec<(ProcessId, u64)> {
    fn from(v: VectorClock) -> Self {
        v.entries
    }
}

impl fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(p, c)| (p.to_string(), c)))
            .finish()
    }
}

impl fmt::Display for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u32) -> ProcessId {
        ProcessId::new(0, n)
    }

    fn vc(e: &[(u32, u64)]) -> VectorClock {
        VectorClock::from_entries(e.iter().map(|&(n, c)| (p(n), c))).unwrap()
    }

    #[test]
    fn missing_entry_is_zero() {
        let v = vc(&[(1, 3)]);
        assert_eq!(v.get(p(1)), 3);
        assert_eq!(v.get(p(2)), 0);
        assert_eq!(vc(&[(1, 0), (2, 0)]), VectorClock::new());
    }

    #[test]
    fn compare_all_four_cases() {
        assert_eq!(vc(&[(1, 1)]).compare(&vc(&[(1, 2)])), CausalOrder::Before);
        assert_eq!(
            vc(&[(1, 2), (2, 1)]).compare(&vc(&[(1, 2)])),
            CausalOrder::After
        );
        assert_eq!(vc(&[(1, 2)]).compare(&vc(&[(1, 2)])), CausalOrder::Equal);
        assert_eq!(
            vc(&[(1, 1)]).compare(&vc(&[(2, 1)])),
            CausalOrder::Concurrent
        );
        assert_eq!(
            VectorClock::new().compare(&vc(&[(2, 1)])),
            CausalOrder::Before
        );
    }

    #[test]
    fn merge_takes_pointwise_max() {
        let mut a = vc(&[(1, 3), (3, 1)]);
        a.merge(&vc(&[(1, 1), (2, 5), (3, 2)]));
        assert_eq!(a, vc(&[(1, 3), (2, 5), (3, 2)]));
        let mut b = vc(&[(1, 3), (2, 1)]);
        b.merge(&vc(&[(2, 4)]));
        assert_eq!(b, vc(&[(1, 3), (2, 4)]));
    }

    #[test]
    fn try_merge_refuses_absurd_and_keeps_clock() {
        let mut a = vc(&[(1, 3)]);
        let bad = VectorClock::from_sorted_unchecked(vec![(p(2), u64::MAX)]);
        assert_eq!(
            a.try_merge(&bad),
            Err(ClockError::Absurd { value: u64::MAX })
        );
        assert_eq!(a, vc(&[(1, 3)]));
    }

    #[test]
    fn changed_since_keeps_only_grown_entries() {
        let now = vc(&[(1, 3), (2, 5), (3, 2)]);
        assert_eq!(
            now.changed_since(&vc(&[(1, 3), (2, 4)])),
            vc(&[(2, 5), (3, 2)])
        );
    }
}
