//! The application's side of a running node: [`Handle`] and the get_peers [`PeerStream`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mycel_dht::{
    ImmutableItem, InfoHash, ItemGetResult, ItemKind, ItemPutResult, LookupResult, MutableItem, NodeId, NodeInfo,
    Stats, StoredItem,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::driver::Command;
use crate::NetError;

/// A cheap, cloneable handle to a running DHT node.
///
/// Every command goes to the node's task over a channel and resolves when the node reports the
/// outcome. After [`Handle::shutdown`] (from any clone) commands fail with [`NetError::Stopped`].
/// When the last handle is dropped without a shutdown, the task saves its state and stops.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    local_addrs: Vec<SocketAddr>,
    id: NodeId,
    restored: usize,
    io: Arc<IoCounters>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("local_addrs", &self.inner.local_addrs).field("id", &self.inner.id).finish()
    }
}

/// One item of a [`PeerStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetPeersItem {
    /// Peers not reported before by this lookup.
    Peers(Vec<SocketAddr>),
    /// The lookup ended; this is the last item.
    Done(LookupResult),
}

/// The results of a `get_peers` lookup as they arrive: batches of peers, then the summary.
///
/// Dropping the stream abandons the lookup.
#[derive(Debug)]
pub struct PeerStream {
    items: mpsc::UnboundedReceiver<GetPeersItem>,
}

impl PeerStream {
    /// The next batch of peers, or the final [`GetPeersItem::Done`]. `None` after `Done`, or
    /// when the node stopped before the lookup ended.
    pub async fn next(&mut self) -> Option<GetPeersItem> {
        self.items.recv().await
    }

    /// Waits for the end of the lookup and returns every peer found (in the order found) and
    /// the summary.
    pub async fn collect(mut self) -> Result<(Vec<SocketAddr>, LookupResult), NetError> {
        let mut peers = Vec::new();
        while let Some(item) = self.next().await {
            match item {
                GetPeersItem::Peers(batch) => peers.extend(batch),
                GetPeersItem::Done(result) => return Ok((peers, result)),
            }
        }
        Err(NetError::Stopped)
    }
}

/// A node's answer to `sample_infohashes` (BEP 51).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    /// Who answered.
    pub node: NodeInfo,
    /// Seconds before asking it again (`None`: it does not support BEP 51).
    pub interval: Option<i64>,
    /// How many info-hashes it stores.
    pub num: Option<i64>,
    /// The sample of info-hashes.
    pub samples: Vec<InfoHash>,
    /// Nodes it knows close to the target.
    pub nodes: Vec<NodeInfo>,
}

/// Datagram counters of the driver (what the node's own [`Stats`] cannot see).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Datagrams handed to the OS.
    pub datagrams_sent: u64,
    /// Datagrams received and fed to the node.
    pub datagrams_received: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// `send_to` failures (the datagram was dropped).
    pub send_errors: u64,
    /// `recv_from` failures, e.g. ICMP port unreachable reported as "connection refused".
    pub recv_errors: u64,
    /// Datagrams dropped because their destination is of a family we have no socket for.
    pub unroutable: u64,
}

/// Shared between the task (writer) and the handles (readers).
#[derive(Debug, Default)]
pub(crate) struct IoCounters {
    pub datagrams_sent: AtomicU64,
    pub datagrams_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub send_errors: AtomicU64,
    pub recv_errors: AtomicU64,
    pub unroutable: AtomicU64,
}

impl IoCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> IoStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IoStats {
            datagrams_sent: get(&self.datagrams_sent),
            datagrams_received: get(&self.datagrams_received),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            send_errors: get(&self.send_errors),
            recv_errors: get(&self.recv_errors),
            unroutable: get(&self.unroutable),
        }
    }
}

impl Handle {
    pub(crate) fn new(
        commands: mpsc::UnboundedSender<Command>,
        local_addrs: Vec<SocketAddr>,
        id: NodeId,
        restored: usize,
        io: Arc<IoCounters>,
        task: JoinHandle<()>,
    ) -> Self {
        assert!(!local_addrs.is_empty(), "a node has at least one socket");
        let task = Mutex::new(Some(task));
        Handle { inner: Arc::new(Inner { commands, local_addrs, id, restored, io, task }) }
    }

