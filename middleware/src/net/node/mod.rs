//! The node: listener, dialers, connections, failure detection and dispatch to local actors.
//!
//! The types live here; the work is split by concern:
//! * [`builder`]: the settings and the start;
//! * [`handshake`]: the flood guard, the accept and dial loops, the handshake;
//! * [`io`]: an established connection's writer and reader;
//! * [`dispatch`]: a frame's delivery to its local actor, and the registration grace.

use super::handlers::{Handled, HandlerFn, Handlers, RemoteActor, RemoteError, Retry};
use super::secure::{self, SecureError, Security, TlsIdentity};
use super::transport::{BoxStream, Listener, TokioTransport, Transport};
use super::wire::{
    self, Body, FailCode, Frame, Handshake, MAX_HANDSHAKE_FRAME, PROTOCOL_VERSION, VectorDecoder,
    VectorEncoder, WireError,
};
use crate::clock::{DEFAULT_MAX_OFFSET_MS, ProcessId};
use crate::intercept::{self, Stamp};
use actix::Addr;
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, SplitStream, StreamExt};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, oneshot};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

mod builder;
mod dispatch;
mod handshake;
mod io;

use dispatch::*;
use handshake::*;
use io::*;

/// Default [`NodeBuilder::registration_grace`]: 2 s after a node starts, a tell to an actor not
/// registered yet waits for it.
pub const DEFAULT_REGISTRATION_GRACE: Duration = Duration::from_secs(2);

pub use crate::protocol::NodeId;

/// What a node tells its subscribers about its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A peer is connected for the first time, or again after it restarted.
    MemberUp {
        /// The peer.
        node: NodeId,
    },
    /// The connection to a peer is lost; sends to it fail fast until it is back.
    MemberDown {
        /// The peer.
        node: NodeId,
        /// Why.
        reason: DownReason,
    },
    /// A peer is connected again (same incarnation) after a [`MemberDown`](Self::MemberDown).
    Reconnected {
        /// The peer.
        node: NodeId,
    },
    /// Tells to `node` that were accepted by
    /// [`RemoteAddr::do_send`](super::RemoteAddr::do_send) but not yet written when the
    /// connection died are lost (tells are delivered at most once). Requests in flight fail
    /// with [`RemoteError::PeerDown`](super::RemoteError::PeerDown) instead.
    TellsLost {
        /// The peer.
        node: NodeId,
        /// How many tells.
        count: u64,
    },
}

/// Why a peer was declared down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The connection was closed or failed.
    Closed,
    /// No frame (not even a heartbeat) within the failure timeout.
    Timeout,
    /// The peer sent a malformed frame or an oversized one.
    Protocol,
    /// A gap in the connection's sequence numbers: handled as a peer restart.
    SequenceGap,
    /// The peer restarted (a new incarnation connected).
    Restarted,
    /// This node shut down.
    Shutdown,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listen address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The TLS identity was refused.
    #[error(transparent)]
    Tls(#[from] secure::TlsConfigError),
}

/// Why an actor could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Another actor is registered under this name.
    #[error("an actor named {0:?} is already registered")]
    DuplicateName(String),
    /// The name is longer than 255 bytes.
    #[error("actor name too long")]
    NameTooLong,
    /// Two accepted message types have the same 64-bit tag.
    #[error("message tags {0:?} and {1:?} collide")]
    TagCollision(&'static str, &'static str),
}

/// Why a handshake failed (counted, and the connection closed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad handshake message: {0}")]
    Wire(#[from] WireError),
    #[error("unexpected handshake message")]
    Unexpected,
    #[error("protocol version {0} (ours {PROTOCOL_VERSION})")]
    Version(u64),
    #[error("peer is node {0}, not the expected one")]
    WrongPeer(NodeId),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("peer claims node {0}, which its certificate does not name")]
    Identity(NodeId),
    #[error("node {0} is not a configured member")]
    NotMember(NodeId),
    #[error("too many handshakes in progress")]
    Busy,
    #[error("connection closed during the handshake")]
    Eof,
    #[error("duplicate connection refused")]
    Duplicate,
    #[error("handshake timed out")]
    Timeout,
}

/// Counters of a node's traffic and of the bad input it met.
#[derive(Debug, Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    messages_out: AtomicU64,
    message_bytes_out: AtomicU64,
    handshake_failures: AtomicU64,
    auth_failures: AtomicU64,
    identity_refused: AtomicU64,
    not_members_refused: AtomicU64,
    handshakes_evicted: AtomicU64,
    spoofed_frames: AtomicU64,
    tells_lost: AtomicU64,
    oversized_frames: AtomicU64,
    decode_errors: AtomicU64,
    unknown_actor: AtomicU64,
    unknown_type: AtomicU64,
    clock_rejected: AtomicU64,
    sequence_gaps: AtomicU64,
    detector_timeouts: AtomicU64,
    duplicates_refused: AtomicU64,
    backpressure_waits: AtomicU64,
    registration_waits: AtomicU64,
}

