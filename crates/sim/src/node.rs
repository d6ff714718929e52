//! What the engine needs from a simulated node, and the adapter for mycel's real DHT node.
//!
//! Every protocol in the simulator (mycel's Kademlia, the Sybils, the baselines) is a sans-IO
//! state machine behind [`SimNode`]. The engine follows the usual contract: after every input
//! it drains [`SimNode::poll_transmit`] and [`SimNode::poll_done`], then re-reads
//! [`SimNode::poll_timeout`].

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mycel_dht::{Config, Event, InfoHash, Node, NodeId, NodeInfo, QueryId, Transmit};
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
            _ => {}
        }
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.node.poll_event() {
            self.on_event(e);
        }
    }
}

impl SimNode for KadNode {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.node.handle_datagram(now, from, bytes);
        self.drain_events();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
        self.drain_events();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.node.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    fn start_lookup(&mut self, now: Instant, key: [u8; 20], op: LookupOp) -> u64 {
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

    fn contacts(&self, now: Instant) -> Vec<NodeInfo> {
        self.node.routing_nodes(now)
    }
}
