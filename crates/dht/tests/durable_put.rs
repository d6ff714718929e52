//! `Config::durable_items`: a put is answered only after the driver reports its write, a
//! failed write is answered with 202 and its item is never served, and a batch of mutable
//! puts is checked against the newest version accepted, not only the one served.

#![allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time

use std::net::SocketAddr;
use std::time::Instant;

use mycel_dht::{Config, Node, NodeId, StoredItem};
use mycel_items::{ImmutableItem, Keypair, MutableItem};
use mycel_krpc::{Body, Message, Method, MutableArgs, PutArgs, Query};

const PUTTER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)), 6881);

struct Rig {
    node: Node,
    now: Instant,
    token: Vec<u8>,
}

fn encode(tx: &[u8], method: Method<'_>) -> Vec<u8> {
    let q = Query { id: NodeId([2; 20]), method };
    let m = Message { tx, version: None, ip: None, read_only: false, body: Body::Query(q) };
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

/// A reply to the putter: its tx, and `Ok(v)` of a response or `Err(code)` of an error.
type Reply = (Vec<u8>, Result<Option<Vec<u8>>, i64>);

/// Every reply sent to the putter since the last call.
fn replies(rig: &mut Rig) -> Vec<Reply> {
    let mut out = Vec::new();
    while let Some(t) = rig.node.poll_transmit() {
        if t.dst != PUTTER {
            continue;
        }
        let msg = Message::decode(&t.payload).expect("valid");
        let outcome = match msg.body {
            Body::Response(r) => Ok(r.v.map(<[u8]>::to_vec)),
            Body::Error(e) => Err(e.code),
            // The node verifies a new querier with a ping of its own.
            Body::Query(_) => continue,
        };
        out.push((msg.tx.to_vec(), outcome));
    }
    out
}

fn rig() -> Rig {
    rig_with(Config { durable_items: true, ..Config::default() })
}

/// A node and a write token for the putter.
fn rig_with(config: Config) -> Rig {
    let now = Instant::now();
    let mut rig = Rig { node: Node::new(config, NodeId([1; 20]), [3; 32], now), now, token: Vec::new() };
    let get = encode(b"g0", Method::Get { target: NodeId([0; 20]), seq: None, want: Default::default() });
    rig.node.handle_datagram(now, PUTTER, &get);
    let mut token = None;
    while let Some(t) = rig.node.poll_transmit() {
        if let Body::Response(r) = Message::decode(&t.payload).expect("valid").body {
            token = r.token.map(<[u8]>::to_vec);
        }
    }
    rig.token = token.expect("a get gives a token");
    rig
}

fn put_immutable(rig: &mut Rig, tx: &[u8], v: &[u8]) {
    let token = rig.token.clone();
    let bytes = encode(tx, Method::Put(PutArgs { token: &token, v, mutable: None }));
    rig.node.handle_datagram(rig.now, PUTTER, &bytes);
}

fn put_mutable(rig: &mut Rig, tx: &[u8], item: &MutableItem, cas: Option<i64>) {
    let token = rig.token.clone();
    let mutable =
        Some(MutableArgs { k: *item.public_key(), sig: *item.signature(), seq: item.seq(), salt: item.salt(), cas });
    let bytes = encode(tx, Method::Put(PutArgs { token: &token, v: item.value(), mutable }));
    rig.node.handle_datagram(rig.now, PUTTER, &bytes);
}

/// The value a get returns for `target`.
fn get(rig: &mut Rig, target: [u8; 20]) -> Option<Vec<u8>> {
    let bytes = encode(b"gg", Method::Get { target: NodeId(target), seq: None, want: Default::default() });
    rig.node.handle_datagram(rig.now, PUTTER, &bytes);
    let got = replies(rig);
    assert_eq!(got.len(), 1, "{got:?}");
    got[0].1.clone().expect("a get is answered")
}

fn drain_writes(rig: &mut Rig) -> Vec<StoredItem> {
    std::iter::from_fn(|| rig.node.poll_item_write()).collect()
}

fn signed(seq: i64, v: &str) -> MutableItem {
    MutableItem::sign(&Keypair::from_seed([5; 32]), Vec::new(), seq, format!("{}:{v}", v.len()).into_bytes())
        .expect("valid")
}

#[test]
fn a_put_is_answered_after_its_write_and_served_only_then() {
    let mut rig = rig();
    let item = ImmutableItem::new(b"5:hello".to_vec()).expect("valid");
    put_immutable(&mut rig, b"p1", item.value());
    assert!(replies(&mut rig).is_empty(), "no answer before the write");
    assert_eq!(get(&mut rig, item.target()), None, "not served before the write");
    assert_eq!(rig.node.stats().item_writes_pending, 1);
    assert_eq!(drain_writes(&mut rig), vec![StoredItem::Immutable(item.clone())]);
    assert!(replies(&mut rig).is_empty(), "taken is not written");
    rig.node.handle_items_written(rig.now, 1, true);
    assert_eq!(replies(&mut rig), vec![(b"p1".to_vec(), Ok(None))]);
    assert_eq!(get(&mut rig, item.target()), Some(item.value().to_vec()));
    assert_eq!(rig.node.stats().item_writes_pending, 0);
}

#[test]
fn a_failed_write_is_answered_with_202_and_not_served() {
    let mut rig = rig();
    let a = ImmutableItem::new(b"1:a".to_vec()).expect("valid");
    let b = ImmutableItem::new(b"1:b".to_vec()).expect("valid");
    put_immutable(&mut rig, b"pa", a.value());
    put_immutable(&mut rig, b"pb", b.value());
    assert_eq!(drain_writes(&mut rig).len(), 2, "one batch");
    rig.node.handle_items_written(rig.now, 2, false);
    assert_eq!(replies(&mut rig), vec![(b"pa".to_vec(), Err(202)), (b"pb".to_vec(), Err(202))]);
    assert_eq!(get(&mut rig, a.target()), None);
    assert_eq!(get(&mut rig, b.target()), None);
    let stats = rig.node.stats();
    assert_eq!((stats.item_write_failures, stats.item_writes_pending, stats.stored_items), (2, 0, 0));
    // The disk recovers: the next put goes through.
    put_immutable(&mut rig, b"pc", a.value());
    drain_writes(&mut rig);
    rig.node.handle_items_written(rig.now, 1, true);
    assert_eq!(replies(&mut rig), vec![(b"pc".to_vec(), Ok(None))]);
    assert_eq!(get(&mut rig, a.target()), Some(a.value().to_vec()));
}

#[test]
fn mutable_puts_waiting_for_the_disk_are_checked_against_each_other() {
    let mut rig = rig();
    let (v5, v6, v4) = (signed(5, "five"), signed(6, "six"), signed(4, "four"));
    put_mutable(&mut rig, b"m6", &v6, None);
    // Checked against v6, accepted but unwritten: lower seqs and a stale cas are refused now.
    put_mutable(&mut rig, b"m5", &v5, None);
    put_mutable(&mut rig, b"c4", &v4, Some(3));
    assert_eq!(replies(&mut rig), vec![(b"m5".to_vec(), Err(302)), (b"c4".to_vec(), Err(301))]);
    let v7 = signed(7, "seven");
    put_mutable(&mut rig, b"m7", &v7, Some(6));
    let writes = drain_writes(&mut rig);
    assert_eq!(writes, vec![StoredItem::Mutable(v6.clone()), StoredItem::Mutable(v7.clone())], "in order");
    rig.node.handle_items_written(rig.now, 1, true);
    assert_eq!(replies(&mut rig), vec![(b"m6".to_vec(), Ok(None))]);
    assert_eq!(get(&mut rig, v6.target()), Some(v6.value().to_vec()));
    rig.node.handle_items_written(rig.now, 1, true);
    assert_eq!(replies(&mut rig), vec![(b"m7".to_vec(), Ok(None))]);
    assert_eq!(get(&mut rig, v6.target()), Some(v7.value().to_vec()));
}

#[test]
fn too_many_waiting_writes_are_refused_with_202() {
    let mut rig = rig_with(Config { durable_items: true, max_items: 2, ..Config::default() });
    for (i, tx) in [b"p1", b"p2", b"p3"].into_iter().enumerate() {
        put_immutable(&mut rig, tx, format!("i{i}e").as_bytes());
    }
    assert_eq!(replies(&mut rig), vec![(b"p3".to_vec(), Err(202))]);
    assert_eq!(drain_writes(&mut rig).len(), 2);
}

#[test]
fn without_durable_items_a_put_is_answered_at_once() {
    let mut rig = rig_with(Config::default());
    put_immutable(&mut rig, b"p1", b"i1e");
    assert_eq!(replies(&mut rig), vec![(b"p1".to_vec(), Ok(None))]);
    rig.node.handle_items_written(rig.now, 5, false);
    assert!(replies(&mut rig).is_empty(), "nothing waits: a report is a no-op");
    assert_eq!(drain_writes(&mut rig).len(), 1);
}
