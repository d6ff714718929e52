//! Engines wired back to back in memory: complete transfers, trading among leechers, a
//! corrupting peer, determinism, and hostile input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{v1_torrent, Net};
use mycel_swarm::{Config, DisconnectReason, Event};
use sha1::Digest;

const PIECE: u32 = 32 * 1024;

#[test]
fn one_seeder_one_leecher_transfer_everything() {
    let (data, layout) = v1_torrent(40 * PIECE as usize + 1234, PIECE, 1);
    let mut net = Net::new();
    let seeder = net.add(Config::default(), &layout, &data, true, 256 * 1024);
    let leecher = net.add(Config::default(), &layout, &data, false, 256 * 1024);
    net.connect(leecher, seeder);
    let steps = net.run_until(20_000, |n| n.nodes[leecher].completed());
    assert!(net.nodes[leecher].completed(), "leecher did not complete in {steps} steps");
    assert_eq!(net.nodes[leecher].disk, data);
    let verified = net.nodes[leecher].events.iter().filter(|e| matches!(e, Event::PieceVerified { .. })).count();
    assert_eq!(verified, layout.piece_count() as usize);
    let stats = net.nodes[leecher].swarm.stats();
    assert_eq!(stats.downloaded, data.len() as u64);
    assert_eq!(stats.pieces_have, layout.piece_count());
    assert_eq!(net.nodes[seeder].swarm.stats().uploaded, data.len() as u64);
}

#[test]
fn leechers_trade_among_themselves() {
    let (data, layout) = v1_torrent(64 * PIECE as usize, PIECE, 2);
    let mut net = Net::new();
    // A slow seeder: leechers must get most pieces from each other.
    let seeder = net.add(Config::default(), &layout, &data, true, 64 * 1024);
    let leechers: Vec<usize> = (0..5).map(|_| net.add(Config::default(), &layout, &data, false, 64 * 1024)).collect();
    net.introduce_all();
    let steps = net.run_until(40_000, |n| leechers.iter().all(|&l| n.nodes[l].completed()));
    for &l in &leechers {
        assert!(net.nodes[l].completed(), "leecher {l} incomplete after {steps} steps");
        assert_eq!(net.nodes[l].disk, data, "leecher {l} data");
    }
    let seeder_up = net.nodes[seeder].swarm.stats().uploaded;
    let total_down: u64 = leechers.iter().map(|&l| net.nodes[l].swarm.stats().downloaded).sum();
    assert_eq!(total_down, data.len() as u64 * leechers.len() as u64);
    let share = seeder_up as f64 / total_down as f64;
    eprintln!("steps {steps} seeder share {share:.2}");
    assert!(share < 0.8, "seeder upload share {share:.2}: leechers did not trade");
    for &l in &leechers {
        assert!(net.nodes[l].swarm.stats().uploaded > 0, "leecher {l} never uploaded");
    }
}

#[test]
fn corrupting_peer_is_banned_and_honest_peers_complete() {
    let (data, layout) = v1_torrent(48 * PIECE as usize, PIECE, 3);
    let mut net = Net::new();
    let honest = net.add(Config::default(), &layout, &data, true, 64 * 1024);
    let evil = net.add(Config::default(), &layout, &data, true, 256 * 1024);
    net.nodes[evil].corrupt = true;
    let leechers: Vec<usize> = (0..3).map(|_| net.add(Config::default(), &layout, &data, false, 64 * 1024)).collect();
    net.introduce_all();
    net.run_until(40_000, |n| leechers.iter().all(|&l| n.nodes[l].completed()));
    let evil_ip = net.nodes[evil].addr.ip();
    for &l in &leechers {
        let node = &net.nodes[l];
        assert!(node.completed(), "leecher {l} incomplete");
        assert_eq!(node.disk, data, "leecher {l} has wrong data");
        assert!(
            node.events.iter().any(|e| matches!(e, Event::PeerBanned { addr, .. } if *addr == evil_ip)),
            "leecher {l} did not ban the corrupting peer"
        );
        // Honest peers are never banned.
        assert!(node.events.iter().all(|e| !matches!(e, Event::PeerBanned { addr, .. } if *addr != evil_ip)));
    }
    let _ = honest;
}

