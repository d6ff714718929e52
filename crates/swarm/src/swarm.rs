//! The [`Swarm`] engine: its state, its public inputs, commands and outputs, and timers.
//! Peer wire messages are handled in `wire.rs`, uploads in `upload.rs`, disk results and
//! verification in `verify.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mycel_peer_wire::{Bitfield, Message};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};

use crate::choker::{Candidate, Choker};
use crate::peer::Peer;
use crate::rate::RateMeter;
use crate::{
    Config, Disconnect, DisconnectReason, DiskOp, DiskResult, Event, Layout, PeerKey, PeerStats, Picker, Stats,
    Transmit,
};

/// How often per-peer timers (snubbing, keep-alives, inactivity) and request refills run.
const TICK: Duration = Duration::from_secs(1);
/// Seconds over which peers' upload to us is measured for the choker (two rechokes).
const CHOKE_RATE_WINDOW: u64 = 20;

/// Why a [`Swarm`] cannot be created.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SwarmError {
    /// The `have` bitfield is for another number of pieces.
    #[error("have bitfield has {got} pieces, the torrent {expected}")]
    HaveMismatch {
        /// Pieces in the bitfield.
        got: u32,
        /// Pieces in the layout.
        expected: u32,
    },
}

/// A dial candidate.
#[derive(Debug, Clone)]
pub(crate) struct DialCandidate {
    pub failures: u32,
    pub retry_at: Instant,
}

/// The swarm engine for one torrent, as a sans-IO state machine.
///
/// # Calling contract
///
/// The driver owns the sockets, the clock, the OS seed and a disk/hash thread pool. It
/// allocates a [`PeerKey`] per TCP connection, and after **every** input or command drains
/// all outputs: [`poll_transmit`](Self::poll_transmit) (bytes to write to a connection, in
/// order), [`poll_disconnect`](Self::poll_disconnect) (connections to close),
/// [`poll_disk_op`](Self::poll_disk_op) (work for the pool; see [`crate::disk`] for the
/// result contract), [`poll_connect`](Self::poll_connect) (addresses to dial) and
/// [`poll_event`](Self::poll_event); then it sleeps until
/// [`poll_timeout`](Self::poll_timeout). `now` never goes backwards.
///
/// ```text
/// let mut swarm = Swarm::new(config, layout, peer_id, seed, clock.now(), have)?;
/// swarm.add_peers(clock.now(), &discovered);
/// loop {
///     while let Some(addr) = swarm.poll_connect() { spawn_dial(addr) }        // -> handle_peer_connected / handle_connect_failed
///     while let Some(t) = swarm.poll_transmit() { conns[t.peer].write_all(t.data) }
///     while let Some(d) = swarm.poll_disconnect() { conns.remove(d.peer) }
///     while let Some(op) = swarm.poll_disk_op() { pool.run(op) }             // -> handle_disk_result
///     while let Some(e) = swarm.poll_event() { app.on(e) }
///     select! {
///         (key, bytes) = conn_read => swarm.handle_peer_data(clock.now(), key, bytes),
///         key = conn_closed => swarm.handle_peer_closed(clock.now(), key),
///         res = pool.done => swarm.handle_disk_result(clock.now(), res),
///         _ = sleep_until(swarm.poll_timeout()) => swarm.handle_timeout(clock.now()),
///     }
/// }
/// ```
///
/// Everything random (piece order ties, the optimistic unchoke) comes from `seed`, so the
/// same inputs give the same outputs.
pub struct Swarm {
    pub(crate) cfg: Config,
    pub(crate) layout: Layout,
    pub(crate) our_id: [u8; 20],
    pub(crate) now: Instant,
    pub(crate) picker: Picker,
    pub(crate) choker: Choker,
    pub(crate) peers: BTreeMap<PeerKey, Peer>,
    /// Writes not yet acknowledged, per piece.
    pub(crate) writes_pending: BTreeMap<u32, u32>,
    /// Pieces whose hash op is out.
    pub(crate) hashing: BTreeSet<u32>,
    /// Who sent each received block of unverified pieces.
    pub(crate) contributors: BTreeMap<u32, BTreeMap<u32, IpAddr>>,
    pub(crate) strikes: BTreeMap<IpAddr, u32>,
    pub(crate) banned: BTreeSet<IpAddr>,
    /// Our own IPs as peers see them (`yourip`), so PEX does not make us dial ourselves.
    pub(crate) own_ips: BTreeSet<IpAddr>,
    pub(crate) candidates: BTreeMap<SocketAddr, DialCandidate>,
    pub(crate) connecting: BTreeSet<SocketAddr>,
    /// Failed v2 pieces waiting for leaf hashes to blame the right blocks.
    pub(crate) resolving: BTreeMap<u32, crate::merkle::Resolve>,
    /// Every v2 file's tree above its piece layer, by `pieces root` (hashserve.rs).
    pub(crate) file_trees: BTreeMap<[u8; 32], crate::hashserve::FileTree>,
    /// Peers waiting for the block hashes of one of our pieces.
    pub(crate) hash_serves: BTreeMap<u32, Vec<(PeerKey, crate::merkle::HashRange)>>,
    /// Info dictionary bytes, to serve `ut_metadata`.
    pub(crate) metadata: Option<Bytes>,
    pub(crate) paused: bool,
    pub(crate) completed: bool,
    pub(crate) next_tick: Instant,
    pub(crate) tx_ready: VecDeque<PeerKey>,
    pub(crate) disk_ops: VecDeque<DiskOp>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) disconnects: VecDeque<Disconnect>,
    pub(crate) down_total: RateMeter,
    pub(crate) up_total: RateMeter,
    pub(crate) stats: Stats,
    #[allow(dead_code)] // reserved for future random choices (allowed-fast sets)
    pub(crate) rng: ChaCha8Rng,
}

