//! Golden wire vectors (`testdata/krpc`): the BEP 5 examples byte for byte, plus our own
//! BEP 32/42/43 vectors. Decode then encode must give the same bytes.
//!
//! Reading the directory uses `std::fs`, which the sans-IO rule allows in tests.

#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mycel_krpc::{Body, DecodeError, ErrorBody, InfoHash, Message, Method, NodeId, NodeInfo, Query, Want};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/krpc")
}

fn bin_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    files
}

fn round_trip(bytes: &[u8]) -> Message<'_> {
    let msg = Message::decode(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)));
    let mut out = Vec::new();
    msg.encode(&mut out);
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(bytes));
    assert_eq!(out, bytes);
    assert_eq!(msg.encoded_len(), bytes.len());
    msg
}

fn query(msg: Message<'_>) -> Query<'_> {
    match msg.body {
        Body::Query(q) => q,
        other => panic!("not a query: {other:?}"),
    }
}

fn response(msg: Message<'_>) -> mycel_krpc::Response<'_> {
    match msg.body {
        Body::Response(r) => r,
        other => panic!("not a response: {other:?}"),
    }
}

#[test]
fn every_vector_round_trips_byte_for_byte() {
    let files = bin_files(&dir());
    assert!(files.len() >= 13, "expected the BEP 5 vectors and ours, found {}", files.len());
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        round_trip(&bytes);
        mycel_krpc::fuzzing::decode(&bytes);
    }
}

#[test]
fn rejected_vectors_fail_with_their_error() {
    let files = bin_files(&dir().join("rejected"));
    assert_eq!(files.len(), 3);
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let expected = if name.starts_with("bep44-put-unsorted") {
            // BEP 44: a value with unsorted keys is invalid bencoding; the node answers 203.
            DecodeError::NotCanonical("a.v")
        } else {
            DecodeError::BadLength { field: "r.nodes", len: 9 }
        };
        assert_eq!(Message::decode(&bytes), Err(expected), "{}", path.display());
        assert_eq!(mycel_krpc::salvage_query_tx(&bytes).is_some(), name.contains("query") || name.contains("put"));
    }
}

/// BEP 44's test vectors 1 and 2: key, signatures, target.
const K: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
const SIG1: &str = "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
                    1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01";
const SIG2: &str = "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
                    df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08";

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let clean: String = s.split_whitespace().collect();
    hex::decode(clean).expect("hex literal").try_into().expect("length")
}

#[test]
fn bep44_items() {
    use mycel_krpc::{MutableArgs, PutArgs};
    const V: &[u8] = b"12:Hello World!";
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep44-put-immutable-query.bin")));
    assert_eq!(q.method, Method::Put(PutArgs { token: b"aoeusnth", v: V, mutable: None }));
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep44-put-mutable-query.bin")));
    let m = MutableArgs { k: unhex(K), sig: unhex(SIG1), seq: 1, salt: b"", cas: None };
    assert_eq!(q.method, Method::Put(PutArgs { token: b"aoeusnth", v: V, mutable: Some(m) }));
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep44-put-mutable-salt-cas-query.bin")));
    let m = MutableArgs { k: unhex(K), sig: unhex(SIG2), seq: 1, salt: b"foobar", cas: Some(0) };
    assert_eq!(q.method, Method::Put(PutArgs { token: b"aoeusnth", v: V, mutable: Some(m) }));
    round_trip(include_bytes!("../../../testdata/krpc/bep44-put-response.bin"));
    let target = NodeId(unhex("4a533d47ec9c7d95b1ad75f576cffc641853b750"));
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep44-get-query.bin")));
    assert_eq!(q.method, Method::Get { target, seq: None, want: Want::default() });
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep44-get-seq-query.bin")));
    assert_eq!(q.method, Method::Get { target, seq: Some(1), want: Want::default() });
    let r = response(round_trip(include_bytes!("../../../testdata/krpc/bep44-get-immutable-response.bin")));
    assert_eq!((r.v, r.k, r.seq, r.nodes.len()), (Some(V), None, None, 1));
    let r = response(round_trip(include_bytes!("../../../testdata/krpc/bep44-get-mutable-response.bin")));
    assert_eq!((r.v, r.k, r.sig, r.seq), (Some(V), Some(unhex(K)), Some(unhex(SIG1)), Some(1)));
    let msg = round_trip(include_bytes!("../../../testdata/krpc/bep44-error-302.bin"));
    assert!(matches!(msg.body, Body::Error(ErrorBody { code: mycel_krpc::ERROR_SEQ_TOO_LOW, .. })));
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/mycel-bep44-put-dict-value.bin")));
    assert!(matches!(q.method, Method::Put(PutArgs { v: b"d1:ai1e1:bl1:xi-2eee", mutable: None, .. })));
}

