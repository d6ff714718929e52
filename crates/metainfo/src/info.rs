//! The info dictionary: [`Info`], parsed and validated from the exact bytes that are hashed.

use mycel_bencode::{decode_with, Dict, Limits, Value};

use crate::files::FileEntry;
use crate::hash::{InfoHashV1, InfoHashV2, InfoHashes};
use crate::merkle::{self, BLOCK_SIZE};
use crate::parse::{self, opt_bytes, opt_int, wrong};
use crate::MetainfoError;

/// Which formats a torrent carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TorrentVersion {
    /// BEP 3 only: SHA-1 piece hashes, v1 info-hash.
    V1,
    /// BEP 52 only: per-file SHA-256 merkle trees, v2 info-hash.
    V2,
    /// Both, describing the same piece-aligned content (BEP 52 "Upgrade Path").
    Hybrid,
}

/// Decoding limits for .torrent files and info dictionaries: depth 64 (v2 file trees nest
/// one level per directory), 32 MiB, 3 million values (libtorrent's token limit).
pub const TORRENT_LIMITS: Limits = Limits { max_depth: 64, max_size: 32 << 20, max_items: 3_000_000 };

/// The most pieces a torrent may have: 2^21 (libtorrent's default limit). 32 TiB at
/// 16 MiB pieces; it bounds the per-piece state a torrent file can make a client allocate.
pub const MAX_PIECES: u32 = 1 << 21;

/// The largest piece length accepted: 128 MiB. A piece is buffered whole while it is
/// checked, so a larger one lets a torrent file dictate memory use.
pub const MAX_PIECE_LENGTH: u32 = 128 << 20;

/// A validated info dictionary.
///
/// Made only by [`Info::from_bytes`] (or through [`Metainfo`](crate::Metainfo)), so every
/// value of this type has safe paths, consistent sizes, a piece length valid for its
/// format, `20 × pieces` bytes of v1 hashes, and for hybrids v1 and v2 file lists that
/// agree. The bytes it was parsed from are kept unchanged: they are what the info-hashes
/// are computed over and what BEP 9 metadata exchange sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    raw: Vec<u8>,
    hashes: InfoHashes,
    name: String,
    piece_length: u32,
    num_pieces: u32,
    /// Size of the piece space: the v1 total (pad files included) or the end of the last
    /// v2 file.
    piece_space: u64,
    files: Vec<FileEntry>,
    v1_pieces: Vec<[u8; 20]>,
    private: bool,
    single_file: bool,
}

impl Info {
    /// Parses and validates an info dictionary (for example received through BEP 9) with
    /// [`TORRENT_LIMITS`].
    pub fn from_bytes(raw: &[u8]) -> Result<Self, MetainfoError> {
        Self::from_bytes_with(raw, &TORRENT_LIMITS)
    }

    /// [`from_bytes`](Self::from_bytes) with explicit decoding limits.
    pub fn from_bytes_with(raw: &[u8], limits: &Limits) -> Result<Self, MetainfoError> {
        let value = decode_with(raw, limits)?;
        let dict = value.as_dict().ok_or_else(|| wrong("info", "a dictionary"))?;
        Self::from_dict(raw, dict)
    }

    /// Builds the `Info` from its decoded dictionary and the bytes it was decoded from.
    pub(crate) fn from_dict(raw: &[u8], info: &Dict<'_>) -> Result<Self, MetainfoError> {
        // BEP 52: check the meta version before anything else.
        let v2 = match opt_int(info, b"meta version", &|| "info.meta version".into())? {
            None => false,
            Some(2) => true,
            Some(other) => return Err(MetainfoError::UnsupportedMetaVersion(other)),
        };
        let v1 = info.get(b"pieces").is_some();
        if !v1 && !v2 {
            return Err(MetainfoError::MissingField("info.pieces".into()));
        }
        let name = opt_bytes(info, b"name", &|| "info.name".into())?
            .ok_or_else(|| MetainfoError::MissingField("info.name".into()))?;
        let name = parse::component(name, &|| "info.name".into())?;
        let piece_length = piece_length(info, v2)?;
        let private = opt_int(info, b"private", &|| "info.private".into())? == Some(1);
        let pl = u64::from(piece_length);

        let v1_files = if v1 { Some(parse::v1_files(info, &name)?) } else { None };
        let directory = v1_files.as_ref().is_some_and(|f| !f.single);
        let v2_files = if v2 { Some(parse::v2_files(info, &name, piece_length, directory)?) } else { None };
        let (files, piece_space, single_file) = match (v1_files, v2_files) {
            (Some(a), Some(b)) => {
                let (total, single) = (a.total, a.single);
                (parse::merge_hybrid(a, &b, piece_length)?, total, single)
            }
            (Some(a), None) => (a.files, a.total, a.single),
            (None, Some(b)) => (b.files, b.end, b.single),
            (None, None) => unreachable!("checked above that one format is present"),
        };
        let num_pieces = piece_space.div_ceil(pl);
        if piece_space == 0 {
            return Err(MetainfoError::NoFiles);
        }
        if num_pieces > u64::from(MAX_PIECES) {
            return Err(MetainfoError::TooManyPieces(num_pieces));
        }
        let num_pieces = num_pieces as u32;
        // A v2 single-file torrent is named by its file-tree key (BEP 52 calls `name` advisory).
        let name = if single_file { files[0].path[0].clone() } else { name };
        let v1_pieces = if v1 { v1_pieces(info, num_pieces)? } else { Vec::new() };
        let hashes = InfoHashes::from_parts(v1.then(|| InfoHashV1::of(raw)), v2.then(|| InfoHashV2::of(raw)))
            .expect("v1 or v2 is present");
        Ok(Info {
            raw: raw.to_vec(),
            hashes,
            name,
            piece_length,
            num_pieces,
            piece_space,
            files,
            v1_pieces,
            private,
            single_file,
        })
    }

