//! The Kademlia routing table of BEP 5: k-buckets that split while they cover our own id,
//! good / questionable / bad node states, and a replacement cache per bucket.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mycel_krpc::{Distance, NodeId, NodeInfo};

/// State of a node in the table (BEP 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Answered one of our queries within the last 15 minutes, or answered once and queried
    /// us within the last 15 minutes.
    Good,
    /// Not heard from recently, or never verified.
    Questionable,
    /// Failed several queries in a row.
    Bad,
}

/// One node in a bucket.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub info: NodeInfo,
    /// Last response from it (a verified contact).
    pub last_response: Option<Instant>,
    /// Last query from it.
    pub last_query: Option<Instant>,
    /// Consecutive failed queries.
    pub failures: u8,
    /// Smoothed round-trip time, once measured.
    pub rtt: Option<Duration>,
}

impl Entry {
    fn new(info: NodeInfo) -> Self {
        Entry { info, last_response: None, last_query: None, failures: 0, rtt: None }
    }

    fn last_seen(&self) -> Option<Instant> {
        match (self.last_response, self.last_query) {
            (Some(r), Some(q)) => Some(r.max(q)),
            (r, q) => r.or(q),
        }
    }

    fn state(&self, now: Instant, good_for: Duration, max_failures: u8) -> NodeState {
        if self.failures >= max_failures {
            return NodeState::Bad;
        }
        match (self.last_response, self.last_seen()) {
            (Some(_), Some(seen)) if now.saturating_duration_since(seen) < good_for => NodeState::Good,
            _ => NodeState::Questionable,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub entries: Vec<Entry>,
    /// Verified nodes waiting for a slot, most recent last.
    pub replacements: Vec<NodeInfo>,
    /// Last time a node in the bucket answered or was added; drives the 15-minute refresh.
    pub last_changed: Instant,
    /// A ping-before-evict probe is in flight for this bucket.
    pub probing: bool,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket { entries: Vec::new(), replacements: Vec::new(), last_changed: now, probing: false }
    }
}

/// What happened to a node offered to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Insert {
    /// Added, or already present and refreshed.
    Added,
    /// The bucket is full of questionable nodes: ping this one; if it fails, the newcomer
    /// (kept in the replacement cache) takes its place.
    PingFirst(NodeInfo),
    /// Kept in the replacement cache only (bucket full of good nodes).
    Cached,
    /// Refused (our own id, a second node on the same public IP in the bucket).
    Rejected,
}

