//! RC4 streams with the spec's 1024-byte discard.

use std::fmt;

use rc4::consts::U20;
use rc4::{KeyInit, Rc4, StreamCipher};

/// Keystream bytes dropped after keying, before the first byte is used.
pub const KEYSTREAM_DISCARD: usize = 1024;

/// One direction of an RC4 stream keyed with a 20-byte key, its first
/// [`KEYSTREAM_DISCARD`] bytes already dropped.
pub struct Rc4Stream(Rc4<U20>);

impl Rc4Stream {
    /// Keys the stream and drops the first 1024 bytes of keystream.
    pub fn new(key: &[u8; 20]) -> Self {
        let mut rc4 = Rc4::<U20>::new(key.into());
        let mut discard = [0u8; KEYSTREAM_DISCARD];
        rc4.apply_keystream(&mut discard);
        Rc4Stream(rc4)
    }

    /// Encrypts or decrypts `buf` in place (xor with the next keystream bytes).
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}

impl fmt::Debug for Rc4Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rc4Stream(..)")
    }
}

/// Both directions of an RC4 connection.
#[derive(Debug)]
pub struct Cipher {
    /// Applied to every byte sent.
    pub encrypt: Rc4Stream,
    /// Applied to every byte received.
    pub decrypt: Rc4Stream,
}
