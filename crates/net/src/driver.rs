//! The task that owns a [`Node`] and its UDP socket.
//!
//! It is the run loop of the node's calling contract: `select!` over a received datagram, the
//! node's next timer, a command from a handle and the periodic save; after every branch, drain
//! the node's datagrams (sent with `send_to`) and events (routed to the waiting command by
//! [`QueryId`]). Protocol decisions stay in the node; this file only moves bytes and replies.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mycel_dht::{
    Event, ImmutableItem, InfoHash, ItemGetResult, ItemKind, ItemPutResult, LookupResult, MutableItem, Node, NodeId,
    StoredItem,
    NodeInfo, QueryId, Stats, Transmit,
};
use rand::RngCore;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, trace, warn, Instrument};

use crate::handle::{GetPeersItem, Handle, IoCounters, Samples};
use crate::udp::{send_all, try_recv_batch, RecvBatch};
use crate::store::{Saved, Store};
use crate::{DhtConfig, NetError};

/// Socket buffer size asked of the kernel (it may grant less): a busy node receives bursts
/// far larger than the default ~200 KiB holds.
const SOCKET_BUFFER: usize = 4 << 20;
/// Receive batches handled per wake-up before the outputs are flushed.
const RECV_BATCHES: usize = 4;
/// How often the routing table is saved while running.
const SAVE_EVERY: Duration = Duration::from_secs(5 * 60);

/// A request from a [`Handle`] to the task.
pub(crate) enum Command {
    Ping { addr: SocketAddr, reply: oneshot::Sender<Result<(NodeInfo, Duration), NetError>> },
    FindNode { target: NodeId, reply: oneshot::Sender<LookupResult> },
    GetPeers { info_hash: InfoHash, items: mpsc::UnboundedSender<GetPeersItem> },
    Announce { info_hash: InfoHash, port: Option<u16>, reply: oneshot::Sender<LookupResult> },
    PutImmutable { item: ImmutableItem, reply: oneshot::Sender<ItemPutResult> },
    PutMutable { item: MutableItem, cas: Option<i64>, reply: oneshot::Sender<ItemPutResult> },
    GetItem { target: NodeId, kind: ItemKind, reply: oneshot::Sender<ItemGetResult> },
    Publish { item: StoredItem, reply: oneshot::Sender<ItemPutResult> },
    Sample { addr: SocketAddr, target: NodeId, reply: oneshot::Sender<Result<Samples, NetError>> },
    Unpublish { target: NodeId, reply: oneshot::Sender<bool> },
    Stats(oneshot::Sender<Stats>),
    RoutingNodes(oneshot::Sender<Vec<NodeInfo>>),
    WaitBootstrapped(oneshot::Sender<usize>),
    Shutdown(oneshot::Sender<Result<(), NetError>>),
}

/// Who waits for the events of a query.
enum Pending {
    Ping(oneshot::Sender<Result<(NodeInfo, Duration), NetError>>),
    Lookup(oneshot::Sender<LookupResult>),
    Peers(mpsc::UnboundedSender<GetPeersItem>),
    ItemPut(oneshot::Sender<ItemPutResult>),
    ItemGet(oneshot::Sender<ItemGetResult>),
    Sample(oneshot::Sender<Result<Samples, NetError>>),
}

impl Pending {
    /// The waiter went away; the query can be cancelled.
    fn is_abandoned(&self) -> bool {
        match self {
            Pending::Ping(tx) => tx.is_closed(),
            Pending::Lookup(tx) => tx.is_closed(),
            Pending::Peers(tx) => tx.is_closed(),
            Pending::ItemPut(tx) => tx.is_closed(),
            Pending::ItemGet(tx) => tx.is_closed(),
            Pending::Sample(tx) => tx.is_closed(),
        }
    }
}

