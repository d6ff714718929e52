//! Replays the committed fuzz corpus (`fuzz/corpus/mse_handshake`) through the fuzz body
//! and checks each seed is what its name says (`valid-*` completes a handshake, `bad-*`
//! does not), and that the committed seeds are what their generator below makes (run with
//! `MYCEL_WRITE_CORPUS=1` to write them again after changing the fuzz body).
//!
//! The corpus directory is read with `std::fs`, which the sans-IO rule allows in tests.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use mycel_mse::fuzzing::{handshake, responder, FUZZ_SKEY};
use mycel_mse::{CryptoSet, Handshake};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mse_handshake")
}

#[test]
fn replay_mse_handshake_corpus() {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("corpus dir")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let (mut valid, mut bad) = (0, 0);
    for p in &entries {
        let data = std::fs::read(p).expect("readable seed");
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let ok = handshake(&data);
        assert!(!name.starts_with("bad-") || !ok, "{name} was accepted");
        assert!(!name.starts_with("valid-") || ok, "{name} was rejected");
        valid += usize::from(ok);
        bad += usize::from(!ok);
    }
    assert!(valid > 0 && bad > 0, "{valid} valid and {bad} bad seeds; want both kinds");
}

/// What an initiator for `skey` offering `provide` sends to the fuzz body's responder.
fn initiator_bytes(skey: [u8; 20], provide: CryptoSet) -> Vec<u8> {
    let mut b = responder();
    let mut a = Handshake::initiator(skey, provide, [9; 32]);
    let mut sent = Vec::new();
    for _ in 0..4 {
        if let Some(x) = a.poll_transmit() {
            sent.extend(&x);
            let _ = b.handle_bytes(&x);
        }
        if let Some(y) = b.poll_transmit() {
            let _ = a.handle_bytes(&y);
        }
    }
    sent
}

#[test]
fn committed_seeds_match_their_generator() {
    let d = dir();
    let write = std::env::var_os("MYCEL_WRITE_CORPUS").is_some();
    let with = |chunk: u8, bytes: &[u8]| [&[chunk][..], bytes].concat();
    let all = initiator_bytes(FUZZ_SKEY, CryptoSet::ALL);
    let rc4 = initiator_bytes(FUZZ_SKEY, CryptoSet::RC4);
    let mut plain_bt = vec![19u8];
    plain_bt.extend(b"BitTorrent protocol");
    plain_bt.extend([0u8; 48]);
    let mut no_sync = vec![0x42u8; 96];
    no_sync.extend([0x17; 600]);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("valid-both-offered-chunk1.bin", with(1, &all)),
        ("valid-both-offered-whole.bin", with(255, &all)),
        ("valid-rc4-only-chunk7.bin", with(7, &rc4)),
        ("bad-wrong-skey.bin", with(64, &initiator_bytes([0x33; 20], CryptoSet::ALL))),
        ("bad-truncated.bin", with(16, &all[..all.len() - 1])),
        ("bad-plain-bittorrent-handshake.bin", with(68, &plain_bt)),
        ("bad-zero-public-key.bin", with(96, &[0u8; 96])),
        ("bad-no-sync.bin", with(100, &no_sync)),
    ];
    for (name, data) in seeds {
        if write {
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join(name), data).expect("write seed");
        } else {
            let committed = std::fs::read(d.join(name)).expect("committed seed");
            assert!(committed == data, "{name} differs from its generator (MYCEL_WRITE_CORPUS=1 rewrites it)");
        }
    }
}
