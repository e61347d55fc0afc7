//! The explicit layer, for actors that must keep `Context<Self>` (supervised actors, system
//! services): messages wrapped in [`Stamped`], sent with [`StampedAddrExt`], handled by impls
//! that [`stamped_handlers!`](crate::stamped_handlers) writes.
//!
//! ```
//! use actix::prelude::*;
//! use actix_coord::intercept::{ExplicitProcess, StampedAddrExt};
//!
//! #[derive(Message)]
//! #[rtype(result = "u32")]
//! struct Lookup(u32);
//!
//! #[derive(Default)]
//! struct Directory {
//!     process: ExplicitProcess, // this actor's identity and clocks
//! }
//! impl Actor for Directory {
//!     type Context = Context<Self>; // kept
//! }
//! impl Handler<Lookup> for Directory {
//!     type Result = u32;
//!     fn handle(&mut self, m: Lookup, _: &mut Context<Self>) -> u32 {
//!         m.0 * 2
//!     }
//! }
//! // Writes `impl Handler<Stamped<Lookup>> for Directory`, merging the stamp first.
//! actix_coord::stamped_handlers!(Directory, process; Lookup);
//!
//! # actix::System::new().block_on(async {
//! let dir = Directory::default().start();
//! assert_eq!(dir.send_stamped(Lookup(21)).await.unwrap(), 42);
//! # });
//! ```
//!
//! Replies through this layer carry no clock back (the reply type is the handler's own);
//! use [`CausalContext`](super::CausalContext) where replies must be causal.

use super::process::{self, ClockSet, Clocks, ProcessCell, ProcessState, Shared, Stamp};
use crate::clock::ProcessId;
use crate::ticks::FieldValue;
use actix::dev::{MessageResponse, OneshotSender, ToEnvelope};
use actix::prelude::*;
use actix_coord_proto::schema::field;
use std::rc::Rc;
use std::sync::Arc;

/// A message together with its sender's clocks.
#[derive(Debug, Clone)]
pub struct Stamped<M> {
    /// The sender's clocks at the send event.
    pub stamp: Stamp,
    /// The message.
    pub msg: M,
}

impl<M: Message> Message for Stamped<M> {
    type Result = M::Result;
}

impl<M: 'static> Stamped<M> {
    /// Stamps `msg` with a send event of the current process (causal actor or external).
    pub fn new(msg: M) -> Self {
        // The label is built only when a causal log is written.
        let stamp = process::with_current(|p| {
            p.send(&|| {
                let label = format!("send {}", super::context::short_type_name::<M>());
                super::labels::with_content(label, super::labels::content_of(&msg).as_deref())
            })
        });
        Self { stamp, msg }
    }

    /// Stamps `msg` for an actor of type `A`: like [`new`](Self::new), and the send event
    /// names its destination (`send Lookup to Directory`), as sends to causal actors do.
    pub fn to<A>(msg: M) -> Self {
        Self::labelled(msg, super::context::short_type_name::<A>)
    }

    /// [`to`](Self::to) with the destination's name as a function (computed only for a log).
    pub(crate) fn labelled(msg: M, to: fn() -> &'static str) -> Self {
        let stamp = process::with_current(|p| {
            p.send(&|| {
                let label = format!(
                    "send {} to {}",
                    super::context::short_type_name::<M>(),
                    to()
                );
                super::labels::with_content(label, super::labels::content_of(&msg).as_deref())
            })
        });
        Self { stamp, msg }
    }
}

/// The response of a handler of [`Stamped<M>`]: the handler of `M`'s response, passed through.
pub struct StampedResponse<R>(pub R);

impl<A, M, R> MessageResponse<A, Stamped<M>> for StampedResponse<R>
where
    A: Actor,
    M: Message,
    R: MessageResponse<A, M>,
{
    fn handle(self, ctx: &mut A::Context, tx: Option<OneshotSender<M::Result>>) {
        self.0.handle(ctx, tx)
    }
}

/// The identity and clocks of an actor that keeps `Context<Self>`.
///
/// Keep one as a field; [`stamped_handlers!`](crate::stamped_handlers) merges each incoming
/// stamp into it and makes it the current process while the handler runs, so the handler's own
/// sends are stamped by it.
pub struct ExplicitProcess {
    cell: Shared,
}

