//! Causal broadcast (Birman, Schiper & Stephenson 1991, "Lightweight causal and atomic group
//! multicast"): every member delivers every message after all the messages that causally
//! precede it.
//!
//! Sans-IO: no networking, no actix or tokio, no clock reads; `now` is unused.
//!
//! The algorithm, for member `i` of N:
//! 1. `i` keeps `delivered[k]`, how many broadcasts of member `k` it has delivered.
//! 2. To broadcast, `i` delivers the message to itself at once, then sends it to the N−1 others
//!    with the vector `deps = delivered` (so `deps[i]` is the message's own sequence number).
//! 3. Member `j` delivers a message from `i` carrying `deps` when it is the next from `i`
//!    (`deps[i] = delivered[i] + 1`) and `j` has delivered everything `i` had when it sent it
//!    (`deps[k] ≤ delivered[k]` for every `k ≠ i`); otherwise it holds the message back.
//!    Delivering may release held-back messages, which are tried again until none is ready.
//!
//! Messages per broadcast: N−1 (no acknowledgements; the channels need not be FIFO). With
//! [`CausalConfig::relay`], each member also forwards every message it receives for the first
//! time to the others: (N−1)² messages, but a message that reached any surviving member reaches
//! them all even if its sender crashed mid-broadcast (*reliable* causal broadcast).
//!
//! **Faults.** A duplicate (a sequence number already delivered or held) is dropped silently. A
//! message whose `deps` has the wrong length, or whose sender is not a member, is
//! [rejected](BroadcastEvent::Rejected). At most [`CausalConfig::max_held`] messages are held
//! back; beyond that a new arrival is rejected ([`Rejection::BufferFull`]) and, since later
//! messages of its sender depend on it, they wait until the buffer drains — the bound trades
//! completeness for memory, and is reported. Without `relay`, a message that a crashed sender
//! sent to some members only is delivered by those alone, and messages that depend on it are
//! held back by the others until a peer-down notice lets them go: on
//! [`on_peer_down`](Protocol::on_peer_down) of `k`, held messages waiting *only* for `k`'s
//! missing broadcasts are not released (that would break causality); they stay held and are
//! counted by [`CausalBroadcast::held`] so the loss is visible.

use super::{BroadcastCommand, BroadcastEvent, Delivery, Rejection};
use crate::protocol::{ConfigError, EffectsOf, NoTimer, NodeId, Protocol, sorted_members};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

/// Settings of a [`CausalBroadcast`] member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CausalConfig {
    /// Forward every message received for the first time to the other members (reliable
    /// broadcast, (N−1)² messages per broadcast). Default off.
    pub relay: bool,
    /// Most messages held back at once (default 65 536).
    pub max_held: usize,
}

impl Default for CausalConfig {
    fn default() -> Self {
        Self {
            relay: false,
            max_held: 65_536,
        }
    }
}

/// The message of [`CausalBroadcast`]: one broadcast.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CausalMsg<T> {
    /// The member that broadcast it (not always the one that sent it, with relaying).
    pub origin: NodeId,
    /// The origin's delivered-count vector when it broadcast, in member order (sorted ids);
    /// the origin's own entry is this message's sequence number.
    pub deps: Vec<u64>,
    /// The application's payload.
    pub payload: T,
}

/// One member of a causal broadcast group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CausalBroadcast<T> {
    me: NodeId,
    members: Vec<NodeId>,
    config: CausalConfig,
    delivered: Vec<u64>,
    /// Held back: (origin, sequence number) → message.
    held: BTreeMap<(NodeId, u64), CausalMsg<T>>,
}

impl<T: Clone + Debug + Serialize + serde::de::DeserializeOwned> CausalBroadcast<T> {
    /// Member `me` of the group `members` (which must contain `me`, without duplicates).
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid membership or a zero `max_held`.
    pub fn new(
        me: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        config: CausalConfig,
    ) -> Result<Self, ConfigError> {
        let members = sorted_members(me, members)?;
        if config.max_held == 0 {
            return Err(ConfigError::Inconsistent("max_held must be positive"));
        }
        Ok(Self {
            me,
            delivered: vec![0; members.len()],
            members,
            config,
            held: BTreeMap::new(),
        })
    }

    /// How many broadcasts of each member (in member order) this member has delivered: its
    /// vector clock of the group's broadcasts.
    pub fn delivered(&self) -> &[u64] {
        &self.delivered
    }

