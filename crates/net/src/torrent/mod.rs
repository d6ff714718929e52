//! The BitTorrent driver: a [`Session`] owns a TCP listener, a disk/hash thread pool and
//! one task per torrent, each running a sans-IO [`mycel_swarm::Swarm`] (or first a
//! [`mycel_swarm::MetadataFetch`] for a magnet link).
//!
//! ```no_run
//! # async fn run() -> Result<(), mycel_net::torrent::TorrentError> {
//! use mycel_net::torrent::{AddOptions, Session, SessionConfig, TorrentSource};
//! let session = Session::start(SessionConfig::new("127.0.0.1:0".parse().expect("literal"))).await?;
//! let source = TorrentSource::parse("magnet:?xt=urn:btih:...")?;
//! let torrent = session.add_torrent(source, "downloads".into(), AddOptions::default()).await?;
//! let done = torrent.wait_complete().await?;
//! println!("{} bytes in {:?}", done.bytes_total, done.elapsed);
//! session.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Architecture (see the swarm's calling contract):
//! - `session.rs`: the listener; an incoming connection's handshake names the torrent, the
//!   connection is handed to that torrent's task.
//! - `task.rs`: one task per torrent owning the engine; `select!` over connection bytes,
//!   disk results, discovered peers, commands and the engine's timer, and after each branch
//!   it drains every output.
//! - `conn.rs`: per connection a reader task (bytes → torrent task, bounded channel: the
//!   back-pressure) and a writer task (torrent task → socket).
//! - `pool.rs`: `available_parallelism` std threads run reads, writes, hashes and
//!   rechecks against a [`mycel_storage::Storage`].
//! - `encryption.rs`: Message Stream Encryption ([`mycel_mse`]) on sockets: the responder
//!   for incoming connections that do not start with a plain handshake, the initiator for
//!   dials when [`SessionConfig::encryption`] asks for it; with RC4 the connection's reader
//!   decrypts and its writer encrypts every byte in place.
//! - `layout.rs`: metainfo → [`mycel_swarm::Layout`], and piece verification for rechecks.

mod conn;
mod discovery;
mod diskq;
mod encryption;
mod layout;
mod pool;
mod session;
mod task;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mycel_metainfo::{Magnet, Metainfo};
use mycel_storage::Storage;
use tokio::sync::watch;

pub use layout::{layout_for, layout_with_layers, piece_priorities, select_files, verify_piece};
pub use session::{Session, SessionHandle};

/// What can go wrong with a torrent.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TorrentError {
    /// The .torrent file or magnet link is malformed.
    #[error("invalid torrent: {0}")]
    Invalid(String),
    /// The torrent kind is not supported here.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The piece layers of a v2-only magnet link could not be fetched from any peer.
    #[error("cannot get the piece layers: {0}")]
    PieceLayers(String),
    /// Disk I/O failed; the torrent stopped.
    #[error("disk error: {0}")]
    Disk(String),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        message: String,
    },
    /// A file asked for (`AddOptions::only`) is not in the torrent.
    #[error("no file {0:?} in the torrent")]
    NotInTorrent(String),
    /// The same torrent was added twice.
    #[error("torrent already added")]
    Duplicate,
    /// The session or the torrent stopped.
    #[error("stopped")]
    Stopped,
}

/// How a [`Session`] is started.
#[derive(Clone)]
pub struct SessionConfig {
    /// TCP address to accept peers on (port 0 picks one).
    pub listen: SocketAddr,
    /// Where resume data is kept (`resume.redb`); `None`: nothing is kept.
    pub data_dir: Option<PathBuf>,
    /// A running DHT node for peer discovery and announces.
    pub dht: Option<crate::Handle>,
    /// Threads of the disk/hash pool (0: one per core).
    pub disk_threads: usize,
    /// Engine settings for every torrent.
    pub swarm: mycel_swarm::Config,
    /// Upload limit per torrent in bytes per second (0: none). For tests that need a
    /// download slow enough to interrupt.
    pub upload_limit: u64,
    /// Message Stream Encryption (MSE/PE) policy.
    pub encryption: Encryption,
}

