//! [`DiskQueue`]: the torrent task's side of the disk pool. It counts block bytes waiting
//! to be written (the back-pressure bound) and keeps the blocks of pieces being
//! downloaded, so that
//! - a piece is written with one vectored write (`pwritev`) once all its blocks are in,
//!   and hashed in the same job, while its bytes are still in the CPU cache (the result is
//!   kept until the engine asks for it: [`DiskOp::Hash`] comes only after every
//!   `Written`);
//! - a piece's hash check reads memory instead of the file it was just written to.
//!
//! Blocks are held unwritten up to [`HOLD_LIMIT`] bytes; beyond it, the piece with the
//! most blocks held is written out at once and from then on written block by block
//! ("through"), so held bytes never stop the connections from being read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mycel_peer_wire::Bitfield;
use mycel_storage::Storage;
use mycel_swarm::{DiskOp, DiskResult, FailedOp, Layout, BLOCK_LEN};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::pool::{run_op, DiskPool};

/// Most bytes of piece copies kept for hashing; beyond it, pieces are hashed from disk.
const CACHE_LIMIT: usize = 64 << 20;
/// Most block bytes held unwritten waiting for the rest of their piece; kept well under
/// the task's read back-pressure bound (`MAX_WRITES_IN_FLIGHT`).
const HOLD_LIMIT: u64 = 16 << 20;

/// A job for the pool that yields one result.
type Job = Box<dyn FnOnce() -> DiskResult + Send>;

/// Which hashes the engine will ask for a piece (as its `DiskOp::Hash` would say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HashSpec {
    sha1: bool,
    v2_len: Option<u32>,
}

/// Hashes computed by a piece's write job, kept until the engine asks for them.
struct Prehashed {
    spec: HashSpec,
    len: u32,
    result: DiskResult,
}

/// The blocks of a piece being downloaded.
struct PieceCopy {
    blocks: Vec<Option<Bytes>>,
    len: u32,
    filled: u32,
    /// Blocks are written as they come (the piece was spilled); otherwise they are held.
    through: bool,
    /// Bytes held unwritten.
    held: u64,
}

/// Submits engine disk operations to the pool.
pub(crate) struct DiskQueue {
    pool: DiskPool,
    storage: Arc<dyn Storage>,
    piece_length: u64,
    tx: mpsc::UnboundedSender<DiskResult>,
    writes: HashMap<(u32, u32), u64>,
    write_bytes: u64,
    cache: HashMap<u32, PieceCopy>,
    cache_bytes: usize,
    held_bytes: u64,
    /// Hashes from piece write jobs (filled by the pool threads before they report the
    /// piece's blocks written).
    prehashed: Arc<Mutex<HashMap<u32, Prehashed>>>,
    /// Jobs gathered during one drain of the engine, sent by [`flush`](Self::flush).
    pending: Vec<Job>,
    /// A bit per piece whose blocks went to the file before (whole or spilled). A later
    /// write to such a piece is a repair of a few blocks (v2 names the bad blocks of a
    /// failed piece and only those come again), so it is written at once: holding it for
    /// blocks that will never come would stall the piece for good.
    written_before: Bitfield,
}

impl DiskQueue {
    pub(crate) fn new(
        pool: DiskPool,
        storage: Arc<dyn Storage>,
        piece_length: u64,
        pieces: u32,
        tx: mpsc::UnboundedSender<DiskResult>,
    ) -> Self {
        DiskQueue {
            pool,
            storage,
            piece_length,
            tx,
            writes: HashMap::new(),
            write_bytes: 0,
            cache: HashMap::new(),
            cache_bytes: 0,
            held_bytes: 0,
            prehashed: Arc::new(Mutex::new(HashMap::new())),
            pending: Vec::new(),
            written_before: Bitfield::new(pieces),
        }
    }

    /// Block bytes handed to the pool (or held) and not yet written.
    pub(crate) fn write_bytes(&self) -> u64 {
        self.write_bytes
    }

