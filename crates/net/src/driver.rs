//! The task that owns a [`Node`] and its UDP sockets (one, or one per family).
//!
//! It is the run loop of the node's calling contract: `select!` over a received datagram on
//! either socket, the node's next timer, a command from a handle, the end of a write to the
//! state file and the periodic save; after every branch, drain the node's datagrams (each
//! sent through the socket of its destination's family) and events (routed to the waiting
//! command by [`QueryId`]). Protocol decisions stay in the node; this file only moves bytes
//! and replies.
//!
//! Writes of items go through one lane: at most one transaction runs on the blocking pool;
//! what the node accepts meanwhile (puts waiting for the disk, the node's own items to
//! publish) becomes the next transaction, so a burst of puts costs one commit, not one each.
//! A put is answered when its write is reported back to the node (`handle_items_written`).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mycel_dht::{
    Event, ImmutableItem, InfoHash, ItemGetResult, ItemKind, ItemPutResult, LookupResult, MutableItem, Node, NodeId,
    NodeInfo, QueryId, Stats, StoredItem,
};
use rand::RngCore;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, trace, warn, Instrument};

use crate::handle::{GetPeersItem, Handle, IoCounters, Samples};
use crate::sockets::{Family, Sockets};
use crate::store::{OwnItemOp, Saved, Store};
use crate::udp::{try_recv_batch, RecvBatch};
use crate::{DhtConfig, NetError};

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
    Publish { item: StoredItem, reply: PublishReply },
    Sample { addr: SocketAddr, target: NodeId, reply: oneshot::Sender<Result<Samples, NetError>> },
    Unpublish { target: NodeId, reply: oneshot::Sender<bool> },
    Stats(oneshot::Sender<Stats>),
    RoutingNodes(oneshot::Sender<Vec<NodeInfo>>),
    WaitBootstrapped(oneshot::Sender<usize>),
    Shutdown(oneshot::Sender<Result<(), NetError>>),
}

/// Where the outcome of a publish goes.
pub(crate) type PublishReply = oneshot::Sender<Result<ItemPutResult, NetError>>;

/// Who waits for the events of a query.
enum Pending {
    Ping(oneshot::Sender<Result<(NodeInfo, Duration), NetError>>),
    Lookup(oneshot::Sender<LookupResult>),
    Peers(mpsc::UnboundedSender<GetPeersItem>),
    ItemPut(oneshot::Sender<ItemPutResult>),
    Publish(PublishReply),
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
            Pending::Publish(tx) => tx.is_closed(),
            Pending::ItemGet(tx) => tx.is_closed(),
            Pending::Sample(tx) => tx.is_closed(),
        }
    }
}

