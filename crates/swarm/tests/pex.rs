//! Peer exchange (BEP 11): engines meet through a common peer's PEX; private torrents do
//! none; a hand-driven peer checks what we send (diffs, flags, the interval) and how we
//! treat what it sends (malformed, flooding, addresses not worth dialling).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use harness::{v1_torrent, Net, STEP};
use mycel_peer_wire::{
    Bitfield, ExtendedHandshake, FrameDecoder, Handshake, Message, PexFlags, Reserved, UtPex, UT_PEX,
};
use mycel_swarm::{Config, DisconnectReason, Event, Layout, PeerKey, Swarm, UT_PEX_ID};

const PIECE: u32 = 32 * 1024;

fn cfg() -> Config {
    Config { listen_port: Some(6881), ..Config::default() }
}

/// Seeder A (0) knows nobody, B (1) knows A, C (2) knows only B.
fn triangle(layout: &Layout, data: &[u8]) -> Net {
    let mut net = Net::new();
    let a = net.add(cfg(), layout, data, true, 16 * 1024);
    let b = net.add(cfg(), layout, data, false, 16 * 1024);
    let c = net.add(cfg(), layout, data, false, 16 * 1024);
    let (addr_a, addr_b) = (net.nodes[a].addr, net.nodes[b].addr);
    let now = net.now;
    net.nodes[b].swarm.add_peers(now, &[addr_a]);
    net.nodes[c].swarm.add_peers(now, &[addr_b]);
    net
}

fn a_met_c(net: &Net) -> bool {
    let c = net.nodes[2].addr;
    net.nodes[0].events.iter().any(|e| matches!(e, Event::PeerConnected { addr, .. } if *addr == c))
}

#[test]
fn peers_meet_through_pex() {
    let (data, layout) = v1_torrent(2 << 20, PIECE, 11);
    let mut net = triangle(&layout, &data);
    let steps = net.run_until(200, a_met_c);
    assert!(a_met_c(&net), "C never connected to A");
    // B's first message goes out on its first tick with someone to tell of.
    assert!(steps as u32 * STEP <= Duration::from_secs(3), "took {steps} steps");
    let (b, c) = (net.nodes[1].swarm.stats(), net.nodes[2].swarm.stats());
    assert!(b.pex_sent >= 1 && c.pex_received >= 1 && c.pex_peers_learnt >= 1, "{b:?}\n{c:?}");
    net.run_until(4000, |n| n.nodes[1].completed() && n.nodes[2].completed());
    assert!(net.nodes[1].completed() && net.nodes[2].completed());
    // A minute of virtual time at most allows one more message per peer.
    let until = net.now + Duration::from_secs(70);
    while net.now < until {
        net.step();
    }
    for n in &net.nodes {
        let s = n.swarm.stats();
        assert!(s.pex_sent <= 2 * 2, "{} sent {} PEX messages", n.addr, s.pex_sent);
        assert_eq!(s.pex_ignored, 0);
    }
}

#[test]
fn private_torrent_sends_no_pex() {
    let (data, layout) = v1_torrent(2 << 20, PIECE, 11);
    let layout = layout.with_private(true);
    let mut net = triangle(&layout, &data);
    net.run_until(4000, |n| n.nodes[2].completed());
    assert!(net.nodes[2].completed(), "C gets the data through B");
    assert!(!a_met_c(&net), "C learnt A on a private torrent");
    for n in &net.nodes {
        let s = n.swarm.stats();
        assert_eq!((s.pex_sent, s.pex_received, s.pex_peers_learnt), (0, 0, 0), "{}", n.addr);
    }
}

// ---- a hand-driven peer -------------------------------------------------------------------

fn origin() -> Instant {
    // Test origin for virtual time.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn engine(seed: bool, private: bool) -> (Swarm, Instant) {
    let (_, layout) = v1_torrent(4 * PIECE as usize, PIECE, 7);
    let now = origin();
    let have = if seed { Bitfield::full(4) } else { Bitfield::new(4) };
    let s = Swarm::new(cfg(), layout.with_private(private), [1; 20], [0; 32], now, have).unwrap();
    (s, now)
}

