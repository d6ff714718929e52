//! BEP 43 by observation: is this node reachable, or should it say `ro`?
//!
//! A node behind a NAT or a firewall is queried only by the nodes it has itself written to
//! within the NAT's mapping lifetime. Once such a node enters other nodes' routing tables, every
//! lookup that reaches it from a third node waits out a timeout, which is what makes lookups slow
//! on the real Mainline DHT. BEP 43 gives the fix (`ro = 1`: keep me out of your table) but not
//! the detection; this module supplies it.
//!
//! The test: a query from an address we have not sent to within `memory` (longer than common
//! NAT mapping lifetimes) is *unsolicited*, and can only have arrived because the node is
//! reachable. A node that has seen none for a whole probe `window` declares itself read-only; a
//! read-only node keeps listening (an unsolicited query ends read-only mode at once) and probes
//! again, with `ro` cleared, every `recheck`. A node found reachable stays so and stops
//! tracking.
//!
//! Sent addresses are kept in two generations of a small Bloom filter (8,192 bits each, two
//! keyed hash functions), each generation covering `memory`: an address written to at `t` is
//! remembered until at least `t + memory`, at most twice that. 2 KiB per node whatever the
//! traffic, which matters in the simulator (100,000 nodes in one process). A false positive
//! makes an unsolicited query look solicited, which only delays the proof of reachability
//! until the next one (a node is proven reachable by any single unsolicited query); with 2,000
//! destinations in a generation about one in seven is missed. Once a node is found reachable
//! the filter is no longer touched.

use std::hash::Hasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bits per generation of the filter of recent destinations.
const FILTER_BITS: usize = 8192;

/// One generation of the filter (empty, without memory, once we are known reachable).
#[derive(Clone)]
struct Filter(Vec<u64>);

impl Filter {
    fn new() -> Self {
        Filter(vec![0; FILTER_BITS / 64])
    }

    fn none() -> Self {
        Filter(Vec::new())
    }

    fn bits(h: u64) -> [usize; 2] {
        [(h as usize) % FILTER_BITS, ((h >> 32) as usize) % FILTER_BITS]
    }

    fn insert(&mut self, h: u64) {
        for b in Self::bits(h) {
            self.0[b / 64] |= 1 << (b % 64);
        }
    }

    fn contains(&self, h: u64) -> bool {
        !self.0.is_empty() && Self::bits(h).iter().all(|b| self.0[b / 64] & (1 << (b % 64)) != 0)
    }
}

/// Tunables of the detection (see the module docs). A destination counts as recently written
/// to for between `memory` and twice that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachProbe {
    /// How long a node must go without an unsolicited query before it declares itself read-only.
    pub window: Duration,
    /// How long a destination counts as "recently written to" (longer than NAT mapping lifetimes).
    pub memory: Duration,
    /// How long a read-only node waits before probing again with `ro` cleared.
    pub recheck: Duration,
}

