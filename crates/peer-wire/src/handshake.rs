//! The 68-byte handshake (BEP 3) and its reserved bits (BEP 5, 6, 10, 52).
//!
//! ```text
//! 0x13 "BitTorrent protocol" | reserved: 8 | info_hash: 20 | peer_id: 20
//! ```

use crate::WireError;

/// The protocol string with its length byte: the first 20 bytes of every handshake.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";

/// Length of the handshake in bytes.
pub const HANDSHAKE_LEN: usize = 68;

/// The eight reserved bytes of the handshake, each bit a capability flag.
///
/// Bit positions, each checked against the BEP text and against what libtorrent 2.1 sends
/// (`bt_peer_connection::write_handshake`, and the capture in `testdata/peer-wire/`):
///
/// | capability | byte & mask | source |
/// |---|---|---|
/// | extension protocol | `[5] & 0x10` | BEP 10: "bit 20 from the right (counting starts at 0)" |
/// | v2 upgrade (hybrid) | `[7] & 0x10` | BEP 52: "the 4th most significant bit in the last byte" |
/// | fast extension | `[7] & 0x04` | BEP 6: "the third least significant bit of the last reserved byte" |
/// | DHT | `[7] & 0x01` | BEP 5: "the last bit of the 8-byte reserved flags" |
///
/// Bits this type does not name are kept as received (other clients use them) and can be
/// read through [`bytes`](Self::bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reserved(pub [u8; 8]);

/// Defines a getter and a builder-style setter for one reserved bit.
macro_rules! reserved_bit {
    ($get:ident, $with:ident, $byte:literal, $mask:literal, $what:literal) => {
        #[doc = concat!("Whether the peer announces ", $what, ".")]
        pub const fn $get(self) -> bool {
            self.0[$byte] & $mask != 0
        }

        #[doc = concat!("This value with the bit for ", $what, " set to `on`.")]
        #[must_use]
        pub const fn $with(mut self, on: bool) -> Self {
            if on {
                self.0[$byte] |= $mask;
            } else {
                self.0[$byte] &= !$mask;
            }
            self
        }
    };
}

impl Reserved {
    /// No capability announced (all eight bytes zero).
    pub const NONE: Reserved = Reserved([0; 8]);

    /// The eight bytes as they go on the wire.
    pub const fn bytes(self) -> [u8; 8] {
        self.0
    }

    reserved_bit!(extension_protocol, with_extension_protocol, 5, 0x10, "the extension protocol (BEP 10)");
    reserved_bit!(fast_extension, with_fast_extension, 7, 0x04, "the fast extension (BEP 6)");
    reserved_bit!(dht, with_dht, 7, 0x01, "a DHT node (BEP 5; a `port` message may follow)");
    reserved_bit!(v2_upgrade, with_v2_upgrade, 7, 0x10, "support for upgrading a hybrid torrent to v2 (BEP 52)");

    /// The capabilities both sides announced: a bit is set when both set it (BEP 6 and
    /// BEP 10 are enabled only if both ends set their bit).
    pub const fn common(self, other: Reserved) -> Reserved {
        let mut out = [0u8; 8];
        let mut i = 0;
        while i < 8 {
            out[i] = self.0[i] & other.0[i];
            i += 1;
        }
        Reserved(out)
    }
}

/// The handshake each side sends first.
///
/// In a v2 connection (BEP 52) the `info_hash` field carries the SHA-256 info-hash
/// truncated to 20 bytes; see [`truncate_v2_info_hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Capability bits.
    pub reserved: Reserved,
    /// The torrent: SHA-1 info-hash (v1) or truncated SHA-256 info-hash (v2).
    pub info_hash: [u8; 20],
    /// The sender's peer id.
    pub peer_id: [u8; 20],
}

/// The outcome of [`Handshake::decode`] on a buffer that may not hold all of it yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeDecoded {
    /// A complete handshake; it took exactly [`HANDSHAKE_LEN`] bytes.
    Handshake(Handshake),
    /// The bytes so far are a valid start; this many more complete the handshake.
    NeedMore(usize),
}

impl Handshake {
    /// Decodes a handshake from the start of `buf`; bytes after the first
    /// [`HANDSHAKE_LEN`] are left alone (they are the first messages).
    ///
    /// The protocol string is checked as far as it has arrived, so a connection that is
    /// not BitTorrent (or is encrypted) fails on its first wrong byte, not after 68 bytes.
    pub fn decode(buf: &[u8]) -> Result<HandshakeDecoded, WireError> {
        let head = &buf[..buf.len().min(PROTOCOL.len())];
        if let Some(offset) = head.iter().zip(PROTOCOL).position(|(a, b)| a != b) {
            return Err(WireError::BadProtocol { offset });
        }
        let Some(hs) = buf.get(..HANDSHAKE_LEN) else {
            return Ok(HandshakeDecoded::NeedMore(HANDSHAKE_LEN - buf.len()));
        };
        let mut reserved = [0u8; 8];
        let mut info_hash = [0u8; 20];
        let mut peer_id = [0u8; 20];
        reserved.copy_from_slice(&hs[20..28]);
        info_hash.copy_from_slice(&hs[28..48]);
        peer_id.copy_from_slice(&hs[48..68]);
        Ok(HandshakeDecoded::Handshake(Handshake { reserved: Reserved(reserved), info_hash, peer_id }))
    }

