//! The piece picker: which blocks to request from a peer next.
//!
//! Order of preference, for a peer that has some pieces we want:
//! 1. blocks of pieces already started (partial pieces are finished first), highest
//!    priority first, then the piece with the fewest free blocks;
//! 2. a new piece: in sequential mode the lowest index; while we have fewer than
//!    [`Picker::RANDOM_FIRST`] pieces a random one (a complete piece to trade quickly);
//!    otherwise the rarest by availability, ties broken at random from the seeded RNG;
//! 3. in end-game (every block we still need is requested or received), blocks already
//!    requested from other peers, fewest requesters first, up to a cap of duplicates.
//!
//! Invariants: outside end-game a block is requested from at most one peer; a piece with
//! priority 0 or one we have is never picked; a new piece (after the random first ones and
//! outside sequential mode) has the least availability among the eligible pieces of its
//! priority that the peer has.
//!
//! Cost: the pieces eligible for a new start (wanted, not had, not started) sit in buckets
//! keyed by (priority, availability), updated as those change, so choosing the rarest
//! piece looks at the first bucket holding a piece the peer has, not at every piece.
//! `is_finished` is a counter. Sequential mode and the random first pieces still scan.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use mycel_peer_wire::Bitfield;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A block: piece index and block index within the piece (block `b` starts at `b * 16 KiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockRef {
    /// Piece index.
    pub piece: u32,
    /// Block index within the piece.
    pub block: u32,
}

/// Default priority of a piece; 0 means "do not download".
pub const DEFAULT_PRIORITY: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockState {
    Free,
    /// Requested from this many peers (more than one only in end-game).
    Requested(u8),
    /// Data arrived and went to disk; waiting for the piece's hash check.
    Received,
}

#[derive(Debug, Clone)]
struct Partial {
    blocks: Vec<BlockState>,
    free: u32,
    received: u32,
}

/// What [`Picker::block_received`] made of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// First copy of the block: write it.
    New,
    /// Already received (an end-game duplicate, or a piece we have): drop it.
    Duplicate,
}

/// Chooses blocks to request; see the module docs for the order.
#[derive(Debug, Clone)]
pub struct Picker {
    blocks: Vec<u32>,
    availability: Vec<u32>,
    priority: Vec<u8>,
    have: Bitfield,
    partials: BTreeMap<u32, Partial>,
    /// Pieces wanted (priority > 0), not had and not started.
    unstarted_wanted: u32,
    /// Pieces wanted and not had.
    missing: u32,
    /// The pieces wanted, not had and not started, by (priority, availability).
    buckets: Buckets,
    sequential: bool,
    max_duplicates: u8,
    rng: ChaCha8Rng,
}

impl Picker {
    /// Pieces picked at random before rarest-first starts.
    pub const RANDOM_FIRST: u32 = 4;

    /// A picker for pieces of `blocks_per_piece[i]` blocks, with the pieces in `have`
    /// already verified. End-game requests one block from at most `max_duplicates` peers.
    pub fn new(blocks_per_piece: Vec<u32>, have: Bitfield, max_duplicates: u8, seed: [u8; 32]) -> Self {
        let n = blocks_per_piece.len();
        let mut p = Picker {
            blocks: blocks_per_piece,
            availability: vec![0; n],
            priority: vec![DEFAULT_PRIORITY; n],
            have,
            partials: BTreeMap::new(),
            unstarted_wanted: 0,
            missing: 0,
            buckets: Buckets::new(n),
            sequential: false,
            max_duplicates: max_duplicates.max(1),
            rng: ChaCha8Rng::from_seed(seed),
        };
        p.recount();
        p
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.blocks.len() as u32
    }

    /// The verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether we want piece `piece`: not had and priority above 0.
    pub fn wants(&self, piece: u32) -> bool {
        self.priority.get(piece as usize).is_some_and(|&p| p > 0) && !self.have.has(piece)
    }

    /// Whether every wanted piece is verified.
    pub fn is_finished(&self) -> bool {
        self.missing == 0
    }

    /// How many peers have piece `piece`.
    pub fn availability(&self, piece: u32) -> u32 {
        self.availability.get(piece as usize).copied().unwrap_or(0)
    }

    /// Priority of piece `piece`.
    pub fn priority(&self, piece: u32) -> u8 {
        self.priority.get(piece as usize).copied().unwrap_or(0)
    }

