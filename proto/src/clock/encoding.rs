//! Compact binary encoding of clocks: varint ids and counters.
//!
//! # Varint
//! Unsigned integers use a prefix-free varint: up to eight bytes of 7 bits each (low bits first,
//! high bit set when more follows) and, if needed, a ninth byte carrying 8 full bits. Every `u64`
//! fits in at most 9 bytes, so a Lamport stamp is at most 9 bytes. Overlong forms are refused,
//! so each value has exactly one encoding.
//!
//! # Vector clock
//! `n` (varint), then `n` entries in increasing [`ProcessId`] order. An entry is a header varint
//! `h` whose two low bits say how the id follows from the previous entry's id
//! (`(node, local)`, where `local` is [`ProcessId::wire_local`]: the incarnation in the high 32
//! bits, the local index in the low 32, so a first incarnation's ids cost what they always did;
//! before the first entry the previous node is "-1" and local 0):
//!
//! | tag | id | extra |
//! |---|---|---|
//! | 0 | same node, `local = prev.local + 1 + (h >> 2)` | — |
//! | 1 | `node = prev.node + 1 + (h >> 2)`, same local | — |
//! | 2 | `node = prev.node + 1 + (h >> 2)` | `local` varint |
//! | 3 | same node, `h == 3` | `local` varint, above `prev.local` |
//!
//! (Tag 3 is only needed between incarnations 2^30 apart, where tag 0's delta does not fit.)
//!
//! followed by the counter (varint, `1..=MAX_ACCEPTED_COUNTER`). Processes numbered densely on one node,
//! or one process per node with equal local indices, cost one header byte each: a 64-entry clock
//! with counters below 2^14 takes at most 194 bytes.
//!
//! # HLC
//! 8 bytes, little-endian: the timestamps are near 2^57, where a varint saves nothing.
//!
//! Decoding never panics and never allocates more than the input can justify.

use super::{HlcTimestamp, MAX_ACCEPTED_COUNTER, ProcessId, VectorClock};

/// Why bytes could not be decoded as a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("input ends in the middle of a value")]
    UnexpectedEnd,
    /// A varint used more bytes than its value needs.
    #[error("overlong varint")]
    OverlongVarint,
    /// A counter was 0 (absent entries are not written) or above `MAX_ACCEPTED_COUNTER`.
    #[error("counter {0} out of range")]
    CounterOutOfRange(u64),
    /// A process id part does not fit in 32 bits.
    #[error("process id part {0} does not fit in 32 bits")]
    IdOutOfRange(u64),
    /// An entry header has an unknown tag, or tag 0 or 3 on the first entry.
    #[error("bad vector clock entry tag {0}")]
    BadTag(u8),
    /// An entry's id is not above the previous entry's (entries are sorted and distinct).
    #[error("vector clock entries out of order")]
    NotIncreasing,
    /// More entries than the input or the limit allows.
    #[error("vector clock claims {0} entries")]
    TooManyEntries(u64),
    /// Bytes were left after a complete value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
}

/// Most entries a decoded vector clock may have.
pub const MAX_VECTOR_ENTRIES: u64 = 1 << 16;

/// Appends the varint encoding of `v` to `out` (1 to 9 bytes).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Number of bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    if bits > 56 {
        9
    } else {
        bits.max(1).div_ceil(7)
    }
}

/// Reads a varint from the front of `input`, advancing it.
///
/// # Errors
/// [`DecodeError::UnexpectedEnd`] or [`DecodeError::OverlongVarint`].
pub fn get_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for i in 0..9 {
        let (&b, rest) = input.split_first().ok_or(DecodeError::UnexpectedEnd)?;
        *input = rest;
        if i == 8 {
            if b == 0 {
                return Err(DecodeError::OverlongVarint);
            }
            return Ok(v | (u64::from(b) << 56));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(DecodeError::OverlongVarint);
            }
            return Ok(v);
        }
    }
    unreachable!("the loop returns by the ninth byte")
}

/// A value with a compact binary form.
pub trait Encode {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The encoding as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A value that can be read back from its compact binary form.
pub trait Decode: Sized {
    /// Reads a value from the front of `input`, advancing it.
    ///
    /// # Errors
    /// A [`DecodeError`] saying what is wrong; `input` is then left somewhere inside the value.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError>;

