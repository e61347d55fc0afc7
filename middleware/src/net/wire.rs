//! The wire format: handshake messages, frames, clock stamps and payloads. All encoding of the
//! transport lives here.
//!
//! Every message travels in one length-delimited frame (a 4-byte big-endian length, then the
//! body; see `tokio_util::codec::LengthDelimitedCodec`). Bodies use the varints of
//! [`clock::encoding`](crate::clock::encoding); payloads (message values and results) use bincode 2
//! with serde, with an allocation limit.
//!
//! # Handshake (frames of at most [`MAX_HANDSHAKE_FRAME`] bytes)
//! Sent inside the secured connection (mutual TLS 1.3 or Noise with the cluster's pre-shared
//! key, see `secure`): both sides send a `Hello`, the acceptor answers with a `Welcome`.
//!
//! | message | layout |
//! |---|---|
//! | `Hello` | `1`, magic `ACRD`, version varint, node id varint, incarnation u64 LE |
//! | `Welcome` | `3`, `1` accepted or `0` duplicate connection |
//!
//! # Frames (after authentication)
//! `kind` byte, `seq` varint (1, 2, 3, … per connection and direction), then by kind:
//!
//! | kind | rest |
//! |---|---|
//! | 0 heartbeat | — |
//! | 1 tell, 2 request | corr varint, target (len varint ≤ 255, UTF-8), type tag u64 LE, stamp, payload |
//! | 3 reply | corr varint, stamp, payload |
//! | 4 fail | corr varint, [`FailCode`] byte |
//!
//! A stamp is the sender process (two varints), its Lamport time (varint ≤
//! [`MAX_ACCEPTED_COUNTER`] on receipt), a flags byte (`1` vector present, `2` vector is full rather than a
//! difference, `4` HLC present, `8` reset the receiver's difference bases first), the vector
//! clock (clock encoding) and the HLC (8 bytes LE) when present, then the process names the
//! receiver has not been told yet (count varint ≤ [`MAX_NAMES_PER_FRAME`], each a process id and a
//! name of at most [`MAX_NAME_LEN`] bytes). The payload is the rest of the frame.
//!
//! # Differential vector clocks (Singhal–Kshemkalyani)
//! On each connection the sender remembers, per sending process, the vector it last sent
//! ([`VectorEncoder`]); it sends only the entries that grew since, and the receiver
//! ([`VectorDecoder`]) rebuilds the clock from its own copy. TCP keeps frames in order, and a new
//! connection starts both sides afresh. When a process's clock does not dominate the last one
//! sent (replies may leave in a different order than they were stamped), or the table is full, or
//! full clocks are configured, the whole clock is sent.
//!
//! Decoding never panics and never allocates more than the input or a fixed limit justifies.

use crate::clock::encoding::{Decode, Encode, get_varint, put_varint};
use crate::clock::{DecodeError, HlcTimestamp, MAX_ACCEPTED_COUNTER, ProcessId, VectorClock};
use crate::intercept::Stamp;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

/// Protocol version sent in the handshake; a peer with another version is refused.
pub const PROTOCOL_VERSION: u64 = 2;
/// Magic bytes at the start of a `Hello`.
pub const MAGIC: [u8; 4] = *b"ACRD";
/// Largest handshake frame.
pub const MAX_HANDSHAKE_FRAME: usize = 256;
/// Default cap on a frame's length (8 MiB).
pub const DEFAULT_MAX_FRAME: usize = 8 << 20;
/// Longest target actor name.
pub const MAX_TARGET_LEN: usize = 255;
/// Longest process name announced on the wire.
pub const MAX_NAME_LEN: usize = 128;
/// Most process names announced in one frame.
pub const MAX_NAMES_PER_FRAME: usize = 64;
/// Most entries of a vector clock accepted from a peer (a whole clock, or a difference base
/// after a difference is merged into it). A stamp beyond it is a decode error: the frame is
/// refused and the connection closed, so a peer cannot grow this node's stored bases without
/// bound.
pub const MAX_VECTOR_ENTRIES: usize = 4096;
/// Most per-process difference bases kept per connection and direction.
pub const MAX_VECTOR_BASES: usize = 1024;
/// Largest payload bincode may claim to allocate (16 MiB).
pub const PAYLOAD_LIMIT: usize = 16 << 20;