    /// Appends the 68 bytes of the handshake to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(HANDSHAKE_LEN);
        out.extend_from_slice(PROTOCOL);
        out.extend_from_slice(&self.reserved.0);
        out.extend_from_slice(&self.info_hash);
        out.extend_from_slice(&self.peer_id);
    }

    /// The handshake as a fixed-size array.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..].copy_from_slice(&self.peer_id);
        out
    }

    /// The encoded length: always [`HANDSHAKE_LEN`].
    pub const fn encoded_len(&self) -> usize {
        HANDSHAKE_LEN
    }
}

/// The 20 bytes a v2 handshake carries for a SHA-256 info-hash: its first 20 bytes
/// (BEP 52, "the 20 byte truncated infohash").
pub fn truncate_v2_info_hash(info_hash_v2: &[u8; 32]) -> [u8; 20] {
    let mut out = [0u8; 20];
    out.copy_from_slice(&info_hash_v2[..20]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: Reserved::NONE.with_extension_protocol(true).with_fast_extension(true).with_dht(true),
            info_hash: [0xaa; 20],
            peer_id: *b"-MY0001-abcdefghijkl",
        }
    }

    #[test]
    fn encode_layout() {
        let mut out = Vec::new();
        sample().encode(&mut out);
        assert_eq!(out.len(), HANDSHAKE_LEN);
        assert_eq!(&out[..20], b"\x13BitTorrent protocol");
        assert_eq!(&out[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        assert_eq!(&out[28..48], &[0xaa; 20]);
        assert_eq!(&out[48..], b"-MY0001-abcdefghijkl");
        assert_eq!(out, sample().to_bytes());
        assert_eq!(sample().encoded_len(), out.len());
    }

    #[test]
    fn decode_roundtrip_and_leaves_trailing_bytes() {
        let mut buf = sample().to_bytes().to_vec();
        buf.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(Handshake::decode(&buf), Ok(HandshakeDecoded::Handshake(sample())));
    }

    #[test]
    fn need_more_is_exact() {
        let buf = sample().to_bytes();
        for cut in 0..HANDSHAKE_LEN {
            assert_eq!(Handshake::decode(&buf[..cut]), Ok(HandshakeDecoded::NeedMore(HANDSHAKE_LEN - cut)));
        }
    }

    #[test]
    fn wrong_protocol_fails_at_first_wrong_byte() {
        assert_eq!(Handshake::decode(b"\x14"), Err(WireError::BadProtocol { offset: 0 }));
        assert_eq!(Handshake::decode(b"\x13BitTorrent Protocol"), Err(WireError::BadProtocol { offset: 12 }));
        let mut buf = sample().to_bytes();
        buf[19] = b'L';
        assert_eq!(Handshake::decode(&buf), Err(WireError::BadProtocol { offset: 19 }));
    }

    #[test]
    fn reserved_bits() {
        let r = Reserved::NONE;
        assert!(!r.extension_protocol() && !r.fast_extension() && !r.dht() && !r.v2_upgrade());
        assert_eq!(r.with_extension_protocol(true).bytes(), [0, 0, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(r.with_fast_extension(true).bytes(), [0, 0, 0, 0, 0, 0, 0, 0x04]);
        assert_eq!(r.with_dht(true).bytes(), [0, 0, 0, 0, 0, 0, 0, 0x01]);
        assert_eq!(r.with_v2_upgrade(true).bytes(), [0, 0, 0, 0, 0, 0, 0, 0x10]);
        let all = Reserved([0xff; 8]);
        assert!(all.extension_protocol() && all.fast_extension() && all.dht() && all.v2_upgrade());
        let cleared = all.with_fast_extension(false);
        assert_eq!(cleared.0[7], 0xfb);
        assert!(!cleared.fast_extension() && cleared.dht());
        let ours = r.with_fast_extension(true).with_dht(true);
        assert_eq!(ours.common(r.with_fast_extension(true)), r.with_fast_extension(true));
    }

    #[test]
    fn v2_truncation_takes_the_first_20_bytes() {
        let full: [u8; 32] = std::array::from_fn(|i| i as u8);
        let t = truncate_v2_info_hash(&full);
        assert_eq!(t[..], full[..20]);
    }
}
