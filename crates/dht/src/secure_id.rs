//! BEP 42: node ids tied to the node's external IP, and the vote that learns that IP.
//!
//! A secure id's first 21 bits are the top of `crc32c((ip & mask) | (r << shift))`, where `r`
//! is the id's last byte's low 3 bits. One IP can then hold only eight id prefixes, so an
//! attacker needs IP addresses, not just ids, to surround a target. Local and private
//! addresses are exempt (a node there cannot know a public IP to derive from).
//!
//! Pure functions only: the node decides what to do with an id that fails the check (BEP 42:
//! no token, not a lookup result, not stored); that enforcement is not wired in yet.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use mycel_krpc::NodeId;

const V4_MASK: u32 = 0x030f_3fff;
const V6_MASK: u64 = 0x0103_070f_1f3f_7fff;

/// CRC-32C (Castagnoli), bitwise: 8 bytes per id check do not need a table.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82f6_3b78 & mask);
        }
    }
    !crc
}

/// The CRC whose top 21 bits a secure id for `ip` with random `r` (0..=7) must start with.
pub fn secure_crc(ip: IpAddr, r: u8) -> u32 {
    let r = r & 7;
    match ip {
        IpAddr::V4(v4) => {
            let masked = (u32::from(v4) & V4_MASK) | (u32::from(r) << 29);
            crc32c(&masked.to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let high = (u128::from(v6) >> 64) as u64;
            let masked = (high & V6_MASK) | (u64::from(r) << 61);
            crc32c(&masked.to_be_bytes())
        }
    }
}

/// A secure id for `ip`: bytes from `random` except the CRC prefix (21 bits) and the last
/// byte, which is `rand` (its low 3 bits are the `r` of the CRC).
pub fn secure_id(ip: IpAddr, rand: u8, random: [u8; 20]) -> NodeId {
    let crc = secure_crc(ip, rand & 7);
    let mut id = random;
    id[0] = (crc >> 24) as u8;
    id[1] = (crc >> 16) as u8;
    id[2] = ((crc >> 8) as u8 & 0xf8) | (random[2] & 0x07);
    id[19] = rand;
    NodeId(id)
}

/// Whether `id` is a valid BEP 42 id for a node at `ip`. Local, private and other
/// non-public addresses are exempt (always valid).
pub fn is_secure_id(id: &NodeId, ip: IpAddr) -> bool {
    if is_exempt(ip) {
        return true;
    }
    let crc = secure_crc(ip, id.0[19] & 7);
    id.0[0] == (crc >> 24) as u8 && id.0[1] == (crc >> 16) as u8 && id.0[2] & 0xf8 == (crc >> 8) as u8 & 0xf8
}

/// Addresses BEP 42 does not apply to: loopback, private, link-local, unspecified (and IPv6
/// unique-local and link-local).
pub fn is_exempt(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Learns our external IP from the `ip` field of responses: one vote per responding IP
/// (a single node cannot stuff the ballot), the IP with the most votes wins once it has
/// `quorum` of them. Bounded: the `max_voters` most recent voters count, so a changed
/// address wins once enough nodes have seen the new one.
#[derive(Debug, Clone)]
pub struct IpVote {
    votes: BTreeMap<IpAddr, IpAddr>,
    order: VecDeque<IpAddr>,
    quorum: usize,
    max_voters: usize,
}

impl IpVote {
    /// A vote that decides with `quorum` agreeing voters, remembering at most `max_voters`.
    pub fn new(quorum: usize, max_voters: usize) -> Self {
        IpVote { votes: BTreeMap::new(), order: VecDeque::new(), quorum: quorum.max(1), max_voters: max_voters.max(1) }
    }

    /// `voter` says our address is `seen`. A voter's later vote replaces its earlier one.
    pub fn add(&mut self, voter: IpAddr, seen: IpAddr) {
        if self.votes.insert(voter, seen).is_some() {
            self.order.retain(|v| *v != voter);
        }
        self.order.push_back(voter);
        while self.order.len() > self.max_voters {
            if let Some(oldest) = self.order.pop_front() {
                self.votes.remove(&oldest);
            }
        }
    }

    /// Forgets every vote.
    pub fn clear(&mut self) {
        self.votes.clear();
        self.order.clear();
    }

    /// The winning address, once it has a quorum (ties: the lower address, deterministically).
    pub fn winner(&self) -> Option<IpAddr> {
        let mut tally: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for seen in self.votes.values() {
            *tally.entry(*seen).or_default() += 1;
        }
        let (ip, n) = tally.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
        (n >= self.quorum).then_some(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("literal ip")
    }

    fn hex20(s: &str) -> [u8; 20] {
        let mut out = [0u8; 20];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex literal");
        }
        out
    }

    /// BEP 42's test vectors: IP, rand, example id.
    const VECTORS: [(&str, u8, &str); 5] = [
        ("124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
        ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
        ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
        ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
        ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
    ];

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn bep42_vectors() {
        for (addr, rand, id) in VECTORS {
            let expected = NodeId(hex20(id));
            assert!(is_secure_id(&expected, ip(addr)), "{addr}: {id} should be valid");
            // Same random bytes as the example: the generated id is the example id.
            assert_eq!(secure_id(ip(addr), rand, expected.0), expected, "{addr}");
            // Another IP does not accept it.
            assert!(!is_secure_id(&expected, ip("1.2.3.4")), "{addr}: valid for another ip");
        }
    }

    #[test]
    fn ipv6_ids_round_trip_and_local_addresses_are_exempt() {
        let v6 = ip("2001:db8:1234:5678::1");
        for rand in 0..=255u8 {
            assert!(is_secure_id(&secure_id(v6, rand, [rand; 20]), v6));
        }
        let any = NodeId([0xaa; 20]);
        for local in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "169.254.1.1", "::1", "fd00::1", "fe80::1"]
        {
            assert!(is_secure_id(&any, ip(local)), "{local} is exempt");
        }
        assert!(!is_secure_id(&any, ip("8.8.8.8")));
    }

    #[test]
    fn ip_vote_needs_a_quorum_of_distinct_voters() {
        let mut vote = IpVote::new(3, 4);
        let (me, liar) = (ip("203.0.113.7"), ip("198.51.100.1"));
        vote.add(ip("1.1.1.1"), me);
        vote.add(ip("1.1.1.1"), me);
        vote.add(ip("2.2.2.2"), liar);
        assert_eq!(vote.winner(), None, "one voter counts once");
        vote.add(ip("3.3.3.3"), me);
        vote.add(ip("4.4.4.4"), me);
        assert_eq!(vote.winner(), Some(me));
        // Bounded to the 4 latest voters: once they all see a new address, it wins.
        let new = ip("203.0.113.8");
        for v in ["5.5.5.5", "6.6.6.6", "7.7.7.7"] {
            vote.add(ip(v), new);
        }
        assert_eq!(vote.winner(), Some(new));
    }
}