fn enc(m: Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

/// Connects a hand peer (`outgoing`: the engine dialled it) that sends the handshake and
/// an extended handshake with `ut_pex` under id 9 if `pex`, and `p` if given.
fn join(s: &mut Swarm, now: Instant, key: PeerKey, addr: SocketAddr, outgoing: bool, pex: bool, p: Option<u16>) {
    s.handle_peer_connected(now, key, addr, outgoing);
    let reserved = Reserved::NONE.with_fast_extension(true).with_extension_protocol(true);
    let mut peer_id = [2; 20];
    peer_id[..8].copy_from_slice(&key.0.to_be_bytes());
    s.handle_peer_bytes(now, key, &Handshake { reserved, info_hash: [0xab; 20], peer_id }.to_bytes());
    let mut hs = ExtendedHandshake { p, ..ExtendedHandshake::default() };
    if pex {
        hs.m.insert(UT_PEX, 9);
    }
    let mut payload = Vec::new();
    hs.encode(&mut payload);
    s.handle_peer_bytes(now, key, &enc(Message::Extended { id: 0, payload: &payload }));
    s.handle_peer_bytes(now, key, &enc(Message::HaveNone));
}

/// Every output drained; the `ut_pex` messages (id 9) each peer was sent, and whether the
/// engine's extended handshakes advertised `ut_pex`.
fn drain(s: &mut Swarm) -> (BTreeMap<PeerKey, Vec<UtPex>>, bool) {
    let mut pex: BTreeMap<PeerKey, Vec<UtPex>> = BTreeMap::new();
    let mut advertised = false;
    while let Some(t) = s.poll_transmit() {
        let mut rx = FrameDecoder::new(1 << 20);
        let start = if t.data.first() == Some(&19) { 68 } else { 0 };
        rx.extend(&t.data[start..]);
        while let Some(m) = rx.next().unwrap() {
            match m {
                Message::Extended { id: 9, payload } => {
                    pex.entry(t.peer).or_default().push(UtPex::decode(payload).unwrap())
                }
                Message::Extended { id: 0, payload } => {
                    advertised |= ExtendedHandshake::decode(payload).unwrap().extension_id(UT_PEX) == Some(UT_PEX_ID);
                }
                _ => {}
            }
        }
    }
    while s.poll_disk_op().is_some() {}
    while s.poll_event().is_some() {}
    (pex, advertised)
}

fn v4(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn pex_msg(added: &[&str]) -> Vec<u8> {
    let msg = UtPex { added: added.iter().map(|a| (v4(a), PexFlags(0))).collect(), ..UtPex::default() };
    let mut payload = Vec::new();
    msg.encode(&mut payload);
    enc(Message::Extended { id: UT_PEX_ID, payload: &payload })
}

const P1: PeerKey = PeerKey(1);
const P2: PeerKey = PeerKey(2);
const P3: PeerKey = PeerKey(3);

#[test]
fn sends_diffs_with_flags_at_most_once_a_minute() {
    let (mut s, t0) = engine(true, false);
    // P1: incoming with ut_pex and a listen port; P2: incoming without `p`; P3: dialled.
    join(&mut s, t0, P1, "10.0.0.1:40001".parse().unwrap(), false, true, Some(7001));
    join(&mut s, t0, P2, "10.0.0.2:40002".parse().unwrap(), false, true, None);
    join(&mut s, t0, P3, "10.0.0.3:6881".parse().unwrap(), true, false, None);
    let (_, advertised) = drain(&mut s);
    assert!(advertised, "ut_pex missing from our extended handshake");
    s.handle_timeout(t0 + Duration::from_secs(1));
    let (sent, _) = drain(&mut s);
    let to_p1 = &sent[&P1];
    assert_eq!(to_p1.len(), 1);
    // Only P3: not P1 itself, not P2 (listen port unknown). Dialled: reachable.
    assert_eq!(to_p1[0].added, vec![(v4("10.0.0.3:6881"), PexFlags(PexFlags::REACHABLE))]);
    // P2 hears of P1 at its listen port, and of P3.
    let to_p2 = &sent[&P2][0];
    let added: Vec<SocketAddrV4> = to_p2.added.iter().map(|(a, _)| *a).collect();
    assert_eq!(added, vec![v4("10.0.0.1:7001"), v4("10.0.0.3:6881")]);
    assert!(!sent.contains_key(&P3), "P3 did not advertise ut_pex");
    // P3 leaves: the news waits for the interval.
    s.handle_peer_closed(t0 + Duration::from_secs(2), P3);
    for secs in 3..61 {
        s.handle_timeout(t0 + Duration::from_secs(secs));
        assert!(drain(&mut s).0.is_empty(), "a second message within the minute ({secs} s)");
    }
    s.handle_timeout(t0 + Duration::from_secs(61));
    let (sent, _) = drain(&mut s);
    assert_eq!(sent[&P1][0].dropped, vec![v4("10.0.0.3:6881")]);
    assert!(sent[&P1][0].added.is_empty());
    assert_eq!(s.stats().pex_sent, 4);
}

#[test]
fn learns_candidates_and_ignores_floods() {
    let (mut s, t0) = engine(false, false);
    join(&mut s, t0, P1, "10.0.0.1:40001".parse().unwrap(), false, true, Some(7001));
    drain(&mut s);
    // Unspecified, port 0 and multicast addresses are not dialled, nor a second port of an IP.
    let first =
        pex_msg(&["10.1.0.1:6881", "0.0.0.0:6881", "10.1.0.2:0", "224.0.0.1:6881", "10.1.0.3:51413", "10.1.0.3:51414"]);
    s.handle_peer_bytes(t0, P1, &first);
    s.handle_peer_bytes(t0 + Duration::from_secs(1), P1, &pex_msg(&["10.2.0.1:6881"]));
    let st = s.stats();
    assert_eq!((st.pex_received, st.pex_ignored, st.pex_peers_learnt), (1, 1, 2));
    let dialled: Vec<SocketAddr> = std::iter::from_fn(|| s.poll_connect()).collect();
    assert_eq!(dialled, vec!["10.1.0.1:6881".parse().unwrap(), "10.1.0.3:51413".parse().unwrap()]);
    // After the minimum gap the peer is heard again.
    s.handle_peer_bytes(t0 + Duration::from_secs(25), P1, &pex_msg(&["10.2.0.1:6881"]));
    assert_eq!(s.poll_connect(), Some("10.2.0.1:6881".parse().unwrap()));
    assert!(s.poll_disconnect().is_none());
    assert_eq!(s.stats().pex_received, 2);
}

#[test]
fn candidates_from_pex_are_capped() {
    let (_, layout) = v1_torrent(4 * PIECE as usize, PIECE, 7);
    let t0 = origin();
    let config = Config { pex_max_candidates: 3, ..cfg() };
    let mut s = Swarm::new(config, layout, [1; 20], [0; 32], t0, Bitfield::new(4)).unwrap();
    join(&mut s, t0, P1, "10.0.0.1:40001".parse().unwrap(), false, true, Some(7001));
    let many: Vec<String> = (1..=200).map(|i| format!("10.3.{}.{}:6881", i / 250, i % 250 + 1)).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    s.handle_peer_bytes(t0, P1, &pex_msg(&many));
    assert_eq!(s.stats().pex_peers_learnt, 3);
}

#[test]
fn malformed_pex_disconnects() {
    let (mut s, t0) = engine(false, false);
    join(&mut s, t0, P1, "10.0.0.1:40001".parse().unwrap(), false, true, Some(7001));
    drain(&mut s);
    // `added` of 5 bytes.
    s.handle_peer_bytes(t0, P1, &enc(Message::Extended { id: UT_PEX_ID, payload: b"d5:added5:\x0a\x00\x00\x01\x1ae" }));
    let d = s.poll_disconnect().expect("disconnected");
    assert_eq!(d.peer, P1);
    assert!(matches!(d.reason, DisconnectReason::Protocol(ref why) if why.starts_with("ut_pex")), "{:?}", d.reason);
    assert_eq!(s.stats().protocol_errors, 1);
}

#[test]
fn private_or_disabled_engine_ignores_pex() {
    for (private, pex) in [(true, true), (false, false)] {
        let (_, layout) = v1_torrent(4 * PIECE as usize, PIECE, 7);
        let t0 = origin();
        let config = Config { pex, ..cfg() };
        let mut s = Swarm::new(config, layout.with_private(private), [1; 20], [0; 32], t0, Bitfield::new(4)).unwrap();
        join(&mut s, t0, P1, "10.0.0.1:40001".parse().unwrap(), false, true, Some(7001));
        join(&mut s, t0, P2, "10.0.0.2:6881".parse().unwrap(), true, true, None);
        let (_, advertised) = drain(&mut s);
        assert!(!advertised);
        s.handle_peer_bytes(t0, P1, &pex_msg(&["10.1.0.1:6881"]));
        s.handle_timeout(t0 + Duration::from_secs(2));
        assert!(drain(&mut s).0.is_empty());
        let st = s.stats();
        assert_eq!((st.pex_sent, st.pex_received, st.pex_peers_learnt), (0, 0, 0));
        assert!(s.poll_disconnect().is_none());
    }
}