/// Why bytes from a peer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A clock, varint or process id is malformed.
    #[error("bad clock or varint: {0}")]
    Clock(#[from] DecodeError),
    /// The frame ended before a fixed-size field.
    #[error("frame truncated")]
    Truncated,
    /// Unknown frame or handshake kind byte.
    #[error("unknown kind {0}")]
    UnknownKind(u8),
    /// A `Hello` without the magic bytes.
    #[error("bad magic")]
    BadMagic,
    /// A name or target is not UTF-8 or is too long.
    #[error("bad name or target")]
    BadName,
    /// Too many names announced in one frame.
    #[error("too many names in one frame")]
    TooManyNames,
    /// A Lamport time above [`MAX_ACCEPTED_COUNTER`].
    #[error("absurd Lamport time {0}")]
    AbsurdCounter(u64),
    /// A flags byte with unknown bits or a contradiction.
    #[error("bad stamp flags {0:#x}")]
    BadFlags(u8),
    /// A differential vector clock for a process the receiver has no base for.
    #[error("difference for process {0} without a base")]
    MissingBase(ProcessId),
    /// More difference bases than [`MAX_VECTOR_BASES`].
    #[error("too many vector clock bases")]
    TooManyBases,
    /// A vector clock (whole, or a base grown by a difference) holds more than
    /// [`MAX_VECTOR_ENTRIES`] entries.
    #[error("vector clock above {MAX_VECTOR_ENTRIES} entries")]
    TooManyEntries,
    /// Bytes after a complete handshake message or fail frame.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// An unknown failure code.
    #[error("unknown failure code {0}")]
    UnknownFailCode(u8),
    /// The payload is not a valid bincode encoding of the expected type.
    #[error("payload: {0}")]
    Payload(String),
}

// ---------------------------------------------------------------------------------------------
// Payloads.

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<PAYLOAD_LIMIT>()
}

/// Encodes a message or result with bincode 2.
///
/// # Errors
/// [`WireError::Payload`] when the value cannot be serialized (e.g. a map with non-string keys
/// is fine, but a serializer error from a custom impl is reported).
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| WireError::Payload(e.to_string()))
}

/// Decodes a message or result; the whole input must be used.
///
/// # Errors
/// [`WireError::Payload`] for invalid input, [`WireError::TrailingBytes`] for leftovers.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (v, used) = bincode::serde::decode_from_slice(bytes, bincode_config())
        .map_err(|e| WireError::Payload(e.to_string()))?;
    if used != bytes.len() {
        return Err(WireError::TrailingBytes(bytes.len() - used));
    }
    Ok(v)
}

/// The 64-bit tag of a message type name (FNV-1a), as carried in frames.
pub const fn type_tag(name: &str) -> u64 {
    let b = name.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

// ---------------------------------------------------------------------------------------------
// Handshake.

/// A handshake message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// First message of each side.
    Hello {
        /// Protocol version of the sender.
        version: u64,
        /// Sender's node id.
        node: u32,
        /// Sender's incarnation (changes at each start of the node).
        incarnation: u64,
    },
    /// The accepting side's decision.
    Welcome {
        /// `false` when the connection duplicates one already kept.
        accepted: bool,
    },
}

impl Handshake {
    /// Encodes the message as a frame body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Handshake::Hello {
                version,
                node,
                incarnation,
            } => {
                out.push(1);
                out.extend_from_slice(&MAGIC);
                put_varint(&mut out, *version);
                put_varint(&mut out, u64::from(*node));
                out.extend_from_slice(&incarnation.to_le_bytes());
            }
            Handshake::Welcome { accepted } => {
                out.push(3);
                out.push(u8::from(*accepted));
            }
        }
        out
    }

    /// Decodes a handshake frame body.
    ///
    /// # Errors
    /// A [`WireError`] for anything but one well-formed message.
    pub fn decode(mut input: &[u8]) -> Result<Self, WireError> {
        let kind = take_u8(&mut input)?;
        let msg = match kind {
            1 => {
                if take::<4>(&mut input)? != MAGIC {
                    return Err(WireError::BadMagic);
                }
                let version = get_varint(&mut input)?;
                let node = get_varint(&mut input)?;
                let node = u32::try_from(node).map_err(|_| DecodeError::IdOutOfRange(node))?;
                let incarnation = u64::from_le_bytes(take::<8>(&mut input)?);
                Handshake::Hello {
                    version,
                    node,
                    incarnation,
                }
            }
            3 => match take_u8(&mut input)? {
                0 => Handshake::Welcome { accepted: false },
                1 => Handshake::Welcome { accepted: true },
                b => return Err(WireError::UnknownKind(b)),
            },
            k => return Err(WireError::UnknownKind(k)),
        };
        if !input.is_empty() {
            return Err(WireError::TrailingBytes(input.len()));
        }
        Ok(msg)
    }
}

fn take_u8(input: &mut &[u8]) -> Result<u8, WireError> {
    let (&b, rest) = input.split_first().ok_or(WireError::Truncated)?;
    *input = rest;
    Ok(b)
}

fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], WireError> {
    let (head, rest) = input.split_first_chunk::<N>().ok_or(WireError::Truncated)?;
    *input = rest;
    Ok(*head)
}

fn take_str(input: &mut &[u8], max: usize) -> Result<String, WireError> {
    take_str_ref(input, max).map(str::to_owned)
}

