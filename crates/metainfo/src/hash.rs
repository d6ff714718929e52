//! Info-hashes: SHA-1 (v1, BEP 3) and SHA-256 (v2, BEP 52) of the info dictionary's bytes.
//!
//! A torrent has a v1 hash, a v2 hash or both (hybrid); [`InfoHashes`] is an enum so that
//! "neither" cannot be represented.

use std::fmt;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The SHA-1 of a v1 (or hybrid) torrent's info dictionary: the swarm's id on the wire and
/// on the DHT.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHashV1(pub [u8; 20]);

/// The SHA-256 of a v2 (or hybrid) torrent's info dictionary.
///
/// The wire handshake and the DHT use its first 20 bytes, [`truncated`](Self::truncated).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHashV2(pub [u8; 32]);

/// The info-hashes of one torrent: v1, v2, or both for a hybrid torrent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum InfoHashes {
    /// A v1-only torrent (BEP 3).
    V1(InfoHashV1),
    /// A v2-only torrent (BEP 52).
    V2(InfoHashV2),
    /// A hybrid torrent: one info dictionary that carries both formats.
    Hybrid(InfoHashV1, InfoHashV2),
}

impl InfoHashV1 {
    /// SHA-1 of `info_bytes` (the bencoded info dictionary exactly as found in the file).
    pub fn of(info_bytes: &[u8]) -> Self {
        InfoHashV1(Sha1::digest(info_bytes).into())
    }

    /// The raw hash.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Lowercase hex, 40 characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        from_hex(s).map(InfoHashV1)
    }

    /// RFC 4648 base32 (32 characters), the legacy magnet-link form.
    pub fn to_base32(&self) -> String {
        to_base32_20(&self.0)
    }
}

impl InfoHashV2 {
    /// SHA-256 of `info_bytes` (the bencoded info dictionary exactly as found in the file).
    pub fn of(info_bytes: &[u8]) -> Self {
        InfoHashV2(Sha256::digest(info_bytes).into())
    }

    /// The raw hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 20 bytes: the id used in the peer handshake, on the DHT and by trackers.
    pub fn truncated(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out.copy_from_slice(&self.0[..20]);
        out
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        from_hex(s).map(InfoHashV2)
    }
}

impl InfoHashes {
    /// Builds the value from optional parts; `None` when both are missing.
    pub fn from_parts(v1: Option<InfoHashV1>, v2: Option<InfoHashV2>) -> Option<Self> {
        match (v1, v2) {
            (Some(a), Some(b)) => Some(InfoHashes::Hybrid(a, b)),
            (Some(a), None) => Some(InfoHashes::V1(a)),
            (None, Some(b)) => Some(InfoHashes::V2(b)),
            (None, None) => None,
        }
    }

    /// The v1 hash, if the torrent has one.
    pub fn v1(&self) -> Option<InfoHashV1> {
        match self {
            InfoHashes::V1(a) | InfoHashes::Hybrid(a, _) => Some(*a),
            InfoHashes::V2(_) => None,
        }
    }

    /// The v2 hash, if the torrent has one.
    pub fn v2(&self) -> Option<InfoHashV2> {
        match self {
            InfoHashes::V2(b) | InfoHashes::Hybrid(_, b) => Some(*b),
            InfoHashes::V1(_) => None,
        }
    }

    /// Whether both hashes are present.
    pub fn is_hybrid(&self) -> bool {
        matches!(self, InfoHashes::Hybrid(..))
    }

    /// The 20-byte id to put in a handshake: the v1 hash when there is one (v1 peers only
    /// know that one), else the truncated v2 hash.
    pub fn id20(&self) -> [u8; 20] {
        match self {
            InfoHashes::V1(a) | InfoHashes::Hybrid(a, _) => a.0,
            InfoHashes::V2(b) => b.truncated(),
        }
    }

    /// Every 20-byte id the swarm is known by (v1, then truncated v2): the targets of DHT
    /// `get_peers`/`announce_peer` and tracker announces.
    pub fn ids20(&self) -> Vec<[u8; 20]> {
        match self {
            InfoHashes::V1(a) => vec![a.0],
            InfoHashes::V2(b) => vec![b.truncated()],
            InfoHashes::Hybrid(a, b) => vec![a.0, b.truncated()],
        }
    }

