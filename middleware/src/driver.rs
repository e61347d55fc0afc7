//! The generic actor shell that drives any sans-IO [`Protocol`] core.
//!
//! A [`Driver`] owns one core and is a causal actor (its context is
//! [`CausalContext`]), so every protocol message it sends or
//! receives is stamped, merged and written to the causal log like any other message. It
//! matches the core's [`Effect`]s exhaustively: `Send` and `Broadcast` go out through its
//! [`Links`], `SetTimer` / `CancelTimer` arm and disarm one actor timer per timer value, and
//! `Emit` reaches the observer given at construction and every subscriber.
//!
//! The core's `now` is the time elapsed since the driver started (tokio's clock, so paused and
//! simulated time work), unless a [`Host`] says otherwise: a core whose `now` is a clock of its
//! own (the Berkeley daemon's, the clock it disciplines) gets that clock read by its host, and
//! the host also carries out the events that act on the node itself (the daemon's clock
//! corrections), feeding a refusal back to the core as a command.
//!
//! ```
//! use actix_coord::driver::{Driver, LocalLinks};
//! use actix_coord::election::{Bully, BullyConfig};
//!
//! # actix::System::new().block_on(async {
//! let links = LocalLinks::<Bully>::new();
//! let members = [1, 2, 3];
//! for id in members {
//!     let core = Bully::new(id, members, BullyConfig::default()).unwrap();
//!     let driver = Driver::start(core, &members, links.clone(), None);
//!     links.register(id, driver); // so that its peers reach it
//! }
//! # });
//! ```

use crate::intercept::{CausalBuilder, CausalContext};
use crate::protocol::{Effect, EffectsOf, Membership, NodeId, Protocol};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A core a [`Driver`] can run: a [`Protocol`] whose types can travel between actors.
pub trait Driven:
    Protocol<
        Msg: Send + Unpin,
        Command: Send + Unpin,
        Event: Send + Unpin,
        Timer: Unpin,
        Error: Send,
    > + Unpin
    + 'static
{
}

impl<P> Driven for P where
    P: Protocol<
            Msg: Send + Unpin,
            Command: Send + Unpin,
            Event: Send + Unpin,
            Timer: Unpin,
            Error: Send,
        > + Unpin
        + 'static
{
}

/// A protocol message from peer `from`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PeerMsg<M> {
    /// The sending member.
    pub from: NodeId,
    /// The core's message.
    pub msg: M,
}

impl<M: 'static> Message for PeerMsg<M> {
    type Result = ();
}

/// How a driver reaches its peers' drivers.
pub trait Links<M>: 'static {
    /// Hands `msg` from member `from` to member `to`'s driver. Returns `false` when it could
    /// not be handed over (unknown or unreachable member); the core learns of lost peers from
    /// the failure detector, not from this result.
    fn send(&self, from: NodeId, to: NodeId, msg: M) -> bool;

    /// Whether member `peer` is reachable now. A message from a peer the core was told is down
    /// comes through a new connection when this says so: the driver tells the core the peer is
    /// up before it hands over the message (the membership event may still be on its way).
    /// The default says yes.
    fn is_up(&self, peer: NodeId) -> bool {
        let _ = peer;
        true
    }
}

/// Links between drivers of one OS process: each member's driver registers its address.
pub struct LocalLinks<P: Driven> {
    peers: Arc<Mutex<HashMap<NodeId, Addr<Driver<P>>>>>,
}

impl<P: Driven> Clone for LocalLinks<P> {
    fn clone(&self) -> Self {
        Self {
            peers: self.peers.clone(),
        }
    }
}

impl<P: Driven> Default for LocalLinks<P> {
    fn default() -> Self {
        Self {
            peers: Arc::default(),
        }
    }
}

impl<P: Driven> LocalLinks<P> {
    /// Links with no members yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the driver of member `id`.
    pub fn register(&self, id: NodeId, addr: Addr<Driver<P>>) {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, addr);
    }

    /// Removes member `id` (its messages are then dropped, as if it had crashed).
    pub fn unregister(&self, id: NodeId) -> Option<Addr<Driver<P>>> {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }
}

impl<P> Links<P::Msg> for LocalLinks<P>
where
    P: Driven,
{
    fn send(&self, from: NodeId, to: NodeId, msg: P::Msg) -> bool {
        let addr = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&to)
            .cloned();
        match addr {
            Some(a) if a.connected() => {
                a.do_send(PeerMsg { from, msg });
                true
            }
            _ => false,
        }
    }
}