    /// Whether piece `piece` has been started and not finished.
    pub fn is_partial(&self, piece: u32) -> bool {
        self.partials.contains_key(&piece)
    }

    /// Whether every block we still need is requested or received: the picker then hands
    /// out duplicates.
    pub fn in_endgame(&self) -> bool {
        self.unstarted_wanted == 0 && self.partials.iter().all(|(&p, part)| part.free == 0 || !self.wants(p))
    }

    /// Sets the priority of a piece (0: skip it).
    pub fn set_priority(&mut self, piece: u32, priority: u8) {
        let before = self.wants(piece);
        let Some(p) = self.priority.get_mut(piece as usize) else { return };
        *p = priority;
        let after = self.wants(piece);
        let unstarted = !self.partials.contains_key(&piece);
        if before && !after {
            self.missing -= 1;
            self.unstarted_wanted -= u32::from(unstarted);
        } else if after && !before {
            self.missing += 1;
            self.unstarted_wanted += u32::from(unstarted);
        }
        self.refresh(piece);
    }

    /// Sequential mode: pieces in index order instead of rarest-first.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
    }

    /// A peer announced piece `piece`.
    pub fn inc_availability(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a += 1;
            self.refresh(piece);
        }
    }

    /// A peer that had piece `piece` left.
    pub fn dec_availability(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a = a.saturating_sub(1);
            self.refresh(piece);
        }
    }

    /// Picks up to `want` blocks from the pieces in `peer_has`. `outstanding` says whether
    /// this peer already has a request for a block (only relevant in end-game). The blocks
    /// are marked requested; give each back with [`cancel_request`](Self::cancel_request)
    /// if the request goes away without data.
    pub fn pick(&mut self, peer_has: &Bitfield, want: usize, outstanding: &dyn Fn(BlockRef) -> bool) -> Vec<BlockRef> {
        let mut out = Vec::new();
        if want == 0 {
            return out;
        }
        self.pick_partials(peer_has, want, &mut out);
        while out.len() < want {
            let Some(piece) = self.choose_new_piece(peer_has) else { break };
            self.start(piece);
            self.take_free(piece, want, &mut out);
        }
        if out.len() < want && self.in_endgame() {
            self.pick_endgame(peer_has, want, outstanding, &mut out);
        }
        out
    }

    fn pick_partials(&mut self, peer_has: &Bitfield, want: usize, out: &mut Vec<BlockRef>) {
        let mut order: Vec<(u32, u8, u32)> = self
            .partials
            .iter()
            .filter(|&(&p, part)| part.free > 0 && peer_has.has(p) && self.wants(p))
            .map(|(&p, part)| (p, self.priority[p as usize], part.free))
            .collect();
        if !self.sequential {
            order.sort_by_key(|&(p, prio, free)| (std::cmp::Reverse(prio), free, p));
        }
        for (piece, _, _) in order {
            if out.len() >= want {
                break;
            }
            self.take_free(piece, want, out);
        }
    }

    fn choose_new_piece(&mut self, peer_has: &Bitfield) -> Option<u32> {
        if self.sequential || self.have.count() < Self::RANDOM_FIRST {
            return self.scan_new_piece(peer_has);
        }
        // Buckets in order: highest priority, then least available. The first holding a
        // piece the peer has gives the answer, uniform among its pieces the peer has.
        let everything = peer_has.is_full();
        for pieces in self.buckets.map.values() {
            if everything {
                return Some(pieces[self.rng.gen_range(0..pieces.len())]);
            }
            let mut best = None;
            let mut ties = 0u32;
            for &p in pieces.iter().filter(|&&p| peer_has.has(p)) {
                ties += 1;
                if ties == 1 || self.rng.gen_range(0..ties) == 0 {
                    best = Some(p);
                }
            }
            if best.is_some() {
                return best;
            }
        }
        None
    }

    /// [`choose_new_piece`](Self::choose_new_piece) by a scan of every piece: sequential
    /// mode and the random first pieces.
    fn scan_new_piece(&mut self, peer_has: &Bitfield) -> Option<u32> {
        let eligible = |p: u32| !self.partials.contains_key(&p) && self.wants(p);
        let top = peer_has.iter_set().filter(|&p| eligible(p)).map(|p| self.priority[p as usize]).max()?;
        let candidates = peer_has.iter_set().filter(|&p| eligible(p) && self.priority[p as usize] == top);
        if self.sequential {
            return candidates.min();
        }
        let random = self.have.count() < Self::RANDOM_FIRST;
        // Reservoir sampling over the minimal keys: uniform among ties, one pass.
        let mut best: Option<(u32, u32)> = None;
        let mut ties = 0u32;
        let keyed: Vec<(u32, u32)> =
            candidates.map(|p| (if random { 0 } else { self.availability[p as usize] }, p)).collect();
        for (key, p) in keyed {
            match best {
                Some((k, _)) if key > k => {}
                Some((k, _)) if key == k => {
                    ties += 1;
                    if self.rng.gen_range(0..ties) == 0 {
                        best = Some((key, p));
                    }
                }
                _ => {
                    best = Some((key, p));
                    ties = 1;
                }
            }
        }
        best.map(|(_, p)| p)
    }

    fn start(&mut self, piece: u32) {
        let n = self.blocks[piece as usize];
        self.partials.insert(piece, Partial { blocks: vec![BlockState::Free; n as usize], free: n, received: 0 });
        self.unstarted_wanted = self.unstarted_wanted.saturating_sub(1);
        self.refresh(piece);
    }

    /// Puts `piece` in the bucket of its priority and availability if it is eligible for
    /// a new start, takes it out of any bucket otherwise.
    fn refresh(&mut self, piece: u32) {
        self.buckets.remove(piece);
        if self.wants(piece) && !self.partials.contains_key(&piece) {
            let i = piece as usize;
            self.buckets.insert(piece, (Reverse(self.priority[i]), self.availability[i]));
        }
    }

    fn take_free(&mut self, piece: u32, want: usize, out: &mut Vec<BlockRef>) {
        let Some(part) = self.partials.get_mut(&piece) else { return };
        for (b, state) in (0u32..).zip(part.blocks.iter_mut()) {
            if out.len() >= want {
                break;
            }
            if *state == BlockState::Free {
                *state = BlockState::Requested(1);
                part.free -= 1;
                out.push(BlockRef { piece, block: b });
            }
        }
    }

    fn pick_endgame(
        &mut self,
        peer_has: &Bitfield,
        want: usize,
        outstanding: &dyn Fn(BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        let mut cands: Vec<(u8, BlockRef)> = Vec::new();
        for (&piece, part) in &self.partials {
            if !peer_has.has(piece) || !self.wants(piece) {
                continue;
            }
            for (b, state) in (0u32..).zip(&part.blocks) {
                let r = BlockRef { piece, block: b };
                if let BlockState::Requested(n) = *state {
                    if n < self.max_duplicates && !outstanding(r) && !out.contains(&r) {
                        cands.push((n, r));
                    }
                }
            }
        }
        cands.sort();
        for (_, r) in cands.into_iter().take(want - out.len()) {
            if let Some(BlockState::Requested(n)) = self.state_mut(r) {
                *n += 1;
            }
            out.push(r);
        }
    }

    fn state_mut(&mut self, r: BlockRef) -> Option<&mut BlockState> {
        self.partials.get_mut(&r.piece)?.blocks.get_mut(r.block as usize)
    }

    /// A request for `r` is gone without data (cancelled, rejected, timed out, peer left).
    pub fn cancel_request(&mut self, r: BlockRef) {
        let Some(part) = self.partials.get_mut(&r.piece) else { return };
        if let Some(state) = part.blocks.get_mut(r.block as usize) {
            match *state {
                BlockState::Requested(1) => {
                    *state = BlockState::Free;
                    part.free += 1;
                }
                BlockState::Requested(n) => *state = BlockState::Requested(n - 1),
                BlockState::Free | BlockState::Received => {}
            }
        }
    }

    /// Data for `r` arrived from a peer we requested it from.
    pub fn block_received(&mut self, r: BlockRef) -> Received {
        if self.have.has(r.piece) || r.piece >= self.piece_count() || r.block >= self.blocks[r.piece as usize] {
            return Received::Duplicate;
        }
        if !self.partials.contains_key(&r.piece) {
            // A late answer to a request for a piece that was reset: still good data.
            self.start(r.piece);
        }
        let Some(part) = self.partials.get_mut(&r.piece) else { return Received::Duplicate };
        let state = &mut part.blocks[r.block as usize];
        match *state {
            BlockState::Received => Received::Duplicate,
            BlockState::Free | BlockState::Requested(_) => {
                if *state == BlockState::Free {
                    part.free -= 1;
                }
                *state = BlockState::Received;
                part.received += 1;
                Received::New
            }
        }
    }

    /// Whether every block of `piece` has been received (it is ready for its hash check).
    pub fn is_complete(&self, piece: u32) -> bool {
        self.partials.get(&piece).is_some_and(|p| p.received as usize == p.blocks.len())
    }

    /// Piece `piece` passed its hash check.
    pub fn piece_passed(&mut self, piece: u32) {
        let was_unstarted = !self.partials.contains_key(&piece) && self.wants(piece);
        let wanted = self.wants(piece);
        self.partials.remove(&piece);
        if self.have.set(piece).unwrap_or(false) {
            if was_unstarted {
                self.unstarted_wanted = self.unstarted_wanted.saturating_sub(1);
            }
            if wanted {
                self.missing = self.missing.saturating_sub(1);
            }
        }
        self.refresh(piece);
    }

    /// Piece `piece` failed its hash check: all its blocks are needed again.
    pub fn piece_failed(&mut self, piece: u32) {
        if self.partials.remove(&piece).is_some() && self.wants(piece) {
            self.unstarted_wanted += 1;
        }
        self.refresh(piece);
    }

    /// Some blocks of `piece` were bad (v2 pinpointed them): only those are needed again.
    pub fn blocks_failed(&mut self, piece: u32, blocks: &[u32]) {
        let Some(part) = self.partials.get_mut(&piece) else { return };
        for &b in blocks {
            if let Some(state @ BlockState::Received) = part.blocks.get_mut(b as usize) {
                *state = BlockState::Free;
                part.free += 1;
                part.received -= 1;
            }
        }
    }

    /// Number of blocks requested or received across partial pieces, and free blocks left
    /// in them (for stats and tests).
    pub fn partial_counts(&self) -> (usize, u32) {
        (self.partials.len(), self.partials.values().map(|p| p.free).sum())
    }

    fn recount(&mut self) {
        self.unstarted_wanted =
            (0..self.piece_count()).filter(|&p| self.wants(p) && !self.partials.contains_key(&p)).count() as u32;
        self.missing = (0..self.piece_count()).filter(|&p| self.wants(p)).count() as u32;
        self.buckets = Buckets::new(self.blocks.len());
        for p in 0..self.piece_count() {
            self.refresh(p);
        }
    }
}

