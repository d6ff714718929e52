//! BEP 11 `ut_pex` messages: peers a peer is connected to (added) or no longer (dropped).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use mycel_bencode::{encoded_bytes_len, Dict, Encoder};

use crate::extension::{bytes, LIMITS};
use crate::ExtensionError;

/// Most peers accepted in one `ut_pex` list (each of `added`, `added6`, `dropped`,
/// `dropped6`).
///
/// BEP 11 asks senders to put at most 50 added and 50 dropped peers in a message, except
/// in the first one, which may list every peer the sender is connected to. libtorrent's
/// first message holds up to its connection limit of the torrent (200 by default), so 200
/// accepts every honest sender while a message still decodes into a few kilobytes.
pub const MAX_PEX_PEERS: usize = 200;

/// The BEP 11 flags of an added peer (`added.f`, `added6.f`), one byte each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// 0x01: prefers encryption.
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// 0x02: a seed, or upload only.
    pub const SEED: u8 = 0x02;
    /// 0x04: supports uTP.
    pub const UTP: u8 = 0x04;
    /// 0x08: supports `ut_holepunch`.
    pub const HOLEPUNCH: u8 = 0x08;
    /// 0x10: we connected to it, so it is reachable.
    pub const REACHABLE: u8 = 0x10;

    /// Whether every bit of `flag` is set.
    pub const fn has(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

/// One `ut_pex` message, owned (it is small: BEP 11 caps it at 50 added and 50 dropped
/// peers after the first message; decoding refuses more than [`MAX_PEX_PEERS`] per list).
///
/// Decoding checks that every compact list is whole (6 bytes per IPv4 peer, 18 per IPv6
/// peer), holds at most [`MAX_PEX_PEERS`] peers, and that a flags string has one byte per
/// added peer; an absent flags string reads as no flags. Unknown keys are ignored.
/// Encoding writes all six keys, flags included, as libtorrent does; the sender keeps to
/// the limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UtPex {
    /// `added` with `added.f`: IPv4 peers now connected.
    pub added: Vec<(SocketAddrV4, PexFlags)>,
    /// `added6` with `added6.f`: IPv6 peers now connected.
    pub added6: Vec<(SocketAddrV6, PexFlags)>,
    /// `dropped`: IPv4 peers no longer connected.
    pub dropped: Vec<SocketAddrV4>,
    /// `dropped6`: IPv6 peers no longer connected.
    pub dropped6: Vec<SocketAddrV6>,
}

impl UtPex {
    /// Decodes a `ut_pex` payload (the bytes after the extended id).
    pub fn decode(payload: &[u8]) -> Result<Self, ExtensionError> {
        let value = mycel_bencode::decode_with(payload, &LIMITS)?;
        let d = value.as_dict().ok_or(ExtensionError::NotADict)?;
        let added = compact(d, b"added", "added", v4)?;
        let added6 = compact(d, b"added6", "added6", v6)?;
        Ok(UtPex {
            added: with_flags(added, bytes(d, b"added.f", "added.f")?, "added.f")?,
            added6: with_flags(added6, bytes(d, b"added6.f", "added6.f")?, "added6.f")?,
            dropped: compact(d, b"dropped", "dropped", v4)?,
            dropped6: compact(d, b"dropped6", "dropped6", v6)?,
        })
    }

    /// Appends the canonical bencoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Encoder::new(out);
        e.begin_dict();
        e.key(b"added").bytes_with(self.added.len() * 6, |o| self.added.iter().for_each(|(a, _)| put_v4(o, a)));
        e.key(b"added.f").bytes_with(self.added.len(), |o| o.extend(self.added.iter().map(|(_, f)| f.0)));
        e.key(b"added6").bytes_with(self.added6.len() * 18, |o| self.added6.iter().for_each(|(a, _)| put_v6(o, a)));
        e.key(b"added6.f").bytes_with(self.added6.len(), |o| o.extend(self.added6.iter().map(|(_, f)| f.0)));
        e.key(b"dropped").bytes_with(self.dropped.len() * 6, |o| self.dropped.iter().for_each(|a| put_v4(o, a)));
        e.key(b"dropped6").bytes_with(self.dropped6.len() * 18, |o| self.dropped6.iter().for_each(|a| put_v6(o, a)));
        e.end();
        e.finish();
    }

    /// The exact number of bytes [`encode`](Self::encode) appends.
    pub fn encoded_len(&self) -> usize {
        let kv = |key: &[u8], len: usize| encoded_bytes_len(key.len()) + encoded_bytes_len(len);
        2 + kv(b"added", self.added.len() * 6)
            + kv(b"added.f", self.added.len())
            + kv(b"added6", self.added6.len() * 18)
            + kv(b"added6.f", self.added6.len())
            + kv(b"dropped", self.dropped.len() * 6)
            + kv(b"dropped6", self.dropped6.len() * 18)
    }
}

