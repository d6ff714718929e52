//! Replays the committed fuzz corpus of the `dht_node` target in `cargo test`.

#![allow(clippy::disallowed_methods)] // a test reads its corpus files

use std::path::Path;

#[test]
fn dht_node_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dht_node");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory exists") {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        mycel_dht::fuzzing::datagrams(&data);
        n += 1;
    }
    assert!(n >= 10, "corpus has only {n} inputs");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Arbitrary record sequences never panic and never break the node's bounds.
    #[test]
    fn arbitrary_sequences_keep_the_node_bounded(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        mycel_dht::fuzzing::datagrams(&data);
    }
}