/// A length-prefixed UTF-8 string, borrowed from the input.
fn take_str_ref<'a>(input: &mut &'a [u8], max: usize) -> Result<&'a str, WireError> {
    let len = get_varint(input)?;
    if len > max as u64 || len > input.len() as u64 {
        return Err(WireError::BadName);
    }
    let (s, rest) = input.split_at(len as usize);
    *input = rest;
    std::str::from_utf8(s).map_err(|_| WireError::BadName)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Frames.

/// Why a remote peer could not run a message; sent back in a fail frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FailCode {
    /// No actor is registered under the target name.
    UnknownActor = 1,
    /// The actor does not accept the message type.
    UnknownType = 2,
    /// The payload could not be decoded as the message type.
    Decode = 3,
    /// The actor stopped or dropped the request.
    Mailbox = 4,
    /// The stamp was refused (not sent by nodes of this version: a stamp whose HLC is beyond
    /// the maximum offset is delivered without its HLC).
    ClockRejected = 5,
    /// The result could not be encoded.
    Encode = 6,
    /// Too many requests in flight at the peer.
    Overloaded = 7,
    /// The message or its result is larger than the frame cap.
    TooLarge = 8,
    /// The frame's sender process is not on the authenticated peer's node.
    Forbidden = 9,
}

impl FailCode {
    fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            1 => Self::UnknownActor,
            2 => Self::UnknownType,
            3 => Self::Decode,
            4 => Self::Mailbox,
            5 => Self::ClockRejected,
            6 => Self::Encode,
            7 => Self::Overloaded,
            8 => Self::TooLarge,
            9 => Self::Forbidden,
            b => return Err(WireError::UnknownFailCode(b)),
        })
    }
}

/// How a stamp's vector clock is carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireVector {
    /// The sender keeps no vector clock.
    Absent,
    /// The whole clock.
    Full(VectorClock),
    /// Only the entries that grew since the last clock this process sent on this connection.
    Delta(VectorClock),
}

/// A stamp as carried in a frame (its vector possibly differential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireStamp {
    /// Sending process.
    pub from: ProcessId,
    /// Lamport time at the send.
    pub lamport: u64,
    /// The vector clock, whole or as a difference.
    pub vector: WireVector,
    /// HLC timestamp at the send.
    pub hlc: Option<HlcTimestamp>,
    /// Whether the receiver must forget its difference bases before this stamp.
    pub reset: bool,
    /// Names of processes the receiver has not been told yet.
    pub names: Vec<(ProcessId, String)>,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Per-connection sequence number (from 1).
    pub seq: u64,
    /// What the frame carries.
    pub body: Body,
}

/// The content of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Keeps the failure detector quiet.
    Heartbeat,
    /// A message for a named actor.
    Message {
        /// Whether a reply is expected.
        request: bool,
        /// Correlation id of the request (0 for tells).
        corr: u64,
        /// Registered actor name.
        target: Arc<str>,
        /// Message type tag ([`type_tag`]).
        tag: u64,
        /// The sender's clocks.
        stamp: WireStamp,
        /// bincode-encoded message.
        payload: Bytes,
    },
    /// The result of a request.
    Reply {
        /// Correlation id of the request.
        corr: u64,
        /// The responder's clocks at its reply event.
        stamp: WireStamp,
        /// bincode-encoded result.
        payload: Bytes,
    },
    /// A request that could not be run.
    Fail {
        /// Correlation id of the request.
        corr: u64,
        /// Why.
        code: FailCode,
    },
}

const F_VECTOR: u8 = 1;
const F_FULL: u8 = 2;
const F_HLC: u8 = 4;
const F_RESET: u8 = 8;

