//! The peer store: who announced which info-hash, bounded in every dimension and expiring.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycel_krpc::InfoHash;
use rand::seq::SliceRandom;
use rand::Rng;

/// Result of storing an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreOutcome {
    /// Stored (new peer or refreshed expiry).
    Stored,
    /// The store holds its maximum of info-hashes; this new one was refused.
    TooManyInfoHashes,
}

struct Swarm {
    /// Peers with their expiry time. Small (capped), so a Vec beats a map.
    peers: Vec<(SocketAddr, Instant)>,
}

/// Peers announced to us. A `HashMap` is fine here: it is only used for lookups, and the
/// expiry sweep's order never reaches an output.
pub(crate) struct PeerStore {
    swarms: HashMap<InfoHash, Swarm>,
    max_info_hashes: usize,
    max_peers: usize,
    ttl: Duration,
    peers: usize,
}

impl PeerStore {
    pub fn new(max_info_hashes: usize, max_peers: usize, ttl: Duration) -> Self {
        PeerStore { swarms: HashMap::new(), max_info_hashes, max_peers, ttl, peers: 0 }
    }

    pub fn info_hashes(&self) -> usize {
        self.swarms.len()
    }

    pub fn peers(&self) -> usize {
        self.peers
    }

    /// Stores `peer` for `ih`. When the swarm is full, the peer expiring soonest makes room
    /// (a newcomer is more likely to be alive than the stalest entry).
    pub fn store(&mut self, now: Instant, ih: InfoHash, peer: SocketAddr) -> StoreOutcome {
        let expires = now + self.ttl;
        if !self.swarms.contains_key(&ih) && self.swarms.len() >= self.max_info_hashes {
            return StoreOutcome::TooManyInfoHashes;
        }
        let swarm = self.swarms.entry(ih).or_insert_with(|| Swarm { peers: Vec::new() });
        if let Some(p) = swarm.peers.iter_mut().find(|(a, _)| *a == peer) {
            p.1 = expires;
            return StoreOutcome::Stored;
        }
        if swarm.peers.len() >= self.max_peers {
            if let Some((i, _)) = swarm.peers.iter().enumerate().min_by_key(|(_, (_, e))| *e) {
                swarm.peers.swap_remove(i);
                self.peers -= 1;
            }
        }
        swarm.peers.push((peer, expires));
        self.peers += 1;
        StoreOutcome::Stored
    }

    /// Up to `max` live peers of `ih`, a random sample when there are more.
    pub fn get(&self, now: Instant, ih: &InfoHash, max: usize, rng: &mut impl Rng) -> Vec<SocketAddr> {
        let Some(swarm) = self.swarms.get(ih) else { return Vec::new() };
        let mut live: Vec<SocketAddr> = swarm.peers.iter().filter(|(_, e)| *e > now).map(|(a, _)| *a).collect();
        if live.len() > max {
            live.partial_shuffle(rng, max);
            live.truncate(max);
        }
        live
    }

    /// Up to `max` info-hashes with live peers, a random sample when there are more, and how
    /// many info-hashes are stored (BEP 51). The sample is sorted before sampling so the
    /// result depends only on the rng, not on the map's order.
    pub fn sample(&self, max: usize, rng: &mut impl Rng) -> (Vec<InfoHash>, usize) {
        let mut all: Vec<InfoHash> = self.swarms.keys().copied().collect();
        all.sort();
        let total = all.len();
        if total > max {
            all.partial_shuffle(rng, max);
            all.truncate(max);
        }
        (all, total)
    }

    /// Drops expired peers and empty swarms.
    pub fn expire(&mut self, now: Instant) {
        let mut removed = 0;
        self.swarms.retain(|_, s| {
            let before = s.peers.len();
            s.peers.retain(|(_, e)| *e > now);
            removed += before - s.peers.len();
            !s.peers.is_empty()
        });
        self.peers -= removed;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], i))
    }

    #[test]
    fn bounded_and_expiring() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(1800);
        let mut store = PeerStore::new(2, 3, ttl);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (a, b, c) = (InfoHash([1; 20]), InfoHash([2; 20]), InfoHash([3; 20]));
        for i in 0..10 {
            assert_eq!(store.store(t0, a, addr(i)), StoreOutcome::Stored);
        }
        assert_eq!(store.get(t0, &a, 100, &mut rng).len(), 3, "capped per info-hash");
        assert_eq!(store.store(t0, b, addr(1)), StoreOutcome::Stored);
        assert_eq!(store.store(t0, c, addr(1)), StoreOutcome::TooManyInfoHashes);
        assert_eq!(store.get(t0, &a, 2, &mut rng).len(), 2, "sampled down to max");
        assert_eq!(store.peers(), 4);
        store.expire(t0 + ttl);
        assert_eq!((store.info_hashes(), store.peers()), (0, 0));
        assert_eq!(store.store(t0 + ttl, c, addr(1)), StoreOutcome::Stored);
    }
}
