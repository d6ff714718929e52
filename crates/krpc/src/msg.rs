//! The KRPC message model (BEP 5 plus the fields of BEP 32, 42, 43 and 44 that the node uses).
//!
//! A decoded [`Message`] is well-formed: ids are 20 bytes, compact node and peer lists have
//! valid lengths, ports are in range. Handlers never re-check. Byte strings that are opaque to
//! the protocol (transaction ids, tokens, the version, error text) borrow from the datagram.

use std::net::SocketAddr;

use crate::{InfoHash, NodeId};

/// Error code 201: generic error.
pub const ERROR_GENERIC: i64 = 201;
/// Error code 202: server error.
pub const ERROR_SERVER: i64 = 202;
/// Error code 203: protocol error (malformed packet, invalid arguments, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// Error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// Error code 205 (BEP 44): the value (`v`) is too big.
pub const ERROR_VALUE_TOO_BIG: i64 = 205;
/// Error code 206 (BEP 44): invalid signature.
pub const ERROR_INVALID_SIGNATURE: i64 = 206;
/// Error code 207 (BEP 44): the salt is too big.
pub const ERROR_SALT_TOO_BIG: i64 = 207;
/// Error code 301 (BEP 44): the `cas` did not match the stored sequence number.
pub const ERROR_CAS_MISMATCH: i64 = 301;
/// Error code 302 (BEP 44): the sequence number is less than the stored one.
pub const ERROR_SEQ_TOO_LOW: i64 = 302;

/// One KRPC message: the envelope (`t`, `y`, `v`, `ip`, `ro`) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Transaction id (`t`), echoed by the responder. At most 32 bytes accepted on input.
    pub tx: &'a [u8],
    /// Client version (`v`), if present. Usually 4 bytes: two letters and two version bytes.
    pub version: Option<&'a [u8]>,
    /// BEP 42 `ip`: the requester's address as seen by the responder (compact 6 or 18 bytes).
    pub ip: Option<SocketAddr>,
    /// BEP 43 `ro`: the sender is read-only and must not be added to routing tables.
    pub read_only: bool,
    /// Query, response or error.
    pub body: Body<'a>,
}

/// The three kinds of KRPC message (`y` = `q`, `r` or `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// `y = q`.
    Query(Query<'a>),
    /// `y = r`.
    Response(Response<'a>),
    /// `y = e`.
    Error(ErrorBody<'a>),
}

/// A query: the querying node's id and the method with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// The querying node's id (`a.id`).
    pub id: NodeId,
    /// The method (`q`) and its arguments (`a`).
    pub method: Method<'a>,
}

/// Which address families a querier wants in `nodes`/`nodes6` (BEP 32 `want`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4` was listed.
    pub n4: bool,
    /// `n6` was listed.
    pub n6: bool,
}

/// KRPC methods with their arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method<'a> {
    /// `ping`.
    Ping,
    /// `find_node` with `target`.
    FindNode {
        /// The id being looked for.
        target: NodeId,
        /// BEP 32 `want`; empty when absent.
        want: Want,
    },
    /// `get_peers` with `info_hash`.
    GetPeers {
        /// The torrent's info-hash.
        info_hash: InfoHash,
        /// BEP 32 `want`; empty when absent.
        want: Want,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// The torrent's info-hash.
        info_hash: InfoHash,
        /// The announced port (`port`); ignored by the receiver when `implied_port` is set.
        port: u16,
        /// `implied_port = 1`: use the UDP source port instead of `port`.
        implied_port: bool,
        /// The token from an earlier `get_peers` response.
        token: &'a [u8],
    },
    /// BEP 44 `get` of an item under `target`.
    Get {
        /// SHA-1 of the immutable value, or of the mutable item's key and salt.
        target: NodeId,
        /// Only send the value if its sequence number is greater than this.
        seq: Option<i64>,
        /// BEP 32 `want`; empty when absent.
        want: Want,
    },
    /// BEP 44 `put` of an immutable or mutable item.
    Put(PutArgs<'a>),
    /// BEP 51 `sample_infohashes`: a sample of the info-hashes the node stores, and the nodes
    /// closest to `target` (for walking the key space).
    SampleInfohashes {
        /// Where the returned nodes should be close to; does not affect the sample.
        target: NodeId,
        /// BEP 32 `want`; empty when absent.
        want: Want,
    },
    /// A method this implementation does not know; answered with error 204.
    Unknown {
        /// The method name as sent.
        name: &'a [u8],
    },
}