/// A snapshot of a node's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames received on established connections.
    pub frames_in: u64,
    /// Frames sent on established connections.
    pub frames_out: u64,
    /// Of those, the frames carrying a message, a reply or a failed request's answer (every
    /// frame but the node's own heartbeats): the protocol traffic of the services on the node.
    pub messages_out: u64,
    /// The encoded bytes of the frames counted in `messages_out` (header, stamp, target name
    /// and payload; without the transport's 4-byte length prefix and the security layer's
    /// framing and authentication tags).
    pub message_bytes_out: u64,
    /// Handshakes that failed for any reason (garbage, version, timeout, authentication).
    pub handshake_failures: u64,
    /// Handshakes whose security layer failed: wrong secret (Noise), or a certificate the
    /// cluster CA did not sign or that names another node (TLS).
    pub auth_failures: u64,
    /// Authenticated peers that claimed an id their certificate does not name.
    pub identity_refused: u64,
    /// Authenticated peers whose id is not a configured member (see
    /// [`NodeBuilder::allow_unknown_members`]).
    pub not_members_refused: u64,
    /// Idle unauthenticated connections closed to make room for new ones (the flood guard).
    pub handshakes_evicted: u64,
    /// Frames whose sender process is not on the authenticated peer's node (dropped).
    pub spoofed_frames: u64,
    /// Tells accepted by [`RemoteAddr::do_send`](super::RemoteAddr::do_send) but still queued
    /// when their connection died: lost (delivery is at most once), each also reported as a
    /// [`NodeEvent::TellsLost`].
    pub tells_lost: u64,
    /// Frames above the cap, or framing errors (the connection is closed).
    pub oversized_frames: u64,
    /// Frames or payloads that could not be decoded.
    pub decode_errors: u64,
    /// Messages for an actor name nobody registered.
    pub unknown_actor: u64,
    /// Messages of a type the target actor does not accept.
    pub unknown_type: u64,
    /// Stamps whose HLC was beyond the maximum offset ahead of physical time: their message was
    /// delivered with the HLC ignored (Lamport and vector clocks merged as usual).
    pub clock_rejected: u64,
    /// Sequence gaps (handled as a peer restart).
    pub sequence_gaps: u64,
    /// Peers declared down by the failure detector.
    pub detector_timeouts: u64,
    /// Duplicate connections refused.
    pub duplicates_refused: u64,
    /// Tells that found their actor's mailbox full and held the connection until it had room.
    pub backpressure_waits: u64,
    /// Tells that arrived before their actor was registered, within the registration grace, and
    /// held the connection until it was (or the grace ran out).
    pub registration_waits: u64,
}

/// Settings of a node; built with [`Node::builder`].
#[derive(Clone)]
struct Config {
    id: NodeId,
    listen: String,
    peers: Vec<(NodeId, String)>,
    /// Members known by id only: they dial this node.
    members: Vec<NodeId>,
    allow_unknown: bool,
    secret: Option<Arc<[u8]>>,
    tls: Option<TlsIdentity>,
    max_handshakes: usize,
    max_handshakes_per_source: usize,
    first_byte_timeout: Duration,
    max_frame: usize,
    heartbeat: Duration,
    failure_timeout: Duration,
    request_timeout: Duration,
    handshake_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    full_clocks: bool,
    outbound_capacity: usize,
    max_in_flight: usize,
    max_queued_bytes: usize,
    max_in_flight_bytes: usize,
    max_offset_ms: u64,
    registration_grace: Duration,
    seed: Option<u64>,
    transport: Arc<dyn Transport>,
}

/// Builds and starts a [`Node`].
pub struct NodeBuilder {
    cfg: Config,
}

/// One cluster member: listens, keeps an authenticated connection to each peer, detects
/// failures, and delivers messages to registered causal actors. Cheap to clone.
///
/// The node's tasks run on the tokio runtime that started it (an actix `System`, a turmoil
/// host, `#[actix_rt::test]`) and never block it. Dropping the handles does not stop them:
/// call [`shutdown`](Node::shutdown).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use actix_coord::net::Node;
/// let node = Node::builder()
///     .id(1)
///     .listen("127.0.0.1:7101")
///     .peer(2, "127.0.0.1:7102")
///     .secret("cluster secret")
///     .start()
///     .await?;
/// let mut events = node.subscribe();
/// println!("{:?}", events.recv().await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Node({} at {})",
            self.inner.cfg.id, self.inner.local_addr
        )
    }
}