fn compact<A, const N: usize>(
    d: &Dict<'_>,
    key: &[u8],
    name: &'static str,
    parse: fn(&[u8; N]) -> A,
) -> Result<Vec<A>, ExtensionError> {
    let Some(b) = bytes(d, key, name)? else {
        return Ok(Vec::new());
    };
    if b.len() % N != 0 {
        return Err(ExtensionError::BadLength { key: name, len: b.len() });
    }
    if b.len() / N > MAX_PEX_PEERS {
        return Err(ExtensionError::TooManyPeers { key: name, count: b.len() / N, max: MAX_PEX_PEERS });
    }
    Ok(b.chunks_exact(N).filter_map(|c| <&[u8; N]>::try_from(c).ok()).map(parse).collect())
}

fn with_flags<A>(
    addrs: Vec<A>,
    flags: Option<&[u8]>,
    name: &'static str,
) -> Result<Vec<(A, PexFlags)>, ExtensionError> {
    match flags {
        None => Ok(addrs.into_iter().map(|a| (a, PexFlags::default())).collect()),
        Some(f) if f.len() == addrs.len() => Ok(addrs.into_iter().zip(f.iter().map(|&b| PexFlags(b))).collect()),
        Some(f) => Err(ExtensionError::FlagsMismatch { key: name, flags: f.len(), peers: addrs.len() }),
    }
}

fn v4(b: &[u8; 6]) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(b[0], b[1], b[2], b[3]), u16::from_be_bytes([b[4], b[5]]))
}

fn v6(b: &[u8; 18]) -> SocketAddrV6 {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[..16]);
    SocketAddrV6::new(Ipv6Addr::from(ip), u16::from_be_bytes([b[16], b[17]]), 0, 0)
}

fn put_v4(out: &mut Vec<u8>, a: &SocketAddrV4) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

fn put_v6(out: &mut Vec<u8>, a: &SocketAddrV6) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(p: &UtPex) -> Vec<u8> {
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(out.len(), p.encoded_len());
        out
    }

    #[test]
    fn roundtrip() {
        let p = UtPex {
            added: vec![
                (SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 6881), PexFlags(PexFlags::SEED | PexFlags::UTP)),
                (SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 1), PexFlags(0)),
            ],
            added6: vec![(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 51413, 0, 0), PexFlags(PexFlags::REACHABLE))],
            dropped: vec![SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 80)],
            dropped6: vec![],
        };
        let out = enc(&p);
        assert!(out.starts_with(b"d5:added12:\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x02\x00\x017:added.f2:\x06\x00"));
        assert_eq!(UtPex::decode(&out), Ok(p.clone()));
        assert!(p.added[0].1.has(PexFlags::SEED) && !p.added[0].1.has(PexFlags::HOLEPUNCH));
        assert_eq!(enc(&UtPex::default()), b"d5:added0:7:added.f0:6:added60:8:added6.f0:7:dropped0:8:dropped60:e");
    }

    #[test]
    fn flags_optional_and_lengths_checked() {
        let p = UtPex::decode(b"d5:added6:\x7f\x00\x00\x01\x00\x50e").expect("valid");
        assert_eq!(p.added, vec![(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 80), PexFlags(0))]);
        assert_eq!(
            UtPex::decode(b"d5:added5:\x7f\x00\x00\x01\x00e"),
            Err(ExtensionError::BadLength { key: "added", len: 5 })
        );
        assert_eq!(
            UtPex::decode(b"d5:added6:\x7f\x00\x00\x01\x00\x507:added.f2:\x00\x00e"),
            Err(ExtensionError::FlagsMismatch { key: "added.f", flags: 2, peers: 1 })
        );
        assert_eq!(UtPex::decode(b"d8:dropped6i1ee"), Err(ExtensionError::WrongType("dropped6")));
        assert_eq!(UtPex::decode(b"le"), Err(ExtensionError::NotADict));
    }

    #[test]
    fn peer_count_is_capped() {
        let list = |n: usize| {
            let mut out = format!("d7:dropped{}:", n * 6).into_bytes();
            out.extend(std::iter::repeat_n([10, 0, 0, 1, 0x1a, 0xe1], n).flatten());
            out.push(b'e');
            out
        };
        assert_eq!(UtPex::decode(&list(MAX_PEX_PEERS)).map(|p| p.dropped.len()), Ok(MAX_PEX_PEERS));
        assert_eq!(
            UtPex::decode(&list(MAX_PEX_PEERS + 1)),
            Err(ExtensionError::TooManyPeers { key: "dropped", count: MAX_PEX_PEERS + 1, max: MAX_PEX_PEERS })
        );
        // Unknown keys are ignored.
        assert_eq!(UtPex::decode(b"d1:xi1ee"), Ok(UtPex::default()));
    }
}
