//! Immutable and mutable items, their targets and the signed buffer.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha1::{Digest, Sha1};

use crate::{ItemError, Keypair};

/// Largest bencoded value a node stores (BEP 44: larger puts may be refused, with 205).
pub const MAX_VALUE_LEN: usize = 1000;

/// Largest salt (BEP 44: "MUST NOT be longer than 64 bytes"; refused with 207).
pub const MAX_SALT_LEN: usize = 64;

/// The target of an immutable item: SHA-1 of the bencoded value.
pub fn immutable_target(value: &[u8]) -> [u8; 20] {
    Sha1::digest(value).into()
}

/// The target of a mutable item: SHA-1 of the public key followed by the salt (empty salt is
/// the same as none).
pub fn mutable_target(public_key: &[u8; 32], salt: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(public_key);
    h.update(salt);
    h.finalize().into()
}

/// The bytes a mutable item's signature covers, exactly as BEP 44 gives them:
/// `4:salt<len>:<salt>` (only for a non-empty salt), then `3:seqi<seq>e1:v`, then the
/// bencoded value as is.
pub fn signed_buffer(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(salt.len() + value.len() + 40);
    if !salt.is_empty() {
        buf.extend_from_slice(b"4:salt");
        buf.extend_from_slice(salt.len().to_string().as_bytes());
        buf.push(b':');
        buf.extend_from_slice(salt);
    }
    buf.extend_from_slice(b"3:seqi");
    buf.extend_from_slice(seq.to_string().as_bytes());
    buf.extend_from_slice(b"e1:v");
    buf.extend_from_slice(value);
    buf
}

/// Checks that `value` is one canonical bencoded value of at most [`MAX_VALUE_LEN`] bytes.
pub fn validate_value(value: &[u8]) -> Result<(), ItemError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ItemError::ValueTooBig { len: value.len() });
    }
    let parsed = mycel_bencode::decode(value).map_err(|_| ItemError::NotBencode)?;
    let mut again = Vec::with_capacity(value.len());
    parsed.encode(&mut again);
    if again != value {
        return Err(ItemError::NotBencode);
    }
    Ok(())
}

/// A valid immutable item: a bencoded value of at most 1000 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImmutableItem {
    value: Vec<u8>,
}

impl ImmutableItem {
    /// Validates `value` (one canonical bencoded value, at most 1000 bytes).
    pub fn new(value: Vec<u8>) -> Result<Self, ItemError> {
        validate_value(&value)?;
        Ok(ImmutableItem { value })
    }

    /// Wraps raw bytes as a bencoded string (`<len>:<bytes>`) and validates the result.
    pub fn from_bytes(data: &[u8]) -> Result<Self, ItemError> {
        Self::new(bencode_string(data))
    }

    /// The bencoded value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// SHA-1 of the value: where it is stored.
    pub fn target(&self) -> [u8; 20] {
        immutable_target(&self.value)
    }
}

/// A valid mutable item: value, sequence number, salt and public key, with a signature that
/// verifies over them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MutableItem {
    k: [u8; 32],
    salt: Vec<u8>,
    seq: i64,
    value: Vec<u8>,
    sig: [u8; 64],
}

impl MutableItem {
    /// Checks an item received from the network (or read back from disk): sizes, bencoding,
    /// then the signature. The cheap checks run first, so a flood of oversized items costs
    /// no signature verifications.
    pub fn verify(k: [u8; 32], salt: Vec<u8>, seq: i64, value: Vec<u8>, sig: [u8; 64]) -> Result<Self, ItemError> {
        check_shape(&salt, seq, &value)?;
        let key = VerifyingKey::from_bytes(&k).map_err(|_| ItemError::InvalidSignature)?;
        let signature = Signature::from_bytes(&sig);
        key.verify(&signed_buffer(&salt, seq, &value), &signature).map_err(|_| ItemError::InvalidSignature)?;
        Ok(MutableItem { k, salt, seq, value, sig })
    }

    /// Signs `value` with `key` under `salt` and `seq`.
    pub fn sign(key: &Keypair, salt: Vec<u8>, seq: i64, value: Vec<u8>) -> Result<Self, ItemError> {
        check_shape(&salt, seq, &value)?;
        let sig = key.sign(&signed_buffer(&salt, seq, &value));
        Ok(MutableItem { k: key.public_key(), salt, seq, value, sig })
    }

    /// The ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.k
    }

    /// The salt (empty when none).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// The sequence number.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// The bencoded value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.sig
    }

    /// SHA-1 of key and salt: where it is stored.
    pub fn target(&self) -> [u8; 20] {
        mutable_target(&self.k, &self.salt)
    }
}

fn check_shape(salt: &[u8], seq: i64, value: &[u8]) -> Result<(), ItemError> {
    if salt.len() > MAX_SALT_LEN {
        return Err(ItemError::SaltTooBig { len: salt.len() });
    }
    if seq < 0 {
        return Err(ItemError::NegativeSeq(seq));
    }
    validate_value(value)
}

/// `<len>:<bytes>`.
fn bencode_string(data: &[u8]) -> Vec<u8> {
    let mut out = data.len().to_string().into_bytes();
    out.push(b':');
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_signatures() {
        let key = Keypair::from_seed([1; 32]);
        let big = bencode_string(&[b'x'; 996]);
        assert_eq!(big.len(), 1000);
        assert!(MutableItem::sign(&key, vec![], 0, big.clone()).is_ok());
        let too_big = bencode_string(&[b'x'; 997]);
        assert_eq!(MutableItem::sign(&key, vec![], 0, too_big), Err(ItemError::ValueTooBig { len: 1001 }));
        assert_eq!(MutableItem::verify([0; 32], vec![0; 65], 0, big, [0; 64]), Err(ItemError::SaltTooBig { len: 65 }));
        assert_eq!(ImmutableItem::new(b"d1:bi1e1:ai2ee".to_vec()), Err(ItemError::NotBencode));
        assert_eq!(ImmutableItem::new(b"3:abc3:def".to_vec()), Err(ItemError::NotBencode));
        assert_eq!(MutableItem::sign(&key, vec![], -1, b"i1e".to_vec()), Err(ItemError::NegativeSeq(-1)));
    }

    #[test]
    fn error_codes() {
        assert_eq!(ItemError::ValueTooBig { len: 1 }.code(), 205);
        assert_eq!(ItemError::InvalidSignature.code(), 206);
        assert_eq!(ItemError::SaltTooBig { len: 1 }.code(), 207);
        assert_eq!(ItemError::NotBencode.code(), 203);
    }

    #[test]
    fn from_bytes_wraps_as_string() {
        let item = ImmutableItem::from_bytes(b"Hello World!").expect("small");
        assert_eq!(item.value(), b"12:Hello World!");
    }
}
