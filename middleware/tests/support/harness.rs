//! One stateright environment for the model checks of every sans-IO core: the cores run
//! unchanged, N of them, and the harness owns their network and the whole fault model, so a
//! service's model is its cores, its user's operations, what it observes and its properties.
//!
//! The environment ([`Faults`], each fault bounded by a count):
//! * **network**: FIFO channels or an unordered multiset; a message in flight may be
//!   **duplicated** (`duplicates`);
//! * **crash-stop** (`crashes`): a member stops, nothing reaches it any more, what it sent is
//!   still in flight; each survivor declares it down at its own moment. With `partial`, each of
//!   the crashed member's connections may break with its messages still in it, lost: a crash in
//!   the middle of a broadcast reaches some members only;
//! * **crash-recovery** (`restarts`): a crashed member starts again with a fresh core, a new
//!   incarnation; a survivor that had not noticed the crash sees it down, then up at its own
//!   moment. What the old incarnation had in flight is lost (its connections broke) unless
//!   `late_from_old` keeps it in flight, to arrive after the newcomer's first messages. With
//!   `atomic_restart`, a live member restarts in one step between exchanges instead (smaller
//!   state spaces);
//! * **broken connection** (`breaks`): the connection between two live members breaks, what was
//!   in flight between them is lost, and each sees the other up again at its own moment;
//! * **false suspicion / partition** (`cuts`): the link between two live members is cut (both
//!   directions lose everything until the heal), each side declares the other down at its own
//!   moment, the link heals once both have, and each sees the other up at its own moment;
//! * **the driver's rule** (`implicit_up`, default on): a message from a live member the
//!   receiver holds down, on a working link, first tells the core the member is up.
//!
//! Timers ([`Timers`]) are not modelled by default (the lock cores' retries are for losses the
//! model replaces by an explicit up notice). A timed service (the election) chooses
//! [`Timers::Deadlines`]: discrete-event time under the synchrony assumption its algorithm
//! needs (messages take no time: timers fire only when nothing is in flight, the earliest
//! deadline first, each armed timer keeping the time left before it expires, so the state space
//! stays finite although heartbeats go on for ever), or [`Timers::Any`]: any armed timer at any
//! moment (every timing, every false timeout). [`Service::may_fire`] adds a service's own rule
//! (the election's heartbeats wait for the failure detector's pending verdicts).
//!
//! A service whose inputs are times read from clocks (the Berkeley daemon) chooses
//! [`Timers::Clocked`]: true time ([`World::time`]) advances only when a timer fires or a crashed
//! member restarts ([`Faults::restart_after`] after its crash), timers fire in deadline order,
//! and each member reads its own clock ([`Service::now`]). Messages may then also be lost
//! (`drops`) and stay in flight across a time advance, within a budget (`late`).
//!
//! A service's ghost state may tag each message in flight ([`Service::Tag`], given by
//! [`Service::sent`]; the tag of the message being delivered is [`World::handling`]), and its
//! hooks may drive a core themselves (an event answered by a command, with [`absorb`] for the
//! effects, which then enter the world before the rest of the batch).
//!
//! With `boot` (default on), the initial state has every core started and the start-up exchange
//! (`Hello`/`State`) delivered in order, with a timed service's earliest timers firing until
//! [`Service::booted`] holds: the checks start from a booted cluster. Without it, every core is
//! started and the start-up itself is explored.
//!
//! [`Harness::members`] sets N (3 by default). [`stabilises`] is the liveness search for
//! services that never reach a terminal state (heartbeats): no reachable state is stuck
//! unstable, and no cycle is made only of unstable states.

use actix_coord::protocol::{Effect, EffectsOf, NodeId, Protocol};
use actix_coord_proto::testing::Channels;
use stateright::{Checker, HasDiscoveries, Model, Property};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// Members in a model, unless [`Harness::members`] says otherwise.
pub const N: usize = 3;

/// A core's timer type.
pub type TimerOf<S> = <<S as Service>::P as Protocol>::Timer;

/// A step of a service's model.
pub type StepOf<S> = Step<<S as Service>::Op, <S as Service>::M, TimerOf<S>, <S as Service>::Tag>;

/// The member id of index `i`.
pub fn id(i: usize) -> NodeId {
    i as NodeId + 1
}

/// The index of member `id`.
pub fn ix(id: NodeId) -> usize {
    id as usize - 1
}

