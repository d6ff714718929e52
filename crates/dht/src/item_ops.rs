//! BEP 44 client operations: get an item from the closest nodes, put one to them.
//!
//! Both are lookups with `get` towards the item's target. A get collects every answer that
//! carries the item and checks it (the hash for an immutable item; key, target and signature
//! for a mutable one); an immutable get ends at the first valid value, a mutable get ends
//! when the k closest nodes have answered or at the item deadline, with every valid version
//! and how many nodes hold each. A put then sends `put` to the k closest nodes that gave a
//! token and reports who stored it and who refused with which error.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use mycel_items::{immutable_target, ImmutableItem, MutableItem};
use mycel_krpc::{Method, MutableArgs, NodeId, NodeInfo, PutArgs, Response};

use crate::items::StoredItem;
use crate::lookup::Phase;
use crate::node::{Node, Purpose};
use crate::republish::{Pool, Round};
use crate::{Event, LookupKind, LookupResult, QueryId};

/// What kind of item a get expects under its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// An immutable item: the target is the SHA-1 of the value.
    Immutable,
    /// A mutable item stored with this salt (empty for none). The salt is never sent back by
    /// the storing nodes, so the reader must know it to check the target and signature.
    Mutable {
        /// The salt.
        salt: Vec<u8>,
    },
}

/// One valid version of a mutable item seen by a get, and how many nodes sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemVersion {
    /// The verified item.
    pub item: MutableItem,
    /// Nodes that returned exactly this version.
    pub nodes: usize,
}

/// The outcome of [`Node::get_item`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemGetResult {
    /// What was looked up.
    pub target: NodeId,
    /// The item: the immutable value that hashes to the target, or the valid mutable version
    /// with the highest seq. `None` when no node returned a valid one.
    pub item: Option<StoredItem>,
    /// Nodes that returned the item above (for a mutable item: that exact version).
    pub agreeing: usize,
    /// Every valid mutable version seen, highest seq first (ties: most nodes first).
    pub versions: Vec<ItemVersion>,
    /// Answers whose item failed the hash, target or signature check.
    pub invalid: usize,
    /// The lookup's own figures (messages, hops, duration, deadline).
    pub lookup: LookupResult,
}

/// The outcome of a put ([`Node::put_immutable`], [`Node::put_mutable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPutResult {
    /// Where the item was put.
    pub target: NodeId,
    /// `put` requests sent: the closest nodes (at most k) that gave a token.
    pub sent: usize,
    /// Nodes that acknowledged the put.
    pub stored: Vec<NodeInfo>,
    /// Nodes that refused, with their error code (BEP 44: 205, 206, 207, 301, 302).
    pub refused: Vec<(NodeInfo, i64)>,
    /// Nodes that did not answer the put in time.
    pub timed_out: usize,
    /// Among mutable-item answers of the get phase, the highest seq a node held.
    pub highest_seq_seen: Option<i64>,
    /// The lookup's own figures (messages include the puts).
    pub lookup: LookupResult,
}

/// How a `put` request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutReply {
    Stored,
    Refused(i64),
    TimedOut,
}

/// The state an item lookup carries.
pub(crate) struct ItemOp {
    target: NodeId,
    mode: Mode,
    // Get side.
    versions: Vec<ItemVersion>,
    immutable: Option<(ImmutableItem, usize)>,
    invalid: usize,
    // Put side.
    holders: BTreeSet<SocketAddr>,
    highest_seq_seen: Option<i64>,
    sent: usize,
    stored: Vec<NodeInfo>,
    refused: Vec<(NodeInfo, i64)>,
    timed_out: usize,
    /// Nodes whose `put` missed its soft timeout and is still outstanding.
    slow: BTreeSet<SocketAddr>,
    /// For a lookup of a republish round: the entry holding the round, told when it ends.
    round: Option<QueryId>,
    /// For the probe of a region: every node its answers named, handed to the round.
    pool: Option<Pool>,
    /// A majority stored the item: the lookup's deadline was cut to a short grace for the
    /// other answers, and reaching it is no failure.
    pub(crate) quorum_grace: bool,
}

enum Mode {
    Get(ItemKind),
    Put(StoredItem, Option<i64>),
    /// Not a lookup: the state of a republish round (see `republish.rs`).
    Round(Box<Round>),
}

