//! Error types, one per layer: framing and messages ([`WireError`]), extension-protocol
//! payloads ([`ExtensionError`]) and piece bitfields ([`BitfieldError`]).
//!
//! Every one of them means "this peer sent something malformed": the caller drops the
//! connection. None of them is recoverable by waiting for more bytes; that is
//! [`Decoded::NeedMore`](crate::Decoded::NeedMore), which is not an error.

/// Why bytes from a peer are not a well-formed handshake or message.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The handshake does not start with `\x13BitTorrent protocol` (an encrypted (MSE)
    /// connection, another protocol, or garbage). `offset` is the first differing byte.
    #[error("not a BitTorrent handshake: protocol string differs at byte {offset}")]
    BadProtocol {
        /// Position of the first byte that differs from the protocol string.
        offset: usize,
    },
    /// A length prefix announces a message longer than the limit in force.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// The announced length (the id byte and the payload).
        len: u32,
        /// The limit given to the decoder.
        max: u32,
    },
    /// A message whose length is fixed (or bounded below) by its id has another length,
    /// for example a `have` whose length prefix is not 5.
    #[error("{kind} message with invalid length {len}")]
    BadLength {
        /// The message kind (`"have"`, `"request"`...).
        kind: &'static str,
        /// The announced length (the id byte and the payload).
        len: u32,
    },
}

/// Why an extension-protocol payload (BEP 10 handshake, BEP 9 `ut_metadata`, BEP 11
/// `ut_pex`) is malformed.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ExtensionError {
    /// The payload is not strict bencode, or breaks the decoder's limits.
    #[error("bencode: {0}")]
    Bencode(#[from] mycel_bencode::DecodeError),
    /// The top-level value is not a dictionary.
    #[error("payload is not a dictionary")]
    NotADict,
    /// A required key is absent.
    #[error("missing key `{0}`")]
    MissingKey(&'static str),
    /// A key has the wrong bencode type.
    #[error("key `{0}` has the wrong type")]
    WrongType(&'static str),
    /// An integer is out of the range its key allows.
    #[error("key `{key}` is out of range: {value}")]
    OutOfRange {
        /// The key (`p`, `m.ut_metadata`, `piece`...).
        key: &'static str,
        /// The value received.
        value: i64,
    },
    /// A byte string has a length its key does not allow (`yourip`, compact peer lists).
    #[error("key `{key}` has an invalid length of {len} bytes")]
    BadLength {
        /// The key.
        key: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A `ut_metadata` data message carries a block of the wrong size for its piece.
    #[error("metadata piece {piece} carries {len} bytes, expected {expected}")]
    MetadataBlockSize {
        /// The piece index.
        piece: u32,
        /// The bytes received after the dictionary.
        len: usize,
        /// The size this piece must have for the announced `total_size`.
        expected: usize,
    },
    /// A `ut_metadata` message with a `msg_type` BEP 9 does not define. BEP 9 says to
    /// ignore such a message: the caller should not drop the peer for it.
    #[error("unknown ut_metadata msg_type {0}")]
    UnknownMessageType(i64),
    /// A `ut_pex` flags string (`added.f`, `added6.f`) does not have one byte per peer of
    /// its list.
    #[error("`{key}` has {flags} flag bytes for {peers} peers")]
    FlagsMismatch {
        /// The flags key.
        key: &'static str,
        /// Its length in bytes.
        flags: usize,
        /// Peers in the list it qualifies.
        peers: usize,
    },
    /// A `ut_pex` list holds more peers than we accept in one message
    /// ([`MAX_PEX_PEERS`](crate::MAX_PEX_PEERS)).
    #[error("`{key}` lists {count} peers, more than the {max} accepted")]
    TooManyPeers {
        /// The list's key.
        key: &'static str,
        /// Peers in it.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes follow the dictionary of a message that carries none.
    #[error("{len} trailing bytes after the dictionary")]
    TrailingBytes {
        /// How many.
        len: usize,
    },
}

/// Why bytes are not a valid bitfield for a torrent of a given piece count.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BitfieldError {
    /// The byte length is not `ceil(pieces / 8)`.
    #[error("bitfield of {len} bytes for {pieces} pieces, expected {expected} bytes")]
    BadLength {
        /// Bytes received.
        len: usize,
        /// The torrent's piece count.
        pieces: u32,
        /// `ceil(pieces / 8)`.
        expected: usize,
    },
    /// A spare bit after the last piece is set (BEP 3: they must be zero).
    #[error("spare bits after piece {pieces} are set")]
    SpareBits {
        /// The torrent's piece count.
        pieces: u32,
    },
    /// A piece index is not below the piece count.
    #[error("piece {index} out of range for {pieces} pieces")]
    OutOfRange {
        /// The index given.
        index: u32,
        /// The torrent's piece count.
        pieces: u32,
    },
}
