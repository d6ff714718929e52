//! Replays the committed fuzz corpora (`fuzz/corpus/peer_wire`, `fuzz/corpus/peer_wire_ext`,
//! `fuzz/corpus/peer_wire_pex`)
//! through the fuzz bodies, and checks each seed is what its name says.
//!
//! The corpus directories are read with `std::fs`, which the sans-IO rule allows in tests.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use mycel_peer_wire::{Bitfield, ExtendedHandshake, FrameDecoder, UtMetadata, UtPex, WireError};

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(name);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    entries
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string(), data)
        })
        .collect()
}

/// Whether `d` is a handshake (if it starts with 0x13) followed by whole, valid messages.
fn stream_is_valid(d: &[u8]) -> Result<(), WireError> {
    let mut rx = FrameDecoder::new(4096);
    rx.extend(d);
    if d.first() == Some(&0x13) && rx.handshake()?.is_none() {
        return Err(WireError::BadProtocol { offset: d.len() });
    }
    while rx.next()?.is_some() {}
    match rx.buffered() {
        0 => Ok(()),
        n => Err(WireError::BadLength { kind: "truncated tail", len: n as u32 }),
    }
}

/// Whether the extension seed decodes with the decoder its first byte selects.
fn extension_is_valid(d: &[u8]) -> bool {
    let Some((&which, rest)) = d.split_first() else { return false };
    match which % 4 {
        0 => ExtendedHandshake::decode(rest).is_ok(),
        1 => UtMetadata::decode(rest).is_ok(),
        2 => UtPex::decode(rest).is_ok(),
        _ => match rest {
            [a, b, bytes @ ..] => Bitfield::from_bytes(bytes, u32::from(u16::from_be_bytes([*a, *b]))).is_ok(),
            _ => false,
        },
    }
}

fn replay(name: &str, body: fn(&[u8]), valid: fn(&[u8]) -> bool) {
    let seeds = corpus(name);
    let mut ok = 0;
    for (file, data) in &seeds {
        body(data);
        let is_valid = valid(data);
        // Seeds are named for what they are: `bad-*` must be rejected, `valid-*` accepted.
        assert!(!file.starts_with("bad-") || !is_valid, "{name}/{file} was accepted");
        assert!(!file.starts_with("valid-") || is_valid, "{name}/{file} was rejected");
        ok += usize::from(is_valid);
    }
    assert!(ok > 0 && ok < seeds.len(), "{name}: {ok} of {} valid; want both kinds", seeds.len());
}

#[test]
fn replay_peer_wire_corpus() {
    replay("peer_wire", mycel_peer_wire::fuzzing::stream, |d| stream_is_valid(d).is_ok());
}

#[test]
fn replay_peer_wire_ext_corpus() {
    replay("peer_wire_ext", mycel_peer_wire::fuzzing::extension, extension_is_valid);
}

#[test]
fn replay_peer_wire_pex_corpus() {
    replay("peer_wire_pex", mycel_peer_wire::fuzzing::pex, |d| UtPex::decode(d).is_ok());
}
