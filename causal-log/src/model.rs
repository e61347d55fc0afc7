//! The event model: hosts, events, per-host sequences, message pairing and happened-before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::check::{Finding, Rule, Severity};
use crate::read::{self, ReadError};

/// Kind of a send event.
pub(crate) const SEND: &str = "send";
/// Kind of a receive event.
pub(crate) const RECEIVE: &str = "receive";
/// Kind of a local event.
pub(crate) const LOCAL: &str = "local";

/// Index of a host in [`Log::hosts`]; in a [`Log`], hosts are numbered in name order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub u32);

impl HostId {
    fn ix(self) -> usize {
        self.0 as usize
    }
}

/// Where an event was read: the file name as given and the 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file name, as given to the reader.
    pub file: Arc<str>,
    /// The 1-based line of the event (for two-line formats, the line holding the clock).
    pub line: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One logged event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The process the event happened on.
    pub host: HostId,
    /// The process id `node.local`, when the log has one.
    pub process: Option<String>,
    /// `send`, `receive`, `local` or a semantic kind such as `lock.enter`; for ShiViz and
    /// GoVector input, inferred from the pairing (`send`, `receive` or `local`).
    pub kind: String,
    /// The human-readable text of the event.
    pub text: String,
    /// The vector clock after the event, sorted by host, zero entries left out.
    pub clock: Vec<(HostId, u64)>,
    /// The logged Lamport time, if any.
    pub lamport: Option<u64>,
    /// The logged hybrid logical clock, if any.
    pub hlc: Option<u64>,
    /// The message id of a send or receive (`<sender host>:<sender counter>`).
    pub msg: Option<String>,
    /// The sender's host, for a receive.
    pub peer: Option<String>,
    /// The event's fields (`resource`, `fence`, `leader`, `term`, user fields).
    pub fields: Map<String, Value>,
    /// Where the event was read.
    pub source: Source,
    /// Whether kind and message id were logged (JSON lines) rather than inferred.
    pub rich: bool,
}

impl Event {
    /// The clock entry of `host` (0 when absent).
    pub fn clock_of(&self, host: HostId) -> u64 {
        match self.clock.binary_search_by_key(&host, |&(h, _)| h) {
            Ok(i) => self.clock[i].1,
            Err(_) => 0,
        }
    }

    /// The event's own counter, `clock[host]`: the event is its host's `own()`-th event.
    pub fn own(&self) -> u64 {
        self.clock_of(self.host)
    }

    /// A field as a string (strings as they are, numbers and booleans printed).
    pub fn field_str(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A field as an unsigned integer (a JSON number or a decimal string).
    pub fn field_u64(&self, name: &str) -> Option<u64> {
        match self.fields.get(name)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// A host whose log ends before events that other hosts saw: see [`Log::crash_gaps`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashGap {
    /// The host whose tail is lost.
    pub host: HostId,
    /// Its last logged own counter: counters `last + 1 ..= seen_up_to` are missing.
    pub last: u64,
    /// The highest counter of the host that another host's event saw.
    pub seen_up_to: u64,
    /// The events (indices into [`Log::events`], in causal order) where a reference to the lost
    /// tail enters another host: receives of its lost sends, or of messages that carried them.
    pub refs: Vec<usize>,
}

/// Collects events from several files, then builds a [`Log`].
///
/// ```
/// let mut b = causal_log::LogBuilder::new();
/// b.add_str("a.log", "a {\"a\":1}\nstart\n")?;
/// let log = b.finish();
/// assert_eq!(log.events().len(), 1);
/// # Ok::<(), causal_log::ReadError>(())
/// ```
#[derive(Debug, Default)]
pub struct LogBuilder {
    pub(crate) hosts: Vec<String>,
    pub(crate) index: HashMap<String, HostId>,
    pub(crate) events: Vec<Event>,
    pub(crate) notes: Vec<Finding>,
}

impl LogBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one file (format recognised from its first line).
    pub fn add_path(&mut self, path: impl AsRef<Path>) -> Result<&mut Self, ReadError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ReadError::Io {
            file: name.clone(),
            reason: e.to_string(),
        })?;
        let text = read::utf8(&name, &bytes)?;
        if text.len() < bytes.len() && (text.is_empty() || text.ends_with('\n')) {
            // Only a character cut short was left on the last line.
            let line = 1 + text.bytes().filter(|&c| c == b'\n').count();
            self.notes
                .push(read::torn_note(&name, line, "a character cut short"));
        }
        self.add_str(&name, text)
    }

    /// Reads the text of one file named `name` (used in messages).
    pub fn add_str(&mut self, name: &str, text: &str) -> Result<&mut Self, ReadError> {
        read::parse_into(self, name, text)?;
        Ok(self)
    }

    pub(crate) fn host(&mut self, name: &str) -> HostId {
        if let Some(&h) = self.index.get(name) {
            return h;
        }
        let h = HostId(self.hosts.len() as u32);
        self.hosts.push(name.to_owned());
        self.index.insert(name.to_owned(), h);
        h
    }

    /// Builds the log: per-host sequences, pairing, happened-before order.
    pub fn finish(self) -> Log {
        Log::build(self)
    }
}

