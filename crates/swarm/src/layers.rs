//! The piece layers of a v2 or hybrid torrent fetched from peers (BEP 52 `hash
//! request`s), for a magnet link: the info dictionary names each file's `pieces root` but
//! not the per-piece hashes a [`Layout`](crate::Layout) needs.
//!
//! Each file larger than one piece is asked for in chunks of up to 512 piece hashes (the
//! way libtorrent asks, so any BEP 52 seeder answers): base layer = the piece layer,
//! `length` = the chunk padded to a power of two, and proof layers up to the root. An
//! answer is accepted only if it hashes up to the file's `pieces root`
//! ([`verify_hashes`]); a peer whose answer does not is reported so the caller can drop
//! it.
//!
//! A rejected or overdue chunk goes to another peer at once, and the same peer is asked
//! for it again after a back-off (2 s, doubling up to 32 s): a magnet downloader rejects
//! until it has the layers itself, then answers. [`Layers::last_progress`] says when a
//! chunk last verified, so the caller can give up when nobody supplies them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mycel_metainfo::merkle::{num_blocks, piece_height, tree_height, verify_hashes, HashRequest};
use mycel_metainfo::ProofError;
use mycel_peer_wire::Message;

use crate::PeerKey;

/// Piece hashes asked for in one request (libtorrent's chunk size).
const CHUNK: u32 = 512;
/// First wait before a peer that refused a chunk is asked for it again.
const RETRY_BASE: Duration = Duration::from_secs(2);
/// Longest wait between two asks of one chunk to one peer.
const RETRY_MAX: Duration = Duration::from_secs(32);

/// A file whose piece layer is wanted: its `pieces root` and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFile {
    /// The file's merkle root from the info dictionary.
    pub pieces_root: [u8; 32],
    /// The file's length in bytes.
    pub length: u64,
}

/// Why the piece layers of a magnet link could not be fetched.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum LayersError {
    /// No connected peer supports BEP 52 (hybrid torrents only).
    #[error("no connected peer supports BEP 52 hash requests")]
    NoV2Peer,
    /// Every connected v2 peer rejected the missing chunks (hybrid torrents only).
    #[error("every connected v2 peer rejected the piece layer requests")]
    AllRejected,
    /// No chunk verified for this long.
    #[error("no connected peer supplied the piece layers for {} s", .0.as_secs())]
    Stalled(Duration),
}

/// A chunk: (file index, chunk index).
type Chunk = (usize, u32);

#[derive(Debug)]
struct FileState {
    root: [u8; 32],
    num_blocks: u64,
    num_pieces: u32,
    layer: Vec<[u8; 32]>,
    missing: BTreeSet<u32>,
}

/// A peer that refused (rejected, let time out) a chunk: how often, and when it may be
/// asked again.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    times: u32,
    retry_at: Instant,
}

/// The state of a piece-layer fetch; see the module docs.
#[derive(Debug)]
pub(crate) struct Layers {
    piece_length: u32,
    files: Vec<FileState>,
    pending: BTreeMap<Chunk, (PeerKey, Instant)>,
    refused: BTreeMap<(Chunk, PeerKey), Refusal>,
    /// Peers whose answers did not verify: never asked again.
    liars: BTreeSet<PeerKey>,
    last_progress: Instant,
}

impl Layers {
    /// A fetch of the piece layers of `files` (files of at most one piece need none and
    /// are skipped) for a torrent of `piece_length` (a power of two ≥ 16 KiB).
    pub(crate) fn new(now: Instant, piece_length: u32, files: &[LayerFile]) -> Self {
        let pl = u64::from(piece_length);
        let files = files
            .iter()
            .filter(|f| f.length > pl)
            .map(|f| {
                let num_pieces = f.length.div_ceil(pl).min(u64::from(u32::MAX)) as u32;
                FileState {
                    root: f.pieces_root,
                    num_blocks: num_blocks(f.length),
                    num_pieces,
                    layer: vec![[0; 32]; num_pieces as usize],
                    missing: (0..num_pieces.div_ceil(CHUNK)).collect(),
                }
            })
            .collect();
        Layers {
            piece_length,
            files,
            pending: BTreeMap::new(),
            refused: BTreeMap::new(),
            liars: BTreeSet::new(),
            last_progress: now,
        }
    }

