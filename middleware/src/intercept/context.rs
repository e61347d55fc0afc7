//! The causal context: a drop-in replacement for `actix::Context` that stamps and merges clocks.

use super::process::{self, ClockSet, Clocks, ProcessCell, ProcessState, ReplyInbox, Stamp};
use crate::clock::ProcessId;
use actix::dev::{
    AsyncContextParts, ContextFut, ContextParts, Envelope, EnvelopeProxy, Mailbox, MessageResponse,
    ToEnvelope,
};
use actix::prelude::*;
use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{self, Poll};
use tokio::sync::oneshot;

/// An actor context that gives the actor a process identity and Lamport, vector and hybrid
/// clocks, stamps every message the actor sends, and merges every message it receives.
///
/// Opt in by changing two lines of an existing actor — its context type and its start call:
///
/// ```
/// use actix::prelude::*;
/// use actix_coord::intercept::CausalContext;
///
/// #[derive(Message)]
/// #[rtype(result = "u64")]
/// struct Ping;
///
/// struct Counter;
/// impl Actor for Counter {
///     type Context = CausalContext<Self>; // was: Context<Self>
/// }
/// impl Handler<Ping> for Counter {
///     type Result = u64;
///     fn handle(&mut self, _: Ping, ctx: &mut Self::Context) -> u64 {
///         ctx.clocks().lamport // the merged clock, readable by the handler
///     }
/// }
///
/// # actix::System::new().block_on(async {
/// let addr = CausalContext::start(Counter); // was: Counter.start()
/// // Sent from outside any actor: stamped by the external process (Lamport 1), so the
/// // receive event is at Lamport time 2.
/// assert_eq!(addr.send(Ping).await.unwrap(), 2);
/// # });
/// ```
///
/// Handlers that name the context type should write `Self::Context` (or
/// `CausalContext<Self>`) rather than `Context<Self>`.
pub struct CausalContext<A: Actor<Context = CausalContext<A>>> {
    parts: ContextParts<A>,
    mb: Option<Mailbox<A>>,
    process: Rc<ProcessCell>,
}

/// Options for starting a causal actor: node, name, clocks, and the physical clock its HLC reads.
#[derive(Clone, Debug, Default)]
pub struct CausalBuilder {
    node: Option<u32>,
    name: Option<String>,
    clocks: ClockSet,
    mailbox_capacity: Option<usize>,
    time: process::ProcessTime,
    max_offset_ms: Option<u32>,
}

impl CausalBuilder {
    /// Default options: default node, type-derived name, all clocks.
    pub fn new() -> Self {
        Self::default()
    }

    /// The node this process belongs to (default: [`process::default_node`]).
    pub fn node(mut self, node: u32) -> Self {
        self.node = Some(node);
        self
    }

    /// The name shown in logs (default: the type name and an instance index, e.g. `Cook#1`).
    /// Whitespace is replaced by `_`. Names are unique within the OS process: a name another
    /// process (causal, explicit or external) already has gets the first free suffix `#2`,
    /// `#3`, … (`name("Session")` three times gives `Session`, `Session#2`, `Session#3`), and
    /// names are not reused after a process stops. Across OS processes, include the node in
    /// names you give (`format!("cook@{node}")`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Which clocks to keep and carry (default: all three).
    pub fn clocks(mut self, clocks: ClockSet) -> Self {
        self.clocks = clocks;
        self
    }

    /// Mailbox capacity (actix's default is 16).
    pub fn mailbox_capacity(mut self, cap: usize) -> Self {
        self.mailbox_capacity = Some(cap);
        self
    }

