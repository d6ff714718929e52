//! The DHT node state machine: transactions, timers and the glue between the routing table,
//! lookups, the peer store and the wire. Answering queries lives in `serve.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycel_krpc::{Body, InfoHash, Message, Method, NodeId, NodeInfo, Query, Response, Want};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::durable::ItemWrites;
use crate::identity::Identity;
use crate::item_ops::PutReply;
use crate::items::{ItemStore, StoredItem};
use crate::lookup::{Lookup, Phase};
use crate::peers::PeerStore;
use crate::ratelimit::RateLimiter;
use crate::reach::Reachability;
use crate::routing::{Insert, RoutingTable};
use crate::rtt::RttEstimator;
use crate::secure_id::IpVote;
use crate::token::Tokens;
use crate::{Config, Event, LookupKind, QueryId, Stats, Transmit};

/// Why we sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A request of a lookup.
    Lookup(QueryId),
    /// An `announce_peer` at the end of an announce lookup.
    Announce(QueryId),
    /// A BEP 44 `put` at the end of an item-put lookup.
    ItemPut(QueryId),
    /// A BEP 51 `sample_infohashes` asked for by the application.
    Sample(QueryId),
    /// A ping asked for by the application.
    Ping(QueryId),
    /// A ping to a node that queried us, to verify it before adding it to the table.
    Verify,
    /// Ping-before-evict of a questionable node.
    Probe,
    /// Its command was cancelled; the answer only feeds the routing table.
    Detached,
}

pub(crate) struct Pending {
    addr: SocketAddr,
    id: Option<NodeId>,
    purpose: Purpose,
    sent: Instant,
    soft_at: Instant,
    hard_at: Instant,
    /// Distinguishes this request's timers from those of an earlier one with the same tx id.
    seq: u64,
    slow: bool,
    /// This request resends an earlier one that missed its soft timeout.
    resend: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Soft,
    Hard,
}

/// Cap on verification pings in flight (each new querier costs one; bounded so a flood of
/// spoofed queries cannot turn us into a reflector).
const MAX_VERIFY_IN_FLIGHT: usize = 64;
/// Distinct responders that must agree on our external IP (BEP 42 voting).
const IP_VOTE_QUORUM: usize = 5;
/// The most recent responders whose votes count.
const IP_VOTE_VOTERS: usize = 64;
/// How often expired peers are swept out.
const EXPIRY_SWEEP: Duration = Duration::from_secs(60);

/// A Mainline DHT node (BEP 5) as a sans-IO state machine.
///
/// # Calling contract
/// Feed every received datagram to [`Node::handle_datagram`] and call [`Node::handle_timeout`]
/// when the instant from [`Node::poll_timeout`] has passed (a spurious call is a no-op). After
/// every input or command, drain [`Node::poll_transmit`] and [`Node::poll_event`] until they
/// return `None`, then re-read [`Node::poll_timeout`]. `now` must never go backwards.
///
/// ```text
/// let mut node = Node::new(Config::default(), id, seed, now);
/// node.bootstrap(now, &[router]);
/// loop {
///     while let Some(t) = node.poll_transmit() { socket.send_to(&t.payload, t.dst) }
///     while let Some(e) = node.poll_event() { app.on(e) }
///     select! {
///         (len, from) = socket.recv_from(&mut buf) => node.handle_datagram(clock.now(), from, &buf[..len]),
///         _ = sleep_until(node.poll_timeout()) => node.handle_timeout(clock.now()),
///     }
/// }
/// ```
pub struct Node {
    pub(crate) cfg: Config,
    pub(crate) id: NodeId,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) table: RoutingTable,
    pub(crate) tokens: Tokens,
    pub(crate) store: PeerStore,
    pub(crate) items: ItemStore,
    /// Items stored (or refreshed) since the driver last drained them, for persisting; with
    /// `durable_items`, accepted puts waiting for their write (durable.rs).
    pub(crate) item_writes: ItemWrites,
    /// Items we publish ourselves and put again every `republish_interval`.
    pub(crate) own_items: BTreeMap<[u8; 20], StoredItem>,
    pub(crate) next_republish: Option<Instant>,
    /// BEP 42: our external address as the nodes that answer us see it.
    pub(crate) ip_vote: IpVote,
    pub(crate) identity: Identity,
    /// BEP 43 by observation: whether we are reachable or should say `ro`.
    reach: Option<Reachability>,
    limiter: RateLimiter,
    rtt: RttEstimator,
    pub(crate) pending: HashMap<[u8; 2], Pending>,
    timers: BTreeMap<(Instant, u64, TimerKind), [u8; 2]>,
    next_seq: u64,
    pub(crate) lookups: BTreeMap<QueryId, Lookup>,
    next_query: u64,
    verify_in_flight: usize,
    pub(crate) bootstrap_addrs: Vec<SocketAddr>,
    /// Nodes from an earlier run, handed to `restore`.
    pub(crate) saved: Vec<NodeInfo>,
    pub(crate) bootstrap_lookup: Option<QueryId>,
    pub(crate) bootstrap_retry_at: Option<Instant>,
    pub(crate) bootstrap_backoff: Duration,
    pub(crate) bootstrapped: bool,
    next_expiry: Instant,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: Stats,
}