pub use crate::protocol::PeerWire;

impl<M: PeerWire> crate::net::RemoteMessage for PeerMsg<M> {
    const TAG: &'static str = M::TAG;
}

impl<P> crate::net::RemoteActor for Driver<P>
where
    P: Driven,
    P::Msg: PeerWire,
{
    fn remote_handlers(h: &mut crate::net::Handlers<Self>) {
        h.accept::<PeerMsg<P::Msg>>();
    }
}

/// Links between drivers on different nodes: every member registers its driver under the same
/// `name` on its own [`Node`](crate::net::Node).
pub struct NetLinks {
    node: crate::net::Node,
    name: Arc<str>,
}

impl NetLinks {
    /// Links through `node` to the drivers registered as `name` on the other members.
    pub fn new(node: &crate::net::Node, name: &str) -> Self {
        Self {
            node: node.clone(),
            name: Arc::from(name),
        }
    }
}

impl<M: PeerWire> Links<M> for NetLinks {
    fn send(&self, from: NodeId, to: NodeId, msg: M) -> bool {
        let addr = crate::net::RemoteAddr::<PeerMsg<M>>::new(&self.node, to, &self.name);
        match addr.do_send(PeerMsg { from, msg }) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(target: "actix_coord::driver", to, error = %e, "protocol message not sent");
                false
            }
        }
    }

    fn is_up(&self, peer: NodeId) -> bool {
        self.node.is_up(peer)
    }
}

/// Starts a driver on `node` for `core`: registers it as `name` (so its peers' [`NetLinks`]
/// reach it), links it to the others, and forwards the node's membership events to it as
/// [`PeerStatus`]. Call on an actix arbiter.
///
/// # Errors
/// `name` is already registered on `node`.
pub fn start_on_node<P>(
    node: &crate::net::Node,
    name: &str,
    core: P,
    members: &[NodeId],
    observer: Option<Observer<P::Event>>,
) -> Result<Addr<Driver<P>>, crate::net::RegisterError>
where
    P: Driven,
    P::Msg: PeerWire,
{
    start_hosted_on_node(node, name, core, members, observer, None)
}

