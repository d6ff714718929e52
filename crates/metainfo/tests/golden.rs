//! Golden torrents made by libtorrent (`testdata/torrents/make.py`, cases in `cases.txt`):
//! mycel must parse each with libtorrent's info-hashes, and create the same info-hashes
//! from the same files, piece length and format.
//!
//! The files are read with `std::fs`, which the sans-IO rule allows in tests.

#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use mycel_metainfo::{CreateOptions, FileSpec, InfoHashes, Metainfo, MetainfoError, TorrentBuilder, TorrentVersion};

struct Case {
    name: String,
    version: TorrentVersion,
    piece_length: u32,
    root: String,
    single: bool,
    files: Vec<(Vec<String>, u64, u64)>,
    expect: String,
    v1: String,
    v2: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/torrents")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.txt")).expect("cases.txt");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 9, "{l}");
            let version = match f[1] {
                "v1" => TorrentVersion::V1,
                "v2" => TorrentVersion::V2,
                _ => TorrentVersion::Hybrid,
            };
            let files = f[5]
                .split(';')
                .map(|spec| {
                    let p: Vec<&str> = spec.split('=').collect();
                    let path = p[0].split('/').map(String::from).collect();
                    (path, p[1].parse().expect("length"), p[2].parse().expect("seed"))
                })
                .collect();
            Case {
                name: f[0].into(),
                version,
                piece_length: f[2].parse().expect("piece length"),
                root: f[3].into(),
                single: f[4] == "1",
                files,
                expect: f[6].into(),
                v1: f[7].into(),
                v2: f[8].into(),
            }
        })
        .collect()
}

/// The content make.py writes: byte j is (j * (2*seed + 1) + (j >> 9) + seed) mod 256.
fn content(seed: u64, len: u64) -> Vec<u8> {
    (0..len).map(|j| (j.wrapping_mul(2 * seed + 1).wrapping_add(j >> 9).wrapping_add(seed) & 0xff) as u8).collect()
}

fn hex_pair(h: InfoHashes) -> (String, String) {
    (h.v1().map_or("-".into(), |a| a.to_hex()), h.v2().map_or("-".into(), |b| b.to_hex()))
}

/// Creates the case's torrent with mycel.
fn create(c: &Case) -> Metainfo {
    let data: Vec<Vec<u8>> = c.files.iter().map(|(_, len, seed)| content(*seed, *len)).collect();
    let opts = CreateOptions { version: c.version, piece_length: Some(c.piece_length), ..CreateOptions::default() };
    let mut b = if c.single {
        TorrentBuilder::single_file(&c.root, c.files[0].1, opts)
    } else {
        let specs = c
            .files
            .iter()
            .map(|(path, length, _)| FileSpec { path: path.clone(), length: *length, executable: false, hidden: false })
            .collect();
        TorrentBuilder::directory(&c.root, specs, opts)
    }
    .expect("valid files");
    b.hash_all(|file, offset, buf: &mut [u8]| -> Result<(), ()> {
        let at = offset as usize;
        buf.copy_from_slice(&data[file][at..at + buf.len()]);
        Ok(())
    })
    .expect("in memory");
    Metainfo::from_bytes(&b.finish().expect("all pieces")).expect("mycel parses its own torrent")
}

#[test]
fn libtorrent_torrents_parse_with_its_hashes() {
    let cases = cases();
    assert!(cases.len() >= 10);
    for c in cases.iter().filter(|c| c.expect == "ok") {
        let bytes = std::fs::read(dir().join(format!("{}.torrent", c.name))).expect("torrent file");
        let m = Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(hex_pair(m.info_hashes()), (c.v1.clone(), c.v2.clone()), "{}", c.name);
        assert_eq!(m.info().version(), c.version, "{}", c.name);
        assert_eq!(m.info().piece_length(), c.piece_length);
        let real: Vec<(String, u64)> =
            m.info().files().iter().filter(|f| !f.attr.pad).map(|f| (f.display_path(), f.length)).collect();
        let mut want: Vec<(Vec<String>, u64)> = c.files.iter().map(|(p, l, _)| (p.clone(), *l)).collect();
        want.sort();
        // BEP 52 cannot tell a directory with one file from a single file.
        let single = c.single || (c.version == TorrentVersion::V2 && c.files.len() == 1 && c.files[0].0.len() == 1);
        assert_eq!(m.info().is_single_file(), single, "{}", c.name);
        let want: Vec<(String, u64)> = want
            .into_iter()
            .map(|(p, l)| (if single { p.join("/") } else { format!("{}/{}", c.root, p.join("/")) }, l))
            .collect();
        assert_eq!(real, want, "{}", c.name);
        // Re-encoding keeps the info dictionary byte for byte.
        assert_eq!(Metainfo::from_bytes(&m.to_bytes()).map(|a| a.info_hashes()), Ok(m.info_hashes()));
    }
}

#[test]
fn mycel_creates_the_same_info_hashes_as_libtorrent() {
    for c in cases().iter().filter(|c| c.expect == "ok") {
        let ours = create(c);
        assert_eq!(hex_pair(ours.info_hashes()), (c.v1.clone(), c.v2.clone()), "{}", c.name);
        let theirs = Metainfo::from_bytes(&std::fs::read(dir().join(format!("{}.torrent", c.name))).expect("file"))
            .expect("parses");
        assert_eq!(ours.info_bytes(), theirs.info_bytes(), "{}", c.name);
        for i in 0..ours.info().files().len() {
            assert_eq!(ours.piece_layer(i), theirs.piece_layer(i), "{} file {i}", c.name);
        }
    }
}

#[test]
fn libtorrent_hybrid_with_inconsistent_order_is_rejected() {
    let c = cases().into_iter().find(|c| c.expect == "hybrid-mismatch").expect("a mismatch case");
    let bytes = std::fs::read(dir().join(format!("{}.torrent", c.name))).expect("file");
    match Metainfo::from_bytes(&bytes) {
        Err(MetainfoError::HybridMismatch(msg)) => assert!(msg.contains("order/sub.txt"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // mycel lays the same files out in file-tree order, which is consistent.
    let ours = create(&c);
    let paths: Vec<String> = ours.info().files().iter().filter(|f| !f.attr.pad).map(|f| f.display_path()).collect();
    assert_eq!(paths, ["order/sub/c", "order/sub.txt"]);
    assert!(ours.info_hashes().is_hybrid());
}
