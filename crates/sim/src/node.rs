//! What the engine needs from a simulated node, and the adapter for mycel's real DHT node.
//!
//! Every protocol in the simulator (mycel's Kademlia, the Sybils, the baselines) is a sans-IO
//! state machine behind [`SimNode`]. The engine follows the usual contract: after every input
//! it drains [`SimNode::poll_transmit`] and [`SimNode::poll_done`], then re-reads
//! [`SimNode::poll_timeout`].

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mycel_dht::{
    Config, Event, InfoHash, ItemGetResult, ItemKind, ItemPutResult, Node, NodeId, NodeInfo, QueryId, StoredItem,
    Transmit,
};
use mycel_items::{immutable_target, mutable_target};
use mycel_krpc::{Body, Message, Method, Query, Response, Want};

/// The outcome of one lookup, as the node that ran it reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    /// The tag returned by [`SimNode::start_lookup`].
    pub tag: u64,
    /// Ids of the nodes the lookup ends with, best first.
    pub found: Vec<[u8; 20]>,
    /// Hops to the best node found.
    pub hops: u32,
    /// Datagrams attributable to the lookup, both directions (0: not known to the node; the
    /// engine then attributes traffic itself).
    pub messages: u32,
    /// Payload bytes attributable to the lookup, both directions (0: unknown).
    pub bytes: u64,
    /// Requests that timed out.
    pub timeouts: u32,
    /// The lookup ended on its deadline.
    pub deadline_hit: bool,
    /// Peers returned (get_peers lookups).
    pub peers: u32,
    /// Of those, peers in the address block the fake-peer attackers hand out.
    pub fake_peers: u32,
    /// Time to the result when it came before the end of the lookup (flooding: the best
    /// hit); `None`: the lookup's own duration.
    pub elapsed: Option<Duration>,
}

/// What a lookup asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupOp {
    /// Find the nodes closest to a key (`find_node` for Kademlia).
    FindNode,
    /// Find peers for a key (`get_peers`; the others treat it like `FindNode`).
    GetPeers,
}

/// A simulated node: a sans-IO state machine the engine drives.
pub trait SimNode {
    /// One datagram arrived.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    /// The instant from `poll_timeout` has passed (spurious calls are no-ops).
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// When `handle_timeout` should next be called.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Starts a lookup for `key`; the result comes back from `poll_done` with the returned tag.
    fn start_lookup(&mut self, now: Instant, key: [u8; 20], op: LookupOp) -> u64;
    /// A finished lookup.
    fn poll_done(&mut self) -> Option<Done>;
    /// The node's routing contacts (saved across a restart, and checked for health).
    fn contacts(&self, now: Instant) -> Vec<NodeInfo>;
    /// Whether the node says `ro` (BEP 43) at the moment.
    fn read_only(&self) -> bool {
        false
    }
    /// A new membership view (the baselines' host cache, stabilization and gossip, modelled
    /// as a shared snapshot of the live reachable nodes, sorted by id).
    fn handle_membership(&mut self, _now: Instant, _view: &Rc<Vec<NodeInfo>>) {}
    /// Whether a datagram this node sends is lookup traffic (as opposed to maintenance, such
    /// as flooding's keep-alives); counted per lookup where the origin cannot attribute it.
    fn is_lookup_traffic(&self, _payload: &[u8]) -> bool {
        true
    }
    /// The workload stored an item under `key` on this node (flooding answers from its items).
    fn place_item(&mut self, _key: [u8; 20]) {}
    /// Puts a BEP 44 item; the result comes back from `poll_item_done` with the returned tag.
    /// `None`: the protocol has no items.
    fn start_put(&mut self, _now: Instant, _item: StoredItem, _cas: Option<i64>) -> Option<u64> {
        None
    }
    /// Gets the BEP 44 item under `target`; the result comes back from `poll_item_done`.
    fn start_get(&mut self, _now: Instant, _target: [u8; 20], _kind: ItemKind) -> Option<u64> {
        None
    }
    /// A finished item operation.
    fn poll_item_done(&mut self) -> Option<ItemDone> {
        None
    }
}

