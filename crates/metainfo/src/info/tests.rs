//! Tests of [`Info`] parsing: v1, v2, hybrid, and the validation rules.

use mycel_bencode::{Dict, Value};

use super::*;
use crate::{FileAttr, MetainfoError as E};

fn leak(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
}

fn s(x: &str) -> Value<'static> {
    Value::Bytes(leak(x.as_bytes().to_vec()))
}

fn dict(entries: Vec<(&str, Value<'static>)>) -> Value<'static> {
    Value::Dict(entries.into_iter().map(|(k, v)| (leak(k.as_bytes().to_vec()), v)).collect::<Dict>())
}

fn list(items: Vec<Value<'static>>) -> Value<'static> {
    Value::List(items)
}

fn path(p: &str) -> Value<'static> {
    list(p.split('/').map(s).collect())
}

fn pieces(n: usize) -> Value<'static> {
    Value::Bytes(leak((0..n * 20).map(|i| i as u8).collect()))
}

fn encode(v: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

fn parse(v: Value<'static>) -> Result<Info, E> {
    Info::from_bytes(&encode(&v))
}

fn v1_single(len: i64, pl: i64, n: usize) -> Value<'static> {
    dict(vec![
        ("name", s("file.bin")),
        ("length", Value::Int(len)),
        ("piece length", Value::Int(pl)),
        ("pieces", pieces(n)),
    ])
}

fn v1_multi(files: Vec<Value<'static>>, pl: i64, n: usize) -> Value<'static> {
    dict(vec![("name", s("dir")), ("files", list(files)), ("piece length", Value::Int(pl)), ("pieces", pieces(n))])
}

fn v1_file(p: &str, len: i64) -> Value<'static> {
    dict(vec![("length", Value::Int(len)), ("path", path(p))])
}

fn pad(len: i64) -> Value<'static> {
    dict(vec![("attr", s("p")), ("length", Value::Int(len)), ("path", path(&format!(".pad/{len}")))])
}

fn leaf(len: i64, root: u8) -> Value<'static> {
    let mut e = vec![("length", Value::Int(len))];
    if len > 0 {
        e.push(("pieces root", Value::Bytes(leak(vec![root; 32]))));
    }
    dict(vec![("", dict(e))])
}

/// `{a: 40000 bytes, sub: {c: 70000 bytes}, z: empty}` with 16 KiB pieces.
fn tree() -> Value<'static> {
    dict(vec![("a", leaf(40_000, 1)), ("sub", dict(vec![("c", leaf(70_000, 2))])), ("z", leaf(0, 0))])
}