/// What a service's model adds to the harness.
pub trait Service: Clone + Debug + Eq + Hash + Send + Sync + 'static {
    /// The core under check.
    type P: Protocol<Msg = Self::M, Error: Debug, Timer: Ord + Hash + Send + Sync>
        + Clone
        + Debug
        + Eq
        + Hash
        + Send
        + Sync
        + 'static;
    /// Its messages.
    type M: Clone + Debug + Eq + Ord + Hash + Send + Sync + 'static;
    /// What a member's user may do.
    type Op: Clone + Debug + Eq + Hash + Send + Sync + 'static;
    /// What the properties read: the run's history so far.
    type Obs: Clone + Debug + Eq + Hash + Send + Sync + 'static;
    /// What the ghost state tags each message in flight with (`()`: nothing).
    type Tag: Clone + Debug + Default + Eq + Ord + Hash + Send + Sync + 'static;

    /// Member `i`'s core, incarnation `inc` (0 at the boot).
    fn core(&self, i: usize, inc: u8) -> Self::P;
    /// The history at the start.
    fn obs(&self) -> Self::Obs;
    /// The histories at the start, one initial state each (by default the one of
    /// [`Service::obs`]).
    fn starts(&self) -> Vec<Self::Obs> {
        vec![self.obs()]
    }
    /// After every core has started, before the boot (the members' first commands).
    fn init(&self, _w: &mut World<Self>) {}
    /// Member `i`'s reading of its clock: true time unless the service says otherwise.
    fn now(&self, w: &World<Self>, _i: usize) -> Duration {
        w.time
    }
    /// What the live member `i` may do now.
    fn ops(&self, w: &World<Self>, i: usize, ops: &mut Vec<Self::Op>);
    /// Member `i` does `op`: the bookkeeping, and the command its core gets (`None`: none).
    fn act(
        &self,
        w: &mut World<Self>,
        i: usize,
        op: &Self::Op,
    ) -> Option<<Self::P as Protocol>::Command>;
    /// Member `i`'s core emitted `event`.
    fn observe(&self, w: &mut World<Self>, i: usize, event: <Self::P as Protocol>::Event);
    /// Member `i` crashed.
    fn crashed(&self, _w: &mut World<Self>, _i: usize) {}
    /// Member `i` restarted (its new core is in place, not started yet; a hook may drive it,
    /// with [`absorb`] for its effects).
    fn restarted(&self, _w: &mut World<Self>, _i: usize) {}
    /// After every step.
    fn after(&self, _w: &mut World<Self>) {}
    /// After every step, with the state before it and the step.
    fn stepped(&self, _before: &World<Self>, _step: &StepOf<Self>, _w: &mut World<Self>) {}
    /// Whether member `i`'s `timer`, next to expire, may fire now (a service's own timing rule).
    fn may_fire(&self, _w: &World<Self>, _i: usize, _timer: &TimerOf<Self>) -> bool {
        true
    }
    /// Whether the boot is over (checked when nothing is in flight; timed services fire their
    /// earliest timers until it holds).
    fn booted(&self, _w: &World<Self>) -> bool {
        true
    }
    /// Whether a state is inside the model's bounds (states outside are not expanded).
    fn within(&self, _w: &World<Self>) -> bool {
        true
    }
    /// Seeded bugs on the wire: the message `src` sends `dst` as it travels (`None`: lost).
    fn wire(&self, _w: &World<Self>, _src: usize, _dst: usize, msg: Self::M) -> Option<Self::M> {
        Some(msg)
    }
    /// `src` puts `msg` in flight to `dst`: the ghost tag it travels with (and any ghost
    /// bookkeeping of the send).
    fn sent(&self, _w: &mut World<Self>, _src: usize, _dst: usize, _msg: &Self::M) -> Self::Tag {
        Self::Tag::default()
    }
    /// A seeded bug in the receiving shell: what `dst`'s core is handed for `msg`.
    fn arriving(&self, _w: &World<Self>, _src: usize, _dst: usize, msg: Self::M) -> Self::M {
        msg
    }
    /// A delivery step: `dst`'s core has handled `msg` (tagged `tag`), its effects not yet in
    /// the world; `before` is the core as it was just before.
    fn received(
        &self,
        _before: &Self::P,
        _w: &mut World<Self>,
        _src: usize,
        _dst: usize,
        _msg: &Self::M,
        _tag: &Self::Tag,
    ) {
    }
    /// Member `i`'s `timer` never fires in this model (a bound: it neither fires nor holds time
    /// back).
    fn dormant(&self, _w: &World<Self>, _i: usize, _timer: &TimerOf<Self>) -> bool {
        false
    }
    /// The run goes no further from this state (a property has failed: the counterexample ends
    /// where it first failed, not where the checker last saw it fail).
    fn stops(&self, _w: &World<Self>) -> bool {
        false
    }
    /// The properties.
    fn properties(&self) -> Vec<Property<Harness<Self>>>;
}

/// How the harness models the cores' timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timers {
    /// Not modelled: arming a timer does nothing.
    Ignored,
    /// Discrete-event time under synchrony: a timer fires only when nothing is in flight, the
    /// earliest deadline first; firing one takes the time left off every other.
    Deadlines,
    /// Any armed timer may fire at any moment (with `synchronous`: only when nothing is in
    /// flight), in any order.
    Any {
        /// Timers wait for the network to be empty.
        synchronous: bool,
    },
    /// True time: each armed timer keeps its deadline, the earliest fires first and time
    /// advances to it; messages may stay in flight across an advance within [`Faults::late`];
    /// a crashed member restarts [`Faults::restart_after`] after its crash, or later.
    Clocked,
}

