//! Property tests: every message variant round-trips with an exact `encoded_len`, and no
//! input (arbitrary or a mutated valid message) makes decoding or salvaging panic.

use std::net::{SocketAddr, SocketAddrV6};

use mycel_krpc::{
    fuzzing, salvage_query_tx, Body, ErrorBody, InfoHash, Message, Method, MutableArgs, NodeId, NodeInfo, PutArgs,
    Query, Response, Want,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Owned data a `Message` can borrow from.
#[derive(Debug, Clone)]
struct Fixture {
    tx: Vec<u8>,
    version: Option<Vec<u8>>,
    ip: Option<SocketAddr>,
    read_only: bool,
    body: FxBody,
}

#[derive(Debug, Clone)]
enum FxBody {
    Query {
        id: [u8; 20],
        method: FxMethod,
    },
    Response {
        id: [u8; 20],
        nodes: Vec<NodeInfo>,
        nodes6: Vec<NodeInfo>,
        values: Vec<SocketAddr>,
        token: Option<Vec<u8>>,
        item: FxItem,
    },
    Error {
        code: i64,
        message: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
enum FxMethod {
    Ping,
    FindNode { target: [u8; 20], want: Want },
    GetPeers { info_hash: [u8; 20], want: Want },
    AnnouncePeer { info_hash: [u8; 20], port: u16, implied_port: bool, token: Vec<u8> },
    Get { target: [u8; 20], seq: Option<i64>, want: Want },
    Sample { target: [u8; 20], want: Want },
    Put { token: Vec<u8>, v: Vec<u8>, mutable: Option<FxMutable> },
    Unknown { name: Vec<u8> },
}

#[derive(Debug, Clone)]
struct FxMutable {
    k: [u8; 32],
    sig: Vec<u8>,
    seq: i64,
    salt: Vec<u8>,
    cas: Option<i64>,
}

/// The BEP 44 fields of a response.
#[derive(Debug, Clone)]
struct FxItem {
    v: Option<Vec<u8>>,
    k: Option<[u8; 32]>,
    sig: Option<Vec<u8>>,
    seq: Option<i64>,
    samples: Option<Vec<u8>>,
    interval: Option<i64>,
    num: Option<i64>,
}

fn sig64(sig: &[u8]) -> [u8; 64] {
    sig.try_into().expect("strategy makes 64 bytes")
}

impl Fixture {
    fn message(&self) -> Message<'_> {
        let body = match &self.body {
            FxBody::Query { id, method } => Body::Query(Query {
                id: NodeId(*id),
                method: match method {
                    FxMethod::Ping => Method::Ping,
                    FxMethod::FindNode { target, want } => Method::FindNode { target: NodeId(*target), want: *want },
                    FxMethod::GetPeers { info_hash, want } => {
                        Method::GetPeers { info_hash: InfoHash(*info_hash), want: *want }
                    }
                    FxMethod::AnnouncePeer { info_hash, port, implied_port, token } => Method::AnnouncePeer {
                        info_hash: InfoHash(*info_hash),
                        port: *port,
                        implied_port: *implied_port,
                        token,
                    },
                    FxMethod::Get { target, seq, want } => {
                        Method::Get { target: NodeId(*target), seq: *seq, want: *want }
                    }
                    FxMethod::Put { token, v, mutable } => Method::Put(PutArgs {
                        token,
                        v,
                        mutable: mutable.as_ref().map(|m| MutableArgs {
                            k: m.k,
                            sig: sig64(&m.sig),
                            seq: m.seq,
                            salt: &m.salt,
                            cas: m.cas,
                        }),
                    }),
                    FxMethod::Sample { target, want } => {
                        Method::SampleInfohashes { target: NodeId(*target), want: *want }
                    }
                    FxMethod::Unknown { name } => Method::Unknown { name },
                },
            }),
            FxBody::Response { id, nodes, nodes6, values, token, item } => Body::Response(Response {
                id: NodeId(*id),
                nodes: nodes.clone(),
                nodes6: nodes6.clone(),
                values: values.clone(),
                token: token.as_deref(),
                v: item.v.as_deref(),
                k: item.k,
                sig: item.sig.as_deref().map(sig64),
                seq: item.seq,
                samples: item.samples.as_deref(),
                interval: item.interval,
                num: item.num,
            }),
            FxBody::Error { code, message } => Body::Error(ErrorBody { code: *code, message }),
        };
        Message { tx: &self.tx, version: self.version.as_deref(), ip: self.ip, read_only: self.read_only, body }
    }
}

fn addr_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(SocketAddr::from)
}

fn addr_v6() -> impl Strategy<Value = SocketAddr> {
    // The compact form has no flow label or scope id: generate them as zero.
    (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(ip.into(), port, 0, 0)))
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![addr_v4(), addr_v6()]
}

fn nodes(addr: impl Strategy<Value = SocketAddr>) -> impl Strategy<Value = Vec<NodeInfo>> {
    vec((any::<[u8; 20]>(), addr).prop_map(|(id, addr)| NodeInfo { id: NodeId(id), addr }), 0..10)
}

