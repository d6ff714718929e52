//! Replays the committed fuzz corpus (`fuzz/corpus/bencode_decode`) through the fuzz body.
//!
//! The corpus directory is read with `std::fs`, which the sans-IO rule allows in tests.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

#[test]
fn replay_bencode_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/bencode_decode");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus dir {}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    let mut decoded = 0;
    for path in &entries {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        mycel_bencode::fuzzing::decode(&data);
        let ok = mycel_bencode::decode(&data).is_ok();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // Seeds are named for what they are: `bad-*` must be rejected, `valid-*` accepted.
        assert!(!name.starts_with("bad-") || !ok, "{name} decoded");
        assert!(!name.starts_with("valid-") || ok, "{name} was rejected");
        decoded += usize::from(ok);
    }
    // The corpus mixes valid and invalid inputs; both halves must be there to be useful.
    assert!(decoded > 0 && decoded < entries.len(), "{decoded} of {} decoded", entries.len());
}
