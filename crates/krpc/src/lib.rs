//! KRPC, the message layer of the Mainline DHT (BEP 5), with the fields of BEP 32, 42 and 43
//! and BEP 44's `get` and `put` (item values are kept as the exact bencoded bytes sent).
//!
//! `Message::decode(&[u8])` borrows from the datagram and yields only well-formed messages;
//! `Message::encode(&mut Vec<u8>)` writes canonical bencode (keys sorted).
//!
//! ```
//! use mycel_krpc::{Body, Message, Method};
//! let datagram = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
//! let msg = Message::decode(datagram).unwrap();
//! assert!(matches!(&msg.body, Body::Query(q) if q.method == Method::Ping));
//! let mut out = Vec::new();
//! msg.encode(&mut out);
//! assert_eq!(&out[..], &datagram[..]);
//! ```
//!
//! A datagram that fails to decode may still be a query worth answering with error 203:
//! [`salvage_query_tx`] recovers its transaction id.

#![warn(missing_docs)]

mod compact;
mod decode;
mod encode;
mod error;
mod id;
mod msg;

pub use compact::{
    compact_addr_len, decode_compact_addr, encode_compact_addr, COMPACT_ADDR_V4_LEN, COMPACT_ADDR_V6_LEN,
    COMPACT_NODE_V4_LEN, COMPACT_NODE_V6_LEN,
};
pub use decode::{salvage_query_tx, DATAGRAM_LIMITS, MAX_DATAGRAM_LEN, MAX_TX_LEN};
pub use error::DecodeError;
pub use id::{Distance, IdError, InfoHash, NodeId};
pub use msg::*;

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/krpc_decode.rs`) and the corpus
/// replay test; not part of the supported API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{salvage_query_tx, Body, Message};

    /// Decodes `data` as a datagram; on success checks the round-trip properties and the
    /// agreement of [`salvage_query_tx`], panicking on a violation (a real bug).
    pub fn decode(data: &[u8]) {
        let salvaged = salvage_query_tx(data);
        let Ok(msg) = Message::decode(data) else {
            return;
        };
        match &msg.body {
            Body::Query(_) => assert_eq!(salvaged, Some(msg.tx), "a valid query must be salvageable"),
            _ => assert_eq!(salvaged, None, "only queries are salvaged"),
        }
        let mut out = Vec::new();
        msg.encode(&mut out);
        assert_eq!(out.len(), msg.encoded_len(), "encoded_len disagrees with encode");
        let again = Message::decode(&out).expect("re-encoding of a decoded message must decode");
        assert_eq!(again, msg, "decode(encode(x)) != x");
        let mut out2 = Vec::new();
        again.encode(&mut out2);
        assert_eq!(out2, out, "encoding is not canonical");
    }
}
