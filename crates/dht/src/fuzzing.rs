//! Fuzzing entry point: a node fed an arbitrary sequence of datagrams, timer firings and
//! well-formed but adversarial responses to its own queries. The cargo-fuzz target is one line
//! calling [`datagrams`]; `tests/fuzz_corpus.rs` replays the committed corpus in `cargo test`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycel_krpc::{Body, Message, NodeId, NodeInfo, Response};

use crate::{Config, InfoHash, Node};

/// Runs one fuzz input. Records: `[kind, a, len, bytes[len]]`, repeated.
/// - kind 0: raw datagram `bytes` from source number `a % 8`;
/// - kind 1: a valid response to the node's oldest unanswered query, id and nodes from `bytes`
///   (20-byte id, then 26-byte compact nodes), values when `a` is odd;
/// - kind 2: advance the clock by `a` × 100 ms and fire timers;
/// - kind 3: start a command (`a % 4`: ping, find_node, get_peers, announce; for `a >= 128`
///   instead a BEP 44 get (even `a`) or put (odd `a`) of an immutable item).
///
/// Panics only on a broken invariant (bounded memory, in-flight cap).
pub fn datagrams(data: &[u8]) {
    // `Instant` has no constructor but `now()`: read it once as the origin of virtual time.
    #[allow(clippy::disallowed_methods)] // the origin only; all further time is virtual
    let mut now = Instant::now();
    let cfg = Config {
        max_in_flight: 64,
        max_info_hashes: 16,
        max_peers_per_info_hash: 8,
        max_items: 4,
        max_item_bytes: 2048,
        ..Config::default()
    };
    let (max_in_flight, max_ih, max_peers) = (cfg.max_in_flight, cfg.max_info_hashes, cfg.max_peers_per_info_hash);
    let mut node = Node::new(cfg, NodeId([0x55; 20]), [9; 32], now);
    let src = |i: u8| SocketAddr::from(([127, 0, 0, 10 + (i % 8)], 6881));
    node.bootstrap(now, &[src(0), src(1)]);
    let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let (kind, a, len) = (rest[0], rest[1], rest[2] as usize);
        let body = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        match kind % 4 {
            0 => node.handle_datagram(now, src(a), body),
            1 => {
                if let Some((to, query)) = (!sent.is_empty()).then(|| sent.remove(0)) {
                    if let Ok(q) = Message::decode(&query) {
                        let reply = response(q.tx, body, a % 2 == 1);
                        node.handle_datagram(now, to, &reply);
                    }
                }
            }
            2 => {
                now += Duration::from_millis(100 * u64::from(a));
                node.handle_timeout(now);
            }
            _ => {
                let target = body.get(..20).and_then(|b| <[u8; 20]>::try_from(b).ok()).unwrap_or([a; 20]);
                match a % 4 {
                    _ if a >= 128 && a % 2 == 0 => drop(node.get_item(now, NodeId(target), crate::ItemKind::Immutable)),
                    _ if a >= 128 => {
                        if let Ok(item) = mycel_items::ImmutableItem::from_bytes(body) {
                            let _ = node.put_immutable(now, item);
                        }
                    }
                    0 => drop(node.ping(now, src(a))),
                    1 => drop(node.find_node(now, NodeId(target))),
                    2 => drop(node.get_peers(now, InfoHash(target))),
                    _ => drop(node.announce(now, InfoHash(target), Some(6881))),
                }
            }
        }
        while let Some(t) = node.poll_transmit() {
            if let Ok(m) = Message::decode(&t.payload) {
                if matches!(m.body, Body::Query(_)) && sent.len() < 256 {
                    sent.push((t.dst, t.payload.clone()));
                }
            }
        }
        while node.poll_event().is_some() {}
        let s = node.stats();
        assert!(s.in_flight <= max_in_flight, "in flight {} over the cap", s.in_flight);
        assert!(s.stored_info_hashes <= max_ih && s.stored_peers <= max_ih * max_peers);
        assert!(s.nodes_per_bucket.iter().all(|&n| n <= 8));
        assert!(s.stored_items <= 4 && s.stored_item_bytes <= 2048, "item store over its caps");
        while node.poll_item_write().is_some() {}
    }
}

fn response(tx: &[u8], body: &[u8], with_values: bool) -> Vec<u8> {
    let id = body.get(..20).and_then(|b| NodeId::from_slice(b).ok()).unwrap_or(NodeId([1; 20]));
    let mut r = Response::with_id(id);
    for chunk in body.get(20..).unwrap_or(&[]).chunks_exact(26) {
        if let (Ok(id), Some(addr)) = (NodeId::from_slice(&chunk[..20]), mycel_krpc::decode_compact_addr(&chunk[20..]))
        {
            r.nodes.push(NodeInfo { id, addr });
        }
    }
    if with_values {
        r.values = r.nodes.iter().map(|n| n.addr).collect();
    }
    r.token = Some(b"tk");
    // An item value that rarely matches the target: the get must count it invalid, not crash.
    if with_values {
        r.v = Some(b"4:fuzz");
    }
    let m = Message { tx, version: None, ip: None, read_only: false, body: Body::Response(r) };
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}
