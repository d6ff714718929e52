//! v2 (BEP 52) block-level blame: when a piece's merkle root does not match and several
//! peers sent its blocks, the engine asks a peer for the piece's leaf hashes (`hash
//! request`, base layer 0, no proof: the leaves hash up to the piece-layer root we trust),
//! compares them with the hashes of the blocks it wrote, bans exactly the senders of bad
//! blocks and downloads only those blocks again. If no peer answers in time the piece
//! falls back to v1-style strikes.
//!
//! Serving other peers' hash requests is in `hashserve.rs`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use mycel_peer_wire::Message;

use crate::{merkle_root, BanReason, DisconnectReason, PeerKey, Swarm};

/// A failed v2 piece waiting for its leaf hashes.
#[derive(Debug, Clone)]
pub(crate) struct Resolve {
    /// SHA-256 of the blocks we wrote.
    pub blocks: Vec<[u8; 32]>,
    /// The peer asked.
    pub asked: PeerKey,
    /// When we give up on it.
    pub deadline: Instant,
}

/// The fields of a hash request / hashes / hash reject message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HashRange {
    pub root: [u8; 32],
    pub base_layer: u32,
    pub index: u32,
    pub length: u32,
    pub proof_layers: u32,
}

impl Swarm {
    /// Tries to pinpoint the bad blocks of a failed v2 piece; `false` if it cannot (then
    /// the caller blames every contributor).
    pub(crate) fn start_resolve(&mut self, now: Instant, piece: u32, blocks: &[[u8; 32]]) -> bool {
        let Some(v2) = self.layout.v2_piece(piece).copied() else { return false };
        let contributors: BTreeSet<IpAddr> =
            self.contributors.get(&piece).map(|c| c.values().copied().collect()).unwrap_or_default();
        if v2.leaves < 2 || contributors.len() < 2 || blocks.len() != v2.data_len.div_ceil(crate::BLOCK_LEN) as usize {
            return false;
        }
        // Prefer a peer that did not contribute (it has no reason to lie for them).
        let mut asked = None;
        for (&key, p) in &self.peers {
            if p.is_active() && p.has.has(piece) {
                if !contributors.contains(&p.addr.ip()) {
                    asked = Some(key);
                    break;
                }
                asked = asked.or(Some(key));
            }
        }
        let Some(asked) = asked else { return false };
        let deadline = now + self.cfg.hash_request_timeout;
        self.resolving.insert(piece, Resolve { blocks: blocks.to_vec(), asked, deadline });
        let msg = Message::HashRequest {
            pieces_root: v2.file_root,
            base_layer: 0,
            index: v2.leaf_index,
            length: v2.leaves,
            proof_layers: 0,
        };
        self.send(asked, &msg);
        true
    }

    fn resolving_piece(&self, key: PeerKey, r: &HashRange) -> Option<u32> {
        self.resolving.iter().map(|(&piece, res)| (piece, res)).find_map(|(piece, res)| {
            let v2 = self.layout.v2_piece(piece)?;
            let same = res.asked == key
                && r.base_layer == 0
                && r.root == v2.file_root
                && r.index == v2.leaf_index
                && r.length == v2.leaves;
            same.then_some(piece)
        })
    }

    /// A `hashes` answer: if it resolves a failed piece, blame the bad blocks' senders.
    pub(crate) fn on_hashes(&mut self, now: Instant, key: PeerKey, r: HashRange, hashes: &[u8]) {
        let Some(piece) = self.resolving_piece(key, &r) else { return };
        let Some(res) = self.resolving.remove(&piece) else { return };
        let Some(v2) = self.layout.v2_piece(piece).copied() else { return };
        let leaves: Vec<[u8; 32]> = hashes.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).collect();
        if leaves.len() != v2.leaves as usize || merkle_root(&leaves, v2.leaves) != v2.root {
            self.disconnect(now, key, DisconnectReason::Protocol("hashes do not match the piece layer".into()));
            return self.piece_failed(now, piece);
        }
        let bad: Vec<u32> =
            (0u32..).zip(&res.blocks).filter(|&(i, h)| leaves[i as usize] != *h).map(|(i, _)| i).collect();
        if bad.is_empty() {
            return self.piece_failed(now, piece);
        }
        let culprits: BTreeSet<IpAddr> = match self.contributors.get_mut(&piece) {
            Some(c) => bad.iter().filter_map(|b| c.remove(b)).collect(),
            None => BTreeSet::new(),
        };
        self.stats.hash_failures += 1;
        self.stats.wasted += u64::from(crate::BLOCK_LEN) * bad.len() as u64;
        for ip in culprits {
            self.ban(now, ip, BanReason::BadBlock);
        }
        self.picker.blocks_failed(piece, &bad);
        self.refill_all(now);
    }

    /// A `hash reject` from the peer we asked: fall back to strikes.
    pub(crate) fn on_hash_reject(&mut self, now: Instant, key: PeerKey, r: HashRange) {
        if let Some(piece) = self.resolving_piece(key, &r) {
            self.resolving.remove(&piece);
            self.piece_failed(now, piece);
        }
    }

    /// Pieces whose hash answers are overdue fall back to strikes.
    pub(crate) fn expire_resolves(&mut self, now: Instant) {
        let late: Vec<u32> = self.resolving.iter().filter(|(_, r)| r.deadline <= now).map(|(&p, _)| p).collect();
        for piece in late {
            self.resolving.remove(&piece);
            self.piece_failed(now, piece);
        }
    }
}