/// How a put ended, as the node that ran it reports it, with the phase times the adapter
/// observed on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutDone {
    /// The tag returned by [`SimNode::start_put`].
    pub tag: u64,
    /// `put` requests sent (at most k).
    pub sent: usize,
    /// Ids of the nodes that acknowledged the put before it reported.
    pub stored: Vec<[u8; 20]>,
    /// Nodes that refused it.
    pub refused: usize,
    /// Puts that timed out (or were still slow when the put reported).
    pub timed_out: usize,
    /// Datagrams of the operation, both directions: the `get` lookup's requests and answers,
    /// the `put`s and the acknowledgements received before the put reported.
    pub messages: u32,
    /// From the start to the first `put` sent: the lookup phase.
    pub lookup: Option<Duration>,
    /// From the start to the acknowledgement that made a quorum (half of the puts sent,
    /// rounded up: the node's own rule for reporting early).
    pub quorum: Option<Duration>,
    /// From the start to the `ItemPutDone` event.
    pub elapsed: Duration,
    /// Requests of the lookup phase that timed out.
    pub timeouts: u32,
    /// The lookup phase ended on its deadline.
    pub deadline_hit: bool,
}

/// How a get ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetDone {
    /// The tag returned by [`SimNode::start_get`].
    pub tag: u64,
    /// The verified item (the highest seq for a mutable item).
    pub item: Option<StoredItem>,
    /// Nodes that returned that item (that exact version).
    pub agreeing: usize,
    /// Answers that failed verification.
    pub invalid: usize,
    /// Datagrams of the operation, both directions.
    pub messages: u32,
    /// Hops to the closest node that answered.
    pub hops: u32,
    /// From the start to the `ItemGot` event.
    pub elapsed: Duration,
    /// Requests that timed out.
    pub timeouts: u32,
    /// The lookup ended on its deadline.
    pub deadline_hit: bool,
}

/// A finished item operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemDone {
    /// A put.
    Put(PutDone),
    /// A get.
    Get(GetDone),
}

impl ItemDone {
    /// The operation's tag.
    pub fn tag(&self) -> u64 {
        match self {
            ItemDone::Put(p) => p.tag,
            ItemDone::Get(g) => g.tag,
        }
    }
}

/// The address block fake-peer attackers hand out (TEST-NET-1: never a real simulated node).
pub fn is_fake_peer(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V4(a) if a.ip().octets()[..3] == [192, 0, 2])
}

/// Encoded sizes of a `find_node` query and of a response carrying k IPv4 nodes and a token,
/// as mycel sends them (with its `v` field).
fn kademlia_sizes(k: usize) -> (u64, u64) {
    let id = NodeId([0xab; 20]);
    let v = Some(&b"MY\x00\x01"[..]);
    let q = Message {
        tx: b"aa",
        version: v,
        ip: None,
        read_only: false,
        body: Body::Query(Query { id, method: Method::FindNode { target: id, want: Want::default() } }),
    };
    let node = NodeInfo { id, addr: SocketAddr::from(([10, 1, 2, 3], 6881)) };
    let mut resp = Response::with_id(id);
    resp.nodes = vec![node; k];
    resp.token = Some(b"12345678");
    let r = Message { tx: b"aa", version: v, ip: Some(node.addr), read_only: false, body: Body::Response(resp) };
    (q.encoded_len() as u64, r.encoded_len() as u64)
}

/// mycel's real DHT node behind [`SimNode`].
pub struct KadNode {
    node: Node,
    /// Lookups in progress: query id, our tag and peers seen so far (peers, fake peers).
    running: Vec<(QueryId, u64, u32, u32)>,
    done: Vec<Done>,
    next_tag: u64,
    /// Sizes used to estimate a lookup's bytes: one query and one full response.
    query_bytes: u64,
    response_bytes: u64,
    /// Item operations in progress.
    items: Vec<ItemRun>,
    item_done: Vec<ItemDone>,
    /// The instant of the input being handled (transmits drained after it were sent then).
    now: Instant,
}

