//! A hand-driven peer against one engine: malformed input, unrequested blocks, oversized
//! messages, choked requests. The engine must disconnect (never panic).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::v1_torrent;
use mycel_peer_wire::{Bitfield, ExtendedHandshake, Handshake, Message, Reserved};
use mycel_swarm::{Config, DisconnectReason, DiskOp, DiskResult, PeerKey, Swarm};

const PIECE: u32 = 32 * 1024;
const KEY: PeerKey = PeerKey(1);

fn origin() -> Instant {
    // Test origin for virtual time.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn addr() -> SocketAddr {
    "10.9.9.9:5000".parse().unwrap()
}

fn engine(seed: bool) -> (Swarm, Instant, Vec<u8>) {
    let (data, layout) = v1_torrent(4 * PIECE as usize, PIECE, 7);
    let now = origin();
    let have = if seed { Bitfield::full(4) } else { Bitfield::new(4) };
    let s = Swarm::new(Config::default(), layout, [1; 20], [0; 32], now, have).unwrap();
    (s, now, data)
}

fn handshake(fast: bool) -> Vec<u8> {
    let reserved = Reserved::NONE.with_fast_extension(fast).with_extension_protocol(true);
    Handshake { reserved, info_hash: [0xab; 20], peer_id: [2; 20] }.to_bytes().to_vec()
}

