//! Websocket session actors of actix-web-actors (context `ws::WebsocketContext<Self>`) as
//! causal processes (cargo feature `actix-web`).
//!
//! A session keeps its context and its handlers. Three edits cover it:
//!
//! 1. a [`SessionProcess`] field;
//! 2. the start call: `actix_web_actors::ws::start(Session { .. }, &req, stream)` becomes
//!    `actix_coord::ws::start(&req, stream, |process| Session { .., process })`;
//! 3. one line per message type the session receives from other actors:
//!    `actix_coord::stamped_handlers!(Session, process; Msg);` — and the senders hold a
//!    [`CausalRecipient<Msg>`](crate::intercept::CausalRecipient) (or send with
//!    [`StampedAddrExt`](crate::intercept::StampedAddrExt)).
//!
//! [`start`] runs the session's whole actor — the constructor, `started`, every handler,
//! `StreamHandler::handle` for each frame, `stopping`, `stopped`, `run_interval` and
//! `run_later` closures, `ctx.spawn`/`ctx.wait` futures — inside its process's scope, because
//! it wraps the stream that actix-web polls to run the session (the session's future *is* that
//! stream). So every send made there is the session's send event, and there is no guard to
//! forget. A [`SessionProcess`] can only be made by [`start`] (it has no public constructor), so
//! a session holding one cannot be started with actix-web-actors' own `ws::start`: that is a
//! compile error.
//!
//! ```compile_fail
//! # use actix::prelude::*;
//! # use actix_web_actors::ws;
//! struct Session { process: actix_coord::ws::SessionProcess }
//! let s = Session { process: actix_coord::ws::SessionProcess::default() }; // no such constructor
//! ```
//!
//! What the types leave open, and how it is covered:
//!
//! * **Receives.** actix-web-actors implements `ToEnvelope` for `WebsocketContext` for every
//!   message type (it packs a plain envelope), and a second impl is refused by coherence
//!   (E0119), so a plain `M` sent to a session carries no clock: messages to sessions travel as
//!   [`Stamped<M>`](crate::intercept::Stamped), which
//!   [`CausalRecipient`](crate::intercept::CausalRecipient) does by itself for sessions (and not
//!   for `CausalContext` actors, whose context stamps). A plain `M` sent to a
//!   session is not a false attribution — it is simply not in the log (no send event, no receive
//!   event).
//! * **Replies.** A session's requests to `CausalContext` actors get causal replies (the reply's
//!   clock is merged before the session runs on); replies *from* a session carry no clock, as in
//!   the explicit layer.
//! * **Plain futures.** A future handed to `actix::spawn` or returned in a `ResponseFuture` runs
//!   on its own task, outside the session's poll: bind it with
//!   [`in_current_process`](crate::intercept::InProcessExt::in_current_process), as for any
//!   causal actor.
//! * **The old explicit path.** A session that holds an
//!   [`ExplicitProcess`](crate::intercept::ExplicitProcess) instead (the explicit layer), started
//!   with actix-web-actors' `ws::start`, runs `started`, `stopping` and `StreamHandler::handle`
//!   outside its process: that is detected at its first stamped message and reported — an error
//!   on the console and a `scope.unscoped` event that `causal-log check` reports as an error
//!   (rule `scope`) — rather than silently attributed to `external`.

use super::explicit::{ProcessGuard, new_cell, receive_scoped};
use super::process::{self, ClockSet, Clocks, Shared, Stamp};
use crate::clock::ProcessId;
use actix::prelude::*;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::{Error, HttpRequest, HttpResponse};
use actix_web_actors::ws::{self, WebsocketContext};
use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

/// The process of a websocket session: keep it as a field of the session actor.
///
/// Only [`start`] and [`WsBuilder`] make one, and they run the session inside its scope;
/// [`stamped_handlers!`](crate::stamped_handlers) merges the stamps of the [`Stamped`
/// ](crate::intercept::Stamped) messages the session receives into it.
pub struct SessionProcess {
    cell: Shared,
}

impl SessionProcess {
    /// The process id.
    pub fn id(&self) -> ProcessId {
        self.cell.state.borrow().id
    }

    /// The name in logs (unique within the OS process).
    pub fn name(&self) -> Arc<str> {
        self.cell.state.borrow().name.clone()
    }

    /// A copy of the clocks.
    pub fn clocks(&self) -> Clocks {
        self.cell.state.borrow().clocks()
    }

