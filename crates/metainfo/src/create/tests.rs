//! Tests of torrent creation: layouts, hashes, and the parse-back of every format.

use super::*;
use crate::merkle::MerkleTree;
use crate::{InfoHashes, Metainfo};

fn content(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (j * (i + 3) + j / 1000) as u8).collect()
}

fn spec(p: &str, len: u64) -> FileSpec {
    FileSpec { path: p.split('/').map(String::from).collect(), length: len, executable: false, hidden: false }
}

/// Files given out of order, with an empty one and one exactly a piece long.
fn fixture() -> (Vec<FileSpec>, Vec<Vec<u8>>) {
    let specs = vec![spec("sub/c.dat", 70_000), spec("a.txt", 100), spec("empty", 0), spec("b.bin", 16_384)];
    let data = specs.iter().enumerate().map(|(i, s)| content(i, s.length as usize)).collect();
    (specs, data)
}

fn reader(data: &[Vec<u8>]) -> impl FnMut(usize, u64, &mut [u8]) -> Result<(), String> + '_ {
    |file, offset, buf| {
        let at = offset as usize;
        let src = data[file].get(at..at + buf.len()).ok_or("read past the end")?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn build(version: TorrentVersion, pl: u32) -> (TorrentBuilder, Vec<u8>, Vec<Vec<u8>>) {
    let (specs, data) = fixture();
    let opts = CreateOptions { version, piece_length: Some(pl), ..CreateOptions::default() };
    let mut b = TorrentBuilder::directory("d", specs, opts).expect("valid");
    b.hash_all(reader(&data)).expect("hashed");
    let bytes = b.finish().expect("finished");
    (b, bytes, data)
}

#[test]
fn hybrid_layout_matches_libtorrent_conventions() {
    let (b, bytes, data) = build(TorrentVersion::Hybrid, 16_384);
    let names: Vec<String> = b.files().iter().map(FileEntry::display_path).collect();
    // Sorted; a pad after every non-empty file that does not end on a boundary, the last
    // one included; none after the aligned `b.bin` or the empty file.
    assert_eq!(names, ["d/a.txt", "d/.pad/16284", "d/b.bin", "d/empty", "d/sub/c.dat", "d/.pad/11920"]);
    assert_eq!(b.source_index(0), Some(1));
    assert_eq!(b.source_index(1), None);
    let m = Metainfo::from_bytes(&bytes).expect("parses");
    let info = m.info();
    assert!(matches!(info.info_hashes(), InfoHashes::Hybrid(..)));
    assert_eq!(
        info.files(),
        b.files()
            .iter()
            .zip(info.files())
            .map(|(f, g)| FileEntry { pieces_root: g.pieces_root, ..f.clone() })
            .collect::<Vec<_>>()
    );
    // Every v2 root is the merkle root of the file's data.
    for (f, src) in info.files().iter().zip(0..).filter(|(f, _)| !f.attr.pad && f.length > 0) {
        let i = b.source_index(src).expect("real file");
        assert_eq!(f.pieces_root, Some(MerkleTree::from_data(&data[i]).root()), "{}", f.display_path());
    }
    // Every v1 piece is the SHA-1 of the concatenated data with zero pads.
    let mut flat = Vec::new();
    for (k, f) in b.files().iter().enumerate() {
        match b.source_index(k) {
            Some(i) => flat.extend_from_slice(&data[i]),
            None => flat.resize(flat.len() + f.length as usize, 0),
        }
    }
    let expected: Vec<[u8; 20]> = flat.chunks(16_384).map(|c| Sha1::digest(c).into()).collect();
    assert_eq!(info.v1_piece_hashes(), &expected[..]);
    assert_eq!(m.piece_layer(4).map(<[_]>::len), Some(5));
}

#[test]
fn v1_has_no_pads_and_pieces_span_files() {
    let (b, bytes, data) = build(TorrentVersion::V1, 32_768);
    assert!(b.files().iter().all(|f| !f.attr.pad));
    let m = Metainfo::from_bytes(&bytes).expect("parses");
    assert!(matches!(m.info_hashes(), InfoHashes::V1(_)));
    let order = ["a.txt", "b.bin", "empty", "sub/c.dat"];
    let flat: Vec<u8> = order
        .iter()
        .flat_map(|n| {
            let i = fixture().0.iter().position(|s| s.path.join("/") == *n).expect("present");
            data[i].clone()
        })
        .collect();
    let expected: Vec<[u8; 20]> = flat.chunks(32_768).map(|c| Sha1::digest(c).into()).collect();
    assert_eq!(m.info().v1_piece_hashes(), &expected[..]);
    assert_eq!(m.info().piece_space_size(), 86_484);
}

#[test]
fn v2_lists_no_pads_but_keeps_the_aligned_layout() {
    let (b, bytes, data) = build(TorrentVersion::V2, 32_768);
    let m = Metainfo::from_bytes(&bytes).expect("parses");
    let info = m.info();
    assert!(matches!(info.info_hashes(), InfoHashes::V2(_)));
    assert_eq!(info.files().len(), 4);
    assert!(info.files().iter().all(|f| !f.attr.pad));
    // The files with data start where the builder put them (empty files have no position).
    let starts: Vec<u64> = b.files().iter().filter(|f| !f.attr.pad && f.length > 0).map(|f| f.offset).collect();
    assert_eq!(info.files().iter().filter(|f| f.length > 0).map(|f| f.offset).collect::<Vec<_>>(), starts);
    assert_eq!(info.num_pieces(), b.num_pieces());
    let c = &info.files()[3];
    assert_eq!(c.pieces_root, Some(MerkleTree::from_data(&data[0]).root()));
    assert_eq!(m.piece_layer(3), MerkleTree::from_data(&data[0]).piece_layer(32_768).as_deref());
    assert!(!bytes.windows(7).any(|w| w == b"5:files"));
}

#[test]
fn single_file_in_every_format() {
    let data = content(9, 50_000);
    for version in [TorrentVersion::V1, TorrentVersion::V2, TorrentVersion::Hybrid] {
        let opts = CreateOptions { version, piece_length: Some(16_384), ..CreateOptions::default() };
        let mut b = TorrentBuilder::single_file("one.bin", data.len() as u64, opts).expect("valid");
        b.hash_all(reader(std::slice::from_ref(&data))).expect("hashed");
        let m = Metainfo::from_bytes(&b.finish().expect("done")).expect("parses");
        assert_eq!(m.info().version(), version);
        assert!(m.info().is_single_file());
        assert_eq!(m.info().files().len(), 1, "{version:?}: no pad for a single file");
        assert_eq!(m.info().files()[0].path, ["one.bin"]);
    }
}

#[test]
fn parallel_api_gives_the_same_torrent() {
    let (_, sequential, data) = build(TorrentVersion::Hybrid, 16_384);
    let opts = CreateOptions { piece_length: Some(16_384), ..CreateOptions::default() };
    let mut b = TorrentBuilder::directory("d", fixture().0, opts).expect("valid");
    assert_eq!(b.finish(), Err(CreateError::MissingPiece(0)));
    let mut buf = Vec::new();
    let results: Vec<PieceHashes> =
        (0..b.num_pieces()).rev().map(|p| b.hash_piece(p, &mut buf, reader(&data)).expect("hashed")).collect();
    for (p, h) in (0..b.num_pieces()).rev().zip(results) {
        b.set_piece_hashes(p, h).expect("in range");
    }
    let h = b.hash_piece(0, &mut buf, reader(&data)).expect("hashed");
    assert_eq!(b.set_piece_hashes(99, h), Err(CreateError::PieceOutOfRange(99)));
    assert_eq!(b.set_piece_hashes(0, PieceHashes { v2: None, ..h }), Err(CreateError::IncompleteHashes(0)));
    assert_eq!(b.finish().expect("done"), sequential);
}

#[test]
fn reader_errors_propagate() {
    let opts = CreateOptions { piece_length: Some(16_384), ..CreateOptions::default() };
    let mut b = TorrentBuilder::single_file("x", 20_000, opts).expect("valid");
    let short = vec![vec![0u8; 100]];
    assert_eq!(b.hash_all(reader(&short)), Err("read past the end".to_string()));
}

#[test]
fn header_fields_and_attrs() {
    let mut exe = spec("run.sh", 10);
    exe.executable = true;
    let opts = CreateOptions {
        trackers: vec![vec!["udp://a:1".into()], vec!["udp://b:2".into()]],
        web_seeds: vec!["http://w/".into()],
        comment: Some("c".into()),
        created_by: Some("mycel".into()),
        creation_date: Some(1_700_000_000),
        private: true,
        ..CreateOptions::default()
    };
    let mut b = TorrentBuilder::directory("d", vec![exe, spec("z", 5)], opts).expect("valid");
    let data = vec![vec![1u8; 10], vec![2u8; 5]];
    b.hash_all(reader(&data)).expect("hashed");
    let m = Metainfo::from_bytes(&b.finish().expect("done")).expect("parses");
    assert_eq!(m.announce(), Some("udp://a:1"));
    assert_eq!(m.trackers().len(), 2);
    assert_eq!((m.comment(), m.created_by(), m.creation_date()), (Some("c"), Some("mycel"), Some(1_700_000_000)));
    assert_eq!(m.web_seeds(), ["http://w/".to_string()]);
    assert!(m.info().is_private());
    assert!(m.info().files()[0].attr.executable);
    // One tracker: `announce` only, as libtorrent writes it.
    let opts = CreateOptions { trackers: vec![vec!["udp://a:1".into()]], ..CreateOptions::default() };
    let mut b = TorrentBuilder::single_file("x", 1, opts).expect("valid");
    b.hash_all(reader(&[vec![0]])).expect("hashed");
    let m = Metainfo::from_bytes(&b.finish().expect("done")).expect("parses");
    assert_eq!((m.announce(), m.announce_list().len()), (Some("udp://a:1"), 0));
}

#[test]
fn bad_input() {
    let o = CreateOptions::default;
    assert_eq!(TorrentBuilder::directory("d", vec![], o()).err(), Some(CreateError::NoContent));
    assert_eq!(TorrentBuilder::directory("d", vec![spec("e", 0)], o()).err(), Some(CreateError::NoContent));
    assert!(matches!(TorrentBuilder::directory("..", vec![spec("a", 1)], o()), Err(CreateError::UnsafePath { .. })));
    assert!(matches!(
        TorrentBuilder::directory("d", vec![spec("a/../b", 1)], o()),
        Err(CreateError::UnsafePath { .. })
    ));
    assert!(matches!(TorrentBuilder::directory("d", vec![spec("", 1)], o()), Err(CreateError::UnsafePath { .. })));
    let empty_path = FileSpec { path: vec![], length: 1, executable: false, hidden: false };
    assert!(matches!(TorrentBuilder::directory("d", vec![empty_path], o()), Err(CreateError::UnsafePath { .. })));
    assert_eq!(
        TorrentBuilder::directory("d", vec![spec("a", 1), spec("a/b", 1)], o()).err(),
        Some(CreateError::PathConflict("a".into()))
    );
    for pl in [0, 8_192, 20_000, 256 << 20] {
        let opts = CreateOptions { piece_length: Some(pl), ..o() };
        assert!(
            matches!(TorrentBuilder::single_file("x", 1, opts), Err(CreateError::InvalidPieceLength { .. })),
            "{pl}"
        );
    }
    assert_eq!(
        TorrentBuilder::directory("d", vec![spec("a", u64::MAX), spec("b", 1)], o()).err(),
        Some(CreateError::SizeOverflow)
    );
    let opts = CreateOptions { piece_length: Some(16_384), ..o() };
    assert_eq!(
        TorrentBuilder::single_file("x", u64::MAX / 2, opts).err(),
        Some(CreateError::TooManyPieces(562_949_953_421_312))
    );
}

#[test]
fn default_piece_lengths() {
    assert_eq!(default_piece_length(1), 16 << 10);
    assert_eq!(default_piece_length(2048 * 16_384), 16 << 10);
    assert_eq!(default_piece_length(2048 * 16_384 + 1), 32 << 10);
    assert_eq!(default_piece_length(1 << 30), 512 << 10);
    assert_eq!(default_piece_length(u64::MAX), 16 << 20);
}