/// [`start_on_node`] with a [`Host`].
fn start_hosted_on_node<P>(
    node: &crate::net::Node,
    name: &str,
    core: P,
    members: &[NodeId],
    observer: Option<Observer<P::Event>>,
    host: Option<Box<dyn Host<P>>>,
) -> Result<Addr<Driver<P>>, crate::net::RegisterError>
where
    P: Driven,
    P::Msg: PeerWire,
{
    let links = NetLinks::new(node, name);
    let log_name = format!("{name}@n{}", core.id());
    let addr = Driver::start_hosted(core, members, links, observer, host, &log_name);
    node.register(name, addr.clone())?;
    let mut events = node.subscribe();
    let target = addr.clone();
    // Peers already up before we subscribed.
    for peer in node.connected_peers() {
        target.do_send(PeerStatus::Up(peer));
    }
    actix_rt::spawn(async move {
        use crate::net::NodeEvent;
        loop {
            let status = match events.recv().await {
                Ok(NodeEvent::MemberDown { node, .. }) => PeerStatus::Down(node),
                Ok(NodeEvent::MemberUp { node }) | Ok(NodeEvent::Reconnected { node }) => {
                    PeerStatus::Up(node)
                }
                Ok(NodeEvent::TellsLost { .. }) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if !target.connected() {
                break;
            }
            target.do_send(status);
        }
    });
    Ok(addr)
}

/// Where a service member runs, and how it reaches its peers.
///
/// Every service starts the same way, from one of these: `start(at, name, members, config)`
/// ([`DistributedLock::start`](crate::mutex::DistributedLock::start),
/// [`Election::start`](crate::election::Election::start),
/// [`Broadcaster::start`](crate::broadcast::Broadcaster::start),
/// [`Snapshots::start`](crate::snapshot::Snapshots::start),
/// [`timesync::daemon::start`](crate::timesync::daemon::start)).
///
/// ```
/// use actix_coord::driver::{At, LocalLinks, StartError};
/// use actix_coord::election::{Bully, BullyConfig, Election};
/// use std::time::Duration;
///
/// # actix::System::new().block_on(async {
/// let links = LocalLinks::<Bully>::new();
/// let members = [1, 2, 3];
/// let group: Vec<Election> = members
///     .iter()
///     .map(|&me| {
///         Election::start(At::Local(&links, me), "e", &members, BullyConfig::default()).unwrap()
///     })
///     .collect();
/// let mut w = group[0].watch();
/// tokio::time::timeout(Duration::from_secs(5), w.wait_for(|l| l.is_some_and(|(id, _)| id == 3)))
///     .await
///     .expect("a leader within 5 s")
///     .unwrap();
/// // Every service refuses an empty name the same way:
/// let r = Election::start(At::Local(&links, 1), "", &members, BullyConfig::default());
/// assert!(matches!(r, Err(StartError::EmptyName)));
/// # });
/// ```
pub enum At<'a, P: Driven> {
    /// On `node`, as member `node.id()`: the peers are the same service registered under the
    /// same name on the other members' nodes, and the node's failure detector declares them
    /// down and up.
    Node(&'a crate::net::Node),
    /// In this process, as member `me`: the peers are the members started on the same `links`
    /// (declare one down by sending the others [`PeerStatus::Down`]).
    Local(&'a LocalLinks<P>, NodeId),
}

impl<P: Driven> Clone for At<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: Driven> Copy for At<'_, P> {}

impl<P: Driven> At<'_, P> {
    /// The member this one is.
    pub fn me(&self) -> NodeId {
        match self {
            At::Node(node) => node.id(),
            At::Local(_, me) => *me,
        }
    }
}

impl<P> At<'_, P>
where
    P: Driven,
    P::Msg: PeerWire,
{
    /// Starts `core`'s driver as this member of the service `name`: on a node, registered as
    /// `name`; in this process, on the links. Logged as `name@n<id>`.
    ///
    /// # Errors
    /// [`StartError::EmptyName`], [`StartError::WrongMember`] when `core` is another member,
    /// [`StartError::Register`] when `name` is taken on the node.
    pub(crate) fn start(
        &self,
        name: &str,
        core: P,
        members: &[NodeId],
        observer: Option<Observer<P::Event>>,
    ) -> Result<Member<P>, StartError> {
        self.start_hosted(name, core, members, observer, None)
    }

    /// [`start`](Self::start) with a [`Host`].
    pub(crate) fn start_hosted(
        &self,
        name: &str,
        core: P,
        members: &[NodeId],
        observer: Option<Observer<P::Event>>,
        host: Option<Box<dyn Host<P>>>,
    ) -> Result<Member<P>, StartError> {
        if name.is_empty() {
            return Err(StartError::EmptyName);
        }
        if core.id() != self.me() {
            return Err(StartError::WrongMember {
                core: core.id(),
                at: self.me(),
            });
        }
        match *self {
            At::Node(node) => {
                let addr = start_hosted_on_node(node, name, core, members, observer, host)?;
                Ok(Member {
                    addr,
                    registration: Registration::Node(node.clone(), name.to_owned()),
                })
            }
            At::Local(links, me) => {
                let log_name = format!("{name}@n{me}");
                let addr =
                    Driver::start_hosted(core, members, links.clone(), observer, host, &log_name);
                links.register(me, addr.clone());
                Ok(Member {
                    addr,
                    registration: Registration::Local(links.clone(), me),
                })
            }
        }
    }
}

/// A started service member: its driver, and where it is registered.
pub(crate) struct Member<P: Driven> {
    /// The driver.
    pub(crate) addr: Addr<Driver<P>>,
    registration: Registration<P>,
}

impl<P: Driven> Clone for Member<P> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            registration: match &self.registration {
                Registration::Local(links, me) => Registration::Local(links.clone(), *me),
                Registration::Node(node, name) => Registration::Node(node.clone(), name.clone()),
            },
        }
    }
}

enum Registration<P: Driven> {
    Local(LocalLinks<P>, NodeId),
    Node(crate::net::Node, String),
}

