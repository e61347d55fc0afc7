//! [`AnyLock`]: one sans-IO lock core over the three algorithms, the algorithm a
//! configuration value ([`LockAlgorithm`]).

use super::{
    Epoch, Fence, LamportMsg, LamportMutex, LockCommand, LockError, LockEvent, LockState,
    LockTimer, RaMsg, RicartAgrawala, SkMsg, SuzukiKasami,
};
use crate::protocol::{ConfigError, Effect, EffectsOf, NodeId, PeerWire, Protocol};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which mutual-exclusion algorithm a lock runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LockAlgorithm {
    /// [`LamportMutex`]: 3(N−1) messages per critical section, FIFO channels needed.
    Lamport,
    /// [`RicartAgrawala`]: 2(N−1) messages per critical section.
    RicartAgrawala,
    /// [`SuzukiKasami`]: N messages per critical section, 0 when the token is here.
    SuzukiKasami,
}

impl LockAlgorithm {
    /// The three algorithms.
    pub const ALL: [LockAlgorithm; 3] = [
        LockAlgorithm::Lamport,
        LockAlgorithm::RicartAgrawala,
        LockAlgorithm::SuzukiKasami,
    ];

    /// The name used on command lines: `lamport`, `ricart-agrawala`, `suzuki-kasami`.
    pub fn name(self) -> &'static str {
        match self {
            LockAlgorithm::Lamport => "lamport",
            LockAlgorithm::RicartAgrawala => "ricart-agrawala",
            LockAlgorithm::SuzukiKasami => "suzuki-kasami",
        }
    }
}

impl fmt::Display for LockAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is none of [`LockAlgorithm::name`]'s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown lock algorithm {0:?} (expected lamport, ricart-agrawala or suzuki-kasami)")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for LockAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LockAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// The messages of [`AnyLock`]: those of the algorithm it runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnyLockMsg {
    /// A [`LamportMutex`] message.
    Lamport(LamportMsg),
    /// A [`RicartAgrawala`] message.
    RicartAgrawala(RaMsg),
    /// A [`SuzukiKasami`] message.
    SuzukiKasami(SkMsg),
}

impl PeerWire for AnyLockMsg {
    const TAG: &'static str = "actix_coord.lock.v2";
}

/// What the local user asks of an [`AnyLock`]: the [`LockCommand`]s, and two that make
/// cancellation safe against a grant racing with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnyLockCommand {
    /// A plain lock command.
    Lock(LockCommand),
    /// Give up whatever this member has: cancel a pending request, release a held lock, nothing
    /// when idle (the withdrawal of a dropped or timed-out wait).
    Withdraw,
    /// Release only if the lock is held with this fencing token (a guard releasing the ownership
    /// it stands for, never a later one).
    ReleaseFence(Fence),
    /// The elected leader as this member now sees it (`None` while there is none): for a
    /// Suzuki–Kasami core built [`with_external_leader`](AnyLock::with_external_leader), it
    /// decides who regenerates a lost token ([`SuzukiKasami::set_leader`]). Accepted and ignored
    /// by the other cores.
    Leader(Option<NodeId>),
}

impl From<LockCommand> for AnyLockCommand {
    fn from(c: LockCommand) -> Self {
        AnyLockCommand::Lock(c)
    }
}

/// What an [`AnyLock`] tells its local user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnyLockEvent {
    /// An event of the lock itself.
    Lock(LockEvent),
    /// This member regenerated a lost Suzuki–Kasami token, in `epoch`.
    Regenerated {
        /// The epoch of the new token.
        epoch: Epoch,
    },
}

// One core per lock actor: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Core {
    Lamport(LamportMutex),
    RicartAgrawala(RicartAgrawala),
    SuzukiKasami(SuzukiKasami),
}

/// A sans-IO lock core running the algorithm chosen at construction.
///
/// Like the cores it wraps, it performs no I/O, reads no clock and draws no randomness. It adds
/// the [`AnyLockCommand::Withdraw`] and [`AnyLockCommand::ReleaseFence`] commands, and reports
/// Suzuki–Kasami token regenerations ([`AnyLockEvent::Regenerated`]): a token that appears
/// here without arriving in a message was regenerated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AnyLock {
    core: Core,
    regenerations: u64,
}

