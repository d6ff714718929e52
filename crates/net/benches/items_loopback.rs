//! Figures for BENCHMARKS.md: BEP 44 put and get latency and messages on a loopback network of
//! real nodes (one process, one UDP socket per node). Run with
//! `cargo bench -p mycel-net --bench items_loopback`.

#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mycel_dht::{ItemKind, Keypair, MutableItem, StoredItem};
use mycel_net::{Dht, DhtConfig, Handle, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NODES: usize = 500;
const OPS: usize = 100;

fn listen_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 8, (i / 200) as u8, (1 + i % 200) as u8)), 0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(put_and_get_on_a_loopback_network());
}

async fn put_and_get_on_a_loopback_network() {
    let mut rng = ChaCha8Rng::seed_from_u64(44);
    let mut nodes: Vec<Handle> = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let mut config = DhtConfig::new(listen_addr(i));
        config.id = Some(NodeId(rng.gen()));
        config.seed = Some(rng.gen());
        config.node.rate_limit_per_sec = 0;
        if let Some(first) = nodes.first() {
            config.bootstrap.push(first.local_addr());
        }
        nodes.push(Dht::spawn(config).await.expect("spawn node"));
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let key = Keypair::from_seed([44; 32]);
    let (mut put_ms, mut put_req, mut get_ms, mut get_req, mut stored, mut found) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
    for i in 0..OPS {
        let item = MutableItem::sign(&key, format!("f{i}").into_bytes(), 1, b"6:figure".to_vec()).expect("valid");
        let writer = &nodes[rng.gen_range(0..NODES)];
        let put = writer.put_mutable(item.clone(), None).await.expect("running");
        put_ms.push(put.lookup.duration.as_secs_f64() * 1000.0);
        put_req.push(put.lookup.messages_sent as f64);
        stored.push(put.stored.len() as f64);
        let reader = &nodes[rng.gen_range(0..NODES)];
        let kind = ItemKind::Mutable { salt: item.salt().to_vec() };
        let got = reader.get_item(NodeId(item.target()), kind).await.expect("running");
        get_ms.push(got.lookup.duration.as_secs_f64() * 1000.0);
        get_req.push(got.lookup.messages_sent as f64);
        found += usize::from(got.item == Some(StoredItem::Mutable(item)));
    }
    for v in [&mut put_ms, &mut put_req, &mut get_ms, &mut get_req, &mut stored] {
        v.sort_by(f64::total_cmp);
    }
    eprintln!("{NODES} nodes on loopback, {OPS} mutable puts and gets:");
    for (name, v) in [
        ("put ms", &put_ms),
        ("put requests", &put_req),
        ("stored on", &stored),
        ("get ms", &get_ms),
        ("get requests", &get_req),
    ] {
        eprintln!(
            "{name:>14}: p50 {:>6.1}  p90 {:>6.1}  p99 {:>6.1}",
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99)
        );
    }
    eprintln!("{found} of {OPS} gets returned the item");
    for node in nodes {
        node.shutdown().await.expect("stops");
    }
    assert!(found >= OPS * 95 / 100);
}