/// Binds, loads the saved state, builds the node and starts its task.
pub(crate) async fn spawn(config: DhtConfig) -> Result<Handle, NetError> {
    let bind_err = |source: io::Error| NetError::Bind { addr: config.listen, source };
    let socket = bind_udp(config.listen).map_err(bind_err)?;
    let local_addr = socket.local_addr().map_err(bind_err)?;

    let item_ttl = config.node.item_ttl.as_secs();
    let (store, saved, (saved_items, own_items)) = match &config.data_dir {
        Some(dir) => {
            let path = dir.join(crate::STATE_FILE);
            let dir = dir.clone();
            let (store, saved, items) = blocking(move || {
                let store = Store::open(&dir)?;
                let saved = store.load()?;
                let items = (store.load_items(unix_now(), item_ttl)?, store.load_own_items()?);
                Ok((store, saved, items))
            })
            .await
            .map_err(|e| match e {
                // redb asserts on some inconsistencies: a panic while reading means a bad file.
                NetError::Internal(reason) => NetError::Corrupt { path, reason },
                e => e,
            })?;
            (Some(Arc::new(store)), saved, items)
        }
        None => (None, Saved::default(), (Vec::new(), Vec::new())),
    };

    let id = match config.id.or(saved.id) {
        Some(id) => id,
        None => NodeId(os_random()?),
    };
    let seed = match config.seed {
        Some(seed) => seed,
        None => os_random()?,
    };
    if let Some(store) = &store {
        if saved.id != Some(id) {
            // Keep a new id from the start, so a crash before the first save does not change it.
            let (store, nodes) = (Arc::clone(store), saved.nodes.clone());
            blocking(move || store.save(id, &nodes)).await?;
        }
    }

    let span = tracing::info_span!("dht", addr = %local_addr, id = %&id.to_hex()[..8]);
    let now = now();
    let mut node = Node::new(config.node, id, seed, now);
    span.in_scope(|| {
        if !saved_items.is_empty() {
            info!(items = saved_items.len(), "restoring stored items");
        }
        let unix = unix_now();
        for (item, at) in saved_items {
            // Keep the item's age: it expires when it would have without the restart.
            let age = Duration::from_secs(unix.saturating_sub(at));
            node.restore_item(now.checked_sub(age).unwrap_or(now), item);
        }
        if !saved.nodes.is_empty() {
            info!(nodes = saved.nodes.len(), "restoring saved routing table");
            node.restore(now, &saved.nodes);
        }
        if !config.bootstrap.is_empty() {
            info!(addrs = ?config.bootstrap, "bootstrapping");
            node.bootstrap(now, &config.bootstrap);
        }
        for item in own_items {
            // Published again at once, through the saved nodes and bootstrap addresses (its
            // waiter is gone), and then every hour.
            node.publish(now, item);
        }
    });

    let restored = saved.nodes.len();
    let (commands, rx) = mpsc::unbounded_channel();
    let io = Arc::new(IoCounters::default());
    let driver = Driver {
        node,
        socket,
        commands: rx,
        pending: BTreeMap::new(),
        bootstrap_waiters: Vec::new(),
        bootstrapped: false,
        store,
        saving: None,
        io: Arc::clone(&io),
        outbox: Vec::new(),
    };
    let task = tokio::spawn(driver.run().instrument(span));
    Ok(Handle::new(commands, local_addr, id, restored, io, task))
}

struct Driver {
    node: Node,
    socket: UdpSocket,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Queries whose outcome someone waits for.
    pending: BTreeMap<QueryId, Pending>,
    bootstrap_waiters: Vec<oneshot::Sender<usize>>,
    bootstrapped: bool,
    store: Option<Arc<Store>>,
    /// A periodic save still running on the blocking pool.
    saving: Option<JoinHandle<()>>,
    io: Arc<IoCounters>,
    /// Datagrams drained from the node, sent in batches.
    outbox: Vec<Transmit>,
}

