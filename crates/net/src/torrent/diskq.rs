//! [`DiskQueue`]: the torrent task's side of the disk pool. It counts block bytes waiting
//! to be written (the back-pressure bound) and keeps a copy of the blocks of pieces being
//! downloaded, so a piece's hash check reads memory instead of the file it was just
//! written to.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use mycel_storage::Storage;
use mycel_swarm::{DiskOp, DiskResult, FailedOp, BLOCK_LEN};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::pool::{run_op, DiskPool};

/// Most bytes of piece copies kept for hashing; beyond it, pieces are hashed from disk.
const CACHE_LIMIT: usize = 64 << 20;

/// A job for the pool that yields one result.
type Job = Box<dyn FnOnce() -> DiskResult + Send>;

/// A piece being assembled in memory.
struct PieceCopy {
    buf: Vec<u8>,
    have: Vec<bool>,
    filled: u32,
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
    /// Jobs gathered during one drain of the engine, sent by [`flush`](Self::flush).
    pending: Vec<Job>,
}

impl DiskQueue {
    pub(crate) fn new(
        pool: DiskPool,
        storage: Arc<dyn Storage>,
        piece_length: u64,
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
            pending: Vec::new(),
        }
    }

    /// Block bytes handed to the pool and not yet written.
    pub(crate) fn write_bytes(&self) -> u64 {
        self.write_bytes
    }

    /// The storage.
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Sends `op` to the pool; `piece_len` gives the length of a piece (for the copies).
    pub(crate) fn submit(&mut self, op: DiskOp, piece_len: impl Fn(u32) -> u32) {
        match &op {
            DiskOp::Write { piece, begin, data } => {
                let len = data.len() as u64;
                if let Some(old) = self.writes.insert((*piece, *begin), len) {
                    self.write_bytes -= old;
                }
                self.write_bytes += len;
                self.keep_copy(*piece, *begin, data, piece_len(*piece));
            }
            DiskOp::Hash { piece, len, sha1, v2_len } => {
                if let Some(copy) = self.cache.remove(piece) {
                    self.cache_bytes -= copy.buf.len();
                    if copy.filled as usize == copy.have.len() && copy.buf.len() == *len as usize {
                        let (piece, sha1, v2_len) = (*piece, *sha1, *v2_len);
                        self.pending.push(Box::new(move || hash_buf(piece, &copy.buf, sha1, v2_len)));
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
            DiskResult::Failed { op: FailedOp::Write { piece, begin }, .. } => {
                // The file does not hold the block: never hash the piece from memory.
                if let Some(c) = self.cache.remove(piece) {
                    self.cache_bytes -= c.buf.len();
                }
                Some((*piece, *begin))
            }
            _ => None,
        };
        if let Some(len) = key.and_then(|k| self.writes.remove(&k)) {
            self.write_bytes -= len;
        }
    }

    fn keep_copy(&mut self, piece: u32, begin: u32, data: &Bytes, piece_len: u32) {
        if !self.cache.contains_key(&piece) {
            if self.cache_bytes + piece_len as usize > CACHE_LIMIT {
                return;
            }
            let blocks = piece_len.div_ceil(BLOCK_LEN) as usize;
            self.cache_bytes += piece_len as usize;
            self.cache
                .insert(piece, PieceCopy { buf: vec![0; piece_len as usize], have: vec![false; blocks], filled: 0 });
        }
        let Some(c) = self.cache.get_mut(&piece) else { return };
        let (start, block) = (begin as usize, (begin / BLOCK_LEN) as usize);
        if start + data.len() > c.buf.len() || block >= c.have.len() {
            return;
        }
        c.buf[start..start + data.len()].copy_from_slice(data);
        if !c.have[block] {
            c.have[block] = true;
            c.filled += 1;
        }
    }
}

/// The hashes a `DiskOp::Hash` asks for, from the piece's bytes.
fn hash_buf(piece: u32, buf: &[u8], sha1: bool, v2_len: Option<u32>) -> DiskResult {
    let sha1 = sha1.then(|| <[u8; 20]>::from(Sha1::digest(buf)));
    let blocks = match v2_len {
        Some(n) => buf[..(n as usize).min(buf.len())]
            .chunks(BLOCK_LEN as usize)
            .map(|c| <[u8; 32]>::from(Sha256::digest(c)))
            .collect(),
        None => Vec::new(),
    };
    DiskResult::Hashed { piece, sha1, blocks }
}
