//! Both roles against each other in memory, against a reference initiator written from
//! the spec, and against hostile input.

use mycel_mse::{CryptoSet, Established, Handshake, Method, MseError, Rc4Stream, KEYSTREAM_DISCARD};
use num_bigint::BigUint;
use proptest::prelude::*;
use rc4::consts::U20;
use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};

const SKEY: [u8; 20] = [0x11; 20];
const OTHER: [u8; 20] = [0x22; 20];

/// Runs both sides, delivering each side's output in chunks of the sizes `cuts` cycles
/// through; returns both results.
fn run(
    mut a: Handshake,
    mut b: Handshake,
    cuts: &[usize],
) -> (Result<Established, MseError>, Result<Established, MseError>) {
    let mut cut = cuts.iter().copied().cycle();
    let (mut to_b, mut to_a): (Vec<u8>, Vec<u8>) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        to_b.extend(a.poll_transmit().unwrap_or_default());
        to_a.extend(b.poll_transmit().unwrap_or_default());
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        if !to_b.is_empty() {
            let n = cut.next().unwrap_or(1).clamp(1, to_b.len());
            let chunk: Vec<u8> = to_b.drain(..n).collect();
            if let Err(e) = b.handle_bytes(&chunk) {
                return (a.poll_established().ok_or(MseError::Over), Err(e));
            }
        }
        if !to_a.is_empty() {
            let n = cut.next().unwrap_or(1).clamp(1, to_a.len());
            let chunk: Vec<u8> = to_a.drain(..n).collect();
            if let Err(e) = a.handle_bytes(&chunk) {
                return (Err(e), b.poll_established().ok_or(MseError::Over));
            }
        }
    }
    (a.poll_established().ok_or(MseError::Over), b.poll_established().ok_or(MseError::Over))
}

fn pair(provide: CryptoSet, allowed: CryptoSet, prefer: Method, seed: u8) -> (Handshake, Handshake) {
    (
        Handshake::initiator(SKEY, provide, [seed; 32]),
        Handshake::responder(vec![OTHER, SKEY], allowed, prefer, [seed.wrapping_add(1); 32]),
    )
}

