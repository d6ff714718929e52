//! The incremental message decoder: [`decode`] one message from the front of a buffer, or
//! learn exactly how many more bytes it needs.

use crate::message::{id, HASH_HEADER_LEN};
use crate::{Message, WireError};

/// Default limit on a message's length prefix: 1 MiB.
///
/// Room for a `bitfield` of a torrent with up to 8 388 600 pieces, a `piece` block of up to
/// 1 MiB, a full `hashes` answer (512 hashes and their proof is about 17 KiB), and the
/// 16 KiB blocks of `ut_metadata`. It does *not* encode the 16 KiB block-size policy: the
/// swarm engine knows what it requested and drops a peer whose `piece` does not match a
/// request. A caller that knows the torrent can pass a tighter bound, for example
/// `max(16 KiB + 9, 1 + ceil(pieces / 8), 18 KiB)`.
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 1 << 20;

/// The outcome of [`decode`] on a buffer that may end inside a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// One complete message, borrowing from the buffer.
    Message {
        /// The message.
        msg: Message<'a>,
        /// Bytes it took from the front of the buffer, length prefix included; the next
        /// message starts there.
        consumed: usize,
    },
    /// The buffer holds a valid start of a message; this many more bytes are needed.
    ///
    /// Exact: when the length prefix is complete it is the rest of the message, so
    /// appending exactly this many bytes completes it. With fewer than 4 bytes it is what
    /// completes the length prefix, and the next call says how much of the body is missing.
    NeedMore(usize),
}

/// Decodes the message at the front of `buf`, or says how many more bytes it needs.
///
/// Bytes after the message are left alone: call again at `buf[consumed..]`. Errors are
/// reported as early as the bytes allow, before the body arrives: a length prefix over
/// `max_len` ([`WireError::TooLong`], so a peer cannot make us buffer more than `max_len`
/// bytes), and as soon as the id byte is there a length that does not fit the id
/// ([`WireError::BadLength`], for example a `have` whose length is not 5). A keep-alive
/// (length 0) is never too long.
///
/// Never panics, whatever the bytes.
///
/// ```
/// use mycel_peer_wire::{decode, Decoded, Message, DEFAULT_MAX_MESSAGE_LEN};
/// let stream = [0, 0, 0, 5, 4, 0, 0, 0, 9, 0, 0];
/// let Decoded::Message { msg, consumed } = decode(&stream, DEFAULT_MAX_MESSAGE_LEN)? else { panic!() };
/// assert_eq!((msg, consumed), (Message::Have(9), 9));
/// assert_eq!(decode(&stream[consumed..], DEFAULT_MAX_MESSAGE_LEN)?, Decoded::NeedMore(2));
/// # Ok::<(), mycel_peer_wire::WireError>(())
/// ```
pub fn decode(buf: &[u8], max_len: u32) -> Result<Decoded<'_>, WireError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(Decoded::NeedMore(4 - buf.len()));
    };
    let len = u32::from_be_bytes(*prefix);
    if len == 0 {
        return Ok(Decoded::Message { msg: Message::KeepAlive, consumed: 4 });
    }
    if len > max_len {
        return Err(WireError::TooLong { len, max: max_len });
    }
    if let Some(&msg_id) = buf.get(4) {
        check_len(msg_id, len)?;
    }
    // On 16-bit targets a length could overflow usize: treat it as too long.
    let total =
        usize::try_from(len).ok().and_then(|l| l.checked_add(4)).ok_or(WireError::TooLong { len, max: max_len })?;
    let Some(body) = buf.get(4..total) else {
        return Ok(Decoded::NeedMore(total - buf.len()));
    };
    Ok(Decoded::Message { msg: parse_body(body), consumed: total })
}

/// What length prefix an id allows.
enum LenRule {
    Exact(u32),
    AtLeast(u32),
    /// At least the given length, and whole 32-byte hashes beyond it.
    Hashes,
}