impl std::fmt::Debug for ExplicitProcess {
    /// `ExplicitProcess { id: 0.3, name: "Registry" }` (so actors holding one can derive
    /// `Debug`); while its state is in use, `ExplicitProcess { busy }`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cell.state.try_borrow() {
            Ok(st) => f
                .debug_struct("ExplicitProcess")
                .field("id", &format_args!("{}", st.id))
                .field("name", &&*st.name)
                .finish(),
            Err(_) => f.write_str("ExplicitProcess { busy }"),
        }
    }
}

impl Default for ExplicitProcess {
    /// A process named `ExplicitProcess#k` on the default node (k counts the explicit
    /// processes created with a default name, from 1).
    fn default() -> Self {
        Self::with_name(&process::default_name::<ExplicitProcess>())
    }
}

impl ExplicitProcess {
    /// A process with the given log name on the default node, keeping all clocks. The name is
    /// made unique like every process name: a name already taken gets `#2`, `#3`, … (see
    /// [`CausalBuilder::name`](super::CausalBuilder::name)).
    pub fn with_name(name: &str) -> Self {
        Self::build(process::default_node(), name, ClockSet::ALL)
    }

    /// A process with every option.
    pub fn build(node: u32, name: &str, clocks: ClockSet) -> Self {
        Self {
            cell: new_cell(node, name, clocks),
        }
    }

    /// The process id.
    pub fn id(&self) -> ProcessId {
        self.cell.state.borrow().id
    }

    /// The name in logs (unique within the OS process, see [`ExplicitProcess::with_name`]).
    pub fn name(&self) -> Arc<str> {
        self.cell.state.borrow().name.clone()
    }

    /// A copy of the clocks.
    pub fn clocks(&self) -> Clocks {
        self.cell.state.borrow().clocks()
    }

    /// Merges `stamp` (a receive event of a message of type `M`) and makes this the current
    /// process until the guard drops.
    pub fn receive<M>(&self, stamp: &Stamp) -> ProcessGuard {
        let merged = self.cell.state.borrow_mut().receive(stamp, &|| {
            format!("receive {}", super::context::short_type_name::<M>())
        });
        if let Err(e) = merged {
            tracing::warn!(target: "actix_coord::intercept", error = %e, "message clock not fully merged");
        }
        self.enter()
    }

    /// Makes this the current process until the guard drops (for timers and futures of the actor).
    pub fn enter(&self) -> ProcessGuard {
        ProcessGuard {
            _guard: process::enter_owned(self.cell.clone()),
        }
    }

    /// What [`stamped_handlers!`](crate::stamped_handlers) calls: [`receive`](Self::receive),
    /// and, in an actor whose context is `C`, the scope check of [`receive_scoped`].
    #[doc(hidden)]
    pub fn __receive_in<M, C>(&self, stamp: &Stamp) -> ProcessGuard {
        receive_scoped::<M, C>(&self.cell, stamp)
    }
}

/// A new process cell: a fresh id on `node`, `name` made unique, registered for logs.
pub(crate) fn new_cell(node: u32, name: &str, clocks: ClockSet) -> Shared {
    let id = process::fresh_id(node);
    let name = process::unique_name(name);
    crate::ticks::register_name(id, name.clone());
    Rc::new(ProcessCell::new(ProcessState::new(id, name, clocks)))
}

/// Whether `C` is actix-web-actors' websocket context (by name, so that the check works
/// whether or not this crate's `actix-web` feature is on).
fn is_websocket_context<C>() -> bool {
    std::any::type_name::<C>().starts_with("actix_web_actors::ws::WebsocketContext<")
}

/// Merges `stamp` into `cell` (a receive of an `M`) and makes it current until the guard
/// drops. In an actor whose context is actix-web-actors' `WebsocketContext` (`C`), the process
/// must already be current when its handler runs — as it is for every session started with
/// `actix_coord::ws::start` (feature `actix-web`) — otherwise the session's other code (`started`, `stopping`,
/// `StreamHandler::handle`, timers) runs outside its process and its sends are attributed to the
/// shared `external` process. That is reported, once per process: an error on the console
/// (target `actix_coord::intercept`) and a `scope.unscoped` event of the process in the causal
/// log, which `causal-log check` reports as an error (rule `scope`).
pub(crate) fn receive_scoped<M, C>(cell: &Shared, stamp: &Stamp) -> ProcessGuard {
    let scoped = process::is_current(cell);
    let report = !scoped && is_websocket_context::<C>() && !cell.unscoped_reported.replace(true);
    let name = cell.state.borrow().name.clone();
    if report {
        tracing::error!(
            target: "actix_coord::intercept",
            session = %name,
            "websocket session {name} handles messages outside its process scope: its sends from \
             started, stopping and StreamHandler::handle are attributed to `external`; start it \
             with actix_coord::ws::start"
        );
    }
    let merged = cell.state.borrow_mut().receive(stamp, &|| {
        format!("receive {}", super::context::short_type_name::<M>())
    });
    if let Err(e) = merged {
        tracing::warn!(target: "actix_coord::intercept", error = %e, "message clock not fully merged");
    }
    let guard = ProcessGuard {
        _guard: process::enter_owned(cell.clone()),
    };
    if report {
        process::event(
            UNSCOPED,
            format!("{name} outside its process scope"),
            vec![
                (field::SESSION.to_owned(), FieldValue::from(&*name)),
                (
                    field::MESSAGE.to_owned(),
                    super::context::short_type_name::<M>().into(),
                ),
            ],
        );
    }
    guard
}

