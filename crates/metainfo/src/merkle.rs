//! BEP 52 merkle trees: SHA-256 over 16 KiB blocks, one tree per file.
//!
//! The leaves are the SHA-256 of each 16 KiB block of a file (the last block may be
//! shorter). The leaf layer is padded to a power of two with **zero hashes** (32 zero
//! bytes), and every inner node is `SHA-256(left || right)`. A node above padding is
//! therefore the root of a subtree of zero leaves: [`pad_hash(h)`](pad_hash) for height `h`.
//! That is why the padding entries of the *piece layer* are not zero but `pad_hash` of the
//! piece's height (BEP 52's "hashes of zero-filled piece-sized subtrees": zero-filled
//! *leaves*, not hashes of zero *data*).
//!
//! Positions are `(height, index)`: height 0 is the leaf layer, the root is at
//! [`tree_height`]`(num_blocks)`, and a layer at height `h` is `2^(H - h)` nodes wide, of
//! which `ceil(num_blocks / 2^h)` cover data.
//!
//! BEP 52 `hash request` / `hashes` messages name a base layer, an index, a length and a
//! number of proof layers; [`HashRequest`] validates one, [`MerkleTree::hashes`] answers it
//! and [`verify_hashes`] checks an answer.

use sha2::{Digest, Sha256};

use crate::ProofError;

/// Size of a merkle leaf block: 16 KiB.
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// The largest `length` of a hash request we answer or verify (libtorrent's limit too:
/// a whole 128 MiB piece of block hashes).
pub const MAX_HASH_REQUEST: u32 = 8192;

/// SHA-256 of one block of data (a leaf hash).
pub fn block_hash(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// An inner node: `SHA-256(left || right)`.
pub fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of a subtree of `2^height` zero leaves (height 0: 32 zero bytes).
pub fn pad_hash(height: u32) -> [u8; 32] {
    let mut h = [0u8; 32];
    for _ in 0..height {
        h = hash_pair(&h, &h);
    }
    h
}

/// Number of 16 KiB blocks in `length` bytes.
pub fn num_blocks(length: u64) -> u64 {
    length.div_ceil(u64::from(BLOCK_SIZE))
}

/// Height of the tree over `num_leaves` leaves: `ceil(log2(num_leaves))`, 0 for one leaf.
pub fn tree_height(num_leaves: u64) -> u32 {
    num_leaves.max(1).next_power_of_two().trailing_zeros()
}

/// The root of a layer of `nodes` at some height, padded to `width` nodes (a power of two,
/// at least `nodes.len()`) with `pad` (the pad hash of that height).
///
/// With `pad = pad_hash(piece height)` this turns a file's piece layer into its
/// `pieces root`; with `pad = [0; 32]` it turns block hashes into a subtree root.
pub fn root_from_layer(nodes: &[[u8; 32]], pad: [u8; 32], width: u64) -> [u8; 32] {
    debug_assert!(width.is_power_of_two() && width >= nodes.len() as u64);
    if nodes.is_empty() {
        let mut p = pad;
        for _ in 0..width.trailing_zeros() {
            p = hash_pair(&p, &p);
        }
        return p;
    }
    let mut layer = nodes.to_vec();
    let mut pad = pad;
    let mut width = width;
    while width > 1 {
        layer = next_layer(&layer, &pad);
        pad = hash_pair(&pad, &pad);
        width /= 2;
    }
    layer[0]
}

/// The parents of `layer`, pairing a last odd node with `pad`.
fn next_layer(layer: &[[u8; 32]], pad: &[u8; 32]) -> Vec<[u8; 32]> {
    layer.chunks(2).map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(pad))).collect()
}

/// A file's merkle tree, holding every real node from a base layer up to the root.
///
/// Built from the block hashes (base height 0: can answer any request) or from the piece
/// layer of a .torrent (base height `log2(piece length / 16 KiB)`: can answer requests for
/// the piece layer and above, which is what a seeder without block hashes can serve).
/// Padding nodes are not stored; they are `pad_hash` of their height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    /// `layers[0]` sits at `base_height`; the last layer is `[root]`.
    layers: Vec<Vec<[u8; 32]>>,
    base_height: u32,
    num_blocks: u64,
}