fn forward<P>(from: EffectsOf<P>, out: &mut EffectsOf<AnyLock>, wrap: fn(P::Msg) -> AnyLockMsg)
where
    P: Protocol<Event = LockEvent, Timer = LockTimer>,
{
    // A section's end is logged before anything the core sends in the same step (Lamport and
    // Ricart–Agrawala queue their release messages before the `Released` event): the exit
    // then happens before the next owner's enter, as `causal-log check` requires.
    let ends = |e: &Effect<P::Msg, LockTimer, LockEvent>| {
        matches!(
            e,
            Effect::Emit(LockEvent::Released { .. } | LockEvent::Lost { .. })
        )
    };
    let (first, rest): (Vec<_>, Vec<_>) = from.into_iter().partition(ends);
    for e in first.into_iter().chain(rest) {
        match e {
            Effect::Send { to, msg } => out.send(to, wrap(msg)),
            Effect::Broadcast(msg) => out.broadcast(wrap(msg)),
            Effect::SetTimer { timer, after } => out.set_timer(timer, after),
            Effect::CancelTimer(timer) => out.cancel_timer(timer),
            Effect::Emit(ev) => out.emit(AnyLockEvent::Lock(ev)),
        }
    }
}

impl AnyLock {
    /// Member `me` of `members` running `algorithm`.
    ///
    /// # Errors
    /// [`ConfigError`] when the membership is invalid.
    pub fn new(
        algorithm: LockAlgorithm,
        me: NodeId,
        members: impl IntoIterator<Item = NodeId>,
    ) -> Result<Self, ConfigError> {
        let core = match algorithm {
            LockAlgorithm::Lamport => Core::Lamport(LamportMutex::new(me, members)?),
            LockAlgorithm::RicartAgrawala => {
                Core::RicartAgrawala(RicartAgrawala::new(me, members)?)
            }
            LockAlgorithm::SuzukiKasami => Core::SuzukiKasami(SuzukiKasami::new(me, members)?),
        };
        Ok(Self {
            core,
            regenerations: 0,
        })
    }

    /// Sets this member's incarnation (see [`LamportMutex::with_incarnation`]): a value drawn
    /// anew at every start, so that peers tell a restarted member from the one they knew. The
    /// lock API draws it at random.
    pub fn with_incarnation(mut self, incarnation: u64) -> Self {
        self.core = match self.core {
            Core::Lamport(c) => Core::Lamport(c.with_incarnation(incarnation)),
            Core::RicartAgrawala(c) => Core::RicartAgrawala(c.with_incarnation(incarnation)),
            Core::SuzukiKasami(c) => Core::SuzukiKasami(c.with_incarnation(incarnation)),
        };
        self
    }

    /// Whether this member has caught up with its peers and takes part in the algorithm (a
    /// member starts catching up, at cluster boot and after a restart alike).
    pub fn is_active(&self) -> bool {
        match &self.core {
            Core::Lamport(c) => c.is_active(),
            Core::RicartAgrawala(c) => c.is_active(),
            Core::SuzukiKasami(c) => c.is_active(),
        }
    }

    /// Let an election decide Suzuki–Kasami token regenerations
    /// ([`SuzukiKasami::with_external_leader`]): the shell then sends
    /// [`AnyLockCommand::Leader`] on every leader change. No effect on the other algorithms.
    pub fn with_external_leader(mut self) -> Self {
        if let Core::SuzukiKasami(c) = self.core {
            self.core = Core::SuzukiKasami(c.with_external_leader());
        }
        self
    }

    /// Suzuki–Kasami with an elected leader: lead only once named leader for `settle` with no
    /// change ([`SuzukiKasami::with_leader_settle`]). No effect on the other algorithms.
    pub fn with_leader_settle(mut self, settle: Duration) -> Self {
        if let Core::SuzukiKasami(c) = self.core {
            self.core = Core::SuzukiKasami(c.with_leader_settle(settle));
        }
        self
    }

    /// The algorithm this core runs.
    pub fn algorithm(&self) -> LockAlgorithm {
        match self.core {
            Core::Lamport(_) => LockAlgorithm::Lamport,
            Core::RicartAgrawala(_) => LockAlgorithm::RicartAgrawala,
            Core::SuzukiKasami(_) => LockAlgorithm::SuzukiKasami,
        }
    }