impl Node {
    /// A builder with defaults: frame cap 8 MiB, heartbeat 200 ms, failure timeout 1 s,
    /// request timeout 5 s, backoff 50 ms..2 s, differential clocks, real TCP.
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            cfg: Config {
                id: 0,
                listen: "127.0.0.1:0".into(),
                peers: Vec::new(),
                members: Vec::new(),
                allow_unknown: false,
                secret: None,
                tls: None,
                max_handshakes: 64,
                max_handshakes_per_source: 32,
                first_byte_timeout: Duration::from_millis(500),
                max_frame: wire::DEFAULT_MAX_FRAME,
                heartbeat: Duration::from_millis(200),
                failure_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(5),
                handshake_timeout: Duration::from_secs(2),
                backoff_min: Duration::from_millis(50),
                backoff_max: Duration::from_secs(2),
                full_clocks: false,
                outbound_capacity: 4096,
                max_in_flight: 4096,
                max_queued_bytes: 64 << 20,
                max_in_flight_bytes: 64 << 20,
                max_offset_ms: DEFAULT_MAX_OFFSET_MS,
                registration_grace: DEFAULT_REGISTRATION_GRACE,
                seed: None,
                transport: Arc::new(TokioTransport),
            },
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.cfg.id
    }

    /// The address the node listens on: the bound one, so with port 0 the port the system
    /// picked.
    pub fn local_addr(&self) -> &str {
        &self.inner.local_addr
    }

    /// Subscribes to membership events (a bounded channel: a subscriber that lags loses the
    /// oldest events and is told so).
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Peers currently connected, sorted.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let peers = self.inner.lock_peers();
        let mut v: Vec<_> = peers
            .iter()
            .filter(|(_, s)| s.link.is_some())
            .map(|(id, _)| *id)
            .collect();
        v.sort_unstable();
        v
    }

    /// Whether `peer` is connected.
    pub fn is_up(&self, peer: NodeId) -> bool {
        self.inner
            .lock_peers()
            .get(&peer)
            .is_some_and(|s| s.link.is_some())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> NetStats {
        let c = &self.inner.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NetStats {
            frames_in: g(&c.frames_in),
            frames_out: g(&c.frames_out),
            messages_out: g(&c.messages_out),
            message_bytes_out: g(&c.message_bytes_out),
            handshake_failures: g(&c.handshake_failures),
            auth_failures: g(&c.auth_failures),
            identity_refused: g(&c.identity_refused),
            not_members_refused: g(&c.not_members_refused),
            handshakes_evicted: g(&c.handshakes_evicted),
            spoofed_frames: g(&c.spoofed_frames),
            tells_lost: g(&c.tells_lost),
            oversized_frames: g(&c.oversized_frames),
            decode_errors: g(&c.decode_errors),
            unknown_actor: g(&c.unknown_actor),
            unknown_type: g(&c.unknown_type),
            clock_rejected: g(&c.clock_rejected),
            sequence_gaps: g(&c.sequence_gaps),
            detector_timeouts: g(&c.detector_timeouts),
            duplicates_refused: g(&c.duplicates_refused),
            backpressure_waits: g(&c.backpressure_waits),
            registration_waits: g(&c.registration_waits),
        }
    }

    /// Registers a causal actor under `name`, for the message types it declares with
    /// [`remote_actor!`](crate::remote_actor).
    ///
    /// # Errors
    /// See [`RegisterError`].
    pub fn register<A: RemoteActor>(&self, name: &str, addr: Addr<A>) -> Result<(), RegisterError> {
        if name.len() > wire::MAX_TARGET_LEN {
            return Err(RegisterError::NameTooLong);
        }
        let mut h = Handlers::new(addr);
        A::remote_handlers(&mut h);
        if let Some((a, b)) = h.collision {
            return Err(RegisterError::TagCollision(a, b));
        }
        let mut actors = self.inner.actors.write().unwrap_or_else(|e| e.into_inner());
        if actors.contains_key(name) {
            return Err(RegisterError::DuplicateName(name.to_owned()));
        }
        let map = h.map.into_iter().map(|(k, (_, f))| (k, f)).collect();
        actors.insert(name.to_owned(), Arc::new(map));
        self.inner.actors_gen.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Removes the actor registered as `name`; returns whether there was one.
    pub fn unregister(&self, name: &str) -> bool {
        let removed = self
            .inner
            .actors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some();
        self.inner.actors_gen.fetch_add(1, Ordering::Release);
        removed
    }

    /// Adds a member, or gives a member's new address, after the node started: the node dials
    /// it at `addr` and keeps the link up (a member that restarted on another port, or one
    /// known by id only that is now reachable).
    pub fn add_peer(&self, id: NodeId, addr: impl Into<String>) {
        if id == self.inner.cfg.id {
            return;
        }
        self.inner
            .members
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        let spawn = {
            let mut peers = self.inner.lock_peers();
            let slot = peers.entry(id).or_default();
            slot.addr = Some(addr.into());
            !std::mem::replace(&mut slot.dial_loop, true)
        };
        if spawn && !self.inner.shutdown.is_cancelled() {
            tokio::spawn(dial_loop(self.inner.clone(), id));
        }
    }

    /// Stops the node: closes the listener and every connection, and ends its tasks.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let ids: Vec<_> = self.inner.lock_peers().keys().copied().collect();
        for id in ids {
            self.inner.link_down(id, None, DownReason::Shutdown);
        }
    }

    pub(crate) fn up_conn(&self, peer: NodeId) -> Result<ConnHandle, RemoteError> {
        self.inner
            .lock_peers()
            .get(&peer)
            .and_then(|s| s.link.clone())
            .ok_or(RemoteError::PeerDown(peer))
    }

    /// Which node dialed the current link to `peer` (tests of deduplication).
    #[cfg(test)]
    pub(crate) fn link_dialer(&self, peer: NodeId) -> Option<NodeId> {
        self.inner
            .lock_peers()
            .get(&peer)
            .and_then(|s| s.link.as_ref().map(|c| c.0.dialer))
    }

    pub(crate) fn max_frame_len(&self) -> usize {
        self.inner.cfg.max_frame
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.cfg.request_timeout
    }
}

