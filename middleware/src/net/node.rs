//! The node: listener, dialers, connections, failure detection and dispatch to local actors.

use super::remote::{Handled, HandlerFn, Handlers, RemoteActor, RemoteError, Retry};
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

impl NodeBuilder {
    /// This node's id (unique in the cluster; also the `node` of its processes).
    pub fn id(mut self, id: NodeId) -> Self {
        self.cfg.id = id;
        self
    }

    /// Address to listen on (`host:port`; port 0 picks a free one, see [`Node::local_addr`]).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.cfg.listen = addr.into();
        self
    }

    /// A seed peer: its id and address. The node dials it and keeps the connection up.
    pub fn peer(mut self, id: NodeId, addr: impl Into<String>) -> Self {
        self.cfg.peers.push((id, addr.into()));
        self
    }

    /// A member known by id only, whose address is not known yet (it may bind port 0 and start
    /// later): it dials this node, which never dials it. Use [`peer`](Self::peer) for the
    /// members already running, `member` for those still to come.
    pub fn member(mut self, id: NodeId) -> Self {
        self.cfg.members.push(id);
        self
    }

    /// Accepts connections from authenticated nodes whose id is neither a [`peer`](Self::peer)
    /// nor a [`member`](Self::member) (default `false`: they are refused and counted in
    /// [`NetStats::not_members_refused`]).
    pub fn allow_unknown_members(mut self, allow: bool) -> Self {
        self.cfg.allow_unknown = allow;
        self
    }

    /// The shared-secret mode: connections are secured with Noise
    /// (`Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`) keyed by this cluster secret, which every
    /// member shares. Use a long random secret. Anyone who knows it is a member and may claim
    /// any id; to stop one member impersonating another, use [`tls`](Self::tls). Exactly one of
    /// `secret` and `tls` must be set.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.cfg.secret = Some(Arc::from(secret.as_ref()));
        self
    }

    /// The mutual-TLS mode (recommended between machines): TLS 1.3 with this node's
    /// certificate, peers' certificates verified against the cluster CA, and the id each peer
    /// claims checked against the one its certificate names (SAN
    /// [`node_dns_name`](super::node_dns_name)). Exactly one of `secret` and `tls` must be set.
    pub fn tls(mut self, identity: TlsIdentity) -> Self {
        self.cfg.tls = Some(identity);
        self
    }

    /// Bounds on connections not authenticated yet: at most `total` in progress node-wide and
    /// `per_source` from one source address (defaults 64 and 32). When a bound is reached, the
    /// oldest connection that has not sent its first byte is closed to make room; a connection
    /// that has sent bytes is never evicted, so a flood of idle connections cannot keep a real
    /// peer out. `first_byte` (default 500 ms) is how long a new connection may stay silent.
    pub fn handshake_limits(
        mut self,
        total: usize,
        per_source: usize,
        first_byte: Duration,
    ) -> Self {
        self.cfg.max_handshakes = total.max(1);
        self.cfg.max_handshakes_per_source = per_source.max(1);
        self.cfg.first_byte_timeout = first_byte;
        self
    }

    /// Cap on a frame's length (default 8 MiB). A peer sending more is disconnected.
    pub fn max_frame_len(mut self, bytes: usize) -> Self {
        self.cfg.max_frame = bytes;
        self
    }

    /// Interval between heartbeats (default 200 ms).
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.cfg.heartbeat = d;
        self
    }

    /// A peer silent this long is declared down (default 1 s).
    pub fn failure_timeout(mut self, d: Duration) -> Self {
        self.cfg.failure_timeout = d;
        self
    }

    /// Default timeout of [`RemoteAddr::send`](super::RemoteAddr::send) (default 5 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.cfg.request_timeout = d;
        self
    }

    /// Bounds of the jittered exponential reconnect backoff (default 50 ms to 2 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.cfg.backoff_min = min;
        self.cfg.backoff_max = max;
        self
    }

    /// Send whole vector clocks in every frame instead of differences (default: differences).
    pub fn full_clocks(mut self, full: bool) -> Self {
        self.cfg.full_clocks = full;
        self
    }

    /// Frames queued per connection before sends fail with `Overloaded` (default 4096).
    pub fn outbound_capacity(mut self, n: usize) -> Self {
        self.cfg.outbound_capacity = n;
        self
    }

    /// Byte bounds beside the message counts (defaults 64 MiB each): payload bytes queued per
    /// connection before sends fail with `Overloaded`, and payload bytes of requests in flight
    /// at this node per connection before new ones are answered `Overloaded`.
    pub fn byte_limits(mut self, queued: usize, in_flight: usize) -> Self {
        self.cfg.max_queued_bytes = queued.max(1024);
        self.cfg.max_in_flight_bytes = in_flight.max(1024);
        self
    }

    /// Largest HLC offset accepted from peers, in ms (default [`DEFAULT_MAX_OFFSET_MS`]).
    pub fn max_offset_ms(mut self, ms: u64) -> Self {
        self.cfg.max_offset_ms = ms;
        self
    }

    /// For this long after the node starts (default [`DEFAULT_REGISTRATION_GRACE`]), a tell
    /// to an actor name not registered yet waits for the registration instead of being dropped:
    /// peers that start first may already talk to actors this node is still starting. The
    /// connection reads nothing else meanwhile, so the peer's order is kept; after the grace
    /// the tell is dropped and counted (`unknown_actor`). Requests never wait: they fail with
    /// [`RemoteError::UnknownActor`](super::RemoteError::UnknownActor). `Duration::ZERO` turns
    /// it off.
    pub fn registration_grace(mut self, d: Duration) -> Self {
        self.cfg.registration_grace = d;
        self
    }

    /// Seeds the node's randomness (backoff jitter, nonces, incarnation) for reproducible
    /// simulations. Without it, the operating system's randomness is used. Never set it in
    /// production: nonces must be unpredictable.
    pub fn seed(mut self, seed: u64) -> Self {
        self.cfg.seed = Some(seed);
        self
    }

    /// The socket layer (default [`TokioTransport`]).
    pub fn transport(mut self, t: impl Transport) -> Self {
        self.cfg.transport = Arc::new(t);
        self
    }

    /// Binds the listener and starts the node's tasks on the current tokio runtime.
    ///
    /// # Errors
    /// [`NodeError::Config`] for no security mode, both, an empty secret or zero sizes;
    /// [`NodeError::Tls`]; [`NodeError::Bind`].
    pub async fn start(self) -> Result<Node, NodeError> {
        let cfg = self.cfg;
        let security = match (&cfg.secret, &cfg.tls) {
            (None, None) => {
                return Err(NodeError::Config(
                    "no security mode: set a cluster secret or a TLS identity",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(NodeError::Config(
                    "both a cluster secret and a TLS identity: choose one",
                ));
            }
            (Some(secret), None) => {
                if secret.is_empty() {
                    return Err(NodeError::Config("the cluster secret is empty"));
                }
                Security::psk(secret)
            }
            (None, Some(identity)) => Security::Tls(identity.configs()?),
        };
        if cfg.max_frame < 1024 || cfg.outbound_capacity == 0 {
            return Err(NodeError::Config("frame cap below 1 KiB or zero queue"));
        }
        if cfg.heartbeat >= cfg.failure_timeout {
            return Err(NodeError::Config(
                "heartbeat interval not below the failure timeout",
            ));
        }
        let listener = cfg
            .transport
            .bind(&cfg.listen)
            .await
            .map_err(|source| NodeError::Bind {
                addr: cfg.listen.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().unwrap_or_else(|_| cfg.listen.clone());
        let mut rng = match cfg.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let incarnation = rng.random::<u64>();
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            incarnation,
            local_addr,
            peers: Mutex::new(HashMap::new()),
            actors: RwLock::new(HashMap::new()),
            actors_gen: AtomicU64::new(0),
            events,
            stats: Counters::default(),
            next_conn: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            rng: Mutex::new(rng),
            security,
            members: RwLock::new(
                cfg.peers
                    .iter()
                    .map(|p| p.0)
                    .chain(cfg.members.iter().copied())
                    .collect(),
            ),
            pending_handshakes: Mutex::new(PendingHandshakes::default()),
            started: tokio::time::Instant::now(),
            cfg,
        });
        {
            let mut peers = inner.lock_peers();
            for (id, addr) in &inner.cfg.peers {
                let slot = peers.entry(*id).or_default();
                slot.addr = Some(addr.clone());
                slot.dial_loop = *id != inner.cfg.id;
            }
            for id in &inner.cfg.members {
                peers.entry(*id).or_default();
            }
        }
        tokio::spawn(accept_loop(inner.clone(), listener));
        for (id, _) in inner.cfg.peers.clone() {
            if id != inner.cfg.id {
                tokio::spawn(dial_loop(inner.clone(), id));
            }
        }
        Ok(Node { inner })
    }
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

/// Connections accepted and not authenticated yet, oldest first.
#[derive(Default)]
struct PendingHandshakes {
    next: u64,
    entries: std::collections::VecDeque<PendingEntry>,
}

struct PendingEntry {
    id: u64,
    source: String,
    /// Set once the connection has sent its first byte.
    active: Arc<std::sync::atomic::AtomicBool>,
    cancel: CancellationToken,
}

/// A newly admitted pending handshake.
struct Admitted {
    id: u64,
    active: Arc<std::sync::atomic::AtomicBool>,
    cancel: CancellationToken,
    evicted: u64,
}

impl PendingHandshakes {
    /// Closes the oldest idle connection (from `source` when given); false when there is none.
    fn evict_idle(&mut self, source: Option<&str>) -> bool {
        let i = self.entries.iter().position(|e| {
            !e.active.load(Ordering::Acquire) && source.is_none_or(|s| e.source == s)
        });
        match i.and_then(|i| self.entries.remove(i)) {
            Some(e) => {
                e.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Admits a connection from `source` within the bounds, evicting idle ones as needed;
    /// `None` when every pending connection in the way has already sent bytes.
    fn admit(&mut self, source: &str, total: usize, per_source: usize) -> Option<Admitted> {
        let mut evicted = 0;
        let same = self.entries.iter().filter(|e| e.source == source).count();
        if same >= per_source {
            if !self.evict_idle(Some(source)) {
                return None;
            }
            evicted += 1;
        }
        if self.entries.len() >= total {
            if !self.evict_idle(None) {
                return None;
            }
            evicted += 1;
        }
        self.next += 1;
        let e = PendingEntry {
            id: self.next,
            source: source.to_owned(),
            active: Arc::default(),
            cancel: CancellationToken::new(),
        };
        let admitted = Admitted {
            id: e.id,
            active: e.active.clone(),
            cancel: e.cancel.clone(),
            evicted,
        };
        self.entries.push_back(e);
        Some(admitted)
    }

    fn remove(&mut self, id: u64) {
        self.entries.retain(|e| e.id != id);
    }
}

/// The host part of a `host:port` address (the source a flood is counted by).
fn source_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, _)) => host,
        None => addr,
    }
}

/// An accepted stream that notes when its first byte arrives (the flood guard's idle test).
struct Watched {
    inner: BoxStream,
    active: Arc<std::sync::atomic::AtomicBool>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.active.store(true, Ordering::Release);
        }
        r
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Conn = Framed<BoxStream, LengthDelimitedCodec>;

async fn accept_loop(inner: Arc<Inner>, mut listener: Box<dyn Listener>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, addr)) = accepted else {
            // Transient accept errors (e.g. too many open files): pause, then go on.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let admitted = inner
            .pending_handshakes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(
                source_of(&addr),
                inner.cfg.max_handshakes,
                inner.cfg.max_handshakes_per_source,
            );
        let Some(admitted) = admitted else {
            note_handshake_failure(&inner, &HandshakeError::Busy);
            continue;
        };
        for _ in 0..admitted.evicted {
            inner.count(&inner.stats.handshakes_evicted);
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let stream: BoxStream = Box::new(Watched {
                inner: stream,
                active: admitted.active.clone(),
            });
            let first_byte = async {
                tokio::time::sleep(inner.cfg.first_byte_timeout).await;
                if admitted.active.load(Ordering::Acquire) {
                    std::future::pending::<()>().await;
                }
            };
            let r = tokio::select! {
                biased;
                _ = admitted.cancel.cancelled() => Err(HandshakeError::Busy),
                _ = first_byte => Err(HandshakeError::Timeout),
                r = tokio::time::timeout(inner.cfg.handshake_timeout, handshake(&inner, stream, None)) => {
                    r.unwrap_or(Err(HandshakeError::Timeout))
                }
            };
            inner
                .pending_handshakes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(admitted.id);
            match r {
                Ok((conn, framed, dec)) => run_connection(inner, conn, framed, dec),
                Err(HandshakeError::Busy) => {}
                Err(e) => note_handshake_failure(&inner, &e),
            }
        });
    }
}

