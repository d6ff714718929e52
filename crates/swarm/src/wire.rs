//! Peer wire input: the handshake, every message, and the request pipeline and interest
//! that follow from them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use mycel_peer_wire::{
    encode_extended_header, Bitfield, ExtendedHandshake, Frame, FrameDecoder, Handshake, Message, Reserved, UtMetadata,
    UT_METADATA, UT_PEX,
};

use crate::merkle::HashRange;
use crate::peer::{PeerRequest, Phase};
use crate::picker::Received;
use crate::{BlockRef, DisconnectReason, DiskOp, Event, PeerKey, Swarm};

/// The extended message id we receive `ut_metadata` under (in our extended handshake).
pub const UT_METADATA_ID: u8 = 3;
/// Largest `request` length we serve; bigger is a protocol violation (16 KiB is the norm).
const MAX_REQUEST_LEN: u32 = 128 * 1024;
/// Most `reqq` we believe from a peer.
const MAX_PEER_REQQ: u32 = 2000;

/// Our handshake capability bits: extension protocol and fast extension.
pub(crate) fn our_reserved() -> Reserved {
    Reserved::NONE.with_extension_protocol(true).with_fast_extension(true)
}

impl Swarm {
    pub(crate) fn send_handshake(&mut self, key: PeerKey, info_hash: [u8; 20]) {
        // BEP 52 upgrade bit on a hybrid torrent whose piece layers we have: we answer
        // hash requests (a magnet downloader looks for it).
        let hybrid = self.layout.info_hashes().v1.is_some() && self.layout.v2_pieces().is_some();
        let reserved = our_reserved().with_v2_upgrade(hybrid);
        let hs = Handshake { reserved, info_hash, peer_id: self.our_id };
        self.send_raw(key, &[&hs.to_bytes()]);
    }

    /// Decodes and handles everything complete in `rx`; stops when the peer is gone.
    pub(crate) fn drain_rx(&mut self, now: Instant, key: PeerKey, rx: &mut FrameDecoder) {
        if self.peers.get(&key).is_some_and(|p| p.phase == Phase::Handshake) {
            match rx.handshake() {
                Ok(Some(hs)) => self.on_handshake(now, key, hs),
                Ok(None) => return,
                Err(e) => return self.disconnect(now, key, DisconnectReason::Protocol(e.to_string())),
            }
        }
        while self.peers.contains_key(&key) {
            match rx.next_frame() {
                Ok(Some(frame)) => self.on_message(now, key, &frame),
                Ok(None) => return,
                Err(e) => return self.disconnect(now, key, DisconnectReason::Protocol(e.to_string())),
            }
        }
    }

    fn on_handshake(&mut self, now: Instant, key: PeerKey, hs: Handshake) {
        if !self.layout.info_hashes().matches(&hs.info_hash) {
            return self.disconnect(now, key, DisconnectReason::WrongInfoHash);
        }
        if hs.peer_id == self.our_id {
            return self.disconnect(now, key, DisconnectReason::SelfConnection);
        }
        let addr = self.peers.get(&key).map(|p| p.addr);
        let twin =
            self.peers.iter().find(|(k, p)| **k != key && p.peer_id == Some(hs.peer_id)).map(|(k, p)| (*k, p.addr));
        if let Some((old, old_addr)) = twin {
            // The same client from the same host again: its old connection is one it has
            // left (a magnet's metadata connection, a restart) and whose close has not reached
            // us yet, so the new one wins. From another host it is a second path (or someone
            // borrowing the id) and the first stays.
            if addr.map(|a| a.ip()) != Some(old_addr.ip()) {
                return self.disconnect(now, key, DisconnectReason::Duplicate);
            }
            self.disconnect(now, old, DisconnectReason::Duplicate);
        }
        let common = our_reserved().common(hs.reserved);
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.peer_id = Some(hs.peer_id);
        peer.fast = common.fast_extension();
        peer.extended = common.extension_protocol();
        peer.phase = Phase::Active { first: true };
        let (outgoing, fast, extended, addr) = (peer.outgoing, peer.fast, peer.extended, peer.addr);
        if !outgoing {
            self.send_handshake(key, hs.info_hash);
        }
        if extended {
            self.send_extended_handshake(key, addr.ip());
        }
        let have = self.picker.have().clone();
        if fast && have.is_full() {
            self.send(key, &Message::HaveAll);
        } else if fast && have.is_empty() {
            self.send(key, &Message::HaveNone);
        } else if !have.is_empty() {
            self.send(key, &Message::Bitfield(have.as_bytes()));
        }
        self.events.push_back(Event::PeerConnected { peer: key, addr, peer_id: hs.peer_id });
    }

