//! Storage for torrents: where the bytes of each piece live on disk, and what is known to
//! be verified there.
//!
//! - [`FileMap`]: the piece space (pieces back to back, `piece i` at `i * piece_length`)
//!   cut into the torrent's files. Pad files (BEP 47) and v2 alignment gaps are never
//!   touched on disk: reads give zeros, writes are dropped. Every path is checked again
//!   to lie under the output directory before it is created.
//! - [`Storage`]: positioned reads and writes in the piece space, and `sync`. The real
//!   backend, [`FileStorage`], uses `pread`/`pwrite` (`FileExt::read_at`/`write_at`) so
//!   any number of pool threads share one descriptor, preallocates files with `set_len`,
//!   and opens them lazily through a small descriptor cache.
//! - [`FaultyStorage`]: wraps a backend and fails every operation after the first `n`
//!   (a full disk, a dying drive), or corrupts what it reads; for crash and ban tests.
//! - [`ResumeStore`]: the verified pieces of every torrent, keyed by info-hash, in a redb
//!   file in the data directory.
//!
//! The file I/O lives here rather than in the driver because it is synchronous and
//! blocking: the driver (`mycel-net`) calls it from its disk thread pool only.
//!
//! # Consistency rule for resume data
//!
//! A piece may be recorded as verified only after (1) its hash check passed and (2) the
//! files holding it were `sync`ed after its last write. The driver batches: it takes a
//! snapshot of the verified pieces, calls [`Storage::sync`], then [`ResumeStore::save`].

// Storage is the one library besides the driver that touches files (from the driver's pool).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![warn(missing_docs)]

mod error;
mod faulty;
mod file;
mod map;
mod resume;

pub use error::StorageError;
pub use faulty::{FaultMode, FaultyStorage};
pub use file::FileStorage;
pub use map::{FileMap, Segment, Span};
pub use resume::{ResumeStore, RESUME_FILE};

/// Positioned access to a torrent's piece space. Implementations are shared by the
/// threads of a pool, hence `&self` and `Send + Sync`.
pub trait Storage: Send + Sync {
    /// Fills `buf` from piece-space offset `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError>;
    /// Writes `data` at piece-space offset `offset`.
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), StorageError>;
    /// Writes `bufs` back to back from piece-space offset `offset` (a whole piece's blocks
    /// in one call: `pwritev` in [`FileStorage`]). The default writes them one by one.
    fn write_vectored(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StorageError> {
        let mut at = offset;
        for b in bufs {
            self.write(at, b)?;
            at += b.len() as u64;
        }
        Ok(())
    }
    /// Makes every write so far durable (`fdatasync` of the files written since the last
    /// sync).
    fn sync(&self) -> Result<(), StorageError>;
    /// Bytes written since the last [`sync`](Self::sync): the dirty data the OS may still
    /// hold only in memory.
    fn dirty_bytes(&self) -> u64;
}

impl<S: Storage + ?Sized> Storage for Box<S> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        (**self).read(offset, buf)
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        (**self).write(offset, data)
    }
    fn write_vectored(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StorageError> {
        (**self).write_vectored(offset, bufs)
    }
    fn sync(&self) -> Result<(), StorageError> {
        (**self).sync()
    }
    fn dirty_bytes(&self) -> u64 {
        (**self).dirty_bytes()
    }
}