impl ItemOp {
    fn new(target: NodeId, mode: Mode) -> Box<Self> {
        Box::new(ItemOp {
            target,
            mode,
            versions: Vec::new(),
            immutable: None,
            invalid: 0,
            holders: BTreeSet::new(),
            highest_seq_seen: None,
            sent: 0,
            stored: Vec::new(),
            refused: Vec::new(),
            timed_out: 0,
            slow: BTreeSet::new(),
            round: None,
            pool: None,
            quorum_grace: false,
        })
    }

    /// The put of a published item in republish round `round`; a probe collects a `pool`.
    pub(crate) fn republish(item: StoredItem, round: QueryId, pool: Option<Pool>) -> Box<Self> {
        let mut op = ItemOp::new(NodeId(item.target()), Mode::Put(item, None));
        op.round = Some(round);
        op.pool = pool;
        op
    }

    /// The entry that holds a republish round.
    pub(crate) fn round(round: Round) -> Box<Self> {
        ItemOp::new(NodeId([0; 20]), Mode::Round(Box::new(round)))
    }

    pub(crate) fn is_round(&self) -> bool {
        matches!(self.mode, Mode::Round(_))
    }

    pub(crate) fn round_mut(&mut self) -> Option<&mut Round> {
        match &mut self.mode {
            Mode::Round(r) => Some(r),
            _ => None,
        }
    }

    /// The event that ends the operation.
    pub(crate) fn into_event(self, query: QueryId, mut lookup: LookupResult) -> Event {
        match self.mode {
            // Internal, so never reported; a plain lookup event if it were.
            Mode::Round(_) => Event::LookupDone { query, result: lookup },
            Mode::Put(..) => {
                lookup.announced_to = self.stored.len();
                Event::ItemPutDone {
                    query,
                    result: ItemPutResult {
                        target: self.target,
                        sent: self.sent,
                        stored: self.stored,
                        refused: self.refused,
                        timed_out: self.timed_out,
                        highest_seq_seen: self.highest_seq_seen,
                        lookup,
                    },
                }
            }
            Mode::Get(_) => {
                let mut versions = self.versions;
                versions.sort_by(|a, b| b.item.seq().cmp(&a.item.seq()).then(b.nodes.cmp(&a.nodes)));
                let (item, agreeing) = match (self.immutable, versions.first()) {
                    (Some((i, n)), _) => (Some(StoredItem::Immutable(i)), n),
                    (None, Some(v)) => (Some(StoredItem::Mutable(v.item.clone())), v.nodes),
                    (None, None) => (None, 0),
                };
                let result =
                    ItemGetResult { target: self.target, item, agreeing, versions, invalid: self.invalid, lookup };
                Event::ItemGot { query, result }
            }
        }
    }

    /// Checks the item in one `get` answer. Returns true when the get can end at once (a
    /// valid immutable value: there is only one).
    fn on_get_answer(&mut self, from: SocketAddr, r: &Response<'_>) -> bool {
        if let Some(seq) = r.seq {
            self.holders.insert(from);
            self.highest_seq_seen = Some(self.highest_seq_seen.map_or(seq, |s| s.max(seq)));
        }
        let Mode::Get(kind) = &self.mode else { return false };
        let Some(v) = r.v else { return false };
        match kind {
            ItemKind::Immutable => {
                let valid = immutable_target(v) == self.target.0;
                match ImmutableItem::new(v.to_vec()) {
                    Ok(item) if valid => {
                        let n = self.immutable.as_ref().map_or(0, |(_, n)| *n);
                        self.immutable = Some((item, n + 1));
                        true
                    }
                    _ => {
                        self.invalid += 1;
                        false
                    }
                }
            }
            ItemKind::Mutable { salt } => {
                let (Some(k), Some(sig), Some(seq)) = (r.k, r.sig, r.seq) else {
                    self.invalid += 1;
                    return false;
                };
                match MutableItem::verify(k, salt.clone(), seq, v.to_vec(), sig) {
                    Ok(item) if item.target() == self.target.0 => {
                        match self.versions.iter_mut().find(|x| x.item == item) {
                            Some(x) => x.nodes += 1,
                            None => self.versions.push(ItemVersion { item, nodes: 1 }),
                        }
                    }
                    _ => self.invalid += 1,
                }
                false
            }
        }
    }
}

impl Node {
    /// Stores an immutable item on the k nodes closest to its target: a `get` lookup for
    /// tokens, then `put`. Ends with [`Event::ItemPutDone`].
    pub fn put_immutable(&mut self, now: Instant, item: ImmutableItem) -> QueryId {
        let target = NodeId(item.target());
        self.start_item_op(now, ItemOp::new(target, Mode::Put(StoredItem::Immutable(item), None)))
    }