/// The routing table.
///
/// Invariants (checked by property tests): it never holds our own id; every bucket holds at
/// most k nodes; a node's bucket index is the length of the prefix it shares with our id,
/// capped at the index of the last bucket; `closest()` is sorted by XOR distance.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own: NodeId,
    k: usize,
    replacement_cache: usize,
    restrict_ips: bool,
    good_for: Duration,
    max_failures: u8,
    pub(crate) buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table around `own`.
    pub fn new(own: NodeId, k: usize, now: Instant) -> Self {
        RoutingTable {
            own,
            k,
            replacement_cache: 8,
            restrict_ips: true,
            good_for: Duration::from_secs(15 * 60),
            max_failures: 2,
            buckets: vec![Bucket::new(now)],
        }
    }

    pub(crate) fn configure(&mut self, cfg: &crate::Config) {
        self.replacement_cache = cfg.replacement_cache;
        self.restrict_ips = cfg.restrict_ips;
        self.good_for = cfg.node_good_for;
        self.max_failures = cfg.max_failures;
    }

    /// Our own id.
    pub fn own_id(&self) -> NodeId {
        self.own
    }

    /// Number of nodes in the table.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// True when the table holds no node.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.entries.is_empty())
    }

    /// Nodes per bucket, farthest bucket first.
    pub fn bucket_sizes(&self) -> Vec<usize> {
        self.buckets.iter().map(|b| b.entries.len()).collect()
    }

    /// The bucket an id falls in.
    pub(crate) fn bucket_index(&self, id: &[u8; 20]) -> usize {
        let lz = self.own.distance(id).leading_zeros() as usize;
        lz.min(self.buckets.len() - 1)
    }

    /// Whether the table holds this node (same id and address).
    pub fn contains(&self, info: &NodeInfo) -> bool {
        self.find(&info.id).is_some_and(|(b, i)| self.buckets[b].entries[i].info.addr == info.addr)
    }

    /// State of a node, if present.
    pub fn state(&self, id: &NodeId, now: Instant) -> Option<NodeState> {
        self.find(id).map(|(b, i)| self.buckets[b].entries[i].state(now, self.good_for, self.max_failures))
    }

    fn find(&self, id: &NodeId) -> Option<(usize, usize)> {
        let b = self.bucket_index(&id.0);
        self.buckets[b].entries.iter().position(|e| e.info.id == *id).map(|i| (b, i))
    }

    /// Every node, good ones first, then by bucket (nearest buckets first).
    pub fn nodes(&self, now: Instant) -> Vec<NodeInfo> {
        let mut all: Vec<(bool, usize, NodeInfo)> = Vec::with_capacity(self.len());
        for (bi, b) in self.buckets.iter().enumerate() {
            for e in &b.entries {
                let good = e.state(now, self.good_for, self.max_failures) == NodeState::Good;
                all.push((!good, usize::MAX - bi, e.info));
            }
        }
        all.sort();
        all.into_iter().map(|(_, _, n)| n).collect()
    }

    /// Up to `n` non-bad nodes closest to `target`, nearest first.
    pub fn closest(&self, target: &[u8; 20], n: usize, now: Instant) -> Vec<NodeInfo> {
        self.closest_where(target, n, now, |_| true)
    }

    /// Up to `n` non-bad nodes closest to `target` whose address passes `keep`, nearest first.
    pub(crate) fn closest_where(
        &self,
        target: &[u8; 20],
        n: usize,
        now: Instant,
        keep: impl Fn(&SocketAddr) -> bool,
    ) -> Vec<NodeInfo> {
        // Nodes in the target's bucket are nearer than those of any other bucket; nodes in
        // deeper buckets come next (mixed); shallower buckets follow, each strictly farther.
        let b = self.bucket_index(target);
        let mut picked: Vec<(Distance, NodeInfo)> = Vec::with_capacity(n * 2);
        let take = |bucket: &Bucket, picked: &mut Vec<(Distance, NodeInfo)>| {
            for e in &bucket.entries {
                if keep(&e.info.addr) && e.state(now, self.good_for, self.max_failures) != NodeState::Bad {
                    picked.push((e.info.id.distance(target), e.info));
                }
            }
        };
        take(&self.buckets[b], &mut picked);
        if picked.len() < n {
            for bucket in &self.buckets[b + 1..] {
                take(bucket, &mut picked);
            }
        }
        let mut j = b;
        while picked.len() < n && j > 0 {
            j -= 1;
            take(&self.buckets[j], &mut picked);
        }
        if picked.len() > n && n > 0 {
            picked.select_nth_unstable_by(n - 1, |a, b| a.0.cmp(&b.0));
            picked.truncate(n);
        }
        picked.sort_unstable_by_key(|a| a.0);
        picked.into_iter().map(|(_, info)| info).collect()
    }

    /// A node answered one of our queries: add it or refresh it.
    pub(crate) fn on_response(&mut self, info: NodeInfo, rtt: Option<Duration>, now: Instant) -> Insert {
        if let Some((b, i)) = self.find(&info.id) {
            let bucket = &mut self.buckets[b];
            let e = &mut bucket.entries[i];
            if e.info.addr != info.addr {
                // Same id from another address: keep the verified one we have.
                return Insert::Rejected;
            }
            e.last_response = Some(now);
            e.failures = 0;
            if let Some(rtt) = rtt {
                e.rtt = Some(match e.rtt {
                    Some(old) => (old * 7 + rtt) / 8,
                    None => rtt,
                });
            }
            bucket.last_changed = now;
            return Insert::Added;
        }
        let mut entry = Entry::new(info);
        entry.last_response = Some(now);
        entry.rtt = rtt;
        self.insert(entry, now)
    }

    /// A node sent us a query. Known nodes are refreshed; unknown ones are not added (they
    /// must answer a query of ours first), but the caller learns whether the table has room.
    pub(crate) fn on_query(&mut self, info: NodeInfo, now: Instant) -> bool {
        if let Some((b, i)) = self.find(&info.id) {
            let e = &mut self.buckets[b].entries[i];
            if e.info.addr == info.addr {
                e.last_query = Some(now);
            }
            return false;
        }
        self.would_accept(&info)
    }

    /// Whether a new node would go straight into the table (room, or a split possible).
    pub(crate) fn would_accept(&self, info: &NodeInfo) -> bool {
        if info.id == self.own || self.ip_taken(info) {
            return false;
        }
        let b = self.bucket_index(&info.id.0);
        let last = self.buckets.len() - 1;
        self.buckets[b].entries.len() < self.k || (b == last && last < 159)
    }

    /// One of our queries to this address got no answer. `fatal` marks the node bad at once
    /// (a failed ping-before-evict probe).
    pub(crate) fn on_failure(&mut self, id: Option<NodeId>, addr: SocketAddr, now: Instant, fatal: bool) {
        let Some(id) = id else { return };
        let Some((b, i)) = self.find(&id) else { return };
        let bucket = &mut self.buckets[b];
        if bucket.entries[i].info.addr != addr {
            return;
        }
        let e = &mut bucket.entries[i];
        e.failures = if fatal { self.max_failures } else { e.failures.saturating_add(1) };
        if bucket.entries[i].state(now, self.good_for, self.max_failures) == NodeState::Bad {
            if let Some(repl) = bucket.replacements.pop() {
                let mut e = Entry::new(repl);
                e.last_response = Some(now);
                bucket.entries[i] = e;
                bucket.last_changed = now;
            }
        }
    }

    /// Buckets not changed since `now - refresh`, with a random id inside each one's range
    /// drawn from `random`.
    pub(crate) fn stale_buckets(&self, now: Instant, refresh: Duration) -> Vec<usize> {
        (0..self.buckets.len())
            .filter(|&i| now.saturating_duration_since(self.buckets[i].last_changed) >= refresh)
            .collect()
    }

    /// Marks a bucket as refreshed.
    pub(crate) fn touch(&mut self, bucket: usize, now: Instant) {
        if let Some(b) = self.buckets.get_mut(bucket) {
            b.last_changed = now;
        }
    }

    /// The earliest moment a bucket becomes due for refresh.
    pub(crate) fn next_refresh(&self, refresh: Duration) -> Option<Instant> {
        self.buckets.iter().map(|b| b.last_changed + refresh).min()
    }

    /// A random id that falls into bucket `index` (the last bucket also holds everything
    /// deeper, so there any id with the shared prefix will do). `random` supplies the bits.
    pub(crate) fn random_id_in(&self, index: usize, random: [u8; 20]) -> NodeId {
        let last = self.buckets.len() - 1;
        if index >= last {
            let mut id = random;
            for bit in 0..index.min(160) {
                set_bit(&mut id, bit, get_bit(&self.own.0, bit));
            }
            return NodeId(id);
        }
        self.random_id_at(index, random)
    }

    /// A random id that shares exactly `prefix` leading bits with our id.
    pub(crate) fn random_id_at(&self, prefix: usize, random: [u8; 20]) -> NodeId {
        let mut id = random;
        let prefix = prefix.min(159);
        for bit in 0..prefix {
            set_bit(&mut id, bit, get_bit(&self.own.0, bit));
        }
        set_bit(&mut id, prefix, !get_bit(&self.own.0, prefix));
        NodeId(id)
    }

    fn ip_taken(&self, info: &NodeInfo) -> bool {
        if !self.restrict_ips || !is_public(info.addr.ip()) {
            return false;
        }
        let b = self.bucket_index(&info.id.0);
        self.buckets[b].entries.iter().any(|e| e.info.addr.ip() == info.addr.ip() && e.info.id != info.id)
    }

    fn insert(&mut self, entry: Entry, now: Instant) -> Insert {
        if entry.info.id == self.own || self.ip_taken(&entry.info) {
            return Insert::Rejected;
        }
        loop {
            let b = self.bucket_index(&entry.info.id.0);
            let last = self.buckets.len() - 1;
            let (good_for, max_failures, k) = (self.good_for, self.max_failures, self.k);
            let bucket = &mut self.buckets[b];
            if bucket.entries.len() < k {
                bucket.entries.push(entry);
                bucket.last_changed = now;
                bucket.replacements.retain(|r| r.id != bucket.entries[bucket.entries.len() - 1].info.id);
                return Insert::Added;
            }
            if b == last && last < 159 {
                self.split(now);
                continue;
            }
            if let Some(i) = bucket.entries.iter().position(|e| e.state(now, good_for, max_failures) == NodeState::Bad)
            {
                bucket.entries[i] = entry;
                bucket.last_changed = now;
                return Insert::Added;
            }
            if let Some(i) = pns_victim(&bucket.entries, entry.rtt) {
                // Proximity neighbour selection: the slow node waits in the replacement cache.
                let slow = std::mem::replace(&mut bucket.entries[i], entry).info;
                bucket.replacements.retain(|r| r.id != slow.id && r.addr != slow.addr);
                bucket.replacements.push(slow);
                if bucket.replacements.len() > self.replacement_cache {
                    bucket.replacements.remove(0);
                }
                bucket.last_changed = now;
                return Insert::Added;
            }
            let info = entry.info;
            bucket.replacements.retain(|r| r.id != info.id && r.addr != info.addr);
            bucket.replacements.push(info);
            if bucket.replacements.len() > self.replacement_cache {
                bucket.replacements.remove(0);
            }
            let oldest_questionable = bucket
                .entries
                .iter()
                .filter(|e| e.state(now, good_for, max_failures) == NodeState::Questionable)
                .min_by_key(|e| e.last_seen())
                .map(|e| e.info);
            return match oldest_questionable {
                Some(q) if !bucket.probing => {
                    bucket.probing = true;
                    Insert::PingFirst(q)
                }
                _ => Insert::Cached,
            };
        }
    }

    /// A ping-before-evict probe of this bucket ended.
    pub(crate) fn probe_done(&mut self, id: &NodeId) {
        let b = self.bucket_index(&id.0);
        self.buckets[b].probing = false;
    }

    fn split(&mut self, now: Instant) {
        let last = self.buckets.len() - 1;
        let mut new = Bucket::new(now);
        let own = self.own;
        let old = &mut self.buckets[last];
        let (stay, go): (Vec<Entry>, Vec<Entry>) =
            old.entries.drain(..).partition(|e| (own.distance(&e.info.id.0).leading_zeros() as usize) == last);
        old.entries = stay;
        new.entries = go;
        let (stay_r, go_r): (Vec<NodeInfo>, Vec<NodeInfo>) =
            old.replacements.drain(..).partition(|n| (own.distance(&n.id.0).leading_zeros() as usize) == last);
        old.replacements = stay_r;
        new.replacements = go_r;
        self.buckets.push(new);
    }
}

