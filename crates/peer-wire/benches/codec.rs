//! Decode and encode throughput of the hot peer wire messages: a `piece` carrying a 16 KiB
//! block, and a `have`.
//!
//! `cargo bench -p mycel-peer-wire --bench codec` (add `-- --quick` for a short run).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mycel_peer_wire::{decode, piece_header, Decoded, FrameDecoder, Message, DEFAULT_MAX_MESSAGE_LEN};

fn bench(c: &mut Criterion) {
    let block: Vec<u8> = (0..16384u32).map(|i| (i * 31) as u8).collect();
    let cases =
        [("piece_16KiB", Message::Piece { index: 1234, begin: 0x4000, block: &block }), ("have", Message::Have(1234))];
    for (name, msg) in &cases {
        let mut bytes = Vec::new();
        msg.encode(&mut bytes);
        let mut group = c.benchmark_group(*name);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("decode", |b| {
            b.iter(|| match decode(black_box(&bytes), DEFAULT_MAX_MESSAGE_LEN) {
                Ok(Decoded::Message { msg, consumed }) => (black_box(msg), consumed),
                other => panic!("{other:?}"),
            })
        });
        let mut out = Vec::with_capacity(bytes.len());
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                black_box(msg).encode(&mut out);
                black_box(out.len())
            })
        });
        group.bench_function("frame_decoder_extend_next", |b| {
            let mut rx = FrameDecoder::new(DEFAULT_MAX_MESSAGE_LEN);
            b.iter(|| {
                rx.extend(black_box(&bytes));
                let msg = rx.next().expect("valid").expect("complete");
                black_box(msg.id())
            })
        });
        group.finish();
    }
    // The zero-copy send path: only the 13-byte header is built, the block is written from
    // where it lies.
    let mut group = c.benchmark_group("piece_16KiB");
    group.throughput(Throughput::Bytes(16384 + 13));
    group.bench_function("piece_header", |b| b.iter(|| piece_header(black_box(1234), black_box(0x4000), 16384)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
