//! The storage layer's error type.

use std::path::PathBuf;

/// What went wrong in storage.
#[derive(thiserror::Error, Debug)]
pub enum StorageError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("open", "write", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A torrent path would leave the output directory.
    #[error("unsafe path in torrent: {0}")]
    UnsafePath(String),
    /// An access past the end of the piece space.
    #[error("offset {offset} + {len} is past the end of the torrent ({size} bytes)")]
    OutOfRange {
        /// Offset asked for.
        offset: u64,
        /// Length asked for.
        len: u64,
        /// Size of the piece space.
        size: u64,
    },
    /// A fault injected by [`FaultyStorage`](crate::FaultyStorage).
    #[error("injected fault after {0} operations (simulated full disk)")]
    Injected(u64),
    /// The resume database failed.
    #[error("resume data {path}: {message}")]
    Resume {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        message: String,
    },
}
