//! The disk and hash pool: plain threads (one per core) running blocking jobs.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mycel_peer_wire::Bitfield;
use mycel_storage::Storage;
use mycel_swarm::{DiskOp, DiskResult, FailedOp, Layout, BLOCK_LEN};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::verify_piece;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs from one queue. Dropping the pool lets the threads
/// finish the queued jobs and exit.
#[derive(Clone)]
pub(crate) struct DiskPool {
    tx: mpsc::Sender<Job>,
    threads: usize,
}

impl DiskPool {
    /// `threads` workers (0: one per core).
    pub(crate) fn new(threads: usize) -> Self {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { threads };
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("mycel-disk-{i}")).spawn(move || loop {
                let job = {
                    let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                    guard.recv()
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a disk thread");
            }
        }
        DiskPool { tx, threads }
    }

    /// Number of worker threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job` on a worker.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        // The receiver lives as long as any worker; if every worker died the job is lost
        // and its result never arrives, which the torrent reports as stalled.
        let _ = self.tx.send(Box::new(job));
    }

    /// Hashes every piece of `layout` in `storage` (at most two per thread in flight) and
    /// returns those that verify.
    pub(crate) async fn recheck(&self, layout: &Layout, storage: Arc<dyn Storage>) -> Bitfield {
        let n = layout.piece_count();
        let mut have = Bitfield::new(n);
        let layout = Arc::new(layout.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u32, bool)>();
        let window = (self.threads() * 2) as u32;
        let submit = |piece: u32| {
            let (layout, storage, tx) = (layout.clone(), storage.clone(), tx.clone());
            self.spawn(move || {
                let mut buf = vec![0u8; layout.piece_len(piece) as usize];
                let at = u64::from(piece) * u64::from(layout.piece_length());
                let ok = storage.read(at, &mut buf).is_ok() && verify_piece(&layout, piece, &buf);
                let _ = tx.send((piece, ok));
            });
        };
        let mut next = 0;
        while next < n.min(window) {
            submit(next);
            next += 1;
        }
        for _ in 0..n {
            let Some((piece, ok)) = rx.recv().await else { break };
            if ok {
                let _ = have.set(piece);
            }
            if next < n {
                submit(next);
                next += 1;
            }
        }
        have
    }
}

/// Runs one engine disk operation against `storage` (piece `i` starts at byte
/// `i * piece_length` of the piece space).
pub(crate) fn run_op(storage: &dyn Storage, piece_length: u64, op: DiskOp) -> DiskResult {
    let at = |piece: u32, begin: u32| u64::from(piece) * piece_length + u64::from(begin);
    match op {
        DiskOp::Read { peer, piece, begin, len } => {
            let mut buf = vec![0u8; len as usize];
            match storage.read(at(piece, begin), &mut buf) {
                Ok(()) => DiskResult::Read { peer, piece, begin, data: Bytes::from(buf) },
                Err(e) => DiskResult::Failed { op: FailedOp::Read { peer, piece, begin, len }, error: e.to_string() },
            }
        }
        DiskOp::Write { piece, begin, data } => match storage.write(at(piece, begin), &data) {
            Ok(()) => DiskResult::Written { piece, begin },
            Err(e) => DiskResult::Failed { op: FailedOp::Write { piece, begin }, error: e.to_string() },
        },
        DiskOp::Hash { piece, len, sha1, v2_len } => {
            let mut buf = vec![0u8; len as usize];
            if let Err(e) = storage.read(at(piece, 0), &mut buf) {
                return DiskResult::Failed { op: FailedOp::Hash { piece }, error: e.to_string() };
            }
            let sha1 = sha1.then(|| <[u8; 20]>::from(Sha1::digest(&buf)));
            let blocks = match v2_len {
                Some(n) => buf[..(n as usize).min(buf.len())]
                    .chunks(BLOCK_LEN as usize)
                    .map(|c| <[u8; 32]>::from(Sha256::digest(c)))
                    .collect(),
                None => Vec::new(),
            };
            DiskResult::Hashed { piece, sha1, blocks }
        }
    }
}
