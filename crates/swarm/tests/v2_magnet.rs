//! A v2-only magnet between two mycel engines: a `Swarm` seeds a real v2 torrent; a
//! `MetadataFetch` knowing only the SHA-256 info-hash gets the info dictionary (BEP 9),
//! then the piece layers with BEP 52 hash requests; the layout built from them equals the
//! seeder's, and a download with it completes with the right bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use harness::Net;
use mycel_metainfo::{CreateOptions, FileSpec, Info, Metainfo, TorrentBuilder, TorrentVersion};
use mycel_peer_wire::Bitfield;
use mycel_swarm::{
    Config, DisconnectReason, InfoHashes, LayerFile, Layout, MetadataConfig, MetadataFetch, PeerKey, Swarm, V2Piece,
    BLOCK_LEN,
};
use sha2::{Digest, Sha256};

const PL: u32 = 32 * 1024;

fn origin() -> Instant {
    // Test origin for virtual time.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

/// A v2 torrent of files of these lengths, and their contents.
fn torrent(lens: &[usize]) -> (Metainfo, Vec<Vec<u8>>) {
    let data: Vec<Vec<u8>> =
        lens.iter().enumerate().map(|(f, &l)| (0..l).map(|i| (i * 13 + f + i / 4099) as u8).collect()).collect();
    let specs = (0..lens.len())
        .map(|i| FileSpec { path: vec![format!("f{i}")], length: lens[i] as u64, executable: false, hidden: false })
        .collect();
    let opts = CreateOptions { version: TorrentVersion::V2, piece_length: Some(PL), ..CreateOptions::default() };
    let mut b = TorrentBuilder::directory("t", specs, opts).unwrap();
    b.hash_all(|f, off, buf: &mut [u8]| -> Result<(), ()> {
        buf.copy_from_slice(&data[f][off as usize..off as usize + buf.len()]);
        Ok(())
    })
    .unwrap();
    (Metainfo::from_bytes(&b.finish().unwrap()).unwrap(), data)
}

/// The engine's layout from an info dictionary and each file's piece layer.
fn layout(info: &Info, layer: impl Fn(usize, [u8; 32]) -> Vec<[u8; 32]>) -> Layout {
    let per_piece = PL / BLOCK_LEN;
    let mut pieces = Vec::new();
    for (i, f) in info.files().iter().enumerate() {
        let root = f.pieces_root.unwrap();
        if f.length <= u64::from(PL) {
            let leaves = (f.length.div_ceil(u64::from(BLOCK_LEN)) as u32).next_power_of_two();
            pieces.push(V2Piece { root, leaves, data_len: f.length as u32, file_root: root, leaf_index: 0 });
            continue;
        }
        for (j, h) in layer(i, root).into_iter().enumerate() {
            let data_len = (f.length - j as u64 * u64::from(PL)).min(u64::from(PL)) as u32;
            let leaf_index = j as u32 * per_piece;
            pieces.push(V2Piece { root: h, leaves: per_piece, data_len, file_root: root, leaf_index });
        }
    }
    let lens: Vec<u64> = info.files().iter().map(|f| f.length).collect();
    Layout::v2(info.info_hashes().v2().unwrap().0, PL, &lens, pieces).unwrap()
}

/// Pumps bytes between the fetch and the seeder until nothing moves.
fn pump(fetch: &mut MetadataFetch, seed: &mut Swarm, now: Instant) {
    let (kf, ks) = (PeerKey(10), PeerKey(20));
    for _ in 0..50 {
        let mut moved = false;
        while let Some(t) = fetch.poll_transmit() {
            seed.handle_peer_bytes(now, ks, &t.data);
            moved = true;
        }
        while let Some(t) = seed.poll_transmit() {
            fetch.handle_peer_bytes(now, kf, &t.data);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// A seeding `Swarm` of the torrent (serving its metadata) and a `MetadataFetch` that
/// knows only the v2 info-hash, connected (keys 20 and 10).
fn connected(info: &Info, seed_layout: &Layout) -> (Swarm, MetadataFetch) {
    let now = origin();
    let n = seed_layout.piece_count();
    let mut seed =
        Swarm::new(Config::default(), seed_layout.clone(), [1; 20], [0; 32], now, Bitfield::full(n)).unwrap();
    assert!(seed.set_metadata(Bytes::copy_from_slice(info.bytes())));
    let ih: [u8; 32] = Sha256::digest(info.bytes()).into();
    let ids = InfoHashes { v1: None, v2: Some(ih) };
    let mut fetch = MetadataFetch::new(MetadataConfig::default(), ids, [2; 20], now);
    let addr = "10.0.0.1:6881".parse().unwrap();
    fetch.add_peers(&[addr]);
    assert_eq!(fetch.poll_connect(), Some(addr));
    fetch.handle_peer_connected(now, PeerKey(10), addr, true);
    seed.handle_peer_connected(now, PeerKey(20), "10.0.0.2:6881".parse().unwrap(), false);
    (seed, fetch)
}

fn layer_files(info: &Info) -> Vec<LayerFile> {
    info.files().iter().map(|f| LayerFile { pieces_root: f.pieces_root.unwrap(), length: f.length }).collect()
}

#[test]
fn v2_magnet_gets_metadata_then_piece_layers_then_data() {
    // 9 pieces, one piece, 600 pieces (two layer chunks).
    let (m, data) = torrent(&[9 * PL as usize - 1000, 5000, 600 * PL as usize - 7]);
    let info = m.info();
    let seed_layout = layout(info, |i, _| m.piece_layer(i).unwrap().to_vec());
    let (mut seed, mut fetch) = connected(info, &seed_layout);
    let now = origin();
    pump(&mut fetch, &mut seed, now);
    let bytes = fetch.poll_metadata().expect("metadata");
    assert_eq!(&bytes[..], info.bytes());
    assert_eq!(fetch.poll_disconnect(), None, "v2-only: connections stay open for the layers");

    let fetched = Info::from_bytes(&bytes).unwrap();
    fetch.fetch_piece_layers(now, fetched.piece_length(), &layer_files(&fetched));
    pump(&mut fetch, &mut seed, now);
    let layers: BTreeMap<[u8; 32], Vec<[u8; 32]>> = fetch.poll_piece_layers().expect("layers").expect("fetched");
    assert_eq!(layers.len(), 2, "the one-piece file needs no layer");
    assert_eq!(fetch.poll_disconnect().map(|d| d.reason), Some(DisconnectReason::NotUseful));
    let got_layout = layout(&fetched, |_, root| layers[&root].clone());
    assert_eq!(got_layout, seed_layout);

    // Download with the rebuilt layout (files back to back: v2 pieces never span files).
    let content = data.concat();
    let mut net = Net::new();
    let s = net.add(Config::default(), &seed_layout, &content, true, 1 << 20);
    let l = net.add(Config::default(), &got_layout, &content, false, 1 << 20);
    net.connect(l, s);
    net.run_until(2000, |net| net.nodes[l].completed());
    assert!(net.nodes[l].completed());
    assert!(net.nodes[l].disk == content);
}

#[test]
fn a_v2_magnet_of_one_piece_files_needs_no_layers() {
    let (m, _) = torrent(&[5000, PL as usize]);
    let info = m.info();
    let seed_layout = layout(info, |_, _| unreachable!("one-piece files have no layer"));
    let (mut seed, mut fetch) = connected(info, &seed_layout);
    let now = origin();
    // Before the metadata, asking for layers does nothing.
    fetch.fetch_piece_layers(now, PL, &layer_files(info));
    assert_eq!(fetch.poll_piece_layers(), None);
    pump(&mut fetch, &mut seed, now);
    assert!(fetch.poll_metadata().is_some());
    fetch.fetch_piece_layers(now, PL, &layer_files(info));
    assert!(fetch.poll_transmit().is_none(), "no hash request for one-piece files");
    assert_eq!(fetch.poll_piece_layers(), Some(Ok(BTreeMap::new())));
    assert_eq!(fetch.poll_disconnect().map(|d| d.reason), Some(DisconnectReason::NotUseful));
}