    /// What [`stamped_handlers!`](crate::stamped_handlers) calls: merges `stamp` (a receive of
    /// an `M`) and keeps the process current while the handler runs.
    #[doc(hidden)]
    pub fn __receive_in<M, C>(&self, stamp: &Stamp) -> ProcessGuard {
        receive_scoped::<M, C>(&self.cell, stamp)
    }
}

impl std::fmt::Debug for SessionProcess {
    /// `SessionProcess { id: 0.3, name: "WsChatSession#1" }`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cell.state.try_borrow() {
            Ok(st) => f
                .debug_struct("SessionProcess")
                .field("id", &format_args!("{}", st.id))
                .field("name", &&*st.name)
                .finish(),
            Err(_) => f.write_str("SessionProcess { busy }"),
        }
    }
}

/// Options for starting a websocket session: node, name, clocks, protocols. (No codec option:
/// actix-web-actors takes a codec only where it gives no address back, `with_codec`.)
#[derive(Default)]
pub struct WsBuilder {
    node: Option<u32>,
    name: Option<String>,
    clocks: ClockSet,
    protocols: Vec<String>,
}

impl WsBuilder {
    /// Default options: default node, type-derived name (`Session#k`), all clocks, no
    /// protocols.
    pub fn new() -> Self {
        Self::default()
    }

    /// The node of the process (default: [`default_node`](crate::intercept::default_node)).
    pub fn node(mut self, node: u32) -> Self {
        self.node = Some(node);
        self
    }

    /// The name in logs (made unique like every process name, see
    /// [`CausalBuilder::name`](crate::intercept::CausalBuilder::name)).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Which clocks to keep (default: all three).
    pub fn clocks(mut self, clocks: ClockSet) -> Self {
        self.clocks = clocks;
        self
    }