    /// The storage.
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Sends `op` to the pool (or holds it, for a block of a piece not complete yet).
    pub(crate) fn submit(&mut self, op: DiskOp, layout: &Layout) {
        match &op {
            DiskOp::Write { piece, begin, data } => {
                let len = data.len() as u64;
                if let Some(old) = self.writes.insert((*piece, *begin), len) {
                    self.write_bytes -= old;
                }
                self.write_bytes += len;
                self.lock_prehashed().remove(piece);
                if self.keep_block(*piece, *begin, data, layout) {
                    return;
                }
            }
            DiskOp::Hash { piece, len, sha1, v2_len } => {
                let spec = HashSpec { sha1: *sha1, v2_len: *v2_len };
                if let Some(done) = self.lock_prehashed().remove(piece) {
                    if done.spec == spec && done.len == *len {
                        let _ = self.tx.send(done.result);
                        return;
                    }
                }
                if let Some(copy) = self.cache.remove(piece) {
                    self.cache_bytes -= copy.len as usize;
                    self.held_bytes -= copy.held;
                    if copy.filled as usize == copy.blocks.len() && copy.len == *len {
                        let piece = *piece;
                        let blocks: Vec<Bytes> = copy.blocks.into_iter().flatten().collect();
                        self.pending.push(Box::new(move || hash_blocks(piece, &blocks, spec)));
                        return;
                    }
                }
            }
            DiskOp::Read { .. } => {}
        }
        let (storage, pl) = (self.storage.clone(), self.piece_length);
        self.pending.push(Box::new(move || run_op(&*storage, pl, op)));
    }