    /// Stores a signed mutable item on the k nodes closest to its target; `cas` is sent to the
    /// nodes that reported holding a version. Ends with [`Event::ItemPutDone`].
    pub fn put_mutable(&mut self, now: Instant, item: MutableItem, cas: Option<i64>) -> QueryId {
        let target = NodeId(item.target());
        self.start_item_op(now, ItemOp::new(target, Mode::Put(StoredItem::Mutable(item), cas)))
    }

    /// Fetches the item under `target` from the closest nodes, checking every answer. Ends
    /// with [`Event::ItemGot`].
    pub fn get_item(&mut self, now: Instant, target: NodeId, kind: ItemKind) -> QueryId {
        self.start_item_op(now, ItemOp::new(target, Mode::Get(kind)))
    }

    /// The next item stored (or refreshed) for another node since the last call, for a driver
    /// that keeps items across restarts. With [`Config::durable_items`](crate::Config) the put
    /// is answered only after [`Node::handle_items_written`] reports the write (durable.rs);
    /// without it the put is answered at once and the queue is bounded (oldest dropped).
    pub fn poll_item_write(&mut self) -> Option<StoredItem> {
        self.item_writes.pop_front()
    }

    /// The items stored for others, with the instant of their last put, in target order
    /// (for saving them across restarts).
    pub fn stored_items(&self, now: Instant) -> Vec<(StoredItem, Instant)> {
        self.items.items(now).map(|(item, at)| (item.clone(), at)).collect()
    }

    /// Puts back an item saved from an earlier run, as last put at `at` (so it expires when
    /// it would have). A mutable item older than the one held is ignored.
    pub fn restore_item(&mut self, at: Instant, item: StoredItem) {
        match item {
            StoredItem::Immutable(i) => self.items.put_immutable(at, i),
            StoredItem::Mutable(m) => {
                let _ = self.items.put_mutable(at, m, None);
            }
        }
    }

    /// Puts an item now (like [`Node::put_immutable`] / [`Node::put_mutable`], ending with
    /// [`Event::ItemPutDone`]) and keeps putting it every `republish_interval` until
    /// [`Node::unpublish`]. Re-publishing runs without events, batched by region of the key
    /// space (one search per region, see `republish.rs`). A newer version of a mutable item
    /// replaces the older one in the list.
    pub fn publish(&mut self, now: Instant, item: StoredItem) -> QueryId {
        self.own_items.insert(item.target(), item.clone());
        self.next_republish.get_or_insert(now + self.cfg.republish_interval);
        let target = NodeId(item.target());
        self.start_item_op(now, ItemOp::new(target, Mode::Put(item, None)))
    }

    /// Stops re-publishing the item under `target`; returns whether it was published.
    pub fn unpublish(&mut self, target: &NodeId) -> bool {
        let was = self.own_items.remove(&target.0).is_some();
        if self.own_items.is_empty() {
            self.next_republish = None;
        }
        was
    }

    /// The items this node publishes, in target order (for saving across restarts; give
    /// them back with [`Node::publish`]).
    pub fn published(&self) -> Vec<StoredItem> {
        self.own_items.values().cloned().collect()
    }

    fn start_item_op(&mut self, now: Instant, op: Box<ItemOp>) -> QueryId {
        let q = self.new_query_id();
        let kind = match op.mode {
            Mode::Get(_) => LookupKind::GetItem(op.target),
            Mode::Put(..) | Mode::Round(_) => LookupKind::PutItem(op.target),
        };
        self.start_lookup_full(now, q, kind, false, None, Some(op));
        q
    }

    /// A `get` answer of an item lookup (the lookup has already taken its nodes and token).
    pub(crate) fn item_response(&mut self, now: Instant, q: QueryId, node: NodeInfo, r: &Response<'_>) {
        let Some(op) = self.lookups.get_mut(&q).and_then(|l| l.item.as_mut()) else { return };
        if let Some(pool) = op.pool.as_mut() {
            pool.add(node);
            for n in if node.addr.is_ipv4() { &r.nodes } else { &r.nodes6 } {
                pool.add(*n);
            }
        }
        if op.on_get_answer(node.addr, r) {
            self.finish_lookup(now, q);
        }
    }

