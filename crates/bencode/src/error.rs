//! The decoder's error type.
//!
//! Every variant that points into the input carries the byte `offset` it refers to, so a
//! rejected datagram can be logged with the position of the fault.

/// Why a buffer is not one strict, well-formed bencoded value.
///
/// Offsets are 0-based byte positions in the buffer given to the decoder.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a value (or was empty). `offset` is where more bytes were
    /// needed; for a string whose declared length runs past the end it is the position of the
    /// length prefix.
    #[error("unexpected end of input at byte {offset}")]
    UnexpectedEof {
        /// Position where the input ran out (or of the string that overran it).
        offset: usize,
    },
    /// An integer is not `i`, an optional `-`, digits, `e` (for example `ie`, `i-e`, `i1x`).
    #[error("invalid integer at byte {offset}")]
    InvalidInt {
        /// Position of the offending byte.
        offset: usize,
    },
    /// An integer does not fit in an `i64`.
    #[error("integer out of the i64 range at byte {offset}")]
    IntOutOfRange {
        /// Position of the integer's `i`.
        offset: usize,
    },
    /// An integer or a string length has a leading zero (`i03e`, `03:abc`).
    #[error("leading zero in a number at byte {offset}")]
    LeadingZero {
        /// Position of the number's first digit.
        offset: usize,
    },
    /// The integer `-0` (`i-0e`), which has no canonical form.
    #[error("negative zero at byte {offset}")]
    NegativeZero {
        /// Position of the integer's `i`.
        offset: usize,
    },
    /// A string length is not digits followed by `:`, or does not fit in a `usize`.
    #[error("invalid string length at byte {offset}")]
    InvalidLength {
        /// Position of the offending byte (or of the length's first digit on overflow).
        offset: usize,
    },
    /// A list or dictionary would nest deeper than [`Limits::max_depth`](crate::Limits).
    #[error("nesting too deep at byte {offset}")]
    TooDeep {
        /// Position of the container that went over the limit.
        offset: usize,
    },
    /// The input is longer than [`Limits::max_size`](crate::Limits).
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the input (for `decode_prefix`: at least this much was needed).
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The tree holds more values than [`Limits::max_items`](crate::Limits).
    #[error("too many values, limit reached at byte {offset}")]
    TooManyItems {
        /// Position of the value that went over the limit.
        offset: usize,
    },
    /// A dictionary has the same key twice.
    #[error("duplicate dictionary key at byte {offset}")]
    DuplicateKey {
        /// Position of the second occurrence of the key (its length prefix).
        offset: usize,
    },
    /// A dictionary key is not a byte string.
    #[error("dictionary key is not a byte string at byte {offset}")]
    KeyNotBytes {
        /// Position of the key.
        offset: usize,
    },
    /// A dictionary ends right after a key (`d1:ae`).
    #[error("dictionary key without a value at byte {offset}")]
    MissingValue {
        /// Position of the `e` that closed the dictionary too early.
        offset: usize,
    },
    /// A complete value was followed by more bytes (only from `decode`/`decode_with`).
    #[error("trailing bytes after the value at byte {offset}")]
    TrailingBytes {
        /// Position of the first byte after the value.
        offset: usize,
    },
    /// A byte that cannot start a value here.
    #[error("unexpected byte 0x{byte:02x} at byte {offset}")]
    UnexpectedByte {
        /// Position of the byte.
        offset: usize,
        /// The byte itself.
        byte: u8,
    },
}