    fn send_extended_handshake(&mut self, key: PeerKey, their_ip: IpAddr) {
        let mut m = BTreeMap::new();
        if self.metadata.is_some() {
            m.insert(UT_METADATA, UT_METADATA_ID);
        }
        if self.pex_enabled() {
            m.insert(UT_PEX, crate::UT_PEX_ID);
        }
        let hs = ExtendedHandshake {
            m,
            v: Some(&self.cfg.client_name),
            p: self.cfg.listen_port,
            yourip: Some(their_ip),
            reqq: Some(self.cfg.max_peer_requests as u32),
            metadata_size: self.metadata.as_ref().map(|m| m.len() as u32),
            upload_only: self.picker.is_finished(),
            ..ExtendedHandshake::default()
        };
        let mut payload = Vec::with_capacity(hs.encoded_len());
        hs.encode(&mut payload);
        self.send(key, &Message::Extended { id: 0, payload: &payload });
    }

    fn protocol(&mut self, now: Instant, key: PeerKey, why: &str) {
        self.disconnect(now, key, DisconnectReason::Protocol(why.to_string()));
    }

    fn on_message(&mut self, now: Instant, key: PeerKey, frame: &Frame) {
        let msg = frame.message();
        let count = self.layout.piece_count();
        let first = self.peers.get(&key).is_some_and(|p| p.phase == Phase::Active { first: true });
        let fast = self.peers.get(&key).is_some_and(|p| p.fast);
        // Only availability messages end the "first message" window; BEP 10 handshakes and
        // keep-alives may come before the bitfield.
        let availability =
            matches!(msg, Message::Bitfield(_) | Message::HaveAll | Message::HaveNone | Message::Have(_));
        match msg {
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone if !first => {
                return self.protocol(now, key, "bitfield after the first message")
            }
            Message::HaveAll
            | Message::HaveNone
            | Message::RejectRequest { .. }
            | Message::AllowedFast(_)
            | Message::SuggestPiece(_)
                if !fast =>
            {
                return self.protocol(now, key, "fast extension message without the fast extension")
            }
            Message::Have(i) | Message::AllowedFast(i) | Message::SuggestPiece(i) if i >= count => {
                return self.protocol(now, key, "piece index out of range")
            }
            _ => {}
        }
        if availability {
            if let Some(p) = self.peers.get_mut(&key) {
                p.phase = Phase::Active { first: false };
            }
        }
        match msg {
            Message::KeepAlive | Message::Port(_) | Message::SuggestPiece(_) | Message::Unknown { .. } => {}
            Message::Bitfield(bytes) => match Bitfield::from_bytes(bytes, count) {
                Ok(bf) => self.on_bitfield(now, key, bf),
                Err(e) => self.protocol(now, key, &e.to_string()),
            },
            Message::HaveAll => self.on_bitfield(now, key, Bitfield::full(count)),
            Message::HaveNone => self.on_bitfield(now, key, Bitfield::new(count)),
            Message::Have(i) => self.on_have(now, key, i),
            Message::Choke => self.on_choke(now, key),
            Message::Unchoke => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.peer_choking = false;
                    p.last_block = now;
                }
                self.fill_requests(now, key);
            }
            Message::Interested => self.on_interested(now, key, true),
            Message::NotInterested => self.on_interested(now, key, false),
            Message::Request { index, begin, length } => {
                self.on_request(now, key, PeerRequest { piece: index, begin, len: length })
            }
            Message::Cancel { index, begin, length } => {
                self.on_cancel(key, PeerRequest { piece: index, begin, len: length })
            }
            Message::Piece { index, begin, .. } => {
                // The block as a slice of the received bytes: it goes to the disk uncopied.
                if let Some(block) = frame.piece_block() {
                    self.on_block(now, key, index, begin, block);
                }
            }
            Message::RejectRequest { index, begin, length } => self.on_reject(now, key, index, begin, length),
            Message::AllowedFast(i) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.allowed_fast.insert(i);
                }
                self.fill_requests(now, key);
            }
            Message::Extended { id, payload } => self.on_extended(now, key, id, payload),
            Message::HashRequest { pieces_root: root, base_layer, index, length, proof_layers } => {
                self.on_hash_request(key, HashRange { root, base_layer, index, length, proof_layers });
            }
            Message::Hashes { pieces_root: root, base_layer, index, length, proof_layers, hashes } => {
                self.on_hashes(now, key, HashRange { root, base_layer, index, length, proof_layers }, hashes);
            }
            Message::HashReject { pieces_root: root, base_layer, index, length, proof_layers } => {
                self.on_hash_reject(now, key, HashRange { root, base_layer, index, length, proof_layers });
            }
        }
    }

    fn on_bitfield(&mut self, now: Instant, key: PeerKey, bf: Bitfield) {
        for piece in bf.iter_set() {
            self.picker.inc_availability(piece);
        }
        let interesting = bf.iter_set().filter(|&p| self.picker.wants(p)).count() as u32;
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.has = bf;
        peer.interesting = interesting;
        if peer.useless(self.picker.have().is_full()) {
            return self.disconnect(now, key, DisconnectReason::NotUseful);
        }
        self.update_interest(now, key);
    }

    fn on_have(&mut self, now: Instant, key: PeerKey, piece: u32) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if peer.has.set(piece).unwrap_or(false) {
            self.picker.inc_availability(piece);
            if self.picker.wants(piece) {
                peer.interesting += 1;
            }
            if peer.useless(self.picker.have().is_full()) {
                return self.disconnect(now, key, DisconnectReason::NotUseful);
            }
            self.update_interest(now, key);
        }
    }

    fn on_choke(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.peer_choking = true;
        if peer.fast {
            // BEP 6: requests stay pending until the peer rejects them.
            return;
        }
        // BEP 3: a choke drops every request.
        let dropped: Vec<BlockRef> = std::mem::take(&mut peer.requests).into_keys().collect();
        for r in &dropped {
            peer.remember_cancelled(*r);
        }
        for r in dropped {
            self.picker.cancel_request(r);
        }
        self.refill_all(now);
    }

    fn on_interested(&mut self, now: Instant, key: PeerKey, interested: bool) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.peer_interested = interested;
        if !interested {
            // Its slot is wasted on it: choke it and give the slot to a peer that wants it.
            if !peer.am_choking {
                self.choker.peer_left(key);
                self.set_choke(now, key, true);
                self.fill_free_slots(now);
            }
            return;
        }
        if !peer.am_choking {
            return;
        }
        // Fill a free slot at once rather than at the next rechoke: as a leecher the
        // optimistic one if it is empty, else any idle slot (lent, see the choker).
        if !self.picker.is_finished() && self.choker.offer_optimistic(now, key) {
            self.set_choke(now, key, false);
        } else {
            self.fill_free_slots(now);
        }
    }

    fn on_reject(&mut self, now: Instant, key: PeerKey, piece: u32, begin: u32, length: u32) {
        let Some(block) = self.layout.block_at(piece, begin, length) else { return };
        let r = BlockRef { piece, block };
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if peer.requests.remove(&r).is_some() {
            self.picker.cancel_request(r);
            if !peer.peer_choking {
                self.fill_requests(now, key);
            } else {
                self.refill_all(now);
            }
        }
    }

    fn on_block(&mut self, now: Instant, key: PeerKey, piece: u32, begin: u32, data: bytes::Bytes) {
        let len = data.len() as u64;
        let Some(block) = self.layout.block_at(piece, begin, data.len() as u32) else {
            return self.disconnect(now, key, DisconnectReason::UnrequestedBlock);
        };
        let r = BlockRef { piece, block };
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if peer.requests.remove(&r).is_none() {
            if peer.take_cancelled(r) {
                self.stats.wasted += len;
                return;
            }
            return self.disconnect(now, key, DisconnectReason::UnrequestedBlock);
        }
        peer.last_block = now;
        peer.snubbed = false;
        peer.down.record(now, len);
        let ip = peer.addr.ip();
        match self.picker.block_received(r) {
            Received::New => {
                self.stats.downloaded += len;
                self.down_total.record(now, len);
                self.contributors.entry(piece).or_default().insert(block, ip);
                *self.writes_pending.entry(piece).or_insert(0) += 1;
                self.disk_ops.push_back(DiskOp::Write { piece, begin, data });
                self.cancel_elsewhere(key, r);
            }
            Received::Duplicate => self.stats.wasted += len,
        }
        self.reciprocate(now, key);
        self.fill_requests(now, key);
    }

    /// End-game: a block arrived, so the other peers asked for it get a cancel.
    fn cancel_elsewhere(&mut self, from: PeerKey, r: BlockRef) {
        let others: Vec<PeerKey> =
            self.peers.iter().filter(|(&k, p)| k != from && p.requests.contains_key(&r)).map(|(&k, _)| k).collect();
        let (begin, length) = self.layout.block_span(r.piece, r.block);
        for key in others {
            if let Some(p) = self.peers.get_mut(&key) {
                p.requests.remove(&r);
                p.remember_cancelled(r);
            }
            self.picker.cancel_request(r);
            self.send(key, &Message::Cancel { index: r.piece, begin, length });
        }
    }

    fn on_extended(&mut self, now: Instant, key: PeerKey, id: u8, payload: &[u8]) {
        if id == 0 {
            match ExtendedHandshake::decode(payload) {
                Ok(hs) => {
                    if let Some(p) = self.peers.get_mut(&key) {
                        p.ut_metadata = hs.extension_id(UT_METADATA);
                        if let Some(q) = hs.reqq {
                            p.reqq = q.clamp(1, MAX_PEER_REQQ) as usize;
                        }
                    }
                    self.pex_on_ext_handshake(key, &hs);
                }
                Err(e) => self.protocol(now, key, &e.to_string()),
            }
            return;
        }
        if id == crate::UT_PEX_ID {
            return self.on_pex(now, key, payload);
        }
        if id != UT_METADATA_ID {
            return;
        }
        // Malformed or unknown ut_metadata messages are ignored, as BEP 9 asks for
        // unknown types; only requests matter to a peer that has the metadata.
        if let Ok(UtMetadata::Request { piece }) = UtMetadata::decode(payload) {
            self.serve_metadata(key, piece);
        }
    }

    fn serve_metadata(&mut self, key: PeerKey, piece: u32) {
        let Some(their_id) = self.peers.get(&key).and_then(|p| p.ut_metadata) else { return };
        let mut payload = Vec::new();
        let data = self.metadata.as_ref().and_then(|m| {
            let len = mycel_peer_wire::metadata_piece_len(m.len() as u32, piece)?;
            let start = piece as usize * mycel_peer_wire::METADATA_PIECE_LEN;
            Some((m.len() as u32, m.slice(start..start + len)))
        });
        match data {
            Some((total_size, bytes)) => UtMetadata::Data { piece, total_size, data: &bytes }.encode(&mut payload),
            None => UtMetadata::Reject { piece }.encode(&mut payload),
        }
        let mut header = Vec::with_capacity(6);
        encode_extended_header(their_id, payload.len(), &mut header);
        self.send_raw(key, &[&header, &payload]);
    }

    /// Sends `interested` / `not interested` when our interest in the peer changed, and
    /// requests blocks if we may.
    pub(crate) fn update_interest(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if !peer.is_active() {
            return;
        }
        let want = peer.interesting > 0 && !self.paused;
        if want != peer.am_interested {
            peer.am_interested = want;
            self.send(key, if want { &Message::Interested } else { &Message::NotInterested });
        }
        self.fill_requests(now, key);
    }

    /// Tops up our requests to a peer to its queue depth.
    pub(crate) fn fill_requests(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get(&key) else { return };
        if !peer.can_request() || self.paused {
            return;
        }
        let depth = peer.queue_depth(&self.cfg, now);
        let want = depth.saturating_sub(peer.requests.len());
        if want == 0 {
            return;
        }
        let restricted;
        let has = if peer.peer_choking {
            let mut bf = Bitfield::new(self.layout.piece_count());
            for &p in peer.allowed_fast.iter().filter(|&&p| peer.has.has(p)) {
                let _ = bf.set(p);
            }
            restricted = bf;
            &restricted
        } else {
            &peer.has
        };
        let requests = &peer.requests;
        let picks = self.picker.pick(has, want, &|r| requests.contains_key(&r));
        if picks.is_empty() {
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if peer.requests.is_empty() {
            peer.last_block = now;
        }
        for r in &picks {
            peer.requests.insert(*r, now);
        }
        for r in picks {
            let (begin, length) = self.layout.block_span(r.piece, r.block);
            self.send(key, &Message::Request { index: r.piece, begin, length });
        }
    }

    /// Validates a peer's request; a malformed one (past the piece, too long) is a
    /// protocol violation, one we cannot serve is rejected (fast extension) or ignored.
    fn on_request(&mut self, now: Instant, key: PeerKey, req: PeerRequest) {
        let piece_len = self.layout.piece_len(req.piece);
        let in_bounds = req.len > 0
            && req.len <= MAX_REQUEST_LEN
            && u64::from(req.begin) + u64::from(req.len) <= u64::from(piece_len);
        if !in_bounds {
            return self.protocol(now, key, "request out of bounds");
        }
        self.queue_request(key, req);
    }
}