    /// The physical clock this actor's HLC reads, in milliseconds since the Unix epoch (default:
    /// the process-wide one, [`set_time_source`](super::set_time_source), itself the system's
    /// real-time clock by default). For nodes of one OS process that each keep their own
    /// clock, such as a simulated cluster whose clocks a Berkeley daemon disciplines:
    ///
    /// ```
    /// use actix::prelude::*;
    /// use actix_coord::CausalContext;
    /// use actix_coord::intercept::CausalBuilder;
    ///
    /// struct Clockwork;
    /// impl Actor for Clockwork {
    ///     type Context = CausalContext<Self>;
    /// }
    /// # actix::System::new().block_on(async {
    /// let an_hour_ahead = || actix_coord::intercept::physical_now_ms() + 3_600_000;
    /// let addr = CausalBuilder::new()
    ///     .time_source(an_hour_ahead)
    ///     .max_offset_ms(5_000)
    ///     .start(Clockwork);
    /// # let _ = addr;
    /// # });
    /// ```
    pub fn time_source(mut self, source: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.time = process::ProcessTime(Some(std::sync::Arc::new(source)));
        self
    }

    /// How far ahead (ms) of this actor's physical clock a received HLC timestamp may be before
    /// it is refused (default: the process-wide maximum,
    /// [`set_max_offset_ms`](super::set_max_offset_ms), 500 ms by default).
    pub fn max_offset_ms(mut self, ms: u32) -> Self {
        self.max_offset_ms = Some(ms);
        self
    }

    /// Starts `actor` on the current arbiter.
    pub fn start<A: Actor<Context = CausalContext<A>>>(self, actor: A) -> Addr<A> {
        self.create(|_| actor)
    }

    /// Creates the actor with access to its context (like `Actor::create`) and starts it on
    /// the current arbiter.
    pub fn create<A, F>(self, f: F) -> Addr<A>
    where
        A: Actor<Context = CausalContext<A>>,
        F: FnOnce(&mut CausalContext<A>) -> A,
    {
        let (fut, addr) = self.build(f);
        actix_rt::spawn(fut);
        addr
    }

    /// Starts the actor on another arbiter (like `Actor::start_in_arbiter`).
    pub fn start_in_arbiter<A, F>(self, arbiter: &actix_rt::ArbiterHandle, f: F) -> Addr<A>
    where
        A: Actor<Context = CausalContext<A>>,
        F: FnOnce(&mut CausalContext<A>) -> A + Send + 'static,
    {
        let (tx, rx) = actix::dev::channel::channel(self.mailbox_capacity.unwrap_or(16));
        let addr = Addr::new(tx);
        arbiter.spawn_fn(move || {
            let mut ctx = self.context_with(Mailbox::new(rx));
            let mb = ctx.mb.take().expect("fresh context has a mailbox");
            let act = f(&mut ctx);
            let process = ctx.process.clone();
            actix_rt::spawn(CausalFut {
                inner: ContextFut::new(ctx, act, mb),
                process,
            });
        });
        addr
    }

    fn context_with<A: Actor<Context = CausalContext<A>>>(
        &self,
        mb: Mailbox<A>,
    ) -> CausalContext<A> {
        let node = self.node.unwrap_or_else(process::default_node);
        let id = process::fresh_id(node);
        let name = match &self.name {
            Some(n) => process::unique_name(n),
            None => process::unique_name(&process::default_name::<A>()),
        };
        crate::ticks::register_name(id, name.clone());
        let state = ProcessState::new(id, name, self.clocks)
            .with_time(self.time.clone(), self.max_offset_ms);
        let cell = Rc::new(ProcessCell::new(state));
        let mut parts = ContextParts::new(mb.sender_producer());
        if let Some(cap) = self.mailbox_capacity {
            parts.set_mailbox_capacity(cap);
        }
        CausalContext {
            parts,
            mb: Some(mb),
            process: cell,
        }
    }

    fn build<A, F>(self, f: F) -> (CausalFut<A>, Addr<A>)
    where
        A: Actor<Context = CausalContext<A>>,
        F: FnOnce(&mut CausalContext<A>) -> A,
    {
        let mut ctx = self.context_with(Mailbox::default());
        let mb = ctx.mb.take().expect("fresh context has a mailbox");
        let process = ctx.process.clone();
        // The actor's constructor runs as the new process.
        let act = {
            let _in = process::enter(&process);
            f(&mut ctx)
        };
        let fut = ContextFut::new(ctx, act, mb);
        let addr = fut.address();
        (
            CausalFut {
                inner: fut,
                process,
            },
            addr,
        )
    }
}