/// Bucket key: priority (highest first), then availability (lowest first).
type BucketKey = (Reverse<u8>, u32);

/// Pieces by [`BucketKey`], with each piece's place for O(log n) moves.
#[derive(Debug, Clone)]
struct Buckets {
    map: BTreeMap<BucketKey, Vec<u32>>,
    /// Per piece: its key and index in that bucket, if it is in one.
    at: Vec<Option<(BucketKey, u32)>>,
}

impl Buckets {
    fn new(pieces: usize) -> Self {
        Buckets { map: BTreeMap::new(), at: vec![None; pieces] }
    }

    fn insert(&mut self, piece: u32, key: BucketKey) {
        let v = self.map.entry(key).or_default();
        self.at[piece as usize] = Some((key, v.len() as u32));
        v.push(piece);
    }

    fn remove(&mut self, piece: u32) {
        let Some((key, i)) = self.at.get_mut(piece as usize).and_then(Option::take) else { return };
        let Some(v) = self.map.get_mut(&key) else { return };
        v.swap_remove(i as usize);
        if let Some(&moved) = v.get(i as usize) {
            self.at[moved as usize] = Some((key, i));
        }
        if v.is_empty() {
            self.map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn picker(pieces: u32, blocks: u32) -> Picker {
        Picker::new(vec![blocks; pieces as usize], Bitfield::new(pieces), 2, [7; 32])
    }

    fn none(_: BlockRef) -> bool {
        false
    }

    #[test]
    fn partial_first_then_rarest() {
        let mut p = picker(10, 2);
        for i in 0..Picker::RANDOM_FIRST {
            p.piece_passed(i);
        }
        let all = Bitfield::full(10);
        for piece in 4..10 {
            for _ in 0..(10 - piece) {
                p.inc_availability(piece);
            }
        }
        // Piece 9 is rarest (availability 1).
        let got = p.pick(&all, 1, &none);
        assert_eq!(got, vec![BlockRef { piece: 9, block: 0 }]);
        // The partial piece 9 is finished before a new one starts.
        let got = p.pick(&all, 2, &none);
        assert_eq!(got, vec![BlockRef { piece: 9, block: 1 }, BlockRef { piece: 8, block: 0 }]);
    }

    #[test]
    fn endgame_duplicates_and_priorities() {
        let mut p = picker(2, 2);
        p.set_priority(1, 0);
        let all = Bitfield::full(2);
        assert_eq!(p.pick(&all, 10, &none).len(), 2, "only piece 0 is wanted");
        assert!(p.in_endgame());
        let mine: BTreeSet<BlockRef> = [BlockRef { piece: 0, block: 0 }].into_iter().collect();
        let dup = p.pick(&all, 10, &|r| mine.contains(&r));
        assert_eq!(dup, vec![BlockRef { piece: 0, block: 1 }]);
        // Each block is at most on two peers.
        assert!(p.pick(&all, 10, &none).len() == 1);
        assert!(p.pick(&all, 10, &none).is_empty());
        assert_eq!(p.block_received(BlockRef { piece: 0, block: 1 }), Received::New);
        assert_eq!(p.block_received(BlockRef { piece: 0, block: 1 }), Received::Duplicate);
        assert_eq!(p.block_received(BlockRef { piece: 0, block: 0 }), Received::New);
        assert!(p.is_complete(0));
        p.piece_failed(0);
        assert!(!p.in_endgame());
        assert_eq!(p.pick(&all, 10, &none).len(), 2);
    }

    #[test]
    fn sequential_goes_in_order() {
        let mut p = picker(6, 1);
        p.set_sequential(true);
        let all = Bitfield::full(6);
        let got: Vec<u32> = p.pick(&all, 3, &none).iter().map(|b| b.piece).collect();
        assert_eq!(got, vec![0, 1, 2]);
        p.set_priority(3, 7);
        assert_eq!(p.pick(&all, 1, &none)[0].piece, 3, "higher priority first");
    }

    #[test]
    fn cancel_frees_and_v2_block_reset() {
        let mut p = picker(1, 3);
        let all = Bitfield::full(1);
        let got = p.pick(&all, 3, &none);
        p.cancel_request(got[1]);
        assert_eq!(p.pick(&all, 1, &none), vec![got[1]]);
        for b in &got {
            p.block_received(*b);
        }
        assert!(p.is_complete(0));
        p.blocks_failed(0, &[2]);
        assert!(!p.is_complete(0));
        assert_eq!(p.pick(&all, 3, &none), vec![BlockRef { piece: 0, block: 2 }]);
        p.block_received(BlockRef { piece: 0, block: 2 });
        p.piece_passed(0);
        assert!(p.is_finished());
        assert!(p.pick(&all, 3, &none).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Pick { peer: usize, want: usize },
        Receive { peer: usize, nth: usize },
        Drop { peer: usize, nth: usize },
        Have { peer: usize, piece: u32 },
    }

    fn op(peers: usize, pieces: u32) -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..peers, 1..8usize).prop_map(|(peer, want)| Op::Pick { peer, want }),
            3 => (0..peers, 0..16usize).prop_map(|(peer, nth)| Op::Receive { peer, nth }),
            1 => (0..peers, 0..16usize).prop_map(|(peer, nth)| Op::Drop { peer, nth }),
            1 => (0..peers, 0..pieces).prop_map(|(peer, piece)| Op::Have { peer, piece }),
        ]
    }