impl Default for ReachProbe {
    fn default() -> Self {
        ReachProbe {
            window: Duration::from_secs(10 * 60),
            memory: Duration::from_secs(5 * 60),
            recheck: Duration::from_secs(60 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Undecided until `until`; `ro` not set.
    Probing { until: Instant },
    /// An unsolicited query arrived: we are reachable.
    Reachable,
    /// No unsolicited query during a whole window: `ro` set until `until`, then probe again.
    ReadOnly { until: Instant },
}

/// The detector. Deterministic: the hash key comes from the node's seed.
pub(crate) struct Reachability {
    probe: ReachProbe,
    state: State,
    key: (u64, u64),
    /// Destinations written to in this generation and in the one before.
    current: Filter,
    previous: Filter,
    /// When `current` becomes `previous`.
    next_rotation: Instant,
}

impl Reachability {
    pub fn new(probe: ReachProbe, key: (u64, u64), now: Instant) -> Self {
        Reachability {
            probe,
            state: State::Probing { until: now + probe.window },
            key,
            current: Filter::new(),
            previous: Filter::new(),
            next_rotation: now + probe.memory,
        }
    }

    /// Whether `ro` should be set in our messages now.
    pub fn read_only(&self) -> bool {
        matches!(self.state, State::ReadOnly { .. })
    }

    /// Whether an unsolicited query has shown us reachable.
    pub fn reachable(&self) -> bool {
        self.state == State::Reachable
    }

    /// We sent a datagram to `to`.
    pub fn on_send(&mut self, now: Instant, to: SocketAddr) {
        if self.state == State::Reachable {
            return;
        }
        self.rotate(now);
        self.current.insert(self.hash(to));
    }

    /// A query arrived from `from` (and will be answered). Returns true when it proved us
    /// reachable just now.
    pub fn on_query(&mut self, now: Instant, from: SocketAddr) -> bool {
        if self.state == State::Reachable {
            return false;
        }
        self.rotate(now);
        let h = self.hash(from);
        if self.current.contains(h) || self.previous.contains(h) {
            // Solicited. Our answer keeps the NAT's mapping towards it open, like a send.
            self.current.insert(h);
            return false;
        }
        self.state = State::Reachable;
        self.current = Filter::none();
        self.previous = Filter::none();
        true
    }

    /// Advances the state at `now`; returns true when `ro` changed.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.state {
            State::Probing { until } if now >= until => {
                self.state = State::ReadOnly { until: now + self.probe.recheck };
                true
            }
            State::ReadOnly { until } if now >= until => {
                self.state = State::Probing { until: now + self.probe.window };
                true
            }
            _ => false,
        }
    }

    /// Starts a new generation when the current one has covered `memory`.
    fn rotate(&mut self, now: Instant) {
        if now < self.next_rotation {
            return;
        }
        if now >= self.next_rotation + self.probe.memory {
            // Idle for two generations: everything recorded is older than `memory`.
            self.previous = Filter::new();
        } else {
            std::mem::swap(&mut self.previous, &mut self.current);
        }
        self.current = Filter::new();
        self.next_rotation = now + self.probe.memory;
    }

    /// When [`Reachability::handle_timeout`] next has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Probing { until } | State::ReadOnly { until } => Some(until),
            State::Reachable => None,
        }
    }

    /// A hash of `addr` keyed with our secret (std's SipHash with the key fed first), so a
    /// remote party cannot aim collisions at us.
    fn hash(&self, addr: SocketAddr) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_u64(self.key.0);
        h.write_u64(self.key.1);
        std::hash::Hash::hash(&addr, &mut h);
        h.finish()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, i], 6881))
    }

    fn probe() -> ReachProbe {
        ReachProbe {
            window: Duration::from_secs(600),
            memory: Duration::from_secs(300),
            recheck: Duration::from_secs(3600),
        }
    }

    #[test]
    fn queries_only_from_contacted_nodes_make_a_node_read_only() {
        let t0 = Instant::now();
        let mut r = Reachability::new(probe(), (1, 2), t0);
        for i in 0..10 {
            let now = t0 + Duration::from_secs(i * 50);
            r.on_send(now, addr(i as u8));
            assert!(!r.on_query(now + Duration::from_secs(1), addr(i as u8)), "an answer-back is solicited");
            assert!(!r.handle_timeout(now));
        }
        assert!(!r.read_only());
        assert!(r.handle_timeout(t0 + Duration::from_secs(600)));
        assert!(r.read_only());
        // After the recheck period it probes again, without `ro`.
        assert!(r.handle_timeout(t0 + Duration::from_secs(600 + 3600)));
        assert!(!r.read_only() && !r.reachable());
    }

    #[test]
    fn an_unsolicited_query_proves_reachability_even_when_read_only() {
        let t0 = Instant::now();
        let mut r = Reachability::new(probe(), (1, 2), t0);
        assert!(r.handle_timeout(t0 + Duration::from_secs(600)));
        assert!(r.read_only());
        assert!(r.on_query(t0 + Duration::from_secs(700), addr(9)));
        assert!(r.reachable() && !r.read_only());
        assert_eq!(r.next_timeout(), None);
    }

    #[test]
    fn a_contact_older_than_the_nat_memory_is_unsolicited() {
        let t0 = Instant::now();
        let mut r = Reachability::new(probe(), (1, 2), t0);
        r.on_send(t0, addr(1));
        assert!(!r.on_query(t0 + Duration::from_secs(299), addr(1)));
        // Our answer at 299 s kept the mapping open.
        assert!(!r.on_query(t0 + Duration::from_secs(598), addr(1)));
        // Remembered for between one and two generations of `memory` after the last contact.
        assert!(r.on_query(t0 + Duration::from_secs(598 + 2 * 300 + 1), addr(1)));
    }
}