/// A causal log: events of several hosts, with sends paired to receives and a linear extension
/// of happened-before.
#[derive(Debug, Clone)]
pub struct Log {
    hosts: Vec<String>,
    events: Vec<Event>,
    by_host: Vec<Vec<usize>>,
    owns: Vec<Vec<u64>>,
    own: Vec<u64>,
    pos: Vec<u32>,
    send_of: Vec<Option<usize>>,
    order: Vec<usize>,
    rank: Vec<u32>,
    lamport: Vec<u64>,
    pub(crate) notes: Vec<Finding>,
}

impl Log {
    /// Reads and merges the given files (JSON lines, ShiViz or GoVector, recognised per file).
    ///
    /// ```no_run
    /// let log = causal_log::Log::read_paths(&["target/tour/node0.jsonl", "target/tour/node1.jsonl"])?;
    /// let report = log.check();
    /// assert!(report.is_clean(), "{report}");
    /// # Ok::<(), causal_log::ReadError>(())
    /// ```
    pub fn read_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Log, ReadError> {
        let mut b = LogBuilder::new();
        for p in paths {
            b.add_path(p)?;
        }
        Ok(b.finish())
    }

    /// Parses the text of one file named `name` (used in messages).
    pub fn parse_str(name: &str, text: &str) -> Result<Log, ReadError> {
        let mut b = LogBuilder::new();
        b.add_str(name, text)?;
        Ok(b.finish())
    }

    /// The events, in the order read (duplicates read twice removed). Use [`Log::order`] for a
    /// causal order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Host names, indexed by [`HostId`].
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The name of a host.
    pub fn host_name(&self, h: HostId) -> &str {
        &self.hosts[h.ix()]
    }

    /// A host by name.
    pub fn host_id(&self, name: &str) -> Option<HostId> {
        self.hosts
            .binary_search_by(|n| n.as_str().cmp(name))
            .ok()
            .map(|i| HostId(i as u32))
    }

    /// Host ids sorted by name.
    pub fn hosts_by_name(&self) -> Vec<HostId> {
        (0..self.hosts.len() as u32).map(HostId).collect()
    }

    /// The events of one host (indices into [`Log::events`]), ordered by their own counter.
    pub fn host_events(&self, h: HostId) -> &[usize] {
        &self.by_host[h.ix()]
    }

    /// The position (0-based) of event `i` in its host's sequence.
    pub fn position(&self, i: usize) -> usize {
        self.pos[i] as usize
    }

    /// The send that receive `i` merges, if known.
    pub fn send_of(&self, i: usize) -> Option<usize> {
        self.send_of[i]
    }

    /// The previous event on the same host.
    pub fn predecessor(&self, i: usize) -> Option<usize> {
        let p = self.pos[i] as usize;
        (p > 0).then(|| self.by_host[self.events[i].host.ix()][p - 1])
    }

    /// All events in a linear extension of happened-before, ties broken by (lamport, host).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The position of event `i` in [`Log::order`].
    pub fn rank(&self, i: usize) -> usize {
        self.rank[i] as usize
    }

    /// The Lamport time of event `i`: the logged one, else one computed from the pairing.
    pub fn lamport(&self, i: usize) -> u64 {
        self.lamport[i]
    }

    /// The id of event `i`: `host:k` where k is its own counter.
    pub fn event_id(&self, i: usize) -> String {
        let e = &self.events[i];
        format!("{}:{}", self.hosts[e.host.ix()], self.own[i])
    }

    /// A short description of event `i` for reports: id, text and where it was read.
    pub fn describe(&self, i: usize) -> String {
        let e = &self.events[i];
        format!("{} \"{}\" ({})", self.event_id(i), e.text, e.source)
    }