    /// Whether every layer is verified.
    pub(crate) fn is_done(&self) -> bool {
        self.files.iter().all(|f| f.missing.is_empty())
    }

    /// When the fetch started or a chunk last verified.
    pub(crate) fn last_progress(&self) -> Instant {
        self.last_progress
    }

    /// Requests outstanding to `peer`.
    pub(crate) fn pending_for(&self, peer: PeerKey) -> usize {
        self.pending.values().filter(|(k, _)| *k == peer).count()
    }

    /// Whether nothing is outstanding and every one of `peers` has refused every missing
    /// chunk at least once (so none of them offers the layers now).
    pub(crate) fn all_refused_by(&self, peers: &[PeerKey]) -> bool {
        self.pending.is_empty()
            && peers
                .iter()
                .all(|&k| self.liars.contains(&k) || self.missing().all(|ch| self.refused.contains_key(&(ch, k))))
    }

    fn missing(&self) -> impl Iterator<Item = Chunk> + '_ {
        self.files.iter().enumerate().flat_map(|(i, f)| f.missing.iter().map(move |&c| (i, c)))
    }

    /// Encoded `hash request`s for missing chunks, to `peers` with fewer than `max`
    /// outstanding, marked as asked.
    pub(crate) fn requests(&mut self, now: Instant, peers: &[PeerKey], max: usize) -> Vec<(PeerKey, Vec<u8>)> {
        let mut out = Vec::new();
        for &key in peers {
            while self.pending_for(key) < max {
                let Some((pieces_root, r)) = self.next_request(now, key) else { break };
                let (base_layer, index, length, proof_layers) = (r.base_layer, r.index, r.length, r.proof_layers);
                let mut msg = Vec::new();
                Message::HashRequest { pieces_root, base_layer, index, length, proof_layers }.encode(&mut msg);
                out.push((key, msg));
            }
        }
        out
    }

    /// The next chunk to ask `peer` for, marked as asked: `(pieces root, request)`. A
    /// chunk the peer never refused comes first; one it refused only once its back-off
    /// has passed.
    pub(crate) fn next_request(&mut self, now: Instant, peer: PeerKey) -> Option<([u8; 32], HashRequest)> {
        if self.liars.contains(&peer) {
            return None;
        }
        let free = |ch: &Chunk| !self.pending.contains_key(ch);
        let fresh = self.missing().filter(free).find(|ch| !self.refused.contains_key(&(*ch, peer)));
        let chunk = fresh.or_else(|| {
            self.missing().filter(free).find(|ch| self.refused.get(&(*ch, peer)).is_some_and(|r| r.retry_at <= now))
        })?;
        self.pending.insert(chunk, (peer, now));
        Some((self.files[chunk.0].root, self.request(chunk)))
    }

    fn request(&self, (file, chunk): Chunk) -> HashRequest {
        let f = &self.files[file];
        let base_layer = piece_height(self.piece_length);
        let index = chunk * CHUNK;
        let length = (f.num_pieces - index).next_power_of_two().clamp(2, CHUNK);
        let proof_layers = tree_height(f.num_blocks).saturating_sub(base_layer + 1);
        HashRequest { base_layer, index, length, proof_layers }
    }

    /// The chunk a message from `peer` answers, if we asked it for exactly that.
    fn asked(&self, peer: PeerKey, root: &[u8; 32], req: &HashRequest) -> Option<Chunk> {
        let (&chunk, _) = self
            .pending
            .iter()
            .find(|(&ch, &(k, _))| k == peer && self.files[ch.0].root == *root && self.request(ch) == *req)?;
        Some(chunk)
    }

    /// A `hashes` message: `Ok(true)` if it completed a chunk, `Ok(false)` if we did not
    /// ask for it (ignored), an error if it does not hash to the file's root.
    pub(crate) fn on_hashes(
        &mut self,
        now: Instant,
        peer: PeerKey,
        root: &[u8; 32],
        req: &HashRequest,
        hashes: &[u8],
    ) -> Result<bool, ProofError> {
        let Some(chunk) = self.asked(peer, root, req) else { return Ok(false) };
        self.pending.remove(&chunk);
        let hashes: Vec<[u8; 32]> =
            hashes.chunks_exact(32).map(|c| <[u8; 32]>::try_from(c).expect("chunks of 32")).collect();
        let f = &mut self.files[chunk.0];
        if let Err(e) = verify_hashes(&f.root, f.num_blocks, req, &hashes) {
            self.liars.insert(peer);
            return Err(e);
        }
        let start = req.index as usize;
        let real = (f.num_pieces as usize - start).min(req.length as usize);
        f.layer[start..start + real].copy_from_slice(&hashes[..real]);
        f.missing.remove(&chunk.1);
        self.refused.retain(|(ch, _), _| *ch != chunk);
        self.last_progress = now;
        Ok(true)
    }

    /// A `hash reject`: the chunk goes to another peer, and back to this one later.
    pub(crate) fn on_reject(&mut self, now: Instant, peer: PeerKey, root: &[u8; 32], req: &HashRequest) {
        if let Some(chunk) = self.asked(peer, root, req) {
            self.pending.remove(&chunk);
            self.refuse(now, chunk, peer);
        }
    }

    fn refuse(&mut self, now: Instant, chunk: Chunk, peer: PeerKey) {
        let r = self.refused.entry((chunk, peer)).or_insert(Refusal { times: 0, retry_at: now });
        r.times += 1;
        let wait = RETRY_BASE.saturating_mul(1 << (r.times - 1).min(8)).min(RETRY_MAX);
        r.retry_at = now + wait;
    }

    /// A peer left: its chunks are asked elsewhere.
    pub(crate) fn peer_gone(&mut self, peer: PeerKey) {
        self.pending.retain(|_, (k, _)| *k != peer);
        self.refused.retain(|(_, k), _| *k != peer);
        self.liars.remove(&peer);
    }

    /// Requests older than `timeout` are given up on, like a reject.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) {
        let late: Vec<(Chunk, PeerKey)> = self
            .pending
            .iter()
            .filter(|(_, &(_, at))| now.saturating_duration_since(at) >= timeout)
            .map(|(&ch, &(k, _))| (ch, k))
            .collect();
        for (chunk, peer) in late {
            self.pending.remove(&chunk);
            self.refuse(now, chunk, peer);
        }
    }

    /// When something is next due after `now`: the oldest request times out, or a
    /// back-off ends.
    pub(crate) fn next_timeout(&self, now: Instant, timeout: Duration) -> Option<Instant> {
        let req = self.pending.values().map(|&(_, at)| at + timeout).min();
        let retry = self.refused.values().map(|r| r.retry_at).filter(|&t| t > now).min();
        req.into_iter().chain(retry).min()
    }

    /// The verified layers, by `pieces root`.
    pub(crate) fn into_layers(self) -> BTreeMap<[u8; 32], Vec<[u8; 32]>> {
        self.files.into_iter().map(|f| (f.root, f.layer)).collect()
    }
}