impl Swarm {
    /// An engine for the torrent `layout`, having the verified pieces in `have`.
    pub fn new(
        config: Config,
        layout: Layout,
        our_peer_id: [u8; 20],
        seed: [u8; 32],
        now: Instant,
        have: Bitfield,
    ) -> Result<Self, SwarmError> {
        if have.len() != layout.piece_count() {
            return Err(SwarmError::HaveMismatch { got: have.len(), expected: layout.piece_count() });
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        let blocks = (0..layout.piece_count()).map(|p| layout.blocks_in_piece(p)).collect();
        let picker = Picker::new(blocks, have, config.endgame_duplicates, rng.gen());
        let choker = Choker::new(config.choker.clone(), now + config.choker.rechoke_interval, rng.gen());
        let stats = Stats { pieces_total: layout.piece_count(), ..Stats::default() };
        let file_trees = crate::hashserve::file_trees(&layout);
        let completed = picker.is_finished();
        Ok(Swarm {
            cfg: config,
            layout,
            our_id: our_peer_id,
            now,
            picker,
            choker,
            peers: BTreeMap::new(),
            writes_pending: BTreeMap::new(),
            hashing: BTreeSet::new(),
            contributors: BTreeMap::new(),
            strikes: BTreeMap::new(),
            banned: BTreeSet::new(),
            own_ips: BTreeSet::new(),
            candidates: BTreeMap::new(),
            connecting: BTreeSet::new(),
            resolving: BTreeMap::new(),
            file_trees,
            hash_serves: BTreeMap::new(),
            metadata: None,
            paused: false,
            completed,
            next_tick: now + TICK,
            tx_ready: VecDeque::new(),
            disk_ops: VecDeque::new(),
            events: VecDeque::new(),
            disconnects: VecDeque::new(),
            down_total: RateMeter::new(now),
            up_total: RateMeter::new(now),
            stats,
            rng,
        })
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A TCP connection is up (`outgoing`: we dialled it, after [`poll_connect`](Self::poll_connect)).
    /// Our handshake goes out at once on outgoing connections, after the peer's on incoming ones.
    pub fn handle_peer_connected(&mut self, now: Instant, key: PeerKey, addr: SocketAddr, outgoing: bool) {
        self.now = now;
        self.connecting.remove(&addr);
        if let Some(c) = self.candidates.get_mut(&addr) {
            c.failures = 0;
        }
        if self.peers.contains_key(&key) {
            return;
        }
        let reason = if self.banned.contains(&addr.ip()) {
            Some(DisconnectReason::Banned)
        } else if self.paused {
            Some(DisconnectReason::Paused)
        } else if self.peers.len() >= self.cfg.max_peers {
            Some(DisconnectReason::NotUseful)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.disconnects.push_back(Disconnect { peer: key, reason });
            return;
        }
        self.peers.insert(key, Peer::new(&self.cfg, addr, outgoing, self.layout.piece_count(), now));
        if outgoing {
            let hash = self.layout.info_hashes().handshake_hash();
            self.send_handshake(key, hash);
        }
    }

    /// A dial from [`poll_connect`](Self::poll_connect) failed.
    pub fn handle_connect_failed(&mut self, now: Instant, addr: SocketAddr) {
        self.now = now;
        self.connecting.remove(&addr);
        let max = self.cfg.max_connect_failures;
        let retry = self.cfg.connect_retry;
        if let Some(c) = self.candidates.get_mut(&addr) {
            c.failures += 1;
            if c.failures >= max {
                self.candidates.remove(&addr);
            } else {
                c.retry_at = now + retry * (1 << (c.failures - 1).min(8));
            }
        }
    }

    /// Bytes arrived on a connection: the handshake, then messages, in any chunking.
    /// Copies them (a convenience for tests and byte slices); a driver hands its read
    /// buffers to [`handle_peer_data`](Self::handle_peer_data) instead.
    pub fn handle_peer_bytes(&mut self, now: Instant, key: PeerKey, bytes: &[u8]) {
        self.handle_peer_data(now, key, bytes::Bytes::copy_from_slice(bytes));
    }

    /// Bytes arrived on a connection, handed over: a `piece` block within `data` reaches
    /// [`DiskOp::Write`] as a slice of it, without a copy (the driver's read buffer stays
    /// alive until the last such block is written).
    pub fn handle_peer_data(&mut self, now: Instant, key: PeerKey, data: bytes::Bytes) {
        self.now = now;
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.last_recv = now;
        // The decoder leaves the peer while its messages (which borrow it) are handled.
        let mut rx = std::mem::replace(&mut peer.rx, mycel_peer_wire::FrameDecoder::new(0));
        rx.extend_bytes(data);
        self.drain_rx(now, key, &mut rx);
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.rx = rx;
        }
    }

    /// The connection closed (by the peer or the driver).
    pub fn handle_peer_closed(&mut self, now: Instant, key: PeerKey) {
        self.now = now;
        self.remove_peer(now, key);
    }

    /// The result of an operation from [`poll_disk_op`](Self::poll_disk_op).
    pub fn handle_disk_result(&mut self, now: Instant, result: DiskResult) {
        self.now = now;
        self.on_disk_result(now, result);
    }

    /// Runs timers whose time has come; a spurious call is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if now >= self.choker.next_rechoke() {
            self.rechoke(now);
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.tick(now);
        }
    }

    // ---- commands -----------------------------------------------------------------------

    /// Adds addresses to dial (from the DHT, trackers, PEX or the user).
    pub fn add_peers(&mut self, now: Instant, addrs: &[SocketAddr]) {
        self.now = now;
        for &addr in addrs {
            if !self.banned.contains(&addr.ip()) {
                self.candidates.entry(addr).or_insert(DialCandidate { failures: 0, retry_at: now });
            }
        }
    }

    /// Stops the torrent: every connection is closed and no new one is made.
    pub fn pause(&mut self, now: Instant) {
        self.now = now;
        self.paused = true;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.disconnect(now, key, DisconnectReason::Paused);
        }
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&mut self, now: Instant) {
        self.now = now;
        self.paused = false;
    }

    /// Sets a piece's priority (0: do not download; higher first). File priorities map to
    /// the pieces of each file.
    pub fn set_piece_priority(&mut self, now: Instant, piece: u32, priority: u8) {
        self.picker.set_priority(piece, priority);
        self.after_priority_change(now);
    }

    /// Sets every piece's priority at once (`priorities[i]` for piece `i`).
    pub fn set_piece_priorities(&mut self, now: Instant, priorities: &[u8]) {
        for (piece, &p) in (0u32..).zip(priorities) {
            self.picker.set_priority(piece, p);
        }
        self.after_priority_change(now);
    }

    /// Sequential download (for streaming) instead of rarest-first.
    pub fn set_sequential(&mut self, on: bool) {
        self.picker.set_sequential(on);
    }

    /// Gives the engine the info dictionary so it can serve `ut_metadata` (BEP 9) to
    /// magnet peers. Returns `false` (and keeps nothing) if it does not hash to the
    /// torrent's info-hash.
    pub fn set_metadata(&mut self, info: Bytes) -> bool {
        let ids = self.layout.info_hashes();
        let ok_v1 = ids.v1.is_some_and(|h| <[u8; 20]>::from(Sha1::digest(&info)) == h);
        let ok_v2 = ids.v2.is_some_and(|h| <[u8; 32]>::from(sha2::Sha256::digest(&info)) == h);
        if ok_v1 || ok_v2 {
            self.metadata = Some(info);
        }
        ok_v1 || ok_v2
    }

    // ---- outputs ------------------------------------------------------------------------

    /// Bytes to send on a connection, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        while let Some(key) = self.tx_ready.pop_front() {
            if let Some(peer) = self.peers.get_mut(&key) {
                if !peer.out.is_empty() {
                    return Some(Transmit { peer: key, data: std::mem::take(&mut peer.out) });
                }
            }
        }
        None
    }

    /// A connection to close.
    pub fn poll_disconnect(&mut self) -> Option<Disconnect> {
        self.disconnects.pop_front()
    }

    /// A disk read, write or hash for the driver's pool.
    pub fn poll_disk_op(&mut self) -> Option<DiskOp> {
        self.disk_ops.pop_front()
    }

    /// An address to dial; report the outcome with
    /// [`handle_peer_connected`](Self::handle_peer_connected) or
    /// [`handle_connect_failed`](Self::handle_connect_failed).
    pub fn poll_connect(&mut self) -> Option<SocketAddr> {
        if self.paused || self.picker.is_finished() {
            return None;
        }
        if self.peers.len() + self.connecting.len() >= self.cfg.max_peers
            || self.connecting.len() >= self.cfg.max_connecting
        {
            return None;
        }
        let connected: BTreeSet<SocketAddr> = self.peers.values().map(|p| p.addr).collect();
        let now = self.now;
        let addr = self
            .candidates
            .iter()
            .find(|(a, c)| c.retry_at <= now && !connected.contains(a) && !self.connecting.contains(a))
            .map(|(a, _)| *a)?;
        self.connecting.insert(addr);
        Some(addr)
    }

    /// A fact for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_tick.min(self.choker.next_rechoke()))
    }

    /// Counters and per-peer state.
    pub fn stats(&self) -> Stats {
        let now = self.now;
        let optimistic = self.choker.optimistic();
        let mut s = self.stats.clone();
        s.pieces_have = self.picker.have().count();
        s.download_rate = self.down_total.rate(now, 5);
        s.upload_rate = self.up_total.rate(now, 5);
        s.unchoke_slots = self.choker.slots();
        s.banned = self.banned.len();
        s.peers = self
            .peers
            .iter()
            .map(|(&key, p)| PeerStats {
                peer: key,
                addr: p.addr,
                downloaded: p.down.total(),
                uploaded: p.up.total(),
                download_rate: p.down.rate(now, 5),
                upload_rate: p.up.rate(now, 5),
                am_choking: p.am_choking,
                am_interested: p.am_interested,
                peer_choking: p.peer_choking,
                peer_interested: p.peer_interested,
                snubbed: p.snubbed,
                requests: p.requests.len(),
                queue_depth: p.queue_depth(&self.cfg, now),
                optimistic: optimistic == Some(key),
            })
            .collect();
        s
    }

    /// The verified pieces.
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// Whether every wanted piece is verified.
    pub fn is_finished(&self) -> bool {
        self.picker.is_finished()
    }

    /// The torrent's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    // ---- internals shared by the other files --------------------------------------------

    /// Appends an encoded message to a peer's outgoing bytes.
    pub(crate) fn send(&mut self, key: PeerKey, msg: &Message<'_>) {
        if let Some(peer) = self.peers.get_mut(&key) {
            if peer.out.is_empty() {
                self.tx_ready.push_back(key);
            }
            msg.encode(&mut peer.out);
            peer.last_send = self.now;
        }
    }

    /// Appends raw bytes (a piece header and block, an extension message) to a peer's output.
    pub(crate) fn send_raw(&mut self, key: PeerKey, parts: &[&[u8]]) {
        if let Some(peer) = self.peers.get_mut(&key) {
            if peer.out.is_empty() {
                self.tx_ready.push_back(key);
            }
            for p in parts {
                peer.out.extend_from_slice(p);
            }
            peer.last_send = self.now;
        }
    }

    /// Closes a connection: forgets the peer and tells the driver.
    pub(crate) fn disconnect(&mut self, now: Instant, key: PeerKey, reason: DisconnectReason) {
        if self.peers.contains_key(&key) {
            if matches!(reason, DisconnectReason::Protocol(_) | DisconnectReason::UnrequestedBlock) {
                self.stats.protocol_errors += 1;
            }
            tracing::debug!(peer = key.0, ?reason, "disconnect");
            self.remove_peer(now, key);
            self.disconnects.push_back(Disconnect { peer: key, reason });
        }
    }

    /// Forgets a peer: its requests go back to the picker, its pieces leave the availability.
    pub(crate) fn remove_peer(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.remove(&key) else { return };
        self.choker.peer_left(key);
        if !peer.am_choking {
            self.fill_free_slots(now);
        }
        for r in peer.requests.keys() {
            self.picker.cancel_request(*r);
        }
        for piece in peer.has.iter_set() {
            self.picker.dec_availability(piece);
        }
        if peer.outgoing {
            if let Some(c) = self.candidates.get_mut(&peer.addr) {
                c.retry_at = now + self.cfg.connect_retry;
            }
        }
        if !peer.requests.is_empty() {
            self.refill_all(now);
        }
    }

    /// Asks every peer that can take requests for more blocks.
    pub(crate) fn refill_all(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill_requests(now, key);
        }
    }

    fn after_priority_change(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            if let Some(peer) = self.peers.get_mut(&key) {
                peer.interesting = peer.has.iter_set().filter(|&p| self.picker.wants(p)).count() as u32;
            }
            self.update_interest(now, key);
        }
        self.completed = self.completed && self.picker.is_finished();
        self.check_completed();
    }

    pub(crate) fn check_completed(&mut self) {
        if !self.completed && self.picker.is_finished() {
            self.completed = true;
            self.events.push_back(Event::Completed);
            // Now a seed: slots held by peers that no longer need us (they were leeching
            // from each other) go round-robin to those that do, at once.
            self.rechoke(self.now);
        }
    }

    /// What the choker knows of every active peer.
    fn choke_candidates(&self, now: Instant) -> Vec<Candidate> {
        self.peers
            .iter()
            .filter(|(_, p)| p.is_active())
            .map(|(&key, p)| Candidate {
                key,
                interested: p.peer_interested,
                download_rate: p.down.rate(now, CHOKE_RATE_WINDOW),
                downloaded: p.down.total(),
                snubbed: p.snubbed,
                connected_at: p.connected_at,
                unchoked_since: p.unchoked_since,
                last_unchoked: p.last_unchoked,
                uploaded_since_unchoke: p.uploaded_since_unchoke,
            })
            .collect()
    }

    /// Every rechoke interval (and when we become a seed): the choker decides, the peers
    /// hear about it.
    pub(crate) fn rechoke(&mut self, now: Instant) {
        let candidates = self.choke_candidates(now);
        let seeding = self.picker.is_finished();
        let rate = self.up_total.rate(now, self.cfg.choker.rechoke_interval.as_secs());
        let decision = self.choker.rechoke(now, seeding, rate, &candidates);
        self.stats.rechokes += 1;
        self.stats.unchokes_lent +=
            decision.lent.iter().filter(|k| self.peers.get(k).is_some_and(|p| p.am_choking)).count() as u64;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let unchoke = decision.is_unchoked(key);
            self.set_choke(now, key, !unchoke);
        }
    }

    /// Between rechokes: unchokes waiting peers into slots nobody holds (a peer lost
    /// interest or left, a peer became interested), so upload capacity is not left idle
    /// until the next rechoke.
    pub(crate) fn fill_free_slots(&mut self, now: Instant) {
        if self.paused {
            return;
        }
        let unchoked = self.peers.values().filter(|p| !p.am_choking).count();
        let free = self.choker.slots().saturating_sub(unchoked);
        if free == 0 {
            return;
        }
        let candidates = self.choke_candidates(now);
        let seeding = self.picker.is_finished();
        for key in self.choker.fill_idle(seeding, free, &candidates) {
            let earns = candidates.iter().any(|c| c.key == key && Choker::earns(c));
            if !seeding && !earns {
                self.stats.unchokes_lent += 1;
            }
            self.set_choke(now, key, false);
        }
    }

    /// While leeching, a peer we choke delivered a block: it has earned a regular slot, so
    /// it takes a free one, or one lent to a peer that has not delivered (never the
    /// optimistic one), without waiting for the next rechoke.
    pub(crate) fn reciprocate(&mut self, now: Instant, key: PeerKey) {
        if self.picker.is_finished() || !self.peers.get(&key).is_some_and(|p| p.am_choking && p.peer_interested) {
            return;
        }
        let unchoked = self.peers.values().filter(|p| !p.am_choking).count();
        if unchoked >= self.choker.slots() {
            let optimistic = self.choker.optimistic();
            let borrower = self
                .peers
                .iter()
                .find(|(&k, p)| !p.am_choking && Some(k) != optimistic && p.down.rate(now, CHOKE_RATE_WINDOW) == 0);
            let Some((&borrower, _)) = borrower else { return };
            self.set_choke(now, borrower, true);
        }
        self.set_choke(now, key, false);
    }

    /// Per-second housekeeping: handshake and inactivity timeouts, keep-alives, snubbing,
    /// request refills.
    fn tick(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(peer) = self.peers.get(&key) else { continue };
            if !peer.is_active() && now.saturating_duration_since(peer.connected_at) >= self.cfg.handshake_timeout
                || peer.idle(now) >= self.cfg.inactivity_timeout
            {
                self.disconnect(now, key, DisconnectReason::Inactivity);
                continue;
            }
            let keepalive =
                peer.is_active() && now.saturating_duration_since(peer.last_send) >= self.cfg.keepalive_interval;
            let snub = !peer.requests.is_empty()
                && !peer.snubbed
                && now.saturating_duration_since(peer.last_block) >= self.cfg.snub_timeout;
            if keepalive {
                self.send(key, &Message::KeepAlive);
            }
            if snub {
                self.snub(now, key);
            }
        }
        self.expire_resolves(now);
        self.refill_all(now);
        self.pex_tick(now);
    }

    /// A peer sat on our requests for too long: withdraw them so others can serve them.
    fn snub(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.snubbed = true;
        let withdrawn: Vec<_> = std::mem::take(&mut peer.requests).into_keys().collect();
        for r in &withdrawn {
            peer.remember_cancelled(*r);
        }
        for r in withdrawn {
            self.picker.cancel_request(r);
            let (begin, length) = self.layout.block_span(r.piece, r.block);
            self.send(key, &Message::Cancel { index: r.piece, begin, length });
        }
        self.refill_all(now);
    }
}