    /// Where the local user stands.
    pub fn state(&self) -> LockState {
        match &self.core {
            Core::Lamport(c) => c.state(),
            Core::RicartAgrawala(c) => c.state(),
            Core::SuzukiKasami(c) => c.state(),
        }
    }

    /// Whether the local user holds the lock.
    pub fn is_held(&self) -> bool {
        matches!(self.state(), LockState::Held { .. })
    }

    /// How many tokens this member regenerated (Suzuki–Kasami; 0 for the others).
    pub fn regenerations(&self) -> u64 {
        self.regenerations
    }

    /// The Suzuki–Kasami core, when that is the algorithm.
    pub fn suzuki_kasami(&self) -> Option<&SuzukiKasami> {
        match &self.core {
            Core::SuzukiKasami(c) => Some(c),
            _ => None,
        }
    }

    /// Runs one input on the inner core, forwards its effects and reports a regeneration.
    fn run<R>(
        &mut self,
        out: &mut EffectsOf<Self>,
        _token_in: bool,
        f: impl FnOnce(&mut Core, &mut Fx) -> R,
    ) -> R {
        let before = self.suzuki_kasami().map_or(0, SuzukiKasami::regenerations);
        let mut fx = Fx::default();
        let r = f(&mut self.core, &mut fx);
        match fx {
            Fx::None => {}
            Fx::Lamport(e) => forward::<LamportMutex>(e, out, AnyLockMsg::Lamport),
            Fx::RicartAgrawala(e) => forward::<RicartAgrawala>(e, out, AnyLockMsg::RicartAgrawala),
            Fx::SuzukiKasami(e) => forward::<SuzukiKasami>(e, out, AnyLockMsg::SuzukiKasami),
        }
        if let Core::SuzukiKasami(c) = &self.core
            && c.regenerations() > before
        {
            self.regenerations += 1;
            out.emit(AnyLockEvent::Regenerated { epoch: c.epoch() });
        }
        r
    }
}

/// The effects buffer of whichever core ran.
#[derive(Default)]
enum Fx {
    #[default]
    None,
    Lamport(EffectsOf<LamportMutex>),
    RicartAgrawala(EffectsOf<RicartAgrawala>),
    SuzukiKasami(EffectsOf<SuzukiKasami>),
}

/// Calls `$body` with `$c` bound to the inner core and `$o` to a fresh effects buffer of its
/// type, stored in `$fx` afterwards.
macro_rules! on_core {
    ($core:expr, $fx:expr, |$c:ident, $o:ident| $body:expr) => {
        match $core {
            Core::Lamport($c) => {
                let mut $o = EffectsOf::<LamportMutex>::new();
                let r = $body;
                *$fx = Fx::Lamport($o);
                r
            }
            Core::RicartAgrawala($c) => {
                let mut $o = EffectsOf::<RicartAgrawala>::new();
                let r = $body;
                *$fx = Fx::RicartAgrawala($o);
                r
            }
            Core::SuzukiKasami($c) => {
                let mut $o = EffectsOf::<SuzukiKasami>::new();
                let r = $body;
                *$fx = Fx::SuzukiKasami($o);
                r
            }
        }
    };
}

impl Protocol for AnyLock {
    type Msg = AnyLockMsg;
    type Event = AnyLockEvent;
    type Timer = LockTimer;
    type Command = AnyLockCommand;
    type Error = LockError;

    fn id(&self) -> NodeId {
        match &self.core {
            Core::Lamport(c) => c.id(),
            Core::RicartAgrawala(c) => c.id(),
            Core::SuzukiKasami(c) => c.id(),
        }
    }

    fn on_start(&mut self, now: Duration, out: &mut EffectsOf<Self>) {
        self.run(out, false, |core, fx| {
            on_core!(core, fx, |c, o| c.on_start(now, &mut o))
        });
    }

