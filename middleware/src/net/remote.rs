//! Remote actors: message types with tags, actors that accept them, and [`RemoteAddr`].

use super::node::{Node, NodeId, Outbound};
use super::wire::{self, FailCode};
use crate::clock::encoding::varint_len;
use crate::intercept::{self, CausalContext, Stamp};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Why a remote send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// No reply arrived within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The peer is not connected (sends fail fast), or the connection was lost before the reply.
    #[error("peer {0} is down")]
    PeerDown(NodeId),
    /// The peer has no actor registered under this name.
    #[error("peer has no actor named {0:?}")]
    UnknownActor(String),
    /// The remote actor does not accept this message type.
    #[error("remote actor does not accept this message type")]
    UnknownType,
    /// The message, or its result, could not be decoded at the other end.
    #[error("decode failure: {0}")]
    Decode(String),
    /// The message could not be encoded, or is larger than the frame cap.
    #[error("encode failure: {0}")]
    Encode(String),
    /// The remote actor stopped or dropped the request.
    #[error("remote mailbox closed")]
    Mailbox,
    /// The peer refused the stamp. Nodes of this version never send it (a stamp whose HLC is
    /// beyond the maximum offset is delivered without its HLC); kept for the wire code.
    #[error("clock stamp rejected")]
    ClockRejected,
    /// Too many messages (or bytes) are queued for the peer, or in flight at it.
    #[error("overloaded")]
    Overloaded,
    /// The message (or, from the peer, its result) does not fit in one frame.
    #[error("message of {bytes} bytes exceeds the frame cap of {cap} bytes")]
    TooLarge {
        /// The encoded size (0 when the peer reported it without a size).
        bytes: usize,
        /// The frame cap.
        cap: usize,
    },
    /// The peer refused the frame: its sender process is not on this node (a stamp from a
    /// process of another node id).
    #[error("refused by the peer: sender not on this node")]
    Forbidden,
}

/// A message type that can cross the network. Implement it with [`remote_message!`](crate::remote_message).
///
/// The tag names the type on the wire: both ends must use the same tag for the same type.
pub trait RemoteMessage:
    Message<Result: Serialize + DeserializeOwned + Send + 'static>
    + Serialize
    + DeserializeOwned
    + Send
    + 'static
{
    /// The type's name on the wire (by default the type's name as written).
    const TAG: &'static str;
    /// The 64-bit tag carried in frames.
    const TAG_ID: u64 = wire::type_tag(Self::TAG);
}

