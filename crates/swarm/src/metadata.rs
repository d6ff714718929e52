//! [`MetadataFetch`]: getting the info dictionary of a magnet link from peers (BEP 9).
//!
//! A small sans-IO engine of its own, with the same shape as [`Swarm`](crate::Swarm): the
//! driver feeds it connections and bytes, drains transmits, disconnects and dials, and
//! takes the verified bytes from [`poll_metadata`](MetadataFetch::poll_metadata). It
//! speaks just enough of the peer wire: handshake, the BEP 10 extended handshake (which
//! carries `metadata_size`) and `ut_metadata`; everything else is decoded (malformed input
//! still closes the connection) and ignored.
//!
//! Checks before use: the size a peer announces must be in `1..=max_size` (64 MiB), every
//! `data` message must carry the adopted size and the exact piece length, and the assembled
//! bytes must hash to the info-hash (SHA-1 for v1, SHA-256 for v2). If they do not, every
//! peer that sent a piece is dropped and the fetch starts over.
//!
//! When the metadata is done the connections stay open: the driver parses it and either
//! calls [`finish`](MetadataFetch::finish) (a v1 torrent: every connection is closed,
//! [`DisconnectReason::NotUseful`]) or asks for the piece layers. Then it builds the
//! [`Layout`](crate::Layout), starts a `Swarm` and gives it
//! [`addrs`](MetadataFetch::addrs) to dial again.
//!
//! A v2 or hybrid torrent needs more than the info dictionary: the piece layers of its
//! files. The driver calls [`fetch_piece_layers`](MetadataFetch::fetch_piece_layers)
//! (v2-only: required) or
//! [`fetch_optional_piece_layers`](MetadataFetch::fetch_optional_piece_layers) (hybrid:
//! SHA-1 can do without them), with no files when every file fits in one piece. The
//! fetch asks the peers that support v2 with BEP 52 hash requests (`layers.rs`), and
//! [`poll_piece_layers`](MetadataFetch::poll_piece_layers) gives the verified layers or
//! why there are none; only then are the connections closed. Required layers fail when
//! no chunk verified for `layers_timeout` (rejected chunks are asked again, see
//! `layers.rs`); optional ones give up as soon as no connected peer offers them: none
//! supports v2, every v2 peer rejected every missing chunk, or nothing verified for
//! `optional_layers_timeout`.
//!
//! A peer supports v2 when the torrent is v2-only, when its handshake carries the
//! truncated v2 info-hash, or when it sets the BEP 52 upgrade bit (libtorrent does for a
//! hybrid torrent, and so does our `Swarm`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mycel_peer_wire::truncate_v2_info_hash;
use mycel_peer_wire::{
    encode_extended_header, metadata_piece_count, metadata_piece_len, ExtendedHandshake, FrameDecoder, Handshake,
    Message, Reserved, UtMetadata, MAX_METADATA_SIZE, UT_METADATA,
};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::layers::{LayerFile, Layers, LayersError};
use crate::wire::UT_METADATA_ID;
use crate::{Disconnect, DisconnectReason, InfoHashes, PeerKey, Transmit};
use mycel_metainfo::merkle::HashRequest;

/// Piece layers by `pieces root`, as [`MetadataFetch::poll_piece_layers`] gives them.
pub type PieceLayers = BTreeMap<[u8; 32], Vec<[u8; 32]>>;

/// Settings of a [`MetadataFetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataConfig {
    /// Largest metadata accepted (at most 64 MiB, the wire codec's limit).
    pub max_size: u32,
    /// Most metadata requests outstanding to one peer.
    pub max_requests_per_peer: usize,
    /// A request not answered in this time goes to another peer.
    pub request_timeout: Duration,
    /// Close a connection idle (or handshaking) this long.
    pub inactivity_timeout: Duration,
    /// Most connections.
    pub max_peers: usize,
    /// Client name in the extended handshake.
    pub client_name: Vec<u8>,
    /// Limit on a message's length prefix.
    pub max_message_len: u32,
    /// Required piece layers (v2-only) fail when no chunk verified for this long.
    pub layers_timeout: Duration,
    /// Optional piece layers (hybrid) are given up when no chunk verified for this long.
    pub optional_layers_timeout: Duration,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            max_size: MAX_METADATA_SIZE,
            max_requests_per_peer: 4,
            request_timeout: Duration::from_secs(10),
            inactivity_timeout: Duration::from_secs(60),
            max_peers: 30,
            client_name: b"mycel 0.1".to_vec(),
            max_message_len: 1 << 20,
            layers_timeout: Duration::from_secs(30),
            optional_layers_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a metadata peer was dropped.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// It announced a size over the limit.
    #[error("metadata size {0} over the limit")]
    TooLarge(u32),
    /// It sent a piece for another total size than the one adopted.
    #[error("metadata size {got} differs from {expected}")]
    SizeMismatch {
        /// Size in its message.
        got: u32,
        /// Size adopted.
        expected: u32,
    },
    /// The assembled metadata does not hash to the info-hash.
    #[error("metadata does not match the info-hash")]
    HashMismatch,
}

