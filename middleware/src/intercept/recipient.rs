//! [`CausalRecipient`]: one recipient type for every kind of causal actor.

use super::context::short_type_name;
use super::{CausalContext, Stamped};
use actix::prelude::*;
use futures_util::future::Either;
use std::future::Future;

/// A recipient of `M` that stamps every message, whatever kind of causal actor receives it: a
/// [`CausalContext`] actor (whose context stamps by itself), an actor that keeps
/// `Context<Self>` and handles [`Stamped<M>`] (the explicit layer), or — with the `actix-web`
/// feature — a websocket session of `actix_coord::ws` (context
/// `actix_web_actors::ws::WebsocketContext<Self>`, also handling [`Stamped<M>`]).
///
/// It is what a map of recipients holding several kinds of session keeps, in place of
/// `Recipient<M>`: made from an address with `addr.into()` (or [`CausalRecipient::from`]),
/// it has `Recipient`'s `do_send`, `try_send`, `send` and `connected`.
///
/// ```
/// use actix::prelude::*;
/// use actix_coord::intercept::{CausalContext, CausalRecipient, ExplicitProcess};
///
/// #[derive(Message, Clone)]
/// #[rtype(result = "()")]
/// struct Line(String);
///
/// struct Causal;
/// impl Actor for Causal { type Context = CausalContext<Self>; }
/// impl Handler<Line> for Causal {
///     type Result = ();
///     fn handle(&mut self, _: Line, _: &mut Self::Context) {}
/// }
///
/// #[derive(Default)]
/// struct Plain { process: ExplicitProcess }
/// impl Actor for Plain { type Context = Context<Self>; }
/// impl Handler<Line> for Plain {
///     type Result = ();
///     fn handle(&mut self, _: Line, _: &mut Context<Self>) {}
/// }
/// actix_coord::stamped_handlers!(Plain, process; Line);
///
/// # actix::System::new().block_on(async {
/// let all: Vec<CausalRecipient<Line>> =
///     vec![CausalContext::start(Causal).into(), Plain::default().start().into()];
/// for r in &all {
///     r.send(Line("hello".into())).await.unwrap(); // each one stamped exactly once
/// }
/// # });
/// ```
pub struct CausalRecipient<M>
where
    M: Message + Send,
    M::Result: Send,
{
    inner: Inner<M>,
}

enum Inner<M>
where
    M: Message + Send,
    M::Result: Send,
{
    /// The receiver's context stamps (`CausalContext`).
    Causal(Recipient<M>),
    /// The message travels as `Stamped<M>`, stamped here; the receiver's type name, for the
    /// send event's label.
    Stamped(Recipient<Stamped<M>>, fn() -> &'static str),
}

impl<M> CausalRecipient<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    /// `do_send` of `msg`, stamped by the current process.
    pub fn do_send(&self, msg: M) {
        match &self.inner {
            Inner::Causal(r) => r.do_send(msg),
            Inner::Stamped(r, to) => r.do_send(Stamped::labelled(msg, *to)),
        }
    }

    /// `try_send` of `msg`, stamped by the current process.
    ///
    /// # Errors
    /// As `Recipient::try_send`, with the message given back; the send event is recorded
    /// either way for a receiver of [`Stamped`] messages.
    pub fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        match &self.inner {
            Inner::Causal(r) => r.try_send(msg),
            Inner::Stamped(r, to) => r
                .try_send(Stamped::labelled(msg, *to))
                .map_err(|e| match e {
                    SendError::Full(s) => SendError::Full(s.msg),
                    SendError::Closed(s) => SendError::Closed(s.msg),
                }),
        }
    }

    /// `send` of `msg`, stamped by the current process; resolves to the handler's result.
    /// (A reply carries the responder's clock back only from a [`CausalContext`] actor.)
    pub fn send(&self, msg: M) -> impl Future<Output = Result<M::Result, MailboxError>> + use<M> {
        match &self.inner {
            Inner::Causal(r) => Either::Left(r.send(msg)),
            Inner::Stamped(r, to) => Either::Right(r.send(Stamped::labelled(msg, *to))),
        }
    }

    /// Whether the actor still accepts messages.
    pub fn connected(&self) -> bool {
        match &self.inner {
            Inner::Causal(r) => r.connected(),
            Inner::Stamped(r, _) => r.connected(),
        }
    }
}

