//! BitTorrent metainfo: .torrent files v1 (BEP 3), v2 (BEP 52) and hybrid, pad files and
//! attributes (BEP 47), info-hashes, BEP 52 merkle trees, and magnet links (BEP 9, BEP 53).
//!
//! ```
//! use mycel_metainfo::{CreateOptions, FileSpec, Metainfo, TorrentBuilder, TorrentVersion};
//! let files = vec![
//!     FileSpec { path: vec!["a.txt".into()], length: 3, executable: false, hidden: false },
//!     FileSpec { path: vec!["sub".into(), "b.bin".into()], length: 40_000, executable: false, hidden: false },
//! ];
//! let data = [vec![1u8; 3], vec![2u8; 40_000]];
//! let opts = CreateOptions { version: TorrentVersion::V2, ..CreateOptions::default() };
//! let mut b = TorrentBuilder::directory("demo", files, opts).unwrap();
//! b.hash_all(|file, offset, buf: &mut [u8]| -> Result<(), ()> {
//!     let at = offset as usize;
//!     buf.copy_from_slice(&data[file][at..at + buf.len()]);
//!     Ok(())
//! })
//! .unwrap();
//! let t = Metainfo::from_bytes(&b.finish().unwrap()).unwrap();
//! assert_eq!(t.info().files()[1].path, ["demo", "sub", "b.bin"]);
//! println!("{}", t.magnet());
//! ```
//!
//! # Design
//!
//! - **Sans-IO.** Nothing here opens a file: parsing takes bytes, creation asks the caller
//!   for the bytes of each piece ([`TorrentBuilder`]), so the CLI can stream files through
//!   one buffer and a driver can hash pieces on a thread pool.
//! - **Parse, don't validate.** [`Metainfo`] and [`Info`] exist only validated: every path
//!   component is safe to join under a download directory (no `..`, empty, absolute or
//!   separator-carrying components), sizes add up without overflow, piece counts match the
//!   hashes, v2 piece layers hash to their roots, and a hybrid's two file lists agree.
//! - **The info dictionary's bytes are kept as received** and hashed as they are (BEP 52:
//!   never re-encode to hash).
//! - **Owned, not borrowed.** Unlike the wire codecs, a parsed torrent owns its data: it
//!   lives as long as the download, across tasks, and is copied once at load.

#![warn(missing_docs)]

mod create;
mod error;
mod files;
mod hash;
mod info;
mod magnet;
pub mod merkle;
mod metainfo;
mod parse;

pub use create::{default_piece_length, CreateOptions, FileSpec, PieceHashes, TorrentBuilder};
pub use error::{CreateError, MagnetError, MetainfoError, ProofError};
pub use files::{check_component, FileAttr, FileEntry};
pub use hash::{InfoHashV1, InfoHashV2, InfoHashes};
pub use info::{Info, TorrentVersion, MAX_PIECES, MAX_PIECE_LENGTH, TORRENT_LIMITS};
pub use magnet::{Magnet, PeerAddr};
pub use merkle::{HashRequest, MerkleTree};
pub use metainfo::Metainfo;

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/{metainfo,magnet}.rs`) and the
/// corpus replay test; not part of the supported API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{Info, Magnet, Metainfo};

    /// Parses `data` as a .torrent; on success checks the invariants the types promise,
    /// panicking on a violation (a real bug for the fuzzer to report).
    pub fn metainfo(data: &[u8]) {
        let Ok(m) = Metainfo::from_bytes(data) else {
            // Whatever the top level was, the info dictionary alone must not panic either.
            let _ = Info::from_bytes(data);
            return;
        };
        let info = m.info();
        assert!(data.windows(info.bytes().len()).any(|w| w == info.bytes()), "info bytes not from the input");
        let again = Metainfo::from_bytes(&m.to_bytes()).expect("re-encoded torrent must parse");
        assert_eq!(again.info_hashes(), m.info_hashes(), "re-encoding changed the info-hash");
        let (pl, n) = (info.piece_length(), info.num_pieces());
        // The first and last pieces: a v2 torrent may claim millions without data.
        for i in (0..n.min(64)).chain(n.saturating_sub(64)..n) {
            let size = info.piece_size(i).expect("in range");
            assert!(size > 0 && size <= pl, "piece {i} has size {size}");
        }
        assert_eq!(info.piece_size(n), None);
        for f in info.files() {
            assert!(f.path.iter().all(|c| crate::check_component(c.as_bytes()).is_ok()), "unsafe path {:?}", f.path);
            assert!(f.end() <= info.piece_space_size(), "file past the piece space");
        }
        let magnet = Magnet::parse(&m.magnet().to_string()).expect("own magnet must parse");
        assert_eq!(magnet.hashes, m.info_hashes());
    }

    /// Parses `data` (lossily as UTF-8) as a magnet link; on success, formatting and
    /// parsing again must give the same link.
    pub fn magnet(data: &[u8]) {
        let s = String::from_utf8_lossy(data);
        if let Ok(m) = Magnet::parse(&s) {
            let again = Magnet::parse(&m.to_string()).expect("formatted magnet must parse");
            assert_eq!(again, m, "magnet format/parse round trip");
        }
    }
}