fn len_rule(msg_id: u8) -> (LenRule, &'static str) {
    use LenRule::*;
    match msg_id {
        id::CHOKE => (Exact(1), "choke"),
        id::UNCHOKE => (Exact(1), "unchoke"),
        id::INTERESTED => (Exact(1), "interested"),
        id::NOT_INTERESTED => (Exact(1), "not interested"),
        id::HAVE => (Exact(5), "have"),
        id::BITFIELD => (AtLeast(1), "bitfield"),
        id::REQUEST => (Exact(13), "request"),
        id::PIECE => (AtLeast(9), "piece"),
        id::CANCEL => (Exact(13), "cancel"),
        id::PORT => (Exact(3), "port"),
        id::SUGGEST_PIECE => (Exact(5), "suggest piece"),
        id::HAVE_ALL => (Exact(1), "have all"),
        id::HAVE_NONE => (Exact(1), "have none"),
        id::REJECT_REQUEST => (Exact(13), "reject request"),
        id::ALLOWED_FAST => (Exact(5), "allowed fast"),
        id::EXTENDED => (AtLeast(2), "extended"),
        id::HASH_REQUEST => (Exact(1 + HASH_HEADER_LEN as u32), "hash request"),
        id::HASHES => (Hashes, "hashes"),
        id::HASH_REJECT => (Exact(1 + HASH_HEADER_LEN as u32), "hash reject"),
        _ => (AtLeast(1), "unknown"),
    }
}

fn check_len(msg_id: u8, len: u32) -> Result<(), WireError> {
    let (rule, kind) = len_rule(msg_id);
    let ok = match rule {
        LenRule::Exact(n) => len == n,
        LenRule::AtLeast(n) => len >= n,
        LenRule::Hashes => {
            let header = 1 + HASH_HEADER_LEN as u32;
            len >= header && (len - header) % 32 == 0
        }
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::BadLength { kind, len })
    }
}

/// Parses a whole frame (length prefix included) that [`decode`] accepted with
/// `consumed == frame.len()`.
pub(crate) fn parse_frame(frame: &[u8]) -> Message<'_> {
    match frame.get(4..) {
        Some(body) if !body.is_empty() => parse_body(body),
        _ => Message::KeepAlive,
    }
}

/// Parses a complete body (id byte and payload) whose length [`check_len`] accepted.
fn parse_body(body: &[u8]) -> Message<'_> {
    let (msg_id, p) = (body[0], &body[1..]);
    match msg_id {
        id::CHOKE => Message::Choke,
        id::UNCHOKE => Message::Unchoke,
        id::INTERESTED => Message::Interested,
        id::NOT_INTERESTED => Message::NotInterested,
        id::HAVE => Message::Have(u32_at(p, 0)),
        id::BITFIELD => Message::Bitfield(p),
        id::REQUEST => Message::Request { index: u32_at(p, 0), begin: u32_at(p, 4), length: u32_at(p, 8) },
        id::PIECE => Message::Piece { index: u32_at(p, 0), begin: u32_at(p, 4), block: &p[8..] },
        id::CANCEL => Message::Cancel { index: u32_at(p, 0), begin: u32_at(p, 4), length: u32_at(p, 8) },
        id::PORT => Message::Port(u16::from_be_bytes([p[0], p[1]])),
        id::SUGGEST_PIECE => Message::SuggestPiece(u32_at(p, 0)),
        id::HAVE_ALL => Message::HaveAll,
        id::HAVE_NONE => Message::HaveNone,
        id::REJECT_REQUEST => Message::RejectRequest { index: u32_at(p, 0), begin: u32_at(p, 4), length: u32_at(p, 8) },
        id::ALLOWED_FAST => Message::AllowedFast(u32_at(p, 0)),
        id::EXTENDED => Message::Extended { id: p[0], payload: &p[1..] },
        id::HASH_REQUEST => {
            let h = HashHeader::parse(p);
            Message::HashRequest {
                pieces_root: h.root,
                base_layer: h.base_layer,
                index: h.index,
                length: h.length,
                proof_layers: h.proof_layers,
            }
        }
        id::HASHES => {
            let h = HashHeader::parse(p);
            Message::Hashes {
                pieces_root: h.root,
                base_layer: h.base_layer,
                index: h.index,
                length: h.length,
                proof_layers: h.proof_layers,
                hashes: &p[HASH_HEADER_LEN..],
            }
        }
        id::HASH_REJECT => {
            let h = HashHeader::parse(p);
            Message::HashReject {
                pieces_root: h.root,
                base_layer: h.base_layer,
                index: h.index,
                length: h.length,
                proof_layers: h.proof_layers,
            }
        }
        other => Message::Unknown { id: other, payload: p },
    }
}

/// The fixed 48 bytes that start every BEP 52 hash message.
struct HashHeader {
    root: [u8; 32],
    base_layer: u32,
    index: u32,
    length: u32,
    proof_layers: u32,
}