    /// The members, sorted.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// How many messages are held back, waiting for one they depend on.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn ix(&self, id: NodeId) -> Option<usize> {
        self.members.binary_search(&id).ok()
    }

    fn send_to_others(&self, except: NodeId, msg: &CausalMsg<T>, out: &mut EffectsOf<Self>) {
        for &p in &self.members {
            if p != self.me && p != except {
                out.send(p, msg.clone());
            }
        }
    }

    /// Whether `msg` from member index `o` can be delivered now.
    fn ready(&self, o: usize, msg: &CausalMsg<T>) -> bool {
        msg.deps.iter().enumerate().all(|(k, &d)| {
            if k == o {
                d == self.delivered[k] + 1
            } else {
                d <= self.delivered[k]
            }
        })
    }

    fn deliver(&mut self, o: usize, msg: CausalMsg<T>, out: &mut EffectsOf<Self>) {
        self.delivered[o] += 1;
        out.emit(BroadcastEvent::Delivered(Delivery {
            from: msg.origin,
            seq: self.delivered[o],
            order: self.delivered.iter().sum(),
            payload: msg.payload,
        }));
    }

    /// Delivers every held message that has become ready, until none is.
    fn drain(&mut self, out: &mut EffectsOf<Self>) {
        loop {
            let next = self.held.iter().find_map(|(&(origin, _), m)| {
                let o = self.ix(origin)?;
                self.ready(o, m).then_some((origin, m.deps[o]))
            });
            let Some(key) = next else { break };
            if let Some(m) = self.held.remove(&key)
                && let Some(o) = self.ix(key.0)
            {
                self.deliver(o, m, out);
            }
        }
    }
}

impl<T: Clone + Debug + Serialize + serde::de::DeserializeOwned> Protocol for CausalBroadcast<T> {
    type Msg = CausalMsg<T>;
    type Event = BroadcastEvent<T>;
    type Timer = NoTimer;
    type Command = BroadcastCommand<T>;
    type Error = std::convert::Infallible;

    fn id(&self) -> NodeId {
        self.me
    }

    fn on_command(
        &mut self,
        _now: Duration,
        cmd: BroadcastCommand<T>,
        out: &mut EffectsOf<Self>,
    ) -> Result<(), Self::Error> {
        let BroadcastCommand::Publish(payload) = cmd;
        let Some(me) = self.ix(self.me) else {
            return Ok(());
        };
        let mut deps = self.delivered.clone();
        deps[me] += 1;
        let msg = CausalMsg {
            origin: self.me,
            deps,
            payload,
        };
        out.emit(BroadcastEvent::Published { seq: msg.deps[me] });
        self.send_to_others(self.me, &msg, out);
        self.deliver(me, msg, out);
        self.drain(out);
        Ok(())
    }

