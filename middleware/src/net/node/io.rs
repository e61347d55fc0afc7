//! An established connection's tasks: the writer (frames batched per write) and the reader (frames decoded, stamps checked).

use super::*;

/// Starts the writer and reader tasks of an established connection.
pub(super) fn run_connection(
    inner: Arc<Inner>,
    conn: ConnHandle,
    framed: Conn,
    rx: mpsc::Receiver<Outbound>,
) {
    let (sink, stream) = framed.split();
    tokio::spawn(writer(inner.clone(), conn.clone(), sink, rx));
    tokio::spawn(reader(inner, conn, stream));
}

/// The writer's frame arena: room for a batch of small frames.
pub(super) const ARENA: usize = 16 * 1024;

pub(super) async fn writer(
    inner: Arc<Inner>,
    conn: ConnHandle,
    mut sink: SplitSink<Conn, Bytes>,
    mut rx: mpsc::Receiver<Outbound>,
) {
    let mut enc = VectorEncoder::new(inner.cfg.full_clocks);
    let mut seq = 0u64;
    let mut hb = tokio::time::interval(inner.cfg.heartbeat);
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let name_of = |p: ProcessId| crate::ticks::process_name(p);
    let cancel = conn.0.cancel.clone();
    // One encoding buffer, and one arena the frames are cut from: the codec copies each frame
    // into its own buffer and drops it, so the arena's room is reclaimed in place and a frame
    // costs no allocation once the connection is warm.
    let mut buf = Vec::with_capacity(256);
    let mut arena = BytesMut::with_capacity(ARENA);
    // One cancellation future for the connection's life: made per wait, it cost a waiter's
    // registration and removal every time the writer woke.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    'outer: loop {
        // Queued frames before the heartbeat: any frame tells the peer this node is alive, so
        // the heartbeat's timer is only looked at when there is nothing to send.
        let first = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            m = rx.recv() => match m { Some(m) => Some(m), None => break },
            _ = hb.tick() => None,
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
            match frame.body {
                Body::Heartbeat => {}
                body => {
                    inner.count(&inner.stats.messages_out);
                    inner
                        .stats
                        .message_bytes_out
                        .fetch_add(frame_len as u64, Ordering::Relaxed);
                    // The stamp's difference vector serves the next stamp's (no allocation).
                    if let Body::Message { stamp, .. } | Body::Reply { stamp, .. } = body {
                        enc.recycle(stamp);
                    }
                }
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

pub(super) async fn reader(inner: Arc<Inner>, conn: ConnHandle, mut stream: SplitStream<Conn>) {
    let mut st = ReaderState {
        dec: VectorDecoder::new(),
        in_flight: Arc::new(Semaphore::new(inner.cfg.max_in_flight)),
        in_flight_kib: Arc::new(Semaphore::new(
            (inner.cfg.max_in_flight_bytes / 1024).max(1),
        )),
        now_ms: 0,
        cache: None,
        targets: crate::net::wire::TargetCache::new(),
    };
    let mut expected = 1u64;
    let cancel = conn.0.cancel.clone();
    // The failure detector's deadline: one timer for the connection's life, moved only when it
    // fires early (a timer per wait cost a timer-wheel entry and its removal per frame).
    let timeout = inner.cfg.failure_timeout;
    let mut deadline = Box::pin(tokio::time::sleep(timeout));
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let reason = loop {
        // A frame already buffered needs no timer (the peer is plainly alive): only a reader
        // that has to wait reads the clock, and the timeout runs from the moment it starts
        // waiting.
        if cancel.is_cancelled() {
            break DownReason::Closed;
        }
        let ready = futures_util::FutureExt::now_or_never(stream.next());
        let next = match ready {
            Some(n) => Ok(n),
            None => {
                let due = tokio::time::Instant::now() + timeout;
                loop {
                    tokio::select! {
                        biased;
                        _ = &mut cancelled => break Err(None),
                        n = stream.next() => break Ok(n),
                        _ = &mut deadline => {
                            if tokio::time::Instant::now() >= due {
                                break Err(Some(()));
                            }
                            deadline.as_mut().reset(due);
                        }
                    }
                }
            }
        };
        let next = match next {
            Err(None) => break DownReason::Closed,
            Err(Some(())) => Err(()),
            Ok(n) => Ok(n),
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
        let frame = match Frame::decode_with(&bytes, &mut st.targets) {
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
                        _ = &mut cancelled => break,
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
pub(super) struct ReaderState {
    pub(super) dec: VectorDecoder,
    pub(super) in_flight: Arc<Semaphore>,
    /// Payload KiB of requests in flight (rounded up per request).
    pub(super) in_flight_kib: Arc<Semaphore>,
    /// Physical time last read; refreshed only when a stamp looks too far ahead of it.
    now_ms: u64,
    /// The last target looked up, with the registration generation it was read at.
    cache: Option<(Arc<str>, ActorTable, u64)>,
    /// Target names met last, and a spare vector for the next stamp (decoding without
    /// allocating).
    pub(super) targets: crate::net::wire::TargetCache,
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

    pub(super) fn table(&mut self, inner: &Inner, target: &Arc<str>) -> Option<ActorTable> {
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
pub(super) fn hlc_bounded(
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
pub(super) fn spoofed(inner: &Inner, conn: &ConnHandle, from: ProcessId) {
    inner.count(&inner.stats.spoofed_frames);
    tracing::warn!(target: "actix_coord::net", peer = conn.0.peer, claimed = %from, "frame from a process of another node: refused");
}

/// Registers the names of remote processes (the peer's own, and those of other nodes whose
/// clocks it carries: every log must name a process the same way). The first name known for a
/// process wins, so a peer cannot rename local processes (or others already known) in this
/// node's logs.
pub(super) fn learn_names(names: &[(ProcessId, String)]) {
    for (p, n) in names {
        if crate::ticks::process_name(*p).is_none() {
            crate::ticks::register_name(*p, crate::intercept::process::sanitize_name(n));
        }
    }
}