type ActorTable = Arc<HashMap<u64, HandlerFn>>;

struct Inner {
    cfg: Config,
    incarnation: u64,
    local_addr: String,
    peers: Mutex<HashMap<NodeId, PeerSlot>>,
    actors: RwLock<HashMap<String, ActorTable>>,
    /// Bumped at each (un)registration, so readers can cache lookups.
    actors_gen: AtomicU64,
    events: broadcast::Sender<NodeEvent>,
    stats: Counters,
    next_conn: AtomicU64,
    shutdown: CancellationToken,
    rng: Mutex<StdRng>,
    security: Security,
    /// Configured members (peers and members by id, and peers added later).
    members: RwLock<std::collections::HashSet<NodeId>>,
    /// Connections accepted and not authenticated yet (the flood guard).
    pending_handshakes: Mutex<PendingHandshakes>,
    /// When the node started (the registration grace runs from here).
    started: tokio::time::Instant,
}

#[derive(Default)]
struct PeerSlot {
    addr: Option<String>,
    link: Option<ConnHandle>,
    dialing: bool,
    /// A dial loop runs for this peer.
    dial_loop: bool,
    incarnation: Option<u64>,
    changed: Arc<Notify>,
}

type ReplyResult = Result<(Bytes, Stamp), RemoteError>;

/// What a connection's writer sends.
pub(crate) enum Outbound {
    Message {
        request: bool,
        corr: u64,
        target: Arc<str>,
        tag: u64,
        stamp: Stamp,
        payload: Vec<u8>,
    },
    Reply {
        corr: u64,
        stamp: Stamp,
        payload: Vec<u8>,
    },
    Fail {
        corr: u64,
        code: FailCode,
    },
}

impl Outbound {
    fn payload_len(&self) -> usize {
        match self {
            Outbound::Message { payload, .. } | Outbound::Reply { payload, .. } => payload.len(),
            Outbound::Fail { .. } => 0,
        }
    }
}

struct ConnShared {
    id: u64,
    peer: NodeId,
    dialer: NodeId,
    incarnation: u64,
    tx: mpsc::Sender<Outbound>,
    /// Payload bytes queued in `tx`, bounded by `max_queued`.
    queued_bytes: std::sync::atomic::AtomicUsize,
    max_queued: usize,
    pending: Mutex<HashMap<u64, oneshot::Sender<ReplyResult>>>,
    cancel: CancellationToken,
}

static NEXT_CORR: AtomicU64 = AtomicU64::new(1);

/// A handle on an established connection.
#[derive(Clone)]
pub(crate) struct ConnHandle(Arc<ConnShared>);

const MAX_PENDING: usize = 1 << 16;