impl Driver {
    async fn run(mut self) {
        let mut batch = RecvBatch::new();
        let mut save_tick = tokio::time::interval_at(tokio::time::Instant::now() + SAVE_EVERY, SAVE_EVERY);
        save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.flush().await;
            let deadline = self.node.poll_timeout();
            tokio::select! {
                ready = self.socket.readable() => match ready {
                    Ok(()) => self.receive(&mut batch),
                    Err(e) => warn!("socket: {e}"),
                },
                () = sleep_until(deadline) => self.node.handle_timeout(now()),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        let saved = self.save_now().await;
                        let _ = reply.send(saved);
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => {
                        // Every handle is gone: keep what we learned and stop.
                        if let Err(e) = self.save_now().await {
                            warn!("saving state failed: {e}");
                        }
                        break;
                    }
                },
                _ = save_tick.tick() => self.save_in_background(),
            }
        }
        debug!("stopped");
    }

    /// Handles what the socket has queued, a batch per system call, up to `RECV_BATCHES`
    /// batches before the outputs are flushed.
    fn receive(&mut self, batch: &mut RecvBatch) {
        for _ in 0..RECV_BATCHES {
            match try_recv_batch(&self.socket, batch) {
                Ok(0) => return,
                Ok(n) => {
                    for i in 0..n {
                        let (len, from) = batch.got[i];
                        self.on_datagram(Ok((len, from)), batch.datagram(i));
                    }
                    if n < crate::udp::BATCH {
                        return;
                    }
                }
                Err(e) => {
                    self.on_datagram(Err(e), &[]);
                    return;
                }
            }
        }
    }

    fn on_datagram(&mut self, received: io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        match received {
            Ok((len, from)) => {
                IoCounters::add(&self.io.datagrams_received, 1);
                IoCounters::add(&self.io.bytes_received, len as u64);
                self.node.handle_datagram(now(), from, &buf[..len.min(buf.len())]);
                if !self.bootstrap_waiters.is_empty() {
                    self.check_joined();
                }
            }
            // An ICMP "port unreachable" for an earlier send can surface here as
            // ConnectionRefused (Windows; Linux with a connected socket or IP_RECVERR). It says
            // nothing about this receive: count it and go on; the node's timeouts notice the
            // silent peer.
            Err(e) => {
                IoCounters::add(&self.io.recv_errors, 1);
                trace!("recv_from: {e}");
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = now();
        self.prune_abandoned();
        match command {
            Command::Ping { addr, reply } => {
                let query = self.node.ping(now, addr);
                self.pending.insert(query, Pending::Ping(reply));
            }
            Command::FindNode { target, reply } => {
                let query = self.node.find_node(now, target);
                self.pending.insert(query, Pending::Lookup(reply));
            }
            Command::GetPeers { info_hash, items } => {
                let query = self.node.get_peers(now, info_hash);
                self.pending.insert(query, Pending::Peers(items));
            }
            Command::Announce { info_hash, port, reply } => {
                let query = self.node.announce(now, info_hash, port);
                self.pending.insert(query, Pending::Lookup(reply));
            }
            Command::PutImmutable { item, reply } => {
                let query = self.node.put_immutable(now, item);
                self.pending.insert(query, Pending::ItemPut(reply));
            }
            Command::PutMutable { item, cas, reply } => {
                let query = self.node.put_mutable(now, item, cas);
                self.pending.insert(query, Pending::ItemPut(reply));
            }
            Command::GetItem { target, kind, reply } => {
                let query = self.node.get_item(now, target, kind);
                self.pending.insert(query, Pending::ItemGet(reply));
            }
            Command::Publish { item, reply } => {
                self.in_background("saving a published item", {
                    let item = item.clone();
                    move |store| store.save_own_item(&item)
                });
                let query = self.node.publish(now, item);
                self.pending.insert(query, Pending::ItemPut(reply));
            }
            Command::Sample { addr, target, reply } => {
                let query = self.node.sample_infohashes(now, addr, target);
                self.pending.insert(query, Pending::Sample(reply));
            }
            Command::Unpublish { target, reply } => {
                self.in_background("removing a published item", move |store| store.remove_own_item(&target.0));
                let _ = reply.send(self.node.unpublish(&target));
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.node.stats());
            }
            Command::RoutingNodes(reply) => {
                let _ = reply.send(self.node.routing_nodes(now));
            }
            Command::WaitBootstrapped(reply) => {
                self.bootstrap_waiters.push(reply);
                self.check_joined();
            }
            Command::Shutdown(_) => unreachable!("handled by the run loop"),
        }
    }

    /// Drains the node's outputs until it has none; events may lead to cancellations, which
    /// are applied before draining again.
    async fn flush(&mut self) {
        loop {
            // Before the acknowledgements go out: an acknowledged put is on disk.
            self.persist_items().await;
            self.outbox.clear();
            while let Some(transmit) = self.node.poll_transmit() {
                self.outbox.push(transmit);
            }
            if !self.outbox.is_empty() {
                let (sent, bytes, errors) = send_all(&self.socket, &self.outbox).await;
                IoCounters::add(&self.io.datagrams_sent, sent);
                IoCounters::add(&self.io.bytes_sent, bytes);
                IoCounters::add(&self.io.send_errors, errors);
            }
            let mut cancels = Vec::new();
            while let Some(event) = self.node.poll_event() {
                if let Some(query) = self.on_event(event) {
                    cancels.push(query);
                }
            }
            if cancels.is_empty() {
                return;
            }
            for query in cancels {
                self.node.cancel(query);
            }
        }
    }

    /// Runs a store write on the blocking pool without waiting for it (no-op without a store).
    fn in_background(&self, what: &'static str, work: impl FnOnce(&Store) -> Result<(), NetError> + Send + 'static) {
        let Some(store) = self.store.clone() else { return };
        tokio::spawn(
            async move {
                if let Err(e) = blocking(move || work(&store)).await {
                    warn!("{what} failed: {e}");
                }
            }
            .in_current_span(),
        );
    }

    /// Writes the items the node stored since the last call, in one transaction.
    async fn persist_items(&mut self) {
        let mut items = Vec::new();
        while let Some(item) = self.node.poll_item_write() {
            items.push(item);
        }
        let Some(store) = self.store.clone() else { return };
        if items.is_empty() {
            return;
        }
        if let Err(e) = blocking(move || store.save_items(&items, unix_now())).await {
            warn!("saving stored items failed: {e}");
        }
    }

    /// Routes an event to its waiter; returns a query to cancel when the waiter is gone.
    fn on_event(&mut self, event: Event) -> Option<QueryId> {
        match event {
            Event::Pong { query, node, rtt } => {
                if let Some(Pending::Ping(reply)) = self.pending.remove(&query) {
                    let _ = reply.send(Ok((node, rtt)));
                }
            }
            Event::PingFailed { query, addr } => {
                if let Some(Pending::Ping(reply)) = self.pending.remove(&query) {
                    let _ = reply.send(Err(NetError::NoAnswer { addr }));
                }
            }
            Event::PeersFound { query, peers } => {
                if let Some(Pending::Peers(items)) = self.pending.get(&query) {
                    if items.send(GetPeersItem::Peers(peers)).is_err() {
                        self.pending.remove(&query);
                        return Some(query);
                    }
                }
            }
            Event::LookupDone { query, result } => match self.pending.remove(&query) {
                Some(Pending::Lookup(reply)) => {
                    let _ = reply.send(result);
                }
                Some(Pending::Peers(items)) => {
                    let _ = items.send(GetPeersItem::Done(result));
                }
                _ => {}
            },
            Event::ItemPutDone { query, result } => {
                if let Some(Pending::ItemPut(reply)) = self.pending.remove(&query) {
                    let _ = reply.send(result);
                }
            }
            Event::Samples { query, node, interval, num, samples, nodes } => {
                if let Some(Pending::Sample(reply)) = self.pending.remove(&query) {
                    let _ = reply.send(Ok(Samples { node, interval, num, samples, nodes }));
                }
            }
            Event::SamplesFailed { query, addr } => {
                if let Some(Pending::Sample(reply)) = self.pending.remove(&query) {
                    let _ = reply.send(Err(NetError::NoAnswer { addr }));
                }
            }
            Event::ItemGot { query, result } => {
                if let Some(Pending::ItemGet(reply)) = self.pending.remove(&query) {
                    let _ = reply.send(result);
                }
            }
            Event::Bootstrapped { routing_nodes } => {
                info!(routing_nodes, "bootstrapped");
                self.bootstrapped = true;
                self.wake_bootstrap_waiters(routing_nodes);
            }
        }
        None
    }

    /// Wakes the `wait_bootstrapped` callers if the node has joined by now.
    fn check_joined(&mut self) {
        let routing_nodes = self.node.stats().routing_nodes;
        if self.bootstrapped || routing_nodes > 0 {
            self.wake_bootstrap_waiters(routing_nodes);
        }
    }

    fn wake_bootstrap_waiters(&mut self, routing_nodes: usize) {
        for waiter in self.bootstrap_waiters.drain(..) {
            let _ = waiter.send(routing_nodes);
        }
    }

    /// Cancels the queries whose waiter has gone away (a caller timed out or dropped a stream).
    fn prune_abandoned(&mut self) {
        let abandoned: Vec<QueryId> =
            self.pending.iter().filter(|(_, pending)| pending.is_abandoned()).map(|(query, _)| *query).collect();
        for query in abandoned {
            self.pending.remove(&query);
            self.node.cancel(query);
        }
        self.bootstrap_waiters.retain(|waiter| !waiter.is_closed());
    }

    /// Starts a save on the blocking pool without waiting for it (skipped if one still runs).
    fn save_in_background(&mut self) {
        let Some(store) = self.store.clone() else { return };
        if self.saving.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let (id, nodes) = (self.node.id(), self.node.routing_nodes(now()));
        self.saving = Some(tokio::spawn(
            async move {
                match blocking(move || store.save(id, &nodes)).await {
                    Ok(()) => debug!("state saved"),
                    Err(e) => warn!("saving state failed: {e}"),
                }
            }
            .in_current_span(),
        ));
    }

    /// Saves now and waits for it (after any save still running).
    async fn save_now(&mut self) -> Result<(), NetError> {
        if let Some(task) = self.saving.take() {
            let _ = task.await;
        }
        let Some(store) = self.store.clone() else { return Ok(()) };
        let (id, nodes) = (self.node.id(), self.node.routing_nodes(now()));
        let (count, path) = (nodes.len(), store.path().to_owned());
        blocking(move || store.save(id, &nodes)).await?;
        info!(nodes = count, path = %path.display(), "state saved");
        Ok(())
    }
}

/// Wall-clock seconds since the Unix epoch (what is persisted).
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The clock, read through tokio so a paused test clock applies too.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until the node's deadline, or forever when it has none.
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

/// Runs blocking work (redb I/O) on the blocking pool; a panic there becomes an error.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| NetError::Internal(format!("state file I/O task failed: {e}")))?
}

/// Bytes from the OS random generator.
fn os_random<const N: usize>() -> Result<[u8; N], NetError> {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| NetError::Internal(format!("OS random generator failed: {e}")))?;
    Ok(bytes)
}

/// Binds a non-blocking UDP socket with large kernel buffers.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