impl Frame {
    /// Encodes the frame body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the frame body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_parts(None, out);
    }

    /// Appends the frame body to `out` with `payload` as the payload of a message or a reply
    /// (their own `payload` field is not read): the sender's encoded value goes in without
    /// first becoming [`Bytes`].
    pub fn encode_with_payload(&self, payload: &[u8], out: &mut Vec<u8>) {
        self.encode_parts(Some(payload), out);
    }

    fn encode_parts(&self, payload_here: Option<&[u8]>, out: &mut Vec<u8>) {
        let kind = match &self.body {
            Body::Heartbeat => 0,
            Body::Message { request: false, .. } => 1,
            Body::Message { request: true, .. } => 2,
            Body::Reply { .. } => 3,
            Body::Fail { .. } => 4,
        };
        out.push(kind);
        put_varint(out, self.seq);
        match &self.body {
            Body::Heartbeat => {}
            Body::Message {
                corr,
                target,
                tag,
                stamp,
                payload,
                ..
            } => {
                put_varint(out, *corr);
                put_str(out, target);
                out.extend_from_slice(&tag.to_le_bytes());
                encode_stamp(out, stamp);
                out.extend_from_slice(payload_here.unwrap_or(payload));
            }
            Body::Reply {
                corr,
                stamp,
                payload,
            } => {
                put_varint(out, *corr);
                encode_stamp(out, stamp);
                out.extend_from_slice(payload_here.unwrap_or(payload));
            }
            Body::Fail { corr, code } => {
                put_varint(out, *corr);
                out.push(*code as u8);
            }
        }
    }

    /// Decodes a frame body. `body` is shared, not copied, for the payload.
    ///
    /// # Errors
    /// A [`WireError`] saying what is malformed.
    pub fn decode(body: &Bytes) -> Result<Frame, WireError> {
        Self::decode_inner(body, None)
    }

    /// [`decode`](Self::decode), with the target names a connection's frames name kept in
    /// `targets`: a frame that names one of them again shares it instead of allocating.
    ///
    /// # Errors
    /// A [`WireError`] saying what is malformed.
    pub fn decode_with(body: &Bytes, targets: &mut TargetCache) -> Result<Frame, WireError> {
        Self::decode_inner(body, Some(targets))
    }

    fn decode_inner(
        body: &Bytes,
        mut targets: Option<&mut TargetCache>,
    ) -> Result<Frame, WireError> {
        let mut input: &[u8] = body;
        let kind = take_u8(&mut input)?;
        let seq = get_varint(&mut input)?;
        let body_out = match kind {
            0 => {
                if !input.is_empty() {
                    return Err(WireError::TrailingBytes(input.len()));
                }
                Body::Heartbeat
            }
            1 | 2 => {
                let corr = get_varint(&mut input)?;
                let name = take_str_ref(&mut input, MAX_TARGET_LEN)?;
                let target = match targets.as_deref_mut() {
                    Some(cache) => cache.get(name),
                    None => Arc::from(name),
                };
                let tag = u64::from_le_bytes(take::<8>(&mut input)?);
                let spare = targets.and_then(|c| c.spare.take());
                let stamp = decode_stamp(&mut input, spare)?;
                let payload = body.slice(body.len() - input.len()..);
                Body::Message {
                    request: kind == 2,
                    corr,
                    target,
                    tag,
                    stamp,
                    payload,
                }
            }
            3 => {
                let corr = get_varint(&mut input)?;
                let spare = targets.and_then(|c| c.spare.take());
                let stamp = decode_stamp(&mut input, spare)?;
                let payload = body.slice(body.len() - input.len()..);
                Body::Reply {
                    corr,
                    stamp,
                    payload,
                }
            }
            4 => {
                let corr = get_varint(&mut input)?;
                let code = FailCode::from_u8(take_u8(&mut input)?)?;
                if !input.is_empty() {
                    return Err(WireError::TrailingBytes(input.len()));
                }
                Body::Fail { corr, code }
            }
            k => return Err(WireError::UnknownKind(k)),
        };
        Ok(Frame {
            seq,
            body: body_out,
        })
    }
}

/// What one connection's reader keeps between frames so that decoding allocates little: the
/// target names it met last (at most [`TargetCache::CAPACITY`], the most recent first), shared
/// by the frames that name them again, and a spare vector for the next stamp's clock (given back
/// with [`TargetCache::recycle`]).
#[derive(Debug, Default)]
pub struct TargetCache {
    names: Vec<Arc<str>>,
    spare: Option<VectorClock>,
}

impl TargetCache {
    /// Names kept.
    pub const CAPACITY: usize = 8;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes back a decoded stamp once its clock has been read, so that its vector's room
    /// serves the next frame's.
    pub fn recycle(&mut self, stamp: WireStamp) {
        if let WireVector::Full(v) | WireVector::Delta(v) = stamp.vector {
            self.spare = Some(v);
        }
    }

    /// `name`, shared with an earlier frame's when it is one of the names kept.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(i) = self.names.iter().position(|n| &**n == name) {
            self.names[..=i].rotate_right(1);
            return self.names[0].clone();
        }
        let n: Arc<str> = Arc::from(name);
        if self.names.len() == Self::CAPACITY {
            self.names.pop();
        }
        self.names.insert(0, n.clone());
        n
    }
}

fn encode_stamp(out: &mut Vec<u8>, s: &WireStamp) {
    s.from.encode(out);
    put_varint(out, s.lamport);
    let mut flags = 0;
    match &s.vector {
        WireVector::Absent => {}
        WireVector::Full(_) => flags |= F_VECTOR | F_FULL,
        WireVector::Delta(_) => flags |= F_VECTOR,
    }
    if s.hlc.is_some() {
        flags |= F_HLC;
    }
    if s.reset {
        flags |= F_RESET;
    }
    out.push(flags);
    if let WireVector::Full(v) | WireVector::Delta(v) = &s.vector {
        v.encode(out);
    }
    if let Some(h) = s.hlc {
        h.encode(out);
    }
    let names: Vec<_> = s
        .names
        .iter()
        .filter(|(_, n)| n.len() <= MAX_NAME_LEN)
        .take(MAX_NAMES_PER_FRAME)
        .collect();
    put_varint(out, names.len() as u64);
    for (p, n) in names {
        p.encode(out);
        put_str(out, n);
    }
}

