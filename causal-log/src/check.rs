//! Checks: ShiViz's rules on vector clocks, and the semantics of locks, fencing tokens and
//! leader election.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::model::{HostId, Log, RECEIVE};
use actix_coord_proto::schema::{ORDER_TOTAL, field, kind};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Information (for example, events read twice and merged).
    Note,
    /// Something is missing (a gap) but what is there is consistent.
    Warning,
    /// A rule is broken.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The rule a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Reading: skipped lines, events read twice, reused message ids.
    Input,
    /// Happened-before has a cycle: clocks or message ids contradict each other.
    Cycle,
    /// ShiViz: every host appears in its own clock.
    OwnClock,
    /// ShiViz: a host's k-th event has `clock[host] == k`; two events claim the same counter.
    Counter,
    /// Missing events: a counter skipped, a host named in a clock with no events, a receive
    /// whose send is not in the log.
    Gap,
    /// ShiViz: every clock entry names a host with events and is at most its count.
    Entry,
    /// A host's log ends before events other hosts saw (it crashed before flushing, or its
    /// log was cut): receives of sends that are not in the log, clock entries beyond its last
    /// logged event. Reported once per host with the range of counters lost.
    CrashGap,
    /// The strict rule: every clock equals the one recomputed from the host's previous event
    /// and, for a receive, the matched send.
    Recompute,
    /// Critical sections (`lock.enter` … `lock.exit`) of one resource are never concurrent.
    Mutex,
    /// Fencing tokens (`fence`) of one resource increase along happened-before.
    Fence,
    /// Leader announcements (`leader.elected`): at most one leader per term, and the terms a
    /// host recognises never go back; both per `election` field when there is one.
    Leader,
    /// Broadcast deliveries (`broadcast.deliver`): each member delivers a publisher's messages
    /// in their order without gaps, and, in a total-order group, every two members deliver
    /// their common messages in the same order.
    Broadcast,
    /// Attribution: a `scope.unscoped` event (written by actix-coord when a websocket session
    /// runs outside its process scope, so that its sends were attributed to the shared external
    /// process) is an error.
    Scope,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Input => "input",
            Rule::Cycle => "cycle",
            Rule::OwnClock => "own-clock",
            Rule::Counter => "counter",
            Rule::Gap => "gap",
            Rule::Entry => "entry",
            Rule::CrashGap => "crash-gap",
            Rule::Recompute => "recompute",
            Rule::Mutex => "mutex",
            Rule::Fence => "fence",
            Rule::Leader => "leader",
            Rule::Broadcast => "broadcast",
            Rule::Scope => "scope",
        })
    }
}

/// One finding of a check, with a message naming the events involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// The rule concerned.
    pub rule: Rule,
    /// What was found, naming events as `host:k "text" (file:line)`.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]: {}", self.severity, self.rule, self.message)
    }
}

/// The result of a check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Findings, in the order found.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when there is no error (warnings and notes allowed).
    pub fn is_clean(&self) -> bool {
        self.errors().next().is_none()
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }

    /// Whether some finding is about `rule`.
    pub fn has(&self, rule: Rule) -> bool {
        self.findings.iter().any(|f| f.rule == rule)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            writeln!(f, "{x}")?;
        }
        write!(
            f,
            "{} error(s), {} warning(s)",
            self.errors().count(),
            self.warnings().count()
        )
    }
}

/// What to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Report missing events (gaps) as warnings rather than errors.
    pub tolerate_gaps: bool,
    /// Check locks, fencing tokens and leaders as well as the clocks.
    pub semantics: bool,
    /// Findings kept per rule; the rest are counted in one note.
    pub max_per_rule: usize,
}

impl Default for CheckOptions {
    /// Gaps tolerated, semantics checked, 50 findings per rule.
    fn default() -> Self {
        CheckOptions {
            tolerate_gaps: true,
            semantics: true,
            max_per_rule: 50,
        }
    }
}

