//! The KRPC decoder's error type.

/// Why a datagram is not a well-formed KRPC message.
///
/// Field names are paths into the message: `t`, `a.id`, `r.nodes`, `e.code`...
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The datagram is not strict bencode (or breaks the decoder's limits).
    #[error("bencode: {0}")]
    Bencode(#[from] mycel_bencode::DecodeError),
    /// The top-level value is not a dictionary.
    #[error("top-level value is not a dictionary")]
    NotADict,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong bencode type.
    #[error("field `{0}` has the wrong type")]
    WrongType(&'static str),
    /// A byte-string field has an invalid length (ids, `t`, `y`, compact node lists).
    #[error("field `{field}` has an invalid length of {len} bytes")]
    BadLength {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// An integer field is out of its range (`a.port`).
    #[error("field `{field}` is out of range: {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value received.
        value: i64,
    },
    /// A BEP 44 item value (`a.v`, `r.v`) is not canonical bencode (unsorted keys).
    #[error("field `{0}` is not canonical bencode")]
    NotCanonical(&'static str),
    /// `y` is a single byte other than `q`, `r` or `e`.
    #[error("unknown message kind y = 0x{0:02x}")]
    UnknownKind(u8),
}