/// The faults a run allows, each bounded.
#[derive(Clone, Debug)]
pub struct Faults {
    /// FIFO channels (otherwise an unordered multiset).
    pub fifo: bool,
    /// Crash-stops.
    pub crashes: u8,
    /// The only member that may crash (`None`: any).
    pub crashing: Option<usize>,
    /// A crashed member's connections may break with its messages in them.
    pub partial: bool,
    /// Restarts of crashed members.
    pub restarts: u8,
    /// The only member that may restart (`None`: any).
    pub restarting: Option<usize>,
    /// What a crashed incarnation had in flight stays in flight past its restart.
    pub late_from_old: bool,
    /// Restarts are of live members, atomic and between exchanges (nothing in flight, no cut):
    /// the old incarnation dies, every peer sees it down, the new one starts and its
    /// catching-up is delivered in send order, every peer sees it up. Smaller state spaces
    /// than a crash followed by a restart; what it interrupts is the member's own state.
    pub atomic_restart: bool,
    /// Connections between live members that break.
    pub breaks: u8,
    /// Links cut and healed.
    pub cuts: u8,
    /// The only link that may be cut (`None`: any).
    pub cutting: Option<(usize, usize)>,
    /// Messages duplicated.
    pub duplicates: u8,
    /// Messages lost (any one in flight, in a FIFO channel too).
    pub drops: u8,
    /// With [`Timers::Clocked`]: how many messages may be carried across time advances in all
    /// (`None`: any number; `Some(0)`: every message is delivered or lost before time moves on).
    pub late: Option<u8>,
    /// With [`Timers::Clocked`]: how long after its crash a member restarts, at the earliest.
    pub restart_after: Duration,
    /// The driver's implicit-up rule.
    pub implicit_up: bool,
    /// Start from a booted cluster.
    pub boot: bool,
    /// Crashes and cuts are declared (off only for a seeded bug: a failure detector that never
    /// fires).
    pub detect: bool,
    /// How timers fire.
    pub timers: Timers,
}

impl Faults {
    /// No fault, FIFO or not.
    pub fn none(fifo: bool) -> Self {
        Self {
            fifo,
            crashes: 0,
            crashing: None,
            partial: false,
            restarts: 0,
            restarting: None,
            late_from_old: false,
            atomic_restart: false,
            breaks: 0,
            cuts: 0,
            cutting: None,
            duplicates: 0,
            drops: 0,
            late: None,
            restart_after: Duration::ZERO,
            implicit_up: true,
            boot: true,
            detect: true,
            timers: Timers::Ignored,
        }
    }
}

/// The world of one state: the cores, the network, the fault bookkeeping, the history.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World<S: Service> {
    /// The cores, by member index.
    pub nodes: Vec<S::P>,
    /// Who runs.
    pub alive: Vec<bool>,
    /// Each member's incarnation.
    pub inc: Vec<u8>,
    /// Messages in flight, each with its ghost tag.
    pub net: Channels<(S::M, S::Tag)>,
    /// The tag of the message being delivered, during its delivery (`None` otherwise).
    pub handling: Option<S::Tag>,
    /// The service's history.
    pub obs: S::Obs,
    /// Crashes and suspicions not yet noticed: (observer, peer).
    pub undetected: BTreeSet<(usize, usize)>,
    /// Members to be seen up again: (observer, peer).
    pub unseen: BTreeSet<(usize, usize)>,
    /// The driver's view: (observer, peer) when observer holds peer down.
    pub down: BTreeSet<(usize, usize)>,
    /// Cut links, `(a, b)` with `a < b`.
    pub cut: BTreeSet<(usize, usize)>,
    /// Faults so far.
    pub used: Used,
    /// Armed timers by member, with the time left before each expires, or with
    /// [`Timers::Clocked`] its deadline (`None`: timers are not modelled).
    pub timers: Option<Vec<BTreeMap<TimerOf<S>, Duration>>>,
    /// True time ([`Timers::Clocked`]; zero otherwise).
    pub time: Duration,
    /// When each crashed member crashed ([`Timers::Clocked`]; `None` otherwise).
    pub crashed_at: Vec<Option<Duration>>,
}

impl<S: Service> World<S> {
    /// Members in the model.
    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    /// The failure detector has nothing left to say: no crash or cut undeclared, nobody to be
    /// seen up again, no cut link.
    pub fn detector_quiet(&self) -> bool {
        self.undetected.is_empty() && self.unseen.is_empty() && self.cut.is_empty()
    }

    fn clear_timers(&mut self, i: usize) {
        if let Some(t) = &mut self.timers {
            t[i].clear();
        }
    }
}

/// Faults used so far in a state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Used {
    /// Crashes.
    pub crashes: u8,
    /// Restarts.
    pub restarts: u8,
    /// Broken connections.
    pub breaks: u8,
    /// Cuts.
    pub cuts: u8,
    /// Duplicates.
    pub duplicates: u8,
    /// Messages lost.
    pub drops: u8,
    /// Messages carried across time advances.
    pub late: u8,
}