/// Message Stream Encryption (MSE/PE, the obfuscated handshake of libtorrent and Azureus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Dial in plaintext; accept plain and MSE connections (taking plaintext after the
    /// MSE handshake when the peer offers it, RC4 otherwise).
    #[default]
    Off,
    /// Dial with an MSE handshake offering plaintext and RC4 (the peer picks), falling
    /// back to a plain dial if it fails; accept as with `Off`.
    Prefer,
    /// Only RC4-encrypted MSE connections, dialed and accepted; plain peers are refused.
    Require,
}

/// MSE handshakes of a session so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncryptionStats {
    /// Finished with plaintext selected.
    pub plaintext: u64,
    /// Finished with RC4 selected.
    pub rc4: u64,
    /// Failed (no sync, unknown info-hash, no common method, timeout, reset); the
    /// connection was closed. Plain connections refused under `Require` count here too.
    pub failed: u64,
}

impl SessionConfig {
    /// Defaults: no data directory, no DHT, one disk thread per core, no limit.
    pub fn new(listen: SocketAddr) -> Self {
        SessionConfig {
            listen,
            data_dir: None,
            dht: None,
            disk_threads: 0,
            // More disk reads in flight per peer than the engine's default: on a fast link
            // a seeder otherwise waits on its pool between blocks.
            swarm: mycel_swarm::Config { max_reads_per_peer: 64, ..mycel_swarm::Config::default() },
            upload_limit: 0,
            encryption: Encryption::Off,
        }
    }
}

/// A torrent to add: its metainfo, or a magnet link whose metadata is fetched from peers.
#[derive(Clone, Debug)]
pub enum TorrentSource {
    /// A parsed .torrent.
    Metainfo(Box<Metainfo>),
    /// A magnet link.
    Magnet(Magnet),
}

impl TorrentSource {
    /// A magnet link (`magnet:?...`) or the bytes of a .torrent file read by the caller.
    pub fn parse(s: &str) -> Result<Self, TorrentError> {
        Magnet::parse(s).map(TorrentSource::Magnet).map_err(|e| TorrentError::Invalid(e.to_string()))
    }

    /// A .torrent file's bytes.
    pub fn from_torrent_bytes(bytes: &[u8]) -> Result<Self, TorrentError> {
        Metainfo::from_bytes(bytes)
            .map(|m| TorrentSource::Metainfo(Box::new(m)))
            .map_err(|e| TorrentError::Invalid(e.to_string()))
    }

    /// The 20-byte ids the torrent is known by (v1 hash and/or truncated v2 hash).
    pub fn ids20(&self) -> Vec<[u8; 20]> {
        match self {
            TorrentSource::Metainfo(m) => m.info_hashes().ids20(),
            TorrentSource::Magnet(m) => m.hashes.ids20(),
        }
    }
}

/// Wraps the storage of a torrent (tests: fault injection, corruption).
pub type StorageWrapper = Arc<dyn Fn(Box<dyn Storage>) -> Box<dyn Storage> + Send + Sync>;

/// How the data already on disk is trusted when a torrent is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Resume data if there is some; otherwise a recheck if files exist; otherwise nothing.
    #[default]
    Auto,
    /// Hash every piece (all cores), ignoring resume data.
    Recheck,
    /// The data is complete (it was just hashed to create the torrent).
    Complete,
}

/// Options of [`SessionHandle::add_torrent`].
#[derive(Clone, Default)]
pub struct AddOptions {
    /// Peers to dial besides those the DHT finds.
    pub peers: Vec<SocketAddr>,
    /// What to make of existing data.
    pub existing: Existing,
    /// Wraps the file storage.
    pub storage_wrapper: Option<StorageWrapper>,
    /// Download only these files (paths inside the torrent, see [`select_files`]); empty:
    /// every file. Files not chosen are not created unless a wanted piece overlaps them.
    pub only: Vec<String>,
    /// Keep seeding after completion (otherwise the torrent still serves peers until
    /// removed; the flag is for the caller's own bookkeeping).
    pub seed: bool,
}