impl<A: Actor<Context = Self>> CausalContext<A> {
    /// Options for starting an actor: node, name, clocks.
    pub fn builder() -> CausalBuilder {
        CausalBuilder::default()
    }

    /// Starts `actor` with default options on the current arbiter: the replacement for
    /// `actor.start()`.
    pub fn start(actor: A) -> Addr<A> {
        CausalBuilder::default().start(actor)
    }

    /// Creates the actor with access to its context: the replacement for `Actor::create`.
    pub fn create<F: FnOnce(&mut Self) -> A>(f: F) -> Addr<A> {
        CausalBuilder::default().create(f)
    }

    /// This actor's process id.
    pub fn process_id(&self) -> ProcessId {
        self.process.state.borrow().id
    }

    /// This actor's process name, as written in logs.
    pub fn process_name(&self) -> Arc<str> {
        self.process.state.borrow().name.clone()
    }

    /// The process that sent the message being handled (inside a handler; for a message that
    /// came from another node, its node is `sender().node`).
    pub fn sender(&self) -> Option<ProcessId> {
        self.process.state.borrow().sender
    }

    /// A copy of the process's clocks (after the merge of the message being handled).
    pub fn clocks(&self) -> Clocks {
        self.process.state.borrow().clocks()
    }

    /// Sets the mailbox capacity (as `Context::set_mailbox_capacity`).
    pub fn set_mailbox_capacity(&mut self, cap: usize) {
        self.parts.set_mailbox_capacity(cap)
    }

    /// Whether any addresses are still connected (as `Context::connected`).
    pub fn connected(&self) -> bool {
        self.parts.connected()
    }

    /// The handle of the running future (as `Context::handle`).
    pub fn handle(&self) -> SpawnHandle {
        self.parts.curr_handle()
    }
}

impl<A: Actor<Context = Self>> ActorContext for CausalContext<A> {
    fn stop(&mut self) {
        self.parts.stop()
    }
    fn terminate(&mut self) {
        self.parts.terminate()
    }
    fn state(&self) -> ActorState {
        self.parts.state()
    }
}

impl<A: Actor<Context = Self>> AsyncContext<A> for CausalContext<A> {
    fn spawn<F: ActorFuture<A, Output = ()> + 'static>(&mut self, f: F) -> SpawnHandle {
        self.parts.spawn(f)
    }
    fn wait<F: ActorFuture<A, Output = ()> + 'static>(&mut self, f: F) {
        self.parts.wait(f)
    }
    fn waiting(&self) -> bool {
        self.parts.waiting()
    }
    fn cancel_future(&mut self, handle: SpawnHandle) -> bool {
        self.parts.cancel_future(handle)
    }
    fn address(&self) -> Addr<A> {
        self.parts.address()
    }
}

impl<A: Actor<Context = Self>> AsyncContextParts<A> for CausalContext<A> {
    fn parts(&mut self) -> &mut ContextParts<A> {
        &mut self.parts
    }
}

/// The actor's future: polls actix's `ContextFut` with this process as the thread's current
/// process, so handlers, `started`/`stopping`, `ctx.spawn`, `run_interval`, `run_later` and
/// `ResponseActFuture` continuations all run with the actor's clocks; and hands over stamped
/// replies after merging them.
struct CausalFut<A: Actor<Context = CausalContext<A>>> {
    inner: ContextFut<A, CausalContext<A>>,
    process: Rc<ProcessCell>,
}

impl<A: Actor<Context = CausalContext<A>>> Future for CausalFut<A> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let _in = process::enter(&this.process);
        Pin::new(&mut this.inner).poll(cx)
    }
}

