//! A put is acknowledged only once the item is on disk: a node whose state file fails its
//! writes (fault injection) answers puts with error 202, does not serve the item, counts the
//! failures, and refuses to publish an item it cannot save.

// Driver tests write files and use real sockets, like the driver itself.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use mycel_dht::{ImmutableItem, ItemKind, StoredItem};
use mycel_net::{Dht, DhtConfig, Handle, NetError, NodeId, StoreFaults};

fn listen_addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 9, 0, i)), 0)
}

async fn spawn(i: u8, bootstrap: Vec<SocketAddr>, data_dir: Option<&Path>, faults: &StoreFaults) -> Handle {
    let mut config = DhtConfig::new(listen_addr(i));
    config.bootstrap = bootstrap;
    config.data_dir = data_dir.map(Path::to_owned);
    config.seed = Some([i; 32]);
    config.id = Some(NodeId([i.wrapping_mul(41); 20]));
    config.store_faults = faults.clone();
    Dht::spawn(config).await.expect("spawn node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_cannot_be_written_is_refused_with_202_and_not_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = StoreFaults::default();
    // The storing node has a disk; the putter has none and puts only to others, so the
    // storing node is the only place the item can be.
    let storer = spawn(1, vec![], Some(dir.path()), &faults).await;
    let putter = spawn(2, vec![storer.local_addr()], None, &StoreFaults::default()).await;
    putter.wait_bootstrapped(Duration::from_secs(10)).await.expect("joins");

    faults.fail_item_writes(true);
    let item = ImmutableItem::from_bytes(b"not on disk, not acknowledged").expect("small");
    let put = putter.put_immutable(item.clone()).await.expect("running");
    assert!(put.stored.is_empty(), "{put:?}");
    assert_eq!(put.refused.iter().map(|(n, code)| (n.addr, *code)).collect::<Vec<_>>(), [(storer.local_addr(), 202)]);
    let got = putter.get_item(NodeId(item.target()), ItemKind::Immutable).await.expect("running");
    assert_eq!(got.item, None, "an item whose put was refused is not served");
    let stats = storer.stats().await.expect("running");
    assert_eq!((stats.item_write_failures, stats.stored_items, stats.item_writes_pending), (1, 0, 0));

    // The node's own item is not published when it cannot be saved.
    let own = ImmutableItem::from_bytes(b"my own").expect("small");
    let err = storer.publish(StoredItem::Immutable(own.clone())).await.expect_err("not saved");
    assert!(matches!(err, NetError::NotSaved { .. }), "{err:?}");
    assert!(!storer.unpublish(NodeId(own.target())).await.expect("running"), "nothing was published");

    // The disk recovers: a burst of puts is acknowledged, each once written, and survives a
    // restart.
    faults.fail_item_writes(false);
    let items: Vec<ImmutableItem> =
        (0..20).map(|i| ImmutableItem::from_bytes(format!("burst {i}").as_bytes()).expect("small")).collect();
    let puts = items.iter().map(|item| {
        let putter = putter.clone();
        let item = item.clone();
        tokio::spawn(async move { putter.put_immutable(item).await })
    });
    for put in puts.collect::<Vec<_>>() {
        let put = put.await.expect("task").expect("running");
        assert_eq!(put.stored.len(), 1, "{put:?}");
    }
    let stats = storer.stats().await.expect("running");
    assert_eq!((stats.stored_items, stats.item_writes_pending), (20, 0));
    storer.shutdown().await.expect("stops");

    let storer = spawn(1, vec![], Some(dir.path()), &faults).await;
    assert_eq!(storer.stats().await.expect("running").stored_items, 20, "acknowledged items were on disk");
    storer.shutdown().await.expect("stops");
    putter.shutdown().await.expect("stops");
}