/// ShiViz's rules, held strictly: every host is in its own clock, a host's k-th event has
/// `clock[host] == k` from 1 without gaps, every entry names a host with events and is at most
/// its count, and every clock equals the one recomputed from the host's previous event and the
/// matched send. Semantic checks are not run; see [`Log::check`].
///
/// ```
/// let log = causal_log::Log::parse_str("a.log", "a {\"a\":1}\none\na {\"a\":3}\nthree\n")?;
/// let report = causal_log::check_shiviz_rules(&log);
/// assert!(!report.is_clean()); // a:2 is missing
/// # Ok::<(), causal_log::ReadError>(())
/// ```
pub fn check_shiviz_rules(log: &Log) -> Report {
    log.check_with(CheckOptions {
        tolerate_gaps: false,
        semantics: false,
        ..CheckOptions::default()
    })
}

struct Out {
    report: Report,
    counts: HashMap<Rule, usize>,
    max: usize,
}

impl Out {
    fn push(&mut self, severity: Severity, rule: Rule, message: String) {
        let c = self.counts.entry(rule).or_default();
        *c += 1;
        if *c <= self.max {
            self.report.findings.push(Finding {
                severity,
                rule,
                message,
            });
        }
    }

    fn finish(mut self) -> Report {
        let mut over: Vec<(Rule, usize)> = self
            .counts
            .iter()
            .filter(|(_, c)| **c > self.max)
            .map(|(r, c)| (*r, *c - self.max))
            .collect();
        over.sort();
        for (rule, n) in over {
            self.report.findings.push(Finding {
                severity: Severity::Note,
                rule,
                message: format!("{n} more finding(s) of this rule not shown"),
            });
        }
        self.report
    }
}

fn fmt_clock(log: &Log, clock: &[(HostId, u64)]) -> String {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for &(h, v) in clock {
        m.insert(log.host_name(h), v);
    }
    let parts: Vec<String> = m.iter().map(|(h, v)| format!("{h}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
fn merge_max(a: &[(HostId, u64)], b: &[(HostId, u64)]) -> Vec<(HostId, u64)> {
    let mut out = Vec::new();
    merge_into(&mut out, a, b);
    out
}

/// Appends the pointwise maximum of two sorted clocks to `out`.
fn merge_into(out: &mut Vec<(HostId, u64)>, a: &[(HostId, u64)], b: &[(HostId, u64)]) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(&(ha, va)), Some(&(hb, vb))) if ha == hb => {
                out.push((ha, va.max(vb)));
                i += 1;
                j += 1;
            }
            (Some(&(ha, va)), Some(&(hb, _))) if ha < hb => {
                out.push((ha, va));
                i += 1;
            }
            (Some(_), Some(&x)) => {
                out.push(x);
                j += 1;
            }
            (Some(&x), None) => {
                out.push(x);
                i += 1;
            }
            (None, Some(&x)) => {
                out.push(x);
                j += 1;
            }
            (None, None) => break,
        }
    }
}

/// Why `a` did not happen before `b`, in words.
fn not_before(log: &Log, a: usize, b: usize) -> String {
    let (ea, eb) = (&log.events()[a], &log.events()[b]);
    let h = log.host_name(ea.host);
    format!(
        "{}'s clock has {h}={} < {}, so it has not seen {}",
        log.event_id(b),
        eb.clock_of(ea.host),
        ea.own(),
        log.event_id(a)
    )
}

impl Log {
    /// The `check` command: ShiViz's rules with gaps reported as warnings, plus mutual
    /// exclusion, fencing tokens, one leader per term and broadcast delivery order.
    pub fn check(&self) -> Report {
        self.check_with(CheckOptions::default())
    }

    /// Checks with explicit options.
    pub fn check_with(&self, opts: CheckOptions) -> Report {
        let mut out = Out {
            report: Report::default(),
            counts: HashMap::new(),
            max: opts.max_per_rule.max(1),
        };
        for f in &self.notes {
            let sev = if f.rule == Rule::Gap && !opts.tolerate_gaps {
                Severity::Error
            } else {
                f.severity
            };
            out.push(sev, f.rule, f.message.clone());
        }
        self.check_clocks(&mut out, opts);
        self.check_scopes(&mut out);
        if opts.semantics {
            self.check_mutex_and_fences(&mut out);
            self.check_leaders(&mut out);
            self.check_broadcasts(&mut out);
        }
        out.finish()
    }

