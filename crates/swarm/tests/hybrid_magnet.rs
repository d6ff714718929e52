//! Piece layers for hybrid magnets, and how a layer fetch copes with peers that refuse.
//!
//! - A mycel engine seeds a hybrid torrent; a `MetadataFetch` knowing the hybrid magnet
//!   (both info-hashes) gets the info dictionary, then the piece layers; the layout built
//!   from them checks both hashes and downloads the data; a third node knowing only the v2
//!   info-hash then gets metadata and layers from that second node.
//! - No v2 peer: the optional layers of a hybrid are given up at once (SHA-1 only).
//! - A v2-only fetch whose peer rejects hash requests asks it again after a back-off, uses
//!   another peer at once, and fails with `Stalled` when nobody supplies the layers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use harness::Net;
use mycel_metainfo::{CreateOptions, FileSpec, Info, Metainfo, TorrentBuilder, TorrentVersion};
use mycel_peer_wire::Bitfield;
use mycel_swarm::{
    Config, DisconnectReason, InfoHashes, LayerFile, LayersError, Layout, MetadataConfig, MetadataFetch, PeerKey,
    PieceLayers, Swarm, Trust, V2Piece, BLOCK_LEN,
};
use sha2::{Digest, Sha256};

const PL: u32 = 32 * 1024;

fn origin() -> Instant {
    // Test origin for virtual time.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

/// A torrent of `version` with files of these lengths, and its piece space (pads zero).
fn torrent(version: TorrentVersion, lens: &[usize]) -> (Metainfo, Vec<u8>) {
    let data: Vec<Vec<u8>> =
        lens.iter().enumerate().map(|(f, &l)| (0..l).map(|i| (i * 17 + f + i / 3001) as u8).collect()).collect();
    let specs = (0..lens.len())
        .map(|i| FileSpec { path: vec![format!("f{i}")], length: lens[i] as u64, executable: false, hidden: false })
        .collect();
    let opts = CreateOptions { version, piece_length: Some(PL), ..CreateOptions::default() };
    let mut b = TorrentBuilder::directory("t", specs, opts).unwrap();
    b.hash_all(|f, off, buf: &mut [u8]| -> Result<(), ()> {
        buf.copy_from_slice(&data[f][off as usize..off as usize + buf.len()]);
        Ok(())
    })
    .unwrap();
    let m = Metainfo::from_bytes(&b.finish().unwrap()).unwrap();
    let mut space = vec![0u8; m.info().piece_space_size() as usize];
    for (f, bytes) in m.info().files().iter().filter(|f| !f.attr.pad).zip(&data) {
        space[f.offset as usize..f.end() as usize].copy_from_slice(bytes);
    }
    (m, space)
}

/// The engine's layout from an info dictionary and each file's piece layer (by root);
/// `None` for a hybrid: its v1 view only (what a magnet without layers gives).
fn layout(info: &Info, layers: Option<&PieceLayers>) -> Layout {
    let ids = info.info_hashes();
    let (v1, v2) = (ids.v1().map(|h| h.0), ids.v2().map(|h| h.0));
    let Some(layers) = layers else {
        return Layout::v1(v1.unwrap(), info.piece_space_size(), PL, info.v1_piece_hashes().to_vec()).unwrap();
    };
    let per_piece = PL / BLOCK_LEN;
    let mut pieces = Vec::new();
    for f in info.files().iter().filter(|f| !f.attr.pad && f.length > 0) {
        let root = f.pieces_root.unwrap();
        if f.length <= u64::from(PL) {
            let leaves = (f.length.div_ceil(u64::from(BLOCK_LEN)) as u32).next_power_of_two();
            pieces.push(V2Piece { root, leaves, data_len: f.length as u32, file_root: root, leaf_index: 0 });
            continue;
        }
        for (j, h) in layers[&root].iter().enumerate() {
            let data_len = (f.length - j as u64 * u64::from(PL)).min(u64::from(PL)) as u32;
            let leaf_index = j as u32 * per_piece;
            pieces.push(V2Piece { root: *h, leaves: per_piece, data_len, file_root: root, leaf_index });
        }
    }
    match v1 {
        Some(_) => {
            let hashes = InfoHashes { v1, v2 };
            let total = info.piece_space_size();
            Layout::hybrid(hashes, total, PL, info.v1_piece_hashes().to_vec(), pieces, Trust::Both).unwrap()
        }
        None => {
            let lens: Vec<u64> = info.files().iter().map(|f| f.length).collect();
            Layout::v2(v2.unwrap(), PL, &lens, pieces).unwrap()
        }
    }
}

fn layers_of(m: &Metainfo) -> PieceLayers {
    (0..m.info().files().len())
        .filter_map(|i| Some((m.info().files()[i].pieces_root?, m.piece_layer(i)?.to_vec())))
        .collect()
}

fn layer_files(info: &Info) -> Vec<LayerFile> {
    info.files().iter().filter_map(|f| Some(LayerFile { pieces_root: f.pieces_root?, length: f.length })).collect()
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 6881))
}

