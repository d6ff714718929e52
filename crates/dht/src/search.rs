//! Running searches: lookups (find_node, get_peers, announce, and the lookups of BEP 44 item
//! operations) from start to result, and the bootstrap and bucket refreshes that use them.
//! The transaction and timer machinery they send through lives in `node.rs`.

use std::net::SocketAddr;
use std::time::Instant;

use mycel_krpc::{InfoHash, Method, NodeInfo, Response, Want};
use rand::Rng;

use crate::item_ops::ItemOp;
use crate::lookup::{Lookup, Phase, Shape};
use crate::node::{Node, Purpose};
use crate::secure_id::is_secure_id;
use crate::{Event, LookupKind, QueryId};

/// Cap on the refresh lookups a join starts (one per prefix length).
const MAX_JOIN_REFRESH: usize = 24;

impl Node {
    // ----- lookups ------------------------------------------------------------------------

    pub(crate) fn start_lookup(&mut self, now: Instant, kind: LookupKind, internal: bool) -> QueryId {
        let q = self.new_query_id();
        self.start_lookup_full(now, q, kind, internal, None, None);
        q
    }

    pub(crate) fn start_lookup_full(
        &mut self,
        now: Instant,
        q: QueryId,
        kind: LookupKind,
        internal: bool,
        port: Option<u16>,
        item: Option<Box<ItemOp>>,
    ) {
        let (target, deadline) = match kind {
            LookupKind::FindNode(id) => (id.0, self.cfg.lookup_deadline),
            LookupKind::GetPeers(ih) | LookupKind::Announce(ih) => (ih.0, self.cfg.lookup_deadline),
            LookupKind::GetItem(t) | LookupKind::PutItem(t) => (t.0, self.cfg.item_deadline),
        };
        let mut initial = self.table.closest(&target, self.cfg.k, now);
        // With too few nodes of our own, saved nodes and the bootstrap addresses help as well.
        let few = initial.len() < self.cfg.k;
        if few && !self.saved.is_empty() {
            let mut saved: Vec<NodeInfo> = self.saved.iter().filter(|s| !initial.contains(s)).copied().collect();
            saved.sort_by_key(|n| n.id.distance(&target));
            initial.extend(saved.into_iter().take(self.cfg.k));
        }
        let seeds: &[SocketAddr] = if few { &self.bootstrap_addrs } else { &[] };
        let shape = Shape { k: self.cfg.k, alpha: self.cfg.alpha, paths: self.cfg.disjoint_paths };
        let mut l = Lookup::new(kind, target, self.id, shape, &initial, seeds, now, now + deadline);
        l.internal = internal;
        l.announce_port = port;
        if item.is_some() {
            l.set_impatient();
        }
        l.item = item;
        self.lookups.insert(q, l);
        self.drive_lookup(now, q);
    }

    pub(crate) fn lookup_response(&mut self, now: Instant, q: QueryId, from: SocketAddr, r: &Response<'_>) {
        let Some(l) = self.lookups.get_mut(&q) else { return };
        // BEP 32: a dual-stack node asked for both families and follows both lists.
        let nodes: Vec<NodeInfo> = if self.cfg.dual_stack {
            r.nodes.iter().chain(&r.nodes6).copied().collect()
        } else if from.is_ipv4() {
            r.nodes.clone()
        } else {
            r.nodes6.clone()
        };
        l.on_response(from, r.id, &nodes, r.token);
        if self.cfg.enforce_node_id && !is_secure_id(&r.id, from.ip()) {
            l.demote(from);
        }
        if l.item.is_some() {
            self.item_response(now, q, NodeInfo { id: r.id, addr: from }, r);
            return self.drive_lookup(now, q);
        }
        if !r.values.is_empty() && matches!(l.kind, LookupKind::GetPeers(_) | LookupKind::Announce(_)) {
            let fresh = l.new_peers(&r.values);
            if !fresh.is_empty() && !l.internal {
                self.events.push_back(Event::PeersFound { query: q, peers: fresh });
            }
        }
        self.drive_lookup(now, q);
    }