    fn check_clocks(&self, out: &mut Out, opts: CheckOptions) {
        let gap = if opts.tolerate_gaps {
            Severity::Warning
        } else {
            Severity::Error
        };
        let evs = self.events();
        let nh = self.hosts().len();
        let count: Vec<u64> = (0..nh)
            .map(|h| self.host_events(HostId(h as u32)).len() as u64)
            .collect();
        let max_own: Vec<u64> = (0..nh)
            .map(|h| {
                self.host_events(HostId(h as u32))
                    .last()
                    .map_or(0, |&i| self.own(i))
            })
            .collect();
        // Counters per host.
        for h in self.hosts_by_name() {
            let name = self.host_name(h);
            let mut prev: Option<usize> = None;
            for &i in self.host_events(h) {
                let own = self.own(i);
                if own == 0 {
                    out.push(
                        Severity::Error,
                        Rule::OwnClock,
                        format!("{} has no entry for its own host {name}", self.describe(i)),
                    );
                    continue;
                }
                let p_own = prev.map_or(0, |p| self.own(p));
                if let Some(p) = prev.filter(|_| own == p_own) {
                    out.push(
                        Severity::Error,
                        Rule::Counter,
                        format!(
                            "two different events claim {}: {} and {}",
                            self.event_id(i),
                            self.describe(p),
                            self.describe(i)
                        ),
                    );
                } else if own > p_own + 1 {
                    let what = match prev {
                        Some(p) => {
                            format!("{} is followed by {}", self.describe(p), self.describe(i))
                        }
                        None => format!("the first logged event of {name} is {}", self.describe(i)),
                    };
                    out.push(
                        gap,
                        Rule::Gap,
                        format!("{what}: {} event(s) of {name} missing", own - p_own - 1),
                    );
                }
                prev = Some(i);
            }
        }
        // Entries: name hosts with events, at most their count (their last counter with gaps).
        let mut reported: Vec<bool> = vec![false; nh];
        for &i in self.order() {
            let e = &evs[i];
            for &(g, v) in &e.clock {
                if g == e.host {
                    continue;
                }
                let gx = g.0 as usize;
                let gname = self.host_name(g);
                if count[gx] == 0 {
                    if !reported[gx] {
                        reported[gx] = true;
                        out.push(
                            gap,
                            Rule::Gap,
                            format!(
                                "{}'s clock names host {gname}, which has no events in the log",
                                self.describe(i)
                            ),
                        );
                    }
                } else if v > max_own[gx] {
                    // Beyond the host's last logged event: its lost tail, reported below.
                } else if !opts.tolerate_gaps && v > count[gx] {
                    out.push(
                        Severity::Error,
                        Rule::Entry,
                        format!(
                            "{}'s clock has {gname}={v}, but {gname} has {} event(s) in the log (last {gname}:{})",
                            self.describe(i),
                            count[gx],
                            max_own[gx]
                        ),
                    );
                }
            }
        }
        // Crash gaps: one finding per host whose lost tail other hosts saw.
        for g in self.crash_gaps() {
            let name = self.host_name(g.host);
            let last_at = self
                .find(&format!("{name}:{}", g.last))
                .map_or_else(String::new, |i| format!(" ({})", evs[i].source));
            let first = g
                .refs
                .first()
                .map_or_else(String::new, |&i| format!(", first {}", self.describe(i)));
            let range = if g.seen_up_to == g.last + 1 {
                format!("{name}:{}", g.seen_up_to)
            } else {
                format!("{name}:{}..{name}:{}", g.last + 1, g.seen_up_to)
            };
            out.push(
                gap,
                Rule::CrashGap,
                format!(
                    "{name}'s log ends at {name}:{}{last_at}, but other hosts saw {range} (at least {} event(s) lost with its unflushed tail: it crashed, or its log was cut); {} event(s) refer to them{first}",
                    g.last,
                    g.seen_up_to - g.last,
                    g.refs.len()
                ),
            );
        }
        // The strict rule: recompute each clock from its predecessor and its send.
        let mut expected: Vec<(HostId, u64)> = Vec::new();
        for &i in self.order() {
            let e = &evs[i];
            let own = self.own(i);
            if own == 0 {
                continue;
            }
            let pred = self.predecessor(i);
            let contiguous = match pred {
                None => own == 1,
                Some(p) => self.own(p) + 1 == own,
            };
            if !contiguous {
                continue;
            }
            let send = self.send_of(i);
            if send.is_none() && (e.kind == RECEIVE || e.msg.is_some() && e.peer.is_some()) {
                continue; // the send is missing: already reported as a gap
            }
            let base: &[(HostId, u64)] = pred.map_or(&[], |p| &evs[p].clock);
            if send.is_none()
                && e.clock.iter().any(|&(g, v)| {
                    g != e.host
                        && v > max_own[g.0 as usize]
                        && v > pred.map_or(0, |p| evs[p].clock_of(g))
                })
            {
                continue; // an inferred receive of a send in a crashed host's lost tail
            }
            expected.clear();
            match send {
                Some(s) => merge_into(&mut expected, base, &evs[s].clock),
                None => expected.extend_from_slice(base),
            }
            match expected.binary_search_by_key(&e.host, |&(h, _)| h) {
                Ok(k) => expected[k].1 = own,
                Err(k) => expected.insert(k, (e.host, own)),
            }
            if expected != e.clock {
                let from = match (pred, send) {
                    (Some(p), Some(s)) => format!(
                        "its predecessor {} and the send {}",
                        self.describe(p),
                        self.describe(s)
                    ),
                    (Some(p), None) => format!("its predecessor {}", self.describe(p)),
                    (None, Some(s)) => format!("the send {}", self.describe(s)),
                    (None, None) => "nothing (it is its host's first event)".into(),
                };
                out.push(
                    Severity::Error,
                    Rule::Recompute,
                    format!(
                        "{} has clock {}, but {} is recomputed from {from}",
                        self.describe(i),
                        fmt_clock(self, &e.clock),
                        fmt_clock(self, &expected)
                    ),
                );
            }
        }
    }

