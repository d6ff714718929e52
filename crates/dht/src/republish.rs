//! Re-publishing the node's own items every `republish_interval`, batched by region of the
//! key space.
//!
//! # Why and how
//! A put costs a lookup (the gets that find the k closest nodes of the target) plus a `get` for
//! a write token and a `put` to each of those k nodes. The token `get`s cannot be shared
//! between items: libtorrent binds its tokens to the target as well as to our address, so a
//! node must be asked `get` once per item it is to store. What can be shared is the search:
//! items whose targets share a prefix of the key space (a *region*) have their k closest
//! nodes among the same few dozen nodes, and one lookup into the region learns them all.
//!
//! So a round sorts the published items by target and cuts them into regions of `b` bits of
//! prefix, where `b` is chosen so that a region holds about 2k nodes: the k-th closest node to
//! our own id in the routing table sits at about `k / N` of the key space, so `N / k ≈ 2^lz`
//! (`lz` the leading zeros of that distance) and `b = lz - 1` gives `N / 2^b ≈ 2k`. Per region:
//! 1. a *probe*: an ordinary put lookup for the region's median item, started from the routing
//!    table, which keeps every node its answers name (up to [`POOL_FACTOR`]·k, closest to the
//!    probe first) instead of only the k closest;
//! 2. then, for each other item of the region, a put lookup that starts from the nodes of the
//!    pool closest to that item (2k of them, plus the table's k closest as a fallback). When
//!    the pool already holds the item's k closest, the lookup asks just those (their answers
//!    name no one closer), so the item costs its k token `get`s and k `put`s and no search;
//!    when the region was cut too wide or the pool has holes, the lookup simply goes on from
//!    there, so a wrong estimate of the network size costs messages, never correctness.
//!
//! The saving is the search part of each put, which grows with the network (log N hops): on a
//! few hundred nodes a single put is about 2k + 4 messages, so the saving is modest; on the
//! real DHT a lookup takes several times that. With fewer items than regions (a node publishing
//! a handful of items on a network of millions), regions hold one item each and a round costs
//! what one lookup per item costs, as before.
//!
//! Lookups of a round run without events. At most [`MAX_CONCURRENT`] (and a quarter of
//! `max_in_flight`, at α·d + k requests each) run at once, and one starts only while that
//! many request slots are free, so a round never crowds out the application's own lookups.
//!
//! # Where the state lives
//! The round is kept in an entry of the node's lookup table that makes no requests (its item
//! op is `Round`); every lookup of the round names that entry, and tells it when it ends,
//! which starts the next ones. A lookup that ends at its deadline tells no one; the next
//! `handle_timeout` (the deadline is what woke the node) notices and moves on. A probe that
//! ended without handing over its pool leaves its region's items to start from the table.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use mycel_krpc::{Distance, Method, NodeId, NodeInfo, Want};

use crate::item_ops::ItemOp;
use crate::lookup::{Lookup, Phase, Shape};
use crate::node::{Node, Purpose};
use crate::{LookupKind, QueryId};

/// Most lookups of a round running at once.
pub(crate) const MAX_CONCURRENT: usize = 64;
/// A probe keeps this many times k of the nodes its answers name.
pub(crate) const POOL_FACTOR: usize = 16;
/// Deepest region prefix (a region of one item is all a deeper cut could give).
const MAX_REGION_BITS: u32 = 64;

/// The nodes a region's probe heard of, closest to the probe's target first.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    target: [u8; 20],
    cap: usize,
    nodes: BTreeMap<Distance, NodeInfo>,
}

impl Pool {
    pub(crate) fn new(target: [u8; 20], cap: usize) -> Self {
        Pool { target, cap, nodes: BTreeMap::new() }
    }

    /// Remembers a node, forgetting the farthest when over the cap.
    pub(crate) fn add(&mut self, node: NodeInfo) {
        if node.addr.port() == 0 {
            return;
        }
        self.nodes.insert(node.id.distance(&self.target), node);
        if self.nodes.len() > self.cap {
            self.nodes.pop_last();
        }
    }

    /// The `n` nodes closest to `target`.
    pub(crate) fn closest(&self, target: &[u8; 20], n: usize) -> Vec<NodeInfo> {
        let mut all: Vec<NodeInfo> = self.nodes.values().copied().collect();
        all.sort_by_key(|x| x.id.distance(target));
        all.truncate(n);
        all
    }
}

/// One republish round.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Regions not probed yet, each its targets in order.
    regions: VecDeque<Vec<[u8; 20]>>,
    /// Items whose region was probed, with the nodes to start from.
    ready: VecDeque<([u8; 20], Vec<NodeInfo>)>,
    /// Lookups of the round in progress.
    running: BTreeSet<QueryId>,
    /// Probes in progress, with the other targets of their region.
    probes: BTreeMap<QueryId, Vec<[u8; 20]>>,
    /// Set while the round starts lookups: one that ends at once must not start more.
    pumping: bool,
}

