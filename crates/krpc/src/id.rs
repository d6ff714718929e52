//! 160-bit identifiers: node ids, info-hashes and the XOR distance between them.

use std::fmt;
use std::str::FromStr;

/// Errors from parsing an id from text or bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The input had the wrong length.
    #[error("expected 20 bytes (40 hex digits), got {0}")]
    Length(usize),
    /// The input was not hexadecimal.
    #[error("not a hexadecimal id: {0}")]
    Hex(String),
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 20]);

        impl $name {
            /// Builds an id from a 20-byte slice.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; 20] = bytes.try_into().map_err(|_| IdError::Length(bytes.len()))?;
                Ok(Self(arr))
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 20] {
                &self.0
            }
            /// XOR distance to another 160-bit value.
            pub fn distance(&self, other: &[u8; 20]) -> Distance {
                let mut d = [0u8; 20];
                for (i, b) in d.iter_mut().enumerate() {
                    *b = self.0[i] ^ other[i];
                }
                Distance(d)
            }
            /// Lower-case hexadecimal form.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(&self.0[..4]))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if s.len() != 40 {
                    return Err(IdError::Length(s.len() / 2));
                }
                let bytes = hex::decode(s).map_err(|_| IdError::Hex(s.to_owned()))?;
                Self::from_slice(&bytes)
            }
        }
    };
}

id_type!(
    /// A DHT node id: 160 bits in the same space as info-hashes.
    NodeId
);
id_type!(
    /// A torrent's info-hash (SHA-1 of the info dictionary, or a truncated SHA-256 for v2).
    InfoHash
);

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

/// The XOR distance between two ids; ordered as a 160-bit big-endian number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Distance(pub [u8; 20]);

impl Distance {
    /// The distance as two big-endian integers, compared in order: two integer comparisons
    /// instead of a byte-wise `memcmp` (lookups and `closest()` compare distances a lot).
    fn key(&self) -> (u128, u32) {
        let mut hi = [0u8; 16];
        let mut lo = [0u8; 4];
        hi.copy_from_slice(&self.0[..16]);
        lo.copy_from_slice(&self.0[16..]);
        (u128::from_be_bytes(hi), u32::from_be_bytes(lo))
    }

    /// Number of leading zero bits: the length of the common prefix of the two ids (160 when equal).
    pub fn leading_zeros(&self) -> u32 {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros();
            }
        }
        n
    }
}

impl Ord for Distance {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Distance {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let s = "0123456789abcdef0123456789abcdef01234567";
        let id: NodeId = s.parse().expect("valid hex id");
        assert_eq!(id.to_string(), s);
        assert_eq!("abc".parse::<NodeId>(), Err(IdError::Length(1)));
        assert!(matches!("zz23456789abcdef0123456789abcdef01234567".parse::<InfoHash>(), Err(IdError::Hex(_))));
    }

    #[test]
    fn distance_orders_by_xor() {
        let a = NodeId([0; 20]);
        let mut b = [0u8; 20];
        b[19] = 1;
        let mut c = [0u8; 20];
        c[0] = 0x80;
        assert!(a.distance(&b) < a.distance(&c));
        assert_eq!(a.distance(&c).leading_zeros(), 0);
        assert_eq!(a.distance(&b).leading_zeros(), 159);
        assert_eq!(a.distance(&a.0).leading_zeros(), 160);
    }

    #[test]
    fn distance_order_matches_bytewise_order() {
        let mut x = [0u8; 20];
        let mut y = [0u8; 20];
        for i in 0..20 {
            x[i] = 1;
            y[i] = 2;
            assert!(Distance(x) < Distance(y), "byte {i}");
            assert_eq!(Distance(x).cmp(&Distance(y)), x.cmp(&y));
            x[i] = 0;
            y[i] = 0;
        }
        x[16] = 0xff;
        y[15] = 0x01;
        assert!(Distance(x) < Distance(y));
    }
}