/// One step of the environment or of a user (`G`: the messages' ghost tag).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step<Op, M, T, G = ()> {
    /// Member `.0`'s user does `.1`.
    Op(usize, Op),
    /// Member `.0`'s timer `.1` fires.
    Timer(usize, T),
    /// A message arrives.
    Deliver {
        /// Sender.
        src: usize,
        /// Receiver.
        dst: usize,
        /// The message.
        msg: M,
        /// Its ghost tag.
        tag: G,
    },
    /// A message in flight is duplicated.
    Duplicate {
        /// Sender.
        src: usize,
        /// Receiver.
        dst: usize,
        /// The message.
        msg: M,
        /// Its ghost tag.
        tag: G,
    },
    /// A message in flight is lost.
    Drop {
        /// Sender.
        src: usize,
        /// Receiver.
        dst: usize,
        /// The message.
        msg: M,
        /// Its ghost tag.
        tag: G,
    },
    /// The member stops.
    Crash(usize),
    /// The crashed member starts again with a fresh core.
    Restart(usize),
    /// `observer` declares `peer` down.
    Detect {
        /// Who.
        observer: usize,
        /// Whom.
        peer: usize,
    },
    /// The crashed member `src`'s connection to `dst` breaks with its messages in it.
    Partial {
        /// The crashed member.
        src: usize,
        /// The receiver.
        dst: usize,
    },
    /// The connection between live members breaks.
    Break {
        /// One end.
        a: usize,
        /// The other.
        b: usize,
    },
    /// The link between live members is cut.
    Cut {
        /// One end.
        a: usize,
        /// The other.
        b: usize,
    },
    /// The cut link heals.
    Heal {
        /// One end.
        a: usize,
        /// The other.
        b: usize,
    },
    /// `observer` sees `peer` up.
    Up {
        /// Who.
        observer: usize,
        /// Whom.
        peer: usize,
    },
}

/// Effects of member `at` enter the world: messages into the network (through
/// [`Service::wire`]), timers into its table (when modelled), events to [`Service::observe`].
pub fn absorb<S: Service>(service: &S, w: &mut World<S>, at: usize, out: EffectsOf<S::P>) {
    for e in out {
        match e {
            Effect::Send { to, msg } => push(service, w, at, ix(to), msg),
            Effect::Broadcast(msg) => {
                for to in (0..w.n()).filter(|&t| t != at) {
                    push(service, w, at, to, msg.clone());
                }
            }
            Effect::SetTimer { timer, after } => {
                let base = w.time; // zero unless clocked: then the deadline
                if let Some(t) = &mut w.timers {
                    t[at].insert(timer, base + after);
                }
            }
            Effect::CancelTimer(timer) => {
                if let Some(t) = &mut w.timers {
                    t[at].remove(&timer);
                }
            }
            Effect::Emit(ev) => service.observe(w, at, ev),
        }
    }
}

/// `src` sends `msg` to `dst` (through [`Service::wire`], tagged by [`Service::sent`]): what a
/// core's `Send` does, for a hook that sends as a seeded bug.
pub fn push<S: Service>(service: &S, w: &mut World<S>, src: usize, dst: usize, msg: S::M) {
    if !w.alive[dst] || w.cut.contains(&(src.min(dst), src.max(dst))) {
        return; // a crashed member, or one cut off, receives nothing
    }
    if let Some(msg) = service.wire(w, src, dst, msg) {
        let tag = service.sent(w, src, dst, &msg);
        w.net.push(src, dst, (msg, tag));
    }
}

/// A service's model under a fault model.
pub struct Harness<S: Service> {
    /// The service.
    pub service: S,
    /// The faults.
    pub faults: Faults,
    /// Members.
    pub n: usize,
}

impl<S: Service> Harness<S> {
    /// The model of `service` under `faults`, [`N`] members.
    pub fn new(service: S, faults: Faults) -> Self {
        Self {
            service,
            faults,
            n: N,
        }
    }

    /// With `n` members.
    pub fn members(mut self, n: usize) -> Self {
        self.n = n;
        self
    }

    /// Effects of member `at` enter the world.
    pub fn absorb(&self, w: &mut World<S>, at: usize, out: EffectsOf<S::P>) {
        absorb(&self.service, w, at, out);
    }

    /// The cluster's boot: everything in flight is delivered, in send order, until nothing
    /// is; then, for a timed service not yet [booted](Service::booted), its earliest timer
    /// fires, and so on.
    fn boot(&self, w: &mut World<S>) {
        for _ in 0..100_000 {
            if let Some((src, dst, carried)) = w.net.deliverable().into_iter().next() {
                let Some((msg, tag)) = w.net.take(src, dst, &carried) else {
                    break;
                };
                self.hand(w, src, dst, msg, tag);
            } else if self.service.booted(w) {
                return;
            } else if let Some(Step::Timer(i, t)) = self.timer_steps(w).into_iter().next() {
                self.fire(w, i, t);
            } else {
                panic!("the boot is stuck: nothing in flight, no timer, not booted");
            }
        }
        assert!(self.service.booted(w), "the boot does not end");
    }

    /// The timers that may fire now.
    fn timer_steps(&self, w: &World<S>) -> Vec<StepOf<S>> {
        let Some(timers) = &w.timers else {
            return Vec::new();
        };
        let alive = |i: &usize| w.alive[*i];
        let mut steps = Vec::new();
        match self.faults.timers {
            Timers::Ignored => {}
            Timers::Clocked => {
                let next = self.next_deadline(w);
                let may_advance = self.may_advance(w);
                for i in (0..w.n()).filter(alive) {
                    for (t, &at) in &timers[i] {
                        if Some(at) == next
                            && (at == w.time || may_advance)
                            && self.clocked_may_fire(w, i, t)
                        {
                            steps.push(Step::Timer(i, t.clone()));
                        }
                    }
                }
            }
            Timers::Deadlines => {
                if !w.net.is_empty() {
                    return steps;
                }
                let next = (0..w.n())
                    .filter(alive)
                    .flat_map(|i| timers[i].values().copied())
                    .min();
                for i in (0..w.n()).filter(alive) {
                    for (t, &left) in &timers[i] {
                        if Some(left) == next && self.service.may_fire(w, i, t) {
                            steps.push(Step::Timer(i, t.clone()));
                        }
                    }
                }
            }
            Timers::Any { synchronous } => {
                if synchronous && !w.net.is_empty() {
                    return steps;
                }
                for i in (0..w.n()).filter(alive) {
                    for t in timers[i].keys() {
                        if self.service.may_fire(w, i, t) {
                            steps.push(Step::Timer(i, t.clone()));
                        }
                    }
                }
            }
        }
        steps
    }