    fn check_mutex_and_fences(&self, out: &mut Out) {
        let evs = self.events();
        // Sections per resource: (enter, exit), nested re-entry folded into one section.
        let mut sections: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
        let mut acquires: Vec<bool> = vec![false; evs.len()];
        for h in self.hosts_by_name() {
            let mut open: BTreeMap<String, (usize, u32)> = BTreeMap::new();
            for &i in self.host_events(h) {
                let e = &evs[i];
                let res = || e.field_str(field::RESOURCE).unwrap_or_default();
                match e.kind.as_str() {
                    kind::LOCK_ENTER => {
                        let slot = open.entry(res()).or_insert((i, 0));
                        if slot.1 == 0 {
                            slot.0 = i;
                            acquires[i] = true;
                        }
                        slot.1 += 1;
                    }
                    kind::LOCK_EXIT => match open.get_mut(&res()) {
                        Some(slot) if slot.1 > 0 => {
                            slot.1 -= 1;
                            if slot.1 == 0 {
                                sections.entry(res()).or_default().push((slot.0, i));
                            }
                        }
                        _ => out.push(
                            Severity::Warning,
                            Rule::Mutex,
                            format!("{} exits a lock it did not enter", self.describe(i)),
                        ),
                    },
                    _ => {}
                }
            }
            for (res, (i, depth)) in open {
                if depth > 0 {
                    out.push(
                        Severity::Warning,
                        Rule::Mutex,
                        format!(
                            "{} enters {res} and never exits (crash or cut log?)",
                            self.describe(i)
                        ),
                    );
                }
            }
        }
        for (res, mut secs) in sections {
            secs.sort_by_key(|&(en, _)| self.rank(en));
            for w in secs.windows(2) {
                let ((e1, x1), (e2, x2)) = (w[0], w[1]);
                if !self.happened_before(x1, e2) {
                    out.push(
                        Severity::Error,
                        Rule::Mutex,
                        format!(
                            "critical sections of {res} overlap: {} .. {} and {} .. {}: the exit {} does not happen before the enter {} ({})",
                            self.describe(e1),
                            self.event_id(x1),
                            self.describe(e2),
                            self.event_id(x2),
                            self.event_id(x1),
                            self.event_id(e2),
                            not_before(self, x1, e2)
                        ),
                    );
                }
            }
        }
        // Fencing tokens: the greatest token in each event's causal past, per resource.
        let mut by_res: BTreeMap<String, ()> = BTreeMap::new();
        for e in evs {
            if e.fields.contains_key(field::FENCE) {
                by_res.insert(e.field_str(field::RESOURCE).unwrap_or_default(), ());
            }
        }
        let fenced: Vec<Option<(String, u64)>> = evs
            .iter()
            .map(|e| {
                let t = e.field_u64(field::FENCE)?;
                Some((e.field_str(field::RESOURCE).unwrap_or_default(), t))
            })
            .collect();
        for res in by_res.keys() {
            let mut past: Vec<Option<(u64, usize)>> = vec![None; evs.len()];
            let token = |i: usize| -> Option<u64> {
                match &fenced[i] {
                    Some((r, t)) if r == res => Some(*t),
                    _ => None,
                }
            };
            for &i in self.order() {
                let mut best: Option<(u64, usize)> = None;
                let consider = |j: usize, best: &mut Option<(u64, usize)>| {
                    for cand in [past[j], token(j).map(|t| (t, j))].into_iter().flatten() {
                        if best.is_none_or(|b| cand.0 > b.0) {
                            *best = Some(cand);
                        }
                    }
                };
                if let Some(p) = self.predecessor(i) {
                    consider(p, &mut best);
                }
                if let Some(s) = self.send_of(i) {
                    consider(s, &mut best);
                }
                past[i] = best;
                let Some(t) = token(i) else { continue };
                if let Some((pt, j)) = best {
                    let bad = pt > t || (pt == t && acquires[i]);
                    if bad {
                        out.push(
                            Severity::Error,
                            Rule::Fence,
                            format!(
                                "fencing token of {res} does not increase: {} has fence {pt} and happened before {} with fence {t}",
                                self.describe(j),
                                self.describe(i)
                            ),
                        );
                    }
                }
            }
        }
    }