#[cfg(test)]
mod tests {
    use mycel_metainfo::MerkleTree;

    use super::*;

    const PL: u32 = 32 * 1024;

    fn origin() -> Instant {
        // Test origin for virtual time.
        #[allow(clippy::disallowed_methods)]
        Instant::now()
    }

    fn file(len: usize, salt: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8 ^ salt).collect()
    }

    #[test]
    fn chunks_verify_against_the_root_and_liars_are_caught() {
        // 1100 pieces: chunks of 512, 512 and 76 (asked as 128); and a one-piece file.
        let big = file(1100 * PL as usize - 77, 1);
        let tree = MerkleTree::from_data(&big);
        let small = file(1000, 2);
        let files = [
            LayerFile { pieces_root: tree.root(), length: big.len() as u64 },
            LayerFile { pieces_root: [9; 32], length: small.len() as u64 },
        ];
        let mut l = Layers::new(origin(), PL, &files);
        let now = origin();
        let (a, b) = (PeerKey(1), PeerKey(2));
        let mut asked = Vec::new();
        while let Some((root, req)) = l.next_request(now, a) {
            assert_eq!(root, tree.root());
            asked.push(req);
        }
        assert_eq!(asked.iter().map(|r| (r.index, r.length)).collect::<Vec<_>>(), [(0, 512), (512, 512), (1024, 128)]);
        assert_eq!(l.pending_for(a), 3);
        // A wrong answer is an error and that peer is not asked for the chunk again.
        let mut bad: Vec<u8> = tree.hashes(&asked[0]).expect("answer").concat();
        bad[40] ^= 1;
        assert!(l.on_hashes(now, a, &tree.root(), &asked[0], &bad).is_err());
        assert_eq!(l.next_request(now, a), None);
        // A reject and an overdue request move the chunks on too.
        l.on_reject(now, a, &tree.root(), &asked[1]);
        l.expire(now + Duration::from_secs(30), Duration::from_secs(10));
        assert_eq!(l.pending_for(a), 0);
        for _ in 0..3 {
            let (root, req) = l.next_request(now, b).expect("b is asked");
            let answer = tree.hashes(&req).expect("answer").concat();
            assert_eq!(l.on_hashes(now, b, &root, &req, &answer), Ok(true));
            assert_eq!(l.on_hashes(now, b, &root, &req, &answer), Ok(false), "not asked twice");
        }
        assert!(l.is_done());
        let layers = l.into_layers();
        assert_eq!(layers.len(), 1, "a one-piece file needs no layer");
        assert_eq!(layers[&tree.root()], tree.piece_layer(PL).expect("layer"));
    }

    #[test]
    fn a_two_piece_file_asks_for_two_hashes() {
        let f = file(PL as usize + 1, 3);
        let tree = MerkleTree::from_data(&f);
        let mut l = Layers::new(origin(), PL, &[LayerFile { pieces_root: tree.root(), length: f.len() as u64 }]);
        let (_, req) = l.next_request(origin(), PeerKey(1)).expect("request");
        assert_eq!((req.base_layer, req.index, req.length, req.proof_layers), (1, 0, 2, 0));
        let answer = tree.hashes(&req).expect("answer").concat();
        assert_eq!(l.on_hashes(origin(), PeerKey(1), &tree.root(), &req, &answer), Ok(true));
        assert!(l.is_done());
    }

    #[test]
    fn a_refused_chunk_goes_elsewhere_then_back_after_a_back_off() {
        let f = file(3 * PL as usize, 4);
        let tree = MerkleTree::from_data(&f);
        let t0 = origin();
        let mut l = Layers::new(t0, PL, &[LayerFile { pieces_root: tree.root(), length: f.len() as u64 }]);
        let (a, b) = (PeerKey(1), PeerKey(2));
        let (root, req) = l.next_request(t0, a).expect("a is asked");
        l.on_reject(t0, a, &root, &req);
        assert!(l.all_refused_by(&[a]) && !l.all_refused_by(&[a, b]));
        assert_eq!(l.next_request(t0, a), None, "not at once");
        assert_eq!(l.next_timeout(t0, Duration::from_secs(10)), Some(t0 + RETRY_BASE));
        // Another peer is asked at once; its reject sends the chunk back to a, after 2 s.
        let (_, req_b) = l.next_request(t0, b).expect("b is asked");
        l.on_reject(t0, b, &root, &req_b);
        let t1 = t0 + RETRY_BASE;
        let (_, again) = l.next_request(t1, a).expect("a again after its back-off");
        l.on_reject(t1, a, &root, &again);
        // The second refusal doubles a's wait.
        assert_eq!(l.next_request(t1 + RETRY_BASE, a), None);
        let t2 = t1 + 2 * RETRY_BASE;
        let (_, third) = l.next_request(t2, a).expect("a after 4 s");
        assert_eq!(l.last_progress(), t0);
        let answer = tree.hashes(&third).expect("answer").concat();
        assert_eq!(l.on_hashes(t2, a, &root, &third, &answer), Ok(true));
        assert!(l.is_done());
        assert_eq!(l.last_progress(), t2);
        assert_eq!(l.next_timeout(t2, Duration::from_secs(10)), None);
    }
}
