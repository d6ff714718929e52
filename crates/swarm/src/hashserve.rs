//! Serving BEP 52 `hash request`s: piece layers (what a magnet downloader of a v2 or
//! hybrid torrent needs, since they are not in the info dictionary) and block hashes.
//!
//! Per file the engine keeps a [`MerkleTree`] built from its piece layer (the `root` of
//! every [`V2Piece`](crate::V2Piece) of the file), so requests at the piece layer or
//! above are answered at once, with the uncle hashes up to the `pieces root`. Requests
//! below the piece layer need the block hashes of one piece we have: the driver hashes it
//! (a [`DiskOp::Hash`]) and the answer goes out when the result comes back; its uncles
//! come from the piece's own subtree, then from the piece-layer tree.
//!
//! Rejected (`hash reject`): an unknown `pieces root`, a malformed or out-of-range request
//! (see [`HashRequest::check`]), a request below the piece layer spanning more than one
//! piece or for a piece we do not have, more than `MAX_HASH_SERVES_PER_PEER` such
//! requests waiting at once, and any request beyond a peer's token bucket
//! (`hash_requests_per_sec`, `hash_request_burst`): BEP 52 asks that hash requests be
//! treated like piece requests, and an answer from the piece-layer tree costs us no disk
//! read, so without a limit a peer could make us send hashes as fast as it asks.
//! Rate-limited rejects are counted in [`Stats::hash_requests_limited`](crate::Stats).

use std::collections::BTreeMap;

use mycel_metainfo::merkle::{num_blocks, HashRequest, MerkleTree};
use mycel_metainfo::ProofError;
use mycel_peer_wire::Message;

use crate::merkle::HashRange;
use crate::{DiskOp, Layout, PeerKey, Swarm};

/// Block-hash requests from one peer waiting for the disk at once; more are rejected.
const MAX_HASH_SERVES_PER_PEER: usize = 4;

/// One file's merkle data as the engine knows it: the piece layer, not the blocks.
#[derive(Debug, Clone)]
pub(crate) struct FileTree {
    first_piece: u32,
    num_pieces: u32,
    num_blocks: u64,
    /// Leaves under one piece's subtree: `piece length / 16 KiB`, or for a file of one
    /// piece the next power of two of its blocks (that subtree is the whole tree).
    piece_leaves: u32,
    /// The tree from the piece layer up; `None` for a file of one piece.
    above: Option<MerkleTree>,
}

/// How a request can be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// From the piece-layer tree, now.
    Now(Vec<[u8; 32]>),
    /// Once the block hashes of this piece are known.
    NeedPiece(u32),
}

/// The tree of every v2 file of `layout`, by `pieces root` (for two files with the same
/// contents, the first; their trees are the same).
pub(crate) fn file_trees(layout: &Layout) -> BTreeMap<[u8; 32], FileTree> {
    let mut out = BTreeMap::new();
    let Some(pieces) = layout.v2_pieces() else { return out };
    let mut start = 0usize;
    while start < pieces.len() {
        let root = pieces[start].file_root;
        let len = pieces[start + 1..].iter().take_while(|p| p.file_root == root && p.leaf_index != 0).count() + 1;
        let group = &pieces[start..start + len];
        let file_len: u64 = group.iter().map(|p| u64::from(p.data_len)).sum();
        let above = if len > 1 {
            let layer = group.iter().map(|p| p.root).collect();
            MerkleTree::from_piece_layer(layer, layout.piece_length(), file_len)
        } else {
            None
        };
        if len == 1 || above.is_some() {
            let tree = FileTree {
                first_piece: start as u32,
                num_pieces: len as u32,
                num_blocks: num_blocks(file_len),
                piece_leaves: group[0].leaves,
                above,
            };
            out.entry(root).or_insert(tree);
        }
        start += len;
    }
    out
}

impl FileTree {
    fn piece_height(&self) -> u32 {
        self.piece_leaves.trailing_zeros()
    }

    /// Checks a request and says how to answer it.
    pub(crate) fn plan(&self, req: &HashRequest) -> Result<Plan, ProofError> {
        req.check(self.num_blocks)?;
        if let Some(tree) = self.above.as_ref().filter(|_| req.base_layer >= self.piece_height()) {
            return tree.hashes(req).map(Plan::Now);
        }
        let first_leaf = u64::from(req.index) << req.base_layer;
        let span = u64::from(req.length) << req.base_layer;
        let piece = first_leaf / u64::from(self.piece_leaves);
        if span > u64::from(self.piece_leaves) || piece >= u64::from(self.num_pieces) {
            return Err(ProofError::OutOfRange);
        }
        Ok(Plan::NeedPiece(self.first_piece + piece as u32))
    }