    /// The search of a put lookup ended: `put` to the closest nodes that gave a token.
    pub(crate) fn start_item_puts(&mut self, now: Instant, q: QueryId) {
        let Some(l) = self.lookups.get_mut(&q) else { return };
        let targets = l.announce_targets();
        let Some(mut op) = l.item.take() else { return };
        l.phase = Phase::Announcing { outstanding: 0 };
        if let (Some(pool), Some(r)) = (op.pool.take(), op.round) {
            self.hand_over_pool(r, q, &pool);
        }
        let Mode::Put(item, cas) = &op.mode else { return };
        let mut sent = 0;
        for (node, token) in targets {
            let put = match item {
                StoredItem::Immutable(i) => PutArgs { token: &token, v: i.value(), mutable: None },
                StoredItem::Mutable(m) => PutArgs {
                    token: &token,
                    v: m.value(),
                    mutable: Some(MutableArgs {
                        k: *m.public_key(),
                        sig: *m.signature(),
                        seq: m.seq(),
                        salt: m.salt(),
                        // BEP 44: no cas to a node that returned nothing.
                        cas: cas.filter(|_| op.holders.contains(&node.addr)),
                    }),
                },
            };
            if self.send_query(now, node.addr, Some(node.id), Method::Put(put), Purpose::ItemPut(q)).is_some() {
                sent += 1;
            }
        }
        let round = op.round;
        let Some(l) = self.lookups.get_mut(&q) else { return };
        op.sent = sent;
        l.item = Some(op);
        l.announces_sent += sent;
        l.phase = Phase::Announcing { outstanding: sent };
        if sent == 0 {
            self.finish_put(now, q);
        } else if let Some(r) = round {
            // A probe's region may have items ready now.
            self.republish_lookup_ended(now, r);
        }
    }

    /// Ends a put lookup; a lookup of a republish round tells the round.
    pub(crate) fn finish_put(&mut self, now: Instant, q: QueryId) {
        let round = self.lookups.get(&q).and_then(|l| l.item.as_ref()).and_then(|op| op.round);
        self.finish_lookup(now, q);
        if let Some(r) = round {
            self.republish_lookup_ended(now, r);
        }
    }

    /// A `put` missed its soft timeout. When every outstanding put is slow and a quorum of the
    /// nodes put to have stored the item, the put reports now instead of waiting for the hard
    /// timeouts: the item is where it should be, and late answers only refine the count.
    pub(crate) fn item_put_slow(&mut self, now: Instant, q: QueryId, addr: SocketAddr) {
        let Some(l) = self.lookups.get_mut(&q) else { return };
        let Phase::Announcing { outstanding } = l.phase else { return };
        let Some(op) = l.item.as_mut() else { return };
        op.slow.insert(addr);
        if op.slow.len() >= outstanding && op.stored.len() >= op.sent.div_ceil(2) {
            op.timed_out += outstanding;
            self.finish_put(now, q);
        }
    }

    /// One `put` ended.
    pub(crate) fn item_put_ack(&mut self, now: Instant, q: QueryId, node: NodeInfo, reply: PutReply) {
        let grace = self.rtt_grace();
        let Some(l) = self.lookups.get_mut(&q) else { return };
        let Phase::Announcing { outstanding } = l.phase else { return };
        if let Some(op) = l.item.as_mut() {
            op.slow.remove(&node.addr);
            match reply {
                PutReply::Stored => op.stored.push(node),
                PutReply::Refused(code) => op.refused.push((node, code)),
                PutReply::TimedOut => op.timed_out += 1,
            }
        }
        let outstanding = outstanding.saturating_sub(1);
        l.phase = Phase::Announcing { outstanding };
        if outstanding == 0 {
            return self.finish_put(now, q);
        }
        // A put returns once a majority of the closest nodes stored the item: the others get
        // one smoothed round trip more to be counted, not their full timeouts.
        if let Some(op) = l.item.as_mut().filter(|op| !op.quorum_grace && op.stored.len() >= op.sent.div_ceil(2)) {
            op.quorum_grace = true;
            l.deadline = l.deadline.min(now + grace);
        }
    }

    /// A lookup's deadline passed; for a put whose majority has stored, that is the end of its
    /// grace, and the puts still out count as timed out.
    pub(crate) fn put_grace_over(&mut self, q: QueryId) -> bool {
        let Some(l) = self.lookups.get_mut(&q) else { return false };
        let Phase::Announcing { outstanding } = l.phase else { return false };
        match l.item.as_mut() {
            Some(op) if op.quorum_grace => {
                op.timed_out += outstanding;
                true
            }
            _ => false,
        }
    }
}