/// Sender side: runs synchronously inside `do_send` / `try_send` / `send` on the sender's thread.
impl<A, M> ToEnvelope<A, M> for CausalContext<A>
where
    A: Actor<Context = Self> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn pack(msg: M, tx: Option<oneshot::Sender<M::Result>>) -> Envelope<A> {
        // A remote delivery is rare: look before taking (a move of the whole slot).
        if let Some(remote) = REMOTE.with(|r| {
            let mut r = r.borrow_mut();
            if r.is_some() { r.take() } else { None }
        }) {
            // A message that arrived from another node: it carries its sender's stamp.
            let reply = match remote.reply {
                None => Reply::None,
                Some(RemoteReply::Channel) => {
                    let (stx, srx) = oneshot::channel::<(Stamp, M::Result)>();
                    REMOTE_REPLY.with(|r| *r.borrow_mut() = Some(Box::new(srx)));
                    Reply::Remote(stx)
                }
                // Of the message's own result type, as `deliver_request_then` made it; any
                // other would be dropped here, which answers the requester with an error.
                Some(RemoteReply::Callback(f)) => match f.downcast::<ReplyOnce<M::Result>>() {
                    Ok(f) => Reply::RemoteFn(*f),
                    Err(_) => Reply::None,
                },
            };
            let stamp = remote.stamp;
            return Envelope::with_proxy(Box::new(CausalEnvelope {
                remote: true,
                stamp,
                msg: Some(msg),
                reply,
            }));
        }
        let (stamp, inbox) = process::with_current_cell(|p, inbox| {
            let stamp = p.send(&|| {
                let label = format!(
                    "send {} to {}",
                    short_type_name::<M>(),
                    short_type_name::<A>()
                );
                super::labels::with_content(label, super::labels::content_of(&msg).as_deref())
            });
            (stamp, if tx.is_some() { inbox.cloned() } else { None })
        });
        let reply = match (tx, inbox) {
            // A causal requester: the responder queues its reply stamp in the requester's
            // inbox before releasing the reply, and the requester merges it before it runs on.
            (Some(tx), Some(inbox)) => Reply::Stamped(tx, inbox),
            (Some(tx), None) => Reply::Plain(tx),
            (None, _) => Reply::None,
        };
        Envelope::with_proxy(Box::new(CausalEnvelope {
            remote: false,
            stamp,
            msg: Some(msg),
            reply,
        }))
    }
}

thread_local! {
    /// A delivery of a remote message in progress on this thread (see [`deliver`]).
    static REMOTE: RefCell<Option<RemoteDelivery>> = const { RefCell::new(None) };
    /// The stamped-reply receiver `pack` made for [`deliver_request`].
    static REMOTE_REPLY: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

struct RemoteDelivery {
    stamp: Stamp,
    reply: Option<RemoteReply>,
}

/// How a request from another node gets its reply.
enum RemoteReply {
    /// [`deliver_request`]: `pack` makes a channel and leaves its receiver in `REMOTE_REPLY`.
    Channel,
    /// [`deliver_request_then`]: a `ReplyOnce<M::Result>` (type-erased for the thread-local).
    Callback(Box<dyn Any + Send>),
}

/// Where a request from another node delivers its reply: called exactly once, with the
/// handler's result and the responder's stamp at the reply event, or, when the request is
/// dropped unanswered (the actor stopped, or its handler dropped the response), with
/// `MailboxError::Closed`, so the requester always learns what became of it.
pub(crate) struct ReplyOnce<R>(Option<ReplyFn<R>>);

type ReplyFn<R> = Box<dyn FnOnce(Result<(R, Stamp), MailboxError>) + Send>;

impl<R> ReplyOnce<R> {
    pub(crate) fn new(f: impl FnOnce(Result<(R, Stamp), MailboxError>) + Send + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    fn send(mut self, stamp: Stamp, result: R) {
        if let Some(f) = self.0.take() {
            f(Ok((result, stamp)));
        }
    }
}

impl<R> Drop for ReplyOnce<R> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(MailboxError::Closed));
        }
    }
}

