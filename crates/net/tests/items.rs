//! BEP 44 through the driver on loopback: put, get, and items published by a node that come
//! back after a restart.

// Driver tests write files and use real sockets, like the driver itself.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use mycel_dht::{ImmutableItem, ItemKind, Keypair, MutableItem, StoredItem};
use mycel_net::{Dht, DhtConfig, Handle, NodeId};

fn listen_addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 6, 0, i)), 0)
}

async fn spawn(i: u8, bootstrap: Vec<SocketAddr>, data_dir: Option<&Path>) -> Handle {
    let mut config = DhtConfig::new(listen_addr(i));
    config.bootstrap = bootstrap;
    config.data_dir = data_dir.map(Path::to_owned);
    config.seed = Some([i; 32]);
    if data_dir.is_none() {
        config.id = Some(NodeId([i.wrapping_mul(37); 20]));
    }
    Dht::spawn(config).await.expect("spawn node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_and_published_items_come_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut network = vec![spawn(1, vec![], None).await];
    for i in 2..=8 {
        let first = network[0].local_addr();
        network.push(spawn(i, vec![first], None).await);
    }
    let first = network[0].local_addr();
    let publisher = spawn(100, vec![first], Some(dir.path())).await;
    publisher.wait_bootstrapped(Duration::from_secs(10)).await.expect("joins");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let chk = ImmutableItem::from_bytes(b"through the driver").expect("small");
    let put = network[3].put_immutable(chk.clone()).await.expect("running");
    assert!(!put.stored.is_empty(), "{put:?}");
    let got = network[5].get_item(NodeId(chk.target()), ItemKind::Immutable).await.expect("running");
    assert_eq!(got.item, Some(StoredItem::Immutable(chk)));

    let key = Keypair::from_seed([5; 32]);
    let ssk = MutableItem::sign(&key, b"name".to_vec(), 1, b"4:kept".to_vec()).expect("valid");
    let put = publisher.publish(StoredItem::Mutable(ssk.clone())).await.expect("running");
    assert!(!put.stored.is_empty(), "{put:?}");
    let got = network[6].get_item(NodeId(ssk.target()), ItemKind::Mutable { salt: b"name".to_vec() }).await;
    assert_eq!(got.expect("running").item, Some(StoredItem::Mutable(ssk.clone())));
    // Let the background write of the published item finish, then restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    publisher.shutdown().await.expect("stops");

    let publisher = spawn(100, vec![], Some(dir.path())).await;
    assert!(publisher.unpublish(NodeId(ssk.target())).await.expect("running"), "published item restored");
    assert!(!publisher.unpublish(NodeId(ssk.target())).await.expect("running"));
    publisher.shutdown().await.expect("stops");
    for node in network {
        node.shutdown().await.expect("stops");
    }
}
