//! From a parsed torrent to the engine's [`Layout`], and piece verification for rechecks.

use std::collections::BTreeMap;

use mycel_metainfo::{Info, Metainfo, TorrentVersion};
use mycel_swarm::{merkle_root, InfoHashes, Layout, Trust, V2Piece, BLOCK_LEN};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::TorrentError;

/// The engine's view of a torrent. `metainfo` carries the v2 piece layers; without it (a
/// magnet link's bare info dictionary, when no peer supplied the layers) a hybrid torrent
/// is verified by its v1 hashes only; a v2-only torrent needs [`layout_with_layers`].
pub fn layout_for(info: &Info, metainfo: Option<&Metainfo>) -> Result<Layout, TorrentError> {
    match metainfo {
        Some(m) => build(info, Some(&|i| m.piece_layer(i).map(<[_]>::to_vec))),
        None => build(info, None),
    }
}

/// The layout of a torrent whose piece layers were fetched from peers (a v2 or hybrid
/// magnet link), by `pieces root`; each is checked against its root again.
pub fn layout_with_layers(info: &Info, layers: &BTreeMap<[u8; 32], Vec<[u8; 32]>>) -> Result<Layout, TorrentError> {
    let lookup = |i: usize| {
        let f = info.files().get(i)?;
        let layer: Vec<u8> = layers.get(&f.pieces_root?)?.concat();
        info.verify_piece_layer(i, &layer).ok()
    };
    build(info, Some(&lookup))
}

/// A file's piece layer by file index.
type LayerLookup<'a> = &'a dyn Fn(usize) -> Option<Vec<[u8; 32]>>;

fn build(info: &Info, layers: Option<LayerLookup<'_>>) -> Result<Layout, TorrentError> {
    // BEP 27: the engine does no peer exchange on a private torrent.
    build_public(info, layers).map(|l| l.with_private(info.is_private()))
}

fn build_public(info: &Info, layers: Option<LayerLookup<'_>>) -> Result<Layout, TorrentError> {
    let ids = info.info_hashes();
    let bad = |e: mycel_swarm::LayoutError| TorrentError::Invalid(e.to_string());
    let v1 = ids.v1().map(|h| h.0);
    let v2 = ids.v2().map(|h| h.0);
    let pl = info.piece_length();
    match (info.version(), layers) {
        (TorrentVersion::V1, _) | (TorrentVersion::Hybrid, None) => {
            let hash = v1.ok_or_else(|| TorrentError::Invalid("no v1 info-hash".into()))?;
            Layout::v1(hash, info.piece_space_size(), pl, info.v1_piece_hashes().to_vec()).map_err(bad)
        }
        (TorrentVersion::V2, None) => {
            Err(TorrentError::Unsupported("a v2-only torrent without its piece layers".into()))
        }
        (TorrentVersion::V2, Some(m)) => {
            let pieces = v2_pieces(info, m)?;
            let lens: Vec<u64> = info.files().iter().filter(|f| !f.attr.pad).map(|f| f.length).collect();
            let hash = v2.ok_or_else(|| TorrentError::Invalid("no v2 info-hash".into()))?;
            Layout::v2(hash, pl, &lens, pieces).map_err(bad)
        }
        (TorrentVersion::Hybrid, Some(m)) => {
            let pieces = v2_pieces(info, m)?;
            let hashes = InfoHashes { v1, v2 };
            let total = info.piece_space_size();
            Layout::hybrid(hashes, total, pl, info.v1_piece_hashes().to_vec(), pieces, Trust::Both).map_err(bad)
        }
    }
}

/// Merkle data of every piece, file by file (files are piece-aligned in v2 and hybrid).
fn v2_pieces(info: &Info, layers: LayerLookup<'_>) -> Result<Vec<V2Piece>, TorrentError> {
    let pl = u64::from(info.piece_length());
    let per_piece = info.piece_length() / BLOCK_LEN;
    let mut out = Vec::new();
    for (i, f) in info.files().iter().enumerate() {
        if f.attr.pad || f.length == 0 {
            continue;
        }
        let missing = || TorrentError::Invalid(format!("no piece layer for {}", f.display_path()));
        let file_root = f.pieces_root.ok_or_else(missing)?;
        if f.length <= pl {
            let blocks = f.length.div_ceil(u64::from(BLOCK_LEN)) as u32;
            let leaves = blocks.next_power_of_two();
            out.push(V2Piece { root: file_root, leaves, data_len: f.length as u32, file_root, leaf_index: 0 });
            continue;
        }
        let layer = layers(i).ok_or_else(missing)?;
        for (j, root) in layer.iter().enumerate() {
            let start = j as u64 * pl;
            let data_len = (f.length - start).min(pl) as u32;
            let leaf_index = j as u32 * per_piece;
            out.push(V2Piece { root: *root, leaves: per_piece, data_len, file_root, leaf_index });
        }
    }
    Ok(out)
}

