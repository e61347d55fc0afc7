//! The in-memory networks every core's tests run on (feature `testing`, and this crate's own
//! tests).
//!
//! * [`Net`]: N cores and the messages in flight between them, driven step by step: in send
//!   order ([`Net::step`], [`Net::run`]) or one channel at a time, each channel FIFO
//!   ([`Net::step_pick`], for seeded interleavings). Crashes are declared to the survivors;
//!   timers are not run (a test fires one with [`Net::timer`]).
//! * [`Channels`]: the network of the stateright models, as part of a model's state: messages
//!   in flight per channel, FIFO or an unordered multiset.
//!
//! ```
//! use actix_coord_proto::mutex::{LockCommand, LockEvent, RicartAgrawala};
//! use actix_coord_proto::testing::Net;
//!
//! let mut net = Net::new((1..=3).map(|i| RicartAgrawala::new(i, 1..=3).unwrap()).collect());
//! net.command(2, LockCommand::Acquire).unwrap();
//! net.run();
//! assert!(matches!(net.take_events()[..], [(2, LockEvent::Granted { .. })]));
//! assert_eq!(net.sent, 4, "2(N−1) messages");
//! ```

use crate::protocol::{Effect, EffectsOf, NodeId, Protocol};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// N cores and the messages in flight between them; see the [module docs](self).
pub struct Net<P: Protocol> {
    /// The cores, in the order given.
    pub nodes: Vec<P>,
    /// Messages in flight, in send order: `(from, to, message)`.
    pub queue: VecDeque<(NodeId, NodeId, P::Msg)>,
    /// Every event emitted, in order, with its member.
    pub events: Vec<(NodeId, P::Event)>,
    /// Messages sent (those [`counting`](Self::counting) selects), catch-up excluded in
    /// [`new`](Self::new).
    pub sent: usize,
    /// Members crashed: nothing reaches them, what they had in flight is dropped on arrival.
    pub down: Vec<NodeId>,
    counted: fn(&P::Msg) -> bool,
}

impl<P: Protocol> Net<P> {
    /// The nodes, started (each catches up with the others) and settled; the catch-up's
    /// messages and events are not kept.
    pub fn new(nodes: Vec<P>) -> Self {
        let mut net = Self::unstarted(nodes);
        for i in 0..net.nodes.len() {
            net.start(net.nodes[i].id());
        }
        net.run();
        net.sent = 0;
        net.events.clear();
        net
    }

    /// The nodes, not started.
    pub fn unstarted(nodes: Vec<P>) -> Self {
        Self {
            nodes,
            queue: VecDeque::new(),
            events: Vec::new(),
            sent: 0,
            down: Vec::new(),
            counted: |_| true,
        }
    }

    /// Counts in [`sent`](Self::sent) only the messages `counted` selects.
    pub fn counting(mut self, counted: fn(&P::Msg) -> bool) -> Self {
        self.counted = counted;
        self
    }

    /// Member `id`'s core.
    ///
    /// # Panics
    /// If no core has that id (a test's mistake).
    pub fn node(&self, id: NodeId) -> &P {
        &self.nodes[self.ix(id)]
    }

    /// Member `id`'s core, to change.
    ///
    /// # Panics
    /// If no core has that id.
    pub fn node_mut(&mut self, id: NodeId) -> &mut P {
        let i = self.ix(id);
        &mut self.nodes[i]
    }