#[derive(Debug)]
struct MPeer {
    outgoing: bool,
    rx: FrameDecoder,
    active: bool,
    /// It supports v2 (module docs).
    v2: bool,
    ut_metadata: Option<u8>,
    size: Option<u32>,
    rejected: bool,
    outstanding: BTreeSet<u32>,
    last_recv: Instant,
    out: Vec<u8>,
}

/// Fetches and verifies the info dictionary for a magnet link; see the module docs.
pub struct MetadataFetch {
    cfg: MetadataConfig,
    info_hashes: InfoHashes,
    our_id: [u8; 20],
    now: Instant,
    peers: BTreeMap<PeerKey, MPeer>,
    size: Option<u32>,
    pieces: Vec<Option<Bytes>>,
    /// Piece -> (peer asked, when).
    requested: BTreeMap<u32, (PeerKey, Instant)>,
    /// Piece -> peer that sent it.
    senders: BTreeMap<u32, PeerKey>,
    done: Option<Bytes>,
    delivered: bool,
    candidates: BTreeSet<SocketAddr>,
    dialled: BTreeSet<SocketAddr>,
    tx_ready: VecDeque<PeerKey>,
    disconnects: VecDeque<Disconnect>,
    failures: u32,
    /// The piece-layer fetch of a v2-only torrent, once asked for.
    layers: Option<Layers>,
    /// Whether the torrent cannot do without them (v2-only).
    layers_required: bool,
    /// Its result, until polled.
    layers_done: Option<Result<PieceLayers, LayersError>>,
}

impl MetadataFetch {
    /// A fetch for the torrent with these info-hashes.
    pub fn new(cfg: MetadataConfig, info_hashes: InfoHashes, our_peer_id: [u8; 20], now: Instant) -> Self {
        MetadataFetch {
            cfg,
            info_hashes,
            our_id: our_peer_id,
            now,
            peers: BTreeMap::new(),
            size: None,
            pieces: Vec::new(),
            requested: BTreeMap::new(),
            senders: BTreeMap::new(),
            done: None,
            delivered: false,
            candidates: BTreeSet::new(),
            dialled: BTreeSet::new(),
            tx_ready: VecDeque::new(),
            disconnects: VecDeque::new(),
            failures: 0,
            layers: None,
            layers_required: true,
            layers_done: None,
        }
    }

    /// Addresses to dial.
    pub fn add_peers(&mut self, addrs: &[SocketAddr]) {
        self.candidates.extend(addrs.iter().copied());
    }