impl ConnHandle {
    pub(crate) fn peer(&self) -> NodeId {
        self.0.peer
    }

    pub(crate) fn enqueue(&self, o: Outbound) -> Result<(), RemoteError> {
        let bytes = o.payload_len();
        let before = self.0.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if bytes > 0 && before + bytes > self.0.max_queued {
            self.0.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(RemoteError::Overloaded);
        }
        self.0.tx.try_send(o).map_err(|e| {
            self.0.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => RemoteError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => RemoteError::PeerDown(self.0.peer),
            }
        })
    }

    /// The writer took `o` off the queue.
    fn dequeued(&self, o: &Outbound) {
        self.0
            .queued_bytes
            .fetch_sub(o.payload_len(), Ordering::AcqRel);
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn request(
        &self,
        target: Arc<str>,
        tag: u64,
        stamp: Stamp,
        payload: Vec<u8>,
    ) -> Result<(oneshot::Receiver<ReplyResult>, u64), RemoteError> {
        let corr = NEXT_CORR.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.0.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() >= MAX_PENDING {
                return Err(RemoteError::Overloaded);
            }
            p.insert(corr, tx);
        }
        if let Err(e) = self.enqueue(Outbound::Message {
            request: true,
            corr,
            target,
            tag,
            stamp,
            payload,
        }) {
            self.forget(corr);
            return Err(e);
        }
        Ok((rx, corr))
    }

    pub(crate) fn forget(&self, corr: u64) {
        self.0
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&corr);
    }

    fn resolve(&self, corr: u64, r: ReplyResult) {
        let tx = self
            .0
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&corr);
        if let Some(tx) = tx {
            let _ = tx.send(r);
        }
    }

    fn fail_all(&self) {
        let all: Vec<_> = self
            .0
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, tx) in all {
            let _ = tx.send(Err(RemoteError::PeerDown(self.0.peer)));
        }
    }
}

impl Inner {
    fn lock_peers(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, PeerSlot>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn emit(&self, e: NodeEvent) {
        tracing::debug!(target: "actix_coord::net", node = self.cfg.id, event = ?e, "membership");
        let _ = self.events.send(e);
    }

    /// Decides whether a freshly authenticated connection becomes the peer's link, following
    /// one rule on both sides: when two connections between the same pair are alive, the one
    /// dialed by the lower node id wins; a new incarnation replaces the old one.
    fn establish(&self, conn: &ConnHandle, as_acceptor: bool) -> bool {
        let peer = conn.0.peer;
        let winner = peer.min(self.cfg.id);
        let mut events = Vec::new();
        let mut old = None;
        {
            let mut peers = self.lock_peers();
            let slot = peers.entry(peer).or_default();
            match &slot.link {
                Some(cur) => {
                    if cur.0.incarnation != conn.0.incarnation {
                        events.push(NodeEvent::MemberDown {
                            node: peer,
                            reason: DownReason::Restarted,
                        });
                        old = slot.link.take();
                    } else if cur.0.dialer != winner && conn.0.dialer == winner {
                        old = slot.link.take();
                    } else {
                        return false;
                    }
                }
                None => {
                    if as_acceptor && slot.dialing && conn.0.dialer > self.cfg.id {
                        return false;
                    }
                }
            }
            match slot.incarnation {
                Some(i) if i == conn.0.incarnation => {
                    if old.is_none() {
                        events.push(NodeEvent::Reconnected { node: peer });
                    }
                }
                _ => events.push(NodeEvent::MemberUp { node: peer }),
            }
            slot.incarnation = Some(conn.0.incarnation);
            slot.link = Some(conn.clone());
        }
        if let Some(old) = old {
            old.0.cancel.cancel();
            old.fail_all();
        }
        for e in events {
            self.emit(e);
        }
        true
    }

    /// Takes the link down if it is still `conn_id` (or any link when `None`).
    fn link_down(&self, peer: NodeId, conn_id: Option<u64>, reason: DownReason) {
        let taken = {
            let mut peers = self.lock_peers();
            let Some(slot) = peers.get_mut(&peer) else {
                return;
            };
            match &slot.link {
                Some(c) if conn_id.is_none_or(|id| c.0.id == id) => {
                    let c = slot.link.take();
                    slot.changed.notify_one();
                    c
                }
                _ => None,
            }
        };
        if let Some(c) = taken {
            c.0.cancel.cancel();
            c.fail_all();
            self.emit(NodeEvent::MemberDown { node: peer, reason });
        }
    }

    fn jittered(&self, backoff: Duration) -> Duration {
        let half = backoff / 2;
        let extra = self
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(extra)
    }
}
