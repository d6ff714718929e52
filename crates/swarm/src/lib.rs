//! The sans-IO BitTorrent swarm engine: one [`Swarm`] per torrent.
//!
//! - [`Swarm`]: peers (handshake, choke/interest, request pipeline sized from the
//!   measured rate, keep-alives, timeouts, snubbing), uploads, verification and bans. Its
//!   doc comment has the calling contract and a run loop; [`disk`] has the contract for
//!   disk reads, writes and hash checks, which are outputs like the bytes to send.
//! - [`picker`]: which blocks to request (random first pieces, rarest-first, partial
//!   pieces first, end-game, sequential mode and priorities).
//! - [`choker`]: whom to upload to (tit-for-tat by delivered bytes, optimistic unchoke,
//!   round-robin when seeding, rate-based slot count).
//! - [`MetadataFetch`]: the BEP 9 metadata exchange for magnet links, before a
//!   [`Layout`] exists.
//! - [`Layout`]: the torrent as the engine sees it (built by the caller from a metainfo).
//! - Peer exchange (BEP 11, `ut_pex`), inside [`Swarm`]: see `src/pex.rs` and
//!   docs/ARCHITECTURE.md; off for private torrents and with [`Config::pex`] false.
//!
//! Nothing here reads a clock, touches a socket or a file, or draws from the OS random
//! generator: time is an argument, randomness comes from a seed, collections that reach
//! outputs are ordered.

#![warn(missing_docs)]

pub mod choker;
mod config;
pub mod disk;
mod event;
mod hashserve;
mod layers;
pub mod layout;
mod merkle;
mod metadata;
mod peer;
mod pex;
pub mod picker;
mod rate;
mod swarm;
mod upload;
mod verify;
mod wire;

pub use choker::{Choker, ChokerConfig};
pub use config::Config;
pub use disk::{DiskOp, DiskResult, FailedOp};
pub use event::{BanReason, Disconnect, DisconnectReason, Event, PeerKey, PeerStats, Stats, Transmit};
pub use layers::{LayerFile, LayersError};
pub use layout::{merkle_root, InfoHashes, Layout, LayoutError, Trust, V2Piece, Verification, BLOCK_LEN};
pub use metadata::{MetadataConfig, MetadataError, MetadataFetch, PieceLayers};
pub use pex::UT_PEX_ID;
pub use picker::{BlockRef, Picker};
pub use swarm::{Swarm, SwarmError};
pub use wire::UT_METADATA_ID;
