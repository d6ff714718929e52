//! Memory of one node with a full routing table and 10,000 stored info-hashes, measured with a
//! counting global allocator (live heap bytes, not RSS). Run: `cargo bench -p mycel-dht --bench memory`.

#![allow(clippy::disallowed_methods)] // a benchmark: reads the clock once for the origin
#![allow(unsafe_code)] // common/alloc.rs: a counting global allocator needs `unsafe impl GlobalAlloc`
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::Instant;

use mycel_dht::{Config, InfoHash, Node, NodeId};
use mycel_krpc::{Body, Message, Method, Query, Response};
use rand::{Rng, SeedableRng};

#[path = "common/alloc.rs"]
mod alloc;

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode(&mut v);
    v
}

fn main() {
    let now = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let own = NodeId(rng.gen());
    let base = alloc::live();
    let cfg = Config { rate_limit_burst: u32::MAX, ..Config::default() };
    let mut node = Node::new(cfg, own, [1; 32], now);
    let empty = alloc::live() - base;

    // Fill the routing table: answers from nodes at every prefix length down to 24 bits,
    // several times more than fit, so buckets split, fill and keep replacement caches.
    let mut sent = 0u32;
    for prefix in 0..24usize {
        for _ in 0..40 {
            let mut id: [u8; 20] = rng.gen();
            for bit in 0..prefix {
                let mask = 0x80 >> (bit % 8);
                id[bit / 8] = (id[bit / 8] & !mask) | (own.0[bit / 8] & mask);
            }
            let flip = 0x80 >> (prefix % 8);
            id[prefix / 8] = (id[prefix / 8] & !flip) | (!own.0[prefix / 8] & flip);
            sent += 1;
            let addr = SocketAddr::from(([10, (sent >> 16) as u8, (sent >> 8) as u8, sent as u8], 6881));
            node.ping(now, addr);
            let t = node.poll_transmit().expect("ping sent");
            let tx = Message::decode(&t.payload).expect("our own ping decodes").tx.to_vec();
            let r = Message {
                tx: &tx,
                version: None,
                ip: None,
                read_only: false,
                body: Body::Response(Response::with_id(NodeId(id))),
            };
            node.handle_datagram(now, addr, &encode(&r));
            while node.poll_event().is_some() {}
        }
    }
    let table = alloc::live() - base - empty;
    let routing_nodes = node.stats().routing_nodes;

    // 10,000 info-hashes with 8 peers each, announced through the wire protocol.
    for i in 0..10_000u32 {
        let ih = InfoHash(rng.gen());
        for p in 0..8u32 {
            let n = i * 8 + p;
            let from = SocketAddr::from(([127, (n >> 16) as u8 | 0x40, (n >> 8) as u8, n as u8], 6881));
            let gp = Message {
                tx: b"g",
                version: None,
                ip: None,
                read_only: false,
                body: Body::Query(Query {
                    id: NodeId([2; 20]),
                    method: Method::GetPeers { info_hash: ih, want: Default::default() },
                }),
            };
            node.handle_datagram(now, from, &encode(&gp));
            let mut token = Vec::new();
            while let Some(t) = node.poll_transmit() {
                if let Ok(Message { body: Body::Response(r), .. }) = Message::decode(&t.payload) {
                    token = r.token.map(<[u8]>::to_vec).unwrap_or_default();
                }
            }
            let ann = Message {
                tx: b"a",
                version: None,
                ip: None,
                read_only: false,
                body: Body::Query(Query {
                    id: NodeId([2; 20]),
                    method: Method::AnnouncePeer { info_hash: ih, port: 6881, implied_port: false, token: &token },
                }),
            };
            node.handle_datagram(now, from, &encode(&ann));
            while node.poll_transmit().is_some() {}
            while node.poll_event().is_some() {}
        }
    }
    let s = node.stats();
    let total = alloc::live() - base;
    println!("| what | heap bytes |");
    println!("|---|---|");
    println!("| empty node | {empty} |");
    println!(
        "| routing table: {routing_nodes} nodes in {} buckets (+ replacement caches) | {table} |",
        s.nodes_per_bucket.len()
    );
    println!("| + {} info-hashes, {} peers | {} |", s.stored_info_hashes, s.stored_peers, total - table - empty);
    println!("| total | {total} ({:.1} MiB) |", total as f64 / 1048576.0);
    assert_eq!(s.stored_info_hashes, 10_000);
}
