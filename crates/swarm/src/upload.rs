//! Uploading: peers' requests, the disk reads that serve them, and choking.
//!
//! A request is served only while we unchoke the peer and have the piece; otherwise it is
//! rejected (fast extension) or ignored. At most `max_reads_per_peer` reads are in flight
//! per peer and `max_peer_requests` requests wait; choking a peer drops (and with the fast
//! extension rejects) everything it asked for.

use std::time::Instant;

use bytes::Bytes;
use mycel_peer_wire::{piece_header, Message};

use crate::peer::PeerRequest;
use crate::{DiskOp, PeerKey, Swarm};

impl Swarm {
    pub(crate) fn queue_request(&mut self, key: PeerKey, req: PeerRequest) {
        let have = self.picker.have().has(req.piece);
        let max = self.cfg.max_peer_requests;
        let Some(peer) = self.peers.get_mut(&key) else { return };
        let full = peer.queued.len() + peer.reading.len() >= max;
        if !have || peer.am_choking || full || peer.reading.contains(&req) {
            if peer.fast {
                self.reject(key, req);
            }
            return;
        }
        peer.queued.push_back(req);
        self.pump_reads(key);
    }

    pub(crate) fn on_cancel(&mut self, key: PeerKey, req: PeerRequest) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        // A request being read is forgotten: its data is dropped when the read is done.
        peer.queued.retain(|&q| q != req);
        peer.reading.remove(&req);
    }

    fn reject(&mut self, key: PeerKey, req: PeerRequest) {
        self.send(key, &Message::RejectRequest { index: req.piece, begin: req.begin, length: req.len });
    }

    /// Starts disk reads for queued requests, up to the per-peer cap.
    pub(crate) fn pump_reads(&mut self, key: PeerKey) {
        let max = self.cfg.max_reads_per_peer;
        let Some(peer) = self.peers.get_mut(&key) else { return };
        while peer.reads_in_flight < max {
            let Some(req) = peer.queued.pop_front() else { break };
            peer.reads_in_flight += 1;
            peer.reading.insert(req);
            self.disk_ops.push_back(DiskOp::Read { peer: key, piece: req.piece, begin: req.begin, len: req.len });
        }
    }

    /// A read finished: send the block if the peer still wants it.
    pub(crate) fn on_read(&mut self, now: Instant, key: PeerKey, req: PeerRequest, data: Option<Bytes>) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.reads_in_flight = peer.reads_in_flight.saturating_sub(1);
        let wanted = peer.reading.remove(&req);
        let fast = peer.fast;
        match data {
            Some(data) if wanted && data.len() == req.len as usize => {
                let len = data.len() as u64;
                peer.up.record(now, len);
                peer.uploaded_since_unchoke += len;
                self.up_total.record(now, len);
                self.stats.uploaded += len;
                let header = piece_header(req.piece, req.begin, data.len());
                self.send_raw(key, &[&header, &data]);
            }
            _ if wanted && fast => self.reject(key, req),
            _ => {}
        }
        self.pump_reads(key);
    }

    /// Chokes or unchokes a peer (no-op if unchanged). Choking drops its requests.
    pub(crate) fn set_choke(&mut self, now: Instant, key: PeerKey, choke: bool) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if !peer.is_active() || peer.am_choking == choke {
            return;
        }
        peer.am_choking = choke;
        if !choke {
            peer.unchoked_since = Some(now);
            peer.last_unchoked = Some(now);
            peer.uploaded_since_unchoke = 0;
            self.stats.unchokes += 1;
            self.send(key, &Message::Unchoke);
            return;
        }
        peer.unchoked_since = None;
        let mut dropped: Vec<PeerRequest> = peer.queued.drain(..).collect();
        dropped.extend(std::mem::take(&mut peer.reading));
        let fast = peer.fast;
        self.send(key, &Message::Choke);
        if fast {
            // BEP 6: after a choke every pending request is rejected explicitly.
            for req in dropped {
                self.reject(key, req);
            }
        }
    }
}
