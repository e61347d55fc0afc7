//! Delivery of a decoded frame to its local actor, and the registration grace for actors not registered yet.

use super::*;
use crate::net::handlers::ReplyTo;

/// A tell waiting for room in its actor's mailbox (or for its actor to be registered).
pub(super) type Busy = Box<dyn FnMut() -> Retry + Send>;

/// A tell to `target`, not registered yet, during the registration grace: retried (in order,
/// the connection reading nothing else) until the actor is registered, then delivered as usual;
/// dropped and counted once `until` passes.
pub(super) fn wait_for_actor(
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
        match handler(payload, stamp, None) {
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

/// A peer's stamp (its sender already checked to be on the peer's node) as this node takes it:
/// the process names it carries learned, its differential vector decoded against the
/// connection's bases (a stamp that does not decode closes the connection), its HLC dropped if
/// beyond the maximum offset.
fn accept_stamp(
    inner: &Inner,
    conn: &ConnHandle,
    st: &mut ReaderState,
    stamp: &wire::WireStamp,
) -> Result<Stamp, DownReason> {
    learn_names(&stamp.names);
    let stamp = st.dec.decode(stamp).map_err(|_| {
        inner.count(&inner.stats.decode_errors);
        DownReason::Protocol
    })?;
    Ok(hlc_bounded(inner, conn, st, inner.cfg.max_offset_ms, stamp))
}

/// Handles one in-order frame. `Err` closes the connection; `Ok(Some(busy))` asks the reader to
/// retry a delivery before reading on.
pub(super) fn dispatch(
    inner: &Arc<Inner>,
    conn: &ConnHandle,
    st: &mut ReaderState,
    body: Body,
) -> Result<Option<Busy>, DownReason> {
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
            let wire_stamp = stamp;
            let stamp = accept_stamp(inner, conn, st, &wire_stamp)?;
            st.targets.recycle(wire_stamp);
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
            // A request's reply goes straight onto this connection when the actor answers,
            // holding its share of the in-flight bounds until then.
            let reply: Option<ReplyTo> = if request {
                let kib = u32::try_from(payload.len().div_ceil(1024)).unwrap_or(u32::MAX);
                match (
                    st.in_flight.clone().try_acquire_owned(),
                    st.in_flight_kib.clone().try_acquire_many_owned(kib),
                ) {
                    (Ok(p), Ok(b)) => {
                        let conn = conn.clone();
                        Some(Box::new(move |r| {
                            let _permits = (p, b);
                            let o = match r {
                                Ok((payload, stamp)) => Outbound::Reply {
                                    corr,
                                    stamp,
                                    payload,
                                },
                                Err(code) => Outbound::Fail { corr, code },
                            };
                            let _ = conn.enqueue(o);
                        }))
                    }
                    _ => {
                        fail(corr, request, FailCode::Overloaded);
                        return Ok(None);
                    }
                }
            } else {
                None
            };
            match handler(payload, stamp, reply) {
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
            let wire_stamp = stamp;
            let stamp = accept_stamp(inner, conn, st, &wire_stamp)?;
            st.targets.recycle(wire_stamp);
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