const ABC: NodeId = NodeId(*b"abcdefghij0123456789");
const MNO: [u8; 20] = *b"mnopqrstuvwxyz123456";

#[test]
fn ping() {
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep5-ping-query.bin")));
    assert_eq!(q, Query { id: ABC, method: Method::Ping });
    let msg = round_trip(include_bytes!("../../../testdata/krpc/bep5-ping-response.bin"));
    assert_eq!(msg.tx, b"aa");
    assert_eq!(response(msg), mycel_krpc::Response::with_id(NodeId(MNO)));
}

#[test]
fn find_node() {
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep5-find-node-query.bin")));
    assert_eq!(q.method, Method::FindNode { target: NodeId(MNO), want: Want::default() });
    let r = response(round_trip(include_bytes!("../../../testdata/krpc/bep5-find-node-response.bin")));
    assert_eq!(r.id, NodeId(*b"0123456789abcdefghij"));
    let addr = SocketAddr::from(([b'a', b'x', b'j', b'e'], u16::from_be_bytes([b'.', b'u'])));
    assert_eq!(r.nodes, vec![NodeInfo { id: NodeId(*b"def456789abcdefghijk"), addr }]);
}

#[test]
fn get_peers() {
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep5-get-peers-query.bin")));
    assert_eq!(q.method, Method::GetPeers { info_hash: InfoHash(MNO), want: Want::default() });
    let r = response(round_trip(include_bytes!("../../../testdata/krpc/bep5-get-peers-response-values.bin")));
    assert_eq!(r.token, Some(&b"aoeusnth"[..]));
    assert_eq!(r.values.len(), 2);
    assert_eq!(r.values[1], SocketAddr::from(([b'i', b'd', b'h', b't'], u16::from_be_bytes([b'n', b'm']))));
    let r = response(round_trip(include_bytes!("../../../testdata/krpc/bep5-get-peers-response-nodes.bin")));
    assert_eq!((r.nodes.len(), r.token), (1, Some(&b"aoeusnth"[..])));
}

#[test]
fn announce_peer_keeps_implied_port() {
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep5-announce-peer-query.bin")));
    assert_eq!(
        q.method,
        Method::AnnouncePeer { info_hash: InfoHash(MNO), port: 6881, implied_port: true, token: b"aoeusnth" }
    );
    round_trip(include_bytes!("../../../testdata/krpc/bep5-announce-peer-response.bin"));
}

#[test]
fn error() {
    let msg = round_trip(include_bytes!("../../../testdata/krpc/bep5-error.bin"));
    assert_eq!(msg.body, Body::Error(ErrorBody { code: 201, message: b"A Generic Error Ocurred" }));
}

#[test]
fn bep32_42_43_fields() {
    let msg = round_trip(include_bytes!("../../../testdata/krpc/mycel-bep32-find-node-want.bin"));
    assert_eq!(msg.version, Some(&b"MC01"[..]));
    assert!(matches!(query(msg).method, Method::FindNode { want: Want { n4: true, n6: true }, .. }));
    let msg = round_trip(include_bytes!("../../../testdata/krpc/mycel-bep32-response-nodes6.bin"));
    assert!(msg.ip.is_some_and(|ip| ip.is_ipv6() && ip.port() == 6881));
    let r = response(msg);
    assert_eq!(r.nodes6.len(), 1);
    assert_eq!(r.nodes6[0].addr, "[2001:db8::1]:6881".parse::<SocketAddr>().expect("literal"));
    let msg = round_trip(include_bytes!("../../../testdata/krpc/mycel-bep42-bep43-ping-ip-ro.bin"));
    assert!(msg.read_only);
    assert_eq!(msg.ip, Some("1.2.3.4:6881".parse().expect("literal")));
}

#[test]
fn bep51_sample_infohashes() {
    let q = query(round_trip(include_bytes!("../../../testdata/krpc/bep51-sample-infohashes-query.bin")));
    assert_eq!(q.method, Method::SampleInfohashes { target: NodeId(MNO), want: Want::default() });
    let r = response(round_trip(include_bytes!("../../../testdata/krpc/bep51-sample-infohashes-response.bin")));
    assert_eq!((r.interval, r.num, r.nodes.len()), (Some(21600), Some(2), 1));
    let samples: Vec<InfoHash> = r.sample_hashes().collect();
    assert_eq!(samples, vec![InfoHash([b'A'; 20]), InfoHash([b'B'; 20])]);
}
