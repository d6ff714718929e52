//! Persistence: a node keeps its id and routing table across a restart and rejoins without a
//! bootstrap address; a state file that is not ours is a clear error.

// Driver tests write files and use real sockets, like the driver itself.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use mycel_net::{Dht, DhtConfig, Handle, InfoHash, NetError, NodeId, STATE_FILE};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

fn listen_addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, i)), 0)
}

async fn spawn(
    listen: SocketAddr,
    bootstrap: Vec<SocketAddr>,
    data_dir: Option<&Path>,
    rng: &mut ChaCha8Rng,
) -> Handle {
    let mut config = DhtConfig::new(listen);
    config.bootstrap = bootstrap;
    config.data_dir = data_dir.map(Path::to_owned);
    if data_dir.is_none() {
        config.id = Some(NodeId(rng.gen()));
    }
    config.seed = Some(rng.gen());
    Dht::spawn(config).await.expect("spawn node")
}

/// Polls until the node's routing table holds at least `min` nodes.
async fn wait_table(node: &Handle, min: usize) -> Vec<mycel_net::NodeInfo> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = node.routing_nodes().await.expect("node running");
        if nodes.len() >= min {
            return nodes;
        }
        assert!(Instant::now() < deadline, "routing table stuck at {} < {min} nodes", nodes.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_id_and_routing_table() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let dir = tempfile::tempdir().expect("temp dir");

    let mut network = vec![spawn(listen_addr(1), vec![], None, &mut rng).await];
    for i in 2..=12 {
        let first = network[0].local_addr();
        network.push(spawn(listen_addr(i), vec![first], None, &mut rng).await);
    }

    let first = network[0].local_addr();
    let node = spawn(listen_addr(100), vec![first], Some(dir.path()), &mut rng).await;
    node.wait_bootstrapped(Duration::from_secs(10)).await.expect("joins the network");
    let before = wait_table(&node, 4).await;
    let id = node.id();
    node.shutdown().await.expect("saves and stops");
    assert!(matches!(node.stats().await, Err(NetError::Stopped)), "commands fail after shutdown");

    // Same data directory, no bootstrap address, and a new port.
    let node = spawn(listen_addr(100), vec![], Some(dir.path()), &mut rng).await;
    assert_eq!(node.id(), id, "the id is kept");
    assert!(node.restored_nodes() >= before.len(), "the whole table is loaded");
    node.wait_bootstrapped(Duration::from_secs(10)).await.expect("rejoins through the saved nodes");
    let saved: BTreeSet<SocketAddr> = before.iter().map(|n| n.addr).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: Vec<_> = node.routing_nodes().await.expect("node running");
        let kept = now.iter().filter(|n| saved.contains(&n.addr)).count();
        if kept >= saved.len().min(4) {
            break;
        }
        assert!(Instant::now() < deadline, "only {kept} of {} saved nodes are back: {now:?}", saved.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // It is part of the network again: it finds a peer another node announced.
    let info_hash = InfoHash(rng.gen());
    let announcer = &network[5];
    let announced = announcer.announce(info_hash, Some(5555)).await.expect("node running");
    assert!(announced.announced_to >= 1, "{announced:?}");
    let (peers, result) = node.get_peers(info_hash).await.collect().await.expect("node running");
    let expected = SocketAddr::new(announcer.local_addr().ip(), 5555);
    assert!(peers.contains(&expected), "restarted node did not find {expected}: {peers:?} {result:?}");

    node.shutdown().await.expect("clean shutdown");
    for n in &network {
        n.shutdown().await.expect("clean shutdown");
    }
}

#[tokio::test]
async fn a_foreign_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(STATE_FILE);
    std::fs::write(&file, vec![0x42; 4096]).expect("write foreign file");
    let mut config = DhtConfig::new(listen_addr(200));
    config.data_dir = Some(dir.path().to_owned());
    let err = Dht::spawn(config).await.expect_err("must refuse a foreign state file");
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()), "error does not name the file: {message}");
    assert_eq!(std::fs::read(&file).expect("file still there"), vec![0x42; 4096], "file left untouched");
}