/// Delivers `msg`, received from another node with its sender's `stamp`, to a local causal
/// actor: the handler runs after merging `stamp`, exactly as for a local message.
///
/// For transports; like `do_send`, it ignores the mailbox capacity.
pub fn deliver<A, M>(addr: &Addr<A>, msg: M, stamp: Stamp)
where
    A: Actor<Context = CausalContext<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    REMOTE.with(|r| *r.borrow_mut() = Some(RemoteDelivery { stamp, reply: None }));
    addr.do_send(msg);
    REMOTE.with(|r| r.borrow_mut().take());
}

/// Like [`deliver`], but respects the actor's mailbox capacity (as `Addr::try_send`): when the
/// mailbox is full or the actor has stopped, nothing is delivered and the message comes back
/// with its stamp, so a transport can wait and retry in order (backpressure) instead of growing
/// the mailbox without bound.
///
/// # Errors
/// `SendError::Full((msg, stamp))` or `SendError::Closed((msg, stamp))`.
pub fn try_deliver<A, M>(addr: &Addr<A>, msg: M, stamp: Stamp) -> Result<(), SendError<(M, Stamp)>>
where
    A: Actor<Context = CausalContext<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    REMOTE.with(|r| *r.borrow_mut() = Some(RemoteDelivery { stamp, reply: None }));
    let sent = addr.try_send(msg);
    // `pack` takes the stamp only when the message is accepted.
    let left = REMOTE.with(|r| r.borrow_mut().take());
    match (sent, left) {
        (Ok(()), _) => Ok(()),
        (Err(SendError::Full(m)), Some(d)) => Err(SendError::Full((m, d.stamp))),
        (Err(SendError::Closed(m)), Some(d)) => Err(SendError::Closed((m, d.stamp))),
        // Unreachable in actix 0.13 (a refused message is never packed); keep it total.
        (Err(SendError::Full(m) | SendError::Closed(m)), None) => Err(SendError::Closed((
            m,
            Stamp {
                from: ProcessId::default(),
                lamport: 0,
                vector: None,
                hlc: None,
            },
        ))),
    }
}

/// Delivers a request received from another node with its sender's `stamp` (see [`deliver`]);
/// resolves to the handler's result and the responder's stamp at its reply event, to ship back.
///
/// # Errors
/// `MailboxError::Closed` when the actor stopped or dropped the request without replying.
pub fn deliver_request<A, M>(
    addr: &Addr<A>,
    msg: M,
    stamp: Stamp,
) -> impl Future<Output = Result<(M::Result, Stamp), MailboxError>> + use<A, M>
where
    A: Actor<Context = CausalContext<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    REMOTE.with(|r| {
        *r.borrow_mut() = Some(RemoteDelivery {
            stamp,
            reply: Some(RemoteReply::Channel),
        })
    });
    addr.do_send(msg);
    REMOTE.with(|r| r.borrow_mut().take());
    let rx = REMOTE_REPLY
        .with(|r| r.borrow_mut().take())
        .and_then(|b| b.downcast::<oneshot::Receiver<(Stamp, M::Result)>>().ok());
    async move {
        match rx {
            Some(rx) => rx
                .await
                .map(|(stamp, r)| (r, stamp))
                .map_err(|_| MailboxError::Closed),
            None => Err(MailboxError::Closed),
        }
    }
}

/// [`deliver_request`] for the node: the reply goes to `reply` when it is ready (with no task or
/// channel in between), and an unanswered request reaches it as `MailboxError::Closed`.
pub(crate) fn deliver_request_then<A, M>(
    addr: &Addr<A>,
    msg: M,
    stamp: Stamp,
    reply: ReplyOnce<M::Result>,
) where
    A: Actor<Context = CausalContext<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    REMOTE.with(|r| {
        *r.borrow_mut() = Some(RemoteDelivery {
            stamp,
            reply: Some(RemoteReply::Callback(Box::new(reply))),
        })
    });
    addr.do_send(msg);
    // Not packed (the actor is gone): dropping the delivery answers the requester.
    REMOTE.with(|r| r.borrow_mut().take());
}