    fn clocked_may_fire(&self, w: &World<S>, i: usize, t: &TimerOf<S>) -> bool {
        !self.service.dormant(w, i, t) && self.service.may_fire(w, i, t)
    }

    /// [`Timers::Clocked`]: the earliest deadline of a live member's timer that may fire.
    fn next_deadline(&self, w: &World<S>) -> Option<Duration> {
        let timers = w.timers.as_ref()?;
        (0..w.n())
            .filter(|&i| w.alive[i])
            .flat_map(|i| {
                timers[i]
                    .iter()
                    .filter(move |(t, _)| self.clocked_may_fire(w, i, t))
                    .map(|(_, &at)| at)
            })
            .min()
    }

    /// [`Timers::Clocked`]: whether time may move on with what is in flight (within the
    /// lateness budget).
    fn may_advance(&self, w: &World<S>) -> bool {
        let in_flight = w.net.iter().count();
        self.faults
            .late
            .is_none_or(|max| w.used.late as usize + in_flight <= max as usize)
    }

    /// [`Timers::Clocked`]: true time moves on to `to`; what is in flight becomes late.
    fn advance(w: &mut World<S>, to: Duration) {
        if to > w.time {
            let in_flight = w.net.iter().count().min(255) as u8;
            w.used.late = w.used.late.saturating_add(in_flight);
        }
        w.time = to;
    }

    /// [`Timers::Clocked`]: when crashed member `i` may restart.
    fn restart_time(&self, w: &World<S>, i: usize) -> Option<Duration> {
        w.crashed_at[i].map(|c| w.time.max(c + self.faults.restart_after))
    }

    /// Whether crashed member `i` may restart now: with a clock, once its restart time has come
    /// and no timer is due before it (time may have to advance to it).
    fn restart_due(&self, w: &World<S>, i: usize) -> bool {
        if self.faults.timers != Timers::Clocked {
            return true;
        }
        let Some(at) = self.restart_time(w, i) else {
            return false;
        };
        self.next_deadline(w).is_none_or(|d| d >= at) && (at == w.time || self.may_advance(w))
    }

    /// Member `i`'s timer `t` fires (with deadlines, the time left comes off every other; with
    /// a clock, time advances to its deadline).
    fn fire(&self, w: &mut World<S>, i: usize, t: TimerOf<S>) -> Option<()> {
        let timers = w.timers.as_mut()?;
        let at = timers[i].remove(&t)?;
        match self.faults.timers {
            Timers::Deadlines => {
                for left in timers.iter_mut().flat_map(|m| m.values_mut()) {
                    *left = left.saturating_sub(at);
                }
            }
            Timers::Clocked => Self::advance(w, at),
            Timers::Ignored | Timers::Any { .. } => {}
        }
        let mut out = EffectsOf::<S::P>::new();
        let now = self.service.now(w, i);
        w.nodes[i].on_timer(now, t, &mut out);
        self.absorb(w, i, out);
        Some(())
    }

    /// `dst`'s core handles `msg` from `src` (tagged `tag`), and its effects enter the world.
    fn hand(&self, w: &mut World<S>, src: usize, dst: usize, msg: S::M, tag: S::Tag) {
        let mut out = EffectsOf::<S::P>::new();
        let now = self.service.now(w, dst);
        w.nodes[dst].on_message(now, id(src), msg, &mut out);
        w.handling = Some(tag);
        self.absorb(w, dst, out);
        w.handling = None;
    }

    /// Delivers, in send order, every message to or from `i` until none is left (a newcomer's
    /// catching-up); the others stay in flight.
    fn settle(&self, w: &mut World<S>, i: usize) {
        loop {
            let next = w
                .net
                .deliverable()
                .into_iter()
                .find(|(src, dst, _)| *src == i || *dst == i);
            let Some((src, dst, carried)) = next else {
                return;
            };
            let Some((msg, tag)) = w.net.take(src, dst, &carried) else {
                return;
            };
            self.hand(w, src, dst, msg, tag);
        }
    }

    fn peer_down(&self, w: &mut World<S>, observer: usize, peer: usize) {
        w.down.insert((observer, peer));
        let mut out = EffectsOf::<S::P>::new();
        let now = self.service.now(w, observer);
        w.nodes[observer].on_peer_down(now, id(peer), &mut out);
        self.absorb(w, observer, out);
    }

    fn peer_up(&self, w: &mut World<S>, observer: usize, peer: usize) {
        w.unseen.remove(&(observer, peer));
        w.down.remove(&(observer, peer));
        let mut out = EffectsOf::<S::P>::new();
        let now = self.service.now(w, observer);
        w.nodes[observer].on_peer_up(now, id(peer), &mut out);
        self.absorb(w, observer, out);
    }

    /// Whether a state has nothing left to do.
    pub fn terminal(&self, w: &World<S>) -> bool {
        let mut next = Vec::new();
        self.actions(w, &mut next);
        next.is_empty()
    }
}