    fn on_command(
        &mut self,
        now: Duration,
        cmd: AnyLockCommand,
        out: &mut EffectsOf<Self>,
    ) -> Result<(), LockError> {
        let cmd = match (cmd, self.state()) {
            (AnyLockCommand::Leader(leader), _) => {
                self.run(out, false, |core, fx| {
                    if let Core::SuzukiKasami(c) = core {
                        let mut o = EffectsOf::<SuzukiKasami>::new();
                        c.set_leader(leader, &mut o);
                        *fx = Fx::SuzukiKasami(o);
                    }
                });
                return Ok(());
            }
            (AnyLockCommand::Lock(c), _) => c,
            (AnyLockCommand::Withdraw, LockState::Idle) => return Ok(()),
            (AnyLockCommand::Withdraw, LockState::Waiting) => LockCommand::Cancel,
            (AnyLockCommand::Withdraw, LockState::Held { .. }) => LockCommand::Release,
            (AnyLockCommand::ReleaseFence(f), LockState::Held { fence }) if f == fence => {
                LockCommand::Release
            }
            (AnyLockCommand::ReleaseFence(_), _) => return Err(LockError::NotHeld),
        };
        self.run(out, false, |core, fx| {
            on_core!(core, fx, |c, o| c.on_command(now, cmd, &mut o))
        })
    }

    fn on_message(
        &mut self,
        now: Duration,
        from: NodeId,
        msg: AnyLockMsg,
        out: &mut EffectsOf<Self>,
    ) {
        let token_in = matches!(msg, AnyLockMsg::SuzukiKasami(SkMsg::Token(_)));
        self.run(out, token_in, |core, fx| match (core, msg) {
            (Core::Lamport(c), AnyLockMsg::Lamport(m)) => {
                let mut o = EffectsOf::<LamportMutex>::new();
                c.on_message(now, from, m, &mut o);
                *fx = Fx::Lamport(o);
            }
            (Core::RicartAgrawala(c), AnyLockMsg::RicartAgrawala(m)) => {
                let mut o = EffectsOf::<RicartAgrawala>::new();
                c.on_message(now, from, m, &mut o);
                *fx = Fx::RicartAgrawala(o);
            }
            (Core::SuzukiKasami(c), AnyLockMsg::SuzukiKasami(m)) => {
                let mut o = EffectsOf::<SuzukiKasami>::new();
                c.on_message(now, from, m, &mut o);
                *fx = Fx::SuzukiKasami(o);
            }
            _ => {} // another algorithm's message: a misconfigured peer, dropped
        });
    }

    fn on_timer(&mut self, now: Duration, timer: LockTimer, out: &mut EffectsOf<Self>) {
        self.run(out, false, |core, fx| {
            on_core!(core, fx, |c, o| c.on_timer(now, timer, &mut o))
        });
    }

    fn on_peer_down(&mut self, now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.run(out, false, |core, fx| {
            on_core!(core, fx, |c, o| c.on_peer_down(now, peer, &mut o))
        });
    }

