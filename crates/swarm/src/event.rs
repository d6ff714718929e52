//! What the engine hands back besides bytes and disk operations: events, disconnects and
//! statistics.

use std::net::{IpAddr, SocketAddr};

/// Identifies one connection; allocated by the driver, never reused while the engine may
/// still mention it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub u64);

/// Bytes to send to a peer, in order. Consecutive messages for one peer are coalesced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection.
    pub peer: PeerKey,
    /// Encoded peer wire messages (the handshake first on a new connection).
    pub data: Vec<u8>,
}

/// The engine wants a connection closed; it has already forgotten the peer, so a later
/// [`handle_peer_closed`](crate::Swarm::handle_peer_closed) for it is a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// The connection.
    pub peer: PeerKey,
    /// Why.
    pub reason: DisconnectReason,
}

/// Why the engine closes a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Malformed bytes, a bad handshake or a message that breaks the protocol.
    Protocol(String),
    /// The peer sent a block we never requested.
    UnrequestedBlock,
    /// The handshake names another torrent.
    WrongInfoHash,
    /// We connected to ourselves.
    SelfConnection,
    /// Another connection to the same peer id exists.
    Duplicate,
    /// The peer's address is banned for sending bad data.
    Banned,
    /// Nothing received for too long (or the handshake took too long).
    Inactivity,
    /// The torrent was paused or stopped.
    Paused,
    /// Neither side needs anything from the other (both seeds).
    NotUseful,
}

/// Why a peer was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// It contributed to pieces that failed their hash check (v1 strikes).
    FailedPieces,
    /// A v2 merkle check proved one of its blocks bad.
    BadBlock,
}

/// Facts for the application, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer completed the handshake.
    PeerConnected {
        /// The connection.
        peer: PeerKey,
        /// Its address.
        addr: SocketAddr,
        /// Its peer id.
        peer_id: [u8; 20],
    },
    /// A piece passed its hash check and is announced.
    PieceVerified {
        /// The piece.
        piece: u32,
    },
    /// A piece failed its hash check; these addresses sent data for it.
    PieceFailed {
        /// The piece.
        piece: u32,
        /// Contributors (with the number of blocks each sent).
        peers: Vec<(IpAddr, u32)>,
    },
    /// An address is banned: it is disconnected and never dialled again.
    PeerBanned {
        /// The address.
        addr: IpAddr,
        /// Why.
        reason: BanReason,
    },
    /// Every wanted piece is verified.
    Completed,
    /// A disk operation failed; a failed write pauses the torrent.
    DiskFailed {
        /// What the driver reported.
        error: String,
        /// Whether the torrent is now paused.
        paused: bool,
    },
}

/// Counters for one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// The connection.
    pub peer: PeerKey,
    /// Its address.
    pub addr: SocketAddr,
    /// Block bytes it delivered to us (accepted).
    pub downloaded: u64,
    /// Block bytes we sent to it.
    pub uploaded: u64,
    /// Download rate from it, bytes per second (last few seconds).
    pub download_rate: u64,
    /// Upload rate to it, bytes per second.
    pub upload_rate: u64,
    /// We choke it.
    pub am_choking: bool,
    /// We are interested in it.
    pub am_interested: bool,
    /// It chokes us.
    pub peer_choking: bool,
    /// It is interested in us.
    pub peer_interested: bool,
    /// It is snubbed (no block for a long time despite requests).
    pub snubbed: bool,
    /// Our requests outstanding to it.
    pub requests: usize,
    /// Our current request queue target for it.
    pub queue_depth: usize,
    /// It is our optimistic unchoke.
    pub optimistic: bool,
}

/// Engine counters, returned by [`Swarm::stats`](crate::Swarm::stats).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Block bytes accepted from peers.
    pub downloaded: u64,
    /// Block bytes sent to peers.
    pub uploaded: u64,
    /// Block bytes received but not used (duplicates, late, for failed pieces).
    pub wasted: u64,
    /// Pieces that failed their hash check.
    pub hash_failures: u64,
    /// Pieces verified.
    pub pieces_have: u32,
    /// Pieces in the torrent.
    pub pieces_total: u32,
    /// Total download rate, bytes per second.
    pub download_rate: u64,
    /// Total upload rate, bytes per second.
    pub upload_rate: u64,
    /// Current number of unchoke slots.
    pub unchoke_slots: usize,
    /// Addresses banned.
    pub banned: usize,
    /// Connections closed by the engine for protocol violations.
    pub protocol_errors: u64,
    /// BEP 52 hash requests answered with hashes.
    pub hash_requests_served: u64,
    /// BEP 52 hash requests rejected because the peer asked faster than
    /// `hash_requests_per_sec` allows.
    pub hash_requests_limited: u64,
    /// Unchoke messages sent.
    pub unchokes: u64,
    /// Of those, into idle slots lent to peers that had not delivered to us (leeching).
    pub unchokes_lent: u64,
    /// Rechokes run (on the interval, and when we became a seed).
    pub rechokes: u64,
    /// PEX (BEP 11) messages sent.
    pub pex_sent: u64,
    /// Well-formed PEX messages received and used.
    pub pex_received: u64,
    /// PEX messages ignored because their peer sent them too often.
    pub pex_ignored: u64,
    /// Dial candidates learnt from PEX (new addresses only).
    pub pex_peers_learnt: u64,
    /// Per connected peer, by key.
    pub peers: Vec<PeerStats>,
}