impl Round {
    fn is_done(&self) -> bool {
        self.regions.is_empty() && self.ready.is_empty() && self.running.is_empty()
    }
}

/// Cuts targets (in ascending order) into runs sharing their first `bits` bits.
pub(crate) fn regions(targets: &[[u8; 20]], bits: u32) -> Vec<Vec<[u8; 20]>> {
    let prefix = |t: &[u8; 20]| {
        let head = u64::from_be_bytes(t[..8].try_into().expect("20 bytes hold 8"));
        match bits.min(MAX_REGION_BITS) {
            0 => 0,
            b => head >> (64 - b),
        }
    };
    let mut out: Vec<Vec<[u8; 20]>> = Vec::new();
    for t in targets {
        match out.last_mut() {
            Some(r) if r.first().map(prefix) == Some(prefix(t)) => r.push(*t),
            _ => out.push(vec![*t]),
        }
    }
    out
}

impl Node {
    /// Starts a round when the interval has passed; otherwise moves a running round on (a
    /// lookup of it may have ended at its deadline).
    pub(crate) fn republish_due(&mut self, now: Instant) {
        if self.next_republish.is_none_or(|t| now < t) {
            if let Some(r) = self.round_entry() {
                self.pump_republish(now, r);
            }
            return;
        }
        self.next_republish = Some(now + self.cfg.republish_interval);
        // A round still going after an interval is dropped (its lookups finish on their own).
        if let Some(r) = self.round_entry() {
            self.lookups.remove(&r);
        }
        let targets: Vec<[u8; 20]> = self.own_items.keys().copied().collect();
        let Some(first) = targets.first().copied() else { return };
        let round = Round { regions: regions(&targets, self.region_bits(now)).into(), ..Round::default() };
        let q = self.new_query_id();
        let mut entry = Lookup::new(
            LookupKind::PutItem(NodeId(first)),
            first,
            self.id,
            self.shape(),
            &[],
            &[],
            now,
            now + self.cfg.republish_interval,
        );
        entry.internal = true;
        entry.phase = Phase::Announcing { outstanding: 0 };
        entry.item = Some(ItemOp::round(round));
        self.lookups.insert(q, entry);
        self.pump_republish(now, q);
    }

    /// A lookup of the round `r` ended, or a probe made items ready: start what can start.
    pub(crate) fn republish_lookup_ended(&mut self, now: Instant, r: QueryId) {
        self.pump_republish(now, r);
    }

    /// A probe finished its search: its region's other items can start from its pool.
    pub(crate) fn hand_over_pool(&mut self, r: QueryId, probe: QueryId, pool: &Pool) {
        let k = self.cfg.k;
        let Some(round) = self.round_mut(r) else { return };
        let Some(siblings) = round.probes.remove(&probe) else { return };
        let seeded: Vec<([u8; 20], Vec<NodeInfo>)> =
            siblings.into_iter().map(|t| (t, pool.closest(&t, 2 * k))).collect();
        round.ready.extend(seeded);
    }

    /// Starts lookups of the round while it has work and request slots are free; drops the
    /// round's entry when all is done. Re-entrant calls (a lookup that ends as it starts)
    /// return at once.
    fn pump_republish(&mut self, now: Instant, r: QueryId) {
        match self.round_mut(r) {
            Some(round) if !round.pumping => round.pumping = true,
            _ => return,
        }
        let per_lookup = self.cfg.alpha * self.cfg.disjoint_paths.max(1) + self.cfg.k;
        let limit = (self.cfg.max_in_flight / 4 / per_lookup).clamp(1, MAX_CONCURRENT);
        loop {
            let running: Vec<QueryId> =
                self.round_mut(r).map(|x| x.running.iter().copied().collect()).unwrap_or_default();
            let ended: Vec<QueryId> = running.into_iter().filter(|q| !self.lookups.contains_key(q)).collect();
            let free = self.cfg.max_in_flight.saturating_sub(self.pending.len());
            let Some(round) = self.round_mut(r) else { return };
            for q in ended {
                round.running.remove(&q);
                // A probe that ended without handing over its pool: its siblings start from the table.
                if let Some(siblings) = round.probes.remove(&q) {
                    round.ready.extend(siblings.into_iter().map(|t| (t, Vec::new())));
                }
            }
            if round.running.len() >= limit || free < per_lookup {
                break;
            }
            // Items made ready by a probe first (cheap), then the next region's probe: its
            // median item, the others waiting for its pool.
            let (target, seeds, siblings) = match round.ready.pop_front() {
                Some((target, seeds)) => (target, seeds, None),
                None => match round.regions.pop_front() {
                    Some(mut region) => {
                        let target = region.remove(region.len() / 2);
                        (target, Vec::new(), Some(region))
                    }
                    None => break,
                },
            };
            if !self.own_items.contains_key(&target) {
                // Unpublished since the round began. Its siblings, if it was to probe,
                // become a region of their own.
                if let Some(s) = siblings.filter(|s| !s.is_empty()) {
                    if let Some(round) = self.round_mut(r) {
                        round.regions.push_front(s);
                    }
                }
                continue;
            }
            let q = self.new_query_id();
            let probe = siblings.is_some();
            if let Some(round) = self.round_mut(r) {
                round.running.insert(q);
                if let Some(s) = siblings {
                    round.probes.insert(q, s);
                }
            }
            self.start_republish_lookup(now, q, r, target, seeds, probe);
        }
        let done = match self.round_mut(r) {
            Some(round) => {
                round.pumping = false;
                round.is_done()
            }
            None => false,
        };
        if done {
            self.lookups.remove(&r);
        }
    }

