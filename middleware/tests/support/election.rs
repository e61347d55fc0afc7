//! The bully election ([`Bully`], run unchanged) as a service of the shared harness: what the
//! election models of `model_bully` (timed, exhaustive, with the liveness search) and
//! `model_election` (timers at any moment, runs to a depth) check.
//!
//! Properties:
//! * `one leader per term` (always): no two members ever lead in the same term, and the leader
//!   of a term is the member the term names (a ghost set of every `(term, member slot)` that
//!   ever led: two slots configured with one id are two leaders);
//! * `terms increase` (always): the leader a member recognises changes only to a higher term, or
//!   stays (within one incarnation of the member);
//! * `stable` (sometimes): the highest live member leads and every live member recognises it
//!   with its term; [`stable`] is also what [`super::harness::stabilises`] searches for.

use super::harness::{Faults, Harness, Service, TimerOf, Timers, World, id};
use actix_coord::election::{Bully, BullyConfig, BullyEvent, BullyMsg, BullyTimer, Role, Term};
use actix_coord::protocol::{EffectsOf, NodeId, Protocol};
use stateright::Property;
use std::collections::BTreeSet;
use std::time::Duration;

/// Bugs put in on purpose: each breaks one property, and its test shows the check finding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seeded {
    /// The two highest members are both configured with the highest id: two members lead the
    /// same term.
    SharedId,
    /// A member that gets a leader message of a term older than the one it knows forgets its
    /// state (a fresh core) before taking it: it goes back to an older term.
    ForgetsTermOnStaleLeader,
    /// Member 1 drops every `Coordinator` and `Heartbeat` it gets: it never recognises a
    /// leader, so the cluster never stabilises.
    DeafMember1,
}

/// A bully core, with the seeded bug that lives in a core.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Core {
    /// The core under check.
    pub bully: Bully,
    /// What a fresh core is, for [`Seeded::ForgetsTermOnStaleLeader`].
    forget: Option<Bully>,
}

impl Protocol for Core {
    type Msg = BullyMsg;
    type Event = BullyEvent;
    type Timer = BullyTimer;
    type Command = <Bully as Protocol>::Command;
    type Error = <Bully as Protocol>::Error;

    fn id(&self) -> NodeId {
        self.bully.id()
    }
    fn on_start(&mut self, now: Duration, out: &mut EffectsOf<Self>) {
        self.bully.on_start(now, out);
    }
    fn on_command(
        &mut self,
        now: Duration,
        cmd: Self::Command,
        out: &mut EffectsOf<Self>,
    ) -> Result<(), Self::Error> {
        self.bully.on_command(now, cmd, out)
    }
    fn on_message(
        &mut self,
        now: Duration,
        from: NodeId,
        msg: BullyMsg,
        out: &mut EffectsOf<Self>,
    ) {
        if let (Some(fresh), BullyMsg::Coordinator { term } | BullyMsg::Heartbeat { term }) =
            (&self.forget, &msg)
            && self.bully.known_term() > *term
        {
            self.bully = fresh.clone();
        }
        self.bully.on_message(now, from, msg, out);
    }
    fn on_timer(&mut self, now: Duration, timer: BullyTimer, out: &mut EffectsOf<Self>) {
        self.bully.on_timer(now, timer, out);
    }
    fn on_peer_down(&mut self, now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.bully.on_peer_down(now, peer, out);
    }
    fn on_peer_up(&mut self, now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.bully.on_peer_up(now, peer, out);
    }
}

/// What the properties read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Every `(term, member slot)` that ever led.
    pub led: BTreeSet<(Term, usize)>,
    /// Per member (this incarnation): the last leader it recognised, with its term.
    pub last_seen: Vec<Option<(NodeId, Term)>>,
    /// A member recognised a leader of an older term than the one it recognised before.
    pub went_back: bool,
}

/// The election under check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Election {
    /// Members.
    pub n: usize,
    /// Every member's settings.
    pub cfg: BullyConfig,
    /// States whose known round exceeds this are not expanded (terms are unbounded).
    pub max_round: u64,
    /// A bug put in on purpose.
    pub seeded: Option<Seeded>,
    /// Heartbeats wait for the failure detector (set by [`Election::under`] for
    /// [`Timers::Deadlines`], the liveness search's timing; with timers at any moment they fire
    /// whenever they are armed, during a partition too).
    pub heartbeats_wait: bool,
}

/// The harness's world for the election.
pub type W = World<Election>;

impl Election {
    /// `n` members with `cfg`, rounds up to 8, no seeded bug.
    pub fn new(n: usize, cfg: BullyConfig) -> Self {
        Self {
            n,
            cfg,
            max_round: 8,
            seeded: None,
            heartbeats_wait: false,
        }
    }

    /// This service under `faults` (its `n` members).
    pub fn under(mut self, faults: Faults) -> Harness<Self> {
        let n = self.n;
        self.heartbeats_wait = faults.timers == Timers::Deadlines;
        Harness::new(self, faults).members(n)
    }

    fn record_leader(w: &mut W, i: usize) {
        if let Role::Leader { term, .. } = w.nodes[i].bully.role() {
            let term = *term;
            w.obs.led.insert((term, i));
        }
    }
}