    fn ix(&self, id: NodeId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id() == id)
            .expect("known node")
    }

    /// Runs `on_start` of member `id` (a member that starts, or restarts with fresh state).
    pub fn start(&mut self, id: NodeId) {
        self.input(id, |n, out| n.on_start(Duration::ZERO, out));
    }

    /// Carries out the effects `out` of member `from`: messages go in flight (a broadcast to
    /// every other node), events are kept, timers ignored.
    pub fn absorb(&mut self, from: NodeId, mut out: EffectsOf<P>) {
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id()).collect();
        for e in out.drain() {
            match e {
                Effect::Send { to, msg } => self.push(from, to, msg),
                Effect::Broadcast(msg) => {
                    for &to in ids.iter().filter(|&&i| i != from) {
                        self.push(from, to, msg.clone());
                    }
                }
                Effect::Emit(ev) => self.events.push((from, ev)),
                Effect::SetTimer { .. } | Effect::CancelTimer(_) => {}
            }
        }
    }

    fn push(&mut self, from: NodeId, to: NodeId, msg: P::Msg) {
        if (self.counted)(&msg) {
            self.sent += 1;
        }
        self.queue.push_back((from, to, msg));
    }

    fn input(&mut self, id: NodeId, f: impl FnOnce(&mut P, &mut EffectsOf<P>)) {
        let i = self.ix(id);
        let mut out = EffectsOf::<P>::new();
        f(&mut self.nodes[i], &mut out);
        self.absorb(id, out);
    }

    /// Member `id`'s user gives its core `cmd`; the core's refusal is returned.
    pub fn command(&mut self, id: NodeId, cmd: P::Command) -> Result<(), P::Error> {
        let i = self.ix(id);
        let mut out = EffectsOf::<P>::new();
        let r = self.nodes[i].on_command(Duration::ZERO, cmd, &mut out);
        self.absorb(id, out);
        r
    }

    /// Member `id`'s `timer` fires.
    pub fn timer(&mut self, id: NodeId, timer: P::Timer) {
        self.input(id, |n, out| n.on_timer(Duration::ZERO, timer, out));
    }

    /// Delivers the message sent first; false when nothing is in flight.
    pub fn step(&mut self) -> bool {
        match self.queue.pop_front() {
            Some((from, to, msg)) => {
                self.deliver(from, to, msg);
                true
            }
            None => false,
        }
    }

    /// Delivers the oldest message of one channel: of the channels `(from, to)` with messages
    /// in flight, in id order, number `pick` modulo their count. False when nothing is in
    /// flight. Every channel stays FIFO; a seeded `pick` explores interleavings.
    pub fn step_pick(&mut self, pick: usize) -> bool {
        let channels: BTreeSet<(NodeId, NodeId)> =
            self.queue.iter().map(|&(f, t, _)| (f, t)).collect();
        if channels.is_empty() {
            return false;
        }
        let chosen = *channels
            .iter()
            .nth(pick % channels.len())
            .expect("in range");
        let at = self
            .queue
            .iter()
            .position(|&(f, t, _)| (f, t) == chosen)
            .expect("a channel with a message");
        let (from, to, msg) = self.queue.remove(at).expect("in range");
        self.deliver(from, to, msg);
        true
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: P::Msg) {
        if self.down.contains(&to) || self.down.contains(&from) {
            return;
        }
        self.input(to, |n, out| n.on_message(Duration::ZERO, from, msg, out));
    }

    /// Delivers until nothing is in flight.
    pub fn run(&mut self) {
        while self.step() {}
    }

    /// Drops every message in flight from or to `id` (its connections broke).
    pub fn cut_off(&mut self, id: NodeId) {
        self.queue.retain(|&(f, t, _)| f != id && t != id);
    }

    /// Crashes `id` and declares it down to every other live node.
    pub fn crash(&mut self, id: NodeId) {
        self.down.push(id);
        let live: Vec<NodeId> = self
            .nodes
            .iter()
            .map(|n| n.id())
            .filter(|o| !self.down.contains(o))
            .collect();
        for o in live {
            self.input(o, |n, out| n.on_peer_down(Duration::ZERO, id, out));
        }
    }

    /// The events emitted since the last call.
    pub fn take_events(&mut self) -> Vec<(NodeId, P::Event)> {
        std::mem::take(&mut self.events)
    }
}

/// Messages in flight between nodes `0..N`, as part of a model's state: per `(src, dst)`
/// channel, kept in send order (FIFO channels) or sorted (an unordered multiset, so that two
/// states holding the same messages are one state).
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
