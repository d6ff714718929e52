//! One node, fed hand-made BEP 44 `get` and `put` datagrams: every error code, and nothing
//! stored changes on any error.

#![allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycel_dht::{Config, Node, NodeId};
use mycel_items::{ImmutableItem, Keypair, MutableItem};
use mycel_krpc::{Body, Message, Method, MutableArgs, PutArgs, Query, Response};

struct Rig {
    node: Node,
    now: Instant,
    token: Vec<u8>,
}

const ME: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)), 6881);

fn encode(tx: &[u8], method: Method<'_>) -> Vec<u8> {
    let q = Query { id: NodeId([2; 20]), method };
    let m = Message { tx, version: None, ip: None, read_only: false, body: Body::Query(q) };
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

/// The reply to `bytes` sent from `from`: `Ok(response bytes)` or `Err(error code)`.
fn ask(rig: &mut Rig, from: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, i64> {
    rig.node.handle_datagram(rig.now, from, bytes);
    let mut reply = None;
    while let Some(t) = rig.node.poll_transmit() {
        if t.dst == from {
            reply = Some(t.payload);
        }
    }
    let reply = reply.expect("a reply");
    match Message::decode(&reply).expect("valid").body {
        Body::Response(_) => Ok(reply),
        Body::Error(e) => Err(e.code),
        Body::Query(_) => panic!("a query"),
    }
}

fn response(bytes: &[u8]) -> Response<'_> {
    match Message::decode(bytes).expect("valid").body {
        Body::Response(r) => r,
        other => panic!("{other:?}"),
    }
}

fn rig() -> Rig {
    let now = Instant::now();
    let mut rig = Rig { node: Node::new(Config::default(), NodeId([1; 20]), [3; 32], now), now, token: Vec::new() };
    let get = encode(b"g0", Method::Get { target: NodeId([0; 20]), seq: None, want: Default::default() });
    let reply = ask(&mut rig, ME, &get).expect("get is answered");
    rig.token = response(&reply).token.expect("get gives a token").to_vec();
    rig
}

fn get(rig: &mut Rig, target: [u8; 20], seq: Option<i64>) -> Vec<u8> {
    ask(rig, ME, &encode(b"gg", Method::Get { target: NodeId(target), seq, want: Default::default() }))
        .expect("answered")
}

fn put_immutable(rig: &mut Rig, v: &[u8]) -> Result<Vec<u8>, i64> {
    let token = rig.token.clone();
    ask(rig, ME, &encode(b"pi", Method::Put(PutArgs { token: &token, v, mutable: None })))
}

fn put_mutable(rig: &mut Rig, item: &MutableItem, cas: Option<i64>) -> Result<Vec<u8>, i64> {
    put_raw(rig, *item.public_key(), item.salt(), item.seq(), item.value(), *item.signature(), cas)
}

fn put_raw(
    rig: &mut Rig,
    k: [u8; 32],
    salt: &[u8],
    seq: i64,
    v: &[u8],
    sig: [u8; 64],
    cas: Option<i64>,
) -> Result<Vec<u8>, i64> {
    let token = rig.token.clone();
    let mutable = Some(MutableArgs { k, sig, seq, salt, cas });
    ask(rig, ME, &encode(b"pm", Method::Put(PutArgs { token: &token, v, mutable })))
}

fn signed(seq: i64, salt: &[u8], v: &str) -> MutableItem {
    MutableItem::sign(&Keypair::from_seed([5; 32]), salt.to_vec(), seq, format!("{}:{v}", v.len()).into_bytes())
        .expect("valid")
}

#[test]
fn immutable_put_then_get() {
    let mut rig = rig();
    let item = ImmutableItem::new(b"12:Hello World!".to_vec()).expect("valid");
    assert!(put_immutable(&mut rig, item.value()).is_ok());
    let reply = get(&mut rig, item.target(), None);
    let r = response(&reply);
    assert_eq!(r.v, Some(item.value()));
    assert!(r.token.is_some() && r.k.is_none() && r.seq.is_none());
    assert_eq!(rig.node.stats().stored_items, 1);
    // A get of something we do not hold: token, no value.
    let reply = get(&mut rig, [9; 20], None);
    assert!(response(&reply).v.is_none() && response(&reply).token.is_some());
}

#[test]
fn mutable_put_then_get_with_and_without_seq() {
    let mut rig = rig();
    let item = signed(3, b"salt", "hello");
    assert!(put_mutable(&mut rig, &item, None).is_ok());
    let reply = get(&mut rig, item.target(), None);
    let r = response(&reply);
    assert_eq!(
        (r.v, r.k, r.sig, r.seq),
        (Some(item.value()), Some(*item.public_key()), Some(*item.signature()), Some(3))
    );
    // Not newer than the seq asked for: seq only.
    let reply = get(&mut rig, item.target(), Some(3));
    let r = response(&reply);
    assert_eq!((r.v, r.k, r.sig, r.seq), (None, None, None, Some(3)));
    let reply = get(&mut rig, item.target(), Some(2));
    assert_eq!(response(&reply).v, Some(item.value()));
}

#[test]
fn bad_token_is_203() {
    let mut rig = rig();
    let other = SocketAddr::from(([127, 0, 0, 9], 1));
    let token = rig.token.clone();
    let put = encode(b"px", Method::Put(PutArgs { token: &token, v: b"i1e", mutable: None }));
    assert_eq!(ask(&mut rig, other, &put).err(), Some(203), "a token from another address");
    assert_eq!(rig.node.stats().stored_items, 0);
}

#[test]
fn value_too_big_is_205() {
    let mut rig = rig();
    let big = format!("997:{}", "x".repeat(997));
    assert_eq!(put_immutable(&mut rig, big.as_bytes()).err(), Some(205));
    let item = signed(1, b"", "ok");
    assert_eq!(put_raw(&mut rig, *item.public_key(), b"", 1, big.as_bytes(), *item.signature(), None).err(), Some(205));
    assert_eq!(rig.node.stats().stored_items, 0);
}

#[test]
fn bad_signature_is_206() {
    let mut rig = rig();
    let item = signed(1, b"", "ok");
    let mut sig = *item.signature();
    sig[10] ^= 1;
    assert_eq!(put_raw(&mut rig, *item.public_key(), b"", 1, item.value(), sig, None).err(), Some(206));
    // A signature for seq 1 replayed as seq 2.
    assert_eq!(put_raw(&mut rig, *item.public_key(), b"", 2, item.value(), *item.signature(), None).err(), Some(206));
    assert_eq!(rig.node.stats().stored_items, 0);
}

#[test]
fn salt_too_big_is_207() {
    let mut rig = rig();
    let item = signed(1, b"", "ok");
    assert_eq!(
        put_raw(&mut rig, *item.public_key(), &[7; 65], 1, item.value(), *item.signature(), None).err(),
        Some(207)
    );
    assert_eq!(rig.node.stats().stored_items, 0);
}

#[test]
fn cas_mismatch_is_301_and_seq_backwards_is_302_and_nothing_changes() {
    let mut rig = rig();
    let v5 = signed(5, b"", "five");
    assert!(put_mutable(&mut rig, &v5, None).is_ok());
    assert_eq!(put_mutable(&mut rig, &signed(6, b"", "six"), Some(4)).err(), Some(301));
    assert_eq!(put_mutable(&mut rig, &signed(4, b"", "four"), None).err(), Some(302));
    assert_eq!(put_mutable(&mut rig, &signed(5, b"", "other"), None).err(), Some(302));
    let reply = get(&mut rig, v5.target(), None);
    assert_eq!(response(&reply).seq, Some(5), "still the item with seq 5");
    assert_eq!(response(&reply).v, Some(v5.value()));
    assert!(put_mutable(&mut rig, &signed(6, b"", "six"), Some(5)).is_ok(), "matching cas");
    assert_eq!(response(&get(&mut rig, v5.target(), None)).seq, Some(6));
}

#[test]
fn unsorted_value_is_203() {
    let mut rig = rig();
    let token = rig.token.clone();
    let mut bytes = b"d1:ad2:id20:abcdefghij01234567895:token".to_vec();
    bytes.extend(format!("{}:", token.len()).as_bytes());
    bytes.extend(&token);
    bytes.extend(b"1:vd1:bi1e1:ai2eee1:q3:put1:t2:uu1:y1:qe");
    assert_eq!(ask(&mut rig, ME, &bytes).err(), Some(203));
}

#[test]
fn items_expire_after_the_ttl() {
    let mut rig = rig();
    let item = ImmutableItem::new(b"i7e".to_vec()).expect("valid");
    assert!(put_immutable(&mut rig, item.value()).is_ok());
    rig.now += Duration::from_secs(2 * 3600 - 60);
    rig.node.handle_timeout(rig.now);
    assert_eq!(response(&get(&mut rig, item.target(), None)).v, Some(item.value()), "kept 2 hours");
    rig.now += Duration::from_secs(120);
    rig.node.handle_timeout(rig.now);
    assert_eq!(response(&get(&mut rig, item.target(), None)).v, None);
}

#[test]
fn accepted_puts_are_queued_for_the_disk_and_refused_ones_are_not() {
    let mut rig = rig();
    let v1 = signed(1, b"", "one");
    assert!(put_mutable(&mut rig, &v1, None).is_ok());
    assert_eq!(rig.node.poll_item_write(), Some(mycel_dht::StoredItem::Mutable(v1.clone())));
    assert_eq!(put_mutable(&mut rig, &signed(0, b"", "zero"), None).err(), Some(302));
    assert_eq!(rig.node.poll_item_write(), None, "nothing to write after refusals");
    let item = ImmutableItem::new(b"i1e".to_vec()).expect("valid");
    assert!(put_immutable(&mut rig, item.value()).is_ok());
    assert_eq!(rig.node.poll_item_write(), Some(mycel_dht::StoredItem::Immutable(item)));
    // What the driver saved comes back with restore_item.
    let saved = rig.node.stored_items(rig.now);
    assert_eq!(saved.len(), 2);
    let mut fresh = Node::new(Config::default(), NodeId([4; 20]), [1; 32], rig.now);
    for (item, at) in saved.clone() {
        fresh.restore_item(at, item);
    }
    assert_eq!(fresh.stored_items(rig.now), saved);
}