/// Makes message types remote: `remote_message!(Ping, Pong = "pong.v2");` (the tag defaults to
/// the type's name). Each type is registered once; a tag collision is refused at registration.
#[macro_export]
macro_rules! remote_message {
    ($($ty:ty $(= $tag:literal)?),+ $(,)?) => {
        $( $crate::remote_message!(@one $ty $(= $tag)?); )+
    };
    (@one $ty:ty = $tag:literal) => {
        impl $crate::net::RemoteMessage for $ty { const TAG: &'static str = $tag; }
    };
    (@one $ty:ty) => {
        impl $crate::net::RemoteMessage for $ty { const TAG: &'static str = stringify!($ty); }
    };
}

/// Declares the message types a causal actor accepts from other nodes:
/// `remote_actor!(Pong: Ping, GetClocks);`.
#[macro_export]
macro_rules! remote_actor {
    ($actor:ty : $($msg:ty),+ $(,)?) => {
        impl $crate::net::RemoteActor for $actor {
            fn remote_handlers(h: &mut $crate::net::Handlers<Self>) {
                $( h.accept::<$msg>(); )+
            }
        }
    };
}

/// A causal actor that accepts messages from other nodes. Implement it with
/// [`remote_actor!`](crate::remote_actor).
pub trait RemoteActor: Actor<Context = CausalContext<Self>> {
    /// Lists the accepted message types with [`Handlers::accept`].
    fn remote_handlers(h: &mut Handlers<Self>);
}

type ReplyFuture = BoxFuture<'static, Result<(Vec<u8>, Stamp), FailCode>>;

/// Outcome of a retried delivery.
pub(crate) enum Retry {
    /// Delivered.
    Done,
    /// The mailbox is still full.
    Again,
    /// The actor has stopped.
    Closed,
}

/// What became of an incoming message.
pub(crate) enum Handled {
    /// A tell, delivered.
    Delivered,
    /// A tell whose actor's mailbox is full: retry (in order) until it is taken.
    Busy(Box<dyn FnMut() -> Retry + Send>),
    /// A request: the future of the encoded result with the responder's stamp.
    Reply(ReplyFuture),
}

/// Runs one incoming message: decode, then deliver with its stamp.
pub(crate) type HandlerFn =
    Arc<dyn Fn(Bytes, Stamp, bool) -> Result<Handled, FailCode> + Send + Sync>;

/// The message types one actor accepts from other nodes.
pub struct Handlers<A: Actor<Context = CausalContext<A>>> {
    addr: Addr<A>,
    pub(crate) map: HashMap<u64, (&'static str, HandlerFn)>,
    pub(crate) collision: Option<(&'static str, &'static str)>,
}

impl<A: Actor<Context = CausalContext<A>>> Handlers<A> {
    pub(crate) fn new(addr: Addr<A>) -> Self {
        Self {
            addr,
            map: HashMap::new(),
            collision: None,
        }
    }

    /// Accepts message type `M` from other nodes.
    pub fn accept<M>(&mut self) -> &mut Self
    where
        A: Handler<M>,
        M: RemoteMessage,
    {
        let addr = self.addr.clone();
        let f: HandlerFn = Arc::new(move |payload: Bytes, stamp: Stamp, request: bool| {
            let msg: M = wire::decode_payload(&payload).map_err(|_| FailCode::Decode)?;
            if !request {
                // Tells respect the mailbox capacity: a full mailbox holds the connection's
                // reader (backpressure up to the sender's bounded queue).
                return match intercept::try_deliver(&addr, msg, stamp) {
                    Ok(()) => Ok(Handled::Delivered),
                    Err(SendError::Closed(_)) => Err(FailCode::Mailbox),
                    Err(SendError::Full(left)) => {
                        let addr = addr.clone();
                        let mut left = Some(left);
                        Ok(Handled::Busy(Box::new(move || {
                            let Some((m, s)) = left.take() else {
                                return Retry::Done;
                            };
                            match intercept::try_deliver(&addr, m, s) {
                                Ok(()) => Retry::Done,
                                Err(SendError::Full(again)) => {
                                    left = Some(again);
                                    Retry::Again
                                }
                                Err(SendError::Closed(_)) => Retry::Closed,
                            }
                        })))
                    }
                };
            }
            let fut = intercept::deliver_request(&addr, msg, stamp);
            Ok(Handled::Reply(Box::pin(async move {
                let (result, stamp) = fut.await.map_err(|_| FailCode::Mailbox)?;
                let bytes = wire::encode_payload(&result).map_err(|_| FailCode::Encode)?;
                Ok((bytes, stamp))
            })))
        });
        if let Some((other, _)) = self.map.get(&M::TAG_ID)
            && *other != M::TAG
        {
            self.collision = Some((other, M::TAG));
        }
        self.map.insert(M::TAG_ID, (M::TAG, f));
        self
    }
}

/// The address of an actor registered on another node, for message type `M`.
///
/// `send` and `do_send` are send events of the current process (the causal actor running, or
/// the external process); a reply is a receive event of whoever polls the `send` future — poll
/// it inside the actor (e.g. `actix::fut::wrap_future` in a `ResponseActFuture`, or
/// [`InProcessExt::in_current_process`](crate::intercept::InProcessExt)) so that the actor's
/// clocks merge the responder's.
pub struct RemoteAddr<M> {
    node: Node,
    peer: NodeId,
    target: Arc<str>,
    timeout: Option<Duration>,
    _m: PhantomData<fn(M)>,
}

impl<M> Clone for RemoteAddr<M> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
            peer: self.peer,
            target: self.target.clone(),
            timeout: self.timeout,
            _m: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for RemoteAddr<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteAddr({}@{})", self.target, self.peer)
    }
}

impl<M: RemoteMessage> RemoteAddr<M> {
    /// The actor registered as `name` on node `peer`, reached through `node`.
    pub fn new(node: &Node, peer: NodeId, name: &str) -> Self {
        Self {
            node: node.clone(),
            peer,
            target: Arc::from(name),
            timeout: None,
            _m: PhantomData,
        }
    }

    /// The same address with another request timeout (default: the node's).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The peer node.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    fn prepare(&self, msg: &M) -> Result<(Vec<u8>, super::node::ConnHandle), RemoteError> {
        let conn = self.node.up_conn(self.peer)?;
        let payload = wire::encode_payload(msg).map_err(|e| RemoteError::Encode(e.to_string()))?;
        // Room for the header and a large stamp; the writer re-checks the exact size.
        let header = 64 + self.target.len() + varint_len(payload.len() as u64);
        if payload.len() + header > self.node.max_frame_len() {
            return Err(RemoteError::TooLarge {
                bytes: payload.len() + header,
                cap: self.node.max_frame_len(),
            });
        }
        Ok((payload, conn))
    }

    fn stamp(&self) -> Stamp {
        // The label is only read when a causal log is being written.
        let what = if crate::trace::active() {
            format!("send {} to {}@{}", M::TAG, self.target, self.peer)
        } else {
            String::new()
        };
        if intercept::in_causal_actor() {
            intercept::stamp_send(&what)
        } else {
            // From outside any actor: the external process of the node that sends, so that the
            // stamp's sender is on the node the peer authenticated.
            let ext = crate::intercept::process::external_process(self.node.id());
            let mut ext = ext.lock().unwrap_or_else(|e| e.into_inner());
            ext.send(&|| what.clone())
        }
    }

    /// Sends `msg` without waiting for a result.
    ///
    /// # Errors
    /// Fails fast with [`RemoteError::PeerDown`] when the peer is not connected,
    /// [`RemoteError::Overloaded`] when its queue is full, [`RemoteError::Encode`].
    pub fn do_send(&self, msg: M) -> Result<(), RemoteError> {
        let (payload, conn) = self.prepare(&msg)?;
        let stamp = self.stamp();
        conn.enqueue(Outbound::Message {
            request: false,
            corr: 0,
            target: self.target.clone(),
            tag: M::TAG_ID,
            stamp,
            payload,
        })
    }

    /// Sends `msg` and waits for the result, at most the request timeout.
    ///
    /// The send event happens when this is called, not when the future is first polled.
    ///
    /// # Errors
    /// Any [`RemoteError`]: the peer down (at once, or when the connection is lost), a timeout,
    /// or a failure reported by the peer.
    pub fn send(&self, msg: M) -> impl Future<Output = Result<M::Result, RemoteError>> + use<M> {
        let start = self.prepare(&msg).map(|(payload, conn)| {
            let stamp = self.stamp();
            let rx = conn.request(self.target.clone(), M::TAG_ID, stamp, payload);
            (rx, conn)
        });
        let timeout = self.timeout.unwrap_or_else(|| self.node.request_timeout());
        let target = self.target.clone();
        async move {
            let (rx, conn) = start?;
            let (rx, corr) = rx?;
            let r = match tokio::time::timeout(timeout, rx).await {
                Err(_) => {
                    conn.forget(corr);
                    return Err(RemoteError::Timeout);
                }
                Ok(Err(_)) => return Err(RemoteError::PeerDown(conn.peer())),
                Ok(Ok(Err(RemoteError::UnknownActor(_)))) => {
                    return Err(RemoteError::UnknownActor(target.to_string()));
                }
                Ok(Ok(r)) => r?,
            };
            let (payload, stamp) = r;
            let what = if crate::trace::active() {
                format!("reply to {}", M::TAG)
            } else {
                String::new()
            };
            if let Err(e) = intercept::receive_stamp(&stamp, &what) {
                tracing::warn!(target: "actix_coord::net", error = %e, "reply clock not fully merged");
            }
            wire::decode_payload::<M::Result>(&payload)
                .map_err(|e| RemoteError::Decode(e.to_string()))
        }
    }
}