    /// Reads a value that must use all of `bytes`.
    ///
    /// # Errors
    /// As [`decode`](Self::decode), or [`DecodeError::TrailingBytes`].
    fn from_bytes(mut bytes: &[u8]) -> Result<Self, DecodeError> {
        let v = Self::decode(&mut bytes)?;
        if bytes.is_empty() {
            Ok(v)
        } else {
            Err(DecodeError::TrailingBytes(bytes.len()))
        }
    }
}

impl Encode for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, *self);
    }
}

impl Decode for u64 {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        get_varint(input)
    }
}

impl Encode for ProcessId {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, u64::from(self.node));
        put_varint(out, self.wire_local());
    }
}

fn get_u32(input: &mut &[u8]) -> Result<u32, DecodeError> {
    let v = get_varint(input)?;
    u32::try_from(v).map_err(|_| DecodeError::IdOutOfRange(v))
}

impl Decode for ProcessId {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let node = get_u32(input)?;
        Ok(ProcessId::from_wire(node, get_varint(input)?))
    }
}

impl Encode for HlcTimestamp {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.as_u64().to_le_bytes());
    }
}

impl Decode for HlcTimestamp {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let (head, rest) = input
            .split_first_chunk::<8>()
            .ok_or(DecodeError::UnexpectedEnd)?;
        *input = rest;
        Ok(HlcTimestamp::from_u64(u64::from_le_bytes(*head)))
    }
}

impl Encode for VectorClock {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u64);
        let (mut prev_node, mut prev_local): (i64, u64) = (-1, 0);
        for (i, (p, c)) in self.iter().enumerate() {
            let (node, local) = (i64::from(p.node), p.wire_local());
            if i > 0 && node == prev_node {
                // Entries are sorted and distinct: `local > prev_local`. The delta of two
                // incarnations may need 62 bits or more: then the id is written out (tag 3).
                let delta = local - prev_local - 1;
                if delta < 1 << 62 {
                    put_varint(out, delta << 2); // tag 0
                } else {
                    put_varint(out, 3); // tag 3
                    put_varint(out, local);
                }
            } else if local == prev_local {
                put_varint(out, (((node - prev_node - 1) as u64) << 2) | 1);
            } else {
                put_varint(out, (((node - prev_node - 1) as u64) << 2) | 2);
                put_varint(out, local);
            }
            put_varint(out, c);
            (prev_node, prev_local) = (node, local);
        }
    }
}

impl Decode for VectorClock {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let mut out = VectorClock::new();
        decode_vector_into(input, &mut out)?;
        Ok(out)
    }
}

/// [`VectorClock::decode`](Decode::decode) into `out`, whose entries it replaces and whose room
/// it reuses. On an error `out` is left empty.
///
/// # Errors
/// As [`Decode::decode`].
pub fn decode_vector_into(input: &mut &[u8], out: &mut VectorClock) -> Result<(), DecodeError> {
    let mut entries: Vec<(ProcessId, u64)> = std::mem::take(out).into();
    entries.clear();
    decode_entries(input, &mut entries)?;
    *out = VectorClock::from_sorted_unchecked(entries);
    Ok(())
}