    /// The event with id `host:k`.
    pub fn find(&self, id: &str) -> Option<usize> {
        let (host, k) = id.rsplit_once(':')?;
        let k: u64 = k.parse().ok()?;
        let h = self.host_id(host)?;
        self.find_own(h, k)
    }

    /// The own counter of event `i` (see [`Event::own`]).
    pub fn own(&self, i: usize) -> u64 {
        self.own[i]
    }

    /// How many events of host `h` have an own counter of at most `k`.
    pub(crate) fn count_upto(&self, h: HostId, k: u64) -> usize {
        self.owns[h.ix()].partition_point(|&o| o <= k)
    }

    /// Events selected by `pattern`, in causal order:
    /// * `host:k`: the event with that id, if there is one;
    /// * `key=value`: the events whose field `key` is `value` (strings as they are, numbers and
    ///   booleans printed, other values as JSON), or whose `kind`, `host`, `msg` or `peer` is
    ///   `value` for those keys (a field of that name wins); when no event has such a key, the
    ///   pattern is text;
    /// * otherwise, every event whose text or one of whose field values contains `pattern`.
    ///
    /// ```
    /// let text = r#"{"host":"a","kind":"lock.enter","event":"enter","clock":{"a":1},"fields":{"resource":"printer","fence":7}}
    /// {"host":"a","event":"print","clock":{"a":2},"fields":{"page":"printer test page"}}
    /// "#;
    /// let log = causal_log::Log::parse_str("run.jsonl", text)?;
    /// assert_eq!(log.select("fence=7").len(), 1);
    /// assert_eq!(log.select("kind=lock.enter").len(), 1);
    /// assert_eq!(log.select("printer").len(), 2); // a field value of both
    /// assert_eq!(log.select("a:2"), log.select("test page"));
    /// # Ok::<(), causal_log::ReadError>(())
    /// ```
    pub fn select(&self, pattern: &str) -> Vec<usize> {
        if let Some(i) = self.find(pattern) {
            return vec![i];
        }
        if let Some((key, value)) = pattern.split_once('=')
            && !key.is_empty()
            && !key.contains(char::is_whitespace)
        {
            let pseudo = matches!(key, "kind" | "host" | "msg" | "peer");
            let has_key = pseudo || self.events.iter().any(|e| e.fields.contains_key(key));
            if has_key {
                return self
                    .order
                    .iter()
                    .copied()
                    .filter(|&i| self.key_is(i, key, value))
                    .collect();
            }
        }
        self.order
            .iter()
            .copied()
            .filter(|&i| {
                let e = &self.events[i];
                e.text.contains(pattern)
                    || e.fields.values().any(|v| match v {
                        Value::String(s) => s.contains(pattern),
                        other => other.to_string().contains(pattern),
                    })
            })
            .collect()
    }

    /// Whether event `i`'s field `key` (else its `kind`, `host`, `msg` or `peer`) is `value`.
    fn key_is(&self, i: usize, key: &str, value: &str) -> bool {
        let e = &self.events[i];
        if let Some(v) = e.fields.get(key) {
            return match v {
                Value::String(s) => s == value,
                // Numbers and booleans as printed: `fence=7` matches the number 7.
                other => {
                    let printed = other.to_string();
                    printed == value
                }
            };
        }
        match key {
            "kind" => e.kind == value,
            "host" => self.hosts[e.host.ix()] == value,
            "msg" => e.msg.as_deref() == Some(value),
            "peer" => e.peer.as_deref() == Some(value),
            _ => false,
        }
    }

    /// Whether event `a` happened before event `b` (Lamport's →): on one host, `a` comes first;
    /// across hosts, `b`'s clock has seen `a` (`b.clock[a.host] >= a.own()`).
    pub fn happened_before(&self, a: usize, b: usize) -> bool {
        if a == b {
            return false;
        }
        let (ea, eb) = (&self.events[a], &self.events[b]);
        if ea.host == eb.host {
            return self.pos[a] < self.pos[b];
        }
        let own = self.own[a];
        own > 0 && eb.clock_of(ea.host) >= own
    }

    /// Whether two distinct events are concurrent (neither happened before the other).
    pub fn concurrent(&self, a: usize, b: usize) -> bool {
        a != b && !self.happened_before(a, b) && !self.happened_before(b, a)
    }

    /// The receives of each send, as (send, receive) pairs in causal order of the receive.
    pub fn messages(&self) -> Vec<(usize, usize)> {
        self.order
            .iter()
            .filter_map(|&r| self.send_of[r].map(|s| (s, r)))
            .collect()
    }