fn note_handshake_failure(inner: &Inner, e: &HandshakeError) {
    match e {
        HandshakeError::Duplicate => inner.count(&inner.stats.duplicates_refused),
        HandshakeError::Auth(_) => {
            inner.count(&inner.stats.auth_failures);
            inner.count(&inner.stats.handshake_failures);
        }
        HandshakeError::Identity(_) => {
            inner.count(&inner.stats.identity_refused);
            inner.count(&inner.stats.handshake_failures);
        }
        HandshakeError::NotMember(_) => {
            inner.count(&inner.stats.not_members_refused);
            inner.count(&inner.stats.handshake_failures);
        }
        _ => inner.count(&inner.stats.handshake_failures),
    }
    tracing::debug!(target: "actix_coord::net", node = inner.cfg.id, error = %e, "handshake failed");
}

async fn dial_loop(inner: Arc<Inner>, peer: NodeId) {
    let mut backoff = inner.cfg.backoff_min;
    loop {
        // Wait until the peer has no link.
        loop {
            let (notify, up) = {
                let peers = inner.lock_peers();
                let slot = peers.get(&peer);
                (
                    slot.map(|s| s.changed.clone()).unwrap_or_default(),
                    slot.is_some_and(|s| s.link.is_some()),
                )
            };
            if !up {
                break;
            }
            tokio::select! {
            biased;
                _ = inner.shutdown.cancelled() => return,
                _ = notify.notified() => {}
            }
        }
        let addr = {
            let mut peers = inner.lock_peers();
            let slot = peers.entry(peer).or_default();
            slot.dialing = true;
            slot.addr.clone()
        };
        let Some(addr) = addr else { return };
        let attempt = async {
            let stream = inner.cfg.transport.connect(&addr).await?;
            handshake(&inner, stream, Some(peer)).await
        };
        let r = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            r = tokio::time::timeout(inner.cfg.handshake_timeout, attempt) => r.unwrap_or(Err(HandshakeError::Timeout)),
        };
        if let Some(s) = inner.lock_peers().get_mut(&peer) {
            s.dialing = false;
        }
        match r {
            Ok((conn, framed, dec)) => {
                backoff = inner.cfg.backoff_min;
                run_connection(inner.clone(), conn, framed, dec);
                continue;
            }
            Err(e) => {
                if !matches!(e, HandshakeError::Io(_)) {
                    note_handshake_failure(&inner, &e);
                }
            }
        }
        let wait = inner.jittered(backoff);
        backoff = (backoff * 2).min(inner.cfg.backoff_max);
        tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn recv_handshake(framed: &mut Conn) -> Result<Handshake, HandshakeError> {
    match framed.next().await {
        None => Err(HandshakeError::Eof),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(b)) => Ok(Handshake::decode(&b)?),
    }
}

