//! Compact address and node forms (BEP 5, BEP 32).
//!
//! "Compact IP-address/port info" is the address in network byte order followed by the port
//! in network byte order: 6 bytes for IPv4, 18 for IPv6. "Compact node info" prefixes it
//! with the 20-byte node id: 26 bytes (`nodes`) or 38 bytes (`nodes6`).
//!
//! The compact form has no room for an IPv6 flow label or scope id: they are dropped on
//! encoding and zero after decoding.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::{NodeId, NodeInfo};

/// Length of a compact IPv4 address and port.
pub const COMPACT_ADDR_V4_LEN: usize = 6;
/// Length of a compact IPv6 address and port.
pub const COMPACT_ADDR_V6_LEN: usize = 18;
/// Length of one entry of `nodes` (id + IPv4 address + port).
pub const COMPACT_NODE_V4_LEN: usize = 20 + COMPACT_ADDR_V4_LEN;
/// Length of one entry of `nodes6` (id + IPv6 address + port).
pub const COMPACT_NODE_V6_LEN: usize = 20 + COMPACT_ADDR_V6_LEN;

/// Appends the compact form of `addr`: 6 bytes for IPv4, 18 for IPv6.
pub fn encode_compact_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    // Fixed-size copies compile to plain stores; a variable-length one would call memcpy.
    let [p0, p1] = addr.port().to_be_bytes();
    match addr {
        SocketAddr::V4(a) => {
            let [a0, a1, a2, a3] = a.ip().octets();
            out.extend_from_slice(&[a0, a1, a2, a3, p0, p1]);
        }
        SocketAddr::V6(a) => {
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&[p0, p1]);
        }
    }
}

/// Decodes a compact address: 6 bytes (IPv4) or 18 bytes (IPv6), any other length is `None`.
///
/// An IPv4-mapped IPv6 address stays a `SocketAddr::V6`, so re-encoding gives the same bytes.
pub fn decode_compact_addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        COMPACT_ADDR_V4_LEN => {
            let (ip, port) = b.split_first_chunk::<4>()?;
            let port = u16::from_be_bytes(*port.first_chunk::<2>()?);
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(*ip), port)))
        }
        COMPACT_ADDR_V6_LEN => {
            let (ip, port) = b.split_first_chunk::<16>()?;
            let port = u16::from_be_bytes(*port.first_chunk::<2>()?);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(*ip), port, 0, 0)))
        }
        _ => None,
    }
}

/// Length of the compact form of `addr` (6 or 18).
pub fn compact_addr_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        COMPACT_ADDR_V4_LEN
    } else {
        COMPACT_ADDR_V6_LEN
    }
}

impl NodeInfo {
    /// Appends the compact node info: id then compact address (26 or 38 bytes).
    pub fn encode_compact(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        encode_compact_addr(&self.addr, out);
    }

    /// Decodes one compact node info of 26 (IPv4) or 38 (IPv6) bytes.
    pub fn decode_compact(b: &[u8]) -> Option<NodeInfo> {
        let (id, addr) = b.split_first_chunk::<20>()?;
        Some(NodeInfo { id: NodeId(*id), addr: decode_compact_addr(addr)? })
    }
}

/// Decodes a concatenation of compact node infos of `entry_len` bytes each; the caller has
/// checked that the length is a multiple of it.
pub(crate) fn decode_nodes(b: &[u8], entry_len: usize) -> Vec<NodeInfo> {
    // Sized up front: `filter_map` would hide the exact count from `collect`.
    let mut nodes = Vec::with_capacity(b.len() / entry_len);
    nodes.extend(b.chunks_exact(entry_len).filter_map(NodeInfo::decode_compact));
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6_round_trip() {
        let v4: SocketAddr = "1.2.3.4:6881".parse().expect("literal");
        let mut out = Vec::new();
        encode_compact_addr(&v4, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 0x1a, 0xe1]);
        assert_eq!(decode_compact_addr(&out), Some(v4));
        assert_eq!(compact_addr_len(&v4), 6);

        let v6: SocketAddr = "[2001:db8::1]:443".parse().expect("literal");
        let mut out = Vec::new();
        encode_compact_addr(&v6, &mut out);
        assert_eq!(out.len(), 18);
        assert_eq!(&out[16..], &[0x01, 0xbb]);
        assert_eq!(decode_compact_addr(&out), Some(v6));
        assert_eq!(compact_addr_len(&v6), 18);
    }

    #[test]
    fn mapped_v6_stays_v6() {
        let mapped: SocketAddr = "[::ffff:1.2.3.4]:1".parse().expect("literal");
        let mut out = Vec::new();
        encode_compact_addr(&mapped, &mut out);
        assert_eq!(decode_compact_addr(&out), Some(mapped));
    }

    #[test]
    fn other_lengths_are_none() {
        for len in [0, 1, 5, 7, 17, 19, 26] {
            assert_eq!(decode_compact_addr(&vec![0; len]), None, "{len}");
        }
    }

    #[test]
    fn nodes() {
        let node = NodeInfo { id: NodeId([7; 20]), addr: "9.8.7.6:5".parse().expect("literal") };
        let mut out = Vec::new();
        node.encode_compact(&mut out);
        node.encode_compact(&mut out);
        assert_eq!(out.len(), 2 * COMPACT_NODE_V4_LEN);
        assert_eq!(decode_nodes(&out, COMPACT_NODE_V4_LEN), vec![node, node]);
        assert_eq!(NodeInfo::decode_compact(&out[..25]), None);
    }
}
