//! Disk and hash work the engine asks the driver to do, and the results it expects back.
//!
//! # Contract
//!
//! The driver takes operations from [`Swarm::poll_disk_op`](crate::Swarm::poll_disk_op),
//! runs them (on a thread pool, in any order across pieces) and feeds each outcome back
//! with [`Swarm::handle_disk_result`](crate::Swarm::handle_disk_result):
//!
//! | op | result |
//! | --- | --- |
//! | [`DiskOp::Read`] | [`DiskResult::Read`] with exactly `len` bytes, or [`DiskResult::Failed`] |
//! | [`DiskOp::Write`] | [`DiskResult::Written`], or [`DiskResult::Failed`] |
//! | [`DiskOp::Hash`] | [`DiskResult::Hashed`], or [`DiskResult::Failed`] |
//!
//! Ordering: the engine issues `Hash` for a piece only after every `Write` of that piece
//! was acknowledged with `Written`, so the driver may hash from its write cache or from
//! disk. Writes of blocks that fail verification are overwritten later by good ones; the
//! driver never needs to undo a write. A piece is "ours" (served to peers, announced) only
//! after the engine saw its hash result match, so a driver that persists resume data
//! should record pieces on [`Event::PieceVerified`](crate::Event::PieceVerified), not on
//! `Written`.

use bytes::Bytes;

use crate::PeerKey;

/// An operation for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    /// Read `len` bytes of piece `piece` from offset `begin`, to send to `peer`.
    Read {
        /// The peer that asked.
        peer: PeerKey,
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        begin: u32,
        /// Bytes to read.
        len: u32,
    },
    /// Write a received block at offset `begin` of piece `piece`.
    Write {
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        begin: u32,
        /// The block.
        data: Bytes,
    },
    /// Hash piece `piece` (its `len` bytes, all writes acknowledged).
    Hash {
        /// Piece index.
        piece: u32,
        /// The piece's length.
        len: u32,
        /// Compute the SHA-1 of the whole piece (v1).
        sha1: bool,
        /// Compute the SHA-256 of each 16 KiB block of the first `v2_len` bytes (v2); the
        /// last block may be shorter.
        v2_len: Option<u32>,
    },
}

/// The outcome of a [`DiskOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskResult {
    /// A read finished.
    Read {
        /// As in the op.
        peer: PeerKey,
        /// As in the op.
        piece: u32,
        /// As in the op.
        begin: u32,
        /// The bytes read (`len` of them).
        data: Bytes,
    },
    /// A write is durable enough to hash from.
    Written {
        /// As in the op.
        piece: u32,
        /// As in the op.
        begin: u32,
    },
    /// Hashes of a piece.
    Hashed {
        /// As in the op.
        piece: u32,
        /// SHA-1 of the piece, if asked for.
        sha1: Option<[u8; 20]>,
        /// SHA-256 of each block, if asked for (empty otherwise).
        blocks: Vec<[u8; 32]>,
    },
    /// The operation failed.
    Failed {
        /// Which operation.
        op: FailedOp,
        /// What went wrong, for the user.
        error: String,
    },
}

/// Identifies a failed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedOp {
    /// A [`DiskOp::Read`].
    Read {
        /// As in the op.
        peer: PeerKey,
        /// As in the op.
        piece: u32,
        /// As in the op.
        begin: u32,
        /// As in the op.
        len: u32,
    },
    /// A [`DiskOp::Write`].
    Write {
        /// As in the op.
        piece: u32,
        /// As in the op.
        begin: u32,
    },
    /// A [`DiskOp::Hash`].
    Hash {
        /// As in the op.
        piece: u32,
    },
}
