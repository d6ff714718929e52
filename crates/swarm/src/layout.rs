//! [`Layout`]: the torrent as the engine sees it — identity, piece sizes, 16 KiB blocks and
//! how pieces are verified.
//!
//! The lead builds a `Layout` from a parsed metainfo (`mycel-metainfo`); this crate does not
//! depend on it. Everything here is validated at construction, so the engine never re-checks
//! piece counts or hash list lengths.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Size of a block, the unit of `request` and `piece` messages and of v2 merkle leaves.
pub const BLOCK_LEN: u32 = 16 * 1024;

/// The info-hashes a torrent is known by: SHA-1 (v1), SHA-256 (v2), or both (hybrid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InfoHashes {
    /// SHA-1 of the info dictionary, for v1 and hybrid torrents.
    pub v1: Option<[u8; 20]>,
    /// SHA-256 of the info dictionary, for v2 and hybrid torrents.
    pub v2: Option<[u8; 32]>,
}

impl InfoHashes {
    /// The 20 bytes our handshakes carry: the v1 hash if there is one, otherwise the
    /// truncated v2 hash (BEP 52).
    pub fn handshake_hash(&self) -> [u8; 20] {
        match (self.v1, self.v2) {
            (Some(h), _) => h,
            (None, Some(h2)) => mycel_peer_wire::truncate_v2_info_hash(&h2),
            (None, None) => [0; 20],
        }
    }

    /// Whether a handshake's info-hash names this torrent (either hash of a hybrid).
    pub fn matches(&self, handshake_hash: &[u8; 20]) -> bool {
        self.v1.as_ref() == Some(handshake_hash)
            || self.v2.is_some_and(|h| &mycel_peer_wire::truncate_v2_info_hash(&h) == handshake_hash)
    }
}

/// v2 (BEP 52) verification data for one piece.
///
/// `root` is the root of the merkle subtree that covers the piece: the piece-layer hash for
/// a piece of a file larger than one piece, or the file's `pieces root` for a file of at
/// most one piece. The subtree has `leaves` leaves (a power of two); leaf `i` is the
/// SHA-256 of the piece's block `i` among its first `data_len` bytes, and leaves past those
/// blocks are 32 zero bytes (BEP 52: "leaf hashes beyond the end of the file ... are set to
/// zero").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Piece {
    /// Expected root of the piece's subtree.
    pub root: [u8; 32],
    /// Width of the subtree: `piece length / 16 KiB` for a piece-layer hash, the next power
    /// of two of the file's block count for a small file.
    pub leaves: u32,
    /// Bytes of the piece that belong to the file (the rest, in a hybrid torrent, is pad).
    pub data_len: u32,
    /// The file's `pieces root` (names the file in BEP 52 hash requests).
    pub file_root: [u8; 32],
    /// Index of the piece's first block in the file's leaf layer.
    pub leaf_index: u32,
}

/// Which hashes of a hybrid torrent are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trust {
    /// Check both the SHA-1 piece hash and the v2 merkle root (the default).
    #[default]
    Both,
    /// Check the SHA-1 piece hashes only.
    V1Only,
    /// Check the v2 merkle roots only.
    V2Only,
}

/// How pieces are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// BEP 3: one SHA-1 per piece.
    V1 {
        /// SHA-1 of every piece, in order.
        hashes: Vec<[u8; 20]>,
    },
    /// BEP 52: SHA-256 merkle trees of 16 KiB blocks.
    V2 {
        /// Per-piece merkle data, in order.
        pieces: Vec<V2Piece>,
    },
    /// Both, for hybrid torrents.
    Hybrid {
        /// SHA-1 of every piece.
        hashes: Vec<[u8; 20]>,
        /// Per-piece merkle data.
        pieces: Vec<V2Piece>,
        /// Which of the two to check.
        trust: Trust,
    },
}

/// Why a [`Layout`] cannot be built.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// A piece length of zero.
    #[error("piece length must be positive")]
    ZeroPieceLength,
    /// A v2 piece length that is not a power of two of at least 16 KiB.
    #[error("v2 piece length {0} is not a power of two >= 16 KiB")]
    BadV2PieceLength(u32),
    /// More pieces than a `u32` index can name.
    #[error("too many pieces")]
    TooManyPieces,
    /// The number of hashes does not match the number of pieces.
    #[error("{got} hashes for {pieces} pieces")]
    HashCount {
        /// Hashes given.
        got: usize,
        /// Pieces in the torrent.
        pieces: u32,
    },
    /// A v2 piece whose `leaves` or `data_len` do not fit the piece.
    #[error("v2 data of piece {0} does not fit the piece")]
    BadV2Piece(u32),
    /// Neither info-hash is given, or the wrong one for the version.
    #[error("missing info-hash")]
    MissingInfoHash,
}