impl<M> Clone for CausalRecipient<M>
where
    M: Message + Send,
    M::Result: Send,
{
    fn clone(&self) -> Self {
        Self {
            inner: match &self.inner {
                Inner::Causal(r) => Inner::Causal(r.clone()),
                Inner::Stamped(r, to) => Inner::Stamped(r.clone(), *to),
            },
        }
    }
}

impl<M> PartialEq for CausalRecipient<M>
where
    M: Message + Send,
    M::Result: Send,
{
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner, &other.inner) {
            (Inner::Causal(a), Inner::Causal(b)) => a == b,
            (Inner::Stamped(a, _), Inner::Stamped(b, _)) => a == b,
            _ => false,
        }
    }
}

impl<M> Eq for CausalRecipient<M>
where
    M: Message + Send,
    M::Result: Send,
{
}

impl<M> std::hash::Hash for CausalRecipient<M>
where
    M: Message + Send,
    M::Result: Send,
{
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match &self.inner {
            Inner::Causal(r) => r.hash(state),
            Inner::Stamped(r, _) => r.hash(state),
        }
    }
}

impl<M> std::fmt::Debug for CausalRecipient<M>
where
    M: Message + Send,
    M::Result: Send,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Causal(r) => f.debug_tuple("CausalRecipient::Causal").field(r).finish(),
            Inner::Stamped(r, _) => f.debug_tuple("CausalRecipient::Stamped").field(r).finish(),
        }
    }
}

/// The context types whose actors a [`CausalRecipient`] can reach, and how: implemented for
/// [`CausalContext`] (its own stamps), `actix::Context` and, with the `actix-web` feature,
/// `actix_web_actors::ws::WebsocketContext` (both through [`Stamped`], so the actor must handle
/// `Stamped<M>`: [`stamped_handlers!`](crate::stamped_handlers)). Keyed on the context type,
/// so the three impls do not overlap.
pub trait RecipientContext<A: Actor, M>
where
    M: Message + Send,
    M::Result: Send,
{
    /// The recipient of `M` at `addr`.
    fn causal_recipient(addr: Addr<A>) -> CausalRecipient<M>;
}

impl<A, M> RecipientContext<A, M> for CausalContext<A>
where
    A: Actor<Context = CausalContext<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn causal_recipient(addr: Addr<A>) -> CausalRecipient<M> {
        CausalRecipient {
            inner: Inner::Causal(addr.recipient()),
        }
    }
}

impl<A, M> RecipientContext<A, M> for Context<A>
where
    A: Actor<Context = Context<A>> + Handler<Stamped<M>>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn causal_recipient(addr: Addr<A>) -> CausalRecipient<M> {
        CausalRecipient {
            inner: Inner::Stamped(addr.recipient(), short_type_name::<A>),
        }
    }
}

#[cfg(feature = "actix-web")]
impl<A, M> RecipientContext<A, M> for actix_web_actors::ws::WebsocketContext<A>
where
    A: Actor<Context = actix_web_actors::ws::WebsocketContext<A>> + Handler<Stamped<M>>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn causal_recipient(addr: Addr<A>) -> CausalRecipient<M> {
        CausalRecipient {
            inner: Inner::Stamped(addr.recipient(), short_type_name::<A>),
        }
    }
}

impl<A, M> From<Addr<A>> for CausalRecipient<M>
where
    A: Actor,
    A::Context: RecipientContext<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn from(addr: Addr<A>) -> Self {
        <A::Context as RecipientContext<A, M>>::causal_recipient(addr)
    }
}