impl<S: Service> Model for Harness<S> {
    type State = World<S>;
    type Action = StepOf<S>;

    fn init_states(&self) -> Vec<World<S>> {
        let n = self.n;
        let start = |obs: S::Obs| {
            let mut w: World<S> = World {
                nodes: (0..n).map(|i| self.service.core(i, 0)).collect(),
                alive: vec![true; n],
                inc: vec![0; n],
                net: Channels::new(self.faults.fifo),
                handling: None,
                obs,
                undetected: BTreeSet::new(),
                unseen: BTreeSet::new(),
                down: BTreeSet::new(),
                cut: BTreeSet::new(),
                used: Used::default(),
                timers: (self.faults.timers != Timers::Ignored).then(|| vec![BTreeMap::new(); n]),
                time: Duration::ZERO,
                crashed_at: vec![None; n],
            };
            for i in 0..n {
                let mut out = EffectsOf::<S::P>::new();
                let now = self.service.now(&w, i);
                w.nodes[i].on_start(now, &mut out);
                self.absorb(&mut w, i, out);
            }
            self.service.init(&mut w);
            if self.faults.boot {
                self.boot(&mut w);
            }
            self.service.after(&mut w);
            w
        };
        self.service.starts().into_iter().map(start).collect()
    }

    fn actions(&self, w: &World<S>, actions: &mut Vec<Self::Action>) {
        if self.service.stops(w) {
            return;
        }
        let f = &self.faults;
        let n = w.n();
        let mut ops = Vec::new();
        for i in (0..n).filter(|&i| w.alive[i]) {
            ops.clear();
            self.service.ops(w, i, &mut ops);
            actions.extend(ops.drain(..).map(|op| Step::Op(i, op)));
            if w.used.crashes < f.crashes && f.crashing.is_none_or(|c| c == i) {
                actions.push(Step::Crash(i));
            }
        }
        if w.used.restarts < f.restarts {
            let quiet = w.net.is_empty() && w.cut.is_empty() && w.unseen.is_empty();
            for i in (0..n).filter(|&i| {
                f.restarting.is_none_or(|r| r == i)
                    && if f.atomic_restart {
                        w.alive[i] && quiet
                    } else {
                        !w.alive[i] && self.restart_due(w, i)
                    }
            }) {
                actions.push(Step::Restart(i));
            }
        }
        actions.extend(self.timer_steps(w));
        for (src, dst, (msg, tag)) in w.net.deliverable() {
            if w.used.duplicates < f.duplicates {
                actions.push(Step::Duplicate {
                    src,
                    dst,
                    msg: msg.clone(),
                    tag: tag.clone(),
                });
            }
            actions.push(Step::Deliver { src, dst, msg, tag });
        }
        if w.used.drops < f.drops {
            let mut last = None;
            for (src, dst, carried) in w.net.iter() {
                if last != Some((src, dst, carried)) {
                    let (msg, tag) = carried.clone();
                    actions.push(Step::Drop { src, dst, msg, tag });
                }
                last = Some((src, dst, carried));
            }
        }
        if f.detect {
            for &(observer, peer) in &w.undetected {
                actions.push(Step::Detect { observer, peer });
            }
        }
        if f.partial {
            for src in (0..n).filter(|&s| !w.alive[s]) {
                for dst in (0..n).filter(|&d| w.alive[d] && w.net.has(src, d)) {
                    actions.push(Step::Partial { src, dst });
                }
            }
        }
        for a in (0..n).filter(|&a| w.alive[a]) {
            for b in (a + 1..n).filter(|&b| w.alive[b]) {
                let linked = !w.cut.contains(&(a, b));
                if w.used.breaks < f.breaks && linked {
                    actions.push(Step::Break { a, b });
                }
                if w.used.cuts < f.cuts && linked && f.cutting.is_none_or(|c| c == (a, b)) {
                    actions.push(Step::Cut { a, b });
                }
                if !linked && w.down.contains(&(a, b)) && w.down.contains(&(b, a)) {
                    actions.push(Step::Heal { a, b });
                }
            }
        }
        for &(observer, peer) in &w.unseen {
            if !w.cut.contains(&(observer.min(peer), observer.max(peer))) {
                actions.push(Step::Up { observer, peer });
            }
        }
    }