/// After the handshake, each side's cipher (if any) must carry data to the other.
fn check_streams(a: &mut Established, b: &mut Established) {
    let msg = b"\x13BitTorrent protocol and then some blocks".to_vec();
    let mut wire = msg.clone();
    if let (Some(ca), Some(cb)) = (&mut a.cipher, &mut b.cipher) {
        ca.encrypt.apply(&mut wire);
        assert_ne!(wire, msg);
        cb.decrypt.apply(&mut wire);
        assert_eq!(wire, msg);
        cb.encrypt.apply(&mut wire);
        ca.decrypt.apply(&mut wire);
        assert_eq!(wire, msg);
    } else {
        assert!(a.cipher.is_none() && b.cipher.is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn roles_agree_in_any_chunking(
        seed in any::<u8>(),
        cuts in prop::collection::vec(1usize..700, 1..8),
        provide in 1u32..4,
        allowed in 1u32..4,
        prefer_rc4 in any::<bool>(),
    ) {
        let provide = [CryptoSet::PLAINTEXT, CryptoSet::RC4, CryptoSet::ALL][provide as usize - 1];
        let allowed = [CryptoSet::PLAINTEXT, CryptoSet::RC4, CryptoSet::ALL][allowed as usize - 1];
        let prefer = if prefer_rc4 { Method::Rc4 } else { Method::Plaintext };
        let (a, b) = pair(provide, allowed, prefer, seed);
        let common = provide.bits() & allowed.bits();
        match run(a, b, &cuts) {
            (Ok(mut a), Ok(mut b)) => {
                prop_assert!(common != 0);
                prop_assert_eq!(a.method, b.method);
                prop_assert!(provide.contains(a.method) && allowed.contains(a.method));
                if common == 3 {
                    prop_assert_eq!(a.method, prefer);
                }
                prop_assert_eq!(b.info_hash, SKEY);
                prop_assert!(a.payload.is_empty() && b.payload.is_empty());
                check_streams(&mut a, &mut b);
            }
            (_, Err(e)) => {
                prop_assert_eq!(common, 0);
                prop_assert!(matches!(e, MseError::NoCommonMethod { .. }), "{e:?}");
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2000), cut in 1usize..300) {
        for mut h in [
            Handshake::responder(vec![SKEY], CryptoSet::ALL, Method::Plaintext, [3; 32]),
            Handshake::initiator(SKEY, CryptoSet::ALL, [4; 32]),
        ] {
            for c in data.chunks(cut) {
                if h.handle_bytes(c).is_err() {
                    prop_assert_eq!(h.handle_bytes(c), Err(MseError::Over));
                    break;
                }
                prop_assert!(h.buffered() <= mycel_mse::MAX_IA);
            }
        }
        mycel_mse::fuzzing::handshake(&data);
    }
}

#[test]
fn wrong_skey_is_rejected() {
    let a = Handshake::initiator([0x77; 20], CryptoSet::ALL, [5; 32]);
    let b = Handshake::responder(vec![SKEY, OTHER], CryptoSet::ALL, Method::Plaintext, [6; 32]);
    assert_eq!(run(a, b, &[1000]).1.err(), Some(MseError::UnknownInfoHash));
}

#[test]
fn plain_bittorrent_handshake_or_garbage_does_not_sync() {
    let mut b = Handshake::responder(vec![SKEY], CryptoSet::ALL, Method::Plaintext, [7; 32]);
    // 96 bytes that happen to be a fine public key, then no req1 in the next 532 bytes.
    let mut data = vec![0x42u8; 96];
    data.extend(std::iter::repeat_n(0xab, 531));
    assert_eq!(b.handle_bytes(&data), Ok(()));
    assert_eq!(b.buffered(), 531);
    assert_eq!(b.handle_bytes(&[0xab]), Err(MseError::NoSync { window: 532 }));
    assert_eq!(b.handle_bytes(&[0]), Err(MseError::Over));

    let mut b = Handshake::responder(vec![SKEY], CryptoSet::ALL, Method::Plaintext, [7; 32]);
    assert_eq!(b.handle_bytes(&[0u8; 96]), Err(MseError::BadPublicKey));
}

#[test]
fn initiator_rejects_a_responder_that_never_syncs() {
    let mut a = Handshake::initiator(SKEY, CryptoSet::ALL, [8; 32]);
    let mut data = vec![0x42u8; 96];
    data.extend([0x99; 520]);
    assert_eq!(a.handle_bytes(&data), Err(MseError::NoSync { window: 520 }));
}

#[test]
fn truncated_handshakes_never_finish() {
    let (mut a, mut b) = pair(CryptoSet::ALL, CryptoSet::ALL, Method::Plaintext, 9);
    let ya = a.poll_transmit().expect("Ya");
    b.handle_bytes(&ya).expect("Ya is fine");
    let yb = b.poll_transmit().expect("Yb");
    a.handle_bytes(&yb).expect("Yb is fine");
    let step3 = a.poll_transmit().expect("step 3");
    for cut in 0..step3.len() {
        let (_, mut b2) = pair(CryptoSet::ALL, CryptoSet::ALL, Method::Plaintext, 9);
        b2.handle_bytes(&ya).expect("Ya");
        b2.handle_bytes(&step3[..cut]).expect("a prefix is not an error");
        assert!(!b2.is_established());
    }
}

// --- A reference initiator written from the spec, independent of the crate ---

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn fixed(n: &BigUint) -> [u8; 96] {
    let b = n.to_bytes_be();
    let mut out = [0u8; 96];
    out[96 - b.len()..].copy_from_slice(&b);
    out
}

fn raw_rc4(key: &[u8; 20], discard: usize) -> Rc4<U20> {
    let mut r = Rc4::<U20>::new(key.into());
    r.apply_keystream(&mut vec![0u8; discard]);
    r
}

const P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";

#[test]
fn reference_initiator_rc4_with_1024_byte_discard() {
    let p = BigUint::parse_bytes(P.as_bytes(), 16).expect("hex");
    let xa = BigUint::from_bytes_be(&[0x5c; 20]);
    let ya = fixed(&BigUint::from(2u32).modpow(&xa, &p));
    let mut b = Handshake::responder(vec![OTHER, SKEY], CryptoSet::ALL, Method::Plaintext, [10; 32]);
    let mut wire = ya.to_vec();
    wire.extend([0xee; 13]); // PadA
    b.handle_bytes(&wire).expect("Ya");
    let from_b = b.poll_transmit().expect("Yb");
    let s = fixed(&BigUint::from_bytes_be(&from_b[..96]).modpow(&xa, &p));

    let mut enc = raw_rc4(&sha1(&[b"keyA", &s, &SKEY]), 1024);
    let mut step3 = sha1(&[b"req1", &s]).to_vec();
    step3.extend(sha1(&[b"req2", &SKEY]).iter().zip(sha1(&[b"req3", &s])).map(|(x, y)| x ^ y));
    let hs = b"\x13BitTorrent protocol........".to_vec();
    let mut tail = vec![0u8; 8];
    tail.extend(2u32.to_be_bytes()); // RC4 only
    tail.extend(3u16.to_be_bytes());
    tail.extend([1, 2, 3]); // PadC
    tail.extend((hs.len() as u16).to_be_bytes());
    tail.extend(&hs); // IA
    tail.extend(b"after"); // the stream, RC4 from here on
    enc.apply_keystream(&mut tail);
    step3.extend(tail);
    b.handle_bytes(&step3).expect("step 3");
    let mut est = b.poll_established().expect("done");
    assert_eq!(est.method, Method::Rc4);
    assert_eq!(est.info_hash, SKEY);
    let mut want = hs.clone();
    want.extend(b"after");
    assert_eq!(est.payload, want);

    // Step 4: after PadB, VC encrypted with keyB whose first 1024 bytes were dropped.
    let step4 = b.poll_transmit().expect("step 4");
    let key_b = sha1(&[b"keyB", &s, &SKEY]);
    let mut vc = [0u8; 8];
    raw_rc4(&key_b, 1024).apply_keystream(&mut vc);
    let at = step4.windows(8).position(|w| w == vc).expect("encrypted VC present");
    assert_eq!(at, 0, "step 4 starts with the VC (PadB went out with Yb)");
    let mut no_discard = [0u8; 8];
    raw_rc4(&key_b, 0).apply_keystream(&mut no_discard);
    assert!(!step4.windows(8).any(|w| w == no_discard));
    let mut rest = step4[at..].to_vec();
    let mut dec = raw_rc4(&key_b, 1024);
    dec.apply_keystream(&mut rest);
    assert_eq!(&rest[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let pad_d = usize::from(u16::from_be_bytes([rest[12], rest[13]]));
    assert_eq!(rest.len(), 14 + pad_d);

    // The established streams continue those keystreams.
    let mut msg = *b"piece";
    est.cipher.as_mut().expect("rc4").encrypt.apply(&mut msg);
    dec.apply_keystream(&mut msg);
    assert_eq!(&msg, b"piece");
}

#[test]
fn rc4_stream_discards_1024_bytes() {
    let key = [0x3c; 20];
    let mut full = vec![0u8; KEYSTREAM_DISCARD + 64];
    Rc4::<U20>::new((&key).into()).apply_keystream(&mut full);
    let mut ours = [0u8; 64];
    Rc4Stream::new(&key).apply(&mut ours);
    assert_eq!(&ours[..], &full[KEYSTREAM_DISCARD..]);
}
