//! Transparent interception: clocks attached on send and merged on receive, with no change to
//! handlers.
//!
//! actix has no middleware hook, but every `do_send`, `try_send` and `send` packs the message
//! through the receiver's context type (`ToEnvelope::pack`) on the sender's thread, and the
//! envelope is opened in the receiver's mailbox poll. [`CausalContext`] uses both ends:
//!
//! * **send**: the sender's process (the causal actor being polled on this thread, or the
//!   external process outside actors) ticks its Lamport, vector and hybrid clocks and stamps the
//!   message;
//! * **receive**: before the handler runs, the receiver merges the stamp and ticks; the handler
//!   reads the merged clocks with [`CausalContext::clocks`];
//! * **reply**: a reply to a causal requester carries the responder's clocks back, and the
//!   requester merges them before its continuation sees the result: if A asks B, B replies and A
//!   then sends to C, B's reply happened before C's receive;
//! * **spawned work**: everything the actor's context polls (handlers, `started`, `ctx.spawn`,
//!   `ctx.wait`, `run_later`, `run_interval`, `ResponseActFuture` continuations) runs as the
//!   actor; plain futures can be bound with [`InProcessExt::in_current_process`].
//!
//! Actors that must keep `Context<Self>` use the explicit layer: [`Stamped`],
//! [`StampedAddrExt`] and [`stamped_handlers!`](crate::stamped_handlers). Websocket sessions of
//! actix-web-actors use `ws` (feature `actix-web`). [`CausalRecipient`] reaches all three kinds.
//!
//! Each causal actor instance is one process with a [`ProcessId`](crate::clock::ProcessId)
//! `(node, local)` and a name for logs (default `Type#k`, set with [`CausalBuilder::name`]).
//!
//! **Labels in the log.** A message or actor type is labelled by the last segment of its path,
//! generics stripped (`chat::server::Message` → `Message`), unless another type already has
//! that label in this OS process: then by the shortest suffix of its path that no other type has
//! (`ws::Message`), then by its full name with generics (at once for another instance of a
//! generic type already labelled), then that name with `#2`, `#3`, … A
//! label names one type for the whole run of a process; the first type logged keeps the short
//! one. What a message carried is logged only for the types opted in with [`log_contents`].

mod context;
mod explicit;
mod future;
mod incarnation;
mod labels;
pub(crate) mod process;
mod recipient;
#[cfg(feature = "actix-web")]
pub mod ws;

pub(crate) use context::short_type_name as short_name;
pub use labels::{MAX_CONTENT_LEN, log_contents, logs_contents};

pub use context::{CausalBuilder, CausalContext, deliver, deliver_request, try_deliver};
pub(crate) use context::{ReplyOnce, deliver_request_then};
pub use explicit::{
    ExplicitProcess, ProcessGuard, Stamped, StampedAddrExt, StampedResponse, UNSCOPED,
};
pub use future::{InProcess, InProcessExt};
/// The context type of actor `A`, spelled so that it works where `Self::Context` does not: in
/// inherent methods (`impl Cook { fn tick(&self, ctx: &mut Self::Context) }` is
/// `error[E0223]: ambiguous associated type`). `fn tick(&self, ctx: &mut ContextOf<Self>)`
/// compiles whatever the actor's context is (`CausalContext<Self>`, `Context<Self>`,
/// `WebsocketContext<Self>`), so it survives a change of the context line.
///
/// ```
/// use actix::prelude::*;
/// use actix_coord::intercept::{CausalContext, ContextOf};
///
/// struct Cook;
/// impl Actor for Cook {
///     type Context = CausalContext<Self>;
///     fn started(&mut self, ctx: &mut Self::Context) {
///         self.arm(ctx);
///     }
/// }
/// impl Cook {
///     fn arm(&self, ctx: &mut ContextOf<Self>) { // was: &mut Context<Self>
///         ctx.run_later(std::time::Duration::from_millis(1), |_, ctx| ctx.stop());
///     }
/// }
/// ```
pub type ContextOf<A> = <A as actix::Actor>::Context;

pub use incarnation::{Incarnation, IncarnationError};
pub use process::{
    ClockSet, Clocks, MergeError, Stamp, current_clocks, current_process, default_node,
    in_causal_actor, incarnation, physical_now_ms, receive_stamp, set_default_node,
    set_external_name, set_incarnation, set_max_offset_ms, set_time_source, stamp_send,
};
pub use recipient::{CausalRecipient, RecipientContext};