enum Reply<R> {
    /// No reply wanted (`do_send`, `try_send`).
    None,
    /// A requester outside causal actors: the reply carries no clock.
    Plain(oneshot::Sender<R>),
    /// A causal requester: the reply's stamp goes to its inbox first.
    Stamped(oneshot::Sender<R>, Arc<ReplyInbox>),
    /// A request from another node: the reply travels back with its stamp.
    Remote(oneshot::Sender<(Stamp, R)>),
    /// A request from another node, answered through the node's callback.
    RemoteFn(ReplyOnce<R>),
}

/// Receiver side: runs inside the receiver's mailbox poll, as the receiving process.
struct CausalEnvelope<M: Message> {
    stamp: Stamp,
    /// The stamp came from outside this OS process (checked before merging).
    remote: bool,
    msg: Option<M>,
    reply: Reply<M::Result>,
}

impl<A, M> EnvelopeProxy<A> for CausalEnvelope<M>
where
    A: Actor<Context = CausalContext<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn handle(&mut self, act: &mut A, ctx: &mut CausalContext<A>) {
        let Some(msg) = self.msg.take() else { return };
        let reply = std::mem::replace(&mut self.reply, Reply::None);
        // As actix does: a request whose requester has gone away is not handled.
        match &reply {
            Reply::Plain(tx) | Reply::Stamped(tx, _) if tx.is_closed() => return,
            Reply::Remote(tx) if tx.is_closed() => return,
            _ => {}
        }
        let what = || format!("receive {}", short_type_name::<M>());
        let merged = {
            let mut state = ctx.process.state.borrow_mut();
            state.new_handler();
            if self.remote {
                state.receive(&self.stamp, &what)
            } else {
                state.receive_trusted(&self.stamp, &what)
            }
        };
        match merged {
            Ok(()) => {}
            // An absurd clock from outside: nothing was merged, and the message is dropped.
            Err(e @ process::MergeError::Clock(_)) => {
                tracing::warn!(target: "actix_coord::intercept", error = %e, "message with an absurd clock dropped");
                return;
            }
            Err(e) => {
                tracing::warn!(target: "actix_coord::intercept", error = %e, "message clock not fully merged");
            }
        }
        match reply {
            Reply::None => <A as Handler<M>>::handle(act, msg, ctx).handle(ctx, None),
            Reply::Plain(tx) => <A as Handler<M>>::handle(act, msg, ctx).handle(ctx, Some(tx)),
            Reply::Stamped(tx, inbox) if synchronous::<A, M>() => {
                // The response is the result itself: it is complete when the handler returns,
                // so the reply's send event is now, and the response goes straight to the
                // requester (no private channel to stamp it when it appears).
                let response = <A as Handler<M>>::handle(act, msg, ctx);
                let stamp = ctx
                    .process
                    .state
                    .borrow_mut()
                    .send(&|| format!("reply {}", short_type_name::<M>()));
                inbox.push(stamp, short_type_name::<M>);
                response.handle(ctx, Some(tx));
            }
            Reply::Stamped(tx, inbox) => {
                let cell = ctx.process.clone();
                respond(act, msg, ctx, cell, move |stamp, result| {
                    inbox.push(stamp, short_type_name::<M>);
                    let _ = tx.send(result);
                })
            }
            Reply::Remote(tx) => {
                let cell = ctx.process.clone();
                respond(act, msg, ctx, cell, move |stamp, result| {
                    let _ = tx.send((stamp, result));
                })
            }
            Reply::RemoteFn(reply) => {
                let cell = ctx.process.clone();
                respond(act, msg, ctx, cell, move |stamp, result| {
                    reply.send(stamp, result);
                })
            }
        }
    }
}

