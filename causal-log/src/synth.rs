//! Synthetic logs for benchmarks and tests: a seeded random run of `hosts` processes exchanging
//! messages, passing one lock (`lock.enter`/`lock.exit` of resource `r` with increasing fencing
//! tokens) and electing a leader now and then, written as actix-coord JSON lines with correct
//! vector clocks, Lamport times and message ids.
//!
//! ```
//! let text = causal_log::synth::generate(3, 200, 7);
//! let log = causal_log::Log::parse_str("synth.jsonl", &text)?;
//! assert_eq!(log.events().len(), 200);
//! assert!(log.check().is_clean());
//! # Ok::<(), causal_log::ReadError>(())
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;

use actix_coord_proto::schema::kind;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// How an event relates to a message.
enum Link<'a> {
    /// A local event.
    None,
    /// A send with this message id.
    Send(&'a str),
    /// A receive of this message id, from this host, with its clock and Lamport time.
    Receive(&'a str, usize, &'a (Vec<u64>, u64)),
}

struct Sim {
    names: Vec<String>,
    clocks: Vec<Vec<u64>>,
    lamport: Vec<u64>,
    out: String,
    count: usize,
}

impl Sim {
    /// Ticks `h` (merging the received stamp first) and writes the event.
    fn event(&mut self, h: usize, kind: &str, text: &str, link: Link<'_>, fields: &str) {
        let (msg, peer, merge) = match link {
            Link::None => (None, None, None),
            Link::Send(m) => (Some(m), None, None),
            Link::Receive(m, from, stamp) => (Some(m), Some(from), Some(stamp)),
        };
        if let Some((c, l)) = merge {
            for (mine, theirs) in self.clocks[h].iter_mut().zip(c) {
                *mine = (*mine).max(*theirs);
            }
            self.lamport[h] = self.lamport[h].max(*l);
        }
        self.clocks[h][h] += 1;
        self.lamport[h] += 1;
        let o = &mut self.out;
        let _ = write!(
            o,
            r#"{{"host":"{}","process":"0.{h}","kind":"{kind}","event":"{text}","clock":{{"#,
            self.names[h]
        );
        let mut first = true;
        for (g, &v) in self.clocks[h].iter().enumerate() {
            if v > 0 {
                if !first {
                    o.push(',');
                }
                first = false;
                let _ = write!(o, r#""{}":{v}"#, self.names[g]);
            }
        }
        let _ = write!(o, r#"}},"lamport":{}"#, self.lamport[h]);
        if let Some(m) = msg {
            let _ = write!(o, r#","msg":"{m}""#);
        }
        if let Some(p) = peer {
            let _ = write!(o, r#","peer":"{}""#, self.names[p]);
        }
        if !fields.is_empty() {
            let _ = write!(o, r#","fields":{fields}"#);
        }
        o.push_str("}\n");
        self.count += 1;
    }
}

/// A run of `hosts` processes (named `P0#1`, `P1#1`, …) with `events` events in all, from
/// `seed`. The log is clean: it passes [`crate::Log::check`] and
/// [`crate::check_shiviz_rules`].
pub fn generate(hosts: usize, events: usize, seed: u64) -> String {
    let hosts = hosts.max(1);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut sim = Sim {
        names: (0..hosts).map(|h| format!("P{h}#1")).collect(),
        clocks: vec![vec![0; hosts]; hosts],
        lamport: vec![0; hosts],
        out: String::with_capacity(events * 160),
        count: 0,
    };
    // In-flight messages per destination: (id, sender, clock, lamport, is_lock_grant).
    type Msg = (String, usize, (Vec<u64>, u64), bool);
    let mut inbox: Vec<VecDeque<Msg>> = vec![VecDeque::new(); hosts];
    // The lock: its holder (or the host it was granted to), whether inside, and the fence.
    let mut holder = 0usize;
    let mut inside = false;
    let mut in_flight = false;
    let mut fence = 1u64;
    let mut term = 0u64;
    let mut left_in_section = 0;
    while sim.count < events {
        let remaining = events - sim.count;
        let h = rng.below(hosts);
        if h == holder && inside {
            if left_in_section > 0 && remaining > 1 {
                left_in_section -= 1;
                sim.event(h, "local", "write", Link::None, "");
            } else {
                inside = false;
                let f = format!(r#"{{"fence":{fence},"resource":"r"}}"#);
                sim.event(h, kind::LOCK_EXIT, "lock.exit r", Link::None, &f);
            }
            continue;
        }
        let roll = rng.below(100);
        if roll < 25 && !inbox[h].is_empty() && remaining > 0 {
            let (id, from, stamp, grant) = inbox[h].pop_front().expect("not empty");
            sim.event(
                h,
                "receive",
                &format!("receive from {}", sim.names[from]),
                Link::Receive(&id, from, &stamp),
                "",
            );
            if grant {
                in_flight = false;
                holder = h;
                if sim.count < events {
                    fence += 1;
                    inside = true;
                    left_in_section = rng.below(4);
                    let f = format!(r#"{{"fence":{fence},"resource":"r"}}"#);
                    sim.event(h, kind::LOCK_ENTER, "lock.enter r", Link::None, &f);
                }
            }
        } else if roll < 50 && hosts > 1 && remaining > 2 {
            let mut to = rng.below(hosts - 1);
            if to >= h {
                to += 1;
            }
            // The holder hands the lock on now and then (only when outside its section).
            let grant = h == holder && !inside && !in_flight && rng.below(4) == 0;
            let id = format!("{}:{}", sim.names[h], sim.clocks[h][h] + 1);
            sim.event(
                h,
                "send",
                &format!("send to {}", sim.names[to]),
                Link::Send(&id),
                if grant { r#"{"resource":"r"}"# } else { "" },
            );
            if grant {
                in_flight = true;
            }
            let stamp = (sim.clocks[h].clone(), sim.lamport[h]);
            inbox[to].push_back((id, h, stamp, grant));
        } else if roll < 52 && remaining > 1 {
            term += 1;
            let f = format!(r#"{{"leader":"{}","term":{term}}}"#, sim.names[h]);
            sim.event(
                h,
                kind::LEADER_ELECTED,
                kind::LEADER_ELECTED,
                Link::None,
                &f,
            );
        } else if h == holder && !inside && !in_flight && roll < 60 && remaining > 2 {
            fence += 1;
            inside = true;
            left_in_section = rng.below(4);
            let f = format!(r#"{{"fence":{fence},"resource":"r"}}"#);
            sim.event(h, kind::LOCK_ENTER, "lock.enter r", Link::None, &f);
        } else {
            sim.event(h, "local", "step", Link::None, "");
        }
    }
    sim.out
}