async fn send_handshake(framed: &mut Conn, h: Handshake) -> Result<(), HandshakeError> {
    framed.send(Bytes::from(h.encode())).await?;
    Ok(())
}

/// Runs the handshake on a new stream; `expected` is the peer a dialer meant to reach.
///
/// First the security layer (mutual TLS or Noise, see [`secure`]), then inside it each side's
/// `Hello`; the id a peer claims must be the one its proof allows (its certificate's) and a
/// configured member; the acceptor then decides whether the connection becomes the link.
async fn handshake(
    inner: &Arc<Inner>,
    stream: BoxStream,
    expected: Option<NodeId>,
) -> Result<(ConnHandle, Conn, mpsc::Receiver<Outbound>), HandshakeError> {
    let secured = match expected {
        Some(peer) => secure::dial(&inner.security, stream, peer).await,
        None => secure::accept(&inner.security, stream).await,
    };
    let (stream, proof) = secured.map_err(|e| match e {
        SecureError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => HandshakeError::Eof,
        SecureError::Io(e) => HandshakeError::Io(e),
        SecureError::Auth(detail) => HandshakeError::Auth(detail),
    })?;
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_HANDSHAKE_FRAME)
        .new_codec();
    let mut framed = Framed::new(stream, codec);
    let me = inner.cfg.id;
    send_handshake(
        &mut framed,
        Handshake::Hello {
            version: PROTOCOL_VERSION,
            node: me,
            incarnation: inner.incarnation,
        },
    )
    .await?;
    let Handshake::Hello {
        version,
        node: peer,
        incarnation: peer_inc,
    } = recv_handshake(&mut framed).await?
    else {
        return Err(HandshakeError::Unexpected);
    };
    if version != PROTOCOL_VERSION {
        return Err(HandshakeError::Version(version));
    }
    if peer == me || expected.is_some_and(|e| e != peer) {
        return Err(HandshakeError::WrongPeer(peer));
    }
    if !proof.allows(peer) {
        return Err(HandshakeError::Identity(peer));
    }
    if !inner.cfg.allow_unknown
        && !inner
            .members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&peer)
    {
        return Err(HandshakeError::NotMember(peer));
    }
    let (tx, rx) = mpsc::channel(inner.cfg.outbound_capacity);
    let conn = ConnHandle(Arc::new(ConnShared {
        id: inner.next_conn.fetch_add(1, Ordering::Relaxed),
        peer,
        dialer: if expected.is_some() { me } else { peer },
        incarnation: peer_inc,
        tx,
        queued_bytes: std::sync::atomic::AtomicUsize::new(0),
        max_queued: inner.cfg.max_queued_bytes,
        pending: Mutex::new(HashMap::new()),
        cancel: inner.shutdown.child_token(),
    }));
    if expected.is_none() {
        let accepted = inner.establish(&conn, true);
        // Until the connection's tasks run, a failure (or the handshake timeout dropping this
        // future) must take the fresh link down again.
        let guard = accepted.then(|| LinkGuard {
            inner: inner.clone(),
            peer,
            id: conn.0.id,
            armed: true,
        });
        send_handshake(&mut framed, Handshake::Welcome { accepted }).await?;
        match guard {
            Some(mut g) => g.armed = false,
            None => return Err(HandshakeError::Duplicate),
        }
    } else {
        let Handshake::Welcome { accepted } = recv_handshake(&mut framed).await? else {
            return Err(HandshakeError::Unexpected);
        };
        if !accepted || !inner.establish(&conn, false) {
            return Err(HandshakeError::Duplicate);
        }
    }
    framed.codec_mut().set_max_frame_length(inner.cfg.max_frame);
    Ok((conn, framed, rx))
}