/// A seeding engine of `layout` serving `info` as metadata (`id` is not 2: the fetches' id).
fn seeder(cfg: Config, info: &Info, layout: &Layout, id: u8) -> Swarm {
    let n = layout.piece_count();
    let mut s = Swarm::new(cfg, layout.clone(), [id; 20], [id; 32], origin(), Bitfield::full(n)).unwrap();
    assert!(s.set_metadata(Bytes::copy_from_slice(info.bytes())));
    s
}

/// Connects the fetch (as `kf` on its side) to a swarm (as `ks` on the swarm's side).
fn connect(fetch: &mut MetadataFetch, kf: PeerKey, swarm: &mut Swarm, ks: PeerKey, now: Instant) {
    fetch.handle_peer_connected(now, kf, addr(kf.0 as u8), true);
    swarm.handle_peer_connected(now, ks, addr(100 + ks.0 as u8), false);
}

/// Moves bytes between a fetch and several swarms until nothing moves.
fn pump(fetch: &mut MetadataFetch, swarms: &mut [(&mut Swarm, PeerKey, PeerKey)], now: Instant) {
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = fetch.poll_transmit() {
            if let Some((s, _, ks)) = swarms.iter_mut().find(|(_, kf, _)| *kf == t.peer) {
                s.handle_peer_bytes(now, *ks, &t.data);
                moved = true;
            }
        }
        for (s, kf, ks) in swarms.iter_mut() {
            while let Some(t) = s.poll_transmit() {
                if t.peer == *ks {
                    fetch.handle_peer_bytes(now, *kf, &t.data);
                    moved = true;
                }
            }
        }
        if !moved {
            return;
        }
    }
}

#[test]
fn hybrid_magnet_fetches_layers_then_serves_a_v2_only_magnet() {
    // 9 pieces, one piece, 600 pieces (two layer chunks); pad files between.
    let (m, space) = torrent(TorrentVersion::Hybrid, &[9 * PL as usize - 1000, 5000, 600 * PL as usize - 7]);
    let info = m.info();
    let seed_layout = layout(info, Some(&layers_of(&m)));
    let mut a = seeder(Config::default(), info, &seed_layout, 1);
    let now = origin();
    let ih = info.info_hashes();
    let ids = InfoHashes { v1: ih.v1().map(|h| h.0), v2: ih.v2().map(|h| h.0) };
    let mut fetch = MetadataFetch::new(MetadataConfig::default(), ids, [2; 20], now);
    let (kf, ka) = (PeerKey(10), PeerKey(20));
    connect(&mut fetch, kf, &mut a, ka, now);
    pump(&mut fetch, &mut [(&mut a, kf, ka)], now);
    let bytes = fetch.poll_metadata().expect("metadata");
    assert_eq!(fetch.poll_disconnect(), None, "connections stay open for the layers");
    let fetched = Info::from_bytes(&bytes).unwrap();
    assert_eq!(fetched.version(), TorrentVersion::Hybrid);
    fetch.fetch_optional_piece_layers(now, fetched.piece_length(), &layer_files(&fetched));
    pump(&mut fetch, &mut [(&mut a, kf, ka)], now);
    let layers = fetch.poll_piece_layers().expect("done").expect("layers from a v2 peer");
    assert_eq!(fetch.poll_disconnect().map(|d| d.reason), Some(DisconnectReason::NotUseful));
    let got_layout = layout(&fetched, Some(&layers));
    assert_eq!(got_layout, seed_layout, "both hashes checked, as with the .torrent");

    // The second node downloads with it, then serves a v2-only magnet.
    let mut net = Net::new();
    let s = net.add(Config::default(), &seed_layout, &space, true, 1 << 20);
    let b = net.add(Config::default(), &got_layout, &space, false, 1 << 20);
    net.connect(b, s);
    net.run_until(3000, |net| net.nodes[b].completed());
    assert!(net.nodes[b].completed() && net.nodes[b].disk == space);
    let mut second = net.nodes.swap_remove(b).swarm;
    assert!(second.set_metadata(Bytes::copy_from_slice(&bytes)));
    let v2_only = InfoHashes { v1: None, v2: ids.v2 };
    let mut third = MetadataFetch::new(MetadataConfig::default(), v2_only, [3; 20], now);
    let (k3, kb) = (PeerKey(30), PeerKey(40));
    connect(&mut third, k3, &mut second, kb, now);
    pump(&mut third, &mut [(&mut second, k3, kb)], now);
    let meta3 = Info::from_bytes(&third.poll_metadata().expect("metadata from the second node")).unwrap();
    third.fetch_piece_layers(now, PL, &layer_files(&meta3));
    pump(&mut third, &mut [(&mut second, k3, kb)], now);
    let layers3 = third.poll_piece_layers().expect("done").expect("layers from the second node");
    assert_eq!(layers3, layers);
    assert!(second.stats().hash_requests_served >= 3);
}