    fn next_state(&self, last: &World<S>, step: Self::Action) -> Option<World<S>> {
        let mut w = last.clone();
        let taken = step.clone();
        let mut out = EffectsOf::<S::P>::new();
        match step {
            Step::Op(i, op) => {
                if let Some(cmd) = self.service.act(&mut w, i, &op) {
                    // A command the core refuses is not a step of the run.
                    let now = self.service.now(&w, i);
                    w.nodes[i].on_command(now, cmd, &mut out).ok()?;
                    self.absorb(&mut w, i, out);
                }
            }
            Step::Timer(i, t) => self.fire(&mut w, i, t)?,
            Step::Deliver { src, dst, msg, tag } => {
                let (msg, tag) = w.net.take(src, dst, &(msg, tag))?;
                // The rule needs a live link: a crashed member's last messages do not bring it
                // back up.
                if self.faults.implicit_up && w.alive[src] && w.down.contains(&(dst, src)) {
                    self.peer_up(&mut w, dst, src);
                }
                let handed = self.service.arriving(&w, src, dst, msg.clone());
                let before = w.nodes[dst].clone();
                let now = self.service.now(&w, dst);
                w.nodes[dst].on_message(now, id(src), handed, &mut out);
                self.service.received(&before, &mut w, src, dst, &msg, &tag);
                w.handling = Some(tag);
                self.absorb(&mut w, dst, out);
                w.handling = None;
            }
            Step::Duplicate { src, dst, msg, tag } => {
                w.used.duplicates += 1;
                w.net.push(src, dst, (msg, tag));
            }
            Step::Drop { src, dst, msg, tag } => {
                w.net.take(src, dst, &(msg, tag))?;
                w.used.drops += 1;
            }
            Step::Crash(i) => {
                w.alive[i] = false;
                w.used.crashes += 1;
                if self.faults.timers == Timers::Clocked {
                    w.crashed_at[i] = Some(w.time);
                }
                w.clear_timers(i);
                w.net.drop_to(i);
                w.undetected.retain(|&(o, p)| o != i && p != i);
                w.unseen.retain(|&(o, p)| o != i && p != i);
                w.down.retain(|&(o, _)| o != i);
                w.cut.retain(|&(a, b)| a != i && b != i);
                for o in (0..w.n()).filter(|&o| w.alive[o] && !w.down.contains(&(o, i))) {
                    w.undetected.insert((o, i));
                }
                self.service.crashed(&mut w, i);
            }
            Step::Restart(i) if self.faults.atomic_restart => {
                w.used.restarts += 1;
                w.inc[i] += 1;
                w.nodes[i] = self.service.core(i, w.inc[i]);
                w.clear_timers(i);
                w.net.drop_to(i);
                w.net.drop_from(i);
                w.undetected.retain(|&(o, _)| o != i);
                let observers: Vec<usize> = (0..w.n()).filter(|&o| o != i && w.alive[o]).collect();
                for &o in &observers {
                    let mut down = EffectsOf::<S::P>::new();
                    let now = self.service.now(&w, o);
                    w.nodes[o].on_peer_down(now, id(i), &mut down);
                    self.absorb(&mut w, o, down);
                }
                self.service.restarted(&mut w, i);
                let now = self.service.now(&w, i);
                w.nodes[i].on_start(now, &mut out);
                self.absorb(&mut w, i, out);
                for &o in &observers {
                    let mut up = EffectsOf::<S::P>::new();
                    let now = self.service.now(&w, o);
                    w.nodes[o].on_peer_up(now, id(i), &mut up);
                    self.absorb(&mut w, o, up);
                }
                self.settle(&mut w, i);
            }
            Step::Restart(i) => {
                if self.faults.timers == Timers::Clocked {
                    let at = self.restart_time(&w, i)?;
                    Self::advance(&mut w, at);
                    w.crashed_at[i] = None;
                }
                w.used.restarts += 1;
                w.alive[i] = true;
                w.inc[i] += 1;
                if !self.faults.late_from_old {
                    w.net.drop_from(i);
                }
                w.nodes[i] = self.service.core(i, w.inc[i]);
                w.clear_timers(i);
                w.down.retain(|&(o, _)| o != i);
                for o in (0..w.n()).filter(|&o| o != i) {
                    if !w.alive[o] {
                        // The newcomer's failure detector declares the dead member down.
                        w.undetected.insert((i, o));
                    } else {
                        // A survivor that had not noticed the crash sees the new
                        // incarnation's connection replace the old one: down, then up.
                        if w.undetected.remove(&(o, i)) {
                            self.peer_down(&mut w, o, i);
                        }
                        w.unseen.insert((o, i));
                    }
                }
                self.service.restarted(&mut w, i);
                let now = self.service.now(&w, i);
                w.nodes[i].on_start(now, &mut out);
                self.absorb(&mut w, i, out);
            }
            Step::Detect { observer, peer } => {
                w.undetected.remove(&(observer, peer));
                self.peer_down(&mut w, observer, peer);
            }
            Step::Partial { src, dst } => w.net.drop_channel(src, dst),
            Step::Break { a, b } => {
                w.used.breaks += 1;
                w.net.drop_between(a, b);
                w.unseen.insert((a, b));
                w.unseen.insert((b, a));
            }
            Step::Cut { a, b } => {
                w.used.cuts += 1;
                w.cut.insert((a, b));
                w.net.drop_between(a, b);
                w.unseen.remove(&(a, b));
                w.unseen.remove(&(b, a));
                for (o, p) in [(a, b), (b, a)] {
                    if !w.down.contains(&(o, p)) {
                        w.undetected.insert((o, p));
                    }
                }
            }
            Step::Heal { a, b } => {
                w.cut.remove(&(a, b));
                w.unseen.insert((a, b));
                w.unseen.insert((b, a));
            }
            Step::Up { observer, peer } => self.peer_up(&mut w, observer, peer),
        }
        self.service.after(&mut w);
        self.service.stepped(last, &taken, &mut w);
        Some(w)
    }