/// Takes a freshly established link down when dropped (see [`handshake`]).
struct LinkGuard {
    inner: Arc<Inner>,
    peer: NodeId,
    id: u64,
    armed: bool,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.inner
            .link_down(self.peer, Some(self.id), DownReason::Closed);
    }
}

/// Starts the writer and reader tasks of an established connection.
fn run_connection(inner: Arc<Inner>, conn: ConnHandle, framed: Conn, rx: mpsc::Receiver<Outbound>) {
    let (sink, stream) = framed.split();
    tokio::spawn(writer(inner.clone(), conn.clone(), sink, rx));
    tokio::spawn(reader(inner, conn, stream));
}

/// The writer's frame arena: room for a batch of small frames.
const ARENA: usize = 16 * 1024;

async fn writer(
    inner: Arc<Inner>,
    conn: ConnHandle,
    mut sink: SplitSink<Conn, Bytes>,
    mut rx: mpsc::Receiver<Outbound>,
) {
    let mut enc = VectorEncoder::new(inner.cfg.full_clocks);
    let mut seq = 0u64;
    let mut hb = tokio::time::interval(inner.cfg.heartbeat);
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let name_of = |p: ProcessId| crate::trace::process_name(p);
    let cancel = conn.0.cancel.clone();
    // One encoding buffer, and one arena the frames are cut from: the codec copies each frame
    // into its own buffer and drops it, so the arena's room is reclaimed in place and a frame
    // costs no allocation once the connection is warm.
    let mut buf = Vec::with_capacity(256);
    let mut arena = BytesMut::with_capacity(ARENA);
    'outer: loop {
        let first = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = hb.tick() => None,
            m = rx.recv() => match m { Some(m) => Some(m), None => break },
        };
        let mut batch = 0;
        let mut next = first;
        loop {
            let item = next.take();
            if let Some(o) = &item {
                conn.dequeued(o);
            }
            // The payload goes into the frame buffer as it is, not through `Bytes`.
            let mut payload = Vec::new();
            let body = match item {
                None => Body::Heartbeat,
                Some(Outbound::Message {
                    request,
                    corr,
                    target,
                    tag,
                    stamp,
                    payload: p,
                }) => {
                    payload = p;
                    Body::Message {
                        request,
                        corr,
                        target,
                        tag,
                        stamp: enc.encode(&stamp, &name_of),
                        payload: Bytes::new(),
                    }
                }
                Some(Outbound::Reply {
                    corr,
                    stamp,
                    payload: p,
                }) => {
                    payload = p;
                    Body::Reply {
                        corr,
                        stamp: enc.encode(&stamp, &name_of),
                        payload: Bytes::new(),
                    }
                }
                Some(Outbound::Fail { corr, code }) => Body::Fail { corr, code },
            };
            seq += 1;
            let mut frame = Frame { seq, body };
            buf.clear();
            frame.encode_with_payload(&payload, &mut buf);
            if buf.len() > inner.cfg.max_frame {
                // Too large for the peer: the stamp state moved on, so restart differences;
                // the frame's sender learns why (a requester here, or the peer for a reply),
                // and a heartbeat keeps the sequence numbers in step.
                enc.force_reset();
                let (bytes, cap) = (buf.len(), inner.cfg.max_frame);
                frame.body = match frame.body {
                    Body::Reply { corr, .. } => Body::Fail {
                        corr,
                        code: FailCode::TooLarge,
                    },
                    Body::Message {
                        request: true,
                        corr,
                        ..
                    } => {
                        conn.resolve(corr, Err(RemoteError::TooLarge { bytes, cap }));
                        Body::Heartbeat
                    }
                    _ => {
                        tracing::warn!(target: "actix_coord::net", peer = conn.0.peer, bytes, cap, "tell too large for a frame: dropped");
                        inner.count(&inner.stats.tells_lost);
                        Body::Heartbeat
                    }
                };
                buf.clear();
                frame.encode_into(&mut buf);
            }
            let frame_len = buf.len();
            arena.reserve(buf.len().max(ARENA / 4));
            arena.extend_from_slice(&buf);
            let out = arena.split().freeze();
            if sink.feed(out).await.is_err() {
                break 'outer;
            }
            inner.count(&inner.stats.frames_out);
            if !matches!(frame.body, Body::Heartbeat) {
                inner.count(&inner.stats.messages_out);
                inner
                    .stats
                    .message_bytes_out
                    .fetch_add(frame_len as u64, Ordering::Relaxed);
            }
            batch += 1;
            if batch >= 64 {
                break;
            }
            match rx.try_recv() {
                Ok(m) => next = Some(m),
                Err(_) => break,
            }
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    cancel.cancel();
    // What is still queued is lost: requests fail with `PeerDown` (their pending entries are
    // failed when the link goes down); tells are counted and reported.
    rx.close();
    let mut lost = 0;
    while let Ok(o) = rx.try_recv() {
        if let Outbound::Message { request: false, .. } = o {
            lost += 1;
        }
    }
    if lost > 0 {
        inner.stats.tells_lost.fetch_add(lost, Ordering::Relaxed);
        tracing::warn!(target: "actix_coord::net", peer = conn.0.peer, lost, "tells lost with their connection");
        inner.emit(NodeEvent::TellsLost {
            node: conn.0.peer,
            count: lost,
        });
    }
    let _ = sink.close().await;
}

