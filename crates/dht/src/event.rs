//! What the node hands back to its driver: datagrams to send and events for the application.

use std::net::SocketAddr;
use std::time::Duration;

use mycel_krpc::{InfoHash, NodeId, NodeInfo};

use crate::item_ops::{ItemGetResult, ItemPutResult};

/// A datagram the driver must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub dst: SocketAddr,
    /// The encoded KRPC message.
    pub payload: Vec<u8>,
}

/// Identifies a command (ping, lookup, announce) so its events can be matched to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// What a lookup was looking for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// `find_node` towards a node id.
    FindNode(NodeId),
    /// `get_peers` for an info-hash.
    GetPeers(InfoHash),
    /// `get_peers` followed by `announce_peer` to the closest nodes that gave tokens.
    Announce(InfoHash),
    /// BEP 44 `get` of an item.
    GetItem(NodeId),
    /// BEP 44 `get` (for tokens) followed by `put` to the closest nodes that gave tokens.
    PutItem(NodeId),
}

/// The outcome of a finished lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    /// What was looked up.
    pub kind: LookupKind,
    /// The closest nodes that answered, nearest first: the k closest of each disjoint path
    /// (at most k with one path, d·k with d).
    pub closest: Vec<NodeInfo>,
    /// Distinct peers found (for get_peers / announce lookups).
    pub peers_found: usize,
    /// Nodes that acknowledged our `announce_peer` (announce lookups only).
    pub announced_to: usize,
    /// Requests sent by the lookup (including the announces).
    pub messages_sent: usize,
    /// Nodes that responded.
    pub responses: usize,
    /// Requests that timed out.
    pub timeouts: usize,
    /// Hops to the closest node that answered (nodes from our own table are hop 1).
    pub hops: u32,
    /// Time from start to end.
    pub duration: Duration,
    /// The lookup hit its hard deadline and returns partial results.
    pub deadline_hit: bool,
}

/// Facts the node reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A ping was answered.
    Pong {
        /// The ping command.
        query: QueryId,
        /// Who answered, with its id.
        node: NodeInfo,
        /// Round-trip time.
        rtt: Duration,
    },
    /// A ping got no answer (or an error) in time.
    PingFailed {
        /// The ping command.
        query: QueryId,
        /// The address that was pinged.
        addr: SocketAddr,
    },
    /// A get_peers or announce lookup learned new peers (each peer is reported once).
    PeersFound {
        /// The lookup.
        query: QueryId,
        /// Peers not reported before for this lookup.
        peers: Vec<SocketAddr>,
    },
    /// A lookup ended.
    LookupDone {
        /// The lookup.
        query: QueryId,
        /// Its outcome.
        result: LookupResult,
    },
    /// A BEP 44 item get ([`Node::get_item`](crate::Node::get_item)) ended.
    ItemGot {
        /// The get.
        query: QueryId,
        /// What was found, checked.
        result: ItemGetResult,
    },
    /// A BEP 44 item put ([`Node::put_immutable`](crate::Node::put_immutable),
    /// [`Node::put_mutable`](crate::Node::put_mutable)) ended.
    ItemPutDone {
        /// The put.
        query: QueryId,
        /// Who stored it and who refused.
        result: ItemPutResult,
    },
    /// A node answered [`Node::sample_infohashes`](crate::Node::sample_infohashes) (BEP 51).
    Samples {
        /// The request.
        query: QueryId,
        /// Who answered.
        node: NodeInfo,
        /// Seconds before asking it again (`None`: the node does not support BEP 51).
        interval: Option<i64>,
        /// How many info-hashes it stores.
        num: Option<i64>,
        /// The sample.
        samples: Vec<InfoHash>,
        /// Nodes it knows close to the target (same family as its address).
        nodes: Vec<NodeInfo>,
    },
    /// A `sample_infohashes` request got no answer, or an error.
    SamplesFailed {
        /// The request.
        query: QueryId,
        /// The address asked.
        addr: SocketAddr,
    },
    /// The first bootstrap round ended with nodes in the routing table.
    Bootstrapped {
        /// Nodes in the routing table.
        routing_nodes: usize,
    },
}