#[test]
fn hybrid_magnet_without_v2_peers_falls_back_to_sha1() {
    let (m, _) = torrent(TorrentVersion::Hybrid, &[40 * PL as usize]);
    let info = m.info();
    // A seeder that got the hybrid by magnet and no layers: v1 view only, no upgrade bit.
    let mut a = seeder(Config::default(), info, &layout(info, None), 1);
    let now = origin();
    let (kf, ka) = (PeerKey(10), PeerKey(20));
    let mut fetch = hybrid_fetch(info, &mut a, (kf, ka), now);
    fetch.fetch_optional_piece_layers(now, PL, &layer_files(info));
    assert_eq!(fetch.poll_piece_layers(), Some(Err(LayersError::NoV2Peer)));
    assert_eq!(fetch.poll_disconnect().map(|d| d.reason), Some(DisconnectReason::NotUseful));
}

#[test]
fn hybrid_magnet_gives_up_when_every_v2_peer_rejects() {
    let (m, _) = torrent(TorrentVersion::Hybrid, &[40 * PL as usize]);
    let info = m.info();
    let stingy = Config { hash_request_burst: 0, hash_requests_per_sec: 0, ..Config::default() };
    let mut a = seeder(stingy, info, &layout(info, Some(&layers_of(&m))), 1);
    let now = origin();
    let (kf, ka) = (PeerKey(10), PeerKey(20));
    let mut fetch = hybrid_fetch(info, &mut a, (kf, ka), now);
    fetch.fetch_optional_piece_layers(now, PL, &layer_files(info));
    pump(&mut fetch, &mut [(&mut a, kf, ka)], now);
    assert_eq!(fetch.poll_piece_layers(), Some(Err(LayersError::AllRejected)));
    assert_eq!(a.stats().hash_requests_limited, 1);
}

/// A hybrid magnet's fetch connected to `seeder` (`keys`: the fetch's key for it and its key
/// for the fetch), with the metadata fetched.
fn hybrid_fetch(info: &Info, seeder: &mut Swarm, keys: (PeerKey, PeerKey), now: Instant) -> MetadataFetch {
    let ih = info.info_hashes();
    let ids = InfoHashes { v1: ih.v1().map(|h| h.0), v2: ih.v2().map(|h| h.0) };
    let mut fetch = MetadataFetch::new(MetadataConfig::default(), ids, [2; 20], now);
    connect(&mut fetch, keys.0, seeder, keys.1, now);
    pump(&mut fetch, &mut [(seeder, keys.0, keys.1)], now);
    assert!(fetch.poll_metadata().is_some());
    fetch
}