    fn within_boundary(&self, w: &World<S>) -> bool {
        self.service.within(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.service.properties()
    }
}

/// Checks `model` exhaustively (breadth first), printing its state count and time.
pub fn check<M>(name: &str, model: M) -> impl Checker<M>
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Eq + Send + Sync + Debug + Clone,
    M::Action: Eq + Debug + Clone,
{
    check_to(name, model, None)
}

/// Checks any model breadth first, to `depth` steps when given (exhaustively otherwise),
/// printing its state count and time.
pub fn check_to<M>(name: &str, model: M, depth: Option<usize>) -> impl Checker<M>
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Eq + Send + Sync + Debug + Clone,
    M::Action: Eq + Debug + Clone,
{
    let t = Instant::now();
    let mut checker = model.checker();
    if let Some(depth) = depth {
        checker = checker.target_max_depth(depth);
    }
    let checker = checker.spawn_bfs().join();
    let bound = depth.map_or("exhaustive".to_owned(), |d| format!("depth ≤ {d}"));
    println!(
        "{name}: {} unique states, depth {}, {bound}, {:.2?}",
        checker.unique_state_count(),
        checker.max_depth(),
        t.elapsed()
    );
    checker
}

/// Checks `model` exhaustively (as [`check`]), asserts every property and, when given, that it
/// has `states` unique states: a changed count means the model or the core changed, and is
/// updated knowingly.
pub fn holds<S: Service>(name: &str, model: Harness<S>, states: Option<usize>) {
    let c = check(name, model);
    c.assert_properties();
    if let Some(states) = states {
        assert_eq!(c.unique_state_count(), states, "{name}: unique states");
    }
}

/// Searches `model` for a counterexample to `property`, prints it, returns its length; panics
/// when there is none.
pub fn counterexample<S: Service>(model: Harness<S>, property: &'static str) -> usize {
    search(model, property, None).len()
}

/// Searches any model breadth first (to `depth` steps, when given) for a counterexample to
/// `property`, prints it and returns its steps; panics when there is none.
pub fn search<M>(model: M, property: &'static str, depth: Option<usize>) -> Vec<M::Action>
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Eq + Send + Sync + Debug + Clone,
    M::Action: Eq + Debug + Clone,
{
    let mut checker = model.checker();
    if let Some(depth) = depth {
        checker = checker.target_max_depth(depth);
    }
    let c = checker
        .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property])))
        .spawn_bfs()
        .join();
    let path = c
        .discovery(property)
        .unwrap_or_else(|| panic!("no counterexample to {property}"));
    let actions = path.into_actions();
    println!("counterexample to {property} ({} steps):", actions.len());
    for a in &actions {
        println!("  {a:?}");
    }
    actions
}

/// The liveness search for models that never reach a terminal state: every reachable state is
/// inside the model's bounds, no terminal state is unstable, and no cycle is made only of
/// unstable states (stateright's `eventually` ignores runs that end in a cycle). Faults are
/// bounded, so every infinite run eventually runs fault-free; with this, it then reaches a
/// stable state. Returns the number of reachable states; panics with the cycle (one line per
/// state, by `summary`) or the stuck state otherwise.
pub fn stabilises<M>(
    model: &M,
    stable: impl Fn(&M::State) -> bool,
    summary: impl Fn(&M::State) -> String,
) -> usize
where
    M: Model,
    M::State: Hash,
{
    // 1. Reachable states, numbered; 64-bit fingerprints stand for states, as in stateright.
    let fp = |s: &M::State| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    };
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut states: Vec<M::State> = vec![];
    let mut succ: Vec<Vec<usize>> = vec![];
    let mut queue = VecDeque::new();
    for s in model.init_states() {
        if index.insert(fp(&s), states.len()).is_none() {
            queue.push_back(states.len());
            states.push(s);
        }
    }
    while let Some(i) = queue.pop_front() {
        assert!(
            model.within_boundary(&states[i]),
            "a bound is reached: raise it ({})",
            summary(&states[i])
        );
        let mut next = vec![];
        for t in model.next_states(&states[i]) {
            let f = fp(&t);
            let j = match index.get(&f) {
                Some(&j) => j,
                None => {
                    let j = states.len();
                    index.insert(f, j);
                    states.push(t);
                    queue.push_back(j);
                    j
                }
            };
            next.push(j);
        }
        // Breadth first: states leave the queue in the order they were numbered.
        debug_assert_eq!(succ.len(), i);
        succ.push(next);
    }
    let stable: Vec<bool> = states.iter().map(&stable).collect();
    // 2. Terminal states are stable.
    for (i, next) in succ.iter().enumerate() {
        assert!(
            !next.is_empty() || stable[i],
            "stuck unstable: {}",
            summary(&states[i])
        );
    }
    // 3. The unstable subgraph is acyclic (iterative DFS: 0 white, 1 grey, 2 black).
    let mut colour = vec![0u8; states.len()];
    for root in (0..states.len()).filter(|&i| !stable[i]) {
        if colour[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        colour[root] = 1;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            if let Some(&w) = succ[v].get(*k) {
                *k += 1;
                if stable[w] {
                    continue;
                }
                match colour[w] {
                    0 => {
                        colour[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let at = stack.iter().position(|&(x, _)| x == w).unwrap_or(0);
                        let cycle: Vec<String> = stack[at..]
                            .iter()
                            .map(|&(x, _)| summary(&states[x]))
                            .collect();
                        panic!("a run can stay unstable for ever:\n{}", cycle.join("\n"));
                    }
                    _ => {}
                }
            } else {
                colour[v] = 2;
                stack.pop();
            }
        }
    }
    states.len()
}
