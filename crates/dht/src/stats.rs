//! Counters of a node, returned by `Node::stats()`.

use mycel_krpc::Method;

/// Counts per KRPC method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodCounts {
    /// `ping`.
    pub ping: u64,
    /// `find_node`.
    pub find_node: u64,
    /// `get_peers`.
    pub get_peers: u64,
    /// `announce_peer`.
    pub announce_peer: u64,
    /// `get` (BEP 44).
    pub get: u64,
    /// `put` (BEP 44).
    pub put: u64,
    /// `sample_infohashes` (BEP 51).
    pub sample_infohashes: u64,
    /// Methods we do not know.
    pub other: u64,
}

impl MethodCounts {
    /// Counts one message of `method`.
    pub(crate) fn count(&mut self, method: &Method<'_>) {
        let c = match method {
            Method::Ping => &mut self.ping,
            Method::FindNode { .. } => &mut self.find_node,
            Method::GetPeers { .. } => &mut self.get_peers,
            Method::AnnouncePeer { .. } => &mut self.announce_peer,
            Method::Get { .. } => &mut self.get,
            Method::Put(_) => &mut self.put,
            Method::SampleInfohashes { .. } => &mut self.sample_infohashes,
            Method::Unknown { .. } => &mut self.other,
        };
        *c += 1;
    }
}

/// Datagrams dropped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Not valid KRPC (answered with 203 when a query's transaction id could be read).
    pub malformed: u64,
    /// Over the per-IP query rate.
    pub rate_limited: u64,
    /// A response or error whose transaction id matches nothing we sent.
    pub unknown_transaction: u64,
    /// A response from an address other than the one we asked.
    pub wrong_source: u64,
    /// A query received while read-only.
    pub read_only: u64,
}

/// A snapshot of a node's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Nodes in each bucket, from the farthest (bucket 0) to the one holding our own id.
    pub nodes_per_bucket: Vec<usize>,
    /// Nodes in the routing table.
    pub routing_nodes: usize,
    /// Queries received, per method.
    pub queries_in: MethodCounts,
    /// Queries sent, per method.
    pub queries_out: MethodCounts,
    /// Responses received to our queries.
    pub responses_in: u64,
    /// Error messages received.
    pub errors_in: u64,
    /// Error messages sent (with codes 201–204).
    pub errors_out: u64,
    /// Our queries that timed out.
    pub timeouts: u64,
    /// Lookup requests sent a second time after missing their soft timeout.
    pub resends: u64,
    /// Dropped datagrams by reason.
    pub dropped: DropCounts,
    /// Info-hashes in the peer store.
    pub stored_info_hashes: usize,
    /// Peers in the peer store.
    pub stored_peers: usize,
    /// BEP 44 items stored for others.
    pub stored_items: usize,
    /// Bytes those items account for.
    pub stored_item_bytes: usize,
    /// Lookups in progress.
    pub active_lookups: usize,
    /// Requests in flight.
    pub in_flight: usize,
    /// Our messages carry `ro` (BEP 43): configured, or no unsolicited query seen for a window.
    pub read_only: bool,
    /// An unsolicited query (from an address we had not written to) showed us reachable.
    pub reachable: bool,
    /// Times we took a new node id derived from our external address (BEP 42).
    pub id_changes: u64,
    /// Times the automatic read-only state changed.
    pub read_only_switches: u64,
    /// Smoothed RTT of answered requests, in microseconds (0 before the first answer).
    pub srtt_us: u64,
    /// Accepted puts whose write to disk failed (answered with error 202, item not stored).
    pub item_write_failures: u64,
    /// Accepted puts waiting for their write to disk (with `Config::durable_items`).
    pub item_writes_pending: usize,
}