/// A v2-only fetch connected to `swarms` (keys 10+i on the fetch, 20+i on the swarm),
/// with the metadata fetched and the layer fetch started.
fn v2_fetch(info: &Info, swarms: &mut [&mut Swarm], now: Instant) -> MetadataFetch {
    let ids = InfoHashes { v1: None, v2: Some(Sha256::digest(info.bytes()).into()) };
    let mut fetch = MetadataFetch::new(MetadataConfig::default(), ids, [2; 20], now);
    for (i, s) in swarms.iter_mut().enumerate() {
        connect(&mut fetch, PeerKey(10 + i as u64), s, PeerKey(20 + i as u64), now);
    }
    let mut pairs: Vec<_> = swarms
        .iter_mut()
        .enumerate()
        .map(|(i, s)| (&mut **s, PeerKey(10 + i as u64), PeerKey(20 + i as u64)))
        .collect();
    pump(&mut fetch, &mut pairs, now);
    assert!(fetch.poll_metadata().is_some());
    fetch.fetch_piece_layers(now, PL, &layer_files(info));
    fetch
}

#[test]
fn v2_layer_fetch_asks_a_rejecting_peer_again_after_a_back_off() {
    // 1500 pieces: three chunks. The peer answers one hash request per second.
    let (m, _) = torrent(TorrentVersion::V2, &[1500 * PL as usize]);
    let info = m.info();
    let slow = Config { hash_request_burst: 1, hash_requests_per_sec: 1, ..Config::default() };
    let mut a = seeder(slow, info, &layout(info, Some(&layers_of(&m))), 1);
    let t0 = origin();
    let mut fetch = v2_fetch(info, &mut [&mut a], t0);
    let mut now = t0;
    for _ in 0..60 {
        pump(&mut fetch, &mut [(&mut a, PeerKey(10), PeerKey(20))], now);
        if fetch.poll_piece_layers().inspect(|r| assert_eq!(r.as_ref().ok(), Some(&layers_of(&m)))).is_some() {
            break;
        }
        now = fetch.poll_timeout().expect("a timer while layers are missing").max(now);
        fetch.handle_timeout(now);
    }
    assert!(now > t0 && now <= t0 + Duration::from_secs(20), "done after back-offs: {:?}", now - t0);
    assert!(a.stats().hash_requests_limited >= 2);
}

#[test]
fn v2_layer_fetch_moves_on_to_another_peer_and_fails_when_nobody_supplies() {
    let (m, _) = torrent(TorrentVersion::V2, &[600 * PL as usize]);
    let info = m.info();
    let lay = layout(info, Some(&layers_of(&m)));
    let stingy = Config { hash_request_burst: 0, hash_requests_per_sec: 0, ..Config::default() };
    let now = origin();
    // A refuses everything, B answers: done without waiting for A's back-off.
    let (mut a, mut b) = (seeder(stingy.clone(), info, &lay, 1), seeder(Config::default(), info, &lay, 3));
    let mut fetch = v2_fetch(info, &mut [&mut a, &mut b], now);
    pump(&mut fetch, &mut [(&mut a, PeerKey(10), PeerKey(20)), (&mut b, PeerKey(11), PeerKey(21))], now);
    assert!(fetch.poll_piece_layers() == Some(Ok(layers_of(&m))), "layers from B");
    assert_eq!((a.stats().hash_requests_limited, b.stats().hash_requests_served), (2, 2));

    // Only A: still asking it after back-offs, then a clear error after `layers_timeout`.
    let mut a = seeder(stingy, info, &lay, 1);
    let mut fetch = v2_fetch(info, &mut [&mut a], now);
    let mut t = now;
    let mut result = None;
    while result.is_none() && t < now + Duration::from_secs(120) {
        pump(&mut fetch, &mut [(&mut a, PeerKey(10), PeerKey(20))], t);
        result = fetch.poll_piece_layers();
        t = fetch.poll_timeout().expect("timer").max(t);
        fetch.handle_timeout(t);
        result = result.or_else(|| fetch.poll_piece_layers());
    }
    let timeout = MetadataConfig::default().layers_timeout;
    assert!(matches!(result, Some(Err(LayersError::Stalled(d))) if d >= timeout), "{result:?}");
    assert!(a.stats().hash_requests_limited > 4, "asked again: {}", a.stats().hash_requests_limited);
    let e = LayersError::Stalled(timeout).to_string();
    assert_eq!(e, "no connected peer supplied the piece layers for 30 s");
}
