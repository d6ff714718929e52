//! Bodies of the fuzz targets (`fuzz/fuzz_targets/mse_handshake.rs`), public so the
//! committed corpus can be replayed by ordinary tests.

use crate::{CryptoSet, Handshake, Method};

/// The info-hash the fuzz responder serves.
pub const FUZZ_SKEY: [u8; 20] = [0x5a; 20];

/// The responder the fuzz body runs: it serves [`FUZZ_SKEY`] and one other id.
pub fn responder() -> Handshake {
    Handshake::responder(vec![FUZZ_SKEY, [0xa5; 20]], CryptoSet::ALL, Method::Plaintext, [1; 32])
}

/// Feeds `data` to a responder and to an initiator, in chunks whose sizes come from the
/// first byte; returns whether the responder finished. Must never panic.
pub fn handshake(data: &[u8]) -> bool {
    let (chunk, rest) = match data.split_first() {
        Some((&c, rest)) => (usize::from(c).max(1), rest),
        None => return false,
    };
    let mut b = responder();
    let mut a = Handshake::initiator(FUZZ_SKEY, CryptoSet::ALL, [2; 32]);
    let mut b_ok = true;
    for piece in rest.chunks(chunk) {
        b_ok = b_ok && b.handle_bytes(piece).is_ok();
        let _ = a.handle_bytes(piece);
        let _ = (a.poll_transmit(), b.poll_transmit());
        // Whatever the input, the responder holds less than one field (at most the IA).
        assert!(b.buffered() <= crate::MAX_IA);
    }
    b_ok && b.poll_established().is_some()
}