/// A newcomer must answer at least this much faster than the node it displaces.
const PNS_MIN_GAIN: Duration = Duration::from_millis(40);

/// Proximity neighbour selection (as in Pastry, and in the RTT-aware Mainline measurements of
/// 2011): any node whose id falls in a bucket's range serves routing equally well, so a full
/// bucket trades its slowest measured node for a newcomer that answered at most half as fast
/// and at least `PNS_MIN_GAIN` sooner. Every lookup's first hop comes from these buckets, so
/// lookups get faster; the 2× margin keeps buckets stable (Kademlia's preference for
/// long-lived nodes otherwise stands), and the displaced node stays in the replacement cache.
fn pns_victim(entries: &[Entry], rtt: Option<Duration>) -> Option<usize> {
    let rtt = rtt?;
    let (i, slowest) = entries.iter().enumerate().filter_map(|(i, e)| Some((i, e.rtt?))).max_by_key(|(_, r)| *r)?;
    (slowest > rtt * 2 && slowest - rtt >= PNS_MIN_GAIN).then_some(i)
}

/// Loopback, private, link-local and unspecified addresses are not public.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            !(v6.is_loopback() || v6.is_unspecified() || (seg0 & 0xfe00) == 0xfc00 || (seg0 & 0xffc0) == 0xfe80)
        }
    }
}