/// The files chosen by `only` (paths inside the torrent, `/`-separated, with or without
/// the torrent's name in front), as a flag per file of [`Info::files`]; `None` when `only`
/// is empty (every file). A path that names no file is an error.
pub fn select_files(info: &Info, only: &[String]) -> Result<Option<Vec<bool>>, TorrentError> {
    if only.is_empty() {
        return Ok(None);
    }
    let files = info.files();
    let mut chosen = vec![false; files.len()];
    for want in only {
        let want = want.trim_matches('/');
        let hits: Vec<usize> = (0..files.len())
            .filter(|&i| {
                let f = &files[i];
                !f.attr.pad && (f.display_path() == want || (!info.is_single_file() && f.path[1..].join("/") == want))
            })
            .collect();
        if hits.is_empty() {
            return Err(TorrentError::NotInTorrent(want.to_string()));
        }
        hits.into_iter().for_each(|i| chosen[i] = true);
    }
    Ok(Some(chosen))
}

/// Piece priorities for a file selection: every piece holding a byte of a chosen file is
/// wanted (so a v1 piece shared with a skipped file is fetched too), the rest are not.
pub fn piece_priorities(info: &Info, chosen: &[bool]) -> Vec<u8> {
    let pl = u64::from(info.piece_length());
    let mut prio = vec![0u8; info.num_pieces() as usize];
    for (f, _) in info.files().iter().zip(chosen).filter(|(f, &c)| c && f.length > 0) {
        let (first, last) = (f.offset / pl, (f.end() - 1) / pl);
        for p in prio.iter_mut().take(last as usize + 1).skip(first as usize) {
            *p = mycel_swarm::picker::DEFAULT_PRIORITY;
        }
    }
    prio
}