/// Why a service member did not start (the `start` of every service).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The service's name (a lock's resource, an election's or a group's name) is empty.
    #[error("the service name is empty")]
    EmptyName,
    /// The membership or the settings are invalid.
    #[error(transparent)]
    Config(#[from] crate::protocol::ConfigError),
    /// The core given is another member than the one it is started as.
    #[error("the core is member {core}, but it is started as member {at}")]
    WrongMember {
        /// The core's id.
        core: NodeId,
        /// The placement's member ([`At::me`]).
        at: NodeId,
    },
    /// The name is taken on the node (or invalid).
    #[error(transparent)]
    Register(#[from] crate::net::RegisterError),
}

impl<P: Driven> Member<P> {
    /// Withdraws the member from its peers' reach and stops its driver.
    pub(crate) fn stop(&self) {
        match &self.registration {
            Registration::Local(links, me) => {
                links.unregister(*me);
            }
            Registration::Node(node, name) => {
                node.unregister(name);
            }
        }
        self.addr.do_send(Stop);
    }
}

/// Something to run on each event, inside the driver (so it is a local event of the driver's
/// process when it logs): for instance a `lock.enter` semantic event.
pub type Observer<E> = Box<dyn FnMut(&E)>;

/// What a driver does on its node for a core beyond messages, timers and events: where the
/// core's `now` comes from, and the events that act on the node itself. The default host (none)
/// gives the time since the driver started and acts on nothing.
///
/// The driver calls [`act`](Self::act) on each event in the order the core emitted them, before
/// the observer and the subscribers see it; a command it returns goes to the core at once
/// ([`Protocol::on_command`]), and that call's effects are carried out before the rest.
pub trait Host<P: Protocol>: 'static {
    /// The `now` to give the core, from the time elapsed since the driver started.
    fn now(&self, since_start: std::time::Duration) -> std::time::Duration {
        since_start
    }

    /// Carries out `event` if it is meant for the node; returns a command for the core (a
    /// refusal, say) or `None`.
    fn act(&mut self, event: &P::Event) -> Option<P::Command> {
        let _ = event;
        None
    }
}

/// The actor that drives a protocol core.
pub struct Driver<P: Driven> {
    core: P,
    group: Membership,
    links: Box<dyn Links<P::Msg>>,
    epoch: Instant,
    timers: Vec<(P::Timer, SpawnHandle)>,
    events: broadcast::Sender<P::Event>,
    observer: Option<Observer<P::Event>>,
    host: Option<Box<dyn Host<P>>>,
    out: EffectsOf<P>,
}

/// How many events a slow subscriber may fall behind before it misses some.
pub const EVENT_BUFFER: usize = 1024;

impl<P> Driver<P>
where
    P: Driven,
{
    /// Starts a driver for `core`, member of `members`, on the current arbiter, named
    /// `<core type>@n<id>` in logs, on node `core.id()`.
    pub fn start(
        core: P,
        members: &[NodeId],
        links: impl Links<P::Msg>,
        observer: Option<Observer<P::Event>>,
    ) -> Addr<Self> {
        let name = format!("{}@n{}", crate::intercept::short_name::<P>(), core.id());
        Self::start_named(core, members, links, observer, &name)
    }

    /// [`start`](Self::start) with a chosen log name.
    pub fn start_named(
        core: P,
        members: &[NodeId],
        links: impl Links<P::Msg>,
        observer: Option<Observer<P::Event>>,
        name: &str,
    ) -> Addr<Self> {
        Self::start_hosted(core, members, links, observer, None, name)
    }

    /// [`start_named`](Self::start_named) with a [`Host`] (`None`: the default one).
    pub fn start_hosted(
        core: P,
        members: &[NodeId],
        links: impl Links<P::Msg>,
        observer: Option<Observer<P::Event>>,
        host: Option<Box<dyn Host<P>>>,
        name: &str,
    ) -> Addr<Self> {
        let id = core.id();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let driver = Driver {
            core,
            group: Membership::including(id, members.iter().copied()),
            links: Box::new(links),
            epoch: Instant::now(),
            timers: Vec::new(),
            events,
            observer,
            host,
            out: EffectsOf::<P>::new(),
        };
        CausalBuilder::new().node(id).name(name).start(driver)
    }

    fn now(&self) -> std::time::Duration {
        let since_start = self.epoch.elapsed();
        match &self.host {
            Some(host) => host.now(since_start),
            None => since_start,
        }
    }

    /// Carries out every effect the core queued, in order (a host's command's effects before
    /// the rest).
    fn apply(&mut self, ctx: &mut CausalContext<Self>) {
        let me = self.core.id();
        let mut effects: std::collections::VecDeque<_> = self.out.drain().collect();
        while let Some(effect) = effects.pop_front() {
            match effect {
                Effect::Send { to, msg } => {
                    self.links.send(me, to, msg);
                }
                Effect::Broadcast(msg) => {
                    for to in self.group.live_peers() {
                        self.links.send(me, to, msg.clone());
                    }
                }
                Effect::SetTimer { timer, after } => {
                    self.cancel(&timer, ctx);
                    let t = timer.clone();
                    let handle = ctx.run_later(after, move |act, ctx| act.fire(t, ctx));
                    self.timers.push((timer, handle));
                }
                Effect::CancelTimer(timer) => self.cancel(&timer, ctx),
                Effect::Emit(event) => {
                    let reply = self.host.as_mut().and_then(|h| h.act(&event));
                    if let Some(observe) = self.observer.as_mut() {
                        observe(&event);
                    }
                    let _ = self.events.send(event);
                    if let Some(cmd) = reply {
                        let now = self.now();
                        if let Err(e) = self.core.on_command(now, cmd, &mut self.out) {
                            tracing::warn!(target: "actix_coord::driver", error = %e, "the core refused its host's command");
                        }
                        for more in self.out.drain().rev() {
                            effects.push_front(more);
                        }
                    }
                }
            }
        }
    }

    fn cancel(&mut self, timer: &P::Timer, ctx: &mut CausalContext<Self>) {
        if let Some(i) = self.timers.iter().position(|(t, _)| t == timer) {
            let (_, handle) = self.timers.swap_remove(i);
            ctx.cancel_future(handle);
        }
    }

    fn fire(&mut self, timer: P::Timer, ctx: &mut CausalContext<Self>) {
        if let Some(i) = self.timers.iter().position(|(t, _)| *t == timer) {
            self.timers.swap_remove(i);
        }
        let now = self.now();
        self.core.on_timer(now, timer, &mut self.out);
        self.apply(ctx);
    }
}

