//! The sending side of remote messages: [`RemoteAddr`], the address of an actor on another
//! node (the receiving side, message types and handlers, is in [`super::handlers`]).

use super::handlers::{RemoteError, RemoteMessage};
use super::node::{Node, NodeId, Outbound};
use super::wire;
use crate::clock::encoding::varint_len;
use crate::intercept::{self, Stamp};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

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
        let what = if crate::ticks::active() {
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
            let what = if crate::ticks::active() {
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
