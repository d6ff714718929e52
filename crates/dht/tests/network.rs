//! Many real `Node`s exchanging datagrams in memory on virtual time: bootstrap, lookups,
//! announces, loss, determinism. (The full simulator with a network model is `mycel-sim`;
//! this is the node's own integration test and needs nothing but the node.)

#![allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time

mod common;

use std::hash::Hasher;
use std::net::SocketAddr;
use std::time::Duration;

use common::Net;
use mycel_dht::{Config, Event, InfoHash, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn trace_hash(seed: u64) -> (u64, u64) {
    let mut net = Net::new(60, seed, 0.02, Config::default());
    net.bootstrap_all();
    let q = net.nodes[5].get_peers(net.now, InfoHash([7; 20]));
    net.flush(5);
    net.run_for(Duration::from_secs(30));
    assert!(net.lookup_result(5, q).is_some());
    (net.trace.finish(), net.datagrams)
}

#[test]
fn same_seed_same_trace() {
    assert_eq!(trace_hash(11), trace_hash(11));
    assert_ne!(trace_hash(11).0, trace_hash(12).0);
}

#[test]
fn tables_fill_and_announces_are_found() {
    let mut net = Net::new(200, 1, 0.0, Config::default());
    net.bootstrap_all();
    for (i, n) in net.nodes.iter().enumerate() {
        let s = n.stats();
        assert!(s.routing_nodes >= 8, "node {i} has only {} nodes", s.routing_nodes);
    }
    let ih = InfoHash([0x42; 20]);
    let a = net.nodes[17].announce(net.now, ih, Some(4242));
    net.flush(17);
    net.run_for(Duration::from_secs(30));
    let done = net.lookup_result(17, a).expect("announce finished");
    assert!(done.announced_to >= 6, "announced to {} nodes", done.announced_to);
    let want = SocketAddr::new(net.addrs[17].ip(), 4242);
    for searcher in [3usize, 50, 99, 150, 199] {
        let q = net.nodes[searcher].get_peers(net.now, ih);
        net.flush(searcher);
        net.run_for(Duration::from_secs(30));
        let r = net.lookup_result(searcher, q).expect("get_peers finished");
        assert!(!r.deadline_hit);
        assert!(net.peers_found(searcher, q).contains(&want), "node {searcher} did not find the peer: {r:?}");
    }
}

#[test]
fn find_node_converges_on_the_true_closest() {
    let mut net = Net::new(300, 2, 0.0, Config::default());
    net.bootstrap_all();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for _ in 0..20 {
        let target = NodeId(rng.gen());
        let searcher = rng.gen_range(0..net.nodes.len());
        let q = net.nodes[searcher].find_node(net.now, target);
        net.flush(searcher);
        net.run_for(Duration::from_secs(30));
        let r = net.lookup_result(searcher, q).expect("lookup finished");
        let mut all: Vec<NodeId> =
            net.nodes.iter().map(|n| n.id()).filter(|id| *id != net.nodes[searcher].id()).collect();
        all.sort_by_key(|id| id.distance(&target.0));
        let got: Vec<NodeId> = r.closest.iter().map(|n| n.id).collect();
        assert_eq!(got.first(), all.first(), "closest node missed: {r:?}");
        let hits = got.iter().filter(|id| all[..8].contains(id)).count();
        assert!(hits >= 7, "only {hits} of the true 8 closest found");
        assert!(r.hops <= 6, "{} hops", r.hops);
    }
}

#[test]
fn lookups_survive_loss() {
    let mut net = Net::new(150, 3, 0.10, Config::default());
    net.bootstrap_all();
    let ih = InfoHash([0x99; 20]);
    let a = net.nodes[10].announce(net.now, ih, None);
    net.flush(10);
    net.run_for(Duration::from_secs(30));
    assert!(net.lookup_result(10, a).expect("done").announced_to >= 4);
    let want = net.addrs[10]; // implied port: the node's own UDP port
    let mut found = 0;
    for searcher in [20usize, 40, 60, 80, 100, 120, 140] {
        let q = net.nodes[searcher].get_peers(net.now, ih);
        net.flush(searcher);
        net.run_for(Duration::from_secs(30));
        if net.peers_found(searcher, q).contains(&want) {
            found += 1;
        }
    }
    assert!(found >= 6, "found by {found} of 7 searchers with 10% loss");
}

#[test]
fn bootstrap_retries_until_the_router_appears() {
    let cfg = Config { bootstrap_retry: Duration::from_secs(1), ..Config::default() };
    let mut net = Net::new(10, 4, 0.0, cfg);
    // Node 9 bootstraps from an address where nobody listens yet.
    let ghost = SocketAddr::from(([127, 9, 9, 9], 6881));
    net.nodes[9].bootstrap(net.now, &[ghost]);
    net.flush(9);
    net.run_for(Duration::from_secs(20));
    assert_eq!(net.nodes[9].stats().routing_nodes, 0);
    assert!(net.nodes[9].stats().queries_out.find_node >= 3, "retried with back-off");
    // Now the address belongs to node 0, already part of a network.
    net.index.remove(&net.addrs[0]);
    net.addrs[0] = ghost;
    net.index.insert(ghost, 0);
    for i in 1..9 {
        net.nodes[i].bootstrap(net.now, &[ghost]);
        net.flush(i);
    }
    net.run_for(Duration::from_secs(120));
    assert!(net.nodes[9].stats().routing_nodes >= 5, "joined after the router appeared");
    assert!(net.events.iter().any(|(i, e)| *i == 9 && matches!(e, Event::Bootstrapped { .. })));
    let _ = net.start;
}

#[test]
fn disjoint_paths_also_converge_and_never_share_a_node() {
    let cfg = Config { disjoint_paths: 4, ..Config::default() };
    let mut net = Net::new(200, 5, 0.0, cfg);
    net.bootstrap_all();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..10 {
        let target = NodeId(rng.gen());
        let searcher = rng.gen_range(0..net.nodes.len());
        let before = net.datagrams;
        let q = net.nodes[searcher].find_node(net.now, target);
        net.flush(searcher);
        net.run_for(Duration::from_secs(30));
        let r = net.lookup_result(searcher, q).expect("lookup finished");
        let mut all: Vec<NodeId> =
            net.nodes.iter().map(|n| n.id()).filter(|id| *id != net.nodes[searcher].id()).collect();
        all.sort_by_key(|id| id.distance(&target.0));
        assert_eq!(r.closest.first().map(|n| n.id), all.first().copied(), "{r:?}");
        assert!(r.messages_sent as u64 <= net.datagrams - before);
    }
}

#[test]
fn flash_crowd_joining_through_one_router_fills_every_table() {
    let mut net = Net::new(100, 8, 0.0, Config::default());
    let router = net.addrs[0];
    for i in 1..net.nodes.len() {
        net.nodes[i].bootstrap(net.now, &[router]);
        net.flush(i);
    }
    net.run_for(Duration::from_secs(60));
    for (i, n) in net.nodes.iter().enumerate() {
        assert!(n.stats().routing_nodes >= 8, "node {i} has {} nodes", n.stats().routing_nodes);
    }
}

#[test]
fn nodes_learn_their_external_ip_by_vote() {
    let mut net = Net::new(40, 9, 0.0, Config::default());
    net.bootstrap_all();
    for (i, n) in net.nodes.iter().enumerate() {
        assert_eq!(n.external_ip(), Some(net.addrs[i].ip()), "node {i}");
    }
}