    /// The answer to a request [`plan`](Self::plan)ned as `NeedPiece`, given the block
    /// hashes of that piece (its file data only; the rest of its subtree is zero leaves).
    pub(crate) fn answer_with_blocks(
        &self,
        req: &HashRequest,
        blocks: &[[u8; 32]],
    ) -> Result<Vec<[u8; 32]>, ProofError> {
        let ph = self.piece_height();
        let width = self.piece_leaves as usize;
        if blocks.is_empty() || blocks.len() > width {
            return Err(ProofError::OutOfRange);
        }
        let mut leaves = blocks.to_vec();
        leaves.resize(width, [0; 32]);
        let sub = MerkleTree::from_block_hashes(leaves);
        let piece = (u64::from(req.index) << req.base_layer) / u64::from(self.piece_leaves);
        req.answer(self.num_blocks, |h, i| {
            // Below the piece layer the node is inside this piece's subtree; at and above
            // it (a sibling piece's hash, its ancestors) it is in the layer tree.
            if h < ph || self.above.is_none() {
                let local = i.checked_sub(piece << (ph - h))?;
                sub.node(h, local)
            } else {
                self.above.as_ref()?.node(h, i)
            }
        })
    }
}

impl Swarm {
    /// A peer's `hash request`: answered, queued for a disk hash, or rejected.
    pub(crate) fn on_hash_request(&mut self, key: PeerKey, r: HashRange) {
        let (cfg, now) = (&self.cfg, self.now);
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if !peer.take_hash_token(cfg, now) {
            self.stats.hash_requests_limited += 1;
            return self.send_hash_reject(key, r);
        }
        let req =
            HashRequest { base_layer: r.base_layer, index: r.index, length: r.length, proof_layers: r.proof_layers };
        let plan = self.file_trees.get(&r.root).map(|t| t.plan(&req));
        match plan {
            Some(Ok(Plan::Now(hashes))) => self.send_hashes(key, r, &hashes),
            Some(Ok(Plan::NeedPiece(piece))) => self.queue_hash_serve(key, r, piece),
            Some(Err(_)) | None => self.send_hash_reject(key, r),
        }
    }

    fn queue_hash_serve(&mut self, key: PeerKey, r: HashRange, piece: u32) {
        let busy = self.hash_serves.values().flatten().filter(|(k, _)| *k == key).count() >= MAX_HASH_SERVES_PER_PEER;
        let Some(v2) = self.layout.v2_pieces().and_then(|p| p.get(piece as usize)).copied() else {
            return self.send_hash_reject(key, r);
        };
        if busy || !self.picker.have().has(piece) {
            return self.send_hash_reject(key, r);
        }
        let waiting = self.hash_serves.entry(piece).or_default();
        waiting.push((key, r));
        if waiting.len() == 1 && !self.hashing.contains(&piece) {
            let len = self.layout.piece_len(piece);
            self.disk_ops.push_back(DiskOp::Hash { piece, len, sha1: false, v2_len: Some(v2.data_len) });
        }
    }

    /// Block hashes of a piece we have came back: answer the peers waiting for them.
    pub(crate) fn serve_hashes(&mut self, piece: u32, blocks: &[[u8; 32]]) {
        let Some(waiting) = self.hash_serves.remove(&piece) else { return };
        for (key, r) in waiting {
            let req = HashRequest {
                base_layer: r.base_layer,
                index: r.index,
                length: r.length,
                proof_layers: r.proof_layers,
            };
            match self.file_trees.get(&r.root).map(|t| t.answer_with_blocks(&req, blocks)) {
                Some(Ok(hashes)) => self.send_hashes(key, r, &hashes),
                _ => self.send_hash_reject(key, r),
            }
        }
    }

    fn send_hashes(&mut self, key: PeerKey, r: HashRange, hashes: &[[u8; 32]]) {
        self.stats.hash_requests_served += 1;
        let flat: Vec<u8> = hashes.iter().flatten().copied().collect();
        let msg = Message::Hashes {
            pieces_root: r.root,
            base_layer: r.base_layer,
            index: r.index,
            length: r.length,
            proof_layers: r.proof_layers,
            hashes: &flat,
        };
        self.send(key, &msg);
    }