/// The torrent as the swarm engine needs it: identity, piece sizes and verification.
///
/// Pieces are `piece_length` bytes except those listed as short: the last piece, and in a
/// v2 torrent the last piece of every file (BEP 52 aligns files to piece boundaries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    info_hashes: InfoHashes,
    piece_length: u32,
    piece_count: u32,
    total_length: u64,
    /// Pieces shorter than `piece_length`, with their length (never 0).
    short: BTreeMap<u32, u32>,
    verification: Verification,
    /// BEP 27 `private` flag of the info dictionary: peers only from the tracker, so no
    /// peer exchange.
    private: bool,
}

impl Layout {
    /// A v1 torrent of `total_length` bytes cut into pieces of `piece_length`.
    pub fn v1(
        info_hash: [u8; 20],
        total_length: u64,
        piece_length: u32,
        hashes: Vec<[u8; 20]>,
    ) -> Result<Self, LayoutError> {
        let ids = InfoHashes { v1: Some(info_hash), v2: None };
        let (count, short) = uniform(total_length, piece_length)?;
        check_count(hashes.len(), count)?;
        Ok(Layout {
            info_hashes: ids,
            piece_length,
            piece_count: count,
            total_length,
            short,
            verification: Verification::V1 { hashes },
            private: false,
        })
    }

    /// A v2 torrent whose non-empty files have the given lengths, in file-tree order, with
    /// the merkle data of every piece (see [`V2Piece`]; `data_len` must be the piece's length).
    pub fn v2(
        info_hash: [u8; 32],
        piece_length: u32,
        files: &[u64],
        pieces: Vec<V2Piece>,
    ) -> Result<Self, LayoutError> {
        if piece_length < BLOCK_LEN || !piece_length.is_power_of_two() {
            return Err(LayoutError::BadV2PieceLength(piece_length));
        }
        let mut count: u64 = 0;
        let mut short = BTreeMap::new();
        let mut total = 0u64;
        for &len in files.iter().filter(|&&l| l > 0) {
            count += len.div_ceil(u64::from(piece_length));
            total += len;
            let rem = (len % u64::from(piece_length)) as u32;
            if rem != 0 {
                short.insert((count - 1).try_into().map_err(|_| LayoutError::TooManyPieces)?, rem);
            }
        }
        let count = u32::try_from(count).map_err(|_| LayoutError::TooManyPieces)?;
        check_count(pieces.len(), count)?;
        let ids = InfoHashes { v1: None, v2: Some(info_hash) };
        let layout = Layout {
            info_hashes: ids,
            piece_length,
            piece_count: count,
            total_length: total,
            short,
            verification: Verification::V2 { pieces },
            private: false,
        };
        layout.check_v2()?;
        Ok(layout)
    }

    /// A hybrid torrent: the v1 view (pad files included, so only the last piece is short)
    /// with both kinds of hashes; `pieces[i].data_len` is the file data in piece `i`.
    pub fn hybrid(
        info_hashes: InfoHashes,
        total_length: u64,
        piece_length: u32,
        hashes: Vec<[u8; 20]>,
        pieces: Vec<V2Piece>,
        trust: Trust,
    ) -> Result<Self, LayoutError> {
        if info_hashes.v1.is_none() || info_hashes.v2.is_none() {
            return Err(LayoutError::MissingInfoHash);
        }
        if piece_length < BLOCK_LEN || !piece_length.is_power_of_two() {
            return Err(LayoutError::BadV2PieceLength(piece_length));
        }
        let (count, short) = uniform(total_length, piece_length)?;
        check_count(hashes.len(), count)?;
        check_count(pieces.len(), count)?;
        let verification = Verification::Hybrid { hashes, pieces, trust };
        let layout =
            Layout { info_hashes, piece_length, piece_count: count, total_length, short, verification, private: false };
        layout.check_v2()?;
        Ok(layout)
    }