/// Where a torrent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentState {
    /// Fetching the metadata of a magnet link.
    FetchingMetadata,
    /// Hashing existing data.
    Checking,
    /// Downloading.
    Downloading,
    /// Every piece is verified (and recorded as such).
    Complete,
    /// Stopped by an error.
    Error(TorrentError),
}

/// Wire bytes exchanged with one remote address (kept after the connection closes;
/// protocol overhead included, about 0.1 % on block traffic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTransfer {
    /// The peer's address (its listen address if we dialled it, its source address
    /// otherwise).
    pub addr: SocketAddr,
    /// Bytes it sent us.
    pub downloaded: u64,
    /// Bytes we sent it.
    pub uploaded: u64,
}

/// A torrent's progress, published a few times a second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// State.
    pub state: TorrentState,
    /// The torrent's name (once known).
    pub name: Option<String>,
    /// Verified bytes.
    pub bytes_done: u64,
    /// Size of the torrent's piece space (0 until the metadata is known).
    pub bytes_total: u64,
    /// Bytes downloaded this session (accepted blocks).
    pub downloaded: u64,
    /// Bytes uploaded this session.
    pub uploaded: u64,
    /// Download rate, bytes per second.
    pub download_rate: u64,
    /// Upload rate, bytes per second.
    pub upload_rate: u64,
    /// Connected peers.
    pub peers: usize,
    /// Pieces that failed their hash check.
    pub bad_pieces: u64,
    /// Addresses banned.
    pub banned: usize,
    /// Block bytes received and not used (end-game duplicates, blocks of failed pieces).
    pub wasted: u64,
    /// Connections closed for protocol violations.
    pub protocol_errors: u64,
    /// Dial candidates learnt from peer exchange (BEP 11).
    pub pex_peers_learnt: u64,
    /// Every address we exchanged bytes with.
    pub transfers: Vec<PeerTransfer>,
    /// Time since the torrent was added.
    pub elapsed: Duration,
}

impl Progress {
    /// Estimated time to completion at the current rate.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.bytes_total.saturating_sub(self.bytes_done);
        (self.download_rate > 0 && self.bytes_total > 0).then(|| Duration::from_secs(left / self.download_rate))
    }

    fn initial(state: TorrentState) -> Self {
        Progress {
            state,
            name: None,
            bytes_done: 0,
            bytes_total: 0,
            downloaded: 0,
            uploaded: 0,
            download_rate: 0,
            upload_rate: 0,
            peers: 0,
            bad_pieces: 0,
            banned: 0,
            wasted: 0,
            protocol_errors: 0,
            pex_peers_learnt: 0,
            transfers: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// A handle to one torrent of a session.
#[derive(Clone)]
pub struct TorrentHandle {
    ids: Vec<[u8; 20]>,
    progress: watch::Receiver<Progress>,
    stop: tokio::sync::mpsc::Sender<task::Command>,
}

impl TorrentHandle {
    /// The 20-byte ids of the torrent.
    pub fn ids(&self) -> &[[u8; 20]] {
        &self.ids
    }

    /// The latest progress.
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// A receiver that sees every progress update.
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Waits until every piece is verified and recorded (returns the progress then), or
    /// the torrent stops with an error.
    pub async fn wait_complete(&self) -> Result<Progress, TorrentError> {
        let mut rx = self.progress.clone();
        loop {
            {
                let p = rx.borrow_and_update();
                match &p.state {
                    TorrentState::Complete => return Ok(p.clone()),
                    TorrentState::Error(e) => return Err(e.clone()),
                    _ => {}
                }
            }
            if rx.changed().await.is_err() {
                let p = rx.borrow();
                return match &p.state {
                    TorrentState::Complete => Ok(p.clone()),
                    TorrentState::Error(e) => Err(e.clone()),
                    _ => Err(TorrentError::Stopped),
                };
            }
        }
    }

    /// Stops the torrent (resume data is saved first) and waits for its task to end.
    pub async fn stop(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.stop.send(task::Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