impl<P> Actor for Driver<P>
where
    P: Driven,
{
    type Context = CausalContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.epoch = Instant::now();
        let now = self.now();
        self.core.on_start(now, &mut self.out);
        self.apply(ctx);
    }
}

impl<P> Handler<PeerMsg<P::Msg>> for Driver<P>
where
    P: Driven,
{
    type Result = ();
    fn handle(&mut self, m: PeerMsg<P::Msg>, ctx: &mut Self::Context) {
        // The claimed sender must be a member, and the node the message came from.
        let node = ctx.sender().map(|p| p.node);
        if !self.group.is_member(m.from) || node != Some(m.from) {
            tracing::warn!(target: "actix_coord::driver", from = m.from, ?node, "message from a non-member dropped");
            return;
        }
        let now = self.now();
        // The peer's `MemberUp`/`Reconnected` travels apart from its messages: a message from a
        // peer declared down, on a live link, means it is back. Tell the core first, so that it
        // does not drop what the peer re-sends on seeing us again (each side would drop the
        // other's and a waiter would starve).
        if self.group.is_down(m.from) && self.links.is_up(m.from) {
            self.group.set_up(m.from);
            self.core.on_peer_up(now, m.from, &mut self.out);
        }
        self.core.on_message(now, m.from, m.msg, &mut self.out);
        self.apply(ctx);
    }
}

/// Stops a driver: its actor ends, its timers with it, and its core gets no more input. Peers
/// notice as they would a crash (their failure detector, or the protocol's own timeouts).
pub struct Stop;

impl Message for Stop {
    type Result = ();
}

impl<P> Handler<Stop> for Driver<P>
where
    P: Driven,
{
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A command for the core; answered with the core's verdict.
pub struct Command<C, E>(pub C, std::marker::PhantomData<fn() -> E>);

impl<C, E> Command<C, E> {
    /// Wraps a command.
    pub fn new(cmd: C) -> Self {
        Self(cmd, std::marker::PhantomData)
    }
}

impl<C: 'static, E: 'static> Message for Command<C, E> {
    type Result = Result<(), E>;
}

impl<P> Handler<Command<P::Command, P::Error>> for Driver<P>
where
    P: Driven,
{
    type Result = Result<(), P::Error>;
    fn handle(
        &mut self,
        m: Command<P::Command, P::Error>,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        let now = self.now();
        let r = self.core.on_command(now, m.0, &mut self.out);
        self.apply(ctx);
        r
    }
}

/// Subscribe to the core's events: every event emitted after this message is handled.
pub struct Subscribe<E>(std::marker::PhantomData<fn() -> E>);

impl<E> Default for Subscribe<E> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<E: Send + 'static> Message for Subscribe<E> {
    type Result = broadcast::Receiver<E>;
}