    /// Hands the jobs gathered since the last call to the pool, split into one batch per
    /// thread: one wake-up per batch instead of one per 16 KiB block.
    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut self.pending);
        let per = jobs.len().div_ceil(self.pool.threads().max(1));
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let batch: Vec<Job> = jobs.by_ref().take(per).collect();
            let tx = self.tx.clone();
            self.pool.spawn(move || {
                for job in batch {
                    let _ = tx.send(job());
                }
            });
        }
    }

    /// Notes the end of a write (from its result).
    pub(crate) fn on_result(&mut self, res: &DiskResult) {
        let key = match res {
            DiskResult::Written { piece, begin } => Some((*piece, *begin)),
            DiskResult::Failed { op: FailedOp::Write { piece, .. }, .. } => {
                // The file does not hold the block: never hash the piece from memory.
                if let Some(c) = self.cache.remove(piece) {
                    self.cache_bytes -= c.len as usize;
                    self.held_bytes -= c.held;
                }
                // A piece job fails as a whole: none of its blocks is waiting any more.
                let gone: u64 = self.writes.iter().filter(|(k, _)| k.0 == *piece).map(|(_, &l)| l).sum();
                self.writes.retain(|k, _| k.0 != *piece);
                self.write_bytes -= gone;
                None
            }
            _ => None,
        };
        if let Some(len) = key.and_then(|k| self.writes.remove(&k)) {
            self.write_bytes -= len;
        }
    }

    fn lock_prehashed(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Prehashed>> {
        self.prehashed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a copy of a block; `true` if the block is held (not to be written now).
    fn keep_block(&mut self, piece: u32, begin: u32, data: &Bytes, layout: &Layout) -> bool {
        let piece_len = layout.piece_len(piece);
        if !self.cache.contains_key(&piece) {
            if self.written_before.has(piece) || self.cache_bytes + piece_len as usize > CACHE_LIMIT {
                return false;
            }
            let blocks = piece_len.div_ceil(BLOCK_LEN) as usize;
            self.cache_bytes += piece_len as usize;
            let copy = PieceCopy { blocks: vec![None; blocks], len: piece_len, filled: 0, through: false, held: 0 };
            self.cache.insert(piece, copy);
        }
        let Some(c) = self.cache.get_mut(&piece) else { return false };
        let block = (begin / BLOCK_LEN) as usize;
        let expected = BLOCK_LEN.min(c.len.saturating_sub(begin)) as usize;
        if begin != block as u32 * BLOCK_LEN || block >= c.blocks.len() || data.len() != expected {
            // Not a block as the engine cuts them: write what is held, and never hash
            // this piece from memory.
            self.spill_piece(piece);
            if let Some(c) = self.cache.remove(&piece) {
                self.cache_bytes -= c.len as usize;
            }
            return false;
        }
        let held = !c.through;
        match c.blocks[block].replace(data.clone()) {
            None => c.filled += 1,
            Some(old) if held => {
                c.held -= old.len() as u64;
                self.held_bytes -= old.len() as u64;
            }
            Some(_) => {}
        }
        if !held {
            return false;
        }
        c.held += data.len() as u64;
        self.held_bytes += data.len() as u64;
        if c.filled as usize == c.blocks.len() {
            self.write_piece(piece, layout);
        } else if self.held_bytes > HOLD_LIMIT {
            self.spill();
        }
        true
    }

    /// All blocks of a held piece are in: one job writes them with one vectored write,
    /// hashes them, then reports each block written.
    fn write_piece(&mut self, piece: u32, layout: &Layout) {
        let Some(copy) = self.cache.remove(&piece) else { return };
        let _ = self.written_before.set(piece);
        self.cache_bytes -= copy.len as usize;
        self.held_bytes -= copy.held;
        let blocks: Vec<Bytes> = copy.blocks.into_iter().flatten().collect();
        let spec =
            HashSpec { sha1: layout.v1_hash(piece).is_some(), v2_len: layout.v2_piece(piece).map(|p| p.data_len) };
        let (storage, at, len) = (self.storage.clone(), u64::from(piece) * self.piece_length, copy.len);
        let (prehashed, tx) = (self.prehashed.clone(), self.tx.clone());
        self.pending.push(Box::new(move || {
            let bufs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
            if let Err(e) = storage.write_vectored(at, &bufs) {
                return DiskResult::Failed { op: FailedOp::Write { piece, begin: 0 }, error: e.to_string() };
            }
            let result = hash_blocks(piece, &blocks, spec);
            prehashed.lock().unwrap_or_else(|p| p.into_inner()).insert(piece, Prehashed { spec, len, result });
            // Every block but the first is reported here; the first is the job's result.
            for i in 1..blocks.len() as u32 {
                let _ = tx.send(DiskResult::Written { piece, begin: i * BLOCK_LEN });
            }
            DiskResult::Written { piece, begin: 0 }
        }));
    }

    /// Too many bytes held: the piece holding the most is written out now and its later
    /// blocks are written as they come.
    fn spill(&mut self) {
        let biggest = self.cache.iter().filter(|(_, c)| !c.through).max_by_key(|(&p, c)| (c.held, p));
        if let Some((&piece, _)) = biggest {
            self.spill_piece(piece);
        }
    }

    /// Writes out the held blocks of `piece`; its later blocks are written as they come.
    fn spill_piece(&mut self, piece: u32) {
        let _ = self.written_before.set(piece);
        let Some(c) = self.cache.get_mut(&piece) else { return };
        c.through = true;
        self.held_bytes -= c.held;
        c.held = 0;
        let blocks: Vec<(u32, Bytes)> =
            c.blocks.iter().enumerate().filter_map(|(i, b)| Some((i as u32 * BLOCK_LEN, b.clone()?))).collect();
        for (begin, data) in blocks {
            let (storage, pl) = (self.storage.clone(), self.piece_length);
            self.pending.push(Box::new(move || run_op(&*storage, pl, DiskOp::Write { piece, begin, data })));
        }
    }
}

/// The hashes a `DiskOp::Hash` asks for, from the piece's blocks (16 KiB each, the last
/// one maybe shorter).
fn hash_blocks(piece: u32, blocks: &[Bytes], spec: HashSpec) -> DiskResult {
    let sha1 = spec.sha1.then(|| {
        let mut h = Sha1::new();
        for b in blocks {
            h.update(b);
        }
        <[u8; 20]>::from(h.finalize())
    });
    let mut out = Vec::new();
    if let Some(n) = spec.v2_len {
        let mut left = n as usize;
        for b in blocks {
            if left == 0 {
                break;
            }
            let part = &b[..left.min(b.len())];
            left -= part.len();
            out.push(<[u8; 32]>::from(Sha256::digest(part)));
        }
    }
    DiskResult::Hashed { piece, sha1, blocks: out }
}

#[cfg(test)]
mod tests {
    use mycel_storage::{FileMap, FileStorage, Segment};

    use super::*;

    const PIECE: u32 = 1 << 20;
    const PIECES: u32 = 20;

    fn data(piece: u32, block: u32) -> Bytes {
        Bytes::from(vec![(piece * 7 + block) as u8; BLOCK_LEN as usize])
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<DiskResult>) -> Option<DiskResult> {
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.ok().flatten()
    }

    /// A piece written whole, then one of its blocks again (v2 re-downloads only the blocks
    /// its leaf hashes name as bad): that block is written at once, not held waiting for
    /// blocks that will not come, and the next hash reads the repaired piece.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_repaired_block_of_a_written_piece_is_written_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = u64::from(2 * BLOCK_LEN);
        let segs = vec![Segment { path: "f".into(), offset: 0, length: size, pad: false }];
        let storage: Arc<dyn Storage> =
            Arc::new(FileStorage::new(dir.path(), FileMap::from_segments(segs, size).expect("map")));
        let sha1 = |parts: &[&Bytes]| -> [u8; 20] {
            let mut h = Sha1::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().into()
        };
        let (good0, good1, bad1) = (data(0, 0), data(0, 1), data(9, 9));
        let layout = Layout::v1([1; 20], size, 2 * BLOCK_LEN, vec![sha1(&[&good0, &good1])]).expect("layout");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut q = DiskQueue::new(DiskPool::new(2), storage, size, 1, tx);
        q.submit(DiskOp::Write { piece: 0, begin: 0, data: good0.clone() }, &layout);
        q.submit(DiskOp::Write { piece: 0, begin: BLOCK_LEN, data: bad1.clone() }, &layout);
        q.flush();
        for _ in 0..2 {
            let res = next(&mut rx).await.expect("written");
            q.on_result(&res);
        }
        q.submit(DiskOp::Hash { piece: 0, len: 2 * BLOCK_LEN, sha1: true, v2_len: None }, &layout);
        q.flush();
        match next(&mut rx).await {
            Some(DiskResult::Hashed { sha1: Some(h), .. }) => assert_eq!(h, sha1(&[&good0, &bad1])),
            other => panic!("unexpected {other:?}"),
        }
        // The repair: block 1 alone.
        q.submit(DiskOp::Write { piece: 0, begin: BLOCK_LEN, data: good1.clone() }, &layout);
        q.flush();
        match next(&mut rx).await {
            Some(res @ DiskResult::Written { piece: 0, begin }) if begin == BLOCK_LEN => q.on_result(&res),
            other => panic!("the repaired block was not written: {other:?}"),
        }
        assert_eq!(q.write_bytes(), 0);
        q.submit(DiskOp::Hash { piece: 0, len: 2 * BLOCK_LEN, sha1: true, v2_len: None }, &layout);
        q.flush();
        match next(&mut rx).await {
            Some(DiskResult::Hashed { sha1: Some(h), .. }) => assert_eq!(h, sha1(&[&good0, &good1])),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Twenty 1 MiB pieces with all but their last block in: more than `HOLD_LIMIT` held,
    /// so some pieces spill and go block by block, the others go as whole pieces. Every
    /// block is acknowledged once, every hash is right, the file holds every block.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn held_spilled_and_whole_pieces_all_land_and_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = u64::from(PIECE * PIECES);
        let segs = vec![Segment { path: "f".into(), offset: 0, length: size, pad: false }];
        let storage: Arc<dyn Storage> =
            Arc::new(FileStorage::new(dir.path(), FileMap::from_segments(segs, size).expect("map")));
        let blocks = PIECE / BLOCK_LEN;
        let hashes: Vec<[u8; 20]> = (0..PIECES)
            .map(|p| {
                let mut h = Sha1::new();
                (0..blocks).for_each(|b| h.update(data(p, b)));
                h.finalize().into()
            })
            .collect();
        let layout = Layout::v1([1; 20], size, PIECE, hashes.clone()).expect("layout");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut q = DiskQueue::new(DiskPool::new(2), storage.clone(), u64::from(PIECE), PIECES, tx);
        let write = |q: &mut DiskQueue, p: u32, b: u32| {
            q.submit(DiskOp::Write { piece: p, begin: b * BLOCK_LEN, data: data(p, b) }, &layout)
        };
        for p in 0..PIECES {
            for b in 0..blocks - 1 {
                write(&mut q, p, b);
            }
        }
        assert!(q.held_bytes <= HOLD_LIMIT);
        for p in 0..PIECES {
            write(&mut q, p, blocks - 1);
        }
        q.flush();
        let mut written = std::collections::BTreeSet::new();
        while written.len() < (PIECES * blocks) as usize {
            let res = rx.recv().await.expect("result");
            q.on_result(&res);
            match res {
                DiskResult::Written { piece, begin } => assert!(written.insert((piece, begin)), "twice"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(q.write_bytes(), 0);
        for p in 0..PIECES {
            q.submit(DiskOp::Hash { piece: p, len: PIECE, sha1: true, v2_len: None }, &layout);
        }
        q.flush();
        for _ in 0..PIECES {
            match rx.recv().await.expect("result") {
                DiskResult::Hashed { piece, sha1, .. } => assert_eq!(sha1, Some(hashes[piece as usize])),
                other => panic!("unexpected {other:?}"),
            }
        }
        let mut buf = vec![0; PIECE as usize];
        for p in 0..PIECES {
            storage.read(u64::from(p * PIECE), &mut buf).expect("read");
            let mut h = Sha1::new();
            h.update(&buf);
            assert_eq!(<[u8; 20]>::from(h.finalize()), hashes[p as usize]);
        }
    }
}
