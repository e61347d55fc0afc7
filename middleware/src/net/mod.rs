//! Remote actors over secured TCP, with clocks on every message.
//!
//! One [`Node`] per process keeps one connection to each peer, secured by mutual TLS 1.3 with
//! per-node certificates ([`NodeBuilder::tls`], the recommended mode) or by Noise keyed with a
//! shared cluster secret ([`NodeBuilder::secret`], the quick-start mode), watched by heartbeats
//! and a timeout failure detector, and re-dialed with jittered exponential backoff. Every frame's
//! sender must be on the authenticated peer's node, and only configured members are let in. A causal actor
//! registered with [`Node::register`] receives messages from other nodes exactly as from local
//! senders: the sender's Lamport, vector and hybrid clocks travel in the frame and are merged
//! before the handler runs, and a reply carries the responder's clocks back to the requester.
//!
//! ```no_run
//! use actix::prelude::*;
//! use actix_coord::net::{Node, RemoteAddr};
//! use actix_coord::{CausalContext, remote_actor, remote_message};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Message, Serialize, Deserialize)]
//! #[rtype(result = "u64")]
//! struct Ping(u64);
//! remote_message!(Ping);
//!
//! struct Ponger;
//! impl Actor for Ponger { type Context = CausalContext<Self>; }
//! impl Handler<Ping> for Ponger {
//!     type Result = u64;
//!     fn handle(&mut self, m: Ping, _: &mut Self::Context) -> u64 { m.0 + 1 }
//! }
//! remote_actor!(Ponger: Ping);
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::builder().id(1).listen("127.0.0.1:7101")
//!     .peer(2, "127.0.0.1:7102").secret("s3cret").start().await?;
//! node.register("ponger", CausalContext::start(Ponger))?;
//! let remote: RemoteAddr<Ping> = RemoteAddr::new(&node, 2, "ponger");
//! assert_eq!(remote.send(Ping(41)).await?, 42);
//! # Ok(()) }
//! ```
//!
//! Bad input never panics: oversized frames and framing errors close the connection; frames
//! for unknown actors or types, undecodable payloads and stamps whose HLC is beyond the maximum
//! offset are dropped (a request gets a typed failure back); every case is counted in
//! [`Node::stats`].
//!
//! Modules: [`wire`] (all encoding), `secure` (TLS and Noise), [`transport`] (the socket trait,
//! tokio and turmoil), `node`, `remote`.

mod handlers;
mod node;
mod remote;
mod secure;
pub mod transport;
pub mod wire;

pub use handlers::{Handlers, RemoteActor, RemoteError, RemoteMessage};
pub use node::{
    DEFAULT_REGISTRATION_GRACE, DownReason, NetStats, Node, NodeBuilder, NodeError, NodeEvent,
    NodeId, RegisterError,
};
pub use remote::RemoteAddr;
pub use secure::{DevCa, NOISE_PATTERN, NodeCertPem, TlsConfigError, TlsIdentity, node_dns_name};
pub use transport::TokioTransport;
#[cfg(feature = "turmoil")]
pub use transport::TurmoilTransport;

#[cfg(test)]
mod tests;

/// `n` nodes with ids 1..=n on 127.0.0.1 (ephemeral ports, secret `"s"`), every pair connected
/// (waited for with a 30 s deadline): the unit tests' cluster.
#[cfg(test)]
pub(crate) async fn loopback_cluster(n: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=n as NodeId {
        let mut b = Node::builder().id(id).listen("127.0.0.1:0").secret("s");
        for other in &nodes {
            b = b.peer(other.id(), other.local_addr());
        }
        for later in id + 1..=n as NodeId {
            b = b.member(later);
        }
        nodes.push(b.start().await.expect("node starts"));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    for node in &nodes {
        let mut events = node.subscribe();
        while node.connected_peers().len() < n - 1 {
            let _ = tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("connected by the deadline");
        }
    }
    nodes
}
