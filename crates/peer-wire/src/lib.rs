//! The BitTorrent peer wire protocol as a sans-IO, zero-copy codec.
//!
//! - [`Handshake`] and its [`Reserved`] capability bits (BEP 3, 5, 6, 10, 52).
//! - [`Message`]: every BEP 3 message, `port` (BEP 5), the fast extension (BEP 6),
//!   `extended` (BEP 10) and the v2 hash messages (BEP 52), decoded by [`decode`], which
//!   takes bytes as they come and says exactly how many more it needs
//!   ([`Decoded::NeedMore`]). [`FrameDecoder`] wraps it around an owned receive buffer.
//! - Extension payloads: [`ExtendedHandshake`] (BEP 10), [`UtMetadata`] (BEP 9),
//!   [`UtPex`] (BEP 11).
//! - [`Bitfield`]: a piece set checked against the piece count.
//!
//! Nothing here touches a socket or a clock. Decoders borrow from the caller's buffer and
//! never panic on input; malformed input is an error value ([`WireError`],
//! [`ExtensionError`], [`BitfieldError`]) after which the connection should be dropped.
//!
//! ```
//! use mycel_peer_wire::{decode, Decoded, Message, DEFAULT_MAX_MESSAGE_LEN};
//! let mut wire = Vec::new();
//! Message::Request { index: 1, begin: 0x4000, length: 0x4000 }.encode(&mut wire);
//! assert_eq!(wire, [0, 0, 0, 0x0d, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]);
//! match decode(&wire, DEFAULT_MAX_MESSAGE_LEN)? {
//!     Decoded::Message { msg, consumed } => {
//!         assert_eq!(consumed, wire.len());
//!         assert!(matches!(msg, Message::Request { index: 1, .. }));
//!     }
//!     Decoded::NeedMore(n) => unreachable!("{n} more bytes"),
//! }
//! # Ok::<(), mycel_peer_wire::WireError>(())
//! ```
//!
//! # What the codec checks, and what it leaves to the swarm engine
//!
//! The codec guarantees framing: lengths that fit each message id, a message length under
//! the caller's limit (checked on the 4-byte prefix, before anything is buffered), whole
//! 32-byte hashes, extension dictionaries with well-typed known keys, `ut_metadata` pieces
//! of the right size. It does not know the torrent: piece indices against the piece count,
//! block sizes (16 KiB in practice), whether a block or hash answer was requested, and
//! whether a peer may send a message in its current state (a `bitfield` only first,
//! fast-extension messages only when both sides set the bit) are for the swarm engine.

#![warn(missing_docs)]

mod bitfield;
mod decode;
mod error;
mod extension;
mod frame;
mod handshake;
mod message;
mod metadata;
mod pex;
mod received;