/// Whether `data` (the whole piece) matches what `layout` expects of piece `piece`: its
/// SHA-1 and/or its merkle subtree root.
pub fn verify_piece(layout: &Layout, piece: u32, data: &[u8]) -> bool {
    if let Some(h) = layout.v1_hash(piece) {
        if <[u8; 20]>::from(Sha1::digest(data)) != *h {
            return false;
        }
    }
    if let Some(p) = layout.v2_piece(piece) {
        let end = (p.data_len as usize).min(data.len());
        let leaves: Vec<[u8; 32]> = data[..end].chunks(BLOCK_LEN as usize).map(|c| Sha256::digest(c).into()).collect();
        if merkle_root(&leaves, p.leaves) != p.root {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use mycel_metainfo::{CreateOptions, FileSpec, TorrentBuilder};

    use super::*;

    /// A two-file torrent of `version` and its piece space (pad bytes as zeros).
    fn torrent(version: TorrentVersion) -> (Metainfo, Vec<u8>) {
        torrent_with(version, false)
    }

    fn torrent_with(version: TorrentVersion, private: bool) -> (Metainfo, Vec<u8>) {
        let files = vec![
            FileSpec { path: vec!["a".into()], length: 100_000, executable: false, hidden: false },
            FileSpec { path: vec!["b".into()], length: 40_000, executable: false, hidden: false },
        ];
        let data: Vec<Vec<u8>> = vec![(0..100_000).map(|i| (i % 251) as u8).collect(), vec![7; 40_000]];
        let opts = CreateOptions { version, piece_length: Some(32 * 1024), private, ..CreateOptions::default() };
        let mut b = TorrentBuilder::directory("t", files, opts).expect("builder");
        b.hash_all(|f, off, buf: &mut [u8]| -> Result<(), ()> {
            buf.copy_from_slice(&data[f][off as usize..off as usize + buf.len()]);
            Ok(())
        })
        .expect("hash");
        let m = Metainfo::from_bytes(&b.finish().expect("finish")).expect("parse");
        let mut space = vec![0u8; m.info().piece_space_size() as usize];
        for (f, bytes) in m.info().files().iter().filter(|f| !f.attr.pad).zip(&data) {
            space[f.offset as usize..f.end() as usize].copy_from_slice(bytes);
        }
        (m, space)
    }

    #[test]
    fn every_version_verifies_its_pieces_and_rejects_a_flipped_byte() {
        for version in [TorrentVersion::V1, TorrentVersion::V2, TorrentVersion::Hybrid] {
            let (m, mut space) = torrent(version);
            let layout = layout_for(m.info(), Some(&m)).expect("layout");
            assert_eq!(layout.piece_count(), m.info().num_pieces(), "{version:?}");
            let pl = layout.piece_length() as usize;
            for p in 0..layout.piece_count() {
                let a = p as usize * pl;
                let piece = &space[a..a + layout.piece_len(p) as usize];
                assert!(verify_piece(&layout, p, piece), "{version:?} piece {p}");
            }
            space[5] ^= 1;
            assert!(!verify_piece(&layout, 0, &space[..layout.piece_len(0) as usize]), "{version:?}");
        }
    }

    #[test]
    fn private_flag_reaches_the_layout() {
        // The engine does no peer exchange on a private torrent (BEP 27), however it is built.
        for version in [TorrentVersion::V1, TorrentVersion::V2, TorrentVersion::Hybrid] {
            for private in [false, true] {
                let (m, _) = torrent_with(version, private);
                assert_eq!(m.info().is_private(), private);
                let layout = layout_for(m.info(), Some(&m)).expect("layout");
                assert_eq!(layout.is_private(), private, "{version:?}");
            }
        }
        let (hybrid, _) = torrent_with(TorrentVersion::Hybrid, true);
        assert!(layout_for(hybrid.info(), None).expect("magnet's bare info").is_private());
    }

    #[test]
    fn file_selection_and_piece_priorities() {
        let (m, _) = torrent(TorrentVersion::V1);
        let info = m.info();
        assert_eq!(select_files(info, &[]), Ok(None));
        assert_eq!(select_files(info, &["b".into()]), Ok(Some(vec![false, true])));
        assert_eq!(select_files(info, &["t/a".into(), "/b".into()]), Ok(Some(vec![true, true])));
        assert_eq!(select_files(info, &["c".into()]), Err(TorrentError::NotInTorrent("c".into())));
        // v1: a (100 000 bytes) ends inside piece 3, where b starts; b ends in piece 4.
        assert_eq!(piece_priorities(info, &[false, true]), [0, 0, 0, 4, 4]);
        let (v2, _) = torrent(TorrentVersion::V2);
        assert_eq!(piece_priorities(v2.info(), &[false, true]), [0, 0, 0, 0, 4, 4]);
        assert_eq!(piece_priorities(v2.info(), &[true, false]), [4, 4, 4, 4, 0, 0]);
    }

    #[test]
    fn magnets_without_piece_layers() {
        let (v2, _) = torrent(TorrentVersion::V2);
        assert!(matches!(layout_for(v2.info(), None), Err(TorrentError::Unsupported(_))));
        let layers: BTreeMap<[u8; 32], Vec<[u8; 32]>> = (0..v2.info().files().len())
            .filter_map(|i| Some((v2.info().files()[i].pieces_root?, v2.piece_layer(i)?.to_vec())))
            .collect();
        assert_eq!(layers.len(), 2, "both files span two pieces or more");
        let fetched = layout_with_layers(v2.info(), &layers).expect("with layers");
        assert_eq!(Some(fetched), layout_for(v2.info(), Some(&v2)).ok());
        let mut wrong = layers.clone();
        wrong.values_mut().for_each(|l| l[0][0] ^= 1);
        assert!(matches!(layout_with_layers(v2.info(), &wrong), Err(TorrentError::Invalid(_))));
        let (hybrid, _) = torrent(TorrentVersion::Hybrid);
        let layout = layout_for(hybrid.info(), None).expect("hybrid by v1 hashes");
        assert!(layout.v2_piece(0).is_none() && layout.v1_hash(0).is_some());
    }
}
