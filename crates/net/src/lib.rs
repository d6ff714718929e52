//! The tokio driver of mycel's DHT node.
//!
//! `mycel-dht` is a sans-IO state machine; this crate gives it UDP sockets (one, or an IPv4
//! and an IPv6 socket for a dual-stack node), a clock, a seed from the OS random generator and
//! a place on disk. One tokio task owns the [`mycel_dht::Node`] and its sockets and runs the
//! loop the node's calling contract asks for: it `select!`s over a received datagram, the
//! node's next timer, a command from a [`Handle`] and the end of a disk write, and after every
//! branch drains the node's datagrams and events. Events are routed
//! back to the command that caused them by their [`mycel_dht::QueryId`].
//!
//! ```no_run
//! # async fn run() -> Result<(), mycel_net::NetError> {
//! use std::time::Duration;
//! use mycel_net::{Dht, DhtConfig};
//!
//! let mut config = DhtConfig::new("127.0.0.1:0".parse().expect("literal address"));
//! config.bootstrap.push("127.0.0.2:6881".parse().expect("literal address"));
//! let handle = Dht::spawn(config).await?;
//! handle.wait_bootstrapped(Duration::from_secs(10)).await?;
//! let result = handle.find_node(handle.id()).await?;
//! println!("{} nodes close to us", result.closest.len());
//! handle.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Persistence: with a data directory, the node id and the routing table (nodes of both
//! families) are kept in `mycel.redb` (tables `meta` and `dht_nodes`), saved every five
//! minutes and on shutdown, and restored at the next start, so a node rejoins without a
//! bootstrap address. Items put to the node are written there before the put is answered.

// The driver is where sockets, the clock, OS randomness and file I/O are allowed to live.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![warn(missing_docs)]

#[doc(hidden)]
pub mod bench_support;
mod driver;
mod error;
mod handle;
mod sockets;
mod store;
pub mod torrent;
mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use error::NetError;
pub use handle::{GetPeersItem, Handle, IoStats, PeerStream, Samples};
pub use mycel_dht::{Config as NodeConfig, InfoHash, LookupResult, NodeId, NodeInfo, Stats};
#[doc(hidden)]
pub use store::StoreFaults;

/// The file, inside the data directory, holding the node id and the routing table.
pub const STATE_FILE: &str = "mycel.redb";

/// How a DHT node is started.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// The UDP addresses to bind (port 0 picks a free port): one, or one IPv4 and one IPv6
    /// address for a dual-stack node (BEP 32). A dual-stack node runs one node over both
    /// sockets: it sends every datagram through the socket of its destination's family and
    /// its lookups ask for nodes of both families (the driver sets
    /// [`NodeConfig::dual_stack`](mycel_dht::Config::dual_stack)).
    pub listen: Vec<SocketAddr>,
    /// Routers or known nodes to join through; may be empty for the first node of a network
    /// or when a saved routing table is restored.
    pub bootstrap: Vec<SocketAddr>,
    /// Where the node id and the routing table are kept across restarts; `None` keeps nothing.
    pub data_dir: Option<PathBuf>,
    /// The node's own tunables.
    pub node: mycel_dht::Config,
    /// A fixed node id (tests, the demo). When `None`, the id saved in the data directory is
    /// used, or else a random one.
    pub id: Option<NodeId>,
    /// A fixed seed for the node's random generator (tests, the demo). When `None`, the seed
    /// is drawn from the OS random generator.
    pub seed: Option<[u8; 32]>,
    /// Fault injection for tests: makes writes of items to the state file fail.
    #[doc(hidden)]
    pub store_faults: StoreFaults,
}

impl DhtConfig {
    /// A node on `listen` with default tunables, no bootstrap addresses and no data directory.
    /// Push an address of the other family to `listen` for a dual-stack node.
    pub fn new(listen: SocketAddr) -> Self {
        DhtConfig {
            listen: vec![listen],
            bootstrap: Vec::new(),
            data_dir: None,
            node: mycel_dht::Config::default(),
            id: None,
            seed: None,
            store_faults: StoreFaults::default(),
        }
    }
}

/// Entry point: starts DHT nodes on the current tokio runtime.
#[derive(Debug)]
pub struct Dht;

impl Dht {
    /// Binds the UDP sockets, loads the saved state (if a data directory is given), starts the
    /// node's task and returns its [`Handle`]. The sockets are bound when this returns, so
    /// [`Handle::local_addrs`] are the real addresses.
    ///
    /// Must be called inside a tokio runtime with the time and I/O drivers enabled.
    pub async fn spawn(config: DhtConfig) -> Result<Handle, NetError> {
        driver::spawn(config).await
    }
}
