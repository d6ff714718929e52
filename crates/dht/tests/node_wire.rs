//! One node, fed hand-made datagrams: answers, errors, tokens and the drop counters.

#![allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycel_dht::{Config, InfoHash, Node, NodeId};
use mycel_krpc::{Body, Message, Method, Query, ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL};

fn node() -> (Node, Instant) {
    let now = Instant::now();
    (Node::new(Config::default(), NodeId([0x11; 20]), [7; 32], now), now)
}

fn query(id: u8, tx: &[u8], method: Method<'_>) -> Vec<u8> {
    let m = Message {
        tx,
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query { id: NodeId([id; 20]), method }),
    };
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

/// Drains the node and returns the replies sent to `to`, decoded into owned form by a closure.
fn replies(node: &mut Node, to: SocketAddr) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit() {
        if t.dst == to {
            out.push(t.payload);
        }
    }
    out
}

fn peer(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i], 6881))
}

#[test]
fn ping_is_answered_with_our_id_and_their_address() {
    let (mut n, now) = node();
    n.handle_datagram(now, peer(2), &query(2, b"aa", Method::Ping));
    let r = replies(&mut n, peer(2));
    let resp = r.iter().map(|b| Message::decode(b).expect("valid reply")).find(|m| m.tx == b"aa").expect("a reply");
    match resp.body {
        Body::Response(r) => assert_eq!(r.id, NodeId([0x11; 20])),
        other => panic!("expected a response, got {other:?}"),
    }
    assert_eq!(resp.ip, Some(peer(2)), "BEP 42 ip field echoes the querier's address");
    assert_eq!(n.stats().queries_in.ping, 1);
}

#[test]
fn malformed_query_gets_203_and_is_counted() {
    let (mut n, now) = node();
    // A ping whose id is 3 bytes long.
    n.handle_datagram(now, peer(3), b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe");
    n.handle_datagram(now, peer(3), b"garbage");
    n.handle_datagram(now, peer(3), b"d1:t2:zz1:y1:r");
    let r = replies(&mut n, peer(3));
    assert_eq!(r.len(), 1, "only the query with a readable tx id is answered");
    let m = Message::decode(&r[0]).expect("valid error");
    assert_eq!(m.tx, b"xy");
    assert!(matches!(m.body, Body::Error(e) if e.code == ERROR_PROTOCOL));
    assert_eq!(n.stats().dropped.malformed, 3);
}

#[test]
fn unknown_method_gets_204() {
    let (mut n, now) = node();
    n.handle_datagram(now, peer(4), &query(4, b"q1", Method::Unknown { name: b"vote" }));
    let r = replies(&mut n, peer(4));
    let m = r.iter().map(|b| Message::decode(b).expect("valid")).find(|m| m.tx == b"q1").expect("reply");
    assert!(matches!(m.body, Body::Error(e) if e.code == ERROR_METHOD_UNKNOWN));
}

#[test]
fn announce_needs_a_valid_token_from_the_same_ip() {
    let (mut n, now) = node();
    let ih = InfoHash([0x33; 20]);
    n.handle_datagram(now, peer(5), &query(5, b"g1", Method::GetPeers { info_hash: ih, want: Default::default() }));
    let r = replies(&mut n, peer(5));
    let m = r.iter().map(|b| Message::decode(b).expect("valid")).find(|m| m.tx == b"g1").expect("reply");
    let Body::Response(resp) = m.body else { panic!("expected response") };
    let token = resp.token.expect("get_peers gives a token").to_vec();

    // Wrong IP: refused.
    let ann = |tx: &'static [u8], port| {
        query(6, tx, Method::AnnouncePeer { info_hash: ih, port, implied_port: false, token: &token })
    };
    n.handle_datagram(now, peer(6), &ann(b"a1", 5000));
    let r = replies(&mut n, peer(6));
    assert!(r
        .iter()
        .any(|b| matches!(Message::decode(b).map(|m| m.body), Ok(Body::Error(e)) if e.code == ERROR_PROTOCOL)));
    assert_eq!(n.stats().stored_peers, 0);

    // Right IP: stored, and the next get_peers returns it.
    n.handle_datagram(now, peer(5), &ann(b"a2", 5000));
    let _ = replies(&mut n, peer(5));
    assert_eq!(n.stats().stored_peers, 1);
    n.handle_datagram(now, peer(7), &query(7, b"g2", Method::GetPeers { info_hash: ih, want: Default::default() }));
    let r = replies(&mut n, peer(7));
    let m = r.iter().map(|b| Message::decode(b).expect("valid")).find(|m| m.tx == b"g2").expect("reply");
    let Body::Response(resp) = m.body else { panic!("expected response") };
    assert_eq!(resp.values, vec![SocketAddr::from(([127, 0, 0, 5], 5000))]);

    // Tokens die after two rotations (5 minutes each).
    let later = now + Duration::from_secs(601);
    n.handle_timeout(later);
    n.handle_datagram(later, peer(5), &ann(b"a3", 5001));
    let r = replies(&mut n, peer(5));
    assert!(r
        .iter()
        .any(|b| matches!(Message::decode(b).map(|m| m.body), Ok(Body::Error(e)) if e.code == ERROR_PROTOCOL)));
}