impl Node {
    /// A node with the given id; all its randomness comes from `seed`.
    pub fn new(config: Config, id: NodeId, seed: [u8; 32], now: Instant) -> Self {
        let mut rng = ChaCha8Rng::from_seed(seed);
        let mut table = RoutingTable::new(id, config.k, now);
        table.configure(&config);
        let tokens = Tokens::new(rng.gen(), config.token_rotation, now);
        let store = PeerStore::new(config.max_info_hashes, config.max_peers_per_info_hash, config.peer_ttl);
        let items = ItemStore::new(config.max_items, config.max_item_bytes, config.item_ttl);
        let limiter = RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst, config.rate_limit_max_ips);
        let rtt = RttEstimator::new(config.min_request_timeout, config.max_request_timeout);
        let bootstrap_backoff = config.bootstrap_retry;
        let reach = config.reach_probe.filter(|_| !config.read_only).map(|p| Reachability::new(p, rng.gen(), now));
        Node {
            cfg: config,
            id,
            rng,
            table,
            tokens,
            store,
            items,
            item_writes: ItemWrites::new(),
            own_items: BTreeMap::new(),
            next_republish: None,
            ip_vote: IpVote::new(IP_VOTE_QUORUM, IP_VOTE_VOTERS),
            identity: Identity::default(),
            reach,
            limiter,
            rtt,
            pending: HashMap::new(),
            timers: BTreeMap::new(),
            next_seq: 0,
            lookups: BTreeMap::new(),
            next_query: 0,
            verify_in_flight: 0,
            bootstrap_addrs: Vec::new(),
            saved: Vec::new(),
            bootstrap_lookup: None,
            bootstrap_retry_at: None,
            bootstrap_backoff,
            bootstrapped: false,
            next_expiry: now + EXPIRY_SWEEP,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Our external IP address as the nodes answering us report it (BEP 42 `ip`), once
    /// enough of them agree; what a BEP 42 node id must be derived from.
    pub fn external_ip(&self) -> Option<std::net::IpAddr> {
        self.ip_vote.winner()
    }

    /// The routing table (read-only view).
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }

