//! BEP 42 and BEP 43 for the node itself: it takes an id derived from the public address its
//! responders agree on, finds out when nobody can reach it unasked and then says `ro`, and
//! drops a node from its table when that node turns read-only.

#![allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycel_dht::secure_id::is_secure_id;
use mycel_dht::{Config, Node, NodeId, NodeInfo, ReachProbe};
use mycel_krpc::{Body, Message, Method, Query, Response};

fn addr(a: u8, b: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, a, b], 6881))
}

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

fn query_from(id: NodeId, read_only: bool) -> Vec<u8> {
    encode(&Message {
        tx: b"qq",
        version: None,
        ip: None,
        read_only,
        body: Body::Query(Query { id, method: Method::Ping }),
    })
}

/// Answers every query the node sent, as the node at the destination would (its id is
/// derived from its address), telling it that its address is `seen`.
fn answer_all(node: &mut Node, now: Instant, seen: SocketAddr) -> Vec<(SocketAddr, bool)> {
    let mut sent = Vec::new();
    while let Some(t) = node.poll_transmit() {
        let m = Message::decode(&t.payload).expect("the node sends valid KRPC");
        if let Body::Query(_) = m.body {
            sent.push((t.dst, m.read_only, m.tx.to_vec()));
        }
    }
    for (dst, _, tx) in &sent {
        let id = id_of(*dst);
        let r = Message {
            tx,
            version: None,
            ip: Some(seen),
            read_only: false,
            body: Body::Response(Response::with_id(id)),
        };
        node.handle_datagram(now, *dst, &encode(&r));
    }
    sent.into_iter().map(|(d, ro, _)| (d, ro)).collect()
}

fn id_of(a: SocketAddr) -> NodeId {
    let mut id = [0u8; 20];
    id[..4].copy_from_slice(&match a.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        std::net::IpAddr::V6(_) => [6; 4],
    });
    id[19] = 1;
    NodeId(id)
}

#[test]
fn node_takes_a_bep42_id_once_responders_agree_on_its_public_address() {
    let now = Instant::now();
    let old = NodeId([0x5a; 20]);
    let mut node = Node::new(Config::default(), old, [1; 32], now);
    let public: SocketAddr = "203.0.113.7:6881".parse().expect("literal");
    for i in 1..=4 {
        node.ping(now, addr(1, i));
    }
    answer_all(&mut node, now, public);
    assert_eq!(node.id(), old, "four voters are not a quorum");
    node.ping(now, addr(1, 5));
    answer_all(&mut node, now, public);
    assert_eq!(node.external_ip(), Some(public.ip()));
    assert_ne!(node.id(), old);
    assert!(is_secure_id(&node.id(), public.ip()), "the new id matches the voted address");
    assert_eq!(node.stats().id_changes, 1);
    // The old contacts are asked again under the new id and come back into the table.
    answer_all(&mut node, now, public);
    assert_eq!(node.routing_table().own_id(), node.id());
    assert_eq!(node.routing_table().len(), 5, "the contacts were re-verified against the new id");
}

#[test]
fn private_and_loopback_addresses_keep_the_id() {
    let now = Instant::now();
    let old = NodeId([0x5a; 20]);
    let mut node = Node::new(Config::default(), old, [1; 32], now);
    for i in 1..=8 {
        node.ping(now, addr(2, i));
    }
    answer_all(&mut node, now, "192.168.1.20:6881".parse().expect("literal"));
    assert_eq!(node.external_ip(), Some("192.168.1.20".parse().expect("literal")));
    assert_eq!(node.id(), old, "BEP 42 exempts private addresses");
    assert_eq!(node.stats().id_changes, 0);
}

fn probing_node(now: Instant) -> Node {
    let probe = ReachProbe {
        window: Duration::from_secs(600),
        memory: Duration::from_secs(300),
        recheck: Duration::from_secs(3600),
    };
    let cfg = Config { reach_probe: Some(probe), secure_own_id: false, ..Config::default() };
    Node::new(cfg, NodeId([0x33; 20]), [2; 32], now)
}

#[test]
fn a_node_queried_only_by_nodes_it_wrote_to_turns_read_only_and_tells_its_table() {
    let t0 = Instant::now();
    let mut node = probing_node(t0);
    let seen: SocketAddr = "198.51.100.77:6881".parse().expect("literal");
    // It writes to ten nodes and only those write back, as through a NAT.
    for i in 1..=10 {
        node.ping(t0, addr(3, i));
    }
    let sent = answer_all(&mut node, t0, seen);
    assert!(sent.iter().all(|(_, ro)| !ro), "no `ro` while probing");
    for i in 1..=10 {
        node.handle_datagram(t0 + Duration::from_secs(60), addr(3, i), &query_from(id_of(addr(3, i)), false));
    }
    let _ = answer_all(&mut node, t0, seen);
    assert!(!node.is_read_only());
    node.handle_timeout(t0 + Duration::from_secs(600));
    assert!(node.is_read_only(), "a whole window without an unsolicited query");
    let table = node.routing_table().len();
    assert_eq!(table, 8, "one full bucket");
    let told = answer_all(&mut node, t0 + Duration::from_secs(600), seen);
    assert_eq!(told.len(), table, "every table node hears that we are read-only");
    assert!(told.iter().all(|(_, ro)| *ro), "and every query carries ro=1");
    // Someone we never wrote to gets through: we are reachable after all.
    node.handle_datagram(t0 + Duration::from_secs(700), addr(4, 1), &query_from(id_of(addr(4, 1)), false));
    assert!(!node.is_read_only());
    assert!(node.stats().reachable);
}

#[test]
fn a_reachable_node_never_turns_read_only() {
    let t0 = Instant::now();
    let mut node = probing_node(t0);
    node.handle_datagram(t0 + Duration::from_secs(5), addr(5, 1), &query_from(id_of(addr(5, 1)), false));
    node.handle_timeout(t0 + Duration::from_secs(3 * 3600));
    assert!(!node.is_read_only());
    assert!(node.stats().reachable);
}

#[test]
fn a_table_node_that_turns_read_only_is_dropped() {
    let t0 = Instant::now();
    let mut node = probing_node(t0);
    let seen: SocketAddr = "198.51.100.77:6881".parse().expect("literal");
    node.ping(t0, addr(6, 1));
    node.ping(t0, addr(6, 2));
    answer_all(&mut node, t0, seen);
    assert_eq!(node.routing_table().len(), 2);
    let id = id_of(addr(6, 1));
    node.handle_datagram(t0 + Duration::from_secs(1), addr(6, 1), &query_from(id, true));
    let left: Vec<NodeInfo> = node.routing_table().closest(&[0; 20], 8, t0 + Duration::from_secs(1));
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].addr, addr(6, 2));
}
