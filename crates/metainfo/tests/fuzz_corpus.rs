//! Replays the committed fuzz corpora (`fuzz/corpus/metainfo`, `fuzz/corpus/magnet`)
//! through the fuzz bodies. Seeds are named for what they are: `valid-*` must parse,
//! `bad-*` must be rejected.
//!
//! The corpus directories are read with `std::fs`, which the sans-IO rule allows in tests.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use mycel_metainfo::{fuzzing, Magnet, Metainfo};

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "corpus {} is empty", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string(), data)
        })
        .collect()
}

fn replay(name: &str, body: fn(&[u8]), accepts: fn(&[u8]) -> Result<(), String>) {
    let entries = corpus(name);
    let mut accepted = 0;
    for (file, data) in &entries {
        body(data);
        let result = accepts(data);
        assert!(!file.starts_with("bad-") || result.is_err(), "{file} was accepted");
        if file.starts_with("valid-") {
            assert_eq!(result, Ok(()), "{file} was rejected");
        }
        accepted += usize::from(result.is_ok());
    }
    // The corpus mixes valid and invalid inputs; both halves must be there to be useful.
    assert!(accepted > 0 && accepted < entries.len(), "{accepted} of {} accepted", entries.len());
}

#[test]
fn replay_metainfo_corpus() {
    replay("metainfo", fuzzing::metainfo, |d| Metainfo::from_bytes(d).map(|_| ()).map_err(|e| e.to_string()));
}

#[test]
fn replay_magnet_corpus() {
    replay("magnet", fuzzing::magnet, |d| {
        Magnet::parse(&String::from_utf8_lossy(d)).map(|_| ()).map_err(|e| e.to_string())
    });
}

/// The one-line messages the CLI will print for the corpus's bad torrents.
#[test]
fn bad_torrents_have_clear_messages() {
    let expected = [
        ("bad-path-dotdot.torrent", "unsafe path component \"..\" in `info.files[0].path`: relative component"),
        (
            "bad-path-absolute.torrent",
            "unsafe path component \"/etc/passwd\" in `info.files[0].path`: contains a path separator",
        ),
        ("bad-pieces-length.torrent", "`info.pieces` is 21 bytes, expected 20 (20 per piece)"),
        ("bad-meta-version-3.torrent", "meta version 3 is not supported (only 2 is)"),
        ("bad-v2-missing-piece-layers.torrent", "missing piece layer for `multi/b.bin`"),
        ("bad-v2-wrong-piece-layer.torrent", "bad piece layer for `multi/b.bin`: does not hash to the pieces root"),
        ("bad-duplicate-path.torrent", "conflicting paths: `d/a`"),
        ("bad-deep-nesting.torrent", "invalid bencode: nesting too deep at byte 70"),
    ];
    let entries = corpus("metainfo");
    for (file, msg) in expected {
        let data = &entries.iter().find(|(n, _)| n == file).unwrap_or_else(|| panic!("{file} missing")).1;
        assert_eq!(Metainfo::from_bytes(data).map(|_| ()).map_err(|e| e.to_string()), Err(msg.to_string()), "{file}");
    }
}