    /// Joins the network through these addresses (routers or known nodes): asks them for the
    /// nodes closest to our id, retrying with back-off while the table stays empty.
    pub fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) {
        for a in addrs {
            if !self.bootstrap_addrs.contains(a) {
                self.bootstrap_addrs.push(*a);
            }
        }
        self.start_bootstrap(now);
    }

    /// Takes nodes saved from an earlier run and starts a self-lookup through them. They are
    /// not trusted as table entries: each enters the routing table once it answers; until the
    /// table holds k nodes, lookups also start from the saved nodes closest to their target.
    pub fn restore(&mut self, now: Instant, nodes: &[NodeInfo]) {
        for n in nodes {
            if n.id != self.id && !self.saved.iter().any(|s| s.addr == n.addr) {
                self.saved.push(*n);
            }
        }
        self.start_bootstrap(now);
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.cfg.rate_limit_per_sec > 0 && !self.limiter.allow(now, from.ip()) {
            self.stats.dropped.rate_limited += 1;
            return;
        }
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.dropped.malformed += 1;
                if let Some(tx) = mycel_krpc::salvage_query_tx(bytes) {
                    let tx = tx.to_vec();
                    self.send_error(from, &tx, mycel_krpc::ERROR_PROTOCOL, b"malformed query");
                }
                return;
            }
        };
        match msg.body {
            Body::Query(q) => {
                if self.cfg.read_only {
                    self.stats.dropped.read_only += 1;
                    return;
                }
                self.on_query(now, from, msg.tx, msg.read_only, q);
            }
            Body::Response(r) => self.on_response(now, from, msg.tx, msg.ip, r),
            Body::Error(e) => self.on_error(now, from, msg.tx, e.code),
        }
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fire_request_timers(now);
        self.expire_lookups(now);
        let rng = &mut self.rng;
        self.tokens.maybe_rotate(now, || rng.gen());
        if now >= self.next_expiry {
            self.store.expire(now);
            self.items.expire(now);
            self.limiter.sweep(now);
            self.next_expiry = now + EXPIRY_SWEEP;
        }
        if self.bootstrap_retry_at.is_some_and(|t| now >= t) {
            self.bootstrap_retry_at = None;
            self.start_bootstrap(now);
        }
        self.refresh_buckets(now);
        self.republish_due(now);
        if self.reach.as_mut().is_some_and(|r| r.handle_timeout(now)) {
            self.stats.read_only_switches += 1;
            if self.is_read_only() {
                self.say_read_only(now);
            }
        }
    }

    /// We just found ourselves unreachable: the nodes that added us while our NAT let them in
    /// would keep sending lookups our way, each one waiting out a timeout. A ping carrying `ro`
    /// to every node of our table (the ones most likely to hold us) makes them drop us.
    pub(crate) fn say_read_only(&mut self, now: Instant) {
        for n in self.table.nodes(now) {
            self.send_query(now, n.addr, Some(n.id), Method::Ping, Purpose::Detached);
        }
    }

    /// How long a put that reached its quorum waits for the other answers: one smoothed RTT.
    pub(crate) fn rtt_grace(&self) -> Duration {
        self.rtt.srtt().unwrap_or(self.cfg.min_request_timeout).min(self.cfg.max_request_timeout)
    }

    /// Whether our messages carry `ro` (BEP 43): configured read-only, or found unreachable.
    pub fn is_read_only(&self) -> bool {
        self.cfg.read_only || self.reach.as_ref().is_some_and(Reachability::read_only)
    }

    /// Pings an address; answered by [`Event::Pong`] or [`Event::PingFailed`].
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> QueryId {
        let q = self.new_query_id();
        self.send_query(now, addr, None, Method::Ping, Purpose::Ping(q));
        q
    }

    /// Asks one node for a sample of the info-hashes it stores (BEP 51) and for the nodes it
    /// knows closest to `target`; answered by [`Event::Samples`] or [`Event::SamplesFailed`].
    pub fn sample_infohashes(&mut self, now: Instant, addr: SocketAddr, target: NodeId) -> QueryId {
        let q = self.new_query_id();
        let method = Method::SampleInfohashes { target, want: Want::default() };
        if self.send_query(now, addr, None, method, Purpose::Sample(q)).is_none() {
            self.events.push_back(Event::SamplesFailed { query: q, addr });
        }
        q
    }

    /// Iterative `find_node` lookup; ends with [`Event::LookupDone`].
    pub fn find_node(&mut self, now: Instant, target: NodeId) -> QueryId {
        self.start_lookup(now, LookupKind::FindNode(target), false)
    }

    /// Iterative `get_peers` lookup; peers arrive as [`Event::PeersFound`], then
    /// [`Event::LookupDone`].
    pub fn get_peers(&mut self, now: Instant, info_hash: InfoHash) -> QueryId {
        self.start_lookup(now, LookupKind::GetPeers(info_hash), false)
    }

    /// A `get_peers` lookup followed by `announce_peer` to the k closest nodes that gave a
    /// token. `port: None` announces with `implied_port` (the UDP source port).
    pub fn announce(&mut self, now: Instant, info_hash: InfoHash, port: Option<u16>) -> QueryId {
        let q = self.new_query_id();
        self.start_lookup_full(now, q, LookupKind::Announce(info_hash), false, port, None);
        q
    }

    /// Abandons a lookup or ping; no further events are reported for it. Requests already
    /// sent are still matched (and their answers used for the routing table).
    pub fn cancel(&mut self, query: QueryId) {
        self.lookups.remove(&query);
        for p in self.pending.values_mut() {
            if matches!(p.purpose, Purpose::Ping(q) | Purpose::Lookup(q) | Purpose::Announce(q) | Purpose::ItemPut(q) | Purpose::Sample(q) if q == query)
            {
                p.purpose = Purpose::Detached;
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.tokens.next_rotation().min(self.next_expiry);
        if let Some(((at, _, _), _)) = self.timers.first_key_value() {
            t = t.min(*at);
        }
        if let Some(d) = self.lookups.values().map(|l| l.deadline).min() {
            t = t.min(d);
        }
        if let Some(r) = self.bootstrap_retry_at {
            t = t.min(r);
        }
        if let Some(r) = self.next_republish {
            t = t.min(r);
        }
        if let Some(r) = self.reach.as_ref().and_then(Reachability::next_timeout) {
            t = t.min(r);
        }
        if !self.table.is_empty() {
            if let Some(r) = self.table.next_refresh(self.cfg.bucket_refresh) {
                t = t.min(r);
            }
        }
        Some(t)
    }

    /// The nodes of the routing table, good ones first, for saving across restarts.
    pub fn routing_nodes(&self, now: Instant) -> Vec<NodeInfo> {
        self.table.nodes(now)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.nodes_per_bucket = self.table.bucket_sizes();
        s.routing_nodes = self.table.len();
        s.stored_info_hashes = self.store.info_hashes();
        s.stored_peers = self.store.peers();
        s.stored_items = self.items.len();
        s.stored_item_bytes = self.items.bytes();
        s.active_lookups = self.lookups.len();
        s.in_flight = self.pending.len();
        s.read_only = self.is_read_only();
        s.reachable = self.reach.as_ref().is_some_and(Reachability::reachable);
        s.srtt_us = self.rtt.srtt().map_or(0, |d| d.as_micros() as u64);
        s
    }

    // ----- queries from others ------------------------------------------------------------

    pub(crate) fn on_query(&mut self, now: Instant, from: SocketAddr, tx: &[u8], read_only: bool, q: Query<'_>) {
        let info = NodeInfo { id: q.id, addr: from };
        if let Some(r) = self.reach.as_mut() {
            let was_read_only = r.read_only();
            if r.on_query(now, from) {
                self.stats.read_only_switches += u64::from(was_read_only);
            }
        }
        if read_only {
            // BEP 43: a read-only node stays out of tables; one we hold has just turned so.
            self.table.on_failure(Some(q.id), from, now, true);
        } else if self.table.on_query(info, now) {
            self.verify_querier(now, info);
        }
        self.answer(now, from, tx, q);
    }

    /// A node we do not know queried us and the table has room for it: ping it to verify it
    /// (bounded, so spoofed queries cannot turn us into a reflector). A node behind a NAT
    /// passes this check, since its NAT just opened a mapping towards us; delaying the ping
    /// past the mapping lifetime kept such nodes out but starved young tables in the
    /// simulator, so it is not done.
    pub(crate) fn verify_querier(&mut self, now: Instant, info: NodeInfo) {
        if self.verify_in_flight < MAX_VERIFY_IN_FLIGHT {
            self.verify_in_flight += 1;
            self.send_query(now, info.addr, Some(info.id), Method::Ping, Purpose::Verify);
        }
    }

    // ----- answers to our queries ---------------------------------------------------------

    pub(crate) fn take_pending(&mut self, from: SocketAddr, tx: &[u8]) -> Option<Pending> {
        let key: [u8; 2] = match tx.try_into() {
            Ok(k) => k,
            Err(_) => {
                self.stats.dropped.unknown_transaction += 1;
                return None;
            }
        };
        match self.pending.get(&key) {
            None => {
                self.stats.dropped.unknown_transaction += 1;
                None
            }
            Some(p) if p.addr != from => {
                self.stats.dropped.wrong_source += 1;
                None
            }
            Some(_) => {
                let p = self.pending.remove(&key)?;
                self.timers.remove(&(p.soft_at, p.seq, TimerKind::Soft));
                self.timers.remove(&(p.hard_at, p.seq, TimerKind::Hard));
                Some(p)
            }
        }
    }

    pub(crate) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tx: &[u8],
        seen: Option<SocketAddr>,
        r: Response<'_>,
    ) {
        let Some(p) = self.take_pending(from, tx) else { return };
        // Only answers to our own queries vote (a spoofed datagram has no transaction).
        if let Some(seen) = seen {
            self.on_ip_vote(now, from.ip(), seen);
        }
        self.stats.responses_in += 1;
        let rtt = now.saturating_duration_since(p.sent);
        if !p.slow {
            self.rtt.sample(rtt);
        }
        let info = NodeInfo { id: r.id, addr: from };
        let id_ok = p.id.is_none_or(|id| id == r.id);
        if id_ok {
            self.add_verified(now, info, Some(rtt));
        }
        match p.purpose {
            Purpose::Verify => self.verify_in_flight -= 1,
            Purpose::Detached => {}
            Purpose::Probe => self.table.probe_done(&r.id),
            Purpose::Ping(q) => self.events.push_back(Event::Pong { query: q, node: info, rtt }),
            Purpose::Lookup(q) => self.lookup_response(now, q, from, &r),
            Purpose::Announce(q) => self.announce_ack(now, q, true),
            Purpose::ItemPut(q) => self.item_put_ack(now, q, info, PutReply::Stored),
            Purpose::Sample(q) => {
                let nodes = if from.is_ipv4() { r.nodes.clone() } else { r.nodes6.clone() };
                let samples = r.sample_hashes().collect();
                let (interval, num) = (r.interval, r.num);
                self.events.push_back(Event::Samples { query: q, node: info, interval, num, samples, nodes });
            }
        }
    }

    pub(crate) fn on_error(&mut self, now: Instant, from: SocketAddr, tx: &[u8], code: i64) {
        let Some(p) = self.take_pending(from, tx) else { return };
        self.stats.errors_in += 1;
        if let (Purpose::ItemPut(q), Some(id)) = (p.purpose, p.id) {
            // A refusal is an answer: the node is alive, and the code is the put's outcome.
            return self.item_put_ack(now, q, NodeInfo { id, addr: from }, PutReply::Refused(code));
        }
        self.request_failed(now, p, false);
    }

    pub(crate) fn add_verified(&mut self, now: Instant, info: NodeInfo, rtt: Option<Duration>) {
        if let Insert::PingFirst(q) = self.table.on_response(info, rtt, now) {
            self.send_query(now, q.addr, Some(q.id), Method::Ping, Purpose::Probe);
        }
    }

    pub(crate) fn request_failed(&mut self, now: Instant, p: Pending, timed_out: bool) {
        if timed_out {
            self.stats.timeouts += 1;
        }
        match p.purpose {
            Purpose::Probe => {
                self.table.on_failure(p.id, p.addr, now, true);
                if let Some(id) = p.id {
                    self.table.probe_done(&id);
                }
            }
            _ => self.table.on_failure(p.id, p.addr, now, false),
        }
        match p.purpose {
            Purpose::Verify => self.verify_in_flight -= 1,
            Purpose::Probe | Purpose::Detached => {}
            Purpose::Ping(q) => self.events.push_back(Event::PingFailed { query: q, addr: p.addr }),
            Purpose::Lookup(q) => {
                if let Some(l) = self.lookups.get_mut(&q) {
                    l.on_failure(p.addr, timed_out);
                }
                self.drive_lookup(now, q);
            }
            Purpose::Announce(q) => self.announce_ack(now, q, false),
            Purpose::ItemPut(q) => {
                let node = NodeInfo { id: p.id.unwrap_or(NodeId([0; 20])), addr: p.addr };
                self.item_put_ack(now, q, node, PutReply::TimedOut)
            }
            Purpose::Sample(q) => self.events.push_back(Event::SamplesFailed { query: q, addr: p.addr }),
        }
    }

    // ----- sending --------------------------------------------------------------------------

    pub(crate) fn new_query_id(&mut self) -> QueryId {
        self.next_query += 1;
        QueryId(self.next_query)
    }

    /// Sends a query and tracks it. Returns its transaction id, or `None` when the in-flight
    /// cap is reached.
    pub(crate) fn send_query(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        id: Option<NodeId>,
        method: Method<'_>,
        purpose: Purpose,
    ) -> Option<[u8; 2]> {
        if self.pending.len() >= self.cfg.max_in_flight {
            if let Purpose::Ping(q) = purpose {
                self.events.push_back(Event::PingFailed { query: q, addr });
            }
            return None;
        }
        let mut key: [u8; 2] = self.rng.gen();
        while self.pending.contains_key(&key) {
            key = self.rng.gen();
        }
        self.count_out(&method);
        let msg = Message {
            tx: &key,
            version: self.cfg.version.as_ref().map(|v| &v[..]),
            ip: None,
            read_only: self.is_read_only(),
            body: Body::Query(Query { id: self.id, method }),
        };
        let mut payload = Vec::with_capacity(msg.encoded_len());
        msg.encode(&mut payload);
        self.transmits.push_back(Transmit { dst: addr, payload });
        if let Some(r) = self.reach.as_mut() {
            r.on_send(now, addr);
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let (soft_at, hard_at) = (now + self.rtt.timeout(), now + self.cfg.max_request_timeout);
        self.timers.insert((soft_at, seq, TimerKind::Soft), key);
        self.timers.insert((hard_at, seq, TimerKind::Hard), key);
        self.pending
            .insert(key, Pending { addr, id, purpose, sent: now, soft_at, hard_at, seq, slow: false, resend: false });
        Some(key)
    }

    pub(crate) fn count_out(&mut self, method: &Method<'_>) {
        self.stats.queries_out.count(method);
    }
    /// Sends a lookup request again under a new transaction id. False when the lookup is gone
    /// or no longer searching, or the in-flight cap is reached.
    pub(crate) fn resend_lookup_request(
        &mut self,
        now: Instant,
        q: QueryId,
        addr: SocketAddr,
        id: Option<NodeId>,
    ) -> bool {
        let Some(l) = self.lookups.get_mut(&q) else { return false };
        if l.phase != Phase::Searching {
            return false;
        }
        let method = Self::lookup_method(l.kind, self.cfg.dual_stack);
        let Some(key) = self.send_query(now, addr, id, method, Purpose::Lookup(q)) else { return false };
        if let Some(l) = self.lookups.get_mut(&q) {
            l.note_resend();
        }
        self.stats.resends += 1;
        // The resend gets twice the usual patience: a node whose answer is merely slow (the
        // tail of the RTT distribution) should still make it.
        let patience = self.rtt.timeout() * 2;
        if let Some(p) = self.pending.get_mut(&key) {
            p.resend = true;
            let soft_at = (now + patience).min(p.hard_at);
            self.timers.remove(&(p.soft_at, p.seq, TimerKind::Soft));
            p.soft_at = soft_at;
            self.timers.insert((soft_at, p.seq, TimerKind::Soft), key);
        }
        true
    }

    pub(crate) fn fire_request_timers(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            let (at, seq, kind) = *entry.key();
            if at > now {
                break;
            }
            let key = entry.remove();
            let Some(p) = self.pending.get_mut(&key) else { continue };
            if p.seq != seq {
                continue;
            }
            match kind {
                TimerKind::Soft => {
                    p.slow = true;
                    if let Purpose::Lookup(q) = p.purpose {
                        let (addr, id, resend) = (p.addr, p.id, p.resend);
                        // A lookup request that misses its soft timeout stops holding one of
                        // the α slots, so the lookup moves on, and is sent once more: a lost
                        // datagram then costs one RTO, not the hard timeout. The search waits
                        // for the resend's soft timeout before it may end without that node;
                        // an answer to either copy counts while the lookup runs.
                        let resent = !resend && self.resend_lookup_request(now, q, addr, id);
                        if let Some(l) = self.lookups.get_mut(&q) {
                            if resent {
                                l.on_resent(addr);
                            } else {
                                l.on_slow(addr);
                            }
                        }
                        self.drive_lookup(now, q);
                    } else if let Purpose::ItemPut(q) = p.purpose {
                        let addr = p.addr;
                        self.item_put_slow(now, q, addr);
                    }
                }
                TimerKind::Hard => {
                    if let Some(p) = self.pending.remove(&key) {
                        self.timers.remove(&(p.soft_at, p.seq, TimerKind::Soft));
                        self.request_failed(now, p, true);
                    }
                }
            }
        }
    }
}