pub use bitfield::Bitfield;
pub use decode::{decode, Decoded, DEFAULT_MAX_MESSAGE_LEN};
pub use error::{BitfieldError, ExtensionError, WireError};
pub use extension::{ExtendedHandshake, MAX_METADATA_SIZE, UT_METADATA, UT_PEX};
pub use frame::FrameDecoder;
pub use handshake::{truncate_v2_info_hash, Handshake, HandshakeDecoded, Reserved, HANDSHAKE_LEN, PROTOCOL};
pub use message::{encode_extended_header, id, piece_header, Message};
pub use metadata::{metadata_piece_count, metadata_piece_len, UtMetadata, METADATA_PIECE_LEN};
pub use pex::{PexFlags, UtPex, MAX_PEX_PEERS};
pub use received::Frame;

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/peer_wire.rs`,
/// `fuzz/fuzz_targets/peer_wire_ext.rs`, `fuzz/fuzz_targets/peer_wire_pex.rs`) and the corpus replay test; not part of the
/// supported API. Each panics on a violated property (a real bug for the fuzzer).
#[doc(hidden)]
pub mod fuzzing {
    use bytes::Bytes;

    use crate::{
        decode, Bitfield, Decoded, ExtendedHandshake, Frame, FrameDecoder, Handshake, HandshakeDecoded, Message,
        UtMetadata, UtPex, WireError, HANDSHAKE_LEN,
    };

    /// A limit small enough that fuzz inputs reach it.
    const MAX_LEN: u32 = 4096;

    /// Treats `d` as what a peer sent: a handshake if it starts like one, then messages.
    ///
    /// Checks that every decoded message re-encodes to exactly its input bytes, that
    /// [`FrameDecoder`] fed the same bytes in uneven chunks yields the same messages and
    /// ends the same way (both copied in with `extend`/`next` and handed over with
    /// `extend_bytes`/`next_frame`), and that `NeedMore` is exact.
    pub fn stream(d: &[u8]) {
        let (messages, end) = decode_all(d);
        for owned in [false, true] {
            let chunked = decode_chunked(d, owned);
            assert_eq!(chunked.0, messages, "chunked decoding differs (owned: {owned})");
            assert_eq!(chunked.1, end.clone().map(|_| ()), "chunked decoding ends differently (owned: {owned})");
        }
    }

    /// How a whole stream decodes: the re-encoded messages, and where it stopped (the
    /// offset of an incomplete tail, or an error).
    fn decode_all(d: &[u8]) -> (Vec<Vec<u8>>, Result<usize, WireError>) {
        let mut pos = 0;
        match Handshake::decode(d) {
            Ok(HandshakeDecoded::Handshake(hs)) => {
                assert_eq!(hs.to_bytes()[..], d[..HANDSHAKE_LEN], "handshake does not re-encode");
                pos = HANDSHAKE_LEN;
            }
            Ok(HandshakeDecoded::NeedMore(n)) => return (Vec::new(), Ok(HANDSHAKE_LEN - n)),
            Err(_) => {}
        }
        let mut out = Vec::new();
        loop {
            match decode(&d[pos..], MAX_LEN) {
                Ok(Decoded::Message { msg, consumed }) => {
                    let bytes = encode(&msg);
                    assert_eq!(bytes[..], d[pos..pos + consumed], "message does not re-encode to its input");
                    out.push(bytes);
                    pos += consumed;
                }
                Ok(Decoded::NeedMore(n)) => {
                    check_need_more(&d[pos..], n);
                    return (out, Ok(pos));
                }
                Err(e) => return (out, Err(e)),
            }
        }
    }

    /// Appending `n` arbitrary payload bytes to a tail whose id byte has arrived must
    /// complete the message.
    fn check_need_more(tail: &[u8], n: usize) {
        assert!(n > 0, "NeedMore(0)");
        if tail.len() < 4 {
            assert_eq!(n, 4 - tail.len(), "NeedMore must complete the length prefix first");
            return;
        }
        if tail.len() == 4 {
            // The id byte is not there yet: only bytes valid for some id would complete it.
            return;
        }
        let mut full = tail.to_vec();
        full.resize(tail.len() + n, 0xa5);
        match decode(&full, MAX_LEN) {
            Ok(Decoded::Message { consumed, .. }) => assert_eq!(consumed, full.len(), "NeedMore was not exact"),
            other => panic!("NeedMore({n}) then {other:?}"),
        }
    }

    fn decode_chunked(d: &[u8], owned: bool) -> (Vec<Vec<u8>>, Result<(), WireError>) {
        let mut rx = FrameDecoder::new(MAX_LEN);
        let mut out = Vec::new();
        let mut handshake_seen = !d.starts_with(&crate::PROTOCOL[..1]);
        let mut pos = 0;
        let mut step = 0usize;
        while pos < d.len() {
            // Chunk sizes 1..=13 drawn from the data itself, so the fuzzer explores splits.
            let len = (usize::from(d[pos]) + step) % 13 + 1;
            step += 1;
            let end = (pos + len).min(d.len());
            if owned {
                rx.extend_bytes(Bytes::copy_from_slice(&d[pos..end]));
            } else {
                rx.extend(&d[pos..end]);
            }
            pos = end;
            if !handshake_seen {
                match rx.handshake() {
                    Ok(Some(_)) => handshake_seen = true,
                    Ok(None) => continue,
                    // Not a handshake: decode_all read it as messages from byte 0.
                    Err(_) => return decode_chunked_from_scratch(d),
                }
            }
            loop {
                let next = if owned {
                    rx.next_frame().map(|f| f.map(|f| frame_bytes(&f)))
                } else {
                    rx.next().map(|m| m.map(|m| encode(&m)))
                };
                match next {
                    Ok(Some(bytes)) => out.push(bytes),
                    Ok(None) => break,
                    Err(e) => return (out, Err(e)),
                }
            }
            assert!(rx.buffered() <= rx.max_buffered(), "FrameDecoder holds more than its bound");
        }
        (out, Ok(()))
    }

    /// A frame's message re-encoded, checked against the frame's own bytes and block.
    fn frame_bytes(f: &Frame) -> Vec<u8> {
        let m = f.message();
        let bytes = encode(&m);
        assert_eq!(bytes[..], f.as_bytes()[..], "frame bytes differ from its message");
        match m {
            Message::Piece { block, .. } => {
                assert_eq!(f.piece_block().as_deref(), Some(block), "piece_block differs from the block")
            }
            _ => assert_eq!(f.piece_block(), None, "a block outside a piece"),
        }
        bytes
    }

    /// For inputs that start with 0x13 but are no handshake: plain message decoding.
    fn decode_chunked_from_scratch(d: &[u8]) -> (Vec<Vec<u8>>, Result<(), WireError>) {
        let mut rx = FrameDecoder::new(MAX_LEN);
        rx.extend_bytes(Bytes::copy_from_slice(d));
        let mut out = Vec::new();
        loop {
            match rx.next_frame() {
                Ok(Some(f)) => out.push(frame_bytes(&f)),
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    fn encode(m: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out.len(), m.encoded_len(), "encoded_len disagrees with encode");
        out
    }

    /// A `ut_pex` payload as a peer would send it: decoding never panics, stays within
    /// [`MAX_PEX_PEERS`](crate::MAX_PEX_PEERS) per list, and whatever decodes re-encodes to
    /// bytes that decode to the same message, with `encoded_len` exact.
    pub fn pex(d: &[u8]) {
        if let Ok(p) = UtPex::decode(d) {
            for n in [p.added.len(), p.added6.len(), p.dropped.len(), p.dropped6.len()] {
                assert!(n <= crate::MAX_PEX_PEERS, "list over the cap");
            }
            let mut out = Vec::new();
            p.encode(&mut out);
            assert_eq!(out.len(), p.encoded_len(), "encoded_len disagrees");
            assert_eq!(UtPex::decode(&out), Ok(p.clone()), "round-trip");
        }
    }

    /// The first byte picks a decoder (extended handshake, `ut_metadata`, `ut_pex`,
    /// bitfield); the rest is its input. Checks model round-trips and `encoded_len`.
    pub fn extension(d: &[u8]) {
        let Some((&which, rest)) = d.split_first() else {
            return;
        };
        match which % 4 {
            0 => {
                if let Ok(h) = ExtendedHandshake::decode(rest) {
                    let mut out = Vec::new();
                    h.encode(&mut out);
                    assert_eq!(out.len(), h.encoded_len(), "encoded_len disagrees");
                    assert_eq!(ExtendedHandshake::decode(&out), Ok(h), "round-trip");
                }
            }
            1 => {
                if let Ok(m) = UtMetadata::decode(rest) {
                    let mut out = Vec::new();
                    m.encode(&mut out);
                    assert_eq!(out.len(), m.encoded_len(), "encoded_len disagrees");
                    assert_eq!(UtMetadata::decode(&out), Ok(m), "round-trip");
                }
            }
            2 => {
                if let Ok(p) = UtPex::decode(rest) {
                    let mut out = Vec::new();
                    p.encode(&mut out);
                    assert_eq!(out.len(), p.encoded_len(), "encoded_len disagrees");
                    assert_eq!(UtPex::decode(&out), Ok(p), "round-trip");
                }
            }
            _ => bitfield(rest),
        }
    }

    fn bitfield(d: &[u8]) {
        let [a, b, bytes @ ..] = d else {
            return;
        };
        let pieces = u32::from(u16::from_be_bytes([*a, *b]));
        let Ok(bf) = Bitfield::from_bytes(bytes, pieces) else {
            return;
        };
        assert_eq!(bf.as_bytes(), bytes, "bitfield bytes changed");
        let set: Vec<u32> = bf.iter_set().collect();
        assert_eq!(set.len() as u32, bf.count(), "count disagrees with iter_set");
        assert!(set.iter().all(|&i| i < pieces && bf.has(i)), "iter_set out of range");
        assert_eq!((0..pieces).filter(|&i| bf.has(i)).count(), set.len(), "has disagrees with iter_set");
        let mut rebuilt = Bitfield::new(pieces);
        for &i in &set {
            assert_eq!(rebuilt.set(i), Ok(true), "set");
        }
        assert_eq!(rebuilt, bf, "rebuilt bitfield differs");
    }
}