#[test]
fn per_ip_rate_limit_drops_before_parsing() {
    let cfg = Config { rate_limit_per_sec: 10, rate_limit_burst: 20, ..Config::default() };
    let now = Instant::now();
    let mut n = Node::new(cfg, NodeId([1; 20]), [0; 32], now);
    for i in 0..100u8 {
        n.handle_datagram(now, peer(9), &query(9, &[b'p', i], Method::Ping));
    }
    let s = n.stats();
    assert_eq!(s.queries_in.ping, 20);
    assert_eq!(s.dropped.rate_limited, 80);
    // Another IP is not affected.
    n.handle_datagram(now, peer(10), &query(10, b"zz", Method::Ping));
    assert_eq!(n.stats().queries_in.ping, 21);
}

#[test]
fn read_only_node_answers_nothing_and_marks_its_queries() {
    let cfg = Config { read_only: true, ..Config::default() };
    let now = Instant::now();
    let mut n = Node::new(cfg, NodeId([1; 20]), [0; 32], now);
    n.handle_datagram(now, peer(2), &query(2, b"aa", Method::Ping));
    assert!(n.poll_transmit().is_none());
    assert_eq!(n.stats().dropped.read_only, 1);
    n.ping(now, peer(3));
    let t = n.poll_transmit().expect("ping sent");
    assert!(Message::decode(&t.payload).expect("valid").read_only);
}

#[test]
fn responses_from_strangers_or_wrong_addresses_are_dropped() {
    let (mut n, now) = node();
    n.ping(now, peer(2));
    let t = n.poll_transmit().expect("ping sent");
    let sent = Message::decode(&t.payload).expect("valid");
    let tx = sent.tx.to_vec();
    let resp = |tx: &[u8]| {
        let m = Message {
            tx,
            version: None,
            ip: None,
            read_only: false,
            body: Body::Response(mycel_krpc::Response::with_id(NodeId([2; 20]))),
        };
        let mut b = Vec::new();
        m.encode(&mut b);
        b
    };
    n.handle_datagram(now, peer(3), &resp(&tx));
    n.handle_datagram(now, peer(2), &resp(b"??"));
    let s = n.stats();
    assert_eq!((s.dropped.wrong_source, s.dropped.unknown_transaction), (1, 1));
    n.handle_datagram(now + Duration::from_millis(3), peer(2), &resp(&tx));
    assert!(matches!(n.poll_event(), Some(mycel_dht::Event::Pong { .. })));
    assert_eq!(n.stats().routing_nodes, 1);
}

