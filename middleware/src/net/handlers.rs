//! The receiving side of remote messages: message types with tags, the actors that accept them
//! and the handler table a node dispatches incoming frames through, with the errors a remote
//! send reports. Nothing here knows the node: the node ([`super::node`]) uses this module, and
//! the sending side ([`super::remote`], `RemoteAddr`) uses the node.

use super::wire::{self, FailCode};
use crate::intercept::{self, CausalContext, Stamp};
use crate::protocol::NodeId;
use actix::prelude::*;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

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

/// Where a request's encoded reply goes (the node: back on the requester's connection), called
/// once with the encoded result and the responder's stamp, or with why there is none.
pub(crate) type ReplyTo = Box<dyn FnOnce(Result<(Vec<u8>, Stamp), FailCode>) + Send>;

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
}

/// Runs one incoming message: decode, then deliver with its stamp. A request comes with where
/// its reply goes (`Some`); a tell without (`None`). `Err`: not delivered (and a request's
/// `ReplyTo` is dropped unused: the caller answers with the error).
pub(crate) type HandlerFn =
    Arc<dyn Fn(Bytes, Stamp, Option<ReplyTo>) -> Result<Handled, FailCode> + Send + Sync>;

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
        // Shared, so that a tell waiting for room holds the address without cloning it (an
        // `Addr` clone allocates its sender's parking slot).
        let addr = Arc::new(self.addr.clone());
        let f: HandlerFn = Arc::new(
            move |payload: Bytes, stamp: Stamp, reply: Option<ReplyTo>| {
                let msg: M = wire::decode_payload(&payload).map_err(|_| FailCode::Decode)?;
                let Some(reply) = reply else {
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
                };
                // The reply is encoded and handed to the connection by the actor as it answers.
                let answer = intercept::ReplyOnce::new(move |r: Result<(M::Result, Stamp), _>| {
                    reply(match r {
                        Ok((result, stamp)) => wire::encode_payload(&result)
                            .map(|bytes| (bytes, stamp))
                            .map_err(|_| FailCode::Encode),
                        Err(_) => Err(FailCode::Mailbox),
                    })
                });
                intercept::deliver_request_then(&addr, msg, stamp, answer);
                Ok(Handled::Delivered)
            },
        );
        if let Some((other, _)) = self.map.get(&M::TAG_ID)
            && *other != M::TAG
        {
            self.collision = Some((other, M::TAG));
        }
        self.map.insert(M::TAG_ID, (M::TAG, f));
        self
    }
}