    fn build(b: LogBuilder) -> Log {
        let LogBuilder {
            mut hosts,
            mut events,
            mut notes,
            ..
        } = b;
        // Number hosts in name order, so that clocks sorted by id are sorted by name.
        let nh = hosts.len();
        let mut names: Vec<usize> = (0..nh).collect();
        names.sort_by(|&x, &y| hosts[x].cmp(&hosts[y]));
        if names.iter().enumerate().any(|(r, &h)| r != h) {
            let mut rank = vec![0u32; nh];
            for (r, &h) in names.iter().enumerate() {
                rank[h] = r as u32;
            }
            for e in &mut events {
                e.host = HostId(rank[e.host.ix()]);
                for c in &mut e.clock {
                    c.0 = HostId(rank[c.0.ix()]);
                }
                if !e.clock.is_sorted_by_key(|c| c.0) {
                    e.clock.sort_unstable();
                }
            }
            hosts = names
                .iter()
                .map(|&h| std::mem::take(&mut hosts[h]))
                .collect();
        }

        // Per-host sequences sorted by own counter; drop exact duplicates (same file read twice,
        // or the JSON lines and ShiViz file of one run), preferring the richer one.
        let mut seqs: Vec<Vec<usize>> = vec![Vec::new(); nh];
        for (i, e) in events.iter().enumerate() {
            seqs[e.host.ix()].push(i);
        }
        let own0: Vec<u64> = events.iter().map(Event::own).collect();
        let mut keep = vec![true; events.len()];
        let mut dups = 0usize;
        for seq in &mut seqs {
            seq.sort_unstable_by_key(|&i| (own0[i], !events[i].rich, i));
            let mut k = 0;
            while k < seq.len() {
                let mut j = k + 1;
                while j < seq.len() && own0[seq[j]] == own0[seq[k]] {
                    if own0[seq[j]] > 0 && events[seq[j]].clock == events[seq[k]].clock {
                        keep[seq[j]] = false;
                        dups += 1;
                    }
                    j += 1;
                }
                k = j;
            }
        }
        if dups > 0 {
            notes.push(Finding {
                severity: Severity::Note,
                rule: Rule::Input,
                message: format!(
                    "{dups} event(s) read twice (same host, counter and clock) were merged"
                ),
            });
        }
        let (events, remap, own) = if dups == 0 {
            let remap: Vec<usize> = (0..events.len()).collect();
            (events, remap, own0)
        } else {
            let mut remap = vec![usize::MAX; events.len()];
            let mut evs = Vec::with_capacity(events.len());
            let mut own = Vec::with_capacity(events.len());
            for (i, e) in events.into_iter().enumerate() {
                if keep[i] {
                    remap[i] = evs.len();
                    evs.push(e);
                    own.push(own0[i]);
                }
            }
            (evs, remap, own)
        };
        let n = events.len();
        let by_host: Vec<Vec<usize>> = seqs
            .into_iter()
            .map(|s| {
                s.into_iter()
                    .filter(|&i| keep[i])
                    .map(|i| remap[i])
                    .collect()
            })
            .collect();
        let mut pos = vec![0u32; n];
        for seq in &by_host {
            for (p, &i) in seq.iter().enumerate() {
                pos[i] = p as u32;
            }
        }

        let owns = by_host
            .iter()
            .map(|s| s.iter().map(|&i| own[i]).collect())
            .collect();
        let mut log = Log {
            hosts,
            events,
            by_host,
            owns,
            own,
            pos,
            send_of: vec![None; n],
            order: Vec::new(),
            rank: vec![0; n],
            lamport: vec![0; n],
            notes,
        };
        log.pair();
        log.linearize();
        log
    }