async fn reader(inner: Arc<Inner>, conn: ConnHandle, mut stream: SplitStream<Conn>) {
    let mut targets = crate::net::wire::TargetCache::new();
    let mut st = ReaderState {
        dec: VectorDecoder::new(),
        in_flight: Arc::new(Semaphore::new(inner.cfg.max_in_flight)),
        in_flight_kib: Arc::new(Semaphore::new(
            (inner.cfg.max_in_flight_bytes / 1024).max(1),
        )),
        now_ms: 0,
        cache: None,
    };
    let mut expected = 1u64;
    let cancel = conn.0.cancel.clone();
    let reason = loop {
        // A frame already buffered needs no timer (the peer is plainly alive): only a reader
        // that has to wait arms the failure detector's deadline, which reads the clock. The
        // timeout still runs from the moment the reader starts waiting, as before.
        if cancel.is_cancelled() {
            break DownReason::Closed;
        }
        let ready = futures_util::FutureExt::now_or_never(stream.next());
        let next = match ready {
            Some(n) => Ok(n),
            None => tokio::select! {
                biased;
                _ = cancel.cancelled() => break DownReason::Closed,
                n = tokio::time::timeout(inner.cfg.failure_timeout, stream.next()) => n,
            },
        };
        let bytes = match next {
            Err(_) => {
                inner.count(&inner.stats.detector_timeouts);
                break DownReason::Timeout;
            }
            Ok(None) => break DownReason::Closed,
            Ok(Some(Err(e))) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    inner.count(&inner.stats.oversized_frames);
                    break DownReason::Protocol;
                }
                break DownReason::Closed;
            }
            Ok(Some(Ok(b))) => b.freeze(),
        };
        inner.count(&inner.stats.frames_in);
        let frame = match Frame::decode_with(&bytes, &mut targets) {
            Ok(f) => f,
            Err(e) => {
                inner.count(&inner.stats.decode_errors);
                tracing::debug!(target: "actix_coord::net", error = %e, "undecodable frame");
                break DownReason::Protocol;
            }
        };
        if frame.seq != expected {
            inner.count(&inner.stats.sequence_gaps);
            tracing::warn!(target: "actix_coord::net", peer = conn.0.peer, got = frame.seq, expected, "sequence gap");
            break DownReason::SequenceGap;
        }
        expected += 1;
        match dispatch(&inner, &conn, &mut st, frame.body) {
            Err(reason) => break reason,
            Ok(None) => {}
            Ok(Some(mut busy)) => {
                // Backpressure: read nothing more until the actor takes the message.
                // First let the actor run (it may share this thread), then sleep with backoff.
                let mut tries = 0u32;
                let mut wait = Duration::from_millis(1);
                loop {
                    match busy() {
                        Retry::Done | Retry::Closed => break,
                        Retry::Again => {}
                    }
                    tries += 1;
                    if tries <= 64 {
                        tokio::task::yield_now().await;
                        if cancel.is_cancelled() {
                            break;
                        }
                        continue;
                    }
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_millis(10));
                }
                if cancel.is_cancelled() {
                    break DownReason::Closed;
                }
            }
        }
    };
    inner.link_down(conn.0.peer, Some(conn.0.id), reason);
    cancel.cancel();
}

