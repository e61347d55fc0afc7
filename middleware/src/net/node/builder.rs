//! [`NodeBuilder`]: a node's settings, and its start (listener, dialers, failure detector).

use super::*;

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
    /// [`node_dns_name`](crate::net::node_dns_name)). Exactly one of `secret` and `tls` must be set.
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

    /// Default timeout of [`RemoteAddr::send`](crate::net::RemoteAddr::send) (default 5 s).
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