    /// The info dictionary's bytes exactly as received.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The info-hashes (v1, v2 or both).
    pub fn info_hashes(&self) -> InfoHashes {
        self.hashes
    }

    /// Which formats the torrent carries.
    pub fn version(&self) -> TorrentVersion {
        match self.hashes {
            InfoHashes::V1(_) => TorrentVersion::V1,
            InfoHashes::V2(_) => TorrentVersion::V2,
            InfoHashes::Hybrid(..) => TorrentVersion::Hybrid,
        }
    }

    /// The torrent's name: the file name of a single-file torrent, the root directory of a
    /// multi-file one. A checked path component.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes per piece (the last piece, and for v2 the last piece of each file, is shorter).
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// Size of piece `index` in bytes, `None` past the end. For torrents with v1 data
    /// this is the v1 view (pad bytes count); for v2-only torrents a piece ends where its
    /// file ends.
    pub fn piece_size(&self, index: u32) -> Option<u32> {
        if index >= self.num_pieces {
            return None;
        }
        let start = u64::from(index) * u64::from(self.piece_length);
        let end = if self.hashes.v1().is_some() {
            self.piece_space
        } else {
            self.file_at(start).map_or(self.piece_space, |i| self.files[i].end())
        };
        Some((end - start).min(u64::from(self.piece_length)) as u32)
    }

    /// Sum of the lengths of the real files (pad files excluded): what lands on disk.
    pub fn total_size(&self) -> u64 {
        self.files.iter().filter(|f| !f.attr.pad).map(|f| f.length).sum()
    }

    /// Size of the piece space (pad files and v2 alignment gaps included).
    pub fn piece_space_size(&self) -> u64 {
        self.piece_space
    }

    /// The files in piece-space order (pad files included for v1 and hybrid).
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// Index of the file holding byte `offset` of the piece space; `None` in a v2
    /// alignment gap or past the end.
    pub fn file_at(&self, offset: u64) -> Option<usize> {
        let i = self.files.partition_point(|f| f.end() <= offset);
        self.files.get(i).filter(|f| f.offset <= offset).map(|_| i)
    }

    /// Whether this is a single-file torrent (the file's path is just the name).
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }

    /// The BEP 27 `private` flag: no DHT, no peer exchange.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The v1 SHA-1 piece hashes (empty for v2-only torrents).
    pub fn v1_piece_hashes(&self) -> &[[u8; 20]] {
        &self.v1_pieces
    }

    /// Checks a `piece layers` entry for file `index` (a non-empty, non-pad file of a v2
    /// or hybrid torrent) against its `pieces root` and returns it as hashes. A file of at
    /// most one piece has no entry: pass an empty slice and get `[root]`.
    pub fn verify_piece_layer(&self, index: usize, layer: &[u8]) -> Result<Vec<[u8; 32]>, MetainfoError> {
        let Some(f) = self.files.get(index) else {
            return Err(wrong(format!("file {index}"), "an existing file"));
        };
        let bad = |reason| MetainfoError::BadPieceLayer { path: f.display_path(), reason };
        let root = f.pieces_root.ok_or_else(|| bad("the file has no v2 root"))?;
        let pl = u64::from(self.piece_length);
        if f.length <= pl {
            return if layer.is_empty() || layer == root {
                Ok(vec![root])
            } else {
                Err(bad("a one-piece file has no layer"))
            };
        }
        let count = f.length.div_ceil(pl);
        if layer.len() as u64 != count * 32 {
            return Err(bad("wrong length"));
        }
        let hashes: Vec<[u8; 32]> =
            layer.chunks_exact(32).map(|c| <[u8; 32]>::try_from(c).expect("chunks of 32")).collect();
        let pad = merkle::pad_hash(merkle::piece_height(self.piece_length));
        if merkle::root_from_layer(&hashes, pad, count.next_power_of_two()) != root {
            return Err(bad("does not hash to the pieces root"));
        }
        Ok(hashes)
    }
}

fn piece_length(info: &Dict<'_>, v2: bool) -> Result<u32, MetainfoError> {
    let v = opt_int(info, b"piece length", &|| "info.piece length".into())?
        .ok_or_else(|| MetainfoError::MissingField("info.piece length".into()))?;
    let invalid = |reason| Err(MetainfoError::InvalidPieceLength { value: v, reason });
    if v <= 0 {
        return invalid("must be positive");
    }
    if v > i64::from(MAX_PIECE_LENGTH) {
        return invalid("larger than 128 MiB");
    }
    let pl = v as u32;
    if v2 && (!pl.is_power_of_two() || pl < BLOCK_SIZE) {
        return invalid("v2 needs a power of two of at least 16 KiB");
    }
    Ok(pl)
}

fn v1_pieces(info: &Dict<'_>, num_pieces: u32) -> Result<Vec<[u8; 20]>, MetainfoError> {
    let pieces = match info.get(b"pieces") {
        Some(Value::Bytes(b)) => *b,
        _ => return Err(wrong("info.pieces", "a string")),
    };
    let expected = u64::from(num_pieces) * 20;
    if pieces.len() as u64 != expected {
        return Err(MetainfoError::PiecesLength { len: pieces.len(), expected });
    }
    Ok(pieces.chunks_exact(20).map(|c| <[u8; 20]>::try_from(c).expect("chunks of 20")).collect())
}

#[cfg(test)]
mod tests;