/// An item operation in progress, with what the adapter sees of its `put` round.
struct ItemRun {
    query: QueryId,
    tag: u64,
    start: Instant,
    target: [u8; 20],
    /// A put (gets have no `put` round to watch).
    put: bool,
    /// When the first `put` left (put operations only).
    first_put: Option<Instant>,
    /// Transaction ids of the `put`s awaiting an answer.
    put_tx: Vec<Vec<u8>>,
    /// When each positive `put` answer arrived.
    acks: Vec<Instant>,
}

impl KadNode {
    /// A fresh node.
    pub fn new(config: Config, id: [u8; 20], seed: [u8; 32], now: Instant) -> Self {
        let (query_bytes, response_bytes) = kademlia_sizes(config.k);
        KadNode {
            node: Node::new(config, NodeId(id), seed, now),
            running: Vec::new(),
            done: Vec::new(),
            next_tag: 0,
            query_bytes,
            response_bytes,
            items: Vec::new(),
            item_done: Vec::new(),
            now,
        }
    }

    /// Joins through these addresses.
    pub fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) {
        self.node.bootstrap(now, addrs);
    }

    /// Rejoins with a saved routing table.
    pub fn restore(&mut self, now: Instant, nodes: &[NodeInfo]) {
        self.node.restore(now, nodes);
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::PeersFound { query, peers } => {
                if let Some(r) = self.running.iter_mut().find(|r| r.0 == query) {
                    r.2 += peers.len() as u32;
                    r.3 += peers.iter().filter(|p| is_fake_peer(p)).count() as u32;
                }
            }
            Event::LookupDone { query, result } => {
                let Some(pos) = self.running.iter().position(|r| r.0 == query) else { return };
                let (_, tag, peers, fake_peers) = self.running.swap_remove(pos);
                let messages = (result.messages_sent + result.responses) as u32;
                let bytes =
                    result.messages_sent as u64 * self.query_bytes + result.responses as u64 * self.response_bytes;
                self.done.push(Done {
                    tag,
                    found: result.closest.iter().map(|n| n.id.0).collect(),
                    hops: result.hops,
                    messages,
                    bytes,
                    timeouts: result.timeouts as u32,
                    deadline_hit: result.deadline_hit,
                    peers,
                    fake_peers,
                    elapsed: None,
                });
            }
            Event::ItemPutDone { query, result } => self.on_put_done(query, result),
            Event::ItemGot { query, result } => self.on_got(query, result),
            _ => {}
        }
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.node.poll_event() {
            self.on_event(e);
        }
        // Items stored for others: a driver with a disk writes them; here they are only
        // drained (the node's queue is unbounded otherwise).
        while self.node.poll_item_write().is_some() {}
    }

    fn start_item(&mut self, now: Instant, query: QueryId, target: [u8; 20], put: bool) -> u64 {
        self.next_tag += 1;
        let run = ItemRun {
            query,
            tag: self.next_tag,
            start: now,
            target,
            put,
            first_put: None,
            put_tx: Vec::new(),
            acks: Vec::new(),
        };
        self.items.push(run);
        self.drain_events();
        self.next_tag
    }

    fn take_item(&mut self, query: QueryId) -> Option<ItemRun> {
        let pos = self.items.iter().position(|r| r.query == query)?;
        Some(self.items.swap_remove(pos))
    }

    /// An outgoing datagram while a put runs: a `put` request starts (or continues) its put
    /// round. The put is found by the target its arguments hash to.
    fn note_sent(&mut self, payload: &[u8]) {
        let Ok(Message { tx, body: Body::Query(Query { method: Method::Put(put), .. }), .. }) =
            Message::decode(payload)
        else {
            return;
        };
        let target = match &put.mutable {
            Some(m) => mutable_target(&m.k, m.salt),
            None => immutable_target(put.v),
        };
        let now = self.now;
        if let Some(r) = self.items.iter_mut().find(|r| r.put && r.target == target) {
            r.first_put.get_or_insert(now);
            r.put_tx.push(tx.to_vec());
        }
    }

    /// An incoming datagram while puts await answers: a response to one of them is a store.
    fn note_received(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(msg) = Message::decode(bytes) else { return };
        let stored = match msg.body {
            Body::Response(_) => true,
            Body::Error(_) => false,
            Body::Query(_) => return,
        };
        for r in &mut self.items {
            if let Some(p) = r.put_tx.iter().position(|t| t.as_slice() == msg.tx) {
                r.put_tx.swap_remove(p);
                if stored {
                    r.acks.push(now);
                }
                return;
            }
        }
    }

    fn on_put_done(&mut self, query: QueryId, result: ItemPutResult) {
        let Some(run) = self.take_item(query) else { return };
        let quorum = result.sent.div_ceil(2).max(1);
        let acks = (result.stored.len() + result.refused.len()) as u32;
        self.item_done.push(ItemDone::Put(PutDone {
            tag: run.tag,
            sent: result.sent,
            stored: result.stored.iter().map(|n| n.id.0).collect(),
            refused: result.refused.len(),
            timed_out: result.timed_out,
            messages: (result.lookup.messages_sent + result.lookup.responses) as u32 + acks,
            lookup: run.first_put.map(|t| t - run.start),
            quorum: run.acks.get(quorum - 1).map(|t| *t - run.start),
            elapsed: self.now - run.start,
            timeouts: result.lookup.timeouts as u32,
            deadline_hit: result.lookup.deadline_hit,
        }));
    }

    fn on_got(&mut self, query: QueryId, result: ItemGetResult) {
        let Some(run) = self.take_item(query) else { return };
        self.item_done.push(ItemDone::Get(GetDone {
            tag: run.tag,
            item: result.item,
            agreeing: result.agreeing,
            invalid: result.invalid,
            messages: (result.lookup.messages_sent + result.lookup.responses) as u32,
            hops: result.lookup.hops,
            elapsed: self.now - run.start,
            timeouts: result.lookup.timeouts as u32,
            deadline_hit: result.lookup.deadline_hit,
        }));
    }
}