    /// Starts the put lookup of one published item, from `seeds` and the table's closest.
    fn start_republish_lookup(
        &mut self,
        now: Instant,
        q: QueryId,
        r: QueryId,
        target: [u8; 20],
        seeds: Vec<NodeInfo>,
        probe: bool,
    ) {
        let Some(item) = self.own_items.get(&target).cloned() else { return };
        let k = self.cfg.k;
        let mut initial = seeds;
        initial.extend(self.table.closest(&target, k, now));
        initial.sort_by_key(|n| n.id.distance(&target));
        initial.dedup_by_key(|n| n.id);
        let deadline = now + self.cfg.item_deadline;
        let kind = LookupKind::PutItem(NodeId(target));
        let mut l = Lookup::new(kind, target, self.id, self.shape(), &initial, &[], now, deadline);
        l.internal = true;
        l.set_impatient();
        let pool = probe.then(|| Pool::new(target, POOL_FACTOR * k));
        l.item = Some(ItemOp::republish(item, r, pool));
        self.lookups.insert(q, l);
        self.drive_republish_lookup(now, q, target);
    }

    /// Sends the first requests of a round's lookup (later ones go out as answers arrive,
    /// like those of every lookup); ends its search at once when there is no one to ask.
    fn drive_republish_lookup(&mut self, now: Instant, q: QueryId, target: [u8; 20]) {
        let budget = self.cfg.max_in_flight.saturating_sub(self.pending.len());
        let Some(l) = self.lookups.get_mut(&q) else { return };
        for req in l.next_requests(budget) {
            let method = Method::Get { target: NodeId(target), seq: None, want: Want::default() };
            self.send_query(now, req.addr, req.id, method, Purpose::Lookup(q));
        }
        if self.lookups.get(&q).is_some_and(|l| l.phase == Phase::Searching && l.search_finished()) {
            self.start_item_puts(now, q);
        }
    }

    /// Region prefix length for this node's view of the network size (see the module docs).
    fn region_bits(&self, now: Instant) -> u32 {
        let closest = self.table.closest(&self.id.0, self.cfg.k, now);
        match closest.last() {
            Some(far) if closest.len() >= self.cfg.k => {
                self.id.distance(&far.id.0).leading_zeros().saturating_sub(1).min(MAX_REGION_BITS)
            }
            _ => 0,
        }
    }

    fn shape(&self) -> Shape {
        Shape { k: self.cfg.k, alpha: self.cfg.alpha, paths: self.cfg.disjoint_paths }
    }

    /// The entry holding the current round, if one is running.
    fn round_entry(&self) -> Option<QueryId> {
        self.lookups.iter().find(|(_, l)| l.item.as_ref().is_some_and(|op| op.is_round())).map(|(q, _)| *q)
    }

    fn round_mut(&mut self, r: QueryId) -> Option<&mut Round> {
        self.lookups.get_mut(&r)?.item.as_mut()?.round_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_group_by_prefix() {
        let t = |b0: u8| {
            let mut t = [0u8; 20];
            t[0] = b0;
            t
        };
        let targets = [t(0x00), t(0x10), t(0x70), t(0x80), t(0xf0)];
        assert_eq!(regions(&targets, 0).len(), 1);
        assert_eq!(regions(&targets, 1), vec![vec![t(0x00), t(0x10), t(0x70)], vec![t(0x80), t(0xf0)]]);
        assert_eq!(regions(&targets, 2).len(), 4);
        assert_eq!(regions(&targets, 160).len(), 5);
        assert!(regions(&[], 4).is_empty());
    }

    #[test]
    fn pool_keeps_the_closest() {
        let node = |b: u8| NodeInfo { id: NodeId([b; 20]), addr: ([127, 0, 0, b], 1).into() };
        let mut p = Pool::new([0; 20], 3);
        for b in [9, 1, 5, 3, 7] {
            p.add(node(b));
        }
        assert_eq!(p.closest(&[0; 20], 8), vec![node(1), node(3), node(5)]);
        assert_eq!(p.closest(&[5; 20], 1), vec![node(5)]);
    }
}