fn want() -> impl Strategy<Value = Want> {
    (any::<bool>(), any::<bool>()).prop_map(|(n4, n6)| Want { n4, n6 })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

/// A canonical bencoded value: an integer, a string, a list or a dictionary (sorted keys).
fn bvalue() -> impl Strategy<Value = Vec<u8>> {
    fn bstr(b: &[u8]) -> Vec<u8> {
        let mut out = format!("{}:", b.len()).into_bytes();
        out.extend_from_slice(b);
        out
    }
    prop_oneof![
        any::<i64>().prop_map(|i| format!("i{i}e").into_bytes()),
        bytes(40).prop_map(|b| bstr(&b)),
        vec(bytes(8), 0..5).prop_map(|items| {
            let mut out = b"l".to_vec();
            items.iter().for_each(|i| out.extend(bstr(i)));
            out.push(b'e');
            out
        }),
        prop::collection::btree_map(bytes(6), any::<i64>(), 0..4).prop_map(|m| {
            let mut out = b"d".to_vec();
            for (k, v) in m {
                out.extend(bstr(&k));
                out.extend(format!("i{v}e").into_bytes());
            }
            out.push(b'e');
            out
        }),
    ]
}

fn mutable() -> impl Strategy<Value = FxMutable> {
    (any::<[u8; 32]>(), vec(any::<u8>(), 64), any::<i64>(), bytes(70), option::of(any::<i64>()))
        .prop_map(|(k, sig, seq, salt, cas)| FxMutable { k, sig, seq, salt, cas })
}

fn item() -> impl Strategy<Value = FxItem> {
    let bep51 = (
        option::of((0..4usize).prop_flat_map(|n| vec(any::<u8>(), n * 20))),
        option::of(any::<i64>()),
        option::of(any::<i64>()),
    );
    (
        option::of(bvalue()),
        option::of(any::<[u8; 32]>()),
        option::of(vec(any::<u8>(), 64)),
        option::of(any::<i64>()),
        bep51,
    )
        .prop_map(|(v, k, sig, seq, (samples, interval, num))| FxItem { v, k, sig, seq, samples, interval, num })
}

fn method() -> impl Strategy<Value = FxMethod> {
    const KNOWN: [&[u8]; 7] =
        [b"ping", b"find_node", b"get_peers", b"announce_peer", b"get", b"put", b"sample_infohashes"];
    let announce = any::<bool>().prop_flat_map(|implied_port| {
        let port = if implied_port { 0..=u16::MAX } else { 1..=u16::MAX };
        (any::<[u8; 20]>(), port, Just(implied_port), bytes(20)).prop_map(|(info_hash, port, implied_port, token)| {
            FxMethod::AnnouncePeer { info_hash, port, implied_port, token }
        })
    });
    prop_oneof![
        Just(FxMethod::Ping),
        (any::<[u8; 20]>(), want()).prop_map(|(target, want)| FxMethod::FindNode { target, want }),
        (any::<[u8; 20]>(), want()).prop_map(|(info_hash, want)| FxMethod::GetPeers { info_hash, want }),
        announce,
        (any::<[u8; 20]>(), option::of(any::<i64>()), want()).prop_map(|(target, seq, want)| FxMethod::Get {
            target,
            seq,
            want
        }),
        (bytes(20), bvalue(), option::of(mutable())).prop_map(|(token, v, mutable)| FxMethod::Put {
            token,
            v,
            mutable
        }),
        (any::<[u8; 20]>(), want()).prop_map(|(target, want)| FxMethod::Sample { target, want }),
        bytes(16)
            .prop_filter("unknown names only", |n| !KNOWN.contains(&n.as_slice()))
            .prop_map(|name| FxMethod::Unknown { name }),
    ]
}

fn body() -> impl Strategy<Value = FxBody> {
    prop_oneof![
        (any::<[u8; 20]>(), method()).prop_map(|(id, method)| FxBody::Query { id, method }),
        (any::<[u8; 20]>(), nodes(addr_v4()), nodes(addr_v6()), vec(addr(), 0..12), option::of(bytes(20)), item())
            .prop_map(|(id, nodes, nodes6, values, token, item)| FxBody::Response {
                id,
                nodes,
                nodes6,
                values,
                token,
                item
            }),
        (any::<i64>(), bytes(40)).prop_map(|(code, message)| FxBody::Error { code, message }),
    ]
}

fn fixture() -> impl Strategy<Value = Fixture> {
    (vec(any::<u8>(), 1..=32), option::of(bytes(6)), option::of(addr()), any::<bool>(), body())
        .prop_map(|(tx, version, ip, read_only, body)| Fixture { tx, version, ip, read_only, body })
}

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn every_variant_round_trips(fx in fixture()) {
        let msg = fx.message();
        let bytes = encode(&msg);
        prop_assert_eq!(msg.encoded_len(), bytes.len());
        prop_assert_eq!(Message::decode(&bytes), Ok(msg.clone()));
        let expected = matches!(msg.body, Body::Query(_)).then_some(msg.tx);
        prop_assert_eq!(salvage_query_tx(&bytes), expected);
        fuzzing::decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..256)) {
        let _ = Message::decode(&data);
        let _ = salvage_query_tx(&data);
        fuzzing::decode(&data);
    }

    #[test]
    fn mutated_messages_never_panic(
        fx in fixture(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        insert in option::of((any::<prop::sample::Index>(), bytes(8))),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&fx.message());
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Some((at, extra)) = insert {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, extra);
        }
        fuzzing::decode(&bytes);
        let end = cut.index(bytes.len() + 1);
        fuzzing::decode(&bytes[..end]);
        let _ = salvage_query_tx(&bytes[..end]);
    }

    #[test]
    fn salvage_never_panics_on_dict_like_input(
        tail in vec(prop_oneof![
            6 => prop::sample::select(b"ilde0123456789:-tyq".to_vec()),
            1 => any::<u8>(),
        ], 0..64),
    ) {
        let mut data = b"d".to_vec();
        data.extend(tail);
        if let Some(t) = salvage_query_tx(&data) {
            prop_assert!((1..=32).contains(&t.len()));
        }
        fuzzing::decode(&data);
    }
}