/// A BEP 52 `hash request` (and the header of `hashes` / `hash reject`), without the
/// `pieces root` that names the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashRequest {
    /// Height of the requested hashes (0: block hashes).
    pub base_layer: u32,
    /// Index of the first requested hash in the base layer; a multiple of `length`.
    pub index: u32,
    /// Number of base-layer hashes: a power of two (BEP 52 says at least 2; libtorrent asks
    /// for 1 at the tail of a file of `512·k + 1` pieces, so 1 is accepted too).
    pub length: u32,
    /// Number of ancestor layers whose uncle hashes are wanted (the first
    /// `log2(length) - 1` of them are implied by the base hashes and not sent).
    pub proof_layers: u32,
}

impl MerkleTree {
    /// The tree over the given block hashes (at least one).
    pub fn from_block_hashes(leaves: Vec<[u8; 32]>) -> Self {
        assert!(!leaves.is_empty(), "a merkle tree needs at least one block");
        let num_blocks = leaves.len() as u64;
        Self::build(leaves, 0, num_blocks)
    }

    /// The tree of a file's contents (at least one byte).
    pub fn from_data(data: &[u8]) -> Self {
        assert!(!data.is_empty(), "a merkle tree needs at least one byte");
        Self::from_block_hashes(data.chunks(BLOCK_SIZE as usize).map(block_hash).collect())
    }

    /// The tree above a file's piece layer, checked against nothing (compare
    /// [`root`](Self::root) with the expected `pieces root`).
    ///
    /// `piece_length` must be a power of two ≥ 16 KiB and `layer` must hold
    /// `ceil(file_length / piece_length)` hashes; a file of at most one piece has the
    /// root as its only "piece hash". `None` when the shapes do not fit.
    pub fn from_piece_layer(layer: Vec<[u8; 32]>, piece_length: u32, file_length: u64) -> Option<Self> {
        if !piece_length.is_power_of_two() || piece_length < BLOCK_SIZE || file_length == 0 {
            return None;
        }
        if layer.len() as u64 != file_length.div_ceil(u64::from(piece_length)) {
            return None;
        }
        let blocks = num_blocks(file_length);
        let base = piece_height(piece_length).min(tree_height(blocks));
        Some(Self::build(layer, base, blocks))
    }

    fn build(base: Vec<[u8; 32]>, base_height: u32, num_blocks: u64) -> Self {
        let top = tree_height(num_blocks);
        let mut layers = vec![base];
        let mut pad = pad_hash(base_height);
        for _ in base_height..top {
            let next = next_layer(layers.last().expect("at least the base layer"), &pad);
            layers.push(next);
            pad = hash_pair(&pad, &pad);
        }
        MerkleTree { layers, base_height, num_blocks }
    }

    /// The root hash (a file's `pieces root`).
    pub fn root(&self) -> [u8; 32] {
        self.layers.last().and_then(|l| l.first()).copied().expect("the top layer holds the root")
    }

    /// Height of the root: `ceil(log2(num_blocks))`.
    pub fn height(&self) -> u32 {
        tree_height(self.num_blocks)
    }

    /// Number of 16 KiB blocks of the file.
    pub fn num_blocks(&self) -> u64 {
        self.num_blocks
    }

    /// Height of the lowest stored layer (0 when built from block hashes).
    pub fn base_height(&self) -> u32 {
        self.base_height
    }

    /// The node at `(height, index)`, padding included; `None` below the stored base or
    /// outside the tree.
    pub fn node(&self, height: u32, index: u64) -> Option<[u8; 32]> {
        let top = self.height();
        if height < self.base_height || height > top || index >= 1u64 << (top - height) {
            return None;
        }
        let layer = &self.layers[(height - self.base_height) as usize];
        Some(usize::try_from(index).ok().and_then(|i| layer.get(i)).copied().unwrap_or_else(|| pad_hash(height)))
    }

