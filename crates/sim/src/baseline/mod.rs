//! The baselines mycel's Kademlia is measured against, each a small sans-IO node on the same
//! network model and workload: Gnutella-style flooding, Chord finger routing, and a zero-hop
//! full-membership ring.
//!
//! They speak a compact binary format of their own (type byte, then fixed fields; addresses
//! as 4-byte IPv4 + 2-byte port), so their byte counts are not inflated by bencode. Their
//! routing state comes from a membership view the simulator publishes periodically (see
//! [`crate::node::SimNode::handle_membership`]): this models ideal Chord stabilization and
//! zero-hop gossip with a dissemination delay of one period, and a Gnutella host cache.

mod chord;
mod flood;
mod zerohop;

pub use chord::ChordNode;
pub use flood::FloodNode;
pub use zerohop::ZeroHopNode;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mycel_krpc::{NodeId, NodeInfo};

/// The longest request timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(2);

/// Per-request timeout from measured RTTs (Jacobson/Karels), like mycel's node: srtt + 4·rttvar
/// within [250 ms, 2 s], 2 s before the first sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl Rtt {
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(s) => {
                self.rttvar = (self.rttvar * 3 + s.abs_diff(rtt)) / 4;
                self.srtt = Some((s * 7 + rtt) / 8);
            }
        }
    }

    pub fn timeout(&self) -> Duration {
        match self.srtt {
            None => MAX_TIMEOUT,
            Some(s) => (s + self.rttvar * 4).clamp(Duration::from_millis(250), MAX_TIMEOUT),
        }
    }
}

/// Requests in flight of one node: transaction ids, per-request timeouts, RTT samples.
#[derive(Default)]
pub(crate) struct Requests {
    next_tx: u32,
    pending: BTreeMap<u32, (u64, SocketAddr, Instant)>,
    timers: BTreeSet<(Instant, u32)>,
    rtt: Rtt,
}

impl Requests {
    /// Tracks a request of lookup `tag` to `addr`; returns its transaction id. A retry waits
    /// the maximum timeout (backing off, as TCP does), since a node that missed the adaptive
    /// timeout once is likely slow rather than gone.
    pub fn start(&mut self, now: Instant, tag: u64, addr: SocketAddr, retry: bool) -> u32 {
        self.next_tx = self.next_tx.wrapping_add(1);
        let tx = self.next_tx;
        self.pending.insert(tx, (tag, addr, now));
        let timeout = if retry { MAX_TIMEOUT } else { self.rtt.timeout() };
        self.timers.insert((now + timeout, tx));
        tx
    }

    /// An answer to `tx` from `from`: the lookup's tag, if it matches a request in flight.
    pub fn answer(&mut self, now: Instant, tx: u32, from: SocketAddr) -> Option<u64> {
        let (tag, addr, sent) = *self.pending.get(&tx)?;
        if addr != from {
            return None;
        }
        self.pending.remove(&tx);
        self.timers.retain(|t| t.1 != tx);
        self.rtt.sample(now.saturating_duration_since(sent));
        Some(tag)
    }

    /// Requests whose timeout has passed: (tag, address).
    pub fn expired(&mut self, now: Instant) -> Vec<(u64, SocketAddr)> {
        let mut out = Vec::new();
        while let Some(&(at, tx)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some((tag, addr, _)) = self.pending.remove(&tx) {
                out.push((tag, addr));
            }
        }
        out
    }

    /// The next request timeout.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|t| t.0)
    }
}

/// Hard deadline of one lookup (as mycel's default).
pub(crate) const LOOKUP_DEADLINE: Duration = Duration::from_secs(20);