#[test]
fn sample_infohashes_returns_stored_info_hashes_and_nodes() {
    let (mut n, now) = node();
    let sample = |n: &mut Node, tx: &'static [u8]| {
        n.handle_datagram(
            now,
            peer(8),
            &query(8, tx, Method::SampleInfohashes { target: NodeId([1; 20]), want: Default::default() }),
        );
        let r = replies(n, peer(8));
        r.into_iter().find(|b| Message::decode(b).is_ok_and(|m| m.tx == tx)).expect("a reply")
    };
    let empty = sample(&mut n, b"s1");
    let Body::Response(r) = Message::decode(&empty).expect("valid").body else { panic!("expected a response") };
    assert_eq!((r.samples, r.num), (Some(&b""[..]), Some(0)), "samples present even when empty (BEP 51)");
    assert!(r.interval.is_some_and(|i| (0..=21600).contains(&i)));
    // Announce two info-hashes, then sample them.
    for ih in [InfoHash([0x21; 20]), InfoHash([0x22; 20])] {
        n.handle_datagram(now, peer(9), &query(9, b"gp", Method::GetPeers { info_hash: ih, want: Default::default() }));
        let r = replies(&mut n, peer(9));
        let m = r.iter().map(|b| Message::decode(b).expect("valid")).find(|m| m.tx == b"gp").expect("reply");
        let Body::Response(resp) = m.body else { panic!("expected response") };
        let token = resp.token.expect("token").to_vec();
        n.handle_datagram(
            now,
            peer(9),
            &query(9, b"an", Method::AnnouncePeer { info_hash: ih, port: 1, implied_port: false, token: &token }),
        );
        let _ = replies(&mut n, peer(9));
    }
    let full = sample(&mut n, b"s2");
    let Body::Response(r) = Message::decode(&full).expect("valid").body else { panic!("expected a response") };
    assert_eq!(r.num, Some(2));
    let mut got: Vec<InfoHash> = r.sample_hashes().collect();
    got.sort();
    assert_eq!(got, vec![InfoHash([0x21; 20]), InfoHash([0x22; 20])]);
    assert_eq!(n.stats().queries_in.sample_infohashes, 2);
}

#[test]
fn bep42_enforcement_withholds_tokens_from_ids_that_do_not_match_the_ip() {
    let now = Instant::now();
    let cfg = Config { enforce_node_id: true, rate_limit_per_sec: 0, ..Config::default() };
    let mut n = Node::new(cfg, NodeId([0x11; 20]), [7; 32], now);
    let public = SocketAddr::from(([124, 31, 75, 21], 6881));
    let ih = InfoHash([0x33; 20]);
    let token_for = |n: &mut Node, id: NodeId, from: SocketAddr| {
        let q = Query { id, method: Method::GetPeers { info_hash: ih, want: Default::default() } };
        let m = Message { tx: b"t1", version: None, ip: None, read_only: false, body: Body::Query(q) };
        let mut out = Vec::new();
        m.encode(&mut out);
        n.handle_datagram(now, from, &out);
        let r = replies(n, from);
        let reply = r.iter().map(|b| Message::decode(b).expect("valid")).find(|m| m.tx == b"t1").expect("a reply");
        let Body::Response(resp) = reply.body else { panic!("expected response") };
        resp.token.is_some()
    };
    // BEP 42's first test vector: the id of 124.31.75.21 with rand 1.
    let secure = NodeId(*b"\x5f\xbf\xbf\xf1\x0c\x5d\x6a\x4e\xc8\xa8\x8e\x4c\x6a\xb4\xc2\x8b\x95\xee\xe4\x01");
    assert!(token_for(&mut n, secure, public), "a compliant id gets a token");
    assert!(!token_for(&mut n, NodeId([0x42; 20]), public), "a random id from a public IP does not");
    assert!(token_for(&mut n, NodeId([0x42; 20]), peer(9)), "local addresses are exempt");
}