    /// The stored nodes at `height` that cover data (no padding).
    pub fn layer(&self, height: u32) -> Option<&[[u8; 32]]> {
        let i = height.checked_sub(self.base_height)?;
        self.layers.get(i as usize).map(Vec::as_slice)
    }

    /// The file's piece layer: one hash per piece of `piece_length` bytes, padding left
    /// out (the form of a `piece layers` entry). A file of at most one piece gives
    /// `[root]`. `None` if the tree does not reach down to that layer.
    pub fn piece_layer(&self, piece_length: u32) -> Option<Vec<[u8; 32]>> {
        if !piece_length.is_power_of_two() || piece_length < BLOCK_SIZE {
            return None;
        }
        let h = piece_height(piece_length).min(self.height());
        self.layer(h).map(<[_]>::to_vec)
    }

    /// The uncle hashes proving the node at `(height, index)`: its sibling, then its
    /// parent's sibling, up to (not including) the root.
    pub fn proof(&self, height: u32, index: u64) -> Option<Vec<[u8; 32]>> {
        self.node(height, index)?;
        (height..self.height()).map(|h| self.node(h, (index >> (h - height)) ^ 1)).collect()
    }

    /// The answer to a hash request: `length` hashes of the base layer, then the uncle
    /// hashes of the proof layers that are not implied by them.
    pub fn hashes(&self, req: &HashRequest) -> Result<Vec<[u8; 32]>, ProofError> {
        if req.base_layer < self.base_height {
            return Err(ProofError::OutOfRange);
        }
        req.answer(self.num_blocks, |h, i| self.node(h, i))
    }
}

impl HashRequest {
    /// Checks the request against a file of `num_blocks` blocks: `length` a power of two
    /// in `1..=MAX_HASH_REQUEST`, `index` a multiple of it, the range inside the base
    /// layer, the base layer below the root and the proof not past the root's children.
    pub fn check(&self, num_blocks: u64) -> Result<(), ProofError> {
        let len = self.length;
        if !len.is_power_of_two() || len > MAX_HASH_REQUEST || self.index & (len - 1) != 0 {
            return Err(ProofError::BadShape);
        }
        let top = tree_height(num_blocks);
        if self.base_layer >= top {
            return Err(ProofError::OutOfRange);
        }
        let width = 1u64 << (top - self.base_layer);
        if u64::from(self.index) + u64::from(len) > width || self.proof_layers >= top - self.base_layer {
            return Err(ProofError::OutOfRange);
        }
        Ok(())
    }

    /// The answer to this request in a file of `num_blocks` blocks, reading the tree's
    /// nodes (padding included) through `node(height, index)`: the `length` base hashes,
    /// then one uncle per proof layer above the requested subtree, lowest first (BEP 52:
    /// "hashes starts with the base layer and ends with the uncle hash closest to the
    /// root"). `OutOfRange` when `node` cannot give a needed node.
    pub fn answer(
        &self,
        num_blocks: u64,
        node: impl Fn(u32, u64) -> Option<[u8; 32]>,
    ) -> Result<Vec<[u8; 32]>, ProofError> {
        self.check(num_blocks)?;
        let mut out = Vec::with_capacity(self.answer_len());
        for i in 0..u64::from(self.length) {
            out.push(node(self.base_layer, u64::from(self.index) + i).ok_or(ProofError::OutOfRange)?);
        }
        for h in self.uncle_heights() {
            let ancestor = u64::from(self.index) >> (h - self.base_layer);
            out.push(node(h, ancestor ^ 1).ok_or(ProofError::OutOfRange)?);
        }
        Ok(out)
    }

    /// Heights of the uncle hashes in the answer: from the top of the requested subtree
    /// (`base + log2(length)`) to `base + proof_layers`.
    fn uncle_heights(&self) -> std::ops::RangeInclusive<u32> {
        let first = self.base_layer + self.length.trailing_zeros();
        first..=self.base_layer + self.proof_layers
    }