    /// Every address known (to hand to the `Swarm` when done).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.candidates.iter().copied().collect()
    }

    /// An address to dial (each once).
    pub fn poll_connect(&mut self) -> Option<SocketAddr> {
        if !self.wants_peers() || self.peers.len() >= self.cfg.max_peers {
            return None;
        }
        let addr = self.candidates.iter().find(|a| !self.dialled.contains(a)).copied()?;
        self.dialled.insert(addr);
        Some(addr)
    }

    /// A connection is up; outgoing ones get our handshake at once.
    pub fn handle_peer_connected(&mut self, now: Instant, key: PeerKey, addr: SocketAddr, outgoing: bool) {
        self.now = now;
        if !self.wants_peers() || self.peers.len() >= self.cfg.max_peers {
            self.disconnects.push_back(Disconnect { peer: key, reason: DisconnectReason::NotUseful });
            return;
        }
        self.candidates.insert(addr);
        let peer = MPeer {
            outgoing,
            rx: FrameDecoder::new(self.cfg.max_message_len),
            active: false,
            v2: false,
            ut_metadata: None,
            size: None,
            rejected: false,
            outstanding: BTreeSet::new(),
            last_recv: now,
            out: Vec::new(),
        };
        self.peers.insert(key, peer);
        if outgoing {
            let hash = self.info_hashes.handshake_hash();
            self.send_handshake(key, hash);
        }
    }

    /// Bytes from a connection (copied; [`handle_peer_data`](Self::handle_peer_data) takes
    /// a buffer instead).
    pub fn handle_peer_bytes(&mut self, now: Instant, key: PeerKey, bytes: &[u8]) {
        self.handle_peer_data(now, key, bytes::Bytes::copy_from_slice(bytes));
    }

    /// Bytes from a connection, handed over.
    pub fn handle_peer_data(&mut self, now: Instant, key: PeerKey, data: bytes::Bytes) {
        self.now = now;
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.last_recv = now;
        let mut rx = std::mem::replace(&mut peer.rx, FrameDecoder::new(0));
        rx.extend_bytes(data);
        self.drain(now, key, &mut rx);
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.rx = rx;
        }
        self.request_more(now);
        self.request_layers(now);
    }

    /// A connection closed.
    pub fn handle_peer_closed(&mut self, now: Instant, key: PeerKey) {
        self.now = now;
        self.forget(key);
        self.request_more(now);
        self.request_layers(now);
    }

    /// Request timeouts and idle connections; a spurious call is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let late: Vec<(u32, PeerKey)> = self
            .requested
            .iter()
            .filter(|(_, &(_, at))| now.saturating_duration_since(at) >= self.cfg.request_timeout)
            .map(|(&piece, &(key, _))| (piece, key))
            .collect();
        for (piece, key) in late {
            self.requested.remove(&piece);
            if let Some(p) = self.peers.get_mut(&key) {
                p.outstanding.remove(&piece);
                // A peer that lets a request time out is not asked again.
                p.rejected = true;
            }
        }
        let idle: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_recv) >= self.cfg.inactivity_timeout)
            .map(|(&k, _)| k)
            .collect();
        for key in idle {
            self.close(key, DisconnectReason::Inactivity);
        }
        if let Some(l) = &mut self.layers {
            l.expire(now, self.cfg.request_timeout);
        }
        self.request_more(now);
        self.request_layers(now);
    }

    /// Bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        while let Some(key) = self.tx_ready.pop_front() {
            if let Some(p) = self.peers.get_mut(&key) {
                if !p.out.is_empty() {
                    return Some(Transmit { peer: key, data: std::mem::take(&mut p.out) });
                }
            }
        }
        None
    }

    /// A connection to close.
    pub fn poll_disconnect(&mut self) -> Option<Disconnect> {
        self.disconnects.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let req = self.requested.values().map(|&(_, at)| at + self.cfg.request_timeout).min();
        let idle = self.peers.values().map(|p| p.last_recv + self.cfg.inactivity_timeout).min();
        let layers = self.layers.as_ref().and_then(|l| l.next_timeout(self.now, self.cfg.request_timeout));
        let stall = self.layers.as_ref().map(|l| l.last_progress() + self.layers_timeout());
        req.into_iter().chain(idle).chain(layers).chain(stall).min()
    }

    /// The verified info dictionary, once (then `None`).
    pub fn poll_metadata(&mut self) -> Option<Bytes> {
        if self.delivered {
            return None;
        }
        let done = self.done.clone()?;
        self.delivered = true;
        Some(done)
    }

    /// The adopted metadata size and how many pieces have arrived.
    pub fn progress(&self) -> (Option<u32>, usize) {
        (self.size, self.pieces.iter().filter(|p| p.is_some()).count())
    }

    /// Assembled metadata that failed the hash check so far.
    pub fn hash_failures(&self) -> u32 {
        self.failures
    }

    /// After the metadata of a v1 torrent (or when no piece layers are wanted): closes
    /// every connection. The fetch is done.
    pub fn finish(&mut self) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.close(key, DisconnectReason::NotUseful);
        }
    }

    /// After the metadata of a v2-only torrent: fetch the piece layers of `files` (those
    /// of at most one piece are skipped) of a torrent of `piece_length` from the peers;
    /// fails (see [`poll_piece_layers`](Self::poll_piece_layers)) when no chunk verified
    /// for `layers_timeout`. With nothing to fetch the connections close at once and the
    /// result is empty.
    pub fn fetch_piece_layers(&mut self, now: Instant, piece_length: u32, files: &[LayerFile]) {
        self.start_layers(now, piece_length, files, true);
    }

    /// After the metadata of a hybrid torrent: like
    /// [`fetch_piece_layers`](Self::fetch_piece_layers), but given up as soon as no
    /// connected peer offers the layers (module docs); the torrent is then verified by
    /// SHA-1 alone.
    pub fn fetch_optional_piece_layers(&mut self, now: Instant, piece_length: u32, files: &[LayerFile]) {
        self.start_layers(now, piece_length, files, false);
    }

    fn start_layers(&mut self, now: Instant, piece_length: u32, files: &[LayerFile], required: bool) {
        self.now = now;
        if self.done.is_none() || self.layers.is_some() || self.layers_done.is_some() {
            return;
        }
        self.layers_required = required;
        self.layers = Some(Layers::new(now, piece_length, files));
        self.request_layers(now);
    }

    /// The verified piece layers by `pieces root`, or why they could not be fetched;
    /// once (then `None`).
    pub fn poll_piece_layers(&mut self) -> Option<Result<PieceLayers, LayersError>> {
        self.layers_done.take()
    }

    fn layers_timeout(&self) -> Duration {
        if self.layers_required {
            self.cfg.layers_timeout
        } else {
            self.cfg.optional_layers_timeout
        }
    }

    /// Whether new connections are of use: before the metadata, and while layers are fetched.
    fn wants_peers(&self) -> bool {
        self.done.is_none() || self.layers.is_some()
    }

    fn on_layer_hashes(&mut self, now: Instant, key: PeerKey, root: &[u8; 32], req: &HashRequest, hashes: &[u8]) {
        let Some(l) = &mut self.layers else { return };
        if let Err(e) = l.on_hashes(now, key, root, req, hashes) {
            self.close(key, DisconnectReason::Protocol(format!("piece layer hashes: {e}")));
        }
        self.request_layers(now);
    }

    /// Sends hash requests for missing layer chunks to active v2 peers; closes every
    /// connection once all layers are verified or given up on.
    fn request_layers(&mut self, now: Instant) {
        let timeout = self.layers_timeout();
        let Some(l) = &mut self.layers else { return };
        if l.is_done() {
            return self.end_layers(Ok(()));
        }
        let active: Vec<PeerKey> = self.peers.iter().filter(|(_, p)| p.active && p.v2).map(|(&k, _)| k).collect();
        let sends = l.requests(now, &active, self.cfg.max_requests_per_peer);
        let stalled = now.saturating_duration_since(l.last_progress());
        let handshaking = self.peers.values().any(|p| !p.active);
        let give_up = if stalled >= timeout {
            Some(LayersError::Stalled(stalled))
        } else if self.layers_required {
            None
        } else if active.is_empty() && !handshaking {
            Some(LayersError::NoV2Peer)
        } else if !active.is_empty() && l.all_refused_by(&active) {
            Some(LayersError::AllRejected)
        } else {
            None
        };
        if let Some(e) = give_up {
            return self.end_layers(Err(e));
        }
        for (key, msg) in sends {
            self.send(key, &msg);
        }
    }

    fn end_layers(&mut self, result: Result<(), LayersError>) {
        let Some(l) = self.layers.take() else { return };
        self.layers_done = Some(result.map(|()| l.into_layers()));
        self.finish();
    }

    fn send_handshake(&mut self, key: PeerKey, info_hash: [u8; 20]) {
        let hybrid = self.info_hashes.v1.is_some() && self.info_hashes.v2.is_some();
        let reserved = Reserved::NONE.with_extension_protocol(true).with_fast_extension(true).with_v2_upgrade(hybrid);
        let hs = Handshake { reserved, info_hash, peer_id: self.our_id };
        self.send(key, &hs.to_bytes());
    }

    fn send(&mut self, key: PeerKey, bytes: &[u8]) {
        if let Some(p) = self.peers.get_mut(&key) {
            if p.out.is_empty() {
                self.tx_ready.push_back(key);
            }
            p.out.extend_from_slice(bytes);
        }
    }

    fn close(&mut self, key: PeerKey, reason: DisconnectReason) {
        if self.peers.contains_key(&key) {
            self.forget(key);
            self.disconnects.push_back(Disconnect { peer: key, reason });
        }
    }

    fn forget(&mut self, key: PeerKey) {
        if let Some(l) = &mut self.layers {
            l.peer_gone(key);
        }
        if let Some(p) = self.peers.remove(&key) {
            for piece in p.outstanding {
                self.requested.remove(&piece);
            }
        }
    }

    fn drain(&mut self, now: Instant, key: PeerKey, rx: &mut FrameDecoder) {
        if self.peers.get(&key).is_some_and(|p| !p.active) {
            match rx.handshake() {
                Ok(Some(hs)) => self.on_handshake(key, hs),
                Ok(None) => return,
                Err(e) => return self.close(key, DisconnectReason::Protocol(e.to_string())),
            }
        }
        while self.peers.contains_key(&key) {
            match rx.next() {
                Ok(Some(Message::Extended { id, payload })) => self.on_extended(now, key, id, payload),
                Ok(Some(Message::Hashes { pieces_root, base_layer, index, length, proof_layers, hashes })) => {
                    let req = HashRequest { base_layer, index, length, proof_layers };
                    self.on_layer_hashes(now, key, &pieces_root, &req, hashes);
                }
                Ok(Some(Message::HashReject { pieces_root, base_layer, index, length, proof_layers })) => {
                    let req = HashRequest { base_layer, index, length, proof_layers };
                    if let Some(l) = &mut self.layers {
                        l.on_reject(now, key, &pieces_root, &req);
                    }
                    self.request_layers(now);
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => return self.close(key, DisconnectReason::Protocol(e.to_string())),
            }
        }
    }

    fn on_handshake(&mut self, key: PeerKey, hs: Handshake) {
        if !self.info_hashes.matches(&hs.info_hash) {
            return self.close(key, DisconnectReason::WrongInfoHash);
        }
        if hs.peer_id == self.our_id {
            return self.close(key, DisconnectReason::SelfConnection);
        }
        if !hs.reserved.extension_protocol() {
            // Without BEP 10 it cannot send metadata.
            return self.close(key, DisconnectReason::NotUseful);
        }
        let v2 = match self.info_hashes.v2 {
            Some(h) => {
                self.info_hashes.v1.is_none() || hs.reserved.v2_upgrade() || truncate_v2_info_hash(&h) == hs.info_hash
            }
            None => hs.reserved.v2_upgrade(),
        };
        let Some(p) = self.peers.get_mut(&key) else { return };
        p.active = true;
        p.v2 = v2;
        let outgoing = p.outgoing;
        if !outgoing {
            self.send_handshake(key, hs.info_hash);
        }
        let m = [(UT_METADATA, UT_METADATA_ID)].into_iter().collect();
        let ext = ExtendedHandshake { m, v: Some(&self.cfg.client_name), ..ExtendedHandshake::default() };
        let mut payload = Vec::new();
        ext.encode(&mut payload);
        let mut msg = Vec::new();
        Message::Extended { id: 0, payload: &payload }.encode(&mut msg);
        if hs.reserved.fast_extension() {
            Message::HaveNone.encode(&mut msg);
        }
        self.send(key, &msg);
    }

    fn on_extended(&mut self, now: Instant, key: PeerKey, id: u8, payload: &[u8]) {
        if id == 0 {
            let hs = match ExtendedHandshake::decode(payload) {
                Ok(hs) => hs,
                Err(e) => return self.close(key, DisconnectReason::Protocol(e.to_string())),
            };
            if let Some(size) = hs.metadata_size {
                if size > self.cfg.max_size {
                    return self.close(key, DisconnectReason::Protocol(MetadataError::TooLarge(size).to_string()));
                }
            }
            if let Some(p) = self.peers.get_mut(&key) {
                p.ut_metadata = hs.extension_id(UT_METADATA);
                p.size = hs.metadata_size;
            }
            if self.size.is_none() {
                if let Some(size) = hs.metadata_size {
                    self.adopt(size);
                }
            }
            return;
        }
        if id != UT_METADATA_ID {
            return;
        }
        match UtMetadata::decode(payload) {
            Ok(UtMetadata::Data { piece, total_size, data }) => self.on_data(now, key, piece, total_size, data),
            Ok(UtMetadata::Reject { piece }) => {
                self.requested.remove(&piece);
                if let Some(p) = self.peers.get_mut(&key) {
                    p.outstanding.remove(&piece);
                    p.rejected = true;
                }
            }
            Ok(UtMetadata::Request { piece }) => {
                // We have nothing to serve yet.
                if let Some(their) = self.peers.get(&key).and_then(|p| p.ut_metadata) {
                    let mut body = Vec::new();
                    UtMetadata::Reject { piece }.encode(&mut body);
                    let mut msg = Vec::new();
                    encode_extended_header(their, body.len(), &mut msg);
                    msg.extend_from_slice(&body);
                    self.send(key, &msg);
                }
            }
            Err(mycel_peer_wire::ExtensionError::UnknownMessageType(_)) => {}
            Err(e) => self.close(key, DisconnectReason::Protocol(e.to_string())),
        }
    }

    fn adopt(&mut self, size: u32) {
        self.size = Some(size);
        self.pieces = vec![None; metadata_piece_count(size) as usize];
        self.requested.clear();
        self.senders.clear();
        for p in self.peers.values_mut() {
            p.outstanding.clear();
        }
    }

    fn on_data(&mut self, now: Instant, key: PeerKey, piece: u32, total_size: u32, data: &[u8]) {
        let Some(size) = self.size else { return };
        if total_size != size {
            let err = MetadataError::SizeMismatch { got: total_size, expected: size };
            return self.close(key, DisconnectReason::Protocol(err.to_string()));
        }
        let asked = self.requested.get(&piece).is_some_and(|&(k, _)| k == key);
        if let Some(p) = self.peers.get_mut(&key) {
            p.outstanding.remove(&piece);
        }
        if !asked || metadata_piece_len(size, piece) != Some(data.len()) {
            return;
        }
        self.requested.remove(&piece);
        self.senders.insert(piece, key);
        self.pieces[piece as usize] = Some(Bytes::copy_from_slice(data));
        if self.pieces.iter().all(Option::is_some) {
            self.assemble(now);
        }
    }

    fn assemble(&mut self, now: Instant) {
        let mut all = Vec::with_capacity(self.size.unwrap_or(0) as usize);
        for p in self.pieces.iter().flatten() {
            all.extend_from_slice(p);
        }
        let ok_v1 = self.info_hashes.v1.is_some_and(|h| <[u8; 20]>::from(Sha1::digest(&all)) == h);
        let ok_v2 = self.info_hashes.v2.is_some_and(|h| <[u8; 32]>::from(Sha256::digest(&all)) == h);
        if ok_v1 || ok_v2 {
            // The connections stay open for the piece layers (module docs).
            self.done = Some(Bytes::from(all));
            return;
        }
        // Someone lied: drop everyone who sent a piece and start over with any size.
        self.failures += 1;
        let liars: BTreeSet<PeerKey> = self.senders.values().copied().collect();
        for key in liars {
            self.close(key, DisconnectReason::Protocol(MetadataError::HashMismatch.to_string()));
        }
        self.size = None;
        self.pieces.clear();
        self.requested.clear();
        self.senders.clear();
        if let Some(size) = self.peers.values().find_map(|p| p.size) {
            self.adopt(size);
        }
        self.request_more(now);
    }

    /// Hands missing pieces to peers that announced the adopted size.
    fn request_more(&mut self, now: Instant) {
        let Some(size) = self.size else { return };
        if self.done.is_some() {
            return;
        }
        let missing: Vec<u32> = (0..self.pieces.len() as u32)
            .filter(|&i| self.pieces[i as usize].is_none() && !self.requested.contains_key(&i))
            .collect();
        let mut missing = missing.into_iter();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        let mut sends: Vec<(PeerKey, u8, u32)> = Vec::new();
        'peers: for key in keys {
            let Some(p) = self.peers.get_mut(&key) else { continue };
            let Some(their) = p.ut_metadata else { continue };
            if !p.active || p.rejected || p.size != Some(size) {
                continue;
            }
            while p.outstanding.len() < self.cfg.max_requests_per_peer {
                let Some(piece) = missing.next() else { break 'peers };
                p.outstanding.insert(piece);
                self.requested.insert(piece, (key, now));
                sends.push((key, their, piece));
            }
        }
        for (key, their, piece) in sends {
            let mut body = Vec::new();
            UtMetadata::Request { piece }.encode(&mut body);
            let mut msg = Vec::with_capacity(6 + body.len());
            encode_extended_header(their, body.len(), &mut msg);
            msg.extend_from_slice(&body);
            self.send(key, &msg);
        }
    }
}
