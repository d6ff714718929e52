//! Why an item is invalid, with the BEP 44 error code a storing node answers it with.

/// An invalid item.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemError {
    /// The bencoded value is longer than [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN) (205).
    #[error("value is {len} bytes, more than the 1000 a DHT item may hold")]
    ValueTooBig {
        /// Its length in bytes.
        len: usize,
    },
    /// The salt is longer than [`MAX_SALT_LEN`](crate::MAX_SALT_LEN) (207).
    #[error("salt is {len} bytes, more than the 64 allowed")]
    SaltTooBig {
        /// Its length in bytes.
        len: usize,
    },
    /// The value is not exactly one canonical bencoded value (203).
    #[error("value is not one canonical bencoded value")]
    NotBencode,
    /// The public key is not a valid ed25519 point, or the signature does not verify (206).
    #[error("invalid signature")]
    InvalidSignature,
    /// A negative sequence number (BEP 44 lets nodes reject them; we do) (203).
    #[error("negative sequence number {0}")]
    NegativeSeq(i64),
}

impl ItemError {
    /// The KRPC error code a storing node sends for this error (BEP 44 and BEP 5).
    pub fn code(&self) -> i64 {
        match self {
            ItemError::ValueTooBig { .. } => 205,
            ItemError::InvalidSignature => 206,
            ItemError::SaltTooBig { .. } => 207,
            ItemError::NotBencode | ItemError::NegativeSeq(_) => 203,
        }
    }
}