    /// The number of hashes a `hashes` message answering this request carries.
    pub fn answer_len(&self) -> usize {
        self.length as usize + self.uncle_heights().count()
    }
}

/// The node a `hashes` answer proves: `(height, index, hash)`, computed from the base
/// hashes and the uncles. Compare it with a known node (the root when the proof reaches
/// it, or a verified piece-layer hash).
pub fn fold_hashes(
    num_blocks: u64,
    req: &HashRequest,
    hashes: &[[u8; 32]],
) -> Result<(u32, u64, [u8; 32]), ProofError> {
    req.check(num_blocks)?;
    let expected = req.answer_len();
    if hashes.len() != expected {
        return Err(ProofError::WrongCount { expected, got: hashes.len() });
    }
    let (base, uncles) = hashes.split_at(req.length as usize);
    let k = req.length.trailing_zeros();
    let mut node = root_from_layer(base, [0; 32], u64::from(req.length));
    let mut height = req.base_layer + k;
    let mut index = u64::from(req.index) >> k;
    for uncle in uncles {
        node = if index & 1 == 0 { hash_pair(&node, uncle) } else { hash_pair(uncle, &node) };
        index >>= 1;
        height += 1;
    }
    Ok((height, index, node))
}

/// Checks a `hashes` answer whose proof reaches the root of a file of `num_blocks` blocks.
pub fn verify_hashes(
    root: &[u8; 32],
    num_blocks: u64,
    req: &HashRequest,
    hashes: &[[u8; 32]],
) -> Result<(), ProofError> {
    let (height, _, node) = fold_hashes(num_blocks, req, hashes)?;
    if height == tree_height(num_blocks) && &node == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// Checks one block hash against a file's root with its uncle hashes (sibling first, as
/// [`MerkleTree::proof`] gives them). The proof must have exactly
/// [`tree_height`]`(num_blocks)` entries.
pub fn verify_block(
    root: &[u8; 32],
    num_blocks: u64,
    block_index: u64,
    block_hash: &[u8; 32],
    proof: &[[u8; 32]],
) -> bool {
    verify_node(root, tree_height(num_blocks), 0, block_index, block_hash, proof)
}

/// Checks the node at `(height, index)` against `root` (at `root_height`) with its uncles.
pub fn verify_node(
    root: &[u8; 32],
    root_height: u32,
    height: u32,
    index: u64,
    hash: &[u8; 32],
    proof: &[[u8; 32]],
) -> bool {
    if height > root_height || proof.len() != (root_height - height) as usize || index >> (root_height - height) != 0 {
        return false;
    }
    let mut node = *hash;
    let mut index = index;
    for uncle in proof {
        node = if index & 1 == 0 { hash_pair(&node, uncle) } else { hash_pair(uncle, &node) };
        index >>= 1;
    }
    &node == root
}

/// Height of the piece layer for `piece_length` (a power of two ≥ 16 KiB): log2(blocks
/// per piece).
pub fn piece_height(piece_length: u32) -> u32 {
    (piece_length / BLOCK_SIZE).max(1).trailing_zeros()
}

/// The hash of one piece of a v2 file, from its block hashes: the root of the piece's
/// subtree, padded with zero leaves to `blocks_per_piece`, or — for a file of at most one
/// piece — to the next power of two of its block count (that hash is then the file's
/// `pieces root`).
pub fn piece_root(block_hashes: &[[u8; 32]], piece_length: u32, file_length: u64) -> [u8; 32] {
    let per_piece = u64::from((piece_length / BLOCK_SIZE).max(1));
    let width = if file_length <= u64::from(piece_length) {
        num_blocks(file_length).max(1).next_power_of_two()
    } else {
        per_piece
    };
    root_from_layer(block_hashes, [0; 32], width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// A straightforward reference: pad leaves with zeros to a power of two, fold.
    fn naive_root(leaves: &[[u8; 32]]) -> [u8; 32] {
        let mut layer = leaves.to_vec();
        layer.resize(leaves.len().next_power_of_two(), [0; 32]);
        while layer.len() > 1 {
            layer = layer.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        }
        layer[0]
    }

    #[test]
    fn single_block_root_is_its_hash() {
        let d = data(1000);
        let t = MerkleTree::from_data(&d);
        assert_eq!(t.root(), block_hash(&d));
        assert_eq!((t.height(), t.num_blocks()), (0, 1));
        assert_eq!(t.proof(0, 0), Some(vec![]));
        assert!(verify_block(&t.root(), 1, 0, &block_hash(&d), &[]));
    }

    #[test]
    fn roots_match_naive_for_many_sizes() {
        for blocks in 1..=33u64 {
            let leaves: Vec<[u8; 32]> = (0..blocks).map(|i| block_hash(&i.to_le_bytes())).collect();
            let t = MerkleTree::from_block_hashes(leaves.clone());
            assert_eq!(t.root(), naive_root(&leaves), "{blocks} blocks");
            assert_eq!(t.height(), tree_height(blocks));
            let width = blocks.next_power_of_two();
            assert_eq!(root_from_layer(&leaves, [0; 32], width), t.root());
        }
    }

    #[test]
    fn pad_hash_is_root_of_zero_leaves() {
        assert_eq!(pad_hash(0), [0; 32]);
        assert_eq!(pad_hash(3), naive_root(&[[0; 32]; 8]));
        assert_eq!(root_from_layer(&[], [0; 32], 8), pad_hash(3));
    }

    #[test]
    fn piece_layer_padding_uses_subtree_pad_hashes() {
        // 5 blocks, 2 blocks per piece (32 KiB): piece layer = 3 hashes, width 4.
        let d = data(5 * BLOCK_SIZE as usize - 100);
        let full = MerkleTree::from_data(&d);
        let layer = full.piece_layer(32 * 1024).expect("layer");
        assert_eq!(layer.len(), 3);
        // The padding node of the piece layer is the root of two zero leaves, not zero.
        assert_eq!(full.node(1, 3), Some(pad_hash(1)));
        assert_ne!(pad_hash(1), [0; 32]);
        assert_eq!(root_from_layer(&layer, pad_hash(1), 4), full.root());
        let from_layer = MerkleTree::from_piece_layer(layer.clone(), 32 * 1024, d.len() as u64).expect("fits");
        assert_eq!(from_layer.root(), full.root());
        assert_eq!(from_layer.base_height(), 1);
        // The last piece has one real block: its hash pads with a zero leaf.
        let blocks: Vec<_> = d.chunks(BLOCK_SIZE as usize).map(block_hash).collect();
        assert_eq!(piece_root(&blocks[4..], 32 * 1024, d.len() as u64), layer[2]);
        assert_eq!(MerkleTree::from_piece_layer(layer, 32 * 1024, 1), None);
    }

    #[test]
    fn small_file_piece_layer_is_root() {
        // 3 blocks in a 64 KiB piece: the root pads to 4 leaves, not to 4 per piece... the same
        // here; with 128 KiB pieces it must still be 4 leaves, not 8.
        let d = data(3 * BLOCK_SIZE as usize);
        let t = MerkleTree::from_data(&d);
        assert_eq!(t.piece_layer(128 * 1024), Some(vec![t.root()]));
        let blocks: Vec<_> = d.chunks(BLOCK_SIZE as usize).map(block_hash).collect();
        assert_eq!(piece_root(&blocks, 128 * 1024, d.len() as u64), t.root());
        let from_layer = MerkleTree::from_piece_layer(vec![t.root()], 128 * 1024, d.len() as u64).expect("fits");
        assert_eq!(from_layer.root(), t.root());
    }

    #[test]
    fn block_proofs_verify_and_reject_tampering() {
        let d = data(11 * BLOCK_SIZE as usize + 5);
        let t = MerkleTree::from_data(&d);
        let n = t.num_blocks();
        for (i, block) in d.chunks(BLOCK_SIZE as usize).enumerate() {
            let i = i as u64;
            let proof = t.proof(0, i).expect("proof");
            assert_eq!(proof.len(), t.height() as usize);
            let h = block_hash(block);
            assert!(verify_block(&t.root(), n, i, &h, &proof));
            assert!(!verify_block(&t.root(), n, i ^ 1, &h, &proof));
            assert!(!verify_block(&t.root(), n, i, &block_hash(b"x"), &proof));
            assert!(!verify_block(&t.root(), n, i, &h, &proof[1..]));
        }
        assert!(!verify_block(&t.root(), n, 16, &[0; 32], &t.proof(0, 0).expect("proof")));
        assert_eq!(t.proof(0, 16), None);
    }

    #[test]
    fn hash_requests_round_trip() {
        let d = data(37 * BLOCK_SIZE as usize);
        let t = MerkleTree::from_data(&d);
        let n = t.num_blocks(); // height 6, 64 leaves
        assert_eq!(t.height(), 6);
        for base in 0..5 {
            for k in 1..=(5 - base) {
                let len = 1u32 << k;
                for proof_layers in 0..(6 - base) {
                    let req = HashRequest { base_layer: base, index: len, length: len, proof_layers };
                    if req.check(n).is_err() {
                        continue;
                    }
                    let hashes = t.hashes(&req).expect("answer");
                    assert_eq!(hashes.len(), req.answer_len());
                    let (h, i, node) = fold_hashes(n, &req, &hashes).expect("fold");
                    assert_eq!(Some(node), t.node(h, i), "{req:?}");
                    if proof_layers == 5 - base {
                        assert_eq!(verify_hashes(&t.root(), n, &req, &hashes), Ok(()));
                    }
                    let mut bad = hashes.clone();
                    bad[0][0] ^= 1;
                    assert_ne!(fold_hashes(n, &req, &bad).map(|x| x.2), Ok(node));
                }
            }
        }
    }

    #[test]
    fn hash_request_shape_checks() {
        let ok = HashRequest { base_layer: 0, index: 4, length: 4, proof_layers: 5 };
        assert_eq!(ok.check(64), Ok(()));
        assert_eq!(ok.answer_len(), 4 + 4);
        assert_eq!(HashRequest { length: 3, ..ok }.check(64), Err(ProofError::BadShape));
        assert_eq!(HashRequest { length: 0, index: 0, ..ok }.check(64), Err(ProofError::BadShape));
        // libtorrent's single-hash tail request: one base hash, then every proof layer.
        let one = HashRequest { base_layer: 0, index: 5, length: 1, proof_layers: 5 };
        assert_eq!((one.check(64), one.answer_len()), (Ok(()), 7));
        assert_eq!(HashRequest { index: 2, ..ok }.check(64), Err(ProofError::BadShape));
        assert_eq!(HashRequest { index: 64, ..ok }.check(64), Err(ProofError::OutOfRange));
        assert_eq!(HashRequest { proof_layers: 6, ..ok }.check(64), Err(ProofError::OutOfRange));
        assert_eq!(
            HashRequest { base_layer: 6, index: 0, length: 2, proof_layers: 0 }.check(64),
            Err(ProofError::OutOfRange)
        );
        let t = MerkleTree::from_data(&data(64 * BLOCK_SIZE as usize));
        let answer = t.hashes(&ok).expect("answer");
        assert_eq!(fold_hashes(64, &ok, &answer[1..]), Err(ProofError::WrongCount { expected: 8, got: 7 }));
        assert_eq!(verify_hashes(&[1; 32], 64, &ok, &answer), Err(ProofError::Mismatch));
        // A tree built from the piece layer cannot answer for blocks.
        let pl = MerkleTree::from_piece_layer(t.piece_layer(64 * 1024).expect("layer"), 64 * 1024, 64 * 16384)
            .expect("fits");
        assert_eq!(pl.hashes(&ok), Err(ProofError::OutOfRange));
        let piece_req = HashRequest { base_layer: 2, index: 0, length: 16, proof_layers: 3 };
        assert_eq!(pl.hashes(&piece_req), t.hashes(&piece_req));
    }
}
