//! Hashing throughput: SHA-1 (v1 pieces) and SHA-256 (v2 blocks) over 16 KiB blocks and
//! 1 MiB pieces, a v2 piece hash (64 blocks and their subtree), the merkle root of a
//! 64 MiB file, and the hybrid `TorrentBuilder::hash_piece` that creation runs.
//!
//! `cargo bench -p mycel-metainfo --bench hashing` (add `-- --quick` for a short run).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mycel_metainfo::merkle::{self, MerkleTree, BLOCK_SIZE};
use mycel_metainfo::{CreateOptions, TorrentBuilder, TorrentVersion};
use sha1::{Digest, Sha1};
use sha2::Sha256;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

fn digests(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");
    for (label, len) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let buf = data(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("sha1", label), &buf, |b, buf| b.iter(|| Sha1::digest(black_box(buf))));
        g.bench_with_input(BenchmarkId::new("sha256", label), &buf, |b, buf| b.iter(|| Sha256::digest(black_box(buf))));
    }
    g.finish();
}

fn merkle_trees(c: &mut Criterion) {
    let mut g = c.benchmark_group("merkle");
    let piece = data(1 << 20);
    g.throughput(Throughput::Bytes(piece.len() as u64));
    g.bench_function("v2_piece_root_1MiB", |b| {
        b.iter(|| {
            let blocks: Vec<[u8; 32]> = black_box(&piece).chunks(BLOCK_SIZE as usize).map(merkle::block_hash).collect();
            merkle::piece_root(&blocks, 1 << 20, 1 << 30)
        })
    });
    let file = data(64 << 20);
    g.throughput(Throughput::Bytes(file.len() as u64));
    g.sample_size(10);
    g.bench_function("root_64MiB", |b| b.iter(|| MerkleTree::from_data(black_box(&file)).root()));
    g.finish();
}

fn builder(c: &mut Criterion) {
    let mut g = c.benchmark_group("create");
    let len = 64u64 << 20;
    let file = data(len as usize);
    g.throughput(Throughput::Bytes(len));
    g.sample_size(10);
    for (label, version) in [("v1", TorrentVersion::V1), ("v2", TorrentVersion::V2), ("hybrid", TorrentVersion::Hybrid)]
    {
        let opts = CreateOptions { version, piece_length: Some(1 << 20), ..CreateOptions::default() };
        let mut builder = TorrentBuilder::single_file("f", len, opts).expect("valid");
        g.bench_function(BenchmarkId::new("hash_all_64MiB", label), |b| {
            b.iter(|| {
                builder
                    .hash_all(|_, off, buf: &mut [u8]| -> Result<(), ()> {
                        buf.copy_from_slice(&file[off as usize..off as usize + buf.len()]);
                        Ok(())
                    })
                    .expect("in memory")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, digests, merkle_trees, builder);
criterion_main!(benches);