/// The kind of the causal-log event that reports a websocket session running outside its
/// process scope (see [`ExplicitProcess`] and the `ws` module).
pub const UNSCOPED: &str = actix_coord_proto::schema::kind::SCOPE_UNSCOPED;

/// Keeps a process current on this thread until dropped.
pub struct ProcessGuard {
    _guard: process::OwnedEnterGuard,
}

/// Sends [`Stamped`] messages through an `Addr`.
pub trait StampedAddrExt<A: Actor> {
    /// `do_send` of `msg` stamped by the current process.
    fn do_send_stamped<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Stamped<M>>,
        A::Context: ToEnvelope<A, Stamped<M>>;

    /// `try_send` of `msg` stamped by the current process.
    ///
    /// # Errors
    /// As `Addr::try_send`; the send event is recorded either way.
    fn try_send_stamped<M>(&self, msg: M) -> Result<(), SendError<Stamped<M>>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Stamped<M>>,
        A::Context: ToEnvelope<A, Stamped<M>>;

    /// `send` of `msg` stamped by the current process.
    fn send_stamped<M>(&self, msg: M) -> actix::dev::Request<A, Stamped<M>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Stamped<M>>,
        A::Context: ToEnvelope<A, Stamped<M>>;
}

impl<A: Actor> StampedAddrExt<A> for Addr<A> {
    fn do_send_stamped<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Stamped<M>>,
        A::Context: ToEnvelope<A, Stamped<M>>,
    {
        self.do_send(Stamped::to::<A>(msg))
    }

    fn try_send_stamped<M>(&self, msg: M) -> Result<(), SendError<Stamped<M>>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Stamped<M>>,
        A::Context: ToEnvelope<A, Stamped<M>>,
    {
        self.try_send(Stamped::to::<A>(msg))
    }

    fn send_stamped<M>(&self, msg: M) -> actix::dev::Request<A, Stamped<M>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Stamped<M>>,
        A::Context: ToEnvelope<A, Stamped<M>>,
    {
        self.send(Stamped::to::<A>(msg))
    }
}

/// Writes `impl Handler<Stamped<M>>` for an actor that keeps `Context<Self>`, for each listed
/// message type `M` it already handles: the stamp is merged into the actor's
/// [`ExplicitProcess`] field, which is the current process while the handler of `M` runs.
///
/// `stamped_handlers!(ActorType, process_field; Msg1, Msg2);` (a blanket impl is impossible:
/// the orphan rule, E0210). The field is an [`ExplicitProcess`] or, in a websocket session
/// (feature `actix-web`), its `ws::SessionProcess`; in a websocket session whose process is not
/// current when the handler runs (an `ExplicitProcess` session started with actix-web-actors'
/// own `ws::start`) the first message is reported as a `scope.unscoped` event (see
/// [`UNSCOPED`]).
#[macro_export]
macro_rules! stamped_handlers {
    ($actor:ty, $field:ident; $($msg:ty),+ $(,)?) => {$(
        impl ::actix::Handler<$crate::intercept::Stamped<$msg>> for $actor {
            type Result = $crate::intercept::StampedResponse<<$actor as ::actix::Handler<$msg>>::Result>;
            fn handle(
                &mut self,
                m: $crate::intercept::Stamped<$msg>,
                ctx: &mut <$actor as ::actix::Actor>::Context,
            ) -> Self::Result {
                let _in = self.$field.__receive_in::<$msg, <$actor as ::actix::Actor>::Context>(&m.stamp);
                $crate::intercept::StampedResponse(<$actor as ::actix::Handler<$msg>>::handle(self, m.msg, ctx))
            }
        }
    )+};
}