/// Decodes a stamp, its vector (if any) into `spare` when given (reusing its room).
fn decode_stamp(input: &mut &[u8], spare: Option<VectorClock>) -> Result<WireStamp, WireError> {
    let from = ProcessId::decode(input)?;
    let lamport = get_varint(input)?;
    if lamport > MAX_ACCEPTED_COUNTER {
        return Err(WireError::AbsurdCounter(lamport));
    }
    let flags = take_u8(input)?;
    if flags & !(F_VECTOR | F_FULL | F_HLC | F_RESET) != 0
        || (flags & F_FULL != 0 && flags & F_VECTOR == 0)
    {
        return Err(WireError::BadFlags(flags));
    }
    let vector = if flags & F_VECTOR == 0 {
        WireVector::Absent
    } else {
        let mut v = spare.unwrap_or_default();
        crate::clock::encoding::decode_vector_into(input, &mut v)?;
        if flags & F_FULL != 0 {
            WireVector::Full(v)
        } else {
            WireVector::Delta(v)
        }
    };
    let hlc = if flags & F_HLC != 0 {
        Some(HlcTimestamp::decode(input)?)
    } else {
        None
    };
    let n = get_varint(input)?;
    if n > MAX_NAMES_PER_FRAME as u64 {
        return Err(WireError::TooManyNames);
    }
    let mut names = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let p = ProcessId::decode(input)?;
        names.push((p, take_str(input, MAX_NAME_LEN)?));
    }
    Ok(WireStamp {
        from,
        lamport,
        vector,
        hlc,
        reset: flags & F_RESET != 0,
        names,
    })
}

// ---------------------------------------------------------------------------------------------
// Differential vector clocks.

/// A fast hasher for process ids (multiply-rotate, as rustc's FxHash). The tables it keys are
/// bounded ([`MAX_VECTOR_BASES`]), so collision floods cannot grow them.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// Sender side of the differential vector encoding, one per connection.
#[derive(Debug, Default)]
pub struct VectorEncoder {
    full: bool,
    pending_reset: bool,
    bases: HashMap<ProcessId, VectorClock, IdHash>,
    announced: std::collections::HashSet<ProcessId, IdHash>,
    /// A difference vector given back after its frame was written, reused for the next one.
    spare: Option<VectorClock>,
}

impl VectorEncoder {
    /// A fresh encoder; with `full`, every stamp carries the whole vector clock.
    pub fn new(full: bool) -> Self {
        Self {
            full,
            ..Self::default()
        }
    }

    /// Forgets every base; the next stamp tells the receiver to do the same. Used when a frame
    /// whose stamp was encoded is not sent after all.
    pub fn force_reset(&mut self) {
        self.bases.clear();
        self.announced.clear();
        self.pending_reset = true;
    }

    /// Takes back a stamp made by [`encode`](Self::encode) once its frame is written, so that
    /// its difference vector's room serves the next difference.
    pub fn recycle(&mut self, stamp: WireStamp) {
        if let WireVector::Delta(v) = stamp.vector {
            self.spare = Some(v);
        }
    }

    /// Turns a stamp into its wire form, remembering what was sent. `name_of` gives process
    /// names to announce (each process at most once per connection).
    pub fn encode(
        &mut self,
        stamp: &Stamp,
        name_of: &dyn Fn(ProcessId) -> Option<Arc<str>>,
    ) -> WireStamp {
        let mut reset = std::mem::take(&mut self.pending_reset);
        let vector = match &stamp.vector {
            None => WireVector::Absent,
            Some(v) if self.full => WireVector::Full((**v).clone()),
            Some(v) => {
                if !self.bases.contains_key(&stamp.from) && self.bases.len() >= MAX_VECTOR_BASES {
                    self.bases.clear();
                    reset = true;
                }
                match self.bases.get_mut(&stamp.from) {
                    Some(base) if v.dominates(base) => {
                        let mut d = self.spare.take().unwrap_or_default();
                        v.changed_since_into(base, &mut d);
                        base.merge(&d);
                        WireVector::Delta(d)
                    }
                    Some(base) => {
                        *base = (**v).clone();
                        WireVector::Full((**v).clone())
                    }
                    None => {
                        self.bases.insert(stamp.from, (**v).clone());
                        WireVector::Full((**v).clone())
                    }
                }
            }
        };
        let mut names = Vec::new();
        let mut announce = |p: ProcessId, names: &mut Vec<(ProcessId, String)>| {
            if names.len() < MAX_NAMES_PER_FRAME
                && self.announced.len() < (MAX_VECTOR_BASES << 4)
                && !self.announced.contains(&p)
                && let Some(n) = name_of(p).filter(|n| n.len() <= MAX_NAME_LEN)
            {
                self.announced.insert(p);
                names.push((p, n.to_string()));
            }
        };
        announce(stamp.from, &mut names);
        if let WireVector::Full(v) | WireVector::Delta(v) = &vector {
            for (p, _) in v.iter() {
                announce(p, &mut names);
            }
        }
        WireStamp {
            from: stamp.from,
            lamport: stamp.lamport,
            vector,
            hlc: stamp.hlc,
            reset,
            names,
        }
    }
}

