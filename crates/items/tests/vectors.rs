//! BEP 44's test vectors byte for byte (signed buffers, targets, signatures), and property
//! tests: valid items verify, any bit flip in key, salt, seq, value or signature fails.

use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::VerifyingKey;
use mycel_items::{immutable_target, mutable_target, signed_buffer, ImmutableItem, ItemError, Keypair, MutableItem};
use proptest::prelude::*;

const VALUE: &[u8] = b"12:Hello World!";
const PUBLIC: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
/// BEP 44 gives the 64-byte expanded secret key (clamped scalar, then the hash prefix).
const SECRET: &str = "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d\
                      b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d";
const SIG1: &str = "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
                    1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01";
const SIG2: &str = "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
                    df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08";

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let clean: String = s.split_whitespace().collect();
    hex::decode(clean).expect("hex literal").try_into().expect("length")
}

/// Signs with the BEP's expanded key, as libtorrent's ed25519 does.
fn sign_with_vector_key(message: &[u8]) -> [u8; 64] {
    let esk = ExpandedSecretKey::from_bytes(&unhex::<64>(SECRET));
    let public = VerifyingKey::from(&esk);
    assert_eq!(public.to_bytes(), unhex::<32>(PUBLIC), "the expanded key gives the BEP's public key");
    raw_sign::<sha2::Sha512>(&esk, message, &public).to_bytes()
}

#[test]
fn test_1_mutable() {
    let buf = signed_buffer(b"", 1, VALUE);
    assert_eq!(buf, b"3:seqi1e1:v12:Hello World!");
    assert_eq!(sign_with_vector_key(&buf), unhex::<64>(SIG1), "signature byte for byte");
    let item = MutableItem::verify(unhex(PUBLIC), vec![], 1, VALUE.to_vec(), unhex(SIG1)).expect("valid");
    assert_eq!(hex::encode(item.target()), "4a533d47ec9c7d95b1ad75f576cffc641853b750");
    assert_eq!(item.target(), mutable_target(&unhex(PUBLIC), b""));
}

#[test]
fn test_2_mutable_with_salt() {
    let buf = signed_buffer(b"foobar", 1, VALUE);
    assert_eq!(buf, b"4:salt6:foobar3:seqi1e1:v12:Hello World!");
    assert_eq!(sign_with_vector_key(&buf), unhex::<64>(SIG2), "signature byte for byte");
    let item = MutableItem::verify(unhex(PUBLIC), b"foobar".to_vec(), 1, VALUE.to_vec(), unhex(SIG2)).expect("valid");
    assert_eq!(hex::encode(item.target()), "411eba73b6f087ca51a3795d9c8c938d365e32c1");
    // The salt is part of what is signed: the same signature without it fails.
    assert_eq!(
        MutableItem::verify(unhex(PUBLIC), vec![], 1, VALUE.to_vec(), unhex(SIG2)),
        Err(ItemError::InvalidSignature)
    );
}

#[test]
fn test_3_immutable() {
    let item = ImmutableItem::new(VALUE.to_vec()).expect("valid");
    assert_eq!(hex::encode(item.target()), "e5f96f6f38320f0f33959cb4d3d656452117aadb");
    assert_eq!(item.target(), immutable_target(VALUE));
}

#[test]
fn seed_keys_sign_deterministically() {
    let key = Keypair::from_seed([3; 32]);
    let a = MutableItem::sign(&key, b"s".to_vec(), 5, b"i42e".to_vec()).expect("valid");
    let b = MutableItem::sign(&key, b"s".to_vec(), 5, b"i42e".to_vec()).expect("valid");
    assert_eq!(a, b, "ed25519 signatures are deterministic");
}

fn flip(bytes: &mut [u8], bit: usize) {
    let i = bit / 8 % bytes.len();
    bytes[i] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn valid_items_verify_and_bit_flips_fail(
        seed in any::<[u8; 32]>(),
        salt in proptest::collection::vec(any::<u8>(), 0..=64),
        seq in 0..i64::MAX,
        data in proptest::collection::vec(any::<u8>(), 0..200),
        which in 0..5usize,
        bit in any::<usize>(),
    ) {
        let key = Keypair::from_seed(seed);
        let value = ImmutableItem::from_bytes(&data).expect("small").value().to_vec();
        let item = MutableItem::sign(&key, salt.clone(), seq, value.clone()).expect("valid");
        let again = MutableItem::verify(*item.public_key(), salt.clone(), seq, value.clone(), *item.signature());
        prop_assert_eq!(again.as_ref(), Ok(&item));

        let (mut k, mut salt, mut seq, mut value, mut sig) = (*item.public_key(), salt, seq, value, *item.signature());
        match which {
            0 => flip(&mut k, bit),
            1 if !salt.is_empty() => flip(&mut salt, bit),
            1 => salt.push(1),
            2 => seq ^= 1 << (bit % 62),
            // Flip inside the string payload so the value stays valid bencode.
            3 if !data.is_empty() => {
                let at = value.len() - data.len() + bit % data.len();
                value[at] ^= 1 << (bit % 8);
            }
            3 => value = b"1:x".to_vec(),
            _ => flip(&mut sig, bit),
        }
        prop_assert!(MutableItem::verify(k, salt, seq, value, sig).is_err());
    }
}