/// A little-endian-free byte writer/reader for the baselines' messages.
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn new(kind: u8) -> Self {
        Writer(vec![kind])
    }
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn id(mut self, v: &[u8; 20]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    pub fn addr(mut self, a: SocketAddr) -> Self {
        let ip = match a {
            SocketAddr::V4(a) => a.ip().octets(),
            SocketAddr::V6(_) => [0; 4],
        };
        self.0.extend_from_slice(&ip);
        self.0.extend_from_slice(&a.port().to_be_bytes());
        self
    }
    pub fn nodes(mut self, nodes: &[NodeInfo]) -> Self {
        self.0.push(nodes.len().min(255) as u8);
        for n in nodes.iter().take(255) {
            self = self.id(&n.id.0).addr(n.addr);
        }
        self
    }
}

/// Reads fields in order; every getter returns `None` past the end (malformed input is
/// dropped, never a panic).
pub(crate) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }
    pub fn id(&mut self) -> Option<[u8; 20]> {
        self.take(20)?.try_into().ok()
    }
    pub fn addr(&mut self) -> Option<SocketAddr> {
        let b = self.take(6)?;
        Some(SocketAddr::from((Ipv4Addr::new(b[0], b[1], b[2], b[3]), u16::from_be_bytes([b[4], b[5]]))))
    }
    pub fn nodes(&mut self) -> Option<Vec<NodeInfo>> {
        let n = self.u8()?;
        (0..n).map(|_| Some(NodeInfo { id: NodeId(self.id()?), addr: self.addr()? })).collect()
    }
}

/// Ring arithmetic on 160-bit ids (big-endian).
pub(crate) mod ring {
    /// `b - a` modulo 2^160: how far `b` lies clockwise from `a`.
    pub fn dist(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
        let mut out = [0u8; 20];
        let mut borrow = 0i16;
        for i in (0..20).rev() {
            let mut d = i16::from(b[i]) - i16::from(a[i]) - borrow;
            borrow = 0;
            if d < 0 {
                d += 256;
                borrow = 1;
            }
            out[i] = d as u8;
        }
        out
    }

    /// `a + 2^bit` modulo 2^160 (bit 0 is the least significant).
    pub fn add_pow2(a: &[u8; 20], bit: usize) -> [u8; 20] {
        let mut out = *a;
        let mut i = 19 - bit / 8;
        let mut carry = 1u16 << (bit % 8);
        loop {
            let s = u16::from(out[i]) + carry;
            out[i] = s as u8;
            carry = s >> 8;
            if carry == 0 || i == 0 {
                break;
            }
            i -= 1;
        }
        out
    }

    /// Whether `x` lies in the ring interval (a, b].
    pub fn in_half_open(a: &[u8; 20], x: &[u8; 20], b: &[u8; 20]) -> bool {
        if a < b {
            a < x && x <= b
        } else {
            x > a || x <= b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_arithmetic() {
        let mut a = [0u8; 20];
        a[19] = 10;
        let mut b = [0u8; 20];
        b[19] = 3;
        let d = ring::dist(&a, &b);
        assert_eq!(d[19], 249);
        assert!(d[..19].iter().all(|x| *x == 0xff), "wraps around");
        let c = ring::add_pow2(&[0xff; 20], 0);
        assert_eq!(c, [0; 20], "carry wraps");
        assert_eq!(ring::add_pow2(&[0; 20], 159)[0], 0x80);
        assert!(ring::in_half_open(&[5; 20], &[6; 20], &[7; 20]));
        assert!(ring::in_half_open(&[5; 20], &[7; 20], &[7; 20]));
        assert!(!ring::in_half_open(&[5; 20], &[5; 20], &[7; 20]));
        assert!(ring::in_half_open(&[9; 20], &[1; 20], &[2; 20]), "wrapping interval");
    }

    #[test]
    fn codec_round_trip_and_truncation() {
        let n = NodeInfo { id: NodeId([3; 20]), addr: "10.0.0.9:6881".parse().expect("literal") };
        let w = Writer::new(7).u32(5).u64(9).nodes(&[n, n]);
        let mut r = Reader(&w.0[1..]);
        assert_eq!((r.u32(), r.u64()), (Some(5), Some(9)));
        assert_eq!(r.nodes(), Some(vec![n, n]));
        assert_eq!(Reader(&w.0[13..30]).nodes(), None, "truncated");
    }
}