/// Receiver side of the differential vector encoding, one per connection.
#[derive(Debug, Default)]
pub struct VectorDecoder {
    /// Each sender's clock as last rebuilt, shared with the stamp it went into: when that stamp
    /// has been merged and dropped before the next difference arrives (traffic that is not
    /// queued up), the next one is applied in place and shared again, without a copy.
    bases: HashMap<ProcessId, Arc<VectorClock>, IdHash>,
}

impl VectorDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the stamp from its wire form.
    ///
    /// # Errors
    /// [`WireError::MissingBase`] for a difference without a base, [`WireError::TooManyBases`]
    /// when the peer exceeds the table size.
    pub fn decode(&mut self, w: &WireStamp) -> Result<Stamp, WireError> {
        if w.reset {
            self.bases.clear();
        }
        let vector = match &w.vector {
            WireVector::Absent => None,
            WireVector::Full(v) => {
                if v.len() > MAX_VECTOR_ENTRIES {
                    return Err(WireError::TooManyEntries);
                }
                if !self.bases.contains_key(&w.from) && self.bases.len() >= MAX_VECTOR_BASES {
                    return Err(WireError::TooManyBases);
                }
                let v = Arc::new(v.clone());
                self.bases.insert(w.from, v.clone());
                Some(v)
            }
            WireVector::Delta(d) => {
                let base = self
                    .bases
                    .get_mut(&w.from)
                    .ok_or(WireError::MissingBase(w.from))?;
                if d.len() > MAX_VECTOR_ENTRIES {
                    return Err(WireError::TooManyEntries);
                }
                Arc::make_mut(base).merge(d);
                if base.len() > MAX_VECTOR_ENTRIES {
                    // The base is now unusable: forget it (the connection closes anyway).
                    self.bases.remove(&w.from);
                    return Err(WireError::TooManyEntries);
                }
                Some(base.clone())
            }
        };
        Ok(Stamp {
            from: w.from,
            lamport: w.lamport,
            vector,
            hlc: w.hlc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_given_apart_encodes_as_the_frame_with_it() {
        let stamp = WireStamp {
            from: ProcessId::new(2, 1),
            lamport: 9,
            vector: WireVector::Absent,
            hlc: None,
            reset: false,
            names: Vec::new(),
        };
        for body in [
            Body::Message {
                request: true,
                corr: 5,
                target: "sink".into(),
                tag: 7,
                stamp: stamp.clone(),
                payload: Bytes::from_static(b"abc"),
            },
            Body::Reply {
                corr: 5,
                stamp,
                payload: Bytes::from_static(b"abc"),
            },
        ] {
            let whole = Frame { seq: 3, body };
            let mut empty = whole.clone();
            if let Body::Message { payload, .. } | Body::Reply { payload, .. } = &mut empty.body {
                *payload = Bytes::new();
            }
            let mut out = Vec::new();
            empty.encode_with_payload(b"abc", &mut out);
            assert_eq!(out, whole.encode());
        }
    }

    #[test]
    fn the_target_cache_shares_names_and_keeps_the_most_recent() {
        let mut c = TargetCache::new();
        let a = c.get("sink");
        assert!(Arc::ptr_eq(&a, &c.get("sink")));
        for k in 0..TargetCache::CAPACITY {
            c.get(&format!("other{k}"));
        }
        // "sink" was pushed out by eight newer names: a new allocation, the same text.
        let b = c.get("sink");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(&*b, "sink");
        let f = Frame {
            seq: 1,
            body: Body::Message {
                request: false,
                corr: 0,
                target: "sink".into(),
                tag: 7,
                stamp: WireStamp {
                    from: ProcessId::new(1, 1),
                    lamport: 1,
                    vector: WireVector::Absent,
                    hlc: None,
                    reset: false,
                    names: Vec::new(),
                },
                payload: Bytes::new(),
            },
        };
        let bytes = Bytes::from(f.encode());
        assert_eq!(Frame::decode_with(&bytes, &mut c), Ok(f));
        let Ok(Frame {
            body: Body::Message { target, .. },
            ..
        }) = Frame::decode_with(&bytes, &mut c)
        else {
            panic!("decodes");
        };
        assert!(Arc::ptr_eq(&target, &b));
    }
    #[test]
    fn a_recycled_vector_decodes_the_next_stamp_as_a_fresh_one_would() {
        let v = |e: &[(u32, u64)]| {
            VectorClock::from_entries(e.iter().map(|&(n, c)| (ProcessId::new(n, 1), c))).unwrap()
        };
        let frame = |seq, vector| Frame {
            seq,
            body: Body::Reply {
                corr: seq,
                stamp: WireStamp {
                    from: ProcessId::new(1, 1),
                    lamport: seq,
                    vector,
                    hlc: None,
                    reset: false,
                    names: Vec::new(),
                },
                payload: Bytes::new(),
            },
        };
        let frames = [
            frame(1, WireVector::Full(v(&[(1, 4), (2, 9), (3, 1), (4, 2)]))),
            frame(2, WireVector::Delta(v(&[(2, 10)]))),
            frame(3, WireVector::Absent),
            frame(4, WireVector::Full(v(&[(5, 1)]))),
        ];
        let mut c = TargetCache::new();
        for f in frames {
            let bytes = Bytes::from(f.encode());
            let decoded = Frame::decode_with(&bytes, &mut c).unwrap();
            assert_eq!(decoded, f);
            if let Body::Reply { stamp, .. } = decoded.body {
                c.recycle(stamp);
            }
        }
        // A frame that fails to decode leaves no half-filled vector behind.
        let bytes = Bytes::from(frame(5, WireVector::Full(v(&[(1, 1), (2, 2)]))).encode());
        let torn = bytes.slice(..bytes.len() - 2);
        assert!(Frame::decode_with(&torn, &mut c).is_err());
        let again = Frame::decode_with(&bytes, &mut c).unwrap();
        assert_eq!(again, frame(5, WireVector::Full(v(&[(1, 1), (2, 2)]))));
    }

    use proptest::prelude::*;

    fn p(n: u32, l: u32) -> ProcessId {
        ProcessId::new(n, l)
    }

    fn stamp(from: ProcessId, entries: &[(ProcessId, u64)]) -> Stamp {
        Stamp {
            from,
            lamport: 7,
            vector: Some(Arc::new(
                VectorClock::from_entries(entries.iter().copied()).unwrap(),
            )),
            hlc: Some(HlcTimestamp::new(1_700_000_000_000, 3)),
        }
    }

    fn sample() -> Frame {
        let s = WireStamp {
            from: p(1, 2),
            lamport: 9,
            vector: WireVector::Full(VectorClock::from_entries([(p(1, 2), 4)]).unwrap()),
            hlc: Some(HlcTimestamp::new(5, 1)),
            reset: false,
            names: vec![(p(1, 2), "Pinger#1".into())],
        };
        Frame {
            seq: 3,
            body: Body::Message {
                request: true,
                corr: 11,
                target: "pong".into(),
                tag: type_tag("Ping"),
                stamp: s,
                payload: Bytes::from_static(b"\x05"),
            },
        }
    }

    #[test]
    fn frames_round_trip() {
        let f = sample();
        assert_eq!(Frame::decode(&Bytes::from(f.encode())), Ok(f));
        for f in [
            Frame {
                seq: 1,
                body: Body::Heartbeat,
            },
            Frame {
                seq: 2,
                body: Body::Fail {
                    corr: 5,
                    code: FailCode::UnknownType,
                },
            },
        ] {
            assert_eq!(Frame::decode(&Bytes::from(f.encode())), Ok(f));
        }
    }

    #[test]
    fn handshake_round_trips_and_refuses_garbage() {
        for h in [
            Handshake::Hello {
                version: 1,
                node: 7,
                incarnation: 99,
            },
            Handshake::Welcome { accepted: true },
        ] {
            assert_eq!(Handshake::decode(&h.encode()), Ok(h));
        }
        assert_eq!(Handshake::decode(b""), Err(WireError::Truncated));
        assert_eq!(Handshake::decode(b"\x01XXXX"), Err(WireError::BadMagic));
        assert_eq!(Handshake::decode(b"\x09"), Err(WireError::UnknownKind(9)));
    }

    #[test]
    fn absurd_lamport_times_are_refused() {
        let mut f = sample();
        if let Body::Message { stamp, .. } = &mut f.body {
            stamp.lamport = MAX_ACCEPTED_COUNTER + 1;
        }
        assert_eq!(
            Frame::decode(&Bytes::from(f.encode())),
            Err(WireError::AbsurdCounter(MAX_ACCEPTED_COUNTER + 1))
        );
    }

    /// Differences cannot grow a stored base past [`MAX_VECTOR_ENTRIES`]: each delta is small,
    /// but the one that would take the base over the cap is refused.
    #[test]
    fn deltas_cannot_grow_a_base_without_bound() {
        let from = p(1, 1);
        let mut dec = VectorDecoder::new();
        let full = WireStamp {
            from,
            lamport: 1,
            vector: WireVector::Full(VectorClock::from_entries([(from, 1)]).unwrap()),
            hlc: None,
            reset: false,
            names: vec![],
        };
        dec.decode(&full).unwrap();
        let mut refused = None;
        for k in 0..(MAX_VECTOR_ENTRIES as u32 / 100 + 2) {
            let entries = (0..100).map(|i| (p(2, 1 + k * 100 + i), 1));
            let delta = WireStamp {
                vector: WireVector::Delta(VectorClock::from_entries(entries).unwrap()),
                ..full.clone()
            };
            if let Err(e) = dec.decode(&delta) {
                refused = Some((k, e));
                break;
            }
        }
        let (k, e) = refused.expect("a delta was refused");
        assert_eq!(e, WireError::TooManyEntries);
        assert_eq!(k as usize, MAX_VECTOR_ENTRIES / 100, "refused at the cap");
    }

    #[test]
    fn differential_vectors_send_only_grown_entries_and_rebuild_exactly() {
        let (a, b, c) = (p(1, 1), p(1, 2), p(2, 1));
        let names = |_| None;
        let mut enc = VectorEncoder::new(false);
        let mut dec = VectorDecoder::new();
        let s1 = stamp(a, &[(a, 1), (b, 5), (c, 9)]);
        let w1 = enc.encode(&s1, &names);
        assert!(matches!(w1.vector, WireVector::Full(_)));
        assert_eq!(dec.decode(&w1).unwrap(), s1);
        let s2 = stamp(a, &[(a, 2), (b, 5), (c, 9)]);
        let w2 = enc.encode(&s2, &names);
        assert_eq!(
            w2.vector,
            WireVector::Delta(VectorClock::from_entries([(a, 2)]).unwrap())
        );
        assert_eq!(dec.decode(&w2).unwrap(), s2);
        // Out of order (does not dominate the base): sent whole.
        let s0 = stamp(a, &[(a, 1), (b, 6)]);
        let w0 = enc.encode(&s0, &names);
        assert!(matches!(w0.vector, WireVector::Full(_)));
        assert_eq!(dec.decode(&w0).unwrap(), s0);
        // A fresh decoder (a new connection) cannot use a difference.
        assert_eq!(
            VectorDecoder::new().decode(&w2),
            Err(WireError::MissingBase(a))
        );
    }

    #[test]
    fn full_clock_option_always_sends_everything() {
        let a = p(1, 1);
        let mut enc = VectorEncoder::new(true);
        for k in 1..4 {
            let w = enc.encode(&stamp(a, &[(a, k)]), &|_| None);
            assert!(matches!(w.vector, WireVector::Full(_)));
        }
    }

    #[test]
    fn names_are_announced_once_per_connection() {
        let (a, b) = (p(1, 1), p(2, 1));
        let mut enc = VectorEncoder::new(false);
        let name_of = |p: ProcessId| Some(Arc::from(format!("n{p}")));
        let w = enc.encode(&stamp(a, &[(a, 1), (b, 1)]), &name_of);
        assert_eq!(w.names.len(), 2);
        let w = enc.encode(&stamp(a, &[(a, 2), (b, 1)]), &name_of);
        assert!(w.names.is_empty());
    }

    #[test]
    fn payloads_round_trip_and_refuse_garbage() {
        let v = (5u32, "x".to_string(), vec![1u8, 2]);
        let b = encode_payload(&v).unwrap();
        assert_eq!(decode_payload::<(u32, String, Vec<u8>)>(&b), Ok(v));
        assert!(matches!(
            decode_payload::<u64>(&[0xff, 0xff]),
            Err(WireError::Payload(_))
        ));
        assert_eq!(
            decode_payload::<u8>(&[1, 2]),
            Err(WireError::TrailingBytes(1))
        );
        // A claimed length of 2^60 elements is refused, not allocated.
        assert!(decode_payload::<Vec<u64>>(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let b = Bytes::from(bytes.clone());
            let _ = Frame::decode(&b);
            let _ = Handshake::decode(&bytes);
            let _ = decode_payload::<(u64, String, Vec<u32>)>(&bytes);
            if let Ok(Frame { body: Body::Message { stamp, .. } | Body::Reply { stamp, .. }, .. }) = Frame::decode(&b) {
                let _ = VectorDecoder::new().decode(&stamp);
            }
        }

        #[test]
        fn mutated_frames_never_panic_the_decoder(idx in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
            let mut v = sample().encode();
            let i = idx % v.len();
            v[i] = byte;
            v.truncate(cut % (v.len() + 1));
            let _ = Frame::decode(&Bytes::from(v));
        }
    }
}
