//! Engine settings.

use std::time::Duration;

use crate::ChokerConfig;

/// Settings of a [`Swarm`](crate::Swarm); `Config::default()` suits most torrents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Choker settings.
    pub choker: ChokerConfig,
    /// Most connections (handshaking or active).
    pub max_peers: usize,
    /// Most outgoing connections being dialled at once.
    pub max_connecting: usize,
    /// A failed dial is retried after this long (doubling per failure).
    pub connect_retry: Duration,
    /// Dial failures after which an address is forgotten.
    pub max_connect_failures: u32,
    /// Request pipeline: queue enough requests to cover this much time at the peer's rate.
    pub request_latency: Duration,
    /// Fewest requests queued to an unchoking peer.
    pub min_queue: usize,
    /// Most requests queued to one peer (also capped by its `reqq`).
    pub max_queue: usize,
    /// No block for this long while requests are out: the peer is snubbed and its
    /// requests go to others.
    pub snub_timeout: Duration,
    /// Send a keep-alive after this long without sending anything.
    pub keepalive_interval: Duration,
    /// Close a connection after this long without receiving anything.
    pub inactivity_timeout: Duration,
    /// Close a connection whose handshake has not arrived after this long.
    pub handshake_timeout: Duration,
    /// Disk reads in flight for one peer.
    pub max_reads_per_peer: usize,
    /// Requests from one peer we queue (our `reqq`); more are rejected.
    pub max_peer_requests: usize,
    /// End-game: most peers one block is requested from.
    pub endgame_duplicates: u8,
    /// Limit on a message's length prefix.
    pub max_message_len: u32,
    /// Failed pieces an address may contribute to before it is banned.
    pub strikes_to_ban: u32,
    /// Client name in the extended handshake.
    pub client_name: Vec<u8>,
    /// Our listen port, announced in the extended handshake.
    pub listen_port: Option<u16>,
    /// Time within which a v2 peer must answer a hash request before we fall back to
    /// blaming every contributor of a failed piece.
    pub hash_request_timeout: Duration,
    /// BEP 52 hash requests one peer may make per second (a token bucket, like piece
    /// requests); more are answered with `hash reject`.
    pub hash_requests_per_sec: u32,
    /// Hash requests one peer may make at once before the rate applies (the bucket size).
    pub hash_request_burst: u32,
    /// Peer exchange (BEP 11, `ut_pex`): tell peers whom we are connected to, and dial
    /// the peers they tell us of. Never on a private torrent, whatever this says.
    pub pex: bool,
    /// Least time between two PEX messages to one peer (BEP 11: at most one a minute).
    pub pex_interval: Duration,
    /// A peer's PEX messages closer together than this are ignored (and counted): an
    /// honest peer sends one a minute.
    pub pex_min_recv_interval: Duration,
    /// PEX adds no dial candidates while we hold this many, so what peers tell us cannot
    /// grow our memory without bound.
    pub pex_max_candidates: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            choker: ChokerConfig::default(),
            max_peers: 50,
            max_connecting: 8,
            connect_retry: Duration::from_secs(30),
            max_connect_failures: 3,
            request_latency: Duration::from_secs(3),
            min_queue: 2,
            max_queue: 500,
            snub_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(120),
            inactivity_timeout: Duration::from_secs(180),
            handshake_timeout: Duration::from_secs(20),
            max_reads_per_peer: 16,
            max_peer_requests: 500,
            endgame_duplicates: 2,
            max_message_len: 1 << 20,
            strikes_to_ban: 2,
            client_name: b"mycel 0.1".to_vec(),
            listen_port: None,
            hash_request_timeout: Duration::from_secs(20),
            // A layer chunk is 512 piece hashes: 64 at once covers 32 768 pieces.
            hash_requests_per_sec: 32,
            hash_request_burst: 64,
            pex: true,
            pex_interval: Duration::from_secs(60),
            pex_min_recv_interval: Duration::from_secs(20),
            pex_max_candidates: 500,
        }
    }
}