    /// Pairs receives with sends: by message id when logged, else from the clocks.
    fn pair(&mut self) {
        let n = self.events.len();
        let mut sends: HashMap<&str, usize> = HashMap::new();
        let mut dup_msgs = 0usize;
        for (i, e) in self.events.iter().enumerate() {
            if e.kind != SEND {
                continue;
            }
            if let Some(m) = &e.msg
                && sends.insert(m.as_str(), i).is_some()
            {
                dup_msgs += 1;
            }
        }
        let mut unmatched: Vec<usize> = Vec::new();
        let mut infer: Vec<usize> = Vec::new();
        let mut send_of = vec![None; n];
        for (i, e) in self.events.iter().enumerate() {
            let is_recv = e.kind == RECEIVE || e.peer.is_some();
            match (&e.msg, is_recv) {
                (Some(m), true) => match sends.get(m.as_str()) {
                    Some(&s) => send_of[i] = Some(s),
                    None => unmatched.push(i),
                },
                (None, true) => infer.push(i),
                _ if !e.rich => infer.push(i),
                _ => {}
            }
        }
        drop(sends);
        for i in infer {
            send_of[i] = self.infer_send(i);
        }
        self.send_of = send_of;
        // Name inferred messages so they can be written as JSON lines.
        for i in 0..n {
            if self.events[i].rich {
                continue;
            }
            if let Some(s) = self.send_of[i] {
                let id = self.event_id(s);
                let peer = self.hosts[self.events[s].host.ix()].clone();
                let e = &mut self.events[i];
                e.kind = RECEIVE.into();
                e.msg = Some(id.clone());
                e.peer = Some(peer);
                let se = &mut self.events[s];
                if !se.rich {
                    se.kind = SEND.into();
                    se.msg = Some(id);
                }
            }
        }
        if dup_msgs > 0 {
            self.notes.push(Finding {
                severity: Severity::Warning,
                rule: Rule::Input,
                message: format!("{dup_msgs} send(s) reuse a message id already sent"),
            });
        }
        for i in unmatched {
            if self.lost_tail_send(i).is_some() {
                continue; // reported with the host's crash gap
            }
            let m = self.events[i].msg.clone().unwrap_or_default();
            self.notes.push(Finding {
                severity: Severity::Warning,
                rule: Rule::Gap,
                message: format!(
                    "{} receives message {m} whose send is not in the log",
                    self.describe(i)
                ),
            });
        }
    }

    /// The last own counter of host `h` in the log (0 when it has no events).
    pub fn last_own(&self, h: HostId) -> u64 {
        self.owns[h.ix()].last().copied().unwrap_or(0)
    }

    /// For a receive whose send is not in the log: the sender and counter its message id
    /// names, when the sender has events but none that late (the send was in its lost tail).
    fn lost_tail_send(&self, i: usize) -> Option<(HostId, u64)> {
        let (host, k) = self.events[i].msg.as_deref()?.rsplit_once(':')?;
        let k: u64 = k.parse().ok()?;
        let h = self.host_id(host)?;
        let last = self.last_own(h);
        (last > 0 && k > last && self.send_of[i].is_none()).then_some((h, k))
    }

    /// Crash gaps: hosts whose log ends before events that other hosts saw. When a process
    /// dies before its log is flushed (`kill -9`), the others' receives and clocks refer to
    /// counters beyond its last logged event; each such host is reported once, with the range
    /// of counters lost and the events where the references enter other hosts. A host with no
    /// events at all is not a crash gap (its file was probably not given).
    pub fn crash_gaps(&self) -> Vec<CrashGap> {
        let nh = self.hosts.len();
        let last: Vec<u64> = (0..nh).map(|h| self.last_own(HostId(h as u32))).collect();
        let mut gaps: Vec<Option<CrashGap>> = vec![None; nh];
        let note = |gaps: &mut Vec<Option<CrashGap>>, g: HostId, v: u64, i: usize| {
            let gap = gaps[g.ix()].get_or_insert_with(|| CrashGap {
                host: g,
                last: last[g.ix()],
                seen_up_to: v,
                refs: Vec::new(),
            });
            gap.seen_up_to = gap.seen_up_to.max(v);
            if gap.refs.last() != Some(&i) {
                gap.refs.push(i);
            }
        };
        for &i in &self.order {
            let e = &self.events[i];
            let pred = self.predecessor(i).map(|p| &self.events[p]);
            for &(g, v) in &e.clock {
                let l = last[g.ix()];
                if g == e.host || l == 0 || v <= l {
                    continue;
                }
                // Where the reference enters this host (not every later event that inherits it).
                if pred.is_none_or(|p| p.clock_of(g) < v) {
                    note(&mut gaps, g, v, i);
                }
            }
            if let Some((g, k)) = self.lost_tail_send(i) {
                note(&mut gaps, g, k, i);
            }
        }
        gaps.into_iter().flatten().collect()
    }

