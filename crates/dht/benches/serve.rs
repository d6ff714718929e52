//! CPU cost of answering one query inside the node (decode, routing-table lookup, encode),
//! without sockets. Run: `cargo bench -p mycel-dht --bench serve`.

#![allow(clippy::disallowed_methods)] // a benchmark: reads the clock for the origin
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use mycel_dht::{Config, InfoHash, Node, NodeId};
use mycel_krpc::{Body, Message, Method, Query, Response};
use rand::{Rng, SeedableRng};

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode(&mut v);
    v
}

/// A node whose routing table holds a few hundred nodes, as on the real network.
fn populated() -> (Node, Instant) {
    let now = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let cfg = Config { rate_limit_burst: u32::MAX, rate_limit_per_sec: u32::MAX, ..Config::default() };
    let mut node = Node::new(cfg, NodeId(rng.gen()), [1; 32], now);
    for i in 0..2000u32 {
        let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881));
        node.ping(now, addr);
        let t = node.poll_transmit().expect("ping sent");
        let tx = Message::decode(&t.payload).expect("decodes").tx.to_vec();
        let id = NodeId(rng.gen());
        let r =
            Message { tx: &tx, version: None, ip: None, read_only: false, body: Body::Response(Response::with_id(id)) };
        node.handle_datagram(now, addr, &encode(&r));
        while node.poll_event().is_some() {}
    }
    (node, now)
}

fn serve(c: &mut Criterion) {
    let (mut node, now) = populated();
    let from = SocketAddr::from(([127, 0, 0, 2], 6881));
    let fnq = encode(&Message {
        tx: b"aa",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query {
            id: NodeId([7; 20]),
            method: Method::FindNode { target: NodeId([9; 20]), want: Default::default() },
        }),
    });
    let gpq = encode(&Message {
        tx: b"bb",
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query {
            id: NodeId([7; 20]),
            method: Method::GetPeers { info_hash: InfoHash([5; 20]), want: Default::default() },
        }),
    });
    println!("routing table: {} nodes", node.stats().routing_nodes);
    c.bench_function("answer find_node", |b| {
        b.iter(|| {
            node.handle_datagram(now, from, &fnq);
            node.poll_transmit().expect("answered")
        })
    });
    c.bench_function("answer get_peers (no peers: token + nodes)", |b| {
        b.iter(|| {
            node.handle_datagram(now, from, &gpq);
            node.poll_transmit().expect("answered")
        })
    });
}

criterion_group!(benches, serve);
criterion_main!(benches);