    fn check_v2(&self) -> Result<(), LayoutError> {
        let Some(pieces) = self.v2_pieces() else { return Ok(()) };
        for (i, p) in (0u32..).zip(pieces) {
            let len = self.piece_len(i);
            let pure_v2 = matches!(self.verification, Verification::V2 { .. });
            let blocks = p.data_len.div_ceil(BLOCK_LEN);
            let ok = p.leaves.is_power_of_two()
                && p.data_len <= len
                && (!pure_v2 || p.data_len == len)
                && blocks <= p.leaves
                && p.leaves <= self.piece_length / BLOCK_LEN;
            if !ok {
                return Err(LayoutError::BadV2Piece(i));
            }
        }
        Ok(())
    }

    /// The same layout for a torrent whose info dictionary sets `private` (BEP 27): the
    /// engine then neither sends nor accepts peer exchange (BEP 11).
    pub fn with_private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// Whether the torrent is private (BEP 27).
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The info-hashes.
    pub fn info_hashes(&self) -> &InfoHashes {
        &self.info_hashes
    }

    /// The nominal piece length.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Total bytes of all pieces.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Length of the last piece (0 for an empty torrent).
    pub fn last_piece_len(&self) -> u32 {
        self.piece_count.checked_sub(1).map_or(0, |last| self.piece_len(last))
    }

    /// Length of piece `piece` (0 if there is no such piece).
    pub fn piece_len(&self, piece: u32) -> u32 {
        if piece >= self.piece_count {
            return 0;
        }
        self.short.get(&piece).copied().unwrap_or(self.piece_length)
    }

    /// Number of 16 KiB blocks in piece `piece` (the last one may be shorter).
    pub fn blocks_in_piece(&self, piece: u32) -> u32 {
        self.piece_len(piece).div_ceil(BLOCK_LEN)
    }

    /// Offset and length of block `block` of piece `piece`.
    pub fn block_span(&self, piece: u32, block: u32) -> (u32, u32) {
        let begin = block * BLOCK_LEN;
        (begin, BLOCK_LEN.min(self.piece_len(piece).saturating_sub(begin)))
    }

    /// The block a `(begin, length)` pair names, if it is exactly one of piece `piece`'s blocks.
    pub fn block_at(&self, piece: u32, begin: u32, length: u32) -> Option<u32> {
        let block = begin / BLOCK_LEN;
        (piece < self.piece_count
            && begin % BLOCK_LEN == 0
            && block < self.blocks_in_piece(piece)
            && self.block_span(piece, block).1 == length)
            .then_some(block)
    }

    /// How pieces are verified.
    pub fn verification(&self) -> &Verification {
        &self.verification
    }

    /// The SHA-1 to check piece `piece` against, unless the trust setting skips v1.
    pub fn v1_hash(&self, piece: u32) -> Option<&[u8; 20]> {
        match &self.verification {
            Verification::V1 { hashes } | Verification::Hybrid { hashes, trust: Trust::Both | Trust::V1Only, .. } => {
                hashes.get(piece as usize)
            }
            _ => None,
        }
    }

    /// The merkle data to check piece `piece` against, unless the trust setting skips v2.
    pub fn v2_piece(&self, piece: u32) -> Option<&V2Piece> {
        match &self.verification {
            Verification::V2 { pieces } | Verification::Hybrid { pieces, trust: Trust::Both | Trust::V2Only, .. } => {
                pieces.get(piece as usize)
            }
            _ => None,
        }
    }

    /// The merkle data of every piece whatever the trust setting (a hybrid seeder serves
    /// BEP 52 hash requests even when it checks only SHA-1); `None` for v1.
    pub fn v2_pieces(&self) -> Option<&[V2Piece]> {
        match &self.verification {
            Verification::V2 { pieces } | Verification::Hybrid { pieces, .. } => Some(pieces),
            Verification::V1 { .. } => None,
        }
    }
}

fn uniform(total_length: u64, piece_length: u32) -> Result<(u32, BTreeMap<u32, u32>), LayoutError> {
    if piece_length == 0 {
        return Err(LayoutError::ZeroPieceLength);
    }
    let count =
        u32::try_from(total_length.div_ceil(u64::from(piece_length))).map_err(|_| LayoutError::TooManyPieces)?;
    let rem = (total_length % u64::from(piece_length)) as u32;
    let mut short = BTreeMap::new();
    if rem != 0 {
        short.insert(count - 1, rem);
    }
    Ok((count, short))
}

