//! The KRPC message model (BEP 5 plus the fields of BEP 32, 42 and 43 that the node uses).
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
            Method::Unknown { name } => name,
        }
    }
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
    /// Write token (`token`) for a later `announce_peer`.
    pub token: Option<&'a [u8]>,
}

impl Response<'_> {
    /// A response carrying only the responder's id (the answer to `ping` and `announce_peer`).
    pub fn with_id(id: NodeId) -> Self {
        Response { id, nodes: Vec::new(), nodes6: Vec::new(), values: Vec::new(), token: None }
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