    fn send_hash_reject(&mut self, key: PeerKey, r: HashRange) {
        let (pieces_root, base_layer, index, length, proof_layers) =
            (r.root, r.base_layer, r.index, r.length, r.proof_layers);
        self.send(key, &Message::HashReject { pieces_root, base_layer, index, length, proof_layers });
    }
}

#[cfg(test)]
mod tests {
    use mycel_metainfo::merkle::{block_hash, verify_hashes, BLOCK_SIZE};

    use super::*;
    use crate::{merkle_root, V2Piece};

    const PL: u32 = 64 * 1024; // 4 blocks per piece

    fn data(len: usize, salt: u8) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 997) as u8 ^ salt).collect()
    }

    fn blocks_of(d: &[u8]) -> Vec<[u8; 32]> {
        d.chunks(BLOCK_SIZE as usize).map(block_hash).collect()
    }

    /// A v2 layout of the given files and each file's full tree (from its blocks).
    fn layout(files: &[Vec<u8>]) -> (Layout, Vec<MerkleTree>) {
        let mut pieces = Vec::new();
        let mut trees = Vec::new();
        for f in files {
            let full = MerkleTree::from_data(f);
            let root = full.root();
            let layer = full.piece_layer(PL).expect("layer");
            let leaves = if layer.len() == 1 { full.num_blocks().next_power_of_two() as u32 } else { PL / BLOCK_SIZE };
            for (j, (h, chunk)) in layer.iter().zip(f.chunks(PL as usize)).enumerate() {
                let leaf_index = j as u32 * leaves;
                pieces.push(V2Piece { root: *h, leaves, data_len: chunk.len() as u32, file_root: root, leaf_index });
            }
            trees.push(full);
        }
        let lens: Vec<u64> = files.iter().map(|f| f.len() as u64).collect();
        (Layout::v2([7; 32], PL, &lens, pieces).expect("layout"), trees)
    }

    #[test]
    fn piece_layer_answers_verify_against_the_pieces_root() {
        // 37 pieces (the last short) and a 3-block file.
        let files = [data(37 * PL as usize - 5000, 1), data(3 * BLOCK_SIZE as usize - 9, 2)];
        let (layout, full) = layout(&files);
        let trees = file_trees(&layout);
        assert_eq!(trees.len(), 2);
        let t = &trees[&full[0].root()];
        let n = full[0].num_blocks();
        let top = full[0].height();
        // What libtorrent asks of a magnet: the piece layer (height 2), padded to 64, proof to the root.
        for (index, length) in [(0, 64), (0, 32), (32, 32), (32, 8), (36, 2), (36, 1)] {
            let req = HashRequest { base_layer: 2, index, length, proof_layers: top - 3 };
            let Ok(Plan::Now(hashes)) = t.plan(&req) else { panic!("{req:?} not answered now") };
            assert_eq!(hashes, full[0].hashes(&req).expect("full tree"), "{req:?}");
            assert_eq!(verify_hashes(&full[0].root(), n, &req, &hashes), Ok(()), "{req:?}");
        }
        // Out of range, bad shape, past the root: rejected.
        for bad in [
            HashRequest { base_layer: 2, index: 64, length: 2, proof_layers: 0 },
            HashRequest { base_layer: 2, index: 2, length: 4, proof_layers: 0 },
            HashRequest { base_layer: 2, index: 0, length: 3, proof_layers: 0 },
            HashRequest { base_layer: 2, index: 0, length: 2, proof_layers: top - 2 },
            HashRequest { base_layer: 0, index: 0, length: 8, proof_layers: 0 },
        ] {
            assert!(t.plan(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn block_answers_use_the_piece_then_the_layer() {
        let files = [data(10 * PL as usize + 3 * BLOCK_SIZE as usize / 2, 3), data(3 * BLOCK_SIZE as usize - 9, 4)];
        let (layout, full) = layout(&files);
        let trees = file_trees(&layout);
        for (f, file) in files.iter().enumerate() {
            let t = &trees[&full[f].root()];
            let (n, top) = (full[f].num_blocks(), full[f].height());
            let per_piece = t.piece_leaves;
            for piece in 0..t.num_pieces {
                let start = (piece * PL) as usize;
                let blocks = blocks_of(&file[start..(start + PL as usize).min(file.len())]);
                for length in [1, 2, per_piece] {
                    let index = piece * per_piece + if length == per_piece { 0 } else { length };
                    let req = HashRequest { base_layer: 0, index, length, proof_layers: top - 1 };
                    if req.check(n).is_err() {
                        continue;
                    }
                    assert_eq!(t.plan(&req), Ok(Plan::NeedPiece(t.first_piece + piece)), "{req:?}");
                    let hashes = t.answer_with_blocks(&req, &blocks).expect("answer");
                    assert_eq!(hashes, full[f].hashes(&req).expect("full"), "file {f} {req:?}");
                    assert_eq!(verify_hashes(&full[f].root(), n, &req, &hashes), Ok(()));
                }
            }
        }
        // The piece subtree of a short last piece pads with zero leaves.
        let t = &trees[&full[0].root()];
        let last = blocks_of(&files[0][10 * PL as usize..]);
        assert_eq!(last.len(), 2);
        assert_eq!(merkle_root(&last, 4), layout.v2_pieces().expect("v2")[10].root);
        let req = HashRequest { base_layer: 0, index: 40, length: 4, proof_layers: 0 };
        assert_eq!(t.answer_with_blocks(&req, &last).map(|h| h[3]), Ok([0; 32]));
    }

    #[test]
    fn hash_requests_beyond_a_peers_token_bucket_are_rejected_and_counted() {
        use std::time::{Duration, Instant};

        use mycel_peer_wire::{truncate_v2_info_hash, Bitfield, FrameDecoder, Handshake, Reserved};

        let files = [data(37 * PL as usize, 5)];
        let (layout, full) = layout(&files);
        let n = layout.piece_count();
        let cfg = crate::Config { hash_request_burst: 3, hash_requests_per_sec: 2, ..crate::Config::default() };
        #[allow(clippy::disallowed_methods)] // test origin
        let t0 = Instant::now();
        let mut s = Swarm::new(cfg, layout, [1; 20], [0; 32], t0, Bitfield::full(n)).expect("swarm");
        let key = PeerKey(1);
        s.handle_peer_connected(t0, key, "10.0.0.1:6881".parse().expect("addr"), false);
        let hs = Handshake {
            reserved: Reserved::NONE.with_fast_extension(true),
            info_hash: truncate_v2_info_hash(&[7; 32]),
            peer_id: [9; 20],
        };
        s.handle_peer_bytes(t0, key, &hs.to_bytes());
        let mut rx = FrameDecoder::new(1 << 20);
        while let Some(t) = s.poll_transmit() {
            rx.extend(&t.data);
        }
        assert!(rx.handshake().expect("handshake").is_some());
        while rx.next().expect("message").is_some() {}
        let top = full[0].height();
        let ask = |s: &mut Swarm, now: Instant, count: u32| {
            let mut bytes = Vec::new();
            for i in 0..count {
                let (base_layer, index, length, proof_layers) = (2, (i % 4) * 8, 8, top - 5);
                Message::HashRequest { pieces_root: full[0].root(), base_layer, index, length, proof_layers }
                    .encode(&mut bytes);
            }
            s.handle_peer_bytes(now, key, &bytes);
        };
        let mut answers = |s: &mut Swarm| {
            let (mut served, mut rejected) = (0, 0);
            while let Some(t) = s.poll_transmit() {
                rx.extend(&t.data);
            }
            while let Some(m) = rx.next().expect("message") {
                match m {
                    Message::Hashes { .. } => served += 1,
                    Message::HashReject { .. } => rejected += 1,
                    other => panic!("{other:?}"),
                }
            }
            (served, rejected)
        };
        // A burst of 3, then 2 a second.
        ask(&mut s, t0, 5);
        assert_eq!(answers(&mut s), (3, 2));
        ask(&mut s, t0 + Duration::from_millis(1500), 4);
        assert_eq!(answers(&mut s), (3, 1));
        ask(&mut s, t0 + Duration::from_secs(60), 5);
        assert_eq!(answers(&mut s), (3, 2), "never more than the burst");
        let st = s.stats();
        assert_eq!((st.hash_requests_served, st.hash_requests_limited), (9, 5));
    }
}
