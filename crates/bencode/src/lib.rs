//! Strict zero-copy bencode: a limited, iterative decoder and a canonical encoder.
//!
//! ```
//! use mycel_bencode::{decode, Value};
//! let v = decode(b"d1:ai42e1:b3:xyze").unwrap();
//! let d = v.as_dict().unwrap();
//! assert_eq!(d.get(b"a").and_then(Value::as_int), Some(42));
//! assert_eq!(d.get(b"b").and_then(Value::as_bytes), Some(&b"xyz"[..]));
//! let mut out = Vec::new();
//! v.encode(&mut out);
//! assert_eq!(out, b"d1:ai42e1:b3:xyze");
//! ```
//!
//! # Why our own bencode
//!
//! Everything the node receives from the DHT is bencode from strangers, so the decoder is
//! the first line of defence, and BEP 44 signs the canonical encoding of values, so the
//! encoder must be exact. We write it ourselves because we need all of these at once:
//!
//! - **Strict limits**: bounded nesting ([`Limits::max_depth`]) with an explicit stack and no
//!   recursion, a size cap, a cap on the number of values, and string lengths checked
//!   against the input before anything is allocated. Memory stays `O(input)`.
//! - **Zero-copy**: byte strings are `&[u8]` borrowed from the datagram.
//! - **Strictness where it matters**: duplicate keys, non-string keys, leading zeros, `-0`
//!   and out-of-range integers are errors; dictionaries that arrive unsorted (common in real
//!   traffic) are accepted but stored sorted.
//! - **Canonical output**: dictionaries are always encoded sorted, as BEP 44 signatures
//!   require, and the streaming [`Encoder`] lets message codecs write their typed models
//!   without building a [`Value`] tree.
//!
//! The crates we looked at either copy every string into owned buffers, recurse without a
//! depth bound (a stack overflow from a few kilobytes of `l`), accept duplicate keys, or are
//! serde-oriented, which fits typed documents but not a hot path that inspects untrusted
//! datagrams field by field.

#![warn(missing_docs)]

mod decode;
mod encode;
mod error;
mod value;

pub use decode::{decode, decode_prefix, decode_with, Limits};
pub use encode::{encoded_bytes_len, encoded_int_len, Encoder};
pub use error::DecodeError;
pub use value::{Dict, Value};

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/bencode_decode.rs`) and the
/// corpus replay test; not part of the supported API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{decode_prefix, Limits};

    /// Decodes `data`; on success checks the round-trip properties, panicking on a
    /// violation (a real bug for the fuzzer to report).
    pub fn decode(data: &[u8]) {
        let Ok(value) = crate::decode(data) else {
            return;
        };
        let mut out = Vec::new();
        value.encode(&mut out);
        assert_eq!(out.len(), value.encoded_len(), "encoded_len disagrees with encode");
        let again = crate::decode(&out).expect("canonical re-encoding must decode");
        assert_eq!(again, value, "decode(encode(x)) != x");
        let mut out2 = Vec::new();
        again.encode(&mut out2);
        assert_eq!(out2, out, "encoding is not canonical");
        let prefix = decode_prefix(data, &Limits::DEFAULT).expect("decode succeeded, prefix must too");
        assert_eq!(prefix.1, data.len(), "decode_prefix consumed a different length");
        assert_eq!(prefix.0, value, "decode_prefix gave a different value");
    }
}