impl<P> Handler<Subscribe<P::Event>> for Driver<P>
where
    P: Driven,
{
    type Result = MessageResult<Subscribe<P::Event>>;
    fn handle(&mut self, _: Subscribe<P::Event>, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.events.subscribe())
    }
}

/// A change in membership seen by the failure detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// The peer is declared down.
    Down(NodeId),
    /// The peer is (back) up.
    Up(NodeId),
}

impl Message for PeerStatus {
    type Result = ();
}

impl<P> Handler<PeerStatus> for Driver<P>
where
    P: Driven,
{
    type Result = ();
    fn handle(&mut self, m: PeerStatus, ctx: &mut Self::Context) {
        let now = self.now();
        match m {
            PeerStatus::Down(p) if self.group.set_down(p) => {
                self.core.on_peer_down(now, p, &mut self.out)
            }
            PeerStatus::Up(p) if self.group.is_down(p) && self.group.set_up(p) => {
                self.core.on_peer_up(now, p, &mut self.out)
            }
            _ => return,
        }
        self.apply(ctx);
    }
}

/// Reads the core: answers `f(&core)`.
pub struct Inspect<P, R>(pub Box<dyn FnOnce(&P) -> R + Send>);

impl<P: 'static, R: Send + 'static> Message for Inspect<P, R> {
    type Result = R;
}