    /// The protocols the session speaks (as `WsResponseBuilder::protocols`).
    pub fn protocols(mut self, protocols: &[&str]) -> Self {
        self.protocols = protocols.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// Performs the handshake and starts the session made by `f` from its process; returns the
    /// response to give actix-web.
    ///
    /// # Errors
    /// The handshake's, as `actix_web_actors::ws::start`.
    pub fn start<A, S, F>(self, req: &HttpRequest, stream: S, f: F) -> Result<HttpResponse, Error>
    where
        A: Actor<Context = WebsocketContext<A>>
            + StreamHandler<Result<ws::Message, ws::ProtocolError>>,
        S: Stream<Item = Result<Bytes, PayloadError>> + 'static,
        F: FnOnce(SessionProcess) -> A,
    {
        self.start_with_addr(req, stream, f).map(|(_, res)| res)
    }

    /// [`start`](Self::start), also returning the session's address.
    ///
    /// # Errors
    /// The handshake's, as `actix_web_actors::ws::start`.
    pub fn start_with_addr<A, S, F>(
        self,
        req: &HttpRequest,
        stream: S,
        f: F,
    ) -> Result<(Addr<A>, HttpResponse), Error>
    where
        A: Actor<Context = WebsocketContext<A>>
            + StreamHandler<Result<ws::Message, ws::ProtocolError>>,
        S: Stream<Item = Result<Bytes, PayloadError>> + 'static,
        F: FnOnce(SessionProcess) -> A,
    {
        let protocols: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        let mut res = if protocols.is_empty() {
            ws::handshake(req)?
        } else {
            ws::handshake_with_protocols(req, &protocols)?
        };
        let name = match &self.name {
            Some(n) => n.clone(),
            None => process::default_name::<A>(),
        };
        let cell = new_cell(
            self.node.unwrap_or_else(process::default_node),
            &name,
            self.clocks,
        );
        // The constructor runs as the session's process too.
        let (addr, inner) = {
            let _in = process::enter(&cell);
            let actor = f(SessionProcess { cell: cell.clone() });
            WebsocketContext::create_with_addr(actor, stream)
        };
        let out = SessionStream {
            inner: Some(Box::pin(inner)),
            process: cell,
        };
        Ok((addr, res.streaming(out)))
    }
}

/// Performs the websocket handshake and starts the session that `f` builds from its process:
/// the replacement for `actix_web_actors::ws::start`.
///
/// ```no_run
/// use actix::prelude::*;
/// use actix_web::{web, Error, HttpRequest, HttpResponse};
/// use actix_web_actors::ws;
///
/// struct Echo { process: actix_coord::ws::SessionProcess } // + the field
/// impl Actor for Echo { type Context = ws::WebsocketContext<Self>; } // kept
/// impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
///     fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
///         if let Ok(ws::Message::Text(t)) = msg { ctx.text(t) } // runs as the session
///     }
/// }
///
/// async fn route(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, Error> {
///     // was: ws::start(Echo {}, &req, stream)
///     actix_coord::ws::start(&req, stream, |process| Echo { process })
/// }
/// ```
///
/// # Errors
/// The handshake's, as `actix_web_actors::ws::start`.
pub fn start<A, S, F>(req: &HttpRequest, stream: S, f: F) -> Result<HttpResponse, Error>
where
    A: Actor<Context = WebsocketContext<A>> + StreamHandler<Result<ws::Message, ws::ProtocolError>>,
    S: Stream<Item = Result<Bytes, PayloadError>> + 'static,
    F: FnOnce(SessionProcess) -> A,
{
    WsBuilder::new().start(req, stream, f)
}

/// The session's output stream, polled by actix-web: each poll runs the session's actor (its
/// `ContextFut`) inside the session's process.
struct SessionStream {
    /// `None` only while dropping.
    inner: Option<BoxedOutput>,
    process: Shared,
}

/// actix-web-actors' output stream of a session (an opaque type, boxed).
type BoxedOutput = Pin<Box<dyn Stream<Item = Result<Bytes, Error>>>>;

impl Stream for SessionStream {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let _in = process::enter(&this.process);
        match this.inner.as_mut() {
            Some(inner) => inner.as_mut().poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for SessionStream {
    /// actix-web drops the stream of a connection it gives up on (a write error, a forced
    /// shutdown) while the session is alive; actix's `ContextFut` then stops the actor and polls
    /// it one last time from its own `drop`, running `stopping` and `stopped`. That last poll
    /// runs inside the session's process too.
    fn drop(&mut self) {
        let _in = process::enter(&self.process);
        drop(self.inner.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intercept::CausalContext;
    use actix_web::http::header;
    use std::cell::Cell;
    use std::rc::Rc;

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Note;

    #[derive(Message)]
    #[rtype(result = "Vec<ProcessId>")]
    struct Senders;

    /// Records the sender of each `Note`.
    #[derive(Default)]
    struct Recorder(Vec<ProcessId>);
    impl Actor for Recorder {
        type Context = CausalContext<Self>;
    }
    impl Handler<Note> for Recorder {
        type Result = ();
        fn handle(&mut self, _: Note, ctx: &mut Self::Context) {
            self.0.extend(ctx.sender());
        }
    }
    impl Handler<Senders> for Recorder {
        type Result = MessageResult<Senders>;
        fn handle(&mut self, _: Senders, _: &mut Self::Context) -> Self::Result {
            MessageResult(self.0.clone())
        }
    }

    struct Session {
        to: Addr<Recorder>,
        #[allow(dead_code)] // held, as a session holds it
        process: SessionProcess,
    }
    impl Actor for Session {
        type Context = WebsocketContext<Self>;
        fn started(&mut self, _: &mut Self::Context) {
            self.to.do_send(Note);
        }
        fn stopping(&mut self, _: &mut Self::Context) -> Running {
            self.to.do_send(Note);
            Running::Stop
        }
    }
    impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
        fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
    }

    #[actix_rt::test]
    async fn started_and_stopping_send_as_the_session_even_when_the_connection_is_dropped() {
        let recorder = CausalContext::start(Recorder::default());
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::UPGRADE, "websocket"))
            .insert_header((header::CONNECTION, "upgrade"))
            .insert_header((header::SEC_WEBSOCKET_VERSION, "13"))
            .insert_header((header::SEC_WEBSOCKET_KEY, "x3JJHMbDL1EzLkh9GBhXDw=="))
            .to_http_request();
        // A client that never sends a frame.
        let payload = futures_util::stream::pending::<Result<Bytes, PayloadError>>();
        let id = Rc::new(Cell::new(None));
        let seen = id.clone();
        let to = recorder.clone();
        let res = start(&req, payload, move |process| {
            seen.set(Some(process.id()));
            Session { to, process }
        })
        .unwrap();
        let id = id.get().expect("the constructor ran");
        // One poll runs `started`; then the connection is dropped with the session alive.
        let mut body = res.into_body();
        std::future::poll_fn(|cx| {
            let _ = actix_web::body::MessageBody::poll_next(Pin::new(&mut body), cx);
            Poll::Ready(())
        })
        .await;
        drop(body);
        assert_eq!(recorder.send(Senders).await.unwrap(), vec![id, id]);
    }
}