fn check_count(got: usize, pieces: u32) -> Result<(), LayoutError> {
    if got == pieces as usize {
        Ok(())
    } else {
        Err(LayoutError::HashCount { got, pieces })
    }
}

/// The root of a merkle tree of `width` leaves (a power of two) whose first leaves are
/// `leaves` and the rest zero hashes, as BEP 52 builds it (SHA-256 of the two children).
///
/// A tree of one leaf is that leaf.
pub fn merkle_root(leaves: &[[u8; 32]], width: u32) -> [u8; 32] {
    let width = (width.max(1) as usize).max(leaves.len()).next_power_of_two();
    let mut layer: Vec<[u8; 32]> = leaves.to_vec();
    layer.resize(width, [0; 32]);
    while layer.len() > 1 {
        layer = layer.chunks_exact(2).map(|pair| hash_pair(&pair[0], &pair[1])).collect();
    }
    layer[0]
}

/// SHA-256 of two concatenated hashes: an inner node of a BEP 52 merkle tree.
pub fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_sizes() {
        let l = Layout::v1([1; 20], 100_000, 32 * 1024, vec![[0; 20]; 4]).expect("valid");
        assert_eq!(l.piece_count(), 4);
        assert_eq!(l.piece_len(0), 32768);
        assert_eq!(l.last_piece_len(), 100_000 - 3 * 32768);
        assert_eq!(l.blocks_in_piece(3), 1);
        assert_eq!(l.block_span(3, 0), (0, 1696));
        assert_eq!(l.block_at(3, 0, 1696), Some(0));
        assert_eq!(l.block_at(3, 0, 16384), None);
        assert_eq!(l.block_at(0, 16384, 16384), Some(1));
        assert_eq!(l.block_at(0, 1, 16384), None);
        assert_eq!(l.piece_len(4), 0);
        assert!(matches!(
            Layout::v1([1; 20], 100_000, 32768, vec![]),
            Err(LayoutError::HashCount { got: 0, pieces: 4 })
        ));
        assert!(Layout::v1([1; 20], 10, 0, vec![]).is_err());
    }

    #[test]
    fn v2_files_align_to_pieces() {
        // Two files: 40000 bytes (2 pieces of 32 KiB, the second 7232) and 10 bytes (1 piece).
        let p = |len: u32, leaves| V2Piece { root: [0; 32], leaves, data_len: len, file_root: [0; 32], leaf_index: 0 };
        let pieces = vec![p(32768, 2), p(40000 - 32768, 2), p(10, 1)];
        let l = Layout::v2([2; 32], 32768, &[40000, 0, 10], pieces).expect("valid");
        assert_eq!(l.piece_count(), 3);
        assert_eq!(l.piece_len(1), 7232);
        assert_eq!(l.piece_len(2), 10);
        assert_eq!(l.total_length(), 40010);
        assert!(l.v1_hash(0).is_none());
        assert_eq!(l.v2_piece(2).map(|p| p.leaves), Some(1));
        let bad = vec![p(32768, 2), p(7232, 4), p(10, 1)];
        assert_eq!(Layout::v2([2; 32], 32768, &[40000, 10], bad), Err(LayoutError::BadV2Piece(1)));
        assert_eq!(Layout::v2([2; 32], 20000, &[1], vec![]), Err(LayoutError::BadV2PieceLength(20000)));
    }

    #[test]
    fn merkle_roots() {
        let a = [1u8; 32];
        assert_eq!(merkle_root(&[a], 1), a);
        assert_eq!(merkle_root(&[a], 2), hash_pair(&a, &[0; 32]));
        let b = [2u8; 32];
        let four = merkle_root(&[a, b, a], 4);
        assert_eq!(four, hash_pair(&hash_pair(&a, &b), &hash_pair(&a, &[0; 32])));
    }

    #[test]
    fn info_hash_matching() {
        let ids = InfoHashes { v1: Some([1; 20]), v2: Some([2; 32]) };
        assert_eq!(ids.handshake_hash(), [1; 20]);
        assert!(ids.matches(&[1; 20]));
        assert!(ids.matches(&[2; 20]));
        assert!(!ids.matches(&[3; 20]));
        let v2 = InfoHashes { v1: None, v2: Some([2; 32]) };
        assert_eq!(v2.handshake_hash(), [2; 20]);
    }
}