impl<P, R> Handler<Inspect<P, R>> for Driver<P>
where
    P: Driven,
    R: Send + 'static,
{
    type Result = MessageResult<Inspect<P, R>>;
    fn handle(&mut self, m: Inspect<P, R>, _: &mut Self::Context) -> Self::Result {
        MessageResult((m.0)(&self.core))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::{Bully, BullyConfig, BullyEvent};
    use crate::mutex::{LockCommand, LockError, LockEvent, RicartAgrawala};
    use std::time::Duration;

    /// Every service's start refuses the same mistakes with the same error.
    #[actix_rt::test]
    async fn services_refuse_an_empty_name_and_a_core_of_another_member() {
        use crate::broadcast::{Broadcaster, CausalBroadcast, CausalConfig};
        use crate::mutex::{DistributedLock, LockAlgorithm};
        let members = [1, 2, 3];
        let links = LocalLinks::new();
        let r = DistributedLock::start(At::Local(&links, 1), "", &members, LockAlgorithm::Lamport);
        assert!(matches!(r, Err(StartError::EmptyName)), "{r:?}");
        let r = DistributedLock::start(At::Local(&links, 4), "r", &members, LockAlgorithm::Lamport);
        assert!(matches!(r, Err(StartError::Config(_))), "{r:?}");
        let links = LocalLinks::<CausalBroadcast<u32>>::new();
        let core = CausalBroadcast::new(2, members, CausalConfig::default()).unwrap();
        let r = Broadcaster::start(At::Local(&links, 1), "g", &members, core);
        assert!(
            matches!(r, Err(StartError::WrongMember { core: 2, at: 1 })),
            "{:?}",
            r.err()
        );
        let core = CausalBroadcast::new(2, members, CausalConfig::default()).unwrap();
        let r = Broadcaster::start(At::Local(&links, 2), "", &members, core);
        assert!(matches!(r, Err(StartError::EmptyName)), "{:?}", r.err());
    }

    #[actix_rt::test]
    async fn three_bully_drivers_elect_the_highest() {
        let links = LocalLinks::new();
        let members = [1, 2, 3];
        let mut addrs = Vec::new();
        for id in members {
            let core = Bully::new(id, members, BullyConfig::default()).unwrap();
            let addr = Driver::start(core, &members, links.clone(), None);
            links.register(id, addr.clone());
            addrs.push(addr);
        }
        // Wait, with a deadline, until every node recognises node 3 (each node's event stream
        // shows the change too, but a node may have changed before we could subscribe).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for addr in &addrs {
            let mut rx = addr.send(Subscribe::default()).await.unwrap();
            loop {
                let now = addr
                    .send(Inspect(Box::new(|b: &Bully| b.leader().map(|l| l.0))))
                    .await
                    .unwrap();
                if now == Some(3) {
                    break;
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Ok(BullyEvent::LeaderChanged { .. })) => continue,
                    other => panic!("no leader 3 by the deadline: {other:?}"),
                }
            }
        }
    }

    #[actix_rt::test]
    async fn bully_drivers_on_three_nodes_elect_the_highest_then_fail_over() {
        let nodes = crate::net::loopback_cluster(3).await;
        let members = [1, 2, 3];
        let cfg = BullyConfig::default();
        let mut drivers = Vec::new();
        for n in &nodes {
            let core = Bully::new(n.id(), members, cfg.clone()).unwrap();
            drivers.push(start_on_node(n, "election", core, &members, None).unwrap());
        }
        let leader_of = |d: &Addr<Driver<Bully>>| {
            d.send(Inspect(Box::new(|b: &Bully| b.leader().map(|l| l.0))))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        for d in &drivers {
            while leader_of(d).await.unwrap() != Some(3) {
                assert!(tokio::time::Instant::now() < deadline, "no leader 3");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Node 3 goes away: the others see it down and elect node 2.
        nodes[2].shutdown();
        for d in &drivers[..2] {
            while leader_of(d).await.unwrap() != Some(2) {
                assert!(tokio::time::Instant::now() < deadline, "no failover to 2");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Three Ricart–Agrawala drivers over [`LocalLinks`], members 1, 2, 3.
    fn ricart_agrawala_drivers() -> Vec<Addr<Driver<RicartAgrawala>>> {
        let links = LocalLinks::new();
        let members = [1, 2, 3];
        members
            .iter()
            .map(|&id| {
                let core = RicartAgrawala::new(id, members).unwrap();
                let addr = Driver::start(core, &members, links.clone(), None);
                links.register(id, addr.clone());
                addr
            })
            .collect()
    }

    #[actix_rt::test]
    async fn ricart_agrawala_drivers_grant_in_turn_with_increasing_fences() {
        let addrs = ricart_agrawala_drivers();
        let mut last = None;
        for round in 0..2 {
            for addr in &addrs {
                let mut rx = addr.send(Subscribe::default()).await.unwrap();
                let cmd = Command::<LockCommand, LockError>::new(LockCommand::Acquire);
                addr.send(cmd).await.unwrap().unwrap();
                let fence = loop {
                    if let LockEvent::Granted { fence } = rx.recv().await.unwrap() {
                        break fence;
                    }
                };
                assert!(
                    last.is_none_or(|l| fence > l),
                    "round {round}: {fence:?} after {last:?}"
                );
                last = Some(fence);
                let cmd = Command::<LockCommand, LockError>::new(LockCommand::Release);
                addr.send(cmd).await.unwrap().unwrap();
            }
        }
    }

    #[actix_rt::test]
    async fn a_message_from_a_member_declared_down_brings_it_back_up() {
        // Member 1 wrongly has member 2 down when 2's request arrives: the driver tells the core
        // 2 is up before handing it over (its `MemberUp` may still be on its way), so 1 answers
        // and 2 enters. Dropped as from a down member, 2 would wait for ever.
        let addrs = ricart_agrawala_drivers();
        // Every member has caught up once 1 grants and releases.
        let mut rx1 = addrs[0].send(Subscribe::default()).await.unwrap();
        let cmd = Command::<LockCommand, LockError>::new(LockCommand::Acquire);
        addrs[0].send(cmd).await.unwrap().unwrap();
        while !matches!(rx1.recv().await.unwrap(), LockEvent::Granted { .. }) {}
        let cmd = Command::<LockCommand, LockError>::new(LockCommand::Release);
        addrs[0].send(cmd).await.unwrap().unwrap();
        addrs[0].send(PeerStatus::Down(2)).await.unwrap();
        let mut rx2 = addrs[1].send(Subscribe::default()).await.unwrap();
        let cmd = Command::<LockCommand, LockError>::new(LockCommand::Acquire);
        addrs[1].send(cmd).await.unwrap().unwrap();
        let granted = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let LockEvent::Granted { .. } = rx2.recv().await.unwrap() {
                    break;
                }
            }
        })
        .await;
        assert!(granted.is_ok(), "2 was not granted: 1 dropped its request");
    }
}