    fn check_leaders(&self, out: &mut Out) {
        let evs = self.events();
        // (election, term) → the leader first named for it, and where.
        let mut terms: BTreeMap<(String, u64), (String, usize)> = BTreeMap::new();
        // (election, host) → the highest term the host recognised so far, and where.
        let mut latest: HashMap<(String, HostId), (u64, usize)> = HashMap::new();
        for &i in self.order() {
            let e = &evs[i];
            if e.kind != kind::LEADER_ELECTED {
                continue;
            }
            let Some(term) = e.field_u64(field::TERM) else {
                out.push(
                    Severity::Warning,
                    Rule::Leader,
                    format!("{} has no numeric `term` field", self.describe(i)),
                );
                continue;
            };
            let election = e.field_str(field::ELECTION).unwrap_or_default();
            let named = |what: &str| {
                if election.is_empty() {
                    what.to_owned()
                } else {
                    format!("{what} of election {election}")
                }
            };
            let leader = e
                .field_str(field::LEADER)
                .unwrap_or_else(|| self.host_name(e.host).to_owned());
            match latest.get(&(election.clone(), e.host)) {
                Some(&(t, j)) if t > term => out.push(
                    Severity::Error,
                    Rule::Leader,
                    format!(
                        "{} goes back: {} recognises {} after {} recognised {}",
                        named(field::TERM),
                        self.describe(i),
                        crate::show_term(term),
                        self.describe(j),
                        crate::show_term(t)
                    ),
                ),
                _ => {
                    latest.insert((election.clone(), e.host), (term, i));
                }
            }
            match terms.get(&(election.clone(), term)) {
                None => {
                    terms.insert((election, term), (leader, i));
                }
                Some((l, j)) if *l != leader => out.push(
                    Severity::Error,
                    Rule::Leader,
                    format!(
                        "two leaders in {} {}: {} elects {l} and {} elects {leader}",
                        named(field::TERM),
                        crate::show_term(term),
                        self.describe(*j),
                        self.describe(i)
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    /// Rule `scope`: each `scope.unscoped` event is an error (sends made outside a process scope
    /// were attributed to another process, so the clocks say less than what happened).
    fn check_scopes(&self, out: &mut Out) {
        let evs = self.events();
        for &i in self.order() {
            if evs[i].kind == kind::SCOPE_UNSCOPED {
                out.push(
                    Severity::Error,
                    Rule::Scope,
                    format!(
                        "{}: a websocket session ran outside its process scope, so its sends \
                         were attributed to the external process (start it with \
                         actix_coord::ws::start)",
                        self.describe(i)
                    ),
                );
            }
        }
    }

    fn check_broadcasts(&self, out: &mut Out) {
        let evs = self.events();
        // group → host → deliveries (from, seq, event index), in the host's order.
        type PerHost = BTreeMap<HostId, Vec<((String, u64), usize)>>;
        let mut groups: BTreeMap<String, (bool, PerHost)> = BTreeMap::new();
        let mut next_seq: HashMap<(String, HostId, String), (u64, usize)> = HashMap::new();
        for &i in self.order() {
            let e = &evs[i];
            if e.kind != kind::BROADCAST_DELIVER {
                continue;
            }
            let (Some(group), Some(from), Some(seq)) = (
                e.field_str(field::GROUP),
                e.field_str(field::FROM),
                e.field_u64(field::SEQ),
            ) else {
                out.push(
                    Severity::Warning,
                    Rule::Broadcast,
                    format!(
                        "{} lacks a `group`, `from` or numeric `seq` field",
                        self.describe(i)
                    ),
                );
                continue;
            };
            let total = e.field_str(field::ORDER).as_deref() == Some(ORDER_TOTAL);
            let key = (group.clone(), e.host, from.clone());
            let expected = next_seq.get(&key).map_or(1, |&(s, _)| s + 1);
            if seq != expected {
                let before = next_seq
                    .get(&key)
                    .map_or_else(|| "none before".to_owned(), |&(_, j)| self.describe(j));
                out.push(
                    Severity::Error,
                    Rule::Broadcast,
                    format!(
                        "{} delivers {from}'s message {seq} of group {group}, expected {expected} (previous: {before})",
                        self.describe(i)
                    ),
                );
            }
            next_seq.insert(key, (seq, i));
            let g = groups.entry(group).or_insert((total, BTreeMap::new()));
            g.0 |= total;
            g.1.entry(e.host).or_default().push(((from, seq), i));
        }
        for (group, (total, hosts)) in &groups {
            if !total {
                continue;
            }
            let hosts: Vec<_> = hosts.values().collect();
            for (a, da) in hosts.iter().enumerate() {
                let pos: HashMap<&(String, u64), usize> =
                    da.iter().enumerate().map(|(k, (m, _))| (m, k)).collect();
                for db in &hosts[a + 1..] {
                    let mut last: Option<(usize, usize)> = None;
                    for (m, j) in db.iter() {
                        let Some(&k) = pos.get(m) else { continue };
                        if let Some((lk, lj)) = last
                            && k < lk
                        {
                            out.push(
                                    Severity::Error,
                                    Rule::Broadcast,
                                    format!(
                                        "total order broken in group {group}: {} and {} deliver in one order, {} and {} in the other",
                                        self.describe(da[k].1),
                                        self.describe(da[lk].1),
                                        self.describe(lj),
                                        self.describe(*j)
                                    ),
                                );
                            break;
                        }
                        last = Some((k, *j));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_max_is_pointwise() {
        let a = [(HostId(0), 1), (HostId(2), 5)];
        let b = [(HostId(1), 2), (HostId(2), 3)];
        assert_eq!(
            merge_max(&a, &b),
            vec![(HostId(0), 1), (HostId(1), 2), (HostId(2), 5)]
        );
    }
}