fn v2(tree: Value<'static>, pl: i64) -> Value<'static> {
    dict(vec![
        ("name", s("dir")),
        ("file tree", tree),
        ("meta version", Value::Int(2)),
        ("piece length", Value::Int(pl)),
    ])
}

fn with(mut v: Value<'static>, key: &'static str, value: Value<'static>) -> Value<'static> {
    if let Value::Dict(d) = &mut v {
        d.insert(leak(key.as_bytes().to_vec()), value);
    }
    v
}

#[test]
fn v1_single_file() {
    let raw = encode(&v1_single(40_000, 16_384, 3));
    let info = Info::from_bytes(&raw).expect("valid");
    assert_eq!(info.bytes(), &raw[..]);
    assert_eq!(info.info_hashes(), InfoHashes::V1(InfoHashV1::of(&raw)));
    assert_eq!(info.version(), TorrentVersion::V1);
    assert!(info.is_single_file() && !info.is_private());
    assert_eq!((info.name(), info.piece_length(), info.num_pieces()), ("file.bin", 16_384, 3));
    assert_eq!(info.files().len(), 1);
    assert_eq!(info.files()[0].path, ["file.bin"]);
    assert_eq!((info.total_size(), info.piece_space_size()), (40_000, 40_000));
    assert_eq!(
        [info.piece_size(0), info.piece_size(2), info.piece_size(3)],
        [Some(16_384), Some(40_000 - 32_768), None]
    );
    assert_eq!(info.v1_piece_hashes().len(), 3);
    assert_eq!(info.v1_piece_hashes()[1][0], 20);
}

#[test]
fn v1_multi_file_with_pad_and_attrs() {
    let exe = with(v1_file("bin/run", 10), "attr", s("x"));
    let info = parse(v1_multi(vec![exe, pad(16_374), v1_file("b", 5), pad(0)], 16_384, 2)).expect("valid");
    let f = info.files();
    assert_eq!(f.len(), 4);
    assert_eq!(f[0].path, ["dir", "bin", "run"]);
    assert_eq!(f[0].attr, FileAttr { executable: true, ..FileAttr::default() });
    assert!(f[1].attr.pad);
    assert_eq!((f[2].offset, f[2].length), (16_384, 5));
    assert_eq!(info.total_size(), 15);
    assert_eq!(info.file_at(16_385), Some(2));
    assert_eq!(info.file_at(16_383), Some(1));
    assert_eq!(info.file_at(99_999), None);
    // Pad files need no path (BEP 47).
    let no_path = dict(vec![("attr", s("p")), ("length", Value::Int(6))]);
    let info = parse(v1_multi(vec![v1_file("a", 10), no_path], 16, 1)).expect("valid");
    assert_eq!(info.files()[1].path, ["dir", ".pad", "6"]);
}

#[test]
fn path_traversal_is_rejected() {
    for bad in ["..", ".", "", "/etc", "a\\..", "x\0y"] {
        let files =
            vec![list(vec![s("ok"), s(bad)])].into_iter().map(|p| dict(vec![("length", Value::Int(1)), ("path", p)]));
        let err = parse(v1_multi(files.collect(), 16_384, 1)).expect_err(bad);
        assert!(matches!(err, E::UnsafePath { ref field, .. } if field == "info.files[0].path"), "{bad:?}: {err}");
    }
    let err = parse(with(v1_single(1, 16_384, 1), "name", s(".."))).expect_err("name");
    assert!(matches!(err, E::UnsafePath { ref field, .. } if field == "info.name"), "{err}");
    let err = parse(v2(dict(vec![("..", leaf(1, 1))]), 16_384)).expect_err("tree key");
    assert!(matches!(err, E::UnsafePath { .. }), "{err}");
    let err = parse(v2(dict(vec![("d", dict(vec![("a/b", leaf(1, 1))]))]), 16_384)).expect_err("tree key");
    assert_eq!(err.to_string(), "unsafe path component \"a/b\" in `info.file tree/d`: contains a path separator");
    let link = dict(vec![("attr", s("l")), ("path", path("l")), ("symlink path", path("../../etc/passwd"))]);
    let err = parse(v1_multi(vec![v1_file("a", 1), link], 16_384, 1)).expect_err("symlink");
    assert!(matches!(err, E::UnsafePath { ref field, .. } if field.ends_with("symlink path")), "{err}");
    let err =
        parse(v1_multi(vec![dict(vec![("length", Value::Int(1)), ("path", list(vec![]))])], 16, 1)).expect_err("empty");
    assert!(matches!(err, E::WrongType { .. }), "{err}");
}

#[test]
fn conflicting_paths() {
    let err = parse(v1_multi(vec![v1_file("a", 1), v1_file("a", 1)], 16_384, 1)).expect_err("dup");
    assert_eq!(err, E::PathConflict("dir/a".into()));
    let err = parse(v1_multi(vec![v1_file("a/b", 1), v1_file("a", 1)], 16_384, 1)).expect_err("dir");
    assert_eq!(err, E::PathConflict("dir/a".into()));
    // Pad files may share a path.
    assert!(parse(v1_multi(vec![v1_file("a", 1), pad(15), v1_file("b", 1), pad(15)], 16, 2)).is_ok());
}

#[test]
fn sizes_and_counts() {
    assert_eq!(parse(v1_single(40_000, 16_384, 2)), Err(E::PiecesLength { len: 40, expected: 60 }));
    assert_eq!(parse(v1_single(-1, 16_384, 0)), Err(E::InvalidLength { field: "info.length".into(), value: -1 }));
    let huge = v1_multi(vec![v1_file("a", i64::MAX), v1_file("b", i64::MAX), v1_file("c", 2)], 1 << 20, 0);
    assert_eq!(parse(huge), Err(E::SizeOverflow));
    let many = v1_single(i64::MAX, 1, 0);
    assert_eq!(parse(many), Err(E::TooManyPieces(i64::MAX as u64)));
    assert_eq!(parse(v1_single(0, 16_384, 0)), Err(E::NoFiles));
    let limit = i64::from(MAX_PIECES) * 16_384;
    assert!(parse(v2(dict(vec![("f", leaf(limit, 1)), ("g", leaf(1, 1))]), 16_384)).is_err());
    assert_eq!(parse(v2(dict(vec![("f", leaf(limit, 1))]), 16_384)).map(|i| i.num_pieces()), Ok(MAX_PIECES));
    assert_eq!(
        parse(v2(dict(vec![("f", leaf(limit + 1, 1))]), 16_384)),
        Err(E::TooManyPieces(u64::from(MAX_PIECES) + 1))
    );
    assert_eq!(parse(v1_multi(vec![], 16_384, 0)), Err(E::NoFiles));
}

#[test]
fn piece_length_rules() {
    for (pl, v2_ok, v1_ok) in [
        (0, false, false),
        (-5, false, false),
        (1, false, true),
        (20_000, false, true),
        (16_384, true, true),
        (8_192, false, true),
        (1 << 28, false, false),
    ] {
        assert_eq!(parse(v2(tree(), pl)).is_ok(), v2_ok, "v2 {pl}");
        let v1 = v1_single(
            100,
            pl,
            if pl > 0 { (100i64.div_euclid(pl) + i64::from(100 % pl.max(1) != 0)) as usize } else { 0 },
        );
        assert_eq!(parse(v1).is_ok(), v1_ok, "v1 {pl}");
    }
    let err = parse(v2(tree(), 20_000)).expect_err("not a power of two");
    assert_eq!(err.to_string(), "invalid piece length 20000: v2 needs a power of two of at least 16 KiB");
}

#[test]
fn meta_version_is_checked_first() {
    let v = dict(vec![("meta version", Value::Int(3))]);
    assert_eq!(parse(v), Err(E::UnsupportedMetaVersion(3)));
    assert!(matches!(parse(dict(vec![("meta version", s("2"))])), Err(E::WrongType { .. })));
    assert_eq!(parse(dict(vec![("name", s("x"))])), Err(E::MissingField("info.pieces".into())));
    assert_eq!(
        parse(dict(vec![("meta version", Value::Int(2)), ("name", s("x")), ("piece length", Value::Int(16_384))])),
        Err(E::MissingField("info.file tree".into()))
    );
    assert!(matches!(Info::from_bytes(b"le"), Err(E::WrongType { .. })));
    assert!(matches!(Info::from_bytes(b"d"), Err(E::Bencode(_))));
}

#[test]
fn v2_layout_is_piece_aligned() {
    let raw = encode(&v2(tree(), 16_384));
    let info = Info::from_bytes(&raw).expect("valid");
    assert_eq!(info.info_hashes(), InfoHashes::V2(InfoHashV2::of(&raw)));
    let f = info.files();
    assert_eq!(f.iter().map(|f| f.display_path()).collect::<Vec<_>>(), ["dir/a", "dir/sub/c", "dir/z"]);
    assert_eq!(f.iter().map(|f| f.offset).collect::<Vec<_>>(), [0, 3 * 16_384, 3 * 16_384 + 70_000]);
    assert_eq!(f[0].pieces_root, Some([1; 32]));
    assert_eq!(f[2].pieces_root, None);
    assert_eq!(info.num_pieces(), 8);
    assert_eq!(info.piece_space_size(), 3 * 16_384 + 70_000);
    // The last piece of each file is short; there is no data in the gap.
    assert_eq!(info.piece_size(2), Some(40_000 - 2 * 16_384));
    assert_eq!(info.piece_size(7), Some(70_000 - 4 * 16_384));
    assert_eq!(info.file_at(40_000), None);
    assert_eq!(info.v1_piece_hashes().len(), 0);
    // A single file at the top of the tree is a single-file torrent.
    let single = Info::from_bytes(&encode(&v2(dict(vec![("only", leaf(5, 9))]), 16_384))).expect("valid");
    assert!(single.is_single_file());
    assert_eq!(single.files()[0].path, ["only"]);
    assert_eq!(single.name(), "only", "named by its file-tree key");
}

#[test]
fn v2_tree_errors() {
    let cases = [
        (dict(vec![("", leaf(1, 1))]), "the root must not be a file"),
        (dict(vec![("a", with(leaf(1, 1), "b", leaf(1, 1)))]), "a file has sibling entries"),
        (dict(vec![("a", Value::Int(1))]), "not a dictionary"),
        (dict(vec![("a", dict(vec![("", Value::Int(1))]))]), "file entry is not a dictionary"),
    ];
    for (t, reason) in cases {
        match parse(v2(t, 16_384)) {
            Err(E::FileTree { reason: r, .. }) => assert_eq!(r, reason),
            other => panic!("{reason}: {other:?}"),
        }
    }
    let no_root = dict(vec![("a", dict(vec![("", dict(vec![("length", Value::Int(5))]))]))]);
    assert_eq!(parse(v2(no_root, 16_384)), Err(E::MissingField("info.file tree/a.pieces root".into())));
    let short = dict(vec![("a", dict(vec![("", dict(vec![("length", Value::Int(5)), ("pieces root", s("x"))]))]))]);
    assert!(matches!(parse(v2(short, 16_384)), Err(E::WrongType { expected: "a 32-byte string", .. })));
    assert_eq!(parse(v2(dict(vec![]), 16_384)), Err(E::NoFiles));
    assert_eq!(parse(v2(dict(vec![("e", leaf(0, 0))]), 16_384)), Err(E::NoFiles));
}

fn hybrid_files() -> Vec<Value<'static>> {
    vec![v1_file("a", 40_000), pad(9_152), v1_file("sub/c", 70_000), pad(11_920), v1_file("z", 0)]
}

#[test]
fn hybrid_consistent() {
    let mut v = v1_multi(hybrid_files(), 16_384, 8);
    v = with(v, "file tree", tree());
    v = with(v, "meta version", Value::Int(2));
    let raw = encode(&v);
    let info = Info::from_bytes(&raw).expect("valid");
    assert_eq!(info.info_hashes(), InfoHashes::Hybrid(InfoHashV1::of(&raw), InfoHashV2::of(&raw)));
    assert_eq!(info.version(), TorrentVersion::Hybrid);
    let f = info.files();
    assert_eq!(f.len(), 5);
    assert_eq!((f[0].pieces_root, f[1].pieces_root, f[2].pieces_root), (Some([1; 32]), None, Some([2; 32])));
    assert_eq!(info.piece_space_size(), 8 * 16_384);
    assert_eq!(info.piece_size(7), Some(16_384), "v1 view: the tail pad counts");
    assert_eq!(info.total_size(), 110_000);
}

#[test]
fn hybrid_mismatches() {
    let hybrid = |files: Vec<Value<'static>>, n: usize, t: Value<'static>| {
        with(with(v1_multi(files, 16_384, n), "file tree", t), "meta version", Value::Int(2))
    };
    let mut renamed = hybrid_files();
    renamed[2] = v1_file("sub/d", 70_000);
    let unaligned = vec![v1_file("a", 40_000), v1_file("sub/c", 70_000), v1_file("z", 0)];
    let mut extra_pad = hybrid_files();
    extra_pad.push(pad(16_384));
    let cases = [
        (hybrid(renamed, 8, tree()), "file 2 is `dir/sub/d` (70000 bytes) in v1 but `dir/sub/c` (70000 bytes) in v2"),
        (hybrid(unaligned, 7, tree()), "file 1 `dir/sub/c` is not aligned to a piece boundary in v1"),
        (hybrid(hybrid_files()[..3].to_vec(), 8, tree()), "`dir/z` is missing from the v1 file list"),
        (
            hybrid(hybrid_files(), 8, dict(vec![("a", leaf(40_000, 1)), ("sub", dict(vec![("c", leaf(70_000, 2))]))])),
            "file 4 `dir/z` is not in the v2 file tree",
        ),
        (hybrid(extra_pad, 9, tree()), "the pad files change the number of pieces"),
    ];
    for (v, msg) in cases {
        assert_eq!(parse(v), Err(E::HybridMismatch(msg.into())), "{msg}");
    }
    let single = with(with(v1_single(40_000, 16_384, 3), "file tree", tree()), "meta version", Value::Int(2));
    assert!(matches!(parse(single), Err(E::HybridMismatch(_))));
}

#[test]
fn piece_layer_verification() {
    use crate::merkle::MerkleTree;
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let t = MerkleTree::from_data(&data);
    let tree = dict(vec![
        (
            "c",
            dict(vec![(
                "",
                dict(vec![("length", Value::Int(70_000)), ("pieces root", Value::Bytes(leak(t.root().to_vec())))]),
            )]),
        ),
        ("d", leaf(100, 3)),
    ]);
    let info = parse(v2(tree, 32_768)).expect("valid");
    let layer = t.piece_layer(32_768).expect("layer");
    let bytes: Vec<u8> = layer.concat();
    assert_eq!(info.verify_piece_layer(0, &bytes), Ok(layer.clone()));
    let mut bad = bytes.clone();
    bad[5] ^= 1;
    assert_eq!(
        info.verify_piece_layer(0, &bad),
        Err(E::BadPieceLayer { path: "dir/c".into(), reason: "does not hash to the pieces root" })
    );
    assert!(matches!(info.verify_piece_layer(0, &bytes[..64]), Err(E::BadPieceLayer { reason: "wrong length", .. })));
    assert_eq!(info.verify_piece_layer(1, &[]), Ok(vec![[3; 32]]));
    assert!(info.verify_piece_layer(1, &bytes).is_err());
    assert!(info.verify_piece_layer(7, &[]).is_err());
}
