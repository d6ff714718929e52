//! Node configuration.

use std::time::Duration;

pub use crate::reach::ReachProbe;

/// Tunables of a DHT node. `Config::default()` gives the values of BEP 5 and common practice.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bucket size and the number of closest nodes a lookup converges on (k = 8).
    pub k: usize,
    /// Parallel requests per lookup path (α = 5, as libtorrent's `search_branching`; in the
    /// simulator's 100 ms-median network α = 5 cut the median lookup by about a fifth against
    /// α = 3 for a fifth more messages).
    pub alpha: usize,
    /// Disjoint lookup paths (S/Kademlia's d; 1 = plain Kademlia). Each path runs α requests.
    pub disjoint_paths: usize,
    /// Request timeout before any RTT has been measured, and its upper bound.
    pub max_request_timeout: Duration,
    /// Lower bound of the adaptive request timeout.
    pub min_request_timeout: Duration,
    /// Hard deadline of one lookup; it then ends with what it has.
    pub lookup_deadline: Duration,
    /// A bucket untouched this long is refreshed with a lookup of a random id in its range.
    pub bucket_refresh: Duration,
    /// A node heard from within this period is good (BEP 5: 15 minutes).
    pub node_good_for: Duration,
    /// Failed queries after which a node is bad and may be replaced.
    pub max_failures: u8,
    /// How often the token secret rotates (the previous secret stays valid for one more period).
    pub token_rotation: Duration,
    /// How long an announced peer is kept.
    pub peer_ttl: Duration,
    /// Cap on distinct info-hashes in the peer store.
    pub max_info_hashes: usize,
    /// Cap on peers per info-hash.
    pub max_peers_per_info_hash: usize,
    /// Cap on BEP 44 items stored for others.
    pub max_items: usize,
    /// Cap on the bytes of stored items (values, salts and a fixed overhead per item).
    pub max_item_bytes: usize,
    /// How long a stored item is kept after its last put (BEP 44: at least 2 hours).
    pub item_ttl: Duration,
    /// How long a mutable-item `get` keeps collecting versions after the lookup reached the
    /// closest nodes is bounded by `lookup_deadline`; this is the lookup deadline of item
    /// operations (get and put).
    pub item_deadline: Duration,
    /// How often the items this node publishes ([`Node::publish`](crate::Node::publish)) are
    /// put again (BEP 44: once an hour, so they outlive the storing nodes' 2-hour expiry).
    pub republish_interval: Duration,
    /// Peers returned in one `get_peers` response (keeps the datagram under ~1200 bytes).
    pub max_values_per_response: usize,
    /// Cap on our outstanding requests; lookups wait for a slot beyond it.
    pub max_in_flight: usize,
    /// Per-IP incoming datagram rate (per second, token bucket refill); 0 turns the limiter
    /// off (benchmarks, trusted networks).
    pub rate_limit_per_sec: u32,
    /// Per-IP burst allowance.
    pub rate_limit_burst: u32,
    /// Cap on the number of IPs the rate limiter tracks (oldest forgotten first).
    pub rate_limit_max_ips: usize,
    /// Replacement-cache entries kept per bucket.
    pub replacement_cache: usize,
    /// Our `v` field (two letters and two version bytes), or none.
    pub version: Option<[u8; 4]>,
    /// BEP 42: treat nodes whose id does not match their public IP as untrusted: they get no
    /// write token, and their answers neither end a lookup nor make them announce or put
    /// targets (their nodes are still followed). Local and private addresses are exempt. On by
    /// default (libtorrent leaves it off): an attacker who cannot choose its id cannot place
    /// itself next to a key, and a non-compliant honest node still routes for us.
    pub enforce_node_id: bool,
    /// BEP 42 for ourselves: once responders agree on our public IP and our id does not match
    /// it, take an id derived from that IP (local and private addresses are exempt).
    pub secure_own_id: bool,
    /// Read-only mode (BEP 43): we set `ro` and answer no queries.
    pub read_only: bool,
    /// Detect unreachability (behind NAT or a firewall) and then set `ro` while still
    /// answering what reaches us; `None` turns detection off. See [`ReachProbe`].
    pub reach_probe: Option<ReachProbe>,
    /// At most one node per IP address per bucket, for public addresses (private and loopback
    /// addresses are exempt, so local test networks work).
    pub restrict_ips: bool,
    /// First retry delay of a bootstrap that found nobody; doubled up to `bootstrap_max_backoff`.
    pub bootstrap_retry: Duration,
    /// Upper bound of the bootstrap retry delay.
    pub bootstrap_max_backoff: Duration,
    /// BEP 32: the node has an address of each family. Its lookups then send `want: ["n4",
    /// "n6"]` and read both `nodes` and `nodes6` from every answer, so it learns nodes of both
    /// families whichever family it asks over. (The driver sets it from its sockets.)
    pub dual_stack: bool,
    /// A `put` is acknowledged only once the item is on disk: accepted puts wait on
    /// [`Node::poll_item_write`](crate::Node::poll_item_write) until the driver reports the
    /// write with [`Node::handle_items_written`](crate::Node::handle_items_written); a failed
    /// write is answered with error 202 and the item is not served. Off: the put is answered at
    /// once (the simulator, a node without a disk). (The driver sets it when it has a store.)
    pub durable_items: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: 8,
            alpha: 5,
            disjoint_paths: 1,
            max_request_timeout: Duration::from_secs(2),
            min_request_timeout: Duration::from_millis(250),
            lookup_deadline: Duration::from_secs(20),
            bucket_refresh: Duration::from_secs(15 * 60),
            node_good_for: Duration::from_secs(15 * 60),
            max_failures: 2,
            token_rotation: Duration::from_secs(5 * 60),
            peer_ttl: Duration::from_secs(30 * 60),
            max_info_hashes: 50_000,
            max_peers_per_info_hash: 200,
            max_values_per_response: 50,
            max_items: 10_000,
            max_item_bytes: 16 << 20,
            item_ttl: Duration::from_secs(2 * 3600),
            item_deadline: Duration::from_secs(10),
            republish_interval: Duration::from_secs(3600),
            max_in_flight: 2048,
            rate_limit_per_sec: 250,
            rate_limit_burst: 500,
            rate_limit_max_ips: 65_536,
            replacement_cache: 8,
            version: Some(*b"MY\x00\x01"),
            enforce_node_id: true,
            secure_own_id: true,
            read_only: false,
            reach_probe: Some(ReachProbe::default()),
            restrict_ips: true,
            bootstrap_retry: Duration::from_secs(1),
            bootstrap_max_backoff: Duration::from_secs(60),
            dual_stack: false,
            durable_items: false,
        }
    }
}