/// What a connection's reader keeps between frames.
struct ReaderState {
    dec: VectorDecoder,
    in_flight: Arc<Semaphore>,
    /// Payload KiB of requests in flight (rounded up per request).
    in_flight_kib: Arc<Semaphore>,
    /// Physical time last read; refreshed only when a stamp looks too far ahead of it.
    now_ms: u64,
    /// The last target looked up, with the registration generation it was read at.
    cache: Option<(Arc<str>, ActorTable, u64)>,
}

impl ReaderState {
    /// Whether the stamp's HLC is within the maximum offset of physical time. The cached time
    /// only lags, so it can only make a stamp look ahead; then the clock is read again.
    fn hlc_ok(&mut self, max_offset_ms: u64, stamp: &Stamp) -> bool {
        let Some(h) = stamp.hlc else { return true };
        if h.physical_ms() <= self.now_ms.saturating_add(max_offset_ms) {
            return true;
        }
        self.now_ms = intercept::physical_now_ms();
        h.physical_ms() <= self.now_ms.saturating_add(max_offset_ms)
    }

    fn table(&mut self, inner: &Inner, target: &Arc<str>) -> Option<ActorTable> {
        let generation = inner.actors_gen.load(Ordering::Acquire);
        if let Some((t, table, g)) = &self.cache
            && *g == generation
            && t == target
        {
            return Some(table.clone());
        }
        let table = inner
            .actors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&**target)
            .cloned()?;
        self.cache = Some((target.clone(), table.clone(), generation));
        Some(table)
    }
}

