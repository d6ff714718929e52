//! BEP 32 on one node: with `Config::dual_stack` its lookups ask for both families and follow
//! both `nodes` and `nodes6`; without it they keep to the responder's family.

#![allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time

use std::net::SocketAddr;
use std::time::Instant;

use mycel_dht::{Config, Node, NodeId, NodeInfo};
use mycel_krpc::{Body, Message, Method, Response, Want};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

/// Runs a find_node lookup whose first node (`router`) answers with one node of each family;
/// returns the `want` of the first query and the addresses asked next.
fn lookup_through(dual_stack: bool, router: SocketAddr) -> (Want, Vec<SocketAddr>) {
    let now = Instant::now();
    let config = Config { dual_stack, ..Config::default() };
    let mut node = Node::new(config, NodeId([1; 20]), [7; 32], now);
    node.bootstrap(now, &[router]);
    let first = node.poll_transmit().expect("a bootstrap query");
    assert_eq!(first.dst, router);
    let msg = Message::decode(&first.payload).expect("valid");
    let Body::Query(q) = msg.body else { panic!("a query") };
    let Method::FindNode { want, .. } = q.method else { panic!("find_node: {:?}", q.method) };
    let tx = msg.tx.to_vec();
    while node.poll_transmit().is_some() {}

    let mut r = Response::with_id(NodeId([9; 20]));
    r.nodes = vec![NodeInfo { id: NodeId([2; 20]), addr: addr("127.0.0.2:2000") }];
    r.nodes6 = vec![NodeInfo { id: NodeId([3; 20]), addr: addr("[::1]:3000") }];
    let answer = Message { tx: &tx, version: None, ip: None, read_only: false, body: Body::Response(r) };
    let mut bytes = Vec::new();
    answer.encode(&mut bytes);
    node.handle_datagram(now, router, &bytes);
    let asked = std::iter::from_fn(|| node.poll_transmit()).map(|t| t.dst).collect();
    (want, asked)
}

#[test]
fn a_dual_stack_node_asks_for_and_follows_both_families() {
    let (want, asked) = lookup_through(true, addr("127.0.0.9:1000"));
    assert_eq!(want, Want { n4: true, n6: true });
    assert!(asked.contains(&addr("127.0.0.2:2000")), "{asked:?}");
    assert!(asked.contains(&addr("[::1]:3000")), "nodes6 from an IPv4 responder: {asked:?}");
}

#[test]
fn a_single_stack_node_keeps_to_its_family() {
    let (want, asked) = lookup_through(false, addr("127.0.0.9:1000"));
    assert_eq!(want, Want::default());
    assert!(asked.contains(&addr("127.0.0.2:2000")), "{asked:?}");
    assert!(!asked.contains(&addr("[::1]:3000")), "{asked:?}");
    let (_, asked) = lookup_through(false, addr("[::1]:1000"));
    assert!(asked.contains(&addr("[::1]:3000")) && !asked.contains(&addr("127.0.0.2:2000")), "{asked:?}");
}