fn trace_of(seed: u64) -> ([u8; 20], usize) {
    let (data, layout) = v1_torrent(20 * PIECE as usize, PIECE, seed);
    let mut net = Net::new();
    net.add(Config::default(), &layout, &data, true, 64 * 1024);
    for _ in 0..3 {
        net.add(Config::default(), &layout, &data, false, 64 * 1024);
    }
    net.introduce_all();
    let steps = net.run_until(20_000, |n| n.nodes[1..].iter().all(|x| x.completed()));
    (net.trace.clone().finalize().into(), steps)
}

#[test]
fn same_seed_same_transmit_trace() {
    let a = trace_of(9);
    let b = trace_of(9);
    assert_eq!(a, b);
}

#[test]
fn paused_torrent_disconnects_and_stops() {
    let (data, layout) = v1_torrent(8 * PIECE as usize, PIECE, 4);
    let mut net = Net::new();
    let seeder = net.add(Config::default(), &layout, &data, true, 64 * 1024);
    let leecher = net.add(Config::default(), &layout, &data, false, 64 * 1024);
    net.connect(leecher, seeder);
    net.step();
    let now = net.now;
    net.nodes[leecher].swarm.pause(now);
    net.pump();
    assert!(net.disconnects.iter().any(|(i, d)| *i == leecher && d.reason == DisconnectReason::Paused));
    assert!(net.nodes[leecher].swarm.stats().peers.is_empty());
}

#[test]
fn v2_and_hybrid_torrents_transfer() {
    use harness::{hybrid_torrent, v2_torrent};
    use mycel_swarm::Trust;
    let files = [100_000, 5000, 16384, 70_000];
    for (name, (data, layout)) in [
        ("v2", v2_torrent(&files, PIECE, 5)),
        ("hybrid", hybrid_torrent(&files, PIECE, 6, Trust::Both)),
        ("hybrid-v2-only", hybrid_torrent(&files, PIECE, 7, Trust::V2Only)),
    ] {
        let mut net = Net::new();
        let seeder = net.add(Config::default(), &layout, &data, true, 128 * 1024);
        let leechers: Vec<usize> =
            (0..2).map(|_| net.add(Config::default(), &layout, &data, false, 128 * 1024)).collect();
        net.introduce_all();
        net.run_until(20_000, |n| leechers.iter().all(|&l| n.nodes[l].completed()));
        for &l in &leechers {
            assert!(net.nodes[l].completed(), "{name}: leecher {l} incomplete");
            assert_eq!(net.nodes[l].disk, data, "{name}: data");
            assert_eq!(net.nodes[l].swarm.stats().hash_failures, 0, "{name}");
        }
        let _ = seeder;
    }
}

#[test]
fn v2_corrupting_peer_is_banned() {
    let (data, layout) = harness::v2_torrent(&[300_000, 40_000], PIECE, 8);
    let mut net = Net::new();
    net.add(Config::default(), &layout, &data, true, 64 * 1024);
    let evil = net.add(Config::default(), &layout, &data, true, 256 * 1024);
    net.nodes[evil].corrupt = true;
    let leechers: Vec<usize> = (0..2).map(|_| net.add(Config::default(), &layout, &data, false, 64 * 1024)).collect();
    net.introduce_all();
    net.run_until(20_000, |n| leechers.iter().all(|&l| n.nodes[l].completed()));
    let evil_ip = net.nodes[evil].addr.ip();
    for &l in &leechers {
        let node = &net.nodes[l];
        assert!(node.completed(), "leecher {l} incomplete");
        assert_eq!(node.disk, data);
        assert!(node.events.iter().any(|e| matches!(e, Event::PeerBanned { addr, .. } if *addr == evil_ip)));
        assert!(node.events.iter().all(|e| !matches!(e, Event::PeerBanned { addr, .. } if *addr != evil_ip)));
    }
}