impl SimNode for KadNode {
    fn read_only(&self) -> bool {
        self.node.is_read_only()
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.now = now;
        if self.items.iter().any(|r| !r.put_tx.is_empty()) {
            self.note_received(now, bytes);
        }
        self.node.handle_datagram(now, from, bytes);
        self.drain_events();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.node.handle_timeout(now);
        self.drain_events();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.node.poll_transmit()?;
        if self.items.iter().any(|r| r.put) {
            self.note_sent(&t.payload);
        }
        Some(t)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    fn start_lookup(&mut self, now: Instant, key: [u8; 20], op: LookupOp) -> u64 {
        self.now = now;
        self.next_tag += 1;
        let q = match op {
            LookupOp::FindNode => self.node.find_node(now, NodeId(key)),
            LookupOp::GetPeers => self.node.get_peers(now, InfoHash(key)),
        };
        self.running.push((q, self.next_tag, 0, 0));
        self.drain_events();
        self.next_tag
    }

    fn poll_done(&mut self) -> Option<Done> {
        self.done.pop()
    }

    fn start_put(&mut self, now: Instant, item: StoredItem, cas: Option<i64>) -> Option<u64> {
        self.now = now;
        let target = item.target();
        let q = match item {
            StoredItem::Immutable(i) => self.node.put_immutable(now, i),
            StoredItem::Mutable(m) => self.node.put_mutable(now, m, cas),
        };
        Some(self.start_item(now, q, target, true))
    }

    fn start_get(&mut self, now: Instant, target: [u8; 20], kind: ItemKind) -> Option<u64> {
        self.now = now;
        let q = self.node.get_item(now, NodeId(target), kind);
        Some(self.start_item(now, q, target, false))
    }

    fn poll_item_done(&mut self) -> Option<ItemDone> {
        self.item_done.pop()
    }

    fn contacts(&self, now: Instant) -> Vec<NodeInfo> {
        self.node.routing_nodes(now)
    }
}