    #[test]
    fn finished_counter_and_buckets_follow_priorities() {
        let mut p = picker(12, 1);
        let all = Bitfield::full(12);
        for i in 0..12 {
            for _ in 0..(i % 3) {
                p.inc_availability(i);
            }
        }
        for i in 0..Picker::RANDOM_FIRST {
            p.piece_passed(i);
        }
        for i in 4..12 {
            p.set_priority(i, if i < 8 { 0 } else { DEFAULT_PRIORITY });
        }
        p.set_priority(10, 7);
        p.set_priority(10, 7);
        assert!(!p.is_finished());
        // Highest priority first, whatever its availability.
        assert_eq!(p.pick(&all, 1, &none), vec![BlockRef { piece: 10, block: 0 }]);
        // Then the rarest of the default-priority ones: 9 (availability 0).
        assert_eq!(p.pick(&all, 1, &none), vec![BlockRef { piece: 9, block: 0 }]);
        let got = p.pick(&all, 5, &none);
        // 8 and 11 start; the rest are end-game duplicates of 9 and 10.
        assert_eq!(got[..2].iter().map(|r| r.piece).collect::<BTreeSet<_>>(), BTreeSet::from([8, 11]));
        for piece in [8, 9, 10, 11] {
            assert!(!p.is_finished());
            p.piece_passed(piece);
        }
        assert!(p.is_finished());
        p.set_priority(5, 1);
        assert!(!p.is_finished());
        assert_eq!(p.pick(&all, 2, &none), vec![BlockRef { piece: 5, block: 0 }]);
        p.set_priority(5, 0);
        assert!(p.is_finished());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Outside end-game no block is requested twice; a new piece picked after the random
        /// ones has minimal availability among the eligible pieces the peer has.
        #[test]
        fn no_double_requests_and_rarest_first(
            pieces in 5u32..24,
            blocks in 1u32..4,
            seed in any::<[u8; 32]>(),
            bits in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 24), 4),
            ops in proptest::collection::vec(op(4, 24), 1..120),
        ) {
            let mut p = Picker::new(vec![blocks; pieces as usize], Bitfield::new(pieces), 3, seed);
            let mut has: Vec<Bitfield> = bits.iter().map(|b| {
                let mut bf = Bitfield::new(pieces);
                for i in 0..pieces { if b[i as usize] { bf.set(i).expect("in range"); } }
                bf
            }).collect();
            for bf in &has { for i in bf.iter_set() { p.inc_availability(i); } }
            let mut outstanding: Vec<BTreeSet<BlockRef>> = vec![BTreeSet::new(); 4];
            let mut received: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Pick { peer, want } => {
                        let endgame = p.in_endgame();
                        let before: Vec<bool> = (0..pieces).map(|i| p.is_partial(i)).collect();
                        let mine = outstanding[peer].clone();
                        let got = p.pick(&has[peer], want, &|r| mine.contains(&r));
                        // A pick may enter end-game part-way (it started the last pieces).
                        let endgame = endgame || p.in_endgame();
                        let mut started: BTreeSet<u32> = BTreeSet::new();
                        for r in &got {
                            prop_assert!(has[peer].has(r.piece) && p.wants(r.piece));
                            prop_assert!(!outstanding[peer].contains(r), "same peer asked twice");
                            if !endgame {
                                prop_assert!(outstanding.iter().all(|o| !o.contains(r)), "block requested twice outside end-game");
                                prop_assert!(!received.get(&r.piece).is_some_and(|s| s.contains(&r.block)));
                            }
                            if !before[r.piece as usize] && started.insert(r.piece) && p.have().count() >= Picker::RANDOM_FIRST {
                                let min = has[peer].iter_set()
                                    .filter(|&i| !before[i as usize] && !started.contains(&i) && p.wants(i))
                                    .map(|i| p.availability(i)).min().unwrap_or(u32::MAX);
                                prop_assert!(p.availability(r.piece) <= min, "piece {} not rarest", r.piece);
                            }
                        }
                        outstanding[peer].extend(got);
                    }
                    Op::Receive { peer, nth } => {
                        let Some(&r) = outstanding[peer].iter().nth(nth) else { continue };
                        outstanding[peer].remove(&r);
                        if p.block_received(r) == Received::New {
                            received.entry(r.piece).or_default().insert(r.block);
                        }
                        // End-game: the others' requests for it are cancelled.
                        for o in outstanding.iter_mut() {
                            if o.remove(&r) { p.cancel_request(r); }
                        }
                        if p.is_complete(r.piece) {
                            received.remove(&r.piece);
                            if r.piece % 5 == 0 { p.piece_failed(r.piece) } else { p.piece_passed(r.piece) }
                        }
                    }
                    Op::Drop { peer, nth } => {
                        let Some(&r) = outstanding[peer].iter().nth(nth) else { continue };
                        outstanding[peer].remove(&r);
                        p.cancel_request(r);
                    }
                    Op::Have { peer, piece } => {
                        if piece < pieces && has[peer].set(piece).unwrap_or(false) {
                            p.inc_availability(piece);
                        }
                    }
                }
            }
        }
    }
}
