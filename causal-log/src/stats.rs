//! Statistics: events and messages per process, and how concurrent the run was.

use std::fmt;

use crate::model::{Log, RECEIVE, SEND};

/// Counts for one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStats {
    /// The host's name.
    pub host: String,
    /// Events logged.
    pub events: usize,
    /// Sends.
    pub sends: usize,
    /// Receives.
    pub receives: usize,
    /// Other events (local and semantic).
    pub other: usize,
}

/// Statistics of a log (see [`Log::stats`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Per host, sorted by name.
    pub hosts: Vec<HostStats>,
    /// All events.
    pub events: usize,
    /// Messages: receives matched with their send.
    pub messages: usize,
    /// Pairs of distinct events ordered by happened-before.
    pub ordered_pairs: u128,
    /// Pairs of distinct events that are concurrent.
    pub concurrent_pairs: u128,
    /// `concurrent_pairs / all pairs` (0 when there are fewer than two events).
    pub concurrency_ratio: f64,
}

impl Log {
    /// Events and messages per host and the concurrency ratio, in O(events × hosts): each event's
    /// causal past is counted from its vector clock.
    pub fn stats(&self) -> Stats {
        let evs = self.events();
        let mut hosts = Vec::new();
        for h in self.hosts_by_name() {
            let seq = self.host_events(h);
            let sends = seq.iter().filter(|&&i| evs[i].kind == SEND).count();
            let receives = seq.iter().filter(|&&i| evs[i].kind == RECEIVE).count();
            hosts.push(HostStats {
                host: self.host_name(h).to_owned(),
                events: seq.len(),
                sends,
                receives,
                other: seq.len() - sends - receives,
            });
        }
        let mut ordered: u128 = 0;
        for (i, e) in evs.iter().enumerate() {
            let mut past = self.position(i) as u128; // earlier events of its own host
            for &(g, v) in &e.clock {
                if g == e.host {
                    continue;
                }
                past += self.count_upto(g, v) as u128;
            }
            ordered += past;
        }
        let n = evs.len() as u128;
        let all = n * n.saturating_sub(1) / 2;
        let ordered = ordered.min(all);
        Stats {
            hosts,
            events: evs.len(),
            messages: self.messages().len(),
            ordered_pairs: ordered,
            concurrent_pairs: all - ordered,
            concurrency_ratio: if all == 0 {
                0.0
            } else {
                (all - ordered) as f64 / all as f64
            },
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .hosts
            .iter()
            .map(|h| h.host.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:w$}  {:>7}  {:>7}  {:>8}  {:>7}",
            "host", "events", "sends", "receives", "other"
        )?;
        for h in &self.hosts {
            writeln!(
                f,
                "{:w$}  {:>7}  {:>7}  {:>8}  {:>7}",
                h.host, h.events, h.sends, h.receives, h.other
            )?;
        }
        writeln!(f, "events: {}, messages: {}", self.events, self.messages)?;
        write!(
            f,
            "concurrency: {} of {} event pairs concurrent (ratio {:.3})",
            self.concurrent_pairs,
            self.concurrent_pairs + self.ordered_pairs,
            self.concurrency_ratio
        )
    }
}
