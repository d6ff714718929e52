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
fn verbatim_bep5_nodes_placeholders_are_rejected() {
    let files = bin_files(&dir().join("rejected"));
    assert_eq!(files.len(), 2);
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::BadLength { field: "r.nodes", len: 9 }),
            "{}",
            path.display()
        );
    }
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
