//! ed25519 key pairs for mutable items: from a seed (SSK) or derived from a keyword (KSK).

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// Domain separator of keyword-derived keys: seed = SHA-256(`KEYWORD_PREFIX` + normalized
/// words). Changing it changes every KSK.
pub const KEYWORD_PREFIX: &str = "mycel-ksk:";

/// An ed25519 key pair. Made from a 32-byte seed the caller supplies (the binary draws it
/// from the OS, this crate never does), or derived from a keyword.
#[derive(Clone)]
pub struct Keypair {
    key: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Keypair").field("public_key", &self.public_key()).finish_non_exhaustive()
    }
}

impl Keypair {
    /// The key pair of this 32-byte secret seed (RFC 8032).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Keypair { key: SigningKey::from_bytes(&seed) }
    }

    /// The key pair every user of these keywords derives: seed = SHA-256(`mycel-ksk:` +
    /// [`normalize_keyword`]). Anyone who knows the words can sign with it: a KSK value is
    /// not authenticated, only its key is easy to find.
    pub fn from_keyword(words: &str) -> Self {
        let mut h = Sha256::new();
        h.update(KEYWORD_PREFIX.as_bytes());
        h.update(normalize_keyword(words).as_bytes());
        Self::from_seed(h.finalize().into())
    }

    /// The secret seed (for writing the key file).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Keywords are compared after normalization: lower case, words separated by single spaces,
/// no leading or trailing space. "Free  Music " and "free music" give the same key.
pub fn normalize_keyword(words: &str) -> String {
    words.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_normalization_and_derivation() {
        assert_eq!(normalize_keyword("  Free\tMUSIC  now "), "free music now");
        let a = Keypair::from_keyword("Free Music");
        let b = Keypair::from_keyword("free   music");
        assert_eq!(a.public_key(), b.public_key());
        assert_ne!(a.public_key(), Keypair::from_keyword("free musik").public_key());
        // Pinned: changing the derivation changes every KSK on the network.
        let expected: [u8; 32] = Sha256::digest(b"mycel-ksk:free music").into();
        assert_eq!(a.seed(), expected);
    }

    #[test]
    fn debug_hides_the_secret() {
        let k = Keypair::from_seed([0xab; 32]);
        assert!(!format!("{k:?}").contains("171, 171"));
    }
}
