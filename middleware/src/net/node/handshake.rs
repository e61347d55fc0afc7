//! Connections being established: the flood guard on accepted ones, the accept and dial loops, and the handshake (security layer, then `Hello`).

use super::*;

/// Connections accepted and not authenticated yet, oldest first.
#[derive(Default)]
pub(super) struct PendingHandshakes {
    next: u64,
    entries: std::collections::VecDeque<PendingEntry>,
}

pub(super) struct PendingEntry {
    id: u64,
    source: String,
    /// Set once the connection has sent its first byte.
    active: Arc<std::sync::atomic::AtomicBool>,
    cancel: CancellationToken,
}

/// A newly admitted pending handshake.
pub(super) struct Admitted {
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
pub(super) fn source_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, _)) => host,
        None => addr,
    }
}

/// An accepted stream that notes when its first byte arrives (the flood guard's idle test).
pub(super) struct Watched {
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

pub(super) type Conn = Framed<BoxStream, LengthDelimitedCodec>;

pub(super) async fn accept_loop(inner: Arc<Inner>, mut listener: Box<dyn Listener>) {
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

pub(super) fn note_handshake_failure(inner: &Inner, e: &HandshakeError) {
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

pub(super) async fn dial_loop(inner: Arc<Inner>, peer: NodeId) {
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

pub(super) async fn recv_handshake(framed: &mut Conn) -> Result<Handshake, HandshakeError> {
    match framed.next().await {
        None => Err(HandshakeError::Eof),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(b)) => Ok(Handshake::decode(&b)?),
    }
}

pub(super) async fn send_handshake(framed: &mut Conn, h: Handshake) -> Result<(), HandshakeError> {
    framed.send(Bytes::from(h.encode())).await?;
    Ok(())
}

/// Runs the handshake on a new stream; `expected` is the peer a dialer meant to reach.
///
/// First the security layer (mutual TLS or Noise, see [`secure`]), then inside it each side's
/// `Hello`; the id a peer claims must be the one its proof allows (its certificate's) and a
/// configured member; the acceptor then decides whether the connection becomes the link.
pub(super) async fn handshake(
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
pub(super) struct LinkGuard {
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