impl Method<'_> {
    /// The method name as it appears in `q`.
    pub fn name(&self) -> &[u8] {
        match self {
            Method::Ping => b"ping",
            Method::FindNode { .. } => b"find_node",
            Method::GetPeers { .. } => b"get_peers",
            Method::AnnouncePeer { .. } => b"announce_peer",
            Method::Get { .. } => b"get",
            Method::Put(_) => b"put",
            Method::SampleInfohashes { .. } => b"sample_infohashes",
            Method::Unknown { name } => name,
        }
    }
}

/// The arguments of a BEP 44 `put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutArgs<'a> {
    /// The write token from an earlier `get` response.
    pub token: &'a [u8],
    /// The value: one complete bencoded value, exactly the bytes sent (never re-encoded, since
    /// the hash and the signature cover these bytes).
    pub v: &'a [u8],
    /// Present for a mutable item (`k`, `sig` and `seq` all present); `None` for immutable.
    pub mutable: Option<MutableArgs<'a>>,
}

/// The mutable-item part of a `put`: key, signature, sequence number, salt and `cas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableArgs<'a> {
    /// The ed25519 public key (`k`).
    pub k: [u8; 32],
    /// The ed25519 signature (`sig`).
    pub sig: [u8; 64],
    /// The sequence number (`seq`).
    pub seq: i64,
    /// The salt (`salt`); empty when absent (the BEP treats both the same). Its length is
    /// not limited here: the storing node answers an over-long salt with error 207.
    pub salt: &'a [u8],
    /// Compare-and-swap: the sequence number the writer expects to replace.
    pub cas: Option<i64>,
}

/// A response (`r`). KRPC responses do not name their method, so every field a response of
/// any method may carry is here; absent ones are empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// The responding node's id (`r.id`).
    pub id: NodeId,
    /// IPv4 nodes (`nodes`, 26 bytes each).
    pub nodes: Vec<NodeInfo>,
    /// IPv6 nodes (`nodes6`, 38 bytes each, BEP 32).
    pub nodes6: Vec<NodeInfo>,
    /// Peers (`values`, a list of 6- or 18-byte compact addresses).
    pub values: Vec<SocketAddr>,
    /// Write token (`token`) for a later `announce_peer` or `put`.
    pub token: Option<&'a [u8]>,
    /// BEP 44 item value (`v`): one bencoded value, exactly the bytes sent.
    pub v: Option<&'a [u8]>,
    /// BEP 44 mutable item key (`k`).
    pub k: Option<[u8; 32]>,
    /// BEP 44 mutable item signature (`sig`).
    pub sig: Option<[u8; 64]>,
    /// BEP 44 mutable item sequence number (`seq`).
    pub seq: Option<i64>,
    /// BEP 51 `samples`: concatenated 20-byte info-hashes (a multiple of 20 bytes long; see
    /// [`Response::sample_hashes`]).
    pub samples: Option<&'a [u8]>,
    /// BEP 51 `interval`: seconds before asking this node for samples again.
    pub interval: Option<i64>,
    /// BEP 51 `num`: how many info-hashes the node stores.
    pub num: Option<i64>,
}

impl Response<'_> {
    /// A response carrying only the responder's id (the answer to `ping` and `announce_peer`).
    pub fn with_id(id: NodeId) -> Self {
        Response {
            id,
            nodes: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            token: None,
            v: None,
            k: None,
            sig: None,
            seq: None,
            samples: None,
            interval: None,
            num: None,
        }
    }

    /// The info-hashes of a BEP 51 `samples` field.
    pub fn sample_hashes(&self) -> impl Iterator<Item = InfoHash> + '_ {
        self.samples.unwrap_or_default().chunks_exact(20).filter_map(|c| c.try_into().ok().map(InfoHash))
    }
}

/// An error message (`e`): `[code, message]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// Error code (201–204 in BEP 5).
    pub code: i64,
    /// Human-readable text, as sent (not necessarily UTF-8).
    pub message: &'a [u8],
}

/// A node's contact information: id and UDP address ("compact node info").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// The node's UDP address.
    pub addr: SocketAddr,
}
