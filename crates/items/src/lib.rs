//! BEP 44 items: values stored in the Mainline DHT that check themselves.
//!
//! - An [`ImmutableItem`] is stored under the SHA-1 of its bencoded value: a node can only
//!   hold the content that hashes to the key (Freenet's content-hash key, CHK).
//! - A [`MutableItem`] is stored under the SHA-1 of an ed25519 public key and an optional
//!   salt, and carries a sequence number and a signature over salt, seq and value: only the
//!   key's owner can write it (Freenet's signed-subspace key, SSK). A key pair derived from
//!   a keyword ([`Keypair::from_keyword`]) gives Freenet's keyword key (KSK), which anyone
//!   who knows the keyword can write (see docs/KEYS.md).
//!
//! Every constructor validates: a value is one canonical bencoded value of at most
//! [`MAX_VALUE_LEN`] bytes, a salt at most [`MAX_SALT_LEN`] bytes, a signature verifies. An
//! item that exists is valid, so the node and the client never re-check. The crate is pure:
//! no clock, no RNG (key generation takes a seed from the caller), no I/O.
//!
//! ```
//! use mycel_items::{ImmutableItem, Keypair, MutableItem};
//! let chk = ImmutableItem::new(b"12:Hello World!".to_vec()).unwrap();
//! assert_eq!(hex(&chk.target()), "e5f96f6f38320f0f33959cb4d3d656452117aadb");
//! let key = Keypair::from_seed([7; 32]);
//! let ssk = MutableItem::sign(&key, b"name".to_vec(), 1, b"5:hello".to_vec()).unwrap();
//! let back = MutableItem::verify(*ssk.public_key(), ssk.salt().to_vec(), 1, ssk.value().to_vec(), *ssk.signature());
//! assert_eq!(back, Ok(ssk));
//! # fn hex(b: &[u8]) -> String { b.iter().map(|x| format!("{x:02x}")).collect() }
//! ```

#![warn(missing_docs)]

mod error;
mod item;
mod key;

pub use error::ItemError;
pub use item::{
    immutable_target, mutable_target, signed_buffer, validate_value, ImmutableItem, MutableItem, MAX_SALT_LEN,
    MAX_VALUE_LEN,
};
pub use key::{normalize_keyword, Keypair, KEYWORD_PREFIX};