/// The highest live member leads, and every live member recognises it with its term.
pub fn stable(w: &W) -> bool {
    let Some(top) = (0..w.n()).rev().find(|&i| w.alive[i]) else {
        return true;
    };
    let Role::Leader { term, .. } = w.nodes[top].bully.role().clone() else {
        return false;
    };
    (0..w.n()).filter(|&i| w.alive[i]).all(|i| {
        let b = &w.nodes[i].bully;
        b.leader() == Some((id(top), term)) && (i == top || !b.is_leader())
    })
}

/// One line per state, for counterexamples.
pub fn summary(w: &W) -> String {
    let nodes: Vec<String> = (0..w.n())
        .map(|i| {
            let b = &w.nodes[i].bully;
            if !w.alive[i] {
                return format!("{}:down", i + 1);
            }
            let timers = w.timers.as_ref().map(|t| &t[i]);
            format!(
                "{}:{:?} leader={:?} known={} timers={timers:?}",
                i + 1,
                b.role(),
                b.leader().map(|(l, t)| format!("{l}@{t}")),
                b.known_term(),
            )
        })
        .collect();
    format!(
        "[{}] net={:?} undetected={:?} unseen={:?} cut={:?}",
        nodes.join(" | "),
        w.net,
        w.undetected,
        w.unseen,
        w.cut
    )
}

impl Service for Election {
    type P = Core;
    type M = BullyMsg;
    type Op = ();
    type Obs = History;
    type Tag = ();

    fn core(&self, i: usize, _inc: u8) -> Core {
        let members: Vec<NodeId> = (0..self.n).map(id).collect();
        let me = match self.seeded {
            Some(Seeded::SharedId) if i + 2 == self.n => id(i + 1),
            _ => id(i),
        };
        let bully = Bully::new(me, members, self.cfg.clone()).expect("valid config");
        let forget = (self.seeded == Some(Seeded::ForgetsTermOnStaleLeader)).then(|| bully.clone());
        Core { bully, forget }
    }

    fn obs(&self) -> History {
        History {
            last_seen: vec![None; self.n],
            ..History::default()
        }
    }

    fn ops(&self, _w: &W, _i: usize, _ops: &mut Vec<()>) {}

    fn act(&self, _w: &mut W, _i: usize, _op: &()) -> Option<<Core as Protocol>::Command> {
        None
    }

    fn observe(&self, w: &mut W, i: usize, event: BullyEvent) {
        let BullyEvent::LeaderChanged {
            leader: Some(l),
            term,
        } = event
        else {
            return;
        };
        if let Some((prev_l, prev_t)) = w.obs.last_seen[i]
            && !(term > prev_t || (term == prev_t && l == prev_l))
        {
            w.obs.went_back = true;
        }
        w.obs.last_seen[i] = Some((l, term));
    }

    fn crashed(&self, w: &mut W, i: usize) {
        w.obs.last_seen[i] = None;
    }

    fn restarted(&self, w: &mut W, i: usize) {
        w.obs.last_seen[i] = None;
    }

    fn after(&self, w: &mut W) {
        for i in 0..w.n() {
            if w.alive[i] {
                Self::record_leader(w, i);
            }
        }
    }

    fn wire(&self, _w: &W, _src: usize, dst: usize, msg: BullyMsg) -> Option<BullyMsg> {
        let leader_msg = matches!(
            msg,
            BullyMsg::Coordinator { .. } | BullyMsg::Heartbeat { .. }
        );
        if self.seeded == Some(Seeded::DeafMember1) && dst == 0 && leader_msg {
            return None;
        }
        Some(msg)
    }

    /// With deadlines, heartbeats wait for the failure detector (its verdicts come before the
    /// next heartbeat, partitions heal within a heartbeat period): without this rule the
    /// liveness search reports runs that never let the detector speak.
    fn may_fire(&self, w: &W, _i: usize, timer: &TimerOf<Self>) -> bool {
        !self.heartbeats_wait || *timer != BullyTimer::Heartbeat || w.detector_quiet()
    }

    fn booted(&self, w: &W) -> bool {
        stable(w)
    }

    fn within(&self, w: &W) -> bool {
        (0..w.n())
            .filter(|&i| w.alive[i])
            .all(|i| w.nodes[i].bully.known_term().round <= self.max_round)
    }

    fn properties(&self) -> Vec<Property<Harness<Self>>> {
        vec![
            Property::always("one leader per term", |_, w: &W| {
                let mut by_term = std::collections::BTreeMap::new();
                w.obs.led.iter().all(|&(t, slot)| {
                    t.leader == id(slot) && by_term.insert(t, slot).is_none_or(|o| o == slot)
                })
            }),
            Property::always("terms increase", |_, w: &W| !w.obs.went_back),
            Property::sometimes("stable", |_, w: &W| stable(w)),
        ]
    }
}

/// The faults of the timed election models: FIFO links, discrete-event timers, `crashes`
/// crash-stops, `restarts` restarts, `breaks` broken connections (what was in flight between
/// two members is lost), `cuts` partitions (false suspicion) healed.
pub fn faults(crashes: u8, restarts: u8, breaks: u8, cuts: u8, timers: Timers) -> Faults {
    Faults {
        crashes,
        restarts,
        breaks,
        cuts,
        timers,
        ..Faults::none(true)
    }
}
