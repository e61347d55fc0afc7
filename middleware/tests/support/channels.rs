//! The network of the stateright models: messages in flight per `(src, dst)` channel, kept in
//! send order (FIFO channels) or sorted (an unordered multiset, so that two states holding the
//! same messages are one state).

use std::collections::BTreeMap;

/// Messages in flight between nodes `0..N`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Channels<M> {
    fifo: bool,
    chans: BTreeMap<(usize, usize), Vec<M>>,
}

impl<M: Clone + Ord> Channels<M> {
    /// An empty network; `fifo` chooses the channels' discipline.
    pub fn new(fifo: bool) -> Self {
        Self {
            fifo,
            chans: BTreeMap::new(),
        }
    }

    /// `src` sends `msg` to `dst`.
    pub fn push(&mut self, src: usize, dst: usize, msg: M) {
        let ch = self.chans.entry((src, dst)).or_default();
        if self.fifo {
            ch.push(msg);
        } else {
            let at = ch.binary_search(&msg).unwrap_or_else(|e| e);
            ch.insert(at, msg);
        }
    }

    /// The messages that may be delivered next: each channel's head (FIFO), or every distinct
    /// message in it (unordered).
    pub fn deliverable(&self) -> Vec<(usize, usize, M)> {
        let mut out = Vec::new();
        for (&(src, dst), msgs) in &self.chans {
            let candidates: &[M] = if self.fifo { &msgs[..1] } else { msgs };
            let mut last: Option<&M> = None;
            for m in candidates {
                if last != Some(m) {
                    out.push((src, dst, m.clone()));
                }
                last = Some(m);
            }
        }
        out
    }

    /// Removes one copy of `msg` from channel `(src, dst)`; `None` if it is not there.
    pub fn take(&mut self, src: usize, dst: usize, msg: &M) -> Option<M> {
        let ch = self.chans.get_mut(&(src, dst))?;
        let at = ch.iter().position(|m| m == msg)?;
        let m = ch.remove(at);
        if ch.is_empty() {
            self.chans.remove(&(src, dst));
        }
        Some(m)
    }

    /// Drops every message towards `dst` (a crashed node receives nothing).
    pub fn drop_to(&mut self, dst: usize) {
        self.chans.retain(|&(_, d), _| d != dst);
    }

    /// Drops every message from `src` (its connections broke: what was in flight is lost).
    pub fn drop_from(&mut self, src: usize) {
        self.chans.retain(|&(s, _), _| s != src);
    }

    /// Drops every message still in channel `(src, dst)` (its connection broke: what had not
    /// arrived is lost).
    pub fn drop_channel(&mut self, src: usize, dst: usize) {
        self.chans.remove(&(src, dst));
    }

    /// Whether channel `(src, dst)` holds a message.
    pub fn has(&self, src: usize, dst: usize) -> bool {
        self.chans.contains_key(&(src, dst))
    }

    /// Drops every message between `a` and `b`, both ways (their connection broke).
    pub fn drop_between(&mut self, a: usize, b: usize) {
        self.chans
            .retain(|&(s, d), _| (s, d) != (a, b) && (s, d) != (b, a));
    }

    /// Every message in flight, with its channel.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize, &M)> {
        self.chans
            .iter()
            .flat_map(|(&(s, d), msgs)| msgs.iter().map(move |m| (s, d, m)))
    }

    /// Nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.chans.is_empty()
    }
}