/// A stamp whose HLC is beyond the maximum offset ahead of physical time keeps its Lamport and
/// vector clocks but loses its HLC: the local HLC must not jump ahead with it, and the message
/// must not be lost either (it may be a lock release, a token or the clock correction that
/// would bring its sender back in line). Counted in `clock_rejected` and logged.
fn hlc_bounded(
    inner: &Inner,
    conn: &ConnHandle,
    st: &mut ReaderState,
    max_offset_ms: u64,
    mut stamp: Stamp,
) -> Stamp {
    if !st.hlc_ok(max_offset_ms, &stamp) {
        inner.count(&inner.stats.clock_rejected);
        tracing::warn!(target: "actix_coord::net", peer = conn.0.peer, hlc = ?stamp.hlc, max_offset_ms, "HLC beyond the maximum offset: delivered without it");
        stamp.hlc = None;
    }
    stamp
}

/// Counts and reports a frame whose sender process is not on the authenticated peer's node.
fn spoofed(inner: &Inner, conn: &ConnHandle, from: ProcessId) {
    inner.count(&inner.stats.spoofed_frames);
    tracing::warn!(target: "actix_coord::net", peer = conn.0.peer, claimed = %from, "frame from a process of another node: refused");
}

/// Registers the names of remote processes (the peer's own, and those of other nodes whose
/// clocks it carries: every log must name a process the same way). The first name known for a
/// process wins, so a peer cannot rename local processes (or others already known) in this
/// node's logs.
fn learn_names(names: &[(ProcessId, String)]) {
    for (p, n) in names {
        if crate::trace::process_name(*p).is_none() {
            crate::trace::register_name(*p, crate::intercept::process::sanitize_name(n));
        }
    }
}

/// A tell waiting for room in its actor's mailbox (or for its actor to be registered).
type Busy = Box<dyn FnMut() -> Retry + Send>;

/// A tell to `target`, not registered yet, during the registration grace: retried (in order,
/// the connection reading nothing else) until the actor is registered, then delivered as usual;
/// dropped and counted once `until` passes.
fn wait_for_actor(
    inner: &Arc<Inner>,
    target: Arc<str>,
    tag: u64,
    payload: Bytes,
    stamp: Stamp,
    until: tokio::time::Instant,
) -> Busy {
    let inner = inner.clone();
    let mut message = Some((payload, stamp));
    let mut then: Option<Busy> = None;
    Box::new(move || {
        if let Some(retry) = then.as_mut() {
            return retry();
        }
        let table = inner
            .actors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&*target)
            .cloned();
        let Some(table) = table else {
            if tokio::time::Instant::now() < until {
                return Retry::Again;
            }
            inner.count(&inner.stats.unknown_actor);
            return Retry::Done;
        };
        let Some((payload, stamp)) = message.take() else {
            return Retry::Done;
        };
        let Some(handler) = table.get(&tag) else {
            inner.count(&inner.stats.unknown_type);
            return Retry::Done;
        };
        match handler(payload, stamp, false) {
            Ok(Handled::Busy(retry)) => {
                then = Some(retry);
                Retry::Again
            }
            Ok(_) => Retry::Done,
            Err(_) => {
                inner.count(&inner.stats.decode_errors);
                Retry::Done
            }
        }
    })
}

