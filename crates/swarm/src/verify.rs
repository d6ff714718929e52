//! Disk results and verification: hash checks, announcing verified pieces, strikes and
//! bans for peers that sent bad data.
//!
//! A piece is checked once all its blocks are written: SHA-1 (v1), the merkle root of its
//! block hashes (v2), or both (hybrid, unless [`Trust`](crate::Trust) says otherwise).
//! Only then is it marked had, announced and served. When it fails, every address that
//! sent a block of it gets a strike; an address is banned when it was the only
//! contributor or reaches `strikes_to_ban` strikes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use mycel_peer_wire::Message;

use crate::peer::PeerRequest;
use crate::{merkle_root, BanReason, DisconnectReason, DiskOp, DiskResult, Event, FailedOp, PeerKey, Swarm};

impl Swarm {
    pub(crate) fn on_disk_result(&mut self, now: Instant, result: DiskResult) {
        match result {
            DiskResult::Read { peer, piece, begin, data } => {
                let req = PeerRequest { piece, begin, len: data.len() as u32 };
                self.on_read(now, peer, req, Some(data));
            }
            DiskResult::Written { piece, .. } => self.on_written(piece),
            DiskResult::Hashed { piece, sha1, blocks } => self.on_hashed(now, piece, sha1, &blocks),
            DiskResult::Failed { op, error } => self.on_disk_failed(now, op, error),
        }
    }

    fn on_written(&mut self, piece: u32) {
        let Some(n) = self.writes_pending.get_mut(&piece) else { return };
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.writes_pending.remove(&piece);
            self.maybe_hash(piece);
        }
    }

    /// Asks for the hash of a piece whose blocks are all received and written.
    fn maybe_hash(&mut self, piece: u32) {
        if !self.picker.is_complete(piece) || self.writes_pending.contains_key(&piece) || !self.hashing.insert(piece) {
            return;
        }
        self.disk_ops.push_back(DiskOp::Hash {
            piece,
            len: self.layout.piece_len(piece),
            sha1: self.layout.v1_hash(piece).is_some(),
            v2_len: self.layout.v2_piece(piece).map(|p| p.data_len),
        });
    }

    fn on_hashed(&mut self, now: Instant, piece: u32, sha1: Option<[u8; 20]>, blocks: &[[u8; 32]]) {
        if !self.hashing.remove(&piece) {
            // Not a verification: block hashes of a piece we have, for a hash request.
            return self.serve_hashes(piece, blocks);
        }
        let ok_v1 = self.layout.v1_hash(piece).is_none_or(|h| sha1.as_ref() == Some(h));
        let ok_v2 = self.layout.v2_piece(piece).is_none_or(|p| {
            blocks.len() == p.data_len.div_ceil(crate::BLOCK_LEN) as usize && merkle_root(blocks, p.leaves) == p.root
        });
        if ok_v1 && ok_v2 {
            self.piece_passed(now, piece);
        } else if ok_v1 && self.start_resolve(now, piece, blocks) {
            // v2 can name the bad blocks once a peer sends the leaf hashes (merkle.rs).
        } else {
            self.piece_failed(now, piece);
        }
    }

    fn piece_passed(&mut self, now: Instant, piece: u32) {
        self.picker.piece_passed(piece);
        self.contributors.remove(&piece);
        self.events.push_back(Event::PieceVerified { piece });
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        let seed = self.picker.have().is_full();
        for key in keys {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            if !peer.is_active() {
                continue;
            }
            if peer.has.has(piece) {
                peer.interesting = peer.interesting.saturating_sub(1);
            }
            if peer.useless(seed) {
                self.disconnect(now, key, DisconnectReason::NotUseful);
                continue;
            }
            self.send(key, &Message::Have(piece));
            self.update_interest(now, key);
        }
        self.check_completed();
    }

    pub(crate) fn piece_failed(&mut self, now: Instant, piece: u32) {
        self.stats.hash_failures += 1;
        let blocks = self.contributors.remove(&piece).unwrap_or_default();
        let mut counts: BTreeMap<IpAddr, u32> = BTreeMap::new();
        for ip in blocks.values() {
            *counts.entry(*ip).or_insert(0) += 1;
        }
        self.stats.wasted += u64::from(self.layout.piece_len(piece));
        self.events.push_back(Event::PieceFailed { piece, peers: counts.iter().map(|(&ip, &n)| (ip, n)).collect() });
        let sole = counts.len() == 1;
        for &ip in counts.keys() {
            let strikes = self.strikes.entry(ip).or_insert(0);
            *strikes += 1;
            if sole || *strikes >= self.cfg.strikes_to_ban {
                self.ban(now, ip, BanReason::FailedPieces);
            }
        }
        self.picker.piece_failed(piece);
        self.refill_all(now);
    }

    /// Bans an address: disconnects it everywhere and never dials it again.
    pub(crate) fn ban(&mut self, now: Instant, ip: IpAddr, reason: BanReason) {
        if !self.banned.insert(ip) {
            return;
        }
        tracing::info!(%ip, ?reason, "peer banned");
        self.events.push_back(Event::PeerBanned { addr: ip, reason });
        self.candidates.retain(|a, _| a.ip() != ip);
        let keys: Vec<PeerKey> = self.peers.iter().filter(|(_, p)| p.addr.ip() == ip).map(|(&k, _)| k).collect();
        for key in keys {
            self.disconnect(now, key, DisconnectReason::Banned);
        }
    }

    fn on_disk_failed(&mut self, now: Instant, op: FailedOp, error: String) {
        match op {
            FailedOp::Read { peer, piece, begin, len } => {
                self.on_read(now, peer, PeerRequest { piece, begin, len }, None);
                self.events.push_back(Event::DiskFailed { error, paused: false });
            }
            FailedOp::Write { piece, .. } => {
                // A full disk or an unwritable file: stop the torrent, keep what is verified.
                self.writes_pending.remove(&piece);
                self.contributors.remove(&piece);
                self.picker.piece_failed(piece);
                self.events.push_back(Event::DiskFailed { error, paused: true });
                self.pause(now);
            }
            FailedOp::Hash { piece } if !self.hashing.contains(&piece) => {
                // A hash for serving a hash request: the waiting peers get nothing.
                self.hash_serves.remove(&piece);
                self.events.push_back(Event::DiskFailed { error, paused: false });
            }
            FailedOp::Hash { piece } => {
                // Could not read the piece back: download it again, blame nobody.
                self.hashing.remove(&piece);
                self.contributors.remove(&piece);
                self.picker.piece_failed(piece);
                self.events.push_back(Event::DiskFailed { error, paused: false });
                self.refill_all(now);
            }
        }
    }
}