    fn on_message(
        &mut self,
        _now: Duration,
        from: NodeId,
        msg: CausalMsg<T>,
        out: &mut EffectsOf<Self>,
    ) {
        let Some(o) = self.ix(msg.origin) else {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::NotAMember(msg.origin),
            });
            return;
        };
        if self.ix(from).is_none() {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::NotAMember(from),
            });
            return;
        }
        if !self.config.relay && from != msg.origin {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::NotOrigin { origin: msg.origin },
            });
            return;
        }
        if msg.deps.len() != self.members.len() {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::Malformed("dependency vector of the wrong length"),
            });
            return;
        }
        let seq = msg.deps[o];
        if msg.origin == self.me
            || seq <= self.delivered[o]
            || self.held.contains_key(&(msg.origin, seq))
        {
            return; // a duplicate (or our own message relayed back)
        }
        if self.ready(o, &msg) {
            if self.config.relay {
                self.send_to_others(from, &msg, out);
            }
            self.deliver(o, msg, out);
            self.drain(out);
        } else if self.held.len() >= self.config.max_held {
            out.emit(BroadcastEvent::Rejected {
                from,
                reason: Rejection::BufferFull {
                    held: self.held.len(),
                },
            });
        } else {
            if self.config.relay {
                self.send_to_others(from, &msg, out);
            }
            self.held.insert((msg.origin, seq), msg);
        }
    }

    fn on_timer(&mut self, _now: Duration, timer: NoTimer, _out: &mut EffectsOf<Self>) {
        match timer {}
    }

    fn on_peer_down(&mut self, _now: Duration, _peer: NodeId, _out: &mut EffectsOf<Self>) {
        // Nothing to release: a held message still depends on what it depends on.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Effect;

    type Cb = CausalBroadcast<String>;

    fn group(n: u32, relay: bool) -> Vec<Cb> {
        let ids: Vec<u32> = (1..=n).collect();
        ids.iter()
            .map(|&i| {
                Cb::new(
                    i,
                    ids.clone(),
                    CausalConfig {
                        relay,
                        ..CausalConfig::default()
                    },
                )
                .unwrap()
            })
            .collect()
    }

    type Sends = Vec<(NodeId, CausalMsg<String>)>;

    /// Sends and deliveries of one step.
    fn split(mut out: EffectsOf<Cb>) -> (Sends, Vec<BroadcastEvent<String>>) {
        let (mut sends, mut events) = (Vec::new(), Vec::new());
        for e in out.drain() {
            match e {
                Effect::Send { to, msg } => sends.push((to, msg)),
                Effect::Emit(ev) => events.push(ev),
                other => panic!("unexpected {other:?}"),
            }
        }
        (sends, events)
    }

    fn publish(node: &mut Cb, s: &str) -> Vec<(NodeId, CausalMsg<String>)> {
        let mut out = EffectsOf::<Cb>::new();
        node.on_command(
            Duration::ZERO,
            BroadcastCommand::Publish(s.into()),
            &mut out,
        )
        .unwrap();
        split(out).0
    }

    fn receive(node: &mut Cb, from: NodeId, msg: CausalMsg<String>) -> Vec<String> {
        let mut out = EffectsOf::<Cb>::new();
        node.on_message(Duration::ZERO, from, msg, &mut out);
        split(out)
            .1
            .into_iter()
            .filter_map(|e| match e {
                BroadcastEvent::Delivered(d) => Some(d.payload),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_reply_is_held_back_until_the_message_it_answers_is_delivered() {
        let mut g = group(3, false);
        let question = publish(&mut g[0], "question");
        // Node 2 gets the question and answers; node 3 gets the answer first.
        let to2 = question.iter().find(|s| s.0 == 2).unwrap().1.clone();
        assert_eq!(receive(&mut g[1], 1, to2), ["question"]);
        let answer = publish(&mut g[1], "answer");
        let to3 = answer.iter().find(|s| s.0 == 3).unwrap().1.clone();
        assert!(receive(&mut g[2], 2, to3).is_empty(), "held back");
        assert_eq!(g[2].held(), 1);
        let q3 = question.iter().find(|s| s.0 == 3).unwrap().1.clone();
        assert_eq!(receive(&mut g[2], 1, q3), ["question", "answer"]);
        assert_eq!(g[2].held(), 0);
        assert_eq!(g[2].delivered(), [1, 1, 0]);
    }

    #[test]
    fn one_broadcast_costs_n_minus_one_messages_or_n_minus_one_squared_with_relay() {
        for n in [3u32, 5] {
            let mut g = group(n, false);
            let sent = publish(&mut g[0], "m");
            assert_eq!(sent.len() as u32, n - 1);
            let mut g = group(n, true);
            let first = publish(&mut g[0], "m");
            let mut total = first.len();
            for (to, msg) in first {
                let mut out = EffectsOf::<Cb>::new();
                g[to as usize - 1].on_message(Duration::ZERO, 1, msg, &mut out);
                total += split(out).0.len();
            }
            assert_eq!(total as u32, (n - 1) * (n - 1), "n = {n}");
        }
    }

    #[test]
    fn duplicates_are_dropped_and_bad_messages_rejected() {
        let mut g = group(3, false);
        let m = publish(&mut g[0], "x")[0].1.clone();
        assert_eq!(receive(&mut g[1], 1, m.clone()), ["x"]);
        assert!(receive(&mut g[1], 1, m.clone()).is_empty());
        let mut out = EffectsOf::<Cb>::new();
        let bad = CausalMsg {
            deps: vec![1],
            ..m.clone()
        };
        g[2].on_message(Duration::ZERO, 1, bad, &mut out);
        let stranger = CausalMsg { origin: 9, ..m };
        g[2].on_message(Duration::ZERO, 9, stranger, &mut out);
        let (_, events) = split(out);
        assert!(matches!(
            events[0],
            BroadcastEvent::Rejected {
                reason: Rejection::Malformed(_),
                ..
            }
        ));
        assert!(matches!(
            events[1],
            BroadcastEvent::Rejected {
                reason: Rejection::NotAMember(9),
                ..
            }
        ));
        assert_eq!(g[2].delivered(), [0, 0, 0]);
    }

    #[test]
    fn the_hold_back_buffer_is_bounded() {
        let ids = [1, 2];
        let mut a = Cb::new(1, ids, CausalConfig::default()).unwrap();
        let mut b = Cb::new(
            2,
            ids,
            CausalConfig {
                max_held: 2,
                ..CausalConfig::default()
            },
        )
        .unwrap();
        let msgs: Vec<_> = (0..4)
            .map(|i| publish(&mut a, &i.to_string())[0].1.clone())
            .collect();
        // 2, 3 are held; 4 is refused; 1 releases 2 and 3.
        assert!(receive(&mut b, 1, msgs[1].clone()).is_empty());
        assert!(receive(&mut b, 1, msgs[2].clone()).is_empty());
        let mut out = EffectsOf::<Cb>::new();
        b.on_message(Duration::ZERO, 1, msgs[3].clone(), &mut out);
        assert!(matches!(
            split(out).1[..],
            [BroadcastEvent::Rejected {
                reason: Rejection::BufferFull { held: 2 },
                ..
            }]
        ));
        assert_eq!(receive(&mut b, 1, msgs[0].clone()), ["0", "1", "2"]);
        assert_eq!(receive(&mut b, 1, msgs[3].clone()), ["3"]);
    }

    #[test]
    fn with_relay_a_message_from_a_crashed_origin_still_reaches_everyone() {
        let mut g = group(3, true);
        let sent = publish(&mut g[0], "last words");
        // Node 1 crashes after reaching node 2 only; node 2 relays to node 3.
        let to2 = sent.iter().find(|s| s.0 == 2).unwrap().1.clone();
        let mut out = EffectsOf::<Cb>::new();
        g[1].on_message(Duration::ZERO, 1, to2, &mut out);
        let (relayed, _) = split(out);
        assert_eq!(relayed.len(), 1);
        assert_eq!(relayed[0].0, 3);
        assert_eq!(receive(&mut g[2], 2, relayed[0].1.clone()), ["last words"]);
    }
}