fn decode_entries(
    input: &mut &[u8],
    entries: &mut Vec<(ProcessId, u64)>,
) -> Result<(), DecodeError> {
    let n = get_varint(input)?;
    // Each entry takes at least two bytes: refuse counts the input cannot hold.
    if n > MAX_VECTOR_ENTRIES || n > (input.len() / 2) as u64 {
        return Err(DecodeError::TooManyEntries(n));
    }
    entries.reserve(n as usize);
    let (mut prev_node, mut prev_local): (i64, u64) = (-1, 0);
    for i in 0..n {
        let h = get_varint(input)?;
        let (tag, delta) = ((h & 3) as u8, h >> 2);
        let (node, local) = match tag {
            0 if i > 0 => (
                prev_node,
                prev_local
                    .checked_add(1)
                    .and_then(|l| l.checked_add(delta))
                    .ok_or(DecodeError::NotIncreasing)?,
            ),
            1 | 2 => {
                let node = (prev_node as u64).wrapping_add(1).saturating_add(delta);
                let local = if tag == 2 {
                    get_varint(input)?
                } else {
                    prev_local
                };
                (node as i64, local)
            }
            3 if i > 0 && delta == 0 => {
                let local = get_varint(input)?;
                if local <= prev_local {
                    return Err(DecodeError::NotIncreasing);
                }
                (prev_node, local)
            }
            _ => return Err(DecodeError::BadTag(tag)),
        };
        let node32 = u32::try_from(node).map_err(|_| DecodeError::IdOutOfRange(node as u64))?;
        let c = get_varint(input)?;
        if c == 0 || c > MAX_ACCEPTED_COUNTER {
            return Err(DecodeError::CounterOutOfRange(c));
        }
        entries.push((ProcessId::from_wire(node32, local), c));
        (prev_node, prev_local) = (node, local);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_and_ninth_byte() {
        for (v, len) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (1 << 14, 3),
            (1 << 56, 9),
            (u64::MAX, 9),
        ] {
            let b = v.to_bytes();
            assert_eq!(b.len(), len, "{v}");
            assert_eq!(varint_len(v), len, "{v}");
            assert_eq!(u64::from_bytes(&b), Ok(v));
        }
    }

    #[test]
    fn overlong_varints_are_refused() {
        assert_eq!(
            u64::from_bytes(&[0x80, 0x00]),
            Err(DecodeError::OverlongVarint)
        );
        assert_eq!(u64::from_bytes(&[0x81]), Err(DecodeError::UnexpectedEnd));
        let mut nine = vec![0x80; 8];
        nine.push(0);
        assert_eq!(u64::from_bytes(&nine), Err(DecodeError::OverlongVarint));
    }

    #[test]
    fn lamport_stamp_at_most_nine_bytes() {
        assert!(u64::MAX.to_bytes().len() <= 9);
    }

    #[test]
    fn sixty_four_entries_fit_in_200_bytes() {
        let one_node =
            VectorClock::from_entries((1..=64).map(|l| (ProcessId::new(3, l), 16_383))).unwrap();
        let per_node =
            VectorClock::from_entries((1..=64).map(|n| (ProcessId::new(n, 1), 16_383))).unwrap();
        for v in [one_node, per_node] {
            let b = v.to_bytes();
            assert!(b.len() <= 200, "{} bytes", b.len());
            assert_eq!(VectorClock::from_bytes(&b), Ok(v));
        }
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert_eq!(
            VectorClock::from_bytes(&[1, 0, 1]),
            Err(DecodeError::BadTag(0))
        );
        assert_eq!(
            VectorClock::from_bytes(&[1, 1, 0]),
            Err(DecodeError::CounterOutOfRange(0))
        );
        assert_eq!(
            VectorClock::from_bytes(&[100, 1, 1]),
            Err(DecodeError::TooManyEntries(100))
        );
        assert_eq!(
            VectorClock::from_bytes(&[1, 3, 1]),
            Err(DecodeError::BadTag(3))
        );
        assert_eq!(
            VectorClock::from_bytes(&[0, 7]),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn incarnations_round_trip_and_cost_nothing_in_the_first() {
        let first = VectorClock::from_entries([(ProcessId::new(3, 1), 5)]).unwrap();
        let later = VectorClock::from_entries([(ProcessId::of(3, 1, 1), 5)]).unwrap();
        assert_eq!(first.to_bytes(), vec![1, 2 | (3 << 2), 1, 5]);
        assert_eq!(VectorClock::from_bytes(&later.to_bytes()), Ok(later));
        // Two incarnations of one node side by side, near and far apart (tag 0, tag 3).
        for far in [1, 1 << 29, 1 << 30, u32::MAX] {
            let v = VectorClock::from_entries([
                (ProcessId::new(2, 4), 1),
                (ProcessId::of(2, 0, u32::MAX), 2),
                (ProcessId::of(2, far, 0), 3),
                (ProcessId::of(2, far, u32::MAX), 4),
                (ProcessId::of(7, far, 9), 5),
            ])
            .unwrap();
            assert_eq!(VectorClock::from_bytes(&v.to_bytes()), Ok(v), "{far}");
        }
        let mut one = Vec::new();
        ProcessId::of(4, 6, 2).encode(&mut one);
        assert_eq!(ProcessId::decode(&mut &one[..]), Ok(ProcessId::of(4, 6, 2)));
    }

    #[test]
    fn entries_out_of_order_are_refused() {
        // Tag 3 repeating the previous id; tag 0 running past the largest id; tag 3 first.
        assert_eq!(
            VectorClock::from_bytes(&[2, 2, 5, 1, 3, 5, 1]),
            Err(DecodeError::NotIncreasing)
        );
        let mut big = vec![2, 2];
        put_varint(&mut big, u64::MAX);
        big.push(1);
        big.push(0);
        big.push(1);
        assert_eq!(
            VectorClock::from_bytes(&big),
            Err(DecodeError::NotIncreasing)
        );
        assert_eq!(
            VectorClock::from_bytes(&[1, 3, 1, 1]),
            Err(DecodeError::BadTag(3))
        );
    }
}
