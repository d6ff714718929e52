//! BitTorrent Message Stream Encryption (MSE, also called PE or "obfuscation"), the
//! handshake Azureus, libtorrent and most clients use to hide BitTorrent traffic.
//!
//! Sans-IO: [`Handshake`] is a state machine for either role (initiator A, responder B).
//! It is fed the bytes that arrive, in any chunking, and yields the bytes to send; it
//! never reads a clock or a socket, and its randomness (the Diffie-Hellman private key,
//! the padding) comes from a seed the caller draws.
//!
//! The protocol, in short (A dials B; `S` is the Diffie-Hellman secret, `SKEY` the
//! info-hash A wants):
//! ```text
//! A -> B  Ya, PadA
//! B -> A  Yb, PadB
//! A -> B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! B -> A  ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
//! A -> B  ENCRYPT2(payload)
//! ```
//! `ENCRYPT` is RC4 keyed with `HASH('keyA', S, SKEY)` for A→B and `HASH('keyB', S, SKEY)`
//! for B→A, the first 1024 bytes of keystream discarded; `ENCRYPT2` is the same stream if
//! RC4 was selected, nothing if plaintext was. The responder sends its step as soon as
//! `len(IA)` is in, without waiting for IA (its choice does not depend on it).
//!
//! Calling contract:
//! ```
//! use mycel_mse::{CryptoSet, Handshake, Method};
//! let skey = [7u8; 20];
//! let mut a = Handshake::initiator(skey, CryptoSet::ALL, [1; 32]);
//! let mut b = Handshake::responder(vec![skey], CryptoSet::ALL, Method::Plaintext, [2; 32]);
//! // the driver's loop: send what each side has, feed what arrives, until both are done
//! while !(a.is_established() && b.is_established()) {
//!     if let Some(bytes) = a.poll_transmit() { b.handle_bytes(&bytes).expect("valid"); }
//!     if let Some(bytes) = b.poll_transmit() { a.handle_bytes(&bytes).expect("valid"); }
//! }
//! let (a, b) = (a.poll_established().expect("done"), b.poll_established().expect("done"));
//! assert_eq!(a.method, Method::Plaintext);
//! assert_eq!(b.info_hash, skey);
//! ```
//! After [`Handshake::poll_established`] the connection carries BitTorrent: the
//! [`Established::payload`] bytes first (already decrypted), then the stream, decrypted
//! with [`Cipher::decrypt`] and encrypted with [`Cipher::encrypt`] when RC4 was selected.

mod cipher;
mod dh;
pub mod fuzzing;
mod handshake;

pub use cipher::{Cipher, Rc4Stream, KEYSTREAM_DISCARD};
pub use handshake::{Established, Handshake, MseError};

/// Most padding bytes (PadA, PadB, PadC, PadD).
pub const MAX_PAD: usize = 512;
/// Length of a Diffie-Hellman public key on the wire.
pub const KEY_LEN: usize = 96;
/// Longest initial payload (IA) accepted. The spec does not bound it; clients send a
/// BitTorrent handshake (68 bytes) or nothing.
pub const MAX_IA: usize = 1024;
/// Bytes the responder scans after Ya for `HASH('req1', S)`: PadA and the hash.
pub const RESPONDER_SYNC_WINDOW: usize = MAX_PAD + 20;
/// Bytes the initiator scans after Yb for the encrypted VC: PadB and the VC.
pub const INITIATOR_SYNC_WINDOW: usize = MAX_PAD + 8;

/// An encryption method of `crypto_provide` / `crypto_select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The handshake is obfuscated, the stream after it is not (bit 0x01).
    Plaintext,
    /// The whole stream is RC4-encrypted (bit 0x02).
    Rc4,
}

impl Method {
    /// The method's bit in `crypto_provide` / `crypto_select`.
    pub fn bit(self) -> u32 {
        match self {
            Method::Plaintext => 0x01,
            Method::Rc4 => 0x02,
        }
    }

    /// The method whose bit this is (exactly one bit set).
    pub fn from_bit(bit: u32) -> Option<Method> {
        [Method::Plaintext, Method::Rc4].into_iter().find(|m| m.bit() == bit)
    }
}

/// A set of methods (`crypto_provide`, or what a side allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoSet(u32);

impl CryptoSet {
    /// Plaintext only.
    pub const PLAINTEXT: CryptoSet = CryptoSet(0x01);
    /// RC4 only.
    pub const RC4: CryptoSet = CryptoSet(0x02);
    /// Both.
    pub const ALL: CryptoSet = CryptoSet(0x03);

    /// The set's bits as sent on the wire.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether `m` is in the set.
    pub fn contains(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }
}