/// Handles one in-order frame. `Err` closes the connection; `Ok(Some(busy))` asks the reader to
/// retry a delivery before reading on.
fn dispatch(
    inner: &Arc<Inner>,
    conn: &ConnHandle,
    st: &mut ReaderState,
    body: Body,
) -> Result<Option<Busy>, DownReason> {
    let max_offset = inner.cfg.max_offset_ms;
    let fail = |corr: u64, request: bool, code: FailCode| {
        if request {
            let _ = conn.enqueue(Outbound::Fail { corr, code });
        }
    };
    match body {
        Body::Heartbeat => {}
        Body::Message {
            request,
            corr,
            target,
            tag,
            stamp,
            payload,
        } => {
            if stamp.from.node != conn.0.peer {
                spoofed(inner, conn, stamp.from);
                fail(corr, request, FailCode::Forbidden);
                return Ok(None);
            }
            learn_names(&stamp.names);
            let stamp = st.dec.decode(&stamp).map_err(|_| {
                inner.count(&inner.stats.decode_errors);
                DownReason::Protocol
            })?;
            let stamp = hlc_bounded(inner, conn, st, max_offset, stamp);
            let Some(table) = st.table(inner, &target) else {
                let until = inner.started + inner.cfg.registration_grace;
                if !request && tokio::time::Instant::now() < until {
                    inner.count(&inner.stats.registration_waits);
                    return Ok(Some(wait_for_actor(
                        inner, target, tag, payload, stamp, until,
                    )));
                }
                inner.count(&inner.stats.unknown_actor);
                fail(corr, request, FailCode::UnknownActor);
                return Ok(None);
            };
            let Some(handler) = table.get(&tag) else {
                inner.count(&inner.stats.unknown_type);
                fail(corr, request, FailCode::UnknownType);
                return Ok(None);
            };
            let permit = if request {
                let kib = u32::try_from(payload.len().div_ceil(1024)).unwrap_or(u32::MAX);
                match (
                    st.in_flight.clone().try_acquire_owned(),
                    st.in_flight_kib.clone().try_acquire_many_owned(kib),
                ) {
                    (Ok(p), Ok(b)) => Some((p, b)),
                    _ => {
                        fail(corr, request, FailCode::Overloaded);
                        return Ok(None);
                    }
                }
            } else {
                None
            };
            match handler(payload, stamp, request) {
                Err(FailCode::Mailbox) => fail(corr, request, FailCode::Mailbox),
                Err(code) => {
                    inner.count(&inner.stats.decode_errors);
                    fail(corr, request, code);
                }
                Ok(Handled::Delivered) => {}
                Ok(Handled::Busy(retry)) => {
                    inner.count(&inner.stats.backpressure_waits);
                    return Ok(Some(retry));
                }
                Ok(Handled::Reply(fut)) => {
                    let conn = conn.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let o = match fut.await {
                            Ok((payload, stamp)) => Outbound::Reply {
                                corr,
                                stamp,
                                payload,
                            },
                            Err(code) => Outbound::Fail { corr, code },
                        };
                        let _ = conn.enqueue(o);
                    });
                }
            }
        }
        Body::Reply {
            corr,
            stamp,
            payload,
        } => {
            if stamp.from.node != conn.0.peer {
                spoofed(inner, conn, stamp.from);
                conn.resolve(corr, Err(RemoteError::Forbidden));
                return Ok(None);
            }
            learn_names(&stamp.names);
            let stamp = st.dec.decode(&stamp).map_err(|_| {
                inner.count(&inner.stats.decode_errors);
                DownReason::Protocol
            })?;
            let stamp = hlc_bounded(inner, conn, st, max_offset, stamp);
            conn.resolve(corr, Ok((payload, stamp)));
        }
        Body::Fail { corr, code } => {
            let e = match code {
                FailCode::UnknownActor => RemoteError::UnknownActor(String::new()),
                FailCode::UnknownType => RemoteError::UnknownType,
                FailCode::Decode => RemoteError::Decode("rejected by the peer".into()),
                FailCode::Mailbox => RemoteError::Mailbox,
                FailCode::ClockRejected => RemoteError::ClockRejected,
                FailCode::Encode => RemoteError::Encode("result unencodable".into()),
                FailCode::Overloaded => RemoteError::Overloaded,
                FailCode::TooLarge => RemoteError::TooLarge {
                    bytes: 0,
                    cap: inner.cfg.max_frame,
                },
                FailCode::Forbidden => RemoteError::Forbidden,
            };
            conn.resolve(corr, Err(e));
        }
    }
    Ok(None)
}