    /// ShiViz's inference: the entries that grew since the predecessor came with a message; its
    /// send is the sender's event at the new counter whose clock covers all grown entries.
    fn infer_send(&self, i: usize) -> Option<usize> {
        let e = &self.events[i];
        let pred = self.predecessor(i).map(|p| &self.events[p]);
        let grown: Vec<(HostId, u64)> = e
            .clock
            .iter()
            .copied()
            .filter(|&(g, v)| g != e.host && v > pred.map_or(0, |p| p.clock_of(g)))
            .collect();
        let mut first = None;
        for &(g, v) in &grown {
            let Some(s) = self.find_own(g, v) else {
                continue;
            };
            first.get_or_insert(s);
            let se = &self.events[s];
            if grown.iter().all(|&(g2, v2)| se.clock_of(g2) >= v2) {
                return Some(s);
            }
        }
        // No logged send covers what came in, and some of it is beyond its host's last logged
        // event: the send was in a crashed host's lost tail (a crash gap), not a logged one.
        if grown.iter().any(|&(g, v)| {
            let last = self.last_own(g);
            last > 0 && v > last
        }) {
            return None;
        }
        first
    }

    fn find_own(&self, h: HostId, k: u64) -> Option<usize> {
        let owns = &self.owns[h.ix()];
        let j = owns.partition_point(|&o| o < k);
        (owns.get(j) == Some(&k)).then(|| self.by_host[h.ix()][j])
    }

    /// Kahn's algorithm over host order and send→receive edges, ready events taken by
    /// (lamport, host name, counter). Events left on a cycle (corrupt clocks) are appended.
    fn linearize(&mut self) {
        let n = self.events.len();
        let mut indeg = vec![0u8; n];
        let mut recv_count = vec![0u32; n + 1];
        for (i, d) in indeg.iter_mut().enumerate() {
            if self.pos[i] > 0 {
                *d += 1;
            }
            match self.send_of[i] {
                Some(s) if s != i => {
                    *d += 1;
                    recv_count[s + 1] += 1;
                }
                _ => {}
            }
        }
        for i in 0..n {
            recv_count[i + 1] += recv_count[i];
        }
        let mut fill = recv_count.clone();
        let mut receivers = vec![0usize; recv_count[n] as usize];
        for i in 0..n {
            match self.send_of[i] {
                Some(s) if s != i => {
                    receivers[fill[s] as usize] = i;
                    fill[s] += 1;
                }
                _ => {}
            }
        }
        let mut derived = vec![0u64; n];
        let mut done = vec![false; n];
        let key = |log: &Log, derived: &[u64], i: usize| {
            let e = &log.events[i];
            Reverse((e.lamport.unwrap_or(derived[i]), e.host, log.own[i], i))
        };
        let mut heap = BinaryHeap::new();
        for i in 0..n {
            if indeg[i] == 0 {
                derived[i] = 1;
                heap.push(key(self, &derived, i));
            }
        }
        let mut order = Vec::with_capacity(n);
        loop {
            while let Some(Reverse((_, _, _, i))) = heap.pop() {
                done[i] = true;
                order.push(i);
                let d = derived[i];
                let h = self.events[i].host.ix();
                let p = self.pos[i] as usize + 1;
                let next = self.by_host[h].get(p).copied();
                let rs = &receivers[recv_count[i] as usize..recv_count[i + 1] as usize];
                for j in next.into_iter().chain(rs.iter().copied()) {
                    derived[j] = derived[j].max(d + 1);
                    if indeg[j] == 0 {
                        continue; // released from a cycle earlier
                    }
                    indeg[j] -= 1;
                    if indeg[j] == 0 {
                        heap.push(key(self, &derived, j));
                    }
                }
            }
            if order.len() == n {
                break;
            }
            // A cycle: release the smallest remaining event and go on.
            let i = (0..n)
                .filter(|&i| !done[i] && indeg[i] > 0)
                .min_by_key(|&i| std::cmp::Reverse(key(self, &derived, i)))
                .expect("some event is left");
            if !self.notes.iter().any(|f| f.rule == Rule::Cycle) {
                self.notes.push(Finding {
                    severity: Severity::Error,
                    rule: Rule::Cycle,
                    message: format!(
                        "happened-before has a cycle through {} (clocks or message ids are inconsistent)",
                        self.describe(i)
                    ),
                });
            }
            indeg[i] = 0;
            derived[i] = derived[i].max(1);
            heap.push(key(self, &derived, i));
        }
        for (r, &i) in order.iter().enumerate() {
            self.rank[i] = r as u32;
            self.lamport[i] = self.events[i].lamport.unwrap_or(derived[i]);
        }
        self.order = order;
    }
}
