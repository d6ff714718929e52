//! KRPC, the message layer of the Mainline DHT (BEP 5), with the fields of BEP 32, 42 and 43.
//!
//! `Message::decode(&[u8])` borrows from the datagram and yields only well-formed messages;
//! `Message::encode(&mut Vec<u8>)` writes canonical bencode (keys sorted).

mod id;
mod msg;

pub use id::{Distance, IdError, InfoHash, NodeId};
pub use msg::*;