    /// Whether `id` (from a handshake or a DHT answer) names this torrent.
    pub fn matches_id20(&self, id: &[u8; 20]) -> bool {
        self.v1().is_some_and(|a| &a.0 == id) || self.v2().is_some_and(|b| &b.truncated() == id)
    }
}

impl fmt::Display for InfoHashV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHashV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV1({})", self.to_hex())
    }
}

impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({})", self.to_hex())
    }
}

impl fmt::Display for InfoHashes {
    /// `v1:<hex>`, `v2:<hex>` or both separated by a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoHashes::V1(a) => write!(f, "v1:{a}"),
            InfoHashes::V2(b) => write!(f, "v2:{b}"),
            InfoHashes::Hybrid(a, b) => write!(f, "v1:{a} v2:{b}"),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// The value of one hex digit, either case.
pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly `2 * N` hex digits into `N` bytes.
pub(crate) fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Some(out)
}

/// RFC 4648 base32 (alphabet `A-Z2-7`, either case, no padding): 32 characters into 20
/// bytes, the legacy form of `btih` in magnet links.
pub(crate) fn from_base32_20(s: &str) -> Option<[u8; 20]> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 20];
    let (mut acc, mut bits, mut pos) = (0u64, 0u32, 0usize);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[pos] = (acc >> bits) as u8;
            pos += 1;
        }
    }
    // 32 * 5 = 160 bits = 20 bytes exactly: nothing is left over.
    Some(out)
}

/// RFC 4648 base32, uppercase, of 20 bytes (32 characters).
pub(crate) fn to_base32_20(bytes: &[u8; 20]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut s = String::with_capacity(32);
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            s.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_of_known_input() {
        // FIPS 180 test vectors for "abc".
        assert_eq!(InfoHashV1::of(b"abc").to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(InfoHashV2::of(b"abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(InfoHashV2::of(b"abc").truncated()[..], InfoHashV2::of(b"abc").0[..20]);
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let h = InfoHashV1([0xab; 20]);
        assert_eq!(InfoHashV1::from_hex(&h.to_hex()), Some(h));
        assert_eq!(InfoHashV1::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(InfoHashV1::from_hex("abc"), None);
        assert_eq!(InfoHashV1::from_hex(&"g".repeat(40)), None);
        let h2 = InfoHashV2([7; 32]);
        assert_eq!(InfoHashV2::from_hex(&h2.to_string()), Some(h2));
    }

    #[test]
    fn base32_round_trip() {
        let bytes: [u8; 20] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let s = to_base32_20(&bytes);
        assert_eq!(s.len(), 32);
        assert_eq!(from_base32_20(&s), Some(bytes));
        assert_eq!(from_base32_20(&s.to_lowercase()), Some(bytes));
        assert_eq!(from_base32_20("0000000000000000000000000000000A"), None);
        assert_eq!(from_base32_20("AAAA"), None);
        // RFC 4648 vector: "foobar" -> "MZXW6YTBOI" (checked through the 20-byte form).
        let mut foobar = [0u8; 20];
        foobar[..6].copy_from_slice(b"foobar");
        assert!(to_base32_20(&foobar).starts_with("MZXW6YTBOI"));
    }

    #[test]
    fn info_hashes_accessors() {
        let a = InfoHashV1([1; 20]);
        let b = InfoHashV2([2; 32]);
        assert_eq!(InfoHashes::from_parts(None, None), None);
        let h = InfoHashes::from_parts(Some(a), Some(b)).expect("both");
        assert!(h.is_hybrid());
        assert_eq!((h.v1(), h.v2()), (Some(a), Some(b)));
        assert_eq!(h.id20(), a.0);
        assert_eq!(h.ids20(), vec![a.0, [2; 20]]);
        assert!(h.matches_id20(&[2; 20]) && h.matches_id20(&[1; 20]) && !h.matches_id20(&[3; 20]));
        let v2 = InfoHashes::V2(b);
        assert_eq!((v2.v1(), v2.id20()), (None, [2; 20]));
        assert_eq!(InfoHashes::V1(a).v2(), None);
        assert!(v2.to_string().starts_with("v2:0202"));
    }
}
