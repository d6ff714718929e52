//! A hundred real nodes on loopback: they all join through node 0, fill their routing tables,
//! and a peer announced by one node is found by `get_peers` from others.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mycel_net::{Dht, DhtConfig, Handle, InfoHash, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

const NODES: usize = 100;
const SEED: u64 = 0x6d79_6365_6c00_0100;

/// Node `i` listens on its own address 127.1.N.M, on a port the OS picks.
fn listen_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 1, (i / 200) as u8, (1 + i % 200) as u8);
    SocketAddr::new(IpAddr::V4(ip), 0)
}

/// Starts the nodes, all bootstrapping from node 0. With `one_by_one`, each node has joined
/// before the next one starts (a growing network); without, they all join at once.
async fn spawn_network(rng: &mut ChaCha8Rng, one_by_one: bool) -> Vec<Handle> {
    let mut nodes: Vec<Handle> = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let mut config = DhtConfig::new(listen_addr(i));
        config.id = Some(NodeId(rng.gen()));
        config.seed = Some(rng.gen());
        if let Some(first) = nodes.first() {
            config.bootstrap.push(first.local_addr());
        }
        let node = Dht::spawn(config).await.expect("spawn node");
        if one_by_one && i > 0 {
            node.wait_bootstrapped(Duration::from_secs(5)).await.expect("joins through node 0");
        }
        nodes.push(node);
    }
    nodes
}

/// Routing table sizes of all nodes.
async fn table_sizes(nodes: &[Handle]) -> Vec<usize> {
    let mut sizes = Vec::with_capacity(nodes.len());
    for node in nodes {
        sizes.push(node.stats().await.expect("node running").routing_nodes);
    }
    sizes
}

/// Polls the table sizes until `done` holds for them, or panics with the last sizes.
async fn wait_for_tables(
    nodes: &[Handle],
    timeout: Duration,
    what: &str,
    done: impl Fn(&[usize]) -> bool,
) -> Vec<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let sizes = table_sizes(nodes).await;
        if done(&sizes) {
            return sizes;
        }
        assert!(Instant::now() < deadline, "routing tables never reached '{what}' within {timeout:?}: {sizes:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_nodes_find_an_announced_peer() {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let nodes = spawn_network(&mut rng, true).await;

    wait_for_tables(&nodes, Duration::from_secs(10), "every node knows another", |sizes| sizes.iter().all(|&n| n >= 1))
        .await;
    // A table over 100 random ids has about k nodes in each of its first few buckets: once the
    // joins have settled (observed: min ~19, median ~32), every node knows at least k = 8.
    let sizes = wait_for_tables(&nodes, Duration::from_secs(10), "every node knows >= 8", |sizes| {
        sizes.iter().all(|&n| n >= 8)
    })
    .await;
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    eprintln!("routing table sizes: min {} median {} max {}", sorted[0], sorted[NODES / 2], sorted[NODES - 1]);

    let info_hash = InfoHash(rng.gen());
    let announcer = &nodes[17];
    let announced = announcer.announce(info_hash, Some(4242)).await.expect("node running");
    assert!(announced.announced_to >= 1, "nobody accepted the announce: {announced:?}");
    let expected = SocketAddr::new(announcer.local_addr().ip(), 4242);

    let mut askers = Vec::new();
    while askers.len() < 5 {
        let i = rng.gen_range(0..NODES);
        if i != 17 && !askers.contains(&i) {
            askers.push(i);
        }
    }
    for i in askers {
        let lookup = nodes[i].get_peers(info_hash).await;
        let (peers, result) = tokio::time::timeout(Duration::from_secs(10), lookup.collect())
            .await
            .expect("get_peers ends within its deadline")
            .expect("node running");
        assert!(peers.contains(&expected), "node {i} did not find {expected}: peers {peers:?}, {result:?}");
        assert_eq!(result.peers_found, peers.len(), "node {i}: summary disagrees with the stream");
    }

    for node in &nodes {
        node.shutdown().await.expect("clean shutdown");
    }
}

/// All hundred nodes join through node 0 at the same moment (a flash crowd): node 0 knows
/// nobody when the first `find_node`s arrive, so the joiners must learn of each other in later
/// bootstrap rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_nodes_joining_at_once_fill_their_tables() {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let nodes = spawn_network(&mut rng, false).await;
    wait_for_tables(&nodes, Duration::from_secs(10), "every node knows >= 8", |sizes| sizes.iter().all(|&n| n >= 8))
        .await;
    for node in &nodes {
        node.shutdown().await.expect("clean shutdown");
    }
}