fn enc(m: Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

/// Connects the hand-driven peer (incoming) and drains what the engine sends.
fn connected(seed: bool, fast: bool) -> (Swarm, Instant, Vec<u8>) {
    let (mut s, now, data) = engine(seed);
    s.handle_peer_connected(now, KEY, addr(), false);
    s.handle_peer_bytes(now, KEY, &handshake(fast));
    while s.poll_transmit().is_some() {}
    assert!(s.poll_disconnect().is_none());
    (s, now, data)
}

fn disconnected(s: &mut Swarm) -> Option<DisconnectReason> {
    s.poll_disconnect().map(|d| {
        assert_eq!(d.peer, KEY);
        d.reason
    })
}

#[test]
fn malformed_message_disconnects() {
    let (mut s, now, _) = connected(false, true);
    // `have` with a length of 3.
    s.handle_peer_bytes(now, KEY, &[0, 0, 0, 3, 4, 0, 0]);
    assert!(matches!(disconnected(&mut s), Some(DisconnectReason::Protocol(_))));
    assert!(s.stats().peers.is_empty());
    // Later bytes for the forgotten peer are ignored.
    s.handle_peer_bytes(now, KEY, &[0, 0, 0, 0]);
    assert!(s.poll_disconnect().is_none());
}

#[test]
fn oversized_message_disconnects() {
    let (mut s, now, _) = connected(false, true);
    s.handle_peer_bytes(now, KEY, &[0, 0x20, 0, 0, 7]);
    assert!(matches!(disconnected(&mut s), Some(DisconnectReason::Protocol(_))));
}

#[test]
fn unrequested_block_disconnects() {
    let (mut s, now, data) = connected(false, true);
    let block = &data[..16384];
    s.handle_peer_bytes(now, KEY, &enc(Message::Piece { index: 0, begin: 0, block }));
    assert_eq!(disconnected(&mut s), Some(DisconnectReason::UnrequestedBlock));
}

#[test]
fn bad_bitfield_and_late_bitfield_disconnect() {
    let (mut s, now, _) = connected(false, true);
    s.handle_peer_bytes(now, KEY, &enc(Message::Bitfield(&[0xff])));
    assert!(matches!(disconnected(&mut s), Some(DisconnectReason::Protocol(_))), "spare bits set");
    let (mut s, now, _) = connected(false, true);
    s.handle_peer_bytes(now, KEY, &enc(Message::Have(1)));
    s.handle_peer_bytes(now, KEY, &enc(Message::Bitfield(&[0x80])));
    assert!(matches!(disconnected(&mut s), Some(DisconnectReason::Protocol(_))), "bitfield after have");
    let (mut s, now, _) = connected(false, true);
    s.handle_peer_bytes(now, KEY, &enc(Message::Have(4)));
    assert!(matches!(disconnected(&mut s), Some(DisconnectReason::Protocol(_))), "index out of range");
}

#[test]
fn wrong_info_hash_and_self_connection() {
    let (mut s, now, _) = engine(false);
    s.handle_peer_connected(now, KEY, addr(), false);
    let hs = Handshake { reserved: Reserved::NONE, info_hash: [1; 20], peer_id: [2; 20] };
    s.handle_peer_bytes(now, KEY, &hs.to_bytes());
    assert_eq!(disconnected(&mut s), Some(DisconnectReason::WrongInfoHash));
    let hs = Handshake { reserved: Reserved::NONE, info_hash: [0xab; 20], peer_id: [1; 20] };
    s.handle_peer_connected(now, KEY, addr(), false);
    s.handle_peer_bytes(now, KEY, &hs.to_bytes());
    assert_eq!(disconnected(&mut s), Some(DisconnectReason::SelfConnection));
    s.handle_peer_connected(now, KEY, addr(), false);
    s.handle_peer_bytes(now, KEY, b"GET / HTTP/1.1\r\n");
    assert!(matches!(disconnected(&mut s), Some(DisconnectReason::Protocol(_))));
}

#[test]
fn same_peer_id_again_replaces_the_stale_connection_only_from_the_same_host() {
    // A magnet's fetcher closes its metadata connection and dials again with the same id;
    // the close may reach us after the new handshake. The new connection must win.
    let (mut s, now, _) = connected(true, true);
    let again = PeerKey(2);
    let other_port: SocketAddr = "10.9.9.9:5001".parse().unwrap();
    s.handle_peer_connected(now, again, other_port, false);
    s.handle_peer_bytes(now, again, &handshake(true));
    let d = s.poll_disconnect().expect("the stale connection is closed");
    assert_eq!((d.peer, d.reason), (KEY, DisconnectReason::Duplicate));
    assert!(s.poll_disconnect().is_none());
    assert_eq!(s.stats().peers.len(), 1);
    assert_eq!(s.stats().peers[0].addr, other_port);
    // The same id from another host is a second path: the first connection stays.
    let third = PeerKey(3);
    s.handle_peer_connected(now, third, "10.1.1.1:5000".parse().unwrap(), false);
    s.handle_peer_bytes(now, third, &handshake(true));
    let d = s.poll_disconnect().expect("the newcomer is refused");
    assert_eq!((d.peer, d.reason), (third, DisconnectReason::Duplicate));
    assert_eq!(s.stats().peers.len(), 1);
    assert_eq!(s.stats().peers[0].addr, other_port);
}

#[test]
fn choked_requests_are_rejected_unchoked_are_served() {
    let (mut s, now, data) = connected(true, true);
    let req = enc(Message::Request { index: 1, begin: 0, length: 16384 });
    s.handle_peer_bytes(now, KEY, &req);
    let out = s.poll_transmit().expect("reject").data;
    assert_eq!(out, enc(Message::RejectRequest { index: 1, begin: 0, length: 16384 }));
    assert!(s.poll_disk_op().is_none(), "nothing read for a choked peer");
    // Interest gets a free seeding slot at once.
    s.handle_peer_bytes(now, KEY, &enc(Message::Interested));
    assert_eq!(s.poll_transmit().expect("unchoke").data, enc(Message::Unchoke));
    s.handle_peer_bytes(now, KEY, &req);
    let Some(DiskOp::Read { peer, piece: 1, begin: 0, len: 16384 }) = s.poll_disk_op() else { panic!("no read") };
    let block = bytes::Bytes::copy_from_slice(&data[PIECE as usize..PIECE as usize + 16384]);
    s.handle_disk_result(now, DiskResult::Read { peer, piece: 1, begin: 0, data: block.clone() });
    assert_eq!(s.poll_transmit().expect("piece").data, enc(Message::Piece { index: 1, begin: 0, block: &block }));
    // A request past the end of the piece is a protocol violation.
    s.handle_peer_bytes(now, KEY, &enc(Message::Request { index: 1, begin: PIECE - 100, length: 16384 }));
    assert!(matches!(disconnected(&mut s), Some(DisconnectReason::Protocol(_))));
}

#[test]
fn leecher_requests_after_unchoke_and_snubs_silent_peer() {
    let (mut s, now, _) = connected(false, true);
    let mut ext = Vec::new();
    ExtendedHandshake { reqq: Some(3), ..ExtendedHandshake::default() }.encode(&mut ext);
    s.handle_peer_bytes(now, KEY, &enc(Message::Extended { id: 0, payload: &ext }));
    s.handle_peer_bytes(now, KEY, &enc(Message::HaveAll));
    assert_eq!(s.poll_transmit().expect("interested").data, enc(Message::Interested));
    s.handle_peer_bytes(now, KEY, &enc(Message::Unchoke));
    let out = s.poll_transmit().expect("requests").data;
    assert_eq!(out.len(), 2 * 17, "min queue depth of 2 requests");
    // Silence for the snub timeout: the requests are withdrawn with cancels.
    let later = now + Duration::from_secs(61);
    s.handle_timeout(later);
    let stats = s.stats();
    assert!(stats.peers[0].snubbed);
    let out = s.poll_transmit().expect("cancels and a re-request").data;
    assert_eq!(out[4], 8, "cancel first");
    // Nothing at all for 3 minutes: disconnected.
    s.handle_peer_bytes(later, KEY, &enc(Message::KeepAlive));
    s.handle_timeout(later + Duration::from_secs(181));
    assert_eq!(disconnected(&mut s), Some(DisconnectReason::Inactivity));
}

#[test]
fn keepalive_after_two_minutes_of_silence() {
    let (mut s, now, _) = connected(false, false);
    let t = now + Duration::from_secs(121);
    s.handle_peer_bytes(t, KEY, &enc(Message::KeepAlive));
    s.handle_timeout(t);
    assert_eq!(s.poll_transmit().expect("keep-alive").data, vec![0, 0, 0, 0]);
}

mod no_panic {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        /// Whatever a peer sends after its handshake, in whatever chunks, the engine never
        /// panics, and a peer it drops is dropped for a stated reason.
        #[test]
        fn arbitrary_bytes_never_panic(
            seed in any::<bool>(),
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20),
            prefix in proptest::collection::vec(0u8..24, 0..10),
        ) {
            let (mut s, now, _) = connected(seed, true);
            // Start with plausible message headers so decoding gets past the length check.
            let mut head = Vec::new();
            for id in prefix {
                head.extend([0, 0, 0, 1, id]);
            }
            s.handle_peer_bytes(now, KEY, &head);
            for c in chunks {
                s.handle_peer_bytes(now, KEY, &c);
            }
            s.handle_timeout(now + Duration::from_secs(30));
            while s.poll_transmit().is_some() {}
            while s.poll_disk_op().is_some() {}
            while let Some(d) = s.poll_disconnect() {
                prop_assert_eq!(d.peer, KEY);
            }
        }
    }
}