impl HashHeader {
    fn parse(p: &[u8]) -> Self {
        let mut root = [0u8; 32];
        root.copy_from_slice(&p[..32]);
        HashHeader {
            root,
            base_layer: u32_at(p, 32),
            index: u32_at(p, 36),
            length: u32_at(p, 40),
            proof_layers: u32_at(p, 44),
        }
    }
}

/// Big-endian u32 at `at`; the caller's length check guarantees the bytes are there.
fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = DEFAULT_MAX_MESSAGE_LEN;

    fn one(buf: &[u8]) -> Message<'_> {
        match decode(buf, MAX) {
            Ok(Decoded::Message { msg, consumed }) => {
                assert_eq!(consumed, buf.len());
                msg
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_bep3_request_golden() {
        // BEP 3: request is <len=0013><id=6><index><begin><length>.
        let buf = [0, 0, 0, 0x0d, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0];
        assert_eq!(one(&buf), Message::Request { index: 1, begin: 0x4000, length: 0x4000 });
    }

    #[test]
    fn keepalive_and_fixed() {
        assert_eq!(one(&[0, 0, 0, 0]), Message::KeepAlive);
        assert_eq!(one(&[0, 0, 0, 1, 0x0e]), Message::HaveAll);
        assert_eq!(one(&[0, 0, 0, 3, 9, 0x1a, 0xe1]), Message::Port(6881));
        assert_eq!(one(&[0, 0, 0, 2, 0x12, 0xff]), Message::Unknown { id: 0x12, payload: &[0xff] });
    }

    #[test]
    fn need_more_counts() {
        assert_eq!(decode(&[], MAX), Ok(Decoded::NeedMore(4)));
        assert_eq!(decode(&[0, 0], MAX), Ok(Decoded::NeedMore(2)));
        assert_eq!(decode(&[0, 0, 0, 5], MAX), Ok(Decoded::NeedMore(5)));
        assert_eq!(decode(&[0, 0, 0, 5, 4, 0], MAX), Ok(Decoded::NeedMore(3)));
    }

    #[test]
    fn bad_lengths_fail_on_the_id_byte() {
        assert_eq!(decode(&[0, 0, 0, 6, 4], MAX), Err(WireError::BadLength { kind: "have", len: 6 }));
        assert_eq!(decode(&[0, 0, 0, 2, 0], MAX), Err(WireError::BadLength { kind: "choke", len: 2 }));
        assert_eq!(decode(&[0, 0, 0, 8, 7], MAX), Err(WireError::BadLength { kind: "piece", len: 8 }));
        assert_eq!(decode(&[0, 0, 0, 1, 20], MAX), Err(WireError::BadLength { kind: "extended", len: 1 }));
        assert_eq!(decode(&[0, 0, 0, 50, 22], MAX), Err(WireError::BadLength { kind: "hashes", len: 50 }));
        assert_eq!(decode(&[0, 0, 0, 49, 22], MAX), Ok(Decoded::NeedMore(48)));
        assert_eq!(decode(&[0, 0, 0, 81, 22], MAX), Ok(Decoded::NeedMore(80)));
        assert_eq!(decode(&[0, 0, 0, 48, 21], MAX), Err(WireError::BadLength { kind: "hash request", len: 48 }));
    }

    #[test]
    fn too_long_fails_on_the_prefix() {
        assert_eq!(decode(&[0, 0x10, 0, 1], MAX), Err(WireError::TooLong { len: 0x0010_0001, max: MAX }));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff], MAX), Err(WireError::TooLong { len: u32::MAX, max: MAX }));
        assert_eq!(decode(&[0, 0, 0, 0], 0), Ok(Decoded::Message { msg: Message::KeepAlive, consumed: 4 }));
        assert_eq!(decode(&[0, 0, 0, 1, 1], 0), Err(WireError::TooLong { len: 1, max: 0 }));
    }

    #[test]
    fn leaves_following_bytes() {
        let buf = [0, 0, 0, 1, 2, 0, 0, 0, 1, 3];
        assert_eq!(decode(&buf, MAX), Ok(Decoded::Message { msg: Message::Interested, consumed: 5 }));
        assert_eq!(decode(&buf[5..], MAX), Ok(Decoded::Message { msg: Message::NotInterested, consumed: 5 }));
    }
}