fn get_bit(id: &[u8; 20], bit: usize) -> bool {
    id[bit / 8] & (0x80 >> (bit % 8)) != 0
}

fn set_bit(id: &mut [u8; 20], bit: usize, value: bool) {
    let mask = 0x80 >> (bit % 8);
    if value {
        id[bit / 8] |= mask;
    } else {
        id[bit / 8] &= !mask;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info(id: [u8; 20], port: u16) -> NodeInfo {
        NodeInfo { id: NodeId(id), addr: SocketAddr::from(([127, 0, (port >> 8) as u8, port as u8], port.max(1))) }
    }

    fn check_invariants(t: &RoutingTable, k: usize) {
        let last = t.buckets.len() - 1;
        for (bi, b) in t.buckets.iter().enumerate() {
            assert!(b.entries.len() <= k, "bucket {bi} holds {}", b.entries.len());
            for e in &b.entries {
                assert_ne!(e.info.id, t.own, "holds its own id");
                let lz = t.own.distance(&e.info.id.0).leading_zeros() as usize;
                assert_eq!(lz.min(last), bi, "node in the wrong bucket");
            }
        }
    }

    proptest! {
        #[test]
        fn table_invariants(own in any::<[u8; 20]>(), ids in proptest::collection::vec((any::<[u8; 20]>(), 0u8..8, any::<u16>()), 0..400), target in any::<[u8; 20]>()) {
            let now = Instant::now();
            let mut t = RoutingTable::new(NodeId(own), 8, now);
            for (id, prefix, port) in ids {
                // Bias ids towards ours so deep buckets and splits happen.
                let mut id = id;
                id[..prefix as usize].copy_from_slice(&own[..prefix as usize]);
                let _ = t.on_response(info(id, port), None, now);
            }
            let _ = t.on_response(info(own, 1), None, now);
            check_invariants(&t, 8);
            let closest = t.closest(&target, 8, now);
            let mut brute: Vec<NodeInfo> = t.buckets.iter().flat_map(|b| b.entries.iter().map(|e| e.info)).collect();
            brute.sort_by_key(|n| n.id.distance(&target));
            brute.truncate(8);
            prop_assert_eq!(closest, brute);
        }
    }

    #[test]
    fn splits_near_buckets_and_caches_far_ones() {
        let now = Instant::now();
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own, 8, now);
        // Twelve nodes in the far half (first bit 1): eight fit after the split, four cached.
        for i in 0..12u8 {
            let mut id = [0u8; 20];
            id[0] = 0x80;
            id[19] = i;
            let r = t.on_response(info(id, 100 + u16::from(i)), None, now);
            if i < 8 {
                assert_eq!(r, Insert::Added);
            } else {
                assert_eq!(r, Insert::Cached, "bucket of good nodes keeps them");
            }
        }
        // Near nodes still fit: the bucket holding our id splits.
        for i in 0..8u8 {
            let mut id = [0u8; 20];
            id[0] = 0x40;
            id[19] = i;
            assert_eq!(t.on_response(info(id, 300 + u16::from(i)), None, now), Insert::Added);
        }
        check_invariants(&t, 8);
        assert_eq!(t.len(), 16);
    }

    #[test]
    fn questionable_nodes_are_pinged_before_eviction_and_replaced_when_dead() {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; 20]), 2, now);
        let far = |i: u8| {
            let mut id = [0u8; 20];
            id[0] = 0x80;
            id[19] = i;
            info(id, 100 + u16::from(i))
        };
        // Fill the far bucket after a split (the first node goes in bucket 0 directly once split).
        let (a, b, c) = (far(1), far(2), far(3));
        let mut near = [0u8; 20];
        near[0] = 0x01;
        assert_eq!(t.on_response(info(near, 1), None, now), Insert::Added);
        assert_eq!(t.on_response(a, None, now), Insert::Added);
        assert_eq!(t.on_response(b, None, now), Insert::Added);
        // 16 minutes later a and b are questionable: c triggers a probe of the stalest.
        let later = now + Duration::from_secs(16 * 60);
        assert_eq!(t.state(&a.id, later), Some(NodeState::Questionable));
        let probe = t.on_response(c, None, later);
        assert!(matches!(probe, Insert::PingFirst(n) if n == a || n == b), "{probe:?}");
        let Insert::PingFirst(victim) = probe else { unreachable!() };
        t.on_failure(Some(victim.id), victim.addr, later, true);
        t.probe_done(&victim.id);
        assert!(t.contains(&c), "the newcomer replaced the dead node");
        assert!(!t.contains(&victim));
    }

    #[test]
    fn one_node_per_public_ip_per_bucket() {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; 20]), 8, now);
        let public =
            |id: u8, port: u16| NodeInfo { id: NodeId([id; 20]), addr: SocketAddr::from(([8, 8, 8, 8], port)) };
        assert_eq!(t.on_response(public(0x81, 1), None, now), Insert::Added);
        assert_eq!(t.on_response(public(0x82, 2), None, now), Insert::Rejected);
        // Loopback addresses are exempt.
        assert_eq!(t.on_response(info([0x83; 20], 5), None, now), Insert::Added);
        assert_eq!(t.on_response(info([0x84; 20], 5), None, now), Insert::Added);
    }

    #[test]
    fn random_ids_land_in_their_bucket() {
        let now = Instant::now();
        let own = NodeId([0x5a; 20]);
        let mut t = RoutingTable::new(own, 1, now);
        for i in 0..40u8 {
            let mut id = [0xffu8; 20];
            id[19] = i;
            let _ = t.on_response(info(id, u16::from(i) + 1), None, now);
            let _ = t.on_response(info([i; 20], u16::from(i) + 100), None, now);
        }
        for b in 0..t.buckets.len() {
            for seed in 0..5u8 {
                let id = t.random_id_in(b, [seed.wrapping_mul(37); 20]);
                assert_eq!(t.bucket_index(&id.0), b);
            }
        }
    }
}
