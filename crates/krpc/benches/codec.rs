//! Decode and encode throughput of typical KRPC datagrams.
//!
//! `cargo bench -p mycel-krpc --bench codec` (add `-- --quick` for a short run).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use mycel_krpc::{Body, Message, Method, NodeId, NodeInfo, Query, Response, Want};

fn id(seed: u8) -> [u8; 20] {
    std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
}

fn find_node_query() -> Message<'static> {
    Message {
        tx: b"\x12\x34",
        version: Some(b"MC01"),
        ip: None,
        read_only: false,
        body: Body::Query(Query {
            id: NodeId(id(1)),
            method: Method::FindNode { target: NodeId(id(2)), want: Want::default() },
        }),
    }
}

fn get_peers_response(nodes: usize, values: usize) -> Message<'static> {
    let mut r = Response::with_id(NodeId(id(3)));
    r.nodes = (0..nodes)
        .map(|i| NodeInfo { id: NodeId(id(i as u8)), addr: SocketAddr::from(([10, 0, 0, i as u8], 6881)) })
        .collect();
    r.values = (0..values).map(|i| SocketAddr::from(([192, 168, (i / 250) as u8, i as u8], 51413))).collect();
    r.token = Some(b"\x01\x02\x03\x04\x05\x06\x07\x08");
    Message {
        tx: b"\x12\x34",
        version: Some(b"MC01"),
        ip: Some(SocketAddr::from(([203, 0, 113, 7], 6881))),
        read_only: false,
        body: Body::Response(r),
    }
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("find_node_query", find_node_query()),
        ("get_peers_response_8_nodes", get_peers_response(8, 0)),
        ("get_peers_response_50_values", get_peers_response(0, 50)),
    ];
    for (name, msg) in &cases {
        let mut bytes = Vec::new();
        msg.encode(&mut bytes);
        let mut group = c.benchmark_group(*name);
        group.throughput(criterion::Throughput::Bytes(bytes.len() as u64));
        group.bench_function("decode", |b| b.iter(|| Message::decode(black_box(&bytes))));
        group.bench_function("bencode_tree_only", |b| b.iter(|| mycel_bencode::decode(black_box(&bytes))));
        let mut out = Vec::with_capacity(2048);
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                black_box(msg).encode(&mut out);
                black_box(out.len())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
