//! Errors of the driver.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong when starting, commanding or stopping a DHT node.
///
/// Messages do not repeat their source error; print the chain (`{:#}` with anyhow) to see it.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The listen addresses are not one address, or one IPv4 and one IPv6 address.
    #[error("cannot listen on {addrs:?}: {reason}")]
    InvalidListen {
        /// The addresses asked for.
        addrs: Vec<SocketAddr>,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The state file could not be opened: not a mycel database, corrupt, or locked by
    /// another process.
    #[error("cannot open state file {path} (not a mycel state database, corrupt, or in use by another mycel)")]
    Open {
        /// The state file.
        path: PathBuf,
        /// What redb said (boxed: redb's error type is large).
        #[source]
        source: Box<redb::Error>,
    },
    /// Reading or writing the state file failed.
    #[error("cannot {action} state file {path}")]
    Storage {
        /// `"read"` or `"write"`.
        action: &'static str,
        /// The state file.
        path: PathBuf,
        /// What redb said (boxed: redb's error type is large).
        #[source]
        source: Box<redb::Error>,
    },
    /// The state file is a redb database but holds something we did not write.
    #[error("state file {path} is corrupt: {reason}")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An item to publish could not be written to the state file, so it was not published.
    #[error("the item was not saved to {path}, so it was not published: {reason}")]
    NotSaved {
        /// The state file.
        path: PathBuf,
        /// What the write failed with.
        reason: String,
    },
    /// A ping got no answer.
    #[error("no answer from {addr}")]
    NoAnswer {
        /// The address that was pinged.
        addr: SocketAddr,
    },
    /// A wait ran out of time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The node's task has stopped (after `shutdown`, or it failed).
    #[error("the DHT node has stopped")]
    Stopped,
    /// A failure that is a bug or an OS fault (a panicked task, no OS randomness).
    #[error("internal error: {0}")]
    Internal(String),
}
