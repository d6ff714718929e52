//! Property tests: created torrents parse back to what was created (every format, random
//! files), magnet links round-trip through format and parse, merkle proofs verify, and no
//! input (arbitrary bytes or a mutated valid torrent) makes parsing panic.

use std::net::SocketAddr;

use mycel_metainfo::merkle::{self, HashRequest, MerkleTree, BLOCK_SIZE};
use mycel_metainfo::{
    fuzzing, CreateOptions, FileSpec, InfoHashV1, InfoHashV2, InfoHashes, Magnet, Metainfo, PeerAddr, TorrentBuilder,
    TorrentVersion,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use sha1::{Digest, Sha1};

fn content(seed: u64, len: u64) -> Vec<u8> {
    (0..len).map(|j| (j.wrapping_mul(2 * seed + 1).wrapping_add(j >> 7).wrapping_add(seed) & 0xff) as u8).collect()
}

fn version() -> impl Strategy<Value = TorrentVersion> {
    prop_oneof![Just(TorrentVersion::V1), Just(TorrentVersion::V2), Just(TorrentVersion::Hybrid)]
}

/// Up to 6 files with short paths from a small alphabet (so that names and directories
/// collide often), lengths biased towards piece and block boundaries.
fn files() -> impl Strategy<Value = Vec<(Vec<String>, u64)>> {
    let component = prop_oneof![Just("a"), Just("b"), Just("a.b"), Just("é"), Just("dir"), Just(".hidden")];
    let path = vec(component.prop_map(String::from), 1..4);
    let length = prop_oneof![0u64..3, Just(16_384u64), Just(32_768), 16_380u64..16_390, 0u64..120_000,];
    vec((path, length), 1..7).prop_filter("paths must not collide", |fs| {
        let mut paths: Vec<&Vec<String>> = fs.iter().map(|(p, _)| p).collect();
        paths.sort();
        paths.windows(2).all(|w| !w[1].starts_with(w[0])) && fs.iter().any(|(_, l)| *l > 0)
    })
}

fn build(version: TorrentVersion, pl: u32, files: &[(Vec<String>, u64)]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let data: Vec<Vec<u8>> = files.iter().enumerate().map(|(i, (_, l))| content(i as u64, *l)).collect();
    let specs =
        files.iter().map(|(p, l)| FileSpec { path: p.clone(), length: *l, executable: false, hidden: false }).collect();
    let opts = CreateOptions { version, piece_length: Some(pl), ..CreateOptions::default() };
    let mut b = TorrentBuilder::directory("root", specs, opts).expect("valid files");
    b.hash_all(|f, o, buf: &mut [u8]| -> Result<(), ()> {
        buf.copy_from_slice(&data[f][o as usize..o as usize + buf.len()]);
        Ok(())
    })
    .expect("in memory");
    (b.finish().expect("hashed"), data)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn created_torrents_parse_back(version in version(), shift in 0u32..3, files in files()) {
        let pl = BLOCK_SIZE << shift;
        let (bytes, data) = build(version, pl, &files);
        let m = Metainfo::from_bytes(&bytes).expect("own torrent parses");
        let info = m.info();
        prop_assert_eq!(info.version(), version);
        prop_assert_eq!(info.piece_length(), pl);
        // The real files, in sorted order, with their data's merkle roots.
        let mut want: Vec<(Vec<String>, u64, usize)> =
            files.iter().enumerate().map(|(i, (p, l))| (p.clone(), *l, i)).collect();
        want.sort();
        let real: Vec<_> = info.files().iter().filter(|f| !f.attr.pad).collect();
        prop_assert_eq!(real.len(), want.len());
        // BEP 52 cannot tell a directory with one file from a single file.
        let single_v2 = version == TorrentVersion::V2 && files.len() == 1 && files[0].0.len() == 1;
        prop_assert_eq!(info.is_single_file(), single_v2);
        for (f, (p, l, i)) in real.iter().zip(&want) {
            prop_assert_eq!(&f.path[usize::from(!single_v2)..], &p[..]);
            prop_assert_eq!(f.length, *l);
            if version != TorrentVersion::V1 && *l > 0 {
                prop_assert_eq!(f.pieces_root, Some(MerkleTree::from_data(&data[*i]).root()));
                prop_assert_eq!(f.offset % u64::from(pl), 0);
            }
        }
        // v1 pieces are the SHA-1 of the piece space with zero pads.
        if version != TorrentVersion::V2 {
            let mut flat = Vec::new();
            let mut sorted = want.iter();
            for f in info.files() {
                if f.attr.pad {
                    flat.resize(flat.len() + f.length as usize, 0);
                } else {
                    flat.extend_from_slice(&data[sorted.next().expect("real file").2]);
                }
            }
            let expected: Vec<[u8; 20]> = flat.chunks(pl as usize).map(|c| Sha1::digest(c).into()).collect();
            prop_assert_eq!(info.v1_piece_hashes(), &expected[..]);
        }
        prop_assert_eq!(Metainfo::from_bytes(&m.to_bytes()).expect("re-encoded"), m.clone());
        let magnet: Magnet = m.magnet().to_string().parse().expect("magnet");
        prop_assert_eq!(magnet.hashes, m.info_hashes());
        fuzzing::metainfo(&bytes);
    }

    #[test]
    fn mutated_torrents_never_panic(files in files(), version in version(), edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let (bytes, _) = build(version, BLOCK_SIZE, &files);
        let mut b = bytes.clone();
        for (at, byte) in &edits {
            let i = at.index(b.len());
            b[i] = *byte;
        }
        fuzzing::metainfo(&b);
        fuzzing::metainfo(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..512)) {
        fuzzing::metainfo(&data);
        fuzzing::magnet(&data);
    }

    #[test]
    fn magnets_round_trip(magnet in magnet()) {
        let text = magnet.to_string();
        prop_assert_eq!(Magnet::parse(&text), Ok(magnet));
        fuzzing::magnet(text.as_bytes());
    }

    #[test]
    fn block_proofs_verify(len in 1u64..(40 * 16_384), pick in any::<prop::sample::Index>()) {
        let data = content(len, len);
        let t = MerkleTree::from_data(&data);
        let n = t.num_blocks();
        let i = pick.index(n as usize) as u64;
        let block = &data[(i * 16_384) as usize..((i + 1) * 16_384).min(len) as usize];
        let proof = t.proof(0, i).expect("in range");
        prop_assert!(merkle::verify_block(&t.root(), n, i, &merkle::block_hash(block), &proof));
        prop_assert!(!merkle::verify_block(&t.root(), n, i, &merkle::block_hash(b"other"), &proof));
    }

    #[test]
    fn hash_request_answers_verify(blocks in 2u64..300, base in 0u32..4, k in 1u32..5, pick in any::<prop::sample::Index>(), full in any::<bool>()) {
        let leaves: Vec<[u8; 32]> = (0..blocks).map(|i| merkle::block_hash(&i.to_be_bytes())).collect();
        let t = MerkleTree::from_block_hashes(leaves);
        let top = t.height();
        prop_assume!(base + k <= top);
        let width = 1u64 << (top - base);
        let len = 1u32 << k;
        let index = (pick.index((width / u64::from(len)) as usize) as u32) * len;
        let proof_layers = if full { top - base - 1 } else { k - 1 };
        let req = HashRequest { base_layer: base, index, length: len, proof_layers };
        let answer = t.hashes(&req).expect("valid request");
        let (h, i, node) = merkle::fold_hashes(blocks, &req, &answer).expect("folds");
        prop_assert_eq!(Some(node), t.node(h, i));
        if full {
            prop_assert_eq!(merkle::verify_hashes(&t.root(), blocks, &req, &answer), Ok(()));
        }
    }
}

fn magnet() -> impl Strategy<Value = Magnet> {
    let hashes = prop_oneof![
        any::<[u8; 20]>().prop_map(|a| InfoHashes::V1(InfoHashV1(a))),
        any::<[u8; 32]>().prop_map(|b| InfoHashes::V2(InfoHashV2(b))),
        (any::<[u8; 20]>(), any::<[u8; 32]>()).prop_map(|(a, b)| InfoHashes::Hybrid(InfoHashV1(a), InfoHashV2(b))),
    ];
    let peer = prop_oneof![
        // No flow info or scope id: a magnet's address text does not carry them.
        any::<SocketAddr>().prop_map(|a| PeerAddr::Ip(SocketAddr::new(a.ip(), a.port()))),
        ("[a-z0-9][a-z0-9.-]{0,20}", any::<u16>()).prop_map(|(host, port)| PeerAddr::Host { host, port }),
    ];
    let range = (0u32..1000, 0u32..50).prop_map(|(a, n)| a..=a + n);
    (hashes, option::of(".*"), vec(".*", 0..3), vec(peer, 0..3), vec(range, 0..4)).prop_map(
        |(hashes, display_name, trackers, peers, select_only)| Magnet {
            hashes,
            display_name,
            trackers,
            peers,
            select_only,
        },
    )
}
