//! Diffie-Hellman over the spec's 768-bit prime, generator 2.

use num_bigint::BigUint;

use crate::KEY_LEN;

/// The prime P, big-endian.
const PRIME_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";

fn prime() -> BigUint {
    BigUint::parse_bytes(PRIME_HEX.as_bytes(), 16).expect("the prime literal is valid hex")
}

/// A private key and its public key.
pub(crate) struct KeyPair {
    private: BigUint,
    pub(crate) public: [u8; KEY_LEN],
}

impl KeyPair {
    /// From 160 random bits.
    pub(crate) fn new(private: &[u8; 20]) -> Self {
        let private = BigUint::from_bytes_be(private);
        let public = BigUint::from(2u32).modpow(&private, &prime());
        KeyPair { private, public: to_fixed(&public) }
    }

    /// The shared secret S from the peer's public key; `None` if the key is degenerate
    /// (outside 2..=P-2, which would make S guessable).
    pub(crate) fn shared(&self, peer: &[u8]) -> Option<[u8; KEY_LEN]> {
        let p = prime();
        let y = BigUint::from_bytes_be(peer);
        if y < BigUint::from(2u32) || y > &p - 2u32 {
            return None;
        }
        Some(to_fixed(&y.modpow(&self.private, &p)))
    }
}

/// `n` (< P) as 96 big-endian bytes.
fn to_fixed(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    out[KEY_LEN - bytes.len()..].copy_from_slice(&bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_degenerate_keys_are_refused() {
        let (a, b) = (KeyPair::new(&[3; 20]), KeyPair::new(&[9; 20]));
        assert_eq!(a.shared(&b.public), b.shared(&a.public));
        assert!(a.shared(&[0; KEY_LEN]).is_none());
        let mut one = [0; KEY_LEN];
        one[KEY_LEN - 1] = 1;
        assert!(a.shared(&one).is_none());
        assert!(a.shared(&[0xff; KEY_LEN]).is_none());
        assert!(a.shared(&to_fixed(&(prime() - 1u32))).is_none());
    }
}