    /// The address the first UDP socket is bound to (that of the first listen address).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addrs[0]
    }

    /// Every bound UDP address, in the order of [`DhtConfig::listen`](crate::DhtConfig::listen):
    /// one, or an IPv4 and an IPv6 address for a dual-stack node.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.inner.local_addrs
    }

    /// The bound IPv4 address, if the node has an IPv4 socket.
    pub fn local_addr_v4(&self) -> Option<SocketAddr> {
        self.inner.local_addrs.iter().copied().find(SocketAddr::is_ipv4)
    }

    /// The bound IPv6 address, if the node has an IPv6 socket.
    pub fn local_addr_v6(&self) -> Option<SocketAddr> {
        self.inner.local_addrs.iter().copied().find(SocketAddr::is_ipv6)
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// How many nodes were loaded from the state file at start (0 without a data directory).
    pub fn restored_nodes(&self) -> usize {
        self.inner.restored
    }

    /// Pings an address; returns who answered and the round-trip time.
    pub async fn ping(&self, addr: SocketAddr) -> Result<(NodeInfo, Duration), NetError> {
        self.request(|reply| Command::Ping { addr, reply }).await?
    }

    /// Iterative `find_node` lookup towards `target`.
    pub async fn find_node(&self, target: NodeId) -> Result<LookupResult, NetError> {
        self.request(|reply| Command::FindNode { target, reply }).await
    }

    /// Starts a `get_peers` lookup; peers arrive on the returned stream as they are found.
    pub async fn get_peers(&self, info_hash: InfoHash) -> PeerStream {
        let (items, rx) = mpsc::unbounded_channel();
        // If the node has stopped, the command (and its sender) is dropped and the stream ends.
        let _ = self.inner.commands.send(Command::GetPeers { info_hash, items });
        PeerStream { items: rx }
    }

    /// Announces that we have `info_hash` on `port` to the closest nodes (`None`: the UDP
    /// source port, BEP 5 `implied_port`). `announced_to` in the result counts the nodes that
    /// acknowledged.
    pub async fn announce(&self, info_hash: InfoHash, port: Option<u16>) -> Result<LookupResult, NetError> {
        self.request(|reply| Command::Announce { info_hash, port, reply }).await
    }

    /// Stores an immutable item (BEP 44) on the closest nodes; the result says who stored it
    /// and who refused with which error.
    pub async fn put_immutable(&self, item: ImmutableItem) -> Result<ItemPutResult, NetError> {
        self.request(|reply| Command::PutImmutable { item, reply }).await
    }

    /// Stores a signed mutable item (BEP 44) on the closest nodes, with an optional `cas`.
    pub async fn put_mutable(&self, item: MutableItem, cas: Option<i64>) -> Result<ItemPutResult, NetError> {
        self.request(|reply| Command::PutMutable { item, cas, reply }).await
    }

    /// Fetches and checks the item under `target` (BEP 44): the immutable value whose hash
    /// matches, or every valid mutable version with the highest seq first.
    pub async fn get_item(&self, target: NodeId, kind: ItemKind) -> Result<ItemGetResult, NetError> {
        self.request(|reply| Command::GetItem { target, kind, reply }).await
    }

    /// Puts an item now and keeps re-publishing it every hour while the node runs (BEP 44
    /// items expire after 2 hours). With a data directory the item is first saved, to be
    /// published again after a restart; if that write fails, nothing is published and the
    /// error is [`NetError::NotSaved`]. The result is that of the first put.
    pub async fn publish(&self, item: StoredItem) -> Result<ItemPutResult, NetError> {
        self.request(|reply| Command::Publish { item, reply }).await?
    }

    /// Asks the node at `addr` for a sample of the info-hashes it stores (BEP 51), and for the
    /// nodes it knows closest to `target`.
    pub async fn sample_infohashes(&self, addr: SocketAddr, target: NodeId) -> Result<Samples, NetError> {
        self.request(|reply| Command::Sample { addr, target, reply }).await?
    }

    /// Stops re-publishing the item under `target`; returns whether it was published.
    pub async fn unpublish(&self, target: NodeId) -> Result<bool, NetError> {
        self.request(|reply| Command::Unpublish { target, reply }).await
    }

    /// A snapshot of the node's counters.
    pub async fn stats(&self) -> Result<Stats, NetError> {
        self.request(Command::Stats).await
    }

    /// A snapshot of the driver's datagram counters (no round trip to the task).
    pub fn io_stats(&self) -> IoStats {
        self.inner.io.snapshot()
    }

    /// The nodes of the routing table, good ones first.
    pub async fn routing_nodes(&self) -> Result<Vec<NodeInfo>, NetError> {
        self.request(Command::RoutingNodes).await
    }

    /// Resolves once the node has joined: the first bootstrap round ended with nodes, or the
    /// routing table is not empty. Returns the routing table size at that moment.
    pub async fn wait_bootstrapped(&self, timeout: Duration) -> Result<usize, NetError> {
        match tokio::time::timeout(timeout, self.request(Command::WaitBootstrapped)).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout(timeout)),
        }
    }

    /// Saves the state (if there is a data directory), stops the task and waits for it.
    /// Calling it again, or from another clone, is a no-op.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        let saved = match self.inner.commands.send(Command::Shutdown(reply)) {
            Ok(()) => rx.await.unwrap_or(Ok(())),
            Err(_) => Ok(()),
        };
        let task = self.inner.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                if e.is_panic() {
                    return Err(NetError::Internal(format!("the node task panicked: {e}")));
                }
            }
        }
        saved
    }

    /// Sends a command carrying a reply channel and waits for the reply.
    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetError> {
        let (reply, rx) = oneshot::channel();
        self.inner.commands.send(make(reply)).map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }
}