    /// Sends what a lookup wants sent; moves it to the announce phase or ends it when the
    /// search is over.
    /// The request a lookup of kind `kind` sends.
    /// A dual-stack node asks for nodes of both families (BEP 32 `want`).
    pub(crate) fn lookup_method(kind: LookupKind, dual_stack: bool) -> Method<'static> {
        let want = Want { n4: dual_stack, n6: dual_stack };
        match kind {
            LookupKind::FindNode(target) => Method::FindNode { target, want },
            LookupKind::GetPeers(info_hash) | LookupKind::Announce(info_hash) => Method::GetPeers { info_hash, want },
            LookupKind::GetItem(target) | LookupKind::PutItem(target) => Method::Get { target, seq: None, want },
        }
    }

    pub(crate) fn drive_lookup(&mut self, now: Instant, q: QueryId) {
        let Some(l) = self.lookups.get_mut(&q) else { return };
        if l.phase != Phase::Searching {
            return;
        }
        let budget = self.cfg.max_in_flight.saturating_sub(self.pending.len());
        let requests = l.next_requests(budget);
        let kind = l.kind;
        for r in requests {
            self.send_query(now, r.addr, r.id, Self::lookup_method(kind, self.cfg.dual_stack), Purpose::Lookup(q));
        }
        let Some(l) = self.lookups.get_mut(&q) else { return };
        if !l.search_finished() {
            return;
        }
        match kind {
            LookupKind::Announce(info_hash) => self.start_announces(now, q, info_hash),
            LookupKind::PutItem(_) => self.start_item_puts(now, q),
            _ => self.finish_lookup(now, q),
        }
    }

    pub(crate) fn start_announces(&mut self, now: Instant, q: QueryId, info_hash: InfoHash) {
        let Some(l) = self.lookups.get_mut(&q) else { return };
        let targets = l.announce_targets();
        let port = l.announce_port;
        l.phase = Phase::Announcing { outstanding: 0 };
        let mut sent = 0;
        for (node, token) in targets {
            let method = Method::AnnouncePeer {
                info_hash,
                port: port.unwrap_or(0),
                implied_port: port.is_none(),
                token: &token,
            };
            if self.send_query(now, node.addr, Some(node.id), method, Purpose::Announce(q)).is_some() {
                sent += 1;
            }
        }
        if let Some(l) = self.lookups.get_mut(&q) {
            l.announces_sent += sent;
            l.phase = Phase::Announcing { outstanding: sent };
        }
        if sent == 0 {
            self.finish_lookup(now, q);
        }
    }

    pub(crate) fn announce_ack(&mut self, now: Instant, q: QueryId, ok: bool) {
        let Some(l) = self.lookups.get_mut(&q) else { return };
        if let Phase::Announcing { outstanding } = l.phase {
            if ok {
                l.announced_to += 1;
            }
            let outstanding = outstanding.saturating_sub(1);
            l.phase = Phase::Announcing { outstanding };
            if outstanding == 0 {
                self.finish_lookup(now, q);
            }
        }
    }

    pub(crate) fn finish_lookup(&mut self, now: Instant, q: QueryId) {
        let Some(mut l) = self.lookups.remove(&q) else { return };
        l.phase = Phase::Done;
        let result = l.result(now);
        if Some(q) == self.bootstrap_lookup {
            self.bootstrap_done(now);
        }
        if l.internal {
            return;
        }
        match l.item.take() {
            Some(op) => self.events.push_back(op.into_event(q, result)),
            None => self.events.push_back(Event::LookupDone { query: q, result }),
        }
    }

    pub(crate) fn expire_lookups(&mut self, now: Instant) {
        let due: Vec<QueryId> = self.lookups.iter().filter(|(_, l)| l.deadline <= now).map(|(q, _)| *q).collect();
        for q in due {
            if self.put_grace_over(q) {
                self.finish_put(now, q);
                continue;
            }
            if let Some(l) = self.lookups.get_mut(&q) {
                l.deadline_hit = true;
            }
            self.finish_lookup(now, q);
        }
    }

    // ----- bootstrap and maintenance --------------------------------------------------------

    pub(crate) fn start_bootstrap(&mut self, now: Instant) {
        if self.bootstrap_lookup.is_some_and(|q| self.lookups.contains_key(&q)) {
            return;
        }
        if self.bootstrap_addrs.is_empty() && self.saved.is_empty() && self.table.is_empty() {
            return;
        }
        let q = self.start_lookup(now, LookupKind::FindNode(self.id), true);
        if self.lookups.contains_key(&q) {
            self.bootstrap_lookup = Some(q);
        } else {
            // It finished at once (nobody to ask); treat like a failed round.
            self.bootstrap_lookup = Some(q);
            self.bootstrap_done(now);
        }
    }

    /// A bootstrap round ended. Until the table holds k nodes, rounds repeat with back-off:
    /// nodes that join together (a flash crowd behind one router) first hear of nobody but the
    /// router, and learn of each other only in later rounds.
    pub(crate) fn bootstrap_done(&mut self, now: Instant) {
        self.bootstrap_lookup = None;
        if self.table.len() < self.cfg.k {
            self.bootstrap_retry_at = Some(now + self.bootstrap_backoff);
            self.bootstrap_backoff = (self.bootstrap_backoff * 2).min(self.cfg.bootstrap_max_backoff);
        } else {
            self.bootstrap_backoff = self.cfg.bootstrap_retry;
        }
        if self.table.is_empty() || self.bootstrapped {
            return;
        }
        self.bootstrapped = true;
        self.join_refresh(now);
        self.events.push_back(Event::Bootstrapped { routing_nodes: self.table.len() });
    }

    /// Kademlia's join: after the self-lookup, refresh every prefix length shorter than the one
    /// we share with our closest neighbour, so far buckets need not wait 15 minutes to fill.
    /// (By prefix length, not by bucket: a young table may still be a single bucket.)
    pub(crate) fn join_refresh(&mut self, now: Instant) {
        let shared = self
            .table
            .closest(&self.id.0, 1, now)
            .first()
            .map_or(0, |n| self.id.distance(&n.id.0).leading_zeros() as usize);
        for prefix in 0..shared.min(MAX_JOIN_REFRESH) {
            let target = self.table.random_id_at(prefix, self.rng.gen());
            self.start_lookup(now, LookupKind::FindNode(target), true);
        }
    }

    pub(crate) fn refresh_buckets(&mut self, now: Instant) {
        if self.table.is_empty() {
            return;
        }
        for b in self.table.stale_buckets(now, self.cfg.bucket_refresh) {
            self.table.touch(b, now);
            let target = self.table.random_id_in(b, self.rng.gen());
            self.start_lookup(now, LookupKind::FindNode(target), true);
        }
    }
}
