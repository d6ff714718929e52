//! The crate's error types: one enum per layer, each message a one-liner naming what is wrong
//! (the CLI prints them as they are).

use mycel_bencode::DecodeError;

/// Why bytes are not a valid .torrent file or info dictionary.
///
/// `field` values name the offending place the way a user would look for it, for example
/// `info.files[3].path` or `info.file tree/dir/a.txt`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MetainfoError {
    /// The bytes are not strict bencode (or exceed the decoding limits).
    #[error("invalid bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A field has the wrong bencode type or shape.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// Where the field is.
        field: String,
        /// What it should have been, e.g. "an integer" or "a 32-byte string".
        expected: &'static str,
    },
    /// `meta version` is something other than 2 (BEP 52: check this before anything else).
    #[error("meta version {0} is not supported (only 2 is)")]
    UnsupportedMetaVersion(i64),
    /// `piece length` is out of range, or not a power of two ≥ 16 KiB for a v2 torrent.
    #[error("invalid piece length {value}: {reason}")]
    InvalidPieceLength {
        /// The value found.
        value: i64,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// `pieces` is not 20 bytes per piece of the content.
    #[error("`info.pieces` is {len} bytes, expected {expected} (20 per piece)")]
    PiecesLength {
        /// Its length.
        len: usize,
        /// 20 × the number of pieces the file lengths imply.
        expected: u64,
    },
    /// A file length is negative.
    #[error("invalid length {value} in `{field}`")]
    InvalidLength {
        /// Where.
        field: String,
        /// The value found.
        value: i64,
    },
    /// The file lengths (or the piece-aligned v2 layout) add up past `u64::MAX`.
    #[error("total size of the files overflows")]
    SizeOverflow,
    /// More pieces than [`MAX_PIECES`](crate::MAX_PIECES).
    #[error("too many pieces ({0}, the limit is 2097152)")]
    TooManyPieces(u64),
    /// The torrent lists no files, or only empty ones.
    #[error("the torrent has no content (no files, or only empty ones)")]
    NoFiles,
    /// A path component could escape the download directory or is otherwise unusable:
    /// empty, `.`, `..`, or containing `/`, `\` or NUL.
    #[error("unsafe path component {component:?} in `{field}`: {reason}")]
    UnsafePath {
        /// Where.
        field: String,
        /// The component (lossily decoded).
        component: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files have the same path, or a file's path is a directory of another.
    #[error("conflicting paths: `{0}`")]
    PathConflict(String),
    /// The v2 `file tree` is malformed.
    #[error("invalid file tree at `{path}`: {reason}")]
    FileTree {
        /// The path inside the tree.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hybrid torrent's v1 and v2 descriptions of the content disagree.
    #[error("v1 and v2 parts disagree: {0}")]
    HybridMismatch(String),
    /// A v2 file larger than one piece has no entry in `piece layers`.
    #[error("missing piece layer for `{0}`")]
    MissingPieceLayer(String),
    /// A `piece layers` entry has the wrong length or does not hash to the file's root.
    #[error("bad piece layer for `{path}`: {reason}")]
    BadPieceLayer {
        /// The file it belongs to.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why a magnet link cannot be used.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MagnetError {
    /// It does not start with `magnet:?`.
    #[error("not a magnet link (must start with `magnet:?`)")]
    NotMagnet,
    /// No `xt=urn:btih:` or `xt=urn:btmh:` parameter.
    #[error("magnet link has no BitTorrent info-hash (`xt=urn:btih:` or `xt=urn:btmh:`)")]
    MissingInfoHash,
    /// A `btih` value is neither 40 hex nor 32 base32 characters.
    #[error("invalid btih info-hash {0:?} (want 40 hex or 32 base32 characters)")]
    InvalidBtih(String),
    /// A `btmh` value is not `1220` followed by 64 hex digits (multihash SHA-256).
    #[error("invalid btmh info-hash {0:?} (want `1220` and 64 hex digits)")]
    InvalidBtmh(String),
    /// Two different hashes of the same kind.
    #[error("magnet link has two different {0} info-hashes")]
    ConflictingHashes(&'static str),
    /// A `%` not followed by two hex digits.
    #[error("bad percent-encoding in `{0}`")]
    BadPercentEncoding(String),
    /// A parameter that must be UTF-8 text is not.
    #[error("parameter `{0}` is not valid UTF-8")]
    NotUtf8(String),
    /// An `x.pe` value is not `host:port`, `ipv4:port` or `[ipv6]:port`.
    #[error("invalid peer address {0:?} in `x.pe`")]
    InvalidPeer(String),
    /// An `so` value is not a list of indices and inclusive ranges like `0,2,4-6`.
    #[error("invalid file selection {0:?} in `so`")]
    InvalidSelection(String),
}

/// Why a torrent cannot be created from the given files and options.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    /// No files, or all of them empty: there is nothing to hash.
    #[error("nothing to share: no files or all files are empty")]
    NoContent,
    /// The requested piece length is not allowed for the chosen format.
    #[error("invalid piece length {value}: {reason}")]
    InvalidPieceLength {
        /// The value requested.
        value: u64,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A name or path component is unusable (empty, `.`, `..`, or containing `/`, `\`, NUL).
    #[error("unusable path component {component:?}: {reason}")]
    UnsafePath {
        /// The component.
        component: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files with the same path, or a file that is also a directory of another.
    #[error("conflicting paths: `{0}`")]
    PathConflict(String),
    /// Sizes add up past `u64::MAX`.
    #[error("total size overflows")]
    SizeOverflow,
    /// More pieces than [`MAX_PIECES`](crate::MAX_PIECES): choose a larger piece length.
    #[error("too many pieces ({0}, the limit is 2097152): choose a larger piece length")]
    TooManyPieces(u64),
    /// A piece index past the end.
    #[error("piece {0} is out of range")]
    PieceOutOfRange(u32),
    /// Piece hashes without the part the torrent's format needs.
    #[error("piece {0}: hashes lack the v1 or v2 part the format needs")]
    IncompleteHashes(u32),
    /// [`finish`](crate::TorrentBuilder::finish) was called before every piece was hashed.
    #[error("piece {0} has not been hashed")]
    MissingPiece(u32),
}

/// Why a BEP 52 hash request or proof is unusable.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// `length` is not a power of two (at most `MAX_HASH_REQUEST`), or `index` is not a
    /// multiple of it.
    #[error("hash request length must be a power of two and index a multiple of it")]
    BadShape,
    /// The base layer, the range or the proof layers reach outside the tree.
    #[error("hash request reaches outside the tree")]
    OutOfRange,
    /// A `hashes` message has the wrong number of hashes.
    #[error("expected {expected} hashes, got {got}")]
    WrongCount {
        /// How many the request implies.
        expected: usize,
        /// How many arrived.
        got: usize,
    },
    /// The hashes do not lead to the expected root.
    #[error("hashes do not match the merkle root")]
    Mismatch,
}