/// Whether `A`'s handler of `M` responds with the result itself (`type Result` is
/// `M::Result`, or `MessageResult<M>`): actix's responses of those types hand the result over
/// when the handler returns, so the reply can be stamped then. Asynchronous responses
/// (`ResponseFuture`, `ResponseActFuture`, `AtomicResponse`, …) are other types. Decided at
/// compile time (the `TypeId`s are constants).
fn synchronous<A, M>() -> bool
where
    A: Actor + Handler<M>,
    M: Message + 'static,
    <A as Handler<M>>::Result: 'static,
{
    use std::any::TypeId;
    let response = TypeId::of::<<A as Handler<M>>::Result>();
    response == TypeId::of::<M::Result>() || response == TypeId::of::<MessageResult<M>>()
}

/// Runs the handler and, once its response is ready (now, or later for asynchronous
/// responses), records the reply's send event and hands stamp and result to `release`.
fn respond<A, M>(
    act: &mut A,
    msg: M,
    ctx: &mut CausalContext<A>,
    cell: Rc<ProcessCell>,
    release: impl FnOnce(Stamp, M::Result) + 'static,
) where
    A: Actor<Context = CausalContext<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    let (tx, mut rx) = oneshot::channel();
    <A as Handler<M>>::handle(act, msg, ctx).handle(ctx, Some(tx));
    let label = || format!("reply {}", short_type_name::<M>());
    match rx.try_recv() {
        Ok(result) => {
            let stamp = cell.state.borrow_mut().send(&label);
            release(stamp, result);
        }
        Err(oneshot::error::TryRecvError::Empty) => {
            // An asynchronous response: stamp it when it is ready, as this process.
            actix_rt::spawn(async move {
                if let Ok(result) = rx.await {
                    let stamp = cell.state.borrow_mut().send(&label);
                    release(stamp, result);
                }
            });
        }
        Err(oneshot::error::TryRecvError::Closed) => {}
    }
}

/// A type's label in the causal log: the last path segment of its name, generics stripped,
/// made longer when another type has it (see [`labels`](super::labels)).
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    super::labels::type_label::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Item(u32);

    #[derive(Message)]
    #[rtype(result = "Vec<u32>")]
    struct Seen;

    #[derive(Default)]
    struct Collect(Vec<u32>);
    impl Actor for Collect {
        type Context = CausalContext<Self>;
    }
    impl Handler<Item> for Collect {
        type Result = ();
        fn handle(&mut self, m: Item, _: &mut Self::Context) {
            self.0.push(m.0);
        }
    }
    impl Handler<Seen> for Collect {
        type Result = MessageResult<Seen>;
        fn handle(&mut self, _: Seen, _: &mut Self::Context) -> Self::Result {
            MessageResult(self.0.clone())
        }
    }

    #[actix_rt::test]
    async fn try_deliver_respects_the_mailbox_capacity_and_gives_the_message_back() {
        let addr = CausalBuilder::default()
            .mailbox_capacity(1)
            .start(Collect::default());
        let remote = ProcessId::new(99, 1);
        let stamp = |n| Stamp {
            from: remote,
            lamport: n,
            vector: None,
            hlc: None,
        };
        // The first message fills the mailbox; the second comes back with its stamp.
        assert!(try_deliver(&addr, Item(1), stamp(1)).is_ok());
        let Err(SendError::Full((Item(2), back))) = try_deliver(&addr, Item(2), stamp(2)) else {
            panic!("expected a full mailbox");
        };
        assert_eq!(back, stamp(2));
        // Once the actor has taken the first, the retry goes through, in order.
        let mut left = Some((Item(2), back));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while let Some((m, s)) = left.take() {
            if let Err(SendError::Full(again)) = try_deliver(&addr, m, s) {
                assert!(std::time::Instant::now() < deadline);
                left = Some(again);
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(addr.send(Seen).await.unwrap(), vec![1, 2]);
    }
}