/// Binds, loads the saved state, builds the node and starts its task.
pub(crate) async fn spawn(mut config: DhtConfig) -> Result<Handle, NetError> {
    let sockets = Sockets::bind(&config.listen)?;
    let local_addrs = sockets.local_addrs().to_vec();

    let item_ttl = config.node.item_ttl.as_secs();
    let (store, saved, (saved_items, own_items)) = match &config.data_dir {
        Some(dir) => {
            let path = dir.join(crate::STATE_FILE);
            let (dir, faults) = (dir.clone(), config.store_faults.clone());
            let (store, saved, items) = blocking(move || {
                let store = Store::open(&dir)?.with_faults(faults);
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

    // The driver decides these from what it has: both sockets, a disk.
    config.node.dual_stack = sockets.is_dual_stack();
    config.node.durable_items = store.is_some();
    let span = tracing::info_span!("dht", addrs = ?local_addrs, id = %&id.to_hex()[..8]);
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
        // Nodes of a family we have no socket for (say, saved by a dual-stack run) cannot be
        // asked; they stay in the file until the next save.
        let restorable: Vec<NodeInfo> = saved.nodes.iter().filter(|n| sockets.reaches(&n.addr)).copied().collect();
        if !restorable.is_empty() {
            info!(nodes = restorable.len(), "restoring saved routing table");
            node.restore(now, &restorable);
        }
        let (bootstrap, unreachable): (Vec<SocketAddr>, Vec<SocketAddr>) =
            config.bootstrap.iter().partition(|a| sockets.reaches(a));
        if !unreachable.is_empty() {
            warn!(addrs = ?unreachable, "no socket of their address family: these bootstrap addresses are ignored");
        }
        if !bootstrap.is_empty() {
            info!(addrs = ?bootstrap, "bootstrapping");
            node.bootstrap(now, &bootstrap);
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
        sockets,
        commands: rx,
        pending: BTreeMap::new(),
        bootstrap_waiters: Vec::new(),
        bootstrapped: false,
        store,
        saving: None,
        io: Arc::clone(&io),
        disk: DiskLane::default(),
    };
    let task = tokio::spawn(driver.run().instrument(span));
    Ok(Handle::new(commands, local_addrs, id, restored, io, task))
}

struct Driver {
    node: Node,
    sockets: Sockets,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Queries whose outcome someone waits for.
    pending: BTreeMap<QueryId, Pending>,
    bootstrap_waiters: Vec<oneshot::Sender<usize>>,
    bootstrapped: bool,
    store: Option<Arc<Store>>,
    /// A periodic save still running on the blocking pool.
    saving: Option<JoinHandle<()>>,
    io: Arc<IoCounters>,
    disk: DiskLane,
}

/// The item writes: the one transaction running and what waits for the next.
#[derive(Default)]
struct DiskLane {
    /// The transaction on the blocking pool.
    writing: Option<JoinHandle<Result<(), NetError>>>,
    /// Items of the node's queue in that transaction (reported back to the node in order).
    items_in_flight: usize,
    /// Publishes whose own item is in that transaction.
    publishes_in_flight: Vec<WaitingPublish>,
    /// Changes to the own items for the next transaction, in command order.
    own_ops: Vec<OwnItemOp>,
    /// Publishes whose own item is in `own_ops`.
    publishes: Vec<WaitingPublish>,
}

/// A publish waiting for its item to be saved; the put starts once it is.
struct WaitingPublish {
    item: StoredItem,
    reply: PublishReply,
    /// False once unpublished while waiting: the put still runs once, without re-publishing.
    keep: bool,
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
                (family, ready) = self.sockets.readable() => match ready {
                    Ok(()) => self.receive(family, &mut batch),
                    Err(e) => warn!("socket: {e}"),
                },
                written = wait_write(&mut self.disk.writing) => self.on_written(written),
                () = sleep_until(deadline) => self.node.handle_timeout(now()),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        self.finish_writes().await;
                        let saved = self.save_now().await;
                        let _ = reply.send(saved);
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => {
                        // Every handle is gone: keep what we learned and stop.
                        self.finish_writes().await;
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
    fn receive(&mut self, family: Family, batch: &mut RecvBatch) {
        for _ in 0..RECV_BATCHES {
            let Some(socket) = self.sockets.socket(family) else { return };
            match try_recv_batch(socket, batch) {
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
                if self.store.is_none() {
                    let query = self.node.publish(now, item);
                    self.pending.insert(query, Pending::Publish(reply));
                } else {
                    // Published once saved, so a restart publishes it again (on_written).
                    self.disk.own_ops.push(OwnItemOp::Save(item.clone()));
                    self.disk.publishes.push(WaitingPublish { item, reply, keep: true });
                }
            }
            Command::Sample { addr, target, reply } => {
                let query = self.node.sample_infohashes(now, addr, target);
                self.pending.insert(query, Pending::Sample(reply));
            }
            Command::Unpublish { target, reply } => {
                let mut waiting = false;
                for w in self.disk.publishes.iter_mut().chain(&mut self.disk.publishes_in_flight) {
                    if w.item.target() == target.0 && w.keep {
                        w.keep = false;
                        waiting = true;
                    }
                }
                if self.store.is_some() {
                    self.disk.own_ops.push(OwnItemOp::Remove(target.0));
                }
                let _ = reply.send(self.node.unpublish(&target) || waiting);
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
    /// are applied before draining again. Then starts the next item write if none runs.
    async fn flush(&mut self) {
        loop {
            let node = &mut self.node;
            self.sockets.send(std::iter::from_fn(|| node.poll_transmit()), &self.io).await;
            let mut cancels = Vec::new();
            while let Some(event) = self.node.poll_event() {
                if let Some(query) = self.on_event(event) {
                    cancels.push(query);
                }
            }
            if cancels.is_empty() {
                break;
            }
            for query in cancels {
                self.node.cancel(query);
            }
        }
        self.start_write();
    }

    /// Starts a transaction with every item write waiting, unless one runs already. Without a
    /// store the node's queue is only drained (its puts were answered at once).
    fn start_write(&mut self) {
        let Some(store) = self.store.clone() else {
            while self.node.poll_item_write().is_some() {}
            return;
        };
        if self.disk.writing.is_some() {
            return;
        }
        let items: Vec<StoredItem> = std::iter::from_fn(|| self.node.poll_item_write()).collect();
        let own = std::mem::take(&mut self.disk.own_ops);
        if items.is_empty() && own.is_empty() {
            return;
        }
        self.disk.items_in_flight = items.len();
        self.disk.publishes_in_flight = std::mem::take(&mut self.disk.publishes);
        trace!(items = items.len(), own = own.len(), "writing");
        let span = tracing::Span::current();
        self.disk.writing = Some(tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            store.write_batch(&items, &own, unix_now())
        }));
    }

    /// A transaction ended: tells the node (which answers the puts), starts the publishes
    /// whose item was saved and fails those whose item was not.
    fn on_written(&mut self, result: Result<(), NetError>) {
        self.disk.writing = None;
        let now = now();
        let count = std::mem::take(&mut self.disk.items_in_flight);
        let publishes = std::mem::take(&mut self.disk.publishes_in_flight);
        if let Err(e) = &result {
            warn!(items = count, own_items = publishes.len(), "writing items failed: {}", chain(e));
        }
        self.node.handle_items_written(now, count, result.is_ok());
        for w in publishes {
            match &result {
                Ok(()) => {
                    let query = if w.keep { self.node.publish(now, w.item) } else { self.put_once(now, w.item) };
                    self.pending.insert(query, Pending::Publish(w.reply));
                }
                Err(e) => {
                    let path = self.store.as_ref().map(|s| s.path().to_owned()).unwrap_or_default();
                    let _ = w.reply.send(Err(NetError::NotSaved { path, reason: chain(e) }));
                }
            }
        }
    }

    fn put_once(&mut self, now: std::time::Instant, item: StoredItem) -> QueryId {
        match item {
            StoredItem::Immutable(i) => self.node.put_immutable(now, i),
            StoredItem::Mutable(m) => self.node.put_mutable(now, m, None),
        }
    }

    /// Before stopping: waits for the transaction running, writes what waits behind it and
    /// sends the answers. A few rounds at most: nothing new is received meanwhile, so only
    /// what the node had accepted is left.
    async fn finish_writes(&mut self) {
        for _ in 0..3 {
            self.start_write();
            if self.disk.writing.is_none() {
                return;
            }
            let written = wait_write(&mut self.disk.writing).await;
            self.on_written(written);
            self.flush().await;
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
            Event::ItemPutDone { query, result } => match self.pending.remove(&query) {
                Some(Pending::ItemPut(reply)) => {
                    let _ = reply.send(result);
                }
                Some(Pending::Publish(reply)) => {
                    let _ = reply.send(Ok(result));
                }
                _ => {}
            },
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

/// Waits for the item write on the blocking pool; forever when none runs.
async fn wait_write(writing: &mut Option<JoinHandle<Result<(), NetError>>>) -> Result<(), NetError> {
    match writing {
        Some(task) => task.await.map_err(|e| NetError::Internal(format!("state file I/O task failed: {e}")))?,
        None => std::future::pending().await,
    }
}

/// An error and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