    fn on_peer_up(&mut self, now: Duration, peer: NodeId, out: &mut EffectsOf<Self>) {
        self.run(out, false, |core, fx| {
            on_core!(core, fx, |c, o| c.on_peer_up(now, peer, &mut o))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Net;

    #[test]
    fn algorithm_names_round_trip() {
        for a in LockAlgorithm::ALL {
            assert_eq!(a.name().parse::<LockAlgorithm>(), Ok(a));
        }
        assert_eq!(
            "paxos".parse::<LockAlgorithm>(),
            Err(UnknownAlgorithm("paxos".into()))
        );
    }

    #[test]
    fn withdraw_and_release_fence_commands() {
        // Alone in its group: caught up at once, with the token.
        let mut l = AnyLock::new(LockAlgorithm::SuzukiKasami, 1, [1]).unwrap();
        let mut out = EffectsOf::<AnyLock>::new();
        let now = Duration::ZERO;
        l.on_command(now, AnyLockCommand::Withdraw, &mut out)
            .unwrap();
        assert!(out.is_empty());
        l.on_command(now, LockCommand::Acquire.into(), &mut out)
            .unwrap();
        let LockState::Held { fence } = l.state() else {
            panic!("the token holder enters at once")
        };
        assert_eq!(
            l.on_command(now, AnyLockCommand::ReleaseFence(fence + 1), &mut out),
            Err(LockError::NotHeld)
        );
        l.on_command(now, AnyLockCommand::Withdraw, &mut out)
            .unwrap();
        assert_eq!(l.state(), LockState::Idle);
        assert_eq!(l.regenerations(), 0);
    }

    /// `n` members running `a`, started and caught up.
    fn lock_net(a: LockAlgorithm, n: u32) -> Net<AnyLock> {
        Net::new(
            (1..=n)
                .map(|i| AnyLock::new(a, i, 1..=n).unwrap())
                .collect(),
        )
    }

    /// Member `id` runs `c`, then everything in flight is delivered.
    fn command(net: &mut Net<AnyLock>, id: NodeId, c: LockCommand) {
        net.command(id, c.into()).unwrap();
        net.run();
    }

    /// `id` crashes (declared down to the others), then everything in flight is delivered.
    fn crash(net: &mut Net<AnyLock>, id: NodeId) {
        net.crash(id);
        net.run();
    }

    #[test]
    fn a_regenerated_token_is_reported_once() {
        // Node 2 holds the token and crashes; node 1 (lowest live) regenerates it for node 3.
        let mut sim = lock_net(LockAlgorithm::SuzukiKasami, 3);
        command(&mut sim, 2, LockCommand::Acquire);
        command(&mut sim, 3, LockCommand::Acquire);
        assert!(sim.nodes[1].is_held());
        crash(&mut sim, 2);
        assert!(sim.nodes[2].is_held());
        assert_eq!(
            sim.nodes
                .iter()
                .map(AnyLock::regenerations)
                .collect::<Vec<_>>(),
            vec![1, 0, 0]
        );
        let regenerated = sim
            .events
            .iter()
            .filter(|(_, e)| matches!(e, AnyLockEvent::Regenerated { .. }))
            .count();
        assert_eq!(regenerated, 1, "{:?}", sim.events);
        // A non-holder's crash regenerates nothing.
        let mut sim = lock_net(LockAlgorithm::SuzukiKasami, 3);
        command(&mut sim, 2, LockCommand::Acquire);
        crash(&mut sim, 3);
        assert!(sim.nodes.iter().all(|n| n.regenerations() == 0));
    }

    #[test]
    fn with_an_elected_leader_only_the_leader_regenerates() {
        let mut sim = lock_net(LockAlgorithm::SuzukiKasami, 3);
        for n in &mut sim.nodes {
            *n = n.clone().with_external_leader();
        }
        for id in 1..=3 {
            let mut out = EffectsOf::<AnyLock>::new();
            sim.nodes[id as usize - 1]
                .on_command(Duration::ZERO, AnyLockCommand::Leader(Some(3)), &mut out)
                .unwrap();
            assert!(out.is_empty(), "nobody is down: nothing to recover");
            sim.absorb(id, out);
        }
        command(&mut sim, 2, LockCommand::Acquire);
        command(&mut sim, 1, LockCommand::Acquire);
        crash(&mut sim, 2);
        assert!(sim.nodes[0].is_held());
        assert_eq!(
            sim.nodes
                .iter()
                .map(AnyLock::regenerations)
                .collect::<Vec<_>>(),
            vec![0, 0, 1]
        );
        let regenerated: Vec<_> = sim
            .events
            .iter()
            .filter_map(|(n, e)| match e {
                AnyLockEvent::Regenerated { epoch } => Some((*n, *epoch)),
                _ => None,
            })
            .collect();
        assert_eq!(
            regenerated,
            vec![(
                3,
                Epoch {
                    round: 2,
                    leader: 3
                }
            )]
        );
        // The leader command is accepted, and ignored, by the other algorithms.
        let mut l = AnyLock::new(LockAlgorithm::RicartAgrawala, 1, [1, 2]).unwrap();
        let mut out = EffectsOf::<AnyLock>::new();
        l.on_command(Duration::ZERO, AnyLockCommand::Leader(Some(1)), &mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn messages_of_another_algorithm_are_dropped() {
        let mut l = AnyLock::new(LockAlgorithm::Lamport, 1, [1, 2]).unwrap();
        let mut out = EffectsOf::<AnyLock>::new();
        l.on_message(
            Duration::ZERO,
            2,
            AnyLockMsg::RicartAgrawala(RaMsg::Request { time: 1 }),
            &mut out,
        );
        assert!(out.is_empty());
    }
}
