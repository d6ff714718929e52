//! BEP 9 metadata exchange: a `MetadataFetch` against a `Swarm` serving the info
//! dictionary, and against hand-driven liars.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mycel_peer_wire::{
    encode_extended_header, Bitfield, ExtendedHandshake, Handshake, Message, Reserved, UtMetadata, UT_METADATA,
};
use mycel_swarm::{
    Config, DisconnectReason, InfoHashes, Layout, MetadataConfig, MetadataFetch, PeerKey, Swarm, UT_METADATA_ID,
};
use sha1::{Digest, Sha1};

fn origin() -> Instant {
    // Test origin for virtual time.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn metadata(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 6881))
}

#[test]
fn fetches_from_a_swarm_that_has_it() {
    let meta = metadata(40_000);
    let ih: [u8; 20] = Sha1::digest(&meta).into();
    let now = origin();
    let layout = Layout::v1(ih, 16384, 16384, vec![[0; 20]]).unwrap();
    let mut swarm = Swarm::new(Config::default(), layout, [1; 20], [0; 32], now, Bitfield::full(1)).unwrap();
    assert!(!swarm.set_metadata(Bytes::from_static(b"not it")));
    assert!(swarm.set_metadata(Bytes::from(meta.clone())));
    let ids = InfoHashes { v1: Some(ih), v2: None };
    let mut fetch = MetadataFetch::new(MetadataConfig::default(), ids, [2; 20], now);
    fetch.add_peers(&[addr(1)]);
    assert_eq!(fetch.poll_connect(), Some(addr(1)));
    assert_eq!(fetch.poll_connect(), None, "each address dialled once");
    let (kf, ks) = (PeerKey(10), PeerKey(20));
    fetch.handle_peer_connected(now, kf, addr(1), true);
    swarm.handle_peer_connected(now, ks, addr(2), false);
    let mut got = None;
    for _ in 0..20 {
        while let Some(t) = fetch.poll_transmit() {
            swarm.handle_peer_bytes(now, ks, &t.data);
        }
        while let Some(t) = swarm.poll_transmit() {
            fetch.handle_peer_bytes(now, kf, &t.data);
        }
        if let Some(m) = fetch.poll_metadata() {
            got = Some(m);
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&meta[..]));
    assert_eq!(fetch.poll_metadata(), None, "delivered once");
    assert_eq!(fetch.poll_disconnect(), None, "open until the driver decides about piece layers");
    fetch.finish();
    assert_eq!(fetch.poll_disconnect().map(|d| d.reason), Some(DisconnectReason::NotUseful));
    assert_eq!(fetch.addrs(), vec![addr(1)]);
}

/// A hand-driven peer: handshake, extended handshake with `metadata_size`, then whatever
/// data the test sends.
fn liar(fetch: &mut MetadataFetch, now: Instant, key: PeerKey, ih: [u8; 20], size: u32) {
    fetch.handle_peer_connected(now, key, addr(key.0 as u8), false);
    let hs =
        Handshake { reserved: Reserved::NONE.with_extension_protocol(true), info_hash: ih, peer_id: [key.0 as u8; 20] };
    let mut bytes = hs.to_bytes().to_vec();
    let ext = ExtendedHandshake {
        m: [(UT_METADATA, 7u8)].into_iter().collect(),
        metadata_size: Some(size),
        ..Default::default()
    };
    let mut payload = Vec::new();
    ext.encode(&mut payload);
    Message::Extended { id: 0, payload: &payload }.encode(&mut bytes);
    fetch.handle_peer_bytes(now, key, &bytes);
}

fn data_msg(piece: u32, total_size: u32, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    UtMetadata::Data { piece, total_size, data }.encode(&mut body);
    let mut msg = Vec::new();
    encode_extended_header(UT_METADATA_ID, body.len(), &mut msg);
    msg.extend_from_slice(&body);
    msg
}

#[test]
fn wrong_metadata_is_rejected_and_the_liar_dropped() {
    let meta = metadata(1000);
    let ih: [u8; 20] = Sha1::digest(&meta).into();
    let now = origin();
    let mut fetch = MetadataFetch::new(MetadataConfig::default(), InfoHashes { v1: Some(ih), v2: None }, [2; 20], now);
    let key = PeerKey(5);
    liar(&mut fetch, now, key, ih, 1000);
    while fetch.poll_transmit().is_some() {}
    assert_eq!(fetch.progress(), (Some(1000), 0));
    fetch.handle_peer_bytes(now, key, &data_msg(0, 1000, &[0u8; 1000]));
    assert_eq!(fetch.poll_metadata(), None);
    assert_eq!(fetch.hash_failures(), 1);
    assert!(matches!(fetch.poll_disconnect().map(|d| d.reason), Some(DisconnectReason::Protocol(_))));
    // An honest peer afterwards completes it.
    let honest = PeerKey(6);
    liar(&mut fetch, now, honest, ih, 1000);
    fetch.handle_peer_bytes(now, honest, &data_msg(0, 1000, &meta));
    assert_eq!(fetch.poll_metadata().as_deref(), Some(&meta[..]));
}

#[test]
fn oversized_or_inconsistent_sizes_are_refused() {
    let now = origin();
    let ids = InfoHashes { v1: Some([9; 20]), v2: None };
    let cfg = MetadataConfig { max_size: 10_000, ..MetadataConfig::default() };
    let mut fetch = MetadataFetch::new(cfg, ids, [0xee; 20], now);
    liar(&mut fetch, now, PeerKey(1), [9; 20], 20_000);
    assert!(matches!(fetch.poll_disconnect().map(|d| d.reason), Some(DisconnectReason::Protocol(_))));
    liar(&mut fetch, now, PeerKey(2), [9; 20], 5000);
    fetch.handle_peer_bytes(now, PeerKey(2), &data_msg(0, 6000, &[0; 6000]));
    assert!(matches!(fetch.poll_disconnect().map(|d| d.reason), Some(DisconnectReason::Protocol(_))));
    // A silent peer's request times out and it is not asked again.
    liar(&mut fetch, now, PeerKey(3), [9; 20], 5000);
    assert!(fetch.poll_transmit().is_some());
    let t = fetch.poll_timeout().expect("timer");
    assert!(t <= now + Duration::from_secs(10));
    fetch.handle_timeout(now + Duration::from_secs(10));
    assert!(fetch.poll_transmit().is_none(), "not asked again");
}
